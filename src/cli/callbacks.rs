//! `kuma callbacks`: the call-back queue as analysts and operators see it: who
//! (pseudonyms, never a number), why (a missed call, or the broadcast a
//! subscriber is called after), the status, attempts and the next try.
//!
//! The rows and their JSON are [`crate::outbound::listing`]'s, the same as
//! `GET /api/campaigns/{id}/callbacks` serves.

use std::process::ExitCode;

use crate::outbound::Status;
use crate::store::CallbackFilter;
use crate::store::callback_listing::{self as listing, Entry};

use super::Env;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this campaign's call-backs.
    campaign: Option<String>,
    /// Output: a table, or JSON (one object per call-back).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Only call-backs with this status (queued, dialing, answered, busy,
    /// no_answer, failed, cancelled, refused).
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// Only the newest N call-backs (still listed oldest first).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not a status (queued, dialing, answered, busy, no_answer, failed, cancelled, refused)"
        )
    })
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let store = env.store().await?;
    let filter = CallbackFilter {
        campaign: args.campaign.as_deref(),
        status: args.status,
        limit: args.limit,
    };
    let rows = listing::entries(&store, &filter).await;
    store.close().await;
    // Oldest first, as a log reads (the API shows the newest first).
    let mut rows = rows?;
    rows.reverse();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Table => table(&rows),
    }
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[Entry]) {
    if rows.is_empty() {
        println!("no call-backs");
        return;
    }
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    println!(
        "{:>5}  {:<22} {:<34} {:<11} {:<10} {:<16} {:>8}  {:<19}  {:<19}",
        "id",
        "campaign",
        "caller",
        "kind",
        "status",
        "note",
        "attempts",
        "next try (UTC)",
        "asked (UTC)"
    );
    for r in rows {
        println!(
            "{:>5}  {:<22} {:<34} {:<11} {:<10} {:<16} {:>8}  {:<19}  {:<19}",
            r.id,
            r.campaign,
            r.caller,
            r.kind.replace('_', " "),
            r.status,
            r.note.as_deref().unwrap_or("-"),
            r.attempts,
            r.next_at.map_or_else(|| "-".to_string(), time),
            time(r.created_at),
        );
    }
}
