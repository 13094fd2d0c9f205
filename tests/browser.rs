//! The web pages in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (`tests/browser/run.mjs`) against a real `kuma serve` started
//! here on run-time ports with a fresh data folder. Tokens come from `kuma token
//! create`, answers from `kuma simulate` and `kuma call`, one voice message from
//! the store's own `add_recording` (as a SIP call would leave it), call-backs
//! from the store's call-back queue (`Store::callbacks`).
//!
//! Needs `chromium` (Debian package) and `npm ci --prefix tests/browser`; `.ci/run`
//! does both. Screenshots of every page are left in `target/browser-screenshots/`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{prepared_data, repo};

const CAMPAIGN: &str = "stop-trafficking-mali";
/// Inside the poll window of the Tuesday 1 December 2026 broadcast (19:00 Bamako).
const DURING_BROADCAST: &str = "2026-12-01T19:30";

fn chromium() -> PathBuf {
    let path = std::env::var_os("KUMA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "no Chromium at {}: install Debian's package (`apt-get install chromium`, as .ci/run does) \
         or point KUMA_CHROMIUM at a Chromium binary",
        path.display()
    );
    path
}

fn playwright() {
    let dir = repo().join("tests/browser/node_modules/playwright-core");
    assert!(
        dir.is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (as .ci/run does; \
         it installs from the npm registry and downloads no browser)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed: install Node.js 20 or later (Debian: `apt-get install nodejs npm`)"
    );
}

/// A running `kuma serve`, stopped when dropped.
struct Server {
    child: Child,
    http: SocketAddr,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        prepared_data(&data);
        let (stderr, log) = common::stderr_log(dir.path());
        let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(common_args(&data))
            .env_remove("KUMA_CONFIG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let (_, http) = common::serve_addresses(&mut child, &log);
        Server {
            http,
            child,
            data,
            _dir: dir,
        }
    }

    fn database(&self) -> String {
        database(&self.data)
    }

    /// Runs `kuma` on the server's database and data folder; its stdout.
    fn kuma(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(args)
            .args(common_args(&self.data))
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
        self.kuma(&["token", "create", "--role", role, "--name", name])
            .trim()
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn database(data: &Path) -> String {
    format!("sqlite://{}/kuma.db", data.display())
}

fn common_args(data: &Path) -> Vec<String> {
    vec![
        "--campaigns".into(),
        repo().join("campaigns").display().to_string(),
        "--data".into(),
        data.display().to_string(),
        "--database".into(),
        database(data),
    ]
}

/// One voice message, stored as `kuma serve` stores a caller's: a call, a WAV
/// file of 8 kHz 16-bit audio, and its row.
fn leave_voice_message(server: &Server) {
    let file = server.data.join("voice-message.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&file, spec).unwrap();
    for i in 0..16_000u32 {
        let s = (f64::from(i) * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin();
        w.write_sample((s * 8000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = kuma::store::Store::open(&server.database()).await.unwrap();
        let at = chrono::Utc::now();
        let call = store
            .start_call(&kuma::store::NewCall {
                campaign: CAMPAIGN,
                caller: "c_browsertest",
                channel: "sip",
                started_at: at,
                broadcast: None,
            })
            .await
            .unwrap();
        store.set_language(call, "fr").await.unwrap();
        store
            .add_recording(&kuma::store::NewRecording {
                call,
                node: "leave_message",
                file: &file.display().to_string(),
                duration: Duration::from_secs(2),
                at,
            })
            .await
            .unwrap();
        store.close().await;
    });
}

/// Call-backs as `kuma serve` leaves them (this server has no trunk, so nothing
/// dials them meanwhile): two queued for tomorrow, one refused.
fn queue_callbacks(server: &Server) {
    use kuma::outbound::{Policy, Refusal};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = kuma::store::Store::open(&server.database()).await.unwrap();
        let at = chrono::Utc::now();
        for caller in ["c_callback0000001", "c_callback0000002"] {
            let (_, queued) = store
                .callbacks()
                .queue(
                    &kuma::store::NewCallback {
                        campaign: CAMPAIGN,
                        caller,
                        sealed: b"sealed",
                        at,
                        due: at + chrono::Duration::days(1),
                    },
                    &Policy::default(),
                )
                .await
                .unwrap();
            assert_eq!(queued, Ok(()));
        }
        store
            .callbacks()
            .refuse(CAMPAIGN, "c_callback0000003", Refusal::Withheld, at)
            .await
            .unwrap();
        store.close().await;
    });
}

#[test]
fn the_web_app_in_chromium() {
    let chromium = chromium();
    playwright();
    let server = Server::start();
    let analyst = server.token("analyst", "browser-analyst");
    let broadcaster = server.token("broadcaster", "browser-broadcaster");
    let admin = server.token("admin", "browser-admin");
    server.kuma(&[
        "simulate",
        CAMPAIGN,
        "--calls",
        "60",
        "--seed",
        "7",
        "--at",
        DURING_BROADCAST,
    ]);
    leave_voice_message(&server);
    queue_callbacks(&server);

    let screenshots = repo().join("target/browser-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("node")
        .arg(repo().join("tests/browser/run.mjs"))
        .env("KUMA_URL", format!("http://{}", server.http))
        .env("KUMA_ANALYST_TOKEN", &analyst)
        .env("KUMA_BROADCASTER_TOKEN", &broadcaster)
        .env("KUMA_ADMIN_TOKEN", &admin)
        .env("KUMA_CAMPAIGN", CAMPAIGN)
        .env("KUMA_AT", DURING_BROADCAST)
        .env("KUMA_BIN", env!("CARGO_BIN_EXE_kuma"))
        .env("KUMA_ARGS", common_args(&server.data).join("\n"))
        .env("KUMA_CHROMIUM", &chromium)
        .env("KUMA_PROFILE", profile.path())
        .env("KUMA_SCREENSHOTS", &screenshots)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser tests failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all browser checks passed"), "{stdout}");
}
