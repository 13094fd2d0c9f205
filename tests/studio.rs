//! The broadcaster's studio (src/web/studio.rs) against a real `kuma serve` on a
//! copy of the example campaign and its recordings: every change made over HTTP
//! is a change to the TOML file, checked like `kuma check`, kept in the history,
//! and served at once.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Server, repo};
use serde_json::Value;

const ID: &str = "stop-trafficking-mali";

/// One HTTP response: status, lowercased head, body.
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn etag(&self) -> String {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .unwrap_or_else(|| panic!("no etag in {}", self.head))
            .trim()
            .trim_matches('"')
            .to_string()
    }
}

fn request(
    s: &Server,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let auth = format!("Bearer {token}");
    let mut all = vec![("Authorization", auth.as_str())];
    all.extend_from_slice(headers);
    let r = common::http(s.http, method, path, &all, body);
    Reply {
        status: r.status,
        head: r.head,
        body: r.body,
    }
}

fn get(s: &Server, path: &str, token: &str) -> Reply {
    request(s, "GET", path, token, &[], None)
}

fn put_json(s: &Server, path: &str, token: &str, if_match: Option<&str>, body: &Value) -> Reply {
    let tag = if_match.map(|t| format!("\"{t}\""));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(t) = &tag {
        headers.push(("If-Match", t.as_str()));
    }
    request(
        s,
        "PUT",
        path,
        token,
        &headers,
        Some(body.to_string().as_bytes()),
    )
}

/// A copy of the example campaign and its recordings: `(dir, campaigns folder)`.
pub fn studio_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = dir.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::copy(
        repo().join("campaigns").join(format!("{ID}.toml")),
        campaigns.join(format!("{ID}.toml")),
    )
    .unwrap();
    common::copy_dir(
        &repo().join("audio").join(ID),
        &dir.path().join("audio").join(ID),
    );
    (dir, campaigns)
}

fn kuma(s: &Server, campaigns: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(args)
        .arg("--campaigns")
        .arg(campaigns)
        .arg("--data")
        .arg(&s.data)
        .arg("--database")
        .arg(format!("sqlite://{}/kuma.db", s.data.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn token(s: &Server, campaigns: &Path, role: &str, name: &str) -> String {
    made_token(s, campaigns, &["--role", role, "--name", name])
}

/// A token that reaches `campaign` only.
fn limited_token(s: &Server, campaigns: &Path, role: &str, name: &str, campaign: &str) -> String {
    made_token(
        s,
        campaigns,
        &["--role", role, "--name", name, "--campaign", campaign],
    )
}

/// `kuma token create ARGS`: the token it printed.
fn made_token(s: &Server, campaigns: &Path, args: &[&str]) -> String {
    let out = kuma(s, campaigns, &[&["token", "create"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `POST /api/campaigns`: campaign `id` made from the example, as `token`.
fn new_campaign_from_the_example(s: &Server, token: &str, id: &str) {
    let r = request(
        s,
        "POST",
        "/api/campaigns",
        token,
        &[("Content-Type", "application/json")],
        Some(
            serde_json::json!({"id": id, "from": ID, "title": "Week 49"})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn comments(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .collect()
}

#[test]
fn the_schedule_is_changed_checked_kept_in_history_and_served_at_once() {
    let (_dir, campaigns) = studio_copy();
    let file = campaigns.join(format!("{ID}.toml"));
    let original = std::fs::read_to_string(&file).unwrap();
    let s = Server::start_in(&campaigns, &[]);
    let amina = token(&s, &campaigns, "broadcaster", "amina");
    let ali = token(&s, &campaigns, "analyst", "ali");
    let path = format!("/api/campaigns/{ID}/schedule");

    // The schedule as the editor shows it: slots, no cron.
    let r = get(&s, &path, &amina);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        v["schedule"]["broadcasts"][0],
        serde_json::json!({"days": ["tue"], "time": "19:00"})
    );
    assert_eq!(v["schedule"]["timezone"], "Africa/Bamako");
    let tag = r.etag();
    assert_eq!(v["etag"], tag.as_str());

    let body = serde_json::json!({
        "timezone": "Africa/Bamako",
        "broadcasts": [{"days": ["wed"], "time": "19:00"}, {"date": "2026-12-24", "time": "20:00"}],
        "poll_window": "48h",
        "from": "2026-11-01",
        "until": null
    });
    // An analyst may not.
    assert_eq!(put_json(&s, &path, &ali, None, &body).status, 403);

    // Mistakes: 400 with kuma check's words and the field; nothing written.
    let mut bad = body.clone();
    bad["timezone"] = "Mars/Olympus".into();
    let r = put_json(&s, &path, &amina, Some(&tag), &bad);
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.json();
    assert_eq!(e["field"], "timezone", "{e}");
    let msg = e["error"].as_str().unwrap();
    assert!(msg.contains(&format!("{ID}.toml:")), "{msg}");
    // The file by its name: the server's folders stay on the server.
    assert!(
        !e.to_string().contains(&campaigns.display().to_string()),
        "{e}"
    );
    assert!(
        msg.contains("[schedule] `timezone`: `Mars/Olympus` is not a time zone"),
        "{msg}"
    );
    let mut bad = body.clone();
    bad["broadcasts"][1]["date"] = "2026-13-40".into();
    let e = put_json(&s, &path, &amina, Some(&tag), &bad).json();
    assert_eq!(e["field"], "broadcasts[1].date", "{e}");
    let mut bad = body.clone();
    bad["poll_window"] = "forever".into();
    let e = put_json(&s, &path, &amina, Some(&tag), &bad).json();
    assert_eq!(e["field"], "poll_window", "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("[schedule] `poll_window`"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // The check route answers as one types, writing nothing.
    let r = request(
        &s,
        "POST",
        &format!("{path}/check"),
        &amina,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["next_broadcasts"][0]["text"].is_string());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // The change: the reply is the campaign with its next broadcasts in words.
    let r = put_json(&s, &path, &amina, Some(&tag), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let words: Vec<&str> = v["next_broadcasts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert!(
        words
            .iter()
            .all(|w| w.starts_with("Wednesday") || w.contains("24 December 2026")),
        "{words:?}"
    );
    let new_tag = r.etag();
    assert_ne!(new_tag, tag);
    assert_eq!(v["version"], 2);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"0 0 19 * * Wed\""), "{text}");
    assert!(text.contains("\"0 0 20 24 12 * 2026\""), "{text}");
    assert_eq!(comments(&text), comments(&original));
    assert_eq!(
        text.lines().count(),
        original.lines().count() + 3,
        "only the broadcasts lines changed:\n{text}"
    );
    // kuma check passes on the file as written.
    let out = kuma(&s, &campaigns, &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Served at once: the campaign route shows the new broadcasts.
    let v = get(&s, &format!("/api/campaigns/{ID}"), &amina).json();
    let first = v["next_broadcasts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first.starts_with("Wednesday") || first.contains("24 December 2026"),
        "{first}"
    );

    // A second browser still holding the old version: 409, with who changed what.
    let mut other = body.clone();
    other["poll_window"] = "24h".into();
    let r = put_json(&s, &path, &amina, Some(&tag), &other);
    assert_eq!(r.status, 409, "{}", r.text());
    let v = r.json();
    assert_eq!(v["etag"], new_tag.as_str());
    assert_eq!(v["changes"][0]["who"], "amina", "{v}");
    assert_eq!(v["changes"][0]["what"], "schedule: broadcasts", "{v}");
    assert!(v["error"].as_str().unwrap().contains("by amina"), "{v}");

    // The history: the file before, then amina's change.
    let r = get(&s, &format!("/api/campaigns/{ID}/history"), &amina);
    assert_eq!(r.status, 200);
    let h = r.json();
    let versions = h["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{h}");
    assert_eq!(versions[0]["who"], "amina");
    assert_eq!(versions[0]["version"], 2);
    assert!(versions[1]["who"].is_null());
    let r = get(&s, &format!("/api/campaigns/{ID}/history/1"), &amina);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), original);

    // The whole source: a dangling `next` is refused with kuma check's line.
    let broken = text.replace("next = \"intro\"", "next = \"nowhere\"");
    let r = request(
        &s,
        "PUT",
        &format!("/api/campaigns/{ID}/source"),
        &amina,
        &[("Content-Type", "application/toml")],
        Some(broken.as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("nowhere"),
        "{}",
        r.text()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);

    // Restore the first version: the file is the original again, served.
    let r = request(
        &s,
        "POST",
        &format!("/api/campaigns/{ID}/history/1/restore"),
        &amina,
        &[("If-Match", &format!("\"{new_tag}\""))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    let v = get(&s, &path, &amina).json();
    assert_eq!(
        v["schedule"]["broadcasts"][0],
        serde_json::json!({"days": ["tue"], "time": "19:00"})
    );
    let h = get(&s, &format!("/api/campaigns/{ID}/history"), &amina).json();
    assert_eq!(h["versions"][0]["what"], "restore of version 1");
}

#[test]
fn a_new_campaign_is_made_from_an_existing_one() {
    let (dir, campaigns) = studio_copy();
    let s = Server::start_in(&campaigns, &[]);
    let amina = token(&s, &campaigns, "broadcaster", "amina");
    let post = |body: &Value| {
        request(
            &s,
            "POST",
            "/api/campaigns",
            &amina,
            &[("Content-Type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    };
    let r = post(&serde_json::json!({"id": "bad id", "from": ID, "title": "X"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "id");
    let r = post(&serde_json::json!({"id": "week-49", "from": "nope", "title": "X"}));
    assert_eq!(r.status, 404);
    let r = post(&serde_json::json!({"id": "week-49", "from": ID, "title": "Week 49"}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["campaign"]["title"], "Week 49");
    let text = std::fs::read_to_string(campaigns.join("week-49.toml")).unwrap();
    assert!(text.contains("audio = \"../audio/week-49\""), "{text}");
    assert!(!text.contains("numbers"), "{text}");
    assert!(dir.path().join("audio/week-49/bm/welcome.mp3").is_file());
    let list = get(&s, "/api/campaigns", &amina).json();
    let ids: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ID, "week-49"]);
    let r = post(&serde_json::json!({"id": "week-49", "from": ID, "title": "Again"}));
    assert_eq!(r.status, 409);
    let h = get(&s, "/api/campaigns/week-49/history", &amina).json();
    assert_eq!(
        h["versions"][0]["what"],
        format!("created from `{ID}`").as_str()
    );
}

#[test]
fn the_recordings_folder_is_not_changed_from_the_studio() {
    // A token limited to its own campaign pointed that campaign's `audio` at
    // another's recordings, then replaced one by uploading a prompt.
    let (dir, campaigns) = studio_copy();
    let s = Server::start_in(&campaigns, &[]);
    let admin = token(&s, &campaigns, "admin", "office");
    new_campaign_from_the_example(&s, &admin, "week-49");
    let week = limited_token(&s, &campaigns, "broadcaster", "week", "week-49");
    let file = campaigns.join("week-49.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("audio = "))
        .unwrap()
        + 1;
    for (who, token) in [("limited broadcaster", &week), ("admin", &admin)] {
        let absolute = dir.path().join("audio").join(ID).display().to_string();
        for folder in [format!("../audio/{ID}"), absolute] {
            let tag = get(&s, "/api/campaigns/week-49/source", token).etag();
            let changed = text.replace(
                "audio = \"../audio/week-49\"",
                &format!("audio = \"{folder}\""),
            );
            let r = request(
                &s,
                "PUT",
                "/api/campaigns/week-49/source",
                token,
                &[("If-Match", &format!("\"{tag}\""))],
                Some(changed.as_bytes()),
            );
            assert_eq!(r.status, 400, "{who}, {folder}: {}", r.text());
            let error = r.json()["error"].as_str().unwrap().to_string();
            assert!(
                error.starts_with(&format!("week-49.toml:{line}: `audio`")),
                "{error}"
            );
            assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        }
    }
    // Its own recordings are still its to replace, and the other's untouched.
    let theirs = dir.path().join(format!("audio/{ID}/fr/welcome.ogg"));
    let before = std::fs::read(&theirs).unwrap();
    let mp3 = std::fs::read(repo().join("audio").join(ID).join("fr/main_menu.mp3")).unwrap();
    let r = request(
        &s,
        "PUT",
        "/api/campaigns/week-49/prompts/fr/welcome",
        &week,
        &[("Content-Type", "audio/mpeg")],
        Some(&mp3),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(dir.path().join("audio/week-49/fr/welcome.mp3").is_file());
    assert_eq!(std::fs::read(&theirs).unwrap(), before);
}

/// A WAV of `seconds` of silence at 8 kHz.
fn silent_wav(seconds: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for _ in 0..8000 * seconds {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

#[test]
fn a_prompt_is_replaced_by_an_upload_and_served_at_once() {
    let (dir, campaigns) = studio_copy();
    let s = Server::start_in(&campaigns, &[]);
    let amina = token(&s, &campaigns, "broadcaster", "amina");
    let ali = token(&s, &campaigns, "analyst", "ali");
    let list = format!("/api/campaigns/{ID}/prompts");
    assert_eq!(get(&s, &list, &ali).status, 403);
    let r = get(&s, &list, &amina);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let find = |v: &Value, lang: &str, prompt: &str| -> Value {
        v["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["language"] == lang && p["prompt"] == prompt)
            .unwrap_or_else(|| panic!("no {lang}/{prompt} in {v}"))
            .clone()
    };
    let bm = find(&v, "bm", "welcome");
    assert_eq!(bm["state"], "placeholder", "{bm}");
    let fr = find(&v, "fr", "welcome");
    assert_eq!(fr["state"], "ok", "{fr}");
    assert!(fr["duration_ms"].as_u64().unwrap() > 1000);
    assert!(fr["transcript"].as_str().unwrap().starts_with("Bienvenue"));
    assert_eq!(fr["audio"], format!("/audio/{ID}/fr/welcome.wav").as_str());
    // Every prompt in every language.
    let n = v["prompts"].as_array().unwrap().len();
    assert_eq!(n % 3, 0);
    assert!(n >= 60, "{n}");

    let wav = |lang: &str, prompt: &str| {
        let r = get(&s, &format!("/audio/{ID}/{lang}/{prompt}.wav"), &amina);
        assert_eq!(r.status, 200);
        r.body
    };
    let before = wav("bm", "welcome");
    let path = format!("/api/campaigns/{ID}/prompts/bm/welcome");
    let put = |ct: &str, body: &[u8]| {
        request(
            &s,
            "PUT",
            &path,
            &amina,
            &[("Content-Type", ct)],
            Some(body),
        )
    };

    // Bad uploads: a reason, and the old prompt stays.
    let r = put("text/plain", b"hello");
    assert_eq!(r.status, 415, "{}", r.text());
    let r = put("audio/mpeg", b"hello, not an mp3 at all");
    assert!(
        r.status == 400 || r.status == 415,
        "{} {}",
        r.status,
        r.text()
    );
    let r = put("audio/wav", b"");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = put("audio/wav", &silent_wav(2));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().contains("silent"),
        "{}",
        r.text()
    );
    assert_eq!(wav("bm", "welcome"), before);
    assert_eq!(
        request(
            &s,
            "PUT",
            &format!("/api/campaigns/{ID}/prompts/xx/welcome"),
            &amina,
            &[("Content-Type", "audio/mpeg")],
            Some(b"x")
        )
        .status,
        404
    );

    // An MP3 (the French main menu, as a stand-in recording).
    let mp3 = std::fs::read(repo().join("audio").join(ID).join("fr/main_menu.mp3")).unwrap();
    let r = put("audio/mpeg", &mp3);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["state"], "ok", "{v}");
    assert_eq!(v["file"], "welcome.mp3");
    assert!(
        v["report"]["format"].as_str().unwrap().contains("mp3"),
        "{v}"
    );
    // Served at once, exactly as the same recording elsewhere.
    let after = wav("bm", "welcome");
    assert_ne!(after, before);
    assert_eq!(after, wav("fr", "main_menu"));
    // The old take is kept; the placeholder line is gone from the transcript.
    let kept = std::fs::read_dir(s.data.join(format!("history/{ID}/recordings/bm")))
        .unwrap()
        .count();
    assert_eq!(kept, 1);
    let txt =
        std::fs::read_to_string(dir.path().join(format!("audio/{ID}/bm/welcome.txt"))).unwrap();
    assert!(!txt.starts_with("PLACEHOLDER"), "{txt}");

    // The transcript is editable.
    let r = request(
        &s,
        "PUT",
        &format!("{path}/transcript"),
        &amina,
        &[("Content-Type", "text/plain; charset=utf-8")],
        Some("I ni ce.".as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = get(&s, &list, &amina).json();
    let bm = find(&v, "bm", "welcome");
    assert_eq!(bm["state"], "ok", "{bm}");
    assert_eq!(bm["transcript"], "I ni ce.");
}

#[test]
fn a_token_limited_to_one_campaign_gets_404_for_every_route_of_another() {
    let (_dir, campaigns) = studio_copy();
    let s = Server::start_in(&campaigns, &[]);
    let admin = token(&s, &campaigns, "admin", "office");
    let other = "week-49";
    new_campaign_from_the_example(&s, &admin, other);
    // An unknown campaign is refused when the token is made.
    let out = kuma(
        &s,
        &campaigns,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "x",
            "--campaign",
            "nope",
        ],
    );
    assert!(!out.status.success());
    let station = limited_token(&s, &campaigns, "admin", "station", ID);
    // `kuma token list` (and `GET /api/tokens`) show each token's reach.
    let out = kuma(&s, &campaigns, &["token", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listed}");
    let line = |name: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("no {name} in {listed}"))
            .to_string()
    };
    assert!(line("office").contains("\tevery campaign\t"), "{listed}");
    assert!(
        line("station").contains(&format!("\tcampaigns {ID}\t")),
        "{listed}"
    );
    let tokens = get(&s, "/api/tokens", &admin).json();
    let scopes: Vec<(&str, &Value)> = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), &t["campaigns"]))
        .collect();
    assert_eq!(
        scopes,
        [
            ("office", &serde_json::json!([])),
            ("station", &serde_json::json!([ID]))
        ]
    );

    let list = get(&s, "/api/campaigns", &station).json();
    let ids: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ID]);
    assert_eq!(
        get(&s, &format!("/api/campaigns/{ID}/results"), &station).status,
        200
    );
    assert_eq!(get(&s, &format!("/campaigns/{ID}"), &station).status, 200);

    let gets = [
        "",
        "/results",
        "/results/live",
        "/answers.csv",
        "/funnel",
        "/callbacks",
        "/flow-results",
        "/flow-results/data",
        "/recordings",
        "/schedule",
        "/source",
        "/history",
        "/history/1",
        "/prompts",
    ];
    for path in gets {
        let url = format!("/api/campaigns/{other}{path}");
        // The unlimited token reaches it (so a 404 below is the limit's); the
        // live stream never ends, so it is not read.
        if path != "/results/live" {
            assert_eq!(get(&s, &url, &admin).status, 200, "{url}");
        }
        let r = get(&s, &url, &station);
        assert_eq!(r.status, 404, "{url}: {}", r.text());
        assert!(r.text().contains("unknown campaign"), "{url}: {}", r.text());
    }
    for page in [
        "",
        "/board",
        "/recordings",
        "/simulator",
        "/schedule",
        "/prompts",
        "/questions",
    ] {
        let url = format!("/campaigns/{other}{page}");
        assert_eq!(get(&s, &url, &admin).status, 200, "{url}");
        assert_eq!(get(&s, &url, &station).status, 404, "{url}");
    }
    let json = [("Content-Type", "application/json")];
    for (method, path, body) in [
        ("POST", "/simulate", "{}"),
        ("PUT", "/schedule", "{\"timezone\": \"Africa/Bamako\"}"),
        (
            "POST",
            "/schedule/check",
            "{\"timezone\": \"Africa/Bamako\"}",
        ),
        ("PUT", "/source", "title = \"x\""),
        ("POST", "/history/1/restore", ""),
        ("PUT", "/prompts/bm/welcome", "x"),
        ("PUT", "/prompts/bm/welcome/transcript", "x"),
        ("PUT", "/nodes/q_gender", "{}"),
        ("DELETE", "/nodes/q_gender", ""),
    ] {
        let url = format!("/api/campaigns/{other}{path}");
        let r = request(&s, method, &url, &station, &json, Some(body.as_bytes()));
        assert_eq!(r.status, 404, "{method} {url}: {}", r.text());
    }
    // Nothing past its limits: no new campaigns, no tokens.
    let r = request(
        &s,
        "POST",
        "/api/campaigns",
        &station,
        &json,
        Some(br#"{"id": "w50", "from": "stop-trafficking-mali", "title": "x"}"#),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(get(&s, "/api/tokens", &station).status, 403);
    // The other campaign's file is untouched.
    let h = get(&s, &format!("/api/campaigns/{other}/history"), &admin).json();
    assert_eq!(h["versions"].as_array().unwrap().len(), 1, "{h}");
}

fn delete(s: &Server, path: &str, token: &str, if_match: &str) -> Reply {
    let tag = format!("\"{if_match}\"");
    request(
        s,
        "DELETE",
        path,
        token,
        &[("If-Match", tag.as_str())],
        None,
    )
}

/// Where node `id` leads, in the campaign as the API serves it.
fn node_of(s: &Server, token: &str, id: &str) -> Value {
    let v = get(s, &format!("/api/campaigns/{ID}"), token).json();
    v["campaign"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn this_weeks_question_is_added_moved_and_removed_and_its_answers_stay() {
    let (_dir, campaigns) = studio_copy();
    let file = campaigns.join(format!("{ID}.toml"));
    let original = std::fs::read_to_string(&file).unwrap();
    let s = Server::start_in(&campaigns, &[]);
    let amina = token(&s, &campaigns, "broadcaster", "amina");
    let ali = token(&s, &campaigns, "analyst", "ali");
    let tag = get(&s, &format!("/api/campaigns/{ID}/source"), &amina).etag();
    let url = format!("/api/campaigns/{ID}/nodes/q_week");
    let week = |next: Option<&str>, choices: Value| {
        serde_json::json!({
            "kind": "question", "prompt": "q_week", "choices": choices,
            "next": next, "on_fail": "poll_thanks", "after": "q_region",
        })
    };
    let three = serde_json::json!([
        {"key": "1", "id": "yes"}, {"key": "2", "id": "no"}, {"key": "3", "id": "not_sure"}
    ]);
    assert_eq!(
        put_json(&s, &url, &ali, Some(&tag), &week(None, three.clone())).status,
        403
    );

    // Mistakes: `kuma check`'s words, nothing written.
    let refused = |body: &Value, words: &str| {
        let r = put_json(&s, &url, &amina, Some(&tag), body);
        assert_eq!(r.status, 400, "{}", r.text());
        let e = r.json()["error"].as_str().unwrap().to_string();
        assert!(e.contains(words), "{e}");
        assert!(e.contains(&format!("{ID}.toml:")), "a kuma check line: {e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    };
    refused(
        &week(None, three.clone()),
        "prompt `q_week` has no recording",
    );
    let mp3 = std::fs::read(repo().join("audio").join(ID).join("fr/main_menu.mp3")).unwrap();
    for lang in ["bm", "fr", "snk"] {
        let r = request(
            &s,
            "PUT",
            &format!("/api/campaigns/{ID}/prompts/{lang}/q_week"),
            &amina,
            &[("Content-Type", "audio/mpeg")],
            Some(&mp3),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = request(
        &s,
        "PUT",
        &format!("/api/campaigns/{ID}/prompts/fr/q_week/transcript"),
        &amina,
        &[],
        Some("Avez-vous écouté l'émission ?".as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    refused(
        &week(Some("nowhere"), three.clone()),
        "no node has id `nowhere`",
    );
    let r = put_json(
        &s,
        &url,
        &amina,
        Some(&tag),
        &week(Some("nowhere"), three.clone()),
    );
    assert_eq!(
        r.json()["field"],
        "next",
        "the editor's field: {}",
        r.text()
    );
    let twice = serde_json::json!([{"key": "1", "id": "yes"}, {"key": "1", "id": "no"}]);
    refused(&week(None, twice), "duplicate key");
    let menu = serde_json::json!({"kind": "question", "prompt": "main_menu",
        "choices": [{"key": "1", "id": "a"}], "next": "goodbye"});
    let r = put_json(
        &s,
        &format!("/api/campaigns/{ID}/nodes/menu"),
        &amina,
        Some(&tag),
        &menu,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["field"], "kind");

    // Added after q_region: q_region leads to it, it leads where q_region led.
    let r = put_json(&s, &url, &amina, Some(&tag), &week(None, three.clone()));
    assert_eq!(r.status, 200, "{}", r.text());
    let added = r.etag();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(comments(&text), comments(&original));
    assert!(text.contains("[[node]]\nid = \"q_week\"\nkind = \"question\"\nprompt = \"q_week\"\nchoices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }\nnext = \"poll_thanks\"\non_fail = \"poll_thanks\"\n"), "{text}");
    assert_eq!(node_of(&s, &amina, "q_region")["next"], "q_week");
    assert_eq!(node_of(&s, &amina, "q_week")["next"], "poll_thanks");
    let out = kuma(&s, &campaigns, &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The second browser, still on the old version: 409 with what changed.
    let r = put_json(&s, &url, &amina, Some(&tag), &week(None, three.clone()));
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("node q_week: added"),
        "{}",
        r.text()
    );

    // A caller hears it and answers it (Tuesday's programme, French, poll).
    let out = kuma(
        &s,
        &campaigns,
        &[
            "call",
            ID,
            "--digits",
            "2 2 1 1 1 1 1 3 0",
            "--at",
            "2026-12-01T19:30",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("▶ fr/q_week  \"Avez-vous écouté"), "{said}");
    assert!(
        said.contains("answer saved: q_week = not_sure (key 3)"),
        "{said}"
    );

    // Moved before q_know_signs: the chain is rewired, the file follows.
    let moved = serde_json::json!({
        "kind": "question", "prompt": "q_week", "choices": three,
        "on_fail": "poll_thanks", "after": "q_offered_work",
    });
    let r = put_json(&s, &url, &amina, Some(&added), &moved);
    assert_eq!(r.status, 200, "{}", r.text());
    let moved_tag = r.etag();
    assert_eq!(node_of(&s, &amina, "q_offered_work")["next"], "q_week");
    assert_eq!(node_of(&s, &amina, "q_week")["next"], "q_know_signs");
    assert_eq!(node_of(&s, &amina, "q_week")["on_fail"], "q_know_signs");
    assert_eq!(node_of(&s, &amina, "q_region")["next"], "poll_thanks");
    let text = std::fs::read_to_string(&file).unwrap();
    let at = |id: &str| text.find(&format!("id = \"{id}\"")).unwrap();
    assert!(at("q_offered_work") < at("q_week") && at("q_week") < at("q_know_signs"));

    // Removed: what led to it leads where it led; its answers stay readable.
    let r = request(
        &s,
        "DELETE",
        &format!("/api/campaigns/{ID}/nodes/menu"),
        &amina,
        &[],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        delete(
            &s,
            &format!("/api/campaigns/{ID}/nodes/nope"),
            &amina,
            &moved_tag
        )
        .status,
        404
    );
    let r = delete(&s, &url, &amina, &moved_tag);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        node_of(&s, &amina, "q_offered_work")["next"],
        "q_know_signs"
    );
    assert_eq!(node_of(&s, &amina, "q_week"), Value::Null);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, original, "the file is as it was before the question");
    let r = get(&s, &format!("/api/campaigns/{ID}/results"), &amina);
    let v = r.json();
    let q = v["questions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == "q_week")
        .unwrap_or_else(|| panic!("q_week is gone from {v}"))
        .clone();
    assert_eq!(q["removed"], true, "{q}");
    // One answer: a small group, masked for the web.
    assert_eq!(q["answered"], "<5", "{q}");
    assert_eq!(q["choices"][0]["id"], "not_sure", "{q}");
    let out = kuma(&s, &campaigns, &["results", ID]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("q_week (1 answered)"), "{shown}");
    let page = get(&s, &format!("/campaigns/{ID}"), &amina).text();
    assert!(page.contains("data-question=\"q_week\""), "{page}");
    // The FLOIP package still describes it: its rows are still there.
    let floip = get(&s, &format!("/api/campaigns/{ID}/flow-results"), &ali).json();
    let described = &floip["resources"][0]["schema"]["questions"]["q_week"];
    assert_eq!(described["type"], "select_one", "{floip}");
    assert_eq!(
        described["type_options"]["choices"],
        serde_json::json!(["not_sure"])
    );
    // The history tells who did what.
    let h = get(&s, &format!("/api/campaigns/{ID}/history"), &amina).json();
    let whats: Vec<&str> = h["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        whats,
        [
            "node q_week: removed (what led to it leads to q_know_signs)",
            "node q_week: moved after q_offered_work",
            "node q_week: added, placed after q_region",
            "the file before the first change"
        ]
    );
    // The page lists the questions and offers the new one.
    let page = get(&s, &format!("/campaigns/{ID}/questions"), &amina);
    assert_eq!(page.status, 200);
    let page = page.text();
    assert!(page.contains("data-node=\"q_region\""), "{page}");
    assert!(page.contains("id=\"new-node\""), "{page}");
    assert_eq!(
        get(&s, &format!("/campaigns/{ID}/questions"), &ali).status,
        403
    );
}
