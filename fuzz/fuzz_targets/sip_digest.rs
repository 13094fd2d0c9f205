//! A `WWW-Authenticate` / `Proxy-Authenticate` challenge from a trunk, and the
//! answer kuma computes to it.
#![no_main]

use kuma::sip::digest::Challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = Challenge::parse(&text) {
        let _ = c.answer(
            "2001",
            "secret",
            "INVITE",
            "sip:100@trunk.example",
            "c0ffee",
            1,
        );
    }
});
