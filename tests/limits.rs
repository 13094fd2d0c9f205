//! What peers may hold of `kuma serve` (issue 11, item 5): thousands of idle SIP
//! TCP connections, idle and trickling connections, heads and bodies too large,
//! slow HTTP clients; each is bounded, answered or closed, and calls go on.
//! Every port is chosen at run time; sources other than 127.0.0.1 are other
//! loopback addresses (127.0.0.0/8 is all loopback on Linux).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, free_port, have_sipp, repo};

/// Runs sipp against kuma: a built-in scenario (`uac`) or a file of tests/sipp/.
fn sipp(k: &Server, scenario: &str, extra: &[&str]) -> Output {
    let mut cmd = Command::new("sipp");
    if scenario.ends_with(".xml") {
        cmd.arg("-sf").arg(repo().join("tests/sipp").join(scenario));
    } else {
        cmd.args(["-sn", scenario]);
    }
    let out = cmd
        .arg(k.sip.to_string())
        .args([
            "-s",
            "2000",
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
        ])
        .args(["-p", &free_port().to_string()])
        .args(["-mp", &common::free_media_port().to_string()])
        .args(["-timeout", "30", "-timeout_error", "-nostdin"])
        .args(extra)
        .current_dir(k.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "sipp {scenario} {extra:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// kuma's standard error so far.
fn stderr_of(k: &Server) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(k.dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("kuma-serve-"))
        {
            all.push_str(&std::fs::read_to_string(p).unwrap_or_default());
        }
    }
    all
}

/// One GET on a fresh connection: status and body.
fn get(http: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut s)
}

/// Reads a response to its end (the server closes): status and body.
fn read_response(s: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A metric's value in `/metrics` (summed over its labels), 0 when absent.
fn metric(http: SocketAddr, name: &str) -> f64 {
    let (status, body) = get(http, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(' ') || r.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `f` holds, for up to `within`.
fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    common::eventually(within, || f().then_some(()).ok_or(())).is_ok()
}

/// Whether the server closed `s`: reads without waiting; anything read is dropped.
fn closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let gone = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    gone
}

/// Waits up to `within` for the server to close `s`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    eventually(within, || closed(s))
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    // std cannot bind before connecting: through libc, then handed to std.
    use std::os::fd::FromRawFd;
    let (IpAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
        panic!("IPv4 only");
    };
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket, owned by the TcpStream made of it (or closed here).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sin(from, 0);
        if libc::bind(fd, (&raw const local).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sin(*to.ip(), to.port());
        if libc::connect(fd, (&raw const remote).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Lets this process (and the kuma it starts) open a few thousand sockets.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// How many file descriptors `pid` holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

const PER_SOURCE: usize = 100;
const TOTAL: usize = 400;
const ATTEMPTS: usize = 3000;

#[test]
fn thousands_of_idle_tcp_connections_stay_within_the_limits_and_calls_go_on() {
    if !have_sipp() {
        return;
    }
    raise_fd_limit(ATTEMPTS as u64 + 1000);
    let k = Server::start_with(&[
        "--sip-tcp-max-connections",
        &TOTAL.to_string(),
        "--sip-tcp-max-per-source",
        &PER_SOURCE.to_string(),
    ]);
    let pid = k.child.id();
    let fds_before = open_fds(pid);
    // Six sources of 500: the first four fill their share (100 each) and then the
    // total (400); the last two find it full.
    let mut conns = Vec::with_capacity(ATTEMPTS);
    for i in 0..ATTEMPTS {
        let from: IpAddr = format!("127.0.0.{}", 2 + i / 500).parse().unwrap();
        let s = connect_from(from, k.sip).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        conns.push((from, s));
    }
    // Refused ones are closed at once; give the accept loop time to reach all.
    assert!(
        eventually(Duration::from_secs(20), || {
            metric(k.http, "kuma_sip_tcp_refused_total") >= (ATTEMPTS - TOTAL) as f64
        }),
        "refused: {}",
        metric(k.http, "kuma_sip_tcp_refused_total")
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut open_by_source = std::collections::BTreeMap::<IpAddr, usize>::new();
    for (from, s) in &mut conns {
        if !closed(s) {
            *open_by_source.entry(*from).or_default() += 1;
        }
    }
    let open: usize = open_by_source.values().sum();
    assert_eq!(open, TOTAL, "open by source: {open_by_source:?}");
    assert!(
        open_by_source.values().all(|&n| n <= PER_SOURCE),
        "{open_by_source:?}"
    );
    assert_eq!(metric(k.http, "kuma_sip_tcp_connections"), TOTAL as f64);
    assert_eq!(
        metric(k.http, "kuma_sip_tcp_refused_total"),
        (ATTEMPTS - TOTAL) as f64
    );
    // kuma holds the admitted ones only (and a few for sqlite, HTTP, the test's
    // /metrics requests): not thousands.
    let fds = open_fds(pid);
    assert!(
        fds <= fds_before + TOTAL + 50,
        "kuma holds {fds} descriptors (it held {fds_before} before)"
    );

    // kuma goes on: a UDP call completes, an OPTIONS is answered.
    assert!(
        sipp(&k, "uac", &["-d", "500"]).status.success(),
        "a UDP call while SIP TCP is full"
    );
    assert!(sipp(&k, "options.xml", &[]).status.success());
    // 2,600 refusals are a line or two in the log, not thousands.
    let lines = stderr_of(&k)
        .lines()
        .filter(|l| l.contains("SIP TCP connections refused"))
        .count();
    assert!((1..=3).contains(&lines), "{lines} lines about refusals");

    // The places come back when the connections close: TCP works again.
    drop(conns);
    assert!(
        eventually(Duration::from_secs(10), || metric(
            k.http,
            "kuma_sip_tcp_connections"
        ) == 0.0),
        "places not given back"
    );
    assert!(
        sipp(&k, "options.xml", &["-t", "t1"]).status.success(),
        "an OPTIONS over TCP once the connections are gone"
    );
}

#[test]
fn idle_and_trickling_tcp_connections_are_closed_but_not_those_of_a_call() {
    if !have_sipp() {
        return;
    }
    let k = Server::start_with(&["--sip-tcp-idle-timeout", "1s"]);
    let mut silent = TcpStream::connect(k.sip).unwrap();
    let mut pinging = TcpStream::connect(k.sip).unwrap();
    let mut trickling = TcpStream::connect(k.sip).unwrap();
    let start = Instant::now();
    let head =
        b"OPTIONS sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKt\r\n";
    let mut sent = 0;
    let mut silent_closed_at = None;
    let mut trickling_closed_at = None;
    while start.elapsed() < Duration::from_millis(3000) {
        // Keep-alives (RFC 5626 §3.5.1) count as life; half a message trickled
        // in a byte at a time does not.
        pinging.write_all(b"\r\n\r\n").unwrap();
        if trickling_closed_at.is_none() {
            if let Some(b) = head.get(sent) {
                let _ = trickling.write_all(std::slice::from_ref(b));
                sent += 1;
            }
            if closed(&mut trickling) {
                trickling_closed_at = Some(start.elapsed());
            }
        }
        if silent_closed_at.is_none() && closed(&mut silent) {
            silent_closed_at = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let within = |at: Option<Duration>| at.is_some_and(|d| d >= Duration::from_millis(900));
    assert!(within(silent_closed_at), "silent: {silent_closed_at:?}");
    assert!(
        within(trickling_closed_at),
        "trickling: {trickling_closed_at:?}"
    );
    // (`closed` reads and drops what came: the pongs so far.)
    assert!(!closed(&mut pinging), "keep-alives did not keep it");
    // A ping gets its pong (RFC 5626 §4.4.1).
    pinging
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    pinging.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    pinging.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    assert!(metric(k.http, "kuma_sip_tcp_closed_total{reason=\"idle\"}") >= 2.0);

    // A call over TCP says nothing for three times the idle time, then hangs up
    // on the same connection.
    assert!(
        sipp(&k, "uac", &["-t", "t1", "-d", "3000"])
            .status
            .success(),
        "a call over TCP outlives the idle timeout"
    );
}

/// A request with what a response copies, then `extra` headers (and the blank line).
fn options_with(extra: &str) -> String {
    format!(
        "OPTIONS sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK{}\r\n\
         From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:2000@127.0.0.1>\r\nCall-ID: big-{}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{extra}",
        free_port(),
        free_port()
    )
}

/// The first line the server sends on `s`, and whether it then closes (rather
/// than keeping the connection past the read timeout).
fn answer_then_close(s: &mut TcpStream) -> (String, bool) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let closed = match s.read_to_end(&mut raw) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    (text.lines().next().unwrap_or_default().to_string(), closed)
}

/// With `trunks` set, only a trunk (or a proxy) may hold a SIP TCP connection:
/// strangers took every place, and the trunk's own connection was refused. And
/// a trunk's burst of requests in one write is answered in full: kuma wrote one
/// queued message for each read of up to sixteen, and closed the connection as
/// "not reading" after some 140 answers.
#[test]
fn over_tcp_only_trunks_connect_and_a_burst_of_requests_is_all_answered() {
    let k = Server::start_with(&["--trunks", "127.0.0.1"]);
    let mut stranger = connect_from("127.0.0.2".parse().unwrap(), k.sip).unwrap();
    assert!(
        closed_within(&mut stranger, Duration::from_secs(5)),
        "a stranger's connection was kept"
    );
    assert_eq!(
        metric(k.http, "kuma_sip_tcp_refused_total{reason=\"not_trunk\"}"),
        1.0
    );

    let n = 300;
    let burst: String = (0..n)
        .map(|_| options_with("Content-Length: 0\r\n\r\n"))
        .collect();
    let mut s = connect_from("127.0.0.1".parse().unwrap(), k.sip).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(burst.as_bytes()));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let start = Instant::now();
    let answered = |got: &[u8]| {
        String::from_utf8_lossy(got)
            .matches("SIP/2.0 200 OK\r\n")
            .count()
    };
    while answered(&got) < n && start.elapsed() < Duration::from_secs(30) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(m) => got.extend_from_slice(&buf[..m]),
            Err(_) => break,
        }
    }
    sending.join().unwrap().unwrap();
    assert_eq!(answered(&got), n);
    assert!(!closed(&mut s), "the trunk's connection was closed");
    assert_eq!(
        metric(k.http, "kuma_sip_tcp_closed_total{reason=\"not_reading\"}"),
        0.0
    );
}

#[test]
fn a_sip_head_or_body_too_large_over_tcp_is_answered_513_and_closed() {
    let k = Server::start();
    let mut s = TcpStream::connect(k.sip).unwrap();
    let pad = "a".repeat(20 * 1024);
    // The rest never comes: the head is over the limit before its end.
    s.write_all(options_with(&format!("X-Pad: {pad}\r\n")).as_bytes())
        .unwrap();
    assert_eq!(
        answer_then_close(&mut s),
        ("SIP/2.0 513 Header section too large".to_string(), true)
    );

    let mut s = TcpStream::connect(k.sip).unwrap();
    s.write_all(options_with("Content-Length: 99999999\r\n\r\nv=0\r\n").as_bytes())
        .unwrap();
    assert_eq!(
        answer_then_close(&mut s),
        ("SIP/2.0 513 Body too large".to_string(), true)
    );

    // And the server goes on, over TCP too.
    let mut s = TcpStream::connect(k.sip).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(options_with("Content-Length: 0\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 2048];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
    assert!(metric(k.http, "kuma_sip_tcp_closed_total") >= 2.0);
}

#[test]
fn http_heads_bodies_slow_clients_and_connections_are_bounded() {
    let k = Server::start_with(&[
        "--http-max-connections",
        "8",
        "--http-header-timeout",
        "1s",
        "--http-max-body",
        "1000",
    ]);

    // A head too large: 431.
    let mut s = TcpStream::connect(k.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = "b".repeat(40 * 1024);
    let _ = write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
    );
    assert_eq!(read_response(&mut s).0, 431);

    // A body too large on a route that reads one: 413, as JSON.
    let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(["token", "create", "--role", "admin", "--name", "limits"])
        .arg("--campaigns")
        .arg(repo().join("campaigns"))
        .arg("--data")
        .arg(&k.data)
        .arg("--database")
        .arg(format!("sqlite://{}/kuma.db", k.data.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let body = format!(
        "{{\"name\": \"{}\", \"role\": \"analyst\"}}",
        "n".repeat(2000)
    );
    let mut s = TcpStream::connect(k.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (status, reply) = read_response(&mut s);
    assert_eq!(status, 413, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(reply.trim()).unwrap();
    assert!(reply["error"].is_string(), "{reply}");

    // A body that comes slower than 500 bytes a second once the header
    // timeout's grace is over is cut off (a few hundred such clients held every
    // connection); one that comes in pieces at a human pace is answered.
    let mut trickle = TcpStream::connect(k.http).unwrap();
    write!(
        trickle,
        "POST /api/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 900\r\n\r\n"
    )
    .unwrap();
    let mut writer = trickle.try_clone().unwrap();
    let start = Instant::now();
    let dripping = std::thread::spawn(move || {
        while start.elapsed() < Duration::from_secs(20) && writer.write_all(b" ").is_ok() {
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    assert!(
        closed_within(&mut trickle, Duration::from_secs(6)),
        "a body of a byte every 250 ms was kept"
    );
    assert!(start.elapsed() >= Duration::from_millis(800));
    drop(trickle);
    dripping.join().unwrap();
    let body = "{\"name\": \"paced\", \"role\": \"analyst\"}";
    let mut s = TcpStream::connect(k.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (first, rest) = body.split_at(10);
    s.write_all(first.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    s.write_all(rest.as_bytes()).unwrap();
    let (status, reply) = read_response(&mut s);
    assert_eq!(status, 201, "{reply}");

    // A client that never finishes its head is closed after the header timeout;
    // so is a kept-alive connection with no next request.
    let mut slow = TcpStream::connect(k.http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut idle = TcpStream::connect(k.http).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "slow client kept"
    );
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "idle keep-alive kept"
    );
    assert!(start.elapsed() >= Duration::from_millis(800));

    // Connections over the limit get 503 with a JSON error, and kuma goes on.
    let held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(k.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, reply) = get(k.http, "/healthz");
    assert_eq!(status, 503, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(reply.trim()).unwrap();
    assert!(reply["error"].is_string(), "{reply}");
    drop(held);
    assert!(
        eventually(Duration::from_secs(5), || get(k.http, "/healthz").0 == 200),
        "the places did not come back"
    );
}

#[test]
fn the_start_up_line_counts_calls_and_a_range_too_small_is_refused() {
    let k = Server::start_with(&["--max-calls", "64"]);
    assert!(
        eventually(Duration::from_secs(5), || stderr_of(&k).contains(
            "kuma serve: up to 64 calls at once; RTP ports 20000-59999 allow 20000"
        )),
        "{}",
        stderr_of(&k)
    );

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--rtp-ports", "20000-20009", "--max-calls", "6"])
        .arg("--campaigns")
        .arg(repo().join("campaigns"))
        .arg("--data")
        .arg(dir.path())
        .arg("--database")
        .arg(format!("sqlite://{}/kuma.db", dir.path().display()))
        .env_remove("KUMA_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "rtp_ports 20000-20009 allow 5 calls (two ports a call), fewer than max_calls 6"
        ),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "it must not start listening");
}
