//! The simulated channel: one call through the real engine and the real store,
//! with a caller that is a script, a person at a terminal, or a random listener.
//!
//! It is the first adapter around the flow engine (see STYLE.md): it turns the
//! engine's actions into store writes and asks its [`Caller`] what the listener does
//! whenever the flow waits. Time is simulated: a prompt takes a few seconds, a
//! silence lasts until the engine's deadline, so a call of minutes runs in
//! milliseconds and `kuma simulate` can fill a database quickly.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::campaign::{Campaign, Node};
use crate::flow::{Action, Call, EngineOptions, Event, Outcome};
use crate::store::{CallEnd, CallRow, Store, StoreError};

/// How long a simulated prompt plays.
const PROMPT_TIME: Duration = Duration::from_secs(4);
/// How long a simulated helpline conversation lasts.
const TRANSFER_TIME: Duration = Duration::from_secs(90);

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
    /// How long the listener speaks at a record node.
    fn speak(&mut self, max: Duration) -> Duration {
        max.min(Duration::from_secs(10))
    }
}

/// Something that happened in a simulated call, for printing.
#[derive(Debug)]
pub enum Step<'a> {
    Action(&'a Action),
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
    pub campaign: &'a Campaign,
    /// The caller's pseudonym.
    pub caller: &'a str,
    pub channel: &'a str,
    pub start: DateTime<Utc>,
    pub options: EngineOptions,
}

/// Runs one call to its end. Answers are stored the moment the engine asks, so a
/// failure half-way (a database that goes away) loses nothing already given.
pub async fn run_call(
    store: &Store,
    setup: &Setup<'_>,
    caller: &mut (dyn Caller + Send),
    observe: &mut (dyn FnMut(Step<'_>) + Send),
) -> Result<Report, StoreError> {
    let c = setup.campaign;
    let mut now = setup.start;
    let id = store
        .start_call(&crate::conversation::start::new_call(
            c,
            setup.caller,
            setup.channel,
            now,
        ))
        .await?;
    let mut call = Call::new(setup.options);
    let mut answers = 0;
    let mut next = Some(Event::Answered);
    while let Some(event) = next.take() {
        let actions = call.handle(c, event, now);
        for action in &actions {
            observe(Step::Action(action));
            match action {
                Action::Play { prompts, .. } => {
                    now += PROMPT_TIME * prompts.len() as u32;
                    next = Some(Event::PromptFinished);
                }
                Action::CollectDigits { .. } => {
                    let node = call.node().and_then(|n| c.node(n));
                    let reply = node.map_or(Reply::HangUp, |n| caller.key(c, n));
                    next = Some(match reply {
                        Reply::Key(k) => {
                            observe(Step::Key(k));
                            now += chrono::Duration::seconds(1);
                            Event::Digit(k)
                        }
                        Reply::Silence => {
                            observe(Step::Silence);
                            now = call.next_deadline().unwrap_or(now);
                            Event::Timeout
                        }
                        Reply::HangUp => {
                            observe(Step::CallerHangsUp);
                            Event::HungUp
                        }
                    });
                }
                Action::Record { max, .. } => {
                    let spoken = caller.speak(*max).min(*max);
                    now += spoken;
                    observe(Step::Recorded(spoken));
                    next = Some(Event::RecordingFinished { duration: spoken });
                }
                Action::Transfer { .. } => {
                    if caller.transfer_answers() {
                        observe(Step::TransferAnswered);
                        now += TRANSFER_TIME;
                        next = Some(Event::HungUp);
                    } else {
                        observe(Step::TransferFailed);
                        next = Some(Event::TransferFailed);
                    }
                }
                Action::Enter { .. }
                | Action::SetLanguage { .. }
                | Action::StoreAnswer { .. }
                | Action::Completed => {
                    if store.store_action(id, action, now).await? {
                        answers += 1;
                    }
                }
                Action::Finished { outcome, .. } => {
                    store.store_action(id, action, now).await?;
                    return Ok(Report {
                        call: id,
                        outcome: *outcome,
                        answers,
                        ended_at: now,
                    });
                }
                Action::StopPlayback | Action::StopRecording | Action::HangUp => {}
            }
        }
    }
    // The engine always finishes a call; if it ever stopped asking for anything,
    // end the call rather than leave it open.
    let outcome = Outcome::Error;
    store
        .end_call(
            id,
            &CallEnd {
                ended_at: now,
                outcome: outcome.as_str(),
                last_node: call.node(),
            },
        )
        .await?;
    Ok(Report {
        call: id,
        outcome,
        answers,
        ended_at: now,
    })
}

pub use crate::flow::keys_accepted as valid_keys;
