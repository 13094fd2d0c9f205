//! Africa's Talking callbacks: form bodies (and `?step=` queries) in, a call of the
//! example campaign driven by them, voice XML out.
#![no_main]

use kuma::webhook::at;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kuma_fuzz::webhook::session(data, at::parse, at::render);
});
