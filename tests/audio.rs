//! The prompt pipeline on real files: every format a station delivers, every bad
//! shape a station can deliver by mistake, mutated bytes of each format, the example
//! campaign end to end (with the cache), export, and the `kuma audio` and `kuma
//! check` commands.
//!
//! WAV inputs are generated here; the compressed fixtures are in
//! `tests/fixtures/audio/` (how they were made is in its README). Nothing here needs
//! sox or ffmpeg.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kuma::audio::cache::Cache;
use kuma::audio::decode::{MonoSink, decode_file};
use kuma::audio::export::{ExportFormat, export};
use kuma::audio::level::{TARGET_LEVEL_DB, active_level_db};
use kuma::audio::prepare::{Prepared, decode_file_8k, prepare_bytes, prepare_file, prepare_stream};
use kuma::audio::resample::quality::tone_amplitude;
use kuma::audio::{AudioError, Settings, prepare_campaign, prepare_campaign_with};
use kuma::campaign::load_campaign;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/audio").join(name)
}

/// The fixtures' signal: 0.4 s silence, 1.2 s of 1 kHz at -12 dBFS, 0.4 s silence.
fn tone_signal(rate: u32, channels: u16) -> Vec<i16> {
    let n = |s: f64| (s * f64::from(rate)) as usize;
    let mut v = Vec::new();
    for i in 0..n(2.0) {
        let t = i as f64 / f64::from(rate);
        let s = if (0.4..1.6).contains(&t) {
            0.25 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()
        } else {
            0.0
        };
        for _ in 0..channels {
            v.push((s * 32767.0) as i16);
        }
    }
    v
}

/// A 16-bit WAV of interleaved samples, in memory.
fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut buf, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }
    buf.into_inner()
}

fn settings() -> Settings {
    Settings::default()
}

fn prepare_ok(bytes: Vec<u8>, ext: &str) -> Prepared {
    match prepare_bytes(bytes, Some(ext), &settings()) {
        Ok(p) => p,
        Err(e) => panic!("{ext}: {e}"),
    }
}

fn warnings_of(p: &Prepared) -> String {
    p.summary.warnings.join("\n")
}

/// The prepared tone: about 1.2 s plus the trim margins, at the target level, and
/// still a 1 kHz tone.
fn assert_is_the_tone(p: &Prepared, what: &str) {
    let secs = p.pcm.len() as f64 / 8000.0;
    assert!((1.3..=1.55).contains(&secs), "{what}: {secs} s");
    let x: Vec<f32> = p.pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    let level = active_level_db(&x).unwrap();
    assert!(
        (level - TARGET_LEVEL_DB).abs() < 0.5,
        "{what}: level {level} dBFS"
    );
    let rms = (x.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let tone = tone_amplitude(&x, 8000, 1000.0) / std::f64::consts::SQRT_2;
    assert!(tone > 0.9 * rms, "{what}: 1 kHz is {tone}, all is {rms}");
    assert!(
        (p.summary.level_change_db - (TARGET_LEVEL_DB - p.summary.source_level_db)).abs() < 0.2,
        "{what}: {:?}",
        p.summary
    );
}

#[test]
fn every_format_a_station_delivers_becomes_the_same_prompt() {
    let wav44 = wav(44_100, 2, &tone_signal(44_100, 2));
    let p = prepare_ok(wav44, "wav");
    assert_is_the_tone(&p, "wav 44.1k stereo");
    assert_eq!(p.summary.channels, 2);
    assert!(p.summary.warnings.is_empty(), "{}", warnings_of(&p));
    for (rate, ch) in [(8_000, 1), (16_000, 1), (22_050, 1), (48_000, 2)] {
        let p = prepare_ok(wav(rate, ch, &tone_signal(rate, ch)), "wav");
        assert_is_the_tone(&p, &format!("wav {rate} {ch}ch"));
    }
    for name in ["tone.mp3", "tone.ogg", "tone.flac", "tone.m4a", "tone.aac"] {
        let p = match prepare_file(&fixture(name), &settings()) {
            Ok(p) => p,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_is_the_tone(&p, name);
        assert!(p.summary.warnings.is_empty(), "{name}: {}", warnings_of(&p));
    }
}

#[test]
fn decoding_to_8_khz_alone_keeps_the_whole_recording() {
    let (x, info) = decode_file_8k(&fixture("tone.flac"), Duration::from_secs(60)).unwrap();
    assert_eq!(info.sample_rate, 22_050);
    assert_eq!(x.len(), 16_000, "2.0 s at 8 kHz, nothing trimmed");
    let level = active_level_db(&x).unwrap();
    assert!(
        (level + 15.0).abs() < 0.5,
        "-12 dBFS peak is -15 dBFS RMS: {level}"
    );
}

#[test]
fn a_zero_length_file_and_text_renamed_wav_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    fs::write(&empty, b"").unwrap();
    let e = prepare_file(&empty, &settings()).unwrap_err();
    assert!(matches!(e, AudioError::EmptyFile), "{e}");
    assert!(e.to_string().contains("empty file"));

    let text = dir.path().join("notes.wav");
    fs::write(&text, "Bonjour, ceci est le texte du message.\n".repeat(20)).unwrap();
    let e = prepare_file(&text, &settings()).unwrap_err();
    assert!(matches!(e, AudioError::Unsupported { .. }), "{e}");
    assert!(
        e.to_string().contains("not a recording kuma can read"),
        "{e}"
    );

    let missing = dir.path().join("missing.wav");
    let e = prepare_file(&missing, &settings()).unwrap_err();
    assert!(e.to_string().contains("cannot read the file"), "{e}");
}

#[test]
fn a_truncated_mp3_keeps_what_it_has_and_says_so() {
    let bytes = fs::read(fixture("tone.mp3")).unwrap();
    // Cut in the middle of the tone, inside an MP3 frame.
    let cut = bytes.len() * 6 / 10 + 7;
    let p = prepare_ok(bytes[..cut].to_vec(), "mp3");
    let secs = p.summary.source_ms as f64 / 1000.0;
    assert!((1.0..1.4).contains(&secs), "{secs} s decoded");
    assert!(
        warnings_of(&p).contains("the file ends early (cut short?)"),
        "{}",
        warnings_of(&p)
    );
    // The same file whole: no such warning.
    let whole = prepare_ok(bytes.clone(), "mp3");
    assert!(whole.summary.warnings.is_empty(), "{}", warnings_of(&whole));
    // Header only: nothing to play.
    let e = prepare_bytes(bytes[..200].to_vec(), Some("mp3"), &settings()).unwrap_err();
    assert!(
        !matches!(e, AudioError::DecoderPanic(_)),
        "a clear error, not a crash: {e}"
    );
}

/// A 16-bit mono 8 kHz WAV header announcing `seconds` of audio, then that much silence.
fn long_wav(path: &Path, seconds: u32) {
    use std::io::Write;
    let data = seconds * 8000 * 2;
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36 + data).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&8000u32.to_le_bytes());
    h.extend_from_slice(&16000u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    f.write_all(&h).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = data as usize;
    while left > 0 {
        let n = left.min(zeros.len());
        f.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

#[test]
fn a_one_hour_file_is_refused_without_decoding_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    // A real one-hour WAV (57.6 MB): its header says how long it is.
    let hour = dir.path().join("hour.wav");
    long_wav(&hour, 3600);
    // The default limit is an hour (a programme); a campaign may set a shorter one.
    assert_eq!(settings().max_duration, Duration::from_secs(3600));
    let three_minutes = Settings {
        max_duration: Duration::from_secs(180),
        ..Settings::default()
    };
    let t = Instant::now();
    let e = prepare_file(&hour, &three_minutes).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    match &e {
        AudioError::TooLong {
            length: Some(d), ..
        } => {
            assert_eq!(d.as_secs(), 3600)
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        "longer than the limit of 3m (it lasts 1h 00m): cut it into shorter prompts, or raise the campaign's `max_prompt`"
    );

    // An hour of MP3 (the same stream 1,800 times). As a file, its length is
    // estimated from its size and it is refused at once; read as a stream, nothing
    // says how long it is, and it is refused as soon as the decoded audio passes the
    // limit (20 s here, to keep the test short).
    let one = fs::read(fixture("tone.mp3")).unwrap();
    let mut bytes = Vec::with_capacity(one.len() * 1800);
    for _ in 0..1800 {
        bytes.extend_from_slice(&one);
    }
    let e = prepare_bytes(bytes.clone(), Some("mp3"), &three_minutes).unwrap_err();
    assert!(
        matches!(
            e,
            AudioError::TooLong {
                length: Some(_),
                ..
            }
        ),
        "{e}"
    );
    let short_limit = Settings {
        max_duration: Duration::from_secs(20),
        ..Settings::default()
    };
    let t = Instant::now();
    let e = prepare_stream(Cursor::new(bytes), Some("mp3"), &short_limit).unwrap_err();
    assert!(matches!(e, AudioError::TooLong { length: None, .. }), "{e}");
    assert!(e.to_string().starts_with("longer than the limit of 20s"));
    // Decoding the whole hour would take far longer than 20 s of it.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

#[test]
fn a_4_khz_mono_file_works_but_says_its_rate_is_below_8_khz() {
    let p = prepare_ok(wav(4_000, 1, &tone_signal(4_000, 1)), "wav");
    assert_eq!(p.summary.sample_rate, 4_000);
    assert!(
        warnings_of(&p).contains("sample rate 4000 Hz is below 8 kHz"),
        "{}",
        warnings_of(&p)
    );
    assert!((1.3..=1.55).contains(&(p.pcm.len() as f64 / 8000.0)));
}

#[test]
fn a_6_channel_file_is_mixed_down_with_a_warning() {
    let p = prepare_ok(wav(48_000, 6, &tone_signal(48_000, 6)), "wav");
    assert_eq!(p.summary.channels, 6);
    assert!(
        warnings_of(&p).contains("6 channels mixed down to mono"),
        "{}",
        warnings_of(&p)
    );
    assert_is_the_tone(&p, "6 channels");
}

#[test]
fn clipped_mostly_silent_and_silent_recordings_are_reported() {
    // A 440 Hz tone driven far past full scale.
    let clipped: Vec<i16> = (0..16_000)
        .map(|i| {
            let s = 3.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16_000.0).sin();
            (s.clamp(-1.0, 1.0) * 32767.0) as i16
        })
        .collect();
    let p = prepare_ok(wav(16_000, 1, &clipped), "wav");
    assert!(warnings_of(&p).contains("clipped"), "{}", warnings_of(&p));

    // Half a second of sound in 20 seconds.
    let mut sparse = vec![0i16; 8_000 * 20];
    for (i, s) in sparse[80_000..84_000].iter_mut().enumerate() {
        *s = (8000.0 * (i as f64 * 0.3).sin()) as i16;
    }
    let p = prepare_ok(wav(8_000, 1, &sparse), "wav");
    assert!(
        warnings_of(&p).contains("mostly silence"),
        "{}",
        warnings_of(&p)
    );
    assert!(p.pcm.len() < 8_000, "trimmed to the sound");

    let e = prepare_bytes(wav(8_000, 1, &[0; 8_000]), Some("wav"), &settings()).unwrap_err();
    assert!(matches!(e, AudioError::Silent), "{e}");
}

/// A small deterministic generator (xorshift64*), so the fuzz cases are the same on
/// every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutated copy of `bytes`: truncated, bit-flipped, zeroed, duplicated or
/// shuffled in a region, biased towards the header where parsers are most exposed.
fn mutate(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let pos = |rng: &mut Rng, len: usize| {
        if rng.below(2) == 0 {
            rng.below(len.min(256))
        } else {
            rng.below(len)
        }
    };
    match rng.below(6) {
        0 => {
            let cut = rng.below(b.len());
            b.truncate(cut);
        }
        1 => {
            for _ in 0..1 + rng.below(16) {
                let i = pos(rng, b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let i = pos(rng, b.len());
            let n = 1 + rng.below(64);
            for x in b.iter_mut().skip(i).take(n) {
                *x = if rng.below(2) == 0 { 0 } else { 0xFF };
            }
        }
        3 => {
            let i = rng.below(b.len());
            let n = rng.below(b.len() - i);
            let copy = b[i..i + n].to_vec();
            let at = rng.below(b.len());
            b.splice(at..at, copy);
        }
        4 => {
            for _ in 0..1 + rng.below(8) {
                let i = pos(rng, b.len());
                b[i] = rng.next() as u8;
            }
        }
        _ => {
            let i = pos(rng, b.len());
            let n = rng.below(4096);
            let garbage: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(i..i, garbage);
        }
    }
    b
}

#[test]
fn mutated_and_truncated_files_of_every_format_never_panic_or_hang() {
    let mut inputs: Vec<(&str, Vec<u8>)> = vec![
        ("wav", wav(22_050, 2, &tone_signal(22_050, 2))),
        ("wav", wav(8_000, 1, &tone_signal(8_000, 1))),
    ];
    for name in ["tone.mp3", "tone.ogg", "tone.flac", "tone.m4a", "tone.aac"] {
        let ext = name.rsplit('.').next().unwrap_or_default();
        inputs.push((ext, fs::read(fixture(name)).unwrap()));
    }
    let limit = Settings {
        max_duration: Duration::from_secs(30),
        ..Settings::default()
    };
    let mut rng = Rng(0x6b75_6d61_2d61_7564);
    let mut outcomes = (0usize, 0usize);
    // More cases for a longer run: KUMA_FUZZ_CASES=5000 cargo test --release --test audio
    let cases: usize = std::env::var("KUMA_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60);
    for (ext, bytes) in &inputs {
        for case in 0..cases {
            let mutated = mutate(bytes, &mut rng);
            let len = mutated.len();
            // The extension lies on purpose now and then.
            let hint = if case % 7 == 0 { "wav" } else { ext };
            let t = Instant::now();
            let result = prepare_bytes(mutated, Some(hint), &limit);
            let took = t.elapsed();
            assert!(
                took < Duration::from_secs(20),
                "{ext} case {case} ({len} bytes) took {took:?}"
            );
            match result {
                Ok(p) => {
                    outcomes.0 += 1;
                    assert!(p.pcm.len() <= 8_000 * 31, "{ext} case {case}");
                }
                Err(AudioError::DecoderPanic(what)) => {
                    panic!("{ext} case {case}: the decoder panicked: {what}")
                }
                Err(e) => {
                    outcomes.1 += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    eprintln!(
        "fuzz: {} usable, {} refused with a message",
        outcomes.0, outcomes.1
    );
}

/// A copy of the example campaign and its recordings in a temporary folder.
fn example_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = dir.path().join("campaigns");
    fs::create_dir_all(&campaigns).unwrap();
    fs::copy(
        repo().join("campaigns/stop-trafficking-mali.toml"),
        campaigns.join("stop-trafficking-mali.toml"),
    )
    .unwrap();
    copy_dir(
        &repo().join("audio/stop-trafficking-mali"),
        &dir.path().join("audio/stop-trafficking-mali"),
    );
    (dir, campaigns)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_example_campaign_is_prepared_once_then_read_from_the_cache() {
    let (dir, campaigns) = example_copy();
    let campaign = load_campaign(&campaigns.join("stop-trafficking-mali.toml")).unwrap();
    let data = dir.path().join("data");
    let (set, reports) = prepare_campaign(&campaign, &data, &settings());
    let expected = campaign.languages.len() * campaign.prompt_names().len();
    assert_eq!(reports.len(), expected);
    for r in &reports {
        assert!(r.is_ok(), "{:?}", r.problems());
        assert!(!r.from_cache);
    }
    assert_eq!(set.len(), expected);
    // One loudness for all: every prompt's active level at the target.
    for (lang, name, prompt) in set.iter() {
        let pcm: Vec<f32> = prompt
            .ulaw()
            .iter()
            .map(|&c| f32::from(kuma::audio::g711::decode_ulaw(c)) / 32768.0)
            .collect();
        let level = active_level_db(&pcm).unwrap();
        assert!(
            (level - TARGET_LEVEL_DB).abs() < 1.0,
            "{lang}/{name}: {level} dBFS"
        );
        let peak = pcm.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!(peak < 0.95, "{lang}/{name}: peak {peak}");
    }

    // A restart with unchanged audio decodes nothing.
    let t = Instant::now();
    let (again, reports) = prepare_campaign(&campaign, &data, &settings());
    let cached_time = t.elapsed();
    assert!(reports.iter().all(|r| r.from_cache && r.is_ok()));
    for (lang, name, p) in set.iter() {
        assert_eq!(again.get(lang, name), Some(p), "{lang}/{name}");
    }
    eprintln!("restart from the cache: {cached_time:?}");

    // A changed recording is prepared again; the others are not.
    let redone = |reports: &[kuma::audio::FileReport]| -> Vec<String> {
        reports
            .iter()
            .filter(|r| !r.from_cache)
            .map(|r| format!("{}/{}", r.language, r.prompt))
            .collect()
    };
    let welcome = campaign.recording("fr", "welcome").unwrap();
    fs::remove_file(&welcome).unwrap();
    fs::write(
        welcome.with_extension("wav"),
        wav(16_000, 1, &tone_signal(16_000, 1)),
    )
    .unwrap();
    let (changed, reports) = prepare_campaign(&campaign, &data, &settings());
    assert_eq!(redone(&reports), vec!["fr/welcome".to_string()]);
    assert_ne!(changed.get("fr", "welcome"), set.get("fr", "welcome"));
    // The key is the content: a file with the same bytes as another is not redone.
    let goodbye = campaign.recording("fr", "goodbye").unwrap();
    let ext = goodbye.extension().unwrap().to_str().unwrap().to_string();
    fs::remove_file(welcome.with_extension("wav")).unwrap();
    fs::copy(&goodbye, welcome.with_extension(&ext)).unwrap();
    let (same, reports) = prepare_campaign(&campaign, &data, &settings());
    assert!(redone(&reports).is_empty());
    assert_eq!(same.get("fr", "welcome"), set.get("fr", "goodbye"));

    // Another loudness target redoes everything.
    let louder = Settings {
        level: kuma::audio::level::LevelSettings {
            target_db: -18.0,
            ..Default::default()
        },
        ..Settings::default()
    };
    let (_, reports) = prepare_campaign_with(&campaign, &Cache::none(), &louder, &|_| {});
    assert!(reports.iter().all(|r| !r.from_cache));
}

struct Collect {
    rate: u32,
    samples: Vec<f32>,
}

impl MonoSink for Collect {
    fn start(&mut self, rate: u32) -> Result<(), AudioError> {
        self.rate = rate;
        Ok(())
    }
    fn samples(&mut self, mono: &[f32]) -> Result<(), AudioError> {
        self.samples.extend_from_slice(mono);
        Ok(())
    }
}

#[test]
fn an_exported_prompt_reads_back_as_the_bytes_a_call_sends() {
    let p = prepare_ok(wav(44_100, 2, &tone_signal(44_100, 2)), "wav");
    let prompt = p.prompt();
    let dir = tempfile::tempdir().unwrap();

    let ulaw = dir.path().join("p-ulaw.wav");
    export(ExportFormat::WavUlaw, &prompt, &p.pcm, &ulaw).unwrap();
    let bytes = fs::read(&ulaw).unwrap();
    let codes = prompt.ulaw();
    assert_eq!(&bytes[58..58 + codes.len()], codes.as_slice());
    let mut c = Collect {
        rate: 0,
        samples: Vec::new(),
    };
    let info = decode_file(&ulaw, Duration::from_secs(60), &mut c).unwrap();
    assert_eq!(c.rate, 8000);
    assert_eq!(c.samples.len(), codes.len());
    assert!(info.codec.contains("mulaw"), "{}", info.codec);
    for (s, &code) in c.samples.iter().zip(&codes) {
        let expected = f32::from(kuma::audio::g711::decode_ulaw(code)) / 32768.0;
        assert!((s - expected).abs() < 1e-4);
    }

    let alaw = dir.path().join("p-alaw.wav");
    export(ExportFormat::WavAlaw, &prompt, &p.pcm, &alaw).unwrap();
    let info = decode_file(&alaw, Duration::from_secs(60), &mut c).unwrap();
    assert!(info.codec.contains("alaw"), "{}", info.codec);

    let pcm = dir.path().join("p-pcm.wav");
    export(ExportFormat::WavPcm, &prompt, &p.pcm, &pcm).unwrap();
    let back: Vec<i16> = hound::WavReader::open(&pcm)
        .unwrap()
        .into_samples::<i16>()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, p.pcm);

    let mp3 = dir.path().join("p.mp3");
    export(ExportFormat::Mp3, &prompt, &p.pcm, &mp3).unwrap();
    let again = prepare_file(&mp3, &settings()).unwrap();
    assert_eq!(again.summary.sample_rate, 8000);
    // Gapless: the Info tag makes the decoder drop LAME's delay and padding.
    let info = decode_file(&mp3, Duration::from_secs(60), &mut c).unwrap();
    assert_eq!(info.frames, p.pcm.len() as u64);
    assert_is_the_tone(&again, "exported mp3");
}

// ---- the commands ----------------------------------------------------------------

fn kuma(campaigns: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(args)
        .arg("--campaigns")
        .arg(campaigns)
        .arg("--data")
        .arg(data)
        .arg("--database")
        .arg(format!("sqlite://{}", data.join("kuma.db").display()))
        .env_remove("KUMA_CAMPAIGNS")
        .env_remove("KUMA_DATABASE_URL")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A one-language campaign whose prompts are good and bad recordings.
fn mixed_campaign() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let campaigns = dir.path().join("campaigns");
    let audio = dir.path().join("audio/mixed/fr");
    fs::create_dir_all(&campaigns).unwrap();
    fs::create_dir_all(&audio).unwrap();
    fs::write(
        campaigns.join("mixed.toml"),
        r#"title = "Mixed recordings"
languages = ["fr"]
audio = "../audio/mixed"

[[node]]
id = "hello"
kind = "message"
prompt = ["good", "stereo", "narrow", "surround", "text", "empty", "cut"]
next = "bye"

[[node]]
id = "bye"
kind = "hangup"
prompt = "bye"
"#,
    )
    .unwrap();
    fs::write(
        audio.join("good.wav"),
        wav(16_000, 1, &tone_signal(16_000, 1)),
    )
    .unwrap();
    fs::write(
        audio.join("stereo.wav"),
        wav(44_100, 2, &tone_signal(44_100, 2)),
    )
    .unwrap();
    fs::write(
        audio.join("narrow.wav"),
        wav(4_000, 1, &tone_signal(4_000, 1)),
    )
    .unwrap();
    fs::write(
        audio.join("surround.wav"),
        wav(48_000, 6, &tone_signal(48_000, 6)),
    )
    .unwrap();
    fs::write(audio.join("text.wav"), "not audio at all\n".repeat(10)).unwrap();
    fs::write(audio.join("empty.mp3"), b"").unwrap();
    let mp3 = fs::read(fixture("tone.mp3")).unwrap();
    // Cut inside a frame, half way through the tone.
    fs::write(audio.join("cut.mp3"), &mp3[..mp3.len() / 2 + 7]).unwrap();
    fs::copy(fixture("tone.ogg"), audio.join("bye.ogg")).unwrap();
    let data = dir.path().join("data");
    (dir, campaigns, data)
}

#[test]
fn kuma_check_reports_each_bad_recording_with_its_path_and_checks_the_rest() {
    let (_dir, campaigns, data) = mixed_campaign();
    let out = kuma(&campaigns, &data, &["check"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "unusable recordings fail the check");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let audio = campaigns.join("../audio/mixed/fr");
    let line = |file: &str, sev: &str, part: &str| {
        let prefix = format!("{}: {sev}: ", audio.join(file).display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(part)),
            "no `{prefix}…{part}` in:\n{stderr}"
        );
    };
    line("text.wav", "error", "not a recording kuma can read");
    line("empty.mp3", "error", "empty file");
    line("narrow.wav", "warning", "below 8 kHz");
    line("surround.wav", "warning", "6 channels");
    line("cut.mp3", "warning", "ends early");
    assert!(!stderr.contains("good.wav"), "{stderr}");
    assert!(!stderr.contains("stereo.wav"), "{stderr}");
    assert!(
        stdout.contains("audio: 8 recordings") && stdout.contains("2 unusable, 3 with warnings"),
        "{stdout}"
    );
    assert!(!data.exists(), "check writes nothing");
}

#[test]
fn kuma_audio_prepare_prints_a_line_per_file_then_the_cache_answers() {
    let (_dir, campaigns, data) = mixed_campaign();
    let out = kuma(&campaigns, &data, &["audio", "prepare"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "two files are unusable");
    assert!(stdout.contains("mixed: 8 recordings"), "{stdout}");
    let good = stdout
        .lines()
        .find(|l| l.contains("fr/good"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(good.contains(" dB") && good.contains("1.4 s"), "{good}");
    assert!(
        stdout.contains("fr/text") && stdout.contains("failed"),
        "{stdout}"
    );
    assert!(stderr.contains("text.wav: error:"), "{stderr}");
    assert!(
        stdout.contains("6 prompts ready (0 from the cache)"),
        "{stdout}"
    );

    let out = kuma(&campaigns, &data, &["audio", "prepare", "mixed"]);
    assert!(
        text(&out.stdout).contains("6 prompts ready (6 from the cache)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn kuma_audio_export_writes_the_prompt_in_each_format() {
    let (dir, campaigns, data) = mixed_campaign();
    for (format, file) in [
        ("wav-ulaw", "a.wav"),
        ("wav-alaw", "b.wav"),
        ("wav-pcm", "c.wav"),
        ("mp3", "d.mp3"),
    ] {
        let path = dir.path().join(file);
        let out = kuma(
            &campaigns,
            &data,
            &[
                "audio",
                "export",
                "mixed",
                "fr",
                "stereo",
                "--format",
                format,
                "-o",
                path.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{format}: {}", text(&out.stderr));
        let p = prepare_file(&path, &settings()).unwrap();
        assert_eq!(p.summary.sample_rate, 8000, "{format}");
        assert!(
            text(&out.stdout).contains("fr/stereo"),
            "{}",
            text(&out.stdout)
        );
    }
    let out = kuma(
        &campaigns,
        &data,
        &["audio", "export", "mixed", "fr", "text", "-o", "/dev/null"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("text.wav: error: not a recording"),
        "{}",
        text(&out.stderr)
    );
    let out = kuma(
        &campaigns,
        &data,
        &["audio", "export", "mixed", "bm", "good", "-o", "/dev/null"],
    );
    assert!(text(&out.stderr).contains("has no language `bm`"));
}
