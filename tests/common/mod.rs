//! Helpers shared by the whole-program tests.

use serde_json::Value;

/// The count of `choice` for `question` in a results JSON.
pub fn count(r: &Value, question: &str, choice: &str) -> u64 {
    r["questions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["id"] == question)
        .and_then(|q| q["choices"].as_array()?.iter().find(|c| c["id"] == choice))
        .and_then(|c| c["count"].as_u64())
        .unwrap_or_else(|| panic!("no {question}/{choice} in {r}"))
}
