//! The acceptance table of issue 14 ("in-band keys on poor lines: never missed,
//! never invented"), one row per condition, over seeded generated tapes: the same
//! seed makes the same audio on every machine, so any detector (kuma's, or spandsp's
//! in `benches/dtmf_spandsp.rs`) can be measured on exactly the same tapes.
//!
//! | condition | required |
//! | --- | --- |
//! | frequency offset ±1.5 % | every digit; ±3.5 % never |
//! | twist up to 8 dB in either direction | every digit; 10 dB or more never |
//! | levels −26 to 0 dBm0 per tone | every digit |
//! | 40 ms tones with 40 ms gaps | each once |
//! | tones of 25 ms or less | never |
//! | a 10 ms dropout inside a digit | one digit, not two |
//! | white noise at 15 dB S/N | every digit |
//! | digits during speech, tones 3 dB under it | ≥ 95 % |
//! | digits during speech, tones 10 dB under it | ≥ 85 % |
//! | speech and music (sung vowels too), 2 hours | 0 digits |
//!
//! Levels: dBm0 per tone, except where a key is compared with something else (noise,
//! speech): there the key's level is the power of its two tones together, and the
//! speech's is its active level (ITU-T P.56 style: the frames within 30 dB of the
//! loudest), so "3 dB under the speech" means the pair's power is 3 dB under the
//! talker's. Keys during speech are placed where someone is talking (the 100 ms
//! around the press no more than 10 dB under the active level), last 70–120 ms (a
//! keypad or a gateway's regenerated tone) and are any key at random.
//!
//! Every seeded row runs on each of [`SEEDS`] (the speech rows press 200 keys over
//! each seed's speech, the talk-off gives each seed a quarter of its minutes), so
//! that a row does not pass on one lucky seed.
//!
//! The talk-off material is the campaign's own French prompts (a real recording,
//! `testdata/`) at several speeds and levels, synthetic talkers (men, women,
//! children), synthetic singing (held vowels, with and without vibrato, from bass to
//! soprano), the music-like generator, singing over music, and a choir of two to
//! four voices singing legato with vibrato over music.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::generate::{self, ALL_KEYS, SAMPLE_RATE};
use super::tape::{Score, Tape, score_events};
use super::{BLOCK, KeyEvent};

/// Any detector: a fresh one reads the samples and returns the keys it heard.
pub type Detect<'a> = &'a mut dyn FnMut(&[i16]) -> Vec<KeyEvent>;

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub condition: &'static str,
    pub required: &'static str,
    pub measured: String,
    pub pass: bool,
}

/// The whole table, as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("| condition | required | measured | |\n| --- | --- | --- | --- |\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.condition,
            r.required,
            r.measured,
            if r.pass { "pass" } else { "FAIL" }
        ));
    }
    s
}

fn every(condition: &'static str, required: &'static str, s: &Score) -> Row {
    Row {
        condition,
        required,
        measured: s.to_string(),
        pass: s.is_perfect(),
    }
}

fn never(condition: &'static str, required: &'static str, s: &Score) -> Row {
    let reported = s.heard + s.wrong + s.false_keys;
    Row {
        condition,
        required,
        measured: format!("{reported} reported of {} presses", s.presses),
        pass: reported == 0,
    }
}

fn rate(condition: &'static str, required: &'static str, s: &Score, min: f64) -> Row {
    Row {
        condition,
        required,
        measured: s.to_string(),
        pass: s.rate() >= min && s.wrong + s.false_keys + s.repeated == 0,
    }
}

fn run(detect: Detect, tape: &Tape) -> Score {
    score_events(tape, &detect(&tape.samples))
}

/// Every key `times` times, `on` ms with `off` ms gaps (plus 0–12 ms so that the
/// tones start anywhere in a detector's blocks), each tone off nominal by `pct`
/// (low, high) and at (low, high) dBm0.
fn keys(tape: &mut Tape, times: usize, on: u32, off: u32, levels: (f64, f64), pct: (f64, f64)) {
    tape.all_keys(times, on, off, levels.0, levels.1, pct.0, pct.1);
}

const OFFSETS_1_5: [(f64, f64); 8] = [
    (1.5, 1.5),
    (-1.5, -1.5),
    (1.5, -1.5),
    (-1.5, 1.5),
    (1.5, 0.0),
    (-1.5, 0.0),
    (0.0, 1.5),
    (0.0, -1.5),
];

/// ±1.5 % (each tone alone, both alike, both opposite), at −6 and −20 dBm0.
pub fn offsets_tape(pct: f64) -> Tape {
    let mut tape = Tape::default();
    tape.gap(20);
    let k = pct / 1.5;
    for (lo, hi) in OFFSETS_1_5 {
        for level in [-6.0, -20.0] {
            keys(&mut tape, 2, 50, 50, (level, level), (lo * k, hi * k));
        }
    }
    tape
}

/// Twist `db` in both directions (the low group stronger, then the high group),
/// the stronger tone at −4, −12 and −20 dBm0.
pub fn twist_tape(twists: &[f64]) -> Tape {
    let mut tape = Tape::default();
    tape.gap(20);
    for &t in twists {
        for strong in [-4.0, -12.0, -20.0] {
            keys(&mut tape, 1, 50, 50, (strong, strong - t), (0.0, 0.0));
            keys(&mut tape, 1, 50, 50, (strong - t, strong), (0.0, 0.0));
        }
    }
    tape
}

/// Every key at 0, −3, −10, −20 and −26 dBm0 per tone.
pub fn levels_tape() -> Tape {
    let mut tape = Tape::default();
    tape.gap(20);
    for level in [0.0, -3.0, -10.0, -20.0, -26.0] {
        keys(&mut tape, 2, 50, 50, (level, level), (0.0, 0.0));
    }
    tape
}

/// 40 ms tones with exactly 40 ms gaps: every key five times in runs starting
/// anywhere in a block, then the same key 40 times in a row.
pub fn forty_forty_tape() -> Tape {
    let mut tape = Tape::default();
    for i in 0..5 {
        tape.gap(40).gap_samples(i * 23 % BLOCK);
        for key in ALL_KEYS.chars() {
            tape.key(key, 40, -10.0, -12.0).gap(40);
        }
    }
    for key in ['5', '#'] {
        tape.gap(30).gap_samples(41);
        for _ in 0..20 {
            tape.key(key, 40, -16.0, -16.0).gap(40);
        }
    }
    tape
}

/// Tones of 25, 22, 20, 15 and 10 ms, every key three times.
pub fn short_tones_tape() -> Tape {
    let mut tape = Tape::default();
    tape.gap(20);
    for ms in [25, 22, 20, 15, 10] {
        keys(&mut tape, 3, ms, 60, (-8.0, -8.0), (0.0, 0.0));
    }
    tape
}

/// 100 ms presses, each with 10 ms of silence somewhere in its middle (the
/// network lost a packet's worth), at −8 and −22 dBm0.
pub fn dropout_tape(seed: u64) -> Tape {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut tape = Tape::default();
    tape.gap(20);
    for level in [-8.0, -22.0] {
        for _ in 0..3 {
            for key in ALL_KEYS.chars() {
                let before = tape.samples.len();
                tape.key(key, 100, level, level - 1.0);
                // The dropout starts 20–70 ms into the tone.
                let at = before + generate::samples_for(20, SAMPLE_RATE) + rng.random_range(0..400);
                let len = generate::samples_for(10, SAMPLE_RATE);
                if let Some(hole) = tape.samples.get_mut(at..at + len) {
                    hole.fill(0);
                }
                tape.gap(60).gap_samples(rng.random_range(0..BLOCK));
            }
        }
    }
    tape
}

/// Every key four times at −6, −16 and −26 dBm0 per tone, in white noise 15 dB
/// under the pair's power.
pub fn noise_tape(seed: u64) -> Tape {
    let mut tape = Tape::default();
    for (i, level) in [-6.0, -16.0, -26.0].into_iter().enumerate() {
        let mut part = Tape::default();
        part.gap(20);
        keys(&mut part, 4, 50, 50, (level, level), (0.0, 0.0));
        let ms = (part.samples.len() / 8 + 10) as u32;
        let noise = generate::white_noise(ms, level + 3.01 - 15.0, seed + i as u64, SAMPLE_RATE);
        part.mixed_with(&noise);
        tape.append(&part);
    }
    tape
}

/// The campaign's French prompts as a phone carries them (µ-law, 8 kHz, 90 s).
pub fn french_prompts() -> Vec<i16> {
    const TALKOFF_FR: &[u8] = include_bytes!("testdata/talkoff-fr-8k.ulaw");
    crate::audio::g711::ulaw_decode(TALKOFF_FR)
}

/// Speech to press keys over: the French prompts, then six synthetic talkers, a
/// minute each.
fn speech_bed(seed: u64) -> Vec<i16> {
    let mut bed = french_prompts();
    let level = generate::active_level_dbm0(&bed);
    for i in 0..6 {
        bed.extend(generate::speech(60_000, level, seed + i, SAMPLE_RATE));
    }
    bed
}

/// `presses` keys of 70–120 ms pressed while someone talks, the pair's power
/// `under_db` under the talker's active level.
pub fn speech_tape(under_db: f64, presses: usize, seed: u64) -> Tape {
    let bed = speech_bed(seed);
    let speech_level = generate::active_level_dbm0(&bed);
    let per_tone = speech_level - under_db - 3.01;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    // Where someone talks: 100 ms windows no more than 10 dB under the level.
    let threshold =
        (generate::amplitude(speech_level - 10.0) / std::f64::consts::SQRT_2).powi(2) * 800.0;
    let talking: Vec<usize> = (0..bed.len().saturating_sub(1600) / 400)
        .map(|i| i * 400)
        .filter(|&at| {
            let e: f64 = bed
                .get(at..at + 800)
                .unwrap_or_default()
                .iter()
                .map(|&x| f64::from(x).powi(2))
                .sum();
            e >= threshold
        })
        .collect();
    let keys: Vec<char> = ALL_KEYS.chars().collect();
    let mut tones = Tape::default();
    let mut last_end = 0usize;
    let step = talking.len() / presses.max(1);
    for i in 0..presses {
        let Some(&at) = talking.get(i * step + rng.random_range(0..step.max(1))) else {
            break;
        };
        if at < last_end + 2400 {
            continue;
        }
        let key = keys[rng.random_range(0..keys.len())];
        tones.gap_samples(at - tones.samples.len());
        tones.key(key, rng.random_range(70..=120), per_tone, per_tone);
        last_end = tones.samples.len();
    }
    tones.gap_samples(bed.len().saturating_sub(tones.samples.len()));
    tones.mixed_with(&bed);
    tones
}

/// One minute of talk-off material, the `i`-th of a seeded series that cycles
/// through real prompts, synthetic speech, sung vowels, music, sung vowels over
/// music, and a choir singing legato with vibrato over music ([`generate::song`]).
pub fn talkoff_minute(i: u64, seed: u64) -> Vec<i16> {
    let s = seed.wrapping_mul(100_003).wrapping_add(i);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(s);
    let level: f64 = rng.random_range(-28.0..-4.0);
    let minute = match i % 8 {
        0 => {
            let speed = rng.random_range(0.8..1.25);
            let prompts = generate::speed(&french_prompts(), speed);
            let gain = level - generate::active_level_dbm0(&prompts);
            let start = rng.random_range(0..prompts.len().saturating_sub(480_000).max(1));
            generate::gain(prompts.get(start..).unwrap_or_default(), gain)
        }
        1 | 4 => generate::speech(60_000, level, s, SAMPLE_RATE),
        2 | 5 => generate::sung_vowels(60_000, level, s, SAMPLE_RATE),
        7 => generate::song(60_000, level, s, SAMPLE_RATE),
        3 => generate::music(60_000, level - 6.0, s, SAMPLE_RATE),
        _ => generate::mix(
            &generate::sung_vowels(60_000, level, s, SAMPLE_RATE),
            &generate::music(60_000, level - 12.0, s + 1, SAMPLE_RATE),
        ),
    };
    let mut minute = minute;
    minute.resize(generate::samples_for(60_000, SAMPLE_RATE), 0);
    minute
}

/// Keys reported on `minutes` of talk-off material, fed to one detector per minute:
/// (minute, key).
pub fn talkoff(detect: Detect, minutes: u64, seed: u64) -> Vec<(u64, KeyEvent)> {
    let mut found = Vec::new();
    for i in 0..minutes {
        for e in detect(&talkoff_minute(i, seed)) {
            found.push((i, e));
        }
    }
    found
}

/// The seeds the table's tapes are made from: the speech rows press keys over the
/// speech of each, and the talk-off material is shared out among them, so that no
/// row hangs on one lucky seed.
pub const SEEDS: [u64; 4] = [14, 1014, 2014, 3014];

/// How many minutes of talk-off each of `seeds` gives, for `minutes` in all.
pub fn talkoff_share(minutes: u64, seeds: &[u64]) -> u64 {
    minutes.div_ceil(seeds.len().max(1) as u64)
}

/// The talk-off row, from the keys found on each seed's share: (seed, minute, key).
pub fn talkoff_row(found: &[(u64, u64, KeyEvent)], minutes: u64) -> Row {
    Row {
        condition: "speech and music (sung vowels too)",
        required: "0 digits",
        measured: format!(
            "{} digit(s) in {} min{}",
            found.len(),
            minutes,
            if found.is_empty() {
                String::new()
            } else {
                format!(
                    " (seed, minute, key, sample: {:?})",
                    found
                        .iter()
                        .take(8)
                        .map(|(s, m, e)| (s, m, e.key, e.start_sample))
                        .collect::<Vec<_>>()
                )
            }
        ),
        pass: found.is_empty(),
    }
}

/// Presses during speech over every seed, pooled.
fn speech_score(detect: Detect, under_db: f64, presses: usize, seeds: &[u64]) -> Score {
    seeds.iter().fold(Score::default(), |acc, &seed| {
        let s = run(detect, &speech_tape(under_db, presses, seed));
        Score {
            presses: acc.presses + s.presses,
            heard: acc.heard + s.heard,
            repeated: acc.repeated + s.repeated,
            wrong: acc.wrong + s.wrong,
            false_keys: acc.false_keys + s.false_keys,
        }
    })
}

/// One tape per seed, end to end.
fn each_seed(seeds: &[u64], tape: fn(u64) -> Tape) -> Tape {
    seeds.iter().fold(Tape::default(), |mut all, &seed| {
        all.append(&tape(seed));
        all
    })
}

/// Every row but talk-off; those whose tapes take a seed over every one of
/// `seeds` (the speech rows: 200 presses on each).
pub fn rows_but_talkoff(detect: Detect, seeds: &[u64]) -> Vec<Row> {
    vec![
        every(
            "frequency offset ±1.5 %",
            "every digit",
            &run(detect, &offsets_tape(1.5)),
        ),
        never(
            "frequency offset ±3.5 %",
            "never",
            &run(detect, &offsets_tape(3.5)),
        ),
        every(
            "twist up to 8 dB, either direction",
            "every digit",
            &run(detect, &twist_tape(&[2.0, 4.0, 6.0, 8.0])),
        ),
        never(
            "twist 10 dB or more, either direction",
            "never",
            &run(detect, &twist_tape(&[10.0, 12.0, 15.0])),
        ),
        every(
            "levels −26 to 0 dBm0 per tone",
            "every digit",
            &run(detect, &levels_tape()),
        ),
        every(
            "40 ms tones with 40 ms gaps",
            "each once",
            &run(detect, &forty_forty_tape()),
        ),
        never(
            "tones of 25 ms or less",
            "never",
            &run(detect, &short_tones_tape()),
        ),
        every(
            "a 10 ms dropout inside a digit",
            "one digit, not two",
            &run(detect, &each_seed(seeds, dropout_tape)),
        ),
        every(
            "white noise at 15 dB S/N",
            "every digit",
            &run(detect, &each_seed(seeds, noise_tape)),
        ),
        rate(
            "digits during speech, tones 3 dB under it",
            "≥ 95 %",
            &speech_score(detect, 3.0, 200, seeds),
            95.0,
        ),
        rate(
            "digits during speech, tones 10 dB under it",
            "≥ 85 %",
            &speech_score(
                detect,
                10.0,
                200,
                &seeds.iter().map(|s| s + 1).collect::<Vec<_>>(),
            ),
            85.0,
        ),
    ]
}

/// The whole table for `detect`, with `talkoff_minutes` of talk-off material (120
/// for the 2 hours) shared out among `seeds`.
pub fn table(detect: Detect, talkoff_minutes: u64, seeds: &[u64]) -> Vec<Row> {
    let mut rows = rows_but_talkoff(detect, seeds);
    let share = talkoff_share(talkoff_minutes, seeds);
    let found: Vec<(u64, u64, KeyEvent)> = seeds
        .iter()
        .flat_map(|&seed| {
            talkoff(detect, share, seed)
                .into_iter()
                .map(move |(m, e)| (seed, m, e))
        })
        .collect();
    rows.push(talkoff_row(&found, share * seeds.len() as u64));
    rows
}
