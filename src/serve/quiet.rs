//! A log line that stays one line however often its cause repeats: thousands of
//! refused connections (a scan, a flood) are reported as a count every
//! [`EVERY`], never as thousands of lines that would bury everything else.

use std::time::Duration;

use tokio::time::Instant;

/// At most one line per this, with how many times it happened since the last.
pub const EVERY: Duration = Duration::from_secs(10);

pub struct QuietLog {
    what: &'static str,
    last: Option<Instant>,
    unlogged: u64,
}

impl QuietLog {
    pub fn new(what: &'static str) -> Self {
        QuietLog {
            what,
            last: None,
            unlogged: 0,
        }
    }

    /// Counts one more; logs (a warning) if the last line is old enough.
    pub fn note(&mut self, detail: &dyn std::fmt::Display) {
        self.unlogged += 1;
        let now = Instant::now();
        if self.last.is_some_and(|at| now.duration_since(at) < EVERY) {
            return;
        }
        tracing::warn!(
            "{}: {} since the last report ({detail})",
            self.what,
            self.unlogged
        );
        self.last = Some(now);
        self.unlogged = 0;
    }
}
