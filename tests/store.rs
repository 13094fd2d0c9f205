//! The results store against real databases.
//!
//! Each test body is written once, as an async fn taking a [`Store`] (and its URL,
//! to open a second store on the same database), and runs twice: on SQLite, in a
//! fresh file in a temporary folder, and on PostgreSQL, in a fresh database made
//! on the server named by `KUMA_TEST_POSTGRES_URL` (an admin URL, such as the one
//! `.ci/start-postgres` prints, and `./test` sets) and dropped afterwards. Without
//! that variable the PostgreSQL runs fail, saying so, unless
//! `KUMA_TEST_SKIP_MISSING=1` (see `common::peer_missing`).

mod common;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use kuma::secret::Pseudonymizer;
use kuma::store::{
    AnswerRow, CallEnd, CallRow, ChoiceCount, CountFilter, Counts, NewAnswer, NewCall,
    NewRecording, PairCount, SessionStep, Store, StoreError, WriteOp, redact_url,
};
use sqlx::Connection;

// ---- harness ------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

const POSTGRES_ENV: &str = "KUMA_TEST_POSTGRES_URL";

/// The admin URL of the test PostgreSQL server, or `None` when the PostgreSQL tests
/// are to be skipped.
fn postgres_admin_url(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            common::peer_missing(&format!("PostgreSQL ({POSTGRES_ENV}) for {test}"));
            None
        }
    }
}

/// `admin` with its database replaced by `database`.
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
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", redact_url(admin)));
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// Runs `body` on a fresh store of `kind`, then removes that store's database,
/// whether the body passed or not.
async fn run<F, Fut>(kind: Kind, test: &str, body: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match kind {
        Kind::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            // A folder that does not exist yet: opening must create it.
            let path = dir.path().join("data").join("kuma.db");
            let url = format!("sqlite://{}", path.display());
            let store = Store::open(&url).await.unwrap();
            assert_eq!(store.backend(), "sqlite");
            let outcome = tokio::spawn(body(store.clone(), url)).await;
            store.close().await;
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Kind::Postgres => {
            let Some(admin) = postgres_admin_url(test) else {
                return;
            };
            let name = format!("kuma_test_{:016x}", getrandom::u64().unwrap());
            admin_execute(&admin, format!("CREATE DATABASE {name}")).await;
            let url = with_database(&admin, &name);
            let outcome = match Store::open(&url).await {
                Ok(store) => {
                    assert_eq!(store.backend(), "postgres");
                    let outcome = tokio::spawn(body(store.clone(), url)).await;
                    store.close().await;
                    outcome.map_err(|e| e.into_panic())
                }
                Err(e) => Err(Box::new(format!("cannot open {name}: {e}")) as _),
            };
            admin_execute(&admin, format!("DROP DATABASE {name} WITH (FORCE)")).await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// An erased number leaves no copy in the database's files: SQLite left
/// deleted content in the file's free space, and a copy of the disk (with the
/// secret beside it) gave back numbers kuma had erased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_number_leaves_no_copy_in_the_sqlite_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kuma.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let marker = b"sealed-number-4c1d-sealed-number-4c1d";
    for (caller, sealed) in [
        ("c_kept", &b"another sealed number"[..]),
        ("c_gone", marker),
    ] {
        store
            .callbacks()
            .subscribe(CAMPAIGN, caller, sealed, 1000, at(5))
            .await
            .unwrap();
    }
    assert!(
        store
            .callbacks()
            .unsubscribe(CAMPAIGN, "c_gone", at(6))
            .await
            .unwrap()
    );
    store.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let file = entry.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{} still holds the erased number",
            file.display()
        );
    }
}

/// Declares, for each body, one test per backend: `sqlite::NAME`, `postgres::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(super::Kind::Sqlite, stringify!($name), super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(super::Kind::Postgres, stringify!($name), super::$name).await;
                }
            )*
        }
    };
}

on_both_backends!(
    opening_twice_keeps_the_data,
    answers_are_committed_as_they_come,
    a_new_answer_replaces_the_old_one_and_moves_its_counts,
    counts_per_broadcast,
    counts_since_and_until,
    cross_tab_by_another_question,
    language_counts_follow_the_last_choice,
    completed_is_counted_once,
    a_call_that_never_reached_the_campaign_is_withdrawn,
    export_streams_pseudonymous_rows_in_order,
    concurrent_writers_lose_nothing,
    a_refused_write_among_waiting_ones_undoes_only_itself,
    two_stores_on_one_database_write_side_by_side,
    calls_end_and_recordings_are_kept,
    recording_notes_are_kept,
    calls_per_hour_in_a_range,
    unknown_calls_are_refused,
    webhook_sessions_apply_each_step_once,
    provider_recordings_are_kept_until_fetched,
    the_funnel_counts_each_node_once_and_hang_ups_where_they_happen,
    a_batch_of_writes_stores_what_they_store_one_by_one_or_nothing,
    a_write_goes_on_while_its_callers_runtime_is_stuck,
    a_webhook_step_goes_on_while_its_callers_runtime_is_stuck,
    a_batch_given_up_comes_back_whole_and_is_spooled,
    callbacks_are_listed_filtered_and_counted,
    spooled_writes_applied_again_count_once,
    the_spool_is_applied_in_order_once_the_database_answers,
    secret_rotation_rekeys_callers_and_sealed_numbers_at_once,
    a_country_code_joins_spellings_and_carries_subscribers_over_with_their_history,
    a_forgotten_listener_leaves_no_row_and_the_counts_stay,
    tokens_are_listed_with_their_campaigns,
    studio_pins_unlock_their_token_and_lock_after_wrong_tries,
    writes_cut_off_anywhere_leave_no_transaction_open,
    writes_go_on_after_the_server_drops_every_connection,
);

/// A write cut off at any point (the spool's deadline, an HTTP client that hung
/// up, a call that ended) leaves nothing open for the writes after it. On
/// PostgreSQL a `BEGIN` cut off before its answer came back left the pool's
/// connection inside a transaction that sqlx did not know of, and the pool lent
/// it again: a statement made on it later outside a transaction (a token
/// created or revoked, a studio PIN's wrong tries, a call-back ringing) was
/// committed only if some later write on that connection committed, and was
/// lost when the connection closed.
async fn writes_cut_off_anywhere_leave_no_transaction_open(store: Store, url: String) {
    let mut made = 0;
    // Writes cut off after each of their steps in turn: polled `steps` times,
    // 2 ms apart (each step sends a statement or reads its answer: BEGIN,
    // the statements, COMMIT), then dropped.
    // Where the BEGIN is cut off depends on how soon the pool lends a
    // connection, so the first steps are tried many times.
    for steps in 1..=12u32 {
        for round in 0..if steps <= 3 { 25 } else { 3 } {
            let caller = format!("p_{steps}_{round}");
            {
                let mut write = std::pin::pin!(store.callbacks().subscribe(
                    "c",
                    &caller,
                    b"sealed",
                    u32::MAX,
                    at(0)
                ));
                for _ in 0..steps {
                    let ready = std::future::poll_fn(|cx| {
                        std::task::Poll::Ready(write.as_mut().poll(cx).is_ready())
                    })
                    .await;
                    if ready {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            // The pool has taken back the write's connection.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if store.backend() == "postgres" {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                let open: Vec<(i32, String)> = sqlx::query_as(
                    "SELECT pid, query FROM pg_stat_activity \
                     WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
                )
                .fetch_all(&mut c)
                .await
                .unwrap();
                c.close().await.unwrap();
                assert!(
                    open.is_empty(),
                    "cut off after {steps} steps, connections are left inside a transaction: {open:?}"
                );
            }
            // Statements outside a transaction, on whichever connections the
            // pool lends, are committed: another connection sees them.
            for _ in 0..4 {
                assert!(
                    store
                        .tokens()
                        .create(&format!("tok-{made}"), "admin", &format!("h-{made}"), at(1))
                        .await
                        .unwrap()
                );
                made += 1;
            }
            assert_eq!(
                committed_tokens(&store, &url).await,
                made,
                "cut off after {steps} steps"
            );
        }
    }
}

/// The server drops every connection of the store (restarted, or an operator's
/// `pg_terminate_backend`) just after a write: the writes that come next are
/// stored all the same. On PostgreSQL a connection whose transaction ended is
/// kept for the next write without the pool's check (`store/pg_conn.rs`), so a
/// `BEGIN` that fails on one must be tried again on a checked connection, not
/// fail the write (a call's write would be spooled; a token's would be lost).
async fn writes_go_on_after_the_server_drops_every_connection(store: Store, url: String) {
    let first = call(&store, "c_1", at(0), None).await;
    answer(&store, first, "q1", "yes", at(1), None).await;
    assert!(
        store
            .tokens()
            .create("tok-0", "admin", "h-0", at(1))
            .await
            .unwrap()
    );
    if store.backend() == "postgres" {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let others = "SELECT pid FROM pg_stat_activity \
                      WHERE datname = current_database() AND pid <> pg_backend_pid()";
        // (Materialized: the filter on pids runs before the terminations.)
        let dropped: Vec<(i32,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH o AS MATERIALIZED ({others}) SELECT pid FROM o WHERE pg_terminate_backend(pid)"
        )))
        .fetch_all(&mut c)
        .await
        .unwrap();
        assert!(!dropped.is_empty(), "the store holds no connection");
        // Gone, well within the second a kept connection is lent unchecked.
        while !sqlx::query_as::<_, (i32,)>(others)
            .fetch_all(&mut c)
            .await
            .unwrap()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        c.close().await.unwrap();
    }
    answer(&store, first, "q2", "no", at(2), None).await;
    let second = call(&store, "c_2", at(2), None).await;
    answer(&store, second, "q1", "no", at(3), None).await;
    store.mark_completed(second).await.unwrap();
    assert!(
        store
            .tokens()
            .create("tok-1", "admin", "h-1", at(3))
            .await
            .unwrap()
    );
    let c = counts(&store, CountFilter::default()).await;
    assert_eq!((c.calls, c.completed), (2, 1));
    assert_eq!(
        c.answers,
        vec![
            choice("q1", "no", 1),
            choice("q1", "yes", 1),
            choice("q2", "no", 1),
        ]
    );
    assert_eq!(committed_tokens(&store, &url).await, 2);
}

/// The tokens another connection than the store's sees.
async fn committed_tokens(store: &Store, url: &str) -> i64 {
    let count = "SELECT count(*) FROM tokens WHERE name LIKE 'tok-%'";
    match store.backend() {
        "postgres" => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            let seen = sqlx::query_scalar(count).fetch_one(&mut c).await.unwrap();
            c.close().await.unwrap();
            seen
        }
        _ => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            let seen = sqlx::query_scalar(count).fetch_one(&mut c).await.unwrap();
            c.close().await.unwrap();
            seen
        }
    }
}

async fn tokens_are_listed_with_their_campaigns(store: Store, _url: String) {
    let t0 = at(0);
    assert!(
        store
            .tokens()
            .create("office", "admin", "h1", t0)
            .await
            .unwrap()
    );
    store
        .tokens()
        .limit("h2", &["week-49".into(), "mali".into()])
        .await
        .unwrap();
    assert!(
        store
            .tokens()
            .create("station", "broadcaster", "h2", at(1))
            .await
            .unwrap()
    );
    let list = store.tokens().list().await.unwrap();
    let scopes: Vec<(&str, Vec<&str>)> = list
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.campaigns.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        scopes,
        [("office", vec![]), ("station", vec!["mali", "week-49"])]
    );
}

async fn studio_pins_unlock_their_token_and_lock_after_wrong_tries(store: Store, _url: String) {
    use kuma::store::{PIN_TRIES, PinCheck, PinKey};
    let key = PinKey::new(&kuma::secret::Pseudonymizer::new(b"store test"));
    let t = store.tokens();
    assert!(
        t.create("station", "broadcaster", "h2", at(0))
            .await
            .unwrap()
    );
    t.limit("h2", &["mali".into()]).await.unwrap();
    assert!(t.set_pin("station", &key, "424242").await.unwrap());
    assert!(t.pin_taken(&key, "424242").await.unwrap());
    let ok = PinCheck::Ok {
        name: "station".into(),
        campaigns: vec!["mali".into()],
    };
    assert_eq!(t.check_pin(&key, "424242", "c_1", at(1)).await.unwrap(), ok);
    for _ in 1..PIN_TRIES {
        assert_eq!(
            t.check_pin(&key, "000000", "c_1", at(2)).await.unwrap(),
            PinCheck::Wrong
        );
    }
    assert_eq!(
        t.check_pin(&key, "000000", "c_1", at(3)).await.unwrap(),
        PinCheck::Locked
    );
    assert_eq!(
        t.check_pin(&key, "424242", "c_1", at(4)).await.unwrap(),
        PinCheck::Locked
    );
    assert_eq!(
        t.check_pin(&key, "424242", "c_1", at(64)).await.unwrap(),
        ok
    );
}

// ---- helpers -------------------------------------------------------------------

const CAMPAIGN: &str = "stop-trafficking-mali";

/// 2025-03-04 19:00 UTC plus `minutes`.
fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_741_114_800, 0).unwrap() + TimeDelta::minutes(minutes)
}

fn day(n: i64) -> DateTime<Utc> {
    at(n * 24 * 60)
}

async fn call(
    store: &Store,
    caller: &str,
    start: DateTime<Utc>,
    b: Option<DateTime<Utc>>,
) -> CallRow {
    store
        .start_call(&NewCall {
            campaign: CAMPAIGN,
            caller,
            channel: "simulate",
            started_at: start,
            broadcast: b,
        })
        .await
        .unwrap()
}

/// Ends call `id` at `when` with `outcome`, at `last_node`.
async fn end_at(
    store: &Store,
    id: CallRow,
    when: DateTime<Utc>,
    outcome: &str,
    last_node: Option<&str>,
) {
    store
        .end_call(
            id,
            &CallEnd {
                ended_at: when,
                outcome,
                last_node,
            },
        )
        .await
        .unwrap();
}

async fn answer(
    store: &Store,
    call: CallRow,
    question: &str,
    choice: &str,
    when: DateTime<Utc>,
    b: Option<DateTime<Utc>>,
) {
    let digit = match choice {
        "yes" => "1",
        "no" => "2",
        _ => "3",
    };
    store
        .store_answer(&NewAnswer {
            call,
            question,
            choice,
            digit,
            at: when,
            broadcast: b,
        })
        .await
        .unwrap();
}

fn choice(question: &str, choice: &str, count: u64) -> ChoiceCount {
    ChoiceCount {
        question: question.into(),
        choice: choice.into(),
        count,
    }
}

fn pair(question: &str, choice: &str, by_choice: &str, count: u64) -> PairCount {
    PairCount {
        question: question.into(),
        choice: choice.into(),
        by_choice: by_choice.into(),
        count,
    }
}

/// Counts read from the counters, checked against the same counts computed from
/// the raw rows (a range that holds everything): both must always agree.
async fn counts(store: &Store, f: CountFilter<'_>) -> Counts {
    let from_counters = store.counts(CAMPAIGN, &f).await.unwrap();
    let everything = CountFilter {
        since: Some(DateTime::from_timestamp(0, 0).unwrap()),
        until: Some(at(1_000_000)),
        ..f
    };
    let from_rows = store.counts(CAMPAIGN, &everything).await.unwrap();
    assert_eq!(from_counters, from_rows, "counters and raw rows disagree");
    from_counters
}

async fn export(store: &Store, f: CountFilter<'_>) -> Vec<AnswerRow> {
    let mut rows = Vec::new();
    store
        .for_each_answer(CAMPAIGN, &f, |row| {
            rows.push(row);
            Ok(())
        })
        .await
        .unwrap();
    rows
}

// ---- tests on both backends -----------------------------------------------------

async fn opening_twice_keeps_the_data(store: Store, url: String) {
    let id = call(&store, "c_1", at(0), None).await;
    answer(&store, id, "q1", "yes", at(1), None).await;
    // The migrations run again on every open, harmlessly.
    for _ in 0..2 {
        let again = Store::open(&url).await.unwrap();
        let c = again
            .counts(CAMPAIGN, &CountFilter::default())
            .await
            .unwrap();
        assert_eq!(c.calls, 1);
        assert_eq!(c.answers, vec![choice("q1", "yes", 1)]);
        again.close().await;
    }
}

async fn answers_are_committed_as_they_come(store: Store, url: String) {
    let reader = Store::open(&url).await.unwrap();
    let id = call(&store, "c_1", at(0), None).await;
    answer(&store, id, "q1", "yes", at(1), None).await;
    // The call is still going on: nothing ended, nothing completed.
    let c = reader
        .counts(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!(c.calls, 1);
    assert_eq!(c.completed, 0);
    assert_eq!(c.answers, vec![choice("q1", "yes", 1)]);
    answer(&store, id, "q2", "no", at(2), None).await;
    let rows = export(&reader, CountFilter::default()).await;
    assert_eq!(rows.len(), 2);
    reader.close().await;
}

async fn a_new_answer_replaces_the_old_one_and_moves_its_counts(store: Store, _url: String) {
    let a = call(&store, "c_a", at(0), None).await;
    answer(&store, a, "q1", "yes", at(1), None).await;
    answer(&store, a, "q2", "no", at(2), None).await;
    answer(&store, a, "q3", "yes", at(3), None).await;
    let b = call(&store, "c_b", at(0), None).await;
    answer(&store, b, "q1", "yes", at(1), None).await;
    answer(&store, b, "q2", "yes", at(2), None).await;

    let by_q2 = CountFilter {
        by: Some("q2"),
        ..Default::default()
    };
    let c = counts(&store, by_q2).await;
    assert_eq!(
        c.answers,
        vec![
            choice("q1", "yes", 2),
            choice("q2", "no", 1),
            choice("q2", "yes", 1),
            choice("q3", "yes", 1),
        ]
    );
    assert_eq!(
        c.by,
        vec![
            pair("q1", "yes", "no", 1),
            pair("q1", "yes", "yes", 1),
            pair("q3", "yes", "no", 1),
        ]
    );

    // Call a is asked q1 again and changes its mind; then q2.
    answer(&store, a, "q1", "no", at(4), None).await;
    answer(&store, a, "q2", "yes", at(5), None).await;
    // The same answer again changes nothing.
    answer(&store, a, "q2", "yes", at(6), None).await;

    let c = counts(&store, by_q2).await;
    assert_eq!(
        c.answers,
        vec![
            choice("q1", "no", 1),
            choice("q1", "yes", 1),
            choice("q2", "yes", 2),
            choice("q3", "yes", 1),
        ]
    );
    assert_eq!(
        c.by,
        vec![
            pair("q1", "no", "yes", 1),
            pair("q1", "yes", "yes", 1),
            pair("q3", "yes", "yes", 1),
        ]
    );
    let by_q1 = counts(
        &store,
        CountFilter {
            by: Some("q1"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        by_q1.by,
        vec![
            pair("q2", "yes", "no", 1),
            pair("q2", "yes", "yes", 1),
            pair("q3", "yes", "no", 1),
        ]
    );
    // One row per (call, question), holding the last answer.
    let rows = export(&store, CountFilter::default()).await;
    assert_eq!(rows.len(), 5);
    let last = rows
        .iter()
        .find(|r| r.call == a && r.question == "q2")
        .unwrap();
    assert_eq!((last.choice.as_str(), last.answered_at), ("yes", at(6)));
}

async fn counts_per_broadcast(store: Store, _url: String) {
    let (b1, b2) = (Some(day(0)), Some(day(7)));
    let x = call(&store, "c_x", at(10), b1).await;
    answer(&store, x, "q1", "yes", at(11), b1).await;
    answer(&store, x, "q2", "no", at(12), b1).await;
    let y = call(&store, "c_y", day(7) + TimeDelta::minutes(5), b2).await;
    answer(&store, y, "q1", "no", day(7) + TimeDelta::minutes(6), b2).await;
    // A call outside every poll window: counted in the total only.
    let z = call(&store, "c_z", day(3), None).await;
    store.mark_completed(z).await.unwrap();

    let all = counts(&store, CountFilter::default()).await;
    assert_eq!((all.calls, all.completed), (3, 1));
    assert_eq!(
        all.answers,
        vec![
            choice("q1", "no", 1),
            choice("q1", "yes", 1),
            choice("q2", "no", 1)
        ]
    );

    let first = counts(
        &store,
        CountFilter {
            broadcast: b1,
            by: Some("q1"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!((first.calls, first.completed), (1, 0));
    assert_eq!(
        first.answers,
        vec![choice("q1", "yes", 1), choice("q2", "no", 1)]
    );
    assert_eq!(first.by, vec![pair("q2", "no", "yes", 1)]);

    let second = counts(
        &store,
        CountFilter {
            broadcast: b2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.calls, 1);
    assert_eq!(second.answers, vec![choice("q1", "no", 1)]);

    let none = counts(
        &store,
        CountFilter {
            broadcast: Some(day(14)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(none, Counts::default());

    let list = store.broadcasts(CAMPAIGN).await.unwrap();
    let list: Vec<_> = list.iter().map(|b| (b.at, b.calls, b.answers)).collect();
    assert_eq!(list, vec![(day(0), 1, 2), (day(7), 1, 1)]);
    assert!(
        store
            .broadcasts("another-campaign")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn counts_since_and_until(store: Store, _url: String) {
    let b = Some(day(0));
    let early = call(&store, "c_1", at(0), b).await;
    answer(&store, early, "q1", "yes", at(1), b).await;
    answer(&store, early, "q2", "yes", at(30), b).await;
    let later = call(&store, "c_2", at(30), b).await;
    answer(&store, later, "q1", "no", at(31), b).await;
    store.mark_completed(later).await.unwrap();
    let other = call(&store, "c_3", at(30), None).await;
    answer(&store, other, "q1", "no", at(32), None).await;

    // Half-open: [at(30), at(32)) holds the answers at 30 and 31, not the one at 32,
    // and the calls started at 30.
    let window = store
        .counts(
            CAMPAIGN,
            &CountFilter {
                since: Some(at(30)),
                until: Some(at(32)),
                by: Some("q1"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((window.calls, window.completed), (2, 1));
    assert_eq!(
        window.answers,
        vec![choice("q1", "no", 1), choice("q2", "yes", 1)]
    );
    // q2 was answered in the range by a call that answered q1 before it.
    assert_eq!(window.by, vec![pair("q2", "yes", "yes", 1)]);

    let since = store
        .counts(
            CAMPAIGN,
            &CountFilter {
                since: Some(at(31)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(since.calls, 0);
    assert_eq!(since.answers, vec![choice("q1", "no", 2)]);

    let until = store
        .counts(
            CAMPAIGN,
            &CountFilter {
                until: Some(at(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(until.calls, 1);
    assert!(until.answers.is_empty());

    // Combined with a broadcast.
    let in_broadcast = store
        .counts(
            CAMPAIGN,
            &CountFilter {
                broadcast: b,
                since: Some(at(31)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(in_broadcast.answers, vec![choice("q1", "no", 1)]);

    let rows = export(
        &store,
        CountFilter {
            since: Some(at(30)),
            until: Some(at(32)),
            ..Default::default()
        },
    )
    .await;
    let times: Vec<_> = rows.iter().map(|r| r.answered_at).collect();
    assert_eq!(times, vec![at(30), at(31)]);
}

async fn cross_tab_by_another_question(store: Store, _url: String) {
    // (gender, offered work) for six calls; one never answered gender.
    let answers = [
        (Some("woman"), "yes"),
        (Some("woman"), "yes"),
        (Some("woman"), "no"),
        (Some("man"), "yes"),
        (Some("man"), "not_sure"),
        (None, "no"),
    ];
    for (i, (gender, offered)) in answers.into_iter().enumerate() {
        let id = call(&store, &format!("c_{i}"), at(i as i64), None).await;
        answer(&store, id, "q_offered_work", offered, at(i as i64), None).await;
        if let Some(g) = gender {
            answer(&store, id, "q_gender", g, at(i as i64 + 1), None).await;
        }
    }
    let c = counts(
        &store,
        CountFilter {
            by: Some("q_gender"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        c.by,
        vec![
            pair("q_offered_work", "no", "woman", 1),
            pair("q_offered_work", "not_sure", "man", 1),
            pair("q_offered_work", "yes", "man", 1),
            pair("q_offered_work", "yes", "woman", 2),
        ]
    );
    // The reverse direction is kept too.
    let reverse = counts(
        &store,
        CountFilter {
            by: Some("q_offered_work"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        reverse.by,
        vec![
            pair("q_gender", "man", "not_sure", 1),
            pair("q_gender", "man", "yes", 1),
            pair("q_gender", "woman", "no", 1),
            pair("q_gender", "woman", "yes", 2),
        ]
    );
    // Without `by`, no cross-tab.
    assert!(counts(&store, CountFilter::default()).await.by.is_empty());
    // A question nobody answered gives an empty cross-tab.
    let nobody = counts(
        &store,
        CountFilter {
            by: Some("q_unknown"),
            ..Default::default()
        },
    )
    .await;
    assert!(nobody.by.is_empty());
}

async fn language_counts_follow_the_last_choice(store: Store, _url: String) {
    let b = Some(day(0));
    let one = call(&store, "c_1", at(0), b).await;
    let two = call(&store, "c_2", at(0), b).await;
    let three = call(&store, "c_3", at(0), None).await;
    let _silent = call(&store, "c_4", at(0), None).await;
    store.set_language(one, "bm").await.unwrap();
    store.set_language(two, "fr").await.unwrap();
    store.set_language(three, "bm").await.unwrap();
    // Call two goes back to the menu and picks Bambara; setting it again is a no-op.
    store.set_language(two, "bm").await.unwrap();
    store.set_language(two, "bm").await.unwrap();

    let c = counts(&store, CountFilter::default()).await;
    assert_eq!(c.calls, 4);
    assert_eq!(c.languages, vec![("bm".to_string(), 3)]);
    let in_b = counts(
        &store,
        CountFilter {
            broadcast: b,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(in_b.languages, vec![("bm".to_string(), 2)]);

    store.set_language(three, "fr").await.unwrap();
    let c = counts(&store, CountFilter::default()).await;
    assert_eq!(
        c.languages,
        vec![("bm".to_string(), 2), ("fr".to_string(), 1)]
    );
}

async fn completed_is_counted_once(store: Store, _url: String) {
    let id = call(&store, "c_1", at(0), None).await;
    let _other = call(&store, "c_2", at(0), None).await;
    for _ in 0..3 {
        store.mark_completed(id).await.unwrap();
    }
    let c = counts(&store, CountFilter::default()).await;
    assert_eq!((c.calls, c.completed), (2, 1));
}

/// A call that ended before it reached its campaign (refused, cancelled
/// while it rang, kuma's answer never confirmed) is withdrawn: no row, no
/// count, in the counters and in every time range. Withdrawn again (a spool's
/// replay), nothing moves; a call with something stored under it stays.
async fn a_call_that_never_reached_the_campaign_is_withdrawn(store: Store, _url: String) {
    let b = Some(at(-10));
    let kept = call(&store, "c_1", at(0), b).await;
    answer(&store, kept, "q1", "yes", at(1), b).await;
    let forged = call(&store, "c_2", at(0), b).await;
    let unbroadcast = call(&store, "c_3", at(2), None).await;
    assert_eq!(counts(&store, CountFilter::default()).await.calls, 3);
    for _ in 0..2 {
        WriteOp::Withdraw { call: forged }
            .apply(&store)
            .await
            .unwrap();
        WriteOp::Withdraw { call: unbroadcast }
            .apply(&store)
            .await
            .unwrap();
    }
    // Refused for the answer stored under it: it stays, counted.
    WriteOp::Withdraw { call: kept }
        .apply(&store)
        .await
        .unwrap();
    let c = counts(&store, CountFilter::default()).await;
    assert_eq!((c.calls, c.answers), (1, vec![choice("q1", "yes", 1)]));
    let per_broadcast = CountFilter {
        broadcast: b,
        ..CountFilter::default()
    };
    assert_eq!(counts(&store, per_broadcast).await.calls, 1);
    assert_eq!(
        store
            .calls_per_hour(CAMPAIGN, at(-60), at(60))
            .await
            .unwrap(),
        vec![(at(0), 1)]
    );
    // Its row is gone: a later write names an unknown call.
    assert!(store.mark_completed(forged).await.is_err());
}

async fn export_streams_pseudonymous_rows_in_order(store: Store, _url: String) {
    let pseudonyms = Pseudonymizer::new(b"a test secret of enough bytes");
    let numbers = ["+22370000001", "+22370000002"];
    let b = Some(day(0));
    let first = call(&store, &pseudonyms.pseudonym(numbers[0]), at(0), b).await;
    let second = call(&store, &pseudonyms.pseudonym(numbers[1]), at(1), b).await;
    store.set_language(first, "fr").await.unwrap();
    // Given out of order on purpose: the export is ordered by time.
    answer(&store, second, "q1", "no", at(3), b).await;
    answer(&store, first, "q1", "yes", at(2), b).await;
    answer(&store, first, "q2", "yes", at(4), b).await;
    let other = store
        .start_call(&NewCall {
            campaign: "another-campaign",
            caller: "c_other",
            channel: "sip",
            started_at: at(0),
            broadcast: None,
        })
        .await
        .unwrap();
    answer(&store, other, "q1", "yes", at(3), None).await;

    let rows = export(&store, CountFilter::default()).await;
    assert_eq!(
        rows,
        vec![
            AnswerRow {
                call: first,
                caller: pseudonyms.pseudonym(numbers[0]),
                language: Some("fr".into()),
                question: "q1".into(),
                choice: "yes".into(),
                digit: "1".into(),
                answered_at: at(2),
                broadcast: b,
            },
            AnswerRow {
                call: second,
                caller: pseudonyms.pseudonym(numbers[1]),
                language: None,
                question: "q1".into(),
                choice: "no".into(),
                digit: "2".into(),
                answered_at: at(3),
                broadcast: b,
            },
            AnswerRow {
                call: first,
                caller: pseudonyms.pseudonym(numbers[0]),
                language: Some("fr".into()),
                question: "q2".into(),
                choice: "yes".into(),
                digit: "1".into(),
                answered_at: at(4),
                broadcast: b,
            },
        ]
    );
    for row in &rows {
        assert!(row.caller.starts_with("c_"));
        for number in numbers {
            assert!(!row.caller.contains(&number[1..]));
        }
    }

    // Filtered by broadcast and time.
    let filtered = export(
        &store,
        CountFilter {
            broadcast: b,
            since: Some(at(3)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(filtered.len(), 2);

    // An error from the consumer stops the export and comes back.
    let mut seen = 0;
    let err = store
        .for_each_answer(CAMPAIGN, &CountFilter::default(), |_| {
            seen += 1;
            Err(StoreError::Export("disk full".into()))
        })
        .await
        .unwrap_err();
    assert_eq!(seen, 1);
    assert_eq!(err.to_string(), "export stopped: disk full");
}

async fn concurrent_writers_lose_nothing(store: Store, _url: String) {
    const TASKS: usize = 8;
    const CALLS_PER_TASK: usize = 40;
    const QUESTIONS: [&str; 5] = ["q1", "q2", "q3", "q4", "q5"];
    const CHOICES: [&str; 3] = ["yes", "no", "not_sure"];
    let b = Some(day(0));

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for c in 0..CALLS_PER_TASK {
                let id = call(&store, &format!("c_{t}_{c}"), at(c as i64), b).await;
                store.set_language(id, ["bm", "fr"][c % 2]).await.unwrap();
                for (q, question) in QUESTIONS.iter().enumerate() {
                    let pick = CHOICES[(t + c + q) % 3];
                    answer(&store, id, question, pick, at(c as i64), b).await;
                }
                // Every fourth call changes its mind on q1.
                if c.is_multiple_of(4) {
                    let pick = CHOICES[(t + c + 1) % 3];
                    answer(&store, id, "q1", pick, at(c as i64 + 1), b).await;
                }
                store.mark_completed(id).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let calls = (TASKS * CALLS_PER_TASK) as u64;
    let answers = calls * QUESTIONS.len() as u64;
    let c = counts(
        &store,
        CountFilter {
            by: Some("q1"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!((c.calls, c.completed), (calls, calls));
    assert_eq!(c.languages.iter().map(|(_, n)| n).sum::<u64>(), calls);
    assert_eq!(c.answers.iter().map(|a| a.count).sum::<u64>(), answers);
    // Every call answered q1 and four other questions.
    assert_eq!(c.by.iter().map(|p| p.count).sum::<u64>(), calls * 4);
    let rows = export(&store, CountFilter::default()).await;
    assert_eq!(rows.len() as u64, answers);
}

/// Writes that arrive together (SQLite commits them as one transaction, each
/// after the first in a savepoint): one refused among them (an unknown call)
/// undoes itself alone, and every other one is stored and counted once.
async fn a_refused_write_among_waiting_ones_undoes_only_itself(store: Store, _url: String) {
    const CALLS: usize = 30;
    let mut ids = Vec::new();
    for c in 0..CALLS {
        ids.push(call(&store, &format!("c_{c}"), at(0), None).await);
    }
    let missing: CallRow = 424_242;
    // Every write of a burst is spawned before any has its turn: they wait together.
    let mut tasks = Vec::new();
    for (c, &id) in ids.iter().enumerate() {
        for (call, choice) in [(id, "yes"), (missing, "no")] {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .store_answer(&NewAnswer {
                        call,
                        question: if c % 2 == 0 { "q1" } else { "q2" },
                        choice,
                        digit: "1",
                        at: at(1),
                        broadcast: None,
                    })
                    .await
            }));
        }
    }
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => stored += 1,
            Err(e) => assert!(matches!(e, StoreError::UnknownCall(424_242)), "{e}"),
        }
    }
    assert_eq!(stored, CALLS);
    let c = counts(&store, CountFilter::default()).await;
    assert_eq!(
        c.answers,
        vec![
            choice("q1", "yes", CALLS as u64 / 2),
            choice("q2", "yes", CALLS as u64 / 2)
        ]
    );
    assert_eq!(export(&store, CountFilter::default()).await.len(), CALLS);
}

/// Two stores on one database, as two processes would have (say `kuma serve` and a
/// `kuma call` simulation): their write transactions wait for each other
/// (SQLite: `BEGIN IMMEDIATE` and `busy_timeout`) instead of failing.
async fn two_stores_on_one_database_write_side_by_side(store: Store, url: String) {
    const TASKS_PER_STORE: usize = 3;
    const CALLS_PER_TASK: usize = 25;
    let other = Store::open(&url).await.unwrap();
    let mut tasks = Vec::new();
    for (s, store) in [store.clone(), other.clone()].into_iter().enumerate() {
        for t in 0..TASKS_PER_STORE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for c in 0..CALLS_PER_TASK {
                    let id = call(&store, &format!("c_{s}_{t}_{c}"), at(c as i64), None).await;
                    answer(&store, id, "q1", ["yes", "no"][c % 2], at(c as i64), None).await;
                    answer(&store, id, "q2", ["no", "yes"][t % 2], at(c as i64), None).await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let calls = (2 * TASKS_PER_STORE * CALLS_PER_TASK) as u64;
    let c = counts(
        &store,
        CountFilter {
            by: Some("q2"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(c.calls, calls);
    assert_eq!(c.answers.iter().map(|a| a.count).sum::<u64>(), 2 * calls);
    assert_eq!(c.by.iter().map(|p| p.count).sum::<u64>(), calls);
    assert_eq!(
        other
            .counts(CAMPAIGN, &CountFilter::default())
            .await
            .unwrap()
            .calls,
        calls
    );
    other.close().await;
}

async fn calls_end_and_recordings_are_kept(store: Store, _url: String) {
    let id = call(&store, "c_1", at(0), None).await;
    let rec = store
        .add_recording(&NewRecording {
            call: id,
            node: "testimony",
            file: "recordings/stop-trafficking-mali/1.wav",
            duration: Duration::from_millis(12_345),
            at: at(1),
        })
        .await
        .unwrap();
    let rec2 = store
        .add_recording(&NewRecording {
            call: id,
            node: "testimony",
            file: "recordings/stop-trafficking-mali/2.wav",
            duration: Duration::from_secs(3),
            at: at(2),
        })
        .await
        .unwrap();
    assert_ne!(rec, rec2);
    end_at(&store, id, at(3), "hangup", Some("goodbye")).await;
    // Ending it again (e.g. a late hang-up event) is allowed.
    end_at(&store, id, at(4), "caller_hung_up", None).await;
    assert_eq!(counts(&store, CountFilter::default()).await.calls, 1);
}

/// Everything a call's writes can change, as one comparable value.
async fn snapshot(store: &Store) -> String {
    let f = CountFilter {
        by: Some("q_gender"),
        ..CountFilter::default()
    };
    let recordings: Vec<(i64, String, String)> = store
        .recordings(CAMPAIGN)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.call, r.node, r.file))
        .collect();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        counts(store, f).await,
        store.funnel(CAMPAIGN, &f).await.unwrap(),
        export(store, f).await,
        recordings,
        store.callbacks().subscriber_count(CAMPAIGN).await.unwrap(),
    )
}

/// The spool's exactly-once rests on this: a write applied again (one, or a
/// call's whole sequence, as a replay after a crash does) counts nothing twice.
async fn spooled_writes_applied_again_count_once(store: Store, _url: String) {
    let a = call(&store, "c_1", at(0), Some(at(-10))).await;
    let b = call(&store, "c_2", at(1), None).await;
    let answer = |call, question: &str, choice: &str, minute| WriteOp::Answer {
        call,
        question: question.into(),
        choice: choice.into(),
        digit: "1".into(),
        at: at(minute),
        broadcast: (call == a).then(|| at(-10)),
    };
    let ops = |call: CallRow| {
        vec![
            WriteOp::Visit {
                call,
                node: "welcome".into(),
            },
            WriteOp::Language {
                call,
                language: "bm".into(),
            },
            WriteOp::Language {
                call,
                language: "fr".into(),
            },
            answer(call, "q_offered_work", "yes", 2),
            answer(call, "q_gender", "woman", 3),
            // Asked again: the last answer counts.
            answer(call, "q_offered_work", "no", 4),
            WriteOp::Visit {
                call,
                node: "testimony".into(),
            },
            WriteOp::Recording {
                call,
                node: "testimony".into(),
                file: format!("recordings/{call}.wav"),
                duration_ms: 4_000,
                at: at(5),
            },
            WriteOp::Subscribe {
                campaign: CAMPAIGN.into(),
                caller: format!("c_{call}"),
                sealed: "00ff".into(),
                at: at(5),
                limit: Some(10),
            },
            WriteOp::Completed { call },
            WriteOp::End {
                call,
                at: at(6),
                outcome: "caller_hangup".into(),
                last_node: Some("testimony".into()),
            },
        ]
    };
    let all: Vec<WriteOp> = ops(a).into_iter().chain(ops(b)).collect();
    for op in &all {
        op.clone().apply(&store).await.unwrap();
    }
    let once = snapshot(&store).await;
    assert!(once.contains("choice: \"no\", count: 2"), "{once}");
    // Each write twice in a row (a commit that came back too late, then its replay).
    for op in &all {
        op.clone().apply(&store).await.unwrap();
    }
    assert_eq!(snapshot(&store).await, once);
    // The whole spool again, in order (a crash before the checkpoint moved).
    for op in &all {
        op.clone().apply(&store).await.unwrap();
    }
    assert_eq!(snapshot(&store).await, once);
}

/// Writes made while the database is away wait in the spool, survive a restart
/// (a process killed before it could apply them), and are applied once.
async fn the_spool_is_applied_in_order_once_the_database_answers(store: Store, _url: String) {
    use kuma::store::spool::{SpoolLimits, SpooledStore};
    let dir = tempfile::tempdir().unwrap();
    let id = call(&store, "c_1", at(0), None).await;
    let answer = |question: &str, choice: &str, minute| WriteOp::Answer {
        call: id,
        question: question.into(),
        choice: choice.into(),
        digit: "1".into(),
        at: at(minute),
        broadcast: None,
    };
    let writes = [
        answer("q_offered_work", "yes", 1),
        answer("q_gender", "woman", 2),
        // Asked again: the last answer counts, so the order matters.
        answer("q_offered_work", "no", 3),
        WriteOp::End {
            call: id,
            at: at(4),
            outcome: "completed".into(),
            last_node: Some("goodbye".into()),
        },
    ];
    {
        let spooled =
            SpooledStore::open(store.clone(), dir.path(), SpoolLimits::default()).unwrap();
        spooled.database_unreachable(&"test");
        assert!(spooled.refuses_new_calls());
        for w in &writes {
            spooled.write(w.clone()).await.unwrap();
        }
        assert_eq!(spooled.status().pending, 4);
        // Killed here: nothing applied yet.
    }
    assert_eq!(counts(&store, CountFilter::default()).await.answers, []);
    let spooled = std::sync::Arc::new(
        SpooledStore::open(store.clone(), dir.path(), SpoolLimits::default()).unwrap(),
    );
    assert_eq!(spooled.status().pending, 4);
    let replay = tokio::spawn({
        let spooled = std::sync::Arc::clone(&spooled);
        async move { spooled.replay().await }
    });
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while spooled.status().pending > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(spooled.status().pending, 0);
    assert!(spooled.status().database_reachable);
    assert_eq!(
        counts(&store, CountFilter::default()).await.answers,
        [
            choice("q_gender", "woman", 1),
            choice("q_offered_work", "no", 1)
        ]
    );
    // Normal operation again: straight to the database, the spool stays empty.
    spooled.write(answer("q_gender", "man", 5)).await.unwrap();
    assert_eq!(spooled.status().pending, 0);
    assert_eq!(
        counts(&store, CountFilter::default()).await.answers,
        [
            choice("q_gender", "man", 1),
            choice("q_offered_work", "no", 1)
        ]
    );
    replay.abort();
    assert_eq!(
        std::fs::metadata(dir.path().join("spool.jsonl"))
            .unwrap()
            .len(),
        0
    );
}

async fn recording_notes_are_kept(store: Store, _url: String) {
    let id = call(&store, "c_1", at(0), None).await;
    let rec = store
        .add_recording(&NewRecording {
            call: id,
            node: "leave_message",
            file: "recordings/1.wav",
            duration: Duration::from_secs(4),
            at: at(1),
        })
        .await
        .unwrap();
    let fresh = store.recording(rec).await.unwrap().unwrap();
    assert_eq!((fresh.note.as_str(), fresh.picked), ("", false));
    assert!(
        store
            .set_recording_note(rec, "Une offre de travail à Kayes", true, at(5))
            .await
            .unwrap()
    );
    let noted = &store.recordings(CAMPAIGN).await.unwrap()[0];
    assert_eq!(noted.note, "Une offre de travail à Kayes");
    assert!(noted.picked);
    // Unpicking keeps working; an unknown recording is reported, not created.
    assert!(
        store
            .set_recording_note(rec, "", false, at(6))
            .await
            .unwrap()
    );
    assert!(!store.recording(rec).await.unwrap().unwrap().picked);
    assert!(
        !store
            .set_recording_note(9_999, "x", true, at(6))
            .await
            .unwrap()
    );
}

async fn calls_per_hour_in_a_range(store: Store, _url: String) {
    // at(0) is 19:00 UTC: two calls in the 19:00 hour, one at 21:59, one at
    // 22:00 (outside the range's end), one the day before (outside its start).
    for (caller, minute) in [
        ("c_1", 0),
        ("c_2", 59),
        ("c_3", 179),
        ("c_4", 180),
        ("c_5", -1440),
    ] {
        call(&store, caller, at(minute), None).await;
    }
    let hours = store
        .calls_per_hour(CAMPAIGN, at(-60), at(180))
        .await
        .unwrap();
    assert_eq!(hours, vec![(at(0), 2), (at(120), 1)]);
    assert!(
        store
            .calls_per_hour("another", at(-60), at(180))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn unknown_calls_are_refused(store: Store, _url: String) {
    let missing: CallRow = 424_242;
    let errors = [
        store.set_language(missing, "bm").await.unwrap_err(),
        store
            .store_answer(&NewAnswer {
                call: missing,
                question: "q1",
                choice: "yes",
                digit: "1",
                at: at(0),
                broadcast: None,
            })
            .await
            .unwrap_err(),
        store.mark_completed(missing).await.unwrap_err(),
        store
            .end_call(
                missing,
                &CallEnd {
                    ended_at: at(0),
                    outcome: "hangup",
                    last_node: None,
                },
            )
            .await
            .unwrap_err(),
        store
            .add_recording(&NewRecording {
                call: missing,
                node: "n",
                file: "f.wav",
                duration: Duration::from_secs(1),
                at: at(0),
            })
            .await
            .unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, StoreError::UnknownCall(424_242)), "{e}");
        assert_eq!(e.to_string(), "no call 424242 in the results store");
    }
    // Nothing was counted on the way.
    assert_eq!(
        counts(&store, CountFilter::default()).await,
        Counts::default()
    );
}

fn end(outcome: &'static str, node: &'static str, when: DateTime<Utc>) -> CallEnd<'static> {
    CallEnd {
        ended_at: when,
        outcome,
        last_node: Some(node),
    }
}

async fn the_funnel_counts_each_node_once_and_hang_ups_where_they_happen(
    store: Store,
    _url: String,
) {
    let b = Some(at(0));
    let (a, c) = (
        call(&store, "c_a", at(5), b).await,
        call(&store, "c_b", day(3), None).await,
    );
    for (id, node) in [
        (a, "welcome"),
        (a, "menu"),
        (a, "welcome"),
        (a, "story"),
        (c, "welcome"),
    ] {
        store.visit_node(id, node).await.unwrap();
    }
    store
        .end_call(a, &end("caller_hangup", "story", at(9)))
        .await
        .unwrap();
    store
        .end_call(c, &end("completed", "welcome", day(3)))
        .await
        .unwrap();
    let all = store
        .funnel(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!((all.calls, all.completed), (2, 0));
    let nodes: Vec<(&str, (u64, u64))> = all.nodes.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        nodes,
        [("menu", (1, 0)), ("story", (1, 1)), ("welcome", (2, 0))],
        "a second visit does not count; a completed call did not hang up"
    );
    // Ending the call again moves its hang-up; it never counts twice.
    store
        .end_call(a, &end("caller_hangup", "menu", at(10)))
        .await
        .unwrap();
    store
        .end_call(a, &end("caller_hangup", "menu", at(11)))
        .await
        .unwrap();
    let all = store
        .funnel(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!(all.nodes["menu"], (1, 1));
    assert_eq!(all.nodes["story"], (1, 0));

    // By broadcast (counters) and by time range (rows) agree.
    let one = CountFilter {
        broadcast: b,
        ..Default::default()
    };
    let by_broadcast = store.funnel(CAMPAIGN, &one).await.unwrap();
    assert_eq!(by_broadcast.calls, 1);
    assert_eq!(by_broadcast.nodes.len(), 3);
    assert_eq!(by_broadcast.nodes["welcome"], (1, 0));
    let range = CountFilter {
        since: Some(at(0)),
        until: Some(day(1)),
        ..Default::default()
    };
    assert_eq!(store.funnel(CAMPAIGN, &range).await.unwrap(), by_broadcast);
    let later = CountFilter {
        since: Some(day(2)),
        ..Default::default()
    };
    let later = store.funnel(CAMPAIGN, &later).await.unwrap();
    assert_eq!(later.calls, 1);
    assert_eq!(later.nodes["welcome"], (1, 0));
    assert_eq!(later.nodes.len(), 1);

    // Through `store_action`, as the channels without a spool stores the engine's actions.
    let d = call(&store, "c_d", at(20), b).await;
    store
        .store_action(
            d,
            &kuma::flow::Action::Enter {
                node: "welcome".into(),
            },
            at(20),
        )
        .await
        .unwrap();
    assert_eq!(
        store.funnel(CAMPAIGN, &one).await.unwrap().nodes["welcome"],
        (2, 0)
    );
    assert!(matches!(
        store.visit_node(424_242, "welcome").await.unwrap_err(),
        StoreError::UnknownCall(424_242)
    ));
    assert!(
        store
            .funnel("other", &CountFilter::default())
            .await
            .unwrap()
            .nodes
            .is_empty()
    );
}

/// The call-back queue as `kuma callbacks` and the API read it: one campaign's,
/// newest first, by status, limited, each with its attempts; and its counts.
async fn callbacks_are_listed_filtered_and_counted(store: Store, _url: String) {
    use kuma::outbound::{Next, Policy, Refusal, Status};
    use kuma::store::{CallbackFilter, NewCallback};
    let p = Policy::default();
    let missed = |campaign, caller, t: DateTime<Utc>| NewCallback {
        campaign,
        caller,
        sealed: b"sealed",
        at: t,
        due: t,
    };
    let (a, _) = store
        .callbacks()
        .queue(&missed(CAMPAIGN, "c_a", at(0)), &p)
        .await
        .unwrap();
    let claimed = store.callbacks().claim("w", at(1), at(0)).await.unwrap();
    assert_eq!(claimed.map(|c| c.id), Some(a));
    store.callbacks().ringing(a, 1).await.unwrap();
    store
        .callbacks()
        .finish_attempt(
            a,
            1,
            Status::NoAnswer,
            Some(480),
            Next::Retry(at(60)),
            None,
            at(2),
        )
        .await
        .unwrap();
    let (_, other) = store
        .callbacks()
        .queue(&missed("other", "c_o", at(3)), &p)
        .await
        .unwrap();
    assert_eq!(other, Ok(()));
    store
        .callbacks()
        .refuse(CAMPAIGN, "c_r", Refusal::Blocked, at(4))
        .await
        .unwrap();
    store
        .callbacks()
        .subscribe(CAMPAIGN, "c_s", b"sealed", 1000, at(5))
        .await
        .unwrap();
    store
        .callbacks()
        .queue_broadcast(
            CAMPAIGN,
            at(0),
            day(1),
            at(5),
            &kuma::outbound::Policy::default(),
        )
        .await
        .unwrap();

    let filter = |status, limit| CallbackFilter {
        campaign: Some(CAMPAIGN),
        status,
        limit,
    };
    let list = store.callbacks().list(&filter(None, None)).await.unwrap();
    let rows: Vec<_> = list
        .iter()
        .map(|r| {
            (
                r.caller.as_str(),
                r.status.as_str(),
                r.attempts,
                r.broadcast.is_some(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("c_s", "queued", 0, true),
            ("c_r", "refused", 0, false),
            ("c_a", "queued", 1, false)
        ]
    );
    assert_eq!(list[2].note.as_deref(), Some("sip 480"));
    assert_eq!(list[2].next_at, Some(at(60)));
    let tries: Vec<_> = list[2]
        .tries
        .iter()
        .map(|t| (t.attempt, t.status.as_str(), t.sip_code))
        .collect();
    assert_eq!(tries, [(1, "no_answer", Some(480))]);
    let queued = store
        .callbacks()
        .list(&filter(Some(Status::Queued), Some(1)))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].caller, "c_s");
    assert_eq!(
        store
            .callbacks()
            .list(&CallbackFilter::default())
            .await
            .unwrap()
            .len(),
        4
    );

    let counts: Vec<_> = store
        .callbacks()
        .counts(CAMPAIGN)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.status, c.broadcast, c.callbacks, c.attempts))
        .collect();
    assert_eq!(
        counts,
        [
            ("queued".to_string(), false, 1, 1),
            ("queued".to_string(), true, 1, 0),
            ("refused".to_string(), false, 1, 0)
        ]
    );
}

// ---- opening: SQLite files, URLs and servers that are not there -------------------

#[tokio::test]
async fn sqlite_open_creates_the_folder_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("kuma.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.is_file());
    store.close().await;
}

#[tokio::test]
async fn sqlite_relative_paths_are_relative_to_the_working_folder() {
    // Tests run in the package folder; use a unique name under target/.
    let name = format!(
        "target/tmp/store-test-{:016x}/kuma.db",
        getrandom::u64().unwrap()
    );
    let store = Store::open(&format!("sqlite://{name}")).await.unwrap();
    let path = std::env::current_dir().unwrap().join(&name);
    assert!(path.is_file());
    store.close().await;
    if let Some(folder) = path.parent() {
        std::fs::remove_dir_all(folder).unwrap();
    }
}

#[tokio::test]
async fn unknown_schemes_are_refused() {
    let err = Store::open("mysql://kuma:hunter22@db/kuma")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported database URL `mysql://kuma:***@db/kuma`: expected sqlite://PATH or postgres://…"
    );
    for url in ["kuma.db", "sqlite://", "sqlite:kuma.db", ""] {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{url}: {err}");
    }
}

#[tokio::test]
async fn an_unwritable_sqlite_folder_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let read_only = dir.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    set_mode(&read_only, 0o555);

    // Root writes through permission bits: then use a folder that cannot exist
    // because a regular file stands where it should be.
    let probe = read_only.join("probe");
    let url = if std::fs::write(&probe, b"x").is_ok() {
        std::fs::remove_file(&probe).unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a folder").unwrap();
        format!("sqlite://{}/data/kuma.db", file.display())
    } else {
        format!("sqlite://{}/kuma.db", read_only.display())
    };
    let err = Store::open(&url).await.unwrap_err().to_string();
    set_mode(&read_only, 0o755);
    println!("{err}");
    assert!(err.starts_with(&format!("cannot open `{url}`: ")), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn an_unreachable_postgres_server_is_one_clear_line() {
    // A port that was free a moment ago: nothing listens there now.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://kuma:hunter22-secret@127.0.0.1:{port}/kuma");
    let err = Store::open(&url).await.unwrap_err().to_string();
    println!("{err}");
    assert_eq!(
        err,
        format!(
            "cannot open `postgres://kuma:***@127.0.0.1:{port}/kuma`: connection refused \
             (is the server running, and are the host and port right?)"
        )
    );
    assert!(!err.contains("hunter22"));
}

#[tokio::test]
async fn a_wrong_postgres_password_is_one_clear_line() {
    let Some(admin) = postgres_admin_url("a_wrong_postgres_password_is_one_clear_line") else {
        return;
    };
    // .ci/start-postgres trusts every role but this one, which must give its password.
    let right = format!("right{:016x}", getrandom::u64().unwrap());
    admin_execute(
        &admin,
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kuma_auth_test') THEN \
             CREATE ROLE kuma_auth_test LOGIN; \
           END IF; \
         END $$"
            .to_string(),
    )
    .await;
    admin_execute(
        &admin,
        format!("ALTER ROLE kuma_auth_test PASSWORD '{right}'"),
    )
    .await;

    let wrong = "wrong-Pa55word-xyz";
    let (_, rest) = admin.split_once("://").unwrap();
    let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let url = format!("postgres://kuma_auth_test:{wrong}@{host_and_path}");
    match Store::open(&url).await {
        Ok(store) => {
            store.close().await;
            println!("skipped the wrong-password check: the server trusts kuma_auth_test");
        }
        Err(err) => {
            let err = err.to_string();
            println!("{err}");
            assert!(
                err.starts_with(&format!("cannot open `{}`: ", redact_url(&url))),
                "{err}"
            );
            assert!(err.contains("password authentication failed"), "{err}");
            assert!(!err.contains(wrong), "{err}");
            assert!(!err.contains(&right), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}

#[tokio::test]
async fn a_missing_postgres_database_is_one_clear_line() {
    let Some(admin) = postgres_admin_url("a_missing_postgres_database_is_one_clear_line") else {
        return;
    };
    let url = with_database(&admin, "kuma_test_does_not_exist");
    let err = Store::open(&url).await.unwrap_err().to_string();
    println!("{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

// ---- webhook sessions ------------------------------------------------------------

fn step<'a>(state: &'a str, reply: &'a str, finished: bool) -> SessionStep<'a> {
    SessionStep {
        state,
        reply,
        finished,
        at: at(0),
    }
}

async fn webhook_sessions_apply_each_step_once(store: Store, _url: String) {
    let new = NewCall {
        campaign: CAMPAIGN,
        caller: "c_at",
        channel: "africastalking",
        started_at: at(0),
        broadcast: None,
    };
    // The first request sent twice at once: one call, counted once.
    let first = step("{}", "<r1/>", false);
    let (a, b) = tokio::join!(
        store.start_webhook_call(&new, "africastalking", "S1", &first),
        store.start_webhook_call(&new, "africastalking", "S1", &first),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_some() != b.is_some(), "{a:?} {b:?}");
    let id = a.or(b).unwrap();
    assert_eq!(counts(&store, CountFilter::default()).await.calls, 1);
    // Another provider may use the same session id.
    assert!(
        store
            .start_webhook_call(&new, "twilio", "S1", &step("{}", "<t/>", false))
            .await
            .unwrap()
            .is_some()
    );
    let s = store
        .webhook_session("africastalking", "S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.call, s.seq, s.reply.as_str(), s.finished),
        (id, 1, "<r1/>", false)
    );
    // Step 1 applies once; the same step again is refused.
    assert!(
        store
            .advance_webhook_session(
                "africastalking",
                "S1",
                1,
                &step("{\"x\":1}", "<r2/>", false)
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_webhook_session("africastalking", "S1", 1, &step("{}", "<bad/>", false))
            .await
            .unwrap()
    );
    let s = store
        .webhook_session("africastalking", "S1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.seq, s.state.as_str(), s.reply.as_str()),
        (2, "{\"x\":1}", "<r2/>")
    );
    // Once finished, nothing more applies.
    assert!(
        store
            .advance_webhook_session("africastalking", "S1", 2, &step("{}", "<end/>", true))
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_webhook_session("africastalking", "S1", 3, &step("{}", "<more/>", false))
            .await
            .unwrap()
    );
    let s = store
        .webhook_session("africastalking", "S1")
        .await
        .unwrap()
        .unwrap();
    assert!(s.finished);
    assert_eq!(s.reply, "<end/>");
    // A call over at its first request (the campaign hangs up at once) is
    // stored finished: no step applies.
    let over = store
        .start_webhook_call(&new, "twilio", "S2", &step("{}", "<hangup/>", true))
        .await
        .unwrap()
        .unwrap();
    let s = store
        .webhook_session("twilio", "S2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.call, s.seq, s.finished), (over, 1, true));
    assert!(
        !store
            .advance_webhook_session("twilio", "S2", 1, &step("{}", "<more/>", false))
            .await
            .unwrap()
    );
    assert!(
        store
            .webhook_session("africastalking", "nope")
            .await
            .unwrap()
            .is_none()
    );
}

async fn provider_recordings_are_kept_until_fetched(store: Store, _url: String) {
    let id = call(&store, "c_1", at(0), None).await;
    let f = store
        .add_recording_fetch(
            id,
            "leave_message",
            "https://media.example/r1",
            "twilio",
            at(1),
        )
        .await
        .unwrap();
    let pending = store.pending_fetches().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].campaign, CAMPAIGN);
    assert_eq!(pending[0].url, "https://media.example/r1");
    store
        .fetch_failed(f, "HTTP 404", false, at(2))
        .await
        .unwrap();
    let pending = store.pending_fetches().await.unwrap();
    assert_eq!(pending[0].attempts, 1);
    let one = store.pending_fetch(f).await.unwrap().unwrap();
    assert_eq!(
        (one.id, one.attempts, one.url.as_str()),
        (f, 1, "https://media.example/r1")
    );
    assert!(store.recordings(CAMPAIGN).await.unwrap().is_empty());
    let rid = store
        .fetch_done(
            f,
            "leave_message",
            "/data/r1.wav",
            Duration::from_millis(2500),
            at(3),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(store.pending_fetches().await.unwrap().is_empty());
    assert!(store.pending_fetch(f).await.unwrap().is_none());
    assert_eq!(
        store.fetch_status(f).await.unwrap().as_deref(),
        Some("done")
    );
    let recs = store.recordings(CAMPAIGN).await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].id, recs[0].duration),
        (rid, Duration::from_millis(2500))
    );
    // Done is done: a second completion stores nothing.
    assert_eq!(
        store
            .fetch_done(f, "leave_message", "/data/r1.wav", Duration::ZERO, at(4))
            .await
            .unwrap(),
        None
    );
    // A fetch that gives up is no longer pending, but its row stays.
    let g = store
        .add_recording_fetch(
            id,
            "leave_message",
            "https://media.example/r2",
            "twilio",
            at(5),
        )
        .await
        .unwrap();
    store
        .fetch_failed(g, "HTTP 500", true, at(6))
        .await
        .unwrap();
    assert!(store.pending_fetches().await.unwrap().is_empty());
    assert_eq!(
        store.fetch_status(g).await.unwrap().as_deref(),
        Some("failed")
    );
}

/// `kuma secret rotate`: every stored pseudonym and sealed number re-keyed in one
/// transaction; a caller keeps one pseudonym; the old secret is refused.
async fn secret_rotation_rekeys_callers_and_sealed_numbers_at_once(store: Store, _url: String) {
    const OLD: &[u8] = b"the first secret, 16+ bytes";
    const NEW: &[u8] = b"the second secret, 16+ bytes";
    let number = "+22376123456";
    let keys = store.keys(OLD).await.unwrap();
    let caller = keys.pseudonyms.pseudonym(number);
    let id = call(&store, &caller, at(0), None).await;
    answer(&store, id, "q_offered_work", "yes", at(1), None).await;
    let sealed = keys.sealer.seal(number, &caller).unwrap();
    assert!(
        store
            .callbacks()
            .subscribe(CAMPAIGN, &caller, &sealed, 10, at(1))
            .await
            .unwrap()
    );
    let missed = kuma::store::NewCallback {
        campaign: CAMPAIGN,
        caller: &caller,
        sealed: &sealed,
        at: at(2),
        due: at(3),
    };
    let (_, queued) = store
        .callbacks()
        .queue(&missed, &kuma::outbound::Policy::default())
        .await
        .unwrap();
    assert_eq!(queued, Ok(()));

    let done = store.rotate_secret(OLD, NEW).await.unwrap();
    assert_eq!((done.pseudonyms, done.numbers), (1, 2));
    assert!(store.keys(OLD).await.is_err(), "the old secret is refused");
    let keys = store.keys(NEW).await.unwrap();
    let now = keys.pseudonyms.pseudonym(number);
    assert_ne!(now, caller);
    let rows = export(&store, CountFilter::default()).await;
    assert_eq!(rows.len(), 1);
    assert!(rows.iter().all(|r| r.caller == now), "{rows:?}");
    let claimed = store
        .callbacks()
        .claim("w", at(4), at(4))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.caller, now);
    let opened = keys
        .sealer
        .open(claimed.sealed.as_deref().unwrap(), &now)
        .unwrap();
    assert_eq!(opened, number);
    assert!(
        store
            .callbacks()
            .unsubscribe(CAMPAIGN, &now, at(5))
            .await
            .unwrap()
    );
}

/// `[callback] country_code` (`Store::join_numbers`, as `kuma serve` starts):
/// national and international spellings of a number become one pseudonym;
/// subscribers and waiting call-backs keep their history, a listener kept
/// under both spellings becomes one, and the database remembers the code.
async fn a_country_code_joins_spellings_and_carries_subscribers_over_with_their_history(
    store: Store,
    _url: String,
) {
    const SECRET: &[u8] = b"the station's secret, 16+ bytes";
    const OTHER: &str = "other-campaign";
    let (national, international, alone) = ("76123456", "+22376123456", "066999999");
    let keys = store.keys(SECRET).await.unwrap();
    // One listener subscribed under both spellings, one under a national
    // spelling alone, each with an answered call.
    let mut minute = 0;
    let mut subscribe = async |number: &str, campaign: &str| {
        let caller = keys.pseudonyms.pseudonym(number);
        let sealed = keys.sealer.seal(number, &caller).unwrap();
        let cb = store.callbacks();
        assert!(
            cb.subscribe(campaign, &caller, &sealed, 10, at(minute))
                .await
                .unwrap()
        );
        let id = call(&store, &caller, at(minute), None).await;
        answer(&store, id, "q_offered_work", "yes", at(minute + 1), None).await;
        minute += 2;
        caller
    };
    let was_national = subscribe(national, CAMPAIGN).await;
    subscribe(international, CAMPAIGN).await;
    let was_alone = subscribe(alone, OTHER).await;
    let b = at(10);
    let policy = kuma::outbound::Policy::default();
    let cb = store.callbacks();
    assert_eq!(
        cb.queue_broadcast(CAMPAIGN, b, b, b, &policy)
            .await
            .unwrap(),
        2
    );

    let (keys, joined) = store.join_numbers(keys, Some("223"), false).await.unwrap();
    let joined = joined.expect("the country code changed");
    assert_eq!((joined.was, joined.now.as_deref()), (None, Some("223")));
    assert_eq!(joined.callers, 2, "the two national spellings");
    assert_eq!(
        joined.merged, 2,
        "one subscription and one call-back were twice"
    );
    assert!(joined.had_calls);

    // Every spelling is one listener now, with their history.
    let listener = keys.pseudonyms.pseudonym(national);
    assert_eq!(listener, keys.pseudonyms.pseudonym(international));
    assert_ne!(listener, was_national);
    assert_eq!(
        store.callbacks().subscriber_count(CAMPAIGN).await.unwrap(),
        1
    );
    let alone_now = keys.pseudonyms.pseudonym(alone);
    assert_ne!(alone_now, was_alone);
    let mut callers: Vec<String> = export(&store, CountFilter::default())
        .await
        .into_iter()
        .map(|r| r.caller)
        .collect();
    callers.sort();
    let mut expected = vec![listener.clone(), listener.clone(), alone_now];
    expected.sort();
    assert_eq!(callers, expected);
    // One call-back left for the broadcast, its number sealed to the new
    // pseudonym.
    let claimed = cb.claim("w", b, b).await.unwrap().unwrap();
    assert_eq!(claimed.caller, listener);
    let number = keys
        .sealer
        .open(claimed.sealed.as_deref().unwrap(), &listener)
        .unwrap();
    assert!(number == international || number == national, "{number}");
    assert!(cb.claim("w", b, b).await.unwrap().is_none());
    // Unsubscribing under the other spelling ends it.
    let unsubscribe = async |campaign: &str, number: &str| {
        let caller = keys.pseudonyms.pseudonym(number);
        store
            .callbacks()
            .unsubscribe(campaign, &caller, at(20))
            .await
            .unwrap()
    };
    assert!(unsubscribe(CAMPAIGN, international).await);
    assert!(unsubscribe(OTHER, "+22366999999").await);

    // The database remembers: the keys come back joined, joining again changes
    // nothing, and a station that drops the code gets numbers as written.
    let keys = store.keys(SECRET).await.unwrap();
    assert_eq!(keys.pseudonyms.country(), Some("223"));
    let (keys, again) = store.join_numbers(keys, Some("+223"), false).await.unwrap();
    assert_eq!(again, None);
    assert_eq!(keys.pseudonyms.pseudonym(national), listener);
    // Another code, or none, only when asked: a node whose settings lost the
    // code would make other pseudonyms than its neighbours.
    let refused = store.join_numbers(keys.clone(), None, false).await;
    assert!(
        matches!(&refused, Err(StoreError::Secret(m)) if m.contains("--change-country-code")),
        "{refused:?}"
    );
    let refused = store.join_numbers(keys.clone(), Some("224"), false).await;
    assert!(refused.is_err(), "{refused:?}");
    let (keys, dropped) = store.join_numbers(keys, None, true).await.unwrap();
    assert_eq!(dropped.map(|j| j.now), Some(None));
    assert_eq!(keys.pseudonyms.pseudonym(national), was_national);
    assert_eq!(store.keys(SECRET).await.unwrap().pseudonyms.country(), None);
    // From none, setting a code needs no flag (the upgrade, a new station).
    let (_, set) = store.join_numbers(keys, Some("223"), false).await.unwrap();
    assert!(set.is_some());
}

/// A call's burst of writes in one transaction (`Store::apply_all`, as `kuma
/// serve` stores an answer and the next node) stores and counts exactly what
/// the same writes store one by one; a batch with a write the store refuses
/// stores none of them (the shell then writes them one by one); a batch with
/// a write that is never batched is left to the caller.
async fn a_batch_of_writes_stores_what_they_store_one_by_one_or_nothing(
    store: Store,
    _url: String,
) {
    let ops = |call: CallRow| {
        vec![
            WriteOp::Visit {
                call,
                node: "lang".into(),
            },
            WriteOp::Language {
                call,
                language: "fr".into(),
            },
            WriteOp::Visit {
                call,
                node: "q_a".into(),
            },
            WriteOp::Answer {
                call,
                question: "q_a".into(),
                choice: "yes".into(),
                digit: "1".into(),
                at: at(1),
                broadcast: None,
            },
            WriteOp::Answer {
                call,
                question: "q_b".into(),
                choice: "no".into(),
                digit: "2".into(),
                at: at(2),
                broadcast: None,
            },
            // The last answer counts, within a batch too.
            WriteOp::Answer {
                call,
                question: "q_a".into(),
                choice: "no".into(),
                digit: "2".into(),
                at: at(3),
                broadcast: None,
            },
            WriteOp::Completed { call },
            WriteOp::End {
                call,
                at: at(4),
                outcome: "caller_hangup".into(),
                last_node: Some("q_a".into()),
            },
        ]
    };
    let alone = call(&store, "c_alone", at(0), None).await;
    for op in ops(alone) {
        op.apply(&store).await.unwrap();
    }
    let once = counts(&store, CountFilter::default()).await;
    let funnel_once = store
        .funnel(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();

    let batched = call(&store, "c_batch", at(0), None).await;
    store.apply_all(ops(batched)).await.unwrap();
    let twice = counts(&store, CountFilter::default()).await;
    let funnel_twice = store
        .funnel(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!((twice.calls, twice.completed), (2, 2));
    assert_eq!(twice.languages, [("fr".to_string(), 2)]);
    let doubled: Vec<_> = once
        .answers
        .iter()
        .map(|c| choice(&c.question, &c.choice, c.count * 2))
        .collect();
    assert_eq!(twice.answers, doubled);
    assert_eq!(
        twice.answers,
        [choice("q_a", "no", 2), choice("q_b", "no", 2)]
    );
    let doubled: Vec<_> = funnel_once
        .nodes
        .iter()
        .map(|(k, (r, h))| (k.clone(), (r * 2, h * 2)))
        .collect();
    assert_eq!(funnel_twice.nodes.into_iter().collect::<Vec<_>>(), doubled);
    let rows: Vec<_> = export(&store, CountFilter::default())
        .await
        .into_iter()
        .map(|r| (r.call, r.question, r.choice, r.answered_at))
        .collect();
    assert_eq!(
        rows.iter().filter(|r| r.0 == batched).count(),
        rows.iter().filter(|r| r.0 == alone).count()
    );

    // A refused write (an unknown call) undoes the whole batch.
    let third = call(&store, "c_third", at(0), None).await;
    let mut refused = ops(third);
    refused.push(WriteOp::Visit {
        call: 999_999,
        node: "lang".into(),
    });
    let n = refused.len();
    let back = store.apply_all(refused).await.unwrap_err();
    assert!(
        matches!(back.error, StoreError::UnknownCall(999_999)),
        "{back}"
    );
    assert_eq!(back.ops.len(), n, "the batch's writes come back");
    let after = counts(&store, CountFilter::default()).await;
    assert_eq!((after.calls, after.completed), (3, 2));
    assert_eq!(after.answers, twice.answers);
    let funnel = store
        .funnel(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!(funnel.nodes.get("lang"), Some(&(2, 0)));

    // A recording is never batched: nothing done, the caller applies each.
    let with_recording = vec![
        WriteOp::Visit {
            call: third,
            node: "lang".into(),
        },
        WriteOp::Recording {
            call: third,
            node: "msg".into(),
            file: "x.wav".into(),
            duration_ms: 1000,
            at: at(5),
        },
    ];
    let back = store.apply_all(with_recording.clone()).await.unwrap_err();
    assert!(matches!(back.error, StoreError::NotBatched), "{back}");
    assert_eq!(back.ops, with_recording);
    let funnel = store
        .funnel(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!(funnel.nodes.get("lang"), Some(&(2, 0)));
}

/// A call's write does not wait for the runtime of the task that made it: that
/// runtime paces hundreds of calls' audio, and a transaction whose every
/// statement waited for it held the write lock for seconds under load (issue
/// 16). Here the caller's runtime makes the write, then cannot run at all
/// (its only thread is blocked) until the answer is seen committed.
async fn a_write_goes_on_while_its_callers_runtime_is_stuck(store: Store, url: String) {
    let id = call(&store, "c_1", at(0), None).await;
    let reader = Store::open(&url).await.unwrap();
    let writer = store.clone();
    let stuck = Stuck::after_one_poll(move || async move {
        // The answer subscribes the caller to call-backs, as `subscribe` does.
        let subscribe = WriteOp::Subscribe {
            campaign: CAMPAIGN.into(),
            caller: "c_1".into(),
            sealed: "00ff".into(),
            at: at(1),
            limit: None,
        };
        tokio::join!(
            writer.apply_all(visit_and_answer(id)),
            subscribe.apply(&writer)
        )
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        // The raw counts: `counts` also compares them with a second read.
        let c = reader
            .counts(CAMPAIGN, &CountFilter::default())
            .await
            .unwrap();
        let subscribers = reader.callbacks().subscriber_count(CAMPAIGN).await.unwrap();
        if c.answers == vec![choice("q1", "yes", 1)] && subscribers == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the answer was not committed while its caller's runtime was stuck"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (batch, subscribed) = stuck.release().await;
    assert!(batch.is_ok(), "{batch:?}");
    assert!(subscribed.is_ok(), "{subscribed:?}");
    reader.close().await;
}

/// A webhook call's writes (its session claimed with the call, a step, a
/// recording to fetch) do not wait for the runtime of the request that made
/// them either: each provider request of a call reads and writes its session,
/// and those requests are served beside the SIP calls.
async fn a_webhook_step_goes_on_while_its_callers_runtime_is_stuck(store: Store, url: String) {
    let new = |caller| NewCall {
        campaign: CAMPAIGN,
        caller,
        channel: "twilio",
        started_at: at(0),
        broadcast: None,
    };
    let id = store
        .start_webhook_call(&new("c_1"), "twilio", "S1", &step("{}", "<r1/>", false))
        .await
        .unwrap()
        .unwrap();
    let reader = Store::open(&url).await.unwrap();
    let writer = store.clone();
    let stuck = Stuck::after_one_poll(move || async move {
        let second = new("c_2");
        let first = step("{}", "<r1/>", false);
        let next = step("{\"x\":1}", "<r2/>", false);
        let (started, advanced, fetch) = tokio::join!(
            writer.start_webhook_call(&second, "twilio", "S2", &first),
            writer.advance_webhook_session("twilio", "S1", 1, &next),
            writer.add_recording_fetch(id, "msg", "https://p.example/r.wav", "twilio", at(1)),
        );
        (started.map(|s| s.is_some()), advanced, fetch.map(|_| ()))
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s1 = reader.webhook_session("twilio", "S1").await.unwrap();
        let s2 = reader.webhook_session("twilio", "S2").await.unwrap();
        let fetches = reader.pending_fetches().await.unwrap();
        if s1.is_some_and(|s| s.seq == 2 && s.reply == "<r2/>")
            && s2.is_some()
            && fetches.len() == 1
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook writes were not committed while their caller's runtime was stuck"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (started, advanced, fetch) = stuck.release().await;
    assert!(matches!(started, Ok(true)), "{started:?}");
    assert!(matches!(advanced, Ok(true)), "{advanced:?}");
    assert!(fetch.is_ok(), "{fetch:?}");
    assert_eq!(counts(&reader, CountFilter::default()).await.calls, 2);
    reader.close().await;
}

/// A call's node `q1` and its answer `yes` there, as a call's burst.
fn visit_and_answer(id: CallRow) -> Vec<WriteOp> {
    vec![
        WriteOp::Visit {
            call: id,
            node: "q1".into(),
        },
        WriteOp::Answer {
            call: id,
            question: "q1".into(),
            choice: "yes".into(),
            digit: "1".into(),
            at: at(1),
            broadcast: None,
        },
    ]
}

/// A write made on a runtime of its own whose only thread, once the write was
/// polled (and so handed over), blocks until released.
struct Stuck<T> {
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<T>,
}

impl<T: Send + 'static> Stuck<T> {
    /// Starts the write `make` makes; returns once it was polled once.
    async fn after_one_poll<F>(make: impl FnOnce() -> F + Send + 'static) -> Stuck<T>
    where
        F: Future<Output = T>,
    {
        let (polled, handed_over) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let write = make();
                tokio::pin!(write);
                // One poll starts the write; then this runtime's only thread blocks.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let _ = write.as_mut().poll(&mut cx);
                polled.send(()).unwrap();
                released.recv().unwrap();
                write.await
            })
        });
        handed_over.await.unwrap();
        Stuck { release, thread }
    }

    /// Lets the runtime go on, and waits for the write's result.
    async fn release(self) -> T {
        self.release.send(()).unwrap();
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap()
    }
}

/// A call's burst of writes that cannot commit within the spool's deadline
/// (another process holds what it writes) comes back whole from the writer
/// thread, which had it moved to it, not copied, and goes to the spool; once
/// the database is free, the spool stores it, once.
async fn a_batch_given_up_comes_back_whole_and_is_spooled(store: Store, url: String) {
    use kuma::store::spool::{DIRECT_TIMEOUT, SpoolLimits, SpooledStore};
    let id = call(&store, "c_1", at(0), None).await;
    let ops = visit_and_answer(id);
    let dir = tempfile::tempdir().unwrap();
    let spooled = std::sync::Arc::new(
        SpooledStore::open(store.clone(), dir.path(), SpoolLimits::default()).unwrap(),
    );
    // Another process holds the database (SQLite) or the call's row (PostgreSQL).
    enum Holder {
        Sqlite(sqlx::SqliteConnection),
        Postgres(sqlx::PgConnection),
    }
    let holder = match store.backend() {
        "sqlite" => {
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("BEGIN IMMEDIATE")
                .execute(&mut c)
                .await
                .unwrap();
            Holder::Sqlite(c)
        }
        _ => {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut c).await.unwrap();
            sqlx::query("SELECT id FROM calls WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut c)
                .await
                .unwrap();
            Holder::Postgres(c)
        }
    };
    let started = std::time::Instant::now();
    let back = spooled.write_all(ops.clone()).await.unwrap_err();
    assert!(
        started.elapsed() >= DIRECT_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert!(back.error.is_unavailable(), "{back}");
    assert_eq!(back.ops, ops, "the batch comes back whole, in order");
    assert!(spooled.refuses_new_calls());
    for op in back.ops {
        spooled.write(op).await.unwrap();
    }
    assert_eq!(spooled.status().pending, 2);
    match holder {
        Holder::Sqlite(mut c) => {
            sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
        Holder::Postgres(mut c) => {
            sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
            c.close().await.unwrap();
        }
    }
    let replay = tokio::spawn({
        let spooled = std::sync::Arc::clone(&spooled);
        async move { spooled.replay().await }
    });
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while spooled.status().pending > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replay.abort();
    assert_eq!(spooled.status().pending, 0);
    let c = counts(&store, CountFilter::default()).await;
    assert_eq!(c.answers, [choice("q1", "yes", 1)]);
    let funnel = store
        .funnel(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!(funnel.nodes.get("q1"), Some(&(1, 0)));
}

/// `kuma forget`: a listener who asks to be forgotten leaves no row under
/// their pseudonym (calls with their answers, nodes and voice messages,
/// call-backs with their attempts, subscriptions), but for a call in progress;
/// another listener keeps everything, and the counts already read stay.
async fn a_forgotten_listener_leaves_no_row_and_the_counts_stay(store: Store, url: String) {
    use kuma::store::{Forgotten, NewCallback};
    let (gone, kept) = ("c_gone", "c_kept");
    let mut files = Vec::new();
    for caller in [gone, kept] {
        let id = call(&store, caller, at(0), None).await;
        files.push(format!(
            "data/recordings/{CAMPAIGN}/2025-03-04/{id}-191000-message.wav"
        ));
        answer(&store, id, "q_offered_work", "yes", at(1), None).await;
        answer(&store, id, "q_know_signs", "no", at(1), None).await;
        store.visit_node(id, "goodbye").await.unwrap();
        store
            .add_recording(&NewRecording {
                call: id,
                node: "message",
                file: files.last().unwrap(),
                duration: Duration::from_secs(3),
                at: at(2),
            })
            .await
            .unwrap();
        end_at(&store, id, at(3), "completed", Some("goodbye")).await;
        let cb = store.callbacks();
        assert!(
            cb.subscribe(CAMPAIGN, caller, b"sealed", 10, at(4))
                .await
                .unwrap()
        );
        let missed = NewCallback {
            campaign: CAMPAIGN,
            caller,
            sealed: b"sealed",
            at: at(5),
            due: at(5),
        };
        let (_, queued) = cb
            .queue(&missed, &kuma::outbound::Policy::default())
            .await
            .unwrap();
        assert_eq!(queued, Ok(()));
    }
    // A call of theirs in progress (no outcome yet), started a minute ago.
    let now = Utc::now();
    let live = call(&store, gone, now - TimeDelta::minutes(1), None).await;
    let before = store
        .counts(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();

    let erased = store.forget(&[gone.to_owned()], now).await.unwrap();
    let gone_file = files[0].clone();
    assert_eq!(
        erased,
        [Forgotten {
            caller: gone.into(),
            calls: 1,
            answers: 2,
            recordings: vec![gone_file],
            callbacks: 1,
            subscriptions: 1,
            in_progress: 1,
        }]
    );
    let rows = |table: &'static str| {
        let url = url.clone();
        async move {
            let sql = format!("SELECT caller FROM {table} ORDER BY caller");
            if url.starts_with("sqlite") {
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                let r: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                r
            } else {
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                let r: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                r
            }
        }
    };
    // Only the call in progress is left of them.
    assert_eq!(rows("calls").await, [gone, kept]);
    assert_eq!(rows("subscribers").await, [kept]);
    assert_eq!(rows("callbacks").await, [kept]);
    let recordings = store.recordings(CAMPAIGN).await.unwrap();
    let callers: Vec<&str> = recordings.iter().map(|r| r.caller.as_str()).collect();
    assert_eq!(callers, [kept]);
    let after = store
        .counts(CAMPAIGN, &CountFilter::default())
        .await
        .unwrap();
    assert_eq!(after, before, "the counts stay");
    // Once their call has ended, forgetting them again takes it too.
    end_at(&store, live, now, "hangup", None).await;
    let again = store.forget(&[gone.to_owned()], now).await.unwrap();
    assert_eq!((again[0].calls, again[0].in_progress), (1, 0));
    assert_eq!(rows("calls").await, [kept]);
}
