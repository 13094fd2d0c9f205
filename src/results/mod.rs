//! Poll results: the store's counters put in the campaign's order, as the results
//! JSON of the format page, a table for the terminal, or the answers as CSV.
//!
//! One code path for every reader: `kuma results` and (later) the HTTP API both call
//! [`compute`]. The cost does not grow with the number of answers: unless a time
//! range is asked for, only counters kept up to date by the store are read.

use std::fmt::Write as _;

/// Breakdown cells below this many callers are shown as `"<5"`, unless
/// `small_group` in kuma.toml (or `KUMA_SMALL_GROUP`) says otherwise.
pub const SMALL_GROUP: u64 = 5;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Serialize, Serializer};

use crate::campaign::Campaign;
use crate::schedule;
use crate::store::{AnswerRow, CountFilter, Store, StoreError};

/// Which broadcast to restrict results to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastSel {
    /// The N-th broadcast that has calls or answers, 1 = the earliest.
    Number(usize),
    /// The broadcast that started on this day, in the campaign's time zone.
    Day(NaiveDate),
}

impl std::str::FromStr for BroadcastSel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.parse::<usize>() {
            if n == 0 {
                return Err("broadcasts are numbered from 1 (the earliest)".into());
            }
            return Ok(BroadcastSel::Number(n));
        }
        schedule::parse_day(s).map(BroadcastSel::Day).map_err(|_| {
            format!("`{s}` is neither a broadcast number (1, 2, …) nor a day (YYYY-MM-DD)")
        })
    }
}

/// What to count.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub by: Option<String>,
    pub broadcast: Option<BroadcastSel>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("`{0}` is not a question of this campaign (questions: {1})")]
    UnknownQuestion(String, String),
    #[error("{0}")]
    NoSuchBroadcast(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The results JSON (see campaign-format.md). Keys beyond the format page's are
/// extensions: `title`, `broadcast`, `since`, `until`, `by`, `broadcasts`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub campaign: String,
    pub title: String,
    pub calls: u64,
    pub completed: u64,
    #[serde(serialize_with = "as_map")]
    pub languages: Vec<(String, u64)>,
    pub questions: Vec<QuestionResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcast: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The question every other one is broken down by, and its choices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<ByQuestion>,
    /// Broadcasts that have calls or answers, oldest first (numbered from 1).
    pub broadcasts: Vec<BroadcastResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuestionResult {
    pub id: String,
    pub answered: u64,
    pub choices: Vec<ChoiceResult>,
    /// The campaign no longer asks it (removed in the studio or by hand): its
    /// answers stay readable, after the questions it asks.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChoiceResult {
    pub id: String,
    pub digit: String,
    pub count: u64,
    /// The question no longer offers it; `digit` is then empty (the key it
    /// had is not kept with the counts).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
    /// With `by`: of these callers, how many gave each answer to the `by` question.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_opt_map")]
    pub by: Option<Vec<(String, u64)>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ByQuestion {
    pub id: String,
    pub choices: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BroadcastResult {
    pub number: usize,
    pub at: DateTime<Utc>,
    pub calls: u64,
    pub answers: u64,
}

fn as_map<S: Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, n)| (k, n)))
}

fn as_opt_map<S: Serializer>(v: &Option<Vec<(String, u64)>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => as_map(v, s),
        None => s.serialize_none(),
    }
}

/// Checks the query against the campaign and the stored broadcasts, and turns it
/// into a store filter.
async fn filter<'q>(
    store: &Store,
    c: &Campaign,
    q: &'q Query,
) -> Result<(CountFilter<'q>, Vec<BroadcastResult>), ResultsError> {
    if let Some(by) = &q.by
        && !c.questions().any(|(n, _)| &n.id == by)
    {
        let ids: Vec<&str> = c.questions().map(|(n, _)| n.id.as_str()).collect();
        return Err(ResultsError::UnknownQuestion(by.clone(), ids.join(", ")));
    }
    let broadcasts: Vec<BroadcastResult> = store
        .broadcasts(&c.id)
        .await?
        .into_iter()
        .enumerate()
        .map(|(i, b)| BroadcastResult {
            number: i + 1,
            at: b.at,
            calls: b.calls,
            answers: b.answers,
        })
        .collect();
    let broadcast = match &q.broadcast {
        None => None,
        Some(BroadcastSel::Number(n)) => Some(
            broadcasts
                .get(n - 1)
                .ok_or_else(|| {
                    ResultsError::NoSuchBroadcast(format!(
                        "broadcast {n} has no calls yet ({} broadcast{} with calls)",
                        broadcasts.len(),
                        if broadcasts.len() == 1 { "" } else { "s" }
                    ))
                })?
                .at,
        ),
        Some(BroadcastSel::Day(day)) => {
            let tz = c
                .schedule
                .as_ref()
                .map(|s| s.timezone)
                .unwrap_or(chrono_tz::UTC);
            Some(
                broadcasts
                    .iter()
                    .find(|b| b.at.with_timezone(&tz).date_naive() == *day)
                    .ok_or_else(|| {
                        ResultsError::NoSuchBroadcast(format!(
                            "no broadcast with calls started on {day}"
                        ))
                    })?
                    .at,
            )
        }
    };
    let f = CountFilter {
        broadcast,
        since: q.since,
        until: q.until,
        by: q.by.as_deref(),
    };
    Ok((f, broadcasts))
}

/// The store filter for a query (its broadcast resolved, `by` checked), for
/// readers other than [`compute`] such as the web funnel.
pub async fn count_filter<'q>(
    store: &Store,
    c: &Campaign,
    q: &'q Query,
) -> Result<CountFilter<'q>, ResultsError> {
    filter(store, c, q).await.map(|(f, _)| f)
}

/// Reads the counts for a campaign and lays them out in the campaign's order, with
/// zero counts shown.
pub async fn compute(store: &Store, c: &Campaign, q: &Query) -> Result<Results, ResultsError> {
    let (f, broadcasts) = filter(store, c, q).await?;
    let counts = store.counts(&c.id, &f).await?;
    let mut languages: Vec<(String, u64)> = c.languages.iter().map(|l| (l.clone(), 0)).collect();
    for (l, n) in &counts.languages {
        match languages.iter_mut().find(|(k, _)| k == l) {
            Some(slot) => slot.1 = *n,
            // A language the campaign no longer offers still had its callers.
            None => languages.push((l.clone(), *n)),
        }
    }
    let by_choices: Option<Vec<String>> = q.by.as_ref().and_then(|by| {
        c.questions()
            .find(|(n, _)| &n.id == by)
            .map(|(_, ch)| ch.iter().map(|x| x.target.clone()).collect())
    });
    let questions = c
        .questions()
        .map(|(node, choices)| {
            let choices: Vec<ChoiceResult> = choices
                .iter()
                .map(|ch| {
                    let count = counts
                        .answers
                        .iter()
                        .find(|a| a.question == node.id && a.choice == ch.target)
                        .map_or(0, |a| a.count);
                    let by = by_choices.as_ref().map(|bys| {
                        bys.iter()
                            .map(|b| {
                                // A question broken down by itself: the diagonal.
                                if q.by.as_ref() == Some(&node.id) {
                                    return (b.clone(), if *b == ch.target { count } else { 0 });
                                }
                                let n = counts
                                    .by
                                    .iter()
                                    .find(|p| {
                                        p.question == node.id
                                            && p.choice == ch.target
                                            && &p.by_choice == b
                                    })
                                    .map_or(0, |p| p.count);
                                (b.clone(), n)
                            })
                            .collect()
                    });
                    ChoiceResult {
                        id: ch.target.clone(),
                        digit: ch.digit.to_string(),
                        count,
                        removed: false,
                        by,
                    }
                })
                .collect();
            QuestionResult {
                id: node.id.clone(),
                answered: choices.iter().map(|c| c.count).sum(),
                choices,
                removed: false,
            }
        })
        .collect();
    let questions = with_removed(questions, &counts.answers);
    Ok(Results {
        campaign: c.id.clone(),
        title: c.title.clone(),
        calls: counts.calls,
        completed: counts.completed,
        languages,
        questions,
        broadcast: f.broadcast,
        since: q.since,
        until: q.until,
        by: q
            .by
            .clone()
            .zip(by_choices)
            .map(|(id, choices)| ByQuestion { id, choices }),
        broadcasts,
    })
}

/// The questions and choices that have answers but that the campaign no
/// longer has, added after the others (in the store's order): a question
/// removed from the file keeps its results.
fn with_removed(
    mut questions: Vec<QuestionResult>,
    answers: &[crate::store::ChoiceCount],
) -> Vec<QuestionResult> {
    for a in answers {
        let i = match questions.iter().position(|q| q.id == a.question) {
            Some(i) => i,
            None => {
                questions.push(QuestionResult {
                    id: a.question.clone(),
                    answered: 0,
                    choices: Vec::new(),
                    removed: true,
                });
                questions.len() - 1
            }
        };
        let Some(q) = questions.get_mut(i) else {
            continue;
        };
        if q.choices.iter().any(|c| c.id == a.choice) {
            continue;
        }
        q.choices.push(ChoiceResult {
            id: a.choice.clone(),
            digit: String::new(),
            count: a.count,
            removed: true,
            by: None,
        });
        q.answered = q.answered.saturating_add(a.count);
    }
    questions
}

/// The columns of the answers CSV.
pub const CSV_HEADER: [&str; 8] = [
    "call",
    "caller",
    "language",
    "question",
    "choice",
    "digit",
    "answered_at",
    "broadcast",
];

/// One answer as a CSV record under [`CSV_HEADER`].
pub fn csv_record(r: AnswerRow) -> [String; 8] {
    [
        r.call.to_string(),
        r.caller,
        r.language.unwrap_or_default(),
        r.question,
        r.choice,
        r.digit,
        r.answered_at.to_rfc3339(),
        r.broadcast.map(|b| b.to_rfc3339()).unwrap_or_default(),
    ]
}

/// Streams the answers as CSV rows (pseudonymous callers only).
pub async fn write_csv<W: std::io::Write + Send>(
    store: &Store,
    c: &Campaign,
    q: &Query,
    out: W,
) -> Result<(), ResultsError> {
    let (f, _) = filter(store, c, q).await?;
    let mut w = csv::Writer::from_writer(out);
    let export = |e: csv::Error| StoreError::Export(Box::new(e));
    w.write_record(CSV_HEADER).map_err(export)?;
    let written = store
        .for_each_answer(&c.id, &f, |r: AnswerRow| {
            w.write_record(csv_record(r)).map_err(export)
        })
        .await
        .and_then(|()| w.flush().map_err(|e| StoreError::Export(Box::new(e))));
    match written {
        // A reader that stops early (`| head`) is not an error.
        Err(StoreError::Export(e)) if is_broken_pipe(e.as_ref()) => Ok(()),
        other => Ok(other?),
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    let kind = match (
        e.downcast_ref::<csv::Error>(),
        e.downcast_ref::<std::io::Error>(),
    ) {
        (Some(c), _) => match c.kind() {
            csv::ErrorKind::Io(io) => Some(io.kind()),
            _ => None,
        },
        (None, Some(io)) => Some(io.kind()),
        _ => None,
    };
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

fn percent(n: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.0}%", n as f64 * 100.0 / total as f64)
    }
}

/// The results as a table for a terminal (or a presenter reading on air).
pub fn table(r: &Results, c: &Campaign) -> String {
    let tz = c
        .schedule
        .as_ref()
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::UTC);
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", r.title, r.campaign);
    if let Some(b) = r.broadcast {
        let _ = writeln!(
            out,
            "broadcast of {}",
            schedule::describe(b.with_timezone(&tz))
        );
    }
    if r.since.is_some() || r.until.is_some() {
        let show = |t: Option<DateTime<Utc>>| {
            t.map_or("…".to_string(), |t| {
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
            })
        };
        let _ = writeln!(
            out,
            "from {} until {} ({})",
            show(r.since),
            show(r.until),
            tz.name()
        );
    }
    let _ = writeln!(
        out,
        "calls: {}   completed: {} ({})",
        r.calls,
        r.completed,
        percent(r.completed, r.calls)
    );
    let langs: Vec<String> = r
        .languages
        .iter()
        .map(|(l, n)| format!("{l} {n}"))
        .collect();
    let _ = writeln!(out, "languages: {}", langs.join("   "));
    for q in &r.questions {
        let _ = writeln!(out, "\n{} ({} answered)", q.id, q.answered);
        let width = q
            .choices
            .iter()
            .map(|c| c.id.chars().count())
            .max()
            .unwrap_or(0);
        if let Some(by) = &r.by {
            let mut head = format!("  {:<w$}  {:>6}", "", "total", w = width + 2);
            for b in &by.choices {
                let _ = write!(head, "  {b:>10}");
            }
            let _ = writeln!(out, "{head}");
        }
        for ch in &q.choices {
            let bar = "#".repeat((ch.count * 30).checked_div(q.answered).unwrap_or(0) as usize);
            let mut line = format!("  {} {:<w$}  {:>6}", ch.digit, ch.id, ch.count, w = width);
            match &ch.by {
                Some(by) => {
                    for (_, n) in by {
                        let _ = write!(line, "  {n:>10}");
                    }
                }
                None => {
                    let _ = write!(line, "  {:>4}  {bar}", percent(ch.count, q.answered));
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    if !r.broadcasts.is_empty() && r.broadcast.is_none() {
        let _ = writeln!(
            out,
            "\nbroadcasts (use --broadcast N or --broadcast YYYY-MM-DD):"
        );
        for b in &r.broadcasts {
            let _ = writeln!(
                out,
                "  {:>3}. {}   {} calls, {} answers",
                b.number,
                schedule::describe(b.at.with_timezone(&tz)),
                b.calls,
                b.answers
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChoiceCount;

    fn counted(question: &str, choice: &str, count: u64) -> ChoiceCount {
        ChoiceCount {
            question: question.into(),
            choice: choice.into(),
            count,
        }
    }

    #[test]
    fn removed_questions_and_choices_keep_their_answers_after_the_others() {
        let asked = vec![QuestionResult {
            id: "q1".into(),
            answered: 2,
            choices: vec![ChoiceResult {
                id: "yes".into(),
                digit: "1".into(),
                count: 2,
                removed: false,
                by: None,
            }],
            removed: false,
        }];
        let answers = [
            counted("q1", "maybe", 1),
            counted("q1", "yes", 2),
            counted("q_old", "no", 3),
            counted("q_old", "yes", 4),
        ];
        let all = with_removed(asked, &answers);
        let ids: Vec<(&str, bool, u64)> = all
            .iter()
            .map(|q| (q.id.as_str(), q.removed, q.answered))
            .collect();
        assert_eq!(ids, [("q1", false, 3), ("q_old", true, 7)]);
        let q1: Vec<(&str, &str, bool)> = all[0]
            .choices
            .iter()
            .map(|c| (c.id.as_str(), c.digit.as_str(), c.removed))
            .collect();
        assert_eq!(q1, [("yes", "1", false), ("maybe", "", true)]);
        let json = serde_json::to_value(&all).unwrap();
        assert!(json[0].get("removed").is_none(), "{json}");
        assert_eq!(json[1]["removed"], true);
    }
}
