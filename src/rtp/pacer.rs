//! The RTP sender of one call: prepared 20 ms frames out as packets, exactly on
//! schedule.
//!
//! Prompts are decoded and encoded to G.711 once, when a campaign is loaded, and
//! shared as ready 160-byte frames; a call only holds references to them. The pacer
//! plays anything that is [`PromptFrames`]: the audio module's
//! [`Prompt`](crate::audio::Prompt) (frames in both laws; the pacer picks the
//! negotiated one), or frames already in one law (`Arc<[Frame]>`, `&[Frame]`,
//! `Vec<Frame>`). The [`Pacer`]
//! turns the queued prompts into RTP packets, one every 20 ms, and is sans-IO in the
//! manner of `str0m`: the shell calls [`Pacer::poll`] with the current time until it
//! answers [`Output::Timeout`], sends each [`Output::Transmit`] to the caller, hands
//! each [`Output::Event`] to the flow engine, and sleeps until the timeout.
//!
//! # Timing
//!
//! Packet *n* is due at `start + n × 20 ms`, computed from the start, never from the
//! time the previous one went out, so a timer that fires late does not push the
//! following packets later: the error never accumulates. A packet's RTP timestamp is
//! `first_timestamp + n × 160`, and it keeps advancing whether or not packets are sent
//! (hold, a stall of the shell), so the receiver sees one continuous clock. Sequence
//! numbers count packets actually sent, so the receiver can tell loss from a pause.
//!
//! When the shell is late by less than [`MAX_CATCH_UP`], the missed packets go out at
//! once (a small burst the caller's jitter buffer absorbs); later than that (the
//! process was stopped, the machine swapped), the missed slots are skipped, the
//! prompt goes on where it was (nothing of it is lost, it is only delayed) and the
//! next packet carries the marker bit so that the receiver resynchronises its
//! playout. [`PacerStats`] counts packets sent late and slots skipped, for the
//! `rtp packets late` metric.
//!
//! # Between prompts: comfort silence
//!
//! With [`Idle::ComfortSilence`] (the default) the pacer sends G.711 silence frames
//! (µ-law 0xFF, A-law 0xD5) whenever no prompt is queued, so the stream never stops
//! while the caller thinks or records a message. Many trunks and GSM gateways hang up
//! a call that receives no RTP for 30–60 s ("RTP timeout"), NAT bindings on the
//! caller's side are kept alive by traffic in both directions, and a jitter buffer
//! fed a steady stream needs no resynchronisation. It costs 50 packets a second, what
//! any phone sends. [`Idle::Nothing`] sends nothing instead (and sets the marker bit
//! on the first packet after the pause, RFC 3551 §4.1), for peers that want
//! discontinuous transmission.
//!
//! The marker bit is set on the very first packet, on the first packet of every
//! prompt (the start of a talkspurt), and on the first packet after a pause.
//!
//! # Barge-in
//!
//! [`Pacer::stop`] drops the prompt being played and every queued one: the very next
//! slot sends silence, so a key press cuts the prompt within 20 ms.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::packet::{HEADER_LEN, Header};
use super::{Codec, FRAME_LEN, FRAME_MS, Frame};

/// Time between two packets.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(FRAME_MS as u64);
/// How late the shell may be before missed packets are skipped rather than sent in
/// a burst: three packets' worth.
pub const MAX_CATCH_UP: Duration = Duration::from_millis(3 * FRAME_MS as u64);
/// A packet sent more than this after its due time counts as late in [`PacerStats`]
/// (the target: 99 % of packets within 2 ms of their schedule).
pub const LATE_AFTER: Duration = Duration::from_millis(2);

/// A prompt the pacer can play: 20 ms frames, in order, in the negotiated codec.
pub trait PromptFrames {
    /// How many frames there are.
    fn frame_count(&self) -> usize;
    /// Frame `index` encoded in `codec`; `None` past the end.
    fn frame(&self, index: usize, codec: Codec) -> Option<&Frame>;
    /// The keys a DTMF detector hears in frame `index`, when they were found
    /// beforehand (see [`Transmit::keys`]); `None`: not known.
    fn frame_keys(&self, _index: usize) -> Option<&[char]> {
        None
    }
}

/// A prepared prompt holds every frame in both laws: the call picks its codec's.
impl PromptFrames for crate::audio::Prompt {
    fn frame_count(&self) -> usize {
        self.len()
    }

    fn frame(&self, index: usize, codec: Codec) -> Option<&Frame> {
        self.frames().get(index).map(|frame| match codec {
            Codec::Pcmu => &frame.ulaw,
            Codec::Pcma => &frame.alaw,
        })
    }

    fn frame_keys(&self, index: usize) -> Option<&[char]> {
        Some(crate::audio::Prompt::frame_keys(self, index))
    }
}

/// Frames already encoded in the call's codec (the codec is not checked).
impl PromptFrames for Arc<[Frame]> {
    fn frame_count(&self) -> usize {
        self.len()
    }

    fn frame(&self, index: usize, _: Codec) -> Option<&Frame> {
        self.get(index)
    }
}

/// Frames already encoded in the call's codec (the codec is not checked).
impl PromptFrames for &[Frame] {
    fn frame_count(&self) -> usize {
        self.len()
    }

    fn frame(&self, index: usize, _: Codec) -> Option<&Frame> {
        self.get(index)
    }
}

/// Frames already encoded in the call's codec (the codec is not checked).
impl PromptFrames for Vec<Frame> {
    fn frame_count(&self) -> usize {
        self.len()
    }

    fn frame(&self, index: usize, _: Codec) -> Option<&Frame> {
        self.get(index)
    }
}

/// Identifies a queued prompt in [`PacerEvent`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromptId(pub u64);

/// What the pacer sends while no prompt is queued (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Idle {
    /// G.711 silence frames, so the stream never pauses.
    #[default]
    ComfortSilence,
    /// No packets.
    Nothing,
}

/// The identifiers of an outgoing stream; RFC 3550 asks for random initial values
/// (it makes known-plaintext attacks on SRTP harder and collisions unlikely).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamIds {
    /// The synchronization source.
    pub ssrc: u32,
    /// The sequence number of the first packet.
    pub first_sequence: u16,
    /// The timestamp of the first slot.
    pub first_timestamp: u32,
}

impl StreamIds {
    /// Random identifiers, for the shell (tests pass fixed ones).
    pub fn random() -> Self {
        StreamIds {
            ssrc: rand::random(),
            first_sequence: rand::random(),
            first_timestamp: rand::random(),
        }
    }
}

/// How to send: the negotiated codec and payload type, the stream identifiers and
/// what to do between prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerConfig {
    /// The codec the frames are encoded in (gives the silence byte).
    pub codec: Codec,
    /// The payload type negotiated for it (0 or 8 unless the caller mapped it).
    pub payload_type: u8,
    /// SSRC, first sequence number and first timestamp.
    pub ids: StreamIds,
    /// What to send between prompts.
    pub idle: Idle,
}

/// Something the flow engine should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacerEvent {
    /// The last frame of this prompt has been sent.
    PromptFinished(PromptId),
}

/// One packet to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The whole RTP packet.
    pub packet: &'a [u8],
    /// When it was due (the shell may measure its own lateness from it).
    pub due: Instant,
    /// The keys a DTMF detector hears in the payload, when known without
    /// decoding it: none in silence, what the prepared prompt holds for its
    /// frames. The shell's echo guard then need not listen to every packet it
    /// sends (`audio::dtmf::keys`). `None`: decode the payload to know.
    pub keys: Option<&'a [char]>,
}

/// What [`Pacer::poll`] asks the shell to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output<'a> {
    /// Send this packet to the caller now, then poll again.
    Transmit(Transmit<'a>),
    /// Tell the flow engine, then poll again.
    Event(PacerEvent),
    /// Nothing more before this instant: sleep until then, then poll again.
    Timeout(Instant),
}

/// Counters of the sender, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacerStats {
    /// Packets sent.
    pub packets_sent: u64,
    /// Packets sent more than [`LATE_AFTER`] after they were due.
    pub packets_late: u64,
    /// Slots skipped because the shell was more than [`MAX_CATCH_UP`] late.
    pub slots_skipped: u64,
    /// The worst lateness of a sent packet.
    pub max_lateness: Duration,
}

/// The sender of one call (see the module doc).
#[derive(Debug)]
pub struct Pacer<P = crate::audio::Prompt> {
    config: PacerConfig,
    /// When slot 0 was due.
    start: Instant,
    /// The next slot to fill.
    slot: u64,
    /// The sequence number of the next packet.
    sequence: u16,
    /// Queued prompts; the front one is playing.
    queue: VecDeque<(PromptId, P)>,
    /// The next frame of the front prompt.
    position: usize,
    next_id: u64,
    /// The next packet sent carries the marker bit.
    marker_pending: bool,
    muted: bool,
    events: VecDeque<PacerEvent>,
    silence: Frame,
    buf: [u8; HEADER_LEN + FRAME_LEN],
    stats: PacerStats,
}

impl<P: PromptFrames> Pacer<P> {
    /// A pacer whose first slot is due at `start` (normally when the call is
    /// answered).
    pub fn new(config: PacerConfig, start: Instant) -> Self {
        Pacer {
            config,
            start,
            slot: 0,
            sequence: config.ids.first_sequence,
            queue: VecDeque::new(),
            position: 0,
            next_id: 0,
            marker_pending: true,
            muted: false,
            events: VecDeque::new(),
            silence: [config.codec.silence(); FRAME_LEN],
            buf: [0; HEADER_LEN + FRAME_LEN],
            stats: PacerStats::default(),
        }
    }

    /// Queues a prompt after those already queued; its frames must be encoded in
    /// the negotiated codec.
    pub fn enqueue(&mut self, prompt: P) -> PromptId {
        let id = PromptId(self.next_id);
        self.next_id += 1;
        self.queue.push_back((id, prompt));
        id
    }

    /// Barge-in: drops the playing prompt and every queued one; the next slot is
    /// silence (or nothing). No [`PacerEvent::PromptFinished`] is reported for them.
    pub fn stop(&mut self) {
        self.queue.clear();
        self.position = 0;
    }

    /// While muted (the caller put the call on hold, or the answer was `recvonly` or
    /// `inactive`), no packets are sent and prompts wait; the clock runs on.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// The caller moved the call to another codec (a re-INVITE): the next
    /// packet goes out in it, silence too. Prepared prompts hold both laws.
    pub fn set_codec(&mut self, codec: Codec, payload_type: u8) {
        self.config.codec = codec;
        self.config.payload_type = payload_type;
        self.silence = [codec.silence(); FRAME_LEN];
    }

    /// True while a prompt is being played or waits in the queue.
    pub fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The counters so far.
    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// When the next slot is due. The shell may also just use [`Output::Timeout`].
    pub fn poll_timeout(&self) -> Instant {
        self.due(self.slot)
    }

    fn due(&self, slot: u64) -> Instant {
        self.start + Duration::from_micros(slot.saturating_mul(u64::from(FRAME_MS) * 1000))
    }

    /// Advances to `now`: returns the next packet to send, event to report, or the
    /// instant to sleep until. Call it again until it returns [`Output::Timeout`].
    pub fn poll(&mut self, now: Instant) -> Output<'_> {
        loop {
            // Prompts with nothing (left) to play end before taking a slot.
            while let Some((id, prompt)) = self.queue.front() {
                if self.position < prompt.frame_count() {
                    break;
                }
                self.events.push_back(PacerEvent::PromptFinished(*id));
                self.queue.pop_front();
                self.position = 0;
            }
            if let Some(event) = self.events.pop_front() {
                return Output::Event(event);
            }

            let mut due = self.due(self.slot);
            if now < due {
                return Output::Timeout(due);
            }
            let behind = now.saturating_duration_since(due);
            let slots_behind = (behind.as_micros() / PACKET_INTERVAL.as_micros()) as u64;

            let has_audio =
                !self.muted && (!self.queue.is_empty() || self.config.idle == Idle::ComfortSilence);
            if !has_audio {
                // Nothing to send in any slot up to now: let the clock run past them.
                self.slot += slots_behind + 1;
                self.marker_pending = true;
                continue;
            }
            if behind >= MAX_CATCH_UP {
                // Too late to burst: skip to the latest slot that is due.
                self.stats.slots_skipped += slots_behind;
                self.slot += slots_behind;
                self.marker_pending = true;
                due = self.due(self.slot);
            }

            let slot = self.slot;
            self.slot += 1;
            let starts_prompt = self.position == 0 && !self.queue.is_empty();
            let codec = self.config.codec;
            let (frame, keys): (&Frame, Option<&[char]>) = match self.queue.front() {
                Some((_, prompt)) => {
                    let frame = prompt.frame(self.position, codec);
                    let keys = prompt.frame_keys(self.position);
                    self.position += 1;
                    // A prompt shorter than it claimed plays silence for the rest.
                    match frame {
                        Some(frame) => (frame, keys),
                        None => (&self.silence, Some(&[])),
                    }
                }
                None => (&self.silence, Some(&[])),
            };
            let header = Header {
                marker: self.marker_pending || starts_prompt,
                payload_type: self.config.payload_type,
                sequence: self.sequence,
                timestamp: self
                    .config
                    .ids
                    .first_timestamp
                    .wrapping_add(slot.wrapping_mul(FRAME_LEN as u64) as u32),
                ssrc: self.config.ids.ssrc,
            };
            let mut head = [0u8; HEADER_LEN];
            header.write_header(&mut head);
            self.buf[..HEADER_LEN].copy_from_slice(&head);
            self.buf[HEADER_LEN..].copy_from_slice(frame);
            self.marker_pending = false;
            self.sequence = self.sequence.wrapping_add(1);

            let lateness = now.saturating_duration_since(due);
            self.stats.packets_sent += 1;
            if lateness > LATE_AFTER {
                self.stats.packets_late += 1;
            }
            self.stats.max_lateness = self.stats.max_lateness.max(lateness);
            return Output::Transmit(Transmit {
                packet: &self.buf,
                due,
                keys,
            });
        }
    }
}

/// Prompts taken out of a [`Pacer`] by [`Pacer::pause`], with the frame the
/// front one had reached: given back by [`Pacer::resume`].
#[derive(Debug)]
pub struct Paused<P> {
    queue: VecDeque<(PromptId, P)>,
    position: usize,
}

impl<P: PromptFrames> Paused<P> {
    /// Moves the held position like [`Pacer::seek`] (a listener may seek while
    /// paused).
    pub fn seek(&mut self, frames: i64) {
        if let Some((_, prompt)) = self.queue.front() {
            self.position = seek_within(self.position, prompt.frame_count(), frames);
        }
    }

    /// The frame the front prompt will go on from.
    pub fn position(&self) -> usize {
        self.position
    }
}

/// `position` moved by `frames`, held to `0..=count`.
fn seek_within(position: usize, count: usize, frames: i64) -> usize {
    let moved = i64::try_from(position)
        .unwrap_or(i64::MAX)
        .saturating_add(frames);
    usize::try_from(moved.max(0))
        .unwrap_or(usize::MAX)
        .min(count)
}

/// Replay keys: moving within the playing prompt, pausing and resuming.
impl<P: PromptFrames> Pacer<P> {
    /// Moves within the playing prompt by `frames` (back when negative), held to
    /// its start and its end; at its end it finishes at the next poll (its
    /// [`PacerEvent::PromptFinished`] as usual) and the next queued one plays.
    /// The next packet carries the marker bit (the audio jumps).
    pub fn seek(&mut self, frames: i64) {
        if let Some((_, prompt)) = self.queue.front() {
            self.position = seek_within(self.position, prompt.frame_count(), frames);
            self.marker_pending = true;
        }
    }

    /// The frame of the playing prompt that goes out next.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Takes the playing and queued prompts out where they are: the pacer goes on
    /// as between prompts (comfort silence, or nothing with [`Idle::Nothing`]) and
    /// reports nothing for them until [`Pacer::resume`].
    pub fn pause(&mut self) -> Paused<P> {
        let paused = Paused {
            queue: std::mem::take(&mut self.queue),
            position: self.position,
        };
        self.position = 0;
        paused
    }

    /// Gives back what [`Pacer::pause`] took, in front of anything queued since,
    /// from where it was.
    pub fn resume(&mut self, paused: Paused<P>) {
        if paused.queue.is_empty() {
            return;
        }
        let mut queue = paused.queue;
        queue.append(&mut self.queue);
        self.queue = queue;
        self.position = paused.position;
        self.marker_pending = true;
    }
}

#[cfg(test)]
mod replay_tests {
    use super::*;

    /// 20 minutes of frames, each frame's first byte its index (mod 256).
    fn programme() -> Arc<[Frame]> {
        (0..60_000usize)
            .map(|i| [(i % 256) as u8; FRAME_LEN])
            .collect::<Vec<_>>()
            .into()
    }

    fn pacer(start: Instant) -> Pacer<Arc<[Frame]>> {
        Pacer::new(
            PacerConfig {
                codec: crate::rtp::Codec::Pcmu,
                payload_type: 0,
                ids: StreamIds {
                    ssrc: 1,
                    first_sequence: 0,
                    first_timestamp: 0,
                },
                idle: Idle::Nothing,
            },
            start,
        )
    }

    /// Polls until `until`: the first payload bytes sent, the events reported.
    fn run(p: &mut Pacer<Arc<[Frame]>>, now: &mut Instant, until: Instant) -> (Vec<u8>, usize) {
        let (mut sent, mut events) = (vec![], 0);
        while *now <= until {
            match p.poll(*now) {
                Output::Transmit(t) => sent.push(t.packet[HEADER_LEN]),
                Output::Event(_) => events += 1,
                Output::Timeout(t) => *now = t,
            }
        }
        (sent, events)
    }

    #[test]
    fn forward_twice_back_once_is_ten_seconds_on() {
        let start = Instant::now();
        let mut now = start;
        let mut p = pacer(start);
        p.enqueue(programme());
        let (sent, _) = run(&mut p, &mut now, start + Duration::from_millis(990));
        assert_eq!(sent.len(), 50);
        assert_eq!(p.position(), 50);
        p.seek(500);
        p.seek(500);
        p.seek(-500);
        assert_eq!(p.position(), 550, "+10 s from where it was");
        let (sent, _) = run(&mut p, &mut now, start + Duration::from_millis(1030));
        assert_eq!(sent, [(550 % 256) as u8, (551 % 256) as u8]);
    }

    #[test]
    fn seeking_is_held_to_the_prompt_and_its_end_finishes_it() {
        let start = Instant::now();
        let mut now = start;
        let mut p = pacer(start);
        p.enqueue(programme());
        run(&mut p, &mut now, start + Duration::from_millis(90));
        p.seek(-500);
        assert_eq!(p.position(), 0);
        p.seek(i64::MIN);
        assert_eq!(p.position(), 0);
        p.seek(i64::MAX);
        assert_eq!(p.position(), 60_000);
        let (sent, events) = run(&mut p, &mut now, start + Duration::from_millis(200));
        assert_eq!(events, 1, "the prompt finished");
        assert!(sent.is_empty(), "nothing after it (Idle::Nothing)");
        // With nothing playing, a seek does nothing.
        p.seek(500);
        assert_eq!(p.position(), 0);
    }

    #[test]
    fn a_pause_sends_nothing_of_the_prompt_and_resumes_where_it_was() {
        let start = Instant::now();
        let mut now = start;
        let mut p = pacer(start);
        p.enqueue(programme());
        run(&mut p, &mut now, start + Duration::from_millis(190));
        let mut held = p.pause();
        assert!(!p.is_playing());
        let (sent, events) = run(&mut p, &mut now, start + Duration::from_secs(30));
        assert!(sent.is_empty(), "no packets while paused");
        assert_eq!(events, 0);
        // A seek while paused moves the held place.
        held.seek(500);
        assert_eq!(held.position(), 510);
        p.resume(held);
        let until = now + Duration::from_millis(10);
        let (sent, _) = run(&mut p, &mut now, until);
        assert_eq!(sent, [(510 % 256) as u8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::packet::Packet;

    const MS: Duration = Duration::from_millis(1);

    /// Single-law frames whose bytes the tests can recognise.
    type TestPacer = Pacer<Arc<[Frame]>>;
    const IDS: StreamIds = StreamIds {
        ssrc: 0xCAFE_F00D,
        first_sequence: 65_534,
        first_timestamp: u32::MAX - 159,
    };

    fn config(idle: Idle) -> PacerConfig {
        PacerConfig {
            codec: Codec::Pcmu,
            payload_type: 0,
            ids: IDS,
            idle,
        }
    }

    /// A prompt of `n` frames whose bytes say which frame they are.
    fn prompt(tag: u8, n: usize) -> Arc<[Frame]> {
        (0..n)
            .map(|i| [tag.wrapping_add(i as u8); FRAME_LEN])
            .collect::<Vec<_>>()
            .into()
    }

    /// What a shell would have sent: (sent at, header, first payload byte).
    #[derive(Debug, Clone, PartialEq)]
    struct Sent {
        at: Instant,
        due: Instant,
        header: Header,
        first_byte: u8,
    }

    /// Drives the pacer like a shell whose timer fires `delay` after each timeout,
    /// until `until`; returns packets and events.
    fn run(
        pacer: &mut TestPacer,
        from: Instant,
        until: Instant,
        delay: impl Fn(u64) -> Duration,
    ) -> (Vec<Sent>, Vec<(Instant, PacerEvent)>) {
        let (mut sent, mut events) = (vec![], vec![]);
        let mut now = from;
        let mut wake = 0;
        while now <= until {
            match pacer.poll(now) {
                Output::Transmit(t) => {
                    let p = Packet::parse(t.packet).unwrap();
                    assert_eq!(p.payload.len(), FRAME_LEN);
                    sent.push(Sent {
                        at: now,
                        due: t.due,
                        header: p.header,
                        first_byte: p.payload[0],
                    });
                }
                Output::Event(e) => events.push((now, e)),
                Output::Timeout(t) => {
                    assert!(t > now);
                    now = t + delay(wake);
                    wake += 1;
                }
            }
        }
        (sent, events)
    }

    #[test]
    fn sends_every_20_ms_with_consecutive_numbers() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::ComfortSilence), start);
        pacer.enqueue(prompt(10, 5));
        let (sent, events) = run(&mut pacer, start, start + 199 * MS, |_| Duration::ZERO);
        assert_eq!(sent.len(), 10);
        for (i, s) in sent.iter().enumerate() {
            assert_eq!(s.at, start + PACKET_INTERVAL * i as u32);
            assert_eq!(s.header.ssrc, IDS.ssrc);
            assert_eq!(s.header.payload_type, 0);
            // Both counters wrap around, as they must.
            assert_eq!(s.header.sequence, IDS.first_sequence.wrapping_add(i as u16));
            assert_eq!(
                s.header.timestamp,
                IDS.first_timestamp.wrapping_add(160 * i as u32)
            );
        }
        // The prompt, then silence.
        let bytes: Vec<u8> = sent.iter().map(|s| s.first_byte).collect();
        assert_eq!(bytes, [10, 11, 12, 13, 14, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        // The first packet (start of the stream and of the prompt) has the marker.
        let markers: Vec<bool> = sent.iter().map(|s| s.header.marker).collect();
        assert!(markers[0]);
        assert!(markers[1..].iter().all(|m| !m));
        assert_eq!(
            events,
            vec![(start + 80 * MS, PacerEvent::PromptFinished(PromptId(0)))]
        );
        assert_eq!(pacer.stats().packets_sent, 10);
        assert_eq!(pacer.stats().packets_late, 0);
    }

    #[test]
    fn timer_jitter_does_not_accumulate() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::ComfortSilence), start);
        pacer.enqueue(prompt(0, 500));
        // The timer fires 0–7 ms late, in a pattern.
        let (sent, _) = run(
            &mut pacer,
            start,
            start + 10 * Duration::from_secs(1),
            |n| Duration::from_millis(n * 7 % 8),
        );
        assert_eq!(sent.len(), 500);
        for (i, s) in sent.iter().enumerate() {
            // Each packet is due exactly i × 20 ms after the start, and leaves at most
            // the timer's delay after that.
            assert_eq!(s.due, start + PACKET_INTERVAL * i as u32);
            assert!(
                s.at - s.due <= 7 * MS,
                "packet {i} sent {:?} late",
                s.at - s.due
            );
        }
        // After 500 packets the last one is still due at 9.98 s: nothing drifted.
        assert_eq!(sent[499].due, start + 9980 * MS);
        let stats = pacer.stats();
        assert_eq!(stats.slots_skipped, 0);
        assert!(stats.packets_late > 0 && stats.max_lateness == 7 * MS);
    }

    #[test]
    fn a_late_timer_gets_a_burst_a_stall_skips_and_marks() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::ComfortSilence), start);
        pacer.enqueue(prompt(0, 100));
        // Slot 0 at the start; then the shell wakes 45 ms late: slots 1 and 2 (due 20
        // and 40 ms) go out in a burst at 45 ms.
        fn poll_all(pacer: &mut TestPacer, now: Instant, sent: &mut Vec<(Header, Instant)>) {
            while let Output::Transmit(t) = pacer.poll(now) {
                sent.push((Packet::parse(t.packet).unwrap().header, t.due));
            }
        }
        let mut sent = vec![];
        poll_all(&mut pacer, start, &mut sent);
        poll_all(&mut pacer, start + 45 * MS, &mut sent);
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2].1, start + 40 * MS);
        assert!(!sent[1].0.marker && !sent[2].0.marker);
        // Then the process stalls for a second: the missed slots are skipped, the
        // prompt resumes where it was, with the marker bit and the timestamp of the
        // slot it is sent in.
        poll_all(&mut pacer, start + 1045 * MS, &mut sent);
        assert_eq!(sent.len(), 4);
        let (header, due) = sent[3];
        assert_eq!(due, start + 1040 * MS);
        assert!(header.marker);
        assert_eq!(header.sequence, sent[2].0.sequence.wrapping_add(1));
        assert_eq!(header.timestamp, IDS.first_timestamp.wrapping_add(52 * 160));
        assert_eq!(pacer.stats().slots_skipped, 49);
        // 25, 5 and 5 ms late.
        assert_eq!(pacer.stats().packets_late, 3);
    }

    #[test]
    fn queued_prompts_play_back_to_back_each_marked() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::ComfortSilence), start);
        let a = pacer.enqueue(prompt(10, 2));
        let empty = pacer.enqueue(prompt(0, 0));
        let b = pacer.enqueue(prompt(20, 2));
        let (sent, events) = run(&mut pacer, start, start + 99 * MS, |_| Duration::ZERO);
        let bytes: Vec<u8> = sent.iter().map(|s| s.first_byte).collect();
        assert_eq!(bytes, [10, 11, 20, 21, 0xFF]);
        let markers: Vec<bool> = sent.iter().map(|s| s.header.marker).collect();
        assert_eq!(markers, [true, false, true, false, false]);
        let ids: Vec<_> = events.iter().map(|(_, e)| *e).collect();
        assert_eq!(
            ids,
            [
                PacerEvent::PromptFinished(a),
                PacerEvent::PromptFinished(empty),
                PacerEvent::PromptFinished(b)
            ]
        );
    }

    #[test]
    fn stop_cuts_the_prompt_at_the_next_frame() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::ComfortSilence), start);
        pacer.enqueue(prompt(100, 50));
        pacer.enqueue(prompt(200, 50));
        let (sent, _) = run(&mut pacer, start, start + 50 * MS, |_| Duration::ZERO);
        assert_eq!(sent.len(), 3);
        // A key arrives at 55 ms: the engine stops the prompt.
        pacer.stop();
        assert!(!pacer.is_playing());
        let (after, events) = run(&mut pacer, start + 55 * MS, start + 99 * MS, |_| {
            Duration::ZERO
        });
        assert!(events.is_empty());
        let bytes: Vec<u8> = after.iter().map(|s| s.first_byte).collect();
        assert_eq!(bytes, [0xFF, 0xFF]);
        // The stream goes on without a gap.
        assert_eq!(
            after[0].header.sequence,
            sent[2].header.sequence.wrapping_add(1)
        );
        assert_eq!(after[0].due, start + 60 * MS);
    }

    #[test]
    fn a_law_silence() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(
            PacerConfig {
                codec: Codec::Pcma,
                payload_type: 8,
                ids: IDS,
                idle: Idle::ComfortSilence,
            },
            start,
        );
        let (sent, _) = run(&mut pacer, start, start, |_| Duration::ZERO);
        assert_eq!(sent[0].first_byte, 0xD5);
        assert_eq!(sent[0].header.payload_type, 8);
    }

    #[test]
    fn a_new_codec_takes_the_next_packet() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::ComfortSilence), start);
        let (sent, _) = run(&mut pacer, start, start, |_| Duration::ZERO);
        assert_eq!((sent[0].first_byte, sent[0].header.payload_type), (0xFF, 0));
        pacer.set_codec(Codec::Pcma, 8);
        let (sent, _) = run(&mut pacer, start + 20 * MS, start + 20 * MS, |_| {
            Duration::ZERO
        });
        assert_eq!((sent[0].first_byte, sent[0].header.payload_type), (0xD5, 8));
    }

    #[test]
    fn idle_nothing_pauses_and_marks_the_next_talkspurt() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::Nothing), start);
        let (sent, _) = run(&mut pacer, start, start + 500 * MS, |_| Duration::ZERO);
        assert!(sent.is_empty());
        assert_eq!(pacer.stats().slots_skipped, 0);
        pacer.enqueue(prompt(1, 2));
        let (sent, _) = run(&mut pacer, start + 510 * MS, start + 600 * MS, |_| {
            Duration::ZERO
        });
        assert_eq!(sent.len(), 2);
        // Slot 26 (520 ms): the timestamp counted the pause, the sequence did not.
        assert_eq!(sent[0].due, start + 520 * MS);
        assert_eq!(
            sent[0].header.timestamp,
            IDS.first_timestamp.wrapping_add(26 * 160)
        );
        assert_eq!(sent[0].header.sequence, IDS.first_sequence);
        assert!(sent[0].header.marker);
        assert!(!sent[1].header.marker);
    }

    #[test]
    fn muted_holds_the_prompt_and_resumes_with_a_marker() {
        let start = Instant::now();
        let mut pacer = TestPacer::new(config(Idle::ComfortSilence), start);
        pacer.enqueue(prompt(1, 4));
        let (sent, _) = run(&mut pacer, start, start + 30 * MS, |_| Duration::ZERO);
        assert_eq!(sent.len(), 2);
        pacer.set_muted(true);
        let (held, _) = run(&mut pacer, start + 31 * MS, start + 2000 * MS, |_| {
            Duration::ZERO
        });
        assert!(held.is_empty());
        pacer.set_muted(false);
        let (resumed, _) = run(&mut pacer, start + 2001 * MS, start + 2070 * MS, |_| {
            Duration::ZERO
        });
        let bytes: Vec<u8> = resumed.iter().map(|s| s.first_byte).collect();
        assert_eq!(bytes, [3, 4, 0xFF]);
        assert!(resumed[0].header.marker);
        assert_eq!(
            resumed[0].header.sequence,
            sent[1].header.sequence.wrapping_add(1)
        );
    }

    #[test]
    fn works_with_borrowed_frames() {
        static PROMPT: [Frame; 2] = [[7; FRAME_LEN]; 2];
        let start = Instant::now();
        let mut pacer: Pacer<&'static [Frame]> = Pacer::new(config(Idle::ComfortSilence), start);
        pacer.enqueue(&PROMPT);
        let Output::Transmit(t) = pacer.poll(start) else {
            panic!("a packet is due at the start");
        };
        assert_eq!(t.packet[HEADER_LEN], 7);
    }

    #[test]
    fn plays_a_prepared_prompt_in_the_negotiated_law() {
        // 1.5 frames of a loud square wave: the last frame is padded with silence.
        let pcm: Vec<i16> = (0..240)
            .map(|i| if i % 2 == 0 { 8000 } else { -8000 })
            .collect();
        let prompt = crate::audio::Prompt::from_pcm(&pcm);
        for (codec, pt) in [(Codec::Pcmu, 0), (Codec::Pcma, 8)] {
            let start = Instant::now();
            let mut pacer: Pacer = Pacer::new(
                PacerConfig {
                    codec,
                    payload_type: pt,
                    ids: IDS,
                    idle: Idle::ComfortSilence,
                },
                start,
            );
            let id = pacer.enqueue(prompt.clone());
            let mut payloads = vec![];
            let mut now = start;
            while payloads.len() < 3 {
                match pacer.poll(now) {
                    Output::Transmit(t) => payloads.push(t.packet[HEADER_LEN..].to_vec()),
                    Output::Event(e) => assert_eq!(e, PacerEvent::PromptFinished(id)),
                    Output::Timeout(t) => now = t,
                }
            }
            let frames = prompt.frames();
            let expected = |i: usize| match codec {
                Codec::Pcmu => frames[i].ulaw,
                Codec::Pcma => frames[i].alaw,
            };
            assert_eq!(payloads[0], expected(0));
            assert_eq!(payloads[1], expected(1));
            assert_eq!(payloads[2], [codec.silence(); FRAME_LEN]);
            assert_eq!(
                payloads[1][100],
                codec.silence(),
                "padding of the last frame"
            );
        }
    }
}
