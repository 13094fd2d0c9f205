//! Resampling any source rate to the telephone's 8 kHz, with a real anti-alias
//! filter.
//!
//! A telephone channel carries 300–3400 Hz; everything a 44.1 kHz studio file holds
//! above 4 kHz must be removed *before* the rate is lowered, or it folds back into
//! the band as a tone that was never recorded (a 5 kHz whistle comes back at 3 kHz).
//! rubato's synchronous [`Fft`] resampler does the filtering and the rate change in
//! one step: the spectrum of each block is cut at the new Nyquist frequency with a
//! Blackman-Harris windowed sinc, then transformed back at the new rate. Its
//! asynchronous polynomial resampler has no such filter and aliases badly at 8 kHz,
//! which is why it is not used.
//!
//! The FFT block is chosen long (about [`BLOCK_OUT`] output samples): the longer the
//! block, the narrower the filter's transition band, so the pass band stays flat up
//! to 3400 Hz while 4 kHz and above are rejected (the tests and `benches/audio.rs`
//! measure both in dB). The cost is latency, which does not matter for prompts
//! prepared ahead of time.
//!
//! [`To8k`] is streaming: the decoder pushes packets in, and only one block of the
//! source is ever held, whatever the file's length.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use super::error::AudioError;

/// The telephone's sample rate (G.711).
pub const TELEPHONE_RATE: u32 = 8_000;

/// Target length of one FFT block on the 8 kHz side, in samples.
pub const BLOCK_OUT: usize = 1024;

/// A streaming resampler from one source rate to 8 kHz.
pub struct To8k {
    inner: Option<Inner>,
    /// Source samples pushed so far.
    consumed: u64,
    /// Output samples produced so far (after the startup delay was dropped).
    produced: u64,
    source_rate: u32,
}

struct Inner {
    fft: Fft<f32>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    /// Output samples still to drop: the filter's delay.
    delay_left: usize,
}

impl std::fmt::Debug for To8k {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("To8k")
            .field("source_rate", &self.source_rate)
            .field("consumed", &self.consumed)
            .field("produced", &self.produced)
            .finish()
    }
}

impl To8k {
    /// A resampler from `source_rate` to 8 kHz (a plain copy when it is already 8 kHz).
    pub fn new(source_rate: u32) -> Result<Self, AudioError> {
        let inner = if source_rate == TELEPHONE_RATE {
            None
        } else {
            let (rate_in, rate_out) = (source_rate as usize, TELEPHONE_RATE as usize);
            let gcd = gcd(rate_in, rate_out);
            let min_out = rate_out / gcd;
            // Whole minimum blocks, as close to BLOCK_OUT output samples as they come.
            let blocks = (BLOCK_OUT / min_out).max(1);
            let chunk_in = blocks * (rate_in / gcd);
            let fft = Fft::<f32>::new_custom(
                rate_in,
                rate_out,
                chunk_in,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(|e| AudioError::Resample(e.to_string()))?;
            let delay_left = fft.output_delay();
            let scratch = vec![0.0; fft.output_frames_max()];
            Some(Inner {
                pending: Vec::with_capacity(2 * fft.input_frames_max()),
                fft,
                scratch,
                delay_left,
            })
        };
        Ok(To8k {
            inner,
            consumed: 0,
            produced: 0,
            source_rate,
        })
    }

    /// Resamples `samples`, appending what is ready to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.consumed += samples.len() as u64;
        let Some(inner) = &mut self.inner else {
            out.extend_from_slice(samples);
            self.produced += samples.len() as u64;
            return Ok(());
        };
        let mut pending = std::mem::take(&mut inner.pending);
        pending.extend_from_slice(samples);
        let mut start = 0;
        loop {
            let need = inner.fft.input_frames_next();
            let Some(block) = pending.get(start..start + need) else {
                break;
            };
            self.produced += inner.run(block, None, out)? as u64;
            start += need;
        }
        pending.drain(..start);
        inner.pending = pending;
        Ok(())
    }

    /// Flushes the filter's tail; `out` then holds exactly the source's length at 8 kHz.
    pub fn finish(mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let expected =
            (self.consumed * u64::from(TELEPHONE_RATE)).div_ceil(u64::from(self.source_rate));
        let Some(inner) = &mut self.inner else {
            return Ok(());
        };
        let mut tail = std::mem::take(&mut inner.pending);
        let need = inner.fft.input_frames_next();
        let partial = tail.len();
        tail.resize(need.max(partial), 0.0);
        // The last partial block, then silence until the delayed tail is out.
        let mut partial_len = partial;
        let mut rounds = 0;
        while self.produced < expected {
            let n = inner.run(&tail, Some(partial_len), out)?;
            self.produced += n as u64;
            partial_len = 0;
            rounds += 1;
            if rounds > 64 {
                return Err(AudioError::Resample("the filter tail does not end".into()));
            }
        }
        let extra = (self.produced - expected) as usize;
        out.truncate(out.len().saturating_sub(extra));
        Ok(())
    }
}

/// Resamples a whole clip held in memory (tests and measurements).
pub fn resample_to_8k(samples: &[f32], source_rate: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = To8k::new(source_rate)?;
    let mut out = Vec::with_capacity(
        (samples.len() as u64 * u64::from(TELEPHONE_RATE) / u64::from(source_rate.max(1))) as usize
            + 16,
    );
    r.push(samples, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

impl Inner {
    /// One block through the FFT; appends the output (minus the startup delay) to
    /// `out` and returns how many samples were appended.
    fn run(
        &mut self,
        input: &[f32],
        partial_len: Option<usize>,
        out: &mut Vec<f32>,
    ) -> Result<usize, AudioError> {
        let frames_in = input.len();
        let adapter_in = InterleavedSlice::new(input, 1, frames_in)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let capacity = self.scratch.len();
        let mut adapter_out = InterleavedSlice::new_mut(&mut self.scratch, 1, capacity)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let indexing = partial_len.map(|p| Indexing::new().partial_len(p));
        let (_, written) = self
            .fft
            .process_into_buffer(&adapter_in, &mut adapter_out, indexing.as_ref())
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        out.extend_from_slice(&self.scratch[skip..written]);
        Ok(written - skip)
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Quality figures of the resampler, for the tests and the benchmark.
pub mod quality {
    use super::*;

    /// Amplitude of the `freq` component of `x` (sampled at `rate`), measured on the
    /// middle of the signal with a Blackman-Harris window (so the edges and the
    /// filter's start-up do not count, and a strong tone nearby does not leak in).
    pub fn tone_amplitude(x: &[f32], rate: u32, freq: f64) -> f64 {
        let n = x.len();
        let start = n / 4;
        let len = n / 2;
        let seg = &x[start..start + len];
        let (a0, a1, a2, a3) = (0.35875, 0.48829, 0.14128, 0.01168);
        let w = |i: usize| {
            let t = 2.0 * std::f64::consts::PI * i as f64 / (len - 1) as f64;
            a0 - a1 * t.cos() + a2 * (2.0 * t).cos() - a3 * (3.0 * t).cos()
        };
        let (mut re, mut im, mut wsum) = (0.0f64, 0.0f64, 0.0f64);
        let omega = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        for (i, &s) in seg.iter().enumerate() {
            let wi = w(i);
            wsum += wi;
            let ph = omega * (start + i) as f64;
            re += f64::from(s) * wi * ph.cos();
            im += f64::from(s) * wi * ph.sin();
        }
        2.0 * (re * re + im * im).sqrt() / wsum
    }

    /// A sine of `freq` Hz at amplitude `amp`, `seconds` long.
    pub fn sine(freq: f64, rate: u32, seconds: f64, amp: f32) -> Vec<f32> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n)
            .map(|i| {
                amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32
            })
            .collect()
    }

    /// How far below the input a tone above 4 kHz comes back as its alias, in dB.
    pub fn alias_rejection_db(source_rate: u32, freq: f64) -> Result<f64, AudioError> {
        let input = sine(freq, source_rate, 2.0, 0.5);
        let out = resample_to_8k(&input, source_rate)?;
        let alias = (f64::from(TELEPHONE_RATE) - freq % f64::from(TELEPHONE_RATE)).abs();
        let alias = if alias > 4000.0 {
            8000.0 - alias
        } else {
            alias
        };
        let a = tone_amplitude(&out, TELEPHONE_RATE, alias).max(1e-12);
        Ok(20.0 * (0.5 / a).log10())
    }

    /// Gain in dB of a tone of `freq` Hz through the resampler.
    pub fn gain_db(source_rate: u32, freq: f64) -> Result<f64, AudioError> {
        let input = sine(freq, source_rate, 2.0, 0.5);
        let out = resample_to_8k(&input, source_rate)?;
        Ok(20.0 * (tone_amplitude(&out, TELEPHONE_RATE, freq) / 0.5).log10())
    }

    /// The telephone band's test frequencies for [`flatness_db`].
    pub const BAND: [f64; 8] = [300.0, 500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3400.0];

    /// Largest minus smallest gain over 300–3400 Hz, in dB.
    pub fn flatness_db(source_rate: u32) -> Result<f64, AudioError> {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for f in BAND {
            let g = gain_db(source_rate, f)?;
            lo = lo.min(g);
            hi = hi.max(g);
        }
        Ok(hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use super::quality::*;
    use super::*;

    #[test]
    fn a_5_khz_tone_at_44_1_khz_does_not_come_back_as_3_khz() {
        let db = alias_rejection_db(44_100, 5_000.0).unwrap();
        eprintln!("alias rejection of 5 kHz from 44.1 kHz: {db:.1} dB");
        assert!(db > 90.0, "only {db:.1} dB");
    }

    #[test]
    fn every_tone_above_the_band_is_rejected_from_every_common_rate() {
        for rate in [11_025, 16_000, 22_050, 32_000, 44_100, 48_000] {
            for f in [4_600.0, 5_000.0, 6_000.0, 7_000.0] {
                if f >= f64::from(rate) / 2.0 {
                    continue;
                }
                let db = alias_rejection_db(rate, f).unwrap();
                assert!(db > 80.0, "{f} Hz from {rate} Hz: only {db:.1} dB");
            }
        }
    }

    #[test]
    fn the_telephone_band_stays_flat() {
        for rate in [16_000, 22_050, 44_100, 48_000] {
            let db = flatness_db(rate).unwrap();
            eprintln!("flatness 300-3400 Hz from {rate} Hz: {db:.3} dB");
            assert!(db < 0.1, "{rate} Hz: {db:.3} dB");
        }
    }

    #[test]
    fn the_output_has_the_length_of_the_input_at_8_khz_and_is_aligned() {
        for rate in [4_000, 8_000, 11_025, 44_100, 48_000] {
            for n in [0usize, 1, 100, 12_345, 100_000] {
                let input = vec![0.0f32; n];
                let out = resample_to_8k(&input, rate).unwrap();
                let expected = (n as u64 * 8000).div_ceil(u64::from(rate)) as usize;
                assert_eq!(out.len(), expected, "{n} samples at {rate} Hz");
            }
        }
        // An impulse in the middle stays in the middle: the filter delay is removed.
        let mut input = vec![0.0f32; 44_100];
        input[22_050] = 1.0;
        let out = resample_to_8k(&input, 44_100).unwrap();
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, _)| i)
            .unwrap();
        assert!((3999..=4001).contains(&peak), "peak at {peak}");
    }

    #[test]
    fn streaming_in_odd_pieces_gives_the_same_result_as_one_piece() {
        let input = sine(1000.0, 44_100, 1.0, 0.5);
        let whole = resample_to_8k(&input, 44_100).unwrap();
        let mut r = To8k::new(44_100).unwrap();
        let mut out = Vec::new();
        for piece in input.chunks(777) {
            r.push(piece, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        assert_eq!(out.len(), whole.len());
        for (a, b) in out.iter().zip(&whole) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
