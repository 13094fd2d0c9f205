//! The voice-provider webhooks of `kuma serve` (src/webhook, src/serve/webhook_routes.rs),
//! against the real binary: whole calls replayed request by request as Africa's
//! Talking and Twilio send them, every reply compared with a snapshot under
//! `tests/fixtures/webhook/` (`KUMA_UPDATE_SNAPSHOTS=1` rewrites them), then the
//! stored results read back with `kuma results` and from the database.
//!
//! The campaign is the example campaign, copied without its `[schedule]` (and the
//! `poll_closed` node only the schedule leads to) so that its poll is open
//! whatever day the tests run. Provider recordings are served by
//! a small HTTP server the test starts on a port chosen at run time.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{count, prepared_data, repo};
use serde_json::Value;

const CAMPAIGN: &str = "stop-trafficking-mali";
const PUBLIC: &str = "https://ivr.example.test";
const AT_SECRET: &str = "at-secret-0123456789";
const TWILIO_TOKEN: &str = "twilio-test-token";
const CALLER: &str = "+22370000001";

/// A running `kuma serve`, stopped when dropped.
struct Server {
    child: Child,
    http: SocketAddr,
    data: PathBuf,
    campaigns: PathBuf,
    database: String,
    _dir: Arc<tempfile::TempDir>,
}

struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The example campaign without its schedule, its audio where it is.
fn campaigns_folder(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(repo().join("campaigns").join(format!("{CAMPAIGN}.toml"))).unwrap();
    let start = text.find("[schedule]").unwrap();
    let end = text.find("[defaults]").unwrap();
    let audio = repo().join("audio").join(CAMPAIGN);
    let text = format!("{}{}", &text[..start], &text[end..]);
    // Its `closed` node is unreachable without the schedule.
    let closed = text.find("[[node]]\nid = \"poll_closed\"").unwrap();
    let after = closed + text[closed + 1..].find("[[node]]").unwrap() + 1;
    let text = format!("{}{}", &text[..closed], &text[after..]).replace(
        "audio = \"../audio/stop-trafficking-mali\"",
        &format!("audio = {:?}", audio.display().to_string()),
    );
    let folder = dir.join("campaigns");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join(format!("{CAMPAIGN}.toml")), text).unwrap();
    folder
}

impl Server {
    fn start(env: &[(&str, &str)]) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let data = dir.path().join("data");
        prepared_data(&data);
        let campaigns = campaigns_folder(dir.path());
        let database = format!("sqlite://{}/kuma.db", data.display());
        Server::start_on(dir, data, campaigns, database, env)
    }

    /// Another server on the same data and database (a restart).
    fn restart(self, env: &[(&str, &str)]) -> Server {
        let (dir, data, campaigns, database) = (
            Arc::clone(&self._dir),
            self.data.clone(),
            self.campaigns.clone(),
            self.database.clone(),
        );
        drop(self);
        Server::start_on(dir, data, campaigns, database, env)
    }

    fn start_on(
        dir: Arc<tempfile::TempDir>,
        data: PathBuf,
        campaigns: PathBuf,
        database: String,
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuma"));
        cmd.args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--campaigns")
            .arg(&campaigns)
            .arg("--data")
            .arg(&data)
            .arg("--database")
            .arg(&database);
        for var in [
            "KUMA_CONFIG",
            "KUMA_PUBLIC_URL",
            "KUMA_TWILIO_AUTH_TOKEN",
            "KUMA_AT_PATH_SECRET",
            "KUMA_AT_ALLOW",
            "KUMA_AT_OPEN",
            "KUMA_RECORDING_HOSTS",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (stderr, log) = common::stderr_log(dir.path());
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let (_, http) = common::serve_addresses(&mut child, &log);
        Server {
            http,
            child,
            data,
            campaigns,
            database,
            _dir: dir,
        }
    }

    fn kuma(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(args)
            .arg("--campaigns")
            .arg(&self.campaigns)
            .arg("--data")
            .arg(&self.data)
            .arg("--database")
            .arg(&self.database)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kuma {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn results(&self) -> Value {
        serde_json::from_str(&self.kuma(&["results", CAMPAIGN, "--format", "json"])).unwrap()
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let r = common::http(self.http, method, path, headers, Some(body));
        Reply {
            status: r.status,
            head: r.head,
            body: r.body,
        }
    }

    /// A form POST.
    fn post(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Reply {
        let body = encode(form);
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        self.request("POST", path, &h, body.as_bytes())
    }

    /// A POST as Africa's Talking sends it, to the secret path.
    fn at(&self, query: &str, form: &[(&str, &str)]) -> Reply {
        self.post(
            &format!("/voice/africastalking/{AT_SECRET}{query}"),
            form,
            &[],
        )
    }

    /// A POST as Twilio sends it, signed with the token over the public URL.
    fn twilio(&self, path_and_query: &str, form: &[(&str, &str)]) -> Reply {
        let params: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sig = kuma::webhook::twilio::signature(
            TWILIO_TOKEN,
            &format!("{PUBLIC}{path_and_query}"),
            &params,
        )
        .unwrap();
        self.post(path_and_query, form, &[("X-Twilio-Signature", &sig)])
    }

    /// Rows of the calls table, read from the database itself.
    fn calls(&self) -> Vec<HashMap<String, String>> {
        self.rows::<(String, String, String, String, bool)>(
            "SELECT channel, caller, COALESCE(outcome, ''), COALESCE(language, ''), completed FROM calls ORDER BY id",
        )
        .into_iter()
        .map(|(channel, caller, outcome, language, completed)| {
            HashMap::from([
                ("channel".to_string(), channel),
                ("caller".to_string(), caller),
                ("outcome".to_string(), outcome),
                ("language".to_string(), language),
                ("completed".to_string(), completed.to_string()),
            ])
        })
        .collect()
    }

    /// An Africa's Talking caller picks French, then the voice message, and the
    /// provider announces their recording at `url`.
    fn leave_a_message(&self, session: &'static str, url: &'static str) {
        let session = ("sessionId", session);
        let first = [
            session,
            ("isActive", "1"),
            ("callerNumber", CALLER),
            ("destinationNumber", "2000"),
        ];
        assert_eq!(self.at("", &first).status, 200);
        self.at(
            "?step=1",
            &[session, ("isActive", "1"), ("dtmfDigits", "1")],
        );
        let record = self.at(
            "?step=2",
            &[session, ("isActive", "1"), ("dtmfDigits", "3")],
        );
        assert!(record.text().contains("<Record"), "{}", record.text());
        let r = self.at(
            "?step=3",
            &[session, ("isActive", "1"), ("recordingUrl", url)],
        );
        assert_eq!(r.status, 200, "{url}");
    }

    /// The provider recordings to fetch: (status, attempts).
    fn fetches(&self) -> Vec<(String, i64)> {
        let url = format!("sqlite://{}/kuma.db", self.data.display());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                let rows =
                    sqlx::query_as("SELECT status, attempts FROM recording_fetches ORDER BY id")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                pool.close().await;
                rows
            })
    }

    /// The rows of `sql`, read from the server's SQLite database.
    fn rows<T>(&self, sql: &'static str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin + 'static,
    {
        let url = format!("sqlite://{}/kuma.db", self.data.display());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows
            })
    }

    /// Calls that reached each node, from the funnel's counters.
    fn nodes_reached(&self) -> HashMap<String, i64> {
        self.rows::<(String, i64)>("SELECT node, SUM(reached) FROM node_counts GROUP BY node")
            .into_iter()
            .collect()
    }

    /// Waits for the provider recordings to be fetched: (node, file, duration ms).
    fn recordings(&self, expected: usize) -> Vec<(String, String, i64)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let rows = self.rows("SELECT node, file, duration_ms FROM recordings ORDER BY id");
            if rows.len() >= expected || Instant::now() > deadline {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(form: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Compares a reply with its snapshot (or writes it with `KUMA_UPDATE_SNAPSHOTS=1`).
fn snapshot(name: &str, r: &Reply) {
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    assert!(r.head.contains("content-type: text/xml"), "{}", r.head);
    let file = repo()
        .join("tests/fixtures/webhook")
        .join(format!("{name}.xml"));
    let got = r.text();
    if std::env::var_os("KUMA_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (KUMA_UPDATE_SNAPSHOTS=1 writes it)",
            file.display()
        )
    });
    assert_eq!(got, want, "reply {name} differs from {}", file.display());
}

/// A one-second 8 kHz WAV of a tone, as a provider's recording.
fn wav_bytes(seconds: f64) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for i in 0..(8000.0 * seconds) as u32 {
        let s = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin() * 8000.0;
        w.write_sample(s as i16).unwrap();
    }
    w.finalize().unwrap();
    cursor.into_inner()
}

/// A provider's media server: 404 for the first `fail` requests (the recording is
/// "not ready"), then the WAV. Counts the requests.
fn media_server(fail: usize, wav: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < fail {
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            } else {
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: audio/x-wav\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    wav.len()
                );
                let _ = s.write_all(&wav);
            }
        }
    });
    (addr, hits)
}

/// `at_env()`, and the test's media server trusted as a whole origin (a media
/// server on loopback is refused otherwise).
fn media_env(media: SocketAddr) -> Vec<(&'static str, &'static str)> {
    let mut env = at_env();
    env.push(("KUMA_RECORDING_HOSTS", format!("http://{media}").leak()));
    env
}

fn at_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("KUMA_PUBLIC_URL", PUBLIC),
        ("KUMA_AT_PATH_SECRET", AT_SECRET),
        ("KUMA_TWILIO_AUTH_TOKEN", TWILIO_TOKEN),
    ]
}

#[test]
fn africas_talking_runs_the_example_campaign_end_to_end() {
    let (media, hits) = media_server(2, wav_bytes(1.5));
    let s = Server::start(&media_env(media));
    let session = [("sessionId", "ATVId_e2e"), ("isActive", "1")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut f = session.to_vec();
        f.extend_from_slice(extra);
        f
    };

    // With a secret path, the bare path does not exist.
    let bare = s.post(
        "/voice/africastalking",
        &with(&[("callerNumber", CALLER), ("destinationNumber", "2000")]),
        &[],
    );
    assert_eq!(bare.status, 404);
    assert!(s.calls().is_empty());

    let first = with(&[
        ("direction", "Inbound"),
        ("callerNumber", CALLER),
        ("destinationNumber", "2000"),
    ]);
    snapshot("at-01-start", &s.at("", &first));
    // The first request again (a provider retry): the same reply, one call.
    snapshot("at-01-start", &s.at("", &first));
    // French.
    snapshot(
        "at-02-french",
        &s.at("?step=1", &with(&[("dtmfDigits", "2")])),
    );
    // No key at the menu: the GetDigits timed out, the Redirect came.
    snapshot(
        "at-03-no-input",
        &s.at("?step=2", &[session[0], session[1]]),
    );
    // The poll.
    snapshot(
        "at-04-poll",
        &s.at("?step=3", &with(&[("dtmfDigits", "2")])),
    );
    let q1 = s.at("?step=4", &with(&[("dtmfDigits", "1")]));
    snapshot("at-05-answer", &q1);
    // The same callback replayed with another key: nothing changes, same reply.
    let replay = s.at("?step=4", &with(&[("dtmfDigits", "2")]));
    assert_eq!(replay.text(), q1.text());
    // An invalid key, then the answers.
    snapshot(
        "at-06-invalid",
        &s.at("?step=5", &with(&[("dtmfDigits", "9")])),
    );
    for (step, key) in [(6, "2"), (7, "3"), (8, "1"), (9, "1")] {
        let r = s.at(&format!("?step={step}"), &with(&[("dtmfDigits", key)]));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Back at the menu after the poll: leave a message.
    snapshot(
        "at-07-record",
        &s.at("?step=10", &with(&[("dtmfDigits", "3")])),
    );
    let recording_url: &'static str = format!("http://{media}/recordings/ATVId_e2e.wav").leak();
    let after = s.at("?step=11", &with(&[("recordingUrl", recording_url)]));
    snapshot("at-08-recorded", &after);
    // Goodbye: the document ends, and so does the call.
    snapshot(
        "at-09-goodbye",
        &s.at("?step=12", &with(&[("dtmfDigits", "0")])),
    );
    let end = s.at(
        "",
        &[
            ("sessionId", "ATVId_e2e"),
            ("isActive", "0"),
            ("durationInSeconds", "95"),
            ("amount", "0.0"),
            ("currencyCode", "KES"),
        ],
    );
    assert_eq!(end.status, 200);
    // A late callback for the finished call: a graceful end, nothing stored.
    snapshot(
        "at-10-finished",
        &s.at("?step=12", &with(&[("dtmfDigits", "1")])),
    );

    let r = s.results();
    assert_eq!(r["calls"], 1, "{r}");
    assert_eq!(r["completed"], 1, "{r}");
    assert_eq!(r["languages"]["fr"], 1, "{r}");
    assert_eq!(count(&r, "q_offered_work", "yes"), 1);
    assert_eq!(count(&r, "q_know_signs", "no"), 1);
    assert_eq!(count(&r, "q_would_report", "not_sure"), 1);
    assert_eq!(count(&r, "q_gender", "woman"), 1);
    assert_eq!(count(&r, "q_region", "bamako"), 1);
    let calls = s.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["channel"], "africastalking");
    // The funnel counts the nodes a provider's call went through, as a SIP call's.
    let reached = s.nodes_reached();
    for node in ["q_offered_work", "q_region", "leave_message"] {
        assert_eq!(reached.get(node), Some(&1), "{node}: {reached:?}");
    }
    assert_eq!(calls[0]["outcome"], "completed");
    assert!(calls[0]["caller"].starts_with("c_"), "{:?}", calls[0]);
    assert!(!calls[0]["caller"].contains("70000001"));

    // The recording: not ready twice, then fetched, decoded, stored with its length.
    let recs = s.recordings(1);
    assert_eq!(recs.len(), 1, "the recording was not fetched");
    let (node, file, ms) = &recs[0];
    assert_eq!(node, "leave_message");
    assert!((1400..=1600).contains(ms), "{ms} ms");
    assert!(
        Path::new(file).starts_with(s.data.join("recordings")),
        "{file}"
    );
    let wav = hound::WavReader::open(file).unwrap();
    assert_eq!(wav.spec().sample_rate, 8000);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[test]
fn twilio_runs_the_example_campaign_end_to_end() {
    let (media, _) = media_server(0, wav_bytes(2.0));
    let s = Server::start(&media_env(media));
    let sid = ("CallSid", "CA0123456789abcdef0123456789abcdef");
    let live = |extra: &[(&'static str, &'static str)]| {
        let mut f = vec![sid, ("CallStatus", "in-progress")];
        f.extend_from_slice(extra);
        f
    };

    // Unsigned, or signed with another token: refused before anything is read.
    let start = [
        sid,
        ("AccountSid", "AC0"),
        ("From", CALLER),
        ("To", "2000"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ];
    assert_eq!(s.post("/voice/twilio", &start, &[]).status, 403);
    let forged = s.post(
        "/voice/twilio",
        &start,
        &[("X-Twilio-Signature", "GvWf1cFY/Q7PnoempGyD5oXAezc=")],
    );
    assert_eq!(forged.status, 403);
    assert!(s.calls().is_empty());

    snapshot("twilio-01-start", &s.twilio("/voice/twilio", &start));
    // Bambara, then the helpline.
    snapshot(
        "twilio-02-bambara",
        &s.twilio("/voice/twilio?step=1", &live(&[("Digits", "1")])),
    );
    snapshot(
        "twilio-03-dial",
        &s.twilio("/voice/twilio?step=2", &live(&[("Digits", "4")])),
    );
    // The helpline is busy: on_fail, back to the menu.
    snapshot(
        "twilio-04-busy",
        &s.twilio("/voice/twilio?step=3", &live(&[("DialCallStatus", "busy")])),
    );
    // The poll, every question answered.
    s.twilio("/voice/twilio?step=4", &live(&[("Digits", "2")]));
    for (step, key) in [(5, "2"), (6, "1"), (7, "1"), (8, "2"), (9, "7")] {
        let r = s.twilio(
            &format!("/voice/twilio?step={step}"),
            &live(&[("Digits", key)]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A message.
    snapshot(
        "twilio-05-record",
        &s.twilio("/voice/twilio?step=10", &live(&[("Digits", "3")])),
    );
    let recording_url: &'static str =
        format!("http://{media}/2010-04-01/Accounts/AC0/Recordings/RE1").leak();
    snapshot(
        "twilio-06-recorded",
        &s.twilio(
            "/voice/twilio?step=11",
            &live(&[
                ("RecordingUrl", recording_url),
                ("RecordingDuration", "2"),
                ("Digits", "#"),
            ]),
        ),
    );
    // The caller hangs up at the menu: the status callback ends the call.
    let end = s.twilio(
        "/voice/twilio/status",
        &[sid, ("CallStatus", "completed"), ("CallDuration", "120")],
    );
    assert_eq!(end.status, 200, "{}", end.text());
    // Late: the Gather's empty result after the hang-up.
    snapshot(
        "twilio-07-finished",
        &s.twilio("/voice/twilio?step=12", &live(&[])),
    );

    let r = s.results();
    assert_eq!(r["calls"], 1, "{r}");
    assert_eq!(r["completed"], 0, "{r}");
    assert_eq!(r["languages"]["bm"], 1, "{r}");
    assert_eq!(count(&r, "q_offered_work", "no"), 1);
    assert_eq!(count(&r, "q_know_signs", "yes"), 1);
    assert_eq!(count(&r, "q_would_report", "yes"), 1);
    assert_eq!(count(&r, "q_gender", "man"), 1);
    assert_eq!(count(&r, "q_region", "other"), 1);
    let calls = s.calls();
    assert_eq!(calls[0]["channel"], "twilio");
    assert_eq!(calls[0]["outcome"], "caller_hangup");
    assert!(calls[0]["caller"].starts_with("c_"));
    let recs = s.recordings(1);
    assert_eq!(recs.len(), 1);
    assert!((1900..=2100).contains(&recs[0].2), "{:?}", recs[0]);
}

#[test]
fn a_call_continues_on_a_restarted_server() {
    let s = Server::start(&at_env());
    let first = [
        ("sessionId", "ATVId_restart"),
        ("isActive", "1"),
        ("callerNumber", CALLER),
        ("destinationNumber", "2000"),
    ];
    assert_eq!(s.at("", &first).status, 200);
    let s = s.restart(&at_env());
    let r = s.at(
        "?step=1",
        &[
            ("sessionId", "ATVId_restart"),
            ("isActive", "1"),
            ("dtmfDigits", "3"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("/audio/stop-trafficking-mali/snk/welcome.mp3"),
        "{}",
        r.text()
    );
    assert_eq!(s.results()["languages"]["snk"], 1);
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let s = Server::start(&at_env());
    let at = |form: &[(&str, &str)]| s.at("", form);
    // Missing fields, bad values, a 500-key string.
    let r = at(&[("isActive", "1")]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("sessionId"), "{}", r.text());
    assert_eq!(at(&[("sessionId", "x"), ("isActive", "maybe")]).status, 400);
    let keys = "1".repeat(500);
    let r = at(&[("sessionId", "x"), ("isActive", "1"), ("dtmfDigits", &keys)]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("dtmfDigits"));
    assert_eq!(
        s.at("?step=zz", &[("sessionId", "x"), ("isActive", "1")])
            .status,
        400
    );
    // A huge body.
    let huge = vec![b'a'; 1024 * 1024];
    let r = s.request(
        "POST",
        &format!("/voice/africastalking/{AT_SECRET}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &huge,
    );
    assert_eq!(r.status, 413);
    // A wrong secret.
    assert_eq!(
        s.post(
            "/voice/africastalking/wrong-secret-0000000",
            &[("sessionId", "x"), ("isActive", "1")],
            &[]
        )
        .status,
        404
    );
    // A number no campaign lists: rejected.
    snapshot(
        "at-unknown-number",
        &at(&[
            ("sessionId", "x1"),
            ("isActive", "1"),
            ("destinationNumber", "9999"),
        ]),
    );
    // A callback for a call never started: a graceful end.
    snapshot(
        "twilio-unknown-session",
        &s.twilio(
            "/voice/twilio?step=3",
            &[
                ("CallSid", "CAnever"),
                ("CallStatus", "in-progress"),
                ("Digits", "1"),
            ],
        ),
    );
    let r = s.twilio(
        "/voice/twilio",
        &[("CallSid", "CA1"), ("CallStatus", "odd")],
    );
    assert_eq!(r.status, 400);
    assert!(s.calls().is_empty());
    assert_eq!(s.results()["calls"], 0);

    // Closed by default: without a token the Twilio routes do not exist, nor the
    // Africa's Talking one without a secret path or at_open.
    let s = Server::start(&[("KUMA_PUBLIC_URL", PUBLIC)]);
    for path in [
        "/voice/twilio",
        "/voice/twilio/status",
        "/voice/africastalking",
    ] {
        let r = s.post(
            path,
            &[
                ("CallSid", "CA1"),
                ("CallStatus", "ringing"),
                ("sessionId", "x"),
                ("isActive", "1"),
                ("destinationNumber", "2000"),
            ],
            &[],
        );
        assert_eq!(r.status, 404, "{path}");
    }
    assert!(s.calls().is_empty());
    // Opened on purpose: said at start-up; without a public URL, everything waits.
    let s = Server::start(&[("KUMA_AT_OPEN", "true")]);
    let r = s.post(
        "/voice/africastalking",
        &[("sessionId", "x"), ("isActive", "1")],
        &[],
    );
    assert_eq!(r.status, 503);
    assert!(r.text().contains("KUMA_PUBLIC_URL"));
    // An allowlist that does not hold the loopback address.
    let s = Server::start(&[
        ("KUMA_PUBLIC_URL", PUBLIC),
        ("KUMA_AT_OPEN", "true"),
        ("KUMA_AT_ALLOW", "192.0.2.0/24"),
    ]);
    let r = s.post(
        "/voice/africastalking",
        &[("sessionId", "x"), ("isActive", "1")],
        &[],
    );
    assert_eq!(r.status, 403);
    let s = Server::start(&[
        ("KUMA_PUBLIC_URL", PUBLIC),
        ("KUMA_AT_OPEN", "true"),
        ("KUMA_AT_ALLOW", "127.0.0.0/8"),
    ]);
    let r = s.post(
        "/voice/africastalking",
        &[
            ("sessionId", "x"),
            ("isActive", "1"),
            ("destinationNumber", "2000"),
        ],
        &[],
    );
    assert_eq!(r.status, 200);
}

/// The paths (under the public URL) of every prompt a reply asks to play.
fn prompt_paths(xml: &str) -> Vec<String> {
    xml.split(PUBLIC)
        .skip(1)
        .filter_map(|rest| rest.split(['"', '<']).next())
        .filter(|p| p.starts_with("/audio/"))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_prompt_a_reply_names_is_served() {
    let s = Server::start(&at_env());
    let at = s.at(
        "",
        &[
            ("sessionId", "ATVId_prompts"),
            ("isActive", "1"),
            ("destinationNumber", "2000"),
        ],
    );
    let tw = s.twilio(
        "/voice/twilio",
        &[
            ("CallSid", "CAprompts"),
            ("CallStatus", "ringing"),
            ("To", "2000"),
        ],
    );
    let (at, tw) = (prompt_paths(&at.text()), prompt_paths(&tw.text()));
    assert_eq!(at.len(), 3, "{at:?}");
    assert_eq!(tw.len(), 3, "{tw:?}");
    for path in at {
        assert!(path.ends_with(".mp3"), "{path}");
        let r = s.request("GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.head.contains("content-type: audio/mpeg"), "{}", r.head);
        assert!(r.head.contains("etag: "), "{}", r.head);
    }
    for path in tw {
        assert!(path.ends_with(".wav"), "{path}");
        let r = s.request("GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        let wav = hound::WavReader::new(std::io::Cursor::new(&r.body)).unwrap();
        assert_eq!(wav.spec().sample_rate, 8000);
        assert!(wav.duration() > 8000, "a real prompt, longer than a second");
    }
}

#[test]
fn a_recording_never_ready_stays_pending_and_is_fetched_after_a_restart() {
    // The whole first round of tries fails; the next try works.
    let (media, hits) = media_server(5, wav_bytes(1.0));
    let s = Server::start(&media_env(media));
    let url: &'static str = format!("http://{media}/rec/pending.wav").leak();
    s.leave_a_message("ATVId_pending", url);
    // Five tries, with growing pauses (1 + 2 + 4 + 8 s), all refused.
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.fetches() != vec![("pending".to_string(), 5)] {
        assert!(Instant::now() < deadline, "{:?}", s.fetches());
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 5);
    assert!(
        s.recordings(0).is_empty(),
        "no row before the audio is there"
    );
    // kuma restarts: the pending fetch is tried again, and works.
    let s = s.restart(&media_env(media));
    let recs = s.recordings(1);
    assert_eq!(recs.len(), 1, "{:?}", s.fetches());
    assert_eq!(recs[0].0, "leave_message");
    assert_eq!(s.fetches(), vec![("done".to_string(), 6)]);
}

/// A listener that counts the connections made to it, and answers each with
/// `reply`.
fn listener(reply: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(reply.as_bytes());
        }
    });
    (addr, hits)
}

/// A forged `recordingUrl` must never make kuma fetch an address of the station's
/// network: loopback, a private address, a host not in `recording_hosts`, or an
/// allowed origin that redirects to loopback. None is requested (the listeners
/// see no connection) and each fetch is marked failed at once, not retried.
#[test]
fn a_recording_url_on_loopback_private_or_redirecting_there_is_never_requested() {
    let (inside, inside_hits) =
        listener("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into());
    let (redirector, redirector_hits) = listener(format!(
        "HTTP/1.1 302 Found\r\nLocation: http://{inside}/rec.wav\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    // The redirecting server is trusted as a whole origin; the inside one is not.
    let s = Server::start(&media_env(redirector));
    let urls: Vec<&'static str> = vec![
        format!("http://{inside}/rec.wav").leak(),
        format!("https://{inside}/rec.wav").leak(),
        format!("http://localhost:{}/rec.wav", inside.port()).leak(),
        "https://10.0.0.1/rec.wav",
        "https://169.254.169.254/latest/meta-data/",
        "https://evil.example/rec.wav",
        format!("http://{redirector}/redirect.wav").leak(),
    ];
    for (i, url) in urls.iter().enumerate() {
        s.leave_a_message(format!("ATVId_forged_{i}").leak(), url);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = |f: &Vec<(String, i64)>| f.iter().filter(|(st, _)| st == "failed").count();
    while failed(&s.fetches()) < urls.len() {
        assert!(Instant::now() < deadline, "{:?}", s.fetches());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        inside_hits.load(Ordering::SeqCst),
        0,
        "the inside server was requested"
    );
    assert!(
        redirector_hits.load(Ordering::SeqCst) >= 1,
        "the allowed origin was asked (and its redirect refused)"
    );
    assert!(s.recordings(0).is_empty());
    let metrics = s.request("GET", "/metrics", &[], b"");
    assert!(
        metrics
            .text()
            .contains("kuma_recording_fetches_refused_total 7"),
        "{}",
        metrics.text()
    );
}

/// The example campaign with `subscribe = "yes"` on `q_would_report`.
fn subscribe_folder(dir: &Path) -> PathBuf {
    let folder = campaigns_folder(dir);
    let file = folder.join(format!("{CAMPAIGN}.toml"));
    let text = std::fs::read_to_string(&file).unwrap();
    let marked = text.replacen(
        "prompt = \"q_would_report\"\n",
        "prompt = \"q_would_report\"\nsubscribe = \"yes\"\n",
        1,
    );
    assert_ne!(marked, text);
    std::fs::write(&file, marked).unwrap();
    folder
}

/// The subscribers of the database: (pseudonym, bytes of the sealed number).
fn subscribers(database: &str) -> Vec<(String, i64)> {
    const QUERY: &str = "SELECT caller, length(number) FROM subscribers ORDER BY caller";
    if database.starts_with("postgres") {
        return common::pg_rows(database, QUERY)
            .iter()
            .map(|l| {
                let (c, n) = l.split_once('|').unwrap();
                (c.to_owned(), n.parse().unwrap())
            })
            .collect();
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let pool = sqlx::SqlitePool::connect(database).await.unwrap();
            let rows = sqlx::query_as(QUERY).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        })
}

/// A caller answers "yes" to the question that subscribes (their number is
/// kept, sealed), and on a later call answers otherwise: erased. Africa's
/// Talking gives their number as the station's gateway writes it (national:
/// `70000001`), Twilio in E.164 (`+22370000001`): with `[callback]
/// country_code` they are one listener, who subscribes on one channel and
/// unsubscribes on the other.
fn webhook_callers_subscribe_and_unsubscribe(database: Option<String>) {
    const NATIONAL: &str = "70000001";
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let data = dir.path().join("data");
    prepared_data(&data);
    let campaigns = subscribe_folder(dir.path());
    let settings = dir.path().join("kuma.toml");
    std::fs::write(&settings, "[callback]\ncountry_code = \"223\"\n").unwrap();
    let database = database.unwrap_or_else(|| format!("sqlite://{}/kuma.db", data.display()));
    let settings = settings.display().to_string();
    let mut env: Vec<(&str, &str)> = at_env();
    env.push(("KUMA_CONFIG", &settings));
    let s = Server::start_on(dir, data, campaigns, database.clone(), &env);
    // French, the poll, two answers, then q_would_report.
    let keys = |would_report: &'static str| ["2", "2", "1", "2", would_report];

    let at_call = |session: &'static str, would_report: &'static str| {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut f = vec![
                ("sessionId", session),
                ("isActive", "1"),
                ("callerNumber", NATIONAL),
            ];
            f.extend_from_slice(extra);
            f
        };
        let r = s.at(
            "",
            &with(&[("direction", "Inbound"), ("destinationNumber", "2000")]),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        for (step, key) in keys(would_report).into_iter().enumerate() {
            let r = s.at(
                &format!("?step={}", step + 1),
                &with(&[("dtmfDigits", key)]),
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }
    };
    at_call("ATVId_sub_1", "1");
    let kept = subscribers(&database);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].0.starts_with("c_") && kept[0].1 > 24, "{kept:?}");

    let twilio_call = |sid: &'static str, would_report: &'static str| {
        let live = |extra: &[(&'static str, &'static str)]| {
            let mut f = vec![
                ("CallSid", sid),
                ("CallStatus", "in-progress"),
                ("From", CALLER),
                ("To", "2000"),
            ];
            f.extend_from_slice(extra);
            f
        };
        let start = [
            ("CallSid", sid),
            ("AccountSid", "AC0"),
            ("From", CALLER),
            ("To", "2000"),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
        ];
        assert_eq!(s.twilio("/voice/twilio", &start).status, 200);
        for (step, key) in keys(would_report).into_iter().enumerate() {
            let r = s.twilio(
                &format!("/voice/twilio?step={}", step + 1),
                &live(&[("Digits", key)]),
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }
    };
    twilio_call("CA00000000000000000000000000000001", "2");
    assert!(subscribers(&database).is_empty(), "unsubscribed: erased");
    twilio_call("CA00000000000000000000000000000002", "1");
    let again = subscribers(&database);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].0, kept[0].0, "the same caller on either channel");
    at_call("ATVId_sub_2", "2");
    assert!(subscribers(&database).is_empty(), "unsubscribed: erased");
    let r = s.results();
    assert_eq!(count(&r, "q_would_report", "yes"), 2, "{r}");
}

#[test]
fn webhook_callers_subscribe_and_unsubscribe_on_sqlite() {
    webhook_callers_subscribe_and_unsubscribe(None);
}

#[test]
fn webhook_callers_subscribe_and_unsubscribe_on_postgresql() {
    let Some(admin) = common::postgres_admin_url() else {
        return;
    };
    let db = common::PgDatabase::new(&admin);
    webhook_callers_subscribe_and_unsubscribe(Some(db.url.clone()));
}
