//! A quiet gate in front of the detector: while the caller is silent (a listener
//! mostly is), the caller's audio is not run through the sixteen filters, and the
//! keys reported are exactly those the detector alone would report (issue 16: the
//! detector was a tenth of the media plane's CPU).
//!
//! Why nothing can change:
//!
//! - **A quiet sample** is at most [`QUIET_PEAK`] from zero: a quarter of the peak
//!   of one tone at [`MIN_LEVEL_DBM0`](super::MIN_LEVEL_DBM0), the weakest a key
//!   may have. Every bin the detector reads is a plain (rectangular) DFT over two
//!   half blocks, or a mean of those, so over quiet samples alone its magnitude is
//!   at most N · 71 against the weakest tone's N · 287 / 2: 6.1 dB under the level
//!   both paths require
//!   (leakage between a row and a column tone corrects a tone by far less): such a
//!   window hears nothing. A frame with a key's tone in it at −38 dBm0 or louder is
//!   never quiet (`a_weakest_key_always_opens_the_gate`).
//! - **Skipping starts** only when the detector has been given at least
//!   [`SETTLE`] quiet samples (its whole memory is quiet) and holds no key and no
//!   window heard one: from there, running it over more quiet samples leaves every
//!   decision "nothing", and only its memory of the latest samples moves.
//! - **When sound comes back** the latest quiet samples are run through it first,
//!   enough to fill its whole memory of samples and of windows ([`SETTLE`] or more,
//!   ending on the same half block boundary as the skipped stretch), and its sample
//!   count is moved over the rest: its state is then what it would have been had it
//!   heard every sample.
//!
//! Its memory: the samples of the last `COMB_HALVES` (12) half blocks, the one
//! being filled and eleven whole ones, which the voice comb reads (76 ms); the
//! windows' DFTs and energies over the last seven half blocks, inside those; and
//! the key bins' powers and phase steps over the last 24 windows (150 ms), which
//! the onset check reads only inside a tone's run: back to a window whose bin
//! held at least the run floor, 6 dB under the weakest tone (`RUN_FLOOR_DB`). A
//! window of quiet samples alone holds at most (71 · 102)² in a bin, 6.1 dB under
//! the weakest tone's (287 · 102 / 2)², so it ends every run, and no run reaches
//! back into a skipped stretch or to the window before it: those 24 windows need
//! not be replayed. The replay
//! starts where the skipped stretch started within its half block, so its first
//! half block mixes quiet samples from before the stretch with replayed ones; the
//! [`SETTLE`] samples after it leave eleven whole replayed half blocks and the one
//! being filled, all of the memory read.

use super::{COMB_HALVES, DtmfDetector, HALF, KeyEvent, generate};

/// The loudest a quiet sample may be: a quarter of the peak of one tone at the
/// weakest level a key may have.
pub const QUIET_PEAK: i16 = (generate::DBM0_PEAK * 0.012_589_254 / 4.0) as i16; // 10^(−38/20) = 0.012 589 254

/// Quiet samples the detector is given before it may be skipped, and the least it
/// is given again when sound comes back: its memory of samples (`COMB_HALVES`
/// half blocks) and the half block in which the replay starts, whose beginning is
/// from before the skipped stretch.
pub const SETTLE: usize = COMB_HALVES * HALF;

/// Samples of a skipped stretch kept to run again: [`SETTLE`] plus up to a half
/// block to land on the stretch's own half block boundary.
const KEEP: usize = SETTLE + HALF;

/// The detector behind a quiet gate.
#[derive(Debug, Clone)]
pub struct Gated {
    detector: DtmfDetector,
    /// Quiet samples given to the detector in a row.
    quiet_run: usize,
    /// Samples skipped since the detector last ran.
    skipped: u64,
    /// The last [`KEEP`] samples skipped, a ring ending at `at`.
    kept: [i16; KEEP],
    at: usize,
    /// Samples skipped in all (for the tests and benchmarks).
    pub skipped_total: u64,
}

impl Default for Gated {
    fn default() -> Self {
        Gated {
            detector: DtmfDetector::new(),
            quiet_run: 0,
            skipped: 0,
            kept: [0; KEEP],
            at: 0,
            skipped_total: 0,
        }
    }
}

/// Whether no sample of `pcm` is louder than [`QUIET_PEAK`].
pub fn is_quiet(pcm: &[i16]) -> bool {
    pcm.iter()
        .all(|&x| x.unsigned_abs() <= QUIET_PEAK.unsigned_abs())
}

impl Gated {
    pub fn new() -> Self {
        Self::default()
    }

    /// Samples heard so far, skipped or not.
    pub fn samples_seen(&self) -> u64 {
        self.detector.samples_seen() + self.skipped
    }

    /// As [`DtmfDetector::push`].
    pub fn push(&mut self, pcm: &[i16], out: &mut Vec<KeyEvent>) {
        let quiet = is_quiet(pcm);
        if quiet && (self.skipped > 0 || (self.quiet_run >= SETTLE && self.detector.is_idle())) {
            self.keep(pcm);
            return;
        }
        if self.skipped > 0 {
            self.catch_up(out);
        }
        self.detector.push(pcm, out);
        self.quiet_run = if quiet {
            self.quiet_run.saturating_add(pcm.len())
        } else {
            0
        };
    }

    /// As [`DtmfDetector::finish`]: the key held back, if any. (A detector that
    /// holds one is not idle, so none is ever held in a skipped stretch.)
    pub fn finish(&mut self, out: &mut Vec<KeyEvent>) {
        self.detector.finish(out);
    }

    fn keep(&mut self, pcm: &[i16]) {
        for &x in pcm {
            self.kept[self.at] = x;
            self.at = (self.at + 1) % KEEP;
        }
        self.skipped += pcm.len() as u64;
        self.skipped_total += pcm.len() as u64;
    }

    /// Runs the detector over the end of the skipped stretch, as if over all of it.
    fn catch_up(&mut self, out: &mut Vec<KeyEvent>) {
        let skipped = self.skipped;
        self.skipped = 0;
        // The samples to run again: all of a short stretch; of a long one at least
        // SETTLE, as many more as end on the stretch's half block boundary.
        let again = if skipped <= KEEP as u64 {
            skipped as usize
        } else {
            let rest = (skipped % HALF as u64) as usize;
            SETTLE + rest
        };
        self.detector.skip_quiet(skipped - again as u64);
        let start = (self.at + KEEP - again) % KEEP;
        let (tail, head) = self.kept.split_at(start);
        let first = head.len().min(again);
        self.detector.push(&head[..first], out);
        self.detector.push(&tail[..again - first], out);
        self.quiet_run = again;
    }
}

#[cfg(test)]
mod tests {
    use super::super::generate::{self, amplitude, dual_tone, sine, white_noise};
    use super::super::{MIN_LEVEL_DBM0, SAMPLE_RATE};
    use super::*;

    const KEYS: &str = "123A456B789C*0#D";

    #[test]
    fn the_quiet_peak_is_a_quarter_of_the_weakest_tone() {
        let weakest = amplitude(f64::from(MIN_LEVEL_DBM0));
        assert_eq!(QUIET_PEAK, (weakest / 4.0) as i16);
        assert!((70..=72).contains(&QUIET_PEAK), "{QUIET_PEAK}");
    }

    /// Every 20 ms frame of a key at the lowest accepted level (−38 dBm0 per tone,
    /// and each of its tones alone), at either end of the accepted frequency error
    /// and at any phase, is loud enough to open the gate: at the threshold.
    #[test]
    fn a_weakest_key_always_opens_the_gate() {
        let level = f64::from(MIN_LEVEL_DBM0);
        for key in KEYS.chars() {
            let (low, high) = generate::frequencies(key).unwrap();
            for pct in [-2.5, -1.5, 0.0, 1.5, 2.5] {
                let scale = 1.0 + pct / 100.0;
                let tapes = [
                    dual_tone(low * scale, high * scale, 400, level, level, SAMPLE_RATE),
                    sine(low * scale, 400, level, SAMPLE_RATE),
                    sine(high * scale, 400, level, SAMPLE_RATE),
                ];
                for tape in &tapes {
                    // Frames starting at every sample of the first 160.
                    for start in 0..160 {
                        let frame = &tape[start..start + 160];
                        assert!(!is_quiet(frame), "{key} {pct} % at {start}");
                    }
                }
            }
        }
        // And one sample over the threshold is enough.
        let mut frame = [0i16; 160];
        assert!(is_quiet(&frame));
        frame[80] = QUIET_PEAK;
        assert!(is_quiet(&frame));
        frame[80] = -QUIET_PEAK - 1;
        assert!(!is_quiet(&frame));
    }

    /// A listener's line: long silences (digital or a quiet hiss), words, and keys
    /// at the weakest level and louder, some right after the silence ends.
    fn tape(seed: u64) -> Vec<i16> {
        let mut t = Vec::new();
        let hiss = |ms, s| white_noise(ms, -62.0, s, SAMPLE_RATE);
        for (i, key) in KEYS.chars().enumerate() {
            let i = i as u64;
            let quiet = 300 + ((seed * 7 + i * 131) % 900) as u32;
            if i.is_multiple_of(3) {
                t.extend(vec![0; generate::samples_for(quiet, SAMPLE_RATE)]);
            } else {
                t.extend(hiss(quiet, seed * 100 + i));
            }
            // A few samples more or less, so the sound comes back at any phase of
            // the detector's half blocks.
            t.extend(vec![3; ((seed + i * 17) % 51) as usize]);
            if i % 4 == 1 {
                t.extend(generate::speech(700, -20.0, seed + i, SAMPLE_RATE));
                t.extend(hiss(200, seed * 1000 + i));
            }
            let level = [f64::from(MIN_LEVEL_DBM0), -30.0, -10.0][(i % 3) as usize];
            t.extend(
                generate::tone(
                    key,
                    80 + (i as u32 % 4) * 20,
                    level,
                    level,
                    0.0,
                    SAMPLE_RATE,
                )
                .unwrap(),
            );
            if i % 5 == 2 {
                // A second press after a short gap, at the same level.
                t.extend(vec![0; generate::samples_for(80, SAMPLE_RATE)]);
                t.extend(generate::tone(key, 80, level, level, 1.0, SAMPLE_RATE).unwrap());
            }
        }
        t.extend(vec![0; generate::samples_for(500, SAMPLE_RATE)]);
        t
    }

    /// Stretches of `sound`, 0.5 to 2.5 s each, between silences (digital or a
    /// quiet hiss) that end at any phase of the detector's half blocks.
    fn with_silences(sound: &[i16], seed: u64) -> Vec<i16> {
        let mut t = Vec::new();
        let (mut from, mut i) = (0, 0u64);
        while from < sound.len() {
            let quiet = 150 + ((seed * 13 + i * 277) % 700) as u32;
            if i.is_multiple_of(2) {
                t.extend(vec![0; generate::samples_for(quiet, SAMPLE_RATE)]);
            } else {
                t.extend(white_noise(quiet, -62.0, seed * 100 + i, SAMPLE_RATE));
            }
            t.extend(vec![-2; ((seed * 5 + i * 23) % 51) as usize]);
            let len = 4_000 + ((seed * 31 + i * 1_511) % 16_000) as usize;
            let to = (from + len).min(sound.len());
            t.extend(&sound[from..to]);
            (from, i) = (to, i + 1);
        }
        t
    }

    /// Keys 10 dB under a talker (the steady path, whose voice comb reads 76 ms
    /// back, and the onset runs, 150 ms), and music under sung vowels and a choir,
    /// each stretch after a silence: the gate changes no key.
    #[test]
    fn the_gate_changes_no_key_under_a_talker_or_in_music() {
        for seed in 0..2u64 {
            let mut sound = super::super::table::speech_tape(10.0, 60, seed + 40).samples;
            sound.extend(super::super::table::talkoff_minute(6, seed + 40));
            sound.extend(super::super::table::talkoff_minute(7, seed + 40));
            let tape = with_silences(&sound, seed);
            let mut alone = DtmfDetector::new();
            let mut expected = Vec::new();
            alone.push(&tape, &mut expected);
            assert!(expected.len() >= 20, "seed {seed}: {expected:?}");
            for frame in [160, 37] {
                let mut gated = Gated::new();
                let mut got = Vec::new();
                // And whenever the gate has caught up, the detector behind it
                // remembers what the detector alone does.
                let mut plain = DtmfDetector::new();
                let mut caught_up = 0;
                for f in tape.chunks(frame) {
                    let skipping = gated.skipped > 0;
                    gated.push(f, &mut got);
                    plain.push(f, &mut Vec::new());
                    if skipping && gated.skipped == 0 {
                        caught_up += 1;
                        assert_eq!(
                            gated.detector.memory(),
                            plain.memory(),
                            "seed {seed}, frames of {frame}, at {}",
                            plain.samples_seen()
                        );
                    }
                }
                assert_eq!(got, expected, "seed {seed}, frames of {frame}");
                assert!(
                    caught_up >= 10,
                    "seed {seed}, frames of {frame}: {caught_up}"
                );
            }
        }
    }

    /// The gate changes no key and no key's time, whatever the frame size, and it
    /// does skip most of the silences; when it has caught up, the detector behind
    /// it remembers all that the detector alone does.
    #[test]
    fn the_gate_changes_no_key() {
        for seed in 0..6u64 {
            let tape = tape(seed);
            let mut alone = DtmfDetector::new();
            let mut expected = Vec::new();
            alone.push(&tape, &mut expected);
            // (Not every press: a few quick repeats run together; this test is about
            // the gate, and the detector's own tests count presses.)
            assert!(expected.len() >= KEYS.len(), "seed {seed}: {expected:?}");
            for frame in [160, 240, 80, 37] {
                let mut gated = Gated::new();
                let mut got = Vec::new();
                let mut plain = DtmfDetector::new();
                for f in tape.chunks(frame) {
                    let skipping = gated.skipped > 0;
                    gated.push(f, &mut got);
                    plain.push(f, &mut Vec::new());
                    if skipping && gated.skipped == 0 {
                        assert_eq!(gated.detector.memory(), plain.memory(), "seed {seed}");
                    }
                }
                assert_eq!(got, expected, "seed {seed}, frames of {frame}");
                assert_eq!(gated.samples_seen(), tape.len() as u64);
                assert!(
                    gated.skipped_total > tape.len() as u64 / 3,
                    "seed {seed}, frames of {frame}: {} of {} skipped",
                    gated.skipped_total,
                    tape.len()
                );
            }
        }
    }
}
