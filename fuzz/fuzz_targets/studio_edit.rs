//! What the studio's schedule and node editors send (`PUT …/schedule`, `PUT
//! …/nodes/{node}`, `DELETE …/nodes/{node}`): a JSON body and a node id from the
//! path, applied to the example campaign's text with `toml_edit`, then judged by
//! the loader as the web app does (and the line of its first complaint mapped
//! back to a field). When the result loads, its schedule is asked about the poll
//! and read back as the editor's slots, which go round again.
//!
//! The first byte picks the request: 0 a schedule (the rest is the body); 1 a
//! node (the node id, the separator, the body); 2 a removal (the node id).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::DateTime;
use kuma::campaign::edit::{self, ScheduleEdit};
use kuma::campaign::load_campaign_text;
use kuma::campaign::node_edit::{self, NodeEdit};
use kuma_fuzz::split;
use libfuzzer_sys::fuzz_target;

/// The example campaign's file (every node kind, a schedule).
fn example() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../campaigns/stop-trafficking-mali.toml");
        match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    })
}

/// Loads the edited text as the studio checks it before writing.
fn check(path: &Path, text: &str, field_at: fn(&str, usize) -> Option<String>) {
    let now = DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default();
    match load_campaign_text(path, text) {
        Ok(c) => {
            if let Some(s) = &c.schedule {
                let _ = s.poll(now);
                let _ = s.next_broadcasts(now, 3);
                // The editor's GET shows the schedule as slots; saving them again
                // must be a change the loader judges, never a panic.
                let again = edit::schedule_edit_of(s);
                if let Ok(t) = edit::set_schedule(text, &again) {
                    let _ = load_campaign_text(path, &t);
                }
            }
        }
        Err(diags) => {
            for d in diags.iter().take(3) {
                let _ = field_at(text, d.line);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else {
        return;
    };
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../campaigns/fuzz.toml");
    let text = example();
    match op % 3 {
        0 => {
            let Ok(e) = serde_json::from_slice::<ScheduleEdit>(rest) else {
                return;
            };
            if let Ok(new) = edit::set_schedule(text, &e) {
                check(&path, &new, edit::schedule_field_at);
            }
        }
        1 => {
            let parts = split(rest);
            let id = String::from_utf8_lossy(parts.first().copied().unwrap_or_default());
            let body = parts.get(1).copied().unwrap_or_default();
            let Ok(e) = serde_json::from_slice::<NodeEdit>(body) else {
                return;
            };
            if let Ok((new, _what)) = node_edit::set_node(text, &id, &e) {
                check(&path, &new, node_edit::node_field_at);
            }
        }
        _ => {
            let id = String::from_utf8_lossy(rest);
            if let Ok((new, _what)) = node_edit::remove_node(text, &id) {
                check(&path, &new, node_edit::node_field_at);
            }
        }
    }
});
