//! The state of one call and the rules that move it from node to node.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Action, Event, Outcome, Prompt};
use crate::campaign::{Campaign, Node, NodeKind};
use crate::schedule::{Poll, later};

/// Limits that keep a call from costing a listener more than it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineOptions {
    /// The longest a call may last (a helpline conversation after a transfer is
    /// not cut).
    pub max_call: Duration,
    /// How many nodes a call may enter in a row without any key from the caller:
    /// a silent line on a flow that loops back on itself ends here.
    pub loop_limit: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_call: Duration::from_secs(600),
            loop_limit: 25,
        }
    }
}

/// What the call is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Not answered yet.
    Idle,
    /// Playing the node's prompts; then `then`.
    Playing {
        bargein: bool,
        then: Then,
    },
    /// Waiting for a key until `deadline`.
    Waiting {
        deadline: DateTime<Utc>,
    },
    Recording,
    Transferring,
    Ended,
}

/// What follows the prompts of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Then {
    Collect,
    Next,
    Record,
    Transfer,
    HangUp,
}

/// One call's position in a campaign. Plain data: it can be saved between the
/// requests of a webhook call and restored anywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    options: EngineOptions,
    started: Option<DateTime<Utc>>,
    language: Option<String>,
    node: Option<String>,
    phase: Phase,
    /// Invalid keys and silences at the current node.
    failures: u32,
    /// Nodes entered since the caller last pressed a key.
    steps_without_input: u32,
    completed: bool,
    /// The broadcast a question's answer is attributed to, decided on entry.
    poll_broadcast: Option<DateTime<Utc>>,
    /// The listener paused the message playing (`[replay]`'s pause key).
    #[serde(default)]
    paused: bool,
}

impl Call {
    pub fn new(options: EngineOptions) -> Call {
        Call {
            options,
            started: None,
            language: None,
            node: None,
            phase: Phase::Idle,
            failures: 0,
            steps_without_input: 0,
            completed: false,
            poll_broadcast: None,
            paused: false,
        }
    }

    /// The node the call is at.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }

    /// The caller's language, once chosen.
    pub fn language(&self) -> Option<&str> {
        self.language.as_deref()
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    pub fn is_completed(&self) -> bool {
        self.completed
    }

    /// Whether the engine is waiting for a key (the simulator feeds one then).
    pub fn is_waiting_for_key(&self) -> bool {
        matches!(self.phase, Phase::Waiting { .. })
    }

    /// Whether a key now is a replay key: a message that takes keys plays in a
    /// campaign with `[replay]` (the simulator asks its listener for one then).
    pub fn takes_replay_keys(&self, c: &Campaign) -> bool {
        c.replay.is_some()
            && matches!(
                self.phase,
                Phase::Playing {
                    bargein: true,
                    then: Then::Next
                }
            )
    }

    /// While prompts play, whether a key cuts them short (the simulator tells
    /// the person at the terminal when it does not); `None` when none plays.
    pub fn bargein(&self) -> Option<bool> {
        match self.phase {
            Phase::Playing { bargein, .. } => Some(bargein),
            _ => None,
        }
    }

    /// Whether the call is recording the caller.
    pub fn is_recording(&self) -> bool {
        self.phase == Phase::Recording
    }

    /// Whether the call has been handed to a transfer destination.
    pub fn is_transferring(&self) -> bool {
        self.phase == Phase::Transferring
    }

    /// When the channel must send `Timeout` if nothing else happens first.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let end = match (self.started, self.phase) {
            (_, Phase::Ended | Phase::Transferring | Phase::Idle) => None,
            (Some(start), _) => Some(later(start, self.options.max_call)),
            (None, _) => None,
        };
        let input = match self.phase {
            Phase::Waiting { deadline } => Some(deadline),
            _ => None,
        };
        match (end, input) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Feeds one event; returns what the channel must do, in order.
    pub fn handle(&mut self, c: &Campaign, event: Event, now: DateTime<Utc>) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Ended {
            return out;
        }
        if event == Event::HungUp {
            let outcome = if self.completed {
                Outcome::Completed
            } else if self.phase == Phase::Transferring {
                Outcome::Transferred
            } else {
                Outcome::CallerHangup
            };
            self.finish(outcome, &mut out);
            return out;
        }
        if let (Some(start), false) = (self.started, self.phase == Phase::Transferring)
            && now >= later(start, self.options.max_call)
        {
            self.end(Outcome::TooLong, &mut out);
            return out;
        }
        match (event, self.phase) {
            (Event::Answered, Phase::Idle) => {
                self.started = Some(now);
                if let Some(max) = c.max_call {
                    self.options.max_call = max;
                }
                if c.languages.len() == 1
                    || !c
                        .nodes
                        .iter()
                        .any(|n| matches!(n.kind, NodeKind::Language { .. }))
                {
                    self.choose_language(c.languages[0].clone(), &mut out);
                }
                self.enter(c, &c.start.clone(), now, &mut out);
            }
            (Event::PromptFinished, Phase::Playing { then, .. }) => {
                self.after_prompts(c, then, now, &mut out)
            }
            (
                Event::Digit(d),
                Phase::Playing {
                    bargein: true,
                    then: Then::Next,
                },
            ) if c.replay.is_some() => {
                self.steps_without_input = 0;
                self.replay_key(c, d, now, &mut out);
            }
            (
                Event::Digit(d),
                Phase::Playing {
                    bargein: true,
                    then,
                },
            ) => {
                self.steps_without_input = 0;
                out.push(Action::StopPlayback);
                if then == Then::Collect {
                    self.key(c, d, now, &mut out);
                } else if Some(d) == self.current(c).and_then(|n| n.input.repeat)
                    && then == Then::Next
                {
                    self.replay(c, &mut out);
                } else {
                    // A key during a message, a goodbye, a record or transfer
                    // announcement cuts it short.
                    self.after_prompts(c, then, now, &mut out);
                }
            }
            (Event::Digit(d), Phase::Waiting { .. }) => {
                self.steps_without_input = 0;
                self.key(c, d, now, &mut out);
            }
            (Event::Digit('#'), Phase::Recording) => out.push(Action::StopRecording),
            (Event::Timeout, Phase::Waiting { deadline }) if now >= deadline => {
                self.retry_or_fail(c, false, now, &mut out);
            }
            (Event::RecordingFinished { .. }, Phase::Recording) => {
                match self.current(c).map(|n| n.kind.clone()) {
                    Some(NodeKind::Record { next, .. }) => self.enter(c, &next, now, &mut out),
                    _ => self.end(Outcome::Error, &mut out),
                }
            }
            (Event::TransferFailed, Phase::Transferring) => {
                match self.current(c).map(|n| n.kind.clone()) {
                    Some(NodeKind::Transfer {
                        on_fail: Some(to), ..
                    }) => self.enter(c, &to, now, &mut out),
                    _ => self.end(Outcome::TransferFailed, &mut out),
                }
            }
            // Keys while a prompt plays without barge-in, while recording or
            // transferring, stale timers, late reports: nothing to do.
            _ => {}
        }
        out
    }

    fn current<'c>(&self, c: &'c Campaign) -> Option<&'c Node> {
        self.node.as_deref().and_then(|id| c.node(id))
    }

    fn lang(&self, c: &Campaign) -> String {
        self.language
            .clone()
            .unwrap_or_else(|| c.languages[0].clone())
    }

    fn choose_language(&mut self, language: String, out: &mut Vec<Action>) {
        self.language = Some(language.clone());
        out.push(Action::SetLanguage { language });
    }

    fn prompts(&self, c: &Campaign, names: &[String]) -> Vec<Prompt> {
        let language = self.lang(c);
        names
            .iter()
            .map(|name| Prompt {
                language: language.clone(),
                name: name.clone(),
            })
            .collect()
    }

    /// The language menu's prompts: each language's recording in turn.
    fn language_menu(c: &Campaign, names: &[String]) -> Vec<Prompt> {
        c.languages
            .iter()
            .flat_map(|l| {
                names.iter().map(move |n| Prompt {
                    language: l.clone(),
                    name: n.clone(),
                })
            })
            .collect()
    }

    fn play(&mut self, prompts: Vec<Prompt>, bargein: bool, then: Then, out: &mut Vec<Action>) {
        self.paused = false;
        self.phase = Phase::Playing { bargein, then };
        out.push(Action::Play { prompts, bargein });
    }

    fn enter(&mut self, c: &Campaign, id: &str, now: DateTime<Utc>, out: &mut Vec<Action>) {
        let Some(node) = c.node(id) else {
            self.end(Outcome::Error, out);
            return;
        };
        self.steps_without_input += 1;
        if self.steps_without_input > self.options.loop_limit {
            self.end(Outcome::LoopGuard, out);
            return;
        }
        self.node = Some(node.id.clone());
        self.failures = 0;
        out.push(Action::Enter {
            node: node.id.clone(),
        });
        let bargein = node.input.bargein;
        match &node.kind {
            NodeKind::Language { next } => {
                if c.languages.len() == 1 {
                    self.enter(c, next, now, out);
                } else {
                    self.play(
                        Self::language_menu(c, &node.prompts),
                        bargein,
                        Then::Collect,
                        out,
                    );
                }
            }
            NodeKind::Message { .. } => {
                self.play(self.prompts(c, &node.prompts), bargein, Then::Next, out)
            }
            NodeKind::Menu { .. } => {
                self.play(self.prompts(c, &node.prompts), bargein, Then::Collect, out)
            }
            NodeKind::Question { next, .. } => {
                let poll = c
                    .schedule
                    .as_ref()
                    .map_or(Poll::Open { broadcast: None }, |s| s.poll(now));
                match poll {
                    Poll::Open { broadcast } => {
                        self.poll_broadcast = broadcast;
                        self.play(self.prompts(c, &node.prompts), bargein, Then::Collect, out);
                    }
                    Poll::Closed => {
                        // Outside every poll window the question is not asked; the
                        // awareness content stays available.
                        let closed = c.schedule.as_ref().and_then(|s| s.closed.clone());
                        let to = closed.unwrap_or_else(|| next.clone());
                        self.enter(c, &to, now, out);
                    }
                }
            }
            NodeKind::Record { .. } => {
                self.play(self.prompts(c, &node.prompts), bargein, Then::Record, out)
            }
            NodeKind::Transfer { .. } => {
                self.play(self.prompts(c, &node.prompts), bargein, Then::Transfer, out)
            }
            NodeKind::Hangup => {
                self.completed = true;
                out.push(Action::Completed);
                self.play(self.prompts(c, &node.prompts), bargein, Then::HangUp, out);
            }
        }
    }

    fn after_prompts(
        &mut self,
        c: &Campaign,
        then: Then,
        now: DateTime<Utc>,
        out: &mut Vec<Action>,
    ) {
        let Some(node) = self.current(c) else {
            self.end(Outcome::Error, out);
            return;
        };
        match (then, &node.kind) {
            (Then::Collect, _) => {
                let deadline = later(now, node.input.timeout);
                self.phase = Phase::Waiting { deadline };
                out.push(Action::CollectDigits { until: deadline });
            }
            (Then::Next, NodeKind::Message { next }) => {
                let next = next.clone();
                self.enter(c, &next, now, out);
            }
            (Then::Record, NodeKind::Record { max, .. }) => {
                self.phase = Phase::Recording;
                out.push(Action::Record {
                    node: node.id.clone(),
                    max: *max,
                    finish_on: '#',
                });
            }
            (Then::Transfer, NodeKind::Transfer { to, .. }) => {
                self.phase = Phase::Transferring;
                out.push(Action::Transfer { to: to.clone() });
            }
            (Then::HangUp, _) => self.end(Outcome::Completed, out),
            _ => self.end(Outcome::Error, out),
        }
    }

    /// The node's own prompts and what follows them.
    fn node_prompts(&self, c: &Campaign, node: &Node) -> (Vec<Prompt>, Then) {
        match &node.kind {
            NodeKind::Language { .. } => (Self::language_menu(c, &node.prompts), Then::Collect),
            NodeKind::Message { .. } => (self.prompts(c, &node.prompts), Then::Next),
            _ => (self.prompts(c, &node.prompts), Then::Collect),
        }
    }

    /// Plays the current node again from the start, as the repeat key asks.
    fn replay(&mut self, c: &Campaign, out: &mut Vec<Action>) {
        let Some(node) = self.current(c) else { return };
        let (prompts, then) = self.node_prompts(c, node);
        self.play(prompts, node.input.bargein, then, out);
    }

    /// A key while a message plays in a campaign with `[replay]`: back, forward,
    /// pause or resume, skip to the message's `next`, or the repeat key to start
    /// it again. Any other key is ignored, so a stray key does not cut a programme
    /// short.
    fn replay_key(&mut self, c: &Campaign, d: char, now: DateTime<Utc>, out: &mut Vec<Action>) {
        let Some(r) = c.replay else { return };
        let step = i32::try_from(r.step.as_secs()).unwrap_or(i32::MAX);
        if d == r.back {
            out.push(Action::Seek { seconds: -step });
        } else if d == r.forward {
            out.push(Action::Seek { seconds: step });
        } else if d == r.pause {
            self.paused = !self.paused;
            out.push(if self.paused {
                Action::Pause
            } else {
                Action::Resume
            });
        } else if d == r.skip {
            self.paused = false;
            out.push(Action::StopPlayback);
            self.after_prompts(c, Then::Next, now, out);
        } else if Some(d) == self.current(c).and_then(|n| n.input.repeat) {
            out.push(Action::StopPlayback);
            self.replay(c, out);
        }
    }

    /// A key while the node collects one.
    fn key(&mut self, c: &Campaign, d: char, now: DateTime<Utc>, out: &mut Vec<Action>) {
        let Some(node) = self.current(c) else {
            self.end(Outcome::Error, out);
            return;
        };
        if Some(d) == node.input.repeat {
            self.replay(c, out);
            return;
        }
        match &node.kind {
            NodeKind::Language { next } => match language_of_key(c, d) {
                Some(l) => {
                    let next = next.clone();
                    self.choose_language(l.clone(), out);
                    self.enter(c, &next, now, out);
                }
                None => self.retry_or_fail(c, true, now, out),
            },
            NodeKind::Menu { options, .. } => match options.iter().find(|o| o.digit == d) {
                Some(o) => {
                    let to = o.target.clone();
                    self.enter(c, &to, now, out);
                }
                None => self.retry_or_fail(c, true, now, out),
            },
            NodeKind::Question { choices, next, .. } => match choices.iter().find(|o| o.digit == d)
            {
                Some(choice) => {
                    let broadcast = c
                        .schedule
                        .as_ref()
                        .and_then(|s| s.broadcast_of(now))
                        .or(self.poll_broadcast);
                    out.push(Action::StoreAnswer {
                        question: node.id.clone(),
                        choice: choice.target.clone(),
                        digit: d,
                        broadcast,
                    });
                    let next = next.clone();
                    self.enter(c, &next, now, out);
                }
                None => self.retry_or_fail(c, true, now, out),
            },
            _ => {}
        }
    }

    /// An invalid key (`invalid`) or a silence: prompt again, or give up.
    fn retry_or_fail(
        &mut self,
        c: &Campaign,
        invalid: bool,
        now: DateTime<Utc>,
        out: &mut Vec<Action>,
    ) {
        let Some(node) = self.current(c) else {
            self.end(Outcome::Error, out);
            return;
        };
        self.failures += 1;
        if self.failures <= node.input.retries {
            let mut prompts = Vec::new();
            // The language menu speaks every language already; an error prompt in
            // one language the caller may not speak would only confuse.
            if !matches!(node.kind, NodeKind::Language { .. }) {
                let extra = if invalid {
                    &node.input.invalid
                } else {
                    &node.input.no_input
                };
                if let Some(p) = extra {
                    prompts.extend(self.prompts(c, std::slice::from_ref(p)));
                }
            }
            prompts.extend(self.node_prompts(c, node).0);
            self.play(prompts, node.input.bargein, Then::Collect, out);
            return;
        }
        // Retries are used up.
        match &node.kind {
            NodeKind::Menu {
                on_fail: Some(to), ..
            }
            | NodeKind::Question {
                on_fail: Some(to), ..
            } => {
                let to = to.clone();
                self.enter(c, &to, now, out);
            }
            // An unanswered question is skipped: the rest of the call still counts.
            NodeKind::Question { next, .. } => {
                let next = next.clone();
                self.enter(c, &next, now, out);
            }
            // Nobody chose: carry on in the campaign's first language.
            NodeKind::Language { next } => {
                let next = next.clone();
                self.choose_language(c.languages[0].clone(), out);
                self.enter(c, &next, now, out);
            }
            _ => self.end(Outcome::NoInput, out),
        }
    }

    /// The engine ends the call: drop the line, then report.
    fn end(&mut self, outcome: Outcome, out: &mut Vec<Action>) {
        out.push(Action::HangUp);
        self.finish(outcome, out);
    }

    fn finish(&mut self, outcome: Outcome, out: &mut Vec<Action>) {
        self.phase = Phase::Ended;
        out.push(Action::Finished {
            outcome,
            last_node: self.node.clone(),
        });
    }
}

/// The language key `d` picks at a language node: `1` the campaign's first
/// language, `2` the second…
fn language_of_key(c: &Campaign, d: char) -> Option<&String> {
    d.to_digit(10)
        .and_then(|n| (n as usize).checked_sub(1))
        .and_then(|i| c.languages.get(i))
}

/// The keys a node accepts, as the engine reads them (for callers that choose
/// among them: the simulator's).
pub fn keys_accepted(c: &Campaign, node: &Node) -> Vec<char> {
    match &node.kind {
        NodeKind::Language { .. } => ('1'..='9')
            .filter(|d| language_of_key(c, *d).is_some())
            .collect(),
        NodeKind::Menu { options, .. } => options.iter().map(|o| o.digit).collect(),
        NodeKind::Question { choices, .. } => choices.iter().map(|o| o.digit).collect(),
        _ => vec![],
    }
}
