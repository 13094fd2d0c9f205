//! Several `kuma serve` nodes on one PostgreSQL database behind Debian's Kamailio,
//! run with `deploy/kamailio/kamailio.cfg` as shipped: calls are shared between the
//! nodes, a killed node costs no call, a draining node finishes its calls and gets
//! no new one.
//!
//! A presenter's live board on one node shows the answers taken by both.
//!
//! Everything runs on loopback, on ports chosen at run time. The listeners (sipp)
//! call from 127.0.0.2, the station's "gateway", the only trunk the nodes accept;
//! Kamailio listens on 127.0.0.1, the nodes' only proxy, and tells them the
//! gateway's address in `X-Kuma-Source`. The dispatcher list also names a node
//! that does not exist, which Kamailio must route around.
//!
//! Needs `kamailio`, `sipp` and a PostgreSQL server (`KUMA_TEST_POSTGRES_URL`);
//! `./test` installs and starts them.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{PgDatabase, count, free_port, have_sipp, postgres_admin_url, prepared_data, repo};

const CAMPAIGN: &str = "stop-trafficking-mali";
const GATEWAY: &str = "127.0.0.2";
const SECRET: &str = "kamailio-test-secret-0123456789";

fn kamailio_bin() -> Option<PathBuf> {
    ["/usr/sbin/kamailio", "/usr/local/sbin/kamailio"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            Command::new("kamailio")
                .arg("-v")
                .output()
                .ok()
                .map(|_| PathBuf::from("kamailio"))
        })
}

/// Kamailio on `deploy/kamailio/kamailio.cfg`, in its own process group (it forks
/// workers), stopped with SIGTERM to the group when dropped.
struct Kamailio {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Kamailio {
    fn start(bin: &Path, dir: &Path, nodes: &[SocketAddr]) -> Kamailio {
        let list = dir.join("dispatcher.list");
        let lines: String = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
        std::fs::write(&list, lines).unwrap();
        let runtime = dir.join("kamailio-run");
        std::fs::create_dir_all(&runtime).unwrap();
        let log = dir.join("kamailio.log");
        let mut tries = 0;
        loop {
            let port = free_port();
            let mut child = Command::new(bin)
                .arg("-f")
                .arg(repo().join("deploy/kamailio/kamailio.cfg"))
                .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
                .arg(&runtime)
                .arg("-A")
                .arg(format!("LISTEN=udp:127.0.0.1:{port}"))
                .arg("-A")
                .arg(format!("DISPATCHER_LIST=\"{}\"", list.display()))
                // Probe every second, and give up on a silent node after one.
                .args(["-A", "PING_INTERVAL=1", "-A", "INVITE_TIMEOUT=1000"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .process_group(0)
                .spawn()
                .unwrap();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            if options_ok(addr, Duration::from_secs(10)) {
                return Kamailio { child, addr, log };
            }
            let _ = child.kill();
            let _ = child.wait();
            tries += 1;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                tries < 3 && text.contains("Address already in use"),
                "kamailio did not start:\n{text}"
            );
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Whether `addr` answers an OPTIONS with 200 within `wait`.
fn options_ok(addr: SocketAddr, wait: Duration) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = socket.local_addr().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let until = Instant::now() + wait;
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let options = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-probe-{n}\r\n\
             From: <sip:probe@{me}>;tag=p{n}\r\nTo: <sip:{addr}>\r\nCall-ID: probe-{n}@test\r\n\
             CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = socket.send_to(options.as_bytes(), addr);
        let mut buf = [0u8; 4096];
        if let Ok((len, _)) = socket.recv_from(&mut buf)
            && buf
                .get(..len)
                .is_some_and(|m| m.starts_with(b"SIP/2.0 200"))
        {
            return true;
        }
    }
    false
}

/// A `kuma serve` node behind the proxy, on the shared database.
struct Node {
    child: Child,
    sip: SocketAddr,
    http: SocketAddr,
    /// Holds the node's data folder and log.
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Node {
    /// On `sip` (`127.0.0.1:0`: a port chosen at run time).
    fn start(database: &str, sip: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepared_data(&data);
        let (stderr, log) = common::stderr_log(dir.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["serve", "--sip", sip, "--http", "127.0.0.1:0"])
            .args(["--rtp-ports", "20000-59999"])
            .args(["--trunks", GATEWAY, "--proxies", "127.0.0.1"])
            .args(["--public-ip", "127.0.0.1"])
            .arg("--campaigns")
            .arg(common::open_poll_campaigns())
            .arg("--data")
            .arg(&data)
            .args(["--database", database])
            .env_remove("KUMA_CONFIG")
            // Every node must share the pseudonym secret (or the database refuses
            // the second one).
            .env("KUMA_SECRET", SECRET)
            .env("KUMA_LOG", "kuma=info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let (sip, http) = common::serve_addresses(&mut child, &log);
        Node {
            child,
            sip,
            http,
            _dir: dir,
            log,
        }
    }

    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(self.http) else {
            return String::new();
        };
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: kuma\r\nConnection: close\r\n\r\n"
        );
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body
    }

    fn active_calls(&self) -> u64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix("kuma_calls_active "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on the gateway's address.
fn gateway_port() -> u16 {
    UdpSocket::bind((GATEWAY, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// sipp calls through the proxy: `calls` of them, `rate` a second, all at once.
fn sipp(dir: &Path, proxy: SocketAddr, calls: u32, rate: u32, name: &str) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.arg(proxy.to_string())
        .arg("-sf")
        .arg(repo().join("tests/sipp/kamailio_poll.xml"))
        .args(["-s", "2000", "-i", GATEWAY, "-mi", GATEWAY])
        .args(["-p", &gateway_port().to_string()])
        .args(["-mp", &gateway_port().to_string()])
        .args(["-m", &calls.to_string(), "-l", &calls.to_string()])
        .args(["-r", &rate.to_string()])
        .args(["-timeout", "120", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join(format!("{name}-errors.log")))
        .args(["-trace_logs", "-log_file"])
        .arg(dir.join(format!("{name}-nodes.log")))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// How many calls of a sipp run each node answered (from its `node` log lines).
fn answered_by(dir: &Path, name: &str) -> HashMap<SocketAddr, u32> {
    let text = std::fs::read_to_string(dir.join(format!("{name}-nodes.log"))).unwrap_or_default();
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(addr) = line
            .trim()
            .strip_prefix("node ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
        {
            *out.entry(addr).or_default() += 1;
        }
    }
    out
}

/// Checks a finished sipp run: every call succeeded.
fn all_succeeded(out: &Output, dir: &Path, name: &str, context: &[&Node], proxy: &Kamailio) {
    if out.status.success() {
        return;
    }
    let errors =
        std::fs::read_to_string(dir.join(format!("{name}-errors.log"))).unwrap_or_default();
    let tail = |text: String| -> String {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    let nodes: Vec<String> = context.iter().map(|n| tail(n.log())).collect();
    panic!(
        "sipp {name}: some calls failed\n{}\n{}\nkamailio:\n{}\nnodes:\n{}",
        String::from_utf8_lossy(&out.stdout),
        tail(errors),
        tail(std::fs::read_to_string(&proxy.log).unwrap_or_default()),
        nodes.join("\n----\n")
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn results(database: &str, data: &Path) -> serde_json::Value {
    common::kuma_json(
        &repo().join("campaigns"),
        database,
        data,
        &["results", CAMPAIGN, "--format", "json"],
    )
}

/// Waits until the results count `n` completed calls (the last writes follow
/// sipp's last message).
fn wait_completed(database: &str, data: &Path, n: u64) -> serde_json::Value {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let r = results(database, data);
        if r["completed"].as_u64() >= Some(n) || Instant::now() > until {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kuma token create` on the shared database (the operator's command).
fn token(database: &str, data: &Path) -> String {
    let args = ["token", "create", "--role", "analyst", "--name", "board"];
    common::kuma_ok(&repo().join("campaigns"), database, data, &args)
        .trim()
        .to_owned()
}

/// A live board (the presenter's screen) on one node: its Server-Sent Events.
fn live_board(node: &Node, token: &str) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(node.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    write!(
        w,
        "GET /api/campaigns/{CAMPAIGN}/results/live HTTP/1.1\r\nHost: kuma\r\n\
         Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    BufReader::new(stream)
}

/// Reads the board's events until one counts `completed` calls.
fn board_shows(board: &mut BufReader<TcpStream>, completed: u64, within: Duration) {
    let until = Instant::now() + within;
    let mut last = serde_json::Value::Null;
    while Instant::now() < until {
        let mut line = String::new();
        if board.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            last = serde_json::from_str(data).unwrap();
            if last["completed"].as_u64() == Some(completed) {
                return;
            }
        }
    }
    panic!("the live board never showed {completed} completed calls; last: {last}");
}

#[test]
fn two_nodes_behind_kamailio_share_calls_survive_a_kill_and_drain() {
    let Some(bin) = kamailio_bin() else {
        common::peer_missing("kamailio (Debian's kamailio)");
        return;
    };
    if !have_sipp() {
        return;
    }
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    if UdpSocket::bind((GATEWAY, 0)).is_err() {
        panic!("cannot bind {GATEWAY} (the gateway's loopback address)");
    }
    let db = PgDatabase::new(&admin);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = Node::start(&db.url, "127.0.0.1:0");
    let b = Node::start(&db.url, "127.0.0.1:0");
    // A node in the list that never answers: Kamailio finds it dead and routes
    // around it.
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = Kamailio::start(&bin, d, &[a.sip, b.sip, dead]);
    let reader = tempfile::tempdir().unwrap();
    let reader_data = reader.path().join("data");
    std::fs::create_dir_all(&reader_data).unwrap();
    // `kuma results` as an operator runs it, from anywhere, on the shared database.
    let results = |n: u64| wait_completed(&db.url, &reader_data, n);
    // A presenter's live board on node B, open before the calls.
    let mut board = live_board(&b, &token(&db.url, &reader_data));

    let t0 = Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s  {what}", t0.elapsed().as_secs_f64());
    phase("Kamailio and two nodes up");

    // 1. Forty calls, shared by both nodes, every answer stored once.
    let out = run(&mut sipp(d, proxy.addr, 40, 10, "shared"));
    all_succeeded(&out, d, "shared", &[&a, &b], &proxy);
    let by = answered_by(d, "shared");
    assert_eq!(by.values().sum::<u32>(), 40, "{by:?}");
    assert!(
        by.get(&a.sip).is_some_and(|&n| n > 0) && by.get(&b.sip).is_some_and(|&n| n > 0),
        "both nodes took calls: {by:?}"
    );
    assert!(!by.contains_key(&dead), "{by:?}");
    phase(&format!("40 calls answered: {by:?}"));
    let r = results(40);
    assert_eq!(r["calls"], 40, "{r}");
    assert_eq!(r["completed"], 40, "{r}");
    assert_eq!(count(&r, "q_offered_work", "yes"), 40);
    assert_eq!(count(&r, "q_region", "koulikoro"), 40);
    // B's board counts the answers given on A too, within a second or two.
    board_shows(&mut board, 40, Duration::from_secs(3));
    drop(board);

    // 2. Node A is killed outright: the next twenty calls all go to B.
    let a_port = a.sip;
    drop(a);
    let out = run(&mut sipp(d, proxy.addr, 20, 10, "after-kill"));
    all_succeeded(&out, d, "after-kill", &[&b], &proxy);
    let by = answered_by(d, "after-kill");
    phase(&format!("20 calls after the kill: {by:?}"));
    assert_eq!(by.get(&b.sip), Some(&20), "{by:?}");
    let r = results(60);
    assert_eq!(r["completed"], 60, "{r}");
    assert_eq!(count(&r, "q_gender", "woman"), 60);

    // 3. A comes back on its address; B is sent SIGTERM with calls in progress:
    // they finish on B, every new call goes to A, and B exits on its own.
    let a = Node::start(&db.url, &a_port.to_string());
    assert!(options_ok(a.sip, Duration::from_secs(5)));
    std::thread::sleep(Duration::from_secs(3)); // a probe or two: A is back
    let first = sipp(d, proxy.addr, 10, 5, "drain-first").spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while b.active_calls() == 0 {
        assert!(Instant::now() < until, "B never got a call");
        std::thread::sleep(Duration::from_millis(100));
    }
    b.signal("-TERM");
    let out = run(&mut sipp(d, proxy.addr, 10, 5, "drain-second"));
    all_succeeded(&out, d, "drain-second", &[&a, &b], &proxy);
    let by = answered_by(d, "drain-second");
    phase(&format!("10 calls while B drains: {by:?}"));
    assert_eq!(by.get(&a.sip), Some(&10), "B took no new call: {by:?}");
    let out = first.wait_with_output().unwrap();
    all_succeeded(&out, d, "drain-first", &[&a, &b], &proxy);
    let on_b = answered_by(d, "drain-first")
        .get(&b.sip)
        .copied()
        .unwrap_or(0);
    assert!(on_b > 0, "B had calls in progress when it was told to stop");
    let mut b = b;
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = b.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < until, "B did not stop after its calls");
        std::thread::sleep(Duration::from_millis(100));
    };
    phase("B stopped");
    assert!(status.success(), "{status:?}\n{}", b.log());
    assert!(b.log().contains("all calls ended; stopped"), "{}", b.log());
    let r = results(80);
    assert_eq!(r["calls"], 80, "{r}");
    assert_eq!(r["completed"], 80, "{r}");
    assert_eq!(count(&r, "q_would_report", "yes"), 80);
}
