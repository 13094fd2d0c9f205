//! `GET /api/campaigns/{id}/results/live`: Server-Sent Events with the results JSON,
//! for the presenter's screen while listeners call.
//!
//! One poller per campaign and query, however many clients watch it: it reads the
//! counters once a second and publishes the results when they changed, through a
//! `watch` channel that keeps only the latest value. So a hundred screens on the
//! same results cost the database what one does, and the connection pool the calls
//! write through stays free. A slow client holds no buffer: it skips to the latest
//! results when it reads again. The poller stops a second after its last client
//! left. Reading counters costs well under a millisecond whatever the number of
//! answers, and it sees answers written by every kuma process sharing the
//! database, not only this one.
//!
//! A poller keeps the campaign definition it started with; after a SIGHUP that
//! changed the campaign, screens that reconnect get the new one.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

use super::api::{find, masked_results, query};
use super::{ApiError, ApiState, Auth, Role};
use crate::campaign::Campaign;
use crate::results::Query;

/// How often a poller looks for new answers.
const EVERY: Duration = Duration::from_secs(1);

/// The pollers running now, by campaign and query string.
#[derive(Default)]
pub(crate) struct Pollers(Mutex<HashMap<String, watch::Sender<Arc<str>>>>);

impl Pollers {
    /// A receiver of the results for `key`, starting the poller if none runs.
    fn subscribe(
        &self,
        st: &Arc<ApiState>,
        key: String,
        campaign: Arc<Campaign>,
        query: Query,
        first: Arc<str>,
    ) -> watch::Receiver<Arc<str>> {
        let mut map = match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(tx) = map.get(&key) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(first);
        map.insert(key.clone(), tx.clone());
        tokio::spawn(poll(Arc::clone(st), key, campaign, query, tx));
        rx
    }

    /// Removes `key` if nobody watches it any more; true if removed. Checked under
    /// the lock that `subscribe` takes, so no client can join a stopping poller.
    fn leave_if_unwatched(&self, key: &str, tx: &watch::Sender<Arc<str>>) -> bool {
        let mut map = match self.0.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if tx.receiver_count() == 0 {
            map.remove(key);
            true
        } else {
            false
        }
    }
}

async fn poll(
    st: Arc<ApiState>,
    key: String,
    campaign: Arc<Campaign>,
    query: Query,
    tx: watch::Sender<Arc<str>>,
) {
    loop {
        tokio::time::sleep(EVERY).await;
        if st.live.leave_if_unwatched(&key, &tx) {
            return;
        }
        // The database busy or gone for a moment: try again next second.
        let Ok(value) = masked_results(&st, &campaign, &query).await else {
            continue;
        };
        let text = value.to_string();
        tx.send_if_modified(|last| {
            if **last == *text {
                false
            } else {
                *last = Arc::from(text);
                true
            }
        });
    }
}

fn results_event(json: &str) -> Event {
    Event::default().event("results").data(json)
}

pub(super) async fn results_live(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let campaign = find(&st, &id)?;
    let raw = uri.query().unwrap_or("");
    let query = query(&campaign, Some(raw))?;
    // The first results are computed here, so a bad query fails now as a 400,
    // not inside the stream.
    let first: Arc<str> = Arc::from(masked_results(&st, &campaign, &query).await?.to_string());
    let key = format!("{}?{raw}", campaign.id);
    let rx = st.live.subscribe(&st, key, campaign, query, first);
    let events = stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let text = Arc::clone(&rx.borrow_and_update());
        Some((Ok::<Event, Infallible>(results_event(&text)), (rx, false)))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
