//! What can go wrong in the results store, each as one line an operator can act on.
//!
//! Every URL that appears in a message has gone through [`redact_url`] first, so a
//! database password never reaches a log or a terminal.

use std::path::PathBuf;

use super::CallRow;
use super::open::redact_url;

/// An error from the results store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend the store knows.
    #[error("unsupported database URL `{0}`: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),

    /// The SQLite file's folder does not exist and cannot be made.
    #[error("cannot open `{url}`: cannot create the folder `{}`: {source}", folder.display())]
    CreateFolder {
        url: String,
        folder: PathBuf,
        source: std::io::Error,
    },

    /// The SQLite file does not exist, and the command only reads or changes
    /// what is there (see [`Store::open_existing`](super::Store::open_existing)).
    #[error("no database at `{url}`")]
    Missing { url: String },

    /// The database cannot be reached or opened (server down, bad password,
    /// unwritable file...). `reason` says which, in words.
    #[error("cannot open `{url}`: {reason}")]
    Open { url: String, reason: String },

    /// The schema could not be brought up to date.
    #[error("cannot prepare the tables in `{url}`: {reason}")]
    Migrate { url: String, reason: String },

    /// A query failed after the store was opened.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// A query failed on the writer thread's own SQLite connection (`direct.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// A write named a call that was never started in this store.
    #[error("no call {0} in the results store")]
    UnknownCall(CallRow),

    /// A stored value cannot be what the store wrote (for example a time out of range).
    #[error("unexpected value in the results store: {0}")]
    BadValue(String),

    /// The pseudonym secret is unusable.
    #[error("{0}")]
    Secret(String),

    /// The pseudonym secret cannot be loaded.
    #[error(transparent)]
    SecretFile(#[from] crate::secret::SecretError),

    /// A recording or a subscription handed to [`Store::apply_all`](super::Store::apply_all)
    /// with other writes: those are written alone.
    #[error("a recording or a subscription is written alone, not in a batch of writes")]
    NotBatched,

    /// The thread the calls' writes run on (`writer_thread.rs`) could not be
    /// started, or a write was lost with the job that held it (a bug).
    #[error("the store's writer thread: {0}")]
    WriterThread(String),

    /// The consumer of [`Store::for_each_answer`](super::Store::for_each_answer)
    /// stopped the export (for example its output file could not be written).
    #[error("export stopped: {0}")]
    Export(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub(super) fn unsupported(url: &str) -> Self {
        StoreError::UnsupportedUrl(redact_url(url))
    }

    /// True for the PostgreSQL errors after which the same transaction may simply be
    /// run again: a deadlock with another writer or a serialization failure.
    pub(super) fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40P01") | Some("40001"))
            }
            _ => false,
        }
    }

    /// True when the database could not be reached or could not take the write
    /// for a reason of its own (server down or restarting, connection lost,
    /// pool exhausted, disk full, SQLite locked or failing I/O): the same write
    /// may succeed later, so `kuma serve` spools it. False for the errors the
    /// write itself causes (an unknown call, a constraint), which no retry cures.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            StoreError::Database(e) => e,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                return sqlite_unavailable(e.extended_code);
            }
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code();
                let code = code.as_deref().unwrap_or("");
                // PostgreSQL: connection_exception (08…), operator_intervention
                // (57…: admin or crash shutdown, cannot connect now),
                // insufficient_resources (53…), system_error (58…).
                ["08", "57", "53", "58"].iter().any(|c| code.starts_with(c))
                    || code.parse::<i32>().is_ok_and(sqlite_unavailable)
            }
            _ => false,
        }
    }
}

/// SQLite's (extended) result codes that say the database, not the write, is
/// the trouble (primary code in the low byte): BUSY 5, LOCKED 6, IOERR 10,
/// FULL 13.
fn sqlite_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 10 | 13)
}
