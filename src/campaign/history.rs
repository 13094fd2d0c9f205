//! The versions of a campaign file changed from the web app: who changed what,
//! when, and the whole text of every version, so any of them can be restored.
//!
//! History lives in kuma's data folder, `DATA/history/<campaign>/`, not beside
//! the campaign file: the campaigns folder is often a git checkout that
//! broadcasters review, and should only ever show the campaign files
//! themselves; the data folder is kuma's own, private to its user (see
//! `serve::make_private`), and backed up with the database. Not in the database
//! either: a version is the text of a file, restoring must work while the
//! database is away, and a station can read the folder with ordinary tools.
//!
//! `log.jsonl` has one line per version, `{"version", "at", "who", "what",
//! "etag"}`, appended and flushed after `NNNNNN.toml`, the version's text, was
//! written atomically: a crash between the two leaves a text nobody lists, never
//! a listed version without its text. Version 1 is the file as it was before the
//! first change from the web app; a file changed by hand since the last
//! recorded version gets a version of its own ("changed outside kuma") before
//! the next change, so the history has no gaps.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::edit::{etag, write_atomic};

/// One version of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u64,
    pub at: DateTime<Utc>,
    /// The name of the token that made the change; `None` for versions kuma
    /// found on disk.
    pub who: Option<String>,
    /// What changed, in a few words ("schedule: broadcasts, poll_window").
    pub what: String,
    /// The version's ETag ([`super::edit::etag`] of its text).
    pub etag: String,
}

/// The history folder of one campaign.
pub struct History {
    dir: PathBuf,
}

impl History {
    /// The history of campaign `id` in data folder `data` (made on first write).
    pub fn new(data: &Path, id: &str) -> History {
        History {
            dir: data.join("history").join(id),
        }
    }

    /// Every version, oldest first; none when nothing was ever changed. A line
    /// that does not parse (a torn write) is skipped.
    pub fn entries(&self) -> std::io::Result<Vec<Entry>> {
        let file = match std::fs::File::open(self.dir.join("log.jsonl")) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for line in std::io::BufReader::new(file).lines() {
            if let Ok(entry) = serde_json::from_str::<Entry>(&line?) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// The text of a version, if it is kept.
    pub fn text(&self, version: u64) -> std::io::Result<Option<String>> {
        match std::fs::read_to_string(self.dir.join(format!("{version:06}.toml"))) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keeps `text` as the next version.
    pub fn record(
        &self,
        text: &str,
        who: Option<&str>,
        what: &str,
        at: DateTime<Utc>,
    ) -> std::io::Result<Entry> {
        std::fs::create_dir_all(&self.dir)?;
        let version = self
            .entries()?
            .last()
            .map_or(1, |e| e.version.saturating_add(1));
        write_atomic(
            &self.dir.join(format!("{version:06}.toml")),
            text.as_bytes(),
        )?;
        let entry = Entry {
            version,
            at,
            who: who.map(str::to_string),
            what: what.to_string(),
            etag: etag(text.as_bytes()),
        };
        let mut line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        line.push('\n');
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log.jsonl"))?;
        log.write_all(line.as_bytes())?;
        log.sync_all()?;
        Ok(entry)
    }

    /// Before a change: keeps the file as it is on disk if the history does not
    /// end with it (the first change, or a change made by hand since).
    pub fn note_current(&self, current: &str, at: DateTime<Utc>) -> std::io::Result<()> {
        let entries = self.entries()?;
        let tag = etag(current.as_bytes());
        match entries.last() {
            Some(last) if last.etag == tag => Ok(()),
            Some(_) => self
                .record(current, None, "changed outside kuma", at)
                .map(drop),
            None => self
                .record(current, None, "the file before the first change", at)
                .map(drop),
        }
    }

    /// The versions after the one tagged `etag` (what changed since a client
    /// read it); `None` when no kept version has that tag.
    pub fn since(&self, etag: &str) -> std::io::Result<Option<Vec<Entry>>> {
        let entries = self.entries()?;
        Ok(entries
            .iter()
            .rposition(|e| e.etag == etag)
            .map(|i| entries.get(i + 1..).unwrap_or_default().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_kept_listed_and_found_by_tag() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path(), "c");
        assert!(h.entries().unwrap().is_empty());
        let t0 = Utc::now();
        h.note_current("v1", t0).unwrap();
        h.note_current("v1", t0).unwrap();
        h.record("v2", Some("amina"), "schedule: broadcasts", t0)
            .unwrap();
        // Edited by hand, then changed again from the web.
        h.note_current("v2 by hand", t0).unwrap();
        h.record("v3", Some("amina"), "source", t0).unwrap();
        let e = h.entries().unwrap();
        let whats: Vec<&str> = e.iter().map(|e| e.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "the file before the first change",
                "schedule: broadcasts",
                "changed outside kuma",
                "source"
            ]
        );
        assert_eq!(e[1].who.as_deref(), Some("amina"));
        assert_eq!(h.text(2).unwrap().as_deref(), Some("v2"));
        assert_eq!(h.text(9).unwrap(), None);
        let since = h.since(&etag(b"v2")).unwrap().unwrap();
        assert_eq!(since.len(), 2);
        assert_eq!(h.since(&etag(b"v3")).unwrap().unwrap().len(), 0);
        assert_eq!(h.since("nope").unwrap(), None);
        // A torn last line is skipped, not an error.
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("history/c/log.jsonl"))
            .unwrap();
        log.write_all(b"{\"version\": 5, \"at").unwrap();
        assert_eq!(h.entries().unwrap().len(), 4);
    }
}
