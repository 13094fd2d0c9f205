//! `kuma secret rotate`: replaces the server secret of a database (see
//! `crate::store::keys` for what it re-keys and how). `kuma secret pseudonym`:
//! the pseudonym of each number read from standard input (never from the
//! command line, which `ps` and the shell's history keep).
//!
//! The new secret comes from `KUMA_NEW_SECRET` or `--new-secret-file` (never a
//! flag's value: it would show in `ps`). Without either, and when the current
//! secret is the data folder's `secret` file, kuma draws a new one, writes it to
//! `secret.new` (mode 0600) before touching the database, and moves it over
//! `secret` once the database is re-keyed: a crash in between leaves both files,
//! and the database under one of them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::Env;
use crate::secret::Pseudonymizer;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: SecretCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SecretCommand {
    /// Replace the secret: every stored pseudonym and sealed number is re-keyed
    /// in one transaction. Stop every `kuma serve` on the database first.
    Rotate {
        /// A file holding the new secret in hexadecimal (at least 16 bytes), like
        /// DATA/secret. Or set KUMA_NEW_SECRET (its bytes, like KUMA_SECRET).
        #[arg(long, value_name = "FILE")]
        new_secret_file: Option<PathBuf>,
        /// kuma.toml, for the new pseudonyms of its `[callback] blocked` list.
        #[arg(long, value_name = "FILE", default_value = "kuma.toml")]
        config: PathBuf,
    },
    /// The pseudonym this database gives each phone number read from standard
    /// input, one per line (for `[callback] blocked`, or to find a listener's
    /// rows in `kuma callbacks` and the exports); the numbers are not kept.
    Pseudonym,
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let (new_secret_file, config) = match args.command {
        SecretCommand::Rotate {
            new_secret_file,
            config,
        } => (new_secret_file, config),
        SecretCommand::Pseudonym => return pseudonyms(env).await,
    };
    let from_env = std::env::var_os("KUMA_SECRET").is_some_and(|v| !v.is_empty());
    let store = env.store().await?;
    let pending = env.data.join("secret.new");
    let secret = env.data.join("secret");
    if !from_env && pending.exists() {
        // An earlier rotation stopped between the database and the file.
        let drawn = crate::secret::read_secret_file(&pending)?;
        if store.written_with(&drawn).await? {
            replace(&pending, &secret)?;
            println!(
                "kuma secret: finished an interrupted rotation ({} is the secret now)",
                secret.display()
            );
            store.close().await;
            return Ok(ExitCode::SUCCESS);
        }
        std::fs::remove_file(&pending)
            .with_context(|| format!("cannot remove {}", pending.display()))?;
    }
    let old = env.secret()?;
    // Refuses at once a secret that is not the database's.
    env.keys(&store).await?;
    let (new, drawn) = match (std::env::var_os("KUMA_NEW_SECRET"), new_secret_file) {
        (Some(v), _) if !v.is_empty() => (v.into_encoded_bytes(), false),
        (_, Some(file)) => (crate::secret::read_secret_file(&file)?, false),
        _ if from_env => anyhow::bail!(
            "KUMA_SECRET is set: give the new secret in KUMA_NEW_SECRET or --new-secret-file, \
             then set KUMA_SECRET to it"
        ),
        _ => (crate::secret::write_new_secret(&pending)?, true),
    };
    if new.len() < 16 {
        anyhow::bail!(
            "the new secret is too short: {} bytes, at least 16 expected",
            new.len()
        );
    }
    let done = store.rotate_secret(&old, &new).await?;
    store.close().await;
    if drawn {
        replace(&pending, &secret)?;
    }
    println!(
        "kuma secret: {} pseudonyms re-keyed and {} sealed numbers sealed again",
        done.pseudonyms, done.numbers
    );
    let rekeyed = Pseudonymizer::new(&new);
    for old in blocked(&config) {
        println!(
            "  [callback] blocked in {}: replace {old} with {}",
            config.display(),
            rekeyed.rekey(&old)
        );
    }
    if !drawn {
        eprintln!(
            "kuma secret: the database now answers to the new secret only: set KUMA_SECRET to it \
             (or write it to {}) before starting kuma serve",
            secret.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kuma secret pseudonym`: one pseudonym per number on standard input, as
/// `kuma serve` gives them on this database (its secret, its country code).
async fn pseudonyms(env: &Env) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let store = env.store().await?;
    let keys = env.keys(&store).await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    // One line out for each line in.
    let bad = each_number(|number| match number {
        Some(number) => writeln!(out, "{}", keys.pseudonyms.pseudonym(number)),
        None => writeln!(out, "-"),
    })?;
    if bad > 0 {
        eprintln!("kuma secret: {bad} line(s) were not phone numbers (shown as -)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Calls `each` with every phone number read from standard input, one per
/// line (blank lines skipped), and with `None` for a line that is not one;
/// returns how many were not. The lines themselves are never shown.
pub(super) fn each_number(
    mut each: impl FnMut(Option<&str>) -> std::io::Result<()>,
) -> anyhow::Result<u64> {
    use std::io::BufRead;
    let mut bad = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("cannot read the numbers from standard input")?;
        let number = line.trim();
        if number.is_empty() {
            continue;
        }
        if crate::outbound::callable(&number.replace([' ', '-', '.', '(', ')'], "")) {
            each(Some(number))?;
        } else {
            bad += 1;
            each(None)?;
        }
    }
    Ok(bad)
}

/// The `[callback] blocked` pseudonyms of kuma.toml, if the file is there.
fn blocked(config: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(config) else {
        return Vec::new();
    };
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    doc.get("callback")
        .and_then(|c| c.get("blocked"))
        .and_then(|b| b.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str())
                .filter(|s| s.starts_with("c_"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Moves the drawn secret over the old one, durably.
fn replace(drawn: &Path, secret: &Path) -> anyhow::Result<()> {
    std::fs::rename(drawn, secret)
        .with_context(|| format!("cannot move {} to {}", drawn.display(), secret.display()))?;
    if let Some(dir) = secret.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
