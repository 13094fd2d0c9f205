//! The voice messages callers left, for broadcasters picking some for the next
//! programme: the list per campaign, and each recording's audio. Voices of
//! possibly trafficked people: both routes need a broadcaster token, and a
//! recording's file path is never sent.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use super::api::{find, json};
use super::{ApiError, ApiState, Auth, Role};

#[derive(Serialize)]
struct Item {
    id: i64,
    call: i64,
    node: String,
    /// The caller's pseudonym.
    caller: String,
    language: Option<String>,
    seconds: f64,
    created_at: chrono::DateTime<chrono::Utc>,
    audio: String,
}

/// `GET /api/campaigns/{id}/recordings`: newest first.
pub(super) async fn list(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let items: Vec<Item> = st
        .shared
        .store
        .recordings(&c.id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .into_iter()
        .map(|r| Item {
            audio: format!("/api/recordings/{}/audio", r.id),
            id: r.id,
            call: r.call,
            node: r.node,
            caller: r.caller,
            language: r.language,
            seconds: r.duration.as_secs_f64(),
            created_at: r.created_at,
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "campaign": c.id, "recordings": items }),
    ))
}

/// `GET /api/recordings/{rid}/audio`: the WAV file (8 kHz, 16-bit).
pub(super) async fn audio(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    Path(rid): Path<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let rid: i64 = rid
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{rid}` is not a recording id")))?;
    let r = st
        .shared
        .store
        .recording(rid)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no recording {rid}")))?;
    let bytes = tokio::fs::read(&r.file).await.map_err(|_| {
        ApiError::NotFound(format!("the audio of recording {rid} is no longer on disk"))
    })?;
    let mut response = Response::new(axum::body::Body::from(bytes));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}
