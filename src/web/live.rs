//! `GET /api/campaigns/{id}/results/live`: Server-Sent Events with the results JSON,
//! for the presenter's screen while listeners call.
//!
//! One poller per campaign and query, however many clients watch it and however
//! the query is spelt (the key is the resolved filter: `broadcast=1` and
//! `broadcast=2026-11-24` naming the same broadcast, parameters in any order and
//! equal times written differently share one poller): it reads the
//! counters once a second and publishes the results when they changed, through a
//! `watch` channel that keeps only the latest value. So a hundred screens on the
//! same results cost the database what one does, and the connection pool the calls
//! write through stays free. A slow client holds no buffer: it skips to the latest
//! results when it reads again. The poller stops a second after its last client
//! left. Reading counters costs well under a millisecond whatever the number of
//! answers, and it sees answers written by every kuma process sharing the
//! database, not only this one.
//!
//! Distinct filters (every `since` a new one) would each start a poller, so at
//! most [`MAX_POLLERS`] run at once; a new one beyond that is refused with a
//! 503 until some stop.
//!
//! A stream ends within two seconds of its token being revoked: each stream
//! checks its token once a second, through a cache shared by the streams
//! ([`Pollers::token_valid`]), so a hundred screens on one token cost one
//! lookup a second, not a hundred. (The revocation may come from `kuma token
//! revoke` in another process, so the store is asked, not a channel.)
//!
//! A poller keeps the campaign definition it started with; after a SIGHUP that
//! changed the campaign, screens that reconnect get the new one.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

use super::api::{find, masked_results, query};
use super::{ApiError, ApiPath, ApiState, Auth, Role};
use crate::campaign::Campaign;
use crate::results::{Query, count_filter};

/// How often a poller looks for new answers, and a stream at its token.
const EVERY: Duration = Duration::from_secs(1);

/// How long a token check is trusted: with a check each [`EVERY`], a revoked
/// token's streams end within `EVERY + TOKEN_FRESH` (1.5 s).
const TOKEN_FRESH: Duration = Duration::from_millis(500);

/// The most pollers that run at once, whatever the campaigns and queries.
pub(crate) const MAX_POLLERS: usize = 64;

/// The pollers running now, by campaign and resolved filter, and the latest
/// token checks of the streams.
#[derive(Default)]
pub(crate) struct Pollers {
    running: Mutex<HashMap<String, watch::Sender<Arc<str>>>>,
    tokens: Mutex<HashMap<String, (Instant, bool)>>,
}

/// A lock that a panicking holder left poisoned is still good: the maps hold
/// no invariant a half-done update could break.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Pollers {
    /// A receiver of the results for `key`, starting the poller if none runs;
    /// a 503 if [`MAX_POLLERS`] run already.
    fn subscribe(
        &self,
        st: &Arc<ApiState>,
        key: String,
        campaign: Arc<Campaign>,
        query: Query,
        first: Arc<str>,
    ) -> Result<watch::Receiver<Arc<str>>, ApiError> {
        let mut map = lock(&self.running);
        if let Some(tx) = map.get(&key) {
            return Ok(tx.subscribe());
        }
        if map.len() >= MAX_POLLERS {
            return Err(ApiError::Unavailable(format!(
                "too many different live results are watched ({MAX_POLLERS}): watch one of them, or try again later"
            )));
        }
        let (tx, rx) = watch::channel(first);
        map.insert(key.clone(), tx.clone());
        tokio::spawn(poll(Arc::clone(st), key, campaign, query, tx));
        Ok(rx)
    }

    /// Removes `key` if nobody watches it any more; true if removed. Checked under
    /// the lock that `subscribe` takes, so no client can join a stopping poller.
    fn leave_if_unwatched(&self, key: &str, tx: &watch::Sender<Arc<str>>) -> bool {
        let mut map = lock(&self.running);
        if tx.receiver_count() == 0 {
            map.remove(key);
            true
        } else {
            false
        }
    }

    /// Whether the token with this hash still works, asked of the store at most
    /// once per [`TOKEN_FRESH`]. A store that does not answer for a moment
    /// keeps the streams open (the next check asks again).
    async fn token_valid(&self, st: &ApiState, hash: &str) -> bool {
        let now = Instant::now();
        if let Some((at, valid)) = lock(&self.tokens).get(hash)
            && now.duration_since(*at) < TOKEN_FRESH
        {
            return *valid;
        }
        let valid = match st.shared.store.tokens().role(hash).await {
            Ok(role) => role.is_some(),
            Err(_) => return true,
        };
        let mut tokens = lock(&self.tokens);
        // Old checks go: the map holds the tokens watched now, no more.
        tokens.retain(|_, (at, _)| now.duration_since(*at) < EVERY * 10);
        tokens.insert(hash.to_string(), (now, valid));
        valid
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
    ApiPath(id): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let campaign = find(&st, &id)?;
    let query = query(&campaign, uri.query())?;
    // The first results are computed here, so a bad query fails now as a 400,
    // not inside the stream.
    let first: Arc<str> = Arc::from(masked_results(&st, &campaign, &query).await?.to_string());
    let key = poller_key(&st, &campaign, &query).await?;
    let rx = st.live.subscribe(&st, key, campaign, query, first)?;
    let mut tick = tokio::time::interval(EVERY);
    // A client that reads slowly gets one check when it reads again, not a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watching = Watching {
        rx,
        first: true,
        tick,
        st: Arc::clone(&st),
        token_hash: auth.token_hash().to_string(),
    };
    let events = stream::unfold(watching, |mut w| async move {
        if !w.first {
            loop {
                tokio::select! {
                    changed = w.rx.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        break;
                    }
                    _ = w.tick.tick() => {
                        if !w.st.live.token_valid(&w.st, &w.token_hash).await {
                            return None;
                        }
                    }
                }
            }
        }
        w.first = false;
        let text = Arc::clone(&w.rx.borrow_and_update());
        Some((Ok::<Event, Infallible>(results_event(&text)), w))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// What one stream holds between two events.
struct Watching {
    rx: watch::Receiver<Arc<str>>,
    first: bool,
    tick: tokio::time::Interval,
    st: Arc<ApiState>,
    token_hash: String,
}

/// The poller's key: the campaign and the filter as the store reads it (the
/// broadcast resolved to its start, the times parsed), so that every spelling
/// of one query shares one poller.
async fn poller_key(st: &ApiState, c: &Campaign, q: &Query) -> Result<String, ApiError> {
    let f = count_filter(&st.shared.store, c, q)
        .await
        .map_err(super::api::results_error)?;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_micros());
    Ok(format!(
        "{}\n{:?}\n{:?}\n{:?}\n{:?}",
        c.id,
        f.by,
        time(f.broadcast),
        time(f.since),
        time(f.until)
    ))
}
