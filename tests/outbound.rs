//! Missed-call call-backs end to end: a real `kuma serve`, sipp as the listener who
//! beeps the call-back number, and sipp again as the trunk and the listener's phone
//! (answering after a digest challenge and pressing keys, busy, refusing, never
//! answering). Checked through `kuma results` and `kuma callbacks`. Every port is
//! chosen at run time.
//!
//! Needs `sipp` (Debian's sip-tester); `.ci/run` installs it. Without it, outside
//! CI, the tests say so and pass.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{count, prepared_data, repo};
use serde_json::Value;

const CAMPAIGN: &str = "stop-trafficking-mali";
const LISTENER: &str = "+22370123456";

fn have_sipp() -> bool {
    let ok = Command::new("sipp").arg("-v").output().is_ok();
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install sipp (sip-tester)"
        );
        eprintln!("skipped: sipp is not installed");
    }
    ok
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The example campaign, with its poll open whenever the campaign runs (so the
/// test does not depend on the day it runs), in a folder of its own.
fn campaigns(dir: &Path) -> PathBuf {
    let folder = dir.join("campaigns");
    std::fs::create_dir_all(&folder).unwrap();
    let text = std::fs::read_to_string(repo().join("campaigns").join(format!("{CAMPAIGN}.toml")))
        .unwrap()
        .replace(
            "audio = \"../audio/stop-trafficking-mali\"",
            &format!(
                "audio = \"{}\"",
                repo().join("audio/stop-trafficking-mali").display()
            ),
        )
        .replace("poll_window = \"48h\"\n", "");
    std::fs::write(folder.join(format!("{CAMPAIGN}.toml")), text).unwrap();
    folder
}

/// A `kuma serve` whose trunk is a sipp on `trunk_port`, stopped when dropped.
struct Server {
    child: Child,
    sip: SocketAddr,
    dir: tempfile::TempDir,
    campaigns: PathBuf,
}

impl Server {
    fn start(trunk_port: u16, callback: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepared_data(&data);
        let campaigns = campaigns(dir.path());
        let config = dir.path().join("kuma.toml");
        std::fs::write(
            &config,
            format!(
                "[trunk]\nuri = \"sip:127.0.0.1:{trunk_port}\"\nuser = \"kuma\"\n\n[callback]\n{callback}\n"
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--rtp-ports", "20000-59999", "--config"])
            .arg(&config)
            .arg("--campaigns")
            .arg(&campaigns)
            .arg("--data")
            .arg(&data)
            .arg("--database")
            .arg(format!("sqlite://{}/kuma.db", data.display()))
            .env("KUMA_TRUNK_PASSWORD", "s3cret")
            .env("KUMA_CALLBACK_DELAY", "0")
            .env("KUMA_LOG", "kuma=info")
            .env_remove("KUMA_TRUNK")
            .env_remove("KUMA_SECRET")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("kuma.log")).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let sip = line
            .split("udp ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("{line}"));
        Server {
            sip: sip.trim().parse().unwrap(),
            child,
            dir,
            campaigns,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kuma.log")).unwrap_or_default()
    }

    fn database(&self) -> String {
        format!("sqlite://{}/data/kuma.db", self.dir.path().display())
    }

    fn kuma(&self, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(args)
            .arg("--campaigns")
            .arg(&self.campaigns)
            .args(["--database", &self.database(), "--data"])
            .arg(self.dir.path().join("data"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn results(&self) -> Value {
        self.kuma(&["results", CAMPAIGN, "--format", "json"])
    }

    fn callbacks(&self) -> Vec<Value> {
        self.kuma(&["callbacks", "--format", "json"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits until the call-backs' statuses are `want` (oldest first).
    fn wait_statuses(&self, want: &[&str]) -> Vec<Value> {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let list = self.callbacks();
            let statuses: Vec<&str> = list.iter().map(|c| c["status"].as_str().unwrap()).collect();
            if statuses == want {
                return list;
            }
            assert!(
                Instant::now() < until,
                "statuses {statuses:?}, expected {want:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The listener beeps the call-back number from `caller`.
    fn missed_call(&self, caller: &str) -> Output {
        let out = sipp(self.dir.path())
            .arg("-sf")
            .arg(repo().join("tests/sipp/missed_call.xml"))
            .arg(self.sip.to_string())
            .args(["-s", "2001", "-key", "caller", caller, "-m", "1"])
            .args(["-p", &free_port().to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the missed call was refused with 486: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sipp with the options every run here shares (one call unless `-m` follows).
fn sipp(dir: &Path) -> Command {
    let mut cmd = Command::new("sipp");
    cmd.args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-mp", &free_port().to_string()])
        .args(["-timeout", "60", "-timeout_error", "-nostdin"])
        .arg("-trace_err")
        .arg("-error_file")
        .arg(dir.join(format!("sipp-{}.log", free_port())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    cmd
}

/// sipp as the trunk and phone: `scenario` on `port`, for `calls` calls.
fn phone(dir: &Path, port: u16, scenario: &str, calls: u32, extra: &[&str]) -> Child {
    sipp(dir)
        .arg("-sf")
        .arg(repo().join("tests/sipp").join(scenario))
        .args(["-p", &port.to_string(), "-m", &calls.to_string()])
        .args(extra)
        .spawn()
        .unwrap()
}

fn wait_ok(mut child: Child, what: &str, server: &Server) {
    let status = child.wait().unwrap();
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    assert!(status.success(), "{what}\n{out}\n{}", server.log());
}

#[test]
fn a_missed_call_is_called_back_through_the_trunk_and_its_answers_counted() {
    if !have_sipp() {
        return;
    }
    let trunk = free_port();
    let k = Server::start(trunk, "");
    let phone = phone(k.dir.path(), trunk, "callback_answer.xml", 1, &[]);
    k.missed_call(LISTENER);
    wait_ok(
        phone,
        "kuma authenticated, the phone answered the poll, and kuma hung up with BYE",
        &k,
    );
    let list = k.wait_statuses(&["answered"]);
    assert_eq!(list[0]["attempts"], 1);
    assert!(list[0]["caller"].as_str().unwrap().starts_with("c_"));
    assert!(!list[0]["call"].is_null());
    let until = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = k.results();
        if r["completed"] == 1 || Instant::now() > until {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r["calls"], 1, "{r}");
    assert_eq!(r["completed"], 1);
    assert_eq!(r["languages"]["fr"], 1);
    assert_eq!(count(&r, "q_offered_work", "yes"), 1);
    assert_eq!(count(&r, "q_know_signs", "no"), 1);
    assert_eq!(count(&r, "q_would_report", "yes"), 1);
    assert_eq!(count(&r, "q_gender", "woman"), 1);
    assert_eq!(count(&r, "q_region", "koulikoro"), 1);

    // The listener beeps again at once: too soon for another call-back.
    k.missed_call(LISTENER);
    let list = k.wait_statuses(&["answered", "refused"]);
    assert_eq!(list[1]["note"], "too_soon");
    // A withheld number is never called back.
    k.missed_call("anonymous");
    let list = k.wait_statuses(&["answered", "refused", "refused"]);
    assert_eq!(list[2]["note"], "withheld_number");

    // The number is nowhere: not in the log, not in what analysts see.
    let log = k.log();
    assert!(log.contains("call-back answered"), "{log}");
    assert!(!log.contains("70123456"), "{log}");
    let shown = serde_json::to_string(&k.callbacks()).unwrap();
    assert!(!shown.contains("70123456"));
}

#[test]
fn a_busy_phone_is_tried_again_then_the_call_back_ends_busy() {
    if !have_sipp() {
        return;
    }
    let trunk = free_port();
    let k = Server::start(trunk, "retries = 1\nretry_after = \"1s\"");
    let phone = phone(k.dir.path(), trunk, "callback_busy.xml", 2, &[]);
    k.missed_call(LISTENER);
    wait_ok(phone, "two attempts, both busy", &k);
    let list = k.wait_statuses(&["busy"]);
    assert_eq!(list[0]["attempts"], 2);
    assert_eq!(list[0]["note"], "sip 486");
}

#[test]
fn a_trunk_that_refuses_with_403_is_not_tried_again() {
    if !have_sipp() {
        return;
    }
    let trunk = free_port();
    let k = Server::start(trunk, "retries = 3\nretry_after = \"1s\"");
    let phone = phone(k.dir.path(), trunk, "callback_forbidden.xml", 1, &[]);
    k.missed_call(LISTENER);
    wait_ok(phone, "one attempt, refused", &k);
    let list = k.wait_statuses(&["failed"]);
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["note"], "sip 403");
    // No retry storm: still one attempt a few retry periods later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(k.callbacks()[0]["attempts"], 1);
}

#[test]
fn a_phone_that_is_never_picked_up_is_cancelled_and_recorded_no_answer() {
    if !have_sipp() {
        return;
    }
    let trunk = free_port();
    let k = Server::start(trunk, "retries = 0\nring_timeout = \"2s\"");
    let phone = phone(k.dir.path(), trunk, "callback_no_answer.xml", 1, &[]);
    k.missed_call(LISTENER);
    wait_ok(phone, "kuma cancelled the ringing call", &k);
    let list = k.wait_statuses(&["no_answer"]);
    assert_eq!(list[0]["attempts"], 1);
}
