//! The system calls on a call's RTP socket that the standard library does not
//! make: reading every datagram waiting in one `recvmmsg(2)`, sending with the
//! "don't fragment" bit, and dissolving a UDP socket's association.
//!
//! **Batched reads.** A call reads its socket every [`READ_EVERY`] (two packet
//! slots), not at every slot: about two of the caller's packets wait there by
//! then, and one system call takes them all ([`read_all`], up to [`BATCH`] at a
//! time), where reading at each slot took one `recvfrom` per packet plus one that
//! found the socket empty whenever the caller's packet came just after kuma's
//! slot (issue 16 counted 1.61 `recvfrom` per packet sent at 300 calls). Nothing
//! is lost or reordered by waiting: the datagrams stay in the socket's buffer
//! (hundreds of kilobytes, seconds of audio), keys are timed by the samples
//! heard (`audio::dtmf::keys`), not by when they were read, and a key is acted
//! on at most one slot later than before (40 ms instead of 20). Reading every
//! fourth slot (75 ms) halved the `recvmmsg` calls but cost more CPU per packet
//! than it saved, measured back to back at 300 calls (14.2 and 16.4 µs of
//! kuma's CPU per packet sent, against 13.2 and 13.1 every other slot): the
//! datagrams wait longer in memory that has gone cold. The buffers are
//! the media thread's, not the call's (a call reads, handles what it read and
//! returns before another call runs on the thread): 3,000 calls do not each keep
//! 32 KB.
//!
//! **The caller's address pinned.** While a call's RTP session accepts one
//! source only (`rtp::session::RtpSession::pinned`: locked, not silent for 5 s),
//! the call connects its socket to it ([`associate`]): the kernel then drops any
//! other address's datagram before kuma sees it (no copy, no work for the call;
//! the session would have dropped it anyway), delivers the caller's through its
//! early demultiplexing (the socket found by the whole address, the route
//! cached), and a send needs no route lookup (`send`, not `sendto`: 1.6 % of
//! kuma's samples at 300 calls were `ip_route_output_flow`). When the session
//! would let another source take over (the caller silent for 5 s, a re-INVITE
//! to a new address), the association is dissolved first, so the rules of
//! `rtp::session` stay the only judge of whose packets count. A connected UDP
//! socket also hears ICMP errors (port unreachable, when the caller has stopped
//! listening): one is reported by the next read or send, and cleared by it;
//! [`read_all`] reads on after it.
//!
//! **Don't fragment.** [`dont_fragment`]: IPv4 packets without DF need an
//! identification number drawn from a keyed hash and a shared table (the
//! kernel's `__ip_select_ident`, 1.3 % of `kuma serve` under load); with DF set
//! they carry 0 (RFC 6864). An RTP packet of 172 bytes is never fragmented
//! anyway; `IP_PMTUDISC_PROBE` sets DF without ever refusing a send for a path
//! MTU learned from ICMP.
//!
//! `recvmmsg` is not in the standard library nor in the crates kuma uses
//! (`rustix` has `sendmmsg` only; `quinn-udp` has it but switches on GRO, which
//! would merge a caller's packets into one buffer, and per-packet control
//! messages): the calls are made here, with `libc`, their memory all owned by
//! [`Batch`] or the caller's frame and every length the kernel returns checked
//! before it is used.

use std::cell::RefCell;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How often a call reads its socket: every other 20 ms slot, a few ms early so
/// that a slot's wake-up a little before its time still reads.
pub const READ_EVERY: Duration = Duration::from_millis(35);
/// Datagrams one system call takes at most; a full batch is followed by another.
pub const BATCH: usize = 16;
/// Batches one read takes at most (128 datagrams, where a caller sends two or
/// three per read): a flood on a call's port cannot keep its task reading
/// for ever; what is left waits for the next read, or is dropped by the kernel
/// when the socket's buffer is full.
pub const MAX_BATCHES: usize = 8;
/// The largest datagram kept whole (longer ones are cut, as the kernel does for
/// any short buffer; RTP audio kuma accepts is at most 12 + 960 bytes).
pub const DATAGRAM: usize = 2048;

/// Buffers for one batch, and where each datagram came from.
pub struct Batch {
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    names: [libc::sockaddr_storage; BATCH],
    lens: [usize; BATCH],
    count: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
            names: unsafe { std::mem::zeroed() },
            lens: [0; BATCH],
            count: 0,
        }
    }

    /// Reads the datagrams waiting in `socket` (non-blocking), up to [`BATCH`]:
    /// how many it took (0 when there was none).
    fn read(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        // SAFETY: zeroed iovec and mmsghdr are valid (null pointers, zero lengths)
        // and are filled below before use.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for ((buf, name), (v, h)) in self
            .bufs
            .iter_mut()
            .zip(self.names.iter_mut())
            .zip(iov.iter_mut().zip(hdrs.iter_mut()))
        {
            v.iov_base = buf.as_mut_ptr().cast();
            v.iov_len = DATAGRAM;
            h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
        }
        let n = loop {
            // SAFETY: every header points at a buffer, an iovec and an address of
            // this batch (or this frame), alive and not otherwise borrowed for the
            // call's duration, with their true lengths; the kernel writes at most
            // BATCH headers.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    BATCH as _,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(0),
                _ => return Err(e),
            }
        };
        let n = n.min(BATCH);
        for (len, h) in self.lens.iter_mut().zip(hdrs.iter()).take(n) {
            *len = (h.msg_len as usize).min(DATAGRAM);
        }
        self.count = n;
        Ok(n)
    }

    /// Datagram `i` of the last read and its source; `None` past the end, or
    /// when the source is not an IP address.
    fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.count {
            return None;
        }
        let bytes = self.bufs.get(i)?.get(..*self.lens.get(i)?)?;
        Some((bytes, socket_addr(self.names.get(i)?)?))
    }
}

/// The address the kernel wrote, when it is IPv4 or IPv6.
fn socket_addr(name: &libc::sockaddr_storage) -> Option<SocketAddr> {
    let storage: *const libc::sockaddr_storage = name;
    match i32::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is
            // large and aligned enough for.
            let a = unsafe { &*storage.cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*storage.cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Sets DF on what `socket` sends when it is an IPv4 socket (see the module
/// doc); an IPv6 socket is left as it is (IPv6 routers never fragment).
pub fn dont_fragment(socket: &UdpSocket) -> io::Result<()> {
    if !socket.local_addr()?.is_ipv4() {
        return Ok(());
    }
    let value: libc::c_int = libc::IP_PMTUDISC_PROBE;
    // SAFETY: the option's value is a c_int, passed by pointer with its size.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Connects `socket` to `peer` (`Some`), or dissolves its association
/// (`None`: `connect(2)` to `AF_UNSPEC`), so that it again receives from any
/// address (see the module doc).
///
/// The socket must have been bound to a port it named (as `call::bind_rtp`
/// does; the configured range never holds 0): Linux keeps such a port when the
/// association is dissolved, but unbinds a socket that was bound to port 0 and
/// got its port from the kernel. That is reported as an error here.
pub fn associate(socket: &UdpSocket, peer: Option<SocketAddr>) -> io::Result<()> {
    if let Some(peer) = peer {
        return socket.connect(peer);
    }
    let port = socket.local_addr()?.port();
    // SAFETY: sockaddr is plain old data; all zeroes is a valid value.
    let mut unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
    unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: a sockaddr passed by pointer with its size; the kernel only reads
    // its family.
    let r = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    if socket.local_addr()?.port() != port {
        return Err(io::Error::other(
            "the RTP socket lost its port when released (bound to port 0?)",
        ));
    }
    Ok(())
}

thread_local! {
    static BATCH_BUFS: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Reads every datagram waiting in `socket` and hands each to `each` with its
/// source, in arrival order, until the socket is empty (or [`MAX_BATCHES`]
/// were read) or `each` fails; the number of system calls made.
pub fn read_all<E>(
    socket: &UdpSocket,
    mut each: impl FnMut(&[u8], SocketAddr) -> Result<(), E>,
) -> Result<usize, E> {
    BATCH_BUFS.with(|cell| {
        // A call never reads while another read on this thread is in progress;
        // should it ever, it gets buffers of its own rather than a panic.
        let mut own = None;
        let mut guard = cell.try_borrow_mut().ok();
        let batch = match guard.as_deref_mut() {
            Some(slot) => slot.get_or_insert_with(Batch::new),
            None => own.get_or_insert_with(Batch::new),
        };
        let mut calls = 0;
        loop {
            calls += 1;
            // An error other than "empty" (an ICMP port unreachable reported on a
            // connected socket, say) is cleared by being reported: the datagrams
            // behind it are read by the next call, within MAX_BATCHES.
            let n = match batch.read(socket) {
                Ok(n) => n,
                Err(_) if calls < MAX_BATCHES => continue,
                Err(_) => return Ok(calls),
            };
            for i in 0..n {
                if let Some((bytes, from)) = batch.get(i) {
                    each(bytes, from)?;
                }
            }
            if n < BATCH || calls >= MAX_BATCHES {
                return Ok(calls);
            }
        }
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        (a, b)
    }

    /// What one [`read_all`] of `socket` takes: each datagram with its source,
    /// and how many system calls it made.
    fn read_now(socket: &UdpSocket) -> (Vec<(Vec<u8>, SocketAddr)>, usize) {
        let mut got = Vec::new();
        let calls = read_all::<()>(socket, |bytes, from| {
            got.push((bytes.to_vec(), from));
            Ok(())
        })
        .unwrap();
        (got, calls)
    }

    #[test]
    fn a_socket_that_does_not_fragment_still_sends() {
        let (a, b) = pair();
        dont_fragment(&b).unwrap();
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a c_int and its size, as the option is.
        let r = unsafe {
            libc::getsockopt(
                b.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!((r, value), (0, libc::IP_PMTUDISC_PROBE));
        b.send_to(&[1u8; 172], a.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (got, _) = read_now(&a);
        assert_eq!(got.iter().map(|(d, _)| d.len()).sum::<usize>(), 172);
    }

    #[test]
    fn an_empty_socket_reads_nothing_in_one_call() {
        let (a, _) = pair();
        let (got, calls) = read_now(&a);
        assert_eq!((got.len(), calls), (0, 1));
    }

    #[test]
    fn every_datagram_in_order_with_its_source_over_several_batches() {
        let (a, b) = pair();
        let to = a.local_addr().unwrap();
        let total = BATCH * 2 + 3;
        for i in 0..total {
            let len = 1 + i * 37 % 1000;
            b.send_to(&vec![i as u8; len], to).unwrap();
        }
        // Loopback delivers at once, but leave the kernel a moment.
        std::thread::sleep(Duration::from_millis(20));
        let (got, calls) = read_now(&a);
        assert_eq!(calls, 3);
        let want: Vec<_> = (0..total)
            .map(|i| (vec![i as u8; 1 + i * 37 % 1000], b.local_addr().unwrap()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_cut_and_ipv6_sources_are_read() {
        let a = UdpSocket::bind("[::1]:0");
        let Ok(a) = a else {
            return; // no IPv6 loopback on this machine
        };
        a.set_nonblocking(true).unwrap();
        let b = UdpSocket::bind("[::1]:0").unwrap();
        b.send_to(&[7u8; DATAGRAM + 100], a.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (got, _) = read_now(&a);
        let got: Vec<_> = got.into_iter().map(|(d, from)| (d.len(), from)).collect();
        assert_eq!(got, vec![(DATAGRAM, b.local_addr().unwrap())]);
    }

    #[test]
    fn a_flood_is_read_a_bounded_batch_at_a_time() {
        let (a, b) = pair();
        let to = a.local_addr().unwrap();
        let total = BATCH * MAX_BATCHES + 5;
        for i in 0..total {
            b.send_to(&[i as u8], to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        let (got, calls) = read_now(&a);
        assert_eq!((got.len(), calls), (BATCH * MAX_BATCHES, MAX_BATCHES));
        // The rest waits for the next read.
        assert_eq!(read_now(&a).0.len(), 5);
    }

    /// A non-blocking socket bound to a port it names, as `call::bind_rtp`
    /// binds (a free port found at run time).
    pub(in crate::serve) fn named_port() -> UdpSocket {
        for _ in 0..20 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Ok(s) = UdpSocket::bind(("127.0.0.1", port)) {
                s.set_nonblocking(true).unwrap();
                return s;
            }
        }
        panic!("no free port");
    }

    #[test]
    fn a_pinned_socket_hears_only_its_caller_until_released() {
        let a = named_port();
        let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        associate(&a, Some(caller.local_addr().unwrap())).unwrap();
        let to = a.local_addr().unwrap();
        stranger.send_to(b"stranger", to).unwrap();
        caller.send_to(b"caller", to).unwrap();
        // Sent without an address: to the caller.
        a.send(b"to the caller").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (got, _) = read_now(&a);
        assert_eq!(
            got,
            vec![(b"caller".to_vec(), caller.local_addr().unwrap())]
        );
        let mut buf = [0u8; 64];
        let (n, from) = caller.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"to the caller"[..], port));
        // Released: the same port hears anyone again.
        associate(&a, None).unwrap();
        assert_eq!(a.local_addr().unwrap().port(), port);
        stranger.send_to(b"stranger again", to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (got, _) = read_now(&a);
        assert_eq!(
            got,
            vec![(b"stranger again".to_vec(), stranger.local_addr().unwrap())]
        );
    }

    #[test]
    fn a_socket_bound_to_port_0_is_not_released_silently() {
        let (a, b) = pair();
        associate(&a, Some(b.local_addr().unwrap())).unwrap();
        assert!(associate(&a, None).is_err());
    }

    #[test]
    fn an_icmp_error_on_a_pinned_socket_does_not_hide_what_waits_behind_it() {
        let a = named_port();
        let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
        let gone = caller.local_addr().unwrap();
        associate(&a, Some(gone)).unwrap();
        for i in 0..3u8 {
            caller.send_to(&[i], a.local_addr().unwrap()).unwrap();
        }
        // The caller stops listening; kuma's next packet draws a port unreachable.
        drop(caller);
        a.send(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (got, _) = read_now(&a);
        let got: Vec<u8> = got.into_iter().flat_map(|(d, _)| d).collect();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn an_error_from_the_handler_stops_the_read() {
        let (a, b) = pair();
        for _ in 0..3 {
            b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut seen = 0;
        let out = read_all(&a, |_, _| {
            seen += 1;
            Err("stop")
        });
        assert_eq!((out, seen), (Err("stop"), 1));
    }
}
