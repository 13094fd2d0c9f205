//! The answers as a FLOIP Flow Results package, the open format that Viamo,
//! InSTEDD, Nyaruka and Ona wrote for poll results
//! (<https://github.com/FLOIP/flow-results>, specification 1.0.0-rc1).
//!
//! `GET /api/campaigns/{id}/flow-results` is the package descriptor (a Data
//! Package with `profile: flow-results-package`); its one resource describes the
//! seven columns and one `select_one` question per question node. The
//! specification forbids inline data, so the resource's `path` is
//! `flow-results/data`, relative to the descriptor's URL:
//! `GET /api/campaigns/{id}/flow-results/data` serves the rows.
//!
//! Versioning follows the specification's "option 1": the package `id` (a
//! version 4 UUID, as required) is derived with the server secret from the
//! campaign id and its questions, so it stays the same while the questions do
//! and changes when a question or choice changes.
//!
//! Small groups: the rows are one per answer, like answers.csv, so there is no
//! cell to mask. They carry the caller's pseudonym (a keyed HMAC; never a phone
//! number, and not reversible without the server secret), the call number, the
//! language, the time and the answer. Rows like these undo any masking of the
//! aggregates (count the rows of one pseudonym, one region, one minute), so the
//! rows need an admin token, as answers.csv does ([`super::ROW_LEVEL`]); the
//! descriptor, which holds only the questions, stays readable by analysts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json as json_value};
use sha2::Sha256;

use super::api::{find, json, query, results_error, transcript};
use super::{ApiError, ApiPath, ApiState, Auth, Role};
use crate::campaign::Campaign;
use crate::results::count_filter;
use crate::store::AnswerRow;

/// The specification version this package follows.
const SPEC_VERSION: &str = "1.0.0-rc1";

/// `GET /api/campaigns/{id}/flow-results`: the package descriptor.
pub(super) async fn descriptor(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Role::Analyst)?;
    let c = find(&st, &id)?;
    // The campaign file's time is when this version of the flow was made.
    let made: DateTime<Utc> = tokio::fs::metadata(&c.file)
        .await
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    let made = made.to_rfc3339_opts(SecondsFormat::Secs, false);
    let mut questions = Map::new();
    for (node, choices) in c.questions() {
        let label = question_label(&c, &node.prompts).await;
        questions.insert(
            node.id.clone(),
            json_value!({
                "type": "select_one",
                "label": label.unwrap_or_else(|| node.id.clone()),
                "type_options": {
                    "choices": choices.iter().map(|ch| ch.target.as_str()).collect::<Vec<_>>(),
                },
            }),
        );
    }
    // Answers to a question (or choice) the campaign no longer has are still
    // rows of the package: their question is described too, by its id.
    let counts = st
        .shared
        .store
        .counts(&c.id, &crate::store::CountFilter::default())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    for a in &counts.answers {
        let q = questions.entry(a.question.clone()).or_insert_with(|| {
            json_value!({
                "type": "select_one",
                "label": a.question,
                "type_options": { "choices": [] },
            })
        });
        if let Some(choices) = q
            .pointer_mut("/type_options/choices")
            .and_then(Value::as_array_mut)
            && !choices.iter().any(|ch| ch == &a.choice)
        {
            choices.push(Value::from(a.choice.clone()));
        }
    }
    let key = st.shared.pseudonyms.derive_key("flow-results package id");
    let name = package_name(&c.id);
    Ok(json(
        StatusCode::OK,
        &json_value!({
            "profile": "flow-results-package",
            "flow_results_specification_version": SPEC_VERSION,
            "created": made,
            "modified": made,
            "id": package_id(&key, &c.id, &questions)?,
            "name": name,
            "title": c.title,
            "resources": [{
                "name": format!("{name}-responses"),
                "path": "flow-results/data",
                "access_method": "file",
                "mediatype": "application/json",
                "encoding": "utf-8",
                "schema": {
                    "fields": fields(),
                    "questions": questions,
                },
            }],
        }),
    ))
}

/// `GET /api/campaigns/{id}/flow-results/data`: one row per answer, oldest
/// first; `broadcast`, `since` and `until` as for the results. Admins only.
pub(super) async fn data(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    auth.require(super::ROW_LEVEL)?;
    let c = find(&st, &id)?;
    let q = query(&c, uri.query())?;
    if q.by.is_some() {
        return Err(ApiError::BadRequest(
            "the rows take broadcast, since and until, not by".into(),
        ));
    }
    let store = &st.shared.store;
    let f = count_filter(store, &c, &q).await.map_err(results_error)?;
    let mut rows: Vec<Value> = Vec::new();
    store
        .for_each_answer(&c.id, &f, |r| {
            rows.push(row(&r));
            Ok(())
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(StatusCode::OK, &rows))
}

/// `[timestamp, row_id, contact_id, session_id, question_id, response,
/// response_metadata]`.
fn row(r: &AnswerRow) -> Value {
    // A call keeps one answer per question (the last one counts), so call and
    // question name the row uniquely within the package.
    let row_id = format!("{}-{}", r.call, r.question);
    json_value!([
        r.answered_at.to_rfc3339_opts(SecondsFormat::Millis, false),
        row_id,
        r.caller,
        r.call.to_string(),
        r.question,
        r.choice,
        { "digit": r.digit, "language": r.language },
    ])
}

/// The seven columns, as the specification lists them.
fn fields() -> Value {
    let field = |name: &str, title: &str, kind: &str| json_value!({ "name": name, "title": title, "type": kind });
    Value::Array(vec![
        field("timestamp", "Timestamp", "datetime"),
        field("row_id", "Row ID", "string"),
        field("contact_id", "Contact ID", "string"),
        field("session_id", "Session ID", "string"),
        field("question_id", "Question ID", "string"),
        field("response", "Response", "any"),
        field("response_metadata", "Response Metadata", "object"),
    ])
}

/// The question's words: the transcript of its first prompt in the first
/// language that has a real one (not a placeholder).
async fn question_label(c: &Campaign, prompts: &[String]) -> Option<String> {
    let first = prompts.first()?;
    for language in &c.languages {
        if let Some(text) = transcript(c, language, first).await
            && !text.starts_with("PLACEHOLDER")
        {
            return Some(text);
        }
    }
    None
}

/// A Data Package name: lower case letters, digits, `.`, `_` and `-` only.
fn package_name(id: &str) -> String {
    id.chars()
        .map(|ch| {
            let ch = ch.to_ascii_lowercase();
            if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') {
                ch
            } else {
                '-'
            }
        })
        .collect()
}

/// A version 4 UUID (RFC 4122 layout) from an HMAC of the campaign id and the
/// package's questions with their choices (those of the campaign and those
/// only stored answers still have; not their labels): the same on every request
/// and every server sharing the secret, new when the package's questions
/// change, and not guessable from the campaign alone.
fn package_id(
    key: &[u8],
    campaign: &str,
    questions: &Map<String, Value>,
) -> Result<String, ApiError> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|e| ApiError::Internal(format!("package id key: {e}")))?;
    mac.update(campaign.as_bytes());
    for (id, q) in questions {
        mac.update(b"\n");
        mac.update(id.as_bytes());
        let choices = q.pointer("/type_options/choices").and_then(Value::as_array);
        for ch in choices.into_iter().flatten() {
            mac.update(b"\0");
            mac.update(ch.as_str().unwrap_or_default().as_bytes());
        }
    }
    let digest = mac.finalize().into_bytes();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_id_follows_the_packages_questions_not_their_labels() {
        let q = |label: &str, choices: &[&str]| json_value!({"type": "select_one", "label": label, "type_options": {"choices": choices}});
        let mut now = Map::new();
        now.insert("q_gender".into(), q("Are you", &["man", "woman"]));
        let id = |m: &Map<String, Value>| package_id(b"key", "stop", m).unwrap();
        let mut relabelled = now.clone();
        relabelled.insert("q_gender".into(), q("You are", &["man", "woman"]));
        assert_eq!(id(&now), id(&relabelled));
        // A question removed from the campaign whose answers are still rows.
        let mut with_old = now.clone();
        with_old.insert("q_old".into(), q("q_old", &["yes"]));
        assert_ne!(id(&now), id(&with_old));
        let mut more = now.clone();
        more.insert("q_gender".into(), q("Are you", &["man", "woman", "other"]));
        assert_ne!(id(&now), id(&more));
        assert_ne!(id(&now), package_id(b"key", "other", &now).unwrap());
    }

    #[test]
    fn names_are_url_safe() {
        assert_eq!(
            package_name("Stop Trafficking_Mali"),
            "stop-trafficking_mali"
        );
    }

    #[test]
    fn rows_have_the_seven_columns() {
        let r = AnswerRow {
            call: 7,
            caller: "c_00".into(),
            language: Some("fr".into()),
            question: "q".into(),
            choice: "yes".into(),
            digit: "1".into(),
            answered_at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            broadcast: None,
        };
        let v = row(&r);
        assert_eq!(v.as_array().unwrap().len(), 7);
        assert_eq!(v[0], "2023-11-14T22:13:20.123+00:00");
        assert_eq!(v[1], "7-q");
        assert_eq!(v[6]["language"], "fr");
    }
}
