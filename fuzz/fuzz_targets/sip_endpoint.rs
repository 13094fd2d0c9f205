//! The whole SIP endpoint (sans-IO) fed a sequence of inputs, as the shell would,
//! with simulated time: every parser, transaction, dialog and call state behind
//! `handle_input`, including the stateless answers to malformed requests.
//!
//! The input is split on the separator; a part starting with
//! - 0x01 waits (big-endian u16, in units of 10 ms: up to 11 minutes);
//! - 0x02 is an application command on a call seen so far (byte 1: which command,
//!   byte 2: which call): accept, reject, ringing, hang up, re-INVITE answers, REFER;
//! - 0x03 is a message over TCP; 0x04 a datagram from a second (IPv6) caller;
//! - 0x05 places an outgoing call (kuma as the UAC) with digest credentials;
//! - 0x06 stops accepting new calls (shutdown);
//!
//! anything else is a UDP datagram from the first caller, so a plain SIP message is
//! a seed as it is. New calls are answered by the application in turn (accepted,
//! rejected, hung up, ringing) so that every path is taken. At the end the
//! application hangs up every call and, a while later, the endpoint must be idle:
//! nothing leaks.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kuma::sip::{CallId, Config, Credentials, Dial, Endpoint, Event, Output, Transport};
use kuma_fuzz::{op, split, u16_of};
use libfuzzer_sys::fuzz_target;

const ANSWER: &str = "v=0\r\no=kuma 1 1 IN IP4 127.0.0.1\r\ns=kuma\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n";

struct Run {
    ep: Endpoint,
    now: Instant,
    calls: Vec<CallId>,
    auto: u64,
}

impl Run {
    fn drain(&mut self) {
        while let Some(output) = self.ep.poll_output() {
            match output {
                Output::Event(Event::Incoming { call, .. }) => {
                    self.calls.push(call);
                    // The application answers new calls in turn.
                    self.auto += 1;
                    match self.auto % 5 {
                        0 | 1 => self.ep.accept(call, ANSWER.to_owned(), self.now),
                        2 => self.ep.reject(call, 404, self.now),
                        3 => self.ep.ringing(call, self.now),
                        _ => self.ep.hang_up(call, self.now),
                    }
                }
                Output::Event(Event::Reoffer { call, .. }) => {
                    self.ep.accept_reinvite(call, ANSWER.to_owned(), self.now)
                }
                Output::Event(Event::Ended { call, .. }) => self.calls.retain(|c| *c != call),
                Output::Event(_) => {}
                Output::Transmit { bytes, .. } => assert!(!bytes.is_empty()),
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while let Some(at) = self.ep.poll_timeout() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            self.ep.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.ep.handle_timeout(self.now);
        self.drain();
    }

    fn command(&mut self, rest: &[u8]) {
        let which = rest.first().copied().unwrap_or(0);
        let Some(&call) = rest
            .get(1)
            .and_then(|&i| self.calls.get(usize::from(i) % self.calls.len().max(1)))
        else {
            return;
        };
        let now = self.now;
        match which % 8 {
            0 => self.ep.accept(call, ANSWER.to_owned(), now),
            1 => self.ep.reject(call, 486, now),
            2 => self.ep.ringing(call, now),
            3 => self.ep.hang_up(call, now),
            4 => self.ep.accept_reinvite(call, ANSWER.to_owned(), now),
            5 => self.ep.reject_reinvite(call, 488, now),
            6 => self.ep.refer(call, "sip:helpline@192.0.2.99", now),
            _ => self.ep.refer(call, "tel:+22370000000", now),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let caller: SocketAddr = "192.0.2.99:5060".parse().unwrap();
    let second: SocketAddr = "[2001:db8::9]:5070".parse().unwrap();
    let trunk: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    let config = Config {
        local: "127.0.0.1:5060".parse().unwrap(),
        ..Config::default()
    };
    let mut run = Run {
        ep: Endpoint::with_seed(config, 42),
        now: Instant::now(),
        calls: Vec::new(),
        auto: 0,
    };
    for part in split(data) {
        let now = run.now;
        match op(part) {
            Some((1, rest)) => run.advance(Duration::from_millis(u64::from(u16_of(rest)) * 10)),
            Some((2, rest)) => run.command(rest),
            Some((3, rest)) => run.ep.handle_input(rest, caller, Transport::Tcp, now),
            Some((4, rest)) => run.ep.handle_input(rest, second, Transport::Udp, now),
            Some((5, rest)) => {
                let dial = Dial {
                    target: format!("sip:{}@192.0.2.1", String::from_utf8_lossy(rest)),
                    from: "sip:2001@192.0.2.1".into(),
                    next_hop: trunk,
                    proxy: None,
                    credentials: Some(Credentials {
                        user: "2001".into(),
                        password: "secret".into(),
                    }),
                    offer: ANSWER.into(),
                    ring_timeout: Duration::from_secs(30),
                    local: "127.0.0.1:5060".parse().unwrap(),
                };
                let call = run.ep.dial(&dial, now);
                run.calls.push(call);
            }
            Some((6, _)) => run.ep.stop_accepting(),
            _ => run.ep.handle_input(part, caller, Transport::Udp, now),
        }
        run.drain();
    }
    // The application ends what is left; then nothing may remain.
    for call in std::mem::take(&mut run.calls) {
        let now = run.now;
        run.ep.hang_up(call, now);
        run.drain();
    }
    for _ in 0..4 {
        run.advance(Duration::from_secs(200));
    }
    assert!(
        run.ep.is_idle(),
        "the endpoint keeps state after every call ended"
    );
});
