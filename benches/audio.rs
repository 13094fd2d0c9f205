//! The prompt pipeline against sox and ffmpeg: throughput in seconds of audio per
//! second for each format a station delivers, and the resampler's quality (alias
//! rejection, pass-band flatness) in dB.
//!
//! `cargo bench --bench audio`. The test material is 60 s of a speech-like signal
//! (harmonics of a gliding 90–220 Hz pitch, syllable-rate envelope, pauses, a little
//! noise) at 44.1 kHz stereo; when ffmpeg is installed it is encoded to MP3, Ogg
//! Vorbis, FLAC and M4A here, otherwise the small fixtures of tests/fixtures/audio
//! are used (with a note). sox and ffmpeg run the same conversion as kuma —
//! `sox IN -r 8000 -c 1 -e u-law OUT.wav` and `ffmpeg -i IN -ar 8000 -ac 1 -acodec
//! pcm_mulaw OUT.wav` — as subprocesses on the same files, in the same run (each is
//! skipped with a note when not installed). kuma's figure is in-process and also
//! trims and levels; theirs include starting a process (a few ms, small against
//! 60 s of audio). Install them for the comparison:
//! `apt-get install -y sox libsox-fmt-all ffmpeg`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use kuma::audio::prepare::{Settings, prepare_file};
use kuma::audio::resample::quality::{BAND, alias_rejection_db, flatness_db, sine, tone_amplitude};
use kuma::audio::resample::resample_to_8k;

const SECONDS: f64 = 60.0;
const RATE: u32 = 44_100;

struct Material {
    _dir: tempfile::TempDir,
    /// (format, file, seconds of audio)
    files: Vec<(&'static str, PathBuf, f64)>,
}

/// A speech-like stereo signal: voiced syllables with pauses.
fn speech_like(seconds: f64, rate: u32) -> Vec<f32> {
    let n = (seconds * f64::from(rate)) as usize;
    let mut out = Vec::with_capacity(2 * n);
    let mut phase = 0.0f64;
    let mut noise = 0x2545_f491u32;
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let f0 = 150.0 + 60.0 * (2.0 * std::f64::consts::PI * 0.3 * t).sin();
        phase += 2.0 * std::f64::consts::PI * f0 / f64::from(rate);
        let syllable = (2.0 * std::f64::consts::PI * 4.0 * t).sin().max(0.0);
        let sentence = if (t % 5.0) < 4.0 { 1.0 } else { 0.0 };
        let mut v = 0.0;
        for h in 1..=20 {
            let formant = if (3..=5).contains(&h) || (10..=13).contains(&h) {
                1.0
            } else {
                0.3
            };
            v += formant / f64::from(h) * (phase * f64::from(h)).sin();
        }
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let hiss = (f64::from(noise) / f64::from(u32::MAX) - 0.5) * 0.002;
        let s = (0.2 * v * syllable * sentence + hiss) as f32;
        out.push(s);
        out.push(s * 0.9);
    }
    out
}

fn write_wav(path: &Path, channels: u16, rate: u32, samples: &[f32], float: bool) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: if float { 32 } else { 16 },
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, spec).expect("bench: write wav");
    for &s in samples {
        if float {
            w.write_sample(s).expect("bench: write wav");
        } else {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
                .expect("bench: write wav");
        }
    }
    w.finalize().expect("bench: write wav");
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg(if tool == "ffmpeg" {
            "-version"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn material() -> Material {
    let dir = tempfile::tempdir().expect("bench: temp dir");
    let wav = dir.path().join("speech.wav");
    write_wav(&wav, 2, RATE, &speech_like(SECONDS, RATE), false);
    let mut files = vec![("wav 44.1k stereo", wav.clone(), SECONDS)];
    if installed("ffmpeg") {
        for (name, file, codec) in [
            (
                "mp3",
                "speech.mp3",
                &["-c:a", "libmp3lame", "-b:a", "64k"][..],
            ),
            ("ogg", "speech.ogg", &["-c:a", "libvorbis", "-q:a", "3"][..]),
            ("flac", "speech.flac", &["-c:a", "flac"][..]),
            ("m4a", "speech.m4a", &["-c:a", "aac", "-b:a", "64k"][..]),
        ] {
            let out = dir.path().join(file);
            let ok = Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
                .arg(&wav)
                .args(codec)
                .arg(&out)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                files.push((name, out, SECONDS));
            } else {
                println!("note: ffmpeg could not make the {name} file; skipped");
            }
        }
    } else {
        println!(
            "note: ffmpeg is not installed: mp3/ogg/flac/m4a use the 2 s fixtures of tests/fixtures/audio"
        );
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio");
        for (name, file) in [
            ("mp3", "tone.mp3"),
            ("ogg", "tone.ogg"),
            ("flac", "tone.flac"),
            ("m4a", "tone.m4a"),
        ] {
            files.push((name, fixtures.join(file), 2.0));
        }
    }
    Material { _dir: dir, files }
}

/// Median wall time of `runs` runs of `f`.
fn median(runs: usize, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        if !f() {
            return None;
        }
        times.push(t.elapsed());
    }
    times.sort();
    times.get(times.len() / 2).copied()
}

fn run(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn sox(input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new("sox");
    c.arg(input)
        .args(["-r", "8000", "-c", "1"])
        .args(extra)
        .arg(output);
    c
}

fn ffmpeg(input: &Path, output: &Path, codec: &str) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(["-ar", "8000", "-ac", "1", "-acodec", codec])
        .arg(output);
    c
}

fn pipeline(c: &mut Criterion) {
    let m = material();
    let settings = Settings::default();
    let mut group = c.benchmark_group("prompt pipeline");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for (name, path, seconds) in &m.files {
        // Throughput in milliseconds of audio: criterion's "elem/s" / 1000 is
        // seconds of audio per second.
        group.throughput(Throughput::Elements((seconds * 1000.0) as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let p = prepare_file(black_box(path), &settings).expect("bench: prepare");
                black_box(p.prompt());
            })
        });
    }
    group.finish();

    // The comparison table, timed the same way for the three.
    let have_sox = installed("sox");
    let have_ffmpeg = installed("ffmpeg");
    if !have_sox {
        println!("note: sox is not installed: its column is skipped");
    }
    if !have_ffmpeg {
        println!("note: ffmpeg is not installed: its column is skipped");
    }
    let out = tempfile::tempdir().expect("bench: temp dir");
    let target = out.path().join("out.wav");
    println!();
    println!("throughput, seconds of audio per second (median of 5 runs; higher is faster)");
    println!(
        "{:<18} {:>10} {:>10} {:>10}",
        "format", "kuma", "sox", "ffmpeg"
    );
    for (name, path, seconds) in &m.files {
        let rate = |d: Option<Duration>| {
            d.map_or("n/a".to_string(), |d| {
                format!("{:.0}", seconds / d.as_secs_f64())
            })
        };
        let ours = median(5, || {
            prepare_file(path, &settings)
                .map(|p| black_box(p.prompt()))
                .is_ok()
        });
        let theirs_sox = have_sox
            .then(|| median(5, || run(&mut sox(path, &target, &["-e", "u-law"]))))
            .flatten();
        let theirs_ffmpeg = have_ffmpeg
            .then(|| median(5, || run(&mut ffmpeg(path, &target, "pcm_mulaw"))))
            .flatten();
        println!(
            "{:<18} {:>10} {:>10} {:>10}",
            name,
            rate(ours),
            rate(theirs_sox),
            rate(theirs_ffmpeg)
        );
    }
    println!("(n/a: the tool cannot read the format, or is not installed)");

    quality(have_sox, have_ffmpeg, out.path());
}

/// Alias rejection and flatness of the three resamplers, from 44.1 kHz, measured on
/// 32-bit float files so that no one's figure is limited by 16-bit quantization.
fn quality(have_sox: bool, have_ffmpeg: bool, dir: &Path) {
    println!();
    println!("resampler quality from 44.1 kHz (float, before G.711)");
    let ours_alias = alias_rejection_db(RATE, 5_000.0).unwrap_or(f64::NAN);
    let ours_flat = flatness_db(RATE).unwrap_or(f64::NAN);
    let ours_worst = [4_600.0, 5_000.0, 6_000.0, 8_000.0, 12_000.0, 20_000.0]
        .into_iter()
        .map(|f| alias_rejection_db(RATE, f).unwrap_or(f64::NAN))
        .fold(f64::INFINITY, f64::min);
    let measure = |convert: &dyn Fn(&Path, &Path) -> bool| -> Option<(f64, f64, f64)> {
        let through = |freq: f64| -> Option<Vec<f32>> {
            let input = dir.join(format!("tone-{freq}.wav"));
            let output = dir.join(format!("tone-{freq}-8k.wav"));
            write_wav(&input, 1, RATE, &sine(freq, RATE, 2.0, 0.5), true);
            if !convert(&input, &output) {
                return None;
            }
            hound::WavReader::open(&output)
                .ok()?
                .into_samples::<f32>()
                .collect::<Result<Vec<_>, _>>()
                .ok()
        };
        let alias_db = |freq: f64| -> Option<f64> {
            let out = through(freq)?;
            let alias = (8000.0 - freq % 8000.0).abs();
            let alias = if alias > 4000.0 {
                8000.0 - alias
            } else {
                alias
            };
            Some(20.0 * (0.5 / tone_amplitude(&out, 8000, alias).max(1e-12)).log10())
        };
        let alias = alias_db(5_000.0)?;
        let worst = [4_600.0, 5_000.0, 6_000.0, 8_000.0, 12_000.0, 20_000.0]
            .into_iter()
            .filter_map(alias_db)
            .fold(f64::INFINITY, f64::min);
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for f in BAND {
            let out = through(f)?;
            let g = 20.0 * (tone_amplitude(&out, 8000, f) / 0.5).log10();
            lo = lo.min(g);
            hi = hi.max(g);
        }
        Some((alias, worst, hi - lo))
    };
    println!(
        "{:<8} {:>26} {:>30} {:>26}",
        "",
        "5 kHz alias rejection (dB)",
        "worst, 4.6–20 kHz tones (dB)",
        "flatness 300–3400 Hz (dB)"
    );
    println!(
        "{:<8} {:>26.1} {:>30.1} {:>26.4}",
        "kuma", ours_alias, ours_worst, ours_flat
    );
    // The same measurement through files, as for the others.
    if let Some((a, w, f)) = measure(&|i: &Path, o: &Path| {
        let Ok(reader) = hound::WavReader::open(i) else {
            return false;
        };
        let Ok(x) = reader.into_samples::<f32>().collect::<Result<Vec<_>, _>>() else {
            return false;
        };
        let Ok(y) = resample_to_8k(&x, RATE) else {
            return false;
        };
        write_wav(o, 1, 8000, &y, true);
        true
    }) {
        println!("{:<8} {:>26.1} {:>30.1} {:>26.4}", "kuma*", a, w, f);
    }
    if have_sox {
        match measure(&|i: &Path, o: &Path| {
            run(&mut sox(i, o, &["-e", "floating-point", "-b", "32"]))
        }) {
            Some((a, w, f)) => println!("{:<8} {:>26.1} {:>30.1} {:>26.4}", "sox", a, w, f),
            None => println!("sox: measurement failed"),
        }
    }
    if have_ffmpeg {
        match measure(&|i: &Path, o: &Path| run(&mut ffmpeg(i, o, "pcm_f32le"))) {
            Some((a, w, f)) => println!("{:<8} {:>26.1} {:>30.1} {:>26.4}", "ffmpeg", a, w, f),
            None => println!("ffmpeg: measurement failed"),
        }
    }
    println!("(kuma*: the same resampler measured through float WAV files, like sox and ffmpeg)");
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
