//! What every channel counts of its calls, under the same names (described for
//! `/metrics` by `kuma serve`).

use crate::flow::Action;

pub const CALLS_TOTAL: &str = "kuma_calls_total";
pub const ANSWERS_TOTAL: &str = "kuma_answers_total";

/// Counts what performing `action` stored: a poll answer (`answer`: the store
/// said it was one, not one given again) or the end of a call, by outcome.
pub fn stored(action: &Action, answer: bool) {
    if answer {
        metrics::counter!(ANSWERS_TOTAL).increment(1);
    }
    if let Action::Finished { outcome, .. } = action {
        metrics::counter!(CALLS_TOTAL, "outcome" => outcome.as_str()).increment(1);
    }
}
