//! Replacing one prompt's recording, the same way whoever brings it: the web
//! app's upload (`PUT /api/campaigns/{id}/prompts/{lang}/{prompt}`) and a
//! broadcaster recording by phone (the studio number).
//!
//! The recording is prepared *before* anything is touched, so a file that is
//! not audio, or is empty, silent, too long or damaged, leaves the old prompt
//! in place. A good one is written atomically as `<prompt>.<ext>` in the
//! language's folder; the recordings it replaces are copied first to
//! `DATA/history/<id>/recordings/<lang>/` (so a bad take can be undone by
//! hand); a `PLACEHOLDER` transcript loses its placeholder line; one log line
//! says who did it; and the catalog is reloaded as SIGHUP does, so that new
//! calls play the new prompt at once (calls in progress finish with the old).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Catalog, Catalogs};
use crate::audio::cache::{Cache, Entry};
use crate::audio::error::AudioError;
use crate::audio::prepare::{Settings, prepare_bytes};
use crate::campaign::{AUDIO_EXTENSIONS, Campaign};

/// Why a new recording was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// The recording itself: not audio, empty, silent, too long… The old
    /// prompt stays.
    #[error("{0}")]
    Recording(AudioError),
    /// It could not be written (the old prompt stays, or is in the history).
    #[error("cannot store the recording: {0}")]
    Store(std::io::Error),
    #[error("the recording's task failed: {0}")]
    Task(String),
}

/// A new recording of one prompt in one language.
pub struct NewRecording {
    pub campaign: Arc<Campaign>,
    pub language: String,
    pub prompt: String,
    /// The format's file extension (`wav`, `mp3`…).
    pub ext: &'static str,
    pub bytes: Vec<u8>,
    /// Who made it (their token's name), for the log.
    pub who: String,
    /// How it came (`web`, `phone`), for the log.
    pub via: &'static str,
}

impl Catalogs {
    /// Checks, stores and serves a new recording (see the module doc); `data`
    /// is kuma's data folder. The catalog now served (`None` when the reload
    /// kept the previous one: the file is stored all the same).
    pub async fn replace_prompt(
        &self,
        new: NewRecording,
        data: &Path,
    ) -> Result<Option<Arc<Catalog>>, ReplaceError> {
        let NewRecording {
            campaign: c,
            language,
            prompt,
            ext,
            bytes,
            who,
            via,
        } = new;
        let settings = Settings::for_campaign(&c);
        let dir = c.audio_dir.join(&language);
        let history = data
            .join("history")
            .join(&c.id)
            .join("recordings")
            .join(&language);
        let name = prompt.clone();
        let stamp = stamp(Utc::now());
        let cache = Cache::open(data);
        tokio::task::spawn_blocking(move || {
            let prepared = prepare_bytes(bytes.clone(), Some(ext), &settings)
                .map_err(ReplaceError::Recording)?;
            // Into the prompt cache under the file's key: the reload that
            // follows (and the web's report) find it instead of preparing the
            // recording again.
            let key = Cache::key_of(&bytes, &settings.fingerprint());
            let entry = Entry {
                summary: prepared.summary,
                pcm: prepared.pcm,
            };
            if let Err(e) = cache.store(&key, &entry) {
                tracing::debug!(error = %e, "prepared recording not cached");
            }
            store(&dir, &name, ext, &bytes, &history, &stamp).map_err(ReplaceError::Store)
        })
        .await
        .map_err(|e| ReplaceError::Task(e.to_string()))??;
        tracing::info!(campaign = %c.id, %language, %prompt, who, via, "prompt recorded");
        let folder = c
            .file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Ok(self.reload(folder, data.to_path_buf()).await)
    }
}

/// The history's file name prefix for a replacement made at `at`.
fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Writes the new recording, moves the ones it replaces to the history folder
/// and drops a `PLACEHOLDER` line from the transcript.
pub(crate) fn store(
    dir: &Path,
    prompt: &str,
    ext: &str,
    bytes: &[u8],
    history: &Path,
    stamp: &str,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let target = dir.join(format!("{prompt}.{ext}"));
    // The old recordings first (a copy), so that nothing is lost if writing fails.
    let old: Vec<PathBuf> = AUDIO_EXTENSIONS
        .iter()
        .map(|e| dir.join(format!("{prompt}.{e}")))
        .filter(|p| p.is_file())
        .collect();
    if !old.is_empty() {
        std::fs::create_dir_all(history)?;
    }
    for p in &old {
        if let Some(file) = p.file_name() {
            let kept = history.join(format!("{stamp}-{}", file.to_string_lossy()));
            std::fs::copy(p, kept)?;
        }
    }
    crate::campaign::edit::write_atomic(&target, bytes)?;
    // Another extension would be found before (or instead of) the new one.
    for p in old.iter().filter(|p| **p != target) {
        std::fs::remove_file(p)?;
    }
    let txt = dir.join(format!("{prompt}.txt"));
    if let Ok(text) = std::fs::read_to_string(&txt)
        && text.starts_with("PLACEHOLDER")
    {
        let rest = text.split_once('\n').map_or("", |(_, r)| r);
        crate::campaign::edit::write_atomic(&txt, rest.trim_start().as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_take_replaces_the_old_and_keeps_it_in_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let lang = dir.path().join("bm");
        let history = dir.path().join("h");
        std::fs::create_dir_all(&lang).unwrap();
        std::fs::write(lang.join("welcome.wav"), b"old wav").unwrap();
        std::fs::write(
            lang.join("welcome.txt"),
            "PLACEHOLDER: to record\nBienvenue\n",
        )
        .unwrap();
        store(&lang, "welcome", "mp3", b"new", &history, "T1").unwrap();
        assert!(!lang.join("welcome.wav").exists());
        assert_eq!(std::fs::read(lang.join("welcome.mp3")).unwrap(), b"new");
        assert_eq!(
            std::fs::read(history.join("T1-welcome.wav")).unwrap(),
            b"old wav"
        );
        assert_eq!(
            std::fs::read_to_string(lang.join("welcome.txt")).unwrap(),
            "Bienvenue\n"
        );
    }
}
