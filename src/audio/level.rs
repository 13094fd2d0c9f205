//! Trimming silence and levelling prompts to one loudness, at 8 kHz.
//!
//! Callers should not strain at one prompt and jump at the next, so every prompt of
//! every campaign is brought to the same **active speech level**: the RMS of the
//! 20 ms blocks that hold sound, gated the way ITU-T P.56 and EBU R128 gate (blocks
//! below -60 dBFS are ignored, then blocks more than 20 dB below the mean of the
//! rest), so pauses between sentences do not pull the figure down. The level is
//! measured after resampling, on the band a caller actually hears.
//!
//! **The target, [`TARGET_LEVEL_DB`] = -20 dBFS** (dBov: relative to the digital
//! full-scale square wave; a full-scale sine is -3 dBov). ITU-T's nominal speech
//! level for telephony is -26 dBov; prompts are set 6 dB hotter because callers
//! hear them on mobile handsets, often in a noisy room with a radio on, and a
//! recorded voice has none of the loudness cues of a live talker. Speech peaks sit
//! 12–20 dB above its active level, so at -20 dBov the loudest syllables reach full
//! scale: a **peak limiter** holds every sample under [`PEAK_CEILING_DB`] = -1 dBFS,
//! below G.711's largest code (µ-law ±32124, -0.17 dBFS) so nothing clips after
//! encoding. The limiter looks ahead: its gain ramps down over 2 ms before a peak and
//! recovers over 50 ms, which is inaudible on the few peaks that need it. A prompt
//! whose peaks need more than 6 dB of limiting gets a warning (clicks, pops, or a
//! recording that was clipped already).
//!
//! Before measuring, a DC blocker (a first-order high-pass at 20 Hz) removes the
//! offset some cheap recorders add; it would otherwise bias the silence detection and
//! waste G.711's finest steps, which sit around zero.
//!
//! **Trimming**: a 10 ms block is *sound* when its RMS is within 30 dB of the active
//! level (and above -60 dBFS). Everything before the first sound block less 50 ms,
//! and after the last one plus 150 ms (the natural decay of the last word), is cut,
//! with 5 ms fades so that the cuts do not click. The share of sound blocks in the
//! whole recording says whether it is *mostly silence*.

use std::ops::Range;

use super::error::AudioError;
use super::resample::TELEPHONE_RATE;

/// The active speech level every prompt is brought to, in dBFS (dBov).
pub const TARGET_LEVEL_DB: f32 = -20.0;

/// No sample of a prepared prompt exceeds this, in dBFS.
pub const PEAK_CEILING_DB: f32 = -1.0;

/// The most a quiet recording is raised; beyond it, hiss would be raised as much as voice.
pub const MAX_GAIN_DB: f32 = 30.0;

/// Nothing above this is sound.
pub const SILENCE_FLOOR_DB: f32 = -60.0;

const RATE: usize = TELEPHONE_RATE as usize;
const LEVEL_BLOCK: usize = RATE / 50; // 20 ms
const TRIM_BLOCK: usize = RATE / 100; // 10 ms
const RELATIVE_GATE_DB: f32 = 20.0;
const SOUND_BELOW_ACTIVE_DB: f32 = 30.0;
const LEAD_MARGIN: usize = RATE / 20; // 50 ms
const TAIL_MARGIN: usize = RATE * 3 / 20; // 150 ms
const FADE: usize = RATE / 200; // 5 ms
const ATTACK: usize = RATE / 500; // 2 ms
const RELEASE: usize = RATE / 20; // 50 ms

/// How a prompt should be levelled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelSettings {
    pub target_db: f32,
    pub ceiling_db: f32,
    pub max_gain_db: f32,
}

impl Default for LevelSettings {
    fn default() -> Self {
        LevelSettings {
            target_db: TARGET_LEVEL_DB,
            ceiling_db: PEAK_CEILING_DB,
            max_gain_db: MAX_GAIN_DB,
        }
    }
}

/// A trimmed, levelled prompt at 8 kHz and what was done to it.
#[derive(Debug, Clone)]
pub struct Levelled {
    pub samples: Vec<f32>,
    /// Active speech level of the recording as delivered, in dBFS.
    pub source_level_db: f32,
    /// Gain applied to reach the target (before the limiter), in dB.
    pub gain_db: f32,
    /// Deepest gain reduction of the peak limiter, in dB (0 when it did nothing).
    pub limited_db: f32,
    /// The gain was capped at the maximum, so the prompt stays below the target.
    pub gain_capped: bool,
    /// Samples cut at the start and at the end (at 8 kHz).
    pub trimmed: (usize, usize),
    /// Share of 10 ms blocks of the whole recording that hold sound (0 to 1).
    pub sound_fraction: f32,
}

/// Removes DC, trims silence, levels to the target and limits peaks.
pub fn level(mut samples: Vec<f32>, settings: &LevelSettings) -> Result<Levelled, AudioError> {
    block_dc(&mut samples);
    let source_level_db = active_level_db(&samples).ok_or(AudioError::Silent)?;
    let (keep, sound_fraction) = sound_span(&samples, source_level_db);
    let trimmed = (keep.start, samples.len() - keep.end);
    samples.truncate(keep.end);
    samples.drain(..keep.start);

    let wanted = settings.target_db - source_level_db;
    let gain_db = wanted.min(settings.max_gain_db);
    let gain = db_to_amp(gain_db);
    for s in samples.iter_mut() {
        *s *= gain;
    }
    let limited_db = limit_peaks(&mut samples, db_to_amp(settings.ceiling_db));
    fade(&mut samples);
    Ok(Levelled {
        samples,
        source_level_db,
        gain_db,
        limited_db,
        gain_capped: wanted > settings.max_gain_db,
        trimmed,
        sound_fraction,
    })
}

/// Gated active level in dBFS, or `None` when nothing is above the silence floor.
pub fn active_level_db(samples: &[f32]) -> Option<f32> {
    let floor = db_to_power(SILENCE_FLOOR_DB);
    let powers: Vec<f64> = samples
        .chunks(LEVEL_BLOCK)
        .map(mean_power)
        .filter(|&p| p > floor)
        .collect();
    if powers.is_empty() {
        return None;
    }
    let ungated = powers.iter().sum::<f64>() / powers.len() as f64;
    let gate = ungated * db_to_power(-RELATIVE_GATE_DB);
    let (sum, n) = powers
        .iter()
        .filter(|&&p| p > gate)
        .fold((0.0, 0usize), |(s, n), p| (s + p, n + 1));
    let mean = if n == 0 { ungated } else { sum / n as f64 };
    Some(power_to_db(mean))
}

/// The range of samples to keep, and the share of blocks that hold sound.
fn sound_span(samples: &[f32], active_db: f32) -> (Range<usize>, f32) {
    let threshold = db_to_power((active_db - SOUND_BELOW_ACTIVE_DB).max(SILENCE_FLOOR_DB));
    let mut first = None;
    let mut last = 0;
    let mut sound = 0usize;
    let mut blocks = 0usize;
    for (i, block) in samples.chunks(TRIM_BLOCK).enumerate() {
        blocks += 1;
        if mean_power(block) > threshold {
            sound += 1;
            first.get_or_insert(i);
            last = i;
        }
    }
    let Some(first) = first else {
        return (0..samples.len(), 0.0);
    };
    let start = (first * TRIM_BLOCK).saturating_sub(LEAD_MARGIN);
    let end = ((last + 1) * TRIM_BLOCK + TAIL_MARGIN).min(samples.len());
    (start..end, sound as f32 / blocks.max(1) as f32)
}

/// First-order DC blocker, cut-off 20 Hz at 8 kHz.
fn block_dc(samples: &mut [f32]) {
    let r = 1.0 - 2.0 * std::f32::consts::PI * 20.0 / TELEPHONE_RATE as f32;
    // Start from the first sample so that an offset does not begin with a step.
    let mut x1 = samples.first().copied().unwrap_or(0.0);
    let mut y1 = 0.0f32;
    for s in samples.iter_mut() {
        let y = *s - x1 + r * y1;
        x1 = *s;
        y1 = y;
        *s = y;
    }
}

/// Holds every sample under `ceiling` with a look-ahead gain that ramps down over
/// [`ATTACK`] samples before a peak and back up over [`RELEASE`]; returns the deepest
/// reduction in dB.
fn limit_peaks(samples: &mut [f32], ceiling: f32) -> f32 {
    if !samples.iter().any(|s| s.abs() > ceiling) {
        return 0.0;
    }
    let mut gain: Vec<f32> = samples
        .iter()
        .map(|s| {
            let a = s.abs();
            if a > ceiling { ceiling / a } else { 1.0 }
        })
        .collect();
    let attack = 1.0 / ATTACK as f32;
    for i in (0..gain.len().saturating_sub(1)).rev() {
        gain[i] = gain[i].min(gain[i + 1] + attack);
    }
    let release = 1.0 / RELEASE as f32;
    for i in 1..gain.len() {
        gain[i] = gain[i].min(gain[i - 1] + release);
    }
    let mut deepest = 1.0f32;
    for (s, g) in samples.iter_mut().zip(&gain) {
        *s *= g;
        deepest = deepest.min(*g);
    }
    -20.0 * deepest.log10()
}

fn fade(samples: &mut [f32]) {
    let n = FADE.min(samples.len() / 2);
    let len = samples.len();
    for i in 0..n {
        let g = i as f32 / n as f32;
        samples[i] *= g;
        samples[len - 1 - i] *= g;
    }
}

fn mean_power(block: &[f32]) -> f64 {
    if block.is_empty() {
        return 0.0;
    }
    block
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / block.len() as f64
}

fn db_to_power(db: f32) -> f64 {
    10f64.powf(f64::from(db) / 10.0)
}

fn power_to_db(p: f64) -> f32 {
    (10.0 * p.max(1e-20).log10()) as f32
}

/// Amplitude ratio of a level in dB.
pub fn db_to_amp(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::resample::quality::sine;

    fn with_silence(lead: f64, tone: Vec<f32>, tail: f64) -> Vec<f32> {
        let mut v = vec![0.0; (lead * 8000.0) as usize];
        v.extend(tone);
        v.extend(vec![0.0; (tail * 8000.0) as usize]);
        v
    }

    #[test]
    fn a_tone_is_brought_to_the_target_whatever_its_level() {
        for amp in [0.01f32, 0.1, 0.9] {
            let x = with_silence(0.5, sine(440.0, 8000, 2.0, amp), 0.5);
            let out = level(x, &LevelSettings::default()).unwrap();
            let got = active_level_db(&out.samples).unwrap();
            assert!((got - TARGET_LEVEL_DB).abs() < 0.3, "amp {amp}: {got} dBFS");
            assert!(
                out.limited_db == 0.0,
                "a sine at -20 dBFS has no peak to limit"
            );
        }
    }

    #[test]
    fn silence_is_trimmed_with_margins() {
        let x = with_silence(1.0, sine(440.0, 8000, 1.0, 0.3), 2.0);
        let out = level(x, &LevelSettings::default()).unwrap();
        let kept = out.samples.len() as f64 / 8000.0;
        assert!((1.15..=1.25).contains(&kept), "kept {kept} s");
        assert!((out.trimmed.0 as f64 / 8000.0 - 0.95).abs() < 0.02);
        assert!((out.sound_fraction - 0.25).abs() < 0.02);
    }

    #[test]
    fn peaks_never_pass_the_ceiling() {
        // Speech-like: a quiet tone with a few loud clicks.
        let mut x = sine(300.0, 8000, 2.0, 0.05);
        for i in (1000..15000).step_by(3000) {
            x[i] = 0.9;
            x[i + 1] = -0.9;
        }
        let out = level(x, &LevelSettings::default()).unwrap();
        let ceiling = db_to_amp(PEAK_CEILING_DB);
        let peak = out.samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak <= ceiling + 1e-6, "peak {peak}");
        assert!(out.limited_db > 6.0);
    }

    #[test]
    fn a_silent_recording_is_an_error_and_gain_is_capped() {
        assert!(matches!(
            level(vec![0.0; 8000], &LevelSettings::default()),
            Err(AudioError::Silent)
        ));
        let x = sine(440.0, 8000, 1.0, 0.002); // about -57 dBFS
        let out = level(x, &LevelSettings::default()).unwrap();
        assert!(out.gain_capped);
        assert_eq!(out.gain_db, MAX_GAIN_DB);
    }

    #[test]
    fn dc_offset_is_removed() {
        let mut x: Vec<f32> = sine(440.0, 8000, 2.0, 0.1)
            .into_iter()
            .map(|s| s + 0.2)
            .collect();
        block_dc(&mut x);
        let tail = &x[8000..];
        let mean = tail.iter().sum::<f32>() / tail.len() as f32;
        assert!(mean.abs() < 1e-3, "mean {mean}");
    }
}
