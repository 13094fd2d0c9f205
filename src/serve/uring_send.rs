//! The calls' RTP packets sent through one io_uring per media thread: the
//! packets of every call due at one wake-up handed to the kernel in one
//! `io_uring_enter(2)` instead of one `sendto(2)` each.
//!
//! **Why.** At 1,000 calls kuma sends 50,000 packets a second, each from its
//! call's own socket (`super::call::bind_rtp`). The floor bench
//! (`benches/udp_floor.rs`, designs `per-call` and `uring-send`) measured the
//! same socket-per-call program with each 1 ms tick's sends in one
//! `io_uring_enter` at 15–26 % less CPU, nearly all of it the sends' system
//! call overhead. The reads stay `recvmmsg` (`super::rtp_socket`): multishot
//! receives saved nothing there.
//!
//! Measured in kuma, smaller: `benches/sip-load.sh` in network namespaces
//! (kuma on one core, sipp on the other; a 2-core machine shared with other
//! work), the same binary alternated with `KUMA_IO_URING=0`: at 500 calls
//! 53.7–59.7 CPU-ms per call-minute against 58.9–60.9 (the core's busy time,
//! kernel included, 67.1–71.4 against 69.5–73.0); at 1,000 calls, about all
//! one core carries, 44.0–46.5 against 48.1–51.4 (51.6–54.5 against 56.0–60.3),
//! and fewer calls refused by the media guard. System calls at about 1,000
//! calls (`perf stat`, 10 s): 40,000 a second against 74,000 (`sendto`
//! 41,000 → 110; 4,800 `io_uring_enter`, about 9 packets each: wake-ups
//! for a SIP event or a committed write submit their own). RTP gaps on the
//! wire and the share of late packets are unchanged or a little better.
//! kuma's own work per packet, not the system calls, is most of its CPU.
//!
//! **How.** A media thread owns one [`Sender`]. A call's turn gives it each
//! packet ([`Sender::send`]), which is copied into a slot the sender owns and
//! queued as a submission; once the thread has turned every call due at a
//! wake-up, [`Sender::flush`] submits them all and reaps the completions that
//! are there, without waiting. A UDP send is issued inline by the submitting
//! `io_uring_enter` and completes there; with `MSG_DONTWAIT`, a send that
//! would block (a full socket buffer) completes with `EAGAIN` rather than
//! being retried later (io_uring's `REQ_F_NOWAIT`): the packet is dropped, as
//! `sendto` on the non-blocking socket dropped it, and never delays the next.
//! Send errors are ignored, as they were.
//!
//! **Hazards, and how each is kept away.**
//! - *A packet must never leave through another call's socket.* A call may
//!   end, and its socket be dropped, between queuing a packet and the flush;
//!   were the submission to name only the descriptor, a socket opened by a new
//!   call (on another thread) could get the same number and send the packet to
//!   its caller. Each slot holds a clone of the call's `Arc<UdpSocket>` until
//!   its completion is reaped, so the descriptor stays open (and its number
//!   taken) while the kernel may use it.
//! - *The socket's association may change between queuing and execution.*
//!   `super::call`'s `Live::pin` connects the socket to the caller, or
//!   releases it, after the turn's packet is queued. A packet queued for a
//!   connected socket is a plain `IORING_OP_SEND` (no address: the connected
//!   socket's cached route, as `send` used it); one queued for an unconnected
//!   socket names its destination (`IORING_OP_SENDMSG`, which Linux accepts on
//!   a connected UDP socket too). And `pin` calls [`Sender::settle`] before
//!   changing the association: everything queued is submitted and waited for,
//!   so no packet is executed under an association it was not queued for.
//! - *Buffers the kernel may read are never freed or reused.* A slot (its
//!   packet, address, `iovec` and `msghdr`) is taken from the free list when
//!   queued and given back only when its completion is reaped. The slots live
//!   in one allocation made at start, never moved, owned through a raw pointer
//!   (no Rust reference to a slot in flight is ever made); dropping the sender
//!   waits for every completion first, and leaks the slots if it cannot.
//!
//! **Fallback.** Without a ring (the kernel has no io_uring: `ENOSYS`;
//! refused by Docker's default seccomp profile or `kernel.io_uring_disabled`:
//! `EPERM`; a kernel before 5.6, whose ring cannot send; `KUMA_IO_URING=0`), a packet too long for a slot, or every slot
//! still in flight after a submit, the packet is sent at once with `send` or
//! `send_to`, as before. [`Sender::new`] says which path it took.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use crate::rtp::pacer::LATE_AFTER;

/// Sends the calls' packets of one media thread (see the module's doc).
pub struct Sender {
    #[cfg(target_os = "linux")]
    ring: Option<ring::Ring>,
    /// When each packet queued on the ring and not yet handed to the kernel
    /// was due, in the order queued (the ring submits in that order).
    dues: Vec<Instant>,
    /// What was counted since [`Sender::take_counts`].
    counts: Counts,
}

/// Packets a [`Sender`] handed to the kernel, counted for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Handed over more than [`LATE_AFTER`] after they were due
    /// (`kuma_rtp_packets_late_total`, the pacer's threshold): measured when
    /// the packet leaves (the submit), not when its call's turn queued it.
    pub late: u64,
    /// Sent with a system call of their own (`send`/`sendto`): no ring, a
    /// packet too long for a slot, or every slot in flight.
    pub at_once: u64,
}

/// Slots (packets queued or in flight at once) of a media thread's ring: at
/// 3,000 calls a thread, a wake-up every 0.5 ms has some 75 packets due.
pub const SLOTS: u32 = 512;

impl Sender {
    /// A sender through an io_uring of `slots` slots when `ring` is true and
    /// the kernel gives one; otherwise (or with `ring` false) plain `send`.
    /// The error says why there is no ring.
    pub fn new(ring: bool, slots: u32) -> (Sender, Result<(), String>) {
        if !ring {
            return (Sender::plain(), Err("turned off (io_uring = false)".into()));
        }
        #[cfg(target_os = "linux")]
        {
            match ring::Ring::new(slots) {
                Ok(r) => {
                    let sender = Sender {
                        ring: Some(r),
                        dues: Vec::with_capacity(slots as usize),
                        counts: Counts::default(),
                    };
                    (sender, Ok(()))
                }
                Err(e) => (Sender::plain(), Err(e.to_string())),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = slots;
            (Sender::plain(), Err("io_uring is Linux's".into()))
        }
    }

    /// A sender that sends each packet at once (`send`/`send_to`).
    pub fn plain() -> Sender {
        Sender {
            #[cfg(target_os = "linux")]
            ring: None,
            dues: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Whether packets go through the io_uring.
    #[cfg(test)]
    pub fn uses_ring(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.ring.is_some()
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }

    /// Sends `packet`, due at `due`, from `socket`: to the peer it is
    /// connected to (`to` `None`), or to `to`. Through the ring, it leaves at
    /// the next [`Sender::flush`] (or sooner); errors are ignored (a full
    /// socket buffer drops the packet).
    pub fn send(
        &mut self,
        socket: &Arc<UdpSocket>,
        packet: &[u8],
        to: Option<SocketAddr>,
        due: Instant,
    ) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            if ring.queue(socket, packet, to) {
                self.dues.push(due);
                return;
            }
            // Refused after handing over what was queued (see `Ring::queue`).
            self.count_submitted();
        }
        self.counts.at_once += 1;
        self.counts.late += u64::from(is_late(due, Instant::now()));
        let _ = match to {
            None => socket.send(packet),
            Some(to) => socket.send_to(packet, to),
        };
    }

    /// Hands what is queued to the kernel and reaps the completions there,
    /// without waiting: once per wake-up, after every due call's turn.
    pub fn flush(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            ring.flush();
            self.count_submitted();
        }
    }

    /// Submits what is queued and waits until every packet in flight has been
    /// sent (or refused): before a socket's association changes (see the
    /// module's doc). A UDP send with `MSG_DONTWAIT` never waits for room, so
    /// neither does this.
    pub fn settle(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(ring) = &mut self.ring {
            ring.settle();
            self.count_submitted();
        }
    }

    /// What was counted since the last call (the media thread adds it to the
    /// metrics once per wake-up).
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// Counts the packets the ring has handed to the kernel since they were
    /// queued: the oldest, as many as are no longer waiting in its queue.
    #[cfg(target_os = "linux")]
    fn count_submitted(&mut self) {
        let waiting = self.ring.as_mut().map_or(0, ring::Ring::unsubmitted);
        let submitted = self.dues.len().saturating_sub(waiting);
        if submitted == 0 {
            return;
        }
        let now = Instant::now();
        let late = self
            .dues
            .drain(..submitted)
            .filter(|&due| is_late(due, now))
            .count();
        self.counts.late += late as u64;
    }
}

/// Whether a packet due at `due` and handed to the kernel at `now` is late.
fn is_late(due: Instant, now: Instant) -> bool {
    now.saturating_duration_since(due) > LATE_AFTER
}

/// The ring and its slots (Linux only).
#[cfg(target_os = "linux")]
mod ring {
    use super::*;
    use io_uring::{IoUring, opcode, types};
    use std::os::fd::AsRawFd;
    use std::ptr::NonNull;

    /// The longest packet a slot takes (kuma's: 12 + 160 bytes, or fewer);
    /// longer ones are sent at once.
    pub const SLOT_BYTES: usize = 512;

    /// One packet queued or in flight, and what the kernel reads to send it.
    struct Slot {
        packet: [u8; SLOT_BYTES],
        name: libc::sockaddr_storage,
        iov: libc::iovec,
        msg: libc::msghdr,
        /// Holds the socket open until the completion is reaped.
        socket: Option<Arc<UdpSocket>>,
    }

    pub struct Ring {
        ring: IoUring,
        /// `len` slots from `Box<[Slot]>::into_raw`: the kernel holds pointers
        /// into those queued or in flight, so they are reached through this
        /// pointer only, never through a reference to the whole.
        slots: NonNull<Slot>,
        len: usize,
        /// Slots neither queued nor in flight.
        free: Vec<u32>,
    }

    impl Ring {
        pub fn new(slots: u32) -> io::Result<Ring> {
            let slots = slots.clamp(1, 1 << 15);
            // Deferred task work (6.1) runs only inside our own enter, never
            // interrupting the thread; an older kernel refuses the flags, and
            // a plain ring does.
            let ring = IoUring::builder()
                .setup_single_issuer()
                .setup_defer_taskrun()
                .setup_cqsize(2 * slots)
                .build(slots)
                .or_else(|_| IoUring::builder().setup_cqsize(2 * slots).build(slots))?;
            // A kernel that has a ring but not these operations (5.1–5.5)
            // would fail every send: plain `sendto` there.
            let mut probe = io_uring::Probe::new();
            ring.submitter().register_probe(&mut probe)?;
            if !probe.is_supported(opcode::Send::CODE) || !probe.is_supported(opcode::SendMsg::CODE)
            {
                return Err(io::Error::other("the kernel's io_uring cannot send"));
            }
            // At most `slots` submissions are outstanding (a slot each), so
            // neither queue can overflow.
            let len = ring.params().sq_entries().min(slots) as usize;
            let all: Box<[Slot]> = (0..len)
                .map(|_| Slot {
                    packet: [0; SLOT_BYTES],
                    // SAFETY: plain old data; all zeroes is a valid value.
                    name: unsafe { std::mem::zeroed() },
                    iov: libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0,
                    },
                    // SAFETY: as above (null pointers, zero lengths).
                    msg: unsafe { std::mem::zeroed() },
                    socket: None,
                })
                .collect();
            let slots = NonNull::new(Box::into_raw(all).cast::<Slot>())
                .ok_or_else(|| io::Error::other("no memory for the slots"))?;
            Ok(Ring {
                ring,
                slots,
                len,
                free: (0..len as u32).rev().collect(),
            })
        }

        /// Queues `packet`; false when it was not (too long, no slot free even
        /// after a submit): the caller sends it at once.
        pub fn queue(
            &mut self,
            socket: &Arc<UdpSocket>,
            packet: &[u8],
            to: Option<SocketAddr>,
        ) -> bool {
            // Everything queued goes first, so that a packet sent at once
            // still follows its socket's earlier ones.
            if packet.len() > SLOT_BYTES {
                self.flush();
                return false;
            }
            if self.free.is_empty() {
                self.flush();
            }
            let Some(i) = self.free.pop() else {
                return false;
            };
            // SAFETY: `i` < `len` (the free list holds slot numbers only), and
            // a free slot is neither queued nor in flight: nothing else reads
            // or writes it.
            let slot = unsafe { &mut *self.slots.as_ptr().add(i as usize) };
            let Some(bytes) = slot.packet.get_mut(..packet.len()) else {
                self.free.push(i);
                return false;
            };
            bytes.copy_from_slice(packet);
            let fd = types::Fd(socket.as_raw_fd());
            let len = packet.len() as u32;
            let entry = match to {
                None => opcode::Send::new(fd, slot.packet.as_ptr(), len)
                    .flags(libc::MSG_DONTWAIT)
                    .build(),
                Some(to) => {
                    let name_len = write_sockaddr(to, &mut slot.name);
                    slot.iov = libc::iovec {
                        iov_base: slot.packet.as_mut_ptr().cast(),
                        iov_len: packet.len(),
                    };
                    // SAFETY: plain old data; all zeroes is a valid msghdr.
                    slot.msg = unsafe { std::mem::zeroed() };
                    slot.msg.msg_name = (&raw mut slot.name).cast();
                    slot.msg.msg_namelen = name_len;
                    slot.msg.msg_iov = &raw mut slot.iov;
                    slot.msg.msg_iovlen = 1;
                    opcode::SendMsg::new(fd, &raw const slot.msg)
                        .flags(libc::MSG_DONTWAIT as u32)
                        .build()
                }
            };
            slot.socket = Some(Arc::clone(socket));
            let entry = entry.user_data(u64::from(i));
            // SAFETY: the entry points into slot `i` (its packet, or its
            // msghdr, iovec, address and packet), which stays as it is, and
            // its socket open, until the completion is reaped (`reap`).
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                // Cannot happen (one submission a slot, as many slots as
                // entries); should it, the packet is sent at once.
                slot.socket = None;
                self.free.push(i);
                return false;
            }
            true
        }

        /// Packets queued and not yet handed to the kernel.
        pub fn unsubmitted(&mut self) -> usize {
            self.ring.submission().len()
        }

        /// Slots queued or in flight.
        fn taken(&self) -> usize {
            self.len - self.free.len()
        }

        pub fn flush(&mut self) {
            self.reap();
            // Nothing queued nor in flight (what is queued is taken too).
            if self.taken() == 0 {
                return;
            }
            let queued = self.ring.submission().len();
            // An error (EINTR, EAGAIN: no memory, EBUSY) leaves the rest
            // queued for the next flush.
            let _ = self.enter(queued, 0);
            self.reap();
        }

        pub fn settle(&mut self) {
            // A few tries: a signal may interrupt the wait.
            for _ in 0..4 {
                self.reap();
                let queued = self.ring.submission().len();
                if queued > 0 {
                    let _ = self.enter(queued, 0);
                    self.reap();
                }
                let unsubmitted = self.ring.submission().len();
                let in_flight = self.taken().saturating_sub(unsubmitted);
                if in_flight == 0 {
                    if unsubmitted == 0 {
                        return;
                    }
                    continue;
                }
                // Every completion in the queue is of a submission in flight
                // (the queue was emptied since they were submitted): once
                // `in_flight` are there, every one has completed. Only what
                // was submitted is waited for.
                let _ = self.enter(0, in_flight);
            }
            self.reap();
        }

        /// `io_uring_enter`: submits `queued` entries, runs the kernel's
        /// deferred work and waits for `wait` completions in the queue.
        fn enter(&mut self, queued: usize, wait: usize) -> io::Result<usize> {
            let to_submit = u32::try_from(queued).unwrap_or(u32::MAX);
            let wait = u32::try_from(wait).unwrap_or(u32::MAX);
            // SAFETY: no argument pointer; every queued entry's memory is
            // held as `queue` says.
            unsafe {
                self.ring.submitter().enter::<libc::sigset_t>(
                    to_submit,
                    wait,
                    io_uring::EnterFlags::GETEVENTS.bits(),
                    None,
                )
            }
        }

        /// Frees the slots whose sends completed (their result ignored), and
        /// lets go of their sockets.
        fn reap(&mut self) {
            let Ring {
                ring,
                slots,
                len,
                free,
            } = self;
            for cqe in ring.completion() {
                let Some(i) = usize::try_from(cqe.user_data()).ok().filter(|i| i < len) else {
                    continue;
                };
                // SAFETY: `i` < `len`; its completion is here, so the kernel
                // is done with the slot.
                let slot = unsafe { &mut *slots.as_ptr().add(i) };
                slot.socket = None;
                free.push(i as u32);
            }
        }
    }

    impl Drop for Ring {
        fn drop(&mut self) {
            self.settle();
            if self.taken() > 0 {
                // The kernel may still read them: leak the slots (and the
                // sockets they hold) rather than free them under it.
                tracing::warn!(
                    in_flight = self.taken(),
                    "io_uring sends not completed at the end: their buffers are left allocated"
                );
                return;
            }
            let slots = std::ptr::slice_from_raw_parts_mut(self.slots.as_ptr(), self.len);
            // SAFETY: the pointer and length of `Box::into_raw` in `new`; no
            // slot is queued or in flight (`taken` is 0), and the ring, the
            // only other user, no longer refers to them.
            drop(unsafe { Box::from_raw(slots) });
        }
    }

    /// Writes `to` into `name`; its length.
    fn write_sockaddr(to: SocketAddr, name: &mut libc::sockaddr_storage) -> libc::socklen_t {
        let storage: *mut libc::sockaddr_storage = name;
        match to {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is large and aligned enough for any
                // socket address.
                unsafe { storage.cast::<libc::sockaddr_in>().write(sin) };
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above.
                unsafe { storage.cast::<libc::sockaddr_in6>().write(sin6) };
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::rtp_socket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn peer() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s
    }

    fn socket() -> Arc<UdpSocket> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        Arc::new(s)
    }

    /// Every datagram `peer` receives until none comes for 200 ms, with its source port.
    fn received(peer: &UdpSocket) -> Vec<(Vec<u8>, u16)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = peer.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), from.port()));
        }
        got
    }

    /// The payloads `peer` receives, as [`received`], without their sources.
    fn payloads(peer: &UdpSocket) -> Vec<Vec<u8>> {
        received(peer).into_iter().map(|(d, _)| d).collect()
    }

    fn ring_sender(slots: u32) -> Option<Sender> {
        let (sender, path) = Sender::new(true, slots);
        match path {
            Ok(()) => Some(sender),
            // A machine without io_uring (a container's seccomp profile)
            // fails the ring's tests, as a missing SIP peer fails its, unless
            // the run says to skip them (the README's "Tests"); the
            // fallback's tests run either way.
            Err(e) if std::env::var_os("KUMA_TEST_SKIP_MISSING").is_some_and(|v| v == "1") => {
                eprintln!("no io_uring here ({e}): test skipped (KUMA_TEST_SKIP_MISSING)");
                None
            }
            Err(e) => panic!(
                "no io_uring here ({e}): its tests cannot run (KUMA_TEST_SKIP_MISSING=1 skips them)"
            ),
        }
    }

    /// Two calls' packets, one socket connected and one naming its peer,
    /// interleaved: each arrives once, in order, from its own socket.
    fn both_forms_arrive_in_order(mut sender: Sender) {
        let to = peer();
        let (a, b) = (socket(), socket());
        a.connect(to.local_addr().unwrap()).unwrap();
        for i in 0..20u8 {
            sender.send(&a, &[b'a', i], None, Instant::now());
            sender.send(
                &b,
                &[b'b', i],
                Some(to.local_addr().unwrap()),
                Instant::now(),
            );
            if i % 7 == 6 {
                sender.flush();
            }
        }
        sender.flush();
        let got = received(&to);
        let from = |s: &Arc<UdpSocket>, tag: u8| -> Vec<Vec<u8>> {
            let port = s.local_addr().unwrap().port();
            got.iter()
                .filter(|(_, p)| *p == port)
                .map(|(d, _)| d.clone())
                .inspect(|d| assert_eq!(d[0], tag))
                .collect()
        };
        let want = |tag: u8| (0..20u8).map(|i| vec![tag, i]).collect::<Vec<_>>();
        assert_eq!(from(&a, b'a'), want(b'a'));
        assert_eq!(from(&b, b'b'), want(b'b'));
        assert_eq!(got.len(), 40);
    }

    #[test]
    fn through_the_ring_packets_arrive_in_order_per_socket() {
        let Some(sender) = ring_sender(64) else {
            return;
        };
        assert!(sender.uses_ring());
        both_forms_arrive_in_order(sender);
    }

    #[test]
    fn the_fallback_sends_at_once_and_in_order() {
        let (sender, path) = Sender::new(false, 64);
        assert!(path.is_err());
        assert!(!sender.uses_ring());
        // Sent at once: no flush needed.
        let to = peer();
        let s = socket();
        let mut sender = sender;
        sender.send(&s, b"now", Some(to.local_addr().unwrap()), Instant::now());
        assert_eq!(
            received(&to),
            vec![(b"now".to_vec(), s.local_addr().unwrap().port())]
        );
        both_forms_arrive_in_order(sender);
    }

    #[test]
    fn a_packet_queued_by_a_socket_dropped_at_once_never_reaches_the_next_socket() {
        let Some(mut sender) = ring_sender(64) else {
            return;
        };
        let (caller, stranger) = (peer(), peer());
        let ended = socket();
        ended.connect(caller.local_addr().unwrap()).unwrap();
        let fd = ended.as_raw_fd();
        sender.send(&ended, b"for the caller", None, Instant::now());
        // The call ends: its socket is dropped before the flush, and a new
        // call's socket, connected to someone else, is opened meanwhile.
        drop(ended);
        let next = socket();
        next.connect(stranger.local_addr().unwrap()).unwrap();
        sender.flush();
        assert_eq!(received(&stranger), vec![]);
        // The number was still taken: the sender held the ended socket open.
        assert_ne!(next.as_raw_fd(), fd);
        let got = received(&caller);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, b"for the caller");
    }

    #[test]
    fn with_every_slot_taken_packets_still_go_out_in_order() {
        let Some(mut sender) = ring_sender(4) else {
            return;
        };
        let to = peer();
        let s = socket();
        let big = vec![9u8; ring::SLOT_BYTES + 1];
        for i in 0..10u8 {
            sender.send(&s, &[i], Some(to.local_addr().unwrap()), Instant::now());
        }
        // Too long for a slot: sent at once, after the ten queued.
        sender.send(&s, &big, Some(to.local_addr().unwrap()), Instant::now());
        sender.flush();
        let got = payloads(&to);
        let mut want: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
        want.push(big);
        assert_eq!(got, want);
        assert_eq!(sender.take_counts().at_once, 1, "only the long one");
    }

    #[test]
    fn through_the_ring_a_packet_is_late_by_when_it_leaves_not_when_it_was_queued() {
        let Some(mut sender) = ring_sender(8) else {
            return;
        };
        let to = peer();
        let s = socket();
        let dest = Some(to.local_addr().unwrap());
        // On time when queued, handed to the kernel 5 ms later: late.
        sender.send(&s, b"held", dest, Instant::now());
        std::thread::sleep(Duration::from_millis(5));
        sender.flush();
        assert_eq!(
            sender.take_counts(),
            Counts {
                late: 1,
                at_once: 0
            }
        );
        // Queued on time and handed over at once: not late; one due 10 ms
        // ago is.
        sender.send(&s, b"prompt", dest, Instant::now());
        sender.send(
            &s,
            b"overdue",
            dest,
            Instant::now() - Duration::from_millis(10),
        );
        sender.flush();
        assert_eq!(
            sender.take_counts(),
            Counts {
                late: 1,
                at_once: 0
            }
        );
        // Counted once: a flush with nothing queued counts nothing more.
        sender.flush();
        assert_eq!(sender.take_counts(), Counts::default());
        // A settle hands over what is queued, and counts it.
        sender.send(
            &s,
            b"before a release",
            dest,
            Instant::now() - Duration::from_millis(3),
        );
        sender.settle();
        assert_eq!(
            sender.take_counts(),
            Counts {
                late: 1,
                at_once: 0
            }
        );
        assert_eq!(payloads(&to).len(), 4);
    }

    #[test]
    fn the_fallback_counts_each_packet_as_sent_at_once_and_late_by_its_send() {
        let (mut sender, _) = Sender::new(false, 8);
        let to = peer();
        let s = socket();
        let dest = Some(to.local_addr().unwrap());
        sender.send(&s, b"on time", dest, Instant::now());
        sender.send(
            &s,
            b"late",
            dest,
            Instant::now() - Duration::from_millis(10),
        );
        assert_eq!(
            sender.take_counts(),
            Counts {
                late: 1,
                at_once: 2
            }
        );
        assert_eq!(sender.take_counts(), Counts::default());
    }

    #[test]
    fn a_queued_packet_is_sent_before_the_socket_is_released() {
        let Some(mut sender) = ring_sender(64) else {
            return;
        };
        let caller = peer();
        // Bound to a port it names, as `call::bind_rtp` binds: releasing it
        // keeps the port.
        let s = Arc::new(rtp_socket::tests::named_port());
        rtp_socket::associate(&s, Some(caller.local_addr().unwrap())).unwrap();
        sender.send(&s, b"connected", None, Instant::now());
        // What `Live::pin` does before it changes the association.
        sender.settle();
        rtp_socket::associate(&s, None).unwrap();
        sender.flush();
        let got = payloads(&caller);
        assert_eq!(got, vec![b"connected".to_vec()]);
        // The connected form executed after a release (what a packet queued
        // before it would meet without the settle) fails: the socket has no
        // peer any more, so the packet is lost, never sent elsewhere.
        sender.send(&s, b"lost", None, Instant::now());
        sender.flush();
        assert_eq!(received(&caller), vec![]);
    }

    #[test]
    fn an_explicit_destination_is_accepted_on_a_connected_socket() {
        let Some(mut sender) = ring_sender(64) else {
            return;
        };
        let caller = peer();
        let s = socket();
        s.connect(caller.local_addr().unwrap()).unwrap();
        sender.send(
            &s,
            b"named",
            Some(caller.local_addr().unwrap()),
            Instant::now(),
        );
        sender.flush();
        let got = payloads(&caller);
        assert_eq!(got, vec![b"named".to_vec()]);
    }

    #[test]
    fn dropping_the_sender_waits_for_what_is_queued() {
        let Some(mut sender) = ring_sender(64) else {
            return;
        };
        let to = peer();
        let s = socket();
        for i in 0..5u8 {
            sender.send(&s, &[i], Some(to.local_addr().unwrap()), Instant::now());
        }
        drop(sender);
        assert_eq!(received(&to).len(), 5);
        // The sender let go of the socket.
        assert_eq!(Arc::strong_count(&s), 1);
    }
}
