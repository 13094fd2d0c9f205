//! Benchmarks of the RTP machines, through their public API:
//!
//! - `pacer/packets`: packets built and paced by `Pacer::poll` (a prompt played to
//!   the end, on simulated time), per second;
//! - `parse/datagram`: 172-byte G.711 datagrams parsed by `Packet::parse`;
//! - `session/audio`: datagrams through `RtpSession::handle_datagram` (parse, source
//!   check, loss and jitter counters, delivery);
//! - `dtmf/events`: telephone-event payloads through `DtmfReceiver::handle` (parse
//!   and the once-per-press check), and `TelephoneEvent::parse` alone;
//! - `sdp/answer`: offers answered by `sdp::answer` (baresip's, the longest common
//!   one).
//!
//! One two-way call is 50 packets sent and 50 received per second, so
//! `1 / (50 × (pacer + session))` is the CPU share of a call's RTP work, syscalls
//! not included.
//!
//! Run: `cargo bench --bench rtp`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kuma::rtp::dtmf_event::{DtmfReceiver, TelephoneEvent};
use kuma::rtp::pacer::{Idle, Output, Pacer, PacerConfig, StreamIds};
use kuma::rtp::packet::{Header, Packet};
use kuma::rtp::session::{RtpSession, SessionConfig};
use kuma::rtp::{Codec, FRAME_LEN, Frame};
use kuma::sip::sdp::{LocalMedia, answer};

const PACKETS: u64 = 1000;

fn ids() -> StreamIds {
    StreamIds {
        ssrc: 0x1234_5678,
        first_sequence: 1,
        first_timestamp: 160,
    }
}

fn pacer(c: &mut Criterion) {
    let prompt: Arc<[Frame]> = vec![[0x55u8; FRAME_LEN]; PACKETS as usize].into();
    let config = PacerConfig {
        codec: Codec::Pcmu,
        payload_type: 0,
        ids: ids(),
        idle: Idle::ComfortSilence,
    };
    let mut group = c.benchmark_group("pacer");
    group.throughput(Throughput::Elements(PACKETS));
    group.bench_function("packets", |b| {
        let start = Instant::now();
        b.iter(|| {
            let mut pacer: Pacer<Arc<[Frame]>> = Pacer::new(config, start);
            pacer.enqueue(prompt.clone());
            let mut now = start;
            let mut sent = 0u64;
            let mut bytes = 0usize;
            while sent < PACKETS {
                match pacer.poll(now) {
                    Output::Transmit(t) => {
                        sent += 1;
                        bytes += black_box(t.packet).len();
                    }
                    Output::Event(e) => {
                        black_box(e);
                    }
                    Output::Timeout(t) => now = t,
                }
            }
            bytes
        });
    });
    group.finish();
}

fn datagram(seq: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 12 + FRAME_LEN];
    Header {
        marker: false,
        payload_type: 0,
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: 0xA,
    }
    .write(&[0xFF; FRAME_LEN], &mut buf)
    .expect("a 172-byte buffer");
    buf
}

fn parse(c: &mut Criterion) {
    let d = datagram(1);
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("datagram", |b| {
        b.iter(|| Packet::parse(black_box(&d)).map(|p| p.payload.len()))
    });
    group.finish();
}

fn session(c: &mut Criterion) {
    let from: SocketAddr = "192.0.2.7:4000".parse().expect("an address");
    let datagrams: Vec<Vec<u8>> = (0..PACKETS as u16).map(datagram).collect();
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(PACKETS));
    group.bench_function("audio", |b| {
        let t0 = Instant::now();
        b.iter(|| {
            let mut s = RtpSession::new(SessionConfig::new(0, Some(101), from), t0);
            let mut delivered = 0usize;
            for (i, d) in datagrams.iter().enumerate() {
                let now = t0 + Duration::from_millis(20 * i as u64);
                if s.handle_datagram(black_box(d), from, now).is_some() {
                    delivered += 1;
                }
            }
            delivered
        })
    });
    group.finish();
}

fn dtmf(c: &mut Criterion) {
    // Presses of 100 ms: two updates and three end packets each.
    let mut packets = vec![];
    for press in 0..200u32 {
        for (end, duration) in [
            (false, 0),
            (false, 400),
            (true, 800),
            (true, 800),
            (true, 800),
        ] {
            let payload = TelephoneEvent {
                event: (press % 16) as u8,
                end,
                volume: 10,
                duration,
            }
            .to_bytes();
            packets.push((press * 2000, payload));
        }
    }
    let mut group = c.benchmark_group("dtmf");
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.bench_function("events", |b| {
        let t0 = Instant::now();
        b.iter(|| {
            let mut rx = DtmfReceiver::new();
            let mut keys = 0;
            for (i, (ts, payload)) in packets.iter().enumerate() {
                let now = t0 + Duration::from_millis(20 * i as u64);
                if let Ok(kuma::rtp::dtmf_event::EventOutcome::Key(_)) =
                    rx.handle(7, *ts, black_box(payload), now)
                {
                    keys += 1;
                }
            }
            keys
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse", |b| {
        let payload = [5u8, 0x8A, 0x03, 0x20];
        b.iter(|| TelephoneEvent::parse(black_box(&payload)))
    });
    group.finish();
}

fn sdp(c: &mut Criterion) {
    let offer = include_bytes!("../fuzz/corpus/sdp/baresip.sdp");
    let local = LocalMedia {
        ip: "192.0.2.10".parse().expect("an address"),
        rtp_port: 10_000,
        session_id: 1,
        session_version: 1,
    };
    let mut group = c.benchmark_group("sdp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("answer", |b| {
        b.iter(|| answer(black_box(offer), &local).map(|a| a.sdp.len()))
    });
    group.finish();
}

criterion_group!(benches, pacer, parse, session, dtmf, sdp);
criterion_main!(benches);
