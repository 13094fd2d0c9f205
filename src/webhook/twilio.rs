//! Twilio voice: the webhook's form fields in, TwiML out, and the
//! `X-Twilio-Signature` check.
//!
//! The number's voice URL receives the first request; each `Gather`, `Record` and
//! `Dial` reports to its `action` URL (ours, with the step); the number's status
//! callback reports the call's end (`CallStatus` completed, busy, failed,
//! no-answer, canceled).
//!
//! Every request is signed: base64 of HMAC-SHA1, keyed with the account's auth
//! token, over the full URL Twilio called (scheme, host, path and query) followed
//! by every POST parameter, sorted by name, as name and value concatenated. A
//! request whose signature does not match is refused before anything else is read.

use std::io;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use quick_xml::Writer;
use quick_xml::events::BytesText;
use sha1::Sha1;

use super::{
    DialResult, Request, RequestError, Urls, Verb, digits, field, form_pairs, nonempty,
    response_xml, seconds,
};

/// Prompts are served to Twilio as 8 kHz 16-bit WAV.
pub const PROMPT_EXT: &str = "wav";

/// The signature Twilio sends for `url` and the POST `params`.
pub fn signature(token: &str, url: &str, params: &[(String, String)]) -> Option<String> {
    let mac = mac(token, url, params)?;
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `url` and `params` (constant-time).
pub fn verify(token: &str, url: &str, params: &[(String, String)], header: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    mac(token, url, params).is_some_and(|m| m.verify_slice(&given).is_ok())
}

/// `None` only if the HMAC refused the key, which RFC 2104 HMAC never does.
fn mac(token: &str, url: &str, params: &[(String, String)]) -> Option<Hmac<Sha1>> {
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // Stable: repeated names keep their order, as Twilio's own helpers do.
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    Some(mac)
}

/// Reads a webhook's form body (already signature-checked).
pub fn parse(body: &[u8], step: Option<i64>) -> Result<Request, RequestError> {
    let pairs = form_pairs(body)?;
    parse_pairs(&pairs, step)
}

/// Reads already decoded form pairs.
pub fn parse_pairs(pairs: &[(String, String)], step: Option<i64>) -> Result<Request, RequestError> {
    let session = nonempty(pairs, "CallSid")
        .ok_or(RequestError::Missing("CallSid"))?
        .to_string();
    let status = nonempty(pairs, "CallStatus").ok_or(RequestError::Missing("CallStatus"))?;
    let ended = match status {
        "queued" | "ringing" | "in-progress" => false,
        "completed" | "busy" | "failed" | "no-answer" | "canceled" => true,
        other => {
            return Err(RequestError::Bad {
                field: "CallStatus",
                reason: format!("unknown status `{}`", other.escape_default()),
            });
        }
    };
    let dial = match nonempty(pairs, "DialCallStatus") {
        None => None,
        Some("completed" | "answered") => Some(DialResult::Connected),
        Some("busy" | "no-answer" | "failed" | "canceled") => Some(DialResult::Failed),
        Some(other) => {
            return Err(RequestError::Bad {
                field: "DialCallStatus",
                reason: format!("unknown status `{}`", other.escape_default()),
            });
        }
    };
    let recording_duration = match nonempty(pairs, "RecordingDuration") {
        None => None,
        Some(s) => Some(Duration::from_secs(s.parse::<u64>().map_err(|_| {
            RequestError::Bad {
                field: "RecordingDuration",
                reason: format!("`{}` is not a number of seconds", s.escape_default()),
            }
        })?)),
    };
    // `Digits` is "hangup" when a Record ended because the caller hung up.
    let digits = match field(pairs, "Digits") {
        Some("hangup") => None,
        _ => digits(pairs, "Digits")?,
    };
    Ok(Request {
        session,
        caller: nonempty(pairs, "From").map(str::to_string),
        dialled: nonempty(pairs, "To").map(str::to_string),
        digits,
        recording_url: nonempty(pairs, "RecordingUrl").map(str::to_string),
        recording_duration,
        dial,
        ended,
        step,
    })
}

/// The TwiML document for `verbs`, made at step `step`.
pub fn render(verbs: &[Verb], urls: &Urls, step: i64) -> String {
    let action = urls.step(step);
    response_xml(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Hangup/></Response>",
        |w| {
            for verb in verbs {
                match verb {
                    Verb::Play(prompts) => play(w, urls, prompts)?,
                    Verb::Collect {
                        prompts,
                        bargein,
                        timeout,
                    } => {
                        if !bargein {
                            play(w, urls, prompts)?;
                        }
                        let el = w
                            .create_element("Gather")
                            .with_attribute(("input", "dtmf"))
                            .with_attribute(("numDigits", "1"))
                            .with_attribute(("timeout", seconds(*timeout).to_string().as_str()))
                            .with_attribute(("action", action.as_str()))
                            .with_attribute(("actionOnEmptyResult", "true"));
                        if *bargein && !prompts.is_empty() {
                            el.write_inner_content(|w| play(w, urls, prompts))?;
                        } else {
                            el.write_empty()?;
                        }
                    }
                    Verb::Record { max } => {
                        w.create_element("Record")
                            .with_attribute(("action", action.as_str()))
                            .with_attribute(("maxLength", seconds(*max).to_string().as_str()))
                            .with_attribute(("finishOnKey", "#"))
                            .with_attribute(("playBeep", "true"))
                            .with_attribute(("trim", "trim-silence"))
                            .write_empty()?;
                    }
                    Verb::Dial { to } => {
                        w.create_element("Dial")
                            .with_attribute(("action", action.as_str()))
                            .write_inner_content(|w| {
                                match to.strip_prefix("tel:") {
                                    Some(number) => w
                                        .create_element("Number")
                                        .write_text_content(BytesText::new(number))?,
                                    None => w
                                        .create_element("Sip")
                                        .write_text_content(BytesText::new(to))?,
                                };
                                Ok(())
                            })?;
                    }
                    Verb::HangUp => {
                        w.create_element("Hangup").write_empty()?;
                    }
                    Verb::Reject => {
                        w.create_element("Reject").write_empty()?;
                    }
                }
            }
            Ok(())
        },
    )
}

fn play(w: &mut Writer<Vec<u8>>, urls: &Urls, prompts: &[crate::flow::Prompt]) -> io::Result<()> {
    for p in prompts {
        w.create_element("Play")
            .write_text_content(BytesText::new(&urls.prompt(p, PROMPT_EXT)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_signature_matches_twilios_documented_example() {
        // The worked example of Twilio's "Webhooks security" page (two versions
        // of it have circulated, with two caller numbers).
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let token = "12345";
        let with_caller = |n: &str| {
            pairs(&[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", n),
                ("Digits", "1234"),
                ("From", n),
                ("To", "+18005551212"),
            ])
        };
        assert_eq!(
            signature(token, url, &with_caller("+14158675310")).unwrap(),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert_eq!(
            signature(token, url, &with_caller("+12349013030")).unwrap(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let sig = signature(token, url, &params).unwrap();
        assert!(verify(token, url, &params, &sig));
        assert!(!verify("other", url, &params, &sig));
        assert!(!verify(token, url, &params[1..], &sig));
        assert!(!verify(token, url, &params, "not base64!"));
    }

    #[test]
    fn a_tel_number_is_dialled_as_a_number_and_text_is_escaped() {
        let urls = Urls {
            public: "https://ivr.example.org".into(),
            campaign: "c".into(),
            callback: "https://ivr.example.org/voice/twilio".into(),
        };
        let xml = render(
            &[
                Verb::Dial {
                    to: "tel:+22320<&>".into(),
                },
                Verb::Reject,
            ],
            &urls,
            7,
        );
        assert!(
            xml.contains("<Dial action=\"https://ivr.example.org/voice/twilio?step=7\">"),
            "{xml}"
        );
        assert!(
            xml.contains("<Number>+22320&lt;&amp;&gt;</Number>"),
            "{xml}"
        );
        assert!(xml.contains("<Reject/>"), "{xml}");
    }

    #[test]
    fn fields_are_read_and_checked() {
        let r = parse(
            b"CallSid=CA1&From=%2B22370000000&To=%2B22320000000&CallStatus=in-progress&Digits=2",
            Some(3),
        )
        .unwrap();
        assert_eq!(r.session, "CA1");
        assert_eq!(r.digits.as_deref(), Some("2"));
        assert!(!r.ended);
        let r = parse(
            b"CallSid=CA1&CallStatus=completed&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Fr%2FRE1&RecordingDuration=12&Digits=hangup",
            Some(4),
        )
        .unwrap();
        assert!(r.ended);
        assert_eq!(r.recording_duration, Some(Duration::from_secs(12)));
        assert_eq!(r.digits, None);
        let r = parse(
            b"CallSid=CA1&CallStatus=in-progress&DialCallStatus=busy",
            None,
        )
        .unwrap();
        assert_eq!(r.dial, Some(DialResult::Failed));
        assert_eq!(
            parse(b"CallStatus=ringing", None),
            Err(RequestError::Missing("CallSid"))
        );
        assert!(parse(b"CallSid=x&CallStatus=odd", None).is_err());
        assert!(parse(b"CallSid=x&CallStatus=ringing&RecordingDuration=-1", None).is_err());
    }

    const FIELD_NAMES: &str =
        "(CallSid|CallStatus|From|To|Digits|RecordingUrl|RecordingDuration|DialCallStatus)";

    proptest::proptest! {
        /// Any body, any step: a request or one clear error, never a panic.
        #[test]
        fn any_body_parses_or_is_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..600), step in proptest::option::of(0i64..100)) {
            let _ = parse(&body, step);
        }

        /// Form-shaped bodies with this dialect's field names.
        #[test]
        fn any_form_parses_or_is_refused(fields in proptest::collection::vec((FIELD_NAMES, ".{0,80}"), 0..12)) {
            let body = fields
                .iter()
                .fold(form_urlencoded::Serializer::new(String::new()), |mut s, (k, v)| {
                    s.append_pair(k, v);
                    s
                })
                .finish();
            if let Ok(r) = parse(body.as_bytes(), None) {
                proptest::prop_assert!(!r.session.is_empty());
                proptest::prop_assert!(r.digits.as_ref().is_none_or(|d| d.len() <= crate::webhook::MAX_DIGITS));
            }
        }
    }
}
