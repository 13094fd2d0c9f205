//! A campaign file, as a broadcaster may write it: loaded and validated (as if it
//! were `campaigns/fuzz.toml` beside the example's recordings, so a mutation of
//! the example stays valid often enough), and when it loads, its schedule asked
//! about the poll and a call walked through its flow by the engine (pressing keys,
//! letting every wait time out) — where the file's durations meet date arithmetic.
#![no_main]

use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use kuma::campaign::{Campaign, load_campaign_text};
use kuma::flow::{Action, Call, EngineOptions, Event};
use libfuzzer_sys::fuzz_target;

fn walk(c: &Campaign, keys: &[char], start: DateTime<Utc>) {
    let mut call = Call::new(EngineOptions::default());
    let mut now = start;
    let mut actions = call.handle(c, Event::Answered, now);
    let mut keys = keys.iter().cycle();
    for _ in 0..80 {
        if call.is_ended() {
            return;
        }
        let playing = actions.iter().any(|a| matches!(a, Action::Play { .. }));
        let event = if playing {
            Event::PromptFinished
        } else if call.is_waiting_for_key() {
            match keys.next() {
                Some(&k) => Event::Digit(k),
                None => {
                    now = call.next_deadline().unwrap_or(now).max(now);
                    Event::Timeout
                }
            }
        } else if call.is_recording() {
            Event::RecordingFinished {
                duration: std::time::Duration::from_secs(5),
            }
        } else if call.is_transferring() {
            Event::TransferFailed
        } else {
            Event::PromptFinished
        };
        // A deadline may be the end of time (see `schedule::later`).
        now = now.checked_add_signed(TimeDelta::seconds(1)).unwrap_or(now);
        actions = call.handle(c, event, now);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../campaigns/fuzz.toml");
    let Ok(c) = load_campaign_text(&path, text) else {
        return;
    };
    let now = DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default();
    if let Some(schedule) = &c.schedule {
        let _ = schedule.poll(now);
        let _ = schedule.next_broadcasts(now, 3);
    }
    walk(&c, &[], now);
    walk(&c, &['1', '2', '1', '3', '#', '9', '*', '0'], now);
});
