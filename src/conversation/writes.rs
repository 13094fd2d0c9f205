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
        op.apply(self).await
    }
}

impl Writer for SpooledStore {
    type Error = SpoolError;
    fn write(&self, op: WriteOp) -> impl Future<Output = Result<(), SpoolError>> + Send {
        SpooledStore::write(self, op)
    }
}

/// Performs `w` on `to`: once written it is counted (`Write::count`); a node
/// visit that could not be written is logged and the call goes on (the funnel
/// is not worth dropping a caller for); any other failure is the error that
/// ends the call.
pub async fn perform<W: Writer + Sync>(w: Write, to: &W) -> Result<(), W::Error> {
    match to.write(w.op.clone()).await {
        Ok(()) => {
            w.count();
            Ok(())
        }
        Err(e) if !w.required() => {
            tracing::warn!(error = %e, "node visit not stored");
            Ok(())
        }
        Err(e) => Err(e),
    }
}
