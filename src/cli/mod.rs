//! The `kuma` command: argument parsing and one file per subcommand.
//!
//! `main.rs` only calls [`main`]; every subcommand loads what it needs through the
//! helpers here, so `--campaigns`, `--database` and `--data` mean the same
//! everywhere, before or after the subcommand's name.

mod audio;
mod call;
mod callbacks;
mod check;
mod forget;
mod results;
mod secret;
mod serve;
mod simulate;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::campaign::{Campaign, CampaignSet, load_folder};
use crate::secret::{SecretError, load_or_create_secret, load_secret};
use crate::store::{Keys, Store, StoreError};

/// kuma: interactive voice response for community radio campaigns.
#[derive(Debug, Parser)]
#[command(name = "kuma", version, about, propagate_version = true)]
pub struct Cli {
    /// Folder of campaign files.
    #[arg(
        long,
        global = true,
        env = "KUMA_CAMPAIGNS",
        default_value = "campaigns",
        value_name = "DIR"
    )]
    campaigns: PathBuf,

    /// Results database: sqlite://PATH (created on first use) or postgres://…
    #[arg(
        long,
        global = true,
        env = "KUMA_DATABASE_URL",
        default_value = "sqlite://data/kuma.db",
        value_name = "URL",
        hide_env_values = true
    )]
    database: String,

    /// Folder for kuma's own files (the pseudonym secret, recordings).
    #[arg(
        long,
        global = true,
        env = "KUMA_DATA",
        default_value = "data",
        value_name = "DIR"
    )]
    data: PathBuf,

    /// Log lines as text (for people) or JSON objects, one per line (for log
    /// shippers). Text has colours only when standard error is a terminal.
    #[arg(
        long,
        global = true,
        env = "KUMA_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every campaign file: languages, nodes, questions, next broadcasts.
    Check(check::Args),
    /// Walk through a campaign as a caller, with the real engine and store.
    Call(call::Args),
    /// Run many synthetic callers through a campaign (fills a database, measures).
    Simulate(simulate::Args),
    /// Poll results of a campaign: table, JSON or CSV.
    Results(results::Args),
    /// Prepare recordings as telephone audio (with a per-file report), or export a prompt.
    Audio(audio::Args),
    /// Answer phone calls over SIP with the campaigns (SIGHUP reloads them).
    Serve(Box<serve::Args>),
    /// API bearer tokens: create (printed once), list, revoke.
    Token(token::Args),
    /// The call-back queue: pseudonyms, status, attempts, next try (never a number).
    Callbacks(callbacks::Args),
    /// The server secret that keys pseudonyms and sealed numbers.
    Secret(secret::Args),
    /// Erase listeners who ask to be forgotten: their calls, answers, voice
    /// messages, call-backs and subscriptions (the counts stay).
    Forget(forget::Args),
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("kuma: {}", one_line(&e.to_string()));
            return ExitCode::from(2);
        }
        // --help and --version.
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    if !matches!(cli.command, Command::Serve(_)) {
        die_quietly_on_closed_pipe();
    }
    // What kuma writes (the database, recordings of callers' voices, the secret,
    // the audio cache) is for the account that runs it alone.
    // SAFETY: umask only sets the process's file mode mask; no thread runs yet.
    unsafe {
        libc::umask(0o077);
    }
    init_logs(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kuma: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kuma: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to standard error, filtered by `KUMA_LOG` (default `warn`). A log file
/// or a journal gets no ANSI colour codes; JSON lines carry the fields of the
/// spans they are in (a call's id and the caller's pseudonym).
fn init_logs(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUMA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

/// `kuma results … | head` must end quietly when `head` has read enough, as Unix
/// tools do, instead of panicking in `println!` on the broken pipe (Rust ignores
/// SIGPIPE, so every write would fail with EPIPE). `kuma serve` keeps ignoring
/// it: a reader that goes away must never stop the calls in progress.
fn die_quietly_on_closed_pipe() {
    // SAFETY: called before any thread is started; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let create = match &cli.command {
        Command::Serve(_) | Command::Call(_) | Command::Simulate(_) => true,
        Command::Token(a) => a.may_start_a_database(),
        _ => false,
    };
    let env = Env {
        campaigns: cli.campaigns,
        database: cli.database,
        data: cli.data,
        create,
    };
    match cli.command {
        Command::Check(a) => check::run(&env, a),
        Command::Call(a) => call::run(&env, a).await,
        Command::Simulate(a) => simulate::run(&env, a).await,
        Command::Results(a) => results::run(&env, a).await,
        Command::Audio(a) => audio::run(&env, a),
        Command::Serve(a) => serve::run(&env, *a).await,
        Command::Token(a) => token::run(&env, a).await,
        Command::Callbacks(a) => callbacks::run(&env, a).await,
        Command::Secret(a) => secret::run(&env, a).await,
        Command::Forget(a) => forget::run(&env, a).await,
    }
}

/// The options every subcommand shares.
struct Env {
    campaigns: PathBuf,
    database: String,
    data: PathBuf,
    /// Whether the command may make the SQLite database and the secret when
    /// they do not exist (`serve`, `call`, `simulate`, the first tokens). The
    /// others read or change what `kuma serve` stored: run in another folder,
    /// or with a mistyped path, they would find a new, empty database (and
    /// show "0 calls" as the results) and leave a stray secret there.
    create: bool,
}

impl Env {
    /// Loads the campaigns folder and returns the one campaign asked for; if that
    /// campaign's file has problems, they are the error.
    fn campaign(&self, id: &str) -> anyhow::Result<Campaign> {
        let set = load_folder(&self.campaigns);
        find(&set, id, &self.campaigns)
    }

    async fn store(&self) -> anyhow::Result<Store> {
        if self.create {
            return Ok(Store::open(&self.database).await?);
        }
        match Store::open_existing(&self.database).await {
            Err(e @ StoreError::Missing { .. }) => bail!(
                "{e}: this command reads the database kuma serve writes; run it in kuma serve's \
                 working folder, or name that database with --database (KUMA_DATABASE_URL)"
            ),
            opened => Ok(opened?),
        }
    }

    /// The server secret (`KUMA_SECRET` or `DATA/secret`), made if the
    /// command may start a database.
    fn secret(&self) -> anyhow::Result<Vec<u8>> {
        if self.create {
            return Ok(load_or_create_secret(&self.data)?);
        }
        match load_secret(&self.data) {
            Err(e @ SecretError::Missing { .. }) => bail!(
                "{e}: give kuma serve's data folder with --data (KUMA_DATA), or its KUMA_SECRET"
            ),
            found => Ok(found?),
        }
    }

    /// The pseudonyms and sealer of the database, under the server secret;
    /// another secret than the database's is one clear error.
    async fn keys(&self, store: &Store) -> anyhow::Result<Keys> {
        Ok(store.keys(&self.secret()?).await?)
    }

    /// The station's call-back rules (`[callback]` of `kuma.toml`, or of the
    /// file `KUMA_CONFIG` names), as `kuma serve` applies them: the simulators
    /// subscribe listeners under the station's limits, not the defaults. A
    /// settings file that does not load is the error.
    fn callback_policy(&self) -> anyhow::Result<crate::outbound::Policy> {
        Ok(station_settings().map_err(anyhow::Error::msg)?.callback)
    }
}

/// The station's settings as `kuma serve` reads them (`KUMA_CONFIG` or
/// `kuma.toml` in the working folder, `KUMA_TRUNKS`).
fn station_settings() -> Result<crate::serve::ServeConfig, String> {
    use crate::serve::config::{Overrides, load};
    let named = std::env::var_os("KUMA_CONFIG").map(PathBuf::from);
    let file = named.clone().unwrap_or_else(|| PathBuf::from("kuma.toml"));
    let overrides = Overrides {
        trunks: std::env::var("KUMA_TRUNKS").ok(),
        ..Default::default()
    };
    load(&file, named.is_some(), &overrides)
}

fn find(set: &CampaignSet, id: &str, dir: &Path) -> anyhow::Result<Campaign> {
    if let Some(c) = set.get(id) {
        return Ok(c.clone());
    }
    let file = dir.join(format!("{id}.toml"));
    let problems: Vec<String> = set.problems_of(&file).map(|d| d.to_string()).collect();
    if !problems.is_empty() {
        bail!("campaign `{id}` has problems:\n{}", problems.join("\n"));
    }
    let known: Vec<&str> = set.campaigns.iter().map(|c| c.id.as_str()).collect();
    if known.is_empty() {
        bail!(
            "unknown campaign `{id}`: no valid campaign in {}",
            dir.display()
        );
    }
    bail!(
        "unknown campaign `{id}` (campaigns in {}: {})",
        dir.display(),
        known.join(", ")
    )
}

/// A usage error in one line: clap's message without its usage and help hints.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("error: "))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `--at`/`--since`/`--until` in the campaign's time zone.
fn time_arg(text: &str, c: &Campaign, what: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let tz = c
        .schedule
        .as_ref()
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::UTC);
    crate::schedule::parse_time(text, tz)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("bad {what}"))
}
