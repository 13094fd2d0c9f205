//! Missed-call call-backs end to end: a real `kuma serve`, sipp as the listener who
//! beeps the call-back number, and sipp again as the trunk and the listener's phone
//! (answering after a digest challenge and pressing keys, busy, refusing, never
//! answering). Checked through `kuma results` and `kuma callbacks`. Every port is
//! chosen at run time.
//!
//! Needs `sipp` (Debian's sip-tester); `.ci/run` installs it. Without it, outside
//! CI, the tests say so and pass.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    PgDatabase, count, free_port, have_sipp, pg_rows, postgres_admin_url, prepared_data, repo,
};
use kuma::outbound::Policy;
use kuma::outbound::sealed::Sealer;
use kuma::secret::Pseudonymizer;
use kuma::store::{NewCallback, Store};
use serde_json::Value;

const CAMPAIGN: &str = "stop-trafficking-mali";
const SECRET: &str = "one secret shared by every kuma";

/// The listener's number without its last digit: sipp appends the call's number.
const LISTENER: &str = "+2237012345";

/// The example campaign, with its poll open whenever the campaign runs (so the
/// test does not depend on the day it runs), answering "yes" to q_would_report
/// subscribing the caller to calls after each broadcast, in a folder of its own.
/// `broadcasts` replaces the schedule's broadcasts when given.
fn campaigns(dir: &Path, broadcasts: Option<&str>) -> PathBuf {
    let folder = dir.join("campaigns");
    std::fs::create_dir_all(&folder).unwrap();
    let text = common::open_poll_text().replace(
        "prompt = \"q_would_report\"\n",
        "prompt = \"q_would_report\"\nsubscribe = \"yes\"\n",
    );
    let text = match broadcasts {
        Some(b) => text.replace(
            "broadcasts = [\"0 0 19 * * Tue\", \"0 30 8 * * Sat\"]",
            &format!("broadcasts = [\"{b}\"]"),
        ),
        None => text,
    };
    assert!(text.contains("subscribe = \"yes\""));
    std::fs::write(folder.join(format!("{CAMPAIGN}.toml")), text).unwrap();
    folder
}

/// A `kuma serve` whose trunk is a sipp on `trunk_port`, stopped when dropped.
struct Server {
    child: Child,
    sip: SocketAddr,
    http: SocketAddr,
    dir: tempfile::TempDir,
    campaigns: PathBuf,
    database: String,
}

impl Server {
    fn start(trunk_port: u16, callback: &str) -> Server {
        Self::start_on(trunk_port, callback, None)
    }

    /// On this database (a fresh SQLite file in its folder by default).
    fn start_on(trunk_port: u16, callback: &str, database: Option<&str>) -> Server {
        Self::start_with(trunk_port, callback, database, None)
    }

    fn start_with(
        trunk_port: u16,
        callback: &str,
        database: Option<&str>,
        broadcasts: Option<&str>,
    ) -> Server {
        // Missed calls are only called back when they come from a trunk: sipp, here.
        Self::start_full(
            trunk_port,
            "trunks = [\"127.0.0.1\"]",
            callback,
            database,
            broadcasts,
        )
    }

    /// With `top` as kuma.toml's top-level settings.
    fn start_full(
        trunk_port: u16,
        top: &str,
        callback: &str,
        database: Option<&str>,
        broadcasts: Option<&str>,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepared_data(&data);
        let campaigns = campaigns(dir.path(), broadcasts);
        let database = database.map_or_else(
            || format!("sqlite://{}/kuma.db", data.display()),
            str::to_owned,
        );
        let config = dir.path().join("kuma.toml");
        std::fs::write(
            &config,
            format!(
                "{top}\n[trunk]\nuri = \"sip:127.0.0.1:{trunk_port}\"\nuser = \"kuma\"\n\n[callback]\n{callback}\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("kuma.log");
        let mut kuma = Command::new(env!("CARGO_BIN_EXE_kuma"));
        // Call back at once unless the test sets a delay in kuma.toml.
        if callback.contains("delay") {
            kuma.env_remove("KUMA_CALLBACK_DELAY");
        } else {
            kuma.env("KUMA_CALLBACK_DELAY", "0");
        }
        let mut child = kuma
            .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--rtp-ports", "20000-59999", "--config"])
            .arg(&config)
            .arg("--campaigns")
            .arg(&campaigns)
            .arg("--data")
            .arg(&data)
            .arg("--database")
            .arg(&database)
            .env("KUMA_TRUNK_PASSWORD", "s3cret")
            .env("KUMA_LOG", "kuma=info")
            .env("KUMA_SECRET", SECRET)
            .env_remove("KUMA_TRUNK")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let (sip, http) = common::serve_addresses(&mut child, &log);
        Server {
            sip,
            http,
            child,
            dir,
            campaigns,
            database,
        }
    }

    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.http).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: kuma\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kuma.log")).unwrap_or_default()
    }

    fn kuma(&self, args: &[&str]) -> Value {
        let data = self.dir.path().join("data");
        common::kuma_json(&self.campaigns, &self.database, &data, args)
    }

    /// Rows of (text, integer) from the server's SQLite database.
    fn query(&self, sql: &'static str) -> Vec<(String, i64)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = sqlx::SqlitePool::connect(&self.database).await.unwrap();
            let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        })
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
    /// A listener subscribed on an earlier call (as answering the question
    /// does), straight into the database; their pseudonym.
    fn subscribe(&self, number: &str) -> String {
        let caller = Pseudonymizer::new(SECRET.as_bytes()).pseudonym(number);
        let sealed = Sealer::new(SECRET.as_bytes())
            .seal(number, &caller)
            .unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = Store::open(&self.database).await.unwrap();
                store
                    .callbacks()
                    .subscribe(CAMPAIGN, &caller, &sealed, 1000, chrono::Utc::now())
                    .await
                    .unwrap();
                store.close().await;
            });
        caller
    }

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
        self.missed_calls(caller, 1)
    }

    /// `n` listeners beep, from `caller` followed by 1, 2… n.
    fn missed_calls(&self, caller: &str, n: u32) -> Output {
        let out = sipp(self.dir.path())
            .arg("-sf")
            .arg(repo().join("tests/sipp/missed_call.xml"))
            .arg(self.sip.to_string())
            .args(["-s", "2001", "-key", "caller", caller])
            .args(["-m", &n.to_string()])
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
        .args(["-mp", &common::free_media_port().to_string()])
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
    // No call after a broadcast here: that is the next test's.
    let k = Server::start(trunk, "after_broadcast = \"7d\"");
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
    // "Yes" to q_would_report subscribed the listener: their number is kept, sealed.
    let subscribers = k.query("SELECT caller, length(number) FROM subscribers");
    assert_eq!(subscribers.len(), 1, "{subscribers:?}");
    assert_eq!(subscribers[0].0, list[0]["caller"].as_str().unwrap());

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
    let table = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(["callbacks", CAMPAIGN, "--campaigns"])
        .arg(&k.campaigns)
        .args(["--database", &k.database])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert_eq!(
        table.lines().count(),
        4,
        "a header and three call-backs:\n{table}"
    );
    assert!(
        table.contains("missed call") && table.contains("too_soon"),
        "{table}"
    );
    assert!(!table.contains("70123456"), "{table}");
}

/// The trunk's port, held by this test: what kuma sends there within `wait`.
fn trunk_hears(trunk: &std::net::UdpSocket, wait: Duration) -> Option<String> {
    trunk.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    trunk.recv_from(&mut buf).ok().map(|(n, _)| {
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

/// Without `trunks`, anyone who reaches the SIP port could make kuma dial the
/// number they put in `From`: a missed call is refused and nothing is queued or
/// dialled; kuma serve says so at start-up.
#[test]
fn a_missed_call_without_trunks_configured_queues_nothing_and_dials_nothing() {
    if !have_sipp() {
        return;
    }
    let trunk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = trunk.local_addr().unwrap().port();
    let k = Server::start_full(port, "", "", None, None);
    k.missed_call(LISTENER);
    assert_eq!(trunk_hears(&trunk, Duration::from_secs(3)), None);
    assert!(k.callbacks().is_empty(), "{:?}", k.callbacks());
    let log = k.log();
    assert!(log.contains("call-backs are off"), "{log}");
    assert!(log.contains("missed call refused"), "{log}");
    assert!(
        k.metrics()
            .contains("kuma_missed_calls_total{outcome=\"untrusted_source\"} 1"),
        "{}",
        k.metrics()
    );
}

/// A `From` outside `[callback] prefixes` (a premium or foreign number) is refused
/// `number_not_allowed`, and the trunk hears nothing.
#[test]
fn a_number_outside_the_prefixes_is_refused_number_not_allowed() {
    if !have_sipp() {
        return;
    }
    let trunk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = trunk.local_addr().unwrap().port();
    let k = Server::start(
        port,
        "prefixes = [\"+22376\", \"+22366\"]\ncountry_code = \"223\"",
    );
    k.missed_call(LISTENER);
    let list = k.wait_statuses(&["refused"]);
    assert_eq!(list[0]["note"], "number_not_allowed");
    assert_eq!(trunk_hears(&trunk, Duration::from_secs(2)), None);
    assert!(!k.log().contains("call-backs may go to any number"));
}

#[test]
fn subscribers_are_called_after_a_broadcast_and_tried_again_when_busy() {
    if !have_sipp() {
        return;
    }
    // A daily broadcast that started a minute ago (the campaign's zone is UTC+0).
    let b = chrono::Utc::now() - chrono::Duration::seconds(60);
    let cron = b.format("%S %M %H * * *").to_string();
    let trunk = free_port();
    let k = Server::start_with(
        trunk,
        "after_broadcast = \"0\"\nretries = 1\nretry_after = \"1s\"",
        None,
        Some(&cron),
    );
    assert!(k.callbacks().is_empty(), "nobody subscribed yet");
    let phone = phone(k.dir.path(), trunk, "callback_busy.xml", 2, &[]);
    // A listener subscribed on an earlier call (as the previous test does by
    // answering the question).
    let caller = k.subscribe("+22370123456");
    wait_ok(
        phone,
        "the subscriber was called, busy, and called again",
        &k,
    );
    let list = k.wait_statuses(&["busy"]);
    assert_eq!(list[0]["attempts"], 2);
    assert_eq!(list[0]["caller"], caller.as_str());
    assert!(
        k.log()
            .contains("calls to subscribers queued after the broadcast")
    );
    // The subscriber stays subscribed for the next broadcast; this one is done.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(k.callbacks().len(), 1);
}

/// A subscriber the station has blocked since (a listener who asked never to
/// be called again): after the broadcast the trunk hears nothing, their call
/// ends cancelled and their subscription, sealed number and all, is erased.
#[test]
fn a_blocked_subscriber_is_not_called_and_is_erased() {
    let number = "+22370123456";
    let caller = Pseudonymizer::new(SECRET.as_bytes()).pseudonym(number);
    a_subscriber_kuma_may_not_call_is_not_called_and_is_erased(
        number,
        &format!("blocked = [\"{caller}\"]"),
    );
}

#[test]
fn a_subscriber_outside_the_prefixes_is_not_called_and_is_erased() {
    // Subscribed before `prefixes` narrowed to one network.
    a_subscriber_kuma_may_not_call_is_not_called_and_is_erased(
        "+22370123456",
        "prefixes = [\"+22376\"]",
    );
}

/// A subscriber of `number` whom `[callback]` setting `refusing`, set since
/// they subscribed, forbids calling: after the broadcast the trunk hears
/// nothing, the call-back is cancelled and the sealed number erased.
fn a_subscriber_kuma_may_not_call_is_not_called_and_is_erased(number: &str, refusing: &str) {
    if !have_sipp() {
        return;
    }
    let b = chrono::Utc::now() - chrono::Duration::seconds(60);
    let cron = b.format("%S %M %H * * *").to_string();
    let trunk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let k = Server::start_with(
        trunk.local_addr().unwrap().port(),
        &format!("after_broadcast = \"0\"\n{refusing}"),
        None,
        Some(&cron),
    );
    let caller = k.subscribe(number);
    let list = k.wait_statuses(&["cancelled"]);
    assert_eq!(list[0]["caller"], caller.as_str());
    assert_eq!(trunk_hears(&trunk, Duration::from_secs(1)), None);
    let subscribers = k.query("SELECT caller, length(number) FROM subscribers");
    assert!(subscribers.is_empty(), "{subscribers:?}");
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
    let metrics = k.metrics();
    assert!(
        metrics.contains("kuma_callback_attempts_total{status=\"busy\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kuma_missed_calls_total{outcome=\"queued\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_trunk_that_refuses_with_403_is_not_tried_again() {
    if !have_sipp() {
        return;
    }
    let trunk = free_port();
    // The block list names pseudonyms: this one is +22370999991's.
    let blocked = Pseudonymizer::new(SECRET.as_bytes()).pseudonym("+22370999991");
    let k = Server::start(
        trunk,
        &format!("retries = 3\nretry_after = \"1s\"\nblocked = [\"{blocked}\"]"),
    );
    let phone = phone(k.dir.path(), trunk, "callback_forbidden.xml", 1, &[]);
    k.missed_call(LISTENER);
    wait_ok(phone, "one attempt, refused", &k);
    let list = k.wait_statuses(&["failed"]);
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["note"], "sip 403");
    // A blocked number is never called back.
    k.missed_call("+2237099999");
    let list = k.wait_statuses(&["failed", "refused"]);
    assert_eq!(list[1]["note"], "blocked");
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

// ---- several processes, one PostgreSQL database --------------------------------

#[test]
fn two_kuma_processes_on_one_postgresql_dial_each_call_back_once() {
    if !have_sipp() {
        return;
    }
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let db = PgDatabase::new(&admin);
    let trunk = free_port();
    // The call-backs wait 3 s, so that both processes see them due and race for
    // them; busy is final at once (no retries).
    let settings = "delay = \"3s\"\nretries = 0";
    let a = Server::start_on(trunk, settings, Some(&db.url));
    let b = Server::start_on(trunk, settings, Some(&db.url));
    const N: u32 = 12;
    let phone = phone(a.dir.path(), trunk, "callback_busy.xml", N, &[]);
    a.missed_calls(LISTENER, N / 2);
    b.missed_calls("+2237099999", N / 2);
    wait_ok(
        phone,
        "exactly one INVITE per call-back reached the trunk",
        &a,
    );
    let list = a.wait_statuses(&["busy"; N as usize]);
    assert!(list.iter().all(|c| c["attempts"] == 1), "{list:#?}");
    let attempts = pg_rows(
        &db.url,
        "SELECT callback, COUNT(*) FROM callback_attempts GROUP BY callback HAVING COUNT(*) <> 1",
    );
    assert!(attempts.is_empty(), "dialled twice: {attempts:?}");
    let workers = pg_rows(&db.url, "SELECT DISTINCT claimed_by FROM callbacks");
    eprintln!("dialled by {workers:?}");
    assert!(!workers.is_empty());
    // Nothing is left queued or dialled again a moment later.
    std::thread::sleep(Duration::from_secs(2));
    assert!(b.callbacks().iter().all(|c| c["attempts"] == 1));
}

/// Node A of a multi-node deployment queues a call-back and dies before it is due:
/// node B, on the same database, dials it.
#[test]
fn a_call_back_queued_by_a_node_that_died_is_dialled_by_another() {
    if !have_sipp() {
        return;
    }
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let db = PgDatabase::new(&admin);
    let trunk = free_port();
    let settings = "delay = \"3s\"\nretries = 0";
    let a = Server::start_on(trunk, settings, Some(&db.url));
    a.missed_call(LISTENER);
    a.wait_statuses(&["queued"]);
    drop(a); // SIGKILL, before the call-back is due
    let phone_dir = tempfile::tempdir().unwrap();
    let phone = phone(phone_dir.path(), trunk, "callback_busy.xml", 1, &[]);
    let b = Server::start_on(trunk, settings, Some(&db.url));
    wait_ok(phone, "node B dialled the call-back node A queued", &b);
    let list = b.wait_statuses(&["busy"]);
    assert_eq!(list[0]["attempts"], 1, "{list:#?}");
}

/// Many dialers in two "processes" (two stores, two connection pools) claiming
/// one queue as fast as they can: every call-back is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_on_postgresql_never_take_a_call_back_twice() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let db = PgDatabase::new(&admin);
    let a = Store::open(&db.url).await.unwrap();
    let b = Store::open(&db.url).await.unwrap();
    let now = chrono::Utc::now();
    const N: usize = 300;
    for i in 0..N {
        let caller = format!("c_{i:032x}");
        let new = NewCallback {
            campaign: CAMPAIGN,
            caller: &caller,
            sealed: b"sealed",
            at: now,
            due: now,
        };
        let (_, queued) = a.callbacks().queue(&new, &Policy::default()).await.unwrap();
        assert_eq!(queued, Ok(()));
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let stale = now - chrono::Duration::hours(1);
            let worker = format!("w{w}");
            while let Some(c) = store.callbacks().claim(&worker, now, stale).await.unwrap() {
                mine.push(c.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(claimed, all.len(), "a call-back was claimed twice");
    assert_eq!(all.len(), N, "every call-back was claimed");

    // Subscribers on PostgreSQL: queued once per broadcast, whichever process tries.
    for caller in ["c_s1", "c_s2"] {
        a.callbacks()
            .subscribe(CAMPAIGN, caller, b"sealed", 1000, now)
            .await
            .unwrap();
    }
    let b1 = now - chrono::Duration::hours(1);
    let policy = kuma::outbound::Policy::default();
    let (qa, qb) = tokio::join!(
        a.callbacks()
            .queue_broadcast(CAMPAIGN, b1, now, now, &policy),
        b.callbacks()
            .queue_broadcast(CAMPAIGN, b1, now, now, &policy)
    );
    assert_eq!(qa.unwrap() + qb.unwrap(), 2);
    assert!(
        b.callbacks()
            .unsubscribe(CAMPAIGN, "c_s1", now)
            .await
            .unwrap()
    );
    assert_eq!(a.callbacks().subscriber_count(CAMPAIGN).await.unwrap(), 1);
    a.close().await;
    b.close().await;
}

/// Someone who learnt the branch of kuma's call-back INVITE answers it first, from
/// another address, with a 404 that would end the call-back and erase the number.
/// kuma ignores it, counts it and logs its source; the trunk's own 486 decides.
/// The trunk here is a plain socket, so the test knows the branch as a watcher of
/// the traffic would.
#[test]
fn a_forged_answer_from_another_address_does_not_decide_a_call_back() {
    if !have_sipp() {
        return;
    }
    let Ok(forger) = std::net::UdpSocket::bind("127.0.0.2:0") else {
        eprintln!("cannot bind 127.0.0.2 here: skipped");
        return;
    };
    let trunk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    trunk
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let k = Server::start(trunk.local_addr().unwrap().port(), "retries = 0");
    k.missed_call(LISTENER);

    let mut buf = vec![0u8; 65_536];
    let (n, kuma) = trunk.recv_from(&mut buf).unwrap();
    let invite = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(invite.starts_with("INVITE "), "{invite}");
    let header = |name: &str| -> String {
        invite
            .lines()
            .find(|l| {
                l.get(..name.len() + 1)
                    .is_some_and(|h| h.eq_ignore_ascii_case(&format!("{name}:")))
            })
            .unwrap_or_else(|| panic!("no {name} in {invite}"))
            .to_owned()
    };
    let response = |code: u16, reason: &str| {
        format!(
            "SIP/2.0 {code} {reason}\r\n{}\r\n{}\r\n{};tag=t1\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
            header("Via"),
            header("From"),
            header("To"),
            header("Call-ID"),
            header("CSeq"),
        )
    };
    forger
        .send_to(response(404, "Not Found").as_bytes(), kuma)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    trunk
        .send_to(response(486, "Busy Here").as_bytes(), kuma)
        .unwrap();
    // kuma ACKs the trunk's 486 (INVITE retransmissions may come first).
    loop {
        let (n, _) = trunk.recv_from(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        if got.starts_with("ACK ") {
            break;
        }
        assert!(got.starts_with("INVITE "), "{got}");
    }
    let list = k.wait_statuses(&["busy"]);
    assert_eq!(list[0]["note"], "sip 486");
    let metrics = k.metrics();
    assert!(
        metrics.contains("kuma_sip_refused_total{reason=\"response_from_elsewhere\"} 1"),
        "{metrics}"
    );
    let log = k.log();
    assert!(
        log.contains("did not come from where the request went") && log.contains("127.0.0.2"),
        "{log}"
    );
}
