//! Group commit on SQLite: the write transactions of this process that wait for
//! their turn go into one SQLite transaction, committed once (issue 16: a commit
//! and its `BEGIN` were about half of the store's CPU under load, and calls' writes
//! come in bursts).
//!
//! Every write keeps its promise: [`write_tx!`](super::write_tx) returns only after
//! the transaction holding it was committed (or with the error that stopped it), so
//! an answer is durable before the call goes on, as before. Writes are applied in
//! the order they got their turn (a fair lock), so one call's writes, made one
//! after the other, stay in order. A write that fails (an unknown call) leaves the
//! others of its group untouched: after the first, each write runs in its own
//! savepoint, rolled back alone. When the commit itself fails, every write of the
//! group gets an error that [`StoreError::is_unavailable`] reads as "the database is
//! away", so the spool keeps them and applies them again (every write is
//! idempotent, `spool.rs`).
//!
//! How a group forms: a write takes its turn, begins the transaction if none is
//! open, applies itself and, if another write is already waiting for a turn (and
//! the group is not full), leaves the transaction open for it and waits; the last
//! write of the group commits. A waiting write that is dropped (its call ended)
//! never strands a group: each member that finds its group still open when it gets
//! the lock again commits it.
//!
//! All writes use one connection of their own (a pool of one), whose page cache
//! stays warm: in WAL mode a connection drops its cache whenever another connection
//! wrote, so rotating writes over the read pool re-read the same pages each time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::{Sqlite, Transaction};

use super::StoreError;

/// Writes in one transaction at most (a bound on how long a write waits).
pub(super) const MAX_GROUP: usize = 64;

/// The writer's side of the SQLite backend.
pub(super) struct Writer {
    /// The connection writes use (`max_connections(1)`).
    pub(super) pool: sqlx::SqlitePool,
    /// The open transaction and its group, behind a fair lock: a write's turn.
    pub(super) turn: tokio::sync::Mutex<Open>,
    /// Writes waiting for their first turn.
    queued: AtomicUsize,
}

/// The transaction open for a group, if any.
#[derive(Default)]
pub(super) struct Open {
    pub(super) group: Option<(Arc<Group>, Transaction<'static, Sqlite>)>,
}

/// One transaction's writes: how it ended, once it has.
#[derive(Default)]
pub(super) struct Group {
    /// `Err` holds the commit's error, as text (every member gets a copy).
    done: OnceLock<Result<(), String>>,
    size: AtomicUsize,
}

/// Counts a write waiting for its first turn while it lives (a dropped write
/// stops counting).
pub(super) struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Writer {
    pub(super) fn new(pool: sqlx::SqlitePool) -> Writer {
        Writer {
            pool,
            turn: tokio::sync::Mutex::new(Open::default()),
            queued: AtomicUsize::new(0),
        }
    }

    /// Marks a write as waiting for its first turn.
    pub(super) fn queue(&self) -> Queued<'_> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        Queued(&self.queued)
    }

    /// After a write applied itself in `open`: commits the group unless another
    /// write waits to join it (and it has room).
    pub(super) async fn close_unless_joined(&self, open: &mut Open) {
        let full = open
            .group
            .as_ref()
            .is_some_and(|(g, _)| g.size.load(Ordering::Relaxed) >= MAX_GROUP);
        if full || self.queued.load(Ordering::Acquire) == 0 {
            open.commit().await;
        }
    }

    /// Waits until `group` has ended (committing it if it is still open when this
    /// write gets the lock again) and says how.
    pub(super) async fn settle(&self, group: &Group) -> Result<(), StoreError> {
        if group.done.get().is_none() {
            let mut open = self.turn.lock().await;
            if open
                .group
                .as_ref()
                .is_some_and(|(g, _)| std::ptr::eq(Arc::as_ptr(g), group))
            {
                open.commit().await;
            }
        }
        match group.done.get() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(unavailable(format!("the group commit failed: {e}"))),
            // Its transaction was dropped before it committed (a commit cut short):
            // rolled back.
            None => Err(unavailable(
                "the write's transaction was rolled back before it committed",
            )),
        }
    }
}

impl Open {
    /// The group open now, beginning one (`BEGIN IMMEDIATE`) if none is; `true`
    /// when this write is its first.
    pub(super) async fn join(
        &mut self,
        pool: &sqlx::SqlitePool,
    ) -> Result<(Arc<Group>, bool), StoreError> {
        let first = self.group.is_none();
        if first {
            let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            self.group = Some((Arc::new(Group::default()), tx));
        }
        let (g, _) = self
            .group
            .as_ref()
            .ok_or_else(|| unavailable("no open transaction"))?;
        g.size.fetch_add(1, Ordering::Relaxed);
        Ok((Arc::clone(g), first))
    }

    /// Commits the open group, if any, and records how it ended for its members.
    pub(super) async fn commit(&mut self) {
        if let Some((g, tx)) = self.group.take() {
            let out = tx.commit().await.map_err(|e| e.to_string());
            let _ = g.done.set(out);
        }
    }
}

/// An error the spool takes as the database being away.
pub(super) fn unavailable(why: impl Into<String>) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(why.into())))
}
