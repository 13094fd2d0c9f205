//! The call-back queue (`callbacks`, `callback_attempts`): missed calls to call
//! back, claimed by one dialer at a time, and how every attempt ended.
//!
//! The rules (quotas, retries) are `crate::outbound`'s; this file only keeps the
//! rows. A claim takes the next due call-back and marks it `dialing` in one
//! statement: on PostgreSQL the row is picked with `FOR UPDATE SKIP LOCKED`, so
//! several kuma processes sharing the database each take a different one and
//! never wait on each other; on SQLite the write transaction (`BEGIN IMMEDIATE`)
//! already makes it one dialer at a time. A `dialing` row whose process died is
//! taken again once it is older than the stale limit the dialer gives.
//!
//! The sealed number is set to NULL in the same statement that makes a call-back
//! final: nothing keeps a number longer than its call-back.

use chrono::{DateTime, Utc};

use super::{CallRow, Store, StoreError, millis, time, with_pool, write_tx};
use crate::outbound::{History, Next, Policy, Refusal, Status, admit};

const HISTORY: &str = "\
    SELECT \
      (SELECT COUNT(*) FROM callbacks WHERE caller = $1 AND created_at >= $3 AND status <> 'refused'), \
      (SELECT COUNT(*) FROM callbacks WHERE campaign = $2 AND created_at >= $3 AND status <> 'refused'), \
      (SELECT MAX(created_at) FROM callbacks WHERE caller = $1 AND status <> 'refused'), \
      (SELECT COUNT(*) FROM callbacks WHERE caller = $1 AND status IN ('queued', 'dialing'))";
const INSERT: &str = "\
    INSERT INTO callbacks (campaign, caller, number, status, note, next_at, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id";
/// The next due call-back (or a stale claim), PostgreSQL: skip rows another
/// process is claiming right now. The outer condition is checked again on the
/// row once it is locked, so a row taken meanwhile is never taken twice.
const CLAIM_PG: &str = "\
    UPDATE callbacks SET status = 'dialing', claimed_by = $1, updated_at = $2, \
      attempts = attempts + 1, next_at = NULL \
    WHERE id = (SELECT id FROM callbacks \
      WHERE (status = 'queued' AND next_at <= $2) OR (status = 'dialing' AND updated_at < $3) \
      ORDER BY next_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
    AND ((status = 'queued' AND next_at <= $2) OR (status = 'dialing' AND updated_at < $3)) \
    RETURNING id, campaign, caller, number, attempts, broadcast";
/// The same on SQLite, where the write transaction is the lock.
const CLAIM_SQLITE: &str = "\
    UPDATE callbacks SET status = 'dialing', claimed_by = $1, updated_at = $2, \
      attempts = attempts + 1, next_at = NULL \
    WHERE id = (SELECT id FROM callbacks \
      WHERE (status = 'queued' AND next_at <= $2) OR (status = 'dialing' AND updated_at < $3) \
      ORDER BY next_at, id LIMIT 1) \
    AND ((status = 'queued' AND next_at <= $2) OR (status = 'dialing' AND updated_at < $3)) \
    RETURNING id, campaign, caller, number, attempts, broadcast";
const INSERT_ATTEMPT: &str = "\
    INSERT INTO callback_attempts (callback, attempt, started_at, status) VALUES ($1, $2, $3, 'dialing') \
    ON CONFLICT (callback, attempt) DO UPDATE SET started_at = $3, status = 'dialing', ended_at = NULL, sip_code = NULL";
const ATTEMPT_STATUS: &str = "\
    UPDATE callback_attempts SET status = $3 WHERE callback = $1 AND attempt = $2";
const END_ATTEMPT: &str = "\
    UPDATE callback_attempts SET status = $3, sip_code = $4, ended_at = $5 \
    WHERE callback = $1 AND attempt = $2";
const FINAL: &str = "\
    UPDATE callbacks SET status = $2, note = $3, updated_at = $4, number = NULL, \
      next_at = NULL, call = COALESCE($5, call) WHERE id = $1";
const RETRY: &str = "\
    UPDATE callbacks SET status = 'queued', note = $2, updated_at = $3, next_at = $4 \
    WHERE id = $1";
/// The newest call-backs first; `''` for "any" campaign or status (static SQL with
/// typed parameters works the same on both databases, where `$1 IS NULL` would
/// leave PostgreSQL guessing the parameter's type).
const LIST: &str = "\
    SELECT id, campaign, caller, status, note, attempts, next_at, created_at, updated_at, call, \
      broadcast FROM callbacks WHERE ($1 = '' OR campaign = $1) AND ($2 = '' OR status = $2) \
    ORDER BY id DESC LIMIT $3";
/// The attempts of the call-backs [`LIST`] returns for the same parameters, in
/// one statement rather than one per call-back.
const LIST_ATTEMPTS: &str = "\
    SELECT callback, attempt, status, sip_code FROM callback_attempts WHERE callback IN \
      (SELECT id FROM callbacks WHERE ($1 = '' OR campaign = $1) AND ($2 = '' OR status = $2) \
       ORDER BY id DESC LIMIT $3) \
    ORDER BY callback, attempt";
/// Call-backs and attempts per status and kind (1: a call after a broadcast).
const SUMMARY: &str = "\
    SELECT status, CAST(CASE WHEN broadcast IS NULL THEN 0 ELSE 1 END AS BIGINT) AS kind, \
      COUNT(*), CAST(COALESCE(SUM(attempts), 0) AS BIGINT) \
    FROM callbacks WHERE campaign = $1 GROUP BY status, kind ORDER BY status, kind";
const HAS_NUMBER: &str = "SELECT COUNT(*) FROM callbacks WHERE id = $1 AND number IS NOT NULL";
const ATTEMPTS: &str = "\
    SELECT attempt, status, sip_code FROM callback_attempts WHERE callback = $1 ORDER BY attempt";

/// A missed call that asks for a call-back.
#[derive(Debug, Clone)]
pub struct NewCallback<'a> {
    pub campaign: &'a str,
    /// The caller's pseudonym.
    pub caller: &'a str,
    /// The caller's number, sealed (`crate::outbound::sealed`).
    pub sealed: &'a [u8],
    pub at: DateTime<Utc>,
    /// When to dial the first time.
    pub due: DateTime<Utc>,
}

/// A call-back claimed for dialling.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub campaign: String,
    pub caller: String,
    /// `None` if the number was erased meanwhile (the dialer then cancels it).
    pub sealed: Option<Vec<u8>>,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// A call to a subscriber: the broadcast it follows (quiet hours apply).
    pub broadcast: Option<DateTime<Utc>>,
}

/// One call-back as `kuma callbacks` lists it: never a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRow {
    pub id: i64,
    pub campaign: String,
    pub caller: String,
    pub status: String,
    pub note: Option<String>,
    pub attempts: u32,
    pub next_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub call: Option<CallRow>,
    /// A call to a subscriber: the broadcast it follows.
    pub broadcast: Option<DateTime<Utc>>,
    /// Every attempt so far, first to last.
    pub tries: Vec<AttemptRow>,
}

/// One dialling attempt of a call-back and how it ended (`ringing` while it rings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    /// From 1.
    pub attempt: u32,
    pub status: String,
    /// The SIP final response that ended it, if any.
    pub sip_code: Option<u16>,
}

/// Which call-backs [`CallbackQueue::list`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallbackFilter<'a> {
    /// Only this campaign's.
    pub campaign: Option<&'a str>,
    /// Only those with this status.
    pub status: Option<Status>,
    /// Only the newest this many.
    pub limit: Option<u32>,
}

/// How many call-backs of a campaign have one status and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackCount {
    pub status: String,
    /// Calls to subscribers after a broadcast (else missed calls).
    pub broadcast: bool,
    pub callbacks: u64,
    /// Dialling attempts made for them.
    pub attempts: u64,
}

/// id, campaign, caller, sealed number, attempts, broadcast.
type ClaimRow = (i64, String, String, Option<Vec<u8>>, i64, Option<i64>);

type ListRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

/// callback, attempt, status, SIP code.
type AttemptListRow = (i64, i64, String, Option<i64>);

/// A new subscriber only while the campaign has fewer than `$5`; one already
/// subscribed keeps their place (their sealed number is renewed).
const SUBSCRIBE: &str = "\
    INSERT INTO subscribers (campaign, caller, number, subscribed_at) \
    SELECT $1, $2, $3, $4 WHERE (SELECT COUNT(*) FROM subscribers WHERE campaign = $1) < $5 \
    ON CONFLICT (campaign, caller) DO UPDATE SET number = $3";
const RESUBSCRIBE: &str = "UPDATE subscribers SET number = $3 WHERE campaign = $1 AND caller = $2";
const UNSUBSCRIBE: &str = "DELETE FROM subscribers WHERE campaign = $1 AND caller = $2";
/// An unsubscribed listener's calls still waiting are cancelled, their number erased.
const CANCEL_SUBSCRIBER_CALLS: &str = "\
    UPDATE callbacks SET status = 'cancelled', number = NULL, next_at = NULL, updated_at = $3, \
      note = 'unsubscribed' \
    WHERE campaign = $1 AND caller = $2 AND broadcast IS NOT NULL AND status = 'queued'";
const SUBSCRIBERS: &str = "SELECT COUNT(*) FROM subscribers WHERE campaign = $1";
/// The subscribers of a campaign not yet queued (or refused) for a broadcast.
const BROADCAST_DUE: &str = "\
    SELECT s.caller, s.number FROM subscribers s WHERE s.campaign = $1 AND NOT EXISTS \
      (SELECT 1 FROM callbacks c WHERE c.campaign = $1 AND c.caller = s.caller AND c.broadcast = $2) \
    ORDER BY s.subscribed_at, s.caller";
/// A call to a subscriber after a broadcast, queued or refused by the quotas;
/// once per subscriber and broadcast, however many processes try.
const INSERT_BROADCAST: &str = "\
    INSERT INTO callbacks (campaign, caller, number, status, note, next_at, created_at, updated_at, broadcast) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
    ON CONFLICT (campaign, caller, broadcast) DO NOTHING";

/// The call-back queue: its own type beside the results, over the same
/// database (`Store::callbacks`). It keeps rows; the rules are `crate::outbound`'s.
#[derive(Clone, Copy)]
pub struct CallbackQueue<'a> {
    store: &'a Store,
}

impl Store {
    /// The call-back queue and the subscribers.
    pub fn callbacks(&self) -> CallbackQueue<'_> {
        CallbackQueue { store: self }
    }
}

impl CallbackQueue<'_> {
    /// Keeps a listener's sealed number to call them after each broadcast, unless
    /// the campaign already has `limit` subscribers; false when not kept.
    pub async fn subscribe(
        self,
        campaign: &str,
        caller: &str,
        sealed: &[u8],
        limit: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        write_tx!(self.store, |tx| {
            let renewed = sqlx::query(RESUBSCRIBE)
                .bind(campaign)
                .bind(caller)
                .bind(sealed)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            renewed > 0
                || sqlx::query(SUBSCRIBE)
                    .bind(campaign)
                    .bind(caller)
                    .bind(sealed)
                    .bind(millis(at))
                    .bind(i64::from(limit))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    > 0
        })
    }

    /// Erases a subscriber and cancels their calls still waiting; false if they
    /// were not subscribed.
    pub async fn unsubscribe(
        self,
        campaign: &str,
        caller: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        write_tx!(self.store, |tx| {
            let gone = sqlx::query(UNSUBSCRIBE)
                .bind(campaign)
                .bind(caller)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(CANCEL_SUBSCRIBER_CALLS)
                .bind(campaign)
                .bind(caller)
                .bind(millis(at))
                .execute(&mut *tx)
                .await?;
            gone > 0
        })
    }

    pub async fn subscriber_count(self, campaign: &str) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self.store, |pool| {
            sqlx::query_scalar(SUBSCRIBERS)
                .bind(campaign)
                .fetch_one(pool)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Queues a call to every subscriber of the campaign after `broadcast`, due at
    /// `due`, within the same quotas as missed calls (a subscriber over them gets
    /// a refused row, without the number, for this broadcast); a subscriber
    /// already queued or refused for it is left alone (so every process may
    /// try). Returns how many were queued now.
    pub async fn queue_broadcast(
        self,
        campaign: &str,
        broadcast: DateTime<Utc>,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: &Policy,
    ) -> Result<u64, StoreError> {
        let day_ago = millis(now - chrono::Duration::days(1));
        write_tx!(self.store, |tx| {
            let due_now: Vec<(String, Vec<u8>)> = sqlx::query_as(BROADCAST_DUE)
                .bind(campaign)
                .bind(millis(broadcast))
                .fetch_all(&mut *tx)
                .await?;
            let mut queued = 0u64;
            for (caller, sealed) in &due_now {
                // Read again for each: the rows queued just before count too.
                let history = history_of(
                    sqlx::query_as(HISTORY)
                        .bind(caller)
                        .bind(campaign)
                        .bind(day_ago)
                        .fetch_one(&mut *tx)
                        .await?,
                )?;
                let (status, note, number, next) = match admit(policy, &history, now) {
                    Ok(()) => (
                        Status::Queued,
                        None,
                        Some(sealed.as_slice()),
                        Some(millis(due)),
                    ),
                    Err(r) => (Status::Refused, Some(r.as_str()), None, None),
                };
                let inserted = sqlx::query(INSERT_BROADCAST)
                    .bind(campaign)
                    .bind(caller)
                    .bind(number)
                    .bind(status.as_str())
                    .bind(note)
                    .bind(next)
                    .bind(millis(now))
                    .bind(millis(broadcast))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if status == Status::Queued {
                    queued += inserted;
                }
            }
            queued
        })
    }

    /// Queues a call-back if the quotas allow (checked in the same transaction as
    /// the insert); otherwise stores the missed call as refused, without the
    /// number. Returns the row id and whether it was queued.
    pub async fn queue(
        self,
        c: &NewCallback<'_>,
        policy: &Policy,
    ) -> Result<(i64, Result<(), Refusal>), StoreError> {
        let day_ago = millis(c.at - chrono::Duration::days(1));
        write_tx!(self.store, |tx| {
            let history = history_of(
                sqlx::query_as(HISTORY)
                    .bind(c.caller)
                    .bind(c.campaign)
                    .bind(day_ago)
                    .fetch_one(&mut *tx)
                    .await?,
            )?;
            let verdict = admit(policy, &history, c.at);
            let (status, note, number, next) = match verdict {
                Ok(()) => (Status::Queued, None, Some(c.sealed), Some(millis(c.due))),
                Err(r) => (Status::Refused, Some(r.as_str()), None, None),
            };
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(c.campaign)
                .bind(c.caller)
                .bind(number)
                .bind(status.as_str())
                .bind(note)
                .bind(next)
                .bind(millis(c.at))
                .fetch_one(&mut *tx)
                .await?;
            (id, verdict)
        })
    }

    /// Stores a missed call that gets no call-back for a reason found before the
    /// quotas (withheld number, block list, campaign closed).
    pub async fn refuse(
        self,
        campaign: &str,
        caller: &str,
        refusal: Refusal,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        with_pool!(self.store, |pool| {
            Ok(sqlx::query_scalar(INSERT)
                .bind(campaign)
                .bind(caller)
                .bind(None::<&[u8]>)
                .bind(Status::Refused.as_str())
                .bind(refusal.as_str())
                .bind(None::<i64>)
                .bind(millis(at))
                .fetch_one(pool)
                .await?)
        })
    }

    /// Takes the next call-back due at `now` (or claimed by a process that has not
    /// touched it since `stale_before`) for dialler `worker`, and opens its attempt.
    pub async fn claim(
        self,
        worker: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<Option<Claimed>, StoreError> {
        let claim = match self.store.backend() {
            "postgres" => CLAIM_PG,
            _ => CLAIM_SQLITE,
        };
        write_tx!(self.store, |tx| {
            let row: Option<ClaimRow> = sqlx::query_as(claim)
                .bind(worker)
                .bind(millis(now))
                .bind(millis(stale_before))
                .fetch_optional(&mut *tx)
                .await?;
            match row {
                Some((id, campaign, caller, sealed, attempts, broadcast)) => {
                    sqlx::query(INSERT_ATTEMPT)
                        .bind(id)
                        .bind(attempts)
                        .bind(millis(now))
                        .execute(&mut *tx)
                        .await?;
                    Some(Claimed {
                        id,
                        campaign,
                        caller,
                        sealed,
                        attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                        broadcast: broadcast.map(time).transpose()?,
                    })
                }
                None => None,
            }
        })
    }

    /// The attempt rings.
    pub async fn ringing(self, id: i64, attempt: u32) -> Result<(), StoreError> {
        with_pool!(self.store, |pool| {
            sqlx::query(ATTEMPT_STATUS)
                .bind(id)
                .bind(i64::from(attempt))
                .bind(Status::Ringing.as_str())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records how an attempt ended and what comes next: a retry, or the end of
    /// the call-back (its number erased). `call` is the answered call's id.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_attempt(
        self,
        id: i64,
        attempt: u32,
        status: Status,
        sip_code: Option<u16>,
        next: Next,
        call: Option<CallRow>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let note = sip_code.map(|c| format!("sip {c}"));
        write_tx!(self.store, |tx| {
            sqlx::query(END_ATTEMPT)
                .bind(id)
                .bind(i64::from(attempt))
                .bind(status.as_str())
                .bind(sip_code.map(i64::from))
                .bind(millis(now))
                .execute(&mut *tx)
                .await?;
            match next {
                Next::Final(final_status) => {
                    sqlx::query(FINAL)
                        .bind(id)
                        .bind(final_status.as_str())
                        .bind(note.as_deref())
                        .bind(millis(now))
                        .bind(call)
                        .execute(&mut *tx)
                        .await?;
                }
                Next::Retry(at) => {
                    sqlx::query(RETRY)
                        .bind(id)
                        .bind(note.as_deref().unwrap_or(status.as_str()))
                        .bind(millis(now))
                        .bind(millis(at))
                        .execute(&mut *tx)
                        .await?;
                }
            }
        })
    }

    /// The call-backs `filter` picks, newest first, each with its attempts.
    pub async fn list(self, filter: &CallbackFilter<'_>) -> Result<Vec<CallbackRow>, StoreError> {
        let campaign = filter.campaign.unwrap_or("");
        let status = filter.status.map_or("", Status::as_str);
        let limit = filter.limit.map_or(i64::MAX, i64::from);
        let (rows, attempts): (Vec<ListRow>, Vec<AttemptListRow>) =
            with_pool!(self.store, |pool| {
                let rows = sqlx::query_as(LIST)
                    .bind(campaign)
                    .bind(status)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                let attempts = sqlx::query_as(LIST_ATTEMPTS)
                    .bind(campaign)
                    .bind(status)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                (rows, attempts)
            });
        let mut tries: std::collections::HashMap<i64, Vec<AttemptRow>> =
            std::collections::HashMap::new();
        for (callback, attempt, status, sip_code) in attempts {
            tries.entry(callback).or_default().push(AttemptRow {
                attempt: u32::try_from(attempt).unwrap_or(0),
                status,
                sip_code: sip_code.and_then(|c| u16::try_from(c).ok()),
            });
        }
        rows.into_iter()
            .map(|r| {
                Ok(CallbackRow {
                    id: r.0,
                    campaign: r.1,
                    caller: r.2,
                    status: r.3,
                    note: r.4,
                    attempts: u32::try_from(r.5).unwrap_or(0),
                    next_at: r.6.map(time).transpose()?,
                    created_at: time(r.7)?,
                    updated_at: time(r.8)?,
                    call: r.9,
                    broadcast: r.10.map(time).transpose()?,
                    tries: tries.remove(&r.0).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// A campaign's call-backs counted per status and kind, with their attempts.
    pub async fn counts(self, campaign: &str) -> Result<Vec<CallbackCount>, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = with_pool!(self.store, |pool| {
            sqlx::query_as(SUMMARY)
                .bind(campaign)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(status, kind, n, attempts)| CallbackCount {
                status,
                broadcast: kind != 0,
                callbacks: u64::try_from(n).unwrap_or(0),
                attempts: u64::try_from(attempts).unwrap_or(0),
            })
            .collect())
    }

    /// The attempts of one call-back: (attempt, status, SIP code).
    pub async fn attempts(self, id: i64) -> Result<Vec<(u32, String, Option<u16>)>, StoreError> {
        let rows: Vec<(i64, String, Option<i64>)> = with_pool!(self.store, |pool| {
            sqlx::query_as(ATTEMPTS).bind(id).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(a, s, c)| {
                (
                    u32::try_from(a).unwrap_or(0),
                    s,
                    c.and_then(|c| u16::try_from(c).ok()),
                )
            })
            .collect())
    }

    /// Whether a call-back still holds its sealed number (for tests and audits).
    pub async fn has_number(self, id: i64) -> Result<bool, StoreError> {
        let n: Option<i64> = with_pool!(self.store, |pool| {
            sqlx::query_scalar(HAS_NUMBER)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(n.unwrap_or(0) > 0)
    }
}

/// What [`HISTORY`] read, for [`admit`].
fn history_of(
    (caller_day, campaign_day, last, pending): (i64, i64, Option<i64>, i64),
) -> Result<History, StoreError> {
    Ok(History {
        caller_day: u64::try_from(caller_day).unwrap_or(0),
        campaign_day: u64::try_from(campaign_day).unwrap_or(0),
        caller_last: last.map(time).transpose()?,
        caller_pending: pending > 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Attempt;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kuma.db", dir.path().display());
        (dir, Store::open(&url).await.unwrap())
    }

    async fn oldest_first(s: &Store, campaign: Option<&str>) -> Vec<CallbackRow> {
        let filter = CallbackFilter {
            campaign,
            ..CallbackFilter::default()
        };
        let mut list = s.callbacks().list(&filter).await.unwrap();
        list.reverse();
        list
    }

    fn missed<'a>(caller: &'a str, t: DateTime<Utc>) -> NewCallback<'a> {
        NewCallback {
            campaign: "c",
            caller,
            sealed: b"sealed-bytes",
            at: t,
            due: t + chrono::Duration::seconds(20),
        }
    }

    #[tokio::test]
    async fn quotas_are_kept_and_refusals_stored_without_the_number() {
        let (_d, s) = store().await;
        let p = Policy {
            per_caller_per_day: 2,
            min_interval: std::time::Duration::from_secs(600),
            ..Policy::default()
        };
        let t0 = at("2026-12-01T19:00:00Z");
        let (first, ok) = s.callbacks().queue(&missed("c_a", t0), &p).await.unwrap();
        assert_eq!(ok, Ok(()));
        assert!(s.callbacks().has_number(first).await.unwrap());
        let t1 = t0 + chrono::Duration::minutes(1);
        let (second, v) = s.callbacks().queue(&missed("c_a", t1), &p).await.unwrap();
        assert_eq!(v, Err(Refusal::AlreadyQueued));
        assert!(!s.callbacks().has_number(second).await.unwrap());
        // The first call-back is answered; a new beep 5 minutes later is too soon.
        let claimed = s
            .callbacks()
            .claim("w", t0 + chrono::Duration::seconds(20), t0)
            .await
            .unwrap()
            .unwrap();
        s.callbacks()
            .finish_attempt(
                claimed.id,
                1,
                Status::Answered,
                None,
                Next::Final(Status::Answered),
                Some(7),
                t1,
            )
            .await
            .unwrap();
        assert!(
            !s.callbacks().has_number(first).await.unwrap(),
            "erased once over"
        );
        let t5 = t0 + chrono::Duration::minutes(5);
        assert_eq!(
            s.callbacks().queue(&missed("c_a", t5), &p).await.unwrap().1,
            Err(Refusal::TooSoon)
        );
        let t20 = t0 + chrono::Duration::minutes(20);
        let (third, v) = s.callbacks().queue(&missed("c_a", t20), &p).await.unwrap();
        assert_eq!(v, Ok(()));
        let claimed = s
            .callbacks()
            .claim("w", t20 + chrono::Duration::minutes(1), t0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, third);
        s.callbacks()
            .finish_attempt(
                third,
                1,
                Status::Answered,
                None,
                Next::Final(Status::Answered),
                None,
                t20,
            )
            .await
            .unwrap();
        let t40 = t0 + chrono::Duration::minutes(40);
        assert_eq!(
            s.callbacks()
                .queue(&missed("c_a", t40), &p)
                .await
                .unwrap()
                .1,
            Err(Refusal::CallerQuota)
        );
        // A day later the quota is back; another caller was never limited.
        let tomorrow = t0 + chrono::Duration::hours(25);
        assert_eq!(
            s.callbacks()
                .queue(&missed("c_a", tomorrow), &p)
                .await
                .unwrap()
                .1,
            Ok(())
        );
        assert_eq!(
            s.callbacks()
                .queue(&missed("c_b", t40), &p)
                .await
                .unwrap()
                .1,
            Ok(())
        );
        s.callbacks()
            .refuse("c", "c_anon", Refusal::Withheld, t40)
            .await
            .unwrap();
        let list = oldest_first(&s, Some("c")).await;
        let notes: Vec<_> = list
            .iter()
            .map(|r| (r.status.as_str(), r.note.as_deref()))
            .collect();
        assert_eq!(
            notes,
            [
                ("answered", None),
                ("refused", Some("already_queued")),
                ("refused", Some("too_soon")),
                ("answered", None),
                ("refused", Some("caller_quota")),
                ("queued", None),
                ("queued", None),
                ("refused", Some("withheld_number")),
            ]
        );
        assert_eq!(list[0].call, Some(7));
        s.close().await;
    }

    #[tokio::test]
    async fn claims_wait_for_the_due_time_retries_come_back_and_end_final() {
        let (_d, s) = store().await;
        let p = Policy::default();
        let t0 = at("2026-12-01T19:00:00Z");
        let (id, _) = s.callbacks().queue(&missed("c_a", t0), &p).await.unwrap();
        assert!(
            s.callbacks().claim("w", t0, t0).await.unwrap().is_none(),
            "not before the delay"
        );
        let t = t0 + chrono::Duration::seconds(20);
        let c = s.callbacks().claim("w", t, t0).await.unwrap().unwrap();
        assert_eq!((c.id, c.attempt, c.caller.as_str()), (id, 1, "c_a"));
        assert_eq!(c.sealed.as_deref(), Some(&b"sealed-bytes"[..]));
        assert!(
            s.callbacks().claim("w2", t, t0).await.unwrap().is_none(),
            "claimed once"
        );
        s.callbacks().ringing(id, 1).await.unwrap();
        let next = crate::outbound::after_attempt(&p, Attempt::Busy, 1, t);
        s.callbacks()
            .finish_attempt(id, 1, Status::Busy, Some(486), next, None, t)
            .await
            .unwrap();
        let row = &oldest_first(&s, None).await[0];
        assert_eq!((row.status.as_str(), row.attempts), ("queued", 1));
        assert_eq!(row.next_at, Some(t + chrono::Duration::hours(1)));
        assert!(
            s.callbacks()
                .claim("w", t + chrono::Duration::minutes(59), t0)
                .await
                .unwrap()
                .is_none()
        );
        let t2 = t + chrono::Duration::hours(1);
        let c = s.callbacks().claim("w", t2, t0).await.unwrap().unwrap();
        assert_eq!(c.attempt, 2);
        s.callbacks()
            .finish_attempt(
                id,
                2,
                Status::Failed,
                Some(403),
                Next::Final(Status::Failed),
                None,
                t2,
            )
            .await
            .unwrap();
        assert_eq!(
            s.callbacks().attempts(id).await.unwrap(),
            [
                (1, "busy".to_string(), Some(486)),
                (2, "failed".to_string(), Some(403))
            ]
        );
        assert!(!s.callbacks().has_number(id).await.unwrap());
        assert!(
            s.callbacks()
                .claim("w", t2 + chrono::Duration::days(9), t2)
                .await
                .unwrap()
                .is_none()
        );
        s.close().await;
    }

    #[tokio::test]
    async fn subscribers_are_queued_once_per_broadcast_and_erased_when_they_leave() {
        let (_d, s) = store().await;
        let t0 = at("2026-12-01T19:00:00Z");
        s.callbacks()
            .subscribe("c", "c_a", b"sealed-a", u32::MAX, t0)
            .await
            .unwrap();
        s.callbacks()
            .subscribe("c", "c_b", b"sealed-b", u32::MAX, t0)
            .await
            .unwrap();
        s.callbacks()
            .subscribe("c", "c_b", b"sealed-b2", u32::MAX, t0)
            .await
            .unwrap();
        s.callbacks()
            .subscribe("other", "c_a", b"sealed-a", u32::MAX, t0)
            .await
            .unwrap();
        assert_eq!(s.callbacks().subscriber_count("c").await.unwrap(), 2);
        let due = t0 + chrono::Duration::hours(1);
        assert_eq!(
            s.callbacks()
                .queue_broadcast("c", t0, due, t0, &Policy::default())
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            s.callbacks()
                .queue_broadcast("c", t0, due, t0, &Policy::default())
                .await
                .unwrap(),
            0,
            "once per broadcast"
        );
        // The listener presses the key that unsubscribes: erased, their call cancelled.
        assert!(s.callbacks().unsubscribe("c", "c_a", t0).await.unwrap());
        assert!(!s.callbacks().unsubscribe("c", "c_a", t0).await.unwrap());
        assert_eq!(s.callbacks().subscriber_count("c").await.unwrap(), 1);
        let list = oldest_first(&s, Some("c")).await;
        let rows: Vec<_> = list
            .iter()
            .map(|r| (r.caller.as_str(), r.status.as_str(), r.broadcast))
            .collect();
        assert_eq!(
            rows,
            [("c_a", "cancelled", Some(t0)), ("c_b", "queued", Some(t0))]
        );
        assert!(!s.callbacks().has_number(list[0].id).await.unwrap());
        let c = s.callbacks().claim("w", due, t0).await.unwrap().unwrap();
        assert_eq!((c.caller.as_str(), c.broadcast), ("c_b", Some(t0)));
        assert_eq!(c.sealed.as_deref(), Some(&b"sealed-b2"[..]));
        // Answered; the next broadcast queues the remaining subscriber again (a
        // call still waiting would count against the quotas: `already_queued`).
        s.callbacks()
            .finish_attempt(
                c.id,
                c.attempt,
                Status::Answered,
                None,
                Next::Final(Status::Answered),
                None,
                due,
            )
            .await
            .unwrap();
        let t1 = t0 + chrono::Duration::days(4);
        assert_eq!(
            s.callbacks()
                .queue_broadcast("c", t1, t1, t1, &Policy::default())
                .await
                .unwrap(),
            1
        );
        s.close().await;
    }

    #[tokio::test]
    async fn subscribers_count_against_the_quotas_and_their_number() {
        let (_d, s) = store().await;
        let t0 = at("2026-12-01T19:00:00Z");
        // The cap: a third subscriber is not kept; one already there renews.
        assert!(
            s.callbacks()
                .subscribe("c", "c_a", b"a", 2, t0)
                .await
                .unwrap()
        );
        assert!(
            s.callbacks()
                .subscribe("c", "c_b", b"b", 2, t0)
                .await
                .unwrap()
        );
        assert!(
            !s.callbacks()
                .subscribe("c", "c_c", b"c", 2, t0)
                .await
                .unwrap()
        );
        assert!(
            s.callbacks()
                .subscribe("c", "c_b", b"b2", 2, t0)
                .await
                .unwrap()
        );
        assert!(
            s.callbacks()
                .subscribe("other", "c_c", b"c", 2, t0)
                .await
                .unwrap()
        );
        assert_eq!(s.callbacks().subscriber_count("c").await.unwrap(), 2);

        // `c_a` had a call-back an hour ago; the campaign may place 2 a day.
        let policy = Policy {
            per_campaign_per_day: 2,
            ..Policy::default()
        };
        let missed = NewCallback {
            due: t0 - chrono::Duration::minutes(59),
            ..missed("c_a", t0 - chrono::Duration::hours(1))
        };
        let (id, verdict) = s.callbacks().queue(&missed, &policy).await.unwrap();
        assert_eq!(verdict, Ok(()));
        let later = t0 + chrono::Duration::minutes(10);
        // `c_a`'s call-back is still queued: refused; `c_b` takes the last place.
        assert_eq!(
            s.callbacks()
                .queue_broadcast("c", t0, later, later, &policy)
                .await
                .unwrap(),
            1
        );
        let notes = |list: Vec<CallbackRow>| -> Vec<(String, String, Option<String>)> {
            list.into_iter()
                .filter(|r| r.broadcast.is_some())
                .map(|r| (r.caller, r.status.as_str().to_owned(), r.note))
                .collect()
        };
        assert_eq!(
            notes(oldest_first(&s, Some("c")).await),
            [
                (
                    "c_a".into(),
                    "refused".into(),
                    Some("already_queued".into())
                ),
                ("c_b".into(), "queued".into(), None),
            ]
        );
        // Refused for this broadcast, not again and again.
        assert_eq!(
            s.callbacks()
                .queue_broadcast("c", t0, later, later, &policy)
                .await
                .unwrap(),
            0
        );
        assert!(
            !s.callbacks()
                .has_number(
                    oldest_first(&s, Some("c"))
                        .await
                        .iter()
                        .find(|r| r.caller == "c_a" && r.broadcast.is_some())
                        .unwrap()
                        .id
                )
                .await
                .unwrap()
        );
        assert!(s.callbacks().has_number(id).await.unwrap());
        s.close().await;
    }

    #[tokio::test]
    async fn a_claim_left_by_a_dead_process_is_taken_again_when_stale() {
        let (_d, s) = store().await;
        let t0 = at("2026-12-01T19:00:00Z");
        let (id, _) = s
            .callbacks()
            .queue(&missed("c_a", t0), &Policy::default())
            .await
            .unwrap();
        let t = t0 + chrono::Duration::minutes(1);
        assert!(s.callbacks().claim("dead", t, t0).await.unwrap().is_some());
        let later = t + chrono::Duration::minutes(5);
        assert!(s.callbacks().claim("w", later, t0).await.unwrap().is_none());
        let c = s
            .callbacks()
            .claim("w", later, later - chrono::Duration::minutes(2))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((c.id, c.attempt), (id, 2));
        s.close().await;
    }

    #[tokio::test]
    async fn lists_filter_newest_first_with_attempts_and_counts_add_up() {
        let (_d, s) = store().await;
        let p = Policy::default();
        let t0 = at("2026-12-01T19:00:00Z");
        let (a, _) = s.callbacks().queue(&missed("c_a", t0), &p).await.unwrap();
        let (b, _) = s
            .callbacks()
            .queue(&missed("c_b", t0 + chrono::Duration::hours(3)), &p)
            .await
            .unwrap();
        s.callbacks()
            .refuse("c", "c_anon", Refusal::Withheld, t0)
            .await
            .unwrap();
        s.callbacks()
            .refuse("other", "c_x", Refusal::Withheld, t0)
            .await
            .unwrap();
        s.callbacks()
            .subscribe("c", "c_s", b"sealed-s", u32::MAX, t0)
            .await
            .unwrap();
        let due = t0 + chrono::Duration::days(1);
        s.callbacks()
            .queue_broadcast("c", t0, due, t0, &Policy::default())
            .await
            .unwrap();
        // `a` is busy once, then answered; `b` is not due yet.
        let t = t0 + chrono::Duration::seconds(20);
        let c = s.callbacks().claim("w", t, t0).await.unwrap().unwrap();
        assert_eq!(c.id, a);
        s.callbacks().ringing(a, 1).await.unwrap();
        let next = crate::outbound::after_attempt(&p, Attempt::Busy, 1, t);
        s.callbacks()
            .finish_attempt(a, 1, Status::Busy, Some(486), next, None, t)
            .await
            .unwrap();
        let t2 = t + chrono::Duration::hours(1);
        let c = s.callbacks().claim("w", t2, t0).await.unwrap().unwrap();
        assert_eq!(c.id, a);
        s.callbacks()
            .finish_attempt(
                a,
                2,
                Status::Answered,
                None,
                Next::Final(Status::Answered),
                Some(3),
                t2,
            )
            .await
            .unwrap();

        let all = |status, limit| CallbackFilter {
            campaign: Some("c"),
            status,
            limit,
        };
        let list = s.callbacks().list(&all(None, None)).await.unwrap();
        let ids: Vec<_> = list
            .iter()
            .map(|r| (r.caller.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("c_s", "queued"),
                ("c_anon", "refused"),
                ("c_b", "queued"),
                ("c_a", "answered")
            ],
            "newest first, only this campaign"
        );
        let answered = &list[3];
        assert_eq!(
            answered.tries,
            [
                AttemptRow {
                    attempt: 1,
                    status: "busy".into(),
                    sip_code: Some(486)
                },
                AttemptRow {
                    attempt: 2,
                    status: "answered".into(),
                    sip_code: None
                }
            ]
        );
        assert!(list[..3].iter().all(|r| r.tries.is_empty()));
        let two = s.callbacks().list(&all(None, Some(2))).await.unwrap();
        assert_eq!(two, list[..2]);
        let queued = s
            .callbacks()
            .list(&all(Some(Status::Queued), None))
            .await
            .unwrap();
        assert_eq!(
            queued.iter().map(|r| r.id).collect::<Vec<_>>(),
            [list[0].id, b]
        );
        // The limit picks the newest answered one with its attempts, not older rows'.
        let one = s
            .callbacks()
            .list(&all(Some(Status::Answered), Some(1)))
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].tries.len(), 2);
        let everyone = s
            .callbacks()
            .list(&CallbackFilter::default())
            .await
            .unwrap();
        assert_eq!(everyone.len(), 5);

        let counts = s.callbacks().counts("c").await.unwrap();
        let got: Vec<_> = counts
            .iter()
            .map(|c| (c.status.as_str(), c.broadcast, c.callbacks, c.attempts))
            .collect();
        assert_eq!(
            got,
            [
                ("answered", false, 1, 2),
                ("queued", false, 1, 0),
                ("queued", true, 1, 0),
                ("refused", false, 1, 0)
            ]
        );
        assert!(s.callbacks().counts("nobody").await.unwrap().is_empty());
        s.close().await;
    }
}
