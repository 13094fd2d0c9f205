//! The call simulator page: a phone keypad in the browser that walks the
//! campaign's real flow (`POST /api/campaigns/{id}/simulate`, the same engine as
//! phone calls; nothing stored) and plays its prompts (`/audio/…wav`), so a
//! broadcaster hears the campaign before it goes on air. The page is a shell;
//! `kuma.js` does the walking. Broadcasters only.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::{Ctx, PageError, script_json};
use crate::web::api::find;
use crate::web::{ApiState, Role};

/// `GET /campaigns/{id}/simulator`.
pub(super) async fn page(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    ctx.require(Role::Broadcaster)?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let t = ctx.lang.t();
    let labels = serde_json::json!({
        "ended": t.call_ended,
        "answer": t.sim_answer,
        "transfer": t.sim_transfer,
        "helpline_answers": t.sim_helpline_answers,
        "helpline_fails": t.sim_helpline_fails,
        "recording": t.sim_recording,
        "stop_recording": t.sim_stop_recording,
        "error": t.internal,
    });
    let keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"];
    let body = html! {
        h1 { (t.simulator) }
        p.muted { a href={ "/campaigns/" (c.id) } { (c.title) } }
        p.help { (t.simulator_help) }
        noscript { p.error { (t.needs_js) } }
        section #simulator data-api={ "/api/campaigns/" (c.id) "/simulate" } {
            p {
                label { (t.sim_at) " "
                    input #sim-at type="datetime-local" name="at";
                }
            }
            p {
                button #sim-start type="button" { (t.start_call) }
                button #sim-hangup type="button" disabled { (t.hang_up) }
                button #sim-skip type="button" disabled { (t.skip) " ▶▶" }
                button #sim-wait type="button" disabled { (t.no_answer_key) }
            }
            div.keypad role="group" aria-label="keypad" {
                @for k in keys {
                    button.key type="button" data-key=(k) disabled { (k) }
                }
            }
            p #sim-extra {}
            audio #sim-audio preload="auto" {}
            div #sim-screen.screen aria-live="polite" {}
            script #sim-labels type="application/json" { (script_json(&labels)) }
        }
    };
    Ok(ctx.page(StatusCode::OK, t.simulator, body))
}
