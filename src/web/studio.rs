//! The broadcaster's studio over HTTP: changing a campaign without touching a
//! file by hand. Every change is a change to the campaign's TOML file.
//!
//! One path for every change ([`save`]): read the file, check the client's
//! `If-Match` against it (409 with what changed since, never a silent
//! overwrite), make the change with `toml_edit` ([`crate::campaign::edit`]),
//! check the result with the loader of `kuma check` and prepare its prompts
//! (400 with `kuma check`'s words, nothing written, when it would break the
//! campaign), keep the version it replaces and the new one in the history
//! ([`crate::campaign::history`], `DATA/history/<id>/`), write the file
//! atomically, and reload the catalog the way SIGHUP does
//! ([`crate::serve::reload`]): calls in progress keep the version they started
//! with, new calls get the new one. Saves are one at a time in a server.
//!
//! Routes (broadcaster role): `GET|PUT /api/campaigns/{id}/schedule`, `POST
//! /api/campaigns/{id}/schedule/check` (what a schedule would give, nothing
//! written: the page shows it as one types), `GET|PUT
//! /api/campaigns/{id}/source`, `GET /api/campaigns/{id}/history`, `GET
//! /api/campaigns/{id}/history/{version}`, `POST
//! /api/campaigns/{id}/history/{version}/restore`, `PUT|DELETE
//! /api/campaigns/{id}/nodes/{node}` (this week's question: question and
//! message nodes) and `POST /api/campaigns` (a new campaign from an existing
//! one).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;

use super::api::{find, json, next_broadcasts, poll};
use super::{ApiError, ApiPath, ApiState, Auth, Role};
use crate::audio::prepare::{Settings, prepare_campaign};
use crate::campaign::edit::{self, FieldError, ScheduleEdit};
use crate::campaign::history::{Entry, History};
use crate::campaign::node_edit::{self, NodeEdit};
use crate::campaign::{Campaign, Diagnostic, load_campaign_text, shown_path};

/// One save at a time: read, check, write and reload must not interleave.
static SAVES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The media type of a campaign file.
const TOML: &str = "application/toml";

/// A change to a campaign's text: the new text and what changed in a few words,
/// or a mistake (400) found before any loading.
type Change<'a> = Box<dyn FnOnce(&str) -> Result<(String, String), SaveError> + Send + 'a>;

/// Why a save was refused before anything was written.
enum SaveError {
    /// The change cannot be made; `field` names the editor's field when known.
    Invalid {
        message: String,
        field: Option<String>,
        problems: Vec<String>,
    },
    Api(ApiError),
}

impl From<ApiError> for SaveError {
    fn from(e: ApiError) -> Self {
        SaveError::Api(e)
    }
}

impl From<FieldError> for SaveError {
    fn from(e: FieldError) -> Self {
        SaveError::Invalid {
            message: e.to_string(),
            field: Some(e.field),
            problems: Vec::new(),
        }
    }
}

impl SaveError {
    fn into_response(self) -> Response {
        match self {
            SaveError::Invalid {
                message,
                field,
                problems,
            } => json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": message, "field": field, "problems": problems }),
            ),
            SaveError::Api(e) => axum::response::IntoResponse::into_response(e),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The ETags an `If-Match` header lists (`*` matches anything); `None` without
/// the header.
fn if_match(headers: &HeaderMap) -> Option<Vec<String>> {
    let values: Vec<String> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            let t = t.trim();
            t.strip_prefix("W/")
                .unwrap_or(t)
                .trim_matches('"')
                .to_string()
        })
        .filter(|t| !t.is_empty())
        .collect();
    (headers.contains_key(header::IF_MATCH)).then_some(values)
}

fn with_etag(mut r: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The campaign as the API shows it after a change: the definition, its next
/// broadcasts in words, whether the poll is open, and the file's version.
fn campaign_reply(c: &Campaign, etag: &str, version: Option<u64>) -> Result<Value, ApiError> {
    let now = Utc::now();
    let definition = serde_json::to_value(c).map_err(internal)?;
    Ok(serde_json::json!({
        "campaign": definition,
        "next_broadcasts": next_broadcasts(c, now),
        "poll": poll(c, now),
        "etag": etag,
        "version": version,
    }))
}

/// Who is changing something: the token's name.
async fn who(st: &ApiState, auth: &Auth) -> Result<String, ApiError> {
    st.shared
        .store
        .tokens()
        .name(auth.token_hash())
        .await
        .map_err(internal)?
        .ok_or(ApiError::Unauthorized("unknown or revoked token"))
}

/// `kuma check`'s verdict on a campaign's new text, as if it were the file at
/// `path`: the loader, the other campaigns' numbers, and every prompt through
/// the audio pipeline (an unplayable prompt keeps the campaign off the air).
async fn check(
    st: &ApiState,
    path: &Path,
    text: &str,
    field_at: Option<fn(&str, usize) -> Option<String>>,
) -> Result<Campaign, SaveError> {
    let c = load_campaign_text(path, text).map_err(|diags| invalid(text, &diags, field_at))?;
    let catalog = st.shared.catalog();
    for other in catalog.campaigns().iter().filter(|o| o.id != c.id) {
        let mine = c.numbers.iter().chain(&c.callback_numbers);
        if let Some(n) = mine
            .into_iter()
            .find(|n| other.numbers.contains(n) || other.callback_numbers.contains(n))
        {
            let d = Diagnostic {
                file: path.to_path_buf(),
                line: 0,
                message: format!(
                    "number `{n}` already belongs to campaign `{}`; each dialled number reaches one campaign",
                    other.id
                ),
            };
            return Err(invalid(text, &[d], None));
        }
    }
    let served = catalog.get(&c.id);
    // The recordings' folder is the station technician's, set in the file on
    // disk: from the studio it could point a campaign at another's recordings
    // (which this campaign's prompt uploads would then replace, whatever
    // campaigns the token is limited to) or at any folder kuma may write to.
    if let Some((old, _)) = &served
        && old.audio_dir != c.audio_dir
    {
        let d = Diagnostic {
            file: path.to_path_buf(),
            line: c.audio_line,
            message: "`audio` (the folder of this campaign's recordings) cannot be changed from the studio: the station's technician sets it in the file".into(),
        };
        return Err(invalid(text, &[d], None));
    }
    // Recordings the server already plays need no second look (a schedule
    // change, say): only prompts new to the campaign go through the pipeline.
    let all_served = served.as_ref().is_some_and(|(_, prompts)| {
        c.languages
            .iter()
            .all(|l| c.prompt_names().iter().all(|p| prompts.get(l, p).is_some()))
    });
    if all_served {
        return Ok(c);
    }
    let data = st.shared.data.clone();
    let (c, bad) = tokio::task::spawn_blocking(move || {
        let (_, reports) = prepare_campaign(&c, &data, &Settings::for_campaign(&c));
        let folder = c.file.parent().unwrap_or(Path::new(""));
        let bad: Vec<String> = reports
            .iter()
            .filter_map(|r| {
                r.outcome
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: error: {e}", shown_path(&r.path, folder)))
            })
            .collect();
        (c, bad)
    })
    .await
    .map_err(internal)?;
    if let Some(first) = bad.first() {
        return Err(SaveError::Invalid {
            message: first.clone(),
            field: None,
            problems: bad,
        });
    }
    Ok(c)
}

fn invalid(
    text: &str,
    diags: &[Diagnostic],
    field_at: Option<fn(&str, usize) -> Option<String>>,
) -> SaveError {
    let first = diags.first();
    // The campaign's file by its name alone: not the server's path.
    let shown = |d: &Diagnostic| d.shown_from(d.file.parent().unwrap_or(Path::new("")));
    SaveError::Invalid {
        message: first.map_or_else(|| "the campaign is not valid".into(), shown),
        field: first.and_then(|d| field_at.and_then(|f| f(text, d.line))),
        problems: diags.iter().map(shown).collect(),
    }
}

/// The one path of every change to an existing campaign (see the module doc).
async fn save(
    st: &ApiState,
    auth: &Auth,
    id: &str,
    headers: &HeaderMap,
    field_at: Option<fn(&str, usize) -> Option<String>>,
    change: Change<'_>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let who = who(st, auth).await?;
    let _one = SAVES.lock().await;
    let c = find(st, id)?;
    let path = c.file.clone();
    let current = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| internal(format!("{}: {e}", path.display())))?;
    let tag = edit::etag(current.as_bytes());
    let history = History::new(&st.shared.data, id);
    if let Some(wanted) = if_match(headers)
        && !wanted.iter().any(|w| w == "*" || *w == tag)
    {
        let since = wanted
            .first()
            .map(|w| history.since(w))
            .transpose()
            .map_err(internal)?
            .flatten();
        let message = match &since {
            Some(changes) if !changes.is_empty() => format!(
                "the campaign changed since you read it: {}; reload it and make your change again",
                changes
                    .iter()
                    .map(describe_entry)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            _ => "the campaign file changed since you read it (perhaps by hand); reload it and make your change again".into(),
        };
        let r = json(
            StatusCode::CONFLICT,
            &serde_json::json!({ "error": message, "etag": tag, "changes": since.unwrap_or_default() }),
        );
        return Ok(with_etag(r, &tag));
    }
    let (text, what) = match change(&current) {
        Ok(t) => t,
        Err(e) => return Ok(e.into_response()),
    };
    if text == current {
        let version = history
            .entries()
            .map_err(internal)?
            .last()
            .filter(|e| e.etag == tag)
            .map(|e| e.version);
        return Ok(with_etag(
            json(StatusCode::OK, &campaign_reply(&c, &tag, version)?),
            &tag,
        ));
    }
    let checked = match check(st, &path, &text, field_at).await {
        Ok(c) => c,
        Err(e) => return Ok(e.into_response()),
    };
    let (entry, new_tag) = write_version(&history, &path, &current, &text, &who, &what).await?;
    let served = reload(st, &path).await;
    let c = served
        .and_then(|cat| cat.get(id).map(|(c, _)| c))
        .unwrap_or_else(|| Arc::new(checked));
    Ok(with_etag(
        json(
            StatusCode::OK,
            &campaign_reply(&c, &new_tag, Some(entry.version))?,
        ),
        &new_tag,
    ))
}

fn describe_entry(e: &Entry) -> String {
    format!(
        "version {} by {} at {}: {}",
        e.version,
        e.who.as_deref().unwrap_or("someone outside kuma"),
        e.at.format("%Y-%m-%d %H:%M:%S UTC"),
        e.what
    )
}

/// Keeps the version on disk, writes the new text, keeps it as a version.
async fn write_version(
    history: &History,
    path: &Path,
    current: &str,
    text: &str,
    who: &str,
    what: &str,
) -> Result<(Entry, String), ApiError> {
    let now = Utc::now();
    history.note_current(current, now).map_err(internal)?;
    edit::write_atomic(path, text.as_bytes())
        .map_err(|e| internal(format!("cannot write {}: {e}", path.display())))?;
    let entry = history
        .record(text, Some(who), what, now)
        .map_err(internal)?;
    tracing::info!(file = %path.display(), version = entry.version, who, what, "campaign changed");
    let tag = entry.etag.clone();
    Ok((entry, tag))
}

/// Reloads the folder of `file` the way SIGHUP does.
async fn reload(st: &ApiState, file: &Path) -> Option<Arc<crate::catalog::Catalog>> {
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    st.shared.reload(dir).await
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SaveError> {
    serde_json::from_slice(body).map_err(|e| SaveError::Invalid {
        message: format!("the body is not the JSON expected: {e}"),
        field: None,
        problems: Vec::new(),
    })
}

/// `GET /api/campaigns/{id}/schedule`: the schedule as the editor shows it (weekly
/// slots and dates), next broadcasts and the poll; with the file's ETag.
pub(super) async fn schedule(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let tag = file_etag(&c).await?;
    let now = Utc::now();
    let body = serde_json::json!({
        "schedule": c.schedule.as_ref().map(edit::schedule_edit_of),
        "next_broadcasts": next_broadcasts(&c, now),
        "poll": poll(&c, now),
        "etag": tag,
    });
    Ok(with_etag(json(StatusCode::OK, &body), &tag))
}

/// The ETag of the campaign's file as it is on disk now.
pub(super) async fn file_etag(c: &Campaign) -> Result<String, ApiError> {
    let bytes = tokio::fs::read(&c.file)
        .await
        .map_err(|e| internal(format!("{}: {e}", c.file.display())))?;
    Ok(edit::etag(&bytes))
}

/// What changed between two schedules, for the history.
fn schedule_what(old: Option<&ScheduleEdit>, new: &ScheduleEdit) -> String {
    let mut keys = Vec::new();
    let o = old.cloned();
    let differs = |f: fn(&ScheduleEdit) -> Value| o.as_ref().map(f) != Some(f(new));
    if differs(|s| Value::from(s.timezone.clone())) {
        keys.push("timezone");
    }
    if differs(|s| serde_json::to_value(&s.broadcasts).unwrap_or_default()) {
        keys.push("broadcasts");
    }
    if differs(|s| {
        let window = s.poll_window.as_deref().map(|w| {
            crate::campaign::parse_duration(w.trim())
                .map(crate::campaign::format_duration)
                .unwrap_or_else(|_| w.to_string())
        });
        serde_json::to_value(window).unwrap_or_default()
    }) {
        keys.push("poll_window");
    }
    if differs(|s| serde_json::to_value(&s.from).unwrap_or_default()) {
        keys.push("from");
    }
    if differs(|s| serde_json::to_value(&s.until).unwrap_or_default()) {
        keys.push("until");
    }
    format!("schedule: {}", keys.join(", "))
}

/// `PUT /api/campaigns/{id}/schedule`: sets the `[schedule]` of the file.
pub(super) async fn put_schedule(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let edit: ScheduleEdit = match parse_json(&body) {
        Ok(e) => e,
        Err(e) => return Ok(e.into_response()),
    };
    let old = find(&st, &id)?
        .schedule
        .as_ref()
        .map(edit::schedule_edit_of);
    let change: Change = Box::new(move |text: &str| {
        let new = edit::set_schedule(text, &edit)?;
        Ok((new, schedule_what(old.as_ref(), &edit)))
    });
    save(
        &st,
        &auth,
        &id,
        &headers,
        Some(edit::schedule_field_at),
        change,
    )
    .await
}

/// `POST /api/campaigns/{id}/schedule/check`: what `PUT …/schedule` would
/// reply (next broadcasts, poll, or the mistake), nothing written.
pub(super) async fn check_schedule(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let result = async {
        let edit: ScheduleEdit = parse_json(&body)?;
        let current = tokio::fs::read_to_string(&c.file)
            .await
            .map_err(|e| ApiError::Internal(format!("{}: {e}", c.file.display())))?;
        let text = edit::set_schedule(&current, &edit)?;
        load_campaign_text(&c.file, &text)
            .map_err(|d| invalid(&text, &d, Some(edit::schedule_field_at)))
    }
    .await;
    match result {
        Ok(new) => {
            let now = Utc::now();
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "next_broadcasts": next_broadcasts(&new, now),
                    "poll": poll(&new, now),
                }),
            ))
        }
        Err(e) => Ok(e.into_response()),
    }
}

/// `GET /api/campaigns/{id}/source`: the campaign file as it is on disk.
pub(super) async fn source(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let bytes = tokio::fs::read(&c.file)
        .await
        .map_err(|e| internal(format!("{}: {e}", c.file.display())))?;
    Ok(toml_response(bytes))
}

fn toml_response(bytes: Vec<u8>) -> Response {
    let tag = edit::etag(&bytes);
    let mut r = Response::new(Body::from(bytes));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(TOML));
    with_etag(r, &tag)
}

/// `PUT /api/campaigns/{id}/source`: the whole file, checked like any change.
pub(super) async fn put_source(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let change: Change = Box::new(move |_: &str| match String::from_utf8(body.to_vec()) {
        Ok(text) => Ok((text, "source".to_string())),
        Err(_) => Err(SaveError::Api(ApiError::BadRequest(
            "a campaign file is UTF-8 text".into(),
        ))),
    });
    save(&st, &auth, &id, &headers, None, change).await
}

/// `PUT /api/campaigns/{id}/nodes/{node}`: adds, changes or moves a question or
/// message node (see [`crate::campaign::node_edit`]).
pub(super) async fn put_node(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath((id, node)): ApiPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let edit: NodeEdit = match parse_json(&body) {
        Ok(e) => e,
        Err(e) => return Ok(e.into_response()),
    };
    let change: Change = Box::new(move |text: &str| Ok(node_edit::set_node(text, &node, &edit)?));
    save(
        &st,
        &auth,
        &id,
        &headers,
        Some(node_edit::node_field_at),
        change,
    )
    .await
}

/// `DELETE /api/campaigns/{id}/nodes/{node}`: removes a question or message
/// node; what led to it leads where it led. Its answers stay in the results.
pub(super) async fn delete_node(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath((id, node)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    if c.node(&node).is_none() {
        return Err(ApiError::NotFound(format!(
            "campaign `{id}` has no node `{node}`"
        )));
    }
    let change: Change = Box::new(move |text: &str| Ok(node_edit::remove_node(text, &node)?));
    save(&st, &auth, &id, &headers, None, change).await
}

/// `GET /api/campaigns/{id}/history`: every kept version, newest first.
pub(super) async fn history(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let tag = file_etag(&c).await?;
    let mut versions = History::new(&st.shared.data, &id)
        .entries()
        .map_err(internal)?;
    versions.reverse();
    Ok(with_etag(
        json(
            StatusCode::OK,
            &serde_json::json!({ "campaign": id, "etag": tag, "versions": versions }),
        ),
        &tag,
    ))
}

/// `GET /api/campaigns/{id}/history/{version}`: the text of a kept version.
pub(super) async fn history_version(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath((id, version)): ApiPath<(String, u64)>,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    find(&st, &id)?;
    let text = History::new(&st.shared.data, &id)
        .text(version)
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no version {version} of `{id}`")))?;
    Ok(toml_response(text.into_bytes()))
}

/// `POST /api/campaigns/{id}/history/{version}/restore`: makes a kept version
/// the file again (as a new version, checked like any change).
pub(super) async fn restore(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath((id, version)): ApiPath<(String, u64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    find(&st, &id)?;
    let text = History::new(&st.shared.data, &id)
        .text(version)
        .map_err(internal)?
        .ok_or_else(|| ApiError::NotFound(format!("no version {version} of `{id}`")))?;
    let change: Change =
        Box::new(move |_: &str| Ok((text, format!("restore of version {version}"))));
    save(&st, &auth, &id, &headers, None, change).await
}

/// The body of `POST /api/campaigns`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCampaign {
    id: String,
    from: String,
    title: String,
}

/// `POST /api/campaigns`: a new campaign from an existing one: the same file
/// with the new title and no numbers (a dialled number reaches one campaign;
/// give it its own in the source), and a copy of its recordings in a folder of
/// its own, so that re-recording one does not change the other.
pub(super) async fn create(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let new: NewCampaign = match parse_json(&body) {
        Ok(n) => n,
        Err(e) => return Ok(e.into_response()),
    };
    let who = who(&st, &auth).await?;
    let id_ok = !new.id.is_empty()
        && new.id.len() <= 100
        && new
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        return Ok(SaveError::Invalid {
            message: format!(
                "`{}` is not a campaign id: use letters, digits, `-` and `_` only",
                new.id
            ),
            field: Some("id".into()),
            problems: Vec::new(),
        }
        .into_response());
    }
    if new.title.trim().is_empty() {
        return Ok(SaveError::Invalid {
            message: "a campaign needs a title".into(),
            field: Some("title".into()),
            problems: Vec::new(),
        }
        .into_response());
    }
    let _one = SAVES.lock().await;
    let from = find(&st, &new.from)?;
    let dir = from
        .file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let path = dir.join(format!("{}.toml", new.id));
    if tokio::fs::try_exists(&path).await.unwrap_or(true) {
        return Err(ApiError::Conflict(format!(
            "campaign `{}` exists already",
            new.id
        )));
    }
    let audio_parent = from
        .audio_dir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let audio = audio_parent.join(&new.id);
    if tokio::fs::try_exists(&audio).await.unwrap_or(true) {
        return Err(ApiError::Conflict(format!(
            "the recordings folder {} exists already",
            shown_path(&audio, &dir)
        )));
    }
    let source = tokio::fs::read_to_string(&from.file)
        .await
        .map_err(|e| internal(format!("{}: {e}", from.file.display())))?;
    let audio_key = relative_audio(&source, &new.id);
    let text = match copy_text(&source, &new.title, &audio_key) {
        Ok(t) => t,
        Err(e) => return Ok(SaveError::from(e).into_response()),
    };
    let (from_audio, to_audio) = (from.audio_dir.clone(), audio.clone());
    tokio::task::spawn_blocking(move || copy_recordings(&from_audio, &to_audio))
        .await
        .map_err(internal)?
        .map_err(|e| internal(format!("cannot copy the recordings: {e}")))?;
    let checked = match check(&st, &path, &text, None).await {
        Ok(c) => c,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&audio).await;
            return Ok(e.into_response());
        }
    };
    let history = History::new(&st.shared.data, &new.id);
    let written = async {
        edit::write_atomic(&path, text.as_bytes())
            .map_err(|e| internal(format!("cannot write {}: {e}", path.display())))?;
        history
            .record(
                &text,
                Some(&who),
                &format!("created from `{}`", new.from),
                Utc::now(),
            )
            .map_err(internal)
    }
    .await;
    let entry = match written {
        Ok(e) => e,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&audio).await;
            return Err(e);
        }
    };
    let c = reload(&st, &path)
        .await
        .and_then(|cat| cat.get(&new.id).map(|(c, _)| c))
        .unwrap_or_else(|| Arc::new(checked));
    Ok(with_etag(
        json(
            StatusCode::CREATED,
            &campaign_reply(&c, &entry.etag, Some(entry.version))?,
        ),
        &entry.etag,
    ))
}

/// The `audio` value of the copy: the original's, with its last folder named
/// after the new campaign (`../audio/old` becomes `../audio/new`).
fn relative_audio(source: &str, id: &str) -> String {
    let old = source
        .parse::<toml_edit::DocumentMut>()
        .ok()
        .and_then(|d| d.get("audio").and_then(|a| a.as_str()).map(str::to_string))
        .unwrap_or_default();
    match Path::new(&old).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(id).display().to_string(),
        _ => id.to_string(),
    }
}

/// The copy's text: the new title and audio folder, no numbers.
fn copy_text(source: &str, title: &str, audio: &str) -> Result<String, FieldError> {
    let mut doc: toml_edit::DocumentMut =
        source
            .parse()
            .map_err(|e: toml_edit::TomlError| FieldError {
                field: "from".into(),
                message: e.message().to_string(),
            })?;
    edit::set(doc.as_table_mut(), "title", title.trim().into());
    edit::set(doc.as_table_mut(), "audio", audio.into());
    doc.remove("numbers");
    doc.remove("callback_numbers");
    Ok(doc.to_string())
}

/// Copies the language folders of a campaign's recordings (files only).
fn copy_recordings(from: &Path, to: &Path) -> std::io::Result<()> {
    let result = (|| {
        for lang in std::fs::read_dir(from)? {
            let lang = lang?;
            if !lang.file_type()?.is_dir() {
                continue;
            }
            let target = to.join(lang.file_name());
            std::fs::create_dir_all(&target)?;
            for f in std::fs::read_dir(lang.path())? {
                let f = f?;
                if f.file_type()?.is_file() {
                    std::fs::copy(f.path(), target.join(f.file_name()))?;
                }
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(to);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_lists_tags_without_quotes() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert_eq!(if_match(&h), Some(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn a_copy_gets_its_own_title_audio_and_no_numbers() {
        let src = "title = \"Old\" # shown\nlanguages = [\"fr\"]\naudio = \"../audio/old\"\nnumbers = [\"2000\"]\n";
        let audio = relative_audio(src, "new");
        assert_eq!(audio, "../audio/new");
        let out = copy_text(src, "New", &audio).unwrap();
        assert_eq!(
            out,
            "title = \"New\" # shown\nlanguages = [\"fr\"]\naudio = \"../audio/new\"\n"
        );
    }
}
