//! One clock per call: the wall-clock time the call was answered, plus the
//! monotonic time since. The engine's deadlines (keypad timeouts, the call
//! length limit) and the times stored for the call all come from it, so a step
//! of the system clock (NTP, a gateway's GPS, someone setting the date) changes
//! neither how long a caller has to press a key nor the order of their answers.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    wall: DateTime<Utc>,
    mono: Instant,
}

impl CallClock {
    /// A clock that reads `wall` at the monotonic instant `mono`.
    pub fn new(wall: DateTime<Utc>, mono: Instant) -> CallClock {
        CallClock { wall, mono }
    }

    /// Starts now.
    pub fn start() -> CallClock {
        CallClock::new(Utc::now(), Instant::now())
    }

    /// The call's time at the monotonic instant `at` (never before it started).
    pub fn at(&self, at: Instant) -> DateTime<Utc> {
        let since = at.saturating_duration_since(self.mono);
        chrono::Duration::from_std(since)
            .ok()
            .and_then(|d| self.wall.checked_add_signed(d))
            .unwrap_or(self.wall)
    }

    /// The call's time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.at(Instant::now())
    }

    /// The monotonic instant of the call's time `t` (at the start if before it).
    pub fn instant(&self, t: DateTime<Utc>) -> Instant {
        let since = (t - self.wall).to_std().unwrap_or(Duration::ZERO);
        self.mono.checked_add(since).unwrap_or(self.mono)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_time_moves_with_the_monotonic_clock_only() {
        let wall: DateTime<Utc> = "2026-12-01T19:00:00Z".parse().unwrap();
        let mono = Instant::now();
        let c = CallClock::new(wall, mono);
        assert_eq!(c.at(mono), wall);
        let later = mono + Duration::from_millis(6_500);
        assert_eq!(c.at(later), wall + chrono::Duration::milliseconds(6_500));
        // A deadline 6 s after the start is 6 s of monotonic time away, whatever
        // the system clock says meanwhile.
        let deadline = wall + chrono::Duration::seconds(6);
        assert_eq!(c.instant(deadline), mono + Duration::from_secs(6));
        assert_eq!(c.instant(wall - chrono::Duration::hours(1)), mono);
        assert_eq!(
            c.at(mono.checked_sub(Duration::from_secs(1)).unwrap_or(mono)),
            wall
        );
    }
}
