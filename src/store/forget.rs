//! Erasure on request: a listener who asks the station to forget them
//! (`kuma forget`) loses every row kept under their pseudonym, in one
//! transaction: their calls with the answers, nodes reached and voice messages
//! of each (and a provider call's state and pending recording), their
//! call-backs with their attempts, their subscriptions (sealed numbers) and
//! their wrong studio PINs.
//!
//! The counters are kept: they are totals without a caller (the results already
//! read on air do not change), and taking one listener's answers out of them
//! would tell anyone who compares the results before and after what that
//! listener answered. What reads rows (the answer export, counts over a time
//! range) no longer includes them.
//!
//! A call still in progress (no outcome yet, started less than
//! [`IN_PROGRESS`] ago) is left alone and counted in [`Forgotten::in_progress`]:
//! `kuma serve` is writing it, and would find its row gone. Forget the caller
//! again once it has ended.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Store, StoreError, millis, write_tx};

/// How long a call without an outcome is taken to be in progress: the longest
/// call a campaign may allow (`max_call`, at most six hours).
pub const IN_PROGRESS: Duration = Duration::from_secs(6 * 60 * 60);

/// The calls of caller `$1` that are forgotten: all but those in progress
/// (no outcome, started after `$2`).
macro_rules! forgotten_calls {
    () => {
        "SELECT id FROM calls WHERE caller = $1 AND (outcome IS NOT NULL OR started_at <= $2)"
    };
}

const IN_PROGRESS_CALLS: &str =
    "SELECT COUNT(*) FROM calls WHERE caller = $1 AND outcome IS NULL AND started_at > $2";
const FILES: &str = concat!(
    "SELECT file FROM recordings WHERE call IN (",
    forgotten_calls!(),
    ") ORDER BY id"
);
/// What goes with each forgotten call, children first; the answers' count is
/// the first statement's rows.
const CALL_ROWS: [&str; 6] = [
    concat!(
        "DELETE FROM answers WHERE call IN (",
        forgotten_calls!(),
        ")"
    ),
    concat!(
        "DELETE FROM call_nodes WHERE call IN (",
        forgotten_calls!(),
        ")"
    ),
    concat!(
        "DELETE FROM recordings WHERE call IN (",
        forgotten_calls!(),
        ")"
    ),
    concat!(
        "DELETE FROM recording_fetches WHERE call IN (",
        forgotten_calls!(),
        ")"
    ),
    concat!(
        "DELETE FROM webhook_sessions WHERE call IN (",
        forgotten_calls!(),
        ")"
    ),
    concat!("DELETE FROM calls WHERE id IN (", forgotten_calls!(), ")"),
];
const CALLBACK_ATTEMPTS: &str =
    "DELETE FROM callback_attempts WHERE callback IN (SELECT id FROM callbacks WHERE caller = $1)";
const CALLBACKS: &str = "DELETE FROM callbacks WHERE caller = $1";
const SUBSCRIPTIONS: &str = "DELETE FROM subscribers WHERE caller = $1";
const PIN_FAILURES: &str = "DELETE FROM pin_failures WHERE caller = $1";

/// What [`Store::forget`] erased of one caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub caller: String,
    pub calls: u64,
    pub answers: u64,
    /// The voice messages' files, as stored (the caller removes them: they
    /// are outside the database).
    pub recordings: Vec<String>,
    /// Call-backs, waiting or over.
    pub callbacks: u64,
    pub subscriptions: u64,
    /// Calls left alone because they are in progress.
    pub in_progress: u64,
}

impl Store {
    /// Erases every row kept under each of `callers` (pseudonyms), in one
    /// transaction, but for calls in progress at `now`; see the module's
    /// documentation. One [`Forgotten`] per caller, in order.
    pub async fn forget(
        &self,
        callers: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<Forgotten>, StoreError> {
        let since = millis(now - chrono::Duration::from_std(IN_PROGRESS).unwrap_or_default());
        write_tx!(self, |tx| {
            let mut all = Vec::with_capacity(callers.len());
            for caller in callers {
                let in_progress: i64 = sqlx::query_scalar(IN_PROGRESS_CALLS)
                    .bind(caller)
                    .bind(since)
                    .fetch_one(&mut *tx)
                    .await?;
                let recordings: Vec<String> = sqlx::query_scalar(FILES)
                    .bind(caller)
                    .bind(since)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut gone = Vec::with_capacity(CALL_ROWS.len());
                for statement in CALL_ROWS {
                    let n = sqlx::query(statement)
                        .bind(caller)
                        .bind(since)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    gone.push(n);
                }
                let mut by_caller = [0u64; 4];
                for (n, statement) in by_caller.iter_mut().zip([
                    CALLBACK_ATTEMPTS,
                    CALLBACKS,
                    SUBSCRIPTIONS,
                    PIN_FAILURES,
                ]) {
                    *n = sqlx::query(statement)
                        .bind(caller)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                all.push(Forgotten {
                    caller: caller.clone(),
                    calls: gone.last().copied().unwrap_or(0),
                    answers: gone.first().copied().unwrap_or(0),
                    recordings,
                    callbacks: by_caller[1],
                    subscriptions: by_caller[2],
                    in_progress: u64::try_from(in_progress).unwrap_or(0),
                });
            }
            all
        })
    }
}
