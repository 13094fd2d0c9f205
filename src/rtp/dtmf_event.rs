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
//! A key held longer than the 16-bit duration field can say (0xFFFF units, 8.2 s)
//! is sent in segments (RFC 4733 §2.5.1.3): the first reaches 0xFFFF without an
//! end bit, and the next starts at the timestamp where it stopped (its timestamp
//! plus 0xFFFF), with the same event and no marker bit. Such a segment continues
//! the press it follows and is no new key. It is recognised by the numbers alone
//! ([`is_next_segment`]) since the packets that would show it (the one at 0xFFFF,
//! the new segment's first) may be lost.
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

/// At most this many recent presses (and segments) are remembered, so that a
/// reordered packet of one of them is not a new press: more than a sender makes
/// within [`FORGET_AFTER`] at RFC 4733's fastest (40 ms tones 40 ms apart: 38), so
/// a press is forgotten by its age, not pushed out by the next ones (a PIN typed
/// quickly, then a late end packet of its first digit), unless a sender floods.
const REMEMBERED: usize = 64;

/// A segment that lasted at least this long (timestamp units) without an end may
/// be followed by another segment of the same press: 0xFFFF less a second, for the
/// packets near the segment's end that may have been lost.
const LONG_SEGMENT: u16 = u16::MAX - 8000;

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
    /// The longest duration heard in this segment.
    duration: u16,
    /// An end packet was heard.
    ended: bool,
}

/// Whether a packet (`ssrc`, `timestamp`, `event`) starts the next segment of the
/// long press `seen` (RFC 4733 §2.5.1.3): the same source and key, `seen` went on
/// for nearly the whole 16-bit duration and did not end, and the new timestamp
/// lies between where `seen` was last heard and where its segment had to stop
/// (modulo 2^32: timestamps wrap). A quick second press of the same key starts
/// long before a segment could have reached [`LONG_SEGMENT`], so it is never taken
/// for one.
fn is_next_segment(seen: &Seen, ssrc: u32, timestamp: u32, event: u8) -> bool {
    let gap = timestamp.wrapping_sub(seen.timestamp);
    seen.ssrc == ssrc
        && seen.event == event
        && !seen.ended
        && seen.duration >= LONG_SEGMENT
        && gap >= u32::from(seen.duration)
        && gap <= u32::from(u16::MAX)
}

/// Turns telephone-event packets into key presses, each reported once.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    /// Presses heard within [`FORGET_AFTER`], oldest first.
    seen: Vec<Seen>,
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

        self.seen
            .retain(|seen| now.saturating_duration_since(seen.last_packet) < FORGET_AFTER);
        if let Some(seen) = self.seen.iter_mut().find(|seen| {
            seen.ssrc == ssrc && seen.timestamp == timestamp && seen.event == event.event
        }) {
            seen.last_packet = seen.last_packet.max(now);
            seen.duration = seen.duration.max(event.duration);
            seen.ended |= event.end;
            return Ok(EventOutcome::Repeat);
        }
        let next_segment = self
            .seen
            .iter()
            .any(|seen| is_next_segment(seen, ssrc, timestamp, event.event));
        let this = Seen {
            ssrc,
            timestamp,
            event: event.event,
            last_packet: now,
            duration: event.duration,
            ended: event.end,
        };
        if next_segment {
            // The same press goes on under the new segment's timestamp, which is
            // remembered beside the old one (a late packet of the old segment is
            // still known).
            self.remember(this);
            return Ok(EventOutcome::Repeat);
        }

        // A new press.
        self.remember(this);
        Ok(EventOutcome::Key(DtmfKey {
            key,
            timestamp,
            heard_only_the_end: event.end,
        }))
    }

    /// Remembers a press (or segment), forgetting the oldest if there are
    /// [`REMEMBERED`] already.
    fn remember(&mut self, seen: Seen) {
        if self.seen.len() >= REMEMBERED {
            self.seen.remove(0);
        }
        self.seen.push(seen);
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

    /// A quick typist: the packets of `presses` (key, start ms, length ms), sent by
    /// one stream at 8 kHz from `ts0`, timestamps advancing with time.
    fn typed(ts0: u32, presses: &[(u8, u64, u16)]) -> Vec<(u32, u32, [u8; 4], u64)> {
        let mut packets = vec![];
        for &(event, start, length) in presses {
            let ts = ts0.wrapping_add(u32::try_from(start * 8).unwrap());
            packets.extend(
                press(event, start, length)
                    .into_iter()
                    .map(|(p, at)| (0x5EED, ts, p, at)),
            );
        }
        // Packets go out in time order, interleaved across presses.
        packets.sort_by_key(|&(_, _, _, at)| at);
        packets
    }

    #[test]
    fn the_same_digit_twice_quickly_is_two_presses() {
        // "1", "1" 150 ms apart (70 ms presses, so the second starts 40 ms after
        // the first's last end packet), then "1" 300 ms later; another sender's
        // longer presses overlap the next one's end packets.
        let base = Instant::now();
        for (presses, expected) in [
            (vec![(1, 0, 70), (1, 150, 70), (1, 450, 70)], "111"),
            (vec![(1, 0, 120), (1, 150, 120), (2, 300, 120)], "112"),
        ] {
            let mut rx = DtmfReceiver::new();
            assert_eq!(keys(&mut rx, base, &typed(160_000, &presses)), expected);
        }
    }

    #[test]
    fn a_late_end_packet_after_many_quick_presses_is_no_new_press() {
        // A PIN and more typed at RFC 4733's fastest (40 ms tones 40 ms apart),
        // then one end packet of the first press, delayed, a second later.
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let presses: Vec<_> = "123456789012"
            .bytes()
            .enumerate()
            .map(|(i, k)| (k - b'0', 80 * i as u64, 40))
            .collect();
        let mut packets = typed(8000, &presses);
        let late = *packets.iter().find(|p| p.2[1] & 0x80 != 0).unwrap();
        packets.push((late.0, late.1, late.2, 1000));
        assert_eq!(keys(&mut rx, base, &packets), "123456789012");
        // Once forgotten (3 s after its last packet) the same identity is a press.
        assert_eq!(keys(&mut rx, base, &[(late.0, late.1, late.2, 4100)]), "1");
    }

    #[test]
    fn three_end_packets_of_each_quick_press_count_once() {
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let presses: Vec<_> = "12342"
            .bytes()
            .enumerate()
            .map(|(i, k)| (k - b'0', 200 * i as u64, 100))
            .collect();
        let packets = typed(8000, &presses);
        assert_eq!(packets.iter().filter(|p| p.2[1] & 0x80 != 0).count(), 15);
        assert_eq!(keys(&mut rx, base, &packets), "12342");
    }

    #[test]
    fn quick_presses_whose_starts_were_lost_count_once_each() {
        // Only the end packets of "7", "7", "8" arrive.
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let packets: Vec<_> = typed(0, &[(7, 0, 100), (7, 200, 100), (8, 400, 100)])
            .into_iter()
            .filter(|p| p.2[1] & 0x80 != 0)
            .collect();
        assert_eq!(packets.len(), 9);
        assert_eq!(keys(&mut rx, base, &packets), "778");
    }

    #[test]
    fn a_press_whose_ends_were_lost_and_the_next_both_count() {
        // "3" loses its three end packets; "3" again and "4" follow quickly.
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let packets = typed(50_000, &[(3, 0, 120), (3, 180, 120), (4, 360, 120)]);
        let first_ts = packets.first().map(|p| p.1);
        let packets: Vec<_> = packets
            .into_iter()
            .filter(|p| !(Some(p.1) == first_ts && p.2[1] & 0x80 != 0))
            .collect();
        assert_eq!(keys(&mut rx, base, &packets), "334");
    }

    #[test]
    fn reordered_packets_of_quick_presses_count_once_each() {
        // "5", "5", "6" 150 ms apart; the network swaps neighbours and delays an
        // end packet of the first "5" past the start of the second.
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let mut packets = typed(9000, &[(5, 0, 100), (5, 150, 100), (6, 300, 100)]);
        for i in (0..packets.len() - 1).step_by(2) {
            packets.swap(i, i + 1);
        }
        let late = packets.remove(3);
        packets.insert(9, late);
        assert_eq!(keys(&mut rx, base, &packets), "556");
    }

    #[test]
    fn timestamps_wrapping_around_do_not_lose_or_double_keys() {
        // The stream's timestamps pass 2^32 between and within presses: "9", "9".
        let base = Instant::now();
        let mut rx = DtmfReceiver::new();
        let packets = typed(u32::MAX - 800, &[(9, 0, 100), (9, 150, 100), (0, 300, 100)]);
        assert!(packets.iter().any(|p| p.1 < 8000));
        assert_eq!(keys(&mut rx, base, &packets), "990");
    }

    /// A press held for `length_ms`, sent in segments as RFC 4733 §2.5.1.3 says:
    /// each segment runs to duration 0xFFFF, and the next starts at the
    /// timestamp plus 0xFFFF; the last ends with three end packets.
    fn long_press(event: u8, ts0: u32, length_ms: u64) -> Vec<(u32, u32, [u8; 4], u64)> {
        let mut packets = vec![];
        let mut ts = ts0;
        let mut segment_start = 0u64; // in timestamp units since the press began
        let total = length_ms * 8;
        let mut t = 0u64;
        while t < total {
            let mut d = t - segment_start;
            if d > u64::from(u16::MAX) {
                // The segment's last packet says 0xFFFF; a new segment begins.
                packets.push((
                    1,
                    ts,
                    payload(event, false, u16::MAX),
                    (segment_start + u64::from(u16::MAX)) / 8,
                ));
                segment_start += u64::from(u16::MAX);
                ts = ts.wrapping_add(u32::from(u16::MAX));
                d = t - segment_start;
            }
            packets.push((1, ts, payload(event, false, d as u16), t / 8));
            t += 400;
        }
        let d = (total - segment_start) as u16;
        for i in 0..3 {
            packets.push((1, ts, payload(event, true, d), length_ms + i * 20));
        }
        packets
    }

    #[test]
    fn a_long_press_in_segments_is_one_press() {
        let base = Instant::now();
        // 20 s: three segments; across a timestamp wrap too.
        for ts0 in [1000, u32::MAX - 70_000] {
            let mut rx = DtmfReceiver::new();
            let packets = long_press(4, ts0, 20_000);
            let segments: std::collections::BTreeSet<_> = packets.iter().map(|p| p.1).collect();
            assert_eq!(segments.len(), 3);
            assert_eq!(keys(&mut rx, base, &packets), "4");
        }
        // The packet at 0xFFFF and the next segment's first few are lost.
        let mut rx = DtmfReceiver::new();
        let packets: Vec<_> = long_press(4, 1000, 10_000)
            .into_iter()
            .filter(|p| !(7_900..8_400).contains(&p.3))
            .collect();
        assert_eq!(keys(&mut rx, base, &packets), "4");
        // And the same key pressed right after a long press is a new press.
        let mut rx = DtmfReceiver::new();
        let mut packets = long_press(4, 1000, 9_000);
        let next = 1000u32.wrapping_add(u32::from(u16::MAX)) + 200 * 8;
        packets.extend(
            press(4, 9_200, 100)
                .into_iter()
                .map(|(p, at)| (1, next, p, at)),
        );
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

        #[test]
        fn any_long_press_is_reported_once(
            event in 0u8..16,
            length_ms in 8_000u64..25_000,
            ts0 in any::<u32>(),
            lost in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            // A press held across one to three segments (timestamps wrapping or
            // not), up to ten of its packets lost anywhere (at most 550 ms in a
            // row, within the second LONG_SEGMENT allows): one key.
            let base = Instant::now();
            let mut rx = DtmfReceiver::new();
            let all = long_press(event, ts0, length_ms);
            let lost: Vec<usize> = lost.iter().map(|i| i.index(all.len())).collect();
            let kept: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| !lost.contains(i))
                .map(|(_, &p)| p)
                .collect();
            prop_assert_eq!(keys(&mut rx, base, &kept).chars().count(), 1);
        }
    }
}
