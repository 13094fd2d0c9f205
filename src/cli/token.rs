//! `kuma token`: the bearer tokens of the HTTP API (`crate::web`).
//!
//! `create` prints a new token once and stores only its SHA-256; `list` shows
//! names, roles, the campaigns each is limited to ("every campaign" when it is
//! not) and dates, never a token; `revoke` stops a token at once (the
//! server looks tokens up on every request); `pin` prints a new 6-digit PIN
//! for a broadcaster's or admin's token, for the studio number (prompts
//! recorded by phone), kept only as a keyed hash.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;

use super::Env;
use crate::web::{Role, new_token, token_hash};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

impl Args {
    /// Whether this may be the first use of the database (a station makes its
    /// first tokens and PINs before `kuma serve` has run): the others work
    /// on tokens that exist, in a database that must exist.
    pub(super) fn may_start_a_database(&self) -> bool {
        matches!(
            self.command,
            TokenCommand::Create { .. } | TokenCommand::Pin { .. }
        )
    }
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Make a token and print it (once: only its hash is kept).
    Create {
        /// What the token may do: analyst (results, exports), broadcaster (also
        /// campaigns), admin (everything).
        #[arg(long, value_enum)]
        role: Role,
        /// A name to list and revoke it by (who or what uses it).
        #[arg(long)]
        name: String,
        /// Limit the token to this campaign (repeatable): every page and API
        /// route answers 404 for the others. Default: every campaign.
        #[arg(long = "campaign", value_name = "ID")]
        limit: Vec<String>,
    },
    /// Show every token's name, role, campaigns, creation and revocation (never
    /// the token).
    List,
    /// Print a new 6-digit PIN for a broadcaster's or admin's token, for the
    /// studio number (`studio_numbers` in kuma.toml), where prompts are
    /// recorded by phone. It replaces the token's old PIN; only a keyed hash is
    /// kept. Wrong PINs lock the studio's PIN entry for an hour: 5 from one
    /// caller, or 20 from all callers.
    Pin {
        /// The token's name.
        name: String,
    },
    /// Stop a token (and its PIN) from working.
    Revoke {
        /// The token's name.
        name: String,
    },
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let store = env.store().await?;
    let code = match args.command {
        TokenCommand::Create { role, name, limit } => {
            let name = name.trim();
            if name.is_empty() {
                anyhow::bail!("a token needs a non-empty --name");
            }
            let token = new_token().context("cannot draw a random token")?;
            for c in &limit {
                if !env.campaigns.join(format!("{c}.toml")).is_file() {
                    anyhow::bail!(
                        "unknown campaign `{c}`: no file {}",
                        env.campaigns.join(format!("{c}.toml")).display()
                    );
                }
            }
            // The limits first: the token never works without them.
            store.tokens().limit(&token_hash(&token), &limit).await?;
            if !store
                .tokens()
                .create(name, role.as_str(), &token_hash(&token), Utc::now())
                .await?
            {
                anyhow::bail!("a token named `{name}` exists already (kuma token list)");
            }
            println!("{token}");
            eprintln!(
                "kuma token: `{name}` ({}) created; this is the only time it is shown",
                role.as_str()
            );
            ExitCode::SUCCESS
        }
        TokenCommand::List => {
            let tokens = store.tokens().list().await?;
            if tokens.is_empty() {
                println!("no tokens (kuma token create --role analyst --name NAME)");
            }
            for t in tokens {
                let revoked = t
                    .revoked_at
                    .map(|r| format!("revoked {}", r.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_else(|| "active".into());
                let scope = if t.campaigns.is_empty() {
                    "every campaign".to_string()
                } else {
                    format!("campaigns {}", t.campaigns.join(", "))
                };
                let pin = if t.studio_pin { "\tstudio PIN" } else { "" };
                println!(
                    "{}\t{}\t{scope}\tcreated {}\t{revoked}{pin}",
                    t.name,
                    t.role,
                    t.created_at.format("%Y-%m-%d %H:%M UTC")
                );
            }
            ExitCode::SUCCESS
        }
        TokenCommand::Pin { name } => {
            let key = crate::store::PinKey::new(&env.keys(&store).await?.pseudonyms);
            let mut pin = None;
            // A PIN another token holds is drawn again (one chance in a million
            // per token).
            for _ in 0..16 {
                let candidate = format!("{:06}", rand::random::<u32>() % 1_000_000);
                if !store.tokens().pin_taken(&key, &candidate).await? {
                    pin = Some(candidate);
                    break;
                }
            }
            let Some(pin) = pin else {
                anyhow::bail!("cannot draw a PIN no other token holds");
            };
            if store.tokens().set_pin(&name, &key, &pin).await? {
                println!("{pin}");
                eprintln!(
                    "kuma token: a new studio PIN for `{name}`; this is the only time it is shown"
                );
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "kuma: no active broadcaster or admin token named `{name}` (kuma token list)"
                );
                ExitCode::FAILURE
            }
        }
        TokenCommand::Revoke { name } => {
            if store.tokens().revoke(&name, Utc::now()).await? {
                println!("token `{name}` revoked");
                ExitCode::SUCCESS
            } else {
                eprintln!("kuma: no active token named `{name}` (kuma token list)");
                ExitCode::FAILURE
            }
        }
    };
    store.close().await;
    Ok(code)
}
