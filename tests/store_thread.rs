//! The store's writer thread (`kuma-store`, `src/store/writer_thread.rs`) is
//! started by the first write that needs it, not by `Store::open`: a store
//! opened to read (`kuma results`, an export) runs no thread of its own.
//!
//! Threads are counted for the whole process (`/proc/self/task`), so this
//! binary holds this one test, and no other store lives beside it. The
//! thread is the same whichever the backend; SQLite, which needs no server,
//! stands for both.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kuma::store::{CountFilter, NewAnswer, NewCall, Store};

/// How many threads of this process are named `kuma-store`.
fn writer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "kuma-store")
        .count()
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_741_114_800 + seconds, 0).expect("a time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_thread_starts_with_the_first_write_and_ends_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kuma.db").display());
    assert_eq!(writer_threads(), 0);

    // Opened and read as `kuma results` and the exports do: no thread.
    let store = Store::open(&url).await.unwrap();
    let all = CountFilter::default();
    store.ping().await.unwrap();
    store.counts("c", &all).await.unwrap();
    store.broadcasts("c").await.unwrap();
    store.funnel("c", &all).await.unwrap();
    store.for_each_answer("c", &all, |_| Ok(())).await.unwrap();
    store.webhook_session("twilio", "s").await.unwrap();
    assert_eq!(
        writer_threads(),
        0,
        "a store only read from started a thread"
    );

    // The first write starts it; the next writes, from clones too, share it.
    let call = store
        .start_call(&NewCall {
            campaign: "c",
            caller: "c_1",
            channel: "sip",
            started_at: at(0),
            broadcast: None,
        })
        .await
        .unwrap();
    assert_eq!(writer_threads(), 1);
    let clone = store.clone();
    clone
        .store_answer(&NewAnswer {
            call,
            question: "q",
            choice: "yes",
            digit: "1",
            at: at(1),
            broadcast: None,
        })
        .await
        .unwrap();
    store.mark_completed(call).await.unwrap();
    assert_eq!(writer_threads(), 1);
    assert_eq!(store.counts("c", &all).await.unwrap().completed, 1);

    // It ends with the last clone of the store.
    drop(clone);
    assert_eq!(writer_threads(), 1);
    store.close().await;
    drop(store);
    let until = Instant::now() + Duration::from_secs(10);
    while writer_threads() > 0 {
        assert!(
            Instant::now() < until,
            "the writer thread outlived its store"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
