//! `kuma results`: a campaign's poll results as a table, the results JSON, or the
//! answers as CSV (pseudonymous callers only).

use std::process::ExitCode;

use super::Env;
use crate::results::{BroadcastSel, Query, compute, table, write_csv};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Campaign id.
    campaign: String,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Break every question down by the answers to this one (e.g. q_gender).
    #[arg(long, value_name = "QUESTION")]
    by: Option<String>,
    /// Only one broadcast: its number (1 = the earliest with calls) or its day.
    #[arg(long, value_name = "N|DATE")]
    broadcast: Option<BroadcastSel>,
    /// Only answers from this time on (YYYY-MM-DD[THH:MM], campaign's zone).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only answers before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let c = env.campaign(&args.campaign)?;
    let since = args
        .since
        .as_deref()
        .map(|t| super::time_arg(t, &c, "--since"))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| super::time_arg(t, &c, "--until"))
        .transpose()?;
    let q = Query {
        by: args.by,
        broadcast: args.broadcast,
        since,
        until,
    };
    let store = env.store().await?;
    match args.format {
        Format::Csv => {
            write_csv(&store, &c, &q, std::io::BufWriter::new(std::io::stdout())).await?;
        }
        Format::Json => {
            let r = compute(&store, &c, &q).await?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Format::Table => {
            let r = compute(&store, &c, &q).await?;
            print!("{}", table(&r, &c));
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
