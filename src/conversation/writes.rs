//! Performing a call's store writes, the same on every channel: the SIP shell
//! writes through the spool (`store::spool::SpooledStore`, so that a database
//! outage loses nothing), the providers' webhooks and the terminal simulator
//! straight to the store; all of them count what was written and forgive a lost
//! node visit here, in [`perform`], and nowhere else.

use std::future::Future;

use super::runtime::Write;
use crate::store::spool::{SpoolError, SpooledStore};
use crate::store::{Store, StoreError, WriteOp};

/// Where a channel's writes go.
pub trait Writer {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Commits `op` (or keeps it safe for later) before the future ends.
    fn write(&self, op: WriteOp) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl Writer for Store {
    type Error = StoreError;
    async fn write(&self, op: WriteOp) -> Result<(), StoreError> {
        Ok(op.apply(self).await?)
    }
}

impl Writer for SpooledStore {
    type Error = SpoolError;
    fn write(&self, op: WriteOp) -> impl Future<Output = Result<(), SpoolError>> + Send {
        SpooledStore::write(self, op)
    }
}

/// Performs `w` on `to`: once written it is counted (`Write::counter`); a node
/// visit that could not be written is logged and the call goes on (the funnel
/// is not worth dropping a caller for); any other failure is the error that
/// ends the call. The op is moved to the store, never copied.
pub async fn perform<W: Writer + Sync>(w: Write, to: &W) -> Result<(), W::Error> {
    let (counter, required) = (w.counter(), w.required());
    match to.write(w.op).await {
        Ok(()) => {
            counter.inspect(|c| c.increment(1));
            Ok(())
        }
        Err(e) if !required => {
            tracing::warn!(error = %e, "node visit not stored");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Performs a call's writes `ws`, in order, as [`perform`] does each, in one
/// transaction when the database takes them ([`SpooledStore::write_all`]: one
/// commit where each took its own); otherwise (the database away, a write
/// refused) one by one through [`perform`], which spools them, forgives a lost
/// node visit or fails, exactly as without the batch (nothing of a batch that
/// failed was stored, every write may be applied again, and the batch's writes
/// come back to be written one by one). Each op is moved, never copied.
pub async fn perform_all(ws: Vec<Write>, to: &SpooledStore) -> Result<(), SpoolError> {
    if ws.len() < 2 {
        for w in ws {
            perform(w, to).await?;
        }
        return Ok(());
    }
    let counters: Vec<metrics::Counter> = ws.iter().filter_map(Write::counter).collect();
    let ops: Vec<WriteOp> = ws.into_iter().map(|w| w.op).collect();
    match to.write_all(ops).await {
        Ok(()) => {
            counters.iter().for_each(|c| c.increment(1));
            Ok(())
        }
        // Lost with the job that held them (a bug): nothing to write one by one.
        Err(u) if u.ops.is_empty() => Err(u.error.into()),
        Err(u) => {
            for op in u.ops {
                perform(Write { op }, to).await?;
            }
            Ok(())
        }
    }
}
