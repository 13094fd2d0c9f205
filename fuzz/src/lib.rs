//! Shared by the fuzz targets: how one fuzz input becomes a sequence of inputs.
//!
//! A target that is fed a sequence (the SIP endpoint, the RTP receiver, the
//! webhook calls) splits its input on [`SEP`]. An input without the separator is
//! one element, so a single real message (every file of `corpus/sip`) is a
//! valid seed as it is, and libFuzzer finds the separator through the targets'
//! dictionaries (`fuzz/dict/*.dict`).

/// The separator between the elements of a sequence.
pub const SEP: &[u8] = b"\0~\0";

/// Splits `data` on [`SEP`] (an input without it is one element).
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEP.len()).position(|w| w == SEP) {
        let (part, after) = rest.split_at(at);
        parts.push(part);
        rest = after.get(SEP.len()..).unwrap_or_default();
    }
    parts.push(rest);
    parts
}

/// The first byte of `part` when it is a control byte (below 0x08) chosen by the
/// target, and the rest; `None` when `part` is data as it is.
pub fn op(part: &[u8]) -> Option<(u8, &[u8])> {
    match part.split_first() {
        Some((&b, rest)) if b < 0x08 => Some((b, rest)),
        _ => None,
    }
}

/// A big-endian u16 from the first two bytes (missing bytes are 0).
pub fn u16_of(bytes: &[u8]) -> u16 {
    let hi = bytes.first().copied().unwrap_or(0);
    let lo = bytes.get(1).copied().unwrap_or(0);
    u16::from_be_bytes([hi, lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_separator() {
        assert_eq!(split(b"abc"), vec![&b"abc"[..]]);
        assert_eq!(split(b"a\0~\0b\0~\0"), vec![&b"a"[..], b"b", b""]);
        assert_eq!(split(b""), vec![&b""[..]]);
    }
}

pub mod webhook {
    //! One provider call as a sequence of webhook requests, for both dialects.

    use std::path::Path;
    use std::sync::OnceLock;

    use chrono::{DateTime, TimeDelta, Utc};
    use kuma::campaign::{Campaign, load_campaign};
    use kuma::flow::{Call, EngineOptions};
    use kuma::webhook::{self, Request, RequestError, Urls, Verb, run_start, run_step};

    /// The example campaign of the repository (every node kind).
    pub fn example() -> &'static Campaign {
        static CAMPAIGN: OnceLock<Campaign> = OnceLock::new();
        CAMPAIGN.get_or_init(|| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../campaigns/stop-trafficking-mali.toml");
            match load_campaign(&path) {
                Ok(c) => c,
                Err(e) => panic!("the example campaign does not load: {e:?}"),
            }
        })
    }

    /// Splits `data` into requests; a part starting with 0x01 moves the clock
    /// (big-endian u16, in seconds). Each request's body is also read as the query
    /// string (`?step=N`). The first request that parses starts the call; the
    /// others are its next steps; every turn's verbs are rendered.
    pub fn session(
        data: &[u8],
        parse: fn(&[u8], Option<i64>) -> Result<Request, RequestError>,
        render: fn(&[Verb], &Urls, i64) -> String,
    ) {
        let campaign = example();
        let urls = Urls {
            public: "https://ivr.example.org".into(),
            campaign: "stop-trafficking-mali".into(),
            callback: "https://ivr.example.org/voice/x".into(),
        };
        let mut now: DateTime<Utc> = DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default();
        let mut call: Option<Call> = None;
        let mut step = 0i64;
        for part in crate::split(data) {
            if let Some((1, rest)) = crate::op(part) {
                now += TimeDelta::seconds(i64::from(crate::u16_of(rest)));
                continue;
            }
            let query = String::from_utf8_lossy(part);
            let Ok(at_step) = webhook::step_of(Some(&query)) else {
                continue;
            };
            let Ok(request) = parse(part, at_step) else {
                continue;
            };
            let turn = match call.as_mut() {
                None => {
                    let mut c = Call::new(EngineOptions::default());
                    let turn = run_start(&mut c, campaign, now);
                    call = Some(c);
                    turn
                }
                Some(c) => run_step(c, campaign, &request, now),
            };
            step += 1;
            let _ = render(&turn.verbs, &urls, step);
        }
    }
}
