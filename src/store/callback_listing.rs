//! The call-back queue as people read it: one JSON shape for `kuma callbacks
//! --format json`, `GET /api/campaigns/{id}/callbacks` and the campaign page's
//! call-back section, read from the store in one place so that they cannot
//! disagree.
//!
//! Listeners appear by pseudonym only: the rows the store gives here carry no
//! number and no sealed number, so nothing built on this can leak one.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::{CallbackFilter, CallbackRow, Store, StoreError};
use crate::outbound::Status;

/// One call-back: who (pseudonym), why (`kind`), where it stands and every
/// attempt so far.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    pub campaign: String,
    pub caller: String,
    /// `missed_call`, or `broadcast` for a call to a subscriber after a broadcast.
    pub kind: &'static str,
    pub status: String,
    /// Why it was refused, or the last attempt's SIP code.
    pub note: Option<String>,
    pub attempts: u32,
    #[serde(rename = "next_try", serialize_with = "rfc3339_opt")]
    pub next_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// The answered call's id (its answers are in the results).
    pub call: Option<i64>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub broadcast: Option<DateTime<Utc>>,
    pub tries: Vec<Try>,
}

/// One dialling attempt and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Try {
    pub attempt: u32,
    pub status: String,
    pub sip_code: Option<u16>,
}

/// The `kind` of a call-back.
pub fn kind(broadcast: bool) -> &'static str {
    if broadcast {
        "broadcast"
    } else {
        "missed_call"
    }
}

// `to_rfc3339` (`+00:00`) rather than chrono's serde form (`Z`): the JSON that
// `kuma callbacks` printed before this module existed.
fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

impl From<CallbackRow> for Entry {
    fn from(r: CallbackRow) -> Entry {
        Entry {
            id: r.id,
            campaign: r.campaign,
            caller: r.caller,
            kind: kind(r.broadcast.is_some()),
            status: r.status,
            note: r.note,
            attempts: r.attempts,
            next_at: r.next_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            call: r.call,
            broadcast: r.broadcast,
            tries: r
                .tries
                .into_iter()
                .map(|t| Try {
                    attempt: t.attempt,
                    status: t.status,
                    sip_code: t.sip_code,
                })
                .collect(),
        }
    }
}

/// The call-backs `filter` picks, newest first.
pub async fn entries(store: &Store, filter: &CallbackFilter<'_>) -> Result<Vec<Entry>, StoreError> {
    Ok(store
        .callbacks()
        .list(filter)
        .await?
        .into_iter()
        .map(Entry::from)
        .collect())
}

/// A campaign's whole queue in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub callbacks: u64,
    /// Dialling attempts, all call-backs together.
    pub attempts: u64,
    pub by_status: ByStatus,
    pub by_kind: ByKind,
}

/// Call-backs per status (every status a call-back can have, zeros included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByStatus {
    pub queued: u64,
    pub dialing: u64,
    pub answered: u64,
    pub busy: u64,
    pub no_answer: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub refused: u64,
}

impl ByStatus {
    /// Each status with its count, in the order a call-back goes through them.
    pub fn pairs(&self) -> [(Status, u64); 8] {
        [
            (Status::Queued, self.queued),
            (Status::Dialing, self.dialing),
            (Status::Answered, self.answered),
            (Status::Busy, self.busy),
            (Status::NoAnswer, self.no_answer),
            (Status::Failed, self.failed),
            (Status::Cancelled, self.cancelled),
            (Status::Refused, self.refused),
        ]
    }

    fn slot(&mut self, status: Status) -> Option<&mut u64> {
        Some(match status {
            Status::Queued => &mut self.queued,
            Status::Dialing => &mut self.dialing,
            Status::Answered => &mut self.answered,
            Status::Busy => &mut self.busy,
            Status::NoAnswer => &mut self.no_answer,
            Status::Failed => &mut self.failed,
            Status::Cancelled => &mut self.cancelled,
            Status::Refused => &mut self.refused,
            // An attempt's status only, never a call-back's.
            Status::Ringing => return None,
        })
    }
}

/// Missed-call call-backs and calls to subscribers after a broadcast.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByKind {
    pub missed_call: KindCount,
    pub broadcast: KindCount,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindCount {
    pub callbacks: u64,
    pub attempts: u64,
}

/// The counts of a campaign's queue (every call-back, whatever a listing shows).
pub async fn summary(store: &Store, campaign: &str) -> Result<Summary, StoreError> {
    let mut s = Summary::default();
    for c in store.callbacks().counts(campaign).await? {
        s.callbacks += c.callbacks;
        s.attempts += c.attempts;
        // A status this version does not know still counts in the totals.
        if let Some(slot) = Status::parse(&c.status).and_then(|st| s.by_status.slot(st)) {
            *slot += c.callbacks;
        }
        let kind = if c.broadcast {
            &mut s.by_kind.broadcast
        } else {
            &mut s.by_kind.missed_call
        };
        kind.callbacks += c.callbacks;
        kind.attempts += c.attempts;
    }
    Ok(s)
}
