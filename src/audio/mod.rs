//! Audio: any recording a station delivers becomes clean telephone audio, and the
//! caller's audio is recorded and listened to for keys.
//!
//! The prompt pipeline, one module per step, no telephony in any of them:
//!
//! - [`decode`]: WAV, MP3, Ogg Vorbis, FLAC, AAC/M4A (symphonia) to mono, bounded in
//!   time and memory whatever the file holds;
//! - [`resample`]: any rate to 8 kHz with a real anti-alias filter (rubato's FFT
//!   resampler);
//! - [`level`]: DC removal, silence trimming, one loudness for every prompt, a peak
//!   limiter so nothing clips after G.711;
//! - [`g711`]: µ-law and A-law, bit-exact with ITU-T G.191;
//! - [`prompt`]: the prepared [`Prompt`], 20 ms frames in both laws shared by every
//!   call through an `Arc`, and the [`PromptSet`] of a campaign;
//! - [`cache`]: prepared prompts on disk, keyed by content hash and settings;
//! - [`prepare`]: the steps strung together, and [`prepare_campaign`], which the SIP
//!   channel calls at start; [`report`] says what became of each file;
//! - [`export`]: a prepared prompt as WAV (µ-law, A-law, PCM) or MP3.
//!
//! The caller's side: [`recording`] writes a message to WAV as it arrives and
//! detects the silence that ends it; [`dtmf`] hears keys sent as tones.

pub mod cache;
pub mod decode;
pub mod dtmf;
pub mod error;
pub mod export;
pub mod g711;
pub mod level;
pub mod prepare;
pub mod prompt;
pub mod recording;
pub mod report;
pub mod resample;

pub use error::AudioError;
pub use prepare::{Prepared, Settings, prepare_campaign, prepare_campaign_with, prepare_prompt};
pub use prompt::{Frame, Prompt, PromptSet};
pub use report::{FileReport, Problem, Severity, Summary};
