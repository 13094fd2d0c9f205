//! `POST /api/campaigns/{id}/simulate`: the browser's call simulator, one step per
//! request, through the real flow engine ([`crate::flow`]) — the browser is one
//! more channel adapter (see STYLE.md).
//!
//! Nothing is stored: the engine's `StoreAnswer`, `SetLanguage`, `Completed`
//! actions are shown to the broadcaster, not written, so simulated calls never
//! count in results.
//!
//! Stateless: the engine's state travels to the browser and back as an opaque
//! `session` string, `hex(JSON).hex(HMAC-SHA256)`, signed with a key derived
//! from the server secret. Any kuma process sharing the secret continues a
//! session; a session that was altered, or made by another server, or for
//! another campaign, is refused. The state holds nothing secret (which node,
//! which language, a simulated clock), so it is signed, not encrypted.
//!
//! Time: the engine takes the time with every event. The session keeps a
//! simulated clock that runs with real time between steps, so prompts take as
//! long as the browser plays them; `start` may set it (to try a poll window),
//! and `timeout` moves it to the engine's deadline, so a broadcaster need not
//! wait six seconds to try a silence.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json as json_value};
use sha2::Sha256;

use super::api::{find, json, transcript};
use super::{ApiError, ApiPath, ApiState, Auth, Role};
use crate::campaign::Campaign;
use crate::flow::{Action, Call, EngineOptions, Event};
use crate::secret::Pseudonymizer;

/// The longest voice message a simulated caller can report.
const MAX_RECORDING: f64 = 3600.0;

/// Signs and checks sessions.
#[derive(Clone)]
pub(crate) struct SessionKey([u8; 32]);

impl SessionKey {
    pub(crate) fn derive(pseudonyms: &Pseudonymizer) -> SessionKey {
        SessionKey(pseudonyms.derive_key("simulator session"))
    }

    fn mac(&self) -> Option<Hmac<Sha256>> {
        // HMAC takes keys of any length: this does not fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).ok()
    }

    fn sign(&self, payload: &[u8]) -> Option<String> {
        let mut mac = self.mac()?;
        mac.update(payload);
        Some(format!(
            "{}.{}",
            hex::encode(payload),
            hex::encode(mac.finalize().into_bytes())
        ))
    }

    /// The payload of a session this server signed; None for anything else.
    fn open(&self, session: &str) -> Option<Vec<u8>> {
        let (payload, tag) = session.split_once('.')?;
        let payload = hex::decode(payload).ok()?;
        let tag = hex::decode(tag).ok()?;
        let mut mac = self.mac()?;
        mac.update(&payload);
        // Constant-time comparison.
        mac.verify_slice(&tag).ok()?;
        Some(payload)
    }
}

/// What a session carries between steps.
#[derive(Serialize, Deserialize)]
struct Session {
    campaign: String,
    call: Call,
    /// The simulated time of the last step.
    at: DateTime<Utc>,
    /// The real time of the last step.
    real: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    session: Option<String>,
    event: SimEvent,
}

/// What the simulated caller (or their phone) did.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum SimEvent {
    Start {
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    },
    Key {
        key: String,
    },
    PromptFinished,
    Timeout,
    Hangup,
    RecordingFinished {
        seconds: f64,
    },
    TransferFailed,
}

pub(super) async fn simulate(
    auth: Auth,
    State(st): State<Arc<ApiState>>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Role::Broadcaster)?;
    let c = find(&st, &id)?;
    let req: Request = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad request body: {e}")))?;
    let real = Utc::now();
    let (mut session, event, now) = match (req.session, req.event) {
        (None, SimEvent::Start { at }) => {
            let at = at.unwrap_or(real);
            // The engine adds timeouts to this time: a year far away would
            // overflow chrono's range.
            crate::campaign::limits::plausible_day(at.date_naive())
                .map_err(|e| ApiError::BadRequest(format!("`at`: {e}")))?;
            let session = Session {
                campaign: c.id.clone(),
                call: Call::new(EngineOptions::default()),
                at,
                real,
            };
            (session, Event::Answered, at)
        }
        (None, _) => {
            return Err(ApiError::BadRequest(
                "no session: start a call first with {\"session\": null, \"event\": {\"type\": \"start\"}}".into(),
            ));
        }
        (Some(_), SimEvent::Start { .. }) => {
            return Err(ApiError::BadRequest(
                "this call has started already: send `\"session\": null` to start another".into(),
            ));
        }
        (Some(s), event) => {
            let session = open_session(&st, &c, &s)?;
            if session.call.is_ended() {
                return Err(ApiError::BadRequest(
                    "this simulated call has ended: start another".into(),
                ));
            }
            let elapsed = (real - session.real).max(chrono::TimeDelta::zero());
            let mut now = session
                .at
                .checked_add_signed(elapsed)
                .ok_or_else(|| ApiError::BadRequest("the session's time is out of range".into()))?;
            let event = engine_event(event)?;
            if event == Event::Timeout
                && let Some(deadline) = session.call.next_deadline()
            {
                // A broadcaster need not sit through the silence.
                now = now.max(deadline);
            }
            (session, event, now)
        }
    };
    let actions = session.call.handle(&c, event, now);
    session.at = now;
    session.real = real;
    let payload = serde_json::to_vec(&session)
        .map_err(|e| ApiError::Internal(format!("simulator session: {e}")))?;
    let signed = st
        .session_key
        .sign(&payload)
        .ok_or_else(|| ApiError::Internal("cannot sign the simulator session".into()))?;
    let mut shown = Vec::with_capacity(actions.len());
    for a in &actions {
        shown.push(action_json(&c, a, now).await);
    }
    let call = &session.call;
    let waiting_for = if call.is_ended() {
        None
    } else if call.is_waiting_for_key() {
        Some("key")
    } else if call.is_recording() {
        Some("record")
    } else if call.is_transferring() {
        Some("transfer")
    } else {
        Some("prompt")
    };
    let timeout_ms = call
        .next_deadline()
        .map(|d| (d - now).num_milliseconds().max(0));
    Ok(json(
        StatusCode::OK,
        &json_value!({
            "session": signed,
            "node": call.node(),
            "language": call.language(),
            "at": now,
            "timeout_ms": timeout_ms,
            "waiting_for": waiting_for,
            "ended": call.is_ended(),
            "actions": shown,
        }),
    ))
}

fn open_session(st: &ApiState, c: &Campaign, s: &str) -> Result<Session, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "session is not valid: altered, or made by another server; start a new call".into(),
        )
    };
    let payload = st.session_key.open(s).ok_or_else(bad)?;
    let session: Session = serde_json::from_slice(&payload).map_err(|_| bad())?;
    if session.campaign != c.id {
        return Err(ApiError::BadRequest(format!(
            "this session is a call to campaign `{}`, not `{}`",
            session.campaign, c.id
        )));
    }
    Ok(session)
}

fn engine_event(e: SimEvent) -> Result<Event, ApiError> {
    Ok(match e {
        SimEvent::Start { .. } => Event::Answered,
        SimEvent::Key { key } => {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(k), None) if crate::campaign::KEYPAD.contains(&k) => Event::Digit(k),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "bad key `{key}`: one of 0-9, * and #"
                    )));
                }
            }
        }
        SimEvent::PromptFinished => Event::PromptFinished,
        SimEvent::Timeout => Event::Timeout,
        SimEvent::Hangup => Event::HungUp,
        SimEvent::TransferFailed => Event::TransferFailed,
        SimEvent::RecordingFinished { seconds } => {
            if !(0.0..=MAX_RECORDING).contains(&seconds) {
                return Err(ApiError::BadRequest(format!(
                    "bad seconds {seconds}: from 0 to {MAX_RECORDING}"
                )));
            }
            Event::RecordingFinished {
                duration: Duration::from_secs_f64(seconds),
            }
        }
    })
}

/// One engine action as the browser sees it.
async fn action_json(c: &Campaign, a: &Action, now: DateTime<Utc>) -> Value {
    match a {
        Action::Enter { node } => json_value!({ "type": "enter", "node": node }),
        Action::Play { prompts, bargein } => {
            let mut list = Vec::with_capacity(prompts.len());
            for p in prompts {
                list.push(json_value!({
                    "name": p.name,
                    "language": p.language,
                    "url": prompt_url(&c.id, &p.language, &p.name),
                    "transcript": transcript(c, &p.language, &p.name).await,
                }));
            }
            json_value!({ "type": "play", "prompts": list, "barge_in": bargein })
        }
        Action::StopPlayback => json_value!({ "type": "stop_playback" }),
        Action::CollectDigits { until } => json_value!({
            "type": "collect",
            "timeout_ms": (*until - now).num_milliseconds().max(0),
        }),
        Action::Record {
            node,
            max,
            finish_on,
        } => json_value!({
            "type": "record",
            "node": node,
            "max_seconds": max.as_secs_f64(),
            "finish_on": finish_on.to_string(),
        }),
        Action::StopRecording => json_value!({ "type": "stop_recording" }),
        Action::Transfer { to } => json_value!({ "type": "transfer", "to": to }),
        Action::SetLanguage { language } => {
            json_value!({ "type": "language", "language": language })
        }
        Action::StoreAnswer {
            question,
            choice,
            digit,
            broadcast,
        } => json_value!({
            "type": "answer",
            "question": question,
            "choice": choice,
            "digit": digit.to_string(),
            "broadcast": broadcast,
        }),
        Action::Completed => json_value!({ "type": "completed" }),
        Action::HangUp => json_value!({ "type": "hangup" }),
        Action::Finished { outcome, last_node } => json_value!({
            "type": "finished",
            "outcome": outcome.as_str(),
            "last_node": last_node,
        }),
    }
}

/// Where the browser (and voice providers) fetch a prompt: `audio.rs`.
pub(super) fn prompt_url(campaign: &str, language: &str, prompt: &str) -> String {
    format!("/audio/{campaign}/{language}/{prompt}.wav")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_signed() {
        let key = SessionKey::derive(&Pseudonymizer::new(b"0123456789abcdef0123"));
        let s = key.sign(b"{\"a\":1}").unwrap();
        assert_eq!(key.open(&s).as_deref(), Some(&b"{\"a\":1}"[..]));
        // Another payload under the same tag, another key, junk: refused.
        let (_, tag) = s.split_once('.').unwrap();
        assert_eq!(
            key.open(&format!("{}.{tag}", hex::encode(b"{\"a\":2}"))),
            None
        );
        let other = SessionKey::derive(&Pseudonymizer::new(b"another secret, 20b+"));
        assert_eq!(other.open(&s), None);
        assert_eq!(key.open("zz.zz"), None);
        assert_eq!(key.open(""), None);
    }
}
