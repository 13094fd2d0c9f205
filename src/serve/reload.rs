//! Loading the campaigns folder again and swapping the catalog: what SIGHUP does,
//! and what a change saved from the web app does at once.
//!
//! Calls in progress keep the `Arc` of the catalog they started with, so a swap
//! changes only the calls that start after it. Reloads are one at a time: two
//! overlapping ones (a SIGHUP and a save) could otherwise finish out of order and
//! leave the older folder in place.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Catalog, Shared};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Loads `dir` (campaigns, prepared prompts) and swaps it in, unless no campaign
/// in it can take calls (then the previous catalog stays). Prints what loaded,
/// as at start-up. The catalog now served, or `None` when the reload failed.
pub async fn reload(shared: &Shared, dir: PathBuf) -> Option<Arc<Catalog>> {
    let _one = ONE_AT_A_TIME.lock().await;
    let data = shared.data.clone();
    match tokio::task::spawn_blocking(move || Catalog::load(&dir, &data)).await {
        Ok(c) if !c.is_empty() => {
            c.report();
            let c = Arc::new(c);
            match shared.catalog.write() {
                Ok(mut slot) => *slot = Arc::clone(&c),
                Err(poisoned) => *poisoned.into_inner() = Arc::clone(&c),
            }
            eprintln!("kuma serve: campaigns reloaded");
            Some(c)
        }
        Ok(c) => {
            c.report();
            eprintln!("kuma serve: reload refused: no valid campaign; keeping the previous ones");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "reload failed");
            None
        }
    }
}
