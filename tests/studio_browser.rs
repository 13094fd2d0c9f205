//! The broadcaster's studio pages in a real browser (Debian's Chromium,
//! headless, driven by playwright-core: `tests/browser/studio.mjs`) against a
//! real `kuma serve` on a copy of the example campaign: a broadcast moves to
//! another day, an MP3 (made by LAME from a WAV, now) replaces a prompt, a
//! prompt is recorded from Chromium's fake microphone, and a question with
//! three choices is added after the last one, its prompt recorded in French
//! from the microphone and uploaded in the other languages; then a `kuma call`
//! hears the new prompt and answers the new question, `kuma results` counts
//! the answer, the file keeps its comments and `kuma check` passes; and a SIP
//! call (sipp, RFC 4733 keys) answers the new question as well.
//!
//! Needs `chromium`, `lame`, `sipp` and `npm ci --prefix tests/browser` (as
//! `tests/browser.rs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Server, repo};

const ID: &str = "stop-trafficking-mali";

fn kuma(campaigns: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(args)
        .arg("--campaigns")
        .arg(campaigns)
        .arg("--data")
        .arg(data)
        .arg("--database")
        .arg(format!("sqlite://{}/kuma.db", data.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn comments(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_studio_in_chromium() {
    let chromium =
        PathBuf::from(std::env::var_os("KUMA_CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    assert!(chromium.is_file(), "no Chromium at {}", chromium.display());
    assert!(
        repo()
            .join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser`"
    );
    let dir = tempfile::tempdir().unwrap();
    let campaigns = dir.path().join("campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    let file = campaigns.join(format!("{ID}.toml"));
    std::fs::copy(repo().join("campaigns").join(format!("{ID}.toml")), &file).unwrap();
    let audio = dir.path().join("audio").join(ID);
    common::copy_dir(&repo().join("audio").join(ID), &audio);
    let original = std::fs::read_to_string(&file).unwrap();
    // An MP3 made now, as a station's editing software would.
    let mp3 = dir.path().join("made.mp3");
    let lame = Command::new("lame")
        .args(["--quiet", "-b", "32"])
        .arg(repo().join("audio").join(ID).join("fr/message_thanks.wav"))
        .arg(&mp3)
        .status()
        .expect("lame is not installed (apt-get install lame)");
    assert!(lame.success());

    let server = Server::start_in(&campaigns, &[]);
    let out = kuma(
        &campaigns,
        &server.data,
        &[
            "token",
            "create",
            "--role",
            "broadcaster",
            "--name",
            "amina",
        ],
    );
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let screenshots = repo().join("target/browser-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(repo().join("tests/browser/studio.mjs"))
        .env("KUMA_URL", format!("http://{}", server.http))
        .env("KUMA_BROADCASTER_TOKEN", &token)
        .env("KUMA_CAMPAIGN", ID)
        .env("KUMA_CHROMIUM", &chromium)
        .env("KUMA_PROFILE", profile.path())
        .env("KUMA_SCREENSHOTS", &screenshots)
        .env("KUMA_MP3", &mp3)
        .env(
            "KUMA_FAKE_MIC",
            repo().join("audio").join(ID).join("fr/goodbye.wav"),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the studio browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("all studio browser checks passed"),
        "{stdout}"
    );

    // The file: the new broadcasts, every comment as it was, and kuma check passes.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"0 0 19 * * Wed\""), "{text}");
    assert!(text.contains("\"0 0 20 24 12 * 2026\""), "{text}");
    assert!(!text.contains("* * Tue\""), "{text}");
    assert_eq!(comments(&text), comments(&original));
    let out = kuma(&campaigns, &server.data, &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The recordings: the uploaded MP3 and the WAV recorded in Chromium.
    assert_eq!(
        std::fs::read(audio.join("bm/welcome.mp3")).unwrap(),
        std::fs::read(&mp3).unwrap()
    );
    let recorded = hound::WavReader::open(audio.join("bm/goodbye.wav")).unwrap();
    assert_eq!(recorded.spec().channels, 1);
    assert!(
        recorded.duration() > recorded.spec().sample_rate,
        "more than a second recorded"
    );
    let out = kuma(&campaigns, &server.data, &["audio", "prepare", ID]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The new question, in the file after q_region, its prompt recorded in Chromium.
    assert!(text.contains("next = \"q_week\""), "{text}");
    // poll_thanks was removed in the page: q_week leads to the menu.
    assert!(!text.contains("id = \"poll_thanks\""), "{text}");
    assert!(
        text.contains("prompt = \"q_week\"\nchoices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }\nnext = \"menu\"\n"),
        "{text}"
    );
    assert!(
        text.contains("choices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }"),
        "{text}"
    );
    let take = hound::WavReader::open(audio.join("fr/q_week.wav")).unwrap();
    assert!(take.duration() > take.spec().sample_rate);
    // A caller on Wednesday's programme (the broadcast moved there) hears it
    // and answers it; `kuma results` counts the answer.
    let out = kuma(
        &campaigns,
        &server.data,
        &[
            "call",
            ID,
            "--digits",
            "2 2 1 1 1 1 1 3 0",
            "--at",
            "2026-12-02T19:30",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("poll open"), "{said}");
    assert!(said.contains("▶ fr/q_week"), "{said}");
    assert!(
        said.contains("answer saved: q_week = not_sure (key 3)"),
        "{said}"
    );
    let out = kuma(&campaigns, &server.data, &["results", ID]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("q_week (1 answered)"), "{shown}");
    assert!(shown.contains("3 not_sure       1"), "{shown}");

    // A phone call over SIP (sipp, RFC 4733 keys) answers it too. The poll is
    // opened for the whole run first (a studio change like any other), so
    // that the call does not depend on today's date.
    if common::have_sipp() {
        let auth = format!("Bearer {token}");
        let schedule = format!("/api/campaigns/{ID}/schedule");
        let r = common::http(
            server.http,
            "GET",
            &schedule,
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let mut edit = v["schedule"].clone();
        edit["poll_window"] = serde_json::Value::Null;
        let tag = format!("\"{}\"", v["etag"].as_str().unwrap());
        let r = common::http(
            server.http,
            "PUT",
            &schedule,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("If-Match", &tag),
            ],
            Some(edit.to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let out = server.sipp("poll_new_question.xml", "2000", &[]);
        assert!(
            out.status.success(),
            "the SIP call answered the new question and kuma hung up"
        );
        let database = format!("sqlite://{}/kuma.db", server.data.display());
        let results = || {
            common::kuma_json(
                &campaigns,
                &database,
                &server.data,
                &["results", ID, "--format", "json"],
            )
        };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while common::count(&results(), "q_week", "not_sure") < 2
            && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let r = results();
        assert_eq!(common::count(&r, "q_week", "not_sure"), 2, "{r}");
        assert_eq!(common::count(&r, "q_region", "koulikoro"), 1, "{r}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(comments(&text), comments(&original));
        let out = kuma(&campaigns, &server.data, &["check"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
