//! `kuma callbacks`: the call-back queue as analysts and operators see it: who
//! (pseudonyms, never a number), why (a missed call, or the broadcast a
//! subscriber is called after), the status, attempts and the next try.

use std::process::ExitCode;

use super::Env;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this campaign's call-backs.
    campaign: Option<String>,
    /// Output: a table, or JSON (one object per call-back).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let store = env.store().await?;
    let rows = store.list_callbacks(args.campaign.as_deref()).await?;
    store.close().await;
    let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    match args.format {
        Format::Json => {
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.id,
                        "campaign": r.campaign,
                        "caller": r.caller,
                        "status": r.status,
                        "note": r.note,
                        "attempts": r.attempts,
                        "next_try": r.next_at.map(|t| t.to_rfc3339()),
                        "created_at": r.created_at.to_rfc3339(),
                        "updated_at": r.updated_at.to_rfc3339(),
                        "call": r.call,
                        "broadcast": r.broadcast.map(|t| t.to_rfc3339()),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Table => {
            if rows.is_empty() {
                println!("no call-backs");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>5}  {:<22} {:<34} {:<10} {:<16} {:>8}  {:<19}  {:<19}",
                "id",
                "campaign",
                "caller",
                "status",
                "note",
                "attempts",
                "next try (UTC)",
                "asked (UTC)"
            );
            for r in &rows {
                println!(
                    "{:>5}  {:<22} {:<34} {:<11} {:<10} {:<16} {:>8}  {:<19}  {:<19}",
                    r.id,
                    r.campaign,
                    r.caller,
                    if r.broadcast.is_some() {
                        "broadcast"
                    } else {
                        "missed call"
                    },
                    r.status,
                    r.note.as_deref().unwrap_or("-"),
                    r.attempts,
                    r.next_at.map_or_else(|| "-".to_string(), time),
                    time(r.created_at),
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
