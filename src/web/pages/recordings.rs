//! The voice messages page: listen to each message, write a short note or
//! transcript, and mark the ones picked for the next programme. Broadcasters
//! only. The note form is a plain HTML form (it works without JavaScript); its
//! POST is accepted only from kuma's own pages (`Origin`, and the login cookie is
//! `SameSite=Strict`).

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::{Ctx, PageError, see_other, words};
use crate::web::api::find;
use crate::web::recordings::{NOTE_MAX_CHARS, save_note};
use crate::web::{ApiError, ApiState, Role};

/// `GET /campaigns/{id}/recordings`: newest first.
pub(super) async fn page(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    ctx.require(Role::Broadcaster)?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let list = st
        .shared
        .store
        .recordings(&c.id)
        .await
        .map_err(|e| ctx.error(ApiError::Internal(e.to_string())))?;
    let t = ctx.lang.t();
    let tz = c
        .schedule
        .as_ref()
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::UTC);
    let saved: Option<i64> = ctx
        .here
        .split_once("saved=")
        .and_then(|(_, v)| v.split('&').next())
        .and_then(|v| v.parse().ok());
    let body = html! {
        h1 { (t.recordings) }
        p.muted { a href={ "/campaigns/" (c.id) } { (c.title) } }
        @if list.is_empty() { p { (t.no_recordings) } }
        ul.recordings {
            @for r in &list {
                li.recording #{ "r" (r.id) } data-recording=(r.id) {
                    p {
                        strong { (ctx.lang.date_time(r.created_at.with_timezone(&tz))) }
                        " · " (t.language) (t.colon) (r.language.as_deref().unwrap_or("–"))
                        " · " (format!("{:.0}", r.duration.as_secs_f64())) " " (t.seconds)
                        " · " span.muted { (words(&r.node)) " · " (r.caller) }
                        @if r.picked { " " span.badge.open { "★ " (t.picked) } }
                    }
                    audio controls preload="none" src={ "/api/recordings/" (r.id) "/audio" } {}
                    form.note method="post" {
                        input type="hidden" name="rid" value=(r.id);
                        label { (t.note)
                            textarea name="note" rows="2" maxlength=(NOTE_MAX_CHARS) { (r.note) }
                        }
                        label.check {
                            input type="checkbox" name="picked" value="on" checked[r.picked];
                            " " (t.picked)
                        }
                        button type="submit" { (t.save) }
                        @if saved == Some(r.id) { " " span.saved role="status" { (t.saved) } }
                    }
                }
            }
        }
    };
    Ok(ctx.page(StatusCode::OK, t.recordings, body))
}

#[derive(Deserialize)]
pub(super) struct NoteForm {
    rid: i64,
    #[serde(default)]
    note: String,
    /// A checkbox: present ("on") when ticked.
    picked: Option<String>,
}

/// `POST /campaigns/{id}/recordings`: saves one note, then back to the list.
pub(super) async fn save(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    form: Result<Form<NoteForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    ctx.require(Role::Broadcaster)?;
    let Form(form) = form.map_err(|e| ctx.error(ApiError::BadRequest(e.body_text())))?;
    if !ctx.same_origin {
        return Err(ctx.error(ApiError::Forbidden("cross-site form".into())));
    }
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let belongs = st
        .shared
        .store
        .recording(form.rid)
        .await
        .map_err(|e| ctx.error(ApiError::Internal(e.to_string())))?
        .is_some_and(|r| r.campaign == c.id);
    if !belongs {
        return Err(ctx.error(ApiError::NotFound(format!("no recording {}", form.rid))));
    }
    save_note(&st, form.rid, &form.note, form.picked.is_some())
        .await
        .map_err(|e| ctx.error(e))?;
    Ok(see_other(&format!(
        "/campaigns/{}/recordings?saved={}#r{}",
        c.id, form.rid, form.rid
    )))
}
