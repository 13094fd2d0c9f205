//! Twilio webhooks: form bodies (and `?step=` queries) in, with the signature
//! check, a call of the example campaign driven by them, TwiML out.
#![no_main]

use kuma::webhook::{form_pairs, twilio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = form_pairs(data) {
        let header = pairs.first().map(|(_, v)| v.as_str()).unwrap_or_default();
        let _ = twilio::verify(
            "token",
            "https://ivr.example.org/voice/twilio",
            &pairs,
            header,
        );
    }
    kuma_fuzz::webhook::session(data, twilio::parse, twilio::render);
});
