//! Africa's Talking voice: the callback's form fields in, their voice XML out.
//!
//! Every request of a call (the first, each `GetDigits`/`Record` callback, and the
//! last one with `isActive=0`, `durationInSeconds`, `amount`, `currencyCode`) comes
//! to the one callback URL, identified by `sessionId`.
//!
//! A `GetDigits` that times out without a key does not call back: Africa's Talking
//! moves on to the next element of the document. So every `GetDigits` is followed
//! by a `Redirect` to the same step's callback, which arrives without
//! `dtmfDigits`: the flow's no-input handling (the `no_input` prompt, the retries,
//! `on_fail`).
//!
//! Africa's Talking signs nothing: the URL is protected by a secret path segment
//! and an allowlist of source addresses (see `crate::serve::webhook_routes`).

use std::io;

use quick_xml::Writer;
use quick_xml::events::BytesText;

use super::{
    DialResult, Request, RequestError, Urls, Verb, digits, field, form_pairs, nonempty,
    response_xml, seconds,
};

/// Prompts are served to Africa's Talking as MP3 (they accept MP3 and WAV; MP3 is a
/// tenth of the bytes).
pub const PROMPT_EXT: &str = "mp3";

/// Reads a callback's form body.
pub fn parse(body: &[u8], step: Option<i64>) -> Result<Request, RequestError> {
    let pairs = form_pairs(body)?;
    let session = nonempty(&pairs, "sessionId")
        .ok_or(RequestError::Missing("sessionId"))?
        .to_string();
    let active = match field(&pairs, "isActive").map(str::trim) {
        Some("1") => true,
        Some("0") => false,
        Some(other) => {
            return Err(RequestError::Bad {
                field: "isActive",
                reason: format!("`{}` is neither 1 nor 0", other.escape_default()),
            });
        }
        None => return Err(RequestError::Missing("isActive")),
    };
    Ok(Request {
        session,
        caller: nonempty(&pairs, "callerNumber").map(str::to_string),
        dialled: nonempty(&pairs, "destinationNumber").map(str::to_string),
        digits: digits(&pairs, "dtmfDigits")?,
        recording_url: nonempty(&pairs, "recordingUrl").map(str::to_string),
        recording_duration: None,
        // A Dial has no callback of its own: its end is the call's end.
        dial: None::<DialResult>,
        ended: !active,
        step,
    })
}

/// The XML document for `verbs`, made at step `step`.
pub fn render(verbs: &[Verb], urls: &Urls, step: i64) -> String {
    let callback = urls.step(step);
    response_xml(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response/>",
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
                            .create_element("GetDigits")
                            .with_attribute(("timeout", seconds(*timeout).to_string().as_str()))
                            .with_attribute(("finishOnKey", "#"))
                            .with_attribute(("numDigits", "1"))
                            .with_attribute(("callbackUrl", callback.as_str()));
                        if *bargein && !prompts.is_empty() {
                            el.write_inner_content(|w| play(w, urls, prompts))?;
                        } else {
                            el.write_empty()?;
                        }
                        // Reached only when no key came: the no-input callback.
                        w.create_element("Redirect")
                            .write_text_content(BytesText::new(&callback))?;
                    }
                    Verb::Record { max } => {
                        w.create_element("Record")
                            .with_attribute(("finishOnKey", "#"))
                            .with_attribute(("maxLength", seconds(*max).to_string().as_str()))
                            .with_attribute(("trimSilence", "true"))
                            .with_attribute(("playBeep", "true"))
                            .with_attribute(("callbackUrl", callback.as_str()))
                            .write_empty()?;
                    }
                    Verb::Dial { to } => {
                        let number = to.strip_prefix("tel:").unwrap_or(to);
                        w.create_element("Dial")
                            .with_attribute(("phoneNumbers", number))
                            .write_empty()?;
                    }
                    // The call ends where the document ends.
                    Verb::HangUp => {}
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
            .with_attribute(("url", urls.prompt(p, PROMPT_EXT).as_str()))
            .write_empty()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_and_checked() {
        let r = parse(
            b"sessionId=ATVId_1&isActive=1&direction=Inbound&callerNumber=%2B22370000000&destinationNumber=2000&dtmfDigits=3",
            Some(2),
        )
        .unwrap();
        assert_eq!(r.session, "ATVId_1");
        assert_eq!(r.caller.as_deref(), Some("+22370000000"));
        assert_eq!(r.dialled.as_deref(), Some("2000"));
        assert_eq!(r.digits.as_deref(), Some("3"));
        assert!(!r.ended);
        assert_eq!(r.step, Some(2));
        let end = parse(
            b"sessionId=x&isActive=0&durationInSeconds=40&amount=0.5&currencyCode=KES",
            None,
        )
        .unwrap();
        assert!(end.ended);
        assert_eq!(
            parse(b"isActive=1", None),
            Err(RequestError::Missing("sessionId"))
        );
        assert!(parse(b"sessionId=x&isActive=yes", None).is_err());
        assert!(parse(b"sessionId=x", None).is_err());
        let long = format!("sessionId=x&isActive=1&dtmfDigits={}", "1".repeat(500));
        assert!(parse(long.as_bytes(), None).is_err());
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let urls = Urls {
            public: "https://ivr.example.org".into(),
            campaign: "c".into(),
            callback: "https://ivr.example.org/voice/africastalking/s<&>\"".into(),
        };
        let xml = render(
            &[
                Verb::Collect {
                    prompts: vec![],
                    bargein: true,
                    timeout: std::time::Duration::from_secs(5),
                },
                Verb::Dial {
                    to: "tel:+223\"<x>".into(),
                },
            ],
            &urls,
            1,
        );
        assert!(xml.contains("callbackUrl=\"https://ivr.example.org/voice/africastalking/s&lt;&amp;&gt;&quot;?step=1\""), "{xml}");
        assert!(xml.contains("<Redirect>https://ivr.example.org/voice/africastalking/s&lt;&amp;&gt;&quot;?step=1</Redirect>"), "{xml}");
        assert!(
            xml.contains("phoneNumbers=\"+223&quot;&lt;x&gt;\""),
            "{xml}"
        );
    }

    const FIELD_NAMES: &str = "(sessionId|isActive|callerNumber|destinationNumber|dtmfDigits|recordingUrl|durationInSeconds|direction)";

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
