//! What the kernel alone charges for a media plane's packets on this machine:
//! the floor under `kuma serve`'s CPU per call-minute (issue 16), for two
//! socket designs. Run by `benches/udp-floor.sh`, which puts the two sides of
//! this program in two network namespaces as `benches/sip-load.sh` puts kuma and
//! sipp, and reports the `media` side's CPU and its core's softirq time per
//! call-minute.
//!
//! - `media per-call N`: N UDP sockets, one per call, each connected to the
//!   caller and sending a 172-byte packet every 20 ms at its own phase, and read
//!   every 40 ms with one `recvmmsg` (what `kuma serve` does, minus all of
//!   kuma: no runtime, no task, no codec, no detector, no database).
//! - `media shared N`: one socket for all the calls; each 1 ms tick sends the
//!   packets due with one `sendmmsg` and reads what came with `recvmmsg`.
//! - `media tokio N`: the per-call sockets again, each call a task of a
//!   one-worker tokio runtime woken by its own timer at each slot, as
//!   `kuma serve`'s calls are (`serve::call::drive`): the runtime's share.
//! - `media uring N`: the per-call sockets driven through one io_uring: each
//!   1 ms tick queues one `IORING_OP_SEND` per call due and hands them all to
//!   the kernel with one `io_uring_enter`, which also runs the receives: one
//!   multishot `recv` per socket, armed once, drawing its buffers from one
//!   provided-buffer ring shared by all the calls; the tick reaps every
//!   completion and gives the buffers back.
//! - `media uring-send N`: the same sends, but each call read with `recvmmsg`
//!   every 40 ms as `per-call` reads: what io_uring's sends alone save.
//! - `caller N`: sipp's part: one socket that sends every call's 50 packets a
//!   second to its port and reads what comes back.
//!
//! `udp_floor media MODE N BIND_IP CALLER_ADDR SECONDS PORTS_FILE` binds, writes its
//! ports to PORTS_FILE, waits for the file `PORTS_FILE.go`, runs, and prints
//! `cpu_ms_per_call_min`; `udp_floor caller N BIND_ADDR MEDIA_IP PORTS_FILE SECONDS`.
//! A measurement tool: it trusts its arguments and panics on a bad one.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

const SLOT: Duration = Duration::from_millis(20);
const PACKET: usize = 172;
const BATCH: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| panic!("argument {i} missing: see the file's header"))
    };
    match arg(0).as_str() {
        "media" => media(
            &arg(1),
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
            arg(5).parse().unwrap(),
            &arg(6),
        ),
        "caller" => caller(
            arg(1).parse().unwrap(),
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            &arg(4),
            arg(5).parse().unwrap(),
        ),
        // `cargo bench` runs every bench with no arguments: nothing to measure alone.
        _ => eprintln!("udp_floor: run by benches/udp-floor.sh"),
    }
}

fn cpu_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Each call's first send: call i at i * 20 ms / calls after `start`, so the
/// calls' packets spread evenly over a slot.
fn phases(start: Instant, calls: usize) -> Vec<Instant> {
    (0..calls)
        .map(|i| start + SLOT * i as u32 / calls as u32)
        .collect()
}

/// Moves `tick` on by 1 ms and sleeps until then.
fn next_tick(tick: &mut Instant) {
    *tick += Duration::from_millis(1);
    if let Some(wait) = tick.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}

/// Reads every datagram waiting on `socket`, `BATCH` at a time; how many.
fn drain(socket: &UdpSocket, bufs: &mut [[u8; 256]; BATCH]) -> usize {
    let mut total = 0;
    loop {
        let mut iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: `msgs` points at `iov`, which points at `bufs`; all outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return total;
        }
        total += n as usize;
        if (n as usize) < BATCH {
            return total;
        }
    }
}

/// Sends `packet` to each of `to` with `sendmmsg`, `BATCH` at a time.
fn send_batch(socket: &UdpSocket, to: &[SocketAddr], packet: &[u8; PACKET]) {
    for chunk in to.chunks(BATCH) {
        let mut names: Vec<libc::sockaddr_in> = chunk
            .iter()
            .map(|a| {
                let SocketAddr::V4(a) = a else {
                    panic!("IPv4 only")
                };
                libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                }
            })
            .collect();
        let mut iov = libc::iovec {
            iov_base: packet.as_ptr() as *mut _,
            iov_len: PACKET,
        };
        let mut msgs: Vec<libc::mmsghdr> = names
            .iter_mut()
            .map(|n| {
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (n as *mut libc::sockaddr_in).cast();
                m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                m.msg_hdr.msg_iov = &mut iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let mut sent = 0;
        while sent < msgs.len() {
            // SAFETY: every pointer in `msgs[sent..]` points at live locals.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    msgs[sent..].as_mut_ptr(),
                    (msgs.len() - sent) as u32,
                    0,
                )
            };
            if n <= 0 {
                break;
            }
            sent += n as usize;
        }
    }
}

fn media(
    mode: &str,
    calls: usize,
    bind: IpAddr,
    caller: SocketAddr,
    seconds: u64,
    ports_file: &str,
) {
    let per_call = mode != "shared";
    let sockets: Vec<UdpSocket> = (0..if per_call { calls } else { 1 })
        .map(|_| {
            let s = UdpSocket::bind((bind, 0)).unwrap();
            s.set_nonblocking(true).unwrap();
            if per_call {
                s.connect(caller).unwrap();
            }
            s
        })
        .collect();
    let ports: Vec<String> = sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port().to_string())
        .collect();
    std::fs::write(ports_file, ports.join("\n")).unwrap();
    let go = format!("{ports_file}.go");
    while std::fs::metadata(&go).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    match mode {
        "tokio" => return media_tokio(sockets, seconds),
        "uring" => return media_uring(sockets, seconds, true),
        "uring-send" => return media_uring(sockets, seconds, false),
        _ => {}
    }
    let packet = [0x80u8; PACKET];
    let mut bufs = [[0u8; 256]; BATCH];
    let start = Instant::now();
    let cpu0 = cpu_time();
    let (mut sent, mut received) = (0u64, 0usize);
    // Call i sends at i * 20 ms / calls into each slot, and per-call reads at
    // the same phase every other slot.
    let mut next_send = phases(start, calls);
    let mut next_read = next_send.clone();
    let end = start + Duration::from_secs(seconds);
    let mut tick = start;
    let shared_to = vec![caller; BATCH];
    while tick < end {
        next_tick(&mut tick);
        let now = Instant::now();
        let mut due = 0;
        for (i, t) in next_send.iter_mut().enumerate() {
            if *t <= now {
                *t += SLOT;
                if per_call {
                    let _ = sockets[i].send(&packet);
                } else {
                    due += 1;
                }
                sent += 1;
            }
        }
        if per_call {
            for (i, t) in next_read.iter_mut().enumerate() {
                if *t <= now {
                    *t += SLOT * 2;
                    received += drain(&sockets[i], &mut bufs);
                }
            }
        } else {
            while due > 0 {
                let n = due.min(BATCH);
                send_batch(&sockets[0], &shared_to[..n], &packet);
                due -= n;
            }
            received += drain(&sockets[0], &mut bufs);
        }
    }
    report(mode, calls, sent, received, cpu_time() - cpu0);
}

/// Each call a task: wake at its slot, send, read every other slot.
fn media_tokio(sockets: Vec<UdpSocket>, seconds: u64) {
    let calls = sockets.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let cpu0 = cpu_time();
    let (sent, received) = rt.block_on(async move {
        let start = tokio::time::Instant::now();
        let end = start + Duration::from_secs(seconds);
        let tasks: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                tokio::spawn(async move {
                    let packet = [0x80u8; PACKET];
                    let mut bufs = Box::new([[0u8; 256]; BATCH]);
                    let (mut sent, mut received) = (0u64, 0usize);
                    let mut at = start + SLOT * i as u32 / calls as u32;
                    while at < end {
                        tokio::time::sleep_until(at).await;
                        let _ = socket.send(&packet);
                        if sent % 2 == 0 {
                            received += drain(&socket, &mut bufs);
                        }
                        sent += 1;
                        at += SLOT;
                    }
                    (sent, received)
                })
            })
            .collect();
        let (mut sent, mut received) = (0, 0);
        for t in tasks {
            let (s, r) = t.await.unwrap();
            sent += s;
            received += r;
        }
        (sent, received)
    });
    report("tokio", calls, sent, received, cpu_time() - cpu0);
}

/// `user_data` of a completion: what it was for in the top half, the call in the bottom.
const SEND: u64 = 0;
const RECV: u64 = 1 << 32;
/// The buffer group of the provided-buffer ring, and the size of its buffers.
const GROUP: u16 = 0;
const BUF_LEN: usize = 256;

/// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): `entries` buffers of
/// `BUF_LEN` bytes the kernel picks from for each datagram a multishot `recv`
/// takes; the completion names the buffer, which goes back on the ring once
/// reaped.
struct BufRing {
    /// The ring of `entries` `BufRingEntry`s, page-aligned (mmap), shared with the kernel.
    ring: *mut io_uring::types::BufRingEntry,
    entries: u16,
    /// Our producer index; the kernel sees it once `publish` stores it.
    tail: u16,
    bufs: Vec<u8>,
}

impl BufRing {
    /// Maps a ring of `entries` (a power of two) and fills it with every buffer.
    fn new(entries: u16) -> BufRing {
        assert!(entries.is_power_of_two());
        let bytes = entries as usize * std::mem::size_of::<io_uring::types::BufRingEntry>();
        // SAFETY: an anonymous private mapping, no pointer of ours passed in.
        let ring = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ring, libc::MAP_FAILED, "mmap of the buffer ring failed");
        let mut ring = BufRing {
            ring: ring.cast(),
            entries,
            tail: 0,
            bufs: vec![0; entries as usize * BUF_LEN],
        };
        for bid in 0..entries {
            ring.give(bid);
        }
        ring.publish();
        ring
    }

    /// Puts buffer `bid` back at the tail (seen by the kernel after `publish`).
    fn give(&mut self, bid: u16) {
        let slot = (self.tail & (self.entries - 1)) as usize;
        let addr = self.bufs[bid as usize * BUF_LEN..].as_mut_ptr() as u64;
        // SAFETY: `slot` < `entries`, the ring's length; the kernel reads only
        // entries between its head and our published tail, and this one is past it.
        let entry = unsafe { &mut *self.ring.add(slot) };
        entry.set_addr(addr);
        entry.set_len(BUF_LEN as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Shows the kernel every buffer given back so far.
    fn publish(&self) {
        // SAFETY: `ring` is the ring's first entry, mapped and initialised; its
        // `resv` field is the ring's tail, which the kernel reads atomically.
        let tail = unsafe { io_uring::types::BufRingEntry::tail(self.ring) } as *const AtomicU16;
        // SAFETY: as above; a u16 in the mapping, aligned, for the life of `self`.
        unsafe { (*tail).store(self.tail, Ordering::Release) };
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let bytes = self.entries as usize * std::mem::size_of::<io_uring::types::BufRingEntry>();
        // SAFETY: the mapping made in `new`; unregistered from the kernel before.
        unsafe { libc::munmap(self.ring.cast(), bytes) };
    }
}

/// The per-call sockets through one io_uring (see the file's header):
/// `multishot` receives through the ring, else with `recvmmsg` as `per-call`.
fn media_uring(sockets: Vec<UdpSocket>, seconds: u64, multishot: bool) {
    use io_uring::{IoUring, cqueue, opcode, types};
    let mode = if multishot { "uring" } else { "uring-send" };
    let calls = sockets.len();
    // At most one send and one re-armed receive per call in a tick.
    let sq = (2 * calls).next_power_of_two().max(8) as u32;
    // Deferred task work: the receives' work waits for the tick's one
    // `io_uring_enter` (GETEVENTS) instead of interrupting the thread.
    let mut ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(4 * sq)
        .setup_clamp()
        .build(sq)
        .expect("io_uring_setup");
    // Enough buffers for what the caller sent before `go` (up to a socket's
    // receive buffer each); past them a socket's receive ends with ENOBUFS and
    // is armed again at the next tick.
    let buffers = (64 * calls).next_power_of_two().clamp(64, 1 << 15) as u16;
    let mut buf_ring = multishot.then(|| BufRing::new(buffers));
    if let Some(b) = &buf_ring {
        // SAFETY: the ring's memory lives in `buf_ring`, unregistered below before it is dropped.
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(b.ring as u64, buffers, GROUP, 0)
                .expect("IORING_REGISTER_PBUF_RING");
        }
    }
    let fds: Vec<types::Fd> = sockets.iter().map(|s| types::Fd(s.as_raw_fd())).collect();
    let packet = [0x80u8; PACKET];
    let mut bufs = [[0u8; 256]; BATCH];
    let mut rearm: Vec<usize> = if multishot {
        (0..calls).collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let cpu0 = cpu_time();
    let (mut sent, mut received) = (0u64, 0usize);
    let (mut send_errors, mut recv_errors, mut no_buffers) = (0u64, 0u64, 0u64);
    // Receives ended (and armed again) at all, and once the backlog the caller
    // sent before `go` is drained: a multishot receive ends when the
    // completion queue is full.
    let (mut rearms, mut late_rearms) = (0u64, 0u64);
    let settled = start + Duration::from_secs(2);
    let mut first_error: Option<std::io::Error> = None;
    let mut next_send = phases(start, calls);
    let mut next_read = next_send.clone();
    let end = start + Duration::from_secs(seconds);
    let mut tick = start;
    while tick < end {
        next_tick(&mut tick);
        let now = Instant::now();
        let due = next_send.iter_mut().enumerate().filter_map(|(i, t)| {
            (*t <= now).then(|| {
                *t += SLOT;
                opcode::Send::new(fds[i], packet.as_ptr(), PACKET as u32)
                    .build()
                    .user_data(SEND | i as u64)
            })
        });
        let arm = rearm.drain(..).map(|i| {
            opcode::RecvMulti::new(fds[i], GROUP)
                .build()
                .user_data(RECV | i as u64)
        });
        for entry in due.chain(arm) {
            // SAFETY: a send reads `packet` and a receive writes into
            // `buf_ring`'s buffers, both alive until the ring is dropped; the
            // sockets too.
            while unsafe { ring.submission().push(&entry) }.is_err() {
                ring.submit().expect("io_uring_enter");
            }
        }
        let queued = ring.submission().len() as u32;
        // SAFETY: no argument pointer. One call submits the tick's sends and,
        // with GETEVENTS, runs the receives the kernel deferred to us.
        unsafe {
            ring.submitter().enter::<libc::sigset_t>(
                queued,
                0,
                io_uring::EnterFlags::GETEVENTS.bits(),
                None,
            )
        }
        .expect("io_uring_enter");
        for cqe in ring.completion() {
            let (what, i) = (cqe.user_data() & !0xffff_ffff, cqe.user_data() as u32);
            let res = cqe.result();
            if res < 0 && res != -libc::ENOBUFS {
                first_error.get_or_insert(std::io::Error::from_raw_os_error(-res));
            }
            if what == SEND {
                if res > 0 {
                    sent += 1;
                } else {
                    send_errors += 1;
                }
                continue;
            }
            if let (Some(bid), Some(b)) = (cqueue::buffer_select(cqe.flags()), &mut buf_ring) {
                b.give(bid);
            }
            if res > 0 {
                received += 1;
            } else if res == -libc::ENOBUFS {
                no_buffers += 1;
            } else {
                recv_errors += 1;
            }
            // The kernel ended this socket's multishot receive (out of buffers, say): arm it again.
            if !cqueue::more(cqe.flags()) {
                rearm.push(i as usize);
                rearms += 1;
                late_rearms += u64::from(now >= settled);
            }
        }
        if let Some(b) = &buf_ring {
            b.publish();
        }
        if !multishot {
            for (i, t) in next_read.iter_mut().enumerate() {
                if *t <= now {
                    *t += SLOT * 2;
                    received += drain(&sockets[i], &mut bufs);
                }
            }
        }
    }
    let cpu = cpu_time() - cpu0;
    if send_errors + recv_errors + no_buffers + late_rearms > 0 {
        eprintln!(
            "udp_floor {mode}: {send_errors} failed sends, {recv_errors} failed receives, \
             {no_buffers} receives out of buffers, {rearms} receives re-armed \
             ({late_rearms} after the first 2 s); first error: {first_error:?}"
        );
    }
    if buf_ring.is_some() {
        ring.submitter()
            .unregister_buf_ring(GROUP)
            .expect("IORING_UNREGISTER_PBUF_RING");
    }
    drop(ring);
    drop(buf_ring);
    report(mode, calls, sent, received, cpu);
}

fn report(mode: &str, calls: usize, sent: u64, received: usize, cpu: Duration) {
    let call_min = sent as f64 / 50.0 / 60.0;
    println!(
        "mode={mode} calls={calls} sent={sent} received={received} cpu_ms={:.0} cpu_ms_per_call_min={:.1}",
        cpu.as_secs_f64() * 1000.0,
        cpu.as_secs_f64() * 1000.0 / call_min
    );
}

fn caller(calls: usize, bind: SocketAddr, media_ip: IpAddr, ports_file: &str, seconds: u64) {
    let socket = UdpSocket::bind(bind).unwrap();
    socket.set_nonblocking(true).unwrap();
    let ports: Vec<u16> = loop {
        if let Ok(text) = std::fs::read_to_string(ports_file)
            && !text.is_empty()
        {
            break text.lines().map(|p| p.parse().unwrap()).collect();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Per-call sockets: one port each; shared: every call on the one port.
    let to: Vec<SocketAddr> = (0..calls)
        .map(|i| SocketAddr::new(media_ip, ports[i % ports.len()]))
        .collect();
    let packet = [0x80u8; PACKET];
    let mut bufs = [[0u8; 256]; BATCH];
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds) + Duration::from_secs(1);
    let mut next = phases(start, calls);
    let mut tick = start;
    let mut due = Vec::with_capacity(calls);
    while tick < end {
        next_tick(&mut tick);
        let now = Instant::now();
        due.clear();
        for (i, t) in next.iter_mut().enumerate() {
            if *t <= now {
                *t += SLOT;
                due.push(to[i]);
            }
        }
        send_batch(&socket, &due, &packet);
        drain(&socket, &mut bufs);
    }
}
