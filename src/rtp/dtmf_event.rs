//! Keypad keys sent as RFC 4733 telephone-events, each reported once.
//!
//! Phones, trunks and most GSM gateways send a key press as a run of RTP packets
//! with the negotiated `telephone-event/8000` payload type, each carrying 4 bytes:
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! All packets of one press share the RTP timestamp of its start; the duration grows
//! every 50 ms or so, and the last packet, with the E bit, is sent three times
//! (RFC 4733 §2.5.1.4) because it may be lost. So a press is identified by its
//! timestamp, and [`DtmfReceiver`] reports it on the **first** packet of it that
//! arrives, whichever that is: the start, a middle packet when the start was lost, or
//! even one of the end packets. Reporting at the start answers the caller as soon as
//! possible; the flow engine needs no duration.
//!
//! The identity is (SSRC, timestamp, event), and it is forgotten [`FORGET_AFTER`]
//! after its last packet. The SSRC is part of it because some senders start a new
//! stream for each burst of keys with the same starting timestamp (sipp's
//! `play_dtmf` does: a new SSRC, timestamps from 24000 every time); the event code,
//! because a careless sender may reuse one timestamp for different keys; the time
//! limit, so that a press whose identity repeats much later still counts. A few
//! identities are remembered at once so that a late, reordered end packet of the
//! previous key is not taken for a new press.
//!
//! Events 0–15 are the keys `0`–`9`, `*`, `#`, `A`–`D`; other events (flash, the
//! modem and fax tones of RFC 4734) are ignored.
//!
//! The receiver is sans-IO: the session feeds it payloads, RTP header fields and the
//! time of arrival.

use std::time::{Duration, Instant};

use thiserror::Error;

/// How long an event's identity is remembered after its last packet. The three end
/// packets come within ~40 ms of each other and a held key refreshes every 50 ms, so
/// even a long press with a second of its packets lost stays one press; and a sender
/// that reuses an identity for a later press (none should) is still heard after that.
pub const FORGET_AFTER: Duration = Duration::from_secs(3);

/// How many recent presses are remembered (a reordered packet of one of them is not
/// a new press).
const REMEMBERED: usize = 4;

/// The payload of one telephone-event packet (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code: 0–9, 10 = `*`, 11 = `#`, 12–15 = `A`–`D`, others not keys.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level, 0 to −63 dBm0, as a positive number.
    pub volume: u8,
    /// Duration so far, in timestamp units (1/8000 s).
    pub duration: u16,
}

/// A telephone-event payload that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EventError {
    /// Shorter than the 4 bytes of an event.
    #[error("telephone-event payload of {0} bytes, expected 4")]
    TooShort(usize),
}

impl TelephoneEvent {
    /// Reads the first event of a payload. RFC 4733 allows several events in one
    /// packet only for redundancy (RFC 2198), which kuma does not negotiate, so
    /// extra bytes are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, EventError> {
        let Some(&[event, flags, d0, d1]) = payload.first_chunk::<4>() else {
            return Err(EventError::TooShort(payload.len()));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The key this event stands for, if it is one of the 16 keypad events.
    pub fn key(&self) -> Option<char> {
        key_for_event(self.event)
    }

    /// Writes the 4-byte payload (used by tests and benchmarks to play a caller).
    pub fn to_bytes(&self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d0,
            d1,
        ]
    }
}

/// The keypad key of RFC 4733 event codes 0–15.
pub fn key_for_event(event: u8) -> Option<char> {
    const KEYS: &[u8; 16] = b"0123456789*#ABCD";
    KEYS.get(usize::from(event)).map(|&k| char::from(k))
}

/// A key press, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfKey {
    /// `0`–`9`, `*`, `#` or `A`–`D`.
    pub key: char,
    /// The RTP timestamp that identifies the press (its start).
    pub timestamp: u32,
    /// True when the first packet heard was already an end packet (the start and
    /// middle were lost, or the press was very short).
    pub heard_only_the_end: bool,
}

/// What one telephone-event packet meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// A new key press: hand it to the flow engine.
    Key(DtmfKey),
    /// Another packet of a press already reported.
    Repeat,
    /// A valid event that is not a keypad key (flash, fax tones, …).
    NotAKey(u8),
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    ssrc: u32,
    timestamp: u32,
    event: u8,
    last_packet: Instant,
}

/// Turns telephone-event packets into key presses, each reported once.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    /// Recent presses, oldest first.
    seen: [Option<Seen>; REMEMBERED],
    next_slot: usize,
}

impl DtmfReceiver {
    /// A receiver that has heard nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one telephone-event packet, given its payload, the header's SSRC and
    /// timestamp, and when it arrived.
    pub fn handle(
        &mut self,
        ssrc: u32,
        timestamp: u32,
        payload: &[u8],
        now: Instant,
    ) -> Result<EventOutcome, EventError> {
        let event = TelephoneEvent::parse(payload)?;
        let Some(key) = event.key() else {
            return Ok(EventOutcome::NotAKey(event.event));
        };

        for seen in self.seen.iter_mut().flatten() {
            let same =
                seen.ssrc == ssrc && seen.timestamp == timestamp && seen.event == event.event;
            if same && now.saturating_duration_since(seen.last_packet) < FORGET_AFTER {
                seen.last_packet = seen.last_packet.max(now);
                return Ok(EventOutcome::Repeat);
            }
        }

        // A new press: remember it in place of the oldest one.
        self.seen[self.next_slot] = Some(Seen {
            ssrc,
            timestamp,
            event: event.event,
            last_packet: now,
        });
        self.next_slot = (self.next_slot + 1) % REMEMBERED;
        Ok(EventOutcome::Key(DtmfKey {
            key,
            timestamp,
            heard_only_the_end: event.end,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    /// The packets of one press as RFC 4733 §2.5.1 describes them: a start, updates
    /// every 50 ms, and three end packets; with their arrival times.
    fn press(event: u8, start_ms: u64, length_ms: u16) -> Vec<([u8; 4], u64)> {
        let mut packets = vec![];
        let mut t = 0;
        while t < length_ms {
            packets.push((payload(event, false, t * 8), start_ms + u64::from(t)));
            t += 50;
        }
        for i in 0..3 {
            packets.push((
                payload(event, true, length_ms * 8),
                start_ms + u64::from(length_ms) + i * 20,
            ));
        }
        packets
    }

    fn keys(rx: &mut DtmfReceiver, base: Instant, packets: &[(u32, u32, [u8; 4], u64)]) -> String {
        packets
            .iter()
            .filter_map(|&(ssrc, ts, p, at)| {
                match rx.handle(ssrc, ts, &p, base + Duration::from_millis(at)) {
                    Ok(EventOutcome::Key(k)) => Some(k.key),
                    _ => None,
                }
            })
            .collect()
    }

    #[test]
    fn parses_the_rfc_4733_layout() {
        // Key 9, end bit, volume 10, duration 1600 (200 ms).
        let e = TelephoneEvent::parse(&[9, 0x8A, 0x06, 0x40]).unwrap();
        assert_eq!(
            e,
            TelephoneEvent {
                event: 9,
                end: true,
                volume: 10,
                duration: 1600
            }
        );
        assert_eq!(e.to_bytes(), [9, 0x8A, 0x06, 0x40]);
        // The reserved bit is ignored.
        assert_eq!(TelephoneEvent::parse(&[1, 0x4A, 0, 0]).unwrap().volume, 10);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(EventError::TooShort(3))
        );
    }

    #[test]
    fn maps_all_sixteen_keys() {
        let all: String = (0..16).filter_map(key_for_event).collect();
        assert_eq!(all, "0123456789*#ABCD");
        assert_eq!(key_for_event(16), None); // flash
        assert_eq!(key_for_event(255), None);
    }

    #[test]
    fn a_press_with_three_end_packets_counts_once() {
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let packets: Vec<_> = press(5, 0, 200)
            .into_iter()
            .map(|(p, at)| (7, 1000, p, at))
            .collect();
        assert_eq!(packets.len(), 7);
        assert_eq!(keys(&mut rx, base, &packets), "5");
    }

    #[test]
    fn the_same_key_twice_is_two_presses() {
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let mut packets: Vec<_> = press(1, 0, 100)
            .into_iter()
            .map(|(p, at)| (7, 8000, p, at))
            .collect();
        packets.extend(
            press(1, 400, 100)
                .into_iter()
                .map(|(p, at)| (7, 11200, p, at)),
        );
        assert_eq!(keys(&mut rx, base, &packets), "11");
    }

    #[test]
    fn a_lost_start_is_still_one_press() {
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        // Only the three end packets of '#' arrive.
        let packets: Vec<_> = press(11, 0, 100)
            .into_iter()
            .filter(|(p, _)| p[1] & 0x80 != 0)
            .map(|(p, at)| (7, 500, p, at))
            .collect();
        assert_eq!(packets.len(), 3);
        let out = rx.handle(7, 500, &packets[0].2, base).unwrap();
        assert_eq!(
            out,
            EventOutcome::Key(DtmfKey {
                key: '#',
                timestamp: 500,
                heard_only_the_end: true
            })
        );
        assert_eq!(keys(&mut rx, base, &packets[1..]), "");
    }

    #[test]
    fn a_reordered_end_of_the_previous_key_is_not_a_press() {
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let packets = [
            (7, 100, payload(1, false, 0), 0),
            (7, 100, payload(1, true, 800), 100),
            (7, 2000, payload(2, false, 0), 150),
            (7, 100, payload(1, true, 800), 160), // late retransmission of '1'
            (7, 2000, payload(2, true, 800), 250),
        ];
        assert_eq!(keys(&mut rx, base, &packets), "12");
    }

    #[test]
    fn sipp_bursts_reusing_timestamps_under_new_ssrcs_all_count() {
        // sipp's play_dtmf restarts timestamps for each burst, with a new SSRC.
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let mut packets = vec![];
        for (burst, ssrc) in [(0u64, 1u32), (600, 2)] {
            packets.extend(
                press(3, burst, 200)
                    .into_iter()
                    .map(|(p, at)| (ssrc, 27200, p, at)),
            );
        }
        assert_eq!(keys(&mut rx, base, &packets), "33");
    }

    #[test]
    fn an_identity_is_forgotten_after_a_while() {
        // The same SSRC, timestamp and key five seconds apart: a sender that does not
        // advance timestamps between presses. Two presses.
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let packets = [
            (7, 0, payload(4, true, 800), 0),
            (7, 0, payload(4, true, 800), 20),
            (7, 0, payload(4, true, 800), 5000),
        ];
        assert_eq!(keys(&mut rx, base, &packets), "44");
    }

    #[test]
    fn flash_and_fax_events_are_not_keys() {
        let mut rx = DtmfReceiver::new();
        let now = Instant::now();
        assert_eq!(
            rx.handle(1, 1, &payload(16, false, 0), now),
            Ok(EventOutcome::NotAKey(16))
        );
        assert_eq!(
            rx.handle(1, 2, &payload(36, false, 0), now),
            Ok(EventOutcome::NotAKey(36))
        );
    }

    #[test]
    fn seed_corpus_never_panics() {
        let now = Instant::now();
        let mut rx = DtmfReceiver::new();
        for (_, bytes) in crate::rtp::fuzz::corpus("telephone-event") {
            let _ = rx.handle(1, 1, &bytes, now);
        }
    }

    proptest! {
        #![proptest_config(crate::rtp::fuzz::config("telephone_event"))]

        #[test]
        fn arbitrary_payloads_never_panic(
            packets in proptest::collection::vec(
                (any::<u32>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..8), 0u64..5000),
                0..40,
            ),
        ) {
            let base = Instant::now();
            let mut rx = DtmfReceiver::new();
            for (ssrc, ts, payload, at) in packets {
                let _ = rx.handle(ssrc, ts, &payload, base + Duration::from_millis(at));
            }
        }

        #[test]
        fn any_press_is_reported_exactly_once(
            event in 0u8..16,
            length_ms in 40u16..2500,
            lost in proptest::collection::vec(any::<bool>(), 0..50),
        ) {
            // Whatever packets of one press are lost, as long as one arrives the key
            // is reported once.
            let base = Instant::now();
            let mut rx = DtmfReceiver::new();
            let all = press(event, 0, length_ms);
            let kept: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| !lost.get(*i).copied().unwrap_or(false))
                .map(|(_, &(p, at))| (9, 4242, p, at))
                .collect();
            let heard = keys(&mut rx, base, &kept);
            let expected = if kept.is_empty() { 0 } else { 1 };
            prop_assert_eq!(heard.chars().count(), expected);
        }
    }
}
