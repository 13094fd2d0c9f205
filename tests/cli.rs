//! The `kuma` program as a broadcaster and an analyst use it: the real binary, the
//! example campaign, a real database (SQLite in a temporary folder, and PostgreSQL
//! when `KUMA_TEST_POSTGRES_URL` is set).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{count, repo, write_wav_8k};
use serde_json::Value;

const CAMPAIGN: &str = "stop-trafficking-mali";
/// Inside the poll window of the Tuesday 1 December 2026 broadcast (19:00 Bamako).
const DURING_BROADCAST: &str = "2026-12-01T19:30";

/// A kuma with its own data folder and database.
struct Kuma {
    dir: tempfile::TempDir,
    database: String,
}

impl Kuma {
    fn sqlite() -> Kuma {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("data/kuma.db").display());
        Kuma { dir, database }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs kuma with the example campaigns folder.
    fn run(&self, args: &[&str]) -> Output {
        self.run_in(&repo().join("campaigns"), args)
    }

    fn run_in(&self, campaigns: &Path, args: &[&str]) -> Output {
        self.run_configured(campaigns, args, None)
    }

    /// `run_in` with the station's settings file `KUMA_CONFIG` names.
    fn run_configured(&self, campaigns: &Path, args: &[&str], config: Option<&Path>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kuma"));
        if let Some(config) = config {
            cmd.env("KUMA_CONFIG", config);
        } else {
            cmd.env_remove("KUMA_CONFIG");
        }
        cmd.args(args)
            .arg("--campaigns")
            .arg(campaigns)
            .arg("--database")
            .arg(&self.database)
            .arg("--data")
            .arg(self.data())
            .env_remove("KUMA_SECRET")
            .env_remove("KUMA_DATABASE_URL")
            .env_remove("KUMA_CAMPAIGNS")
            .env_remove("KUMA_TRUNKS")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kuma {args:?} failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// A call through the whole poll from `number`; the pseudonym it was
    /// stored under, as `kuma call` prints it.
    fn poll_from(&self, number: &str) -> String {
        let out = self.ok(&call_args(POLL, number));
        let line = out.lines().find(|l| l.contains("as caller ")).unwrap();
        line.rsplit("as caller ").next().unwrap().trim().to_owned()
    }

    /// Runs kuma with `input` on its standard input (how numbers are given).
    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(args)
            .args(["--database", &self.database, "--data"])
            .arg(self.data())
            .env_remove("KUMA_SECRET")
            .env_remove("KUMA_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn results(&self, extra: &[&str]) -> Value {
        let mut args = vec!["results", CAMPAIGN, "--format", "json"];
        args.extend(extra);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with exactly one line of error that contains `part`.
fn fails_with(o: &Output, part: &str) {
    assert!(!o.status.success(), "should fail: {}", stdout(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line of error, got:\n{err}");
    assert!(err.contains(part), "`{err}` should contain `{part}`");
    assert!(!err.contains("panicked"), "{err}");
}

/// French, the poll, every question answered, then goodbye.
const POLL: &str = "2 2 1 2 1 1 3 0";

/// `kuma call` of the example campaign in the broadcast's poll window, from
/// `number`, pressing `keys`.
fn call_args<'a>(keys: &'a str, number: &'a str) -> [&'a str; 8] {
    [
        "call",
        CAMPAIGN,
        "--digits",
        keys,
        "--at",
        DURING_BROADCAST,
        "--caller",
        number,
    ]
}

#[test]
fn check_prints_the_campaign_and_its_next_broadcasts_in_words() {
    let k = Kuma::sqlite();
    let out = k.ok(&["check", "--at", "2026-11-28T12:00"]);
    assert!(
        out.contains("stop-trafficking-mali: Stop human trafficking (Mali) — ok"),
        "{out}"
    );
    assert!(out.contains("languages: bm, fr, snk"), "{out}");
    assert!(out.contains("q_gender"), "{out}");
    assert!(
        out.contains("Tuesday 1 December 2026 at 19:00 (Africa/Bamako)"),
        "{out}"
    );
    assert!(
        out.contains("Saturday 5 December 2026 at 08:30 (Africa/Bamako)"),
        "{out}"
    );
    assert!(
        out.contains("poll: open now, for the broadcast of Saturday 28 November 2026 at 08:30"),
        "{out}"
    );
    // The example has a call-back number, and no kuma.toml names a trunk here.
    assert!(
        out.contains("warning: call-backs are off: no `trunks` configured"),
        "{out}"
    );
    assert!(!k.data().exists(), "check writes nothing");
}

#[test]
fn check_reports_every_problem_as_file_line_and_exits_1() {
    let k = Kuma::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("campaigns/stop-trafficking-mali.toml"))
        .unwrap()
        .replace("../audio", &format!("{}/audio", repo().display()))
        .replace("timeout = \"6s\"", "timout = \"6s\"")
        .replace("next = \"q_gender\"", "next = \"q_gendre\"");
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, text).unwrap();
    let out = k.run_in(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    let prefix = format!("{}:", file.display());
    assert!(lines.iter().all(|l| l.starts_with(&prefix)), "{err}");
    assert!(
        err.contains("unknown key `timout` in [defaults]; did you mean `timeout`?"),
        "{err}"
    );
    assert!(
        err.contains("no node has id `q_gendre` (did you mean `q_gender`?)"),
        "{err}"
    );
    assert!(stdout(&out).contains("0 campaigns ok, 1 with problems"));
}

/// A campaign with absurd durations and empty lists: `FILE:LINE` errors from
/// `kuma check`, and `kuma serve` starts with the other campaigns.
#[test]
fn absurd_durations_and_empty_lists_are_file_line_errors_and_serve_goes_on() {
    let k = Kuma::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo().join("campaigns/stop-trafficking-mali.toml"))
        .unwrap()
        .replace("../audio", &format!("{}/audio", repo().display()));
    std::fs::write(dir.path().join("stop-trafficking-mali.toml"), &example).unwrap();
    let absurd = example
        .replace("numbers = [\"2000\"]", "numbers = [\"3000\"]")
        .replace("callback_numbers = [\"2001\"]", "callback_numbers = []")
        .replace("timeout = \"6s\"", "timeout = \"60h\"")
        .replace("poll_window = \"48h\"", "poll_window = \"3650d\"")
        .replace("from = \"2026-11-01\"", "from = \"2206-11-01\"");
    let file = dir.path().join("absurd.toml");
    std::fs::write(&file, &absurd).unwrap();
    let line_of = |needle: &str| absurd.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let out = k.run_in(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for (needle, says) in [
        ("callback_numbers = []", "is an empty list"),
        ("timeout = \"60h\"", "longer than the most allowed, 10m"),
        (
            "poll_window = \"3650d\"",
            "longer than the most allowed, 31d",
        ),
        ("from = \"2206-11-01\"", "too far in the past or the future"),
    ] {
        let at = format!("{}:{}: ", file.display(), line_of(needle));
        assert!(
            err.lines().any(|l| l.starts_with(&at) && l.contains(says)),
            "{at} {says}:\n{err}"
        );
    }
    assert!(
        stdout(&out).contains("1 campaigns ok, 1 with problems")
            || stdout(&out).contains("1 campaign ok, 1 with problems"),
        "{}",
        stdout(&out)
    );

    let mut server = common::Server::start_in(dir.path(), &[]);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(log.contains("absurd.toml:"), "{log}");
    assert!(matches!(server.child.try_wait(), Ok(None)), "{log}");
}

#[test]
fn a_call_saves_each_answer_and_results_count_them() {
    let k = Kuma::sqlite();
    let out = k.ok(&call_args(POLL, "+223 70 12 34 56"));
    assert!(out.contains("▶ fr/q_gender"), "{out}");
    assert!(
        out.contains("✔ answer saved: q_gender = woman (key 1)"),
        "{out}"
    );
    assert!(out.contains("ended: completed (5 answers saved)"), "{out}");
    assert!(
        !out.contains("70 12 34 56") && !out.contains("70123456"),
        "the number never shows"
    );
    let r = k.results(&[]);
    assert_eq!(r["campaign"], CAMPAIGN);
    assert_eq!(r["calls"], 1);
    assert_eq!(r["completed"], 1);
    assert_eq!(r["languages"]["fr"], 1);
    assert_eq!(r["languages"]["bm"], 0, "every language shown");
    assert_eq!(count(&r, "q_offered_work", "yes"), 1);
    assert_eq!(count(&r, "q_offered_work", "no"), 0, "zero counts shown");
    assert_eq!(count(&r, "q_region", "koulikoro"), 1);
    let ids: Vec<&str> = r["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "q_offered_work",
            "q_know_signs",
            "q_would_report",
            "q_gender",
            "q_region"
        ],
        "file order"
    );
    // The answers export names the caller by pseudonym only.
    let csv = k.ok(&["results", CAMPAIGN, "--format", "csv"]);
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",c_"), "{csv}");
    assert!(!csv.contains("70123456"));
    let table = k.ok(&["results", CAMPAIGN]);
    assert!(table.contains("calls: 1   completed: 1 (100%)"), "{table}");
}

#[test]
fn a_caller_who_hangs_up_keeps_the_answers_given() {
    let k = Kuma::sqlite();
    // Answers two questions, then the keys run out: the caller hangs up.
    let out = k.ok(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 2 1 2",
        "--at",
        DURING_BROADCAST,
    ]);
    assert!(
        out.contains("ended: caller_hangup (2 answers saved)"),
        "{out}"
    );
    let r = k.results(&[]);
    assert_eq!(r["completed"], 0);
    assert_eq!(count(&r, "q_know_signs", "no"), 1);
}

#[test]
fn outside_the_poll_window_questions_lead_to_poll_closed() {
    let k = Kuma::sqlite();
    let out = k.ok(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 2 0",
        "--at",
        "2026-12-04T12:00",
    ]);
    assert!(out.contains("poll closed now"), "{out}");
    assert!(out.contains("[poll_closed] message"), "{out}");
    assert!(!out.contains("answer saved"), "{out}");
}

#[test]
fn silence_and_invalid_keys_replay_the_prompt_then_on_fail() {
    let k = Kuma::sqlite();
    let out = k.ok(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 _ 9 _",
        "--at",
        DURING_BROADCAST,
    ]);
    assert!(out.contains("▶ fr/no_input"), "{out}");
    assert!(out.contains("▶ fr/invalid"), "{out}");
    assert!(
        out.contains("[goodbye] hangup"),
        "on_fail of the menu: {out}"
    );
    assert!(out.contains("ended: completed"), "{out}");
}

#[test]
fn the_helpline_and_the_message_nodes() {
    let k = Kuma::sqlite();
    let out = k.ok(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 4",
        "--at",
        DURING_BROADCAST,
    ]);
    assert!(
        out.contains("☎ transferring to sip:helpline@helpline.invalid"),
        "{out}"
    );
    assert!(out.contains("ended: transferred"), "{out}");
    let out = k.ok(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 4 0",
        "--transfer-fails",
        "--at",
        DURING_BROADCAST,
    ]);
    assert!(out.contains("[helpline_unavailable] message"), "{out}");
    let out = k.ok(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 3 0",
        "--at",
        DURING_BROADCAST,
    ]);
    assert!(out.contains("● beep, recording up to 2m"), "{out}");
    assert!(out.contains("[message_thanks] message"), "{out}");
}

#[test]
fn keys_typed_at_the_terminal_drive_the_call() {
    let k = Kuma::sqlite();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(["call", CAMPAIGN, "--at", DURING_BROADCAST, "--campaigns"])
        .arg(repo().join("campaigns"))
        .args(["--database", &k.database, "--data"])
        .arg(k.data())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    // "2" picks French, "21" goes to the poll and answers yes, an empty line is
    // silence, "x" is not a key (said, then asked again), "q" hangs up.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"2\n21\n\nx\nq\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("✔ answer saved: q_offered_work = yes (key 1)"),
        "{text}"
    );
    assert!(text.contains("(silence until the timeout)"), "{text}");
    assert!(stderr(&out).contains("not keys: \"x\""), "{}", stderr(&out));
    assert!(
        text.contains("ended: caller_hangup (1 answer saved)"),
        "{text}"
    );
}

#[test]
fn simulate_fills_the_database_reproducibly() {
    let a = Kuma::sqlite();
    let b = Kuma::sqlite();
    let args = [
        "simulate",
        CAMPAIGN,
        "--calls",
        "60",
        "--concurrency",
        "4",
        "--seed",
        "7",
        "--at",
        "2026-12-05T12:00",
    ];
    let out = a.ok(&args);
    assert!(out.contains("simulated 60 calls"), "{out}");
    assert!(
        out.contains("calls/s") && out.contains("answers/s"),
        "{out}"
    );
    b.ok(&args);
    // Same seed, same listeners: the same results (pseudonym secrets differ,
    // counts do not).
    let (ra, rb) = (a.results(&[]), b.results(&[]));
    assert_eq!(ra["calls"], 60);
    assert_eq!(ra["questions"], rb["questions"]);
    assert_eq!(ra["languages"], rb["languages"]);
    let answered: u64 = ra["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["answered"].as_u64().unwrap())
        .sum();
    assert!(answered > 0);
    let broadcasts = ra["broadcasts"].as_array().unwrap();
    assert!(broadcasts.len() >= 2, "{ra}");
}

/// A campaigns folder with the example campaign whose `q_would_report` asks to
/// be called after each broadcast (`subscribe = "yes"`).
fn subscribe_campaigns(dir: &Path) -> PathBuf {
    let example = repo().join("campaigns").join(format!("{CAMPAIGN}.toml"));
    let text = std::fs::read_to_string(example).unwrap();
    let audio = repo().join("audio").join(CAMPAIGN);
    let text = text
        .replacen(
            &format!("audio = \"../audio/{CAMPAIGN}\""),
            &format!("audio = {:?}", audio.display().to_string()),
            1,
        )
        .replacen(
            "choices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }\nnext = \"q_gender\"",
            "choices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }\nsubscribe = \"yes\"\nnext = \"q_gender\"",
            1,
        );
    assert!(
        text.contains("subscribe = \"yes\""),
        "the example changed: {text}"
    );
    let campaigns = dir.join("campaigns");
    std::fs::create_dir_all(&campaigns).unwrap();
    std::fs::write(campaigns.join(format!("{CAMPAIGN}.toml")), text).unwrap();
    campaigns
}

/// The campaign's subscribers, read from the database.
fn subscribers(k: &Kuma) -> u64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = kuma::store::Store::open(&k.database).await.unwrap();
        let n = store.callbacks().subscriber_count(CAMPAIGN).await.unwrap();
        store.close().await;
        n
    })
}

#[test]
fn simulated_callers_subscribe_and_unsubscribe_as_over_sip() {
    let k = Kuma::sqlite();
    let campaigns = subscribe_campaigns(k.dir.path());
    let call = |keys: &str, number: &str| {
        let out = k.run_in(&campaigns, &call_args(keys, number));
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    // "Yes" to q_would_report: the number is kept (sealed), never shown.
    let out = call(POLL, "+223 76 12 34 56");
    assert!(
        out.contains("✔ answer saved: q_would_report = yes (key 1)"),
        "{out}"
    );
    assert!(out.contains("✔ subscribed"), "{out}");
    assert!(!out.contains("76123456") && !out.contains("76 12 34 56"));
    assert_eq!(subscribers(&k), 1);
    // "No" the next time: erased.
    let out = call("2 2 1 2 2 1 3 0", "+22376123456");
    assert!(out.contains("unsubscribed"), "{out}");
    assert_eq!(subscribers(&k), 0);
    // A caller ID kuma could not call back is not kept.
    let out = call(POLL, "simulator");
    assert!(!out.contains("subscribed"), "{out}");
    assert_eq!(subscribers(&k), 0);

    // Random listeners: some answer yes and are kept, one row per listener.
    let out = k.run_in(
        &campaigns,
        &[
            "simulate",
            CAMPAIGN,
            "--calls",
            "80",
            "--seed",
            "3",
            "--at",
            "2026-12-05T12:00",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let kept = subscribers(&k);
    assert!((1..=40).contains(&kept), "{kept} subscribers");

    // The station's `[callback]` rules apply, as in `kuma serve`: with the
    // campaign at its subscriber limit, a new listener's "yes" is not kept.
    let config = k.dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!("[callback]\nsubscribers_per_campaign = {kept}\n"),
    )
    .unwrap();
    let args = call_args(POLL, "+223 76 55 44 33");
    let out = k.run_configured(&campaigns, &args, Some(&config));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(subscribers(&k), kept);
    // A settings file that does not load is one clear error.
    std::fs::write(&config, "[callback]\nsubscribers_per_campaign = \"many\"\n").unwrap();
    let out = k.run_configured(&campaigns, &args, Some(&config));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("station.toml:2"), "{}", stderr(&out));
}

#[test]
fn results_by_a_question_per_broadcast_and_over_a_time_range() {
    let k = Kuma::sqlite();
    k.ok(&["call", CAMPAIGN, "--digits", POLL, "--at", DURING_BROADCAST]);
    // A man from Kayes, answering "no" to the first question, at the next broadcast.
    k.ok(&[
        "call",
        CAMPAIGN,
        "--digits",
        "2 2 2 1 1 2 2 0",
        "--at",
        "2026-12-05T09:00",
    ]);
    let r = k.results(&["--by", "q_gender"]);
    assert_eq!(r["by"]["id"], "q_gender");
    let first = &r["questions"][0]["choices"];
    assert_eq!(first[0]["id"], "yes");
    assert_eq!(first[0]["by"]["woman"], 1);
    assert_eq!(first[0]["by"]["man"], 0);
    assert_eq!(first[1]["by"]["man"], 1);
    let gender = &r["questions"][3]["choices"];
    assert_eq!(
        gender[0]["by"]["woman"], 1,
        "a question by itself is its diagonal"
    );

    let first_broadcast = k.results(&["--broadcast", "1"]);
    assert_eq!(first_broadcast["calls"], 1);
    assert_eq!(count(&first_broadcast, "q_offered_work", "yes"), 1);
    assert_eq!(count(&first_broadcast, "q_offered_work", "no"), 0);
    let by_day = k.results(&["--broadcast", "2026-12-05"]);
    assert_eq!(count(&by_day, "q_offered_work", "no"), 1);
    assert_eq!(by_day["calls"], 1);

    let range = k.results(&["--since", "2026-12-05", "--until", "2026-12-06"]);
    assert_eq!(range["calls"], 1);
    assert_eq!(count(&range, "q_region", "kayes"), 1);
    assert_eq!(count(&range, "q_region", "koulikoro"), 0);
    let table = k.ok(&["results", CAMPAIGN, "--by", "q_gender"]);
    assert!(table.contains("woman") && table.contains("man"), "{table}");
}

#[test]
fn bad_input_gets_one_clear_line_and_writes_nothing() {
    let k = Kuma::sqlite();
    fails_with(
        &k.run(&["call", "no-such-campaign", "--digits", "1"]),
        "unknown campaign `no-such-campaign` (campaigns in",
    );
    fails_with(
        &k.run(&["call", CAMPAIGN, "--digits", "1 x 2"]),
        "`x` (character 3) is not a key",
    );
    fails_with(
        &k.run(&["call", CAMPAIGN, "--digits", "1", "--at", "next tuesday"]),
        "bad --at",
    );
    let db = k.dir.path().join("data/kuma.db");
    assert!(!db.exists(), "nothing written half-way");
    // What reads the database kuma serve writes does not make an empty one
    // (which would read as "no calls yet"), nor a secret of its own.
    for args in [
        &["results", CAMPAIGN][..],
        &["callbacks"],
        &["token", "list"],
        &["forget", "c_0123456789abcdef0123456789abcdef"],
    ] {
        fails_with(&k.run(args), "no database at `sqlite://");
    }
    fails_with(
        &k.run_with_input(&["secret", "pseudonym"], "+22370123456\n"),
        "run it in kuma serve's working folder, or name that database with --database",
    );
    assert!(!k.data().exists(), "no database, no secret made");
    k.ok(&call_args(POLL, "+22370123456"));
    let elsewhere = k.dir.path().join("elsewhere");
    let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(["secret", "pseudonym", "--database", &k.database, "--data"])
        .arg(&elsewhere)
        .env_remove("KUMA_SECRET")
        .output()
        .unwrap();
    fails_with(&out, "give kuma serve's data folder with --data");
    assert!(!elsewhere.exists(), "no stray secret");
    fails_with(
        &k.run(&["results", CAMPAIGN, "--by", "q_colour"]),
        "`q_colour` is not a question of this campaign",
    );
    fails_with(
        &k.run(&["results", CAMPAIGN, "--broadcast", "7"]),
        "broadcast 7 has no calls yet",
    );
    fails_with(
        &k.run(&["results", CAMPAIGN, "--broadcast", "Tuesday"]),
        "neither a broadcast number",
    );
    fails_with(
        &k.run(&["results", CAMPAIGN, "--since", "yesterday"]),
        "bad --since",
    );
    assert_eq!(k.results(&[])["calls"], 1, "nothing written half-way");
}

#[test]
fn a_bad_database_url_is_one_line_without_the_password() {
    let k = Kuma::sqlite();
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["results", CAMPAIGN, "--campaigns"])
            .arg(repo().join("campaigns"))
            .args(["--database", url, "--data"])
            .arg(k.data())
            .output()
            .unwrap()
    };
    fails_with(
        &run("mysql://root:hunter2@localhost/kuma"),
        "unsupported database URL",
    );
    // A port nothing listens on, found at run time.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(&format!("postgres://kuma:hunter2@127.0.0.1:{port}/kuma"));
    fails_with(&out, &format!("postgres://kuma:***@127.0.0.1:{port}/kuma"));
    assert!(!stderr(&out).contains("hunter2"));
}

#[test]
fn a_data_folder_that_cannot_be_written_is_one_clear_line() {
    let k = Kuma::sqlite();
    // A folder cannot be made under a regular file, even by root.
    let blocker = k.dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"").unwrap();
    let db = format!("sqlite://{}/kuma.db", blocker.join("data").display());
    let out = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .args(["call", CAMPAIGN, "--digits", POLL, "--campaigns"])
        .arg(repo().join("campaigns"))
        .args(["--database", &db, "--data"])
        .arg(blocker.join("data"))
        .output()
        .unwrap();
    fails_with(&out, "cannot");
    assert!(stderr(&out).contains("not-a-folder"), "{}", stderr(&out));
}

#[test]
fn the_same_commands_work_on_postgresql() {
    let Some(admin) = common::postgres_admin_url() else {
        return;
    };
    let name = format!("kuma_cli_{}", std::process::id());
    let psql = |sql: &str| {
        let out = Command::new("psql")
            .arg(&admin)
            .args(["-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    psql(&format!("DROP DATABASE IF EXISTS {name}"));
    psql(&format!("CREATE DATABASE {name}"));
    let base = admin.rsplit_once('/').unwrap().0;
    let mut k = Kuma::sqlite();
    k.database = format!("{base}/{name}");
    k.ok(&["call", CAMPAIGN, "--digits", POLL, "--at", DURING_BROADCAST]);
    let out = k.ok(&[
        "simulate",
        CAMPAIGN,
        "--calls",
        "40",
        "--concurrency",
        "8",
        "--at",
        "2026-12-05T12:00",
    ]);
    assert!(out.contains("postgres database"), "{out}");
    let r = k.results(&["--by", "q_region"]);
    assert_eq!(r["calls"], 41);
    assert!(count(&r, "q_region", "koulikoro") >= 1);
    let csv = k.ok(&["results", CAMPAIGN, "--format", "csv"]);
    let answered: u64 = r["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["answered"].as_u64().unwrap())
        .sum();
    assert_eq!(
        csv.lines().count() as u64,
        answered + 1,
        "one CSV row per counted answer"
    );
    psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
}

#[test]
fn audio_dtmf_prints_the_keys_heard_as_tones() {
    use kuma::audio::dtmf::generate::{silence, tone};
    let k = Kuma::sqlite();
    let mut pcm = silence(300, 8000);
    for key in ['1', '9', '#', '*', '0'] {
        pcm.extend(tone(key, 80, -12.0, -12.0, 0.0, 8000).unwrap());
        pcm.extend(silence(100, 8000));
    }
    // As a WAV at 8 kHz, and as headerless µ-law.
    let wav = k.dir.path().join("keys.wav");
    write_wav_8k(&wav, &pcm);
    let out = k.ok(&["audio", "dtmf", wav.to_str().unwrap()]);
    let keys: Vec<&str> = out.lines().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(keys, ["1", "9", "#", "*", "0"], "{out}");
    assert!(out.starts_with("0.3"), "start times in seconds: {out}");
    let raw = k.dir.path().join("keys.ulaw");
    std::fs::write(&raw, kuma::audio::g711::ulaw_encode(&pcm)).unwrap();
    let out = k.ok(&["audio", "dtmf", raw.to_str().unwrap(), "--raw-ulaw"]);
    assert_eq!(out.lines().count(), 5, "{out}");
    let bad = k.run(&["audio", "dtmf", "/nonexistent.wav"]);
    fails_with(&bad, "/nonexistent.wav");
}

/// A key the detector holds back before reporting it (3 dB under a talker, over
/// a sung voice: the table's tape, seed 14) when the file ends while it is held
/// back: still printed, with its start.
#[test]
fn audio_dtmf_prints_a_key_held_back_at_the_end_of_the_file() {
    let tape = kuma::audio::dtmf::table::speech_tape(3.0, 200, 14);
    // From 4,000 samples before the press at 98,400 (on a half block of the
    // tape's, so that the detector's windows are the tape's) to 20 ms after the
    // steady path heard it, before the 38 ms it is held back for are over.
    let pcm = &tape.samples[94_350..98_900];
    let k = Kuma::sqlite();
    let wav = k.dir.path().join("held.wav");
    write_wav_8k(&wav, pcm);
    let out = k.ok(&["audio", "dtmf", wav.to_str().unwrap()]);
    assert_eq!(out, "0.50\t8\n");
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `kuma check | head -c 1`: the reader goes away after one byte, long before
    // kuma has checked the audio and printed the rest.
    use std::io::Read;
    use std::process::Stdio;
    let k = Kuma::sqlite();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kuma"))
        .arg("check")
        .arg("--campaigns")
        .arg(repo().join("campaigns"))
        .arg("--database")
        .arg(&k.database)
        .arg("--data")
        .arg(k.data())
        .env_remove("KUMA_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's read end is closed here, as `head` closes it.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// A kuma started on a database with another secret stops with one line,
/// instead of giving every caller a new pseudonym.
#[test]
fn a_different_secret_stops_kuma_serve_with_one_line() {
    let k = Kuma::sqlite();
    common::prepared_data(&k.data());
    let serve = |secret: &str| {
        let (stderr, log) = common::stderr_log(k.dir.path());
        let child = Command::new(env!("CARGO_BIN_EXE_kuma"))
            .args(["serve", "--sip", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--rtp-ports", "20000-59999", "--campaigns"])
            .arg(repo().join("campaigns"))
            .args(["--database", &k.database, "--data"])
            .arg(k.data())
            .env("KUMA_SECRET", secret)
            .env_remove("KUMA_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        (child, log)
    };
    let (mut first, log) = serve("the first secret, long enough");
    common::serve_addresses(&mut first, &log);
    first.kill().unwrap();
    first.wait().unwrap();
    let (second, log) = serve("another secret, long enough too");
    let out = second.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = std::fs::read_to_string(&log).unwrap();
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kuma: this database was written with another secret"),
        "{err}"
    );
    // The first secret still works.
    let (mut again, log) = serve("the first secret, long enough");
    common::serve_addresses(&mut again, &log);
    again.kill().unwrap();
    again.wait().unwrap();
}

/// `kuma secret pseudonym`: the pseudonym of each number read from standard
/// input, as calls from it are stored (for `[callback] blocked`); a line that
/// is not a number gives `-` and exit code 1, and is never echoed.
#[test]
fn secret_pseudonym_gives_the_pseudonym_calls_are_stored_under() {
    let k = Kuma::sqlite();
    let stored = k.poll_from("+22370123456");
    let out = k.run_with_input(
        &["secret", "pseudonym"],
        "+223 70 12 34 56\n\nnot a number 987654\n0022370123456\n",
    );
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [stored.clone(), "-".into(), stored],
        "{}",
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("987654"), "{}", stderr(&out));
}

/// `kuma forget`: a listener who asks the station to forget them, named by
/// their number (on standard input) or their pseudonym, leaves no call,
/// answer or voice message behind; the results already read stay the same.
#[test]
fn forget_erases_a_listener_by_number_or_pseudonym() {
    let k = Kuma::sqlite();
    let gone = k.poll_from("+22370123456");
    let kept = k.poll_from("+22376000000");
    // A voice message of theirs, where kuma serve keeps them.
    let file = k.data().join(format!(
        "recordings/{CAMPAIGN}/2026-12-01/1-193000-message.wav"
    ));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    write_wav_8k(&file, &[0; 800]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let callers = || -> Vec<String> {
        rt.block_on(async {
            let pool = sqlx::SqlitePool::connect(&k.database).await.unwrap();
            let rows = sqlx::query_scalar("SELECT caller FROM calls ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
            pool.close().await;
            rows
        })
    };
    rt.block_on(async {
        let store = kuma::store::Store::open(&k.database).await.unwrap();
        store
            .add_recording(&kuma::store::NewRecording {
                call: 1,
                node: "message",
                file: &file.display().to_string(),
                duration: std::time::Duration::from_millis(100),
                at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        store.close().await;
    });
    assert_eq!(callers(), [gone.clone(), kept.clone()]);
    let before = k.results(&[]);

    let out = k.run_with_input(
        &["forget", "--numbers"],
        "+223 70 12 34 56\nnot a number 987654\n",
    );
    assert_eq!(
        stdout(&out),
        format!("kuma forget: {gone}: 1 call (5 answers, 1 voice message) erased\n"),
        "{}",
        stderr(&out)
    );
    // The line that is not a number: exit code 1, and never shown.
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("1 line(s) were not phone numbers"));
    assert!(!stderr(&out).contains("987654"), "{}", stderr(&out));
    assert!(!file.exists(), "the voice message's file is removed");
    assert_eq!(callers(), std::slice::from_ref(&kept));
    assert_eq!(k.results(&[]), before, "the counts stay");

    let out = k.ok(&["forget", &kept, &gone]);
    assert_eq!(
        out,
        format!(
            "kuma forget: {kept}: 1 call (5 answers, 0 voice messages) erased\n\
             kuma forget: {gone}: nothing kept\n"
        )
    );
    assert!(callers().is_empty());
    fails_with(&k.run(&["forget", "c_nope"]), "is not a pseudonym");
    fails_with(&k.run(&["forget"]), "name the listeners to forget");
}

/// `kuma secret rotate` re-keys every pseudonym in one go: a caller keeps one
/// pseudonym across the rotation, the old secret is refused, and the drawn
/// secret replaces the old one in the data folder.
#[test]
fn secret_rotate_rekeys_callers_and_refuses_the_old_secret() {
    let k = Kuma::sqlite();
    let call = || k.poll_from("+223 70 12 34 56");
    let before = call();
    let secret = k.data().join("secret");
    let old = std::fs::read_to_string(&secret).unwrap();
    let out = k.ok(&["secret", "rotate"]);
    assert!(
        out.contains("1 pseudonyms re-keyed and 0 sealed numbers sealed again"),
        "{out}"
    );
    let new = std::fs::read_to_string(&secret).unwrap();
    assert_ne!(old, new, "a new secret in {}", secret.display());
    assert!(!k.data().join("secret.new").exists());
    let after = call();
    assert_ne!(after, before, "pseudonyms are re-keyed");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let callers: Vec<(String, i64)> = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&k.database).await.unwrap();
        let rows = sqlx::query_as("SELECT caller, COUNT(*) FROM calls GROUP BY caller")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    });
    assert_eq!(
        callers,
        [(after.clone(), 2)],
        "both calls are the same caller's"
    );
    // The old secret (a leaked KUMA_SECRET, an old backup) is refused.
    std::fs::write(&secret, &old).unwrap();
    let refused = k.run(&["call", CAMPAIGN, "--digits", POLL, "--at", DURING_BROADCAST]);
    fails_with(&refused, "another secret");
    // A rotation stopped between the database and the file (the new secret still
    // in secret.new) is finished by running the command again.
    std::fs::write(k.data().join("secret.new"), &new).unwrap();
    let out = k.ok(&["secret", "rotate"]);
    assert!(out.contains("finished an interrupted rotation"), "{out}");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), new);
    assert_eq!(call(), after);
}
