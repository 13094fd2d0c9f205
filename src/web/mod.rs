//! The HTTP JSON API for broadcasters and analysts, mounted by `kuma serve` next to
//! `/healthz` and `/metrics` (see `openapi.yaml` at the repository root), and the
//! web pages built on it (`pages/`).
//!
//! Access is by bearer token (`Authorization: Bearer kuma_…`, made by `kuma token
//! create`), or the same token in the pages' login cookie (`kuma_token`,
//! `HttpOnly`, `SameSite=Strict`; a request that changes something with the
//! cookie alone must also carry a same-host `Origin`). Only the token's SHA-256 is stored, and a request's token is hashed
//! and looked up on every request, so a revoked token stops working at once (and
//! its live results streams end within two seconds, see `live.rs`).
//! Tokens are never logged. Each route names the least [`Role`] it needs:
//! `analyst` reads results (aggregates, masked), `broadcaster` also the
//! campaigns, recordings and the simulator, `admin` also the rows with one line
//! per caller ([`ROW_LEVEL`]: answers.csv, the FLOIP rows, the call-back
//! listing) and the tokens.
//!
//! Errors are JSON, `{"error": "…"}`: 401 without a working token, 403 for a role
//! too small, 404 for an unknown campaign, 400 for a bad query value (with the same
//! words as `kuma results`).
//!
//! Small groups: the results (also live and on the pages) and the funnel are
//! masked on the way out by [`masking`] (`small_group` in kuma.toml, default
//! [`SMALL_GROUP`]; 0 or 1 turns it off): small breakdown cells and funnel
//! counts read `"<5"`, cells that would let one be computed from the totals
//! read `"masked"`, and a filter matching fewer calls than the threshold shows
//! no counts at all. The masking is not done in [`crate::results::compute`], so
//! `kuma results` on the server itself still shows the exact numbers.
//!
//! Layout: this file holds the router, the roles, tokens and the auth extractor;
//! `api.rs` the campaigns, results and the CSV export; `masking.rs` what
//! analysts may see of the counts; `funnel.rs`,
//! `flow_results.rs` (the FLOIP export), `callbacks.rs` (the call-back queue),
//! `simulate.rs` (the browser's call simulator), `audio.rs` (prompts for
//! browsers and voice providers), `recordings.rs`, `live.rs` and `tokens.rs` one
//! route family each.

mod api;
mod audio;
mod callbacks;
mod flow_results;
mod funnel;
mod live;
mod masking;
pub mod pages;
mod prompts;
mod recordings;
pub mod scope;
mod simulate;
mod studio;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, Catalogs};
use crate::secret::Pseudonymizer;
use crate::store::Store;

pub use crate::results::SMALL_GROUP;

/// The role that reads rows with one line per caller or answer (answers.csv, the
/// FLOIP rows, the call-back listing). A pseudonym with a time, a language and
/// every answer identifies a caller to anyone who knows when a neighbour
/// called, and such rows undo the masking of small groups, so analysts, who
/// read the aggregates, do not get them.
pub const ROW_LEVEL: Role = Role::Admin;

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Role {
    /// Results and exports.
    Analyst,
    /// Also the campaigns, recordings and the simulator.
    Broadcaster,
    /// Everything, including tokens over HTTP.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Broadcaster => "broadcaster",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "analyst" => Some(Role::Analyst),
            "broadcaster" => Some(Role::Broadcaster),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A new random token: `kuma_` and 32 random bytes in hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("kuma_{}", hex::encode(bytes)))
}

/// What the store keeps of a token: its SHA-256, in hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What the API handlers share.
pub struct ApiState {
    /// The store and the campaign catalog of `kuma serve`.
    pub shared: Arc<Context>,
    /// Signs the simulator's sessions; derived from the server secret.
    pub(crate) session_key: simulate::SessionKey,
    /// The live results pollers, shared by every client of the same results.
    pub(crate) live: live::Pollers,
    /// Prompts already encoded to MP3.
    pub(crate) mp3: audio::Mp3Cache,
}

/// What the web app needs of the server it runs in, and nothing more (so that
/// `web` does not depend on `serve`): built by `kuma serve`.
pub struct Context {
    pub store: Store,
    pub pseudonyms: Pseudonymizer,
    /// The campaigns, which SIGHUP swaps (never read from disk per request).
    pub catalogs: Arc<Catalogs>,
    /// Breakdown cells below this are masked (0 or 1: nothing is).
    pub small_group: u64,
    /// kuma's data folder: the prompts' cache, and the history of campaign files
    /// changed from the web app.
    pub data: std::path::PathBuf,
}

impl Context {
    /// The campaigns as they are now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalogs.current()
    }

    /// Loads the campaigns folder `dir` again and serves it (see
    /// [`Catalogs::reload`]).
    pub async fn reload(&self, dir: std::path::PathBuf) -> Option<Arc<Catalog>> {
        self.catalogs.reload(dir, self.data.clone()).await
    }
}

impl ApiState {
    /// Breakdown cells below this are masked (0 or 1: nothing is).
    pub fn small_group(&self) -> u64 {
        self.shared.small_group
    }
}

/// The `/api` routes and the prompt audio, ready to merge into `kuma serve`'s
/// router.
pub fn router(context: Context) -> Router {
    let shared = Arc::new(context);
    let session_key = simulate::SessionKey::derive(&shared.pseudonyms);
    let state = Arc::new(ApiState {
        shared,
        session_key,
        live: live::Pollers::default(),
        mp3: audio::Mp3Cache::default(),
    });
    Router::new()
        .route("/api/campaigns", get(api::campaigns).post(studio::create))
        .route(
            "/api/campaigns/{id}/schedule",
            get(studio::schedule).put(studio::put_schedule),
        )
        .route(
            "/api/campaigns/{id}/schedule/check",
            post(studio::check_schedule),
        )
        .route(
            "/api/campaigns/{id}/source",
            get(studio::source).put(studio::put_source),
        )
        .route("/api/campaigns/{id}/prompts", get(prompts::list))
        .route(
            "/api/campaigns/{id}/prompts/{lang}/{prompt}",
            put(prompts::put).layer(axum::extract::DefaultBodyLimit::max(prompts::MAX_UPLOAD)),
        )
        .route(
            "/api/campaigns/{id}/prompts/{lang}/{prompt}/transcript",
            put(prompts::put_transcript),
        )
        .route(
            "/api/campaigns/{id}/nodes/{node}",
            put(studio::put_node).delete(studio::delete_node),
        )
        .route("/api/campaigns/{id}/history", get(studio::history))
        .route(
            "/api/campaigns/{id}/history/{version}",
            get(studio::history_version),
        )
        .route(
            "/api/campaigns/{id}/history/{version}/restore",
            post(studio::restore),
        )
        .route("/api/campaigns/{id}", get(api::campaign))
        .route("/api/campaigns/{id}/results", get(api::results))
        .route("/api/campaigns/{id}/results/live", get(live::results_live))
        .route("/api/campaigns/{id}/answers.csv", get(api::answers_csv))
        .route("/api/campaigns/{id}/funnel", get(funnel::funnel))
        .route("/api/campaigns/{id}/callbacks", get(callbacks::list))
        .route(
            "/api/campaigns/{id}/flow-results",
            get(flow_results::descriptor),
        )
        .route(
            "/api/campaigns/{id}/flow-results/data",
            get(flow_results::data),
        )
        .route("/api/campaigns/{id}/simulate", post(simulate::simulate))
        .route("/api/campaigns/{id}/recordings", get(recordings::list))
        .route("/api/recordings/{rid}/audio", get(recordings::audio))
        .route("/api/tokens", get(tokens::list).post(tokens::create))
        .route("/api/tokens/{name}", delete(tokens::revoke))
        .route("/audio/{campaign}/{lang}/{file}", get(audio::prompt))
        .route("/api/recordings/{rid}", put(recordings::put_note))
        .merge(pages::routes())
        .with_state(state)
}

/// An API error: its status and the reason, sent as `{"error": "…"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A bound was reached (503); the client may try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The details are logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = api::json(status, &serde_json::json!({ "error": self.to_string() }));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kuma\""),
            );
        }
        response
    }
}

/// The role of the request's bearer token, checked against the store, and the
/// token's hash (for a long response that must end when the token is revoked).
#[derive(Clone)]
pub struct Auth {
    pub role: Role,
    token_hash: String,
    /// The campaigns the token reaches (already checked against the path).
    pub scope: scope::Scope,
}

impl Auth {
    /// Ok if the token's role includes `needed`, else 403.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs a {} token (yours is {})",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// The SHA-256 of the token, as the store keeps it.
    pub(crate) fn token_hash(&self) -> &str {
        &self.token_hash
    }
}

/// A path parameter, as [`axum::extract::Path`] reads it, but refused as a
/// JSON 400 when it does not decode (`/api/campaigns/%FF`): every error of the
/// API is JSON, axum's own rejection is plain text.
pub(crate) struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| ApiPath(t))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// The cookie the web pages keep the token in (set by `POST /login`).
pub const TOKEN_COOKIE: &str = "kuma_token";

/// The request's token: the bearer header first, else the login cookie (the
/// pages, and `EventSource`, which cannot send headers). `Ok(None)`: neither.
pub(crate) fn request_token(parts: &Parts) -> Result<Option<(String, bool)>, ApiError> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "bad Authorization header: expected `Bearer TOKEN`",
            ))?;
        return Ok(Some((token.to_string(), false)));
    }
    Ok(cookie(parts, TOKEN_COOKIE)
        .filter(|t| !t.is_empty())
        .map(|t| (t.to_string(), true)))
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie<'p>(parts: &'p Parts, name: &str) -> Option<&'p str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Cross-site request forgery guard for requests that change something and are
/// authenticated by the cookie alone. The cookie is `SameSite=Strict`, so
/// browsers do not send it with requests started by another site; on top of
/// that, such a request must carry an `Origin` header naming this very host
/// (browsers send it with every `fetch` PUT/POST and form POST). Bearer-token
/// requests cannot be forged by a page, so they are not checked.
pub(crate) fn same_origin(parts: &Parts) -> bool {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|h| h.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

/// The role of a token, or None if unknown or revoked.
pub(crate) async fn token_role(st: &ApiState, token: &str) -> Result<Option<Role>, ApiError> {
    let role = st
        .shared
        .store
        .tokens()
        .role(&token_hash(token))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match role {
        None => Ok(None),
        Some(role) => Role::parse(&role)
            .map(Some)
            .ok_or_else(|| ApiError::Internal(format!("stored token has unknown role `{role}`"))),
    }
}

impl FromRequestParts<Arc<ApiState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let (token, from_cookie) = request_token(parts)?.ok_or(ApiError::Unauthorized(
            "missing token: send `Authorization: Bearer TOKEN` (kuma token create)",
        ))?;
        let role = token_role(state, &token)
            .await?
            .ok_or(ApiError::Unauthorized("unknown or revoked token"))?;
        let token_hash = token_hash(&token);
        let safe = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
        );
        if from_cookie && !safe && !same_origin(parts) {
            return Err(ApiError::Forbidden(
                "a request that changes something must come from kuma's own pages (Origin) or carry a bearer token".into(),
            ));
        }
        let scope = scope::of(state, &token_hash).await?;
        scope.check(state, &parts.method, parts.uri.path()).await?;
        Ok(Auth {
            role,
            token_hash,
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().method("PUT").uri("/api/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_token_comes_from_the_header_first_then_the_cookie() {
        let p = parts(&[("cookie", "kuma_lang=fr; kuma_token=kuma_c")]);
        assert_eq!(request_token(&p).unwrap(), Some(("kuma_c".into(), true)));
        let p = parts(&[
            ("authorization", "Bearer kuma_h"),
            ("cookie", "kuma_token=kuma_c"),
        ]);
        assert_eq!(request_token(&p).unwrap(), Some(("kuma_h".into(), false)));
        assert_eq!(
            request_token(&parts(&[("cookie", "kuma_token=")])).unwrap(),
            None
        );
        assert!(request_token(&parts(&[("authorization", "Basic x")])).is_err());
    }

    #[test]
    fn only_an_origin_naming_this_host_is_the_same_origin() {
        let ok = parts(&[
            ("host", "radio.example:8080"),
            ("origin", "http://radio.example:8080"),
        ]);
        assert!(same_origin(&ok));
        let https = parts(&[
            ("host", "radio.example"),
            ("origin", "https://radio.example"),
        ]);
        assert!(same_origin(&https));
        let other = parts(&[("host", "radio.example"), ("origin", "http://evil.example")]);
        assert!(!same_origin(&other));
        let prefix = parts(&[
            ("host", "radio.example"),
            ("origin", "http://radio.example.evil"),
        ]);
        assert!(!same_origin(&prefix));
        assert!(!same_origin(&parts(&[("host", "radio.example")])));
    }
}
