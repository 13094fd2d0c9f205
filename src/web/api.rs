//! The API handlers: campaigns, results and the answers export.
//!
//! Results and the export go through [`crate::results::compute`] and the CSV
//! columns of [`crate::results::write_csv`], the same code as `kuma results`; this
//! file only parses the query string, checks the role, masks small groups and
//! streams the export.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, ApiPath, ApiState, Auth, Role};
use crate::campaign::Campaign;
use futures_util::StreamExt;

use crate::results::{
    BroadcastSel, CSV_HEADER, Query, ResultsError, compute, count_filter, csv_record,
};
use crate::schedule::{Poll, describe};
use crate::store::CountFilter;

/// The CSV export is sent in chunks of about this many bytes.
const CSV_CHUNK: usize = 64 * 1024;

/// How many upcoming broadcasts the campaign routes show.
const NEXT_BROADCASTS: usize = 3;

/// A JSON response.
pub(super) fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec_pretty(body) {
        Ok(bytes) => typed(status, "application/json", bytes),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize an API response");
            typed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                br#"{"error": "internal error"}"#.to_vec(),
            )
        }
    }
}

fn typed(status: StatusCode, content_type: &'static str, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /api/campaigns`: every valid campaign with its next broadcasts and poll
/// state, and the problems of the files that do not validate.
pub(super) async fn campaigns(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let catalog = st.shared.catalog();
    let now = Utc::now();
    let campaigns: Vec<Value> = catalog
        .campaigns()
        .iter()
        .filter(|c| auth.scope.allows(&c.id))
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "title": c.title,
                "languages": c.languages,
                "numbers": c.numbers,
                "next_broadcasts": next_broadcasts(c, now),
                "poll": poll(c, now),
            })
        })
        .collect();
    // The problems name files: not for a token limited to some campaigns.
    let problems = if auth.scope.is_limited() {
        Vec::new()
    } else {
        catalog.problems()
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "campaigns": campaigns, "problems": problems }),
    ))
}

/// `GET /api/campaigns/{id}`: the definition, next broadcasts and poll state.
pub(super) async fn campaign(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let now = Utc::now();
    let definition = serde_json::to_value(&*c)
        .map_err(|e| ApiError::Internal(format!("campaign `{id}`: {e}")))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "campaign": definition,
            "next_broadcasts": next_broadcasts(&c, now),
            "poll": poll(&c, now),
        }),
    ))
}

/// `GET /api/campaigns/{id}/results`: the results JSON of `kuma results --format
/// json`, with small groups masked.
pub(super) async fn results(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let c = find(&st, &id)?;
    let q = query(&c, uri.query())?;
    let value = masked_results(&st, &c, &q).await?;
    Ok(json(StatusCode::OK, &value))
}

/// The results JSON as the API shows it: `kuma results`' JSON with small groups
/// masked ([`super::masking`]). Shared by `/results`, `/results/live` and the
/// pages.
pub(super) async fn masked_results(
    st: &ApiState,
    c: &Campaign,
    q: &Query,
) -> Result<Value, ApiError> {
    let r = compute(&st.shared.store, c, q)
        .await
        .map_err(results_error)?;
    let mut value = serde_json::to_value(&r)
        .map_err(|e| ApiError::Internal(format!("results of `{}`: {e}", c.id)))?;
    super::masking::mask_results(&mut value, st.small_group());
    Ok(value)
}

/// `GET /api/campaigns/{id}/answers.csv`: one row per answer, pseudonymous callers,
/// for admins only (see [`super::ROW_LEVEL`]).
///
/// Streamed: a task reads the rows from the store and sends them in chunks
/// through a small channel, so a large export holds a few chunks in memory, and a
/// slow client slows the reading rather than filling memory. A bad query is a
/// 400 before the first byte; a store failure half-way cuts the transfer short
/// (the status has gone out already), which the client sees as an incomplete
/// response, never as a complete file.
pub(super) async fn answers_csv(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(super::ROW_LEVEL)?;
    let c = find(&st, &id)?;
    let q = query(&c, uri.query())?;
    let f = count_filter(&st.shared.store, &c, &q)
        .await
        .map_err(results_error)?;
    let (broadcast, since, until) = (f.broadcast, f.since, f.until);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let store = st.shared.store.clone();
    let campaign = c.id.clone();
    tokio::spawn(async move {
        let f = CountFilter {
            broadcast,
            since,
            until,
            by: None,
        };
        let mut rows = store.answers(&campaign, &f);
        let mut w = csv::Writer::from_writer(Vec::with_capacity(CSV_CHUNK + 1024));
        let mut failed = w.write_record(CSV_HEADER).err().map(|e| e.to_string());
        while failed.is_none() {
            match rows.next().await {
                Some(Ok(row)) => {
                    if let Err(e) = w.write_record(csv_record(row)) {
                        failed = Some(e.to_string());
                    } else if w.get_ref().len() >= CSV_CHUNK {
                        let full = std::mem::replace(&mut w, csv::Writer::from_writer(Vec::new()));
                        match full.into_inner() {
                            Ok(chunk) => {
                                if tx.send(Ok(chunk)).await.is_err() {
                                    return; // The client went away.
                                }
                            }
                            Err(e) => failed = Some(e.to_string()),
                        }
                    }
                }
                Some(Err(e)) => failed = Some(e.to_string()),
                None => break,
            }
        }
        if let Some(e) = failed {
            tracing::error!(error = %e, "answers export stopped");
            let _ = tx.send(Err(std::io::Error::other(e))).await;
            return;
        }
        match w.into_inner() {
            Ok(rest) if !rest.is_empty() => {
                let _ = tx.send(Ok(rest)).await;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-answers.csv\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// A campaign the server has loaded (from the catalog that SIGHUP swaps), or 404.
pub(super) fn find(st: &ApiState, id: &str) -> Result<Arc<Campaign>, ApiError> {
    st.shared
        .catalog()
        .get(id)
        .map(|(c, _)| c)
        .ok_or_else(|| ApiError::NotFound(format!("unknown campaign `{id}`")))
}

/// The transcript beside a prompt's recording (`<prompt>.txt`), if there is one.
pub(super) async fn transcript(c: &Campaign, language: &str, prompt: &str) -> Option<String> {
    let file = c.audio_dir.join(language).join(format!("{prompt}.txt"));
    let text = tokio::fs::read_to_string(file).await.ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

pub(super) fn results_error(e: ResultsError) -> ApiError {
    match e {
        ResultsError::UnknownQuestion(..) | ResultsError::NoSuchBroadcast(_) => {
            ApiError::BadRequest(e.to_string())
        }
        ResultsError::Store(e) => ApiError::Internal(e.to_string()),
    }
}

/// `by`, `broadcast`, `since`, `until` from the query string, checked as `kuma
/// results` checks its flags.
pub(super) fn query(c: &Campaign, raw: Option<&str>) -> Result<Query, ApiError> {
    let mut q = Query::default();
    let tz = c
        .schedule
        .as_ref()
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::UTC);
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| ApiError::BadRequest(format!("bad percent-encoding in `{key}`")))?;
        let time = |what: &str| {
            crate::schedule::parse_time(&value, tz)
                .map_err(|e| ApiError::BadRequest(format!("bad {what}: {e}")))
        };
        match key {
            "by" => q.by = Some(value.clone()).filter(|v| !v.is_empty()),
            "broadcast" => {
                q.broadcast = Some(
                    value
                        .parse::<BroadcastSel>()
                        .map_err(|e| ApiError::BadRequest(format!("bad broadcast: {e}")))?,
                )
            }
            "since" => q.since = Some(time("since")?),
            "until" => q.until = Some(time("until")?),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown query parameter `{other}` (expected by, broadcast, since, until)"
                )));
            }
        }
    }
    Ok(q)
}

/// Decodes `%XX` and `+` in a query value; None if malformed or not UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Serialize)]
pub(super) struct Upcoming {
    at: String,
    pub(super) text: String,
}

pub(super) fn next_broadcasts(c: &Campaign, now: DateTime<Utc>) -> Vec<Upcoming> {
    c.schedule
        .as_ref()
        .map(|s| s.next_broadcasts(now, NEXT_BROADCASTS))
        .unwrap_or_default()
        .into_iter()
        .map(|t| Upcoming {
            at: t.to_rfc3339(),
            text: describe(t),
        })
        .collect()
}

/// `{"open": bool, "broadcast": time or null}`; a campaign without a schedule is
/// always open.
pub(super) fn poll(c: &Campaign, now: DateTime<Utc>) -> Value {
    let state = c
        .schedule
        .as_ref()
        .map(|s| s.poll(now))
        .unwrap_or(Poll::Open { broadcast: None });
    match state {
        Poll::Open { broadcast } => serde_json::json!({ "open": true, "broadcast": broadcast }),
        Poll::Closed => serde_json::json!({ "open": false, "broadcast": null }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("2026-12-01T19%3A30").as_deref(),
            Some("2026-12-01T19:30")
        );
        assert_eq!(percent_decode("a+b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
