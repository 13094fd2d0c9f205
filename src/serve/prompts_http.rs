//! `GET /audio/CAMPAIGN/LANG/PROMPT.EXT`: the prepared prompts over HTTP, for the
//! voice providers that fetch what they play by URL (the webhook channels build
//! these URLs from the public URL).
//!
//! `.wav` is the 8 kHz µ-law WAV (the very bytes a SIP caller hears), `.mp3` the
//! same audio as 8 kHz MP3 for providers that prefer it. Prompts are public: they
//! are what any caller hears. Each answer has an ETag (a hash of the prepared
//! audio, so it changes when a reload changes the prompt) and a short
//! `Cache-Control`, and `If-None-Match` gets 304. Encoded files are kept in memory:
//! a provider fetches the same few prompts for every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::Shared;
use crate::audio::export::{G711, encode_mp3, g711_wav_bytes};
use crate::audio::g711::ulaw_decode;

/// Encoded files kept, at most (beyond it the cache starts again empty).
const CACHE_ENTRIES: usize = 2000;

struct PromptState {
    shared: Arc<Shared>,
    /// (ETag, extension) → the file's bytes.
    cache: Mutex<HashMap<(String, &'static str), bytes::Bytes>>,
}

pub fn router(shared: Arc<Shared>) -> Router {
    let state = Arc::new(PromptState {
        shared,
        cache: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/audio/{campaign}/{lang}/{file}", get(prompt))
        .with_state(state)
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, format!("{what}\n")).into_response()
}

async fn prompt(
    State(st): State<Arc<PromptState>>,
    Path((campaign, lang, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some((name, ext)) = file.rsplit_once('.') else {
        return not_found(format!("`{file}`: ask for PROMPT.wav or PROMPT.mp3"));
    };
    let (ext, content_type): (&'static str, &'static str) = match ext {
        "wav" => ("wav", "audio/wav"),
        "mp3" => ("mp3", "audio/mpeg"),
        _ => return not_found(format!("`{file}`: ask for PROMPT.wav or PROMPT.mp3")),
    };
    let catalog = st.shared.catalog();
    let Some((_, prompts)) = catalog.campaign(&campaign) else {
        return not_found(format!("no campaign `{campaign}` is served"));
    };
    let Some(p) = prompts.get(&lang, name) else {
        return not_found(format!(
            "campaign `{campaign}` has no prompt `{lang}/{name}`"
        ));
    };
    let ulaw = p.ulaw();
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&ulaw))[..32]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let key = (etag.clone(), ext);
        let cached = match st.cache.lock() {
            Ok(c) => c.get(&key).cloned(),
            Err(poisoned) => poisoned.into_inner().get(&key).cloned(),
        };
        let bytes = match cached {
            Some(b) => b,
            None => {
                let encoded = if ext == "wav" {
                    Ok(g711_wav_bytes(G711::Ulaw, &ulaw))
                } else {
                    // LAME takes a moment per prompt: off the async threads.
                    tokio::task::spawn_blocking(move || encode_mp3(&ulaw_decode(&ulaw)))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                };
                let b = match encoded {
                    Ok(v) => bytes::Bytes::from(v),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode a prompt");
                        return (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "cannot encode the prompt\n",
                        )
                            .into_response();
                    }
                };
                let mut cache = match st.cache.lock() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                };
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(key, b.clone());
                b
            }
        };
        let mut r = Response::new(Body::from(bytes));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // Short: a reload may change a prompt; the ETag makes the check cheap.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
