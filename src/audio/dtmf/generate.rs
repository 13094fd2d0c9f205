//! Test signals for the DTMF detector: key tones, silence, white noise, music-like
//! signals and a mixer, all deterministic (seeded) so that tests and benches hear the
//! same audio every run.
//!
//! Levels are in dBm0 with the G.711 µ-law convention: a full-scale 16-bit sine
//! (amplitude 32 768) is +3.14 dBm0, so a 0 dBm0 sine has a peak of
//! [`DBM0_PEAK`] ≈ 22 827 and an RMS of ≈ 16 141. Samples are clipped (saturated) to
//! the 16-bit range, as a real channel would.

use std::f64::consts::TAU;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// The sample rate kuma's telephony audio runs at.
pub const SAMPLE_RATE: u32 = 8000;

/// Peak amplitude of a 0 dBm0 sine in 16-bit linear (µ-law: full scale is +3.14 dBm0).
pub const DBM0_PEAK: f64 = 22_827.0;

/// The low (row) group, Hz: ITU-T Q.23.
pub const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// The high (column) group, Hz: ITU-T Q.23.
pub const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad, row by row, as in [`ROWS`] × [`COLUMNS`].
pub const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Every key, in the order the test tape plays them.
pub const ALL_KEYS: &str = "123A456B789C*0#D";

/// The (low, high) frequency pair of a key, or `None` for a character that is no key.
pub fn frequencies(key: char) -> Option<(f64, f64)> {
    let key = key.to_ascii_uppercase();
    KEYPAD.iter().enumerate().find_map(|(row, keys)| {
        let col = keys.iter().position(|&k| k == key)?;
        Some((ROWS[row], COLUMNS[col]))
    })
}

/// Peak amplitude of a sine at `level_dbm0`.
pub fn amplitude(level_dbm0: f64) -> f64 {
    DBM0_PEAK * 10f64.powf(level_dbm0 / 20.0)
}

/// The number of samples in `duration_ms` at `sample_rate`.
pub fn samples_for(duration_ms: u32, sample_rate: u32) -> usize {
    (u64::from(duration_ms) * u64::from(sample_rate) / 1000) as usize
}

fn to_i16(x: f64) -> i16 {
    x.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
}

/// The tone of `key`: its low tone at `level_low_dbm0`, its high tone at
/// `level_high_dbm0`, both frequencies moved by `freq_offset_pct` percent (a
/// sample-clock error moves both alike). `None` for a character that is no key.
pub fn tone(
    key: char,
    duration_ms: u32,
    level_low_dbm0: f64,
    level_high_dbm0: f64,
    freq_offset_pct: f64,
    sample_rate: u32,
) -> Option<Vec<i16>> {
    let (low, high) = frequencies(key)?;
    let scale = 1.0 + freq_offset_pct / 100.0;
    Some(dual_tone(
        low * scale,
        high * scale,
        duration_ms,
        level_low_dbm0,
        level_high_dbm0,
        sample_rate,
    ))
}

/// Two sines added, starting in phase: the general form of [`tone`], for tones that
/// are off-frequency one at a time (the Mitel bandwidth test).
pub fn dual_tone(
    freq_low: f64,
    freq_high: f64,
    duration_ms: u32,
    level_low_dbm0: f64,
    level_high_dbm0: f64,
    sample_rate: u32,
) -> Vec<i16> {
    let (a, b) = (amplitude(level_low_dbm0), amplitude(level_high_dbm0));
    let rate = f64::from(sample_rate.max(1));
    (0..samples_for(duration_ms, sample_rate))
        .map(|n| {
            let t = n as f64 / rate;
            to_i16(a * (TAU * freq_low * t).sin() + b * (TAU * freq_high * t).sin())
        })
        .collect()
}

/// One sine at `level_dbm0`.
pub fn sine(freq: f64, duration_ms: u32, level_dbm0: f64, sample_rate: u32) -> Vec<i16> {
    let a = amplitude(level_dbm0);
    let rate = f64::from(sample_rate.max(1));
    (0..samples_for(duration_ms, sample_rate))
        .map(|n| to_i16(a * (TAU * freq * n as f64 / rate).sin()))
        .collect()
}

/// Digital silence.
pub fn silence(duration_ms: u32, sample_rate: u32) -> Vec<i16> {
    vec![0; samples_for(duration_ms, sample_rate)]
}

/// Gaussian white noise whose power is `level_dbm0` (the power of a sine at that
/// level), from a seeded generator: the same seed gives the same noise.
pub fn white_noise(duration_ms: u32, level_dbm0: f64, seed: u64, sample_rate: u32) -> Vec<i16> {
    let rms = amplitude(level_dbm0) / std::f64::consts::SQRT_2;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..samples_for(duration_ms, sample_rate))
        .map(|_| {
            // Box–Muller: two uniforms in (0, 1] and [0, 1) give one normal deviate.
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            to_i16(rms * (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos())
        })
        .collect()
}

/// A linear sweep from `from_hz` to `to_hz` at `level_dbm0`: sweeping through the
/// DTMF band is a classic way to fool a detector.
pub fn sweep(
    from_hz: f64,
    to_hz: f64,
    duration_ms: u32,
    level_dbm0: f64,
    sample_rate: u32,
) -> Vec<i16> {
    let a = amplitude(level_dbm0);
    let rate = f64::from(sample_rate.max(1));
    let len = samples_for(duration_ms, sample_rate);
    let span = len.max(1) as f64 / rate;
    let mut phase = 0.0f64;
    (0..len)
        .map(|n| {
            let t = n as f64 / rate;
            let freq = from_hz + (to_hz - from_hz) * t / span;
            phase = (phase + TAU * freq / rate) % TAU;
            to_i16(a * phase.sin())
        })
        .collect()
}

/// One note of a music-like signal: a fundamental and `harmonics` overtones falling
/// off 6 dB per octave, with a short attack and a decay, like a plucked string or a
/// reed. `level_dbm0` is the fundamental's level.
pub fn note(
    freq: f64,
    harmonics: u32,
    duration_ms: u32,
    level_dbm0: f64,
    sample_rate: u32,
) -> Vec<i16> {
    let a = amplitude(level_dbm0);
    let rate = f64::from(sample_rate.max(1));
    let len = samples_for(duration_ms, sample_rate);
    let attack = (rate * 0.01).max(1.0);
    (0..len)
        .map(|n| {
            let t = n as f64 / rate;
            let envelope =
                (n as f64 / attack).min(1.0) * (-3.0 * n as f64 / len.max(1) as f64).exp();
            let mut x = 0.0;
            for h in 1..=harmonics + 1 {
                let f = freq * f64::from(h);
                if f < rate / 2.0 {
                    x += (TAU * f * t).sin() / f64::from(h);
                }
            }
            to_i16(a * envelope * x)
        })
        .collect()
}

/// Several notes sounding together (a chord), each at `level_dbm0`.
pub fn chord(
    freqs: &[f64],
    harmonics: u32,
    duration_ms: u32,
    level_dbm0: f64,
    sample_rate: u32,
) -> Vec<i16> {
    freqs.iter().fold(Vec::new(), |acc, &f| {
        mix(
            &acc,
            &note(f, harmonics, duration_ms, level_dbm0, sample_rate),
        )
    })
}

/// A seeded random melody with chords: notes of an equal-tempered scale between
/// about 200 Hz and 1.7 kHz (so their fundamentals and overtones wander over the
/// DTMF frequencies), 80–400 ms each, a third of them doubled by a chord.
pub fn music(duration_ms: u32, level_dbm0: f64, seed: u64, sample_rate: u32) -> Vec<i16> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let total = samples_for(duration_ms, sample_rate);
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let semitone: i32 = rng.random_range(-20..=24);
        let freq = 440.0 * 2f64.powf(f64::from(semitone) / 12.0);
        let ms: u32 = rng.random_range(80..=400);
        let harmonics: u32 = rng.random_range(0..=6);
        let mut piece = if rng.random_range(0..3) == 0 {
            // A major or minor triad on that root.
            let third = if rng.random::<bool>() { 4.0 } else { 3.0 };
            let freqs = [
                freq,
                freq * 2f64.powf(third / 12.0),
                freq * 2f64.powf(7.0 / 12.0),
            ];
            chord(&freqs, harmonics, ms, level_dbm0 - 4.0, sample_rate)
        } else {
            note(freq, harmonics, ms, level_dbm0, sample_rate)
        };
        piece.truncate(total - out.len());
        out.extend_from_slice(&piece);
    }
    out
}

/// `a` and `b` added sample by sample, saturating; the result is as long as the
/// longer of the two (the shorter one is padded with silence).
pub fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
    (0..a.len().max(b.len()))
        .map(|i| {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            x.saturating_add(y)
        })
        .collect()
}

/// `samples` played `factor` times faster (pitch and formants move with it), by
/// linear interpolation: more talk-off material out of one recording.
pub fn speed(samples: &[i16], factor: f64) -> Vec<i16> {
    if samples.is_empty() || factor.is_nan() || factor <= 0.0 {
        return Vec::new();
    }
    let len = ((samples.len() - 1) as f64 / factor) as usize + 1;
    (0..len)
        .map(|i| {
            let t = i as f64 * factor;
            let k = t as usize;
            let frac = t - k as f64;
            let a = f64::from(samples.get(k).copied().unwrap_or(0));
            let b = f64::from(samples.get(k + 1).copied().unwrap_or(0));
            to_i16(a + (b - a) * frac)
        })
        .collect()
}

/// `samples` scaled by `gain_db`, saturating.
pub fn gain(samples: &[i16], gain_db: f64) -> Vec<i16> {
    let g = 10f64.powf(gain_db / 20.0);
    samples.iter().map(|&x| to_i16(f64::from(x) * g)).collect()
}

/// A two-pole resonator (a formant): centre `hz`, bandwidth `bw` Hz, unit gain at
/// its centre; its coefficients may move from sample to sample.
#[derive(Debug, Clone, Copy, Default)]
struct Resonator {
    y1: f64,
    y2: f64,
}

impl Resonator {
    fn run(&mut self, x: f64, hz: f64, bw: f64, rate: f64) -> f64 {
        let r = (-std::f64::consts::PI * bw / rate).exp();
        let c = 2.0 * r * (TAU * hz / rate).cos();
        let y = (1.0 - r) * (1.0 - r * r).sqrt() * x + c * self.y1 - r * r * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// First three formants (Hz) of French-like vowels: a, e, i, o, u, é, ou, eu.
const VOWELS: [[f64; 3]; 8] = [
    [750.0, 1250.0, 2600.0],
    [550.0, 1750.0, 2500.0],
    [300.0, 2250.0, 3000.0],
    [450.0, 850.0, 2600.0],
    [300.0, 1750.0, 2200.0],
    [400.0, 2050.0, 2700.0],
    [320.0, 800.0, 2300.0],
    [480.0, 1450.0, 2450.0],
];

/// What a voice does over one stretch: a vowel (voiced, formants moving towards
/// `formants`), a fricative (noise high up) or a pause.
#[derive(Debug, Clone, Copy)]
enum Segment {
    Vowel { formants: [f64; 3] },
    Fricative { centre: f64 },
    Pause,
}

/// A source–filter voice: a glottal pulse train (pulses placed at fractional
/// positions, so the pitch is continuous, and low-passed like a glottis) through
/// three formant resonators, plus noise for fricatives. Its pitch and formants
/// glide, so its harmonics sweep over the DTMF frequencies as real voices do.
struct Voice {
    rng: Xoshiro256PlusPlus,
    rate: f64,
    /// Time to the next glottal pulse, samples.
    to_pulse: f64,
    /// The pulse's share left for the next sample (fractional placement).
    carry: f64,
    tilt: [f64; 2],
    formants: [f64; 3],
    res: [Resonator; 3],
    noise_res: Resonator,
    amp: f64,
}

impl Voice {
    fn new(seed: u64, rate: f64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            rate,
            to_pulse: 0.0,
            carry: 0.0,
            tilt: [0.0; 2],
            formants: VOWELS[0],
            res: [Resonator::default(); 3],
            noise_res: Resonator::default(),
            amp: 0.0,
        }
    }

    /// `len` samples of `segment` at pitch `f0(t)` (t from 0 to 1 over the
    /// segment), appended to `out` as f64 (levelled later).
    fn segment(
        &mut self,
        segment: Segment,
        len: usize,
        f0: &dyn Fn(f64) -> f64,
        out: &mut Vec<f64>,
    ) {
        let glide = 1.0 - (-1.0 / (0.03 * self.rate)).exp();
        for n in 0..len {
            let t = n as f64 / len.max(1) as f64;
            let (target_amp, voiced, fric) = match segment {
                Segment::Vowel { formants } => {
                    for (f, want) in self.formants.iter_mut().zip(formants) {
                        *f += (want - *f) * glide;
                    }
                    (1.0, true, None)
                }
                Segment::Fricative { centre } => (0.25, false, Some(centre)),
                Segment::Pause => (0.0, false, None),
            };
            self.amp += (target_amp - self.amp) * (1.0 - (-1.0 / (0.01 * self.rate)).exp());
            let mut x = self.carry;
            self.carry = 0.0;
            if voiced {
                self.to_pulse -= 1.0;
                if self.to_pulse <= 0.0 {
                    // The pulse lands between this sample and the next.
                    let frac = (-self.to_pulse).min(1.0);
                    x += 1.0 - frac;
                    self.carry = frac;
                    let jitter = 1.0 + 0.01 * (self.rng.random::<f64>() - 0.5);
                    self.to_pulse += self.rate / f0(t).max(40.0) * jitter;
                }
            }
            // The glottis: a pulse smoothed twice (about −12 dB per octave).
            self.tilt[0] = 0.85 * self.tilt[0] + x;
            self.tilt[1] = 0.7 * self.tilt[1] + self.tilt[0];
            let src = self.tilt[1] - 2.4 * self.tilt[0] * 0.3;
            let mut y = 0.0;
            let bws = [80.0, 100.0, 150.0];
            for ((r, f), bw) in self.res.iter_mut().zip(self.formants).zip(bws) {
                y += r.run(src, f, bw, self.rate);
            }
            let noise = self.rng.random::<f64>() - 0.5;
            let hiss = match fric {
                Some(c) => self.noise_res.run(noise, c, 1500.0, self.rate) * 8.0,
                None => self.noise_res.run(0.0, 3000.0, 1500.0, self.rate),
            };
            out.push(self.amp * (y + hiss));
        }
    }
}

/// `x` scaled so that its active level (the RMS of its 20 ms frames within 30 dB
/// of the loudest, as ITU-T P.56 measures speech) is `level_dbm0`.
fn level_active(x: &[f64], level_dbm0: f64) -> Vec<i16> {
    let frames: Vec<f64> = x
        .chunks(160)
        .map(|f| f.iter().map(|v| v * v).sum::<f64>() / f.len().max(1) as f64)
        .collect();
    let loudest = frames.iter().copied().fold(0.0, f64::max);
    let active: Vec<f64> = frames
        .iter()
        .copied()
        .filter(|&p| p > loudest * 1e-3)
        .collect();
    let power = active.iter().sum::<f64>() / active.len().max(1) as f64;
    let g = if power > 0.0 {
        amplitude(level_dbm0) / std::f64::consts::SQRT_2 / power.sqrt()
    } else {
        0.0
    };
    x.iter().map(|&v| to_i16(v * g)).collect()
}

/// The active speech level of `x`, dBm0 (see [`level_active`]); −100 for silence.
pub fn active_level_dbm0(x: &[i16]) -> f64 {
    let frames: Vec<f64> = x
        .chunks(160)
        .map(|f| f.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / f.len().max(1) as f64)
        .collect();
    let loudest = frames.iter().copied().fold(0.0, f64::max);
    let active: Vec<f64> = frames
        .iter()
        .copied()
        .filter(|&p| p > loudest * 1e-3)
        .collect();
    let power = active.iter().sum::<f64>() / active.len().max(1) as f64;
    if power <= 0.0 {
        return -100.0;
    }
    20.0 * (power.sqrt() * std::f64::consts::SQRT_2 / DBM0_PEAK).log10()
}

/// Seeded synthetic speech, `duration_ms` long at an active level of `level_dbm0`:
/// phrases of 3–12 syllables (a consonant, often a fricative, then a vowel), a pitch
/// that falls over each phrase from a speaker's own register (men 90–150 Hz, women
/// 170–260 Hz, children 250–350 Hz) with rises and falls on syllables, pauses
/// between phrases. Not intelligible, but its harmonics and formants move over the
/// DTMF band as a talker's do.
pub fn speech(duration_ms: u32, level_dbm0: f64, seed: u64, sample_rate: u32) -> Vec<i16> {
    let rate = f64::from(sample_rate.max(1));
    let total = samples_for(duration_ms, sample_rate);
    let mut voice = Voice::new(seed, rate);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5eed);
    let mut out = Vec::with_capacity(total + 8000);
    let base = match rng.random_range(0..3) {
        0 => rng.random_range(90.0..150.0),
        1 => rng.random_range(170.0..260.0),
        _ => rng.random_range(250.0..350.0),
    };
    while out.len() < total {
        let syllables = rng.random_range(3..=12);
        let start = base * rng.random_range(1.0..1.3);
        for i in 0..syllables {
            let fall = 1.0 - 0.3 * f64::from(i) / f64::from(syllables);
            if rng.random_range(0..3) == 0 {
                let len = (rate * rng.random_range(0.04..0.12)) as usize;
                let centre = rng.random_range(2500.0..3600.0);
                voice.segment(Segment::Fricative { centre }, len, &|_| base, &mut out);
            } else {
                let len = (rate * rng.random_range(0.02..0.05)) as usize;
                voice.segment(Segment::Pause, len, &|_| base, &mut out);
            }
            let formants = VOWELS[rng.random_range(0..VOWELS.len())];
            let len = (rate * rng.random_range(0.08..0.3)) as usize;
            let (a, b) = (
                start * fall * rng.random_range(0.9..1.1),
                start * fall * rng.random_range(0.85..1.15),
            );
            voice.segment(
                Segment::Vowel { formants },
                len,
                &|t| a + (b - a) * t,
                &mut out,
            );
        }
        let len = (rate * rng.random_range(0.15..0.8)) as usize;
        voice.segment(Segment::Pause, len, &|_| base, &mut out);
    }
    out.truncate(total);
    level_active(&out, level_dbm0)
}

/// Seeded sung vowels, `duration_ms` long at `level_dbm0`: held notes of 0.3–2.5 s
/// on an equal-tempered scale from 87 to 880 Hz (bass to soprano), on one vowel
/// each, with a singer's vibrato (4.5–7 Hz, ±0 to 3 %) or none, and narrower
/// formants than speech, the hardest talk-off material: two harmonics of a held
/// note can sit on a row and a column frequency for as long as the note lasts.
pub fn sung_vowels(duration_ms: u32, level_dbm0: f64, seed: u64, sample_rate: u32) -> Vec<i16> {
    let rate = f64::from(sample_rate.max(1));
    let total = samples_for(duration_ms, sample_rate);
    let mut voice = Voice::new(seed, rate);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5106);
    let mut out = Vec::with_capacity(total + 24_000);
    while out.len() < total {
        let semitone: i32 = rng.random_range(-28..=12);
        // Some singers are not quite in tune.
        let f0 = 440.0 * 2f64.powf((f64::from(semitone) + rng.random_range(-0.3..0.3)) / 12.0);
        let len = (rate * rng.random_range(0.3..2.5)) as usize;
        let secs = len as f64 / rate;
        let (rate_hz, depth) = if rng.random_range(0..4) == 0 {
            (5.0, 0.0)
        } else {
            (rng.random_range(4.5..7.0), rng.random_range(0.003..0.03))
        };
        let phase = rng.random_range(0.0..TAU);
        let formants = VOWELS[rng.random_range(0..VOWELS.len())];
        voice.segment(
            Segment::Vowel { formants },
            len,
            &|t| f0 * (1.0 + depth * (TAU * rate_hz * t * secs + phase).sin()),
            &mut out,
        );
        if rng.random_range(0..3) == 0 {
            let len = (rate * rng.random_range(0.05..0.3)) as usize;
            voice.segment(Segment::Pause, len, &|_| f0, &mut out);
        }
    }
    out.truncate(total);
    level_active(&out, level_dbm0)
}

/// The singers of [`song`]: the lowest and highest note each sings, semitones from
/// A4 (440 Hz): bass, tenor, alto, soprano.
const CHOIR: [(i32, i32); 4] = [(-26, -5), (-17, 1), (-12, 5), (-5, 12)];

/// Seeded choral singing over an accompaniment, `duration_ms` long at an active
/// level of `level_dbm0` (the voices; the accompaniment 8–14 dB under them): two
/// to four voices (bass, tenor, alto, soprano) sing a chord progression legato,
/// each moving to the nearest note of the next chord (0.4–1.6 s each) with a
/// glide of 30–90 ms, on a vowel per note, with a singer's vibrato (5–6.5 Hz,
/// ±0.5–2 %, fading in over the first 100–300 ms of each note) and a breath
/// between phrases, over [`music`]. Real choirs are never exactly in tune with one
/// another: each voice is off by up to ±15 cents.
pub fn song(duration_ms: u32, level_dbm0: f64, seed: u64, sample_rate: u32) -> Vec<i16> {
    let rate = f64::from(sample_rate.max(1));
    let total = samples_for(duration_ms, sample_rate);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xc401);
    let voices = rng.random_range(2..=4usize);
    let first = rng.random_range(0..=4 - voices);
    // The progression: each chord a triad (major or minor) on a degree of the key,
    // with its length and whether the phrase ends after it.
    let key: i32 = rng.random_range(-6..=5);
    let mut chords = Vec::new();
    let mut len = 0usize;
    while len < total {
        let degree = [0, 2, 4, 5, 7, 9][rng.random_range(0..6)];
        let third = if rng.random::<bool>() { 4 } else { 3 };
        let samples = (rate * rng.random_range(0.4..1.6)) as usize;
        let breath = rng.random_range(0..5) == 0;
        chords.push((key + degree, third, samples, breath));
        len += samples;
    }
    let mut sum = vec![0.0f64; total + 16_000];
    for (v, &(low, high)) in CHOIR.iter().enumerate().skip(first).take(voices) {
        let mut voice = Voice::new(seed.wrapping_mul(31).wrapping_add(v as u64), rate);
        let mut vrng = Xoshiro256PlusPlus::seed_from_u64(seed ^ (0x5151 + v as u64));
        let cents = vrng.random_range(-15.0..15.0);
        let gain = 10f64.powf(vrng.random_range(-6.0..0.0) / 20.0);
        let mut note = (low + high) / 2;
        let mut pitch = 440.0 * 2f64.powf(f64::from(note) / 12.0);
        let mut vib_phase = vrng.random_range(0.0..TAU);
        let mut out = Vec::with_capacity(total + 16_000);
        for &(root, third, samples, breath) in &chords {
            // The chord tone nearest the voice's last note, within its range.
            let tones = [0, third, 7];
            note = (low..=high)
                .filter(|n| tones.contains(&(n - root).rem_euclid(12)))
                .min_by_key(|n| (n - note).abs())
                .unwrap_or(note);
            let target = 440.0 * 2f64.powf((f64::from(note) + cents / 100.0) / 12.0);
            let from = pitch;
            let secs = samples as f64 / rate;
            let glide = vrng.random_range(0.03..0.09) / secs;
            let onset = vrng.random_range(0.1..0.3) / secs;
            let vib_rate = vrng.random_range(5.0..6.5);
            let depth = vrng.random_range(0.005..0.02);
            let phase = vib_phase;
            let formants = VOWELS[vrng.random_range(0..VOWELS.len())];
            voice.segment(
                Segment::Vowel { formants },
                samples,
                &|t| {
                    let g = (t / glide).min(1.0);
                    let base = from * (target / from).powf(g * g * (3.0 - 2.0 * g));
                    let fade = (t / onset).min(1.0);
                    base * (1.0 + fade * depth * (TAU * vib_rate * t * secs + phase).sin())
                },
                &mut out,
            );
            vib_phase = (phase + TAU * vib_rate * secs) % TAU;
            pitch = target;
            if breath {
                let len = (rate * vrng.random_range(0.1..0.3)) as usize;
                voice.segment(Segment::Pause, len, &|_| target, &mut out);
            }
        }
        for (s, x) in sum.iter_mut().zip(&out) {
            *s += gain * x;
        }
    }
    sum.truncate(total);
    let voices = level_active(&sum, level_dbm0);
    let under = rng.random_range(8.0..14.0);
    mix(
        &voices,
        &music(
            duration_ms,
            level_dbm0 - under,
            seed.wrapping_add(1),
            sample_rate,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    #[test]
    fn every_key_has_its_pair_and_others_none() {
        assert_eq!(frequencies('1'), Some((697.0, 1209.0)));
        assert_eq!(frequencies('0'), Some((941.0, 1336.0)));
        assert_eq!(frequencies('d'), Some((941.0, 1633.0)));
        assert_eq!(frequencies('x'), None);
        assert!(tone('x', 40, 0.0, 0.0, 0.0, SAMPLE_RATE).is_none());
        assert_eq!(ALL_KEYS.chars().filter_map(frequencies).count(), 16);
    }

    #[test]
    fn levels_follow_the_mu_law_convention() {
        let s = sine(1000.0, 1000, 0.0, SAMPLE_RATE);
        assert_eq!(s.len(), 8000);
        assert!((rms(&s) - DBM0_PEAK / 2f64.sqrt()).abs() < 20.0);
        let n = white_noise(1000, -20.0, 7, SAMPLE_RATE);
        let want = amplitude(-20.0) / 2f64.sqrt();
        assert!((rms(&n) / want - 1.0).abs() < 0.03, "{} vs {want}", rms(&n));
        assert_eq!(n, white_noise(1000, -20.0, 7, SAMPLE_RATE));
    }

    #[test]
    fn mixing_saturates_and_pads() {
        assert_eq!(mix(&[i16::MAX, 1], &[10]), vec![i16::MAX, 1]);
        assert_eq!(gain(&[1000, -1000], -6.0206), vec![500, -500]);
        assert_eq!(music(500, -20.0, 1, SAMPLE_RATE).len(), 4000);
        assert_eq!(speed(&[0, 100, 200], 2.0), vec![0, 200]);
        assert_eq!(speed(&[0, 100], 0.5), vec![0, 50, 100]);
        assert!(speed(&[], 1.0).is_empty() && speed(&[1], f64::NAN).is_empty());
    }
}
