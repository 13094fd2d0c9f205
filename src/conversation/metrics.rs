//! What every channel counts of its calls, under the same names (described for
//! `/metrics` by `kuma serve`).

pub const CALLS_TOTAL: &str = "kuma_calls_total";
pub const ANSWERS_TOTAL: &str = "kuma_answers_total";

/// A poll answer was stored.
pub fn answered() {
    metrics::counter!(ANSWERS_TOTAL).increment(1);
}

/// A call's end was stored, with this outcome (`flow::Outcome::as_str`).
pub fn ended(outcome: &str) {
    metrics::counter!(CALLS_TOTAL, "outcome" => outcome.to_owned()).increment(1);
}
