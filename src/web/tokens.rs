//! `/api/tokens`: the admin's token management over HTTP, the same rules as
//! `kuma token create|list|revoke`. A new token is shown once, in the response
//! that creates it; only its SHA-256 is stored, and neither is ever listed.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json as json_value};

use super::api::json;
use super::{ApiError, ApiPath, ApiState, Auth, Role, new_token, token_hash};
use crate::store::TokenInfo;

/// The longest token name accepted (names show in lists and logs of who did what).
const MAX_NAME: usize = 100;

fn info(t: &TokenInfo) -> Value {
    json_value!({
        "name": t.name,
        "role": t.role,
        "created_at": t.created_at,
        "revoked_at": t.revoked_at,
        "campaigns": t.campaigns,
        "studio_pin": t.studio_pin,
    })
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// `GET /api/tokens`: every token, oldest first.
pub(super) async fn list(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
) -> Result<Response, ApiError> {
    auth.require(Role::Admin)?;
    let tokens = st.shared.store.tokens().list().await.map_err(store_error)?;
    let tokens: Vec<Value> = tokens.iter().map(info).collect();
    Ok(json(StatusCode::OK, &json_value!({ "tokens": tokens })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
}

/// `POST /api/tokens`: `{"name", "role"}` → 201 with the token, shown this once.
pub(super) async fn create(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Admin)?;
    let req: NewToken = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "a token needs a name of 1 to {MAX_NAME} printable characters"
        )));
    }
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "bad role `{}`: analyst, broadcaster or admin",
            req.role
        ))
    })?;
    let token = new_token().map_err(|e| ApiError::Internal(format!("random token: {e}")))?;
    let now = Utc::now();
    if !st
        .shared
        .store
        .tokens()
        .create(name, role.as_str(), &token_hash(&token), now)
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::Conflict(format!(
            "a token named `{name}` exists already"
        )));
    }
    let mut r = json(
        StatusCode::CREATED,
        &json_value!({
            "name": name,
            "role": role.as_str(),
            "created_at": now,
            "revoked_at": null,
            "token": token,
        }),
    );
    // The token is in this body only: no cache may keep it.
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `DELETE /api/tokens/{name}`: stops the token at once. Not the request's
/// own token (409): an admin who revoked it from the browser would be locked
/// out of the web pages at once, with no admin token left to make another
/// unless someone opens a terminal. Another admin token, or `kuma token
/// revoke`, does it (a leaked token: make a new one, then revoke the old with it).
pub(super) async fn revoke(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Admin)?;
    let own = st
        .shared
        .store
        .tokens()
        .name(auth.token_hash())
        .await
        .map_err(store_error)?;
    if own.as_deref() == Some(name.as_str()) {
        return Err(ApiError::Conflict(format!(
            "`{name}` is the token of this request: revoke it with another admin token, \
             or with kuma token revoke"
        )));
    }
    if !st
        .shared
        .store
        .tokens()
        .revoke(&name, Utc::now())
        .await
        .map_err(store_error)?
    {
        return Err(ApiError::NotFound(format!(
            "no token named `{name}` that still works"
        )));
    }
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}
