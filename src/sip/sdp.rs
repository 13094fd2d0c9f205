//! SDP offer/answer (RFC 3264) for a G.711 voice call, as pure functions.
//!
//! A caller's INVITE carries an SDP offer: the codecs it can speak in its order of
//! preference, where it wants to receive RTP, and whether it sends, receives or
//! both. [`answer`] builds kuma's answer from it and says what was negotiated
//! ([`Media`]), which the SIP layer hands to the RTP machines
//! ([`Media::session_config`], [`Media::pacer_config`]). When the INVITE has no SDP,
//! kuma makes the offer itself in the 200 OK ([`offer`]) and reads the caller's
//! answer from the ACK ([`media_from_answer`]).
//!
//! The rules, from RFC 3264 §6 and what real devices send:
//!
//! - **Codec**: the first of PCMU and PCMA in the *caller's* order (the `m=` line's
//!   format list), static payload types 0 and 8 with or without `a=rtpmap`, or a
//!   dynamic type mapped to `PCMU/8000` or `PCMA/8000`. Opus, G.722, G.729, GSM… are
//!   skipped: prompts are prepared in G.711 only. Neither offered:
//!   [`SdpError::NoCommonCodec`], which the SIP layer answers with 488.
//! - **Keys**: the caller's `telephone-event/8000` payload type is mirrored (101 from
//!   most phones, 96 from sipp; RFC 3264 §6.1 wants the answer to use the offerer's
//!   number), with `a=fmtp:<pt> 0-15`: the 16 keypad events. Phones often also offer
//!   telephone-event at 16000 or 48000 Hz, for their wideband codecs; with G.711
//!   only the 8000 Hz one is right. Without it, keys are detected in the audio.
//! - **Packet time**: `a=ptime:20`; kuma sends 20 ms packets and accepts any length.
//! - **Direction**, from the caller's: `sendrecv` → `sendrecv`; `sendonly` (the
//!   caller puts the call on hold) → `recvonly`; `recvonly` → `sendonly`; `inactive`
//!   → `inactive`. The old hold of RFC 2543, `c=0.0.0.0`, means "do not send to me":
//!   kuma's direction loses its send half. A hold is a re-INVITE like any other and
//!   keeps the call.
//! - **Streams**: the answer has one `m=` line per offered one, in the same order.
//!   The first audio stream with a port and an RTP/AVP (or RTP/AVPF) transport that
//!   has a common codec is used; every other stream, and every stream with port 0
//!   (the offerer's way to reject or remove one), is answered with port 0. SRTP
//!   (RTP/SAVP) is not spoken: such a stream is rejected, and when none is left,
//!   [`SdpError::NoAudio`].
//! - **Address**: the stream's `c=` line, else the session's; IPv4 or IPv6. It is
//!   only where to send until the caller's real source is learned (symmetric RTP,
//!   see [`crate::rtp::session`]).
//!
//! Parsing is done by `sdp-types`, which rejects malformed descriptions with a
//! reason ([`SdpError::Malformed`], answered with 400) and never panics on any bytes
//! (fuzzed below with proptest, from the offers in `fuzz/corpus/sdp/`).

use std::net::{IpAddr, SocketAddr};

use sdp_types::{Attribute, Connection, Origin, RtpMap, Session, Time};
use thiserror::Error;

pub use crate::rtp::Codec;
use crate::rtp::pacer::{Idle, PacerConfig, StreamIds};
use crate::rtp::session::SessionConfig;
use crate::rtp::{CLOCK_RATE, FRAME_MS};

/// The packet time kuma sends and asks for, ms.
pub const PTIME_MS: u32 = FRAME_MS;
/// The payload type kuma offers for telephone-event when it makes the offer.
pub const OFFERED_DTMF_PT: u8 = 101;
/// The events kuma receives: the 16 keys of RFC 4733 §3.2.
const DTMF_EVENTS: &str = "0-15";

/// kuma's side of the media: where it receives RTP, and the `o=` line's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    /// The address the caller should send RTP to.
    pub ip: IpAddr,
    /// The call's RTP port.
    pub rtp_port: u16,
    /// `o=` session id, fixed for the dialog.
    pub session_id: u64,
    /// `o=` version, +1 each time the dialog's SDP changes (RFC 3264 §8).
    pub session_version: u64,
}

/// The direction of the media, from kuma's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// kuma sends and receives: a normal call.
    SendRecv,
    /// kuma only sends (the caller only listens).
    SendOnly,
    /// kuma only receives (the caller put the call on hold).
    RecvOnly,
    /// Neither (the call is on hold both ways).
    Inactive,
}

impl Direction {
    /// Whether kuma sends RTP.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether kuma receives RTP (the caller sends).
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The SDP attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(attribute: &str) -> Option<Self> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(attribute))
    }

    /// The other side's view of the same stream.
    fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    fn without_send(self) -> Self {
        match self {
            Direction::SendRecv => Direction::RecvOnly,
            Direction::SendOnly => Direction::Inactive,
            other => other,
        }
    }
}

/// What was negotiated for the call's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Media {
    /// The codec both sides speak.
    pub codec: Codec,
    /// Its payload type (0 or 8, unless the caller mapped it dynamically).
    pub pt: u8,
    /// The payload type of `telephone-event/8000`, when the caller offered it.
    pub dtmf_pt: Option<u8>,
    /// Where the caller asked to receive RTP (`0.0.0.0` for an old-style hold).
    pub remote: SocketAddr,
    /// The packet time kuma sends, ms (always [`PTIME_MS`]).
    pub ptime_ms: u32,
    /// The packet time the caller asked for, if any (informative: kuma accepts any).
    pub remote_ptime_ms: Option<u32>,
    /// The direction, from kuma's point of view.
    pub direction: Direction,
}

impl Media {
    /// The configuration of the call's RTP receiver.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig::new(self.pt, self.dtmf_pt, self.remote)
    }

    /// The configuration of the call's RTP sender, with the stream's identifiers
    /// (random ones from [`StreamIds::random`] in the shell).
    pub fn pacer_config(&self, ids: StreamIds) -> PacerConfig {
        PacerConfig {
            codec: self.codec,
            payload_type: self.pt,
            ids,
            idle: Idle::ComfortSilence,
        }
    }
}

/// kuma's answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SDP to send in the 200 OK (`application/sdp`).
    pub sdp: String,
    /// What it agrees to.
    pub media: Media,
}

/// Why an offer (or an answer) cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// Not a session description (bad syntax, missing `v=`, …).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// The audio stream has no `c=` line, nor has the session.
    #[error("the audio stream has no connection address (c=)")]
    NoConnection,
    /// The connection address is not a unicast IP address (a host name, multicast).
    #[error("unusable connection address {0:?}")]
    BadAddress(String),
    /// No audio stream with a port and an RTP/AVP transport.
    #[error("no usable audio stream (RTP/AVP with a non-zero port)")]
    NoAudio,
    /// Audio offered, but neither PCMU nor PCMA.
    #[error("no common codec: offered {offered}, kuma speaks PCMU and PCMA")]
    NoCommonCodec {
        /// The offered encodings, for the log (e.g. `G729/8000 telephone-event/8000`).
        offered: String,
    },
}

impl SdpError {
    /// The SIP response for an INVITE whose offer failed: 400 for a description
    /// that is broken, 488 (Not Acceptable Here) for one kuma cannot accept.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed(_) | SdpError::NoConnection => 400,
            SdpError::BadAddress(_) | SdpError::NoAudio | SdpError::NoCommonCodec { .. } => 488,
        }
    }
}

/// Answers an SDP offer (see the module doc for the rules).
pub fn answer(offer: &[u8], local: &LocalMedia) -> Result<Answer, SdpError> {
    let offer = parse(offer)?;
    let (chosen, media) = negotiate(&offer)?;

    let mut session = base_session(local);
    for (i, offered) in offer.medias.iter().enumerate() {
        if i == chosen {
            session.add_media(audio_media(
                local.rtp_port,
                &offered.proto,
                media.pt,
                media.codec,
                media.dtmf_pt,
                media.direction,
            ));
        } else {
            // RFC 3264 §6: a rejected stream keeps its place, with port 0 and the
            // offered formats.
            session.add_media(sdp_types::Media {
                media: offered.media.clone(),
                port: 0,
                num_ports: None,
                proto: offered.proto.clone(),
                fmt: offered.fmt.clone(),
                media_title: None,
                connections: vec![],
                bandwidths: vec![],
                key: None,
                attributes: vec![],
            });
        }
    }
    Ok(Answer {
        sdp: session.to_string(),
        media,
    })
}

/// kuma's offer, for an INVITE that came without one: PCMU, PCMA and
/// telephone-event [`OFFERED_DTMF_PT`], `sendrecv`.
pub fn offer(local: &LocalMedia) -> String {
    let mut session = base_session(local);
    let mut media = audio_media(
        local.rtp_port,
        "RTP/AVP",
        Codec::Pcmu.static_payload_type(),
        Codec::Pcmu,
        Some(OFFERED_DTMF_PT),
        Direction::SendRecv,
    );
    // Offer PCMA as well, after PCMU, before telephone-event.
    media.fmt = format!(
        "{} {} {OFFERED_DTMF_PT}",
        Codec::Pcmu.static_payload_type(),
        Codec::Pcma.static_payload_type()
    );
    media.attributes.insert(
        1,
        rtpmap(Codec::Pcma.static_payload_type(), Codec::Pcma.name()),
    );
    session.add_media(media);
    session.to_string()
}

/// kuma's offer for a call already going, in a 200 to a re-INVITE that came
/// without one (RFC 3261 §14.2; a session refresh, or a gateway checking the
/// call): the call's codec and payload type alone, so the answer cannot move
/// the call to another, with telephone-event, `sendrecv`. `local` carries the
/// session's next version.
pub fn offer_again(local: &LocalMedia, media: &Media) -> String {
    let mut session = base_session(local);
    let dtmf = media
        .dtmf_pt
        .or((media.pt != OFFERED_DTMF_PT).then_some(OFFERED_DTMF_PT));
    session.add_media(audio_media(
        local.rtp_port,
        "RTP/AVP",
        media.pt,
        media.codec,
        dtmf,
        Direction::SendRecv,
    ));
    session.to_string()
}

/// Reads the caller's answer to kuma's [`offer`] or [`offer_again`] (from the ACK).
pub fn media_from_answer(answer: &[u8]) -> Result<Media, SdpError> {
    let answer = parse(answer)?;
    negotiate(&answer).map(|(_, media)| media)
}

fn parse(sdp: &[u8]) -> Result<Session, SdpError> {
    Session::parse(sdp).map_err(|e| SdpError::Malformed(e.to_string()))
}

fn base_session(local: &LocalMedia) -> Session {
    let mut origin = Origin::with_ip_addr(local.session_id, local.session_version, local.ip);
    origin.set_username("kuma");
    let mut session = Session::new(origin, "kuma");
    session.set_connection(Connection::from_ip_addr(local.ip));
    session.add_time(Time::new(0, 0));
    session
}

fn rtpmap(pt: u8, name: &str) -> Attribute {
    Attribute::with_value("rtpmap", RtpMap::new(pt, name, CLOCK_RATE))
}

fn audio_media(
    port: u16,
    proto: &str,
    pt: u8,
    codec: Codec,
    dtmf_pt: Option<u8>,
    direction: Direction,
) -> sdp_types::Media {
    let mut fmt = pt.to_string();
    let mut attributes = vec![rtpmap(pt, codec.name())];
    if let Some(dtmf) = dtmf_pt {
        fmt.push_str(&format!(" {dtmf}"));
        attributes.push(rtpmap(dtmf, "telephone-event"));
        attributes.push(Attribute::with_value(
            "fmtp",
            format!("{dtmf} {DTMF_EVENTS}"),
        ));
    }
    attributes.push(Attribute::with_value("ptime", PTIME_MS));
    attributes.push(Attribute::new(direction.as_str()));
    sdp_types::Media {
        media: "audio".into(),
        port,
        num_ports: None,
        proto: proto.into(),
        fmt,
        media_title: None,
        connections: vec![],
        bandwidths: vec![],
        key: None,
        attributes,
    }
}

/// What one payload type of an `m=` line stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Format {
    pt: u8,
    /// Encoding name, e.g. `PCMU`, `telephone-event`.
    name: String,
    clock_rate: u32,
    /// Channels (the third rtpmap field), when given.
    channels: Option<String>,
}

impl Format {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            && self.clock_rate == CLOCK_RATE
            && self.channels.as_deref().is_none_or(|c| c.trim() == "1")
    }

    fn codec(&self) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|c| self.is(c.name()))
    }
}

/// The formats of an `m=` line in its order, named by `a=rtpmap` or, for the static
/// types of RFC 3551 without one, by the table.
fn formats(media: &sdp_types::Media) -> Vec<Format> {
    let rtpmaps: Vec<RtpMap> = media
        .attributes_typed::<RtpMap>()
        .filter_map(Result::ok)
        .collect();
    media
        .fmt
        .split_ascii_whitespace()
        .filter_map(|token| token.parse::<u8>().ok())
        .filter(|pt| *pt < 128)
        .map(|pt| match rtpmaps.iter().find(|m| m.payload_type == pt) {
            Some(m) => Format {
                pt,
                name: m.encoding_name.clone(),
                clock_rate: m.clock_rate,
                channels: m.encoding_params.clone(),
            },
            None => {
                let (name, clock_rate) = match pt {
                    0 => ("PCMU", 8000),
                    3 => ("GSM", 8000),
                    4 => ("G723", 8000),
                    8 => ("PCMA", 8000),
                    9 => ("G722", 8000),
                    13 => ("CN", 8000),
                    18 => ("G729", 8000),
                    _ => ("?", 0),
                };
                Format {
                    pt,
                    name: name.into(),
                    clock_rate,
                    channels: None,
                }
            }
        })
        .collect()
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// Picks the audio stream and what to speak on it: the index of the `m=` line and
/// the media, from kuma's point of view.
fn negotiate(sdp: &Session) -> Result<(usize, Media), SdpError> {
    let mut offered_audio = None;
    for (index, media) in sdp.medias.iter().enumerate() {
        if !media.media.eq_ignore_ascii_case("audio")
            || media.port == 0
            || !is_rtp_avp(&media.proto)
        {
            continue;
        }
        let formats = formats(media);
        let Some(audio) = formats.iter().find_map(|f| f.codec().map(|c| (c, f.pt))) else {
            offered_audio.get_or_insert_with(|| {
                formats
                    .iter()
                    .map(|f| format!("{}/{}", f.name, f.clock_rate))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            continue;
        };
        let dtmf_pt = formats
            .iter()
            .find(|f| f.is("telephone-event"))
            .map(|f| f.pt);

        let connection = media
            .connections
            .first()
            .or(sdp.connection.as_ref())
            .ok_or(SdpError::NoConnection)?;
        let address = connection
            .try_address()
            .map_err(|_| SdpError::BadAddress(connection.connection_address.clone()))?;
        if address.ip.is_multicast() {
            return Err(SdpError::BadAddress(connection.connection_address.clone()));
        }

        let theirs = media
            .attributes
            .iter()
            .chain(&sdp.attributes)
            .find_map(|a| Direction::parse(&a.attribute))
            .unwrap_or(Direction::SendRecv);
        let mut direction = theirs.reverse();
        if address.ip.is_unspecified() {
            // RFC 2543 hold: "c=0.0.0.0" means do not send to me.
            direction = direction.without_send();
        }

        let remote_ptime_ms = media
            .get_first_attribute_value("ptime")
            .flatten()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms > 0.0 && *ms <= 1000.0)
            .map(|ms| ms.round() as u32);

        return Ok((
            index,
            Media {
                codec: audio.0,
                pt: audio.1,
                dtmf_pt,
                remote: SocketAddr::new(address.ip, media.port),
                ptime_ms: PTIME_MS,
                remote_ptime_ms,
                direction,
            },
        ));
    }
    Err(match offered_audio {
        Some(offered) => SdpError::NoCommonCodec { offered },
        None => SdpError::NoAudio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Offers from real devices, kept in the fuzz corpus (CRLF line ends as sent).
    macro_rules! offer_file {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fuzz/corpus/sdp/",
                $name
            ))
        };
    }
    /// sipp 3.6's built-in `uac` scenario.
    const SIPP_UAC: &str = offer_file!("sipp-uac.sdp");
    /// sipp's `uac_pcap` scenario: PCMA and telephone-event 101.
    const SIPP_UAC_PCAP: &str = offer_file!("sipp-uac-pcap.sdp");
    /// kuma's sipp scenarios with `play_dtmf`, whose events use type 96.
    const SIPP_DTMF_96: &str = offer_file!("sipp-dtmf-96.sdp");
    /// baresip: opus, G.722, PCMU, PCMA, telephone-event at 48000 and 8000 Hz.
    const BARESIP: &str = offer_file!("baresip.sdp");
    /// Linphone: opus and speex first, telephone-event at three rates.
    const LINPHONE: &str = offer_file!("linphone.sdp");
    /// A Yeastar-style GSM gateway: A-law first, G.729, telephone-event 0-16.
    const GSM_GATEWAY: &str = offer_file!("gsm-gateway-yeastar.sdp");
    /// A Grandstream-style gateway: 30 ms packets, media-level c= line.
    const GRANDSTREAM: &str = offer_file!("gsm-gateway-grandstream.sdp");
    /// A phone on IPv6.
    const IPV6: &str = offer_file!("ipv6.sdp");
    /// A caller that speaks only G.729.
    const G729_ONLY: &str = offer_file!("g729-only.sdp");
    /// Hold re-INVITEs: sendonly, inactive, and RFC 2543's c=0.0.0.0.
    const HOLD_SENDONLY: &str = offer_file!("hold-sendonly.sdp");
    const HOLD_INACTIVE: &str = offer_file!("hold-inactive.sdp");
    const HOLD_OLD_STYLE: &str = offer_file!("hold-c0.sdp");
    /// Audio and video, with a disabled (port 0) first audio stream.
    const AUDIO_VIDEO: &str = offer_file!("audio-video.sdp");
    /// SRTP only.
    const SRTP_ONLY: &str = offer_file!("srtp-only.sdp");

    fn local() -> LocalMedia {
        LocalMedia {
            ip: "192.0.2.10".parse().unwrap(),
            rtp_port: 10_000,
            session_id: 4242,
            session_version: 1,
        }
    }

    fn answered(offer: &str) -> Answer {
        answer(offer.as_bytes(), &local()).unwrap_or_else(|e| panic!("{e}: {offer}"))
    }

    fn lines(sdp: &str) -> Vec<&str> {
        sdp.split("\r\n").filter(|l| !l.is_empty()).collect()
    }

    #[test]
    fn sipp_uac_gets_pcmu_without_keys() {
        let a = answered(SIPP_UAC);
        assert_eq!(
            a.media,
            Media {
                codec: Codec::Pcmu,
                pt: 0,
                dtmf_pt: None,
                remote: "127.0.0.1:6000".parse().unwrap(),
                ptime_ms: 20,
                remote_ptime_ms: None,
                direction: Direction::SendRecv,
            }
        );
        assert_eq!(
            lines(&a.sdp),
            [
                "v=0",
                "o=kuma 4242 1 IN IP4 192.0.2.10",
                "s=kuma",
                "c=IN IP4 192.0.2.10",
                "t=0 0",
                "m=audio 10000 RTP/AVP 0",
                "a=rtpmap:0 PCMU/8000",
                "a=ptime:20",
                "a=sendrecv",
            ]
        );
        assert!(a.sdp.ends_with("\r\n"));
    }

    #[test]
    fn sipp_uac_pcap_gets_pcma_and_101() {
        let a = answered(SIPP_UAC_PCAP);
        assert_eq!(a.media.codec, Codec::Pcma);
        assert_eq!(a.media.pt, 8);
        assert_eq!(a.media.dtmf_pt, Some(101));
        let l = lines(&a.sdp);
        assert!(l.contains(&"m=audio 10000 RTP/AVP 8 101"));
        assert!(l.contains(&"a=rtpmap:8 PCMA/8000"));
        assert!(l.contains(&"a=rtpmap:101 telephone-event/8000"));
        assert!(l.contains(&"a=fmtp:101 0-15"));
    }

    #[test]
    fn sipp_telephone_event_96_is_mirrored() {
        let a = answered(SIPP_DTMF_96);
        assert_eq!((a.media.codec, a.media.dtmf_pt), (Codec::Pcmu, Some(96)));
        assert!(lines(&a.sdp).contains(&"m=audio 10000 RTP/AVP 0 96"));
        assert!(lines(&a.sdp).contains(&"a=fmtp:96 0-15"));
    }

    #[test]
    fn baresip_gets_pcmu_and_the_8000_hz_telephone_event() {
        let a = answered(BARESIP);
        assert_eq!(a.media.codec, Codec::Pcmu);
        assert_eq!(a.media.dtmf_pt, Some(102));
        assert_eq!(a.media.remote, "192.168.1.37:10758".parse().unwrap());
        assert!(lines(&a.sdp).contains(&"m=audio 10000 RTP/AVP 0 102"));
        assert!(!a.sdp.contains("opus") && !a.sdp.contains("48000"));
    }

    #[test]
    fn linphone_gets_pcmu_and_100() {
        let a = answered(LINPHONE);
        assert_eq!(
            (a.media.codec, a.media.pt, a.media.dtmf_pt),
            (Codec::Pcmu, 0, Some(100))
        );
        assert_eq!(a.media.remote, "192.168.0.14:7078".parse().unwrap());
    }

    #[test]
    fn a_gsm_gateway_gets_its_first_choice_a_law() {
        let a = answered(GSM_GATEWAY);
        assert_eq!(
            (a.media.codec, a.media.pt, a.media.dtmf_pt),
            (Codec::Pcma, 8, Some(101))
        );
        assert_eq!(a.media.remote_ptime_ms, Some(20));
    }

    #[test]
    fn media_level_connection_wins_and_30_ms_is_noted() {
        let a = answered(GRANDSTREAM);
        assert_eq!(a.media.remote, "10.20.30.41:5004".parse().unwrap());
        assert_eq!(a.media.remote_ptime_ms, Some(30));
        // kuma still sends 20 ms.
        assert!(lines(&a.sdp).contains(&"a=ptime:20"));
    }

    #[test]
    fn ipv6_offer() {
        let a = answered(IPV6);
        assert_eq!(
            a.media.remote,
            "[2001:db8:85a3::8a2e:370:7334]:49170".parse().unwrap()
        );
        let v6 = LocalMedia {
            ip: "2001:db8::10".parse().unwrap(),
            ..local()
        };
        let a = answer(IPV6.as_bytes(), &v6).unwrap();
        assert!(lines(&a.sdp).contains(&"c=IN IP6 2001:db8::10"));
        assert!(lines(&a.sdp).contains(&"o=kuma 4242 1 IN IP6 2001:db8::10"));
    }

    #[test]
    fn g729_only_is_not_acceptable() {
        let err = answer(G729_ONLY.as_bytes(), &local()).unwrap_err();
        assert_eq!(
            err,
            SdpError::NoCommonCodec {
                offered: "G729/8000 telephone-event/8000".into()
            }
        );
        assert_eq!(err.sip_status(), 488);
    }

    #[test]
    fn hold_and_resume() {
        let a = answered(HOLD_SENDONLY);
        assert_eq!(a.media.direction, Direction::RecvOnly);
        assert!(lines(&a.sdp).contains(&"a=recvonly"));
        assert!(a.media.direction.receives() && !a.media.direction.sends());

        let a = answered(HOLD_INACTIVE);
        assert_eq!(a.media.direction, Direction::Inactive);
        assert!(lines(&a.sdp).contains(&"a=inactive"));

        let a = answered(HOLD_OLD_STYLE);
        assert_eq!(a.media.direction, Direction::RecvOnly);
        assert!(a.media.remote.ip().is_unspecified());

        // Resuming is a sendrecv offer again, with the next version.
        let resumed = LocalMedia {
            session_version: 3,
            ..local()
        };
        let a = answer(LINPHONE.as_bytes(), &resumed).unwrap();
        assert_eq!(a.media.direction, Direction::SendRecv);
        assert!(a.sdp.contains("o=kuma 4242 3 IN IP4"));
    }

    #[test]
    fn recvonly_offer_gets_sendonly() {
        let offer = SIPP_UAC.replace(
            "a=rtpmap:0 PCMU/8000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=recvonly\r\n",
        );
        assert_eq!(answered(&offer).media.direction, Direction::SendOnly);
    }

    #[test]
    fn session_level_direction_applies_to_the_stream() {
        let offer = SIPP_UAC.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        assert_eq!(answered(&offer).media.direction, Direction::RecvOnly);
    }

    #[test]
    fn other_streams_are_rejected_in_place() {
        let a = answered(AUDIO_VIDEO);
        let m: Vec<&str> = lines(&a.sdp)
            .into_iter()
            .filter(|l| l.starts_with("m="))
            .collect();
        assert_eq!(
            m,
            [
                "m=audio 0 RTP/AVP 0",
                "m=video 0 RTP/AVP 96 97",
                "m=audio 10000 RTP/AVP 8 101"
            ]
        );
        assert_eq!(a.media.remote, "198.51.100.7:40002".parse().unwrap());
    }

    #[test]
    fn srtp_only_has_no_usable_audio() {
        let err = answer(SRTP_ONLY.as_bytes(), &local()).unwrap_err();
        assert_eq!(err, SdpError::NoAudio);
        assert_eq!(err.sip_status(), 488);
    }

    #[test]
    fn port_zero_audio_is_no_audio() {
        let offer = SIPP_UAC.replace("m=audio 6000", "m=audio 0");
        assert_eq!(answer(offer.as_bytes(), &local()), Err(SdpError::NoAudio));
    }

    #[test]
    fn a_dynamic_pcmu_mapping_is_used() {
        let offer = SIPP_UAC
            .replace("RTP/AVP 0", "RTP/AVP 110")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:110 pcmu/8000/1");
        let a = answered(&offer);
        assert_eq!((a.media.codec, a.media.pt), (Codec::Pcmu, 110));
        assert!(lines(&a.sdp).contains(&"a=rtpmap:110 PCMU/8000"));
    }

    #[test]
    fn wideband_or_stereo_g711_is_not_g711() {
        let offer = SIPP_UAC
            .replace("RTP/AVP 0", "RTP/AVP 110")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:110 PCMU/16000");
        assert!(matches!(
            answer(offer.as_bytes(), &local()),
            Err(SdpError::NoCommonCodec { .. })
        ));
        let offer = SIPP_UAC
            .replace("RTP/AVP 0", "RTP/AVP 110")
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:110 PCMU/8000/2");
        assert!(matches!(
            answer(offer.as_bytes(), &local()),
            Err(SdpError::NoCommonCodec { .. })
        ));
    }

    #[test]
    fn broken_offers_have_a_clear_error() {
        for (offer, status) in [
            ("", 400),
            ("hello world", 400),
            ("v=1\r\n", 400),
            ("v=0\r\no=x\r\n", 400),
            ("v=0\r\nm=audio sixty RTP/AVP 0\r\n", 400),
            // No c= anywhere.
            ("v=0\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", 400),
            // A host name, and a multicast group.
            (
                "v=0\r\nc=IN IP4 pbx.example.com\r\nm=audio 4000 RTP/AVP 0\r\n",
                488,
            ),
            (
                "v=0\r\nc=IN IP4 224.2.1.1/127\r\nm=audio 4000 RTP/AVP 0\r\n",
                488,
            ),
            // No media at all.
            ("v=0\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n", 488),
        ] {
            let err = answer(offer.as_bytes(), &local()).unwrap_err();
            assert_eq!(err.sip_status(), status, "{offer:?}: {err}");
            assert!(!err.to_string().is_empty());
        }
        let err = answer(&[0xFF, 0xFE, 0x00, 0x80], &local()).unwrap_err();
        assert!(matches!(err, SdpError::Malformed(_)), "{err}");
    }

    #[test]
    fn lf_only_offers_are_accepted() {
        let a = answered(&SIPP_UAC_PCAP.replace("\r\n", "\n"));
        assert_eq!(a.media.dtmf_pt, Some(101));
    }

    #[test]
    fn late_offer_round_trip() {
        let ours = offer(&local());
        assert_eq!(
            lines(&ours),
            [
                "v=0",
                "o=kuma 4242 1 IN IP4 192.0.2.10",
                "s=kuma",
                "c=IN IP4 192.0.2.10",
                "t=0 0",
                "m=audio 10000 RTP/AVP 0 8 101",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-15",
                "a=ptime:20",
                "a=sendrecv",
            ]
        );
        // A phone answering our offer with A-law.
        let theirs = GSM_GATEWAY.replace("RTP/AVP 8 0 18 101", "RTP/AVP 8 101");
        let media = media_from_answer(theirs.as_bytes()).unwrap();
        assert_eq!((media.codec, media.dtmf_pt), (Codec::Pcma, Some(101)));
        // Our own offer, read as an answer, is consistent with itself.
        let media = media_from_answer(ours.as_bytes()).unwrap();
        assert_eq!(media.remote, "192.0.2.10:10000".parse().unwrap());
    }

    #[test]
    fn a_second_offer_keeps_the_calls_codec() {
        let call = answered(&GSM_GATEWAY.replace("RTP/AVP 8 0 18 101", "RTP/AVP 8 101")).media;
        assert_eq!((call.codec, call.pt), (Codec::Pcma, 8));
        let next = LocalMedia {
            session_version: 2,
            ..local()
        };
        let ours = offer_again(&next, &call);
        let lines = lines(&ours);
        assert!(
            lines.contains(&"o=kuma 4242 2 IN IP4 192.0.2.10"),
            "{lines:?}"
        );
        assert!(lines.contains(&"m=audio 10000 RTP/AVP 8 101"), "{lines:?}");
        assert!(lines.contains(&"a=sendrecv"), "{lines:?}");
        let media = media_from_answer(ours.as_bytes()).unwrap();
        assert_eq!(
            (media.codec, media.pt, media.dtmf_pt),
            (Codec::Pcma, 8, Some(101))
        );
    }

    #[test]
    fn our_answers_are_valid_sdp_that_we_could_answer() {
        for (_, offer) in crate::rtp::fuzz::corpus("sdp") {
            if let Ok(a) = answer(&offer, &local()) {
                let back = media_from_answer(a.sdp.as_bytes()).unwrap();
                assert_eq!(back.codec, a.media.codec);
                assert_eq!(back.pt, a.media.pt);
                assert_eq!(back.dtmf_pt, a.media.dtmf_pt);
                assert_eq!(back.remote, "192.0.2.10:10000".parse().unwrap());
                assert_eq!(back.direction, a.media.direction.reverse());
            }
        }
    }

    #[test]
    fn media_configures_the_rtp_machines() {
        let media = answered(BARESIP).media;
        let session = media.session_config();
        assert_eq!((session.audio_pt, session.dtmf_pt), (0, Some(102)));
        assert_eq!(session.remote, media.remote);
        let ids = StreamIds {
            ssrc: 1,
            first_sequence: 2,
            first_timestamp: 3,
        };
        let pacer = media.pacer_config(ids);
        assert_eq!((pacer.codec, pacer.payload_type), (Codec::Pcmu, 0));
    }

    /// Mutations of a real offer: a few bytes replaced, lines dropped or cut.
    fn mutated_offer() -> impl Strategy<Value = Vec<u8>> {
        let seeds: Vec<Vec<u8>> = crate::rtp::fuzz::corpus("sdp")
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        (
            proptest::sample::select(seeds),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(mut seed, flips, cut, truncate)| {
                for (at, byte) in flips {
                    let i = at.index(seed.len());
                    seed[i] = byte;
                }
                if truncate {
                    seed.truncate(cut.index(seed.len() + 1));
                }
                seed
            })
    }

    /// SDP-looking lines with random keys and values.
    fn sdp_like() -> impl Strategy<Value = Vec<u8>> {
        let line = (
            proptest::sample::select(b"vosctmabikezru".to_vec()),
            "[ -~]{0,40}",
        )
            .prop_map(|(key, value)| format!("{}={value}\r\n", char::from(key)));
        proptest::collection::vec(line, 0..20).prop_map(|lines| {
            let mut sdp = String::from("v=0\r\n");
            sdp.extend(lines);
            sdp.into_bytes()
        })
    }

    proptest! {
        #![proptest_config(crate::rtp::fuzz::config("sdp"))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = answer(&bytes, &local());
            let _ = media_from_answer(&bytes);
        }

        #[test]
        fn mutated_real_offers_never_panic(bytes in mutated_offer()) {
            if let Ok(a) = answer(&bytes, &local()) {
                // Whatever was accepted yields an answer we can read back.
                prop_assert!(media_from_answer(a.sdp.as_bytes()).is_ok());
            }
        }

        #[test]
        fn sdp_like_text_never_panics(bytes in sdp_like()) {
            let _ = answer(&bytes, &local());
        }
    }
}
