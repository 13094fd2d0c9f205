//! The sane bounds of what a campaign file may ask for. A typo (`60h` for a
//! keypad timeout, `2206-12-01` for a start date) is a `FILE:LINE` error from
//! `kuma check`, not a silent line held open for days or a campaign that never opens.

use std::time::Duration;

use chrono::NaiveDate;

/// A keypad timeout: how long kuma waits for a key (`timeout`).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A voice message (`max` of a record node).
pub const MAX_RECORD: Duration = Duration::from_secs(60 * 60);
/// How long the poll stays open after a broadcast (`poll_window`).
pub const MAX_POLL_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);

/// The days a campaign's `from` and `until` may name.
const FIRST_DAY: (i32, u32, u32) = (2000, 1, 1);
const LAST_DAY: (i32, u32, u32) = (2100, 12, 31);

/// `day` if it lies between 2000 and 2100; otherwise why not.
pub fn plausible_day(day: NaiveDate) -> Result<NaiveDate, String> {
    let bound = |(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN);
    let (first, last) = (bound(FIRST_DAY), bound(LAST_DAY));
    if day < first || day > last {
        return Err(format!(
            "`{day}` is too far in the past or the future; expected a day between {first} and {last}"
        ));
    }
    Ok(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_outside_2000_to_2100_are_refused() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert!(plausible_day(day(2026, 12, 1)).is_ok());
        assert!(plausible_day(day(2000, 1, 1)).is_ok());
        assert!(plausible_day(day(2100, 12, 31)).is_ok());
        assert!(plausible_day(day(1999, 12, 31)).is_err());
        assert!(
            plausible_day(day(2206, 12, 1))
                .unwrap_err()
                .contains("too far")
        );
    }
}
