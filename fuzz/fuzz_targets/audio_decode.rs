//! A station's recording, as bytes: decoded (symphonia), mixed down, resampled to
//! 8 kHz, trimmed, levelled and encoded, as `kuma check` and uploads do. The
//! input's length picks the file-name extension given as the format hint, so a
//! real file is a seed as it is.
//!
//! `decode` runs the decoder under `catch_unwind`, so a decoder panic becomes
//! `AudioError::DecoderPanic` instead of killing kuma; here it is a crash, so
//! it is found and reported upstream.
#![no_main]

use std::time::Duration;

use kuma::audio::Settings;
use kuma::audio::prepare::prepare_bytes;
use libfuzzer_sys::fuzz_target;

const EXTENSIONS: [Option<&str>; 8] = [
    None,
    Some("wav"),
    Some("mp3"),
    Some("ogg"),
    Some("flac"),
    Some("m4a"),
    Some("aac"),
    Some("opus"),
];

fuzz_target!(|data: &[u8]| {
    let ext = EXTENSIONS[data.len() % EXTENSIONS.len()];
    let settings = Settings {
        // Short, so that one input decodes in milliseconds.
        max_duration: Duration::from_secs(10),
        ..Settings::default()
    };
    let _ = prepare_bytes(data.to_vec(), ext, &settings);
});
