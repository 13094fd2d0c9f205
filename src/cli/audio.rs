//! `kuma audio`: prepare a campaign's recordings for the phone, and export a
//! prepared prompt as a file.
//!
//! `kuma audio prepare [CAMPAIGN…]` runs every recording through the prompt pipeline
//! (into the cache under the data folder, so the next start costs nothing) with a
//! progress bar and one line per file: duration, level change, warnings.
//! `kuma audio export CAMPAIGN LANG PROMPT --format wav-ulaw|wav-alaw|wav-pcm|mp3 -o
//! FILE` writes one prepared prompt, to give to a voice provider or to hear it as a
//! caller will. `kuma check` uses [`check_campaign`] for its audio section.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::Env;
use crate::audio::cache::{self, Cache};
use crate::audio::export::{ExportFormat, export};
use crate::audio::report::format_seconds;
use crate::audio::{FileReport, Problem, Settings, prepare_campaign_with, prepare_prompt};
use crate::campaign::{Campaign, load_folder};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AudioCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AudioCommand {
    /// Convert every recording of the campaigns (default: all) into telephone audio, into the cache.
    Prepare {
        /// Campaign ids (default: every valid campaign of the folder).
        ids: Vec<String>,
    },
    /// Write one prepared prompt to a file (WAV µ-law/A-law/PCM at 8 kHz, or MP3).
    Export {
        campaign: String,
        /// Language code, e.g. `fr`.
        language: String,
        /// Prompt name, e.g. `welcome`.
        prompt: String,
        /// File format (default: mp3 for a .mp3 file, else wav-ulaw).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Print the keys heard as tones in a recording, one per line with its start
    /// time: does the gateway's in-band DTMF come through?
    Dtmf {
        /// Any format the pipeline reads, or headerless 8 kHz µ-law with --raw-ulaw.
        file: PathBuf,
        /// The file is headerless 8 kHz G.711 µ-law (a network capture's payload).
        #[arg(long)]
        raw_ulaw: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// 8 kHz G.711 µ-law WAV: the bytes a call sends.
    WavUlaw,
    /// 8 kHz G.711 A-law WAV.
    WavAlaw,
    /// 8 kHz 16-bit PCM WAV: the prepared audio before G.711.
    WavPcm,
    /// 8 kHz mono MP3, 32 kbit/s.
    Mp3,
}

pub fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        AudioCommand::Prepare { ids } => prepare(env, &ids),
        AudioCommand::Export {
            campaign,
            language,
            prompt,
            format,
            output,
        } => export_prompt(env, &campaign, &language, &prompt, format, &output),
        AudioCommand::Dtmf { file, raw_ulaw } => dtmf(&file, raw_ulaw),
    }
}

/// `kuma audio dtmf FILE`: the in-band keys of a recording.
fn dtmf(file: &std::path::Path, raw_ulaw: bool) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let pcm: Vec<i16> = if raw_ulaw {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        crate::audio::g711::ulaw_decode(&bytes)
    } else {
        let (samples, _) =
            crate::audio::prepare::decode_file_8k(file, std::time::Duration::from_secs(4 * 3600))
                .with_context(|| file.display().to_string())?;
        crate::audio::g711::pcm_from_f32(&samples)
    };
    let mut detector = crate::audio::dtmf::DtmfDetector::new();
    let mut keys = Vec::new();
    for frame in pcm.chunks(160) {
        detector.push(frame, &mut keys);
    }
    detector.finish(&mut keys);
    for k in &keys {
        println!("{:.2}\t{}", k.start_sample as f64 / 8000.0, k.key);
    }
    eprintln!(
        "{} key{} in {:.1} s of audio",
        keys.len(),
        if keys.len() == 1 { "" } else { "s" },
        pcm.len() as f64 / 8000.0
    );
    Ok(ExitCode::SUCCESS)
}

fn prepare(env: &Env, ids: &[String]) -> anyhow::Result<ExitCode> {
    let campaigns: Vec<Campaign> = if ids.is_empty() {
        let set = load_folder(&env.campaigns);
        for p in &set.problems {
            eprintln!("{p}");
        }
        set.campaigns.clone()
    } else {
        ids.iter()
            .map(|id| env.campaign(id))
            .collect::<anyhow::Result<_>>()?
    };
    if campaigns.is_empty() {
        bail!("no valid campaign in {}", env.campaigns.display());
    }
    let cache = Cache::open(&env.data);
    let mut errors = 0;
    let mut warnings = 0;
    let mut cached = 0;
    let mut all_reports: Vec<FileReport> = Vec::new();
    for c in &campaigns {
        let files = c.languages.len() * c.prompt_names().len();
        println!("{}: {} recordings", c.id, files);
        let bar = ProgressBar::new(files as u64);
        if let Ok(style) = ProgressStyle::with_template("  [{bar:40}] {pos}/{len} {wide_msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        let settings = Settings::for_campaign(c);
        let (_, reports) = prepare_campaign_with(c, &cache, &settings, &|r: &FileReport| {
            bar.set_message(format!("{}/{}", r.language, r.prompt));
            bar.inc(1);
        });
        bar.finish_and_clear();
        for r in &reports {
            println!("  {}", r.summary_line());
        }
        for r in &reports {
            for p in r.problems() {
                eprintln!("{p}");
            }
            match &r.outcome {
                Err(_) => errors += 1,
                Ok(s) if !s.warnings.is_empty() => warnings += 1,
                Ok(_) => {}
            }
            cached += usize::from(r.from_cache);
        }
        all_reports.extend(reports);
    }
    let ready = all_reports.iter().filter(|r| r.is_ok()).count();
    let mut pruned = 0;
    if ids.is_empty() && errors == 0 {
        // Entries no campaign uses any more (old versions of changed files).
        pruned = cache
            .prune(&cache::keys(all_reports.iter().map(|r| &r.cache_key)))
            .unwrap_or(0);
    }
    println!(
        "{ready} prompt{} ready ({cached} from the cache{}), {warnings} with warnings, {errors} unusable; cache: {}",
        if ready == 1 { "" } else { "s" },
        if pruned > 0 {
            format!(", {pruned} stale entries removed")
        } else {
            String::new()
        },
        cache
            .dir()
            .map_or("none".into(), |d| d.display().to_string())
    );
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn export_prompt(
    env: &Env,
    id: &str,
    language: &str,
    prompt: &str,
    format: Option<Format>,
    output: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let c = env.campaign(id)?;
    if !c.languages.iter().any(|l| l == language) {
        bail!(
            "campaign `{id}` has no language `{language}` (it has {})",
            c.languages.join(", ")
        );
    }
    if !c.prompt_names().contains(&prompt) {
        bail!("campaign `{id}` uses no prompt `{prompt}`");
    }
    let format = format.unwrap_or_else(|| {
        if output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mp3"))
        {
            Format::Mp3
        } else {
            Format::WavUlaw
        }
    });
    let (report, prepared) = prepare_prompt(
        &c,
        language,
        prompt,
        &Cache::open(&env.data),
        &Settings::for_campaign(&c),
    );
    for p in report.problems() {
        eprintln!("{p}");
    }
    let Some(prepared) = prepared else {
        bail!("prompt `{prompt}` in `{language}` cannot be prepared");
    };
    let (kind, name) = match format {
        Format::WavUlaw => (ExportFormat::WavUlaw, "8 kHz µ-law WAV"),
        Format::WavAlaw => (ExportFormat::WavAlaw, "8 kHz A-law WAV"),
        Format::WavPcm => (ExportFormat::WavPcm, "8 kHz 16-bit WAV"),
        Format::Mp3 => (ExportFormat::Mp3, "8 kHz MP3"),
    };
    export(kind, &prepared.prompt(), &prepared.pcm, output)
        .with_context(|| format!("exporting {language}/{prompt}"))?;
    println!(
        "{}: {language}/{prompt}, {}, {name}",
        output.display(),
        format_seconds(prepared.prompt().duration()),
    );
    Ok(ExitCode::SUCCESS)
}

/// The audio section of `kuma check` for one valid campaign: a summary line, and
/// every problem of every file (errors first). Reads the cache, writes nothing.
pub(super) fn check_campaign(env: &Env, c: &Campaign) -> (String, Vec<Problem>) {
    let (_, reports) = prepare_campaign_with(
        c,
        &Cache::read_only(&env.data),
        &Settings::for_campaign(c),
        &|_| {},
    );
    let unusable = reports.iter().filter(|r| !r.is_ok()).count();
    let doubtful = reports
        .iter()
        .filter(|r| r.outcome.as_ref().is_ok_and(|s| !s.warnings.is_empty()))
        .count();
    let total: u64 = reports
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .map(|s| s.prepared_ms)
        .sum();
    let mut line = format!(
        "  audio: {} recording{}, {} of prompts",
        reports.len(),
        if reports.len() == 1 { "" } else { "s" },
        format_seconds(std::time::Duration::from_millis(total))
    );
    match (unusable, doubtful) {
        (0, 0) => line.push_str(", all usable"),
        (u, d) => line.push_str(&format!(", {u} unusable, {d} with warnings")),
    }
    let mut problems: Vec<Problem> = reports.iter().flat_map(FileReport::problems).collect();
    problems.extend(longer_than_a_call(c, &reports));
    problems.sort_by_key(|p| std::cmp::Reverse(p.severity));
    (line, problems)
}

/// A recording longer than a call to the campaign may last (a programme, with
/// the server's 10 minutes or a short `max_call`) is cut off: a warning that says
/// what to set.
fn longer_than_a_call(c: &Campaign, reports: &[FileReport]) -> Vec<Problem> {
    let max_call = c
        .max_call
        .unwrap_or(crate::flow::EngineOptions::default().max_call);
    reports
        .iter()
        .filter_map(|r| {
            let length = std::time::Duration::from_millis(r.outcome.as_ref().ok()?.prepared_ms);
            (length > max_call).then(|| {
                let minutes = length.as_secs().div_ceil(60).saturating_add(10).min(360);
                Problem {
                    path: r.path.clone(),
                    severity: crate::audio::Severity::Warning,
                    message: format!(
                        "lasts {} but a call ends after {}: the listener would not hear the end (set the campaign's `max_call`, e.g. max_call = \"{}m\")",
                        format_seconds(length),
                        crate::campaign::format_duration(max_call),
                        minutes
                    ),
                }
            })
        })
        .collect()
}
