//! What every channel counts of its calls, under the same names (described for
//! `/metrics` by `kuma serve`).

use crate::flow::{Action, Outcome};

pub const CALLS_TOTAL: &str = "kuma_calls_total";
pub const ANSWERS_TOTAL: &str = "kuma_answers_total";

/// Counts what performing `action` stored: a poll answer (`answer`: the store
/// said it was one, not one given again) or the end of a call, by outcome.
pub fn stored(action: &Action, answer: bool) {
    let ended = match action {
        Action::Finished { outcome, .. } => Some(*outcome),
        _ => None,
    };
    count(answer, ended);
}

/// Counts a stored answer, and a call's end by its outcome.
pub fn count(answer: bool, ended: Option<Outcome>) {
    if answer {
        metrics::counter!(ANSWERS_TOTAL).increment(1);
    }
    if let Some(outcome) = ended {
        metrics::counter!(CALLS_TOTAL, "outcome" => outcome.as_str()).increment(1);
    }
}
