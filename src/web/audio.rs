//! `GET /audio/{campaign}/{lang}/{prompt}.{wav|mp3}`: a campaign's prompts, as
//! callers hear them, for the browser's call simulator and for voice providers
//! that fetch prompts by URL.
//!
//! No token: prompts are broadcast content, not private, and a provider's media
//! fetcher cannot send one. Only the prompts the server has loaded and prepared
//! (the catalog's in-memory prompt set) are served: the route never touches the
//! file system, so no path can reach another file; anything else is 404.
//!
//! The audio is the prepared prompt's µ-law frames — exactly what a phone call
//! sends — decoded to 8 kHz 16-bit PCM WAV (what browsers play) or encoded to
//! MP3 (8 kHz mono, for providers that take MP3) by `crate::audio::export`.
//! The strong `ETag` is a hash of those frames and the format, so it changes
//! exactly when the prepared prompt does (after an edit and a SIGHUP);
//! `If-None-Match` gets a 304 without any encoding. Encoded MP3s are kept in
//! memory by ETag (a few dozen kilobytes each).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{ApiError, ApiPath, ApiState};
use crate::audio::Prompt;
use crate::audio::export::{encode_mp3, pcm_wav_bytes};
use crate::audio::g711::ulaw_decode;

/// Browsers and providers may keep a prompt this long before asking again (with
/// its ETag).
const CACHE_CONTROL: &str = "public, max-age=300";

/// How many encoded MP3s are kept before the cache starts again.
const MP3_CACHE_ENTRIES: usize = 2000;

/// Encoded MP3s by ETag.
pub(crate) type Mp3Cache = std::sync::Mutex<std::collections::HashMap<String, Bytes>>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Wav,
    Mp3,
}

pub(super) async fn prompt(
    State(st): State<Arc<ApiState>>,
    ApiPath((campaign, language, file)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no prompt `{campaign}/{language}/{file}`"));
    let (name, format) = match file.rsplit_once('.') {
        Some((name, "wav")) => (name, Format::Wav),
        Some((name, "mp3")) => (name, Format::Mp3),
        _ => return Err(not_found()),
    };
    let (_, prompts) = st.shared.catalog().get(&campaign).ok_or_else(not_found)?;
    let prompt = prompts.get(&language, name).ok_or_else(not_found)?.clone();
    let tag = etag(&prompt, format);
    if matches_etag(&headers, &tag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        set_cache_headers(&mut r, &tag);
        return Ok(r);
    }
    let cached = (format == Format::Mp3)
        .then(|| st.mp3.lock().ok().and_then(|m| m.get(&tag).cloned()))
        .flatten();
    let bytes = match cached {
        Some(b) => b,
        None => encode(&st, prompt, format, &tag).await?,
    };
    let mut r = Response::new(Body::from(bytes));
    let content_type = match format {
        Format::Wav => "audio/wav",
        Format::Mp3 => "audio/mpeg",
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    set_cache_headers(&mut r, &tag);
    Ok(r)
}

/// The prompt as a file. MP3s are kept (by ETag): encoding one costs tens of
/// milliseconds of CPU, and this route needs no token, so nobody may make the
/// server encode the same prompt again and again. WAVs are a cheap decode.
async fn encode(
    st: &ApiState,
    prompt: Prompt,
    format: Format,
    tag: &str,
) -> Result<Bytes, ApiError> {
    // Off the async threads: the calls' tasks run there.
    let bytes = tokio::task::spawn_blocking(move || {
        let pcm = ulaw_decode(&prompt.ulaw());
        match format {
            Format::Wav => pcm_wav_bytes(&pcm),
            Format::Mp3 => encode_mp3(&pcm),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("prompt audio: {e}")))?
    .map_err(|e| ApiError::Internal(format!("prompt audio: {e}")))?;
    let bytes = Bytes::from(bytes);
    if format == Format::Mp3
        && let Ok(mut cache) = st.mp3.lock()
    {
        // Old versions of edited prompts pile up only across many reloads.
        if cache.len() >= MP3_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(tag.to_string(), bytes.clone());
    }
    Ok(bytes)
}

fn set_cache_headers(r: &mut Response, tag: &str) {
    if let Ok(v) = HeaderValue::from_str(tag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
}

/// `"…"`: the first 128 bits of SHA-256 over the format and the µ-law frames.
fn etag(prompt: &Prompt, format: Format) -> String {
    let mut h = Sha256::new();
    h.update(match format {
        Format::Wav => b"kuma prompt wav\0".as_slice(),
        Format::Mp3 => b"kuma prompt mp3\0".as_slice(),
    });
    for f in prompt.frames().iter() {
        h.update(f.ulaw);
    }
    format!("\"{}\"", hex::encode(&h.finalize()[..16]))
}

/// Whether `If-None-Match` names this ETag (or `*`). RFC 9110 compares weakly
/// here, so `W/"…"` matches too.
fn matches_etag(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let mut h = HeaderMap::new();
        assert!(!matches_etag(&h, "\"a\""));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"b\", W/\"a\""),
        );
        assert!(matches_etag(&h, "\"a\""));
        assert!(!matches_etag(&h, "\"c\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&h, "\"c\""));
    }

    #[test]
    fn the_tag_follows_the_audio_and_the_format() {
        let a = Prompt::from_pcm(&[0i16; 400]);
        let b = Prompt::from_pcm(&[1000i16; 400]);
        assert_ne!(etag(&a, Format::Wav), etag(&b, Format::Wav));
        assert_ne!(etag(&a, Format::Wav), etag(&a, Format::Mp3));
        assert_eq!(etag(&a, Format::Mp3), etag(&a.clone(), Format::Mp3));
    }
}
