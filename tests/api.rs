//! The HTTP JSON API of `kuma serve` (src/web), against the real binary: tokens
//! made with `kuma token`, data filled with `kuma call` and `kuma simulate`, and
//! results compared with `kuma results`. HTTP is spoken by hand over a
//! `TcpStream` (HTTP/1.1, `Connection: close`): no client crate needed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, count, repo};

use serde_json::Value;

const CAMPAIGN: &str = "stop-trafficking-mali";
/// Inside the poll window of the Tuesday 1 December 2026 broadcast (19:00 Bamako).
const DURING_BROADCAST: &str = "2026-12-01T19:30";

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
        self.request("GET", path, token, &[], None)
    }

    fn post(&self, path: &str, token: Option<&str>, body: &str) -> Reply {
        self.request("POST", path, token, &[], Some(body.as_bytes()))
    }

    /// One request; the body as text (lossy: use `raw` for audio).
    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let (status, head, body) = self.raw(method, path, token, headers, body);
        Reply {
            status,
            head,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// One request: status, lowercased head, body bytes.
    fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> (u16, String, Vec<u8>) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &auth {
            all.push(("Authorization", a));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            all.push(("Content-Type", "application/json"));
        }
        let r = common::http(self.http, method, path, &all, body);
        (r.status, r.head, r.body)
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

    // The analyst reads results, not campaigns nor rows (row_level_… below).
    assert_eq!(s.get(&results, Some(&analyst)).status, 200);
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

    // A path that does not decode is refused as JSON too, on every route kind.
    for path in [
        "/api/campaigns/%FF/results",
        "/api/campaigns/%FF/results/live",
        "/api/campaigns/%C3%28/funnel",
        "/audio/%FF/fr/welcome.wav",
    ] {
        assert_error(&s.get(path, Some(&admin)), 400, "UTF-8");
    }

    // The list never shows a token; a revoked token stops at once.
    let listed = s.kuma(&["token", "list"]);
    assert!(
        listed.contains("ana") && listed.contains("analyst"),
        "{listed}"
    );
    assert!(!listed.contains(&analyst), "{listed}");
    // A studio PIN: six digits, printed once, for broadcasters and admins only.
    let pin = s.kuma(&["token", "pin", "studio"]);
    let pin = pin.trim();
    assert!(
        pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()),
        "{pin}"
    );
    let listed = s.kuma(&["token", "list"]);
    assert!(!listed.contains(pin), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("studio\t") && l.ends_with("studio PIN")),
        "{listed}"
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(["token", "pin", "ana", "--data"])
        .arg(&s.data)
        .arg("--database")
        .arg(format!("sqlite://{}/kuma.db", s.data.display()))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no active broadcaster or admin token"),
        "{refused:?}"
    );
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
    // That window holds the one call of 19:30: too few to show any count.
    let exact = cli(&["--since", "2026-12-01T19:00", "--until", "2026-12-02"]);
    assert!(
        (1..5).contains(&exact["calls"].as_u64().unwrap()),
        "{exact}"
    );
    assert_eq!(r.json()["small_population"], true);
    assert_eq!(r.json()["calls"], "<5");
    assert_eq!(r.json()["since"], exact["since"]);

    // With one: the same, except breakdown cells below 5 read "<5".
    let api = s
        .get(&format!("{base}/results?by=q_gender"), Some(&analyst))
        .json();
    let exact = cli(&["--by", "q_gender"]);
    assert_eq!(api["calls"], exact["calls"]);
    assert_eq!(api["by"], exact["by"]);
    let (mut masked, mut complements) = (0, 0);
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
                } else if ca["by"][k] == "masked" {
                    complements += 1;
                } else {
                    assert_eq!(&ca["by"][k], n);
                }
            }
        }
    }
    // Three men among 13 answers: every "woman" cell would give a "man" cell
    // away (the choice's count minus it), so they are masked too.
    assert!(
        masked > 0 && complements > 0,
        "masked {masked}, complements {complements}"
    );

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

    // The export: the rows of `kuma results --format csv`, for admins.
    let admin = s.token("admin", "root");
    let r = s.get(&format!("{base}/answers.csv"), Some(&admin));
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
    // Exact counts: one call is a small population, masked by default.
    let k = Server::start_with(&["--small-group", "0"]);
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

/// The funnel of `?query` as (node, reached, hung_up), in the reply's order.
fn funnel(s: &Server, token: &str, query: &str) -> (Value, Vec<(String, Value, Value)>) {
    let r = s.get(
        &format!("/api/campaigns/{CAMPAIGN}/funnel{query}"),
        Some(token),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let nodes = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_string(),
                n["reached"].clone(),
                n["hung_up"].clone(),
            )
        })
        .collect();
    (v, nodes)
}

#[test]
fn the_funnel_counts_where_callers_go_and_where_they_hang_up() {
    // Small groups off: the exact numbers of three calls.
    let s = Server::start_with(&["--small-group", "0"]);
    let analyst = s.token("analyst", "ana");
    let at = ["--at", DURING_BROADCAST];
    // French, the poll, one answer, then hangs up at the second question.
    s.kuma(&[&["call", CAMPAIGN, "--digits", "2 2 1"][..], &at].concat());
    // Bambara, goodbye: completed.
    s.kuma(&[&["call", CAMPAIGN, "--digits", "1 0"][..], &at].concat());
    // Hangs up at the language menu.
    s.kuma(&[&["call", CAMPAIGN, "--digits", ""][..], &at].concat());

    let (v, nodes) = funnel(&s, &analyst, "");
    assert_eq!(v["campaign"], CAMPAIGN);
    assert_eq!(v["calls"], 3);
    assert_eq!(v["completed"], 1);
    let order: Vec<&str> = nodes.iter().map(|n| n.0.as_str()).collect();
    assert_eq!(
        order[..4],
        ["welcome", "intro", "menu", "awareness"],
        "file order"
    );
    assert_eq!(v["nodes"][0]["kind"], "language");
    let at_node = |id: &str| {
        let n = nodes.iter().find(|n| n.0 == id).unwrap();
        (n.1.as_u64().unwrap(), n.2.as_u64().unwrap())
    };
    assert_eq!(at_node("welcome"), (3, 1));
    assert_eq!(at_node("intro"), (2, 0));
    assert_eq!(at_node("menu"), (2, 0));
    assert_eq!(at_node("poll"), (1, 0));
    assert_eq!(at_node("q_offered_work"), (1, 0));
    assert_eq!(at_node("q_know_signs"), (1, 1));
    assert_eq!(
        at_node("goodbye"),
        (1, 0),
        "a completed call did not hang up"
    );
    assert_eq!(at_node("awareness"), (0, 0), "unreached nodes are listed");

    // The same from the calls in a time range, and for the broadcast.
    let (_, ranged) = funnel(&s, &analyst, "?since=2026-12-01T19%3A00&until=2026-12-02");
    assert_eq!(ranged, nodes);
    let (_, one) = funnel(&s, &analyst, "?broadcast=1");
    assert_eq!(one, nodes);
    let (before, _) = funnel(&s, &analyst, "?until=2026-11-30");
    assert_eq!(before["calls"], 0);
    assert!(
        before["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["reached"] == 0)
    );

    // Small groups off: results with a breakdown are exact too.
    let api = s
        .get(
            &format!("/api/campaigns/{CAMPAIGN}/results?by=q_gender"),
            Some(&analyst),
        )
        .json();
    let cli: Value = serde_json::from_str(
        &s.kuma(&["results", CAMPAIGN, "--format", "json", "--by", "q_gender"]),
    )
    .unwrap();
    assert_eq!(api, cli);

    // Errors.
    let path = format!("/api/campaigns/{CAMPAIGN}/funnel");
    assert_error(&s.get(&path, None), 401, "token");
    assert_error(
        &s.get("/api/campaigns/nope/funnel", Some(&analyst)),
        404,
        "nope",
    );
    assert_error(
        &s.get(&format!("{path}?by=q_gender"), Some(&analyst)),
        400,
        "not by",
    );
    assert_error(
        &s.get(&format!("{path}?since=soon"), Some(&analyst)),
        400,
        "bad since",
    );
    assert_error(
        &s.get(&format!("{path}?broadcast=4"), Some(&analyst)),
        400,
        "broadcast 4",
    );
}

#[test]
fn many_calls_funnel_masked_and_export_streamed() {
    let s = Server::start();
    let analyst = s.token("analyst", "ana");
    s.kuma(&[
        "simulate",
        CAMPAIGN,
        "--calls",
        "1500",
        "--concurrency",
        "4",
        "--seed",
        "3",
        "--at",
        "2026-12-05T12:00",
    ]);
    let (v, nodes) = funnel(&s, &analyst, "");
    assert_eq!(v["calls"], 1500);
    let welcome = &nodes[0];
    assert_eq!(welcome.0, "welcome");
    assert_eq!(welcome.1, 1500, "every call reaches the first node");
    let mut masked = 0;
    for (_, reached, hung_up) in &nodes {
        for cell in [reached, hung_up] {
            match cell {
                Value::String(s) => {
                    assert!(s == "<5" || s == "masked", "{s}");
                    masked += 1;
                }
                n => assert!(n.as_u64().unwrap() >= 5, "{n}"),
            }
        }
    }
    assert!(masked > 0, "{v}");
    // Every call that did not complete ended somewhere: hang-ups add up.
    let hung: u64 = nodes.iter().filter_map(|n| n.2.as_u64()).sum();
    assert!(hung <= 1500);

    // An export of several chunks streams the same bytes as `kuma results`.
    let admin = s.token("admin", "root");
    let r = s.get(
        &format!("/api/campaigns/{CAMPAIGN}/answers.csv"),
        Some(&admin),
    );
    assert_eq!(r.status, 200);
    assert!(r.head.contains("transfer-encoding: chunked"), "{}", r.head);
    assert!(r.body.len() > 200_000, "{}", r.body.len());
    assert_eq!(r.body, s.kuma(&["results", CAMPAIGN, "--format", "csv"]));
}

/// One simulator step; the reply's JSON.
fn step(s: &Server, token: &str, session: &Value, event: Value) -> Value {
    let body = serde_json::json!({ "session": session, "event": event }).to_string();
    let r = s.post(
        &format!("/api/campaigns/{CAMPAIGN}/simulate"),
        Some(token),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn the_simulator_walks_the_real_flow_and_stores_nothing() {
    let s = Server::start();
    let broadcaster = s.token("broadcaster", "studio");
    let analyst = s.token("analyst", "ana");
    let path = format!("/api/campaigns/{CAMPAIGN}/simulate");
    let start = serde_json::json!({ "type": "start", "at": "2026-12-01T19:30:00+00:00" });

    // A whole call, as `kuma call --digits "2 2 1 2 1 1 3 0"` makes it.
    let mut keys = ["2", "2", "1", "2", "1", "1", "3", "0"].into_iter();
    let mut r = step(&s, &broadcaster, &Value::Null, start.clone());
    assert_eq!(r["node"], "welcome");
    let mut answers = Vec::new();
    let mut played = Vec::new();
    for _ in 0..200 {
        for a in r["actions"].as_array().unwrap() {
            match a["type"].as_str().unwrap() {
                "answer" => answers.push((
                    a["question"].clone(),
                    a["choice"].clone(),
                    a["broadcast"].clone(),
                )),
                "play" => played.extend(a["prompts"].as_array().unwrap().iter().cloned()),
                _ => {}
            }
        }
        if r["ended"] == true {
            break;
        }
        let session = r["session"].clone();
        let event = match r["waiting_for"].as_str().unwrap() {
            "prompt" => serde_json::json!({ "type": "prompt_finished" }),
            "key" => serde_json::json!({ "type": "key", "key": keys.next().unwrap() }),
            other => panic!("unexpected wait for {other}: {r}"),
        };
        r = step(&s, &broadcaster, &session, event);
    }
    assert_eq!(r["ended"], true, "{r}");
    assert_eq!(r["waiting_for"], Value::Null);
    let last = r["actions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "finished");
    assert_eq!(last["outcome"], "completed");
    assert_eq!(last["last_node"], "goodbye");
    assert_eq!(keys.next(), None, "every key was used");
    let ids: Vec<(&str, &str)> = answers
        .iter()
        .map(|(q, c, _)| (q.as_str().unwrap(), c.as_str().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            ("q_offered_work", "yes"),
            ("q_know_signs", "no"),
            ("q_would_report", "yes"),
            ("q_gender", "woman"),
            ("q_region", "koulikoro"),
        ]
    );
    assert!(
        answers.iter().all(|a| a.2.is_string()),
        "inside the poll window"
    );

    // French prompts with their transcripts and a URL that plays without a token.
    let welcome = played
        .iter()
        .find(|p| p["name"] == "welcome")
        .unwrap_or_else(|| panic!("{played:?}"));
    assert_eq!(welcome["language"], "fr");
    assert_eq!(
        welcome["url"],
        "/audio/stop-trafficking-mali/fr/welcome.wav"
    );
    assert!(welcome["transcript"].as_str().unwrap().len() > 10);
    let (status, head, body) = s.raw("GET", welcome["url"].as_str().unwrap(), None, &[], None);
    assert_eq!(status, 200, "{head}");
    assert_eq!(&body[..4], b"RIFF");

    // Nothing was stored: results stay empty (exact, from `kuma results`; the
    // API masks a population this small).
    let results: Value =
        serde_json::from_str(&s.kuma(&["results", CAMPAIGN, "--format", "json"])).unwrap();
    assert_eq!(results["calls"], 0);
    assert_eq!(count(&results, "q_offered_work", "yes"), 0);

    // A silence: `timeout` at once moves the clock to the deadline; the menu
    // is played again.
    let r = step(&s, &broadcaster, &Value::Null, start.clone());
    let r = step(
        &s,
        &broadcaster,
        &r["session"],
        serde_json::json!({"type": "prompt_finished"}),
    );
    assert_eq!(r["waiting_for"], "key");
    assert_eq!(r["timeout_ms"], 6000);
    let again = step(
        &s,
        &broadcaster,
        &r["session"],
        serde_json::json!({"type": "timeout"}),
    );
    assert_eq!(again["actions"][0]["type"], "play", "{again}");
    assert_eq!(again["waiting_for"], "prompt");
    // A hang-up ends it; nothing more is accepted.
    let gone = step(
        &s,
        &broadcaster,
        &again["session"],
        serde_json::json!({"type": "hangup"}),
    );
    assert_eq!(gone["ended"], true);
    assert_eq!(gone["actions"][0]["outcome"], "caller_hangup");
    let body =
        serde_json::json!({"session": gone["session"], "event": {"type": "key", "key": "1"}});
    assert_error(
        &s.post(&path, Some(&broadcaster), &body.to_string()),
        400,
        "ended",
    );

    // A start time far away (chrono would overflow adding a timeout to it): 400.
    for at in [
        "+262000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1900-01-01T00:00:00Z",
    ] {
        let body = serde_json::json!({"session": null, "event": {"type": "start", "at": at}});
        let r = s.post(&path, Some(&broadcaster), &body.to_string());
        assert_eq!(r.status, 400, "{at}: {}", r.body);
    }

    // A forged session: 400. Flip one hex digit of the state.
    let session = r["session"].as_str().unwrap();
    let i = session.find('.').unwrap() / 2;
    let flipped = if &session[i..i + 1] == "0" { "1" } else { "0" };
    let forged = format!("{}{flipped}{}", &session[..i], &session[i + 1..]);
    let body = serde_json::json!({"session": forged, "event": {"type": "key", "key": "1"}});
    assert_error(
        &s.post(&path, Some(&broadcaster), &body.to_string()),
        400,
        "session is not valid",
    );
    let body = serde_json::json!({"session": "abc", "event": {"type": "timeout"}});
    assert_error(
        &s.post(&path, Some(&broadcaster), &body.to_string()),
        400,
        "session is not valid",
    );

    // Bad events, roles, campaigns.
    let key = |k: &str| {
        serde_json::json!({"session": session, "event": {"type": "key", "key": k}}).to_string()
    };
    assert_error(
        &s.post(&path, Some(&broadcaster), &key("x")),
        400,
        "bad key",
    );
    assert_error(
        &s.post(&path, Some(&broadcaster), &key("12")),
        400,
        "bad key",
    );
    assert_error(
        &s.post(
            &path,
            Some(&broadcaster),
            "{\"event\": {\"type\": \"dance\"}}",
        ),
        400,
        "bad request body",
    );
    assert_error(
        &s.post(&path, Some(&broadcaster), "not json"),
        400,
        "bad request body",
    );
    assert_error(
        &s.post(
            &path,
            Some(&broadcaster),
            "{\"session\": null, \"event\": {\"type\": \"timeout\"}}",
        ),
        400,
        "start a call first",
    );
    let start_body = serde_json::json!({"session": null, "event": start}).to_string();
    assert_error(
        &s.post(&path, Some(&analyst), &start_body),
        403,
        "broadcaster",
    );
    assert_error(&s.post(&path, None, &start_body), 401, "token");
    assert_error(
        &s.post(
            "/api/campaigns/nope/simulate",
            Some(&broadcaster),
            &start_body,
        ),
        404,
        "nope",
    );
}

#[test]
fn flow_results_follow_the_floip_package_format() {
    let s = Server::start();
    let analyst = s.token("analyst", "ana");
    s.kuma(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 2 1 2 1 1 3 0",
        "--at",
        DURING_BROADCAST,
        "--caller",
        "+22370000001",
    ]);
    s.kuma(&[
        "call",
        CAMPAIGN,
        "--digits",
        "1 2 3",
        "--at",
        DURING_BROADCAST,
        "--caller",
        "+22370000002",
    ]);
    let base = format!("/api/campaigns/{CAMPAIGN}/flow-results");
    let r = s.get(&base, Some(&analyst));
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    // The descriptor's required properties (specification.md, "Descriptor").
    assert_eq!(d["profile"], "flow-results-package");
    assert_eq!(d["flow_results_specification_version"], "1.0.0-rc1");
    for key in ["created", "modified"] {
        let t = d[key].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{key} {t}: {e}"));
    }
    let id = d["id"].as_str().unwrap();
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{id}"
    );
    assert!(
        id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{id}"
    );
    assert!(parts[2].starts_with('4'), "version 4: {id}");
    assert!("89ab".contains(&parts[3][..1]), "RFC 4122 variant: {id}");
    assert_eq!(s.get(&base, Some(&analyst)).json()["id"], id, "stable");
    let name = d["name"].as_str().unwrap();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    );
    assert_eq!(d["title"], "Stop human trafficking (Mali)");

    // Exactly one resource, data not inline, the schema inline.
    let resources = d["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 1);
    let res = &resources[0];
    assert!(res.get("data").is_none(), "inline data is forbidden");
    assert_eq!(res["path"], "flow-results/data");
    let fields: Vec<&str> = res["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "timestamp",
            "row_id",
            "contact_id",
            "session_id",
            "question_id",
            "response",
            "response_metadata"
        ]
    );
    let questions = res["schema"]["questions"].as_object().unwrap();
    assert_eq!(
        questions.keys().collect::<Vec<_>>(),
        [
            "q_offered_work",
            "q_know_signs",
            "q_would_report",
            "q_gender",
            "q_region"
        ]
    );
    let q = &questions["q_offered_work"];
    assert_eq!(q["type"], "select_one");
    assert!(q["label"].as_str().unwrap().contains("Question 1"), "{q}");
    assert_eq!(
        q["type_options"]["choices"],
        serde_json::json!(["yes", "no", "not_sure"])
    );

    // The rows, at the path relative to the descriptor, for admins.
    let admin = s.token("admin", "root");
    assert_error(
        &s.get(&format!("{base}/data"), Some(&analyst)),
        403,
        "admin",
    );
    let r = s.get(&format!("{base}/data"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.contains("22370000001"), "no phone number");
    let rows = r.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 6, "five answers and one");
    let mut row_ids = std::collections::HashSet::new();
    let mut contacts = std::collections::HashSet::new();
    for row in rows {
        let row = row.as_array().unwrap();
        assert_eq!(row.len(), 7, "{row:?}");
        let t = row[0].as_str().unwrap();
        assert!(t.ends_with("+00:00"), "UTC as +00:00, not Z: {t}");
        chrono::DateTime::parse_from_rfc3339(t).unwrap();
        assert!(
            row_ids.insert(row[1].as_str().unwrap().to_string()),
            "unique row ids"
        );
        let contact = row[2].as_str().unwrap();
        assert!(
            contact.starts_with("c_") && contact.len() == 34,
            "{contact}"
        );
        contacts.insert(contact.to_string());
        assert!(row[3].is_string());
        let question = &questions[row[4].as_str().unwrap()];
        let choices = question["type_options"]["choices"].as_array().unwrap();
        assert!(choices.contains(&row[5]), "{row:?}");
        assert!(row[6].is_object());
    }
    assert_eq!(contacts.len(), 2);
    assert_eq!(rows[0][4], "q_offered_work");
    assert_eq!(rows[0][5], "yes");
    assert_eq!(rows[0][6]["language"], "fr");
    let until = s
        .get(&format!("{base}/data?until=2026-11-30"), Some(&admin))
        .json();
    assert_eq!(until, serde_json::json!([]));

    assert_error(&s.get(&base, None), 401, "token");
    assert_error(&s.get(&format!("{base}/data"), None), 401, "token");
    assert_error(
        &s.get("/api/campaigns/nope/flow-results", Some(&analyst)),
        404,
        "nope",
    );
    assert_error(
        &s.get(&format!("{base}/data?by=q_gender"), Some(&admin)),
        400,
        "not by",
    );
}

#[test]
fn prompts_play_without_a_token_with_etags_and_nothing_else_is_served() {
    let s = Server::start();
    let wav = "/audio/stop-trafficking-mali/fr/welcome.wav";
    let (status, head, body) = s.raw("GET", wav, None, &[], None);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: audio/wav"), "{head}");
    assert!(head.contains("cache-control: public"), "{head}");
    // 8 kHz mono 16-bit PCM (format 1): what browsers play.
    assert_eq!(&body[..4], b"RIFF");
    assert_eq!(&body[8..12], b"WAVE");
    assert_eq!(u16::from_le_bytes([body[20], body[21]]), 1, "PCM");
    assert_eq!(u16::from_le_bytes([body[22], body[23]]), 1, "mono");
    assert_eq!(
        u32::from_le_bytes([body[24], body[25], body[26], body[27]]),
        8000
    );
    assert_eq!(u16::from_le_bytes([body[34], body[35]]), 16);
    assert!(body.len() > 8000, "a real prompt");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap_or_else(|| panic!("{head}"))
        .trim()
        .to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    let (status, _, body) = s.raw("GET", wav, None, &[("If-None-Match", &etag)], None);
    assert_eq!(status, 304);
    assert!(body.is_empty());
    let (status, _, _) = s.raw("GET", wav, None, &[("If-None-Match", "\"other\"")], None);
    assert_eq!(status, 200);
    // Another prompt, another tag.
    let (_, other, _) = s.raw(
        "GET",
        "/audio/stop-trafficking-mali/fr/goodbye.wav",
        None,
        &[],
        None,
    );
    assert!(!other.contains(&etag), "{other}");

    let (status, head, mp3) = s.raw(
        "GET",
        "/audio/stop-trafficking-mali/bm/welcome.mp3",
        None,
        &[],
        None,
    );
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: audio/mpeg"), "{head}");
    assert_eq!(mp3[0], 0xFF, "an MPEG frame sync");
    assert_eq!(mp3[1] & 0xE0, 0xE0);
    let (_, again, mp3_again) = s.raw(
        "GET",
        "/audio/stop-trafficking-mali/bm/welcome.mp3",
        None,
        &[],
        None,
    );
    assert_eq!(mp3_again, mp3, "the kept encoding");
    assert!(again.contains("etag: "), "{again}");

    // Only prompts of loaded campaigns; no way out of them.
    for path in [
        "/audio/stop-trafficking-mali/fr/nope.wav",
        "/audio/stop-trafficking-mali/xx/welcome.wav",
        "/audio/stop-trafficking-mali/fr/welcome.ogg",
        "/audio/stop-trafficking-mali/fr/welcome.txt",
        "/audio/stop-trafficking-mali/fr/welcome",
        "/audio/nope/fr/welcome.wav",
        "/audio/stop-trafficking-mali/fr/..%2F..%2F..%2Fcampaigns%2Fstop-trafficking-mali.toml",
        "/audio/stop-trafficking-mali/fr/..%2Ffr%2Fwelcome.wav",
        "/audio/stop-trafficking-mali/..%2F..%2Fcampaigns/stop-trafficking-mali.wav",
        "/audio/..%2Fcampaigns/fr/stop-trafficking-mali.wav",
        "/audio/stop-trafficking-mali/fr/../../../etc/passwd",
        "/audio/stop-trafficking-mali/fr/%2Fetc%2Fpasswd.wav",
    ] {
        let (status, head, body) = s.raw("GET", path, None, &[], None);
        assert_eq!(status, 404, "{path}: {head}");
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
}

#[test]
fn admins_manage_tokens_over_http() {
    let s = Server::start();
    let admin = s.token("admin", "root");
    let broadcaster = s.token("broadcaster", "studio");
    let results = format!("/api/campaigns/{CAMPAIGN}/results");

    let r = s.post(
        "/api/tokens",
        Some(&admin),
        r#"{"name": "analyst laptop", "role": "analyst"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.head.contains("cache-control: no-store"), "{}", r.head);
    let made = r.json();
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kuma_") && token.len() == 69);
    assert_eq!(made["role"], "analyst");
    assert_eq!(made["name"], "analyst laptop");
    // The new token works at once, with its role.
    assert_eq!(s.get(&results, Some(&token)).status, 200);
    assert_error(&s.get("/api/campaigns", Some(&token)), 403, "broadcaster");

    // Listed without any token or hash.
    let r = s.get("/api/tokens", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !r.body.contains(&token) && !r.body.contains("kuma_"),
        "{}",
        r.body
    );
    let list = r.json();
    let names: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "studio", "analyst laptop"]);
    assert!(list["tokens"][2]["revoked_at"].is_null());
    // The CLI sees the same tokens.
    assert!(s.kuma(&["token", "list"]).contains("analyst laptop"));

    // Mistakes.
    assert_error(
        &s.post(
            "/api/tokens",
            Some(&admin),
            r#"{"name": "analyst laptop", "role": "admin"}"#,
        ),
        409,
        "exists already",
    );
    assert_error(
        &s.post(
            "/api/tokens",
            Some(&admin),
            r#"{"name": "x", "role": "king"}"#,
        ),
        400,
        "bad role",
    );
    assert_error(
        &s.post(
            "/api/tokens",
            Some(&admin),
            r#"{"name": "  ", "role": "analyst"}"#,
        ),
        400,
        "name",
    );
    assert_error(
        &s.post("/api/tokens", Some(&admin), "{"),
        400,
        "bad request body",
    );

    // Only admins.
    let body = r#"{"name": "mine", "role": "admin"}"#;
    assert_error(
        &s.post("/api/tokens", Some(&broadcaster), body),
        403,
        "admin",
    );
    assert_error(&s.get("/api/tokens", Some(&broadcaster)), 403, "admin");
    assert_error(&s.get("/api/tokens", Some(&token)), 403, "admin");
    assert_error(&s.get("/api/tokens", None), 401, "token");
    let delete = |path: &str, t: Option<&str>| s.request("DELETE", path, t, &[], None);
    assert_error(
        &delete("/api/tokens/studio", Some(&broadcaster)),
        403,
        "admin",
    );

    // Revoking stops the token at once; twice is 404.
    let r = delete("/api/tokens/analyst%20laptop", Some(&admin));
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&s.get(&results, Some(&token)), 401, "revoked");
    assert_error(
        &delete("/api/tokens/analyst%20laptop", Some(&admin)),
        404,
        "analyst laptop",
    );
    assert_error(&delete("/api/tokens/nobody", Some(&admin)), 404, "nobody");
    // Not the request's own token: the admin would be locked out.
    assert_error(
        &delete("/api/tokens/root", Some(&admin)),
        409,
        "the token of this request",
    );
    assert_eq!(s.get("/api/tokens", Some(&admin)).status, 200);
    let list = s.get("/api/tokens", Some(&admin)).json();
    assert!(list["tokens"][2]["revoked_at"].is_string(), "{list}");
}

#[test]
fn the_api_serves_the_loaded_catalog_with_its_problems_and_follows_sighup() {
    // A campaigns folder of our own: the example, and a file with a mistake.
    let root = tempfile::tempdir().unwrap();
    let campaigns = root.path().join("campaigns");
    std::fs::create_dir(&campaigns).unwrap();
    std::os::unix::fs::symlink(repo().join("audio"), root.path().join("audio")).unwrap();
    let example =
        std::fs::read_to_string(repo().join("campaigns").join(format!("{CAMPAIGN}.toml"))).unwrap();
    std::fs::write(campaigns.join(format!("{CAMPAIGN}.toml")), &example).unwrap();
    std::fs::write(
        campaigns.join("broken.toml"),
        "title = \"Broken\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let s = Server::start_in(&campaigns, &[]);
    let broadcaster = s.token("broadcaster", "studio");

    let list = s.get("/api/campaigns", Some(&broadcaster)).json();
    assert_eq!(list["campaigns"].as_array().unwrap().len(), 1, "{list}");
    let problems = list["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("broken.toml:")),
        "{list}"
    );
    // Named from the campaigns folder: the server's own paths stay on it.
    assert!(
        !list
            .to_string()
            .contains(&root.path().display().to_string()),
        "{list}"
    );
    let second = "/api/campaigns/second";
    assert_error(&s.get(second, Some(&broadcaster)), 404, "second");

    // A new campaign file is served after SIGHUP, not before: the API reads the
    // server's catalog, not the folder.
    std::fs::write(
        campaigns.join("second.toml"),
        // Numbers of its own: two campaigns may not share one.
        example
            .replace("\"2000\"", "\"2100\"")
            .replace("\"2001\"", "\"2101\""),
    )
    .unwrap();
    assert_error(&s.get(second, Some(&broadcaster)), 404, "second");
    let hup = Command::new("kill")
        .args(["-HUP", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let started = std::time::Instant::now();
    while s.get(second, Some(&broadcaster)).status != 200 {
        assert!(started.elapsed() < Duration::from_secs(60), "not reloaded");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = s.get("/api/campaigns", Some(&broadcaster)).json();
    let ids: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["second", CAMPAIGN]);
    assert!(!list["problems"].as_array().unwrap().is_empty());
    let (status, _, _) = s.raw("GET", "/audio/second/fr/welcome.wav", None, &[], None);
    assert_eq!(status, 200);
}

#[test]
fn hundreds_of_live_screens_share_one_poller_and_all_get_each_answer() {
    // Exact counts: one call is a small population, masked by default.
    let k = Server::start_with(&["--small-group", "0"]);
    let analyst = k.token("analyst", "ana");
    let open = |query: &str| {
        let s = TcpStream::connect(k.http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut w = s.try_clone().unwrap();
        write!(
            w,
            "GET /api/campaigns/{CAMPAIGN}/results/live{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {analyst}\r\n\r\n",
            k.http
        )
        .unwrap();
        BufReader::new(s)
    };
    let mut screens: Vec<BufReader<TcpStream>> = (0..200).map(|_| open("")).collect();
    let mut by_gender = open("?by=q_gender");
    for s in &mut screens {
        assert_eq!(next_event(s)["calls"], 0);
    }
    assert_eq!(next_event(&mut by_gender)["by"]["id"], "q_gender");
    // Half the screens go away (as closed browser tabs do).
    screens.truncate(100);
    // A listener answers meanwhile; every screen still open gets it.
    k.kuma(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 2 1",
        "--at",
        DURING_BROADCAST,
    ]);
    for s in &mut screens {
        let mut pushed = next_event(s);
        while count(&pushed, "q_offered_work", "yes") == 0 {
            pushed = next_event(s);
        }
        assert_eq!(pushed["calls"], 1);
    }
    let mut pushed = next_event(&mut by_gender);
    while count(&pushed, "q_offered_work", "yes") == 0 {
        pushed = next_event(&mut by_gender);
    }
    assert_eq!(pushed["by"]["id"], "q_gender");
    // A new screen joins the running poller and starts from the latest results.
    let mut late = open("");
    assert_eq!(next_event(&mut late)["calls"], 1);
}

#[test]
fn every_route_is_in_openapi_yaml() {
    let router = std::fs::read_to_string(repo().join("src/web/mod.rs")).unwrap();
    let spec = std::fs::read_to_string(repo().join("openapi.yaml")).unwrap();
    let routes: Vec<&str> = router
        .split(".route(")
        .skip(1)
        .filter_map(|r| r.trim_start().strip_prefix('"')?.split('"').next())
        .collect();
    assert!(routes.len() >= 14, "{routes:?}");
    for route in routes {
        assert!(
            spec.contains(&format!("\n  {route}:\n")),
            "{route} is not documented in openapi.yaml"
        );
    }
}

/// Fills the call-back queue through the store, as `kuma serve` leaves it (this
/// server has no trunk, so nothing dials meanwhile): a missed call busy once and
/// queued again, one answered, one refused, a subscriber queued after a
/// broadcast, and one call-back of another campaign. The sealed numbers are the
/// raw numbers here, so that a leak of the sealed column would show as a number.
fn fill_callbacks(s: &Server) {
    use kuma::outbound::{Attempt, Next, Policy, Refusal, Status, after_attempt};
    use kuma::store::{NewCallback, Store};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}/kuma.db", s.data.display()))
            .await
            .unwrap();
        let p = Policy::default();
        let t0: chrono::DateTime<chrono::Utc> = "2026-12-01T19:00:00Z".parse().unwrap();
        let secs = chrono::Duration::seconds;
        let missed = |caller: &'static str, number: &'static str, at, due| NewCallback {
            campaign: CAMPAIGN,
            caller,
            sealed: number.as_bytes(),
            at,
            due,
        };
        let (busy, ok) = store
            .callbacks()
            .queue(
                &missed("c_busy0000000001", "+22370000001", t0, t0 + secs(20)),
                &p,
            )
            .await
            .unwrap();
        assert_eq!(ok, Ok(()));
        let t = t0 + secs(20);
        assert_eq!(
            store
                .callbacks()
                .claim("w", t, t0)
                .await
                .unwrap()
                .unwrap()
                .id,
            busy
        );
        store.callbacks().ringing(busy, 1).await.unwrap();
        let next = after_attempt(&p, Attempt::Busy, 1, t);
        assert!(matches!(next, Next::Retry(_)));
        store
            .callbacks()
            .finish_attempt(busy, 1, Status::Busy, Some(486), next, None, t)
            .await
            .unwrap();
        let t1 = t0 + secs(60);
        let (answered, _) = store
            .callbacks()
            .queue(
                &missed("c_answ0000000002", "+22370000002", t1, t1 + secs(20)),
                &p,
            )
            .await
            .unwrap();
        let t = t1 + secs(60);
        assert_eq!(
            store
                .callbacks()
                .claim("w", t, t0)
                .await
                .unwrap()
                .unwrap()
                .id,
            answered
        );
        store
            .callbacks()
            .finish_attempt(
                answered,
                1,
                Status::Answered,
                None,
                Next::Final(Status::Answered),
                None,
                t,
            )
            .await
            .unwrap();
        store
            .callbacks()
            .refuse(CAMPAIGN, "c_anon0000000003", Refusal::Withheld, t1)
            .await
            .unwrap();
        let later = t0 + chrono::Duration::days(1);
        let mut other = missed("c_othr0000000004", "+22370000004", t1, later);
        other.campaign = "another-campaign";
        assert_eq!(store.callbacks().queue(&other, &p).await.unwrap().1, Ok(()));
        store
            .callbacks()
            .subscribe(CAMPAIGN, "c_subs0000000005", b"+22370000005", 1000, t1)
            .await
            .unwrap();
        assert_eq!(
            store
                .callbacks()
                .queue_broadcast(CAMPAIGN, t0, later, t1, &kuma::outbound::Policy::default())
                .await
                .unwrap(),
            1
        );
        store.close().await;
    });
}

#[test]
fn admins_see_the_callback_queue_as_kuma_callbacks_lists_it() {
    let s = Server::start();
    let path = format!("/api/campaigns/{CAMPAIGN}/callbacks");
    assert_error(&s.get(&path, None), 401, "missing token");
    assert_error(&s.get(&path, Some("kuma_nonsense")), 401, "unknown");
    let analyst = s.token("analyst", "ana");
    let admin = s.token("admin", "root");
    // One row per caller: not for analysts (nor broadcasters).
    assert_error(&s.get(&path, Some(&analyst)), 403, "admin");
    let empty = s.get(&path, Some(&admin));
    assert_eq!(empty.status, 200, "{}", empty.body);
    let empty = empty.json();
    assert_eq!(empty["callbacks"], serde_json::json!([]));
    assert_eq!(empty["summary"]["callbacks"], 0);
    assert_eq!(empty["summary"]["by_status"]["queued"], 0);

    fill_callbacks(&s);
    let r = s.get(&path, Some(&admin));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.head.contains("content-type: application/json"),
        "{}",
        r.head
    );
    assert!(
        !r.body.contains("2237000000"),
        "no number, sealed or not: {}",
        r.body
    );
    let q = r.json();
    assert_eq!(q["campaign"], CAMPAIGN);
    let list = q["callbacks"].as_array().unwrap();
    let rows: Vec<(&str, &str, &str, u64)> = list
        .iter()
        .map(|c| {
            (
                c["caller"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
                c["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("c_subs0000000005", "broadcast", "queued", 0),
            ("c_anon0000000003", "missed_call", "refused", 0),
            ("c_answ0000000002", "missed_call", "answered", 1),
            ("c_busy0000000001", "missed_call", "queued", 1),
        ],
        "newest first, this campaign only"
    );
    let busy = &list[3];
    assert_eq!(busy["note"], "sip 486");
    assert_eq!(busy["next_try"], "2026-12-01T20:00:20+00:00");
    assert_eq!(
        busy["tries"],
        serde_json::json!([{"attempt": 1, "status": "busy", "sip_code": 486}])
    );
    assert_eq!(list[1]["note"], "withheld_number");
    assert_eq!(list[0]["broadcast"], "2026-12-01T19:00:00+00:00");

    // The same rows and keys as `kuma callbacks --format json` (oldest first there).
    let cli: Value =
        serde_json::from_str(&s.kuma(&["callbacks", CAMPAIGN, "--format", "json"])).unwrap();
    let mut newest_first = cli.as_array().unwrap().clone();
    newest_first.reverse();
    assert_eq!(&newest_first, list);

    let summary = &q["summary"];
    assert_eq!(summary["callbacks"], 4);
    assert_eq!(summary["attempts"], 2);
    assert_eq!(
        summary["by_status"],
        serde_json::json!({"queued": 2, "dialing": 0, "answered": 1, "busy": 0,
            "no_answer": 0, "failed": 0, "cancelled": 0, "refused": 1})
    );
    assert_eq!(
        summary["by_kind"],
        serde_json::json!({"missed_call": {"callbacks": 3, "attempts": 2},
            "broadcast": {"callbacks": 1, "attempts": 0}})
    );

    // Filters pick rows; the summary stays the whole queue's.
    let queued = s.get(&format!("{path}?status=queued"), Some(&admin)).json();
    let ids: Vec<&Value> = queued["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&list[0]["id"], &list[3]["id"]]);
    assert_eq!(queued["summary"], *summary);
    let cli: Value = serde_json::from_str(&s.kuma(&[
        "callbacks",
        CAMPAIGN,
        "--format",
        "json",
        "--status",
        "queued",
        "--limit",
        "1",
    ]))
    .unwrap();
    assert_eq!(
        cli,
        serde_json::json!([list[0].clone()]),
        "kuma callbacks filters alike"
    );
    let one = s.get(&format!("{path}?limit=1"), Some(&admin)).json();
    assert_eq!(one["callbacks"], serde_json::json!([list[0].clone()]));
    let none = s
        .get(&format!("{path}?status=no_answer"), Some(&admin))
        .json();
    assert_eq!(none["callbacks"], serde_json::json!([]));

    assert_error(
        &s.get(&format!("{path}?status=late"), Some(&admin)),
        400,
        "bad status `late`",
    );
    assert_error(
        &s.get(&format!("{path}?limit=0"), Some(&admin)),
        400,
        "1 to 1000",
    );
    assert_error(
        &s.get(&format!("{path}?limit=1001"), Some(&admin)),
        400,
        "1 to 1000",
    );
    assert_error(
        &s.get(&format!("{path}?by=q_gender"), Some(&admin)),
        400,
        "unknown query parameter",
    );
    assert_error(
        &s.get("/api/campaigns/no-such-campaign/callbacks", Some(&admin)),
        404,
        "unknown campaign",
    );
    let broadcaster = s.token("broadcaster", "studio");
    assert_error(&s.get(&path, Some(&broadcaster)), 403, "admin");

    // The campaign page shows analysts the counts, not the call-backs.
    let page = s.get(&format!("/campaigns/{CAMPAIGN}?lang=en"), Some(&analyst));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains(r#"id="callbacks" data-total="4" data-attempts="2""#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("c_busy00"), "{}", page.body);
    // Admins also the latest call-backs.
    let page = s.get(&format!("/campaigns/{CAMPAIGN}?lang=en"), Some(&admin));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("2237000000"));
    assert!(
        page.body
            .contains(r#"id="callbacks" data-total="4" data-attempts="2""#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"data-status="queued" data-count="2""#));
    assert!(
        page.body
            .contains(r#"data-status="refused" data-count="1""#)
    );
    assert!(page.body.contains("c_busy00…"));
    // The busy one's retry, 20:00:20 UTC, is 20:00 in Bamako (UTC+0).
    assert!(page.body.contains("2026-12-01<br>20:00"), "{}", page.body);
}

/// `s` with every byte but letters and digits percent-encoded (a form value).
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn after_login_only_local_paths_are_followed() {
    let s = Server::start();
    let analyst = s.token("analyst", "ana");
    let login = |next: &str| -> String {
        let body = format!("token={analyst}&next={}", form_encode(next));
        let r = s.request(
            "POST",
            "/login",
            None,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 303, "{next:?}: {} {}", r.head, r.body);
        r.head
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or_else(|| panic!("{}", r.head))
            .to_string()
    };
    assert_eq!(
        login("/campaigns/x?by=q_gender"),
        "/campaigns/x?by=q_gender"
    );
    assert_eq!(login("/"), "/");
    for hostile in [
        "/\t/evil.example",
        "/%09/evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "https://evil.example",
        "https:evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/\r\n/evil.example",
        "/%0a/evil.example",
        "/\u{0}/evil.example",
        "evil.example",
    ] {
        assert_eq!(login(hostile), "/", "{hostile:?}");
    }
    // Nor does the login page carry a hostile `next` into its form.
    let page = s.get("/login?next=/%09/evil.example", None);
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(r#"name="next""#), "{}", page.body);
    let page = s.get("/login?next=%FF%FE", None);
    assert_eq!(page.status, 200, "not UTF-8: the form without next");
    assert!(!page.body.contains(r#"name="next""#), "{}", page.body);
    let page = s.get("/login?next=/campaigns/x", None);
    assert!(
        page.body.contains(r#"name="next" value="/campaigns/x""#),
        "{}",
        page.body
    );
}

#[test]
fn row_level_exports_need_an_admin() {
    let s = Server::start();
    s.kuma(&[
        "simulate",
        CAMPAIGN,
        "--calls",
        "20",
        "--seed",
        "5",
        "--at",
        DURING_BROADCAST,
    ]);
    let analyst = s.token("analyst", "ana");
    let broadcaster = s.token("broadcaster", "studio");
    let admin = s.token("admin", "root");
    let base = format!("/api/campaigns/{CAMPAIGN}");
    for rows in ["answers.csv", "flow-results/data", "callbacks"] {
        let path = format!("{base}/{rows}");
        assert_error(&s.get(&path, Some(&analyst)), 403, "admin");
        assert_error(&s.get(&path, Some(&broadcaster)), 403, "admin");
        let r = s.get(&path, Some(&admin));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // The package's metadata (the questions, no rows) stays the analyst's.
    assert_eq!(
        s.get(&format!("{base}/flow-results"), Some(&analyst))
            .status,
        200
    );
    // The campaign page offers the downloads to admins only.
    let page = s.get(&format!("/campaigns/{CAMPAIGN}"), Some(&analyst));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("answers.csv"), "{}", page.body);
    assert!(!page.body.contains("flow-results"), "{}", page.body);
    let page = s.get(&format!("/campaigns/{CAMPAIGN}"), Some(&admin));
    assert!(page.body.contains("answers.csv"), "{}", page.body);
    assert!(page.body.contains("/flow-results"), "{}", page.body);
}

/// How many cells of `line` the API masked (strings), and whether that is
/// exactly one: then it is the line's total minus the cells shown.
fn lone_masked_cell(line: &[&Value]) -> bool {
    line.iter().filter(|v| v.is_string()).count() == 1
}

#[test]
fn no_masked_cell_is_a_total_minus_the_shown_ones() {
    for calls in [3, 12, 40, 150] {
        let s = Server::start();
        let analyst = s.token("analyst", "ana");
        s.kuma(&[
            "simulate",
            CAMPAIGN,
            "--calls",
            &calls.to_string(),
            "--at",
            DURING_BROADCAST,
        ]);
        let (mut small_cells, mut tables) = (0, 0);
        let plain: Value =
            serde_json::from_str(&s.kuma(&["results", CAMPAIGN, "--format", "json"])).unwrap();
        let questions: Vec<String> = plain["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["id"].as_str().unwrap().to_string())
            .collect();
        assert!(questions.len() >= 5, "{questions:?}");
        for by in &questions {
            let api = s
                .get(
                    &format!("/api/campaigns/{CAMPAIGN}/results?by={by}"),
                    Some(&analyst),
                )
                .json();
            let exact: Value = serde_json::from_str(
                &s.kuma(&["results", CAMPAIGN, "--format", "json", "--by", by]),
            )
            .unwrap();
            assert_eq!(exact["calls"], calls, "{exact}");
            if calls < 5 {
                // A population under the threshold shows no count at all.
                assert_eq!(api["small_population"], true, "{api}");
                assert_eq!(api["calls"], "<5");
                for q in api["questions"].as_array().unwrap() {
                    assert_eq!(q["answered"], "<5");
                    for c in q["choices"].as_array().unwrap() {
                        assert_eq!(c["count"], "<5");
                        assert!(c["by"].as_object().unwrap().values().all(|v| v == "<5"));
                    }
                }
                continue;
            }
            assert!(api.get("small_population").is_none());
            let by_choices: Vec<&str> = exact["by"]["choices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            for (qa, qe) in api["questions"]
                .as_array()
                .unwrap()
                .iter()
                .zip(exact["questions"].as_array().unwrap())
            {
                tables += 1;
                let rows: Vec<Vec<&Value>> = qa["choices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| by_choices.iter().map(|b| &c["by"][*b]).collect())
                    .collect();
                // Shown cells are exact, small ones are "<5".
                for (ca, ce) in qa["choices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(qe["choices"].as_array().unwrap())
                {
                    assert_eq!(ca["count"], ce["count"], "totals are shown");
                    for b in &by_choices {
                        let n = ce["by"][*b].as_u64().unwrap();
                        match &ca["by"][*b] {
                            Value::String(m) if n < 5 => {
                                assert_eq!(m, "<5");
                                small_cells += 1;
                            }
                            Value::String(m) => assert_eq!(m, "masked"),
                            v => assert_eq!(v.as_u64(), Some(n), "{by} {qa}"),
                        }
                    }
                }
                // No row (total: the choice's count) and no column (total: the
                // `by` question's count of that choice) has exactly one masked
                // cell, the one the total minus the others would give away.
                for (row, c) in rows.iter().zip(qa["choices"].as_array().unwrap()) {
                    assert!(
                        !lone_masked_cell(row),
                        "N={calls} by {by}: {} {}: {row:?}",
                        qa["id"],
                        c["id"]
                    );
                }
                for (j, b) in by_choices.iter().enumerate() {
                    let column: Vec<&Value> = rows.iter().map(|r| r[j]).collect();
                    assert!(
                        !lone_masked_cell(&column),
                        "N={calls} by {by}: {} column {b}: {column:?}",
                        qa["id"]
                    );
                }
            }
        }
        if calls >= 5 {
            assert!(
                tables > 0 && small_cells > 0,
                "N={calls}: some cells are small"
            );
        }
        // The funnel: the hang-ups add up to the calls that did not complete.
        let f = s
            .get(&format!("/api/campaigns/{CAMPAIGN}/funnel"), Some(&analyst))
            .json();
        let hung: Vec<&Value> = f["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| &n["hung_up"])
            .collect();
        if calls < 5 {
            assert_eq!(f["small_population"], true, "{f}");
            assert!(hung.iter().all(|h| *h == "<5"));
        } else {
            assert!(!lone_masked_cell(&hung), "N={calls}: {hung:?}");
        }
        // A window around no call, or a broadcast of a few calls, shows no
        // counts either (nor does the list of broadcasts).
        let before = s
            .get(
                &format!("/api/campaigns/{CAMPAIGN}/results?until=2026-11-01"),
                Some(&analyst),
            )
            .json();
        assert_eq!(before["small_population"], true, "{before}");
        assert_eq!(before["calls"], "<5");
        for b in plain["broadcasts"].as_array().unwrap() {
            if b["calls"].as_u64().unwrap() >= 5 {
                continue;
            }
            let r = s
                .get(
                    &format!(
                        "/api/campaigns/{CAMPAIGN}/results?by=q_gender&broadcast={}",
                        b["number"]
                    ),
                    Some(&analyst),
                )
                .json();
            assert_eq!(r["small_population"], true, "{r}");
            assert_eq!(r["calls"], "<5");
            let listed = &r["broadcasts"][b["number"].as_u64().unwrap() as usize - 1];
            assert_eq!(listed["calls"], "<5", "{listed}");
        }
    }
}

/// Opens a live results stream with `token`; the reader, after the head.
fn open_live(s: &Server, query: &str, token: &str) -> (u16, BufReader<TcpStream>) {
    let stream = TcpStream::connect(s.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    // `Connection: close`: when the server ends the stream, the socket closes.
    write!(
        w,
        "GET /api/campaigns/{CAMPAIGN}/results/live{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        s.http
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    (code, reader)
}

#[test]
fn a_revoked_tokens_live_stream_ends_within_two_seconds() {
    let s = Server::start_with(&["--small-group", "0"]);
    let analyst = s.token("analyst", "ana");
    let broadcaster = s.token("broadcaster", "studio");
    let (status, mut revoked) = open_live(&s, "", &analyst);
    assert_eq!(status, 200);
    let (_, mut kept) = open_live(&s, "", &broadcaster);
    assert_eq!(next_event(&mut revoked)["calls"], 0);
    assert_eq!(next_event(&mut kept)["calls"], 0);
    // Revoked by another process, as an admin at the studio would.
    s.kuma(&["token", "revoke", "ana"]);
    let revoked_at = std::time::Instant::now();
    // Keep-alive comments would reset a read timeout: a deadline as well.
    revoked
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut line = String::new();
    loop {
        line.clear();
        match revoked.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => assert!(!line.starts_with("data:"), "no results after: {line}"),
            Err(e) => panic!(
                "the stream is still open after {:?}: {e}",
                revoked_at.elapsed()
            ),
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(3),
            "the stream is still open"
        );
    }
    assert!(
        revoked_at.elapsed() < Duration::from_secs(2),
        "ended after {:?}",
        revoked_at.elapsed()
    );
    // Another token's stream goes on, and gets the next answer.
    s.kuma(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 2 1",
        "--at",
        DURING_BROADCAST,
    ]);
    let mut pushed = next_event(&mut kept);
    while count(&pushed, "q_offered_work", "yes") == 0 {
        pushed = next_event(&mut kept);
    }
    // And the revoked token cannot open a new one.
    let (status, _) = open_live(&s, "", &analyst);
    assert_eq!(status, 401);
}

#[test]
fn live_pollers_are_one_per_query_however_spelt_and_bounded() {
    // The bound of src/web/live.rs.
    const MAX_POLLERS: usize = 64;
    let s = Server::start_with(&["--small-group", "0"]);
    let analyst = s.token("analyst", "ana");
    s.kuma(&[
        "simulate",
        CAMPAIGN,
        "--calls",
        "20",
        "--seed",
        "2",
        "--at",
        DURING_BROADCAST,
    ]);
    let exact: Value =
        serde_json::from_str(&s.kuma(&["results", CAMPAIGN, "--format", "json"])).unwrap();
    let first_day = exact["broadcasts"][0]["at"].as_str().unwrap()[..10].to_string();
    let mut open = Vec::new();
    // One poller for the whole campaign, one per breakdown of broadcast 1, and
    // one per `since` up to the bound.
    for query in ["", "?by=q_gender&broadcast=1"] {
        let (status, mut r) = open_live(&s, query, &analyst);
        assert_eq!(status, 200, "{query}");
        next_event(&mut r);
        open.push(r);
    }
    for minute in 0..MAX_POLLERS - 2 {
        let query = format!("?since=2026-11-01T{:02}%3A{:02}", minute / 60, minute % 60);
        let (status, mut r) = open_live(&s, &query, &analyst);
        assert_eq!(status, 200, "{query}");
        next_event(&mut r);
        open.push(r);
    }
    // Another filter: refused, as JSON.
    let (status, mut refused) = open_live(&s, "?since=2026-11-02", &analyst);
    assert_eq!(status, 503, "a poller beyond the bound");
    let mut rest = String::new();
    refused.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("application/json"), "{rest}");
    assert!(rest.contains(r#""error": "too many"#), "{rest}");
    // The same filters spelt otherwise join the running pollers (Bamako is UTC).
    for query in [
        "?by=",
        "?broadcast=1&by=q_gender",
        &format!("?broadcast={first_day}&by=q_gender"),
        "?since=2026-11-01",
        "?since=2026-11-01T00%3A00%3A00",
        "?since=2026-11-01T00%3A00%3A00Z",
        "?since=2026-11-01T01%3A01%3A00%2B01%3A00",
    ] {
        let (status, mut r) = open_live(&s, query, &analyst);
        assert_eq!(status, 200, "{query}");
        let v = next_event(&mut r);
        assert!(v["calls"].as_u64().is_some(), "{query}: {v}");
    }
    // Once the screens of a filter are gone, its poller stops and frees a place.
    open.truncate(MAX_POLLERS - 1);
    std::thread::sleep(Duration::from_secs(3));
    let (status, _) = open_live(&s, "?since=2026-11-02", &analyst);
    assert_eq!(status, 200);
}
