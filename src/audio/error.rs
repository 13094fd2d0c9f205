//! Why a recording could not be turned into a prompt.
//!
//! Every variant reads as the end of a sentence about one file, so the reports can
//! print `PATH: error: MESSAGE` and a broadcaster knows what to do without reading
//! code. Files that are usable but doubtful (clipped, quiet, mostly silence) are not
//! errors: they come back as warnings in the file's report.

use std::time::Duration;

use thiserror::Error;

use crate::campaign::format_duration;

/// A recording that cannot become a prompt.
#[derive(Debug, Error)]
pub enum AudioError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),

    #[error("no recording: none of the accepted file names exists")]
    Missing,

    #[error("empty file (0 bytes): record the prompt again")]
    EmptyFile,

    #[error(
        "not a recording kuma can read ({detail}); accepted: WAV, MP3, Ogg Vorbis, FLAC, AAC/M4A"
    )]
    Unsupported { detail: String },

    #[error("cut short: the file ends before any of its audio could be read")]
    CutShortHeader,

    #[error("the file holds no audio track")]
    NoAudioTrack,

    #[error("damaged beyond use: {0}")]
    Malformed(String),

    #[error("holds no audio samples")]
    NoSamples,

    #[error("no sound: the recording is silent (nothing above -60 dBFS)")]
    Silent,

    #[error("longer than the limit of {}{}: cut it into shorter prompts, or raise the campaign's `max_prompt`", format_duration(*.limit), describe_length(.length))]
    TooLong {
        limit: Duration,
        /// The file's length when its header says; `None` when decoding was stopped at the limit.
        length: Option<Duration>,
    },

    #[error("sample rate {0} Hz is not a usable audio rate")]
    BadSampleRate(u32),

    #[error("{0} channels: more than kuma mixes down (at most {max})", max = MAX_CHANNELS)]
    TooManyChannels(usize),

    #[error("the decoder failed on damaged data ({0})")]
    DecoderPanic(String),

    #[error("resampling failed: {0}")]
    Resample(String),
}

/// More channels than this is not a recording a station would deliver for a prompt.
pub const MAX_CHANNELS: usize = 32;

fn describe_length(length: &Option<Duration>) -> String {
    match length {
        Some(d) => format!(" (it lasts {})", crate::audio::report::format_seconds(*d)),
        None => String::new(),
    }
}
