//! The database goes away under load (issue 11, item 6), with sipp callers
//! answering the example campaign's poll against a real `kuma serve`:
//!
//! - PostgreSQL stopped for 30 s in the middle of calls, then started again:
//!   every answer of every call sipp completed is counted, none twice;
//! - `kuma serve` on SQLite killed (SIGKILL) in the middle of calls, then started
//!   again: every answer whose next prompt kuma began to play is stored.
//!
//! Needs sipp; the PostgreSQL test also PostgreSQL's server binaries (it starts
//! its own throwaway cluster with `.ci/start-postgres`, since it stops it). Without
//! them, outside CI, the tests say so and pass. Every port is chosen at run time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{count, free_port, have_sipp, prepared_data, repo, serve_addresses, stderr_log};

const CAMPAIGN: &str = "stop-trafficking-mali";
/// The questions the scenario answers, in the order asked, with the answer it
/// gives and the prompt kuma plays next.
const POLL: [(&str, &str, &str); 5] = [
    ("q_offered_work", "yes", "q_know_signs"),
    ("q_know_signs", "no", "q_would_report"),
    ("q_would_report", "yes", "q_gender"),
    ("q_gender", "woman", "q_region"),
    ("q_region", "koulikoro", "poll_thanks"),
];

/// Starts sipp callers running the whole poll: `calls` calls, `rate` per second.
fn sipp(dir: &Path, sip: std::net::SocketAddr, calls: u32, rate: &str, stats: &Path) -> Child {
    Command::new("sipp")
        .arg("-sf")
        .arg(repo().join("tests/sipp/poll_rfc4733.xml"))
        .arg(sip.to_string())
        .args([
            "-s",
            "2000",
            "-m",
            &calls.to_string(),
            "-r",
            rate,
            "-l",
            "100",
        ])
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &common::free_media_port().to_string(),
        ])
        .args(["-timeout", "120", "-nostdin", "-trace_stat", "-stf"])
        .arg(stats)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The last value of a column of sipp's statistics file.
fn sipp_stat(stats: &Path, column: &str) -> u64 {
    let text = std::fs::read_to_string(stats).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(';').collect();
    let i = head.iter().position(|c| *c == column).unwrap();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    last[i].trim().parse().unwrap()
}

fn http_get(http: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(http) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: kuma\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// A metric's value in `/metrics` (0 when absent).
fn metric(http: std::net::SocketAddr, name: &str) -> u64 {
    http_get(http, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

fn results(database: &str, data: &Path) -> serde_json::Value {
    let args = ["results", CAMPAIGN, "--format", "json"];
    common::kuma_json(&repo().join("campaigns"), database, data, &args)
}

/// A running `kuma serve`; killed (SIGKILL) when dropped.
struct Kuma {
    child: Child,
    sip: std::net::SocketAddr,
    http: std::net::SocketAddr,
    log: PathBuf,
}

impl Kuma {
    fn start(dir: &Path, data: &Path, database: &str) -> Kuma {
        let (stderr, log) = stderr_log(dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--rtp-ports", "20000-59999", "--trunks", "127.0.0.1"])
            .arg("--campaigns")
            .arg(common::open_poll_campaigns())
            .arg("--data")
            .arg(data)
            .args(["--database", database])
            .env("KUMA_LOG", "warn,kuma::serve::call=debug,kuma::store=info")
            .env("NO_COLOR", "1")
            .env_remove("KUMA_CONFIG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let (sip, http) = serve_addresses(&mut child, &log);
        Kuma {
            child,
            sip,
            http,
            log,
        }
    }

    /// Waits until `/healthz` says ok (the spool applied), at most `limit`.
    fn wait_healthy(&self, limit: Duration) -> bool {
        self.wait_until(limit, || http_get(self.http, "/healthz").ends_with("ok\n"))
    }

    /// Waits until kuma has no call left (the caller's last 200 OK comes
    /// before kuma writes how the call ended), at most `limit`.
    fn wait_calls_ended(&self, limit: Duration) -> bool {
        self.wait_until(limit, || metric(self.http, "kuma_calls_active") == 0)
    }

    fn wait_until(&self, limit: Duration, done: impl Fn() -> bool) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for Kuma {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- PostgreSQL stopped for 30 s ------------------------------------------------

/// A throwaway PostgreSQL cluster of this test's own (it is stopped and started,
/// which the shared one of `KUMA_TEST_POSTGRES_URL` must not be).
struct Cluster {
    url: String,
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Cluster {
    fn bin() -> Option<PathBuf> {
        let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|b| b.join("pg_ctl").exists())
            .collect();
        bins.sort();
        bins.pop()
    }

    fn start() -> Option<Cluster> {
        let bin = Cluster::bin()?;
        let out = Command::new(repo().join(".ci/start-postgres"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "start-postgres failed: {err}");
        let url = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_string();
        let data = err
            .lines()
            .find_map(|l| l.split("data in ").nth(1))
            .map(|d| PathBuf::from(d.trim()))
            .unwrap();
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap();
        Some(Cluster {
            url,
            bin,
            data,
            port,
        })
    }

    fn pg_ctl(&self, args: &[&str]) {
        let root = is_root();
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let out = cmd
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts it again as `.ci/start-postgres` did.
    fn start_again(&self) {
        let dir = self.data.parent().unwrap().display().to_string();
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port
        );
        let log = format!("{dir}/postgres.log");
        self.pg_ctl(&["-l", &log, "-w", "-t", "60", "-o", &options, "start"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.pg_ctl(&["stop", "-m", "immediate"]));
        if let Some(dir) = self.data.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn postgres_stopped_for_30_s_during_calls_loses_no_answer_and_counts_none_twice() {
    if !have_sipp() {
        return;
    }
    let started = Instant::now();
    // The cluster starts while the prompts are prepared.
    let starting = std::thread::spawn(Cluster::start);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepared_data(&data);
    let Some(cluster) = starting.join().unwrap() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install PostgreSQL's server"
        );
        eprintln!("skipped: PostgreSQL's server binaries (pg_ctl) are not installed");
        return;
    };
    let kuma = Kuma::start(dir.path(), &data, &cluster.url);
    eprintln!("{:?} kuma started", started.elapsed());
    let stats = dir.path().join("sipp.csv");
    // 38 callers, one a second, each about 17 s: the first ones are in the
    // middle of the poll when the database stops, the next ones ring during the
    // outage (refused: 503), the last ones call after it.
    let mut callers = sipp(dir.path(), kuma.sip, 38, "1", &stats);
    std::thread::sleep(Duration::from_secs(4));
    cluster.stop();
    let stopped = Instant::now();
    // Calls in progress go on, and /healthz says the database is away.
    std::thread::sleep(Duration::from_secs(8));
    let health = http_get(kuma.http, "/healthz");
    assert!(
        health.contains("503") && health.contains("\"database\":\"unreachable\""),
        "{health}"
    );
    std::thread::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed()));
    cluster.start_again();
    eprintln!("{:?} database back", started.elapsed());
    let status = callers.wait().unwrap();
    eprintln!("{:?} sipp ended: {status}", started.elapsed());
    assert!(
        kuma.wait_calls_ended(Duration::from_secs(30)),
        "calls still in progress: {}",
        http_get(kuma.http, "/metrics")
    );
    assert!(
        kuma.wait_healthy(Duration::from_secs(30)),
        "the spool was not applied: {}",
        http_get(kuma.http, "/healthz")
    );

    let completed = sipp_stat(&stats, "SuccessfulCall(C)");
    let failed = sipp_stat(&stats, "FailedCall(C)");
    let spooled = metric(kuma.http, "kuma_spool_writes_total");
    let replayed = metric(kuma.http, "kuma_spool_replayed_total");
    eprintln!(
        "sipp: {completed} calls completed, {failed} failed; {spooled} writes spooled, {replayed} replayed"
    );
    // The node visits, the calls' ends, and (for a failure's message) every
    // call's row and what kuma's log says of each call.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ended, goodbye, rows, counted): (i64, i64, Vec<CallRow>, Vec<_>) = rt.block_on(async {
        let pool = sqlx::PgPool::connect(&cluster.url).await.unwrap();
        let ended = sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE outcome = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
        let goodbye = sqlx::query_scalar("SELECT reached FROM node_counts WHERE node = 'goodbye'")
            .fetch_one(&pool)
            .await
            .unwrap();
        let rows = sqlx::query_as("SELECT id, outcome, completed FROM calls ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        let counted: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT broadcast, calls, completed FROM call_counts")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        (ended, goodbye, rows, counted)
    });
    let story = format!(
        "rows (id, outcome, completed): {rows:?}\ncall_counts (broadcast, calls, completed): \
         {counted:?}\nkuma's log:\n{}",
        calls_story(&kuma.log)
    );
    // Every call sipp completed answered the whole poll and heard goodbye: each
    // of its answers is counted once, and no other call left any.
    let r = results(&cluster.url, &data);
    assert_eq!(r["calls"], completed, "{r}\n{story}");
    assert_eq!(r["completed"], completed, "{r}\n{story}");
    assert_eq!(r["languages"]["fr"], completed, "{r}\n{story}");
    for (question, choice, _) in POLL {
        assert_eq!(
            count(&r, question, choice),
            completed,
            "{question}: {r}\n{story}"
        );
    }
    assert_eq!(ended as u64, completed, "{story}");
    assert_eq!(goodbye as u64, completed, "{story}");
    // And the outage did happen, in the middle of calls.
    assert!(
        failed > 0,
        "calls during the outage are refused: was the database stopped?"
    );
    assert!(spooled > 0, "the calls in progress wrote through the spool");
    assert_eq!(replayed, spooled);
    assert_eq!(metric(kuma.http, "kuma_spool_rejected_total"), 0);
}

/// A call's row, as the failure message shows it: id, outcome, completed.
type CallRow = (i64, Option<String>, bool);

/// The lines of kuma's log that tell what became of each call and of the
/// database (a call stored, refused or ended; the spool), for a failure's message.
fn calls_story(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| !l.contains(" play prompts="))
        .filter(|l| l.contains("call{") || l.contains("spool") || l.contains("database"))
        .map(|l| l.chars().take(240).collect::<String>() + "\n")
        .collect()
}

// ---- kuma serve killed on SQLite ------------------------------------------------

/// What kuma's log says of each call: its row in the store, and the prompts it
/// began to play, in order (lines `call{call=ID …}: … call stored row=N` and
/// `… play prompts=["…"]`).
fn played(log: &Path) -> BTreeMap<i64, Vec<String>> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut rows: BTreeMap<String, i64> = BTreeMap::new();
    let mut prompts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let Some(call) = line
            .split("call{call=")
            .nth(1)
            .and_then(|r| r.split([' ', '}']).next())
        else {
            continue;
        };
        if let Some(row) = line.split("call stored row=").nth(1) {
            rows.insert(call.to_string(), row.trim().parse().unwrap());
        } else if let Some(list) = line.split(" play prompts=").nth(1) {
            let names = list
                .trim()
                .trim_matches(['[', ']'])
                .split(", ")
                .map(|n| n.trim_matches('"').to_string());
            prompts.entry(call.to_string()).or_default().extend(names);
        }
    }
    rows.into_iter()
        .map(|(call, row)| (row, prompts.remove(&call).unwrap_or_default()))
        .collect()
}

/// How many answers the log shows acknowledged: their question's next prompt begun.
fn acknowledged(calls: &BTreeMap<i64, Vec<String>>) -> usize {
    calls
        .values()
        .map(|prompts| {
            POLL.iter()
                .filter(|(_, _, next)| prompts.iter().any(|p| p == next))
                .count()
        })
        .sum()
}

#[test]
fn kuma_killed_during_calls_on_sqlite_keeps_every_answer_acknowledged() {
    if !have_sipp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    prepared_data(&data);
    let database = format!("sqlite://{}/kuma.db", data.display());
    let mut kuma = Kuma::start(dir.path(), &data, &database);
    let stats = dir.path().join("sipp.csv");
    // 16 callers, four a second: when kuma is killed they are all in the middle
    // of the poll, each at its own question.
    let mut callers = sipp(dir.path(), kuma.sip, 16, "4", &stats);
    // Killed once a dozen answers were acknowledged (their next prompt begun), by
    // the log rather than the clock: on a loaded machine the calls start late.
    let until = Instant::now() + Duration::from_secs(90);
    while acknowledged(&played(&kuma.log)) < 12 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    kuma.child.kill().unwrap(); // SIGKILL
    kuma.child.wait().unwrap();
    let _ = callers.kill();
    let _ = callers.wait();
    let log = kuma.log.clone();
    drop(kuma);

    // It starts again on the same database, and answers.
    let again = Kuma::start(dir.path(), &data, &database);
    assert!(again.wait_healthy(Duration::from_secs(10)));
    drop(again);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stored: BTreeSet<(i64, String, String)> = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT call, question, choice FROM answers")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows.into_iter().collect()
    });
    let mut acknowledged = 0;
    for (row, prompts) in played(&log) {
        for (question, choice, next) in POLL {
            if prompts.iter().any(|p| p == next) {
                acknowledged += 1;
                assert!(
                    stored.contains(&(row, question.to_string(), choice.to_string())),
                    "call {row}: kuma began to play {next} after {question} = {choice}, which is not stored (stored: {stored:?})"
                );
            }
        }
    }
    eprintln!(
        "{acknowledged} answers acknowledged before the kill, {} stored",
        stored.len()
    );
    assert!(
        acknowledged >= 10,
        "the kill came too early to test anything"
    );
    assert!(
        acknowledged < 16 * POLL.len(),
        "the kill came after the calls"
    );
}
