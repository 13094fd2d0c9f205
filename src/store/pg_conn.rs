//! The connections PostgreSQL write transactions run on ([`pg_write_tx!`]):
//! lent by the pool, kept warm between writes, closed when a write is cut off.
//!
//! sqlx's pool checks a connection with a round trip to the server each time
//! it lends one (`test_before_acquire`) and again each time one comes back
//! (always: its "band-aid" for futures dropped mid-statement). A call's
//! writes are about 14 short transactions (a BEGIN, two to seven statements,
//! a COMMIT), so those two checks were 28 of the 116 messages a call sent
//! the server under `benches/sip-load.sh` (issue 16). A connection whose transaction
//! ended is therefore kept here, out of the pool's reach, for the next write,
//! and lent again at once while it is fresh: used within [`FRESH_FOR`]. One
//! that waited longer is let go and the write takes one from the pool, which
//! checks it as before, so a connection that died while the node was quiet
//! (the server restarted, a firewall forgot it) is never the one a write is
//! given. Under load, writes come every few milliseconds and no check is
//! made; a quiet node pays what it paid before.
//!
//! Only a connection whose transaction ended is kept (committed, or rolled
//! back after its write failed): one whose `COMMIT` or `ROLLBACK` failed, or
//! whose write was cut off, is closed (below), so a connection is never kept
//! that sqlx could have left inside a transaction. One ended while [`KEPT`]
//! are kept goes back to the pool. Kept connections are still the pool's (it
//! counts them), and it has [`KEPT`] more than its readers need.
//!
//! A write cut off before its transaction ended (the spool's deadline on the
//! writer thread, or any caller that stops waiting for a write it runs
//! itself) closes its connection rather than returning it: sqlx counts a
//! transaction as begun only once it has read the server's answer to
//! `BEGIN`, and as ended once it has read the answer to `COMMIT`, so a write
//! cut off in between left the connection inside a transaction sqlx did not
//! know of, which the pool lent again, and a statement made on it outside a
//! transaction (a token created, a studio PIN's wrong tries) was not
//! committed until some later write on that connection committed, and was
//! lost if none did (seen under load: "there is already a transaction in
//! progress" in PostgreSQL's log). Closed, the server rolls back whatever the
//! write had begun (or keeps it, if its COMMIT had arrived: every write may
//! be applied again).
//!
//! [`pg_write_tx!`]: super::pg_write_tx

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

/// How long a kept connection is lent again without the pool's check.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(1);

/// Connections kept at most: more than the writes a node has in flight at
/// once on its writer thread (one or two at 1,000 calls). The pool is that
/// much larger, so that reads never wait for a connection kept here.
pub(super) const KEPT: usize = 4;

type Kept = Vec<(PoolConnection<Postgres>, Instant)>;

/// The PostgreSQL backend: its pool, and the write connections kept warm.
pub(crate) struct PgBackend {
    pub(super) pool: PgPool,
    kept: Mutex<Kept>,
}

impl PgBackend {
    pub(super) fn new(pool: PgPool) -> PgBackend {
        PgBackend {
            pool,
            kept: Mutex::new(Vec::with_capacity(KEPT)),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // The vector is consistent whatever panicked while it was held.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently kept connection if it is fresh. Stale ones go back
    /// to the pool (which checks them there), dropped here, on the caller's
    /// runtime.
    fn fresh(&self) -> Option<PoolConnection<Postgres>> {
        let mut kept = self.kept();
        let (conn, since) = kept.pop()?;
        if since.elapsed() <= FRESH_FOR {
            return Some(conn);
        }
        // The others were kept earlier still.
        kept.clear();
        None
    }

    /// Gives the kept connections back to the pool and closes it.
    pub(super) async fn close(&self) {
        self.kept().clear();
        self.pool.close().await;
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        // Perhaps outside any runtime, where a pool connection dropped would
        // spawn its return to the pool and panic: out of the pool, a
        // connection is only a socket, closed.
        let kept = std::mem::take(self.kept.get_mut().unwrap_or_else(PoisonError::into_inner));
        for (conn, _) in kept {
            drop(conn.detach());
        }
    }
}

/// A connection held for one write transaction ([`pg_write_tx!`]): kept
/// for the next write once [`PgHeld::ended`] (its transaction committed or
/// rolled back), closed if dropped before (the write was cut off, or its
/// connection failed).
///
/// [`pg_write_tx!`]: super::pg_write_tx
pub(crate) struct PgHeld<'a> {
    conn: Option<PoolConnection<Postgres>>,
    home: &'a PgBackend,
    kept: bool,
}

impl<'a> PgHeld<'a> {
    pub(crate) async fn acquire(home: &'a PgBackend) -> Result<PgHeld<'a>, sqlx::Error> {
        let (conn, kept) = match home.fresh() {
            Some(conn) => (conn, true),
            None => (home.pool.acquire().await?, false),
        };
        Ok(PgHeld {
            conn: Some(conn),
            home,
            kept,
        })
    }

    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        // `conn` is taken only by `ended`, which consumes `self`.
        self.conn.as_deref_mut().expect("a held connection")
    }

    /// Whether the connection was kept from an earlier write (and so not
    /// checked by the pool): a `BEGIN` that fails on it is tried again on
    /// one from the pool.
    pub(crate) fn was_kept(&self) -> bool {
        self.kept
    }

    /// The transaction committed or was rolled back: the connection is kept
    /// for the next write, or goes back to the pool if [`KEPT`] are kept
    /// already.
    pub(crate) fn ended(mut self) {
        if let Some(conn) = self.conn.take() {
            let mut kept = self.home.kept();
            if kept.len() < KEPT {
                kept.push((conn, Instant::now()));
            }
        }
    }
}

impl Drop for PgHeld<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            // Cut off before its transaction ended, or its connection failed.
            conn.close_on_drop();
        }
    }
}
