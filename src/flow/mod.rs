//! The call-flow engine: one call's walk through a campaign, as a pure state machine.
//!
//! A channel (the terminal simulator, SIP, a provider webhook, the browser) turns what
//! it hears into [`Event`]s and performs the [`Action`]s the engine returns. The
//! engine never reads a clock, touches a socket or the database: the time comes
//! with every event, so tests run a whole call in microseconds of simulated time,
//! and the state ([`Call`]) serializes, so a webhook call can continue on another
//! process.
//!
//! The contract with a channel:
//! - `Play` replaces whatever is playing; the channel reports `PromptFinished` when
//!   the latest `Play` has played to its end. After `StopPlayback` (barge-in) it
//!   reports nothing for that play.
//! - The channel arms one timer at [`Call::next_deadline`] after every `handle` and
//!   sends `Timeout` when it fires (a stale timer is harmless: the engine checks).
//! - During `Record`, the channel stops on `StopRecording`, silence, the `max` or a
//!   hang-up, stores the recording itself, and reports `RecordingFinished` (before
//!   `HungUp` when the caller hung up).
//! - `Seek`, `Pause` and `Resume` (only during a message of a campaign with
//!   `[replay]`) act on the latest `Play`; a seek past its end finishes it (the
//!   channel reports `PromptFinished`). A channel that cannot seek or pause (a
//!   provider's webhook) ignores them: the engine's state does not depend on them.
//! - `Finished` is always the last action of a call; `HangUp` comes before it when the
//!   engine, not the caller, ends the call.

mod engine;
#[cfg(test)]
mod tests;

pub use engine::{Call, EngineOptions, keys_accepted};

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a channel tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call is connected: the flow starts.
    Answered,
    /// The latest `Play` played to its end.
    PromptFinished,
    /// The caller pressed a key (`0`-`9`, `*`, `#`).
    Digit(char),
    /// A deadline given by [`Call::next_deadline`] has passed.
    Timeout,
    /// A `Record` ended (by `#`, silence, `max` or hang-up).
    RecordingFinished { duration: Duration },
    /// A `Transfer` could not reach its destination (busy, no answer, refused).
    TransferFailed,
    /// The caller hung up (or the line dropped).
    HungUp,
}

/// One recording to play: a prompt name in a language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub language: String,
    pub name: String,
}

/// What the engine asks the channel to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The call entered a node (for logs, the funnel and the simulator's printout).
    Enter { node: String },
    /// Play these recordings one after the other; with `bargein`, a key stops them.
    Play { prompts: Vec<Prompt>, bargein: bool },
    /// Stop the prompt now (a key barged in).
    StopPlayback,
    /// Move within what is playing by this many seconds (back when negative),
    /// clamped to the start and end of the current prompt: a listener's replay key
    /// during a message of a campaign with `[replay]`.
    Seek { seconds: i32 },
    /// Hold what is playing where it is (the line stays open, silent) until
    /// `Resume`, a new `Play` or `StopPlayback`.
    Pause,
    /// Go on playing from where `Pause` held it.
    Resume,
    /// Wait for a key until `until`.
    CollectDigits { until: DateTime<Utc> },
    /// Beep, then record the caller for at most `max`; `finish_on` ends it early.
    Record {
        node: String,
        max: Duration,
        finish_on: char,
    },
    /// End the recording in progress (the caller pressed `finish_on`).
    StopRecording,
    /// Connect the caller to this SIP URI or `tel:` number.
    Transfer { to: String },
    /// The caller's language is now known.
    SetLanguage { language: String },
    /// Store this answer now (it must survive a hang-up one second later).
    StoreAnswer {
        question: String,
        choice: String,
        digit: char,
        broadcast: Option<DateTime<Utc>>,
    },
    /// The call reached a hangup node: it is completed, whatever happens next.
    Completed,
    /// Drop the line.
    HangUp,
    /// The call is over; always the last action.
    Finished {
        outcome: Outcome,
        last_node: Option<String>,
    },
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The flow reached a hangup node and ended the call.
    Completed,
    /// The caller hung up before the flow ended.
    CallerHangup,
    /// The caller was put through to the transfer destination.
    Transferred,
    /// Retries ran out on a node with no `on_fail` to go to.
    NoInput,
    /// A transfer failed and its node has no `on_fail`.
    TransferFailed,
    /// The call reached the maximum call length.
    TooLong,
    /// The flow went round too many nodes without a key from the caller.
    LoopGuard,
    /// The engine's state named a node the campaign no longer has.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::CallerHangup => "caller_hangup",
            Outcome::Transferred => "transferred",
            Outcome::NoInput => "no_input",
            Outcome::TransferFailed => "transfer_failed",
            Outcome::TooLong => "too_long",
            Outcome::LoopGuard => "loop_guard",
            Outcome::Error => "error",
        }
    }
}
