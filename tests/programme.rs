//! A whole programme as a message: a 20-minute MP3 is accepted by `kuma check`
//! and prepared (`max_prompt`, default 60 minutes), refused with a clear reason
//! when the campaign's `max_prompt` is shorter, and `kuma call` moves through it
//! with the replay keys of `[replay]`.
//!
//! The MP3 is made here, from generated audio, with `lame` (installed by
//! `./test`): nothing 20 minutes long is committed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{kuma_ok, peer_missing, write_wav_8k};

const CAMPAIGN: &str = r#"title = "Weekly programme"
languages = ["fr"]
audio = "../audio/programme"
numbers = ["3000"]

[[node]]
id = "programme"
kind = "message"
prompt = "programme"
next = "menu"

[[node]]
id = "menu"
kind = "menu"
prompt = "menu"
options = { "1" = "programme", "0" = "bye" }
on_fail = "bye"

[[node]]
id = "bye"
kind = "hangup"
prompt = "goodbye"

[replay]
"#;

/// `seconds` of 8 kHz speech-like sound (tones whose loudness moves three times
/// a second) as a 16-bit WAV.
fn sound(path: &Path, seconds: u32) {
    let pcm: Vec<i16> = (0..seconds * 8000)
        .map(|i| {
            let t = f64::from(i) / 8000.0;
            let envelope = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let tone = (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 0.5 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin();
            (tone * envelope * 8000.0) as i16
        })
        .collect();
    write_wav_8k(path, &pcm);
}

/// A campaign folder whose `programme` is a 20-minute MP3; `None` when lame is
/// missing and the test may be skipped.
fn programme(header: &str) -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = dir.path().join("campaigns");
    let audio = dir.path().join("audio/programme/fr");
    fs::create_dir_all(&campaigns).unwrap();
    fs::create_dir_all(&audio).unwrap();
    fs::write(
        campaigns.join("programme.toml"),
        format!("{header}{CAMPAIGN}"),
    )
    .unwrap();
    let wav = dir.path().join("programme.wav");
    sound(&wav, 20 * 60);
    let mp3 = audio.join("programme.mp3");
    match Command::new("lame")
        .args(["--quiet", "-b", "16", "-m", "m"])
        .arg(&wav)
        .arg(&mp3)
        .status()
    {
        Ok(s) => assert!(s.success(), "lame failed"),
        Err(_) => {
            peer_missing("lame");
            return None;
        }
    }
    fs::remove_file(&wav).unwrap();
    sound(&audio.join("menu.wav"), 3);
    sound(&audio.join("goodbye.wav"), 2);
    let data = dir.path().join("data");
    Some((dir, campaigns, data))
}

fn kuma(campaigns: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(args)
        .arg("--campaigns")
        .arg(campaigns)
        .arg("--data")
        .arg(data)
        .arg("--database")
        .arg(format!("sqlite://{}/kuma.db", data.display()))
        .output()
        .unwrap()
}

#[test]
fn a_twenty_minute_mp3_programme_is_a_message_and_the_replay_keys_move_through_it() {
    let Some((_dir, campaigns, data)) = programme("max_call = \"90m\"\n") else {
        return;
    };
    fs::create_dir_all(&data).unwrap();
    let db = format!("sqlite://{}/kuma.db", data.display());

    // Prepared once (into the cache), then checked from the cache.
    let out = kuma_ok(&campaigns, &db, &data, &["audio", "prepare"]);
    assert!(out.contains("fr/programme"), "{out}");
    let out = kuma(&campaigns, &data, &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("programme: Weekly programme — ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("prompts:   up to 1h each (max_prompt)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("calls:     up to 1h30m (max_call)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "replay:    during messages 4 back 10s, 6 forward 10s, 5 pause/resume, # skip"
        ),
        "{stdout}"
    );
    // The whole 20 minutes are there (the prepared length, trimmed of nothing
    // but the edges).
    assert!(stdout.contains("audio: 3 recordings, 20m"), "{stdout}");
    assert!(stdout.contains("all usable"), "{stdout}");

    // Forward twice, back once, pause, resume, then skip to the next node.
    let out = kuma_ok(
        &campaigns,
        &db,
        &data,
        &["call", "programme", "--digits", "6 6 4 5 5 # 0"],
    );
    let steps: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with('[')
                || l.starts_with("key ")
                || l.starts_with('⏩')
                || l.starts_with('⏪')
                || l.starts_with('⏸')
                || l.starts_with("▶ resumed")
        })
        .collect();
    assert_eq!(
        steps,
        [
            "[programme] message",
            "key 6",
            "⏩ forward 10s",
            "key 6",
            "⏩ forward 10s",
            "key 4",
            "⏪ back 10s",
            "key 5",
            "⏸ paused (the same key resumes)",
            "key 5",
            "▶ resumed",
            "key #",
            "[menu] menu",
            "key 0",
            "[bye] hangup",
        ],
        "{out}"
    );
    assert!(out.contains("ended: completed"), "{out}");
}

#[test]
fn a_programme_longer_than_the_campaigns_max_prompt_is_refused_with_the_reason() {
    let Some((_dir, campaigns, data)) = programme("max_prompt = \"10m\"\n") else {
        return;
    };
    let out = kuma(&campaigns, &data, &["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let file = campaigns.join("../audio/programme/fr/programme.mp3");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("{}: error: ", file.display()))
                && l.contains("longer than the limit of 10m")
                && l.contains("`max_prompt`")),
        "{stderr}"
    );
}

/// The `at_ms` of each log line of the SIP shell with `what` (`seek`, `pause`,
/// `resume`), in order.
fn positions(log: &str, what: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(&format!(" {what} ")) || l.ends_with(&format!(" {what}")))
        .filter_map(|l| {
            let rest = l.split("at_ms=").nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn a_phone_call_moves_through_the_programme_with_rfc4733_keys() {
    if !common::have_sipp() {
        return;
    }
    let Some((_dir, campaigns, _)) = programme("max_call = \"90m\"\n") else {
        return;
    };
    let k = common::Server::start_with_env(
        &campaigns,
        &[],
        &[("KUMA_LOG", "warn,kuma::serve::call=debug")],
    );
    let out = k.sipp("programme_replay.xml", "3000", &[]);
    assert!(
        out.status.success(),
        "the call went through and kuma hung up after goodbye"
    );
    let db = format!("sqlite://{}/kuma.db", k.data.display());
    let mut results = serde_json::Value::Null;
    for _ in 0..100 {
        results = common::kuma_json(
            &campaigns,
            &db,
            &k.data,
            &["results", "programme", "--format", "json"],
        );
        if results["completed"] == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(results["calls"], 1, "{results}");
    assert_eq!(
        results["completed"], 1,
        "skip led to the menu, 0 to goodbye"
    );

    let log = fs::read_to_string(&k.log).unwrap();
    let seeks = positions(&log, "seek");
    assert_eq!(seeks.len(), 3, "{log}");
    let (first, last) = (seeks[0], seeks[2]);
    assert!(seeks[1] >= first + 10_000, "forward twice: {seeks:?}");
    // Forward, forward, back: 10 s on from where the programme was, plus the
    // moment it played between the keys.
    assert!(first >= 10_000, "{seeks:?}");
    assert!(
        (first..first + 5_000).contains(&last),
        "forward twice then back once lands 10 s on: {seeks:?}"
    );
    let (paused, resumed) = (positions(&log, "pause"), positions(&log, "resume"));
    assert_eq!(paused.len(), 1, "{log}");
    assert_eq!(
        paused, resumed,
        "nothing of the programme was sent while paused"
    );
    assert!(paused[0] >= last, "{paused:?} {seeks:?}");
}

#[test]
fn a_programme_longer_than_a_call_may_last_is_a_warning_that_names_max_call() {
    let Some((_dir, campaigns, data)) = programme("") else {
        return;
    };
    let out = kuma(&campaigns, &data, &["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning, not an error: {stderr}");
    let file = campaigns.join("../audio/programme/fr/programme.mp3");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("{}: warning: ", file.display()))
                && l.contains("but a call ends after 10m")
                && l.contains("max_call = \"30m\"")),
        "{stderr}"
    );
}
