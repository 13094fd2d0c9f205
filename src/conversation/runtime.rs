//! A call's conversation, sans-IO: the flow engine and every rule around it
//! that is not the channel's own. The channel (the SIP shell in
//! `crate::serve::call`, the terminal, tests) feeds it what it hears
//! ([`Input`]) with the time, and performs what it asks ([`Output`]) in order:
//! store writes, prompts, recordings, transfers, the hang-up.
//!
//! What it decides, so that no channel decides it again:
//! - the engine's time, from the call's monotonic clock ([`CallClock`]);
//! - which engine action stores what ([`Write`]), which of those may fail
//!   without ending the call (a node visit), and what is counted of them;
//! - subscribing and unsubscribing on an answer (`super::subscription`);
//! - where a recording is written, and that a recording in progress is closed
//!   and stored before the hang-up and before the call's end;
//! - that the engine hears `PromptFinished` once, for the prompt it waits for.
//!
//! It never sleeps, reads a clock or touches a socket or a file: the tests
//! below drive whole calls through it with a fake clock and fake media.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::clock::CallClock;
use super::studio::{Keep, Sound};
use super::subscription;
use crate::campaign::Campaign;
use crate::flow::{self, Action, EngineOptions, Event, Outcome};
use crate::outbound::Policy;
use crate::store::{self, WriteOp};

/// What the channel heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A key, from whichever source (RFC 4733, SIP INFO, tones): once per press.
    Key(char),
    /// The prompts of the latest [`Output::Play`] played to their end (or none
    /// of them could be played).
    PlayFinished,
    /// The recording of the latest [`Output::Record`] was closed (by the
    /// channel: silence, its length limit, or because it was asked to stop) and
    /// is on disk with this length.
    RecordingClosed { duration: Duration },
    /// A transfer was taken (the caller is with the helpline) or failed.
    TransferResult { ok: bool },
    /// The caller hung up or the line dropped.
    HungUp,
    /// No media came for too long: kuma hangs up.
    MediaTimeout,
    /// The store's answer to [`Output::CheckPin`] (the studio line).
    PinChecked(store::PinCheck),
    /// Whether the take of [`Output::Keep`] was stored and is served (the
    /// studio line).
    Kept { ok: bool },
}

/// A store write of the call; what it means for the call follows from the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub op: WriteOp,
}

impl Write {
    /// A node visit (for the funnel) may be lost without dropping the caller;
    /// every other write must be committed (or spooled) before the next output
    /// is performed, and its failure ends the call.
    pub fn required(&self) -> bool {
        !matches!(self.op, WriteOp::Visit { .. })
    }

    /// The counter to add one to once this is written, under the names every
    /// channel uses: an answer (`kuma_answers_total`), the call's end by
    /// outcome (`kuma_calls_total`). Taken before the write, which moves the
    /// op to the store.
    pub fn counter(&self) -> Option<metrics::Counter> {
        match &self.op {
            WriteOp::Answer { .. } => Some(super::metrics::answers()),
            WriteOp::End { outcome, .. } => Some(super::metrics::ends(outcome)),
            _ => None,
        }
    }
}

/// What the channel must do, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Store this before performing the next output.
    Write(Write),
    /// Stop what plays and play these, one after the other; report
    /// [`Input::PlayFinished`] when the last ends (at once if none can be played).
    Play(Vec<flow::Prompt>),
    /// Stop what plays; no `PlayFinished` is expected for it.
    StopPlayback,
    /// Move within what plays by this many seconds (back when negative), held
    /// to the start and end of the current prompt; past the end of the last one
    /// the play finishes ([`Input::PlayFinished`]). A paused play stays paused.
    Seek { seconds: i32 },
    /// Hold what plays where it is until [`Output::Resume`] or the next play.
    Pause,
    /// Go on playing from where it was held.
    Resume,
    /// Stop what plays, beep, and record the caller into `path` (directories
    /// included) for at most `max`; report [`Input::RecordingClosed`] when the
    /// recording closes by itself.
    Record { path: PathBuf, max: Duration },
    /// Close the recording now and report [`Input::RecordingClosed`] before
    /// performing anything else.
    StopRecording,
    /// Connect the caller to this SIP URI or `tel:` number.
    Transfer { to: String },
    /// Drop the line.
    HangUp,
    /// The call is over and its end is stored: the channel's task may end.
    Finished(Outcome),
    /// The studio line: stop what plays and play these (kuma's studio prompts,
    /// a campaign's prompts, a take); report [`Input::PlayFinished`] when the
    /// last ends (at once if none can be played).
    PlaySounds(Vec<Sound>),
    /// The studio line: check this PIN with the store and answer
    /// [`Input::PinChecked`].
    CheckPin { pin: String },
    /// The studio line: store this take as the prompt's new recording (as the
    /// web upload does) and answer [`Input::Kept`].
    Keep(Keep),
}

/// A recording in progress: its node and file.
#[derive(Debug, Clone)]
struct Recording {
    node: String,
    path: PathBuf,
}

/// One call's conversation.
pub struct Conversation {
    campaign: Arc<Campaign>,
    engine: flow::Call,
    clock: CallClock,
    /// The call's row in the store: its writes name it.
    row: store::CallRow,
    /// The caller's pseudonym.
    caller: String,
    /// Their number sealed, or why it may not be kept (asked only when they
    /// subscribe).
    sealed: Result<Vec<u8>, &'static str>,
    /// The station's call-back rules.
    policy: Arc<Policy>,
    /// `DATA/recordings`.
    recordings: PathBuf,
    events: VecDeque<Event>,
    outputs: VecDeque<Output>,
    /// The engine waits for the end of the prompts it last asked for.
    playing: bool,
    recording: Option<Recording>,
    finished: bool,
}

/// What a conversation starts from.
pub struct Start {
    pub campaign: Arc<Campaign>,
    pub row: store::CallRow,
    pub caller: String,
    pub sealed: Result<Vec<u8>, &'static str>,
    /// The station's call-back rules.
    pub policy: Arc<Policy>,
    /// Where recordings go (`DATA/recordings`).
    pub recordings: PathBuf,
}

impl Conversation {
    /// An answered call: its clock reads `wall` at the monotonic `answered`.
    pub fn answered(start: Start, wall: DateTime<Utc>, answered: Instant) -> Self {
        Conversation {
            campaign: start.campaign,
            engine: flow::Call::new(EngineOptions::default()),
            clock: CallClock::new(wall, answered),
            row: start.row,
            caller: start.caller,
            sealed: start.sealed,
            policy: start.policy,
            recordings: start.recordings,
            events: VecDeque::from([Event::Answered]),
            outputs: VecDeque::new(),
            playing: false,
            recording: None,
            finished: false,
        }
    }

    /// The call's time at `now`.
    pub fn time(&self, now: Instant) -> DateTime<Utc> {
        self.clock.at(now)
    }

    /// The engine, to read where the call is (its node, whether it waits for
    /// a key): the terminal simulator's listener acts on it; a channel with
    /// real media needs none of it.
    pub fn engine(&self) -> &flow::Call {
        &self.engine
    }

    /// True once [`Output::Finished`] was given: nothing more will come.
    pub fn is_finished(&self) -> bool {
        self.finished && self.outputs.is_empty()
    }

    /// When [`Conversation::handle_timeout`] must next be called (a keypad
    /// timeout, the call length limit), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        self.engine.next_deadline().map(|d| self.clock.instant(d))
    }

    /// Fires the engine's deadline if it has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        if self
            .engine
            .next_deadline()
            .is_some_and(|d| d <= self.clock.at(now))
        {
            self.events.push_back(Event::Timeout);
        }
    }

    /// Something the channel heard at `now`.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        if self.finished && !matches!(input, Input::RecordingClosed { .. }) {
            return;
        }
        match input {
            Input::Key(k) => self.events.push_back(Event::Digit(k)),
            Input::PlayFinished => {
                if std::mem::take(&mut self.playing) {
                    self.events.push_back(Event::PromptFinished);
                }
            }
            Input::RecordingClosed { duration } => {
                let Some(rec) = self.recording.take() else {
                    return;
                };
                // Stored before anything else is performed, and the engine hears
                // of it before a hang-up that came meanwhile.
                self.outputs.push_front(Output::Write(Write {
                    op: WriteOp::Recording {
                        call: self.row,
                        node: rec.node,
                        file: rec.path.to_string_lossy().into_owned(),
                        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                        at: self.clock.at(now),
                    },
                }));
                if !self.finished {
                    self.events
                        .push_front(Event::RecordingFinished { duration });
                }
            }
            Input::TransferResult { ok: true } | Input::MediaTimeout => {
                // The gateway took the caller to the helpline, or the line is
                // dead: kuma leaves the call.
                self.stop_recording();
                self.outputs.push_back(Output::HangUp);
                self.events.push_back(Event::HungUp);
            }
            Input::TransferResult { ok: false } => self.events.push_back(Event::TransferFailed),
            Input::HungUp => {
                self.stop_recording();
                self.events.push_back(Event::HungUp);
            }
            // Only the studio line asks for these.
            Input::PinChecked(_) | Input::Kept { .. } => {}
        }
    }

    /// The next output if it is a write already due (no new input is handled
    /// for it): a channel stores a burst of writes together (an answer and the
    /// node it leads to) before the output after them.
    pub fn next_write(&mut self) -> Option<Write> {
        match self.outputs.front() {
            Some(Output::Write(_)) => match self.outputs.pop_front() {
                Some(Output::Write(w)) => Some(w),
                _ => None,
            },
            _ => None,
        }
    }

    /// The next thing to do at `now`, once what came before it is done.
    pub fn poll_output(&mut self, now: Instant) -> Option<Output> {
        loop {
            if let Some(o) = self.outputs.pop_front() {
                return Some(o);
            }
            if self.finished {
                return None;
            }
            let event = self.events.pop_front()?;
            let at = self.clock.at(now);
            for action in self.engine.handle(&self.campaign, event, at) {
                self.perform(action, at);
            }
        }
    }

    /// Asks the channel to close the recording in progress, if any.
    fn stop_recording(&mut self) {
        if self.recording.is_some() {
            self.outputs.push_back(Output::StopRecording);
        }
    }

    fn write(&mut self, action: &Action, at: DateTime<Utc>) {
        let Some(op) = WriteOp::from_action(self.row, action, at) else {
            return;
        };
        self.outputs.push_back(Output::Write(Write { op }));
    }

    fn perform(&mut self, action: Action, at: DateTime<Utc>) {
        match action {
            Action::Enter { ref node } => {
                tracing::debug!(%node, "node");
                self.write(&action, at);
            }
            Action::Play { prompts, .. } => {
                self.playing = true;
                self.outputs.push_back(Output::Play(prompts));
            }
            Action::StopPlayback => {
                self.playing = false;
                self.outputs.push_back(Output::StopPlayback);
            }
            Action::CollectDigits { .. } => {}
            // The listener's replay keys: only meaningful while the engine
            // waits for the prompt to end.
            Action::Seek { seconds } if self.playing => {
                self.outputs.push_back(Output::Seek { seconds })
            }
            Action::Pause if self.playing => self.outputs.push_back(Output::Pause),
            Action::Resume if self.playing => self.outputs.push_back(Output::Resume),
            Action::Seek { .. } | Action::Pause | Action::Resume => {}
            Action::Record { node, max, .. } => {
                self.playing = false;
                let path = recording_path(&self.recordings, &self.campaign.id, self.row, &node, at);
                self.recording = Some(Recording {
                    node,
                    path: path.clone(),
                });
                self.outputs.push_back(Output::Record { path, max });
            }
            Action::StopRecording => self.stop_recording(),
            Action::Transfer { to } => self.outputs.push_back(Output::Transfer { to }),
            Action::SetLanguage { .. } | Action::Completed => self.write(&action, at),
            Action::StoreAnswer {
                ref question,
                ref choice,
                ..
            } => {
                self.write(&action, at);
                self.subscription(question, choice, at);
            }
            Action::HangUp => {
                self.stop_recording();
                self.outputs.push_back(Output::HangUp);
            }
            Action::Finished { outcome, .. } => {
                self.stop_recording();
                self.write(&action, at);
                if outcome == Outcome::Error {
                    tracing::warn!("call ended on an engine error");
                }
                self.outputs.push_back(Output::Finished(outcome));
                self.finished = true;
            }
        }
    }

    /// A question with `subscribe`: its choice subscribes the caller to calls
    /// after each broadcast, any other answer unsubscribes (and erases) them.
    fn subscription(&mut self, question: &str, choice: &str, at: DateTime<Utc>) {
        let sealed = || self.sealed.clone();
        let Some(change) = subscription::on_answer(
            &self.campaign,
            question,
            choice,
            &self.caller,
            sealed,
            &self.policy,
            at,
        ) else {
            return;
        };
        subscription::log(&change, &self.caller);
        if let subscription::Change::Subscribe(op) | subscription::Change::Unsubscribe(op) = change
        {
            self.outputs.push_back(Output::Write(Write { op }));
        }
    }
}

/// Where a call's recording for `node` goes:
/// `DATA/recordings/CAMPAIGN/YYYY-MM-DD/ROW-HHMMSS-NODE.wav` (the day and
/// time of the call's clock, in UTC).
pub fn recording_path(
    recordings: &Path,
    campaign: &str,
    row: store::CallRow,
    node: &str,
    at: DateTime<Utc>,
) -> PathBuf {
    recordings
        .join(campaign)
        .join(at.format("%Y-%m-%d").to_string())
        .join(format!("{row}-{}-{node}.wav", at.format("%H%M%S")))
}

#[cfg(test)]
mod tests {
    //! Whole calls through the conversation with a fake clock (an `Instant`
    //! moved by hand) and fake media (a phone that plays every prompt in two
    //! seconds and keeps what it was asked to do): no socket, no sleep.

    use super::*;
    use crate::campaign::load_campaign_text;

    pub(super) const CAMPAIGN: &str = r#"
title = "Runtime test"
languages = ["fr", "bm", "snk"]
audio = "../audio/stop-trafficking-mali"
numbers = ["2000"]

[defaults]
timeout = "6s"
retries = 1

[[node]]
id = "welcome"
kind = "language"
prompt = "choose_language"
next = "menu"

[[node]]
id = "menu"
kind = "menu"
prompt = "main_menu"
options = { "1" = "q_report", "2" = "leave_message", "3" = "helpline", "4" = "q_calls", "5" = "news", "0" = "goodbye" }
on_fail = "goodbye"

[[node]]
id = "q_report"
kind = "question"
prompt = "q_would_report"
choices = { "1" = "yes", "2" = "no" }
next = "goodbye"

[[node]]
id = "q_calls"
kind = "question"
prompt = "q_know_signs"
choices = { "1" = "yes", "2" = "no" }
subscribe = "yes"
next = "goodbye"

[[node]]
id = "leave_message"
kind = "record"
prompt = "leave_message"
max = "2m"
next = "goodbye"

[[node]]
id = "helpline"
kind = "transfer"
prompt = "connecting"
to = "tel:+22370000000"
on_fail = "unavailable"

[[node]]
id = "news"
kind = "message"
prompt = "warning_signs"
next = "menu"

[[node]]
id = "unavailable"
kind = "message"
prompt = "helpline_unavailable"
next = "goodbye"

[[node]]
id = "goodbye"
kind = "hangup"
prompt = "goodbye"
"#;

    const ROW: store::CallRow = 7;
    const PROMPT: Duration = Duration::from_secs(2);

    /// The fake phone: the conversation, the fake clock, and what was asked.
    struct Phone {
        talk: Conversation,
        now: Instant,
        /// The stores written, in order.
        writes: Vec<Write>,
        /// Every output, in order (writes included).
        outputs: Vec<Output>,
        /// When the prompts being played end.
        playing_until: Option<Instant>,
        recording: Option<Instant>,
    }

    fn policy() -> Arc<Policy> {
        Arc::new(Policy::default())
    }

    fn wall() -> DateTime<Utc> {
        "2026-12-01T19:00:05Z".parse().unwrap()
    }

    fn phone(sealed: Result<Vec<u8>, &'static str>) -> Phone {
        let campaign = load_campaign_text(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/runtime-test.toml"),
            CAMPAIGN,
        )
        .unwrap();
        let now = Instant::now();
        let talk = Conversation::answered(
            Start {
                campaign: Arc::new(campaign),
                row: ROW,
                caller: "c_test".into(),
                sealed,
                policy: policy(),
                recordings: PathBuf::from("/data/recordings"),
            },
            wall(),
            now,
        );
        let mut p = Phone {
            talk,
            now,
            writes: Vec::new(),
            outputs: Vec::new(),
            playing_until: None,
            recording: None,
        };
        p.perform();
        p
    }

    impl Phone {
        /// Performs every output, as a channel does.
        fn perform(&mut self) {
            while let Some(o) = self.talk.poll_output(self.now) {
                self.outputs.push(o.clone());
                match o {
                    Output::Write(w) => self.writes.push(w),
                    Output::Play(p) if p.is_empty() => {
                        self.talk.handle_input(Input::PlayFinished, self.now)
                    }
                    Output::Play(_) => self.playing_until = Some(self.now + PROMPT),
                    Output::StopPlayback => self.playing_until = None,
                    Output::Record { .. } => {
                        self.playing_until = None;
                        self.recording = Some(self.now);
                    }
                    Output::StopRecording => self.close_recording(),
                    Output::Transfer { .. }
                    | Output::HangUp
                    | Output::Finished(_)
                    | Output::Seek { .. }
                    | Output::Pause
                    | Output::Resume
                    | Output::PlaySounds(_)
                    | Output::CheckPin { .. }
                    | Output::Keep(_) => {}
                }
            }
        }

        fn close_recording(&mut self) {
            if let Some(since) = self.recording.take() {
                let duration = self.now - since;
                self.talk
                    .handle_input(Input::RecordingClosed { duration }, self.now);
            }
        }

        /// Lets `d` pass: prompts end, deadlines fire.
        fn wait(&mut self, d: Duration) {
            let until = self.now + d;
            loop {
                let mut next = until;
                if let Some(t) = self.playing_until {
                    next = next.min(t);
                }
                if let Some(t) = self.talk.poll_timeout() {
                    next = next.min(t.max(self.now));
                }
                self.now = next;
                if self.playing_until.is_some_and(|t| t <= self.now) {
                    self.playing_until = None;
                    self.talk.handle_input(Input::PlayFinished, self.now);
                }
                self.talk.handle_timeout(self.now);
                self.perform();
                if self.now >= until || self.talk.is_finished() {
                    return;
                }
            }
        }

        fn hear(&mut self, input: Input) {
            self.talk.handle_input(input, self.now);
            self.perform();
        }

        /// Presses a key once the prompt has played.
        fn press(&mut self, key: char) {
            self.wait(PROMPT);
            self.hear(Input::Key(key));
        }

        fn ops(&self) -> Vec<&WriteOp> {
            self.writes.iter().map(|w| &w.op).collect()
        }

        fn last_outcome(&self) -> Option<Outcome> {
            match self.outputs.last() {
                Some(Output::Finished(o)) => Some(*o),
                _ => None,
            }
        }
    }

    #[test]
    fn an_answered_call_plays_the_first_node_and_counts_its_visit() {
        let p = phone(Err("no"));
        assert_eq!(
            p.outputs,
            vec![
                Output::Write(Write {
                    op: WriteOp::Visit {
                        call: ROW,
                        node: "welcome".into()
                    },
                }),
                Output::Play(
                    ["fr", "bm", "snk"]
                        .map(|l| flow::Prompt {
                            language: l.into(),
                            name: "choose_language".into()
                        })
                        .to_vec()
                ),
            ]
        );
        // The funnel's count may be lost without dropping the caller.
        assert!(!p.writes[0].required());
        assert!(!p.talk.is_finished());
    }

    #[test]
    fn a_poll_answer_is_stored_counted_then_the_call_completes_and_ends() {
        let mut p = phone(Err("no"));
        p.press('2'); // bm
        p.press('1'); // the question
        p.press('2'); // no
        p.wait(PROMPT); // goodbye plays to its end
        assert!(p.talk.is_finished());
        assert_eq!(p.last_outcome(), Some(Outcome::Completed));
        let ops = p.ops();
        assert!(ops.contains(&&WriteOp::Language {
            call: ROW,
            language: "bm".into()
        }));
        let answer = p
            .writes
            .iter()
            .find(|w| matches!(w.op, WriteOp::Answer { .. }))
            .unwrap();
        assert!(answer.op.is_answer() && answer.required());
        match &answer.op {
            WriteOp::Answer {
                question,
                choice,
                digit,
                at,
                ..
            } => {
                assert_eq!(
                    (question.as_str(), choice.as_str(), digit.as_str()),
                    ("q_report", "no", "2")
                );
                // The call's clock: answered at `wall`, three prompts of 2 s later.
                assert_eq!(*at, wall() + chrono::Duration::seconds(6));
            }
            other => panic!("{other:?}"),
        }
        // Completed (goodbye reached), its prompt, the hang-up, the end stored,
        // then finished.
        let n = p.outputs.len();
        assert!(
            matches!(
                &p.outputs[n - 5..],
                [
                    Output::Write(Write {
                        op: WriteOp::Completed { .. },
                        ..
                    }),
                    Output::Play(_),
                    Output::HangUp,
                    Output::Write(Write {
                        op: WriteOp::End { outcome, .. },
                    }),
                    Output::Finished(Outcome::Completed),
                ] if outcome == "completed"
            ),
            "{:#?}",
            p.outputs
        );
        // Nothing after the end.
        p.hear(Input::Key('1'));
        p.wait(Duration::from_secs(60));
        assert!(matches!(p.outputs.last(), Some(Output::Finished(_))));
        assert_eq!(p.talk.poll_timeout(), None);
    }

    #[test]
    fn a_key_during_a_prompt_stops_it_and_its_late_end_is_not_heard() {
        let mut p = phone(Err("no"));
        p.wait(Duration::from_millis(500));
        p.hear(Input::Key('1'));
        assert!(p.outputs.contains(&Output::StopPlayback));
        let before = p.outputs.len();
        // The end of the prompt that was stopped reaches the conversation late:
        // the engine, now waiting for the menu's prompt, must not take it for it.
        p.hear(Input::PlayFinished);
        p.hear(Input::PlayFinished);
        let menu_played = p.outputs[before..]
            .iter()
            .filter(|o| matches!(o, Output::Play(_)))
            .count();
        assert_eq!(menu_played, 0, "{:?}", &p.outputs[before..]);
    }

    #[test]
    fn keypad_timeouts_run_on_the_calls_monotonic_clock() {
        let mut p = phone(Err("no"));
        p.wait(PROMPT);
        // The prompt ended at +2 s: the caller has 6 s from then.
        let deadline = p.talk.poll_timeout().unwrap();
        assert_eq!(deadline - p.now, Duration::from_secs(6));
        let plays = |p: &Phone| {
            p.outputs
                .iter()
                .filter(|o| matches!(o, Output::Play(_)))
                .count()
        };
        let before = plays(&p);
        p.wait(Duration::from_millis(5_999));
        assert_eq!(plays(&p), before, "no re-prompt before the deadline");
        p.wait(Duration::from_millis(1));
        assert!(
            plays(&p) > before,
            "the timeout re-prompts (or says no input)"
        );
    }

    #[test]
    fn a_call_ends_at_the_length_limit_of_its_own_clock() {
        let mut p = phone(Err("no"));
        p.press('1');
        // The caller listens to the news again and again.
        for _ in 0..1000 {
            p.press('5');
            if p.talk.is_finished() {
                break;
            }
        }
        assert_eq!(p.last_outcome(), Some(Outcome::TooLong));
        match p.ops().last() {
            Some(WriteOp::End { at, outcome, .. }) => {
                assert_eq!(outcome, "too_long");
                // Ten minutes of the call's clock after it was answered.
                assert_eq!(*at, wall() + chrono::Duration::seconds(600));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_recording_goes_where_the_layout_says_and_is_stored_before_the_flow_goes_on() {
        let mut p = phone(Err("no"));
        p.press('1');
        p.press('2'); // leave a message
        p.wait(PROMPT); // the record node's prompt
        let (path, max) = p
            .outputs
            .iter()
            .find_map(|o| match o {
                Output::Record { path, max } => Some((path.clone(), *max)),
                _ => None,
            })
            .unwrap();
        assert_eq!(max, Duration::from_secs(120));
        assert_eq!(
            path,
            PathBuf::from("/data/recordings/runtime-test/2026-12-01/7-190011-leave_message.wav")
        );
        p.wait(Duration::from_secs(5));
        p.hear(Input::Key('#'));
        let i = p
            .outputs
            .iter()
            .position(|o| o == &Output::StopRecording)
            .expect("# stops the recording");
        // The recording is stored at once, before the flow plays its next prompt.
        match &p.outputs[i + 1] {
            Output::Write(
                w @ Write {
                    op:
                        WriteOp::Recording {
                            call,
                            node,
                            file,
                            duration_ms,
                            ..
                        },
                },
            ) => {
                assert!(w.required());
                assert_eq!((*call, node.as_str()), (ROW, "leave_message"));
                assert_eq!(file, &path.to_string_lossy());
                assert_eq!(*duration_ms, 5_000);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            p.outputs[i + 2..]
                .iter()
                .any(|o| matches!(o, Output::Play(x) if x.iter().any(|x| x.name == "goodbye")))
        );
    }

    #[test]
    fn a_recording_that_closes_by_itself_is_stored_and_the_flow_goes_on() {
        let mut p = phone(Err("no"));
        p.press('1');
        p.press('2');
        p.wait(PROMPT);
        p.wait(Duration::from_secs(3));
        // Silence ended it in the media.
        p.close_recording();
        p.perform();
        assert!(p.ops().iter().any(|o| matches!(
            o,
            WriteOp::Recording {
                duration_ms: 3_000,
                ..
            }
        )));
        p.wait(PROMPT);
        assert_eq!(p.last_outcome(), Some(Outcome::Completed));
    }

    #[test]
    fn hanging_up_during_a_recording_stores_it_before_the_calls_end() {
        let mut p = phone(Err("no"));
        p.press('1');
        p.press('2');
        p.wait(PROMPT);
        p.wait(Duration::from_secs(4));
        p.hear(Input::HungUp);
        let at = |f: &dyn Fn(&Output) -> bool| p.outputs.iter().position(f).unwrap();
        let stop = at(&|o| o == &Output::StopRecording);
        let stored = at(&|o| {
            matches!(
                o,
                Output::Write(Write {
                    op: WriteOp::Recording {
                        duration_ms: 4_000,
                        ..
                    },
                    ..
                })
            )
        });
        let end = at(&|o| {
            matches!(
                o,
                Output::Write(Write {
                    op: WriteOp::End { .. },
                    ..
                })
            )
        });
        assert!(stop < stored && stored < end, "{:#?}", p.outputs);
        assert!(p.talk.is_finished());
        // The BYE was the caller's: kuma sends none.
        assert!(!p.outputs.contains(&Output::HangUp));
    }

    #[test]
    fn a_transfer_taken_leaves_the_call_and_a_failed_one_goes_on_fail() {
        let mut p = phone(Err("no"));
        p.press('1');
        p.press('3');
        p.wait(PROMPT); // "connecting"
        assert!(p.outputs.contains(&Output::Transfer {
            to: "tel:+22370000000".into()
        }));
        p.hear(Input::TransferResult { ok: true });
        assert!(p.outputs.contains(&Output::HangUp));
        assert_eq!(p.last_outcome(), Some(Outcome::Transferred));

        let mut p = phone(Err("no"));
        p.press('1');
        p.press('3');
        p.wait(PROMPT);
        p.hear(Input::TransferResult { ok: false });
        assert!(p.outputs.iter().any(
            |o| matches!(o, Output::Play(x) if x.iter().any(|x| x.name == "helpline_unavailable"))
        ));
        assert!(!p.talk.is_finished());
    }

    #[test]
    fn no_media_hangs_up_and_ends_the_call() {
        let mut p = phone(Err("no"));
        p.press('1');
        p.hear(Input::MediaTimeout);
        assert!(p.outputs.contains(&Output::HangUp));
        assert!(p.talk.is_finished());
        assert!(
            p.ops()
                .iter()
                .any(|o| matches!(o, WriteOp::End { outcome, .. } if outcome == "caller_hangup"))
        );
    }

    #[test]
    fn the_subscribe_choice_keeps_the_sealed_number_and_another_answer_erases_it() {
        let mut p = phone(Ok(vec![1, 2, 3]));
        p.press('1');
        p.press('4');
        p.press('1'); // yes: keep me
        let i = p
            .writes
            .iter()
            .position(|w| matches!(w.op, WriteOp::Answer { .. }))
            .unwrap();
        match &p.writes[i + 1].op {
            WriteOp::Subscribe {
                campaign,
                caller,
                sealed,
                ..
            } => {
                assert_eq!(
                    (campaign.as_str(), caller.as_str()),
                    ("runtime-test", "c_test")
                );
                assert_eq!(sealed, "010203");
            }
            other => panic!("{other:?}"),
        }
        assert!(p.writes[i + 1].required());

        let mut p = phone(Ok(vec![1, 2, 3]));
        p.press('1');
        p.press('4');
        p.press('2'); // no
        assert!(p.ops().iter().any(|o| matches!(o,
            WriteOp::Unsubscribe { caller, .. } if caller == "c_test")));
        assert!(
            !p.ops()
                .iter()
                .any(|o| matches!(o, WriteOp::Subscribe { .. }))
        );

        // A number that may not be kept: the answer is stored, nothing else.
        let mut p = phone(Err("withheld_number"));
        p.press('1');
        p.press('4');
        p.press('1');
        assert!(p.ops().iter().any(|o| matches!(o, WriteOp::Answer { .. })));
        assert!(
            !p.ops()
                .iter()
                .any(|o| matches!(o, WriteOp::Subscribe { .. } | WriteOp::Unsubscribe { .. }))
        );
    }

    #[test]
    fn a_play_with_nothing_playable_moves_on_at_once() {
        let mut p = phone(Err("no"));
        // The fake phone reports PlayFinished for an empty play; here the
        // channel found none of the prompts and says so at once.
        p.hear(Input::PlayFinished);
        p.hear(Input::Key('1'));
        assert!(p.outputs.iter().any(|o| matches!(
            o,
            Output::Write(Write {
                op: WriteOp::Language { .. },
                ..
            })
        )));
    }
}

#[cfg(test)]
mod replay_tests {
    //! The replay keys of a campaign with `[replay]` through the conversation,
    //! with a fake clock and a fake phone that plays a 20-minute programme and
    //! keeps its place in it (seeks held to the programme, pauses).

    use super::*;
    use crate::campaign::load_campaign_text;

    const PROGRAMME: Duration = Duration::from_secs(20 * 60);

    /// The runtime tests' campaign, with `[replay]` (or not) and a call long
    /// enough for the programme.
    fn campaign(replay: bool) -> Campaign {
        let mut text = format!("max_call = \"90m\"\n{}", super::tests::CAMPAIGN);
        if replay {
            text.push_str("\n[replay]\n");
        }
        load_campaign_text(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/replay-test.toml"),
            &text,
        )
        .unwrap()
    }

    /// A phone whose every prompt is the programme.
    struct Phone {
        talk: Conversation,
        now: Instant,
        outputs: Vec<Output>,
        /// Where the programme is, as of `since`, and whether it moves.
        at: Option<Duration>,
        since: Instant,
        paused: bool,
    }

    impl Phone {
        fn new(replay: bool) -> Phone {
            let now = Instant::now();
            let talk = Conversation::answered(
                Start {
                    campaign: Arc::new(campaign(replay)),
                    row: 1,
                    caller: "c_test".into(),
                    sealed: Err("no"),
                    policy: Arc::new(Policy::default()),
                    recordings: PathBuf::from("/data/recordings"),
                },
                "2026-12-01T19:00:05Z".parse().unwrap(),
                now,
            );
            let mut p = Phone {
                talk,
                now,
                outputs: Vec::new(),
                at: None,
                since: now,
                paused: false,
            };
            p.perform();
            p
        }

        /// Where the programme is now.
        fn position(&self) -> Option<Duration> {
            let moved = if self.paused {
                Duration::ZERO
            } else {
                self.now - self.since
            };
            self.at.map(|a| (a + moved).min(PROGRAMME))
        }

        fn perform(&mut self) {
            while let Some(o) = self.talk.poll_output(self.now) {
                let position = self.position();
                match &o {
                    Output::Play(_) => {
                        self.at = Some(Duration::ZERO);
                        self.paused = false;
                    }
                    Output::StopPlayback | Output::Record { .. } => self.at = None,
                    Output::Seek { seconds } => {
                        let step = Duration::from_secs(u64::from(seconds.unsigned_abs()));
                        self.at = position.map(|p| {
                            if *seconds < 0 {
                                p.saturating_sub(step)
                            } else {
                                (p + step).min(PROGRAMME)
                            }
                        });
                    }
                    Output::Pause => {
                        self.at = position;
                        self.paused = true;
                    }
                    Output::Resume => {
                        self.at = position;
                        self.paused = false;
                    }
                    _ => {}
                }
                self.since = self.now;
                self.outputs.push(o);
            }
        }

        /// Lets `d` pass; the programme ends when it reaches its end.
        fn wait(&mut self, d: Duration) {
            self.now += d;
            if self.position() == Some(PROGRAMME) {
                self.at = None;
                self.talk.handle_input(Input::PlayFinished, self.now);
            }
            self.talk.handle_timeout(self.now);
            self.perform();
        }

        fn press(&mut self, key: char) {
            self.outputs.clear();
            self.talk.handle_input(Input::Key(key), self.now);
            self.perform();
        }

        /// Into the `news` message: French, then menu key 5.
        fn enter_the_programme(&mut self) {
            self.wait(Duration::from_secs(2));
            self.press('1');
            self.wait(Duration::from_secs(2));
            self.press('5');
            assert!(
                self.outputs.iter().any(|o| matches!(o, Output::Play(p)
                    if p.iter().any(|p| p.name == "warning_signs"))),
                "{:?}",
                self.outputs
            );
        }

        fn entered(&self, node: &str) -> bool {
            self.outputs.iter().any(|o| {
                matches!(o, Output::Write(Write { op: WriteOp::Visit { node: n, .. }, .. }) if n == node)
            })
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn forward_twice_then_back_once_is_ten_seconds_on() {
        let mut p = Phone::new(true);
        p.enter_the_programme();
        p.wait(60 * SEC);
        p.press('6');
        assert_eq!(p.outputs, [Output::Seek { seconds: 10 }]);
        p.press('6');
        p.press('4');
        assert_eq!(p.outputs, [Output::Seek { seconds: -10 }]);
        assert_eq!(p.position(), Some(70 * SEC));
        // Back past the start is held at the start.
        for _ in 0..10 {
            p.press('4');
        }
        assert_eq!(p.position(), Some(Duration::ZERO));
    }

    #[test]
    fn pause_holds_the_programme_and_the_same_key_resumes_it() {
        let mut p = Phone::new(true);
        p.enter_the_programme();
        p.wait(30 * SEC);
        p.press('5');
        assert_eq!(p.outputs, [Output::Pause]);
        p.wait(5 * 60 * SEC);
        assert_eq!(p.position(), Some(30 * SEC));
        assert!(!p.talk.is_finished());
        p.press('5');
        assert_eq!(p.outputs, [Output::Resume]);
        p.wait(10 * SEC);
        assert_eq!(p.position(), Some(40 * SEC));
    }

    #[test]
    fn skip_stops_the_programme_and_goes_to_its_next_node() {
        let mut p = Phone::new(true);
        p.enter_the_programme();
        p.wait(90 * SEC);
        p.press('#');
        assert_eq!(p.outputs.first(), Some(&Output::StopPlayback));
        assert!(p.entered("menu"), "{:?}", p.outputs);
        assert!(p.outputs.iter().any(|o| matches!(o, Output::Play(_))));
    }

    #[test]
    fn other_keys_do_not_cut_a_programme_short_and_it_plays_to_its_end() {
        let mut p = Phone::new(true);
        p.enter_the_programme();
        p.press('9');
        assert!(p.outputs.is_empty(), "{:?}", p.outputs);
        // The whole programme, longer than the server's 10-minute default:
        // `max_call` keeps the line open.
        p.outputs.clear();
        p.wait(PROGRAMME);
        assert!(p.entered("menu"), "{:?}", p.outputs);
        assert!(!p.talk.is_finished());
    }

    #[test]
    fn without_replay_a_key_during_a_message_barges_in_as_before() {
        let mut p = Phone::new(false);
        p.enter_the_programme();
        p.press('6');
        assert_eq!(p.outputs.first(), Some(&Output::StopPlayback));
        assert!(p.entered("menu"));
        assert!(
            !p.outputs
                .iter()
                .any(|o| matches!(o, Output::Seek { .. } | Output::Pause))
        );
    }
}
