//! The API handlers: campaigns, results and the answers export.
//!
//! Results and the export go through [`crate::results::compute`] and
//! [`crate::results::write_csv`], the same code as `kuma results`; this file only
//! parses the query string, checks the role and masks small groups.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, ApiState, Auth, Role, SMALL_GROUP};
use crate::campaign::{Campaign, CampaignSet, load_folder};
use crate::results::{BroadcastSel, Query, ResultsError, compute, write_csv};
use crate::schedule::{Poll, describe};

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
    let set = load(&st).await?;
    let now = Utc::now();
    let mut list: Vec<&Campaign> = set.campaigns.iter().collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let campaigns: Vec<Value> = list
        .into_iter()
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
    let problems: Vec<String> = set.problems.iter().map(|p| p.to_string()).collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "campaigns": campaigns, "problems": problems }),
    ))
}

/// `GET /api/campaigns/{id}`: the definition, next broadcasts and poll state.
pub(super) async fn campaign(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let set = load(&st).await?;
    let c = find(&set, &id)?;
    let now = Utc::now();
    let definition =
        serde_json::to_value(c).map_err(|e| ApiError::Internal(format!("campaign `{id}`: {e}")))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "campaign": definition,
            "next_broadcasts": next_broadcasts(c, now),
            "poll": poll(c, now),
        }),
    ))
}

/// `GET /api/campaigns/{id}/results`: the results JSON of `kuma results --format
/// json`, with small breakdown cells masked.
pub(super) async fn results(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let set = load(&st).await?;
    let c = find(&set, &id)?;
    let q = query(c, uri.query())?;
    let value = masked_results(&st, c, &q).await?;
    Ok(json(StatusCode::OK, &value))
}

/// The results JSON as the API shows it: `kuma results`' JSON with small groups
/// masked. Shared by `/results` and `/results/live`.
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
    mask_small_groups(&mut value);
    Ok(value)
}

/// `GET /api/campaigns/{id}/answers.csv`: one row per answer, pseudonymous callers.
pub(super) async fn answers_csv(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let set = load(&st).await?;
    let c = find(&set, &id)?;
    let q = query(c, uri.query())?;
    let mut out = Vec::new();
    write_csv(&st.shared.store, c, &q, &mut out)
        .await
        .map_err(results_error)?;
    let mut response = typed(StatusCode::OK, "text/csv; charset=utf-8", out);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-answers.csv\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Reads the campaigns folder (off the async threads).
pub(super) async fn load(st: &ApiState) -> Result<CampaignSet, ApiError> {
    let dir = st.campaigns.clone();
    tokio::task::spawn_blocking(move || load_folder(&dir))
        .await
        .map_err(|e| ApiError::Internal(format!("loading the campaigns: {e}")))
}

pub(super) fn find<'a>(set: &'a CampaignSet, id: &str) -> Result<&'a Campaign, ApiError> {
    set.get(id)
        .ok_or_else(|| ApiError::NotFound(format!("unknown campaign `{id}`")))
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
fn percent_decode(s: &str) -> Option<String> {
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

/// Replaces every `by` cell below [`SMALL_GROUP`] with `"<5"`.
pub(super) fn mask_small_groups(results: &mut Value) {
    let Some(questions) = results.get_mut("questions").and_then(Value::as_array_mut) else {
        return;
    };
    let label = format!("<{SMALL_GROUP}");
    for question in questions {
        let Some(choices) = question.get_mut("choices").and_then(Value::as_array_mut) else {
            continue;
        };
        for choice in choices {
            let Some(by) = choice.get_mut("by").and_then(Value::as_object_mut) else {
                continue;
            };
            for cell in by.values_mut() {
                if cell.as_u64().is_some_and(|n| n < SMALL_GROUP) {
                    *cell = Value::String(label.clone());
                }
            }
        }
    }
}

#[derive(Serialize)]
struct Upcoming {
    at: String,
    text: String,
}

fn next_broadcasts(c: &Campaign, now: DateTime<Utc>) -> Vec<Upcoming> {
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
fn poll(c: &Campaign, now: DateTime<Utc>) -> Value {
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
    fn small_by_cells_are_masked_totals_are_not() {
        let mut v = serde_json::json!({
            "calls": 3,
            "questions": [{"id": "q", "answered": 3, "choices": [
                {"id": "yes", "digit": "1", "count": 3, "by": {"f": 2, "m": 5, "x": 0}}
            ]}]
        });
        mask_small_groups(&mut v);
        let c = &v["questions"][0]["choices"][0];
        assert_eq!(c["count"], 3);
        assert_eq!(c["by"]["f"], "<5");
        assert_eq!(c["by"]["m"], 5);
        assert_eq!(c["by"]["x"], "<5");
        assert_eq!(v["calls"], 3);
    }

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
