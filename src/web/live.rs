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

use super::api::{find, load, mask_small_groups, query, results_error};
use super::{ApiError, ApiState, Auth, Role};
use crate::campaign::Campaign;
use crate::results::{Query, compute};

/// How often a stream looks for new answers.
const EVERY: Duration = Duration::from_secs(1);

struct Live {
    st: Arc<ApiState>,
    campaign: Campaign,
    query: Query,
    last: Option<String>,
    first: bool,
}

pub(super) async fn results_live(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let set = load(&st).await?;
    let campaign = find(&set, &id)?.clone();
    let query = query(&campaign, uri.query())?;
    // A bad query must fail now, as a 400, not inside the stream.
    compute(&st.shared.store, &campaign, &query)
        .await
        .map_err(results_error)?;
    let live = Live {
        st,
        campaign,
        query,
        last: None,
        first: true,
    };
    let events = stream::unfold(live, |mut live| async move {
        loop {
            if !live.first {
                tokio::time::sleep(EVERY).await;
            }
            live.first = false;
            let Ok(r) = compute(&live.st.shared.store, &live.campaign, &live.query).await else {
                // The database is busy or gone for a moment: try again next second.
                continue;
            };
            let Ok(mut value) = serde_json::to_value(&r) else {
                continue;
            };
            mask_small_groups(&mut value);
            let text = value.to_string();
            if live.last.as_deref() != Some(text.as_str()) {
                live.last = Some(text.clone());
                let event = Event::default().event("results").data(text);
                return Some((Ok::<Event, Infallible>(event), live));
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
