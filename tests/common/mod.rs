//! Helpers shared by the whole-program tests (each test binary uses some of them).
#![allow(dead_code)]

use serde_json::Value;

/// The count of `choice` for `question` in a results JSON.
pub fn count(r: &Value, question: &str, choice: &str) -> u64 {
    r["questions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["id"] == question)
        .and_then(|q| q["choices"].as_array()?.iter().find(|c| c["id"] == choice))
        .and_then(|c| c["count"].as_u64())
        .unwrap_or_else(|| panic!("no {question}/{choice} in {r}"))
}

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The SIP and HTTP addresses a starting `kuma serve` prints on its first line of
/// standard output (the ports are chosen at run time):
/// "kuma serve: SIP on udp 127.0.0.1:P (and tcp), HTTP on http://127.0.0.1:Q".
/// `log` is where its standard error goes (see [`stderr_log`]): when it does not
/// start, the panic shows the end of it.
pub fn serve_addresses(child: &mut Child, log: &Path) -> (SocketAddr, SocketAddr) {
    let stdout = child
        .stdout
        .take()
        .expect("kuma serve's stdout must be piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let sip = line
        .split("udp ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    let http = line
        .split("http://")
        .nth(1)
        .and_then(|a| a.trim().parse().ok());
    match (sip, http) {
        (Some(sip), Some(http)) => (sip, http),
        _ => {
            let status = child.wait();
            let err = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = err.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "kuma serve did not start: {line:?} ({status:?}); its stderr ends:\n{}",
                tail.join("\n")
            )
        }
    }
}

/// A new file in `dir` for the standard error of a `kuma serve` about to start,
/// and that file's path (for [`serve_addresses`]).
pub fn stderr_log(dir: &Path) -> (Stdio, PathBuf) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("kuma-serve-{n}.log"));
    let file = std::fs::File::create(&path).unwrap();
    (Stdio::from(file), path)
}

/// A peer a test needs (sipp, baresip, PostgreSQL…) is not there: the test fails
/// with one line saying how to get it (`./test` installs and starts them all), so
/// that no test passes without having run. With `KUMA_TEST_SKIP_MISSING=1` such
/// tests are skipped instead, and say so; the answer is then `false`.
pub fn peer_missing(peer: &str) -> bool {
    if std::env::var_os("KUMA_TEST_SKIP_MISSING").is_some_and(|v| v == "1") {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("skipped: {peer} is not available (KUMA_TEST_SKIP_MISSING=1)\n").as_bytes(),
        );
        return false;
    }
    panic!(
        "{peer} is not available: run ./test, which installs and starts what the tests \
         need, or set KUMA_TEST_SKIP_MISSING=1 to skip the tests that need it"
    )
}

/// Whether sipp (Debian's sip-tester) is here: see [`peer_missing`].
pub fn have_sipp() -> bool {
    Command::new("sipp").arg("-v").output().is_ok() || peer_missing("sipp (Debian's sip-tester)")
}

/// The admin URL of the test PostgreSQL server (`KUMA_TEST_POSTGRES_URL`, which
/// `./test` sets after starting one with `.ci/start-postgres`): see [`peer_missing`].
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("KUMA_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            peer_missing("PostgreSQL (KUMA_TEST_POSTGRES_URL)");
            None
        }
    }
}

/// Runs `kuma ARGS` on a campaigns folder, database and data folder, which must
/// succeed; its standard output.
pub fn kuma_ok(campaigns: &Path, database: &str, data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(args)
        .arg("--campaigns")
        .arg(campaigns)
        .args(["--database", database, "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// [`kuma_ok`], its output read as JSON (`results --format json`, `callbacks
/// --format json`).
pub fn kuma_json(campaigns: &Path, database: &str, data: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&kuma_ok(campaigns, database, data, args)).unwrap()
}

/// A port on loopback free for both UDP and TCP, found at run time (sipp
/// binds its `-p` port for TCP with `-t t1`; a port only checked for UDP was
/// once taken for TCP: "Unable to bind main socket").
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1")
}

/// A base port for sipp's media (`-mp`): sipp binds the audio RTP port, the one
/// after it and the video pair above (`-mp`+0…3), so all four must be free, or
/// sipp stops with "Unable to bind video RTP socket" on a busy machine.
pub fn free_media_port() -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base % 2 == 1 || base > u16::MAX - 4 {
            continue;
        }
        let free = (1..4).all(|i| std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no four free UDP ports in a row on 127.0.0.1")
}

/// The repository (the example campaign and its audio live there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fills a fresh data folder with the example campaign's prompts already prepared,
/// so that a `kuma serve` started on it does not decode the audio again: they are
/// prepared once per test binary (`kuma audio prepare`) and copied.
pub fn prepared_data(data: &Path) {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["audio", "prepare", "stop-trafficking-mali", "--campaigns"])
            .arg(repo().join("campaigns"))
            .arg("--data")
            .arg(dir.path())
            .arg("--database")
            .arg(format!("sqlite://{}/unused.db", dir.path().display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    });
    copy_dir(&cache.path().join("audio-cache"), &data.join("audio-cache"));
}

/// The example campaign's text with its poll open whenever the campaign runs
/// (no `poll_window`), and its audio folder as an absolute path: calls answered
/// by a `kuma serve` on the real clock then hear the poll whatever the day the
/// tests run (the example's window closes between Thursday 19:00 and Saturday
/// 08:30, and between Monday 08:30 and Tuesday 19:00).
pub fn open_poll_text() -> String {
    let text =
        std::fs::read_to_string(repo().join("campaigns/stop-trafficking-mali.toml")).unwrap();
    let open = text.replace("poll_window = \"48h\"\n", "").replace(
        "audio = \"../audio/stop-trafficking-mali\"",
        &format!(
            "audio = {:?}",
            repo()
                .join("audio/stop-trafficking-mali")
                .display()
                .to_string()
        ),
    );
    assert!(
        !open.contains("poll_window") && !open.contains("\"../audio"),
        "the example campaign changed: update open_poll_text"
    );
    open
}

/// A campaigns folder (made once per test binary, kept for its life) holding
/// [`open_poll_text`].
pub fn open_poll_campaigns() -> PathBuf {
    static FOLDER: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = FOLDER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("campaigns");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("stop-trafficking-mali.toml"), open_poll_text()).unwrap();
        dir
    });
    dir.path().join("campaigns")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A running `kuma serve` on the example campaign, with its own data folder and
/// SQLite database, on ports chosen at run time; stopped when dropped.
pub struct Server {
    pub child: Child,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    /// The temporary folder (the data folder is `data` inside it).
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    /// Where its standard error goes.
    pub log: PathBuf,
}

impl Server {
    /// Runs a sipp scenario file (from tests/sipp/) or built-in scenario against
    /// kuma: one call to `number`, every port chosen at run time.
    pub fn sipp(&self, scenario: &str, number: &str, extra: &[&str]) -> Output {
        let mut cmd = Command::new("sipp");
        if scenario.ends_with(".xml") {
            cmd.arg("-sf").arg(repo().join("tests/sipp").join(scenario));
        } else {
            cmd.args(["-sn", scenario]);
        }
        let log = self.dir.path().join(format!("sipp-{}.log", free_port()));
        cmd.arg(self.sip.to_string())
            .args([
                "-s",
                number,
                "-m",
                "1",
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &free_port().to_string(),
                "-mp",
                &free_media_port().to_string(),
            ])
            .args([
                // The longest scenarios (a studio call: a PIN, a take, its
                // playback) last about 45 s; a loaded CI machine stalls sipp
                // for seconds at a time (its overload watchdog says so).
                "-timeout",
                "180",
                "-timeout_error",
                "-nostdin",
                "-trace_err",
                "-error_file",
            ])
            .arg(&log)
            .args(extra)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        let out = cmd.output().unwrap();
        if !out.status.success() {
            let errors = std::fs::read_to_string(&log).unwrap_or_default();
            eprintln!(
                "sipp {scenario} failed:\n{}\n{errors}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        out
    }

    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// With more `kuma serve` flags, on the example campaign with its poll
    /// always open ([`open_poll_campaigns`]).
    pub fn start_with(flags: &[&str]) -> Server {
        let campaigns = open_poll_campaigns();
        Self::start_in(&campaigns, flags)
    }

    /// On another campaigns folder.
    pub fn start_in(campaigns: &Path, flags: &[&str]) -> Server {
        Self::start_with_env(campaigns, flags, &[])
    }

    /// With environment variables too (`KUMA_LOG`…).
    pub fn start_with_env(campaigns: &Path, flags: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_under(&[], campaigns, flags, env)
    }

    /// Run by another program: `wrapper` (`strace -f -o FILE`…) comes before
    /// kuma on the command line. `child` is then that program, not kuma.
    pub fn start_under(
        wrapper: &[&std::ffi::OsStr],
        campaigns: &Path,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepared_data(&data);
        let (stderr, log) = stderr_log(dir.path());
        let kuma = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_kuma"));
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(kuma);
                command
            }
            None => Command::new(kuma),
        };
        let mut child = command
            .args([
                "serve",
                "--sip",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
                "--rtp-ports",
                "20000-59999",
            ])
            .args(flags)
            .arg("--campaigns")
            .arg(campaigns)
            .arg("--data")
            .arg(&data)
            .arg("--database")
            .arg(format!("sqlite://{}/kuma.db", data.display()))
            .env_remove("KUMA_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let (sip, http) = serve_addresses(&mut child, &log);
        Server {
            sip,
            http,
            child,
            dir,
            data,
            log,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one SQL statement as the test server's admin.
pub fn pg(admin: &str, statement: &str) {
    pg_rows(admin, statement);
}

/// The rows of `query`, one line each (psql's unaligned output).
pub fn pg_rows(url: &str, query: &str) -> Vec<String> {
    let out = Command::new("psql")
        .args([url, "-Atqc", query])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A fresh database on the test server, dropped at the end.
pub struct PgDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn new(admin: &str) -> PgDatabase {
        let name = format!("kuma_test_{:08x}", std::process::id() ^ free_port() as u32);
        pg(admin, &format!("CREATE DATABASE {name}"));
        let (scheme, rest) = admin.split_once("://").unwrap();
        let authority = rest.split('/').next().unwrap();
        PgDatabase {
            url: format!("{scheme}://{authority}/{name}"),
            admin: admin.to_owned(),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        pg(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// An HTTP response as the tests read it: status, the head lowercased, the body
/// (de-chunked).
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request on its own connection to `addr` (headers as given,
/// `Content-Length` when there is a body), read to the end.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpReply {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    // A server may refuse a huge body before reading it all: its answer counts.
    let _ = s.write_all(&bytes);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{head}"));
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    HttpReply { status, head, body }
}

/// The body of a chunked response (RFC 9112 §7.1); panics on a cut transfer.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n");
        raw = &raw[size + 2..];
    }
}

/// `pcm` as a 16-bit mono WAV at 8 kHz.
pub fn write_wav_8k(path: &Path, pcm: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for s in pcm {
        w.write_sample(*s).unwrap();
    }
    w.finalize().unwrap();
}

/// Tries `f` every 50 ms until it succeeds or `limit` has passed (then its
/// last error).
pub fn eventually<T, E>(limit: Duration, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let until = Instant::now() + limit;
    loop {
        match f() {
            Err(_) if Instant::now() < until => std::thread::sleep(Duration::from_millis(50)),
            done => return done,
        }
    }
}
