//! Every rule of the campaign format page, and the line each mistake is reported on.

use super::fixture::Fixture;
use super::*;

const GOOD: &str = r#"title = "Test"
languages = ["bm", "fr"]
audio = "../audio/t"
numbers = ["2000"]

[schedule]
timezone = "Africa/Bamako"
broadcasts = ["0 0 19 * * Tue"]
poll_window = "48h"
closed = "closed"

[defaults]
timeout = "6s"
retries = 2
invalid = "invalid"
no_input = "no_input"

[[node]]
id = "welcome"
kind = "language"
prompt = "choose_language"
next = "menu"

[[node]]
id = "menu"
kind = "menu"
prompt = "main_menu"
options = { "1" = "story", "2" = "q", "3" = "rec", "4" = "help", "0" = "bye" }
on_fail = "bye"

[[node]]
id = "story"
kind = "message"
prompt = ["intro", "story"]
next = "menu"

[[node]]
id = "q"
kind = "question"
prompt = "q"
choices = { "1" = "yes", "2" = "no", "3" = "not_sure" }
next = "bye"
on_fail = "bye"

[[node]]
id = "closed"
kind = "message"
prompt = "closed"
next = "menu"

[[node]]
id = "rec"
kind = "record"
prompt = "rec"
max = "2m"
next = "menu"

[[node]]
id = "help"
kind = "transfer"
prompt = "connecting"
to = "tel:+22300000000"
on_fail = "menu"

[[node]]
id = "bye"
kind = "hangup"
prompt = "goodbye"
"#;

/// Loads `text` and returns its problems as `LINE: message` (file name dropped).
fn problems(text: &str) -> Vec<String> {
    let fx = Fixture::new("t", text);
    match fx.load() {
        Ok(_) => vec![],
        Err(diags) => diags
            .iter()
            .map(|d| {
                let shown = d.to_string();
                let file = fx.file.display().to_string();
                assert!(shown.starts_with(&file), "{shown} names the file");
                shown[file.len() + 1..].to_string()
            })
            .collect(),
    }
}

/// Asserts some problem is on `line` and its message contains every `parts`.
fn has_problem(text: &str, line: usize, parts: &[&str]) {
    let p = problems(text);
    let found = p
        .iter()
        .any(|m| m.starts_with(&format!("{line}: ")) && parts.iter().all(|part| m.contains(part)));
    assert!(
        found,
        "expected a problem on line {line} with {parts:?}, got {p:#?}"
    );
}

/// Asserts exactly one problem, on `line`, whose message contains every `parts`.
fn one_problem(text: &str, line: usize, parts: &[&str]) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
    assert!(
        p[0].starts_with(&format!("{line}: ")),
        "expected line {line}: {}",
        p[0]
    );
    for part in parts {
        assert!(p[0].contains(part), "`{}` should contain `{part}`", p[0]);
    }
}

#[test]
fn the_good_campaign_loads_with_everything_in_place() {
    let fx = Fixture::new("t", GOOD);
    let c = fx.campaign();
    assert_eq!(c.id, "t");
    assert_eq!(c.start, "welcome");
    assert_eq!(c.languages, ["bm", "fr"]);
    let q: Vec<_> = c
        .questions()
        .map(|(n, ch)| (n.id.clone(), ch.len()))
        .collect();
    assert_eq!(q, [("q".to_string(), 3)]);
    let menu = c.node("menu").unwrap();
    match &menu.kind {
        NodeKind::Menu { options, .. } => {
            let digits: String = options.iter().map(|o| o.digit).collect();
            assert_eq!(digits, "12340", "file order kept");
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(menu.input.timeout, std::time::Duration::from_secs(6));
    assert_eq!(menu.input.invalid.as_deref(), Some("invalid"));
    assert!(c.recording("fr", "goodbye").is_some());
}

#[test]
fn the_example_campaign_is_valid() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("campaigns/stop-trafficking-mali.toml");
    let c = load_campaign(&file).unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(c.questions().count() >= 4);
    assert!(c.languages.len() >= 3);
    for kind in [
        "language", "message", "menu", "question", "record", "transfer", "hangup",
    ] {
        assert!(
            c.nodes.iter().any(|n| n.kind.name() == kind),
            "the example has a {kind} node"
        );
    }
}

#[test]
fn node_settings_override_defaults() {
    let text = GOOD.replace(
        "id = \"q\"\nkind = \"question\"",
        "id = \"q\"\nkind = \"question\"\ntimeout = \"10s\"\nretries = 0\nbargein = false\nrepeat = \"#\"",
    );
    let fx = Fixture::new("t", &text);
    let c = fx.campaign();
    let q = c.node("q").unwrap();
    assert_eq!(q.input.timeout, std::time::Duration::from_secs(10));
    assert_eq!(q.input.retries, 0);
    assert!(!q.input.bargein);
    assert_eq!(q.input.repeat, Some('#'));
    assert_eq!(
        q.input.invalid.as_deref(),
        Some("invalid"),
        "the rest from [defaults]"
    );
}

#[test]
fn toml_syntax_errors_have_a_line() {
    let text = GOOD.replace(
        "next = \"menu\"\n\n[[node]]\nid = \"menu\"",
        "next = \"menu\n\n[[node]]\nid = \"menu\"",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("22: not valid TOML"), "{}", p[0]);
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    one_problem(
        &GOOD.replace("timeout = \"6s\"", "timout = \"6s\""),
        13,
        &["unknown key `timout`", "did you mean `timeout`?"],
    );
    one_problem(
        &GOOD.replace("title = \"Test\"", "title = \"Test\"\ncolour = 1"),
        2,
        &["unknown key `colour`", "the campaign"],
    );
    one_problem(
        &GOOD.replace("poll_window", "pol_window"),
        9,
        &["unknown key `pol_window` in [schedule]", "poll_window"],
    );
    has_problem(
        &GOOD.replace("next = \"bye\"\non_fail", "nxt = \"bye\"\non_fail"),
        42,
        &["unknown key `nxt`", "did you mean `next`?"],
    );
}

#[test]
fn a_key_of_another_kind_says_which_kind_it_belongs_to() {
    let text = GOOD.replace("options = {", "choices = {");
    has_problem(
        &text,
        28,
        &["`choices` belongs to a question node, not a menu node"],
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    one_problem(
        &GOOD.replace("retries = 2", "retries = \"two\""),
        14,
        &["`retries` must be a whole number", "the text \"two\""],
    );
    one_problem(
        &GOOD.replace("languages = [\"bm\", \"fr\"]", "languages = \"bm\""),
        2,
        &["`languages` must be a list"],
    );
    one_problem(
        &GOOD.replace("title = \"Test\"", "title = 3"),
        1,
        &["`title` must be text in quotes, found the number 3"],
    );
    one_problem(
        &GOOD.replace("max = \"2m\"", "max = 120"),
        55,
        &["`max` must be text in quotes"],
    );
    one_problem(
        &GOOD.replace(
            "id = \"q\"\nkind = \"question\"",
            "id = \"q\"\nkind = \"question\"\nbargein = \"yes\"",
        ),
        40,
        &["`bargein` must be true or false"],
    );
}

#[test]
fn missing_required_keys_are_named() {
    one_problem(
        &GOOD.replace("title = \"Test\"\n", ""),
        1,
        &["missing `title`"],
    );
    one_problem(
        &GOOD.replace("audio = \"../audio/t\"\n", ""),
        1,
        &["missing `audio`"],
    );
    let p = problems(&GOOD.replace("languages = [\"bm\", \"fr\"]\n", ""));
    assert!(
        p.iter().any(|m| m.contains("missing `languages`")),
        "{p:#?}"
    );
    one_problem(
        &GOOD.replace("max = \"2m\"\n", ""),
        51,
        &["record node `rec` needs `max`"],
    );
    one_problem(
        &GOOD.replace("to = \"tel:+22300000000\"\n", ""),
        58,
        &["transfer node `help` needs `to`"],
    );
    one_problem(
        &GOOD.replace(
            "next = \"menu\"\n\n[[node]]\nid = \"rec\"",
            "\n[[node]]\nid = \"rec\"",
        ),
        45,
        &["message node `closed` needs `next`"],
    );
    one_problem(
        &GOOD.replace("prompt = \"goodbye\"\n", ""),
        65,
        &["node `bye` has no `prompt`"],
    );
    let no_nodes = &GOOD[..GOOD.find("[[node]]").unwrap()];
    let p = problems(no_nodes);
    assert!(p.iter().any(|m| m.contains("no [[node]]")), "{p:#?}");
}

#[test]
fn an_unknown_kind_is_named() {
    one_problem(
        &GOOD.replace("kind = \"hangup\"", "kind = \"hangpu\""),
        67,
        &["unknown kind `hangpu`", "did you mean `hangup`?"],
    );
}

#[test]
fn a_repeated_node_id_is_an_error() {
    let text = GOOD
        .replace("id = \"closed\"", "id = \"story\"")
        .replace("closed = \"closed\"", "closed = \"story\"");
    let p = problems(&text);
    assert!(
        p.iter().any(|m| m.starts_with("45: ")
            && m.contains("node id `story` is used twice (first at line 31)")),
        "{p:#?}"
    );
}

#[test]
fn references_to_missing_nodes_are_errors() {
    one_problem(
        &GOOD.replace("\"1\" = \"story\"", "\"1\" = \"stroy\""),
        28,
        &[
            "`options.\"1\"`",
            "no node has id `stroy`",
            "did you mean `story`?",
        ],
    );
    one_problem(
        &GOOD.replace("on_fail = \"menu\"", "on_fail = \"nowhere\""),
        63,
        &["node `help`: `on_fail`", "`nowhere`"],
    );
    one_problem(
        &GOOD.replace("title = \"Test\"", "title = \"Test\"\nstart = \"begin\""),
        2,
        &["`start`", "no node has id `begin`"],
    );
    one_problem(
        &GOOD.replace("closed = \"closed\"", "closed = \"shut\""),
        10,
        &["[schedule] `closed`", "`shut`"],
    );
    one_problem(
        &GOOD.replace("next = \"bye\"\non_fail", "next = \"by\"\non_fail"),
        42,
        &["`next`", "no node has id `by`"],
    );
}

#[test]
fn an_unreachable_node_is_an_error() {
    let text = GOOD.replace("\"1\" = \"story\", ", "");
    one_problem(
        &text,
        31,
        &["node `story` cannot be reached from the start node `welcome`"],
    );
}

#[test]
fn a_flow_without_a_way_to_a_hangup_node_is_an_error() {
    let text = GOOD
        .replace(", \"0\" = \"bye\"", "")
        .replace("on_fail = \"bye\"", "on_fail = \"menu\"")
        .replace("next = \"bye\"", "next = \"menu\"")
        .replace(
            "[[node]]\nid = \"bye\"\nkind = \"hangup\"\nprompt = \"goodbye\"\n",
            "",
        );
    let p = problems(&text);
    assert!(
        p.iter().any(|m| m.starts_with("18: ")
            && m.contains("no path leads from the start node `welcome` to a hangup node")),
        "{p:#?}"
    );
}

#[test]
fn digit_keys_must_be_single_keypad_digits() {
    one_problem(
        &GOOD.replace("\"3\" = \"not_sure\"", "\"10\" = \"not_sure\""),
        41,
        &["`10` is not a single keypad digit"],
    );
    one_problem(
        &GOOD.replace("\"0\" = \"bye\"", "\"#\" = \"bye\""),
        28,
        &["`#` is not a single keypad digit"],
    );
    one_problem(
        &GOOD.replace("options = { \"1\"", "options = { \"one\""),
        28,
        &["`one` is not a single keypad digit"],
    );
}

#[test]
fn a_missing_recording_names_the_prompt_the_language_and_the_file() {
    let fx = Fixture::new("t", GOOD);
    let audio = fx.file.parent().unwrap().parent().unwrap().join("audio/t");
    std::fs::remove_file(audio.join("fr/story.wav")).unwrap();
    let err = fx.load().unwrap_err();
    assert_eq!(err.len(), 1, "{err:#?}");
    let m = err[0].to_string();
    assert!(
        m.contains(":34: prompt `story` has no recording for language `fr`"),
        "{m}"
    );
    assert!(m.contains("fr/story.{wav,mp3,ogg,flac"), "{m}");
}

#[test]
fn a_missing_input_prompt_is_an_error_too() {
    let fx = Fixture::new("t", GOOD);
    let audio = fx.file.parent().unwrap().parent().unwrap().join("audio/t");
    std::fs::remove_file(audio.join("bm/no_input.wav")).unwrap();
    let err = fx.load().unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains(":16: prompt `no_input` has no recording for language `bm`"),
        "{err:#?}"
    );
}

#[test]
fn two_recordings_for_one_prompt_are_ambiguous() {
    let fx = Fixture::new("t", GOOD);
    let audio = fx.file.parent().unwrap().parent().unwrap().join("audio/t");
    std::fs::write(audio.join("fr/story.mp3"), b"").unwrap();
    let err = fx.load().unwrap_err();
    assert!(
        err[0]
            .to_string()
            .contains("several recordings for language `fr` (story.wav, story.mp3)"),
        "{err:#?}"
    );
}

#[test]
fn a_missing_audio_folder_is_an_error() {
    one_problem(
        &GOOD.replace("../audio/t", "../sounds/t"),
        3,
        &["`audio`: the folder", "does not exist"],
    );
}

#[test]
fn bad_cron_duration_date_and_zone_are_errors() {
    one_problem(
        &GOOD.replace("0 0 19 * * Tue", "0 19 * * Tue"),
        8,
        &["has 5 fields; expected 6"],
    );
    one_problem(
        &GOOD.replace("0 0 19 * * Tue", "0 0 25 * * Tue"),
        8,
        &["not a valid cron expression"],
    );
    one_problem(
        &GOOD.replace("\"48h\"", "\"2 days\""),
        9,
        &["`poll_window`", "has no unit"],
    );
    one_problem(
        &GOOD.replace("\"6s\"", "\"6\""),
        13,
        &["`timeout`", "has no unit"],
    );
    one_problem(
        &GOOD.replace("\"6s\"", "\"0s\""),
        13,
        &["`timeout` must be longer than zero"],
    );
    one_problem(
        &GOOD.replace("Africa/Bamako", "Africa/Bamakko"),
        7,
        &["`Africa/Bamakko` is not a time zone"],
    );
    one_problem(
        &GOOD.replace(
            "poll_window = \"48h\"",
            "poll_window = \"48h\"\nfrom = \"2026-13-01\"",
        ),
        10,
        &["`from`", "not a date; expected YYYY-MM-DD"],
    );
    one_problem(
        &GOOD.replace(
            "poll_window = \"48h\"",
            "poll_window = \"48h\"\nfrom = \"2026-12-01\"\nuntil = \"2026-11-01\"",
        ),
        6,
        &["`from` (2026-12-01) is after `until` (2026-11-01)"],
    );
}

#[test]
fn bare_toml_dates_are_accepted() {
    let text = GOOD.replace(
        "poll_window = \"48h\"",
        "poll_window = \"48h\"\nfrom = 2026-11-01\nuntil = 2027-03-31",
    );
    let fx = Fixture::new("t", &text);
    let c = fx.campaign();
    assert_eq!(c.schedule.unwrap().until.unwrap().to_string(), "2027-03-31");
}

#[test]
fn other_mistakes_a_broadcaster_can_make() {
    one_problem(
        &GOOD.replace("[\"bm\", \"fr\"]", "[\"bm\", \"bm\"]"),
        2,
        &["`bm` is listed twice"],
    );
    one_problem(
        &GOOD.replace("[\"bm\", \"fr\"]", "[]"),
        2,
        &["`languages` is empty"],
    );
    one_problem(
        &GOOD.replace("\"2\" = \"no\"", "\"2\" = \"yes\""),
        41,
        &["choice id `yes` is used for two digits"],
    );
    one_problem(
        &GOOD.replace(
            "id = \"menu\"\nkind = \"menu\"",
            "id = \"menu\"\nkind = \"menu\"\nrepeat = \"1\"",
        ),
        24,
        &["repeat key `1` is also one of its digits"],
    );
    one_problem(
        &GOOD
            .replace("repeat", "x")
            .replace("retries = 2", "retries = 2\nrepeat = \"x\""),
        15,
        &["`x` is not a key"],
    );
    one_problem(
        &GOOD.replace("tel:+22300000000", "22300000000"),
        62,
        &["neither a SIP URI"],
    );
    one_problem(
        &GOOD.replace("prompt = \"goodbye\"", "prompt = \"../goodbye\""),
        68,
        &["not a recording name"],
    );
    one_problem(
        &GOOD.replace("retries = 2", "retries = 99"),
        14,
        &["between 0 and 20"],
    );
}

#[test]
fn every_mistake_of_a_file_is_reported_at_once() {
    let text = GOOD
        .replace("timeout = \"6s\"", "timout = \"6s\"")
        .replace("kind = \"hangup\"", "kind = \"hangpu\"")
        .replace("title = 3", "");
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn a_folder_reports_numbers_claimed_twice_and_keeps_the_valid_campaigns() {
    let fx = Fixture::new("a", &GOOD.replace("../audio/t", "../audio/a"));
    let dir = fx.file.parent().unwrap();
    std::fs::write(dir.join("b.toml"), GOOD.replace("../audio/t", "../audio/a")).unwrap();
    std::fs::write(dir.join("c.toml"), "title = ").unwrap();
    let set = load_folder(dir);
    assert_eq!(
        set.campaigns
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(set.files.len(), 3);
    let p: Vec<String> = set.problems.iter().map(|d| d.to_string()).collect();
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].contains("b.toml: number `2000` already belongs to campaign `a`"),
        "{p:#?}"
    );
    assert!(p[1].contains("c.toml:1: not valid TOML"), "{p:#?}");
}

#[test]
fn a_missing_folder_is_one_clear_problem() {
    let set = load_folder(std::path::Path::new("/nonexistent/campaigns"));
    assert!(set.campaigns.is_empty());
    assert_eq!(set.problems.len(), 1);
    assert!(
        set.problems[0]
            .to_string()
            .starts_with("/nonexistent/campaigns: cannot read the campaigns folder")
    );
}

#[test]
fn callback_numbers_are_read_and_may_not_be_answered_numbers_too() {
    let fx = Fixture::new(
        "t",
        &GOOD.replace(
            "numbers = [\"2000\"]",
            "numbers = [\"2000\"]\ncallback_numbers = [\"2001\", \"2001\"]",
        ),
    );
    let c = fx.campaign();
    assert_eq!(c.callback_numbers, ["2001"]);
    one_problem(
        &GOOD.replace(
            "numbers = [\"2000\"]",
            "numbers = [\"2000\"]\ncallback_numbers = [\"2000\"]",
        ),
        5,
        &["`callback_numbers`: `2000` is also in `numbers`"],
    );
    one_problem(
        &GOOD.replace(
            "numbers = [\"2000\"]",
            "numbers = [\"2000\"]\ncallback_numbers = 2001",
        ),
        5,
        &["`callback_numbers`", "a list of texts"],
    );
}

#[test]
fn a_callback_number_of_one_campaign_is_no_other_campaigns_number() {
    let fx = Fixture::new("a", &GOOD.replace("../audio/t", "../audio/a"));
    let dir = fx.file.parent().unwrap();
    let b = GOOD.replace("../audio/t", "../audio/a").replace(
        "numbers = [\"2000\"]",
        "numbers = [\"3000\"]\ncallback_numbers = [\"2000\"]",
    );
    std::fs::write(dir.join("b.toml"), b).unwrap();
    let set = load_folder(dir);
    let p: Vec<String> = set.problems.iter().map(|d| d.to_string()).collect();
    assert!(
        p.iter()
            .any(|p| p.contains("b.toml: number `2000` already belongs to campaign `a`")),
        "{p:#?}"
    );
}

#[test]
fn a_question_may_subscribe_callers_with_one_of_its_choices() {
    let fx = Fixture::new(
        "t",
        &GOOD.replace(
            "choices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }",
            "choices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }\nsubscribe = \"yes\"",
        ),
    );
    let c = fx.campaign();
    let subscribe = c.questions().find_map(|(n, _)| match &n.kind {
        NodeKind::Question { subscribe, .. } => subscribe.clone(),
        _ => None,
    });
    assert_eq!(subscribe.as_deref(), Some("yes"));
    has_problem(
        &GOOD.replace(
            "choices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }",
            "choices = { \"1\" = \"yes\", \"2\" = \"no\", \"3\" = \"not_sure\" }\nsubscribe = \"oui\"",
        ),
        42,
        &["`subscribe` = `oui` is not one of this question's choices (yes, no, not_sure)"],
    );
}

/// Absurd durations, empty lists and far-away days are `FILE:LINE` errors.
#[test]
fn absurd_durations_empty_lists_and_far_days_are_refused() {
    let with = |from: &str, to: &str| {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    };
    one_problem(
        &with("timeout = \"6s\"", "timeout = \"60h\""),
        13,
        &["`timeout`", "`60h`", "longer than the most allowed, 10m"],
    );
    one_problem(
        &with("poll_window = \"48h\"", "poll_window = \"400d\""),
        9,
        &["`poll_window`", "31d"],
    );
    one_problem(&with("max = \"2m\"", "max = \"3h\""), 55, &["`max`", "1h"]);
    one_problem(
        &with("numbers = [\"2000\"]", "numbers = []"),
        4,
        &["`numbers` is an empty list"],
    );
    one_problem(
        &with("broadcasts = [\"0 0 19 * * Tue\"]", "broadcasts = []"),
        8,
        &["`broadcasts` is an empty list"],
    );
    one_problem(
        &with(
            "closed = \"closed\"",
            "closed = \"closed\"\nfrom = \"2206-12-01\"",
        ),
        11,
        &["`from`", "too far"],
    );
    one_problem(
        &with(
            "closed = \"closed\"",
            "closed = \"closed\"\nuntil = 1900-01-01",
        ),
        11,
        &["`until`", "too far"],
    );
    // A file with `node = []` and nothing else wrong: one problem, no panic.
    let head = GOOD.split("[[node]]").next().unwrap();
    let empty = format!("node = []\n{}", head.replace("closed = \"closed\"\n", ""));
    let p = problems(&empty);
    assert!(
        p.iter().any(|m| m.contains("`node` is an empty list")),
        "{p:#?}"
    );
}

#[test]
fn an_empty_node_list_without_start_is_a_problem_not_a_panic() {
    // Found reading the loader for issue 11: `nodes[0]` on `node = []` panicked.
    let text = "title = \"T\"\nlanguages = [\"fr\"]\naudio = \"../audio/t\"\nnumbers = [\"1\"]\n\
                node = []\n[defaults]\ntimeout = \"6s\"\n";
    has_problem(text, 5, &["`node` is an empty list"]);
}

#[test]
fn programmes_max_prompt_max_call_and_replay_default_and_load() {
    let c = Fixture::new("t", GOOD).campaign();
    assert_eq!(c.max_prompt, DEFAULT_MAX_PROMPT);
    assert_eq!(c.max_call, None);
    assert_eq!(c.replay, None, "no replay keys unless the campaign asks");

    let text = format!("max_prompt = \"20m\"\nmax_call = \"90m\"\n{GOOD}\n[replay]\n");
    let c = Fixture::new("t", &text).campaign();
    assert_eq!(c.max_prompt, Duration::from_secs(20 * 60));
    assert_eq!(c.max_call, Some(Duration::from_secs(90 * 60)));
    assert_eq!(c.replay, Some(Replay::default()));
    let d = Replay::default();
    assert_eq!((d.back, d.forward, d.pause, d.skip), ('4', '6', '5', '#'));
    assert_eq!(d.step, Duration::from_secs(10));

    let text = format!("{GOOD}\n[replay]\nback = \"1\"\nskip = \"0\"\nstep = \"30s\"\n");
    let r = Fixture::new("t", &text).campaign().replay.unwrap();
    assert_eq!((r.back, r.forward, r.pause, r.skip), ('1', '6', '5', '0'));
    assert_eq!(r.step, Duration::from_secs(30));
}

#[test]
fn bad_programme_settings_say_where_and_what() {
    let lines = GOOD.lines().count();
    one_problem(
        &format!("max_prompt = \"7h\"\n{GOOD}"),
        1,
        &["`max_prompt`", "longer than the most allowed"],
    );
    one_problem(&format!("max_call = \"soon\"\n{GOOD}"), 1, &["`max_call`"]);
    one_problem(
        &format!("{GOOD}\n[replay]\nback = \"x\"\n"),
        lines + 3,
        &["[replay] `back`", "`x` is not a key"],
    );
    one_problem(
        &format!("{GOOD}\n[replay]\nrewind = \"4\"\n"),
        lines + 3,
        &[
            "unknown key `rewind` in [replay]",
            "back, forward, pause, skip, step",
        ],
    );
    has_problem(
        &format!("{GOOD}\n[replay]\nforward = \"4\"\n"),
        lines + 2,
        &["`back` and `forward` are both the key `4`"],
    );
}

#[test]
fn paths_are_shown_from_the_campaigns_folder_never_from_the_server_root() {
    use std::path::Path;
    let folder = Path::new("/srv/kuma/campaigns");
    let shown = |p: &str| super::shown_path(Path::new(p), folder);
    assert_eq!(shown("/srv/kuma/campaigns/stop.toml"), "stop.toml");
    assert_eq!(
        shown("/srv/kuma/campaigns/../audio/stop/bm/q1.wav"),
        "../audio/stop/bm/q1.wav"
    );
    assert_eq!(
        shown("/srv/kuma/audio/stop/bm/q1.wav"),
        "../audio/stop/bm/q1.wav"
    );
    assert_eq!(shown("/mnt/prompts/stop/bm/q1.wav"), "stop/bm/q1.wav");
    // A relative campaigns folder, as `--campaigns campaigns` gives.
    let relative = Path::new("campaigns");
    assert_eq!(
        super::shown_path(Path::new("campaigns/../audio/stop/fr/a.wav"), relative),
        "../audio/stop/fr/a.wav"
    );
    let d = super::Diagnostic {
        file: folder.join("stop.toml"),
        line: 12,
        message: "`colour` is not a setting".into(),
    };
    assert_eq!(
        d.shown_from(folder),
        "stop.toml:12: `colour` is not a setting"
    );
}
