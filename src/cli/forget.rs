//! `kuma forget`: erases listeners who ask the station to forget them (see
//! `crate::store::Store::forget` for what goes, and what stays: the counts).
//! They are named by pseudonym (`kuma secret pseudonym`, `kuma callbacks`, the
//! exports), or by phone number on standard input (`--numbers`; never on the
//! command line, which `ps` and the shell's history keep). One line per
//! listener says what was erased; a number is never shown.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Env;
use crate::secret::is_pseudonym;
use crate::store::Forgotten;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pseudonyms (`c_…`) of the listeners to forget.
    #[arg(value_name = "PSEUDONYM")]
    pseudonyms: Vec<String>,
    /// Read the listeners' phone numbers from standard input, one per line
    /// (each spelling a number had, national or international, is forgotten).
    #[arg(long)]
    numbers: bool,
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    if args.pseudonyms.is_empty() && !args.numbers {
        anyhow::bail!(
            "name the listeners to forget: their pseudonyms (c_…), or --numbers to read their \
             phone numbers from standard input"
        );
    }
    if let Some(bad) = args.pseudonyms.iter().find(|p| !is_pseudonym(p)) {
        anyhow::bail!("`{bad}` is not a pseudonym (c_ and 32 hexadecimal digits)");
    }
    let store = env.store().await?;
    // Each listener, as the pseudonyms their rows may be kept under.
    let mut listeners: Vec<Vec<String>> = args.pseudonyms.into_iter().map(|p| vec![p]).collect();
    let mut bad = 0;
    if args.numbers {
        let keys = env.keys(&store).await?;
        bad = super::secret::each_number(|number| {
            if let Some(number) = number {
                let mut spellings = vec![keys.pseudonyms.pseudonym(number)];
                spellings.extend(keys.pseudonyms.as_written(number));
                listeners.push(spellings);
            }
            Ok(())
        })?;
    }
    let callers: Vec<String> = listeners.iter().flatten().cloned().collect();
    let erased = store.forget(&callers, chrono::Utc::now()).await;
    store.close().await;
    let mut erased = erased?.into_iter();
    let mut incomplete = bad > 0;
    for spellings in &listeners {
        let mut all = Forgotten {
            caller: spellings[0].clone(),
            ..Forgotten::default()
        };
        for one in erased.by_ref().take(spellings.len()) {
            all.calls += one.calls;
            all.answers += one.answers;
            all.recordings.extend(one.recordings);
            all.callbacks += one.callbacks;
            all.subscriptions += one.subscriptions;
            all.in_progress += one.in_progress;
        }
        let (removed, left) = remove_files(&env.data, &all.recordings);
        println!("kuma forget: {}", said(&all, removed, &left));
        incomplete |= all.in_progress > 0 || !left.is_empty();
    }
    if bad > 0 {
        eprintln!("kuma forget: {bad} line(s) were not phone numbers (nothing erased for them)");
    }
    Ok(if incomplete {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One line on what was erased of a listener.
fn said(f: &Forgotten, removed: usize, left: &[String]) -> String {
    let mut parts = Vec::new();
    if f.calls > 0 {
        parts.push(format!(
            "{} ({}, {})",
            many(f.calls, "call", "calls"),
            many(f.answers, "answer", "answers"),
            many(removed as u64, "voice message", "voice messages")
        ));
    }
    if f.callbacks > 0 {
        parts.push(many(f.callbacks, "call-back", "call-backs"));
    }
    if f.subscriptions > 0 {
        parts.push(many(f.subscriptions, "subscription", "subscriptions"));
    }
    let mut line = if parts.is_empty() {
        format!("{}: nothing kept", f.caller)
    } else {
        format!("{}: {} erased", f.caller, parts.join(", "))
    };
    if !left.is_empty() {
        line += &format!(
            "; {} could not be removed: {}",
            many(
                left.len() as u64,
                "voice message file",
                "voice message files"
            ),
            left.join(", ")
        );
    }
    if f.in_progress > 0 {
        line += &format!(
            "; {} in progress kept: run kuma forget again once it has ended",
            many(f.in_progress, "call", "calls")
        );
    }
    line
}

fn many(n: u64, one: &str, more: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { more })
}

/// Removes the voice messages' files: each where it was stored, or, for a path
/// `kuma serve` wrote relative to another folder, under this data folder's
/// `recordings` (`CAMPAIGN/DAY/FILE.wav`). Only such `.wav` files are ever
/// removed. Returns how many were removed (or already gone) and the paths
/// that could not be.
fn remove_files(data: &Path, files: &[String]) -> (usize, Vec<String>) {
    let mut removed = 0;
    let mut left = Vec::new();
    for file in files {
        let Some(tail) = recording_tail(Path::new(file)) else {
            left.push(file.clone());
            continue;
        };
        let here = data.join("recordings").join(&tail);
        let candidates = [PathBuf::from(file), here];
        let mut gone = true;
        for path in candidates.iter().filter(|p| p.exists()) {
            if std::fs::remove_file(path).is_err() {
                gone = false;
            }
        }
        if gone {
            removed += 1;
        } else {
            left.push(file.clone());
        }
    }
    (removed, left)
}

/// `CAMPAIGN/DAY/FILE.wav` of a recording's path `…/recordings/CAMPAIGN/DAY/FILE.wav`.
fn recording_tail(path: &Path) -> Option<PathBuf> {
    let parts: Vec<&std::ffi::OsStr> = path.iter().collect();
    let [.., folder, campaign, day, file] = parts.as_slice() else {
        return None;
    };
    (*folder == "recordings" && Path::new(file).extension().is_some_and(|e| e == "wav"))
        .then(|| [campaign, day, file].iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recordings_are_removed() {
        assert_eq!(
            recording_tail(Path::new(
                "data/recordings/mali/2026-12-07/4-101500-message.wav"
            )),
            Some(PathBuf::from("mali/2026-12-07/4-101500-message.wav"))
        );
        assert_eq!(recording_tail(Path::new("/etc/passwd")), None);
        assert_eq!(recording_tail(Path::new("data/secret")), None);
        assert_eq!(recording_tail(Path::new("x/recordings/a/b/kuma.db")), None);
    }

    #[test]
    fn the_line_says_what_was_erased_and_what_was_not() {
        let f = Forgotten {
            caller: "c_1".into(),
            calls: 2,
            answers: 1,
            recordings: vec!["a".into()],
            callbacks: 0,
            subscriptions: 1,
            in_progress: 1,
        };
        assert_eq!(
            said(&f, 1, &[]),
            "c_1: 2 calls (1 answer, 1 voice message), 1 subscription erased; \
             1 call in progress kept: run kuma forget again once it has ended"
        );
        assert_eq!(said(&Forgotten::default(), 0, &[]), ": nothing kept");
    }
}
