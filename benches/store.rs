//! Benchmarks of the results store, through its public API:
//!
//! - `store_answer/<backend>`: answers recorded per second by `Store::store_answer`
//!   (each one its own committed transaction, counters included), from one caller
//!   at a time and from 8 concurrent callers;
//! - `spooled_answer/<backend>`: the same answers through `kuma serve`'s write
//!   path, `SpooledStore::write` (straight to the database while it answers; the
//!   spool stays empty): the spool's cost in normal operation, beside
//!   `store_answer`;
//! - `spool_append/<backend>`: answers while the database is away (marked
//!   unreachable): each one appended to the spool file and synced to disk;
//! - `visit_node/<backend>`: nodes entered per second by `Store::visit_node` (the
//!   funnel's count, one committed transaction per first visit: every channel
//!   stores one per node a call enters), from 1 and 8 concurrent callers;
//! - `busy_answer/<backend>`: `store_answer` from 8 callers while the same
//!   runtime also runs 0, 150 or 300 tasks that each work 100 µs every 20 ms,
//!   as calls pacing their audio do (300 of them keep about 1.5 cores busy):
//!   how much the runtime's load slows the calls' writes (issue 16: it took
//!   over 2 s per write under 500 calls, before the writes had a thread of
//!   their own, `store/writer_thread.rs`);
//! - `counts/<backend>`: time of `Store::counts()` with no filter, with a `by`
//!   cross-tab, and over one broadcast's day (raw rows), at 10^4, 10^5 and 10^6
//!   stored answers. The first two read only counters and should not grow with
//!   the number of answers.
//!
//! SQLite always (a file in a temporary folder); PostgreSQL too when
//! `KUMA_TEST_POSTGRES_URL` names an admin URL (a fresh database is made and
//! dropped). `KUMA_BENCH_MAX_ANSWERS` caps the largest store (default 1000000).
//!
//! Run: `cargo bench --bench store`.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kuma::store::spool::{SpoolLimits, SpooledStore};
use kuma::store::{CountFilter, NewAnswer, NewCall, Store, WriteOp};
use sqlx::Connection;
use tokio::runtime::Runtime;

const CAMPAIGN: &str = "stop-trafficking-mali";
const QUESTIONS: [&str; 5] = [
    "q_offered_work",
    "q_gender",
    "q_age",
    "q_heard_before",
    "q_travel",
];
const CHOICES: [(&str, &str); 3] = [("yes", "1"), ("no", "2"), ("not_sure", "3")];
const LANGUAGES: [&str; 2] = ["bm", "fr"];
/// Broadcasts a week apart; calls are spread over them.
const BROADCASTS: i64 = 4;
const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];

/// A store to benchmark, and how to clean up after it.
struct Target {
    name: &'static str,
    store: Store,
    _dir: Option<tempfile::TempDir>,
    drop_database: Option<(String, String)>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn targets(rt: &Runtime) -> Vec<Target> {
    let mut targets = Vec::new();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let url = format!("sqlite://{}", dir.path().join("kuma.db").display());
    let store = rt.block_on(Store::open(&url)).expect("a SQLite store");
    targets.push(Target {
        name: "sqlite",
        store,
        _dir: Some(dir),
        drop_database: None,
    });

    if let Some(admin) = std::env::var("KUMA_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let name = format!(
            "kuma_bench_{:016x}",
            getrandom::u64().expect("random bytes")
        );
        rt.block_on(admin_execute(&admin, format!("CREATE DATABASE {name}")));
        let store = rt
            .block_on(Store::open(&with_database(&admin, &name)))
            .expect("a PostgreSQL store");
        targets.push(Target {
            name: "postgres",
            store,
            _dir: None,
            drop_database: Some((admin, name)),
        });
    } else {
        println!("PostgreSQL not benchmarked: KUMA_TEST_POSTGRES_URL is not set");
    }
    targets
}

fn finish(rt: &Runtime, target: Target) {
    rt.block_on(target.store.close());
    if let Some((admin, name)) = target.drop_database {
        rt.block_on(admin_execute(
            &admin,
            format!("DROP DATABASE {name} WITH (FORCE)"),
        ));
    }
}

fn with_database(admin: &str, database: &str) -> String {
    let (scheme, rest) = admin.split_once("://").expect("a postgres:// URL");
    let (head, query) = match rest.split_once('?') {
        Some((head, query)) => (head, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = head.split('/').next().unwrap_or(head);
    format!("{scheme}://{authority}/{database}{query}")
}

async fn admin_execute(admin: &str, statement: String) {
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("the PostgreSQL admin URL to connect");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .expect("an admin statement");
    let _ = conn.close().await;
}

fn broadcast_start(b: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_741_114_800, 0).expect("a valid time") + TimeDelta::days(7 * b)
}

/// Starts call number `n`: in broadcast `n % BROADCASTS`, `n` seconds into it.
async fn start_call(store: &Store, n: u64) -> (i64, DateTime<Utc>, DateTime<Utc>) {
    let b = broadcast_start(n as i64 % BROADCASTS);
    let started_at = b + TimeDelta::seconds(n as i64 / BROADCASTS % 86_400);
    let id = store
        .start_call(&NewCall {
            campaign: CAMPAIGN,
            caller: &format!("c_{n:032x}"),
            channel: "simulate",
            started_at,
            broadcast: Some(b),
        })
        .await
        .expect("start_call");
    (id, started_at, b)
}

/// Answer `q` of call `n`: choices vary with the call and the question.
fn answer(call: (i64, DateTime<Utc>, DateTime<Utc>), n: u64, q: usize) -> NewAnswer<'static> {
    let (id, started_at, b) = call;
    let (choice, digit) = CHOICES[(n as usize * 7 + q * 3 + n as usize / 3) % CHOICES.len()];
    NewAnswer {
        call: id,
        question: QUESTIONS[q % QUESTIONS.len()],
        choice,
        digit,
        at: started_at + TimeDelta::seconds(10 * (q as i64 + 1)),
        broadcast: Some(b),
    }
}

/// Stores `n` answers (5 per call) from `callers` concurrent tasks and returns the
/// time spent in `store_answer` alone (calls are started beforehand, untimed);
/// through `spooled` when given.
async fn timed_answers(
    store: &Store,
    first_call: u64,
    n: u64,
    callers: u64,
    spooled: Option<std::sync::Arc<SpooledStore>>,
) -> Duration {
    let per_caller = n / callers;
    let mut plans = Vec::new();
    let mut next = first_call;
    for c in 0..callers {
        let answers = per_caller + if c == 0 { n % callers } else { 0 };
        let mut calls = Vec::new();
        for _ in 0..answers.div_ceil(QUESTIONS.len() as u64) {
            calls.push((next, start_call(store, next).await));
            next += 1;
        }
        plans.push((answers, calls));
    }
    let start = Instant::now();
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|(answers, calls)| {
            let store = store.clone();
            let spooled = spooled.clone();
            tokio::spawn(async move {
                let mut left = answers;
                for (n, call) in calls {
                    for q in 0..QUESTIONS.len() {
                        if left == 0 {
                            break;
                        }
                        let a = answer(call, n, q);
                        match &spooled {
                            None => store.store_answer(&a).await.expect("store_answer"),
                            Some(s) => s
                                .write(WriteOp::Answer {
                                    call: a.call,
                                    question: a.question.into(),
                                    choice: a.choice.into(),
                                    digit: a.digit.into(),
                                    at: a.at,
                                    broadcast: a.broadcast,
                                })
                                .await
                                .expect("a spooled write"),
                        }
                        left -= 1;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("an answering task");
    }
    start.elapsed()
}

/// Adds whole calls (language, 5 answers, most completed) until the store holds
/// `target` answers; returns the new number of calls made so far.
async fn fill(store: &Store, calls_so_far: u64, target: u64) -> u64 {
    const TASKS: u64 = 4;
    let calls_needed = target / QUESTIONS.len() as u64;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = calls_so_far + t;
                while n < calls_needed {
                    let call = start_call(&store, n).await;
                    store
                        .set_language(call.0, LANGUAGES[n as usize % LANGUAGES.len()])
                        .await
                        .expect("set_language");
                    for q in 0..QUESTIONS.len() {
                        store
                            .store_answer(&answer(call, n, q))
                            .await
                            .expect("store_answer");
                    }
                    if !n.is_multiple_of(4) {
                        store.mark_completed(call.0).await.expect("mark_completed");
                    }
                    n += TASKS;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a filling task");
    }
    calls_needed.max(calls_so_far)
}

fn bench_store_answer(c: &mut Criterion) {
    let rt = runtime();
    for target in targets(&rt) {
        let mut group = c.benchmark_group(format!("store_answer/{}", target.name));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(1));
        // Call numbers far from the ones the counts benchmark uses.
        let mut next_call = 1u64 << 40;
        for callers in [1u64, 8] {
            let store = target.store.clone();
            group.bench_function(BenchmarkId::new("callers", callers), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let store = store.clone();
                    let first = next_call;
                    next_call += iters + callers;
                    async move { timed_answers(&store, first, iters, callers, None).await }
                })
            });
        }
        group.finish();
        finish(&rt, target);
    }
}

/// `store_answer` again, through `SpooledStore::write`: in normal operation
/// (`spooled_answer`) and with the database marked away (`spool_append`).
fn bench_spooled_answer(c: &mut Criterion) {
    let rt = runtime();
    for target in targets(&rt) {
        for away in [false, true] {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let limits = SpoolLimits {
                max_records: u64::MAX,
                max_bytes: u64::MAX,
            };
            let spooled = std::sync::Arc::new(
                SpooledStore::open(target.store.clone(), dir.path(), limits).expect("a spool"),
            );
            if away {
                // Nothing replays it: every write goes to the file.
                spooled.database_unreachable(&"benchmark");
            }
            let name = if away {
                "spool_append"
            } else {
                "spooled_answer"
            };
            let mut group = c.benchmark_group(format!("{name}/{}", target.name));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(5))
                .throughput(Throughput::Elements(1));
            let mut next_call = (1u64 << 41) + if away { 1 << 39 } else { 0 };
            for callers in [1u64, 8] {
                let store = target.store.clone();
                let spooled = std::sync::Arc::clone(&spooled);
                group.bench_function(BenchmarkId::new("callers", callers), |b| {
                    b.to_async(&rt).iter_custom(|iters| {
                        let store = store.clone();
                        let spooled = std::sync::Arc::clone(&spooled);
                        let first = next_call;
                        next_call += iters + callers;
                        async move {
                            timed_answers(&store, first, iters, callers, Some(spooled)).await
                        }
                    })
                });
            }
            group.finish();
        }
        finish(&rt, target);
    }
}

/// Nodes of a walk through the example campaign, visited in turn by each call.
const NODES: [&str; 8] = [
    "welcome",
    "intro",
    "menu",
    "poll",
    "q_offered_work",
    "q_know_signs",
    "q_would_report",
    "goodbye",
];

/// Records `n` first node visits from `callers` concurrent tasks; returns the
/// time spent in `visit_node` alone (calls are started beforehand, untimed).
async fn timed_visits(store: &Store, first_call: u64, n: u64, callers: u64) -> Duration {
    let mut plans = Vec::new();
    let mut next = first_call;
    for c in 0..callers {
        let visits = n / callers + if c == 0 { n % callers } else { 0 };
        let mut calls = Vec::new();
        for _ in 0..visits.div_ceil(NODES.len() as u64) {
            calls.push(start_call(store, next).await.0);
            next += 1;
        }
        plans.push((visits, calls));
    }
    let start = Instant::now();
    let tasks: Vec<_> = plans
        .into_iter()
        .map(|(visits, calls)| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut left = visits;
                for call in calls {
                    for node in NODES {
                        if left == 0 {
                            break;
                        }
                        store.visit_node(call, node).await.expect("visit_node");
                        left -= 1;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a visiting task");
    }
    start.elapsed()
}

fn bench_visit_node(c: &mut Criterion) {
    let rt = runtime();
    for target in targets(&rt) {
        let mut group = c.benchmark_group(format!("visit_node/{}", target.name));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(1));
        let mut next_call = 1u64 << 41;
        for callers in [1u64, 8] {
            let store = target.store.clone();
            group.bench_function(BenchmarkId::new("callers", callers), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let store = store.clone();
                    let first = next_call;
                    next_call += iters + callers;
                    async move { timed_visits(&store, first, iters, callers).await }
                })
            });
        }
        group.finish();
        finish(&rt, target);
    }
}

fn bench_counts(c: &mut Criterion) {
    let rt = runtime();
    let max = std::env::var("KUMA_BENCH_MAX_ANSWERS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1_000_000);
    for target in targets(&rt) {
        let mut group = c.benchmark_group(format!("counts/{}", target.name));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        let mut calls = 0;
        for size in SIZES.into_iter().filter(|s| *s <= max) {
            let started = Instant::now();
            calls = rt.block_on(fill(&target.store, calls, size));
            println!(
                "counts/{}: filled to {size} answers in {:.1} s",
                target.name,
                started.elapsed().as_secs_f64()
            );
            let store = &target.store;
            let check = rt
                .block_on(store.counts(CAMPAIGN, &CountFilter::default()))
                .expect("counts");
            let stored: u64 = check.answers.iter().map(|a| a.count).sum();
            assert_eq!(stored, size, "the store holds the answers it was given");

            let filters = [
                ("no filter", CountFilter::default()),
                (
                    "by",
                    CountFilter {
                        by: Some("q_gender"),
                        ..Default::default()
                    },
                ),
                (
                    "one day (raw rows)",
                    CountFilter {
                        since: Some(broadcast_start(1)),
                        until: Some(broadcast_start(1) + TimeDelta::days(1)),
                        ..Default::default()
                    },
                ),
            ];
            for (name, filter) in filters {
                group.bench_with_input(BenchmarkId::new(name, size), &filter, |b, f| {
                    b.to_async(&rt)
                        .iter(|| async { store.counts(CAMPAIGN, f).await.expect("counts") })
                });
            }
        }
        group.finish();
        finish(&rt, target);
    }
}

/// How long each of [`busy`]'s tasks works every 20 ms.
const BUSY_WORK: Duration = Duration::from_micros(100);

/// Tasks that keep `rt` busy as calls pacing audio do; stopped when dropped.
struct Busy(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

fn busy(rt: &Runtime, tasks: usize) -> Busy {
    let _in = rt.enter();
    Busy(
        (0..tasks)
            .map(|_| {
                tokio::spawn(async {
                    let mut tick = tokio::time::interval(Duration::from_millis(20));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let until = Instant::now() + BUSY_WORK;
                        while Instant::now() < until {
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect(),
    )
}

fn bench_busy_answer(c: &mut Criterion) {
    let rt = runtime();
    for target in targets(&rt) {
        let mut group = c.benchmark_group(format!("busy_answer/{}", target.name));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .throughput(Throughput::Elements(1));
        let mut next_call = 3u64 << 40;
        for calls in [0usize, 150, 300] {
            let store = target.store.clone();
            let load = busy(&rt, calls);
            group.bench_function(BenchmarkId::new("calls", calls), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let store = store.clone();
                    let first = next_call;
                    next_call += iters + 8;
                    async move { timed_answers(&store, first, iters, 8, None).await }
                })
            });
            drop(load);
        }
        group.finish();
        finish(&rt, target);
    }
}

criterion_group!(
    benches,
    bench_store_answer,
    bench_busy_answer,
    bench_spooled_answer,
    bench_visit_node,
    bench_counts
);
criterion_main!(benches);
