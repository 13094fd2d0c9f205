//! What every channel counts of its calls, under the same names (described for
//! `/metrics` by `kuma serve`).

pub const CALLS_TOTAL: &str = "kuma_calls_total";
pub const ANSWERS_TOTAL: &str = "kuma_answers_total";

/// Counts poll answers stored.
pub fn answers() -> metrics::Counter {
    metrics::counter!(ANSWERS_TOTAL)
}

/// Counts calls' ends stored with this outcome (`flow::Outcome::as_str`).
pub fn ends(outcome: &str) -> metrics::Counter {
    metrics::counter!(CALLS_TOTAL, "outcome" => outcome.to_owned())
}
