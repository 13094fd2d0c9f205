//! What the webhook channels (`crate::webhook`, served by `crate::serve`) keep
//! between two HTTP requests of one call, and the provider recordings still to be
//! fetched.
//!
//! A provider call is a series of independent requests that may land on any kuma
//! process, so the flow engine's state lives in `webhook_sessions`, keyed by
//! provider and session id. Each step is written with an optimistic check on the
//! row's `seq`: a step computed from a state that another request has already
//! moved on is refused, so a replayed or reordered request never applies twice.
//!
//! Every write here runs on the store's writer thread (`writer_thread.rs`), as a
//! SIP call's do: each provider request of a call reads and writes its session,
//! and its transaction must not wait for the runtime that serves the requests.
//! A call's start (its session claimed, its row) is written by the same code
//! on both backends (`progress_tx::ProgressTx`), its row by the same function
//! as a SIP call's.

use chrono::{DateTime, Utc};

use super::progress_tx::{Arg::*, ProgressTx};
use super::writes::insert_call;
use super::{
    CallRow, NewCall, Store, StoreError, millis, progress_write, sql, time, with_pool, write_tx,
};

/// One call's stored webhook state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSession {
    pub call: CallRow,
    pub campaign: String,
    /// The engine's [`crate::flow::Call`] as JSON.
    pub state: String,
    /// Steps applied so far (1 after the call's first request).
    pub seq: i64,
    /// The last reply sent (XML), for a replayed request.
    pub reply: String,
    pub finished: bool,
}

/// A step's outcome to write: the engine's new state and the reply sent.
#[derive(Debug, Clone, Copy)]
pub struct SessionStep<'a> {
    pub state: &'a str,
    pub reply: &'a str,
    pub finished: bool,
    pub at: DateTime<Utc>,
}

/// A [`SessionStep`] that owns its text, to be handed to the writer thread.
struct Step {
    state: String,
    reply: String,
    finished: bool,
    at: DateTime<Utc>,
}

impl Step {
    fn of(step: &SessionStep<'_>) -> Step {
        Step {
            state: step.state.to_owned(),
            reply: step.reply.to_owned(),
            finished: step.finished,
            at: step.at,
        }
    }

    fn borrow(&self) -> SessionStep<'_> {
        SessionStep {
            state: &self.state,
            reply: &self.reply,
            finished: self.finished,
            at: self.at,
        }
    }
}

/// A provider call to start ([`Store::start_webhook_call`]), owned, to be
/// handed to the writer thread.
struct NewWebhookCall {
    campaign: String,
    caller: String,
    channel: String,
    started_at: i64,
    broadcast: Option<i64>,
    provider: String,
    session: String,
    step: Step,
}

impl NewWebhookCall {
    /// Claims the session and, if this request was the first to, stores and
    /// counts the call (the same SQL as a SIP call's row: `insert_call`) and
    /// ties it to the session.
    async fn write<T: ProgressTx>(&self, tx: &mut T) -> Result<Option<CallRow>, StoreError> {
        let (provider, session, step) = (self.provider.as_str(), self.session.as_str(), &self.step);
        let claimed: Option<(i64,)> = tx
            .row(
                CLAIM_SESSION,
                &[
                    Text(provider),
                    Text(session),
                    Text(&self.campaign),
                    Text(&step.state),
                    Text(&step.reply),
                    Bool(step.finished),
                    Int(millis(step.at)),
                ],
            )
            .await?;
        if claimed.is_none() {
            return Ok(None);
        }
        let call = (
            self.campaign.as_str(),
            self.caller.as_str(),
            self.channel.as_str(),
        );
        let id = insert_call(tx, call, self.started_at, self.broadcast).await?;
        tx.execute(SET_SESSION_CALL, &[Text(provider), Text(session), Int(id)])
            .await?;
        Ok(Some(id))
    }
}

/// A provider recording waiting to be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFetch {
    pub id: i64,
    pub call: CallRow,
    pub campaign: String,
    pub node: String,
    pub url: String,
    pub provider: String,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
}

const SESSION: &str = "\
    SELECT call, campaign, state, seq, reply, finished FROM webhook_sessions \
    WHERE provider = $1 AND session = $2";

/// Claims the session; no row back when another request already did.
/// $1 provider, $2 session, $3 campaign, $4 state, $5 reply, $6 finished, $7 updated_at
const CLAIM_SESSION: &str = "\
    INSERT INTO webhook_sessions (provider, session, campaign, call, state, seq, reply, finished, updated_at) \
    VALUES ($1, $2, $3, NULL, $4, 1, $5, $6, $7) \
    ON CONFLICT (provider, session) DO NOTHING RETURNING seq";

const SET_SESSION_CALL: &str =
    "UPDATE webhook_sessions SET call = $3 WHERE provider = $1 AND session = $2";

/// $1 provider, $2 session, $3 expected seq, $4 state, $5 reply, $6 finished, $7 updated_at
const ADVANCE_SESSION: &str = "\
    UPDATE webhook_sessions SET seq = seq + 1, state = $4, reply = $5, finished = $6, updated_at = $7 \
    WHERE provider = $1 AND session = $2 AND seq = $3 AND NOT finished";

/// $1 call, $2 node, $3 url, $4 provider, $5 created_at → id
const ADD_FETCH: &str = "\
    INSERT INTO recording_fetches (call, node, url, provider, status, attempts, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) RETURNING id";

const PENDING_FETCHES: &str = "\
    SELECT f.id, f.call, c.campaign, f.node, f.url, f.provider, f.attempts, f.created_at \
    FROM recording_fetches f JOIN calls c ON c.id = f.call \
    WHERE f.status = 'pending' ORDER BY f.id";

/// $1 id: the one fetch, if it is still pending.
const PENDING_FETCH: &str = "\
    SELECT f.id, f.call, c.campaign, f.node, f.url, f.provider, f.attempts, f.created_at \
    FROM recording_fetches f JOIN calls c ON c.id = f.call \
    WHERE f.status = 'pending' AND f.id = $1";

/// A row of [`PENDING_FETCHES`] or [`PENDING_FETCH`].
type FetchRow = (i64, i64, String, String, String, String, i64, i64);

fn pending_fetch(row: FetchRow) -> Result<PendingFetch, StoreError> {
    let (id, call, campaign, node, url, provider, attempts, created) = row;
    Ok(PendingFetch {
        id,
        call,
        campaign,
        node,
        url,
        provider,
        attempts,
        created_at: time(created)?,
    })
}

/// $1 id, $2 error, $3 status, $4 updated_at
const FETCH_FAILED: &str = "\
    UPDATE recording_fetches SET attempts = attempts + 1, last_error = $2, status = $3, updated_at = $4 \
    WHERE id = $1 AND status = 'pending'";

/// $1 id, $2 recording, $3 updated_at; no row back when it was not pending.
const FETCH_DONE: &str = "\
    UPDATE recording_fetches SET attempts = attempts + 1, status = 'done', recording = $2, \
        last_error = NULL, updated_at = $3 \
    WHERE id = $1 AND status = 'pending' RETURNING call";

const FETCH_STATUS: &str = "SELECT status FROM recording_fetches WHERE id = $1";

type SessionRowTuple = (Option<i64>, String, String, i64, String, bool);

impl Store {
    /// The stored state of a provider's call, if it is known.
    pub async fn webhook_session(
        &self,
        provider: &str,
        session: &str,
    ) -> Result<Option<WebhookSession>, StoreError> {
        let row: Option<SessionRowTuple> = with_pool!(self, |pool| {
            sqlx::query_as(SESSION)
                .bind(provider)
                .bind(session)
                .fetch_optional(pool)
                .await?
        });
        // `call` is set in the transaction that claims the row: never seen NULL.
        Ok(
            row.and_then(|(call, campaign, state, seq, reply, finished)| {
                Some(WebhookSession {
                    call: call?,
                    campaign,
                    state,
                    seq,
                    reply,
                    finished,
                })
            }),
        )
    }

    /// Starts a provider call: claims its session and stores (and counts) the call
    /// in one transaction. `None` when the session was already claimed (the
    /// provider sent its first request twice): nothing is written then, so the
    /// call is counted once. On SQLite it is written on the writer thread
    /// itself (`direct.rs`), as a SIP call's row is.
    pub async fn start_webhook_call(
        &self,
        c: &NewCall<'_>,
        provider: &str,
        session: &str,
        step: &SessionStep<'_>,
    ) -> Result<Option<CallRow>, StoreError> {
        let call = NewWebhookCall {
            campaign: c.campaign.to_owned(),
            caller: c.caller.to_owned(),
            channel: c.channel.to_owned(),
            started_at: millis(c.started_at),
            broadcast: c.broadcast.map(millis),
            provider: provider.to_owned(),
            session: session.to_owned(),
            step: Step::of(step),
        };
        self.on_writer(
            move |store| async move { progress_write!(store, None, |tx| call.write(tx)) },
        )
        .await
    }

    /// Writes one step of a call whose stored `seq` was `from_seq`; false (and
    /// nothing written) when another request moved the call on first or it has
    /// finished.
    pub async fn advance_webhook_session(
        &self,
        provider: &str,
        session: &str,
        from_seq: i64,
        step: &SessionStep<'_>,
    ) -> Result<bool, StoreError> {
        let (provider, session, step) = (provider.to_owned(), session.to_owned(), Step::of(step));
        self.on_writer(move |store| async move {
            let step = step.borrow();
            let updated = with_pool!(store, |pool| {
                sqlx::query(ADVANCE_SESSION)
                    .bind(&provider)
                    .bind(&session)
                    .bind(from_seq)
                    .bind(step.state)
                    .bind(step.reply)
                    .bind(step.finished)
                    .bind(millis(step.at))
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            Ok(updated == 1)
        })
        .await
    }

    /// Remembers a recording the provider announced by URL, before any fetch, so
    /// that it is never lost; returns its id.
    pub async fn add_recording_fetch(
        &self,
        call: CallRow,
        node: &str,
        url: &str,
        provider: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let (node, url, provider) = (node.to_owned(), url.to_owned(), provider.to_owned());
        self.on_writer(move |store| async move {
            Ok(with_pool!(store, |pool| {
                sqlx::query_scalar(ADD_FETCH)
                    .bind(call)
                    .bind(&node)
                    .bind(&url)
                    .bind(&provider)
                    .bind(millis(at))
                    .fetch_one(pool)
                    .await?
            }))
        })
        .await
    }

    /// Every recording still to fetch, oldest first.
    pub async fn pending_fetches(&self) -> Result<Vec<PendingFetch>, StoreError> {
        let rows: Vec<FetchRow> = with_pool!(self, |pool| {
            sqlx::query_as(PENDING_FETCHES).fetch_all(pool).await?
        });
        rows.into_iter().map(pending_fetch).collect()
    }

    /// The fetch `id` as it is now, if it is still pending.
    pub async fn pending_fetch(&self, id: i64) -> Result<Option<PendingFetch>, StoreError> {
        let row: Option<FetchRow> = with_pool!(self, |pool| {
            sqlx::query_as(PENDING_FETCH)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(pending_fetch).transpose()
    }

    /// Counts a failed try; with `give_up` the fetch is no longer retried (the row
    /// stays, with its URL and the error, for an operator).
    pub async fn fetch_failed(
        &self,
        id: i64,
        error: &str,
        give_up: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let status = if give_up { "failed" } else { "pending" };
        let error = error.to_owned();
        self.on_writer(move |store| async move {
            with_pool!(store, |pool| {
                sqlx::query(FETCH_FAILED)
                    .bind(id)
                    .bind(&error)
                    .bind(status)
                    .bind(millis(at))
                    .execute(pool)
                    .await?;
            });
            Ok(())
        })
        .await
    }

    /// The fetch's status: `pending`, `done` or `failed`.
    pub async fn fetch_status(&self, id: i64) -> Result<Option<String>, StoreError> {
        Ok(with_pool!(self, |pool| {
            sqlx::query_scalar(FETCH_STATUS)
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The fetched audio is on disk: adds its `recordings` row and marks the fetch
    /// done, in one transaction (a crash between the two cannot store it twice).
    /// `None` when the fetch was no longer pending.
    pub async fn fetch_done(
        &self,
        id: i64,
        node: &str,
        file: &str,
        duration: std::time::Duration,
        at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let now = millis(at);
        let (node, file) = (node.to_owned(), file.to_owned());
        self.on_writer(move |store| async move {
            store
                .fetch_done_here(id, &node, &file, duration_ms, now)
                .await
        })
        .await
    }

    /// What [`Store::fetch_done`] does, on the thread this runs on (the writer
    /// thread).
    async fn fetch_done_here(
        &self,
        id: i64,
        node: &str,
        file: &str,
        duration_ms: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        write_tx!(self, |tx| {
            let call: Option<CallRow> = sqlx::query_scalar(FETCH_DONE)
                .bind(id)
                .bind(0_i64)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            match call {
                None => None,
                Some(call) => {
                    let rid: i64 = sqlx::query_scalar(sql::ADD_RECORDING)
                        .bind(call)
                        .bind(node)
                        .bind(file)
                        .bind(duration_ms)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE recording_fetches SET recording = $2 WHERE id = $1")
                        .bind(id)
                        .bind(rid)
                        .execute(&mut *tx)
                        .await?;
                    Some(rid)
                }
            }
        })
    }
}
