//! The HTTP JSON API of `kuma serve` (src/web), against the real binary: tokens
//! made with `kuma token`, data filled with `kuma call` and `kuma simulate`, and
//! results compared with `kuma results`. HTTP is spoken by hand over a
//! `TcpStream` (HTTP/1.1, `Connection: close`): no client crate needed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{count, prepared_data, repo};

use serde_json::Value;

const CAMPAIGN: &str = "stop-trafficking-mali";
/// Inside the poll window of the Tuesday 1 December 2026 broadcast (19:00 Bamako).
const DURING_BROADCAST: &str = "2026-12-01T19:30";

/// A running `kuma serve`, stopped when dropped.
struct Server {
    child: Child,
    http: SocketAddr,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// One HTTP response.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepared_data(&data);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--campaigns")
            .arg(repo().join("campaigns"))
            .arg("--data")
            .arg(&data)
            .arg("--database")
            .arg(format!("sqlite://{}/kuma.db", data.display()))
            .env_remove("KUMA_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        // "kuma serve: SIP on udp 127.0.0.1:P (and tcp), HTTP on http://127.0.0.1:Q"
        let http = line
            .split("http://")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"));
        Server {
            http: http.trim().parse().unwrap(),
            child,
            data,
            _dir: dir,
        }
    }

    /// Runs `kuma` on the server's database and data folder; its stdout.
    fn kuma(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(args)
            .arg("--campaigns")
            .arg(repo().join("campaigns"))
            .arg("--data")
            .arg(&self.data)
            .arg("--database")
            .arg(format!("sqlite://{}/kuma.db", self.data.display()))
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

    fn token(&self, role: &str, name: &str) -> String {
        let out = self.kuma(&["token", "create", "--role", role, "--name", name]);
        let token = out.trim().to_string();
        assert!(token.starts_with("kuma_") && token.len() == 69, "{out}");
        token
    }

    fn get(&self, path: &str, token: Option<&str>) -> Reply {
        let mut s = TcpStream::connect(self.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.http
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{raw}"));
        Reply {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_error(r: &Reply, status: u16, words: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(
        r.head.contains("content-type: application/json"),
        "{}",
        r.head
    );
    let e = r.json();
    let msg = e["error"].as_str().unwrap_or_else(|| panic!("{}", r.body));
    assert!(msg.contains(words), "{msg}");
}

#[test]
fn tokens_and_roles_guard_every_route() {
    let s = Server::start();
    let results = format!("/api/campaigns/{CAMPAIGN}/results");
    let detail = format!("/api/campaigns/{CAMPAIGN}");

    let r = s.get(&results, None);
    assert_error(&r, 401, "missing token");
    assert!(r.head.contains("www-authenticate: bearer"), "{}", r.head);
    assert_error(&s.get(&results, Some("kuma_nonsense")), 401, "unknown");
    assert_error(&s.get("/api/campaigns", None), 401, "token");

    let analyst = s.token("analyst", "ana");
    let broadcaster = s.token("broadcaster", "studio");
    let admin = s.token("admin", "root");
    assert_ne!(analyst, broadcaster);

    // The analyst reads results and exports, not campaigns.
    assert_eq!(s.get(&results, Some(&analyst)).status, 200);
    let csv = format!("/api/campaigns/{CAMPAIGN}/answers.csv");
    assert_eq!(s.get(&csv, Some(&analyst)).status, 200);
    assert_error(&s.get(&detail, Some(&analyst)), 403, "broadcaster");
    assert_error(&s.get("/api/campaigns", Some(&analyst)), 403, "broadcaster");

    // The broadcaster and the admin also read campaigns.
    let list = s.get("/api/campaigns", Some(&broadcaster));
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    let c = &list["campaigns"][0];
    assert_eq!(c["id"], CAMPAIGN);
    assert_eq!(c["languages"].as_array().unwrap().len(), 3);
    assert_eq!(c["next_broadcasts"].as_array().unwrap().len(), 3);
    assert!(c["poll"]["open"].is_boolean(), "{c}");
    let d = s.get(&detail, Some(&admin));
    assert_eq!(d.status, 200, "{}", d.body);
    let d = d.json();
    assert_eq!(d["campaign"]["id"], CAMPAIGN);
    assert!(!d["campaign"]["nodes"].as_array().unwrap().is_empty());
    assert!(d["poll"]["open"].is_boolean());

    // Unknown campaigns, for a role that may see them.
    assert_error(
        &s.get("/api/campaigns/no-such-campaign", Some(&broadcaster)),
        404,
        "no-such-campaign",
    );
    assert_error(
        &s.get("/api/campaigns/no-such-campaign/results", Some(&analyst)),
        404,
        "unknown campaign",
    );

    // The list never shows a token; a revoked token stops at once.
    let listed = s.kuma(&["token", "list"]);
    assert!(
        listed.contains("ana") && listed.contains("analyst"),
        "{listed}"
    );
    assert!(!listed.contains(&analyst), "{listed}");
    s.kuma(&["token", "revoke", "ana"]);
    assert!(s.kuma(&["token", "list"]).contains("revoked"));
    assert_error(&s.get(&results, Some(&analyst)), 401, "revoked");
    assert_eq!(s.get(&results, Some(&broadcaster)).status, 200);
}

#[test]
fn results_and_export_are_those_of_kuma_results_with_small_groups_masked() {
    let s = Server::start();
    let analyst = s.token("analyst", "ana");
    s.kuma(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 2 1 2 1 1 3 0",
        "--at",
        DURING_BROADCAST,
    ]);
    s.kuma(&[
        "simulate",
        CAMPAIGN,
        "--calls",
        "60",
        "--concurrency",
        "4",
        "--seed",
        "7",
        "--at",
        "2026-12-05T12:00",
    ]);
    let base = format!("/api/campaigns/{CAMPAIGN}");
    let cli = |extra: &[&str]| -> Value {
        let mut args = vec!["results", CAMPAIGN, "--format", "json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&s.kuma(&args)).unwrap()
    };

    // Without a breakdown: exactly the JSON of `kuma results --format json`.
    let r = s.get(&format!("{base}/results"), Some(&analyst));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.head.contains("content-type: application/json"));
    assert_eq!(r.json(), cli(&[]));
    assert_eq!(r.json()["calls"], 61);
    let r = s.get(&format!("{base}/results?broadcast=1"), Some(&analyst));
    assert_eq!(r.json(), cli(&["--broadcast", "1"]));
    let r = s.get(
        &format!("{base}/results?since=2026-12-01T19%3A00&until=2026-12-02"),
        Some(&analyst),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        cli(&["--since", "2026-12-01T19:00", "--until", "2026-12-02"])
    );
    assert!(r.json()["calls"].as_u64().unwrap() >= 1);

    // With one: the same, except breakdown cells below 5 read "<5".
    let api = s
        .get(&format!("{base}/results?by=q_gender"), Some(&analyst))
        .json();
    let exact = cli(&["--by", "q_gender"]);
    assert_eq!(api["calls"], exact["calls"]);
    assert_eq!(api["by"], exact["by"]);
    let (mut masked, mut shown) = (0, 0);
    for (qa, qe) in api["questions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(exact["questions"].as_array().unwrap())
    {
        assert_eq!(qa["answered"], qe["answered"]);
        for (ca, ce) in qa["choices"]
            .as_array()
            .unwrap()
            .iter()
            .zip(qe["choices"].as_array().unwrap())
        {
            assert_eq!(ca["count"], ce["count"], "totals are not masked");
            for (k, n) in ce["by"].as_object().unwrap() {
                if n.as_u64().unwrap() < 5 {
                    assert_eq!(ca["by"][k], "<5", "{ca}");
                    masked += 1;
                } else {
                    assert_eq!(&ca["by"][k], n);
                    shown += 1;
                }
            }
        }
    }
    assert!(masked > 0 && shown > 0, "masked {masked}, shown {shown}");

    // Bad query values: 400 with kuma results' reasons.
    assert_error(
        &s.get(&format!("{base}/results?by=q_nope"), Some(&analyst)),
        400,
        "`q_nope` is not a question of this campaign",
    );
    assert_error(
        &s.get(&format!("{base}/results?broadcast=0"), Some(&analyst)),
        400,
        "numbered from 1",
    );
    assert_error(
        &s.get(&format!("{base}/results?broadcast=9"), Some(&analyst)),
        400,
        "broadcast 9 has no calls yet",
    );
    assert_error(
        &s.get(&format!("{base}/results?since=yesterday"), Some(&analyst)),
        400,
        "bad since",
    );
    assert_error(
        &s.get(&format!("{base}/results?colour=red"), Some(&analyst)),
        400,
        "unknown query parameter `colour`",
    );

    // The export: the rows of `kuma results --format csv`.
    let r = s.get(&format!("{base}/answers.csv"), Some(&analyst));
    assert_eq!(r.status, 200);
    assert!(r.head.contains("content-type: text/csv"), "{}", r.head);
    let cli_csv = s.kuma(&["results", CAMPAIGN, "--format", "csv"]);
    assert_eq!(r.body, cli_csv);
    let mut lines = r.body.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("call,caller,language,question")
    );
    assert!(lines.count() > 60);
    assert!(!r.body.contains("+223"), "no phone numbers");
}

/// GET returning the raw bytes (for audio).
fn get_bytes(http: SocketAddr, path: &str, token: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(http).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
        raw[split + 4..].to_vec(),
    )
}

#[test]
fn broadcasters_list_and_play_the_voice_messages() {
    let k = Server::start();
    // A voice message as kuma serve stores one: a call, its WAV file, its row.
    let wav = k.data.join("message.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for i in 0..16_000 {
        w.write_sample(((i % 40) * 400 - 8000) as i16).unwrap();
    }
    w.finalize().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rid = rt.block_on(async {
        let store = kuma::store::Store::open(&format!("sqlite://{}/kuma.db", k.data.display()))
            .await
            .unwrap();
        let now = chrono::Utc::now();
        let call = store
            .start_call(&kuma::store::NewCall {
                campaign: "stop-trafficking-mali",
                caller: "c_0123456789abcdef",
                channel: "sip",
                started_at: now,
                broadcast: None,
            })
            .await
            .unwrap();
        let file = wav.to_string_lossy().into_owned();
        store
            .add_recording(&kuma::store::NewRecording {
                call,
                node: "leave_message",
                file: &file,
                duration: Duration::from_secs(2),
                at: now,
            })
            .await
            .unwrap()
    });
    let analyst = k.token("analyst", "ana");
    let broadcaster = k.token("broadcaster", "bea");
    let list = "/api/campaigns/stop-trafficking-mali/recordings";
    assert_error(&k.get(list, None), 401, "token");
    assert_error(&k.get(list, Some(&analyst)), 403, "broadcaster");
    assert_error(
        &k.get("/api/campaigns/nope/recordings", Some(&broadcaster)),
        404,
        "nope",
    );
    let r = k.get(list, Some(&broadcaster));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let items = v["recordings"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], rid);
    assert_eq!(items[0]["node"], "leave_message");
    assert_eq!(items[0]["caller"], "c_0123456789abcdef");
    assert_eq!(items[0]["seconds"], 2.0);
    assert!(
        !r.body.contains("message.wav"),
        "the file path is never sent"
    );
    let audio = items[0]["audio"].as_str().unwrap().to_string();
    assert_error(&k.get(&audio, Some(&analyst)), 403, "broadcaster");
    let (head, body) = get_bytes(k.http, &audio, &broadcaster);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: audio/wav"), "{head}");
    assert_eq!(&body[..4], b"RIFF");
    assert_eq!(body.len() as u64, std::fs::metadata(&wav).unwrap().len());
    assert_error(
        &k.get("/api/recordings/999/audio", Some(&broadcaster)),
        404,
        "999",
    );
    assert_error(
        &k.get("/api/recordings/abc/audio", Some(&broadcaster)),
        400,
        "abc",
    );
}

/// Reads Server-Sent Events from a stream until one `data:` line arrives.
fn next_event(reader: &mut BufReader<TcpStream>) -> Value {
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the stream ended");
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            return serde_json::from_str(data).unwrap();
        }
    }
}

#[test]
fn live_results_push_each_new_answer() {
    let k = Server::start();
    let analyst = k.token("analyst", "ana");
    let path = "/api/campaigns/stop-trafficking-mali/results/live";
    assert_error(&k.get(path, None), 401, "token");
    assert_error(
        &k.get(&format!("{path}?by=q_colour"), Some(&analyst)),
        400,
        "q_colour",
    );
    let mut s = TcpStream::connect(k.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {analyst}\r\n\r\n",
        k.http
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let first = next_event(&mut reader);
    assert_eq!(first["calls"], 0);
    // A listener answers (here through the terminal channel, on the same database).
    k.kuma(&[
        "call",
        "stop-trafficking-mali",
        "--digits",
        "2 2 1",
        "--at",
        "2026-12-01T19:30",
    ]);
    let started = std::time::Instant::now();
    let mut pushed = next_event(&mut reader);
    // The call's start and its answer may come as two pushes.
    while count(&pushed, "q_offered_work", "yes") == 0 {
        pushed = next_event(&mut reader);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "pushed within seconds"
    );
    assert_eq!(pushed["calls"], 1);
}
