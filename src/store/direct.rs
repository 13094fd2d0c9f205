//! SQLite without the hop: a call's writes (its row, then its progress) run
//! on the writer thread itself, on a rusqlite connection of its own to the
//! same file, statement after statement, with no thread between them.
//!
//! sqlx runs every SQLite statement on the connection's own worker thread:
//! the caller sends it the statement and sleeps, the worker wakes, runs it,
//! sends the result back and wakes the caller. A call of
//! `benches/sip-load.sh` makes 53 statements in about 13 transactions (a
//! BEGIN and a COMMIT each), so about 80 such round trips, two thread
//! wake-ups each, for about a millisecond of SQLite's own work. Under `benches/sip-load.sh 500` the
//! worker and the writer thread were 29 % of kuma's profile samples, mostly
//! that waking and the softirq that landed on them meanwhile (issue 16). Here
//! a call's write costs the writer thread one wake-up, to take the job.
//!
//! The connection opens with the first such write and lives on the writer
//! thread's side (behind a mutex nobody else takes). The writes take their
//! turn on the writer's fair lock like every other SQLite write of this
//! process (`group.rs`), committing first the group left open there, so the
//! two connections never wait on each other's write lock; writers in other
//! processes are waited for by `busy_timeout`, cut to the caller's deadline
//! (the spool's), since nothing can cut a statement short once it runs.
//! Errors read as sqlx's do ([`StoreError::is_unavailable`]): a locked or
//! failing database is the database away, and the spool keeps the writes.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::group::unavailable;
use super::{SqliteBackend, StoreError};

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = super::open::SQLITE_BUSY_TIMEOUT;
/// Statements kept prepared: every statement a call's writes run, with room.
const CACHED_STATEMENTS: usize = 32;

/// The writer thread's own connection to the SQLite file.
pub(super) struct Direct {
    path: PathBuf,
    connection: Mutex<Slot>,
}

enum Slot {
    /// Until the first write.
    Unopened,
    Open(Connection),
    /// After [`Direct::close`]: writes fail as on a closed pool.
    Closed,
}

impl Direct {
    pub(super) fn new(path: PathBuf) -> Direct {
        Direct {
            path,
            connection: Mutex::new(Slot::Unopened),
        }
    }

    /// Closes the connection; later writes fail (as the store's pools do).
    pub(super) fn close(&self) {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Slot::Closed;
    }

    /// Runs `job` in a transaction (`BEGIN IMMEDIATE`) and commits it, on
    /// this thread; waits at most `busy` for another process's write lock.
    fn write<T>(
        &self,
        busy: Duration,
        job: impl FnOnce(&mut rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Poisoned only by a panic in a write (a bug), whose transaction was
        // rolled back when it unwound: the connection is fine.
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if matches!(*slot, Slot::Unopened) {
            *slot =
                Slot::Open(open(&self.path).map_err(|e| {
                    unavailable(format!("cannot open `{}`: {e}", self.path.display()))
                })?);
        }
        let Slot::Open(connection) = &mut *slot else {
            return Err(StoreError::Database(sqlx::Error::PoolClosed));
        };
        connection.busy_timeout(busy)?;
        let mut tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Dropped on failure: rolled back.
        let out = job(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// The connection, set as sqlx sets its own (`open.rs`); the file exists and
/// is migrated.
fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let _mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "secure_delete", true)?;
    connection.pragma_update(None, "journal_size_limit", super::open::SQLITE_WAL_KEPT)?;
    connection.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    Ok(connection)
}

/// Runs `job` in a write transaction on `db`'s direct connection, on this
/// thread, in its turn among the process's SQLite writes; `until` (the
/// caller's deadline) bounds the wait for another process's lock.
pub(super) async fn write<T>(
    db: &SqliteBackend,
    until: Option<Instant>,
    job: impl FnOnce(&mut rusqlite::Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let w = &db.writer;
    let mut open = w.turn.lock().await;
    // A group that waits for more writes of the sqlx connection is committed
    // now: its members settle on it (`Writer::settle`), and this connection
    // would wait on its write lock.
    open.commit().await;
    let busy = until.map_or(BUSY_TIMEOUT, |t| {
        t.saturating_duration_since(Instant::now())
            .min(BUSY_TIMEOUT)
    });
    let out = db.direct.write(busy, job);
    drop(open);
    out
}

/// The output of `write`, a future made of [`ProgressTx`](super::progress_tx::ProgressTx)
/// calls on a rusqlite transaction: each runs its statement before it returns,
/// so the future is ready at its first poll.
pub(super) fn now<T>(write: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let mut write = std::pin::pin!(write);
    match write.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => Err(StoreError::WriterThread(
            "a direct SQLite write waited for something (a bug): rolled back".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::store::{CountFilter, NewCall, NewRecording, Store, WriteOp};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    async fn store(dir: &tempfile::TempDir) -> (Store, PathBuf) {
        let path = dir.path().join("kuma.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        (store, path)
    }

    async fn call(store: &Store, caller: &str) -> i64 {
        store
            .start_call(&NewCall {
                campaign: "c",
                caller,
                channel: "sip",
                started_at: at(0),
                broadcast: None,
            })
            .await
            .unwrap()
    }

    /// Another process holds SQLite's write lock: a write with a deadline (the
    /// spool's) gives up at it, not after the 5 s busy timeout, with an error
    /// that reads as the database away and its writes handed back; once the
    /// lock is free they are written.
    #[tokio::test]
    async fn a_write_behind_another_process_lock_gives_up_at_its_deadline_with_its_ops() {
        let dir = tempfile::tempdir().unwrap();
        let (store, path) = store(&dir).await;
        let id = call(&store, "c_1").await;
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ops = vec![WriteOp::Completed { call: id }];
        let started = Instant::now();
        let unwritten = store
            .lend(ops.clone(), Some(Duration::from_millis(300)))
            .await
            .unwrap_err();
        let waited = started.elapsed();
        assert!(unwritten.error.is_unavailable(), "{}", unwritten.error);
        assert_eq!(unwritten.ops, ops);
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        store.lend(unwritten.ops, None).await.unwrap();
        let counts = store.counts("c", &CountFilter::default()).await.unwrap();
        assert_eq!((counts.calls, counts.completed), (1, 1));
    }

    /// The calls' progress (this connection) and the writes that stay on
    /// sqlx's writer connection (a recording), all at once, take their turns:
    /// none waits on the other's write lock, and everything is stored.
    #[tokio::test]
    async fn direct_and_sqlx_writes_at_once_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(&dir).await;
        let mut tasks = Vec::new();
        for n in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = call(&store, &format!("c_{n}")).await;
                let recording = NewRecording {
                    call: id,
                    node: "message",
                    file: "m.wav",
                    duration: Duration::from_secs(3),
                    at: at(1),
                };
                let recorded = store.add_recording(&recording);
                let progress = store.apply_all(vec![
                    WriteOp::Visit {
                        call: id,
                        node: "welcome".into(),
                    },
                    WriteOp::Language {
                        call: id,
                        language: "bm".into(),
                    },
                    WriteOp::Completed { call: id },
                ]);
                let (recorded, progress) = tokio::join!(recorded, progress);
                recorded.unwrap();
                progress.unwrap();
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("a write waited on the other connection's lock")
                .unwrap();
        }
        let counts = store.counts("c", &CountFilter::default()).await.unwrap();
        assert_eq!((counts.calls, counts.completed), (20, 20));
        assert_eq!(counts.languages, vec![("bm".to_string(), 20)]);
    }

    /// A closed store's writes fail as on its closed pools (the database
    /// away), and hand their writes back.
    #[tokio::test]
    async fn writes_after_close_fail_as_the_database_away() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(&dir).await;
        let id = call(&store, "c_1").await;
        store.close().await;
        let ops = vec![WriteOp::Completed { call: id }];
        let unwritten = store.lend(ops.clone(), None).await.unwrap_err();
        assert!(unwritten.error.is_unavailable(), "{}", unwritten.error);
        assert_eq!(unwritten.ops, ops);
    }

    /// A future that would wait is an error, never a hang or a panic.
    #[test]
    fn now_refuses_a_write_that_waits() {
        let out = now(async {
            std::future::pending::<()>().await;
            Ok(())
        });
        assert!(matches!(out, Err(StoreError::WriterThread(_))));
        assert_eq!(now(async { Ok(7) }).unwrap(), 7);
    }
}
