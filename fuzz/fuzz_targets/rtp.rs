//! What an RTP port receives: the whole input as one packet and as an RFC 4733
//! payload, then split into a sequence of datagrams for the call's receiver
//! (`RtpSession`), its DTMF de-duplication and the in-band DTMF detector behind it.
//!
//! A part starting with 0x01 waits (big-endian u16, in ms); with 0x02, is a
//! datagram from another address; with 0x03, changes the negotiated payload
//! types (next two bytes); anything else is a datagram from the caller.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kuma::audio::dtmf::DtmfDetector;
use kuma::audio::g711;
use kuma::rtp::dtmf_event::{DtmfReceiver, TelephoneEvent};
use kuma::rtp::packet::Packet;
use kuma::rtp::session::{Event, RtpSession, SessionConfig};
use kuma_fuzz::{op, split, u16_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::parse(data) {
        let _ = p.csrcs.iter().count();
        let mut out = vec![0; data.len() + 16];
        let _ = p.header.write(p.payload, &mut out);
    }
    if let Ok(e) = TelephoneEvent::parse(data) {
        let _ = e.key();
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()), Ok(e));
    }

    let caller: SocketAddr = "192.0.2.20:4000".parse().unwrap();
    let other: SocketAddr = "[2001:db8::5]:4002".parse().unwrap();
    let start = Instant::now();
    let mut now = start;
    let mut session = RtpSession::new(SessionConfig::new(0, Some(101), caller), now);
    session.set_expect_media(true, now);
    let mut receiver = DtmfReceiver::new();
    let mut detector = DtmfDetector::new();
    let mut keys = Vec::new();
    let mut pcma = false;
    for part in split(data) {
        let (from, datagram) = match op(part) {
            Some((1, rest)) => {
                now += Duration::from_millis(u64::from(u16_of(rest)));
                let _ = session.handle_timeout(now);
                continue;
            }
            Some((2, rest)) => (other, rest),
            Some((3, rest)) => {
                let audio = rest.first().copied().unwrap_or(0);
                let dtmf = rest.get(1).copied();
                pcma = audio == 8;
                session.update_remote(audio, dtmf, caller);
                continue;
            }
            _ => (caller, part),
        };
        match session.handle_datagram(datagram, from, now) {
            Some(Event::Audio(audio)) => {
                let pcm = if pcma {
                    g711::alaw_decode(audio.payload)
                } else {
                    g711::ulaw_decode(audio.payload)
                };
                detector.push(&pcm, &mut keys);
            }
            Some(Event::Key(_)) | Some(Event::MediaTimeout) | None => {}
        }
        if let Ok(p) = Packet::parse(datagram) {
            let _ = receiver.handle(p.header.ssrc, p.header.timestamp, p.payload, now);
        }
        let _ = session.stats();
    }
});
