//! The detector's test tape, in the spirit of the Mitel CM7291 tape DTMF receivers
//! are traditionally measured with (spandsp's `dtmf_rx_tests.c` rebuilds it the same
//! way): key presses generated at chosen levels, twists, frequency offsets and
//! durations, and the talk-off material (music, sweeps, noise) on which no key may be
//! heard. Shared by the tests in `tests.rs` and by `benches/dtmf.rs`; the detector
//! itself does not use it.

use super::generate::{self, ALL_KEYS, SAMPLE_RATE};
use super::{BLOCK, DtmfDetector, KeyEvent};

/// Audio and the key presses it holds.
#[derive(Debug, Default, Clone)]
pub struct Tape {
    pub samples: Vec<i16>,
    /// (key, first sample, one past the last sample).
    pub presses: Vec<(char, u64, u64)>,
}

impl Tape {
    /// `n` samples of silence.
    pub fn gap_samples(&mut self, n: usize) -> &mut Self {
        self.samples.resize(self.samples.len() + n, 0);
        self
    }

    /// Silence.
    pub fn gap(&mut self, ms: u32) -> &mut Self {
        self.gap_samples(generate::samples_for(ms, SAMPLE_RATE))
    }

    /// A press whose low and high tones are off nominal by their own percentages
    /// (Mitel's bandwidth test moves one at a time). A character that is no key adds
    /// nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn key_off(
        &mut self,
        key: char,
        ms: u32,
        low_dbm0: f64,
        high_dbm0: f64,
        low_pct: f64,
        high_pct: f64,
    ) -> &mut Self {
        let Some((low, high)) = generate::frequencies(key) else {
            return self;
        };
        let tone = generate::dual_tone(
            low * (1.0 + low_pct / 100.0),
            high * (1.0 + high_pct / 100.0),
            ms,
            low_dbm0,
            high_dbm0,
            SAMPLE_RATE,
        );
        let start = self.samples.len() as u64;
        self.samples.extend_from_slice(&tone);
        self.presses.push((key, start, self.samples.len() as u64));
        self
    }

    /// A press on nominal frequencies.
    pub fn key(&mut self, key: char, ms: u32, low_dbm0: f64, high_dbm0: f64) -> &mut Self {
        self.key_off(key, ms, low_dbm0, high_dbm0, 0.0, 0.0)
    }

    /// Every key `times` times, `on` ms each, `off` ms apart plus up to a block more
    /// so that the tones start anywhere in the detector's blocks.
    #[allow(clippy::too_many_arguments)]
    pub fn all_keys(
        &mut self,
        times: usize,
        on: u32,
        off: u32,
        low_dbm0: f64,
        high_dbm0: f64,
        low_pct: f64,
        high_pct: f64,
    ) -> &mut Self {
        for i in 0..times {
            for (j, key) in ALL_KEYS.chars().enumerate() {
                self.key_off(key, on, low_dbm0, high_dbm0, low_pct, high_pct)
                    .gap(off)
                    .gap_samples((i * 37 + j * 13) % BLOCK);
            }
        }
        self
    }

    /// `other` played after this tape, its presses with it.
    pub fn append(&mut self, other: &Tape) -> &mut Self {
        let offset = self.samples.len() as u64;
        self.samples.extend_from_slice(&other.samples);
        self.presses.extend(
            other
                .presses
                .iter()
                .map(|&(k, s, e)| (k, s + offset, e + offset)),
        );
        self
    }

    /// `other` mixed under the tape (cut or padded to the tape's length).
    pub fn mixed_with(&mut self, other: &[i16]) -> &mut Self {
        let n = self.samples.len().min(other.len());
        self.samples = generate::mix(&self.samples, &other[..n]);
        self
    }
}

/// How a run over a tape went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Score {
    pub presses: usize,
    /// Presses reported with their key.
    pub heard: usize,
    /// Presses reported more than once.
    pub repeated: usize,
    /// Reports of another key during a press.
    pub wrong: usize,
    /// Reports outside any press.
    pub false_keys: usize,
}

impl Score {
    /// Percentage of the presses heard.
    pub fn rate(&self) -> f64 {
        100.0 * self.heard as f64 / self.presses.max(1) as f64
    }

    /// Every press heard once, nothing else.
    pub fn is_perfect(&self) -> bool {
        self.heard == self.presses && self.repeated + self.wrong + self.false_keys == 0
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} heard ({:.1} %), {} repeated, {} wrong, {} false",
            self.heard,
            self.presses,
            self.rate(),
            self.repeated,
            self.wrong,
            self.false_keys
        )
    }
}

/// The keys a fresh detector reports in `samples`, fed in frames of `frame` samples.
pub fn detect(samples: &[i16], frame: usize) -> Vec<KeyEvent> {
    let mut detector = DtmfDetector::new();
    let mut out = Vec::new();
    for chunk in samples.chunks(frame.max(1)) {
        detector.push(chunk, &mut out);
    }
    detector.finish(&mut out);
    out
}

/// Match a fresh detector's reports on `tape` to its presses: a report belongs to
/// the press it falls in (its start may be up to a block early).
pub fn score(tape: &Tape, frame: usize) -> Score {
    score_events(tape, &detect(&tape.samples, frame))
}

/// Match any detector's reports on `tape` to its presses, as [`score`] does.
pub fn score_events(tape: &Tape, events: &[KeyEvent]) -> Score {
    let mut score = Score {
        presses: tape.presses.len(),
        ..Score::default()
    };
    let mut reports = vec![0usize; tape.presses.len()];
    for e in events {
        let press = tape.presses.iter().position(|&(_, start, end)| {
            e.start_sample + BLOCK as u64 >= start && e.start_sample < end
        });
        match press {
            Some(i) if tape.presses[i].0 == e.key => reports[i] += 1,
            Some(_) => score.wrong += 1,
            None => score.false_keys += 1,
        }
    }
    score.heard = reports.iter().filter(|&&n| n >= 1).count();
    score.repeated = reports.iter().filter(|&&n| n > 1).count();
    score
}

/// Side one of the tape: every Q.24 condition the detector must accept, each key
/// several times: levels −36 to 0 dBm0, ±1.5 % on either or both tones, twist 8 dB
/// normal and 4 dB reverse, 40 ms tones with 50 ms gaps, and 15 dB S/N white noise.
pub fn acceptance_tape() -> Tape {
    let mut tape = Tape::default();
    tape.gap(20);
    for level in [0.0, -10.0, -20.0, -30.0, -36.0] {
        tape.all_keys(2, 50, 50, level, level, 0.0, 0.0);
    }
    for (low, high) in [
        (1.5, 0.0),
        (-1.5, 0.0),
        (0.0, 1.5),
        (0.0, -1.5),
        (1.5, 1.5),
        (-1.5, -1.5),
    ] {
        tape.all_keys(2, 50, 50, -17.0, -17.0, low, high);
    }
    for (low, high) in [
        (-10.0, -18.0),
        (-14.0, -10.0),
        (-26.0, -34.0),
        (-30.0, -26.0),
    ] {
        tape.all_keys(2, 50, 50, low, high, 0.0, 0.0);
    }
    tape.all_keys(4, 40, 50, -10.0, -10.0, 0.0, 0.0);
    let mut noisy = Tape::default();
    noisy.all_keys(4, 50, 50, -10.0, -10.0, 0.0, 0.0);
    let noise = generate::white_noise(20_000, -10.0 + 3.01 - 15.0, 99, SAMPLE_RATE);
    noisy.mixed_with(&noise);
    let offset = tape.samples.len() as u64;
    tape.samples.extend_from_slice(&noisy.samples);
    tape.presses.extend(
        noisy
            .presses
            .iter()
            .map(|&(k, s, e)| (k, s + offset, e + offset)),
    );
    tape
}

/// Music-like signals, sweeps and noise, `minutes` long (4 minutes or more to hold
/// every part once): seeded melodies and chords with harmonics at several levels,
/// sweeps over the whole band at several speeds, white noise.
pub fn music_and_noise(minutes: u32, seed: u64) -> Vec<i16> {
    let total = generate::samples_for(minutes.saturating_mul(60_000), SAMPLE_RATE);
    let mut audio = Vec::with_capacity(total);
    let mut round = 0u64;
    while audio.len() < total {
        let seed = seed.wrapping_mul(1000).wrapping_add(round);
        for (i, level) in [-12.0, -20.0, -6.0, -16.0].into_iter().enumerate() {
            audio.extend(generate::music(45_000, level, seed + i as u64, SAMPLE_RATE));
        }
        for (ms, level) in [(1000, -10.0), (3000, -20.0), (10_000, -6.0), (500, -15.0)] {
            audio.extend(generate::sweep(300.0, 3400.0, ms, level, SAMPLE_RATE));
            audio.extend(generate::sweep(3400.0, 300.0, ms, level, SAMPLE_RATE));
        }
        audio.extend(generate::white_noise(11_000, -10.0, seed, SAMPLE_RATE));
        round += 1;
    }
    audio.truncate(total);
    audio
}
