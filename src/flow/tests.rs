//! The engine driven with simulated time through every node kind and every way a
//! call can go wrong.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::campaign::Campaign;
use crate::campaign::fixture::Fixture;

const FLOW: &str = r#"
title = "Test"
languages = ["bm", "fr"]
audio = "../audio/t"

[defaults]
timeout = "5s"
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
options = { "1" = "story", "2" = "q1", "3" = "rec", "4" = "help", "5" = "help_nofail", "0" = "bye" }
on_fail = "bye"

[[node]]
id = "story"
kind = "message"
prompt = ["intro", "story"]
next = "menu"

[[node]]
id = "q1"
kind = "question"
prompt = "q1"
choices = { "1" = "yes", "2" = "no" }
next = "q2"
on_fail = "bye"

[[node]]
id = "q2"
kind = "question"
prompt = "q2"
choices = { "1" = "woman", "2" = "man" }
next = "menu"

[[node]]
id = "rec"
kind = "record"
prompt = "leave_message"
max = "1m"
next = "thanks"

[[node]]
id = "thanks"
kind = "message"
prompt = "thanks"
bargein = false
next = "menu"

[[node]]
id = "help"
kind = "transfer"
prompt = "connecting"
to = "sip:helpline@example.org"
on_fail = "sorry"

[[node]]
id = "help_nofail"
kind = "transfer"
prompt = "connecting"
to = "tel:+22300000000"

[[node]]
id = "sorry"
kind = "message"
prompt = "sorry"
next = "menu"

[[node]]
id = "bye"
kind = "hangup"
prompt = "goodbye"
"#;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T19:30:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A call under test: the campaign, the engine, and a simulated clock.
struct Sim {
    _fx: Fixture,
    c: Campaign,
    call: Call,
    now: DateTime<Utc>,
}

impl Sim {
    fn new(text: &str) -> Sim {
        Self::with_options(text, EngineOptions::default())
    }

    fn with_options(text: &str, options: EngineOptions) -> Sim {
        let fx = Fixture::new("t", text);
        let c = fx.campaign();
        Sim {
            _fx: fx,
            c,
            call: Call::new(options),
            now: t0(),
        }
    }

    /// A call that starts `secs` after the usual start time.
    fn later(text: &str, secs: i64) -> Sim {
        let mut s = Sim::new(text);
        s.advance(secs);
        s
    }

    fn send(&mut self, e: Event) -> Vec<Action> {
        self.call.handle(&self.c, e, self.now)
    }

    fn advance(&mut self, secs: i64) {
        self.now += chrono::Duration::seconds(secs);
    }

    /// Lets the silence run until the engine's deadline.
    fn wait_out(&mut self) -> Vec<Action> {
        self.now = self.call.next_deadline().expect("a deadline");
        self.send(Event::Timeout)
    }

    fn digit(&mut self, d: char) -> Vec<Action> {
        self.send(Event::Digit(d))
    }

    /// Answers, picks French, and lets the menu prompt play.
    fn at_menu(text: &str) -> Sim {
        Self::at_menu_after(text, 0)
    }

    fn at_menu_after(text: &str, secs: i64) -> Sim {
        let mut s = Sim::later(text, secs);
        s.send(Event::Answered);
        s.send(Event::PromptFinished);
        s.digit('2');
        s.send(Event::PromptFinished);
        assert_eq!(s.call.node(), Some("menu"));
        assert!(s.call.is_waiting_for_key());
        s
    }
}

fn p(language: &str, name: &str) -> Prompt {
    Prompt {
        language: language.into(),
        name: name.into(),
    }
}

fn played(actions: &[Action]) -> Vec<Prompt> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Play { prompts, .. } => Some(prompts.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn entered(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Enter { node } => Some(node.as_str()),
            _ => None,
        })
        .collect()
}

fn finished(actions: &[Action]) -> Option<Outcome> {
    actions.iter().find_map(|a| match a {
        Action::Finished { outcome, .. } => Some(*outcome),
        _ => None,
    })
}

#[test]
fn language_menu_plays_every_language_and_the_digit_picks_one() {
    let mut s = Sim::new(FLOW);
    let a = s.send(Event::Answered);
    assert_eq!(entered(&a), ["welcome"]);
    assert_eq!(
        played(&a),
        [p("bm", "choose_language"), p("fr", "choose_language")]
    );
    let a = s.send(Event::PromptFinished);
    assert_eq!(
        a,
        [Action::CollectDigits {
            until: t0() + Duration::from_secs(5)
        }]
    );
    let a = s.digit('2');
    assert_eq!(
        a[0],
        Action::SetLanguage {
            language: "fr".into()
        }
    );
    assert_eq!(entered(&a), ["menu"]);
    assert_eq!(played(&a), [p("fr", "main_menu")]);
    assert_eq!(s.call.language(), Some("fr"));
}

#[test]
fn language_menu_skipped_with_one_language() {
    let text = FLOW.replace(r#"languages = ["bm", "fr"]"#, r#"languages = ["fr"]"#);
    let mut s = Sim::new(&text);
    let a = s.send(Event::Answered);
    assert_eq!(
        a[0],
        Action::SetLanguage {
            language: "fr".into()
        }
    );
    assert_eq!(entered(&a), ["welcome", "menu"]);
    assert_eq!(played(&a), [p("fr", "main_menu")]);
}

#[test]
fn language_menu_invalid_digit_replays_the_menu_and_silence_falls_back_to_the_first_language() {
    let mut s = Sim::new(FLOW);
    s.send(Event::Answered);
    s.send(Event::PromptFinished);
    let a = s.digit('7');
    // No invalid prompt in a language the caller may not speak: just the menu again.
    assert_eq!(
        played(&a),
        [p("bm", "choose_language"), p("fr", "choose_language")]
    );
    s.send(Event::PromptFinished);
    s.wait_out();
    s.send(Event::PromptFinished);
    let a = s.wait_out();
    assert_eq!(
        a[0],
        Action::SetLanguage {
            language: "bm".into()
        }
    );
    assert_eq!(entered(&a), ["menu"]);
}

#[test]
fn message_plays_all_its_prompts_then_moves_on() {
    let mut s = Sim::at_menu(FLOW);
    let a = s.digit('1');
    assert_eq!(entered(&a), ["story"]);
    assert_eq!(played(&a), [p("fr", "intro"), p("fr", "story")]);
    let a = s.send(Event::PromptFinished);
    assert_eq!(entered(&a), ["menu"]);
}

#[test]
fn a_key_barges_into_a_message() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('1');
    let a = s.digit('9');
    assert_eq!(a[0], Action::StopPlayback);
    assert_eq!(entered(&a), ["menu"]);
}

#[test]
fn the_repeat_key_replays_a_message() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('1');
    let a = s.digit('*');
    assert_eq!(a[0], Action::StopPlayback);
    assert_eq!(played(&a), [p("fr", "intro"), p("fr", "story")]);
    assert_eq!(s.call.node(), Some("story"));
}

#[test]
fn without_bargein_keys_during_the_prompt_are_ignored() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('3');
    s.send(Event::PromptFinished);
    s.send(Event::RecordingFinished {
        duration: Duration::from_secs(3),
    });
    assert_eq!(s.call.node(), Some("thanks"));
    assert!(s.digit('1').is_empty());
    assert_eq!(s.call.node(), Some("thanks"));
    let a = s.send(Event::PromptFinished);
    assert_eq!(entered(&a), ["menu"]);
}

#[test]
fn a_key_during_a_menu_prompt_counts_as_the_choice() {
    let mut s = Sim::new(FLOW);
    s.send(Event::Answered);
    s.send(Event::PromptFinished);
    s.digit('2');
    let a = s.digit('1');
    assert_eq!(a[0], Action::StopPlayback);
    assert_eq!(entered(&a), ["story"]);
}

#[test]
fn menu_invalid_key_plays_the_invalid_prompt_then_the_menu_and_fails_after_retries() {
    let mut s = Sim::at_menu(FLOW);
    for _ in 0..2 {
        let a = s.digit('8');
        assert_eq!(played(&a), [p("fr", "invalid"), p("fr", "main_menu")]);
        s.send(Event::PromptFinished);
    }
    let a = s.digit('8');
    assert_eq!(entered(&a), ["bye"], "on_fail after retries");
}

#[test]
fn menu_silence_plays_the_no_input_prompt_and_fails_after_retries() {
    let mut s = Sim::at_menu(FLOW);
    let a = s.wait_out();
    assert_eq!(played(&a), [p("fr", "no_input"), p("fr", "main_menu")]);
    s.send(Event::PromptFinished);
    s.wait_out();
    s.send(Event::PromptFinished);
    let a = s.wait_out();
    assert_eq!(entered(&a), ["bye"]);
}

#[test]
fn menu_without_on_fail_ends_the_call_after_retries() {
    let text = FLOW.replace(
        "on_fail = \"bye\"\n\n[[node]]\nid = \"story\"",
        "\n[[node]]\nid = \"story\"",
    );
    let mut s = Sim::at_menu(&text);
    for _ in 0..2 {
        s.wait_out();
        s.send(Event::PromptFinished);
    }
    let a = s.wait_out();
    assert_eq!(a[0], Action::HangUp);
    assert_eq!(finished(&a), Some(Outcome::NoInput));
    assert!(s.call.is_ended());
}

#[test]
fn the_repeat_key_replays_a_menu_without_using_a_retry() {
    let mut s = Sim::at_menu(FLOW);
    for _ in 0..5 {
        let a = s.digit('*');
        assert_eq!(played(&a), [p("fr", "main_menu")]);
        s.send(Event::PromptFinished);
    }
    let a = s.digit('1');
    assert_eq!(entered(&a), ["story"]);
}

#[test]
fn a_question_stores_the_answer_at_once_and_moves_on() {
    let mut s = Sim::at_menu(FLOW);
    let a = s.digit('2');
    assert_eq!(entered(&a), ["q1"]);
    s.send(Event::PromptFinished);
    let a = s.digit('2');
    assert_eq!(
        a[0],
        Action::StoreAnswer {
            question: "q1".into(),
            choice: "no".into(),
            digit: '2',
            broadcast: None
        }
    );
    assert_eq!(entered(&a), ["q2"]);
}

#[test]
fn a_question_asked_again_stores_the_new_answer() {
    let mut s = Sim::at_menu(FLOW);
    let mut answers = Vec::new();
    for d in ['1', '2'] {
        s.digit('2');
        s.send(Event::PromptFinished);
        answers.extend(s.digit(d));
        s.send(Event::PromptFinished);
        s.digit('1');
        s.send(Event::PromptFinished);
    }
    let q1: Vec<&str> = answers
        .iter()
        .filter_map(|a| match a {
            Action::StoreAnswer {
                question, choice, ..
            } if question == "q1" => Some(choice.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(q1, ["yes", "no"]);
}

#[test]
fn an_unanswered_question_without_on_fail_is_skipped() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('2');
    s.send(Event::PromptFinished);
    s.digit('1');
    s.send(Event::PromptFinished);
    assert_eq!(s.call.node(), Some("q2"));
    for _ in 0..2 {
        s.wait_out();
        s.send(Event::PromptFinished);
    }
    let a = s.wait_out();
    assert_eq!(entered(&a), ["menu"]);
    assert!(!a.iter().any(|a| matches!(a, Action::StoreAnswer { .. })));
}

#[test]
fn an_unanswered_question_with_on_fail_goes_there() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('2');
    s.send(Event::PromptFinished);
    for _ in 0..2 {
        let a = s.digit('9');
        assert_eq!(played(&a), [p("fr", "invalid"), p("fr", "q1")]);
        s.send(Event::PromptFinished);
    }
    let a = s.digit('9');
    assert_eq!(entered(&a), ["bye"]);
}

fn scheduled(closed: bool) -> String {
    let (closed, node) = if closed {
        (
            "closed = \"closed_msg\"\n",
            "\n[[node]]\nid = \"closed_msg\"\nkind = \"message\"\nprompt = \"poll_closed\"\nnext = \"menu\"\n",
        )
    } else {
        ("", "")
    };
    FLOW.replacen(
        "[defaults]",
        &format!(
            "[schedule]\ntimezone = \"Africa/Bamako\"\nbroadcasts = [\"0 0 19 * * Tue\"]\npoll_window = \"2h\"\n{closed}\n[defaults]"
        ),
        1,
    ) + node
}

#[test]
fn answers_in_a_poll_window_are_attributed_to_its_broadcast() {
    let mut s = Sim::at_menu(&scheduled(true));
    s.digit('2');
    s.send(Event::PromptFinished);
    let a = s.digit('1');
    let broadcast = DateTime::parse_from_rfc3339("2026-12-01T19:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        a[0],
        Action::StoreAnswer {
            question: "q1".into(),
            choice: "yes".into(),
            digit: '1',
            broadcast: Some(broadcast)
        }
    );
}

#[test]
fn a_question_outside_every_poll_window_goes_to_closed() {
    let mut s = Sim::at_menu_after(&scheduled(true), 3 * 3600);
    let a = s.digit('2');
    assert_eq!(entered(&a), ["q1", "closed_msg"]);
    assert_eq!(played(&a), [p("fr", "poll_closed")]);
}

#[test]
fn a_closed_question_without_closed_node_moves_to_next() {
    let mut s = Sim::at_menu_after(&scheduled(false), 3 * 3600);
    let a = s.digit('2');
    // q1 and q2 are both closed; back to the menu.
    assert_eq!(entered(&a), ["q1", "q2", "menu"]);
}

#[test]
fn record_plays_the_prompt_then_records_and_hash_stops_it() {
    let mut s = Sim::at_menu(FLOW);
    let a = s.digit('3');
    assert_eq!(played(&a), [p("fr", "leave_message")]);
    let a = s.send(Event::PromptFinished);
    assert_eq!(
        a,
        [Action::Record {
            node: "rec".into(),
            max: Duration::from_secs(60),
            finish_on: '#'
        }]
    );
    assert!(s.call.is_recording());
    assert!(s.digit('5').is_empty());
    assert_eq!(s.digit('#'), [Action::StopRecording]);
    let a = s.send(Event::RecordingFinished {
        duration: Duration::from_secs(12),
    });
    assert_eq!(entered(&a), ["thanks"]);
}

#[test]
fn a_caller_who_hangs_up_while_recording_ends_the_call() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('3');
    s.send(Event::PromptFinished);
    s.send(Event::RecordingFinished {
        duration: Duration::from_secs(4),
    });
    let a = s.send(Event::HungUp);
    assert_eq!(
        a,
        [Action::Finished {
            outcome: Outcome::CallerHangup,
            last_node: Some("thanks".into())
        }]
    );
}

#[test]
fn transfer_connects_and_a_hang_up_then_counts_as_transferred() {
    let mut s = Sim::at_menu(FLOW);
    let a = s.digit('4');
    assert_eq!(played(&a), [p("fr", "connecting")]);
    let a = s.send(Event::PromptFinished);
    assert_eq!(
        a,
        [Action::Transfer {
            to: "sip:helpline@example.org".into()
        }]
    );
    // The helpline conversation is not cut by the maximum call length.
    assert_eq!(s.call.next_deadline(), None);
    s.advance(3600);
    assert!(s.send(Event::Timeout).is_empty());
    let a = s.send(Event::HungUp);
    assert_eq!(finished(&a), Some(Outcome::Transferred));
}

#[test]
fn a_failed_transfer_goes_to_on_fail() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('4');
    s.send(Event::PromptFinished);
    let a = s.send(Event::TransferFailed);
    assert_eq!(entered(&a), ["sorry"]);
}

#[test]
fn a_failed_transfer_without_on_fail_ends_the_call() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('5');
    s.send(Event::PromptFinished);
    let a = s.send(Event::TransferFailed);
    assert_eq!(a[0], Action::HangUp);
    assert_eq!(finished(&a), Some(Outcome::TransferFailed));
}

#[test]
fn hangup_node_completes_the_call_plays_goodbye_and_hangs_up() {
    let mut s = Sim::at_menu(FLOW);
    let a = s.digit('0');
    assert_eq!(entered(&a), ["bye"]);
    assert!(a.contains(&Action::Completed));
    assert_eq!(played(&a), [p("fr", "goodbye")]);
    assert!(s.call.is_completed());
    let a = s.send(Event::PromptFinished);
    assert_eq!(
        a,
        [
            Action::HangUp,
            Action::Finished {
                outcome: Outcome::Completed,
                last_node: Some("bye".into())
            }
        ]
    );
}

#[test]
fn a_caller_who_hangs_up_during_goodbye_still_completed() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('0');
    let a = s.send(Event::HungUp);
    assert_eq!(finished(&a), Some(Outcome::Completed));
}

#[test]
fn a_caller_who_hangs_up_mid_call_is_reported_without_hanging_up_again() {
    let mut s = Sim::at_menu(FLOW);
    let a = s.send(Event::HungUp);
    assert_eq!(
        a,
        [Action::Finished {
            outcome: Outcome::CallerHangup,
            last_node: Some("menu".into())
        }]
    );
    assert!(
        s.send(Event::Digit('1')).is_empty(),
        "nothing after the end"
    );
    assert!(s.send(Event::HungUp).is_empty());
}

#[test]
fn the_maximum_call_length_ends_a_call() {
    let options = EngineOptions {
        max_call: Duration::from_secs(60),
        loop_limit: 1000,
    };
    let mut s = Sim::with_options(FLOW, options);
    s.send(Event::Answered);
    assert_eq!(s.call.next_deadline(), Some(t0() + Duration::from_secs(60)));
    s.advance(61);
    let a = s.send(Event::PromptFinished);
    assert_eq!(a[0], Action::HangUp);
    assert_eq!(finished(&a), Some(Outcome::TooLong));
}

#[test]
fn the_maximum_call_length_deadline_fires_while_a_prompt_plays() {
    let options = EngineOptions {
        max_call: Duration::from_secs(60),
        loop_limit: 1000,
    };
    let mut s = Sim::with_options(FLOW, options);
    s.send(Event::Answered);
    let a = s.wait_out();
    assert_eq!(finished(&a), Some(Outcome::TooLong));
}

const LOOPING: &str = r#"
title = "Loop"
languages = ["fr"]
audio = "../audio/t"

[[node]]
id = "a"
kind = "message"
prompt = "a"
next = "m"

[[node]]
id = "m"
kind = "menu"
prompt = "m"
retries = 0
options = { "0" = "bye" }
on_fail = "a"

[[node]]
id = "bye"
kind = "hangup"
prompt = "bye"
"#;

#[test]
fn the_loop_guard_ends_a_silent_call_that_goes_round_in_circles() {
    let mut s = Sim::new(LOOPING);
    let mut a = s.send(Event::Answered);
    let mut rounds = 0;
    while finished(&a).is_none() {
        rounds += 1;
        assert!(rounds < 100, "the call never ended");
        a = if s.call.is_waiting_for_key() {
            s.wait_out()
        } else {
            s.send(Event::PromptFinished)
        };
    }
    assert_eq!(finished(&a), Some(Outcome::LoopGuard));
    assert!(
        s.now - t0() < chrono::Duration::minutes(10),
        "ended before the maximum call length"
    );
}

#[test]
fn a_key_resets_the_loop_guard() {
    let mut s = Sim::new(LOOPING);
    s.send(Event::Answered);
    for _ in 0..40 {
        s.send(Event::PromptFinished); // a -> m
        s.send(Event::PromptFinished); // m waits
        s.digit('5'); // invalid, no retries: back to a
    }
    assert!(!s.call.is_ended());
}

#[test]
fn stale_timers_and_late_reports_change_nothing() {
    let mut s = Sim::at_menu(FLOW);
    let before = s.call.clone();
    assert!(s.send(Event::Timeout).is_empty(), "deadline not reached");
    assert!(s.send(Event::PromptFinished).is_empty());
    assert!(
        s.send(Event::RecordingFinished {
            duration: Duration::ZERO
        })
        .is_empty()
    );
    assert!(s.send(Event::TransferFailed).is_empty());
    assert!(s.send(Event::Answered).is_empty());
    assert_eq!(s.call, before);
}

#[test]
fn the_state_survives_serialization_mid_call() {
    let mut s = Sim::at_menu(FLOW);
    s.digit('2');
    let saved = serde_json::to_string(&s.call).unwrap();
    s.call = serde_json::from_str(&saved).unwrap();
    s.send(Event::PromptFinished);
    let a = s.digit('1');
    assert!(matches!(&a[0], Action::StoreAnswer { choice, .. } if choice == "yes"));
}

#[test]
fn a_start_that_is_not_a_language_menu_uses_the_first_language() {
    let text = FLOW.replace("title = \"Test\"", "title = \"Test\"\nstart = \"menu\"");
    let text = text.replace(
        "[[node]]\nid = \"welcome\"\nkind = \"language\"\nprompt = \"choose_language\"\nnext = \"menu\"\n",
        "",
    );
    let mut s = Sim::new(&text);
    let a = s.send(Event::Answered);
    assert_eq!(
        a[0],
        Action::SetLanguage {
            language: "bm".into()
        }
    );
    assert_eq!(played(&a), [p("bm", "main_menu")]);
}

#[test]
fn durations_at_the_end_of_time_give_a_deadline_that_never_comes_not_a_panic() {
    // Issue 11: `now + timeout` (chrono) panicked on an absurd duration.
    let options = EngineOptions {
        max_call: Duration::MAX,
        ..EngineOptions::default()
    };
    let mut s = Sim::with_options(FLOW, options);
    for n in &mut s.c.nodes {
        n.input.timeout = Duration::MAX;
    }
    s.send(Event::Answered);
    s.send(Event::PromptFinished);
    assert_eq!(s.call.next_deadline(), Some(DateTime::<Utc>::MAX_UTC));
    s.advance(3600);
    assert!(finished(&s.digit('2')).is_none());
}

/// FLOW with the listener's keys during messages, as `extra` sets them.
fn with_replay(extra: &str) -> String {
    format!("{FLOW}\n[replay]\n{extra}")
}

#[test]
fn replay_keys_move_pause_and_resume_a_message() {
    let mut s = Sim::at_menu(&with_replay(""));
    s.digit('1'); // the story
    assert_eq!(s.digit('6'), [Action::Seek { seconds: 10 }]);
    assert_eq!(s.digit('6'), [Action::Seek { seconds: 10 }]);
    assert_eq!(s.digit('4'), [Action::Seek { seconds: -10 }]);
    assert_eq!(s.digit('5'), [Action::Pause]);
    // A paused call keeps its state across processes (a webhook's saved state).
    let saved = serde_json::to_string(&s.call).unwrap();
    s.call = serde_json::from_str(&saved).unwrap();
    assert_eq!(s.digit('5'), [Action::Resume]);
    assert_eq!(s.call.node(), Some("story"));
    // The message still ends when the channel says so.
    let a = s.send(Event::PromptFinished);
    assert_eq!(entered(&a), ["menu"]);
}

#[test]
fn the_skip_key_stops_a_message_and_goes_to_its_next() {
    let mut s = Sim::at_menu(&with_replay(""));
    s.digit('1');
    s.digit('5'); // paused, then skipped
    let a = s.digit('#');
    assert_eq!(a[0], Action::StopPlayback);
    assert_eq!(entered(&a), ["menu"]);
    assert_eq!(played(&a), [p("fr", "main_menu")]);
}

#[test]
fn with_replay_other_keys_do_not_cut_a_message_and_the_repeat_key_restarts_it() {
    let mut s = Sim::at_menu(&with_replay(""));
    s.digit('1');
    assert!(s.digit('9').is_empty());
    assert_eq!(s.call.node(), Some("story"));
    assert_eq!(s.digit('5'), [Action::Pause]);
    let a = s.digit('*');
    assert_eq!(a[0], Action::StopPlayback);
    assert_eq!(played(&a), [p("fr", "intro"), p("fr", "story")]);
    // The new play is not paused: the pause key pauses it.
    assert_eq!(s.digit('5'), [Action::Pause]);
}

#[test]
fn replay_keys_are_the_campaigns_own_and_only_in_messages_that_take_keys() {
    let mut s = Sim::at_menu(&with_replay(
        "back = \"1\"\nforward = \"3\"\npause = \"0\"\nskip = \"9\"\nstep = \"30s\"",
    ));
    // In a menu, keys are the menu's.
    let a = s.digit('1');
    assert_eq!(entered(&a), ["story"]);
    assert_eq!(s.digit('1'), [Action::Seek { seconds: -30 }]);
    assert_eq!(s.digit('3'), [Action::Seek { seconds: 30 }]);
    assert_eq!(s.digit('0'), [Action::Pause]);
    assert!(
        s.digit('6').is_empty(),
        "the default keys mean nothing here"
    );
    assert_eq!(entered(&s.digit('9')), ["menu"]);
    // `thanks` has bargein = false: its keys are ignored, replay keys too.
    s.digit('3');
    s.send(Event::PromptFinished);
    s.send(Event::RecordingFinished {
        duration: Duration::from_secs(3),
    });
    assert_eq!(s.call.node(), Some("thanks"));
    assert!(s.digit('3').is_empty());
    assert!(s.digit('9').is_empty());
}

#[test]
fn a_campaigns_max_call_replaces_the_servers_limit() {
    let text = format!("max_call = \"30m\"\n{}", with_replay(""));
    let mut s = Sim::at_menu(&text);
    s.digit('1');
    assert_eq!(
        s.call.next_deadline(),
        Some(t0() + chrono::Duration::minutes(30))
    );
    // Past the server's 10 minutes the programme plays on.
    s.advance(20 * 60);
    assert_eq!(s.digit('6'), [Action::Seek { seconds: 10 }]);
    s.advance(10 * 60);
    assert_eq!(finished(&s.digit('6')), Some(Outcome::TooLong));
}
