//! Runs the flow engine for one provider request: the request becomes engine
//! events, and the engine runs until it waits for the caller again (a key, a
//! recording, a transfer) or ends; what it asked for becomes one [`Turn`].

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::{DialResult, Request, Verb};
use crate::campaign::Campaign;
use crate::flow::{Action, Call, Event, Prompt};

/// What one request produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turn {
    /// What the provider must do now, in order.
    pub verbs: Vec<Verb>,
    /// Actions to store, in order (the nodes entered, for the funnel; language,
    /// answers, completion, the end).
    pub store: Vec<Action>,
    /// A recording the provider announced: (record node, URL), to fetch.
    pub recording: Option<(String, String)>,
    /// The engine has ended the call.
    pub finished: bool,
}

/// More events than any one request can mean (the engine's loop guard ends a
/// call long before): a bound, so that no state can spin a request forever.
const MAX_EVENTS: usize = 1000;

/// A new call: the flow starts.
pub fn run_start(call: &mut Call, c: &Campaign, now: DateTime<Utc>) -> Turn {
    run(
        call,
        c,
        VecDeque::from([(Event::Answered, now)]),
        None,
        false,
    )
}

/// A later request of the call, read according to what the engine waits for.
pub fn run_step(call: &mut Call, c: &Campaign, r: &Request, now: DateTime<Utc>) -> Turn {
    let mut events = VecDeque::new();
    let mut recording = None;
    if call.is_ended() {
        // A request for a finished call: end it again, gracefully.
        return Turn {
            verbs: vec![Verb::HangUp],
            finished: true,
            ..Turn::default()
        };
    }
    if call.is_recording() {
        if let (Some(url), Some(node)) = (&r.recording_url, call.node()) {
            recording = Some((node.to_string(), url.clone()));
        }
        if r.recording_url.is_some() || r.step.is_some() || r.ended {
            events.push_back((
                Event::RecordingFinished {
                    duration: r.recording_duration.unwrap_or_default(),
                },
                now,
            ));
        }
    } else if call.is_waiting_for_key() {
        let key = r.digits.as_deref().and_then(|d| {
            d.chars()
                .find(|c| c.is_ascii_digit() || *c == '*' || *c == '#')
        });
        match key {
            Some(k) => events.push_back((Event::Digit(k), now)),
            // No key: the provider's own timeout has passed (it may have passed
            // a little before ours by the clock of this process).
            None if !r.ended => {
                let at = call.next_deadline().map_or(now, |d| d.max(now));
                events.push_back((Event::Timeout, at));
            }
            None => {}
        }
    } else if call.is_transferring() {
        match r.dial {
            // The helpline answered: the conversation is over now.
            Some(DialResult::Connected) => events.push_back((Event::HungUp, now)),
            Some(DialResult::Failed) => events.push_back((Event::TransferFailed, now)),
            None => {}
        }
    }
    if r.ended {
        events.push_back((Event::HungUp, now));
    }
    let transferred = call.is_transferring() && r.dial == Some(DialResult::Connected);
    let mut turn = run(call, c, events, recording, r.ended);
    if transferred && !r.ended {
        turn.verbs.push(Verb::HangUp);
    }
    // Nothing to do for a request the engine did not expect: keep the caller on
    // the line only if the engine still waits for something.
    if turn.verbs.is_empty() && !r.ended && !turn.finished {
        turn.verbs.push(Verb::HangUp);
    }
    turn
}

fn run(
    call: &mut Call,
    c: &Campaign,
    mut events: VecDeque<(Event, DateTime<Utc>)>,
    recording: Option<(String, String)>,
    caller_gone: bool,
) -> Turn {
    let mut turn = Turn {
        recording,
        ..Turn::default()
    };
    // Prompts gathered since the last wait: (prompts, barge-in).
    let mut plays: Vec<(Vec<Prompt>, bool)> = Vec::new();
    let mut handled = 0;
    while let Some((event, at)) = events.pop_front() {
        handled += 1;
        if handled > MAX_EVENTS {
            break;
        }
        for action in call.handle(c, event, at) {
            match action {
                Action::Play { prompts, bargein } => plays.push((prompts, bargein)),
                Action::CollectDigits { until } => {
                    let (prompts, bargein) = plays.pop().unwrap_or_default();
                    flush(&mut plays, &mut turn.verbs);
                    let timeout = (until - at).to_std().unwrap_or_default();
                    turn.verbs.push(Verb::Collect {
                        prompts,
                        bargein,
                        timeout,
                    });
                }
                Action::Record { max, .. } => {
                    flush(&mut plays, &mut turn.verbs);
                    turn.verbs.push(Verb::Record { max });
                }
                Action::Transfer { to } => {
                    flush(&mut plays, &mut turn.verbs);
                    turn.verbs.push(Verb::Dial { to });
                }
                Action::HangUp => {
                    flush(&mut plays, &mut turn.verbs);
                    if !caller_gone {
                        turn.verbs.push(Verb::HangUp);
                    }
                }
                a @ (Action::Enter { .. }
                | Action::SetLanguage { .. }
                | Action::StoreAnswer { .. }
                | Action::Completed
                | Action::Finished { .. }) => turn.store.push(a),
                // A provider plays a prompt whole: it cannot seek or pause.
                Action::StopPlayback
                | Action::StopRecording
                | Action::Seek { .. }
                | Action::Pause
                | Action::Resume => {}
            }
        }
        // The provider plays the prompts itself: as far as the engine knows, they
        // end at once, and what follows them goes into the same document.
        let playing = !(call.is_ended()
            || call.is_waiting_for_key()
            || call.is_recording()
            || call.is_transferring());
        if events.is_empty() && playing {
            events.push_back((Event::PromptFinished, at));
        }
    }
    flush(&mut plays, &mut turn.verbs);
    turn.finished = call.is_ended();
    turn
}

fn flush(plays: &mut Vec<(Vec<Prompt>, bool)>, verbs: &mut Vec<Verb>) {
    for (prompts, _) in plays.drain(..) {
        verbs.push(Verb::Play(prompts));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::flow::{EngineOptions, Outcome};

    /// The example campaign of the repository.
    pub(crate) fn example() -> Campaign {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("campaigns/stop-trafficking-mali.toml");
        crate::campaign::load_campaign(&file).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn req(digits: &str, step: i64) -> Request {
        Request {
            session: "s".into(),
            digits: Some(digits.into()),
            step: Some(step),
            ..Request::default()
        }
    }

    fn names(v: &Verb) -> Vec<String> {
        match v {
            Verb::Play(p) | Verb::Collect { prompts: p, .. } => p
                .iter()
                .map(|p| format!("{}/{}", p.language, p.name))
                .collect(),
            _ => vec![],
        }
    }

    #[test]
    fn a_call_through_the_example_campaign() {
        let c = example();
        let now = t("2026-12-01T19:30:00Z");
        let mut call = Call::new(EngineOptions::default());
        let turn = run_start(&mut call, &c, now);
        assert!(
            matches!(&turn.verbs[..], [Verb::Collect { bargein: true, .. }]),
            "{turn:?}"
        );
        assert!(names(&turn.verbs[0]).len() >= 2, "every language's menu");
        // The first node entered is stored, for the funnel.
        assert!(
            matches!(&turn.store[..], [Action::Enter { .. }]),
            "{:?}",
            turn.store
        );
        // The caller picks French: the language, then the next node entered.
        let turn = run_step(&mut call, &c, &req("2", 1), now);
        assert_eq!(
            turn.store[0],
            Action::SetLanguage {
                language: "fr".into()
            }
        );
        assert!(
            matches!(&turn.store[1..], [Action::Enter { .. }, ..]),
            "{:?}",
            turn.store
        );
        assert!(matches!(turn.verbs.last(), Some(Verb::Collect { .. })));
        // No key: the no-input prompt, then the same menu again.
        let before = turn.verbs.clone();
        let turn = run_step(&mut call, &c, &req("", 2), now);
        let again = names(turn.verbs.last().unwrap());
        assert!(again.ends_with(&names(before.last().unwrap())), "{again:?}");
        assert!(again.len() > names(before.last().unwrap()).len());
        // The caller hangs up.
        let turn = run_step(
            &mut call,
            &c,
            &Request {
                ended: true,
                ..Request::default()
            },
            now,
        );
        assert!(turn.verbs.is_empty());
        assert!(turn.finished);
        assert!(matches!(
            turn.store.last(),
            Some(Action::Finished {
                outcome: Outcome::CallerHangup,
                ..
            })
        ));
        // Anything after that is answered with a hang-up.
        let turn = run_step(&mut call, &c, &req("1", 4), now);
        assert_eq!(turn.verbs, vec![Verb::HangUp]);
        assert!(turn.store.is_empty());
    }

    #[test]
    fn the_state_survives_serialization_between_requests() {
        let c = example();
        let now = t("2026-12-01T19:30:00Z");
        let mut call = Call::new(EngineOptions::default());
        run_start(&mut call, &c, now);
        let json = serde_json::to_string(&call).unwrap();
        let mut restored: Call = serde_json::from_str(&json).unwrap();
        let a = run_step(&mut call, &c, &req("1", 1), now);
        let b = run_step(&mut restored, &c, &req("1", 1), now);
        assert_eq!(a, b);
    }

    /// One provider request, as a random caller and a random network make them.
    fn any_request() -> impl proptest::strategy::Strategy<Value = Request> {
        use proptest::prelude::*;
        (
            proptest::option::of("[0-9*#]{0,3}"),
            proptest::option::of(Just("https://media.example/r".to_string())),
            proptest::option::of(prop_oneof![
                Just(DialResult::Connected),
                Just(DialResult::Failed)
            ]),
            proptest::bool::weighted(0.05),
        )
            .prop_map(|(digits, recording_url, dial, ended)| Request {
                session: "s".into(),
                digits,
                recording_url,
                dial,
                ended,
                step: Some(1),
                ..Request::default()
            })
    }

    proptest::proptest! {
        /// Whatever the requests, a call never hangs: every reply to a live call
        /// asks the provider to do something, a call that the provider ended is
        /// finished, and the engine never plays without a verb for it.
        #[test]
        fn no_request_leaves_a_call_without_a_next_step(
            requests in proptest::collection::vec(any_request(), 1..40),
        ) {
            let c = example();
            let mut now = t("2026-12-01T19:30:00Z");
            let mut call = Call::new(EngineOptions::default());
            let turn = run_start(&mut call, &c, now);
            proptest::prop_assert!(!turn.verbs.is_empty());
            for r in &requests {
                now += chrono::TimeDelta::seconds(7);
                let was_ended = call.is_ended();
                let turn = run_step(&mut call, &c, r, now);
                if r.ended || was_ended {
                    proptest::prop_assert!(call.is_ended());
                    proptest::prop_assert!(turn.finished);
                } else {
                    proptest::prop_assert!(!turn.verbs.is_empty(), "{turn:?}");
                }
                if !call.is_ended() {
                    proptest::prop_assert!(
                        call.is_waiting_for_key() || call.is_recording() || call.is_transferring(),
                        "the engine is left playing"
                    );
                }
                let finished = turn.store.iter().filter(|a| matches!(a, Action::Finished { .. })).count();
                proptest::prop_assert!(finished <= 1);
            }
        }
    }

    #[test]
    fn the_timeout_is_the_nodes() {
        let c = example();
        let now = t("2026-12-01T19:30:00Z");
        let mut call = Call::new(EngineOptions::default());
        let turn = run_start(&mut call, &c, now);
        let Some(Verb::Collect { timeout, .. }) = turn.verbs.last() else {
            panic!("{turn:?}")
        };
        assert_eq!(*timeout, Duration::from_secs(6));
    }
}
