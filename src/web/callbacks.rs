//! `GET /api/campaigns/{id}/callbacks`: a campaign's call-back queue: the newest
//! call-backs with every attempt, as `kuma callbacks --format json` lists them,
//! and the counts of the whole queue per status and kind. Both come from
//! [`crate::outbound::listing`], which the CLI and the campaign page use too.
//!
//! Callers are pseudonyms; no number, sealed or not, is ever read here. Still,
//! the listing is one row per caller with their times, so the route needs an
//! admin token ([`super::ROW_LEVEL`]); analysts see the counts on the campaign
//! page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;

use super::api::{find, json, percent_decode};
use super::{ApiError, ApiPath, ApiState, Auth};
use crate::outbound::Status;
use crate::store::CallbackFilter;
use crate::store::callback_listing::{self as listing, Entry, Summary};

/// How many call-backs a listing shows unless `limit` says otherwise.
const DEFAULT_LIMIT: u32 = 200;
/// The most a listing shows: the page and the API stay quick on a long queue.
const MAX_LIMIT: u32 = 1000;

/// The JSON of the route.
#[derive(Serialize)]
pub(crate) struct Queue {
    pub campaign: String,
    /// The whole queue, whatever `status` and `limit` pick.
    pub summary: Summary,
    /// The newest call-backs first.
    pub callbacks: Vec<Entry>,
}

pub(super) async fn list(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(super::ROW_LEVEL)?;
    let c = find(&st, &id)?;
    let (status, limit) = parse_query(uri.query())?;
    let queue = queue(&st, &c.id, status, limit).await?;
    Ok(json(StatusCode::OK, &queue))
}

/// The queue of campaign `id` as the route serves it.
pub(crate) async fn queue(
    st: &ApiState,
    id: &str,
    status: Option<Status>,
    limit: u32,
) -> Result<Queue, ApiError> {
    let store = &st.shared.store;
    let filter = CallbackFilter {
        campaign: Some(id),
        status,
        limit: Some(limit),
    };
    let internal = |e: crate::store::StoreError| ApiError::Internal(e.to_string());
    Ok(Queue {
        campaign: id.to_string(),
        summary: listing::summary(store, id).await.map_err(internal)?,
        callbacks: listing::entries(store, &filter).await.map_err(internal)?,
    })
}

/// `status` and `limit` from the query string.
fn parse_query(raw: Option<&str>) -> Result<(Option<Status>, u32), ApiError> {
    let mut status = None;
    let mut limit = DEFAULT_LIMIT;
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| ApiError::BadRequest(format!("bad percent-encoding in `{key}`")))?;
        match key {
            "status" if value.is_empty() => status = None,
            "status" => {
                status = Some(Status::parse(&value).filter(|s| *s != Status::Ringing).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "bad status `{value}` (expected queued, dialing, answered, busy, no_answer, failed, cancelled or refused)"
                    ))
                })?)
            }
            "limit" => {
                limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "bad limit `{value}` (expected a number from 1 to {MAX_LIMIT})"
                        ))
                    })?
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}` (expected status, limit)"
                )));
            }
        }
    }
    Ok((status, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(raw: &str) -> String {
        match parse_query(Some(raw)) {
            Err(ApiError::BadRequest(e)) => e,
            other => panic!("{raw}: {other:?}"),
        }
    }

    #[test]
    fn status_and_limit_are_checked() {
        assert_eq!(parse_query(None).unwrap(), (None, DEFAULT_LIMIT));
        assert_eq!(
            parse_query(Some("status=no_answer&limit=1000")).unwrap(),
            (Some(Status::NoAnswer), 1000)
        );
        assert_eq!(parse_query(Some("status=&limit=1")).unwrap(), (None, 1));
        assert!(bad("status=ringing").contains("bad status"));
        assert!(bad("status=late").contains("bad status `late`"));
        assert!(bad("limit=0").contains("1 to 1000"));
        assert!(bad("limit=1001").contains("1 to 1000"));
        assert!(bad("limit=-3").contains("bad limit"));
        assert!(bad("by=q_gender").contains("unknown query parameter `by`"));
    }
}
