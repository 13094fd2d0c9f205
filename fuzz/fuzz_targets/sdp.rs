//! An SDP offer (kuma answers it) or answer (to kuma's offer of an outgoing call).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use kuma::rtp::pacer::StreamIds;
use kuma::sip::sdp::{self, LocalMedia};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let local = LocalMedia {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        rtp_port: 10_000,
        session_id: 1,
        session_version: 1,
    };
    if let Ok(answer) = sdp::answer(data, &local) {
        let _ = answer.media.session_config();
        let _ = answer.media.pacer_config(StreamIds::random());
    }
    if let Ok(media) = sdp::media_from_answer(data) {
        let _ = media.session_config();
    }
});
