//! Calling listeners back: the rules of the call-back queue, as pure functions of
//! what happened and an injected `now`.
//!
//! A listener "beeps" a campaign's call-back number (calls and is refused, so the
//! call costs nothing); kuma queues a call-back and dials them through the trunk.
//! This module decides:
//!
//! - whether a missed call gets a call-back at all ([`admit`]): a number must be
//!   there and not withheld, not on the block list, the campaign running and its
//!   poll open, and the quotas Freedom Fone has: call-backs per caller per day,
//!   per campaign per day, and none to the same caller within `min_interval` of
//!   the previous one (or while one is still queued);
//! - what an attempt's end means ([`Attempt::declined`]) and what comes next
//!   ([`after_attempt`]): answered is final; busy, no answer and a failure the
//!   trunk may get over (503, no response) are dialled again after `retry_after`,
//!   up to `retries` times (RapidPro: 3 retries 60 min apart); a refusal that will
//!   not change (403, 404, 484, 604) is final at once, so a misconfigured trunk
//!   causes no retry storm.
//!
//! - when calls to subscribers go out after a broadcast: `after_broadcast` past
//!   its start, moved out of the quiet hours ([`QuietHours`], in the campaign's
//!   time zone) like their retries.
//!
//! The queue itself is in the database (`crate::store`, `callbacks` table), and
//! the numbers in it are sealed ([`sealed`]); `crate::store::callback_listing` is
//! how people read it (the CLI, the API and the web page). The dialer in `crate::serve` claims
//! due call-backs, places the calls and records each attempt.

pub mod sealed;

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The status of a call-back (and of an attempt) as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for its time (the delay, or a retry).
    Queued,
    /// A kuma process is dialling it.
    Dialing,
    /// An attempt that rings (attempts only).
    Ringing,
    Answered,
    Busy,
    NoAnswer,
    Failed,
    /// Given up on by kuma (shutdown, campaign gone).
    Cancelled,
    /// Never dialled: see the note (quota, withheld number, poll closed…).
    Refused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Dialing => "dialing",
            Status::Ringing => "ringing",
            Status::Answered => "answered",
            Status::Busy => "busy",
            Status::NoAnswer => "no_answer",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "queued" => Status::Queued,
            "dialing" => Status::Dialing,
            "ringing" => Status::Ringing,
            "answered" => Status::Answered,
            "busy" => Status::Busy,
            "no_answer" => Status::NoAnswer,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            "refused" => Status::Refused,
            _ => return None,
        })
    }

    /// Whether nothing more will happen (the sealed number is then erased).
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Dialing | Status::Ringing)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The call-back rules a station sets (`[callback]` in `kuma.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// From the missed call to the first attempt (lets the listener's phone hang
    /// up and the line free up).
    pub delay: Duration,
    pub per_caller_per_day: u32,
    pub per_campaign_per_day: u32,
    /// No second call-back to a caller within this time of the previous one.
    pub min_interval: Duration,
    /// Attempts after the first one.
    pub retries: u32,
    /// Time between attempts.
    pub retry_after: Duration,
    /// How long a phone may ring before kuma gives up.
    pub ring_timeout: Duration,
    /// Pseudonyms of numbers that never get a call-back (the block list is kept as
    /// pseudonyms so that `kuma.toml` holds no phone number either).
    pub blocked: Vec<String>,
    /// Subscribers are called this long after a broadcast starts.
    pub after_broadcast: Duration,
    /// No call to a subscriber in these hours (local time of the campaign).
    pub quiet_hours: Option<QuietHours>,
    /// Where call-backs may go: E.164 prefixes (`+22376`…); `None`: anywhere the
    /// trunk carries (premium and international numbers included).
    pub prefixes: Option<Vec<String>>,
    /// The country code of numbers the gateway writes without one (`76123456`
    /// is `+22376123456` with `223`), so that they can be matched to `prefixes`.
    pub country_code: Option<String>,
    /// At most this many subscribers per campaign: each is a call the station
    /// pays for after every broadcast. A caller who asks beyond it is not kept.
    pub subscribers_per_campaign: u32,
}

/// Hours of the day when subscribers are not called, e.g. `21:00-07:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl QuietHours {
    /// `HH:MM-HH:MM`; the range may cross midnight.
    pub fn parse(s: &str) -> Result<QuietHours, String> {
        let err = || format!("`{s}` is not a range of hours such as \"21:00-07:00\"");
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| err());
        let (from, to) = (time(a)?, time(b)?);
        if from == to {
            return Err(err());
        }
        Ok(QuietHours { from, to })
    }

    fn contains(&self, t: NaiveTime) -> bool {
        if self.from < self.to {
            self.from <= t && t < self.to
        } else {
            t >= self.from || t < self.to
        }
    }

    /// `at`, or the end of the quiet hours it falls in (in `tz`).
    pub fn next_allowed(&self, at: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = at.with_timezone(&tz);
        if !self.contains(local.time()) {
            return at;
        }
        let mut day = local.date_naive();
        if local.time() >= self.to {
            day = day.succ_opt().unwrap_or(day);
        }
        tz.from_local_datetime(&day.and_time(self.to))
            .earliest()
            .map_or(at + chrono::Duration::hours(1), |t| t.with_timezone(&Utc))
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            delay: Duration::from_secs(20),
            per_caller_per_day: 3,
            per_campaign_per_day: 1000,
            min_interval: Duration::from_secs(30 * 60),
            retries: 3,
            retry_after: Duration::from_secs(60 * 60),
            ring_timeout: Duration::from_secs(45),
            blocked: Vec::new(),
            after_broadcast: Duration::from_secs(60 * 60),
            quiet_hours: None,
            prefixes: None,
            country_code: None,
            subscribers_per_campaign: 1000,
        }
    }
}

/// Why a missed call gets no call-back: stored as the refused row's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No caller number, "anonymous", or something that is not a phone number.
    Withheld,
    Blocked,
    /// Outside the campaign's dates or its poll window.
    Closed,
    CallerQuota,
    CampaignQuota,
    TooSoon,
    AlreadyQueued,
    /// Outside the `prefixes` kuma may call.
    NumberNotAllowed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Withheld => "withheld_number",
            Refusal::Blocked => "blocked",
            Refusal::Closed => "campaign_closed",
            Refusal::CallerQuota => "caller_quota",
            Refusal::CampaignQuota => "campaign_quota",
            Refusal::TooSoon => "too_soon",
            Refusal::AlreadyQueued => "already_queued",
            Refusal::NumberNotAllowed => "number_not_allowed",
        }
    }
}

/// What the store knows of earlier call-backs, for the quotas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// Call-backs (not refused) for this caller in the last 24 hours.
    pub caller_day: u64,
    /// Call-backs (not refused) for this campaign in the last 24 hours.
    pub campaign_day: u64,
    /// When the caller's last call-back (not refused) was asked for.
    pub caller_last: Option<DateTime<Utc>>,
    /// A call-back for this caller is still queued or being dialled.
    pub caller_pending: bool,
}

/// Whether the quotas allow another call-back (a "day" is the last 24 hours, so
/// that a caller cannot get twice the quota around midnight).
pub fn admit(policy: &Policy, history: &History, now: DateTime<Utc>) -> Result<(), Refusal> {
    if history.caller_pending {
        return Err(Refusal::AlreadyQueued);
    }
    if let Some(last) = history.caller_last
        && now
            .signed_duration_since(last)
            .to_std()
            .unwrap_or(Duration::ZERO)
            < policy.min_interval
    {
        return Err(Refusal::TooSoon);
    }
    if history.caller_day >= u64::from(policy.per_caller_per_day) {
        return Err(Refusal::CallerQuota);
    }
    if history.campaign_day >= u64::from(policy.per_campaign_per_day) {
        return Err(Refusal::CampaignQuota);
    }
    Ok(())
}

/// Who a number is, for the block list: its pseudonym, and the one it had as
/// written when that is another (`crate::secret::Pseudonymizer::as_written`:
/// an entry made before national and international spellings were joined).
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub pseudonym: &'a str,
    pub as_written: Option<String>,
}

impl<'a> Caller<'a> {
    /// The caller `pseudonym` (the store's, or `pseudonyms`' own) whose number
    /// is `number`.
    pub fn of(pseudonyms: &crate::secret::Pseudonymizer, pseudonym: &'a str, number: &str) -> Self {
        Caller {
            pseudonym,
            as_written: pseudonyms.as_written(number),
        }
    }

    /// Only a pseudonym (numbers as written).
    pub fn new(pseudonym: &'a str) -> Self {
        Caller {
            pseudonym,
            as_written: None,
        }
    }

    /// Whether `[callback] blocked` lists them.
    pub fn blocked(&self, policy: &Policy) -> bool {
        policy
            .blocked
            .iter()
            .any(|b| b == self.pseudonym || Some(b) == self.as_written.as_ref())
    }
}

/// The checks before the quotas: a callable number, not blocked, a campaign
/// that is running with its poll open (`open`).
pub fn screen(
    policy: &Policy,
    number: &str,
    caller: &Caller<'_>,
    open: bool,
) -> Result<(), Refusal> {
    if !callable(number) {
        return Err(Refusal::Withheld);
    }
    if !allowed(policy, number) {
        return Err(Refusal::NumberNotAllowed);
    }
    if caller.blocked(policy) {
        return Err(Refusal::Blocked);
    }
    if !open {
        return Err(Refusal::Closed);
    }
    Ok(())
}

/// Whether kuma may call `number` now: a callable number, inside `prefixes`,
/// not blocked (a missed call's checks, except the poll window). Checked
/// before a subscriber's number is ever sealed (the quotas apply when each
/// broadcast's calls are queued), and again as each call-back is placed,
/// since the settings may have changed since it was queued or the subscriber
/// subscribed.
pub fn may_call(policy: &Policy, number: &str, caller: &Caller<'_>) -> Result<(), Refusal> {
    screen(policy, number, caller, true)
}

/// Whether `number` (callable) is one kuma may call: inside `prefixes` once
/// written in E.164, or anywhere when no prefixes are set.
pub fn allowed(policy: &Policy, number: &str) -> bool {
    let Some(prefixes) = &policy.prefixes else {
        return true;
    };
    e164(number, policy.country_code.as_deref())
        .is_some_and(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
}

/// A caller ID in E.164 (`+22376123456`), from the forms gateways send: `+…`,
/// `00…` (international prefix), or a national number (a leading trunk `0`
/// dropped) to which `country_code` is added. `None` when it cannot be told.
pub fn e164(number: &str, country_code: Option<&str>) -> Option<String> {
    let n = number.trim();
    let international = n
        .strip_prefix('+')
        .or_else(|| n.strip_prefix("00"))
        .map(str::to_owned)
        .or_else(|| {
            let national = n.strip_prefix('0').unwrap_or(n);
            country_code.map(|cc| format!("{}{national}", cc.trim_start_matches('+')))
        })?;
    let ok = (4..=15).contains(&international.len())
        && international.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("+{international}"))
}

/// Whether a caller ID is a number kuma can call back: digits, with at most a
/// leading `+`, 3 to 20 of them ("anonymous", "", "unknown" and `sip:` junk are not).
pub fn callable(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or(number);
    (3..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// How one attempt ended, as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Answered,
    Busy,
    NoAnswer,
    /// Worth another try later (503, 5xx, no response at all).
    Failed,
    /// Will not change by trying again (403 Forbidden, 404, 484, 604…).
    Refused,
    Cancelled,
}

impl Attempt {
    /// From the final response the trunk refused the call with (486 busy, 403,
    /// 503…).
    pub fn declined(code: u16) -> Attempt {
        match code {
            486 | 600 | 603 => Attempt::Busy,
            408 | 480 | 487 => Attempt::NoAnswer,
            401 | 403 | 404 | 407 | 410 | 484 | 604 => Attempt::Refused,
            _ => Attempt::Failed,
        }
    }

    /// The attempt's status as stored.
    pub fn status(self) -> Status {
        match self {
            Attempt::Answered => Status::Answered,
            Attempt::Busy => Status::Busy,
            Attempt::NoAnswer => Status::NoAnswer,
            Attempt::Failed | Attempt::Refused => Status::Failed,
            Attempt::Cancelled => Status::Cancelled,
        }
    }
}

/// What becomes of a call-back after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Over, with this status; the sealed number is erased.
    Final(Status),
    /// Queued again for this time.
    Retry(DateTime<Utc>),
}

/// After attempt number `attempts` (from 1) ended as `attempt`.
pub fn after_attempt(policy: &Policy, attempt: Attempt, attempts: u32, now: DateTime<Utc>) -> Next {
    let retry = matches!(attempt, Attempt::Busy | Attempt::NoAnswer | Attempt::Failed)
        && attempts <= policy.retries;
    if retry {
        Next::Retry(crate::schedule::later(now, policy.retry_after))
    } else {
        Next::Final(attempt.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn quotas_in_their_order() {
        let p = Policy::default();
        let now = at("2026-12-01T19:30:00Z");
        assert_eq!(admit(&p, &History::default(), now), Ok(()));
        let pending = History {
            caller_pending: true,
            ..History::default()
        };
        assert_eq!(admit(&p, &pending, now), Err(Refusal::AlreadyQueued));
        let recent = History {
            caller_last: Some(at("2026-12-01T19:05:00Z")),
            caller_day: 1,
            ..History::default()
        };
        assert_eq!(admit(&p, &recent, now), Err(Refusal::TooSoon));
        let later = History {
            caller_last: Some(at("2026-12-01T19:00:00Z")),
            caller_day: 1,
            ..History::default()
        };
        assert_eq!(admit(&p, &later, now), Ok(()), "30 min is enough");
        let third = History {
            caller_day: 3,
            ..later
        };
        assert_eq!(admit(&p, &third, now), Err(Refusal::CallerQuota));
        let busy_day = History {
            campaign_day: 1000,
            ..History::default()
        };
        assert_eq!(admit(&p, &busy_day, now), Err(Refusal::CampaignQuota));
    }

    #[test]
    fn withheld_blocked_and_closed_come_first() {
        let p = Policy {
            blocked: vec!["c_bad".into()],
            ..Policy::default()
        };
        assert_eq!(
            screen(&p, "anonymous", &Caller::new("c_x"), true),
            Err(Refusal::Withheld)
        );
        assert_eq!(
            screen(&p, "+22370123456", &Caller::new("c_bad"), true),
            Err(Refusal::Blocked)
        );
        assert_eq!(
            screen(&p, "+22370123456", &Caller::new("c_x"), false),
            Err(Refusal::Closed)
        );
        assert_eq!(
            screen(&p, "+22370123456", &Caller::new("c_x"), true),
            Ok(())
        );
        // An entry made from the number as written still blocks it once
        // national and international spellings are joined.
        let joined = Caller {
            pseudonym: "c_joined",
            as_written: Some("c_bad".into()),
        };
        assert_eq!(screen(&p, "70123456", &joined, true), Err(Refusal::Blocked));
    }

    #[test]
    fn numbers_outside_the_prefixes_are_not_allowed() {
        let p = Policy {
            prefixes: Some(vec!["+22376".into(), "+22366".into()]),
            country_code: Some("223".into()),
            ..Policy::default()
        };
        for ok in ["+22376123456", "0022366123456", "76123456", "076123456"] {
            assert_eq!(screen(&p, ok, &Caller::new("c_x"), true), Ok(()), "{ok}");
        }
        for premium in [
            "+22389123456",
            "+447700900123",
            "0044770090012",
            "89123456",
            "+1900",
        ] {
            assert_eq!(
                screen(&p, premium, &Caller::new("c_x"), true),
                Err(Refusal::NumberNotAllowed),
                "{premium}"
            );
        }
        assert_eq!(Refusal::NumberNotAllowed.as_str(), "number_not_allowed");
        // Without a country code, a national number cannot be placed: refused.
        let no_cc = Policy {
            country_code: None,
            ..p.clone()
        };
        assert_eq!(
            screen(&no_cc, "76123456", &Caller::new("c_x"), true),
            Err(Refusal::NumberNotAllowed)
        );
        // Without prefixes, anywhere the trunk carries.
        assert_eq!(
            screen(
                &Policy::default(),
                "+447700900123",
                &Caller::new("c_x"),
                true
            ),
            Ok(())
        );
        assert_eq!(e164("+22376123456", None).as_deref(), Some("+22376123456"));
        assert_eq!(e164("+2237612345678901234", None), None);
    }

    #[test]
    fn a_subscriber_is_kept_only_where_kuma_may_call_them() {
        let p = Policy {
            prefixes: Some(vec!["+22376".into()]),
            country_code: Some("223".into()),
            blocked: vec!["c_blocked".into()],
            ..Policy::default()
        };
        assert_eq!(may_call(&p, "76123456", &Caller::new("c_x")), Ok(()));
        assert_eq!(
            may_call(&p, "+447700900123", &Caller::new("c_x")),
            Err(Refusal::NumberNotAllowed)
        );
        assert_eq!(
            may_call(&p, "76123456", &Caller::new("c_blocked")),
            Err(Refusal::Blocked)
        );
        assert_eq!(
            may_call(&p, "anonymous", &Caller::new("c_x")),
            Err(Refusal::Withheld)
        );
    }

    #[test]
    fn quiet_hours_push_calls_to_their_end_in_the_campaigns_zone() {
        let q = QuietHours::parse("21:00-07:00").unwrap();
        let tz: Tz = "Africa/Bamako".parse().unwrap();
        let evening = at("2026-12-01T19:30:00Z");
        assert_eq!(q.next_allowed(evening, tz), evening);
        assert_eq!(
            q.next_allowed(at("2026-12-01T22:10:00Z"), tz),
            at("2026-12-02T07:00:00Z")
        );
        assert_eq!(
            q.next_allowed(at("2026-12-02T03:00:00Z"), tz),
            at("2026-12-02T07:00:00Z")
        );
        let paris: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            q.next_allowed(at("2026-12-01T21:30:00Z"), paris),
            at("2026-12-02T06:00:00Z"),
            "07:00 in Paris"
        );
        let lunch = QuietHours::parse("12:00-14:00").unwrap();
        assert_eq!(
            lunch.next_allowed(at("2026-12-01T13:00:00Z"), tz),
            at("2026-12-01T14:00:00Z")
        );
        assert!(QuietHours::parse("21:00").is_err());
        assert!(QuietHours::parse("25:00-07:00").is_err());
        assert!(QuietHours::parse("07:00-07:00").is_err());
    }

    #[test]
    fn only_phone_numbers_are_called_back() {
        assert!(callable("+22370123456"));
        assert!(callable("70123456"));
        for bad in [
            "",
            "anonymous",
            "+",
            "12",
            "+223 70",
            "sip:1@h",
            "123456789012345678901",
        ] {
            assert!(!callable(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_become_attempt_statuses() {
        assert_eq!(Attempt::declined(486), Attempt::Busy);
        assert_eq!(Attempt::declined(480), Attempt::NoAnswer);
        assert_eq!(Attempt::declined(503), Attempt::Failed);
        assert_eq!(Attempt::declined(403), Attempt::Refused);
    }

    #[test]
    fn three_retries_an_hour_apart_then_final() {
        let p = Policy::default();
        let now = at("2026-12-01T19:30:00Z");
        assert_eq!(
            after_attempt(&p, Attempt::Busy, 1, now),
            Next::Retry(at("2026-12-01T20:30:00Z"))
        );
        assert!(matches!(
            after_attempt(&p, Attempt::NoAnswer, 3, now),
            Next::Retry(_)
        ));
        assert!(matches!(
            after_attempt(&p, Attempt::Failed, 3, now),
            Next::Retry(_)
        ));
        assert_eq!(
            after_attempt(&p, Attempt::NoAnswer, 4, now),
            Next::Final(Status::NoAnswer)
        );
        assert_eq!(
            after_attempt(&p, Attempt::Refused, 1, now),
            Next::Final(Status::Failed),
            "a 403 is not tried again"
        );
        assert_eq!(
            after_attempt(&p, Attempt::Answered, 1, now),
            Next::Final(Status::Answered)
        );
        for s in ["queued", "dialing", "answered", "no_answer", "refused"] {
            assert_eq!(Status::parse(s).unwrap().as_str(), s);
        }
        assert!(!Status::Queued.is_final() && Status::Busy.is_final());
    }
}
