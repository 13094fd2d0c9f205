//! Benchmarks of the DTMF detector (`kuma::audio::dtmf`):
//!
//! - `dtmf/push_20ms/<signal>`: one 20 ms frame (160 samples, what kuma feeds per
//!   RTP packet) through `DtmfDetector::push`, on white noise, on speech (the
//!   campaign's French prompts), on the key-press tape and on a listener's line
//!   (mostly silence or a quiet hiss, with words and keys now and then); the
//!   throughput is in frames per second.
//! - `dtmf/gated_20ms/<signal>`: the same frames through the quiet gate a call
//!   puts in front of the detector (`dtmf::gate::Gated`, the same keys): what a
//!   call pays per frame of the caller's audio.
//!
//! Before measuring, it prints the detector's figures on the generated test tape
//! (detection rate) and on talk-off material (false keys per hour): an hour of
//! speech (the French prompts replayed at 40 gains and speeds) and an hour of music,
//! sweeps and noise.
//!
//! Run: `cargo bench --bench dtmf` (`KUMA_DTMF_BENCH_SPEED_ONLY=1` skips the
//! figures, which take minutes).

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kuma::audio::dtmf::gate::Gated;
use kuma::audio::dtmf::generate::{self, SAMPLE_RATE};
use kuma::audio::dtmf::{DtmfDetector, KeyEvent, tape};

const FRAME: usize = 160;

/// The talk-off recording the tests use (8 kHz µ-law; see its README).
fn french_speech() -> Vec<i16> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/audio/dtmf/testdata/talkoff-fr-8k.ulaw"
    );
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .iter()
        .map(|&u| {
            let u = !u;
            let magnitude = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
            (if u & 0x80 != 0 {
                0x84 - magnitude
            } else {
                magnitude - 0x84
            }) as i16
        })
        .collect()
}

fn false_keys_per_hour(name: &str, audio: &[i16]) {
    let started = Instant::now();
    let events = tape::detect(audio, FRAME);
    let hours = audio.len() as f64 / f64::from(SAMPLE_RATE) / 3600.0;
    eprintln!(
        "dtmf talk-off, {name}: {} false key(s) in {:.2} h = {:.1} per hour ({:.0}× real time) {:?}",
        events.len(),
        hours,
        events.len() as f64 / hours,
        hours * 3600.0 / started.elapsed().as_secs_f64(),
        events.iter().take(10).map(|e| e.key).collect::<String>()
    );
}

fn figures(speech: &[i16]) {
    let started = Instant::now();
    let rows = kuma::audio::dtmf::table::table(
        &mut |s| tape::detect(s, FRAME),
        120,
        &kuma::audio::dtmf::table::SEEDS,
    );
    eprintln!(
        "dtmf: issue 14's table, kuma's detector ({:.0} s):\n{}",
        started.elapsed().as_secs_f64(),
        kuma::audio::dtmf::table::markdown(&rows)
    );

    let acceptance = tape::acceptance_tape();
    let s = tape::score(&acceptance, FRAME);
    eprintln!("dtmf acceptance tape (Q.24 conditions): {s}");
    let mut noisy = tape::Tape::default();
    noisy.all_keys(40, 50, 50, -20.0, -20.0, 0.0, 0.0);
    noisy.mixed_with(&generate::white_noise(
        300_000,
        -20.0 + 3.01 - 15.0,
        7,
        SAMPLE_RATE,
    ));
    eprintln!(
        "dtmf 640 presses in 15 dB S/N noise: {}",
        tape::score(&noisy, FRAME)
    );

    // An hour of speech: the prompts at 40 gains and speeds (voices higher and lower).
    let mut hour = Vec::new();
    for i in 0..40 {
        let speed = 0.8 + 0.4 * f64::from(i % 8) / 7.0;
        let gain = -20.0 + 26.0 * f64::from(i / 8) / 4.0;
        hour.extend(generate::gain(&generate::speed(speech, speed), gain));
    }
    false_keys_per_hour(
        "French prompts x40 (gains -20..+6 dB, speeds 0.8..1.2)",
        &hour,
    );
    false_keys_per_hour("music, sweeps and noise", &tape::music_and_noise(60, 2));
}

/// A listener's line: 8 s of digital silence, 8 s of a hiss at −62 dBm0, a few
/// words and a key, over and over.
fn listener(speech: &[i16]) -> Vec<i16> {
    let mut line = Vec::new();
    for i in 0..4u64 {
        line.extend(generate::silence(8_000, SAMPLE_RATE));
        line.extend(generate::white_noise(8_000, -62.0, i, SAMPLE_RATE));
        line.extend(speech.iter().skip(i as usize * 8_000).take(8_000));
        line.extend(generate::tone('5', 120, -20.0, -20.0, 0.0, SAMPLE_RATE).unwrap_or_default());
    }
    line
}

fn bench(c: &mut Criterion) {
    let speech = french_speech();
    if std::env::var_os("KUMA_DTMF_BENCH_SPEED_ONLY").is_none() {
        figures(&speech);
    }

    let noise = generate::white_noise(10_000, -20.0, 3, SAMPLE_RATE);
    let keys = tape::acceptance_tape().samples;
    let line = listener(&speech);
    let signals = [
        ("noise", &noise),
        ("speech", &speech),
        ("keys", &keys),
        ("listener", &line),
    ];
    frames_group(
        c,
        "dtmf/push_20ms",
        &signals,
        DtmfDetector::new,
        DtmfDetector::push,
    );
    frames_group(c, "dtmf/gated_20ms", &signals, Gated::new, Gated::push);
}

/// Each signal pushed 20 ms at a time through a detector made by `new`.
fn frames_group<D>(
    c: &mut Criterion,
    name: &str,
    signals: &[(&str, &Vec<i16>)],
    new: fn() -> D,
    push: fn(&mut D, &[i16], &mut Vec<KeyEvent>),
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for &(name, audio) in signals {
        let frames: Vec<&[i16]> = audio.chunks_exact(FRAME).collect();
        if frames.is_empty() {
            continue;
        }
        group.bench_with_input(BenchmarkId::from_parameter(name), &frames, |b, frames| {
            let mut detector = new();
            let mut out = Vec::with_capacity(16);
            let mut i = 0;
            b.iter(|| {
                push(&mut detector, black_box(frames[i % frames.len()]), &mut out);
                out.clear();
                i += 1;
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
