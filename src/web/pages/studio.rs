//! The studio's pages: the schedule editor, the prompts of a campaign and this
//! week's question (its question and message nodes).
//! Broadcasters only. Both are shells around the studio API
//! (`crate::web::studio`, `crate::web::prompts`), rendered with the current
//! state so they read without JavaScript; `studio.js` (loaded by these pages
//! only, so the other pages do not pay for it) does the editing: the schedule
//! page asks `POST …/schedule/check` as one types and shows the next broadcasts
//! and whether the poll is open, then saves with `If-Match`; the prompts page
//! plays what callers hear, uploads a file, or records from the microphone
//! (a level meter, listen back, retake, keep: a 16-bit WAV made in the page);
//! the questions page changes, moves, removes and adds question and message
//! nodes through `PUT|DELETE …/nodes/{node}`, recording a new question's
//! prompt in every language first.
//!
//! Their words are here, in French and English, rather than in `i18n.rs`: the
//! studio is one feature with its own words, and a translator finds them in
//! one table per language all the same.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};

use super::{Asset, Ctx, Lang, PageError, asset, script_json};
use crate::campaign::edit::{Slot, schedule_edit_of};
use crate::web::api::{find, next_broadcasts, poll};
use crate::web::{ApiState, Role};

const STUDIO_JS: &str = include_str!("studio.js");

static STUDIO_JS_ASSET: Asset = Asset {
    body: STUDIO_JS,
    content_type: "text/javascript; charset=utf-8",
    version: OnceLock::new(),
    gzipped: OnceLock::new(),
};

/// `GET /assets/studio.js`.
pub(super) async fn js(headers: HeaderMap) -> Response {
    asset(&headers, &STUDIO_JS_ASSET)
}

/// The studio's words.
pub(super) struct Words {
    schedule: &'static str,
    prompts: &'static str,
    timezone: &'static str,
    broadcasts: &'static str,
    weekly: &'static str,
    once: &'static str,
    days: [&'static str; 7],
    date: &'static str,
    time: &'static str,
    cron: &'static str,
    remove: &'static str,
    add_weekly: &'static str,
    add_date: &'static str,
    poll_window: &'static str,
    poll_window_help: &'static str,
    from: &'static str,
    until: &'static str,
    save: &'static str,
    saved: &'static str,
    next_broadcasts: &'static str,
    none: &'static str,
    poll_open: &'static str,
    poll_closed: &'static str,
    conflict: &'static str,
    needs_js: &'static str,
    language: &'static str,
    upload: &'static str,
    record: &'static str,
    stop: &'static str,
    listen: &'static str,
    retake: &'static str,
    keep: &'static str,
    uploading: &'static str,
    states: [&'static str; 4],
    mic_refused: &'static str,
    questions: &'static str,
    questions_help: &'static str,
    kind: &'static str,
    kinds: [&'static str; 2],
    prompt: &'static str,
    prompt_help: &'static str,
    choices: &'static str,
    key: &'static str,
    choice: &'static str,
    add_choice: &'static str,
    next: &'static str,
    on_fail: &'static str,
    carry_on: &'static str,
    move_up: &'static str,
    move_down: &'static str,
    add_question: &'static str,
    node_id: &'static str,
    after: &'static str,
    recordings: &'static str,
    other_node: &'static str,
}

const EN: Words = Words {
    schedule: "Schedule",
    prompts: "Prompts",
    timezone: "Time zone",
    broadcasts: "Broadcasts",
    weekly: "Every week",
    once: "Once",
    days: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    date: "Date",
    time: "Time",
    cron: "Written in the file as",
    remove: "Remove",
    add_weekly: "Add a weekly broadcast",
    add_date: "Add a one-off date",
    poll_window: "Poll open for",
    poll_window_help: "after each broadcast starts, e.g. 90m, 48h, 2d; empty: always open",
    from: "First day",
    until: "Last day",
    save: "Save",
    saved: "Saved",
    next_broadcasts: "Next broadcasts",
    none: "None",
    poll_open: "The poll is open now",
    poll_closed: "The poll is closed now",
    conflict: "Someone else changed this campaign meanwhile:",
    needs_js: "Editing needs JavaScript.",
    language: "Language",
    upload: "Upload",
    record: "Record",
    stop: "Stop",
    listen: "Listen",
    retake: "Retake",
    keep: "Keep",
    uploading: "Sending…",
    states: ["ok", "missing", "to record", "problem"],
    mic_refused: "The microphone cannot be used:",
    questions: "This week's question",
    questions_help: "The questions and messages of the call, in the order callers hear them. Every change is checked like `kuma check` and saved to the campaign file.",
    kind: "Kind",
    kinds: ["Question", "Message"],
    prompt: "Prompt",
    prompt_help: "the recording's name; several: separated by commas",
    choices: "Choices",
    key: "Key",
    choice: "Choice",
    add_choice: "Add a choice",
    next: "Then",
    on_fail: "If nobody answers",
    carry_on: "carry on (Then)",
    move_up: "Move up",
    move_down: "Move down",
    add_question: "Add a question",
    node_id: "Name",
    after: "Asked after",
    recordings: "Its recording in each language (needed before saving)",
    other_node: "not edited here",
};

const FR: Words = Words {
    schedule: "Programmation",
    prompts: "Messages enregistrés",
    timezone: "Fuseau horaire",
    broadcasts: "Diffusions",
    weekly: "Chaque semaine",
    once: "Une fois",
    days: ["lun", "mar", "mer", "jeu", "ven", "sam", "dim"],
    date: "Date",
    time: "Heure",
    cron: "Écrit dans le fichier ainsi",
    remove: "Retirer",
    add_weekly: "Ajouter une diffusion hebdomadaire",
    add_date: "Ajouter une date unique",
    poll_window: "Sondage ouvert pendant",
    poll_window_help: "après le début de chaque diffusion, ex. 90m, 48h, 2d ; vide : toujours ouvert",
    from: "Premier jour",
    until: "Dernier jour",
    save: "Enregistrer",
    saved: "Enregistré",
    next_broadcasts: "Prochaines diffusions",
    none: "Aucune",
    poll_open: "Le sondage est ouvert maintenant",
    poll_closed: "Le sondage est fermé maintenant",
    conflict: "Quelqu'un d'autre a modifié cette campagne entre-temps :",
    needs_js: "La modification demande JavaScript.",
    language: "Langue",
    upload: "Envoyer",
    record: "Enregistrer",
    stop: "Arrêter",
    listen: "Écouter",
    retake: "Refaire",
    keep: "Garder",
    uploading: "Envoi…",
    states: ["ok", "manquant", "à enregistrer", "problème"],
    mic_refused: "Le micro ne peut pas être utilisé :",
    questions: "La question de la semaine",
    questions_help: "Les questions et messages de l'appel, dans l'ordre où on les entend. Chaque changement est vérifié comme par `kuma check` et enregistré dans le fichier de la campagne.",
    kind: "Type",
    kinds: ["Question", "Message"],
    prompt: "Message enregistré",
    prompt_help: "le nom de l'enregistrement ; plusieurs : séparés par des virgules",
    choices: "Réponses",
    key: "Touche",
    choice: "Réponse",
    add_choice: "Ajouter une réponse",
    next: "Ensuite",
    on_fail: "Sans réponse",
    carry_on: "continuer (Ensuite)",
    move_up: "Monter",
    move_down: "Descendre",
    add_question: "Ajouter une question",
    node_id: "Nom",
    after: "Posée après",
    recordings: "Son enregistrement dans chaque langue (nécessaire avant d'enregistrer)",
    other_node: "non modifié ici",
};

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Fr => &FR,
    }
}

const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One broadcast row of the editor (also the template for new rows).
fn slot_row(w: &Words, slot: &Slot) -> Markup {
    let kind = if slot.cron.is_some() {
        "cron"
    } else if slot.date.is_some() {
        "once"
    } else {
        "weekly"
    };
    let days = slot.days.clone().unwrap_or_default();
    html! {
        li.slot data-kind=(kind) {
            @match kind {
                "cron" => {
                    span.muted { (w.cron) " " }
                    code data-field="cron" { (slot.cron.as_deref().unwrap_or("")) }
                }
                "once" => {
                    label { (w.once) " · " (w.date) " "
                        input type="date" data-field="date" value=(slot.date.as_deref().unwrap_or(""));
                    }
                }
                _ => {
                    span { (w.weekly) " " }
                    @for (i, d) in DAY_KEYS.iter().enumerate() {
                        label.day {
                            input type="checkbox" data-day=(d) checked[days.iter().any(|x| x == d)];
                            (w.days[i])
                        }
                    }
                }
            }
            @if kind != "cron" {
                label { " " (w.time) " "
                    input type="time" data-field="time" value=(slot.time.as_deref().unwrap_or("19:00"));
                }
            }
            button.remove type="button" { (w.remove) }
        }
    }
}

/// `GET /campaigns/{id}/schedule`.
pub(super) async fn schedule(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    ctx.require(Role::Broadcaster)?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let etag = crate::web::studio::file_etag(&c)
        .await
        .map_err(|e| ctx.error(e))?;
    let w = words(ctx.lang);
    let s = c.schedule.as_ref().map(schedule_edit_of);
    let now = Utc::now();
    let upcoming = next_broadcasts(&c, now);
    let open = poll(&c, now)["open"] == true;
    let labels = serde_json::json!({
        "none": w.none, "open": w.poll_open, "closed": w.poll_closed,
        "saved": w.saved, "conflict": w.conflict,
    });
    let weekly = Slot {
        days: Some(vec![]),
        date: None,
        time: Some("19:00".into()),
        cron: None,
    };
    let once = Slot {
        days: None,
        date: Some(now.format("%Y-%m-%d").to_string()),
        time: Some("19:00".into()),
        cron: None,
    };
    let body = html! {
        h1 { (w.schedule) }
        p.muted { a href={ "/campaigns/" (c.id) } { (c.title) } }
        noscript { p.error { (w.needs_js) } }
        form #schedule.studio data-api={ "/api/campaigns/" (c.id) "/schedule" } data-etag=(etag) {
            p { label { (w.timezone) " "
                input data-field="timezone" required value=(s.as_ref().map_or("Africa/Bamako", |s| s.timezone.as_str()));
            } }
            h2 { (w.broadcasts) }
            ul #slots.slots {
                @for slot in s.as_ref().map(|s| s.broadcasts.as_slice()).unwrap_or_default() {
                    (slot_row(w, slot))
                }
            }
            p {
                button #add-weekly type="button" { (w.add_weekly) }
                button #add-once type="button" { (w.add_date) }
            }
            template #slot-weekly { (slot_row(w, &weekly)) }
            template #slot-once { (slot_row(w, &once)) }
            p { label { (w.poll_window) " "
                input data-field="poll_window" size="6" value=(s.as_ref().and_then(|s| s.poll_window.as_deref()).unwrap_or(""));
            } " " span.help { (w.poll_window_help) } }
            p {
                label { (w.from) " " input type="date" data-field="from" value=(s.as_ref().and_then(|s| s.from.as_deref()).unwrap_or("")); }
                " "
                label { (w.until) " " input type="date" data-field="until" value=(s.as_ref().and_then(|s| s.until.as_deref()).unwrap_or("")); }
            }
            p #schedule-error.error role="alert" {}
            section.preview aria-live="polite" {
                h2 { (w.next_broadcasts) }
                ul #next {
                    @for u in &upcoming { li { (u.text) } }
                    @if upcoming.is_empty() { li { (w.none) } }
                }
                p #poll-state data-open=(open) { (if open { w.poll_open } else { w.poll_closed }) }
            }
            p {
                button #save type="submit" { (w.save) }
                " " span #schedule-status.saved role="status" {}
            }
            script #studio-labels type="application/json" { (script_json(&labels)) }
        }
        script src={ "/assets/studio.js?v=" (STUDIO_JS_ASSET.version()) } defer {}
    };
    Ok(ctx.page(StatusCode::OK, w.schedule, body))
}

/// `GET /campaigns/{id}/prompts`.
pub(super) async fn prompts(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    ctx.require(Role::Broadcaster)?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let w = words(ctx.lang);
    let data = st.shared.data.clone();
    let list = tokio::task::spawn_blocking(move || crate::web::prompts::states(&c, &data))
        .await
        .map_err(|e| ctx.error(crate::web::ApiError::Internal(e.to_string())))?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let labels = serde_json::json!({
        "uploading": w.uploading, "stop": w.stop, "record": w.record,
        "mic": w.mic_refused, "saved": w.saved,
    });
    let state_word = |s: &str| match s {
        "ok" => w.states[0],
        "missing" => w.states[1],
        "placeholder" => w.states[2],
        _ => w.states[3],
    };
    let body = html! {
        h1 { (w.prompts) }
        p.muted { a href={ "/campaigns/" (c.id) } { (c.title) } }
        noscript { p.error { (w.needs_js) } }
        ul.prompts #prompts data-api={ "/api/campaigns/" (c.id) "/prompts" } {
            @for p in &list {
                li.prompt data-prompt=(p.prompt) data-language=(p.language) data-state=(p.state) {
                    p {
                        strong { (p.prompt) } " · " (w.language) " " (p.language) " · "
                        span.badge.state { (state_word(p.state)) }
                        @if let Some(ms) = p.duration_ms { " · " span.duration { (format!("{:.1} s", ms as f64 / 1000.0)) } }
                    }
                    @if let Some(r) = &p.reason { p.reason.help { (r) } }
                    @if let Some(t) = &p.transcript { p.transcript { (t) } }
                    @if let Some(a) = &p.audio { audio controls preload="none" src=(a) {} }
                    p.actions {
                        label { (w.upload) " " input type="file" accept="audio/*" data-upload; }
                        " "
                        button.record type="button" { (w.record) }
                        button.listen type="button" hidden { (w.listen) }
                        button.retake type="button" hidden { (w.retake) }
                        button.keep type="button" hidden { (w.keep) }
                        meter.level min="0" max="1" value="0" hidden {}
                        " " span.status role="status" {}
                    }
                }
            }
        }
        script #studio-labels type="application/json" { (script_json(&labels)) }
        script src={ "/assets/studio.js?v=" (STUDIO_JS_ASSET.version()) } defer {}
    };
    Ok(ctx.page(StatusCode::OK, w.prompts, body))
}

/// The studio links of a campaign, for the campaign pages.
pub fn links(lang: Lang, id: &str) -> Markup {
    let w = words(lang);
    html! {
        a.button href={ "/campaigns/" (id) "/schedule" } { (w.schedule) }
        a.button href={ "/campaigns/" (id) "/prompts" } { (w.prompts) }
        a.button href={ "/campaigns/" (id) "/questions" } { (w.questions) }
    }
}

/// One choice row of a question's editor.
fn choice_row(w: &Words, key: &str, id: &str) -> Markup {
    html! {
        li.choice {
            label { (w.key) " " input data-field="key" size="2" maxlength="1" inputmode="numeric" value=(key); }
            " "
            label { (w.choice) " " input data-field="choice" size="12" value=(id); }
            " " button.remove-choice type="button" { (w.remove) }
        }
    }
}

/// A select of node ids; `empty` is the label of the "none" entry, if any.
fn node_select(field: &str, ids: &[&str], selected: Option<&str>, empty: Option<&str>) -> Markup {
    html! {
        select data-field=(field) {
            @if let Some(label) = empty { option value="" selected[selected.is_none()] { (label) } }
            @for id in ids { option value=(id) selected[selected == Some(*id)] { (id) } }
        }
    }
}

/// The fields of a question or message node (an existing one, or the new one).
fn node_fields(
    w: &Words,
    ids: &[&str],
    kind: &str,
    prompt: &str,
    choices: &[(String, String)],
    next: Option<&str>,
    on_fail: Option<&str>,
) -> Markup {
    html! {
        p {
            label { (w.kind) " "
                select data-field="kind" {
                    option value="question" selected[kind == "question"] { (w.kinds[0]) }
                    option value="message" selected[kind == "message"] { (w.kinds[1]) }
                }
            }
            " "
            label { (w.prompt) " " input data-field="prompt" value=(prompt); }
            " " span.help { (w.prompt_help) }
        }
        div.choices hidden[kind != "question"] {
            (w.choices)
            ul.choices {
                @for (k, id) in choices { (choice_row(w, k, id)) }
            }
            button.add-choice type="button" { (w.add_choice) }
        }
        p {
            label { (w.next) " " (node_select("next", ids, next, next.is_none().then_some("—"))) }
            " "
            label.on-fail hidden[kind != "question"] { (w.on_fail) " " (node_select("on_fail", ids, on_fail, Some(w.carry_on))) }
        }
    }
}

/// `GET /campaigns/{id}/questions`: this week's question, the question and
/// message nodes of the call in order: change, move, remove, add.
pub(super) async fn questions(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    use crate::campaign::NodeKind;
    ctx.require(Role::Broadcaster)?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let etag = crate::web::studio::file_etag(&c)
        .await
        .map_err(|e| ctx.error(e))?;
    let w = words(ctx.lang);
    let ids: Vec<&str> = c.nodes.iter().map(|n| n.id.as_str()).collect();
    let with_next: Vec<&str> = c
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.kind,
                NodeKind::Language { .. }
                    | NodeKind::Message { .. }
                    | NodeKind::Question { .. }
                    | NodeKind::Record { .. }
            )
        })
        .map(|n| n.id.as_str())
        .collect();
    let last_question = c.questions().last().map(|(n, _)| n.id.as_str());
    let labels = serde_json::json!({
        "uploading": w.uploading, "stop": w.stop, "record": w.record,
        "mic": w.mic_refused, "saved": w.saved, "conflict": w.conflict,
    });
    let blank = [
        ("1".to_string(), String::new()),
        ("2".to_string(), String::new()),
        ("3".to_string(), String::new()),
    ];
    let body = html! {
        h1 { (w.questions) }
        p.muted { a href={ "/campaigns/" (c.id) } { (c.title) } }
        p.help { (w.questions_help) }
        noscript { p.error { (w.needs_js) } }
        div #nodes.studio data-api={ "/api/campaigns/" (c.id) "/nodes" } data-etag=(etag) {
            p #nodes-error.error role="alert" {}
            ol.nodes {
                @for n in &c.nodes {
                    @match &n.kind {
                        NodeKind::Question { choices, next, on_fail, .. } => {
                            li.node data-node=(n.id) data-editable="true" {
                                fieldset {
                                    legend { strong { (n.id) } }
                                    (node_fields(w, &ids, "question", &n.prompts.join(", "),
                                        &choices.iter().map(|ch| (ch.digit.to_string(), ch.target.clone())).collect::<Vec<_>>(),
                                        Some(next), on_fail.as_deref()))
                                    (node_buttons(w))
                                }
                            }
                        }
                        NodeKind::Message { next } => {
                            li.node data-node=(n.id) data-editable="true" {
                                fieldset {
                                    legend { strong { (n.id) } }
                                    (node_fields(w, &ids, "message", &n.prompts.join(", "), &[], Some(next), None))
                                    (node_buttons(w))
                                }
                            }
                        }
                        other => {
                            li.node.muted data-node=(n.id) { (n.id) " · " (other.name()) " · " (w.other_node) }
                        }
                    }
                }
            }
            template #choice-row { (choice_row(w, "", "")) }
            section.node.new-node #new-node {
                h2 { (w.add_question) }
                p {
                    label { (w.node_id) " " input data-field="id" size="16" pattern="[A-Za-z0-9_-]+"; }
                    " "
                    label { (w.after) " " (node_select("after", &with_next, last_question, None)) }
                }
                (node_fields(w, &ids, "question", "", &blank, None, None))
                p { (w.recordings) }
                ul.prompts.new-prompts data-api={ "/api/campaigns/" (c.id) "/prompts" } {
                    @for l in &c.languages {
                        li.prompt data-language=(l) data-prompt="" {
                            (w.language) " " strong { (l) } " · " span.state {}
                            p.actions {
                                label { (w.upload) " " input type="file" accept="audio/*" data-upload; }
                                " "
                                button.record type="button" { (w.record) }
                                button.listen type="button" hidden { (w.listen) }
                                button.retake type="button" hidden { (w.retake) }
                                button.keep type="button" hidden { (w.keep) }
                                meter.level min="0" max="1" value="0" hidden {}
                                " " span.status role="status" {}
                            }
                        }
                    }
                }
                p { button.add type="button" #add-node { (w.add_question) } " " span.status role="status" {} }
            }
        }
        script #studio-labels type="application/json" { (script_json(&labels)) }
        script src={ "/assets/studio.js?v=" (STUDIO_JS_ASSET.version()) } defer {}
    };
    Ok(ctx.page(StatusCode::OK, w.questions, body))
}

fn node_buttons(w: &Words) -> Markup {
    html! {
        p.actions {
            button.save type="button" { (w.save) }
            " " button.up type="button" { (w.move_up) }
            " " button.down type="button" { (w.move_down) }
            " " button.delete type="button" { (w.remove) }
            " " span.status role="status" {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_languages_name_seven_days_and_four_states() {
        for w in [&super::EN, &super::FR] {
            assert_eq!(w.days.len(), 7);
            assert_eq!(w.states.len(), 4);
        }
    }
}
