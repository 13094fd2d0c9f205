//! The simulated channel: one call through the call runtime
//! ([`Conversation`], the same as a SIP or a webhook call) and the real store,
//! with a caller that is a script, a person at a terminal, or a random listener.
//!
//! It is a thin adapter like the SIP shell (see STYLE.md): it feeds the
//! conversation what its [`Caller`] does whenever the flow waits, and performs
//! the conversation's outputs, its store writes as the other channels do
//! (`conversation::writes::perform`). So a simulated call stores what a real
//! one would: node visits, the language, answers, subscriptions (a number is
//! sealed as the call starts, as over SIP), its end; and it is counted the
//! same.
//!
//! Media and time are simulated: the clock is an `Instant` moved by hand (as in
//! the runtime's own tests), to the end of a prompt ([`PROMPT_TIME`] each), of
//! what the listener says at a record node, a second after each key, or to the
//! runtime's next timeout (a keypad timeout, the call's length limit),
//! whichever comes first. A call of minutes runs in milliseconds and
//! `kuma simulate` can fill a database quickly. What is not simulated is not
//! stored: a voice message leaves no file, so no recording row points at one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::campaign::{Campaign, Node};
use crate::conversation::runtime::{self, Conversation, Input};
use crate::conversation::{start, subscription, writes};
use crate::flow::{Outcome, Prompt};
use crate::outbound::Policy;
use crate::store::{CallRow, Keys, Store, StoreError};

/// What a [`Step::Output`] shows: the conversation's outputs and writes.
pub use crate::conversation::runtime::{Output, Write};
pub use crate::store::WriteOp;

/// How long a simulated prompt plays.
pub const PROMPT_TIME: Duration = Duration::from_secs(4);
/// How long after the flow waits (or a message starts) a simulated key comes.
const KEY_TIME: Duration = Duration::from_secs(1);
/// More steps than any call takes (each moves the clock, and the engine ends a
/// call at its length limit): a bound, so that no flow can spin for ever.
const MAX_STEPS: u32 = 100_000;

/// What the listener does when the flow waits for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Key(char),
    /// Says nothing until the timeout.
    Silence,
    HangUp,
}

/// The listener at the other end of a simulated call.
pub trait Caller {
    /// The flow waits for a key at `node`.
    fn key(&mut self, campaign: &Campaign, node: &Node) -> Reply;
    /// Whether the transfer destination answers.
    fn transfer_answers(&mut self) -> bool {
        true
    }
    /// A key while a message plays in a campaign with `[replay]` (back,
    /// forward, pause, skip…); `None` lets it play to its end.
    fn during_message(&mut self, _campaign: &Campaign, _node: &Node) -> Option<char> {
        None
    }
    /// How long the listener speaks at a record node.
    fn speak(&mut self, max: Duration) -> Duration {
        max.min(Duration::from_secs(10))
    }
}

/// Something that happened in a simulated call, for printing.
#[derive(Debug)]
pub enum Step<'a> {
    /// What the conversation asked for (a store write, a recording, a
    /// transfer, a seek…), just before it is performed; plays are [`Step::Play`].
    Output(&'a Output),
    /// These prompts play; without `bargein` a key does not cut them short.
    Play {
        prompts: &'a [Prompt],
        bargein: bool,
    },
    /// The flow waits for a key.
    WaitingForKey,
    Key(char),
    Silence,
    CallerHangsUp,
    Recorded(Duration),
    TransferAnswered,
    TransferFailed,
}

/// How a simulated call went.
#[derive(Debug, Clone)]
pub struct Report {
    pub call: CallRow,
    pub outcome: Outcome,
    pub answers: usize,
    pub ended_at: DateTime<Utc>,
}

/// Who calls and when.
pub struct Setup<'a> {
    pub campaign: Arc<Campaign>,
    /// The caller's number, as a gateway gives it: turned into a pseudonym and
    /// sealed (kept only if they subscribe) as the call starts, as over SIP;
    /// never stored or printed.
    pub number: &'a str,
    /// The database's pseudonyms and sealer.
    pub keys: &'a Keys,
    /// The station's call-back rules (who may subscribe), shared by every
    /// call it sets up.
    pub policy: Arc<Policy>,
    pub channel: &'a str,
    pub start: DateTime<Utc>,
}

/// What plays on the simulated line.
#[derive(Debug, Clone, Copy)]
enum Media {
    /// Nothing: the flow waits for a key (or for nothing, and the call ends).
    Quiet,
    /// Prompts play until `ends`.
    Playing { ends: Instant },
    /// The listener is recorded, since `since`.
    Recording { since: Instant, max: Duration },
    /// The call was handed to the transfer destination.
    Transferring,
}

/// One simulated call: the conversation, the simulated clock and line, and
/// where its writes go.
struct Line<'a, 'o> {
    talk: Conversation,
    now: Instant,
    media: Media,
    store: &'a Store,
    observe: &'o mut (dyn FnMut(Step<'_>) + Send),
    answers: usize,
    outcome: Option<Outcome>,
    ended_at: Option<DateTime<Utc>>,
}

/// Runs one call to its end. Every write is committed the moment the
/// conversation asks for it, so a failure half-way (a database that goes away)
/// loses nothing already given.
pub async fn run_call(
    store: &Store,
    setup: &Setup<'_>,
    caller: &mut (dyn Caller + Send),
    observe: &mut (dyn FnMut(Step<'_>) + Send),
) -> Result<Report, StoreError> {
    let c = &setup.campaign;
    let pseudonym = setup.keys.pseudonyms.pseudonym(setup.number);
    let sealed = subscription::seal_at_start(
        c,
        &setup.policy,
        &setup.keys.sealer,
        setup.number,
        &crate::outbound::Caller::of(&setup.keys.pseudonyms, &pseudonym, setup.number),
    );
    let new = start::new_call(c, &pseudonym, setup.channel, setup.start);
    let row = store.start_call(&new).await?;
    // The simulated clock's origin: only differences from it are read.
    let origin = Instant::now();
    let talk = Conversation::answered(
        runtime::Start {
            campaign: Arc::clone(c),
            row,
            caller: pseudonym,
            sealed,
            policy: Arc::clone(&setup.policy),
            // No recording is written (see the module's doc).
            recordings: PathBuf::new(),
        },
        setup.start,
        origin,
    );
    let mut line = Line {
        talk,
        now: origin,
        media: Media::Quiet,
        store,
        observe,
        answers: 0,
        outcome: None,
        ended_at: None,
    };
    line.perform().await?;
    let mut steps = 0;
    while !line.talk.is_finished() {
        steps += 1;
        if steps > MAX_STEPS {
            tracing::warn!("simulated call without end: the caller hangs up");
            line.hear(Input::HungUp);
        } else {
            line.step(c, caller).await?;
        }
        line.perform().await?;
    }
    Ok(Report {
        call: row,
        outcome: line.outcome.unwrap_or(Outcome::Error),
        answers: line.answers,
        ended_at: line.ended_at.unwrap_or_else(|| line.talk.time(line.now)),
    })
}

impl Line<'_, '_> {
    fn hear(&mut self, input: Input) {
        self.talk.handle_input(input, self.now);
    }

    /// The listener's next move, by what plays on the line.
    async fn step(
        &mut self,
        c: &Campaign,
        caller: &mut (dyn Caller + Send),
    ) -> Result<(), StoreError> {
        let node = self.talk.engine().node().and_then(|n| c.node(n));
        match self.media {
            Media::Recording { since, max } => {
                let spoken = caller.speak(max).min(max);
                if self.wait_until(since + spoken).await? {
                    (self.observe)(Step::Recorded(spoken));
                    self.close_recording();
                }
            }
            Media::Transferring => {
                self.media = Media::Quiet;
                let ok = caller.transfer_answers();
                (self.observe)(if ok {
                    Step::TransferAnswered
                } else {
                    Step::TransferFailed
                });
                self.hear(Input::TransferResult { ok });
            }
            Media::Playing { ends } => {
                let replay = node
                    .filter(|_| self.talk.engine().takes_replay_keys(c))
                    .and_then(|n| caller.during_message(c, n));
                match replay {
                    Some(k) => self.press(k).await?,
                    None => {
                        if self.wait_until(ends).await? {
                            self.media = Media::Quiet;
                            self.hear(Input::PlayFinished);
                        }
                    }
                }
            }
            Media::Quiet if !self.talk.engine().is_waiting_for_key() => {
                // Nothing plays and nothing is awaited: the engine always ends a
                // call rather than stop, but should it ever, the line drops.
                (self.observe)(Step::CallerHangsUp);
                self.hear(Input::HungUp);
            }
            Media::Quiet => {
                (self.observe)(Step::WaitingForKey);
                match node.map_or(Reply::HangUp, |n| caller.key(c, n)) {
                    Reply::Key(k) => self.press(k).await?,
                    Reply::Silence => {
                        (self.observe)(Step::Silence);
                        // Until the runtime's timeout, which `wait_until` fires.
                        let until = self.talk.poll_timeout().unwrap_or(self.now);
                        self.wait_until(until).await?;
                    }
                    Reply::HangUp => {
                        (self.observe)(Step::CallerHangsUp);
                        self.hear(Input::HungUp);
                    }
                }
            }
        }
        Ok(())
    }

    /// The listener presses `k`, a second from now (unless a timeout comes
    /// first and changes the call).
    async fn press(&mut self, k: char) -> Result<(), StoreError> {
        if self.wait_until(self.now + KEY_TIME).await? {
            (self.observe)(Step::Key(k));
            self.hear(Input::Key(k));
        }
        Ok(())
    }

    /// Moves the clock to `until`, firing the runtime's timeouts on the way:
    /// false when one fired (the call moved on without the listener: what
    /// they were about to do is moot).
    async fn wait_until(&mut self, until: Instant) -> Result<bool, StoreError> {
        if let Some(at) = self.talk.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.talk.handle_timeout(self.now);
            self.perform().await?;
            return Ok(false);
        }
        self.now = self.now.max(until);
        Ok(true)
    }

    /// Closes the recording in progress: the runtime stores it (here: does
    /// not, see the module's doc) before anything else.
    fn close_recording(&mut self) {
        if let Media::Recording { since, .. } = self.media {
            self.media = Media::Quiet;
            let duration = self.now.saturating_duration_since(since);
            self.hear(Input::RecordingClosed { duration });
        }
    }

    /// Performs what the conversation asks, in order.
    async fn perform(&mut self) -> Result<(), StoreError> {
        while let Some(output) = self.talk.poll_output(self.now) {
            match &output {
                Output::Play(prompts) => (self.observe)(Step::Play {
                    prompts,
                    bargein: self.talk.engine().bargein().unwrap_or(true),
                }),
                Output::Write(Write {
                    op: WriteOp::Recording { .. },
                }) => {}
                other => (self.observe)(Step::Output(other)),
            }
            match output {
                Output::Write(w) => self.write(w).await?,
                Output::Play(prompts) if prompts.is_empty() => {
                    self.media = Media::Quiet;
                    self.hear(Input::PlayFinished);
                }
                Output::Play(prompts) => {
                    let n = u32::try_from(prompts.len()).unwrap_or(u32::MAX);
                    let ends = self.now + PROMPT_TIME.saturating_mul(n);
                    self.media = Media::Playing { ends };
                }
                Output::StopPlayback => self.media = Media::Quiet,
                Output::Record { max, .. } => {
                    self.media = Media::Recording {
                        since: self.now,
                        max,
                    }
                }
                Output::StopRecording => self.close_recording(),
                Output::Transfer { .. } => self.media = Media::Transferring,
                Output::Finished(outcome) => self.outcome = Some(outcome),
                // A simulated play ends on time whatever the listener does
                // within it; kuma's hang-up is the end that follows.
                Output::Seek { .. } | Output::Pause | Output::Resume | Output::HangUp => {}
                // The studio line's: a listener's conversation asks none.
                Output::PlaySounds(_) | Output::CheckPin { .. } | Output::Keep(_) => {}
            }
        }
        Ok(())
    }

    async fn write(&mut self, w: Write) -> Result<(), StoreError> {
        let answer = match &w.op {
            // A simulated voice leaves no file for a row to point at.
            WriteOp::Recording { .. } => return Ok(()),
            WriteOp::End { at, .. } => {
                self.ended_at = Some(*at);
                false
            }
            op => op.is_answer(),
        };
        writes::perform(w, self.store).await?;
        if answer {
            self.answers += 1;
        }
        Ok(())
    }
}

pub use crate::flow::keys_accepted as valid_keys;

#[cfg(test)]
mod tests {
    //! Whole simulated calls into a real SQLite store: what they store, and
    //! when (the simulated clock).

    use std::collections::VecDeque;
    use std::path::Path;

    use super::*;
    use crate::campaign::load_campaign_text;

    const CAMPAIGN: &str = r#"
title = "Simulator test"
languages = ["fr"]
audio = "../audio/stop-trafficking-mali"
numbers = ["2000"]
max_call = "1m"

[defaults]
timeout = "6s"
retries = 1

[[node]]
id = "menu"
kind = "menu"
prompt = "main_menu"
options = { "1" = "q_calls", "2" = "leave_message", "3" = "helpline", "4" = "news" }
on_fail = "goodbye"

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
on_fail = "goodbye"

[[node]]
id = "news"
kind = "message"
prompt = "warning_signs"
next = "menu"

[[node]]
id = "goodbye"
kind = "hangup"
prompt = "goodbye"
"#;

    /// Keys from a list, then a hang-up.
    struct Script(VecDeque<Reply>);

    impl Caller for Script {
        fn key(&mut self, _: &Campaign, _: &Node) -> Reply {
            self.0.pop_front().unwrap_or(Reply::HangUp)
        }
    }

    fn keys(s: &str) -> Script {
        Script(
            s.chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| match c {
                    '_' => Reply::Silence,
                    k => Reply::Key(k),
                })
                .collect(),
        )
    }

    struct Station {
        _dir: tempfile::TempDir,
        store: Store,
        keys: Keys,
        policy: Arc<Policy>,
        campaign: Arc<Campaign>,
    }

    async fn station() -> Station {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kuma.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let keys = store.keys(b"a simulator test secret").await.unwrap();
        let campaign = load_campaign_text(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("campaigns/sim-test.toml"),
            CAMPAIGN,
        )
        .unwrap();
        Station {
            _dir: dir,
            store,
            keys,
            policy: Arc::new(Policy::default()),
            campaign: Arc::new(campaign),
        }
    }

    fn start() -> DateTime<Utc> {
        "2026-12-01T19:30:00Z".parse().unwrap()
    }

    impl Station {
        async fn call(&self, number: &str, script: &str) -> Report {
            let setup = Setup {
                campaign: Arc::clone(&self.campaign),
                number,
                keys: &self.keys,
                policy: Arc::clone(&self.policy),
                channel: "simulate",
                start: start(),
            };
            run_call(&self.store, &setup, &mut keys(script), &mut |_| {})
                .await
                .unwrap()
        }

        async fn subscribers(&self) -> u64 {
            self.store
                .callbacks()
                .subscriber_count(&self.campaign.id)
                .await
                .unwrap()
        }
    }

    #[tokio::test]
    async fn the_subscribe_choice_subscribes_the_caller_as_over_sip_and_another_answer_erases_them()
    {
        let s = station().await;
        let r = s.call("+22376123456", "1 1").await;
        assert_eq!((r.outcome, r.answers), (Outcome::Completed, 1));
        assert_eq!(s.subscribers().await, 1);
        // The number is kept sealed, for the caller's pseudonym only.
        let caller = s.keys.pseudonyms.pseudonym("+22376123456");
        assert_eq!(
            s.store.call_caller(r.call).await.unwrap().as_deref(),
            Some(caller.as_str())
        );
        // "No" the next time: erased.
        s.call("+22376123456", "1 2").await;
        assert_eq!(s.subscribers().await, 0);
        // A caller ID kuma could not call back is not kept; the answer is.
        let r = s.call("simulator", "1 1").await;
        assert_eq!(r.answers, 1);
        assert_eq!(s.subscribers().await, 0);
    }

    #[tokio::test]
    async fn the_clock_runs_to_the_end_of_prompts_keys_and_the_runtimes_timeouts() {
        let s = station().await;
        let secs = |r: &Report| (r.ended_at - start()).num_seconds();
        // The menu (4 s), a key a second later, "connecting" (4 s): a transfer
        // taken ends kuma's part of the call at once, as over SIP.
        let r = s.call("+22376000001", "3").await;
        assert_eq!((r.outcome, secs(&r)), (Outcome::Transferred, 9));
        // Silence lasts until the keypad timeout (6 s): the menu again (this
        // campaign has no `no_input` prompt), silence again, then the menu's
        // on_fail, goodbye.
        let r = s.call("+22376000002", "_ _").await;
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!(secs(&r), 4 + 6 + 4 + 6 + 4, "{r:?}");
        // A listener who goes round the news for ever meets `max_call` (1 m)
        // at the very second, mid-prompt.
        let r = s.call("+22376000003", &"4".repeat(50)).await;
        assert_eq!((r.outcome, secs(&r)), (Outcome::TooLong, 60));
    }

    #[tokio::test]
    async fn a_voice_message_is_simulated_and_leaves_no_recording_row() {
        let s = station().await;
        let r = s.call("+22376000004", "2").await;
        // Menu, key, the record node's prompt, ten seconds of voice, goodbye.
        assert_eq!(r.outcome, Outcome::Completed);
        assert_eq!((r.ended_at - start()).num_seconds(), 4 + 1 + 4 + 10 + 4);
        assert!(s.store.recordings(&s.campaign.id).await.unwrap().is_empty());
    }
}
