//! Benchmarks of a call's decisions, without media or a database:
//!
//! - `conversation/poll_call`: whole calls through the call runtime
//!   (`conversation::runtime::Conversation`) on the example campaign: a language,
//!   the poll's five answers, then goodbye, every output drained the way the SIP
//!   shell drains it (writes counted, prompts "played" on simulated time), per
//!   second;
//! - `conversation/engine_only`: the same call through the flow engine alone
//!   (`flow::Call::handle`), as the SIP shell drove it before the runtime: the
//!   difference is what the runtime adds per call (the writes built, their order,
//!   the recording layout, the subscription rule).
//!
//! Run: `cargo bench --bench conversation`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kuma::campaign::{Campaign, load_campaign};
use kuma::conversation::runtime::{Conversation, Input, Output, Start};
use kuma::flow::{Call, EngineOptions, Event};
use kuma::outbound::Policy;

/// The keys of one call: Bambara, the poll, five answers, back to the menu, goodbye.
const KEYS: [char; 8] = ['1', '2', '1', '1', '1', '1', '1', '0'];
const PROMPT: Duration = Duration::from_secs(3);

fn campaign() -> Arc<Campaign> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/stop-trafficking-mali.toml");
    Arc::new(load_campaign(&file).expect("the example campaign loads"))
}

fn wall() -> DateTime<Utc> {
    "2026-12-01T19:30:00Z".parse().expect("a time")
}

/// One call through the runtime; returns how many writes it asked for.
fn runtime_call(campaign: &Arc<Campaign>, policy: &Arc<Policy>, base: Instant) -> usize {
    let mut talk = Conversation::answered(
        Start {
            campaign: Arc::clone(campaign),
            row: 1,
            caller: "c_0123456789abcdef".into(),
            sealed: Err("no_subscribe_question"),
            policy: Arc::clone(policy),
            recordings: PathBuf::from("/data/recordings"),
        },
        wall(),
        base,
    );
    let mut now = base;
    let mut writes = 0;
    let mut keys = KEYS.iter();
    loop {
        let mut played = false;
        while let Some(o) = talk.poll_output(now) {
            match o {
                Output::Write(w) => {
                    writes += 1;
                    black_box(&w);
                }
                Output::Play(_) => played = true,
                _ => {}
            }
        }
        if talk.is_finished() {
            return writes;
        }
        if played {
            now += PROMPT;
            talk.handle_input(Input::PlayFinished, now);
            continue;
        }
        match keys.next() {
            Some(k) => talk.handle_input(Input::Key(*k), now),
            None => talk.handle_input(Input::HungUp, now),
        }
    }
}

/// The same call through the engine alone.
fn engine_call(campaign: &Campaign) -> usize {
    let mut call = Call::new(EngineOptions::default());
    let mut now = wall();
    let mut actions = 0;
    let mut keys = KEYS.iter();
    let mut next = Some(Event::Answered);
    while let Some(event) = next.take() {
        let mut played = false;
        for a in call.handle(campaign, event, now) {
            actions += 1;
            if matches!(a, kuma::flow::Action::Play { .. }) {
                played = true;
            }
            if matches!(a, kuma::flow::Action::Finished { .. }) {
                return actions;
            }
            black_box(&a);
        }
        next = Some(if played {
            now += PROMPT;
            Event::PromptFinished
        } else {
            keys.next().map_or(Event::HungUp, |k| Event::Digit(*k))
        });
    }
    actions
}

fn calls(c: &mut Criterion) {
    let campaign = campaign();
    let policy = Arc::new(Policy::default());
    let base = Instant::now();
    assert!(
        runtime_call(&campaign, &policy, base) >= 5,
        "the call stores its answers"
    );
    let mut group = c.benchmark_group("conversation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("poll_call", |b| {
        b.iter(|| black_box(runtime_call(&campaign, &policy, base)))
    });
    group.bench_function("engine_only", |b| {
        b.iter(|| black_box(engine_call(&campaign)))
    });
    group.finish();
}

criterion_group!(benches, calls);
criterion_main!(benches);
