//! The studio's prompts: every prompt of a campaign in every language, what
//! state it is in, and replacing a recording (or its transcript) over HTTP.
//!
//! `GET /api/campaigns/{id}/prompts` runs every recording through the prompt
//! pipeline (from the cache: nothing is decoded twice) and says for each
//! whether callers hear it well (`ok`), it has no recording (`missing`), it is
//! still the example's stand-in (`placeholder`: its transcript starts with
//! `PLACEHOLDER`, see audio/README.md) or the pipeline has doubts or refuses it
//! (`problem`, with the reason: clipped, mostly silence, too long…).
//!
//! `PUT /api/campaigns/{id}/prompts/{lang}/{prompt}` takes the recording as the
//! body, in any format `kuma audio prepare` reads. It is prepared *before*
//! anything is touched: a body that is not audio (415), or is empty, silent,
//! too long or damaged (400, the pipeline's reason), leaves the old prompt in
//! place. A good one is stored and served by `crate::catalog::replace`, as a
//! recording made by phone on the studio number is: written atomically as
//! `<prompt>.<ext>` in the language's folder, the recording it replaces moved to
//! `DATA/history/<id>/recordings/` (so a bad take can be undone by hand), a
//! `PLACEHOLDER` transcript loses its placeholder line, and the catalog is
//! reloaded as SIGHUP does: `/audio/{id}/{lang}/{prompt}.wav` serves the new
//! prompt at once and new calls play it; calls in progress finish with the old.
//! `PUT …/{prompt}/transcript` sets the `<prompt>.txt` beside it. Both take a
//! prompt the campaign does not use yet (a plain name: letters, digits, `-`,
//! `_`), so that a new question's prompt can be recorded before the question
//! is saved.

use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Serialize;

use super::api::{find, json};
use super::{ApiError, ApiPath, ApiState, Auth, Role};
use crate::audio::error::AudioError;
use crate::audio::prepare::{Settings, prepare_campaign};
use crate::audio::report::{FileReport, Summary};
use crate::campaign::Campaign;
use crate::catalog::replace::{NewRecording, ReplaceError};

/// The largest upload (a 3-minute WAV at 48 kHz stereo is about 35 MB).
pub const MAX_UPLOAD: usize = 64 * 1024 * 1024;

/// The state of one prompt in one language.
#[derive(Debug, Serialize)]
pub(super) struct PromptState {
    pub(super) prompt: String,
    pub(super) language: String,
    /// ok, missing, placeholder or problem.
    pub(super) state: &'static str,
    /// Why it is not ok.
    pub(super) reason: Option<String>,
    /// Length of the prepared prompt (what callers hear), in milliseconds.
    pub(super) duration_ms: Option<u64>,
    pub(super) transcript: Option<String>,
    /// The recording's file name in the language's folder.
    pub(super) file: Option<String>,
    /// What callers hear, 8 kHz WAV.
    pub(super) audio: Option<String>,
    /// What the pipeline found and did.
    pub(super) report: Option<Summary>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// A transcript: `<prompt>.txt` beside the recording, trimmed.
fn transcript_of(c: &Campaign, language: &str, prompt: &str) -> Option<String> {
    let text =
        std::fs::read_to_string(c.audio_dir.join(language).join(format!("{prompt}.txt"))).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn state_of(c: &Campaign, r: &FileReport) -> PromptState {
    let transcript = transcript_of(c, &r.language, &r.prompt);
    let placeholder = transcript
        .as_deref()
        .is_some_and(|t| t.starts_with("PLACEHOLDER"));
    let (state, reason, duration_ms, report) = match &r.outcome {
        Err(AudioError::Missing) => (
            "missing",
            Some("no recording: upload or record one".to_string()),
            None,
            None,
        ),
        Err(e) => ("problem", Some(e.to_string()), None, None),
        Ok(s) if !s.warnings.is_empty() => (
            "problem",
            Some(s.warnings.join("; ")),
            Some(s.prepared_ms),
            Some(s.clone()),
        ),
        Ok(s) if placeholder => (
            "placeholder",
            Some("a stand-in: record it in this language".to_string()),
            Some(s.prepared_ms),
            Some(s.clone()),
        ),
        Ok(s) => ("ok", None, Some(s.prepared_ms), Some(s.clone())),
    };
    let served = r.outcome.is_ok();
    PromptState {
        audio: served.then(|| format!("/audio/{}/{}/{}.wav", c.id, r.language, r.prompt)),
        file: (!matches!(r.outcome, Err(AudioError::Missing)))
            .then(|| r.path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .flatten(),
        prompt: r.prompt.clone(),
        language: r.language.clone(),
        state,
        reason,
        duration_ms,
        transcript,
        report,
    }
}

/// Every prompt × language of a campaign with its state: prompt by prompt, in
/// the campaign's order, each in every language. Blocks (the pipeline, from the
/// cache).
pub(super) fn states(c: &Campaign, data: &Path) -> Vec<PromptState> {
    let (_, reports) = prepare_campaign(c, data, &Settings::for_campaign(c));
    let mut states: Vec<PromptState> = reports.iter().map(|r| state_of(c, r)).collect();
    let order = c.prompt_names();
    let rank = |p: &str| order.iter().position(|n| *n == p).unwrap_or(usize::MAX);
    let lang = |l: &str| {
        c.languages
            .iter()
            .position(|n| n == l)
            .unwrap_or(usize::MAX)
    };
    states.sort_by_key(|s| (rank(&s.prompt), lang(&s.language)));
    states
}

/// `GET /api/campaigns/{id}/prompts`: every prompt × language with its state.
pub(super) async fn list(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let data = st.shared.data.clone();
    let states = tokio::task::spawn_blocking(move || {
        let states = states(&c, &data);
        (c, states)
    })
    .await
    .map_err(internal)?;
    let (c, states) = states;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "campaign": c.id,
            "languages": c.languages,
            "prompts": states,
        }),
    ))
}

/// The campaign, checked to use `prompt` in `language`, or to be able to: a
/// recording may be made before the node that plays it exists (a new question
/// is only saved once its prompt has a recording in every language, as `kuma
/// check` wants).
fn prompt_of(
    st: &ApiState,
    id: &str,
    language: &str,
    prompt: &str,
) -> Result<Arc<Campaign>, ApiError> {
    let c = find(st, id)?;
    if !c.languages.iter().any(|l| l == language) {
        return Err(ApiError::NotFound(format!(
            "campaign `{id}` has no language `{language}` (it has {})",
            c.languages.join(", ")
        )));
    }
    if crate::campaign::node_edit::valid_node_id(prompt) {
        return Ok(c);
    }
    if !c.prompt_names().contains(&prompt) {
        return Err(ApiError::NotFound(format!(
            "campaign `{id}` uses no prompt `{prompt}`"
        )));
    }
    Ok(c)
}

/// The format of an upload from its first bytes, as a file extension.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let at = |i: usize, magic: &[u8]| bytes.get(i..i + magic.len()) == Some(magic);
    if at(0, b"RIFF") && at(8, b"WAVE") || at(0, b"RF64") {
        Some("wav")
    } else if at(0, b"OggS") {
        Some("ogg")
    } else if at(0, b"fLaC") {
        Some("flac")
    } else if at(4, b"ftyp") {
        Some("m4a")
    } else if at(0, b"ID3") {
        Some("mp3")
    } else {
        match (bytes.first(), bytes.get(1)) {
            // ADTS (AAC) frame sync: 12 ones, layer 00.
            (Some(0xFF), Some(b)) if b & 0xF6 == 0xF0 => Some("aac"),
            // MPEG audio frame sync: 11 ones.
            (Some(0xFF), Some(b)) if b & 0xE0 == 0xE0 => Some("mp3"),
            _ => None,
        }
    }
}

/// The extension a Content-Type names, `Some(None)` for one that says nothing
/// (octet-stream, none), `None` for a type that is not audio kuma reads.
fn declared(headers: &HeaderMap) -> Option<Option<&'static str>> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Some(None);
    };
    let ct = ct.to_str().ok()?;
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" | "application/octet-stream" => Some(None),
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Some(Some("wav")),
        "audio/mpeg" | "audio/mp3" => Some(Some("mp3")),
        "audio/ogg" | "application/ogg" | "audio/vorbis" => Some(Some("ogg")),
        "audio/flac" | "audio/x-flac" => Some(Some("flac")),
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => Some(Some("m4a")),
        "audio/aac" | "audio/aacp" => Some(Some("aac")),
        _ => None,
    }
}

const ACCEPTED: &str = "send WAV, MP3, Ogg Vorbis, FLAC or AAC/M4A";

fn unsupported(why: String) -> Response {
    json(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &serde_json::json!({ "error": why }),
    )
}

fn bad_recording(e: &AudioError) -> Response {
    let status = match e {
        AudioError::Unsupported { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    json(
        status,
        &serde_json::json!({ "error": format!("the recording was not taken: {e}; the old prompt stays") }),
    )
}

/// `PUT /api/campaigns/{id}/prompts/{lang}/{prompt}`: a new recording.
pub(super) async fn put(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath((id, language, prompt)): ApiPath<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = prompt_of(&st, &id, &language, &prompt)?;
    let Some(declared) = declared(&headers) else {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        return Ok(unsupported(format!(
            "`{ct}` is not audio kuma reads: {ACCEPTED}; the old prompt stays"
        )));
    };
    if body.is_empty() {
        return Ok(bad_recording(&AudioError::EmptyFile));
    }
    let Some(ext) = sniff(&body).or(declared) else {
        return Ok(unsupported(format!(
            "the body is not a recording kuma reads: {ACCEPTED}; the old prompt stays"
        )));
    };
    let who = st
        .shared
        .store
        .tokens()
        .name(auth.token_hash())
        .await
        .map_err(internal)?
        .unwrap_or_default();
    let new = NewRecording {
        campaign: Arc::clone(&c),
        language: language.clone(),
        prompt: prompt.clone(),
        ext,
        bytes: body.to_vec(),
        who,
        via: "web",
    };
    let catalog = match st
        .shared
        .catalogs
        .replace_prompt(new, &st.shared.data)
        .await
    {
        Ok(catalog) => catalog,
        Err(ReplaceError::Recording(e)) => return Ok(bad_recording(&e)),
        Err(e) => return Err(internal(e)),
    };
    let c = catalog
        .and_then(|cat| cat.get(&id).map(|(c, _)| c))
        .unwrap_or(c);
    let data = st.shared.data.clone();
    let state = tokio::task::spawn_blocking(move || {
        let cache = crate::audio::cache::Cache::open(&data);
        let (report, _) = crate::audio::prepare::prepare_prompt(
            &c,
            &language,
            &prompt,
            &cache,
            &Settings::for_campaign(&c),
        );
        state_of(&c, &report)
    })
    .await
    .map_err(internal)?;
    Ok(json(StatusCode::OK, &state))
}

/// `PUT /api/campaigns/{id}/prompts/{lang}/{prompt}/transcript`: the text of
/// the prompt (plain UTF-8), written beside the recording.
pub(super) async fn put_transcript(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath((id, language, prompt)): ApiPath<(String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = prompt_of(&st, &id, &language, &prompt)?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("a transcript is UTF-8 text".into()))?;
    let mut text = text.trim().to_string();
    text.push('\n');
    let path = c.audio_dir.join(&language).join(format!("{prompt}.txt"));
    tokio::task::spawn_blocking(move || {
        crate::campaign::edit::write_atomic(&path, text.as_bytes())
    })
    .await
    .map_err(internal)?
    .map_err(|e| internal(format!("cannot write the transcript: {e}")))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "transcript": transcript_of(&c, &language, &prompt) }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_known_by_their_first_bytes() {
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Some("wav"));
        assert_eq!(sniff(b"ID3\x04"), Some("mp3"));
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90]), Some("mp3"));
        assert_eq!(sniff(&[0xFF, 0xF1, 0x50]), Some("aac"));
        assert_eq!(sniff(b"OggS\0"), Some("ogg"));
        assert_eq!(sniff(b"fLaC"), Some("flac"));
        assert_eq!(sniff(b"\0\0\0\x20ftypM4A "), Some("m4a"));
        assert_eq!(sniff(b"<html>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"\xFF"), None);
    }

    #[test]
    fn content_types_name_a_format_or_none() {
        let mut h = HeaderMap::new();
        assert_eq!(declared(&h), Some(None));
        h.insert(header::CONTENT_TYPE, "audio/mpeg".parse().unwrap());
        assert_eq!(declared(&h), Some(Some("mp3")));
        h.insert(header::CONTENT_TYPE, "audio/wav; codecs=1".parse().unwrap());
        assert_eq!(declared(&h), Some(Some("wav")));
        h.insert(header::CONTENT_TYPE, "image/png".parse().unwrap());
        assert_eq!(declared(&h), None);
    }
}
