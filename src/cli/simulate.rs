//! `kuma simulate`: many synthetic listeners through one campaign, concurrently,
//! with random but reproducible keys. It fills a database for dashboards and
//! measures the runtime and store together. Its listeners' numbers are made up
//! under country code 999, which ITU-T keeps unassigned (`+999…`): one who
//! answers a `subscribe` question with its choice is kept as a subscriber, as
//! over SIP, but should `kuma serve` ever run on a database filled here, no
//! real person could be dialled (a trunk refuses the number, and a station's
//! `[callback] prefixes` never match it).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Env;
use crate::campaign::{Campaign, KEYPAD, Node};
use crate::simulator::{Caller, Reply, Setup, run_call, valid_keys};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Campaign id.
    campaign: String,
    /// How many calls.
    #[arg(long, default_value_t = 100)]
    calls: u32,
    /// How many calls at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    concurrency: u32,
    /// Seed of the random listeners: the same seed gives the same calls.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulate the broadcasts before this time instead of now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// A listener who mostly presses a valid key, sometimes a wrong one, sometimes
/// stays silent, and sometimes hangs up.
struct RandomCaller {
    rng: Xoshiro256PlusPlus,
}

impl Caller for RandomCaller {
    fn key(&mut self, c: &Campaign, node: &Node) -> Reply {
        let valid = valid_keys(c, node);
        let roll = self.rng.random_range(0..100);
        if roll < 3 || valid.is_empty() {
            return Reply::HangUp;
        }
        if roll < 8 {
            return Reply::Silence;
        }
        if roll < 13 {
            let wrong: Vec<char> = KEYPAD
                .iter()
                .copied()
                .filter(|k| !valid.contains(k) && Some(*k) != node.input.repeat)
                .collect();
            if !wrong.is_empty() {
                return Reply::Key(wrong[self.rng.random_range(0..wrong.len())]);
            }
        }
        Reply::Key(valid[self.rng.random_range(0..valid.len())])
    }

    fn transfer_answers(&mut self) -> bool {
        self.rng.random_bool(0.7)
    }

    fn speak(&mut self, max: Duration) -> Duration {
        let most = max.as_secs().clamp(2, 60);
        Duration::from_secs(self.rng.random_range(2..=most))
    }
}

/// When synthetic call `i` starts: shortly after one of the last broadcasts (so
/// that answers fall in poll windows), or within the last day without a schedule.
fn start_time(c: &Campaign, at: DateTime<Utc>, rng: &mut Xoshiro256PlusPlus) -> DateTime<Utc> {
    let mut recent = Vec::new();
    if let Some(s) = &c.schedule {
        let mut t = at;
        while recent.len() < 4 {
            match s.last_broadcast(t) {
                Some(b) => {
                    recent.push(b);
                    t = b - chrono::Duration::seconds(1);
                }
                None => break,
            }
        }
        if !recent.is_empty() {
            let b = recent[rng.random_range(0..recent.len())];
            let window = s
                .poll_window
                .unwrap_or(Duration::from_secs(86_400))
                .as_secs()
                .max(60);
            let latest = (at - b).num_seconds().clamp(1, window as i64);
            return b + chrono::Duration::seconds(rng.random_range(0..latest));
        }
    }
    at - chrono::Duration::seconds(rng.random_range(0..86_400))
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let c = Arc::new(env.campaign(&args.campaign)?);
    let at = match &args.at {
        Some(t) => super::time_arg(t, &c, "--at")?,
        None => Utc::now(),
    };
    let store = env.store().await?;
    let keys = Arc::new(env.keys(&store).await?);
    let policy = Arc::new(env.callback_policy()?);
    let limit = Arc::new(Semaphore::new(args.concurrency as usize));
    // Fewer numbers than calls: some listeners call more than once.
    let listeners = (args.calls / 2).max(1);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.calls {
        let permit = Arc::clone(&limit)
            .acquire_owned()
            .await
            .context("simulation stopped")?;
        let (store, c) = (store.clone(), Arc::clone(&c));
        let (keys, policy) = (Arc::clone(&keys), Arc::clone(&policy));
        let seed = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(i);
        tasks.spawn(async move {
            let _permit = permit;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let number = format!("+9997{:07}", rng.random_range(0..listeners));
            let start = start_time(&c, at, &mut rng);
            let setup = Setup {
                campaign: c,
                number: &number,
                keys: &keys,
                policy,
                channel: "simulate",
                start,
            };
            let mut listener = RandomCaller { rng };
            run_call(&store, &setup, &mut listener, &mut |_| {}).await
        });
    }
    let mut outcomes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut answers = 0u64;
    let mut calls = 0u64;
    while let Some(done) = tasks.join_next().await {
        let report = done.context("a simulated call crashed")??;
        calls += 1;
        answers += report.answers as u64;
        *outcomes.entry(report.outcome.as_str()).or_default() += 1;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "simulated {calls} calls to {} ({} database, concurrency {}, seed {}) in {secs:.2} s",
        c.id,
        store.backend(),
        args.concurrency,
        args.seed
    );
    println!(
        "  {:.0} calls/s, {:.0} answers/s ({answers} answers)",
        calls as f64 / secs,
        answers as f64 / secs
    );
    let o: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("  outcomes: {}", o.join(", "));
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
