//! `GET /api/campaigns/{id}/results/live`: Server-Sent Events with the results JSON,
//! for the presenter's screen while listeners call.
//!
//! Each client's stream reads the counters once a second and sends the results
//! when they changed (and once at the start). Reading counters costs well under a
//! millisecond whatever the number of answers, and it sees answers written by every
//! kuma process sharing the database, not only this one. A slow client holds no
//! buffer: the next results are computed only when the previous ones were taken.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::api::{find, masked_results, query};
use super::{ApiError, ApiState, Auth, Role};
use crate::campaign::Campaign;
use crate::results::Query;

/// How often a stream looks for new answers.
const EVERY: Duration = Duration::from_secs(1);

struct Live {
    st: Arc<ApiState>,
    campaign: Arc<Campaign>,
    query: Query,
    /// The last results sent.
    last: String,
    /// Results computed but not sent yet.
    first: Option<String>,
}

fn results_event(json: String) -> Event {
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
    let query = query(&campaign, uri.query())?;
    // The first results are computed here, so a bad query fails now as a 400,
    // not inside the stream; they are also the stream's first event.
    let first = masked_results(&st, &campaign, &query).await?.to_string();
    let live = Live {
        st,
        campaign,
        query,
        last: first.clone(),
        first: Some(first),
    };
    let events = stream::unfold(live, |mut live| async move {
        if let Some(text) = live.first.take() {
            return Some((Ok::<Event, Infallible>(results_event(text)), live));
        }
        loop {
            tokio::time::sleep(EVERY).await;
            // The database busy or gone for a moment: try again next second.
            let Ok(value) = masked_results(&live.st, &live.campaign, &live.query).await else {
                continue;
            };
            let text = value.to_string();
            if text != live.last {
                live.last = text.clone();
                return Some((Ok(results_event(text)), live));
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
