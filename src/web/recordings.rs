//! The voice messages callers left, for broadcasters picking some for the next
//! programme: the list per campaign, each recording's audio, and a broadcaster's
//! note on one (a short transcript, and "picked for the next programme"). Voices
//! of possibly trafficked people: every route needs a broadcaster token, and a
//! recording's file path is never sent.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::api::{find, json};
use super::{ApiError, ApiPath, ApiState, Auth, Role};

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
    note: String,
    picked: bool,
}

/// The longest note kept, in characters: a few sentences, not an essay.
pub(crate) const NOTE_MAX_CHARS: usize = 2000;

/// `GET /api/campaigns/{id}/recordings`: newest first.
pub(super) async fn list(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
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
            note: r.note,
            picked: r.picked,
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
    ApiPath(rid): ApiPath<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    note: String,
    picked: bool,
}

/// `PUT /api/recordings/{rid}` with `{"note": "…", "picked": true}`: saves a
/// broadcaster's note and pick. Only a JSON body is taken (a cross-site HTML form
/// cannot send one).
pub(super) async fn put_note(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(rid): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let rid: i64 = rid
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("`{rid}` is not a recording id")))?;
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err(ApiError::BadRequest(
            "send the note as JSON (Content-Type: application/json)".into(),
        ));
    }
    let body: NoteBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"note\": \"…\", \"picked\": true|false}}: {e}"
        ))
    })?;
    save_note(&st, rid, &body.note, body.picked).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "id": rid, "note": body.note.trim(), "picked": body.picked }),
    ))
}

/// Checks and stores a note; shared by the API and the recordings page's form.
pub(crate) async fn save_note(
    st: &ApiState,
    rid: i64,
    note: &str,
    picked: bool,
) -> Result<(), ApiError> {
    let note = note.trim();
    if note.chars().count() > NOTE_MAX_CHARS {
        return Err(ApiError::BadRequest(format!(
            "a note is at most {NOTE_MAX_CHARS} characters"
        )));
    }
    let found = st
        .shared
        .store
        .set_recording_note(rid, note, picked, chrono::Utc::now())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if found {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no recording {rid}")))
    }
}
