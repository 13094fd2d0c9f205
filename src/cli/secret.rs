//! `kuma secret rotate`: replaces the server secret of a database (see
//! `crate::store::keys` for what it re-keys and how).
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
use crate::secret::{Pseudonymizer, load_or_create_secret};

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
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let SecretCommand::Rotate {
        new_secret_file,
        config,
    } = args.command;
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
    let old = load_or_create_secret(&env.data)?;
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
