//! The results store: every call, answer and recording, and the counts analysts read.
//!
//! Two backends sit behind one [`Store`]: SQLite (the default, one file, nothing to
//! run) and PostgreSQL (for a station that already runs one, or several servers
//! sharing results). Both run the *same* SQL text (`sql.rs`, `$N` placeholders,
//! which SQLite accepts too); only the tables' DDL (`migrations/sqlite`,
//! `migrations/postgres`), the way a write transaction begins and one row lock
//! that only PostgreSQL needs differ.
//!
//! Results are counted when answers are written, not when they are read: each write
//! updates counter tables in the same transaction as the row it writes, so
//! [`Store::counts`] costs the same at a thousand answers or a million. Only a
//! question about a time range (`since`/`until`) reads raw rows, through indexes,
//! so its cost follows the rows in that range.
//!
//! Answers follow the campaign rule "asked again in the same call, the last answer
//! counts": a call keeps at most one answer per question, and replacing it moves
//! its counts (including the cross-tab pair counts) to the new choice.
//!
//! Callers are stored as pseudonyms (`crate::secret::Pseudonymizer`), never as
//! phone numbers.
//!
//! Layout: `open.rs` turns a URL into connected, migrated pools (and its errors into
//! one readable line); `writes.rs` records calls, answers, recordings and the nodes
//! calls reach; `reads.rs` answers counts, broadcasts and the CSV export;
//! `funnel.rs` reads the funnel; `sql.rs` holds the statements; `keys.rs` keeps
//! the secret's fingerprint and rotates it (the secret and the pseudonyms are
//! `crate::secret`); `forget.rs` erases a listener who asks to be forgotten;
//! `callbacks.rs` keeps the call-back queue ([`CallbackQueue`]); `webhooks.rs` the provider calls' state;
//! `flow.rs` turns the engine's actions into writes ([`WriteOp`]) and `spool.rs`
//! keeps them on disk while the database is away (`kuma serve`);
//! `writer_thread.rs` is the thread calls' writes run on, `group.rs` groups
//! SQLite writes into one transaction, `direct.rs` runs a call's writes on
//! SQLite without sqlx's worker thread, `pg_conn.rs` holds the connections
//! PostgreSQL writes run on, and `progress_tx.rs` is the transaction a
//! call's writes are written against, either backend.

pub mod callback_listing;
mod callbacks;
mod direct;
mod error;
mod flow;
mod forget;
mod funnel;
mod group;
mod keys;
mod open;
mod pg_conn;
mod progress_tx;
mod reads;
mod recordings;
pub mod spool;
mod sql;
mod tokens;
mod webhooks;
mod writer_thread;
mod writes;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use callbacks::{
    AttemptRow, CallbackCount, CallbackFilter, CallbackQueue, CallbackRow, Claimed, NewCallback,
};
pub use error::StoreError;
pub use flow::{Unwritten, WriteOp};
pub use forget::Forgotten;
pub use funnel::FunnelCounts;
pub use keys::{Joined, Keys, Rotated};
pub use open::redact_url;
pub use reads::AnswerStream;
pub use tokens::{PIN_TRIES, PIN_TRIES_ALL, PIN_WINDOW, PinCheck, PinKey, TokenInfo, Tokens};
pub use webhooks::{PendingFetch, SessionStep, WebhookSession};

/// The id of a call's row in the store (`calls.id`); not to be confused with
/// `crate::sip::CallId`, the SIP endpoint's handle on a call in progress.
pub type CallRow = i64;

/// A call that reached a campaign.
#[derive(Debug, Clone)]
pub struct NewCall<'a> {
    pub campaign: &'a str,
    /// The caller's pseudonym (see `crate::secret::Pseudonymizer`), never a phone number.
    pub caller: &'a str,
    /// "terminal", "sip", "africastalking", "twilio", "simulate"...
    pub channel: &'a str,
    pub started_at: DateTime<Utc>,
    /// Start of the broadcast whose poll window contains the call's start, if any.
    pub broadcast: Option<DateTime<Utc>>,
}

/// An answer to a poll question, stored (and committed) as soon as it is given.
#[derive(Debug, Clone)]
pub struct NewAnswer<'a> {
    pub call: CallRow,
    pub question: &'a str,
    pub choice: &'a str,
    pub digit: &'a str,
    pub at: DateTime<Utc>,
    /// The broadcast this answer is attributed to, if the poll has a schedule.
    pub broadcast: Option<DateTime<Utc>>,
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct CallEnd<'a> {
    pub ended_at: DateTime<Utc>,
    pub outcome: &'a str,
    pub last_node: Option<&'a str>,
}

/// A voice message left by a caller.
#[derive(Debug, Clone)]
pub struct NewRecording<'a> {
    pub call: CallRow,
    pub node: &'a str,
    pub file: &'a str,
    pub duration: std::time::Duration,
    pub at: DateTime<Utc>,
}

/// Which calls and answers [`Store::counts`] and [`Store::for_each_answer`] look at.
/// The default is everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountFilter<'a> {
    /// Only this broadcast (by its start time).
    pub broadcast: Option<DateTime<Utc>>,
    /// Only answers given (calls started) at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only answers given (calls started) before this time.
    pub until: Option<DateTime<Utc>>,
    /// Also cross-tabulate every question against this one.
    pub by: Option<&'a str>,
}

/// What [`Store::counts`] returns. Questions, choices and languages without any
/// answer or call do not appear; the results module fills them in from the campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: u64,
    pub completed: u64,
    /// Calls per chosen language, by language code.
    pub languages: Vec<(String, u64)>,
    /// Ordered by question, then choice.
    pub answers: Vec<ChoiceCount>,
    /// Filled only when [`CountFilter::by`] is set.
    pub by: Vec<PairCount>,
}

/// How many calls answered `question` with `choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceCount {
    pub question: String,
    pub choice: String,
    pub count: u64,
}

/// Of the calls that answered `question` with `choice`, how many answered the
/// [`CountFilter::by`] question with `by_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairCount {
    pub question: String,
    pub choice: String,
    pub by_choice: String,
    pub count: u64,
}

/// One broadcast that has calls or answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastSummary {
    pub at: DateTime<Utc>,
    pub calls: u64,
    pub answers: u64,
}

/// One stored answer, as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRow {
    pub call: CallRow,
    /// The caller's pseudonym.
    pub caller: String,
    pub language: Option<String>,
    pub question: String,
    pub choice: String,
    pub digit: String,
    pub answered_at: DateTime<Utc>,
    pub broadcast: Option<DateTime<Utc>>,
}

/// The results store. Cheap to clone: clones share the connection pools.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    /// Where calls' writes run (`writer_thread.rs`): started by the first of
    /// them, so that a store opened to read (`kuma results`, exports) starts
    /// no thread.
    writer: Arc<tokio::sync::OnceCell<writer_thread::WriterThread>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish()
    }
}

enum Backend {
    Sqlite(SqliteBackend),
    Postgres(pg_conn::PgBackend),
}

struct SqliteBackend {
    /// Reads (and exports) use this pool; writes go through `writer`.
    pool: sqlx::SqlitePool,
    /// One write transaction at a time from this process, on a connection of its
    /// own, with the writes that wait for their turn grouped into one transaction
    /// (`group.rs`). SQLite allows one writer anyway; queueing here is fair and
    /// wakes at once, where SQLite's busy handler would have our own connections
    /// poll and sleep against each other. `busy_timeout` still covers writers in
    /// other processes.
    writer: std::sync::Arc<group::Writer>,
    /// Where calls' own writes (their rows and progress) run, on the writer
    /// thread itself, in their turn on `writer` (`direct.rs`).
    direct: direct::Direct,
}

impl Store {
    /// Opens (creating if needed) the store at `url` — `sqlite://PATH` or
    /// `postgres://…` — and brings its tables up to date.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Ok(Self::opened(open::open(url, true).await?))
    }

    /// Opens the store at `url` as [`Store::open`] does, but a SQLite file
    /// that does not exist is [`StoreError::Missing`] rather than a new, empty
    /// database: for what reads or changes the database `kuma serve` writes,
    /// where a mistyped path (or the wrong working folder) must not read as "no
    /// calls yet".
    pub async fn open_existing(url: &str) -> Result<Store, StoreError> {
        Ok(Self::opened(open::open(url, false).await?))
    }

    fn opened(backend: Backend) -> Store {
        Store {
            backend: Arc::new(backend),
            writer: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The writer thread, started by the first write that needs it (the
    /// clones of this store share it); an error, not a panic, when it cannot
    /// be started.
    async fn writer(&self) -> Result<&writer_thread::WriterThread, StoreError> {
        self.writer
            .get_or_try_init(|| async {
                writer_thread::WriterThread::start()
                    .map_err(|e| StoreError::WriterThread(format!("cannot start it: {e}")))
            })
            .await
    }

    /// Runs the write `job` makes of a clone of this store on the writer thread
    /// (`writer_thread.rs`), and waits for its result.
    async fn on_writer<T, F>(&self, job: impl FnOnce(Store) -> F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        self.writer().await?.run(job(self.clone())).await
    }

    /// "sqlite" or "postgres".
    pub fn backend(&self) -> &'static str {
        match &*self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection; later calls on this store (and its clones) fail.
    pub async fn close(&self) {
        match &*self.backend {
            Backend::Sqlite(db) => {
                let turn = db.writer.turn.lock().await;
                db.direct.close();
                drop(turn);
                db.writer.pool.close().await;
                db.pool.close().await
            }
            Backend::Postgres(pg) => pg.close().await,
        }
    }
}

/// The counter key for "no broadcast": 0 rather than NULL, so unique keys work.
const NO_BROADCAST: i64 = 0;

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::BadValue(format!("time {ms} ms is out of range")))
}

fn count(n: i64) -> u64 {
    // Counters never go below zero; a negative one would be a bug, read as none.
    u64::try_from(n).unwrap_or(0)
}

/// Runs `$body` with `$pool` bound to this store's pool, whichever backend it is.
/// The body is written once and compiled once per backend.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &*$store.backend {
            $crate::store::Backend::Sqlite(db) => {
                let $pool = &db.pool;
                $body
            }
            $crate::store::Backend::Postgres(pg) => {
                let $pool = &pg.pool;
                $body
            }
        }
    };
}

/// Runs `$body` (a block whose value is the result; `?` works inside) in a write
/// transaction `$tx` and returns once that transaction is committed. On SQLite the
/// transaction begins with `BEGIN IMMEDIATE`, so it takes the write lock up front
/// and waits on `busy_timeout` rather than failing when a read lock would have to
/// be upgraded, and it may hold other writes of this process that waited for their
/// turn (`group.rs`: the body then runs in a savepoint, so that its failure undoes
/// it alone). On PostgreSQL a transaction that lost a deadlock or a serialization
/// conflict to another writer is run again (the body only touches the database).
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:block) => {
        match &*$store.backend {
            $crate::store::Backend::Sqlite(db) => {
                let w = &db.writer;
                let queued = w.queue();
                let mut open = w.turn.lock().await;
                drop(queued);
                let (group, first) = open.join(&w.pool).await?;
                // Commits the group should this write be dropped before it ends.
                let _settles = $crate::store::group::Settles::new(
                    ::std::sync::Arc::clone(w),
                    ::std::sync::Arc::clone(&group),
                );
                let out: Result<_, StoreError> = if first {
                    match open.group.take() {
                        // The group's first write, in the transaction itself: if it
                        // fails, dropping the transaction rolls back this write alone.
                        Some((g, mut $tx)) => {
                            let out: Result<_, StoreError> = async { Ok($body) }.await;
                            if out.is_ok() {
                                open.group = Some((g, $tx));
                            }
                            out
                        }
                        None => Err($crate::store::group::unavailable("no open transaction")),
                    }
                } else {
                    match open.group.as_mut() {
                        // A savepoint, released on success, rolled back when dropped
                        // on failure; the group's transaction stays where it is.
                        Some((_, outer)) => {
                            async {
                                let mut $tx = sqlx::Acquire::begin(&mut *outer).await?;
                                let value = $body;
                                $tx.commit().await?;
                                Ok(value)
                            }
                            .await
                        }
                        None => Err($crate::store::group::unavailable("no open transaction")),
                    }
                };
                w.close_unless_joined(&mut open).await;
                drop(open);
                match out {
                    Ok(value) => w.settle(&group).await.map(|()| value),
                    Err(e) => Err(e),
                }
            }
            $crate::store::Backend::Postgres(pg) => {
                $crate::store::pg_write_tx!(pg, |$tx| $body)
            }
        }
    };
}

/// The PostgreSQL side of [`write_tx!`]: `$body` in a transaction `$tx` on a
/// connection of `$pg` (a [`pg_conn::PgBackend`]; the connection is kept for
/// the next write once the transaction ended, closed if the write is cut
/// off), run again after a deadlock or a serialization conflict.
macro_rules! pg_write_tx {
    ($pg:expr, |$tx:ident| $body:block) => {{
        let pg = $pg;
        let mut attempt = 1u32;
        loop {
            let mut held = $crate::store::pg_conn::PgHeld::acquire(pg).await?;
            let kept = held.was_kept();
            let mut $tx = match sqlx::Connection::begin(held.conn()).await {
                Ok(tx) => tx,
                // A kept connection that died since its last write (the
                // server restarted): closed, and the write begins again on
                // one from the pool, which checks it (at most `KEPT` times).
                Err(error) if kept => {
                    tracing::debug!(%error, "a kept connection failed; taking one from the pool");
                    continue;
                }
                Err(error) => break Err(StoreError::from(error)),
            };
            let out: Result<_, StoreError> = async { Ok($body) }.await;
            let (out, ended) = match out {
                Ok(value) => match $tx.commit().await {
                    Ok(()) => (Ok(value), true),
                    Err(e) => (Err(StoreError::from(e)), false),
                },
                Err(e) => (Err(e), $tx.rollback().await.is_ok()),
            };
            if ended {
                held.ended();
            }
            match out {
                Err(e) if e.is_retryable() && attempt < $crate::store::PG_ATTEMPTS => {
                    tracing::debug!(attempt, "write conflict, running the transaction again");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt) * 5))
                        .await;
                }
                out => break out,
            }
        }
    }};
}

/// A write made of [`ProgressTx`](progress_tx::ProgressTx) calls (`$write`,
/// with the transaction `$tx`), in one transaction on the thread this runs on
/// (the writer thread): on SQLite through the direct connection (`direct.rs`),
/// its wait for another process's lock bounded by `$until`; on PostgreSQL in
/// [`pg_write_tx!`].
macro_rules! progress_write {
    ($store:expr, $until:expr, |$tx:ident| $write:expr) => {
        match &*$store.backend {
            $crate::store::Backend::Sqlite(db) => {
                $crate::store::direct::write(db, $until, |$tx| $crate::store::direct::now($write))
                    .await
            }
            $crate::store::Backend::Postgres(pg) => {
                $crate::store::pg_write_tx!(pg, |tx| {
                    let $tx = &mut tx;
                    $write.await?
                })
            }
        }
    };
}

/// How many times a PostgreSQL write transaction is tried before its conflict is
/// reported.
const PG_ATTEMPTS: u32 = 8;

use {pg_write_tx, progress_write, with_pool, write_tx};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn store_is_send_sync_and_clone() {
        assert_send_sync_clone::<Store>();
    }

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn every_future_is_send() {
        // Compile-time check: these futures can run inside `tokio::spawn`.
        assert_send(async move {
            // A borrowed URL that lives in the future itself, as in a spawned task.
            let url = String::from("sqlite://x");
            let store = Store::open(&url).await?;
            let _again = Store::open(&url).await?;
            let id = store
                .start_call(&NewCall {
                    campaign: "c",
                    caller: "c_0",
                    channel: "terminal",
                    started_at: Utc::now(),
                    broadcast: None,
                })
                .await?;
            store.set_language(id, "bm").await?;
            store
                .store_answer(&NewAnswer {
                    call: id,
                    question: "q",
                    choice: "yes",
                    digit: "1",
                    at: Utc::now(),
                    broadcast: None,
                })
                .await?;
            store.mark_completed(id).await?;
            let f = CountFilter::default();
            store.counts("c", &f).await?;
            store.broadcasts("c").await?;
            store.for_each_answer("c", &f, |_| Ok(())).await?;
            Ok::<_, StoreError>(())
        });
    }

    #[test]
    fn counts_never_go_negative() {
        assert_eq!(count(-3), 0);
        assert_eq!(count(7), 7);
    }

    #[test]
    fn times_round_trip_through_millis() {
        let t = DateTime::from_timestamp_millis(1_700_000_123_456).unwrap();
        assert_eq!(time(millis(t)).unwrap(), t);
        assert!(time(i64::MAX).is_err());
    }
}
