//! Helpers shared by the whole-program tests (each test binary uses some of them).
#![allow(dead_code)]

use serde_json::Value;

/// The count of `choice` for `question` in a results JSON.
pub fn count(r: &Value, question: &str, choice: &str) -> u64 {
    r["questions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["id"] == question)
        .and_then(|q| q["choices"].as_array()?.iter().find(|c| c["id"] == choice))
        .and_then(|c| c["count"].as_u64())
        .unwrap_or_else(|| panic!("no {question}/{choice} in {r}"))
}

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The repository (the example campaign and its audio live there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fills a fresh data folder with the example campaign's prompts already prepared,
/// so that a `kuma serve` started on it does not decode the audio again: they are
/// prepared once per test binary (`kuma audio prepare`) and copied.
pub fn prepared_data(data: &Path) {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["audio", "prepare", "stop-trafficking-mali", "--campaigns"])
            .arg(repo().join("campaigns"))
            .arg("--data")
            .arg(dir.path())
            .arg("--database")
            .arg(format!("sqlite://{}/unused.db", dir.path().display()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    });
    copy_dir(&cache.path().join("audio-cache"), &data.join("audio-cache"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
