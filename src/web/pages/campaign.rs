//! The campaign list, a campaign's results page and the on-air board.
//!
//! Every number is read from [`masked_results`], the JSON the API serves, so the
//! page and `GET /api/campaigns/{id}/results` cannot disagree, "<5" cells included.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Duration, Timelike, Utc};
use chrono_tz::Tz;
use maud::{Markup, html};
use serde_json::Value;

use super::chart::{self, Bar, Column};
use super::{Ctx, Lang, PageError, script_json, words};
use crate::campaign::Campaign;
use crate::outbound::Status;
use crate::results::Query;
use crate::schedule::Poll;
use crate::web::api::{find, masked_results, query, transcript};
use crate::web::callbacks::queue;
use crate::web::funnel::funnel_value;
use crate::web::masking::{COMPLEMENT, SMALL_POPULATION};
use crate::web::{ApiError, ApiState, ROW_LEVEL, Role};

/// How many of the latest broadcasts get a calls-per-hour chart.
const HOURLY_BROADCASTS: usize = 3;
/// The hours shown around a broadcast: from 2 before to 22 after its start.
const HOURS_BEFORE: i64 = 2;
const HOURS_AFTER: i64 = 22;
/// How many of the latest call-backs the page lists (the API lists more).
const LATEST_CALLBACKS: u32 = 10;
/// How much of a pseudonym (`c_` and hex) the call-back table shows.
const PSEUDONYM_SHOWN: usize = 8;

fn tz(c: &Campaign) -> Tz {
    c.schedule
        .as_ref()
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::UTC)
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// A count of the API's JSON as the page shows it: the number in the page's
/// language, a small group as the API says it (`<5`), a complementary masked
/// cell as `*` (the small-group note says what it is).
fn shown(lang: Lang, v: &Value) -> String {
    match v {
        Value::String(s) if s == COMPLEMENT => "*".into(),
        Value::String(s) => s.clone(),
        v => lang.number(n(v)),
    }
}

/// A count for a `data-count` attribute: the number, or the API's mask.
fn attr(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => n(v).to_string(),
    }
}

/// `shown`, with the percentage of `whole` when both are numbers.
fn shown_with_percent(lang: Lang, v: &Value, whole: &Value) -> String {
    match (v.as_u64(), whole.as_u64()) {
        (Some(part), Some(whole)) => format!("{} ({})", lang.number(part), percent(part, whole)),
        _ => shown(lang, v),
    }
}

/// `round(part * 100 / whole)` %, "–" when nobody answered.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    format!("{}%", (part * 100 + whole / 2) / whole)
}

/// The query string without the keys only the page uses (the language, the
/// board's question), for [`query`] and for links to the API.
fn api_query(raw: Option<&str>, page_keys: &[&str]) -> String {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| {
            // An empty value is a form's "none" (`broadcast=`): not a filter.
            let (key, value) = p.split_once('=').unwrap_or((p, ""));
            !value.is_empty() && !page_keys.contains(&key)
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `key` in a query string (not decoded: ids are plain words).
fn param<'q>(raw: Option<&'q str>, key: &str) -> Option<&'q str> {
    raw?.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// What a question says, in the page's language if the campaign has that
/// language: the transcript beside the question's first prompt.
async fn question_text(c: &Campaign, lang: Lang, prompt: Option<&String>) -> Option<String> {
    let prompt = prompt?;
    if !c.languages.iter().any(|l| l == lang.code()) {
        return None;
    }
    let text = transcript(c, lang.code(), prompt).await?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.to_string())
}

/// `GET /`: the campaigns this token may read.
pub(super) async fn list(ctx: Ctx, State(st): State<Arc<ApiState>>) -> Result<Response, PageError> {
    let role = ctx.require(Role::Analyst)?;
    let catalog = st.shared.catalog();
    let mut list = catalog.campaigns();
    list.retain(|c| ctx.scope.allows(&c.id));
    let t = ctx.lang.t();
    let now = Utc::now();
    let body = html! {
        h1 { (t.campaigns) }
        @if list.is_empty() { p { (t.no_campaign) } }
        ul.cards {
            @for c in &list {
                li.card data-campaign=(c.id) {
                    h2 { a href={ "/campaigns/" (c.id) } { (c.title) } }
                    p.muted { (c.id) " · " (c.languages.join(", ")) }
                    (poll_line(&ctx, c, now))
                    p.actions {
                        a href={ "/campaigns/" (c.id) } { (t.results) }
                        " · "
                        a href={ "/campaigns/" (c.id) "/board" } { (t.on_air_board) }
                        @if role >= Role::Broadcaster {
                            " · "
                            a href={ "/campaigns/" (c.id) "/recordings" } { (t.recordings) }
                            " · "
                            a href={ "/campaigns/" (c.id) "/simulator" } { (t.simulator) }
                        }
                    }
                }
            }
        }
        @if role >= Role::Broadcaster && !ctx.scope.is_limited() && !catalog.problems().is_empty() {
            h2 { (t.problems) }
            ul.problems { @for p in catalog.problems() { li { code { (p) } } } }
        }
    };
    Ok(ctx.page(StatusCode::OK, t.campaigns, body))
}

fn poll_line(ctx: &Ctx, c: &Campaign, now: DateTime<Utc>) -> Markup {
    let t = ctx.lang.t();
    let open = c
        .schedule
        .as_ref()
        .map(|s| s.poll(now))
        .unwrap_or(Poll::Open { broadcast: None });
    let next = c
        .schedule
        .as_ref()
        .map(|s| s.next_broadcasts(now, 1))
        .unwrap_or_default();
    html! {
        p {
            @match open {
                Poll::Open { .. } => span.badge.open { (t.poll_open) },
                Poll::Closed => span.badge { (t.poll_closed) },
            }
            @if let Some(at) = next.first() {
                " · " (t.next_broadcasts) (t.colon) (ctx.lang.date_time(*at))
            }
        }
    }
}

/// `GET /campaigns/{id}?by=&broadcast=`: the results page.
pub(super) async fn page(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    let role = ctx.require(Role::Analyst)?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let c = &*c;
    let raw = api_query(uri.query(), &["lang"]);
    let q = query(c, Some(&raw)).map_err(|e| ctx.error(e))?;
    let r = masked_results(&st, c, &q).await.map_err(|e| ctx.error(e))?;
    let t = ctx.lang.t();
    let tz = tz(c);
    let mut texts = Vec::new();
    for (node, _) in c.questions() {
        texts.push(question_text(c, ctx.lang, node.prompts.first()).await);
    }
    let hourly = hourly(&st, c, &r).await.map_err(|e| ctx.error(e))?;
    let funnel = funnel_section(&ctx, &st, c, &q)
        .await
        .map_err(|e| ctx.error(e))?;
    let callbacks = callbacks_section(&ctx, &st, c, role)
        .await
        .map_err(|e| ctx.error(e))?;
    let small = st.small_group();
    let suffix = if raw.is_empty() {
        String::new()
    } else {
        format!("?{raw}")
    };
    let empty = Vec::new();
    let questions = r["questions"].as_array().unwrap_or(&empty);
    let by_choices: Vec<String> = r["by"]["choices"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let body = html! {
        h1 { (c.title) }
        (poll_line(&ctx, c, Utc::now()))
        p.totals {
            (t.calls) (t.colon) strong #calls data-count=(attr(&r["calls"])) { (shown(ctx.lang, &r["calls"])) }
            " · " (t.completed) (t.colon) strong #completed data-count=(attr(&r["completed"])) { (shown(ctx.lang, &r["completed"])) }
        }
        @if r[SMALL_POPULATION] == true {
            p.help #small-population { (t.too_few_calls.replace("{n}", &small.to_string())) }
        }
        nav.actions {
            a.button href={ "/campaigns/" (c.id) "/board" } { (t.on_air_board) }
            @if role >= Role::Broadcaster {
                a.button href={ "/campaigns/" (c.id) "/recordings" } { (t.recordings) }
                a.button href={ "/campaigns/" (c.id) "/simulator" } { (t.simulator) }
                (super::studio::links(ctx.lang, &c.id))
            }
        }
        form.filters method="get" {
            label { (t.breakdown_by) " "
                select name="by" {
                    option value="" { (t.nobody) }
                    @for (node, _) in c.questions() {
                        option value=(node.id) selected[q.by.as_deref() == Some(node.id.as_str())] { (words(&node.id)) }
                    }
                }
            }
            " "
            label { (t.broadcast) " "
                select name="broadcast" {
                    option value="" { (t.all_broadcasts) }
                    @for b in r["broadcasts"].as_array().unwrap_or(&empty) {
                        @let num = n(&b["number"]);
                        option value=(num) selected[param(Some(&raw), "broadcast") == Some(num.to_string().as_str())] {
                            (num) ". " (b["at"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| ctx.lang.date_time(d.with_timezone(&tz))).unwrap_or_default())
                        }
                    }
                }
            }
            " "
            button type="submit" { (t.show) }
        }
        // One row per answer: for admins only, as the API has it.
        @if role >= ROW_LEVEL {
            section.downloads {
                h2 { (t.download) }
                a.button download href={ "/api/campaigns/" (c.id) "/answers.csv" (suffix) } { (t.download_csv) }
                a.button download href={ "/api/campaigns/" (c.id) "/flow-results" } { (t.download_floip) }
            }
        }
        h2 { (t.results) }
        @if q.by.is_some() && small > 1 { p.help { (t.small_group_note.replace("{n}", &small.to_string())) } }
        @for (i, question) in questions.iter().enumerate() {
            @let qid = question["id"].as_str().unwrap_or("");
            @let answered = &question["answered"];
            @let choices = question["choices"].as_array().unwrap_or(&empty);
            section.question data-question=(qid) data-answered=(attr(answered)) {
                h3 { (words(qid)) }
                @if let Some(Some(text)) = texts.get(i) { p.transcript { (text) } }
                p.muted { (shown(ctx.lang, answered)) " " (t.answered) }
                (chart::bars(&words(qid), &choices.iter().map(|ch| {
                    Bar {
                        label: format!("{} · {}", ch["digit"].as_str().unwrap_or(""), words(ch["id"].as_str().unwrap_or(""))),
                        // A masked count draws no bar: its length would tell it.
                        value: n(&ch["count"]),
                        text: shown_with_percent(ctx.lang, &ch["count"], answered),
                        key: ch["id"].as_str().unwrap_or("").to_string(),
                    }
                }).collect::<Vec<_>>()))
                @if !by_choices.is_empty() {
                    div.scroll {
                        table.breakdown {
                            thead { tr {
                                th { (words(qid)) " \\ " (words(q.by.as_deref().unwrap_or(""))) }
                                @for b in &by_choices { th { (words(b)) } }
                            } }
                            tbody {
                                @for ch in choices {
                                    tr data-choice=(ch["id"].as_str().unwrap_or("")) {
                                        th { (words(ch["id"].as_str().unwrap_or(""))) }
                                        @for b in &by_choices {
                                            @let cell = &ch["by"][b.as_str()];
                                            td data-by=(b) { (shown(ctx.lang, cell)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (t.languages) }
        (chart::bars(t.languages, &r["languages"].as_object().map(|m| m.iter().map(|(l, v)| Bar {
            label: l.clone(),
            value: n(v),
            text: shown_with_percent(ctx.lang, v, &r["calls"]),
            key: l.clone(),
        }).collect::<Vec<_>>()).unwrap_or_default()))
        h2 { (t.calls_per_hour) }
        p.help { (t.calls_per_hour_help) }
        @if hourly.is_empty() { p { (t.no_broadcast_yet) } }
        @for (at, cols) in &hourly {
            section.hourly {
                h3 { (ctx.lang.date_time(at.with_timezone(&tz))) }
                (chart::columns(t.calls_per_hour, cols))
            }
        }
        (funnel)
        (callbacks)
    };
    Ok(ctx.page(StatusCode::OK, &c.title, body))
}

/// Where callers stop: per node, the calls that reached it and the callers who
/// hung up there, from the API's funnel JSON (masked cells shown as such, with
/// no bar, since a bar's length would tell the number).
async fn funnel_section(
    ctx: &Ctx,
    st: &ApiState,
    c: &Campaign,
    q: &Query,
) -> Result<Markup, ApiError> {
    let q = Query {
        by: None,
        ..q.clone()
    };
    let f = funnel_value(st, c, &q).await?;
    let t = ctx.lang.t();
    let shown = |v: &Value| shown(ctx.lang, v);
    let bars: Vec<Bar> = f["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|node| Bar {
                    label: format!(
                        "{} ({})",
                        words(node["node"].as_str().unwrap_or("")),
                        node["kind"].as_str().unwrap_or("")
                    ),
                    value: n(&node["reached"]),
                    // Short, so that it fits beside the longest bar; the help
                    // line says what ✕ is.
                    text: format!(
                        "{} · ✕ {}",
                        shown(&node["reached"]),
                        shown(&node["hung_up"])
                    ),
                    key: node["node"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(html! {
        section #funnel {
            h2 { (t.funnel) }
            p.help { (t.funnel_help) }
            (chart::bars(t.funnel, &bars))
        }
    })
}

/// Who is called back and how it went: the counts of the whole queue and, for
/// admins (one row per caller), the latest call-backs, from the same [`queue`]
/// as `GET /api/campaigns/{id}/callbacks`. Nothing for a campaign that has no
/// call-back number and never called anyone.
async fn callbacks_section(
    ctx: &Ctx,
    st: &ApiState,
    c: &Campaign,
    role: Role,
) -> Result<Markup, ApiError> {
    let limit = if role >= ROW_LEVEL {
        LATEST_CALLBACKS
    } else {
        0
    };
    let q = queue(st, &c.id, None, limit).await?;
    let s = &q.summary;
    if c.callback_numbers.is_empty() && s.callbacks == 0 {
        return Ok(html! {});
    }
    let t = ctx.lang.t();
    let lang = ctx.lang;
    let tz = tz(c);
    Ok(html! {
        section #callbacks data-total=(s.callbacks) data-attempts=(s.attempts) {
            h2 { (t.callbacks) }
            p.help { (t.callbacks_help.replace("{tz}", tz.name())) }
            p.totals {
                (t.callbacks_total) (t.colon) strong { (lang.number(s.callbacks)) }
                " · " (lang.number(s.attempts)) " " (t.attempts)
                " · " (lang.number(s.by_kind.missed_call.callbacks)) " " (t.missed_calls)
                " · " (lang.number(s.by_kind.broadcast.callbacks)) " " (t.after_broadcast)
            }
            ul.statuses {
                @for (status, n) in s.by_status.pairs() {
                    li data-status=(status.as_str()) data-count=(n) class=[(n == 0).then_some("muted")] {
                        (t.status(status)) (t.colon) strong { (lang.number(n)) }
                    }
                }
            }
            @if role >= ROW_LEVEL && q.callbacks.is_empty() {
                p { (t.no_callbacks) }
            } @else if role >= ROW_LEVEL {
                h3 { (t.latest_callbacks.replace("{n}", &q.callbacks.len().to_string())) }
                div.scroll {
                    table.callbacks {
                        thead { tr {
                            th { (t.caller) } th { (t.status) } th { (t.tries) } th { (t.next_try) }
                        } }
                        tbody {
                            @for e in &q.callbacks {
                                tr data-id=(e.id) data-status=(e.status) {
                                    td title=(e.caller) { code { (short_pseudonym(&e.caller)) } }
                                    td {
                                        (Status::parse(&e.status).map_or(e.status.as_str(), |st| t.status(st)))
                                        @if let Some(note) = &e.note { " " span.muted { "(" (note.replace('_', " ")) ")" } }
                                    }
                                    td { (e.attempts) }
                                    td {
                                        @if let Some(at) = e.next_at.map(|at| at.with_timezone(&tz)) {
                                            // Date and time on two lines: the table fits a phone.
                                            (at.format("%Y-%m-%d")) br; (at.format("%H:%M"))
                                        } @else { "–" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// A pseudonym short enough for a phone's screen: its first characters, as a
/// git hash is shortened (the title keeps the whole).
fn short_pseudonym(p: &str) -> String {
    if p.chars().count() <= PSEUDONYM_SHOWN {
        return p.to_string();
    }
    let mut short: String = p.chars().take(PSEUDONYM_SHOWN).collect();
    short.push('…');
    short
}

/// Calls per hour around the latest broadcasts with calls, newest first.
async fn hourly(
    st: &ApiState,
    c: &Campaign,
    r: &Value,
) -> Result<Vec<(DateTime<Utc>, Vec<Column>)>, ApiError> {
    let tz = tz(c);
    let starts: Vec<DateTime<Utc>> = r["broadcasts"]
        .as_array()
        .map(|bs| {
            bs.iter()
                .rev()
                .filter_map(|b| b["at"].as_str())
                .filter_map(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.with_timezone(&Utc))
                .take(HOURLY_BROADCASTS)
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for at in starts {
        // Hours are whole UTC hours; a broadcast at 19:30 marks the 19:00 hour.
        let hour0 = at
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(at);
        let from = hour0 - Duration::hours(HOURS_BEFORE);
        let until = hour0 + Duration::hours(HOURS_AFTER);
        let rows = st
            .shared
            .store
            .calls_per_hour(&c.id, from, until)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let cols = (0..HOURS_BEFORE + HOURS_AFTER)
            .map(|i| {
                let h = from + Duration::hours(i);
                let value = rows.iter().find(|(t, _)| *t == h).map_or(0, |(_, n)| *n);
                let local = h.with_timezone(&tz);
                Column {
                    label: if i % 4 == 0 {
                        local.format("%Hh").to_string()
                    } else {
                        String::new()
                    },
                    value,
                    title: format!("{} : {value}", local.format("%H:%M")),
                    mark: h == hour0,
                }
            })
            .collect();
        out.push((at, cols));
    }
    Ok(out)
}

/// `GET /campaigns/{id}/board?q=QUESTION`: one question's results in big type,
/// updated live (Server-Sent Events) for the studio screen.
pub(super) async fn board(
    ctx: Ctx,
    State(st): State<Arc<ApiState>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, PageError> {
    ctx.require(Role::Analyst)?;
    let c = find(&st, &id).map_err(|e| ctx.error(e))?;
    let c = &*c;
    let t = ctx.lang.t();
    let raw = api_query(uri.query(), &["lang", "q"]);
    let q: Query = query(c, Some(&raw)).map_err(|e| ctx.error(e))?;
    let (node, _) = match param(uri.query(), "q") {
        Some(qid) => c
            .questions()
            .find(|(n, _)| n.id == qid)
            .ok_or_else(|| ctx.error(ApiError::NotFound(format!("no question `{qid}`"))))?,
        None => c
            .questions()
            .next()
            .ok_or_else(|| ctx.error(ApiError::NotFound("no question".into())))?,
    };
    let r = masked_results(&st, c, &q).await.map_err(|e| ctx.error(e))?;
    let empty = Vec::new();
    let question = r["questions"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .find(|x| x["id"] == node.id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    let answered = &question["answered"];
    let text = question_text(c, ctx.lang, node.prompts.first()).await;
    let live = format!(
        "/api/campaigns/{}/results/live{}",
        c.id,
        if raw.is_empty() {
            String::new()
        } else {
            format!("?{raw}")
        }
    );
    let labels = serde_json::json!({ "live": t.live, "reconnecting": t.reconnecting });
    let body = html! {
        section #board.board data-live=(live) data-question=(node.id) {
            p.muted { (c.title) " · " (t.on_air) }
            h1 { (text.unwrap_or_else(|| words(&node.id))) }
            ul.big {
                @for ch in question["choices"].as_array().unwrap_or(&empty) {
                    @let count = &ch["count"];
                    @let whole = n(answered);
                    li data-choice=(ch["id"].as_str().unwrap_or("")) {
                        span.label { (ch["digit"].as_str().unwrap_or("")) " · " (words(ch["id"].as_str().unwrap_or(""))) }
                        span.count data-count=(attr(count)) { (shown(ctx.lang, count)) }
                        span.pct { @if count.is_u64() { (percent(n(count), whole)) } @else { "–" } }
                        div.track { div.fill style={ "width:" ((n(count) * 100).checked_div(whole).unwrap_or(0)) "%" } {} }
                    }
                }
            }
            p.total { (t.answered) (t.colon) span #answered data-count=(attr(answered)) { (shown(ctx.lang, answered)) }
                " · " span #live-status { "…" } }
            script #board-labels type="application/json" { (script_json(&labels)) }
        }
        nav.questions {
            @for (other, _) in c.questions() {
                a href={ "/campaigns/" (c.id) "/board?q=" (other.id) } aria-current=[(other.id == node.id).then_some("page")] { (words(&other.id)) }
            }
        }
    };
    Ok(ctx.page(StatusCode::OK, t.on_air_board, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_and_survive_zero() {
        assert_eq!(percent(1, 3), "33%");
        assert_eq!(percent(2, 3), "67%");
        assert_eq!(percent(0, 0), "–");
    }

    #[test]
    fn pseudonyms_are_shortened_for_the_table() {
        assert_eq!(short_pseudonym("c_0123456789abcdef"), "c_012345…");
        assert_eq!(short_pseudonym("c_01"), "c_01");
    }

    #[test]
    fn page_keys_are_kept_from_the_api() {
        assert_eq!(
            api_query(Some("by=q_gender&lang=fr&broadcast=1"), &["lang"]),
            "by=q_gender&broadcast=1"
        );
        assert_eq!(api_query(Some("by=&broadcast=2"), &["lang"]), "broadcast=2");
        assert_eq!(api_query(None, &["lang"]), "");
        assert_eq!(param(Some("q=q_region&lang=fr"), "q"), Some("q_region"));
        assert_eq!(param(Some("q="), "q"), None);
    }
}
