//! The receive side of one call: where the caller's RTP comes from, what it carries,
//! and when it stopped.
//!
//! The shell hands every datagram that arrives on the call's RTP port to
//! [`RtpSession::handle_datagram`] with its source address and the time; the session
//! answers with at most one [`Event`]: a frame of the caller's audio (for the
//! recorder and, when telephone-event was not negotiated, the in-band DTMF
//! detector) or a key pressed (RFC 4733, each press once). The shell also sleeps
//! until [`RtpSession::poll_timeout`] and then calls [`RtpSession::handle_timeout`],
//! which reports [`Event::MediaTimeout`] after 30 s without RTP, so the call can be
//! hung up. Nothing here reads a clock or a socket.
//!
//! # Symmetric RTP: whose packets count
//!
//! Callers behind NAT announce in their SDP an address they cannot be reached on
//! (`c=IN IP4 192.168.1.20`), and some gateways send from another port than the one
//! they announce. kuma therefore answers to the address the caller's packets come
//! from (RFC 4961, "symmetric RTP"), learned as follows:
//!
//! 1. Until a source is learned, packets are sent to the address of the SDP, and
//!    [`RtpSession::remote`] returns it.
//! 2. A well-formed RTP packet (any payload type) from exactly the address of the SDP
//!    is trusted at once: that source is locked in.
//! 3. Another address of the caller's, one whose host is the SDP's or the one
//!    the call's SIP came from (the gateway, or the NAT in front of a phone: see
//!    [`SessionConfig::signalling`]), must first send [`PROBATION`] packets in
//!    sequence (same SSRC, consecutive sequence numbers), as RFC 3550 §6.2.1 asks
//!    of a new source; then it is locked in. A scanner's single datagram or a
//!    spoofed burst with random numbers is not enough to steal the call's media
//!    (the "RTP bleed" attack); the first 40 ms of a NATed caller's audio are
//!    dropped, which nobody hears while the first prompt plays. Any other host
//!    is never believed (counted in [`ReceiveStats::from_stranger`]): a stranger
//!    who sent three packets in sequence before the caller's first, or while the
//!    caller paused, took the call's audio and answered its poll.
//! 4. Once locked, packets from any other address are dropped and counted
//!    ([`ReceiveStats::from_stranger`]) — unless the locked source has been silent
//!    for [`RELEARN_AFTER`] (5 s): then a new address of the caller's hosts (rule
//!    3) that passes probation takes over. That is what a NAT that rebinds the
//!    caller's mapping to a new port looks like.
//! 5. A re-INVITE that changes the address in the SDP starts learning again
//!    ([`RtpSession::update_remote`]).
//!
//! The SSRC is not part of the lock: sipp, and some gateways, start a new SSRC for
//! the telephone-events.
//!
//! # What is delivered
//!
//! The negotiated audio payload type with 1 to [`MAX_AUDIO_PAYLOAD`] bytes (20 ms is
//! 160 bytes, 30 ms 240: any G.711 length is fine); the negotiated telephone-event
//! type to the [`DtmfReceiver`]; every other payload type (comfort noise, a codec
//! the caller did not negotiate, sipp's no-op packets) is ignored but keeps the call
//! alive. Loss and jitter are counted per RFC 3550 appendix A.1 and A.8 on the
//! audio stream.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::CLOCK_RATE;
use super::dtmf_event::{DtmfKey, DtmfReceiver, EventOutcome};
use super::packet::{Packet, PacketError};

/// Packets in sequence a new source must send before it is believed.
pub const PROBATION: u8 = 3;
/// How long the learned source must have been silent before another may replace it.
pub const RELEARN_AFTER: Duration = Duration::from_secs(5);
/// With no RTP for this long the caller is gone (the 30 s).
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest audio payload delivered: 120 ms of G.711, the usual `maxptime`.
pub const MAX_AUDIO_PAYLOAD: usize = 960;

/// RFC 3550 A.1: a jump forward larger than this is not loss but a restarted stream.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: packets this far behind are late ones, not a restart.
const MAX_MISORDER: u16 = 100;

/// What the session needs from the negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// The payload type of the negotiated audio codec.
    pub audio_pt: u8,
    /// The payload type of `telephone-event/8000`, when negotiated.
    pub dtmf_pt: Option<u8>,
    /// The address in the caller's SDP (`c=` and `m=` port).
    pub remote: SocketAddr,
    /// How long without RTP before [`Event::MediaTimeout`].
    pub media_timeout: Duration,
    /// How long the learned source must be silent before another may replace it.
    pub relearn_after: Duration,
    /// The host the call's SIP came from (the gateway's, through a proxy): its
    /// packets may be the caller's (rule 3) as the SDP host's may. `None`: the
    /// SDP's host only.
    pub signalling: Option<IpAddr>,
}

impl SessionConfig {
    /// A configuration with the default timeouts.
    pub fn new(audio_pt: u8, dtmf_pt: Option<u8>, remote: SocketAddr) -> Self {
        SessionConfig {
            audio_pt,
            dtmf_pt,
            remote,
            media_timeout: MEDIA_TIMEOUT,
            relearn_after: RELEARN_AFTER,
            signalling: None,
        }
    }

    /// The same, with the host the call's SIP came from.
    pub fn with_signalling(self, host: IpAddr) -> Self {
        SessionConfig {
            signalling: Some(host.to_canonical()),
            ..self
        }
    }

    /// Whether packets from `from` may be the caller's (rule 3).
    fn callers_host(&self, from: SocketAddr) -> bool {
        let host = from.ip().to_canonical();
        host == self.remote.ip().to_canonical() || Some(host) == self.signalling
    }
}

/// One frame of the caller's audio, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audio<'a> {
    /// G.711 bytes, one per sample.
    pub payload: &'a [u8],
    /// RTP timestamp of the first sample.
    pub timestamp: u32,
    /// RTP sequence number.
    pub sequence: u16,
    /// The stream it belongs to.
    pub ssrc: u32,
    /// The marker bit (start of a talkspurt).
    pub marker: bool,
}

/// What happened, for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The caller's audio.
    Audio(Audio<'a>),
    /// A key pressed, sent as an RFC 4733 event.
    Key(DtmfKey),
    /// No RTP for [`SessionConfig::media_timeout`]: hang up.
    MediaTimeout,
}

/// Counters of the receiver, for metrics and the call's log.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReceiveStats {
    /// Well-formed RTP packets accepted from the caller.
    pub packets: u64,
    /// Audio packets delivered.
    pub audio_packets: u64,
    /// Telephone-event packets handled.
    pub dtmf_packets: u64,
    /// Key presses reported.
    pub keys: u64,
    /// Datagrams that are not RTP, and telephone-events too short to read.
    pub malformed: u64,
    /// RTCP packets that arrived on the RTP port.
    pub rtcp: u64,
    /// Packets from an address other than the caller's.
    pub from_stranger: u64,
    /// Packets dropped while their source was on probation.
    pub on_probation: u64,
    /// Packets with a payload type that was not negotiated (or comfort noise).
    pub unknown_payload_type: u64,
    /// Audio packets empty or longer than [`MAX_AUDIO_PAYLOAD`].
    pub bad_audio_length: u64,
    /// Times a source was locked in (1 for a normal call).
    pub sources_learned: u64,
    /// Audio packets expected from the sequence numbers (RFC 3550 A.3).
    pub expected: u64,
    /// Audio packets lost: expected minus received, never below zero.
    pub lost: u64,
    /// Interarrival jitter of the audio (RFC 3550 A.8).
    pub jitter: Duration,
}

/// Sequence and jitter state of one audio SSRC (RFC 3550 A.1, A.8).
#[derive(Debug, Clone, Copy)]
struct Stream {
    ssrc: u32,
    base_seq: u16,
    max_seq: u16,
    /// Sequence wrap-arounds, × 65536.
    cycles: u64,
    /// The sequence number after a big jump, awaiting confirmation of a restart.
    bad_seq: Option<u16>,
    received: u64,
    /// Relative transit time of the previous packet, in timestamp units.
    transit: Option<u32>,
    /// Jitter in timestamp units, as a float (RFC 3550 keeps it ×16 in integers).
    jitter: f64,
}

impl Stream {
    fn new(ssrc: u32, seq: u16) -> Self {
        Stream {
            ssrc,
            base_seq: seq,
            max_seq: seq,
            cycles: 0,
            bad_seq: None,
            received: 0,
            transit: None,
            jitter: 0.0,
        }
    }

    fn expected(&self) -> u64 {
        (self.cycles + u64::from(self.max_seq)) - u64::from(self.base_seq) + 1
    }

    fn update(&mut self, seq: u16, timestamp: u32, arrival: u32) {
        let delta = seq.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            // In order, possibly with a gap (lost packets).
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
            self.bad_seq = None;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A big jump: the sender restarted. Believe it on the second packet.
            if self.bad_seq == Some(seq) {
                *self = Stream::new(self.ssrc, seq);
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return;
            }
        }
        // Else a duplicate or a late packet: counted as received, as in A.1.
        self.received += 1;

        let transit = arrival.wrapping_sub(timestamp);
        if let Some(previous) = self.transit {
            let d = f64::from((transit.wrapping_sub(previous) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }
}

/// A source on probation (rule 3 of the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    last_seq: u16,
    in_sequence: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Learning,
    Locked {
        addr: SocketAddr,
        last_packet: Instant,
    },
}

/// The receive side of one call (see the module doc).
#[derive(Debug, Clone)]
pub struct RtpSession {
    config: SessionConfig,
    created: Instant,
    source: Source,
    candidate: Option<Candidate>,
    last_activity: Instant,
    /// The caller is expected to send (the negotiated direction lets it).
    expect_media: bool,
    timed_out: bool,
    dtmf: DtmfReceiver,
    stream: Option<Stream>,
    /// Loss counted on earlier SSRCs of the audio.
    earlier_expected: u64,
    earlier_received: u64,
    stats: ReceiveStats,
}

impl RtpSession {
    /// A session created when the call is answered; the media timeout counts from
    /// `now`.
    pub fn new(config: SessionConfig, now: Instant) -> Self {
        RtpSession {
            config,
            created: now,
            source: Source::Learning,
            candidate: None,
            last_activity: now,
            expect_media: true,
            timed_out: false,
            dtmf: DtmfReceiver::new(),
            stream: None,
            earlier_expected: 0,
            earlier_received: 0,
            stats: ReceiveStats::default(),
        }
    }

    /// Where to send RTP: the learned source, else the address in the SDP.
    pub fn remote(&self) -> SocketAddr {
        match self.source {
            Source::Locked { addr, .. } => addr,
            Source::Learning => self.config.remote,
        }
    }

    /// True once the caller's real address is known.
    pub fn is_learned(&self) -> bool {
        matches!(self.source, Source::Locked { .. })
    }

    /// The caller's address while its packets are the only ones that can count
    /// at `now`: a source is locked and has not been silent for
    /// [`RELEARN_AFTER`] (rule 4), so any other address's datagram would be
    /// dropped here anyway. The shell may then have the kernel drop them
    /// (`serve::rtp_socket::associate`: a connected socket) and send without a
    /// route lookup. `None` while learning (rules 1–3, 5) or once another source
    /// may take over: then every datagram must reach this session again.
    pub fn pinned(&self, now: Instant) -> Option<SocketAddr> {
        match self.source {
            Source::Locked { addr, last_packet }
                if now.saturating_duration_since(last_packet) < self.config.relearn_after =>
            {
                Some(addr)
            }
            _ => None,
        }
    }

    /// A re-INVITE renegotiated the media: new payload types, and when the SDP's
    /// address changed, learning starts again (rule 5).
    pub fn update_remote(&mut self, audio_pt: u8, dtmf_pt: Option<u8>, remote: SocketAddr) {
        self.config.audio_pt = audio_pt;
        self.config.dtmf_pt = dtmf_pt;
        if remote != self.config.remote {
            self.config.remote = remote;
            self.source = Source::Learning;
            self.candidate = None;
        }
    }

    /// Whether the caller is expected to send media: false while it holds the call
    /// (its SDP says `recvonly` or `inactive`), which disarms the media timeout;
    /// true again re-arms it from `now`.
    pub fn set_expect_media(&mut self, expect: bool, now: Instant) {
        if expect && !self.expect_media {
            self.last_activity = now;
            self.timed_out = false;
        }
        self.expect_media = expect;
    }

    /// When [`RtpSession::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.expect_media && !self.timed_out)
            .then(|| self.last_activity + self.config.media_timeout)
    }

    /// Reports [`Event::MediaTimeout`] once when no RTP came for the timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Event<'static>> {
        let deadline = self.poll_timeout()?;
        if now < deadline {
            return None;
        }
        self.timed_out = true;
        tracing::info!(silent_for = ?now.saturating_duration_since(self.last_activity), "no RTP from the caller");
        Some(Event::MediaTimeout)
    }

    /// The counters so far.
    pub fn stats(&self) -> ReceiveStats {
        let mut stats = self.stats;
        let (expected, received, jitter) = match &self.stream {
            Some(s) => (s.expected(), s.received, s.jitter),
            None => (0, 0, 0.0),
        };
        stats.expected = self.earlier_expected + expected;
        stats.lost = stats
            .expected
            .saturating_sub(self.earlier_received + received);
        stats.jitter = Duration::from_secs_f64(jitter / f64::from(CLOCK_RATE));
        stats
    }

    /// Handles one datagram from `from` that arrived at `now` (see the module doc).
    pub fn handle_datagram<'a>(
        &mut self,
        datagram: &'a [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Option<Event<'a>> {
        let packet = match Packet::parse(datagram) {
            Ok(packet) => packet,
            Err(PacketError::Rtcp(_)) => {
                self.stats.rtcp += 1;
                return None;
            }
            Err(_) => {
                self.stats.malformed += 1;
                return None;
            }
        };
        if !self.accept_source(&packet, from, now) {
            return None;
        }
        self.last_activity = self.last_activity.max(now);
        self.timed_out = false;
        self.stats.packets += 1;

        let header = packet.header;
        if header.payload_type == self.config.audio_pt {
            if packet.payload.is_empty() || packet.payload.len() > MAX_AUDIO_PAYLOAD {
                self.stats.bad_audio_length += 1;
                return None;
            }
            self.stats.audio_packets += 1;
            let arrival = self.arrival_units(now);
            self.stream_for(header.ssrc, header.sequence).update(
                header.sequence,
                header.timestamp,
                arrival,
            );
            return Some(Event::Audio(Audio {
                payload: packet.payload,
                timestamp: header.timestamp,
                sequence: header.sequence,
                ssrc: header.ssrc,
                marker: header.marker,
            }));
        }
        if Some(header.payload_type) == self.config.dtmf_pt {
            self.stats.dtmf_packets += 1;
            return match self
                .dtmf
                .handle(header.ssrc, header.timestamp, packet.payload, now)
            {
                Ok(EventOutcome::Key(key)) => {
                    self.stats.keys += 1;
                    Some(Event::Key(key))
                }
                Ok(EventOutcome::Repeat | EventOutcome::NotAKey(_)) => None,
                Err(_) => {
                    self.stats.malformed += 1;
                    None
                }
            };
        }
        self.stats.unknown_payload_type += 1;
        None
    }

    /// Applies the rules of the module doc; true when the packet is the caller's.
    fn accept_source(&mut self, packet: &Packet<'_>, from: SocketAddr, now: Instant) -> bool {
        match self.source {
            Source::Locked { addr, last_packet } if addr == from => {
                self.source = Source::Locked {
                    addr,
                    last_packet: last_packet.max(now),
                };
                true
            }
            Source::Locked { last_packet, .. } => {
                let silent = now.saturating_duration_since(last_packet);
                if silent >= self.config.relearn_after
                    && self.config.callers_host(from)
                    && self.on_probation(packet, from)
                {
                    tracing::info!(%from, ?silent, "RTP source changed");
                    self.lock(from, now);
                    true
                } else {
                    self.stats.from_stranger += 1;
                    false
                }
            }
            // The SDP's own address is on the caller's host, so it is never here.
            Source::Learning if !self.config.callers_host(from) => {
                self.stats.from_stranger += 1;
                false
            }
            Source::Learning => {
                if from == self.config.remote || self.on_probation(packet, from) {
                    tracing::debug!(%from, announced = %self.config.remote, "RTP source learned");
                    self.lock(from, now);
                    true
                } else {
                    // Still alive, though not yet believed.
                    self.last_activity = self.last_activity.max(now);
                    self.stats.on_probation += 1;
                    false
                }
            }
        }
    }

    fn lock(&mut self, addr: SocketAddr, now: Instant) {
        self.source = Source::Locked {
            addr,
            last_packet: now,
        };
        self.candidate = None;
        self.stats.sources_learned += 1;
    }

    /// Counts a packet towards its source's probation; true when it completes it.
    fn on_probation(&mut self, packet: &Packet<'_>, from: SocketAddr) -> bool {
        let (ssrc, seq) = (packet.header.ssrc, packet.header.sequence);
        let in_sequence = match self.candidate {
            Some(c) if c.addr == from && c.ssrc == ssrc && seq == c.last_seq.wrapping_add(1) => {
                c.in_sequence + 1
            }
            _ => 1,
        };
        if in_sequence >= PROBATION {
            self.candidate = None;
            return true;
        }
        self.candidate = Some(Candidate {
            addr: from,
            ssrc,
            last_seq: seq,
            in_sequence,
        });
        false
    }

    /// The arrival time in RTP timestamp units (8 kHz), wrapping like timestamps.
    fn arrival_units(&self, now: Instant) -> u32 {
        let micros = now.saturating_duration_since(self.created).as_micros();
        (micros * u128::from(CLOCK_RATE) / 1_000_000) as u32
    }

    /// The sequence state of `ssrc`, starting a new one when the SSRC changed.
    fn stream_for(&mut self, ssrc: u32, seq: u16) -> &mut Stream {
        match &self.stream {
            Some(s) if s.ssrc == ssrc => {}
            Some(s) => {
                self.earlier_expected += s.expected();
                self.earlier_received += s.received;
                self.stream = None;
            }
            None => {}
        }
        self.stream.get_or_insert_with(|| Stream::new(ssrc, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::dtmf_event::TelephoneEvent;
    use crate::rtp::packet::Header;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);
    const AUDIO_PT: u8 = 0;
    const DTMF_PT: u8 = 101;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The NAT in front of the caller, where its SIP came from.
    const NAT_HOST: &str = "203.0.113.5";

    fn session(now: Instant) -> RtpSession {
        RtpSession::new(
            SessionConfig::new(AUDIO_PT, Some(DTMF_PT), addr("192.168.1.20:4000"))
                .with_signalling(NAT_HOST.parse().unwrap()),
            now,
        )
    }

    fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 12 + payload.len()];
        Header {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc,
        }
        .write(payload, &mut buf)
        .unwrap();
        buf
    }

    fn audio(seq: u16, len: usize) -> Vec<u8> {
        rtp(AUDIO_PT, seq, u32::from(seq) * 160, 0xA, &vec![0xFF; len])
    }

    fn is_audio(e: Option<Event<'_>>) -> bool {
        matches!(e, Some(Event::Audio(_)))
    }

    #[test]
    fn the_announced_address_is_trusted_at_once() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert_eq!(s.remote(), addr("192.168.1.20:4000"));
        let datagram = audio(1, 160);
        let e = s.handle_datagram(&datagram, addr("192.168.1.20:4000"), t0);
        let Some(Event::Audio(a)) = e else {
            panic!("expected audio, got {e:?}");
        };
        assert_eq!(a.payload.len(), 160);
        assert_eq!(a.sequence, 1);
        assert!(s.is_learned());
    }

    #[test]
    fn a_natted_caller_is_learned_after_probation() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let nat = addr("203.0.113.5:61000");
        assert!(!is_audio(s.handle_datagram(&audio(10, 160), nat, t0)));
        assert!(!is_audio(s.handle_datagram(
            &audio(11, 160),
            nat,
            t0 + 20 * MS
        )));
        assert_eq!(s.remote(), addr("192.168.1.20:4000"));
        assert!(is_audio(s.handle_datagram(
            &audio(12, 160),
            nat,
            t0 + 40 * MS
        )));
        assert_eq!(s.remote(), nat);
        assert_eq!(s.stats().on_probation, 2);
        assert_eq!(s.stats().sources_learned, 1);
    }

    #[test]
    fn probation_needs_packets_in_sequence_from_one_source() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let (a, b) = (addr("203.0.113.5:1000"), addr("203.0.113.5:1002"));
        // Interleaved sources, and numbers out of sequence, never pass.
        for i in 0..10u16 {
            let from = if i % 2 == 0 { a } else { b };
            assert!(!is_audio(s.handle_datagram(&audio(i, 160), from, t0)));
            assert!(!is_audio(s.handle_datagram(&audio(i * 7, 160), a, t0)));
        }
        assert!(!s.is_learned());
    }

    #[test]
    fn a_stranger_mid_call_is_ignored() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let caller = addr("192.168.1.20:4000");
        let stranger = addr("198.51.100.66:5060");
        assert!(is_audio(s.handle_datagram(&audio(1, 160), caller, t0)));
        // Even in sequence, the stranger gets nothing while the caller talks.
        for i in 0..20u16 {
            let now = t0 + u32::from(i) * 20 * MS;
            assert!(
                s.handle_datagram(&audio(100 + i, 160), stranger, now)
                    .is_none()
            );
            assert!(is_audio(s.handle_datagram(&audio(2 + i, 160), caller, now)));
        }
        assert_eq!(s.remote(), caller);
        assert_eq!(s.stats().from_stranger, 20);
    }

    #[test]
    fn a_stranger_is_never_believed_however_well_it_counts() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let stranger = addr("198.51.100.66:4000");
        // Before the caller's first packet: in sequence, still nothing.
        for i in 0..10u16 {
            let now = t0 + u32::from(i) * 20 * MS;
            assert!(s.handle_datagram(&audio(i, 160), stranger, now).is_none());
        }
        assert!(!s.is_learned());
        assert_eq!(s.remote(), addr("192.168.1.20:4000"));
        // The caller, from behind its NAT, is learned as before.
        let nat = addr("203.0.113.5:61000");
        let t1 = t0 + 200 * MS;
        for seq in 50..52 {
            assert!(s.handle_datagram(&audio(seq, 160), nat, t1).is_none());
        }
        assert!(is_audio(s.handle_datagram(&audio(52, 160), nat, t1)));
        // Silent (suppression) for long past RELEARN_AFTER: the stranger's
        // packets in sequence still take nothing.
        let t2 = t1 + 8000 * MS;
        for i in 0..10u16 {
            assert!(
                s.handle_datagram(&audio(20 + i, 160), stranger, t2)
                    .is_none()
            );
        }
        assert_eq!(s.remote(), nat);
        assert_eq!(s.stats().from_stranger, 20);
        // The stranger's packets do not keep a silent call alive either.
        assert_eq!(
            s.handle_timeout(t1 + MEDIA_TIMEOUT),
            Some(Event::MediaTimeout)
        );
    }

    #[test]
    fn a_new_source_takes_over_after_the_old_one_fell_silent() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let caller = addr("192.168.1.20:4000");
        let rebound = addr("192.168.1.20:4002");
        assert!(is_audio(s.handle_datagram(&audio(1, 160), caller, t0)));
        // 4 s later: too early.
        let t1 = t0 + 4000 * MS;
        for i in 0..5 {
            assert!(s.handle_datagram(&audio(2 + i, 160), rebound, t1).is_none());
        }
        assert_eq!(s.remote(), caller);
        // 5 s after the caller's last packet, three in sequence take over.
        let t2 = t0 + 5000 * MS;
        assert!(s.handle_datagram(&audio(7, 160), rebound, t2).is_none());
        assert!(s.handle_datagram(&audio(8, 160), rebound, t2).is_none());
        assert!(is_audio(s.handle_datagram(&audio(9, 160), rebound, t2)));
        assert_eq!(s.remote(), rebound);
        // Now the old address is the stranger.
        assert!(s.handle_datagram(&audio(10, 160), caller, t2).is_none());
    }

    #[test]
    fn the_source_is_pinned_only_while_strangers_cannot_take_over() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let caller = addr("192.168.1.20:4000");
        let rebound = addr("192.168.1.20:4002");
        // Learning: every datagram must come here.
        assert_eq!(s.pinned(t0), None);
        assert!(is_audio(s.handle_datagram(&audio(1, 160), caller, t0)));
        assert_eq!(s.pinned(t0), Some(caller));
        // Until the caller has been silent for RELEARN_AFTER, only its packets count.
        assert_eq!(s.pinned(t0 + 4999 * MS), Some(caller));
        assert!(
            s.handle_datagram(&audio(2, 160), rebound, t0 + 4999 * MS)
                .is_none()
        );
        // Then another source may take over: no longer pinned.
        let t1 = t0 + 5000 * MS;
        assert_eq!(s.pinned(t1), None);
        for seq in 3..5 {
            assert!(s.handle_datagram(&audio(seq, 160), rebound, t1).is_none());
        }
        assert!(is_audio(s.handle_datagram(&audio(5, 160), rebound, t1)));
        assert_eq!(s.pinned(t1), Some(rebound));
        // A re-INVITE to a new address learns again.
        s.update_remote(AUDIO_PT, Some(DTMF_PT), addr("10.0.0.9:7000"));
        assert_eq!(s.pinned(t1), None);
    }

    #[test]
    fn a_reinvite_with_a_new_address_learns_again() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert!(is_audio(s.handle_datagram(
            &audio(1, 160),
            addr("192.168.1.20:4000"),
            t0
        )));
        s.update_remote(8, Some(DTMF_PT), addr("10.0.0.9:7000"));
        assert_eq!(s.remote(), addr("10.0.0.9:7000"));
        let pcma = rtp(8, 2, 320, 0xB, &[0xD5; 160]);
        assert!(is_audio(s.handle_datagram(
            &pcma,
            addr("10.0.0.9:7000"),
            t0
        )));
        // The same address again changes nothing.
        s.update_remote(8, Some(DTMF_PT), addr("10.0.0.9:7000"));
        assert!(s.is_learned());
    }

    #[test]
    fn accepts_20_and_30_ms_and_ignores_other_payload_types() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        let datagram = audio(1, 240);
        let Some(Event::Audio(a)) = s.handle_datagram(&datagram, from, t0) else {
            panic!("30 ms refused");
        };
        assert_eq!(a.payload.len(), 240);
        assert!(is_audio(s.handle_datagram(&audio(2, 160), from, t0)));
        // Comfort noise, G.729, sipp's no-op type 97: ignored, but alive.
        for pt in [13, 18, 97] {
            let p = rtp(pt, 3, 0, 0xA, &[0; 10]);
            assert!(s.handle_datagram(&p, from, t0 + 10_000 * MS).is_none());
        }
        assert_eq!(s.stats().unknown_payload_type, 3);
        assert_eq!(s.poll_timeout(), Some(t0 + 40_000 * MS));
        // Empty and absurd audio payloads are not delivered.
        assert!(s.handle_datagram(&audio(4, 0), from, t0).is_none());
        assert!(s.handle_datagram(&audio(5, 60_000), from, t0).is_none());
        assert_eq!(s.stats().bad_audio_length, 2);
    }

    #[test]
    fn keys_are_reported_once_among_audio() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        let mut keys = String::new();
        let mut seq = 0u16;
        for (i, (event, end)) in [(7, false), (7, false), (7, true), (7, true), (7, true)]
            .into_iter()
            .enumerate()
        {
            let payload = TelephoneEvent {
                event,
                end,
                volume: 10,
                duration: 400 * i as u16,
            }
            .to_bytes();
            let p = rtp(DTMF_PT, seq, 8000, 0xA, &payload);
            seq += 1;
            if let Some(Event::Key(k)) = s.handle_datagram(&p, from, t0 + 50 * MS * i as u32) {
                keys.push(k.key);
            }
            assert!(is_audio(s.handle_datagram(&audio(seq, 160), from, t0)));
            seq += 1;
        }
        assert_eq!(keys, "7");
        assert_eq!(s.stats().keys, 1);
        assert_eq!(s.stats().dtmf_packets, 5);
    }

    #[test]
    fn a_quick_repeated_digit_among_audio_is_two_keys() {
        // "1", "1", "2" 160 ms apart, as a phone sends them between its audio
        // packets: every 20 ms one audio packet and, during a press, an event
        // packet (start, updates, three ends), timestamps crossing 2^32.
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        let ts0 = u32::MAX - 1000;
        let presses = [(1u8, 0u32), (1, 160), (2, 320)];
        let mut keys = String::new();
        for (seq, ms) in (0u32..25).map(|i| (i as u16, i * 20)) {
            let now = t0 + MS * ms;
            let ts = ts0.wrapping_add(ms * 8);
            let audio = rtp(AUDIO_PT, seq * 2, ts, 0xA, &[0xFF; 160]);
            assert!(is_audio(s.handle_datagram(&audio, from, now)));
            for &(event, start) in &presses {
                // 80 ms of key, then the end sent three times.
                let Some(age) = ms.checked_sub(start).filter(|&a| a <= 120) else {
                    continue;
                };
                let end = age >= 80;
                let payload = TelephoneEvent {
                    event,
                    end,
                    volume: 10,
                    duration: (age.min(80) * 8) as u16,
                }
                .to_bytes();
                let p = rtp(
                    DTMF_PT,
                    seq * 2 + 1,
                    ts0.wrapping_add(start * 8),
                    0xA,
                    &payload,
                );
                if let Some(Event::Key(k)) = s.handle_datagram(&p, from, now) {
                    keys.push(k.key);
                }
            }
        }
        assert_eq!(keys, "112");
        assert_eq!(s.stats().keys, 3);
        assert_eq!(s.stats().dtmf_packets, 21);
    }

    #[test]
    fn without_negotiated_telephone_event_the_packets_are_ignored() {
        let t0 = Instant::now();
        let mut s = RtpSession::new(SessionConfig::new(8, None, addr("192.168.1.20:4000")), t0);
        let p = rtp(101, 1, 8000, 0xA, &[1, 0x8A, 0, 160]);
        assert!(
            s.handle_datagram(&p, addr("192.168.1.20:4000"), t0)
                .is_none()
        );
        assert_eq!(s.stats().unknown_payload_type, 1);
    }

    #[test]
    fn garbage_and_rtcp_are_counted_not_delivered() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        assert!(
            s.handle_datagram(b"OPTIONS sip:x SIP/2.0\r\n", from, t0)
                .is_none()
        );
        assert!(s.handle_datagram(&[], from, t0).is_none());
        assert!(
            s.handle_datagram(&vec![0x80; 65_535][..], from, t0)
                .is_none()
        );
        let rr = [0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0];
        assert!(s.handle_datagram(&rr, from, t0).is_none());
        let stats = s.stats();
        assert_eq!(stats.malformed, 2);
        assert_eq!(stats.rtcp, 1);
        // The 64 KiB datagram is well-formed RTP (PT 0x80 & 0x7F = 0 … with marker):
        // it is audio, too long to deliver.
        assert_eq!(stats.bad_audio_length, 1);
    }

    #[test]
    fn thirty_seconds_without_rtp_times_out_once() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        assert_eq!(s.poll_timeout(), Some(t0 + MEDIA_TIMEOUT));
        assert!(s.handle_timeout(t0 + 29_999 * MS).is_none());
        assert!(is_audio(s.handle_datagram(
            &audio(1, 160),
            from,
            t0 + 10_000 * MS
        )));
        assert_eq!(s.poll_timeout(), Some(t0 + 40_000 * MS));
        assert!(s.handle_timeout(t0 + 39_999 * MS).is_none());
        assert_eq!(
            s.handle_timeout(t0 + 40_000 * MS),
            Some(Event::MediaTimeout)
        );
        assert_eq!(s.poll_timeout(), None);
        assert!(s.handle_timeout(t0 + 50_000 * MS).is_none());
    }

    #[test]
    fn a_stranger_does_not_keep_the_call_alive() {
        let t0 = Instant::now();
        let mut s = session(t0);
        assert!(is_audio(s.handle_datagram(
            &audio(1, 160),
            addr("192.168.1.20:4000"),
            t0
        )));
        let stranger = addr("198.51.100.66:5060");
        // Random numbers: never passes probation, even after the caller fell silent.
        for i in 0..100u32 {
            let now = t0 + i * 250 * MS;
            s.handle_datagram(&audio((i * 7919) as u16, 160), stranger, now);
        }
        assert_eq!(
            s.handle_timeout(t0 + 30_000 * MS),
            Some(Event::MediaTimeout)
        );
    }

    #[test]
    fn hold_disarms_the_timeout_and_resume_rearms_it() {
        let t0 = Instant::now();
        let mut s = session(t0);
        s.set_expect_media(false, t0 + 1000 * MS);
        assert_eq!(s.poll_timeout(), None);
        assert!(s.handle_timeout(t0 + 600_000 * MS).is_none());
        s.set_expect_media(true, t0 + 600_000 * MS);
        assert_eq!(s.poll_timeout(), Some(t0 + 630_000 * MS));
    }

    #[test]
    fn counts_loss_and_jitter() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        // 100 packets, every tenth lost, arriving exactly on time: no jitter.
        for seq in 0..100u16 {
            if seq % 10 == 5 {
                continue;
            }
            let now = t0 + u32::from(seq) * 20 * MS;
            // The sequence number wraps around in the middle.
            let p = rtp(
                AUDIO_PT,
                65_500u16.wrapping_add(seq),
                u32::from(seq) * 160,
                0xA,
                &[0xFF; 160],
            );
            assert!(is_audio(s.handle_datagram(&p, from, now)));
        }
        let stats = s.stats();
        assert_eq!(stats.expected, 100);
        assert_eq!(stats.lost, 10);
        assert_eq!(stats.jitter, Duration::ZERO);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        // Packets alternately on time and 10 ms late: |D| = 80 units each time, so
        // the estimate converges towards 80 units = 10 ms.
        for seq in 0..400u16 {
            let late = if seq % 2 == 1 {
                10 * MS
            } else {
                Duration::ZERO
            };
            let now = t0 + u32::from(seq) * 20 * MS + late;
            s.handle_datagram(&audio(seq, 160), from, now);
        }
        let jitter = s.stats().jitter;
        assert!(
            (jitter.as_secs_f64() - 0.010).abs() < 0.0005,
            "jitter {jitter:?}"
        );
    }

    #[test]
    fn a_new_ssrc_starts_new_counters() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        for seq in 0..10u16 {
            s.handle_datagram(&audio(seq, 160), from, t0);
        }
        for seq in 5000..5010u16 {
            let p = rtp(AUDIO_PT, seq, 0, 0xB, &[0xFF; 160]);
            assert!(is_audio(s.handle_datagram(&p, from, t0)));
        }
        let stats = s.stats();
        assert_eq!(stats.expected, 20);
        assert_eq!(stats.lost, 0);
    }

    #[test]
    fn duplicates_do_not_count_as_loss() {
        let t0 = Instant::now();
        let mut s = session(t0);
        let from = addr("192.168.1.20:4000");
        for seq in [1u16, 2, 2, 3, 5, 4, 6] {
            s.handle_datagram(&audio(seq, 160), from, t0);
        }
        assert_eq!(s.stats().expected, 6);
        assert_eq!(s.stats().lost, 0);
    }

    #[test]
    fn seed_corpus_never_panics() {
        let t0 = Instant::now();
        let mut s = session(t0);
        for (_, bytes) in crate::rtp::fuzz::corpus("rtp") {
            let _ = s.handle_datagram(&bytes, addr("192.168.1.20:4000"), t0);
        }
    }

    proptest! {
        #![proptest_config(crate::rtp::fuzz::config("rtp_session"))]

        #[test]
        fn arbitrary_datagrams_never_panic(
            datagrams in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..300), 0u8..3, 0u64..100_000),
                0..60,
            ),
        ) {
            let t0 = Instant::now();
            let mut s = session(t0);
            let sources = [
                addr("192.168.1.20:4000"),
                addr("203.0.113.5:61000"),
                addr("[2001:db8::1]:5004"),
            ];
            for (bytes, source, at) in datagrams {
                let now = t0 + Duration::from_millis(at);
                let _ = s.handle_datagram(&bytes, sources[usize::from(source)], now);
                let _ = s.handle_timeout(now);
                let _ = s.stats();
            }
        }

        #[test]
        fn well_formed_rtp_with_random_fields_never_panics(
            packets in proptest::collection::vec(
                (any::<u16>(), any::<u32>(), any::<u32>(), prop_oneof![Just(0u8), Just(101u8), any::<u8>().prop_map(|p| p & 0x3F)], 0usize..400, 0u64..100_000),
                0..100,
            ),
        ) {
            let t0 = Instant::now();
            let mut s = session(t0);
            for (seq, ts, ssrc, pt, len, at) in packets {
                let bytes = rtp(pt, seq, ts, ssrc, &vec![0x55; len]);
                let now = t0 + Duration::from_millis(at);
                let _ = s.handle_datagram(&bytes, addr("192.168.1.20:4000"), now);
                let stats = s.stats();
                prop_assert!(stats.jitter < Duration::from_secs(600_000));
            }
        }
    }
}
