//! Whole-endpoint tests: real callers' messages in, simulated time, every output
//! checked. Nothing here touches a socket or a clock.

mod bad_input;
mod calls;
mod outgoing;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ezk_sip_types::Name;

use crate::sip::message::{self, Message, Transport};
use crate::sip::{Config, Endpoint, Event, Output};

pub(crate) const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.1.1\r\ns=-\r\nc=IN IP4 127.0.1.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
pub(crate) const ANSWER: &str = "v=0\r\no=kuma 1 1 IN IP4 127.0.0.1\r\ns=kuma\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n";

/// A caller: a SIP user agent sending realistic messages (sipp's uac scenario).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub addr: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
    pub rport: bool,
    pub transport: Transport,
    /// kuma's tag, once a response carried it.
    pub to_tag: Option<String>,
    pub invite_branch: String,
    n: u32,
}

impl Caller {
    pub fn new(addr: &str, call_id: &str) -> Caller {
        Caller {
            addr: addr.parse().unwrap(),
            call_id: call_id.to_owned(),
            from_tag: format!("{call_id}-ft"),
            cseq: 1,
            rport: false,
            transport: Transport::Udp,
            to_tag: None,
            invite_branch: String::new(),
            n: 0,
        }
    }

    fn host(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        }
    }

    fn branch(&mut self) -> String {
        self.n += 1;
        format!("z9hG4bK-{}-{}", self.call_id, self.n)
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch}{}",
            self.transport.via_name(),
            self.host(),
            if self.rport { ";rport" } else { "" }
        )
    }

    fn to(&self) -> String {
        match &self.to_tag {
            Some(tag) => format!("service <sip:service@127.0.0.1:5060>;tag={tag}"),
            None => "service <sip:service@127.0.0.1:5060>".to_owned(),
        }
    }

    /// A request with this caller's dialog headers.
    pub fn request(
        &self,
        method: &str,
        cseq: u32,
        branch: &str,
        extra: &str,
        body: &str,
    ) -> String {
        format!(
            "{method} sip:service@127.0.0.1:5060 SIP/2.0\r\n\
             Via: {via}\r\n\
             From: sipp <sip:0700123456@{host}>;tag={ft}\r\n\
             To: {to}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: sip:sipp@{host}\r\n\
             Max-Forwards: 70\r\n\
             {extra}Content-Length: {len}\r\n\r\n{body}",
            via = self.via(branch),
            host = self.host(),
            ft = self.from_tag,
            to = self.to(),
            cid = self.call_id,
            len = body.len(),
        )
    }

    pub fn invite(&mut self) -> String {
        self.invite_branch = self.branch();
        let branch = self.invite_branch.clone();
        self.request(
            "INVITE",
            self.cseq,
            &branch,
            "Content-Type: application/sdp\r\n",
            SDP,
        )
    }

    pub fn invite_without_sdp(&mut self) -> String {
        self.invite_branch = self.branch();
        let branch = self.invite_branch.clone();
        self.request("INVITE", self.cseq, &branch, "", "")
    }

    /// The INVITE again, byte for byte (a retransmission).
    pub fn invite_again(&self) -> String {
        self.request(
            "INVITE",
            self.cseq,
            &self.invite_branch,
            "Content-Type: application/sdp\r\n",
            SDP,
        )
    }

    /// ACK for a 2xx: a new branch, in the dialog.
    pub fn ack(&mut self) -> String {
        let branch = self.branch();
        self.request("ACK", self.cseq, &branch, "", "")
    }

    /// ACK for a failure: the INVITE's branch.
    pub fn ack_failure(&self) -> String {
        self.request("ACK", self.cseq, &self.invite_branch, "", "")
    }

    pub fn cancel(&self) -> String {
        let mut me = self.clone();
        me.to_tag = None;
        me.request("CANCEL", self.cseq, &self.invite_branch, "", "")
    }

    pub fn bye(&mut self) -> String {
        self.cseq += 1;
        let branch = self.branch();
        self.request("BYE", self.cseq, &branch, "", "")
    }

    pub fn in_dialog(&mut self, method: &str, extra: &str, body: &str) -> String {
        self.cseq += 1;
        let branch = self.branch();
        self.request(method, self.cseq, &branch, extra, body)
    }

    pub fn reinvite(&mut self, sdp: &str) -> String {
        self.cseq += 1;
        self.invite_branch = self.branch();
        let branch = self.invite_branch.clone();
        self.request(
            "INVITE",
            self.cseq,
            &branch,
            "Content-Type: application/sdp\r\n",
            sdp,
        )
    }

    /// Learns kuma's tag from a response.
    pub fn learn_tag(&mut self, response: &Sent) {
        if let Some(tag) = response.to_tag() {
            self.to_tag = Some(tag);
        }
    }
}

/// One message kuma sent.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub at: Duration,
    pub to: SocketAddr,
    pub transport: Transport,
    pub text: String,
}

impl Sent {
    pub fn status(&self) -> Option<u16> {
        self.text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }

    pub fn method(&self) -> Option<&str> {
        if self.text.starts_with("SIP/2.0") {
            return None;
        }
        self.text.split(' ').next()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let parsed = message::parse(Bytes::from(self.text.clone()), self.transport).ok()?;
        let headers = match &parsed {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        };
        message::header(headers, &Name::from(name.to_owned())).map(str::to_owned)
    }

    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To")?;
        message::header_param(&to, "tag").map(str::to_owned)
    }

    pub fn branch(&self) -> Option<String> {
        let parsed = message::parse(Bytes::from(self.text.clone()), self.transport).ok()?;
        let headers = match &parsed {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        };
        message::top_via(headers)?.branch
    }

    /// A response to this request (for requests kuma sent).
    pub fn answer(&self, code: u16, reason: &str) -> String {
        let via = self.header("Via").unwrap();
        format!(
            "SIP/2.0 {code} {reason}\r\nVia: {via}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
            self.header("From").unwrap(),
            self.header("To").unwrap(),
            self.header("Call-ID").unwrap(),
            self.header("CSeq").unwrap(),
        )
    }
}

/// The endpoint with a simulated clock and everything it said.
pub(crate) struct Harness {
    pub ep: Endpoint,
    pub t0: Instant,
    pub now: Instant,
    pub sent: Vec<Sent>,
    pub events: Vec<Event>,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(Config {
            local: "127.0.0.1:5060".parse().unwrap(),
            ..Config::default()
        })
    }

    pub fn with(config: Config) -> Harness {
        let t0 = Instant::now();
        Harness {
            ep: Endpoint::with_seed(config, 42),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(output) = self.ep.poll_output() {
            match output {
                Output::Transmit {
                    to,
                    transport,
                    bytes,
                } => self.sent.push(Sent {
                    at: self.now - self.t0,
                    to,
                    transport,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                }),
                Output::Event(event) => self.events.push(event),
            }
        }
    }

    pub fn input(&mut self, text: &str, from: SocketAddr, transport: Transport) {
        self.ep
            .handle_input(text.as_bytes(), from, transport, self.now);
        self.drain();
    }

    pub fn from(&mut self, caller: &Caller, text: &str) {
        self.input(text, caller.addr, caller.transport);
    }

    /// Moves the clock forward, firing every timer on the way at its time.
    pub fn advance(&mut self, by: Duration) {
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

    pub fn take_sent(&mut self) -> Vec<Sent> {
        self.drain();
        std::mem::take(&mut self.sent)
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        self.drain();
        std::mem::take(&mut self.events)
    }

    /// The only message sent since the last look.
    pub fn one_sent(&mut self) -> Sent {
        let sent = self.take_sent();
        assert_eq!(sent.len(), 1, "expected one message, got {sent:#?}");
        sent.into_iter().next().unwrap()
    }

    /// The call id of the last Incoming event.
    pub fn incoming(&mut self) -> crate::sip::CallId {
        let events = self.take_events();
        match events.as_slice() {
            [Event::Incoming { call, .. }] => *call,
            other => panic!("expected Incoming, got {other:?}"),
        }
    }

    /// Runs the clock until every transaction is over, then checks nothing is left.
    pub fn assert_idle_after_a_while(&mut self) {
        self.advance(Duration::from_secs(200));
        assert!(self.ep.is_idle(), "left behind: {:?}", self.ep);
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
