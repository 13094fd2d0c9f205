//! The webhook channels: calls answered by a voice provider (Africa's Talking,
//! Twilio) that asks kuma over HTTP, request by request, what to do next.
//!
//! Sans-IO, like the SIP machines: nothing here reads a clock, a socket or the
//! database. One request of a call goes through three pure steps:
//!
//! 1. a dialect adapter ([`at`], [`twilio`]) parses the provider's form fields
//!    into a dialect-free [`Request`] (or one clear [`RequestError`]);
//! 2. the [`driver`] restores nothing itself: given the call's engine state
//!    ([`crate::flow::Call`], stored between requests by `crate::serve`), the
//!    request and the time, it feeds the flow engine the events the request
//!    means and runs it until the engine waits for the caller again. What the
//!    engine asked for becomes a [`Turn`]: the [`Verb`]s to send, the actions to
//!    store, a recording to fetch;
//! 3. the adapter renders the verbs as its XML (quick-xml's writer: every URL and
//!    text is escaped), with absolute URLs built from the configured public URL
//!    ([`Urls`]).
//!
//! The provider plays the prompts itself, so "the prompt ended" is implicit: the
//! driver reports it to the engine at once and gathers every prompt up to the next
//! wait into one document. A key barges into the prompts of the node that waits
//! for it (they are wrapped in `GetDigits`/`Gather`); earlier messages play whole.
//!
//! Each reply's callback URLs carry the step number (`?step=N`) of the session
//! that produced them, so the server can tell a replayed or reordered request from
//! the one it expects.

pub mod at;
pub mod driver;
pub mod twilio;

use std::io;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, Event};

use std::time::Duration;

use crate::flow::Prompt;

pub use driver::{Turn, run_start, run_step};

/// The longest digit string a request may carry (providers send one key per
/// `GetDigits numDigits="1"`; more is a broken or hostile client).
pub const MAX_DIGITS: usize = 64;
/// The largest request body accepted (a provider's form is well under 4 KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// The longest field value accepted (URLs, ids, numbers).
pub const MAX_FIELD: usize = 2048;

/// Which provider's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    AfricasTalking,
    Twilio,
}

impl Provider {
    /// The name stored as the call's channel and the session's provider.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::AfricasTalking => "africastalking",
            Provider::Twilio => "twilio",
        }
    }
}

/// How a transfer (`Dial`) went, as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialResult {
    /// The helpline answered (the conversation may be over already).
    Connected,
    /// Busy, no answer, refused, cancelled.
    Failed,
}

/// One provider request, whatever the dialect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The provider's call id (`sessionId`, `CallSid`).
    pub session: String,
    /// The caller's number: pseudonymised before anything is stored; never logged.
    pub caller: Option<String>,
    /// The number the caller dialled: picks the campaign.
    pub dialled: Option<String>,
    /// The keys the caller pressed at a `GetDigits`/`Gather` (empty: none).
    pub digits: Option<String>,
    pub recording_url: Option<String>,
    pub recording_duration: Option<Duration>,
    pub dial: Option<DialResult>,
    /// The call is over (AT `isActive=0`, a Twilio final `CallStatus`).
    pub ended: bool,
    /// The step this request answers (from our own callback URL), if any.
    pub step: Option<i64>,
}

/// Why a request cannot be understood: sent back as a 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: {reason}")]
    Bad { field: &'static str, reason: String },
}

/// One thing the provider is asked to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    /// Play these prompts whole.
    Play(Vec<Prompt>),
    /// Play these prompts (a key stops them when `bargein`), then wait up to
    /// `timeout` for one key; report it (or its absence) to the callback.
    Collect {
        prompts: Vec<Prompt>,
        bargein: bool,
        timeout: Duration,
    },
    /// Beep, record up to `max` (`#` ends it), report the recording.
    Record { max: Duration },
    /// Connect the caller to a `tel:` number or a SIP URI.
    Dial { to: String },
    /// End the call.
    HangUp,
    /// Refuse the call (unknown number, unknown or finished session).
    Reject,
}

/// Where the provider fetches prompts and sends the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// The public base URL, without a trailing `/` (e.g. `https://ivr.example.org`).
    pub public: String,
    /// The campaign whose prompts are played.
    pub campaign: String,
    /// This dialect's webhook URL (absolute), without a query.
    pub callback: String,
}

impl Urls {
    /// `PUBLIC/audio/CAMPAIGN/LANG/PROMPT.EXT`, each segment percent-encoded.
    pub fn prompt(&self, p: &Prompt, ext: &str) -> String {
        format!(
            "{}/audio/{}/{}/{}.{ext}",
            self.public,
            segment(&self.campaign),
            segment(&p.language),
            segment(&p.name)
        )
    }

    /// The callback URL for the reply made at step `step`.
    pub fn step(&self, step: i64) -> String {
        format!("{}?step={step}", self.callback)
    }
}

/// A URL path segment: everything but the unreserved characters is escaped.
/// One reply document, `<?xml …?>` and a `<Response>` whose content `verbs`
/// writes (each dialect its own elements). Writing into memory cannot fail; were
/// the writer ever to err, the dialect's `fallback`, a document that ends the
/// call, is sent instead.
fn response_xml(
    fallback: &str,
    verbs: impl FnOnce(&mut Writer<Vec<u8>>) -> io::Result<()>,
) -> String {
    let write = || -> io::Result<String> {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("Response").write_inner_content(verbs)?;
        String::from_utf8(w.into_inner()).map_err(io::Error::other)
    };
    write().unwrap_or_else(|e| {
        tracing::error!(error = %e, "writing XML failed");
        fallback.to_string()
    })
}

fn segment(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

/// Reads a form body or a query string into (name, value) pairs, refusing
/// oversized values.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, RequestError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    if let Some((k, _)) = pairs.iter().find(|(_, v)| v.len() > MAX_FIELD) {
        return Err(RequestError::Bad {
            field: "form",
            reason: format!("`{}` is longer than {MAX_FIELD} bytes", short(k)),
        });
    }
    Ok(pairs)
}

/// A field name cut short for an error message (it came from outside).
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

/// The first value of `name`, if present.
fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A present, non-empty value.
fn nonempty<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    field(pairs, name).map(str::trim).filter(|v| !v.is_empty())
}

/// Keys pressed, checked: only keypad characters, at most [`MAX_DIGITS`].
fn digits(pairs: &[(String, String)], name: &'static str) -> Result<Option<String>, RequestError> {
    let Some(v) = field(pairs, name) else {
        return Ok(None);
    };
    let v = v.trim();
    if v.len() > MAX_DIGITS {
        return Err(RequestError::Bad {
            field: name,
            reason: format!("{} characters (at most {MAX_DIGITS})", v.len()),
        });
    }
    if let Some(c) = v.chars().find(|c| !matches!(c, '0'..='9' | '*' | '#')) {
        return Err(RequestError::Bad {
            field: name,
            reason: format!("`{}` is not a keypad key", c.escape_default()),
        });
    }
    Ok(Some(v.to_string()))
}

/// The step of our own callback URL (`?step=N`), from the query string.
pub fn step_of(query: Option<&str>) -> Result<Option<i64>, RequestError> {
    let Some(q) = query else { return Ok(None) };
    let pairs = form_pairs(q.as_bytes())?;
    match field(&pairs, "step") {
        None => Ok(None),
        Some(s) => s.parse::<i64>().map(Some).map_err(|_| RequestError::Bad {
            field: "step",
            reason: format!("`{}` is not a number", short(s)),
        }),
    }
}

/// Seconds for an XML attribute: rounded up, at least 1.
fn seconds(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_urls_escape_each_segment() {
        let urls = Urls {
            public: "https://ivr.example.org".into(),
            campaign: "mali".into(),
            callback: "https://ivr.example.org/voice/twilio".into(),
        };
        let p = Prompt {
            language: "fr".into(),
            name: "a b&c\"?".into(),
        };
        assert_eq!(
            urls.prompt(&p, "wav"),
            "https://ivr.example.org/audio/mali/fr/a%20b%26c%22%3F.wav"
        );
        assert_eq!(urls.step(3), "https://ivr.example.org/voice/twilio?step=3");
    }

    #[test]
    fn digits_are_checked() {
        let p = |v: &str| vec![("d".to_string(), v.to_string())];
        assert_eq!(digits(&p(" 1 "), "d").unwrap(), Some("1".into()));
        assert_eq!(digits(&p(""), "d").unwrap(), Some(String::new()));
        assert!(digits(&p(&"1".repeat(500)), "d").is_err());
        assert!(digits(&p("1a"), "d").is_err());
        assert_eq!(digits(&[], "d").unwrap(), None);
    }

    #[test]
    fn steps_and_seconds() {
        assert_eq!(step_of(Some("step=4")).unwrap(), Some(4));
        assert_eq!(step_of(Some("x=1")).unwrap(), None);
        assert_eq!(step_of(None).unwrap(), None);
        assert!(step_of(Some("step=x")).is_err());
        assert_eq!(seconds(Duration::from_millis(5500)), 6);
        assert_eq!(seconds(Duration::ZERO), 1);
    }
}
