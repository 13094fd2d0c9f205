//! The prompt pipeline from a recording to a [`Prompt`], and the entry point that
//! prepares a whole campaign: [`prepare_campaign`].
//!
//! decode (any format, mixed down to mono) → resample to 8 kHz → remove DC, trim
//! silence, level to the target, limit peaks → 16-bit linear → µ-law and A-law
//! 20 ms frames. Each step is its own module; this one strings them together, turns
//! what they found into warnings, and goes through the [`Cache`].
//!
//! A campaign's files are prepared on every core at once; a bad file gives a report
//! with its error and never stops the others. The SIP channel calls
//! [`prepare_campaign`] at start and plays from the [`PromptSet`]; `kuma audio
//! prepare` and `kuma check` print the reports.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::cache::{Cache, Entry};
use super::decode::{MonoSink, SourceInfo, decode_bytes, decode_file, decode_stream};
use super::error::AudioError;
use super::g711::pcm_from_f32;
use super::level::{LevelSettings, Levelled, level};
use super::prompt::{Prompt, PromptSet};
use super::report::{FileReport, Summary, format_seconds};
use super::resample::{TELEPHONE_RATE, To8k};
use crate::campaign::{AUDIO_EXTENSIONS, Campaign};

/// Bumped whenever the pipeline's output changes, so old cache entries are not used.
pub const PIPELINE_VERSION: u32 = 1;

/// Recordings longer than this are refused: a message may be a whole programme.
/// A campaign sets its own limit with `max_prompt` ([`Settings::for_campaign`]).
pub const DEFAULT_MAX_DURATION: Duration = crate::campaign::DEFAULT_MAX_PROMPT;

/// Below this rate a recording sounds muffled even on the phone.
pub const MIN_GOOD_RATE: u32 = TELEPHONE_RATE;

/// A recording with sound in less than this share of its length is mostly silence.
pub const MOSTLY_SILENCE: f32 = 0.25;

/// Settings of the pipeline; part of every cache key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub level: LevelSettings,
    pub max_duration: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            level: LevelSettings::default(),
            max_duration: DEFAULT_MAX_DURATION,
        }
    }
}

impl Settings {
    /// The settings a campaign's prompts are prepared with: its `max_prompt`.
    pub fn for_campaign(c: &Campaign) -> Settings {
        Settings {
            max_duration: c.max_prompt,
            ..Settings::default()
        }
    }

    /// Everything that changes the output, as text for the cache key.
    pub fn fingerprint(&self) -> String {
        format!(
            "v{PIPELINE_VERSION} target={} ceiling={} max_gain={} max_ms={}",
            self.level.target_db.to_bits(),
            self.level.ceiling_db.to_bits(),
            self.level.max_gain_db.to_bits(),
            self.max_duration.as_millis()
        )
    }
}

/// A prepared recording: 8 kHz linear samples and what was found and done.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub pcm: Vec<i16>,
    pub summary: Summary,
}

impl Prepared {
    /// The frames a call plays.
    pub fn prompt(&self) -> Prompt {
        Prompt::from_pcm(&self.pcm)
    }
}

/// Decoded mono samples on their way to 8 kHz.
#[derive(Default)]
struct ToTelephone {
    resampler: Option<To8k>,
    out: Vec<f32>,
}

impl MonoSink for ToTelephone {
    fn start(&mut self, sample_rate: u32) -> Result<(), AudioError> {
        if self.resampler.is_none() {
            self.resampler = Some(To8k::new(sample_rate)?);
        }
        Ok(())
    }

    fn samples(&mut self, mono: &[f32]) -> Result<(), AudioError> {
        match &mut self.resampler {
            Some(r) => r.push(mono, &mut self.out),
            None => Err(AudioError::Resample(
                "samples before the sample rate".into(),
            )),
        }
    }
}

impl ToTelephone {
    fn finish(mut self) -> Result<Vec<f32>, AudioError> {
        if let Some(r) = self.resampler.take() {
            r.finish(&mut self.out)?;
        }
        Ok(self.out)
    }
}

/// Runs the pipeline on a recording file (no cache).
pub fn prepare_file(path: &Path, settings: &Settings) -> Result<Prepared, AudioError> {
    let mut sink = ToTelephone::default();
    let info = decode_file(path, settings.max_duration, &mut sink)?;
    finish(info, sink, settings)
}

/// Runs the pipeline on a recording held in memory; `extension` hints at the format.
pub fn prepare_bytes(
    bytes: Vec<u8>,
    extension: Option<&str>,
    settings: &Settings,
) -> Result<Prepared, AudioError> {
    let mut sink = ToTelephone::default();
    let info = decode_bytes(bytes, extension, settings.max_duration, &mut sink)?;
    finish(info, sink, settings)
}

/// Decodes and resamples a recording to 8 kHz mono, without trimming or levelling:
/// the caller's audio as a gateway would carry it (for `kuma audio dtmf`, say).
pub fn decode_file_8k(
    path: &Path,
    max_duration: Duration,
) -> Result<(Vec<f32>, SourceInfo), AudioError> {
    let mut sink = ToTelephone::default();
    let info = decode_file(path, max_duration, &mut sink)?;
    Ok((sink.finish()?, info))
}

/// Runs the pipeline on a stream read forwards only (an upload, a pipe).
pub fn prepare_stream<R: std::io::Read + Send + Sync + 'static>(
    reader: R,
    extension: Option<&str>,
    settings: &Settings,
) -> Result<Prepared, AudioError> {
    let mut sink = ToTelephone::default();
    let info = decode_stream(reader, extension, settings.max_duration, &mut sink)?;
    finish(info, sink, settings)
}

fn finish(
    info: SourceInfo,
    sink: ToTelephone,
    settings: &Settings,
) -> Result<Prepared, AudioError> {
    let at_8k = sink.finish()?;
    if info.peak < super::level::db_to_amp(super::level::SILENCE_FLOOR_DB) {
        return Err(AudioError::Silent);
    }
    let levelled = level(at_8k, &settings.level)?;
    let warnings = warnings(&info, &levelled, settings);
    let pcm = pcm_from_f32(&levelled.samples);
    let summary = Summary {
        format: format!("{}/{}", info.format, info.codec),
        sample_rate: info.sample_rate,
        channels: info.channels,
        source_ms: info.duration().as_millis() as u64,
        prepared_ms: (pcm.len() as u64 * 1000) / u64::from(TELEPHONE_RATE),
        source_level_db: round1(levelled.source_level_db),
        level_change_db: round1(levelled.gain_db),
        limited_db: round1(levelled.limited_db),
        warnings,
    };
    Ok(Prepared { pcm, summary })
}

fn round1(x: f32) -> f32 {
    (x * 10.0).round() / 10.0
}

/// Each doubt about a usable recording, as a sentence that says what to do.
fn warnings(info: &SourceInfo, l: &Levelled, settings: &Settings) -> Vec<String> {
    let mut w = Vec::new();
    if info.sample_rate < MIN_GOOD_RATE {
        w.push(format!(
            "sample rate {} Hz is below 8 kHz: it will sound muffled on the phone (record at 8 kHz or more)",
            info.sample_rate
        ));
    }
    if info.channels > 2 {
        w.push(format!(
            "{} channels mixed down to mono: check that no channel holds something else (music, another language)",
            info.channels
        ));
    }
    if info.clipped_runs > 0 {
        w.push(format!(
            "clipped: the recording hits full scale in {} place{} and will sound distorted (record again with the input level lower)",
            info.clipped_runs,
            if info.clipped_runs == 1 { "" } else { "s" }
        ));
    }
    if info.damaged_packets > 0 {
        w.push(format!(
            "{} damaged packet{} skipped (a gap in the audio)",
            info.damaged_packets,
            if info.damaged_packets == 1 { "" } else { "s" }
        ));
    }
    if info.ended_early {
        w.push(format!(
            "the file ends early (cut short?): only {} could be decoded",
            format_seconds(info.duration())
        ));
    }
    if l.sound_fraction < MOSTLY_SILENCE {
        w.push(format!(
            "mostly silence: sound in only {:.0}% of its {}",
            l.sound_fraction * 100.0,
            format_seconds(info.duration())
        ));
    }
    if l.gain_capped {
        w.push(format!(
            "very quiet (active level {:.1} dBFS): raised by the maximum {:.0} dB and still {:.1} dB below the other prompts (record closer to the microphone)",
            l.source_level_db,
            settings.level.max_gain_db,
            settings.level.target_db - l.source_level_db - l.gain_db
        ));
    } else if l.gain_db > 20.0 {
        w.push(format!(
            "quiet recording: raised by {:.1} dB, and its background noise with it",
            l.gain_db
        ));
    }
    if l.limited_db > 6.0 {
        w.push(format!(
            "peaks limited by {:.1} dB: clicks, pops or a clipped recording",
            l.limited_db
        ));
    }
    w
}

/// Prepares one recording through the cache: the report, and the samples when it worked.
pub fn prepare_recording(
    language: &str,
    prompt: &str,
    path: Option<PathBuf>,
    expected_dir: &Path,
    cache: &Cache,
    settings: &Settings,
) -> (FileReport, Option<Prepared>) {
    let mut report = FileReport {
        language: language.to_string(),
        prompt: prompt.to_string(),
        path: path.clone().unwrap_or_else(|| {
            expected_dir.join(format!("{prompt}.{{{}}}", AUDIO_EXTENSIONS.join(",")))
        }),
        outcome: Err(AudioError::Missing),
        from_cache: false,
        cache_key: None,
        cache_problem: None,
    };
    let Some(path) = path else {
        return (report, None);
    };
    let fingerprint = settings.fingerprint();
    let key = if cache.dir().is_some() {
        match Cache::key(&path, &fingerprint) {
            Ok(k) => Some(k),
            Err(e) => {
                report.outcome = Err(AudioError::Io(e));
                return (report, None);
            }
        }
    } else {
        None
    };
    if let Some(entry) = key.as_deref().and_then(|k| cache.load(k)) {
        report.outcome = Ok(entry.summary.clone());
        report.from_cache = true;
        report.cache_key = key;
        return (
            report,
            Some(Prepared {
                pcm: entry.pcm,
                summary: entry.summary,
            }),
        );
    }
    let result = catch_unwind(AssertUnwindSafe(|| prepare_file(&path, settings)))
        .unwrap_or_else(|_| Err(AudioError::DecoderPanic("the pipeline crashed".into())));
    report.cache_key = key;
    match result {
        Ok(prepared) => {
            if let Some(k) = &report.cache_key {
                let entry = Entry {
                    summary: prepared.summary.clone(),
                    pcm: prepared.pcm.clone(),
                };
                if let Err(e) = cache.store(k, &entry) {
                    report.cache_problem = Some(format!("not cached: {e}"));
                }
            }
            report.outcome = Ok(prepared.summary.clone());
            (report, Some(prepared))
        }
        Err(e) => {
            report.outcome = Err(e);
            (report, None)
        }
    }
}

/// Prepares every prompt of a campaign in every language (through the cache under
/// `data_dir`): the prompts that worked, and a report per file in campaign order
/// (language, then prompt).
///
/// It blocks (on every core, for a moment when nothing is cached): from async code,
/// call it through `tokio::task::spawn_blocking`.
pub fn prepare_campaign(
    campaign: &Campaign,
    data_dir: &Path,
    settings: &Settings,
) -> (PromptSet, Vec<FileReport>) {
    prepare_campaign_with(campaign, &Cache::open(data_dir), settings, &|_| {})
}

/// [`prepare_campaign`] with a chosen cache and a callback run as each file is done
/// (from the worker threads, in any order): the progress bar.
pub fn prepare_campaign_with(
    campaign: &Campaign,
    cache: &Cache,
    settings: &Settings,
    on_done: &(dyn Fn(&FileReport) + Sync),
) -> (PromptSet, Vec<FileReport>) {
    let jobs = recordings(campaign);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Done>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let (report, prepared) = prepare_recording(
                        &job.language,
                        &job.prompt,
                        job.path.clone(),
                        &job.dir,
                        cache,
                        settings,
                    );
                    on_done(&report);
                    let prompt = prepared.map(|p| p.prompt());
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some((report, prompt));
                    }
                }
            });
        }
    });
    let mut set = PromptSet::new();
    let mut reports = Vec::with_capacity(jobs.len());
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    for (report, prompt) in results.into_iter().flatten() {
        if let Some(p) = prompt {
            set.insert(&report.language, &report.prompt, p);
        }
        reports.push(report);
    }
    (set, reports)
}

/// One prompt of a campaign, prepared through the cache (for `kuma audio export`).
pub fn prepare_prompt(
    campaign: &Campaign,
    language: &str,
    prompt: &str,
    cache: &Cache,
    settings: &Settings,
) -> (FileReport, Option<Prepared>) {
    let dir = campaign.audio_dir.join(language);
    prepare_recording(
        language,
        prompt,
        campaign.recording(language, prompt),
        &dir,
        cache,
        settings,
    )
}

/// A finished recording: its report, and the prompt when it worked.
type Done = (FileReport, Option<Prompt>);

struct Job {
    language: String,
    prompt: String,
    path: Option<PathBuf>,
    dir: PathBuf,
}

fn recordings(campaign: &Campaign) -> Vec<Job> {
    let names = campaign.prompt_names();
    campaign
        .languages
        .iter()
        .flat_map(|lang| {
            names.iter().map(move |name| Job {
                language: lang.clone(),
                prompt: (*name).to_string(),
                path: campaign.recording(lang, name),
                dir: campaign.audio_dir.join(lang),
            })
        })
        .collect()
}
