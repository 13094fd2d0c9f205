//! RTP (RFC 3550) for one phone call: the packets, the sender, the receiver.
//!
//! kuma answers calls itself, so it speaks RTP itself. Everything here is sans-IO,
//! in the manner of `str0m`: plain structs fed datagrams and the time, returning what
//! to send and what happened. None of them reads a clock or touches a socket; the SIP
//! shell (`crate::serve::call`) owns the UDP socket of each call (one per call, from
//! the RTP port range), calls these machines and arms the timers they ask for. Tests therefore run on simulated time, faster than real time.
//!
//! - [`packet`]: the RTP header, parsed zero-copy from a datagram and written into a
//!   caller's buffer;
//! - [`pacer`]: the sender, turning prepared 20 ms G.711 frames into packets exactly
//!   on schedule (prompts queued, barge-in at the next frame, comfort silence between
//!   them);
//! - [`session`]: the receiver of one call: symmetric RTP (where the caller's packets
//!   really come from), loss and jitter counters, the caller's audio, keypad keys, and
//!   the "no RTP for 30 s" deadline;
//! - [`dtmf_event`]: RFC 4733 telephone-events, each key reported once.
//!
//! The codec and the payload types come from the SDP offer/answer
//! ([`crate::sip::sdp`]); only G.711 (PCMU and PCMA) is spoken, at 8 kHz, which every
//! phone, trunk and GSM gateway offers, and which needs no transcoding state.

pub mod dtmf_event;
pub mod pacer;
pub mod packet;
pub mod session;

/// The RTP clock rate of G.711 and of `telephone-event/8000`, Hz.
pub const CLOCK_RATE: u32 = 8000;
/// How long one frame lasts: kuma always sends 20 ms packets (`a=ptime:20`).
pub const FRAME_MS: u32 = 20;
/// Samples (and, in G.711, bytes) in one 20 ms frame.
pub const FRAME_LEN: usize = (CLOCK_RATE * FRAME_MS / 1000) as usize;

/// 20 ms of G.711 audio in one law: the payload of one packet.
pub type Frame = [u8; FRAME_LEN];

/// The two G.711 codecs kuma speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0 (North America, Japan, most SIP phones).
    Pcmu,
    /// G.711 A-law, static payload type 8 (Europe, Africa; most GSM gateways).
    Pcma,
}

impl Codec {
    /// The static payload type of RFC 3551.
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name used in `a=rtpmap`.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The byte that encodes digital silence (a zero sample): 0xFF in µ-law, 0xD5 in
    /// A-law (the even bits of A-law are inverted on the wire, so zero is not 0x00).
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

/// Test support for the fuzz tests of the RTP, RFC 4733 and SDP parsers: the seed
/// corpus kept in `fuzz/corpus/<kind>/`, and a proptest configuration that records
/// failing inputs in `fuzz/regressions/` so that every later run replays them.
/// `PROPTEST_CASES=200000 cargo test --release --lib never_panic` fuzzes longer than
/// the default 256 cases per test.
#[cfg(test)]
pub(crate) mod fuzz {
    use proptest::test_runner::{Config, FileFailurePersistence};

    /// Every file of `fuzz/corpus/<kind>/`, by name.
    pub(crate) fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(kind);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.expect("a corpus entry").path();
                let bytes = std::fs::read(&path).expect("a readable corpus file");
                (path.display().to_string(), bytes)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "empty corpus {}", dir.display());
        files
    }

    /// The proptest configuration of one fuzz target.
    pub(crate) fn config(target: &str) -> Config {
        let path: &'static str = Box::leak(
            format!(
                "{}/fuzz/regressions/{target}.txt",
                env!("CARGO_MANIFEST_DIR")
            )
            .into_boxed_str(),
        );
        Config {
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(path))),
            ..Config::default()
        }
    }
}
