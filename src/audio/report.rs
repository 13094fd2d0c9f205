//! What became of each recording: the per-file report `kuma audio prepare` and
//! `kuma check` print.
//!
//! A report names the file by its path and says, for a usable file, how long the
//! prepared prompt is and by how much its level was changed, with a warning for each
//! doubt (clipped, mostly silence, a sample rate below 8 kHz, ...); for an unusable
//! one, the error. Problems print as `PATH: error: …` or `PATH: warning: …`, one line
//! each, the way campaign problems print as `FILE:LINE: …`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::AudioError;

/// What the pipeline found and did, for a file it could prepare. Kept in the cache
/// with the audio, so that a cached prompt reports the same as a fresh one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Container and codec, e.g. `mp3/mp3`, `wav/pcm_s16le`.
    pub format: String,
    pub sample_rate: u32,
    pub channels: usize,
    /// Length of the recording as delivered, in milliseconds.
    pub source_ms: u64,
    /// Length of the prepared prompt (trimmed), in milliseconds.
    pub prepared_ms: u64,
    /// Active speech level of the recording as delivered, dBFS.
    pub source_level_db: f32,
    /// Gain applied to reach the campaign's target, dB.
    pub level_change_db: f32,
    /// Deepest reduction of the peak limiter, dB.
    pub limited_db: f32,
    pub warnings: Vec<String>,
}

/// The outcome for one recording of a campaign.
#[derive(Debug)]
pub struct FileReport {
    pub language: String,
    pub prompt: String,
    /// The recording; for a missing one, where it was looked for.
    pub path: PathBuf,
    pub outcome: Result<Summary, AudioError>,
    /// The prompt came from the cache: nothing was decoded.
    pub from_cache: bool,
    /// Cache key of the recording (content hash + settings), when it could be read.
    pub cache_key: Option<String>,
    /// Trouble with the cache itself (the prompt was still prepared).
    pub cache_problem: Option<String>,
}

/// How bad a problem is: an error means the prompt cannot be played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One problem of one file, printed as `PATH: error: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}: {sev}: {}", self.path.display(), self.message)
    }
}

impl FileReport {
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The error, then every warning, of this file.
    pub fn problems(&self) -> Vec<Problem> {
        let problem = |severity, message: String| Problem {
            path: self.path.clone(),
            severity,
            message,
        };
        let mut out = Vec::new();
        match &self.outcome {
            Err(e) => out.push(problem(Severity::Error, e.to_string())),
            Ok(s) => {
                for w in &s.warnings {
                    out.push(problem(Severity::Warning, w.clone()));
                }
            }
        }
        if let Some(c) = &self.cache_problem {
            out.push(problem(Severity::Warning, c.clone()));
        }
        out
    }

    /// One line for `kuma audio prepare`: duration, level change, warnings count.
    pub fn summary_line(&self) -> String {
        let name = format!("{}/{}", self.language, self.prompt);
        match &self.outcome {
            Ok(s) => {
                let mut line = format!(
                    "{name:<28} {:>7}  {:>+6.1} dB  {:<14} {}",
                    format_seconds(Duration::from_millis(s.prepared_ms)),
                    s.level_change_db,
                    format!("{} {} Hz", s.format, s.sample_rate),
                    if self.from_cache { "cached" } else { "" },
                );
                if !s.warnings.is_empty() {
                    let n = s.warnings.len();
                    line.push_str(&format!("  {n} warning{}", if n == 1 { "" } else { "s" }));
                }
                line.trim_end().to_string()
            }
            Err(_) => format!("{name:<28} failed"),
        }
    }
}

/// `12.3 s`, `3m 05.0s` or `1h 02m`.
pub fn format_seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let m = (s / 60.0).floor();
        format!("{}m {:04.1}s", m as u64, s - m * 60.0)
    } else {
        let m = (s / 60.0).floor() as u64;
        format!("{}h {:02}m", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_print_with_the_path_first() {
        let r = FileReport {
            language: "fr".into(),
            prompt: "welcome".into(),
            path: PathBuf::from("audio/x/fr/welcome.wav"),
            outcome: Err(AudioError::EmptyFile),
            from_cache: false,
            cache_key: None,
            cache_problem: None,
        };
        let p = r.problems();
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].to_string(),
            "audio/x/fr/welcome.wav: error: empty file (0 bytes): record the prompt again"
        );
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(format_seconds(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(format_seconds(Duration::from_millis(185_000)), "3m 05.0s");
        assert_eq!(format_seconds(Duration::from_secs(3600)), "1h 00m");
    }
}
