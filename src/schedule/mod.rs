//! Broadcast schedules: when the programme airs, and whether the poll is open.
//!
//! A campaign's `[schedule]` lists cron expressions (with a seconds field, in the
//! campaign's time zone) for the start of each broadcast; the poll stays open for
//! `poll_window` after each start, and every answer given then is attributed to that
//! broadcast. All functions take the time as an argument: nothing here reads a clock,
//! so the flow engine and the tests decide what "now" is.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

/// `at + d`, or the last time chrono can represent when the sum is past it.
/// Durations come from files (campaigns, `kuma.toml`) and chrono's `+` panics on
/// overflow; a deadline at the end of time never comes, which is what such a
/// duration asks for.
pub fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// One `broadcasts` entry: the text the broadcaster wrote and its parsed form.
#[derive(Debug, Clone)]
pub struct Broadcast {
    pub expr: String,
    cron: cron::Schedule,
}

impl Broadcast {
    /// Parses a cron expression with a seconds field. The error explains the
    /// expected shape, because a five-field crontab line is the usual mistake.
    pub fn parse(expr: &str) -> Result<Broadcast, String> {
        let fields = expr.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(format!(
                "`{expr}` has {fields} fields; expected 6: seconds minutes hours day-of-month month day-of-week, e.g. \"0 0 19 * * Tue\""
            ));
        }
        let cron = cron::Schedule::from_str(expr)
            .map_err(|e| format!("`{expr}` is not a valid cron expression ({e}); expected seconds minutes hours day-of-month month day-of-week, e.g. \"0 0 19 * * Tue\""))?;
        Ok(Broadcast {
            expr: expr.to_string(),
            cron,
        })
    }
}

impl Serialize for Broadcast {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expr)
    }
}

fn serialize_tz<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

fn serialize_window<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&crate::duration::format_duration(*d)),
        None => s.serialize_none(),
    }
}

/// A campaign's `[schedule]`, parsed.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    #[serde(serialize_with = "serialize_tz")]
    pub timezone: Tz,
    pub broadcasts: Vec<Broadcast>,
    /// `None`: the poll is open whenever the campaign runs.
    #[serde(serialize_with = "serialize_window")]
    pub poll_window: Option<Duration>,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    /// Node a question leads to when the poll is closed.
    pub closed: Option<String>,
}

/// Whether a question asked now counts, and for which broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Answers count; `broadcast` is the start of the broadcast they belong to.
    Open {
        broadcast: Option<DateTime<Utc>>,
    },
    Closed,
}

impl Schedule {
    /// Whether the campaign runs on this day (between `from` and `until`,
    /// inclusive, in the campaign's time zone).
    pub fn runs_on(&self, at: DateTime<Utc>) -> bool {
        let day = at.with_timezone(&self.timezone).date_naive();
        self.from.is_none_or(|from| day >= from) && self.until.is_none_or(|until| day <= until)
    }

    /// The latest broadcast that started at or before `at` (and on a day the
    /// campaign runs).
    pub fn last_broadcast(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // prev_from looks strictly before its argument; a broadcast starting
        // exactly now has started.
        let probe = at.with_timezone(&self.timezone) + chrono::Duration::seconds(1);
        self.broadcasts
            .iter()
            .filter_map(|b| b.cron.after(&probe).next_back())
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t <= at)
            .max()
            .filter(|t| self.runs_on(*t))
    }

    /// Is the poll open at `at`, and for which broadcast?
    pub fn poll(&self, at: DateTime<Utc>) -> Poll {
        if !self.runs_on(at) {
            return Poll::Closed;
        }
        let last = self.last_broadcast(at);
        match (self.poll_window, last) {
            (None, last) => Poll::Open { broadcast: last },
            (Some(window), Some(start)) if at < later(start, window) => Poll::Open {
                broadcast: Some(start),
            },
            (Some(_), _) => Poll::Closed,
        }
    }

    /// The broadcast whose poll window contains `at`, if any: what a call or an
    /// answer at that time is attributed to.
    pub fn broadcast_of(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.poll(at) {
            Poll::Open { broadcast } => broadcast,
            Poll::Closed => None,
        }
    }

    /// The next `n` broadcasts strictly after `after`, in the campaign's zone.
    pub fn next_broadcasts(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        let start = after.with_timezone(&self.timezone);
        let mut upcoming: Vec<DateTime<Tz>> = Vec::new();
        for b in &self.broadcasts {
            // Each expression contributes at most n times that fall in the
            // campaign's dates; a bounded look-ahead keeps a campaign that has
            // ended from scanning years of dates.
            upcoming.extend(
                b.cron
                    .after(&start)
                    .take(n * 400)
                    .filter(|t| self.runs_on(t.with_timezone(&Utc)))
                    .take(n),
            );
        }
        upcoming.sort();
        upcoming.dedup();
        upcoming.truncate(n);
        upcoming
    }
}

/// "Tuesday 1 December 2026 at 19:00 (Africa/Bamako)": dates written out, so a
/// broadcaster sees at once when a weekday number meant another day.
pub fn describe(at: DateTime<Tz>) -> String {
    format!(
        "{} ({})",
        at.format("%A %-d %B %Y at %H:%M"),
        at.timezone().name()
    )
}

/// Parses a time zone name such as `Africa/Bamako`.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("`{name}` is not a time zone; expected an IANA zone name such as \"Africa/Bamako\"")
    })
}

/// Parses a `YYYY-MM-DD` day.
pub fn parse_day(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date; expected YYYY-MM-DD, e.g. \"2026-12-01\""))
}

/// Parses a time given on the command line: `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]`
/// (both in the zone given) or RFC 3339 with an offset.
pub fn parse_time(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| {
        format!("`{text}` is not a time; expected YYYY-MM-DD, YYYY-MM-DDTHH:MM or RFC 3339")
    })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("`{text}` does not exist in {}", tz.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn schedule(window: Option<&str>) -> Schedule {
        Schedule {
            timezone: parse_timezone("Africa/Bamako").unwrap(),
            broadcasts: vec![Broadcast::parse("0 0 19 * * Tue").unwrap()],
            poll_window: window.map(|w| crate::duration::parse_duration(w).unwrap()),
            from: Some(parse_day("2026-11-01").unwrap()),
            until: Some(parse_day("2026-12-31").unwrap()),
            closed: None,
        }
    }

    #[test]
    fn poll_opens_at_the_broadcast_and_closes_after_the_window() {
        let s = schedule(Some("48h"));
        // Tuesday 1 December 2026, 19:00 in Bamako (UTC+0).
        let b = utc("2026-12-01T19:00:00Z");
        assert_eq!(s.poll(utc("2026-12-01T18:59:59Z")), Poll::Closed);
        assert_eq!(s.poll(b), Poll::Open { broadcast: Some(b) });
        assert_eq!(
            s.poll(utc("2026-12-03T18:59:59Z")),
            Poll::Open { broadcast: Some(b) }
        );
        assert_eq!(s.poll(utc("2026-12-03T19:00:00Z")), Poll::Closed);
    }

    #[test]
    fn a_window_past_the_end_of_time_keeps_the_poll_open_without_a_panic() {
        // Issue 11: `start + window` (chrono) panicked on an absurd duration.
        let mut s = schedule(None);
        s.poll_window = Some(Duration::MAX);
        let b = utc("2026-12-01T19:00:00Z");
        assert_eq!(s.poll(b), Poll::Open { broadcast: Some(b) });
        assert_eq!(later(b, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            later(b, Duration::from_secs(60)),
            utc("2026-12-01T19:01:00Z")
        );
    }

    #[test]
    fn campaign_dates_bound_the_poll_and_the_broadcasts() {
        let s = schedule(Some("48h"));
        assert_eq!(
            s.poll(utc("2026-10-27T19:30:00Z")),
            Poll::Closed,
            "before from"
        );
        assert_eq!(
            s.poll(utc("2027-01-05T19:30:00Z")),
            Poll::Closed,
            "after until"
        );
        let next = s.next_broadcasts(utc("2026-12-20T00:00:00Z"), 3);
        assert_eq!(
            next.len(),
            2,
            "only two Tuesdays left before until: {next:?}"
        );
    }

    #[test]
    fn without_a_window_the_poll_is_open_and_answers_go_to_the_last_broadcast() {
        let s = schedule(None);
        let at = utc("2026-12-04T10:00:00Z");
        assert_eq!(
            s.poll(at),
            Poll::Open {
                broadcast: Some(utc("2026-12-01T19:00:00Z"))
            }
        );
        // Before the first broadcast of the campaign there is nothing to attribute to.
        assert_eq!(
            s.poll(utc("2026-11-02T10:00:00Z")),
            Poll::Open { broadcast: None }
        );
    }

    #[test]
    fn next_broadcasts_are_in_words_and_in_the_campaign_zone() {
        let mut s = schedule(Some("48h"));
        s.timezone = parse_timezone("Africa/Nairobi").unwrap();
        let next = s.next_broadcasts(utc("2026-11-28T12:00:00Z"), 3);
        let words: Vec<String> = next.into_iter().map(describe).collect();
        assert_eq!(
            words,
            [
                "Tuesday 1 December 2026 at 19:00 (Africa/Nairobi)",
                "Tuesday 8 December 2026 at 19:00 (Africa/Nairobi)",
                "Tuesday 15 December 2026 at 19:00 (Africa/Nairobi)"
            ]
        );
    }

    #[test]
    fn quartz_weekday_numbers_start_on_sunday() {
        // "3" is Tuesday in the cron crate's (Quartz) numbering, not Wednesday.
        let b = Broadcast::parse("0 0 19 * * 3").unwrap();
        let t = b.cron.after(&utc("2026-11-28T00:00:00Z")).next().unwrap();
        assert_eq!(t.format("%A").to_string(), "Tuesday");
    }

    #[test]
    fn several_broadcasts_merge_in_time_order() {
        let mut s = schedule(Some("2h"));
        s.broadcasts
            .push(Broadcast::parse("0 30 8 * * Sat").unwrap());
        let next: Vec<_> = s
            .next_broadcasts(utc("2026-11-28T00:00:00Z"), 3)
            .into_iter()
            .map(|t| t.with_timezone(&Utc))
            .collect();
        assert_eq!(
            next,
            [
                utc("2026-11-28T08:30:00Z"),
                utc("2026-12-01T19:00:00Z"),
                utc("2026-12-05T08:30:00Z")
            ]
        );
        assert_eq!(
            s.broadcast_of(utc("2026-11-28T09:00:00Z")),
            Some(utc("2026-11-28T08:30:00Z"))
        );
    }

    #[test]
    fn bad_inputs_say_what_was_expected() {
        assert!(
            Broadcast::parse("0 19 * * Tue")
                .unwrap_err()
                .contains("expected 6")
        );
        assert!(
            Broadcast::parse("0 0 25 * * Tue")
                .unwrap_err()
                .contains("not a valid cron")
        );
        assert!(parse_timezone("Mali/Bamako").unwrap_err().contains("IANA"));
        assert!(parse_day("01/12/2026").unwrap_err().contains("YYYY-MM-DD"));
        let tz = parse_timezone("Africa/Bamako").unwrap();
        assert_eq!(
            parse_time("2026-12-01T19:30", tz).unwrap(),
            utc("2026-12-01T19:30:00Z")
        );
        assert!(parse_time("tomorrow", tz).is_err());
    }
}
