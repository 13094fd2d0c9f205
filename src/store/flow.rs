//! What a channel writes when the flow engine asks: the same for every channel
//! (the terminal simulator, SIP, the webhooks), so a call's answers and outcome are
//! stored alike whichever way it came in.
//!
//! Each write is also a value, [`WriteOp`]: `kuma serve` keeps it in its spool
//! (`super::spool`) while the database is away and applies it later. Every
//! `WriteOp` may be applied again after it was applied (a replay after a crash
//! between the commit and the spool's checkpoint, or a commit that happened after
//! its caller gave up waiting) without counting anything twice; see
//! [`WriteOp::apply`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::time::Duration;

use super::{CallRow, Store, StoreError};
use crate::flow::Action;

/// One write of a call in progress, as data (and as one line of the spool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WriteOp {
    /// The call entered a node (the funnel's `reached`).
    Visit {
        call: CallRow,
        node: String,
    },
    Language {
        call: CallRow,
        language: String,
    },
    Answer {
        call: CallRow,
        question: String,
        choice: String,
        digit: String,
        at: DateTime<Utc>,
        broadcast: Option<DateTime<Utc>>,
    },
    Completed {
        call: CallRow,
    },
    End {
        call: CallRow,
        at: DateTime<Utc>,
        outcome: String,
        last_node: Option<String>,
    },
    /// The call ended before it reached its campaign (refused for its offer,
    /// given up while it rang, kuma's answer never confirmed): its row goes
    /// and its count is taken back, so that such calls (a forged INVITE's
    /// among them) neither count in the results nor leave a row. A call with
    /// anything stored under it (an answer, a node reached) is kept.
    Withdraw {
        call: CallRow,
    },
    /// A voice message: the file is already written and synced.
    Recording {
        call: CallRow,
        node: String,
        file: String,
        duration_ms: u64,
        at: DateTime<Utc>,
    },
    /// `sealed` is the number sealed by `crate::outbound::sealed`, in hex: the
    /// spool never holds a readable number.
    Subscribe {
        campaign: String,
        caller: String,
        sealed: String,
        at: DateTime<Utc>,
        /// At most this many subscribers in the campaign (`[callback]
        /// subscribers_per_campaign`); absent in spools written before it existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    Unsubscribe {
        campaign: String,
        caller: String,
        at: DateTime<Utc>,
    },
}

/// Writes handed to the store that it did not write, given back with the
/// reason: the caller keeps them (the spool) or applies them one by one
/// without having copied them first. `ops` is empty only when they were lost
/// with the job that held them (it panicked, a bug); `error` then does not
/// read as the database away.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Unwritten {
    pub error: StoreError,
    pub ops: Vec<WriteOp>,
}

impl From<Unwritten> for StoreError {
    fn from(u: Unwritten) -> StoreError {
        u.error
    }
}

impl WriteOp {
    /// What `action` asks to store for call `call` at `at` (a node entered, a
    /// language, an answer, completion, the call's end); `None` for the actions
    /// that store nothing. Channels pass `Enter` too: the funnel counts the nodes
    /// calls reach.
    pub fn from_action(call: CallRow, action: &Action, at: DateTime<Utc>) -> Option<WriteOp> {
        Some(match action {
            Action::Enter { node } => WriteOp::Visit {
                call,
                node: node.clone(),
            },
            Action::SetLanguage { language } => WriteOp::Language {
                call,
                language: language.clone(),
            },
            Action::StoreAnswer {
                question,
                choice,
                digit,
                broadcast,
            } => WriteOp::Answer {
                call,
                question: question.clone(),
                choice: choice.clone(),
                digit: digit.to_string(),
                at,
                broadcast: *broadcast,
            },
            Action::Completed => WriteOp::Completed { call },
            Action::Finished { outcome, last_node } => WriteOp::End {
                call,
                at,
                outcome: outcome.as_str().to_string(),
                last_node: last_node.clone(),
            },
            _ => return None,
        })
    }

    /// Whether [`Store::apply_all`] takes this write with others in one
    /// transaction: a call's progress (visit, language, answer, completion,
    /// end), not a recording or a subscription.
    pub fn batches(&self) -> bool {
        matches!(
            self,
            WriteOp::Visit { .. }
                | WriteOp::Language { .. }
                | WriteOp::Answer { .. }
                | WriteOp::Completed { .. }
                | WriteOp::End { .. }
                | WriteOp::Withdraw { .. }
        )
    }

    /// Performs the write, committed before it returns.
    ///
    /// Applying it again leaves the store as it was (exactly-once by natural
    /// keys, inside each write's own transaction): a node visit is one
    /// `(call, node)` row and counts only when inserted; a language or an answer
    /// equal to the stored one moves no count (`(call, question)` is unique, and
    /// the counts move by the difference); completion counts only when the flag
    /// flips; an end replaces the end and moves the `hung_up` count by the
    /// difference; a recording is one `(call, file)` row; subscribing is an
    /// upsert and unsubscribing a delete. So is replaying a whole sequence of one
    /// call's writes in order: each step lands on the state the sequence had
    /// reached, and the last one on the final state.
    ///
    /// The write is moved to the store, never copied: should it not be
    /// written, it comes back in the error ([`Unwritten`]).
    pub async fn apply(self, store: &Store) -> Result<(), Unwritten> {
        self.apply_within(store, None).await
    }

    /// [`WriteOp::apply`], given up after `within` if set, with an error that
    /// reads as the database away (the spool's direct writes).
    pub(super) async fn apply_within(
        self,
        store: &Store,
        within: Option<Duration>,
    ) -> Result<(), Unwritten> {
        // On the writer thread, which writes a call's progress, alone or with
        // the rest of a burst (`Store::apply_all`), a recording or a
        // subscription.
        store.lend(vec![self], within).await
    }

    /// Writes a subscription or an unsubscription (nothing for other writes).
    pub(super) async fn subscription(&self, store: &Store) -> Result<(), StoreError> {
        match self {
            WriteOp::Subscribe {
                campaign,
                caller,
                sealed,
                at,
                limit,
            } => {
                let sealed = hex::decode(sealed)
                    .map_err(|e| StoreError::BadValue(format!("sealed number: {e}")))?;
                let limit = limit.unwrap_or(u32::MAX);
                if !store
                    .callbacks()
                    .subscribe(campaign, caller, &sealed, limit, *at)
                    .await?
                {
                    tracing::warn!(%campaign, %caller, limit, "subscriber not kept: the campaign has its [callback] subscribers_per_campaign");
                }
                Ok(())
            }
            WriteOp::Unsubscribe {
                campaign,
                caller,
                at,
            } => store
                .callbacks()
                .unsubscribe(campaign, caller, *at)
                .await
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Whether this write stores a poll answer.
    pub fn is_answer(&self) -> bool {
        matches!(self, WriteOp::Answer { .. })
    }

    /// The call this write belongs to, if it belongs to one.
    pub fn call(&self) -> Option<CallRow> {
        match self {
            WriteOp::Visit { call, .. }
            | WriteOp::Language { call, .. }
            | WriteOp::Answer { call, .. }
            | WriteOp::Completed { call }
            | WriteOp::End { call, .. }
            | WriteOp::Withdraw { call }
            | WriteOp::Recording { call, .. } => Some(*call),
            WriteOp::Subscribe { .. } | WriteOp::Unsubscribe { .. } => None,
        }
    }
}

impl Store {
    /// Stores what `action` asks to store (see [`WriteOp::from_action`]) for call
    /// `call` at `at`; other actions store nothing. Returns true when an answer
    /// was stored.
    pub async fn store_action(
        &self,
        call: CallRow,
        action: &Action,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        match WriteOp::from_action(call, action, at) {
            Some(op) => {
                let answer = op.is_answer();
                op.apply(self).await?;
                Ok(answer)
            }
            None => Ok(false),
        }
    }
}
