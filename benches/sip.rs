//! Benchmarks of the SIP endpoint, through its public API:
//!
//! - `parse/invite`: sipp's INVITE (from `fuzz/corpus/sip/`) parsed by
//!   `message::parse` and its mandatory headers read by `RequestInfo::read`, per
//!   second;
//! - `endpoint/call`: whole calls through `Endpoint` (INVITE, 100 Trying, accept,
//!   200 OK, ACK, BYE, 200 OK; every output drained, timers run on simulated time so
//!   finished calls are removed as they would be), per second;
//! - `endpoint/options`: OPTIONS keep-alives answered, per second.
//!
//! Run: `cargo bench --bench sip`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ezk_sip_types::Name;
use kuma::sip::message::{self, Message, RequestInfo, Transport};
use kuma::sip::{Config, Endpoint, Event, Output};

const INVITE: &[u8] = include_bytes!("../fuzz/corpus/sip/sipp-uac-invite.sip");
const ANSWER: &str = "v=0\r\no=kuma 1 1 IN IP4 127.0.0.1\r\ns=kuma\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n";
const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.1.1\r\ns=-\r\nc=IN IP4 127.0.1.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("invite", |b| {
        b.iter(|| {
            let Ok(Message::Request(req)) =
                message::parse(Bytes::from_static(black_box(INVITE)), Transport::Udp)
            else {
                panic!("the INVITE must parse");
            };
            black_box(RequestInfo::read(&req.method, &req.headers).is_ok())
        })
    });
    group.finish();
}

/// sipp's messages for call `n` (`[call_number]` and `[branch]` filled in).
fn messages(n: u64, kuma_tag: &str) -> (String, String, String) {
    let head = |method: &str, cseq: u32, branch: &str, to_tag: &str, body: &str| {
        format!(
            "{method} sip:service@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-4242-{n}-{branch}\r\n\
             From: sipp <sip:sipp@127.0.1.1:5061>;tag=4242SIPpTag00{n}\r\n\
             To: service <sip:service@127.0.0.1:5060>{to_tag}\r\n\
             Call-ID: {n}-4242@127.0.1.1\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: sip:sipp@127.0.1.1:5061\r\n\
             Max-Forwards: 70\r\n\
             Subject: Performance Test\r\n\
             {ct}Content-Length: {len}\r\n\r\n{body}",
            ct = if body.is_empty() {
                ""
            } else {
                "Content-Type: application/sdp\r\n"
            },
            len = body.len()
        )
    };
    let tag = format!(";tag={kuma_tag}");
    (
        head("INVITE", 1, "0", "", SDP),
        head("ACK", 1, "5", &tag, ""),
        head("BYE", 2, "7", &tag, ""),
    )
}

fn calls(c: &mut Criterion) {
    let mut group = c.benchmark_group("endpoint");
    group.throughput(Throughput::Elements(1));
    let from: SocketAddr = "127.0.1.1:5061".parse().unwrap();
    group.bench_function("call", |b| {
        let mut ep = Endpoint::with_seed(
            Config {
                local: "127.0.0.1:5060".parse().unwrap(),
                invite_rate: (u32::MAX, Duration::from_secs(1)),
                ..Config::default()
            },
            7,
        );
        let mut now = Instant::now();
        let events = one_call(&mut ep, 0, now, from);
        assert!(
            matches!(
                events.as_slice(),
                [
                    Event::Incoming { .. },
                    Event::Established { .. },
                    Event::Ended { .. }
                ]
            ),
            "{events:?}"
        );
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            // 1000 calls set up per simulated second.
            now += Duration::from_millis(1);
            ep.handle_timeout(now);
            while ep.poll_output().is_some() {}
            black_box(one_call(&mut ep, n, now, from))
        })
    });
    group.bench_function("options", |b| {
        let mut ep = Endpoint::with_seed(Config::default(), 7);
        let mut now = Instant::now();
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            now += Duration::from_millis(1);
            ep.handle_timeout(now);
            let options = format!(
                "OPTIONS sip:kuma@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKo{n}\r\n\
                 From: <sip:gw@192.0.2.10>;tag=o{n}\r\nTo: <sip:kuma@127.0.0.1>\r\nCall-ID: o{n}\r\n\
                 CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            ep.handle_input(options.as_bytes(), from, Transport::Udp, now);
            while let Some(out) = ep.poll_output() {
                black_box(out);
            }
        })
    });
    group.finish();
}

/// One whole call, as sipp's uac scenario makes it; returns its events.
fn one_call(ep: &mut Endpoint, n: u64, now: Instant, from: SocketAddr) -> Vec<Event> {
    let mut events = Vec::new();
    let (invite, _, _) = messages(n, "");
    ep.handle_input(invite.as_bytes(), from, Transport::Udp, now);
    while let Some(out) = ep.poll_output() {
        if let Output::Event(event) = out {
            events.push(event);
        }
    }
    let Some(Event::Incoming { call, .. }) = events.first() else {
        return events;
    };
    ep.accept(*call, ANSWER.to_owned(), now);
    let mut tag = String::new();
    while let Some(out) = ep.poll_output() {
        if let Output::Transmit { bytes, .. } = out
            && let Ok(Message::Response(ok)) = message::parse(Bytes::from(bytes), Transport::Udp)
            && let Some(to) = message::header(&ok.headers, &Name::TO)
        {
            tag = message::header_param(to, "tag").unwrap_or("").to_owned();
        }
    }
    let (_, ack, bye) = messages(n, &tag);
    ep.handle_input(ack.as_bytes(), from, Transport::Udp, now);
    ep.handle_input(bye.as_bytes(), from, Transport::Udp, now);
    while let Some(out) = ep.poll_output() {
        if let Output::Event(event) = out {
            events.push(event);
        }
    }
    events
}

criterion_group!(benches, parse, calls);
criterion_main!(benches);
