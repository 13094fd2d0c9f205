//! The SIP endpoint: every message kuma's SIP port receives, every timer, every
//! command from the calls' flows, as one sans-IO state machine (str0m style).
//!
//! Inputs: [`Endpoint::handle_input`] (a datagram, or a framed TCP message, with its
//! source and `now`), [`Endpoint::handle_timeout`], and the commands
//! ([`Endpoint::accept`], [`Endpoint::reject`], [`Endpoint::hang_up`]…, and
//! [`Endpoint::dial`] for a call kuma places, see [`crate::sip::outgoing`]). Outputs:
//! [`Endpoint::poll_output`] gives [`Output::Transmit`] and [`Output::Event`] in
//! order; [`Endpoint::poll_timeout`] says when to call back. The shell that owns the
//! sockets is described in [`crate::sip`].
//!
//! Besides the calls ([`crate::sip::call`]) it answers on its own:
//!
//! - OPTIONS outside a dialog: 200 with Allow and Accept (trunks and gateways ping
//!   with it to see kuma is alive);
//! - methods kuma knows but does not serve (REGISTER, SUBSCRIBE, MESSAGE, PUBLISH,
//!   UPDATE, PRACK, REFER): 405 with Allow; unknown methods: 501 (§8.2.1);
//! - a request that can be read but is wrong (a header missing or malformed, a body
//!   shorter than Content-Length): 400 with a reason phrase naming the problem, when
//!   it has what a response needs (Via, From, To, Call-ID, CSeq); 416 for a
//!   Request-URI that is not `sip:`/`sips:`, 505 for another SIP version; an INVITE
//!   with a body that is not SDP: 415; one requiring an extension: 420 (§8.2.2.3);
//! - a request for a dialog or transaction that does not exist: 481 (to a CANCEL,
//!   without a To tag: kuma's tags are for its dialogs, not for whoever asks);
//! - garbage, responses to nothing, keep-alives: dropped, and counted in [`Stats`];
//! - a response with the branch of one of kuma's requests that comes from anywhere
//!   but where that request went (another address or port, another transport):
//!   dropped, counted, and logged with its source, since only someone who
//!   watched kuma's traffic knows the branch, or a trunk that answers from an
//!   address it was not asked at.
//!
//! Before a new call or any other request outside a call is served, the source must
//! pass [`crate::sip::admission`] (trunk allow-list, INVITE rate limit); requests
//! that do not are dropped silently.
//!
//! Bookkeeping: calls by [`CallId`], INVITE transactions and dialogs pointing at
//! their call, other server transactions on their own, client transactions by
//! branch with the address their request went to. Everything is removed when its
//! transaction or call is over; one heap of deadlines drives every timer (entries
//! made stale by a change are skipped when they come up, so
//! [`Endpoint::poll_timeout`] may wake the shell early, harmlessly).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ezk_sip_types::{Headers, Name};

use crate::sip::admission::{Admission, Refusal};
use crate::sip::call::{ACCEPT, ALLOW, Call, CallId, ClientTx, Ctx, EndReason};
use crate::sip::dialog::DialogKey;
use crate::sip::ids::Ids;
use crate::sip::message::{
    self, Malformed, Message, Method, ParseError, Request, RequestInfo, Response, ResponseBase,
    Status, Transport,
};
use crate::sip::proxied;
use crate::sip::transaction::{InviteServer, NonInviteServer, Timers, TxKey, TxTimeout};

/// At most this many finished non-INVITE transactions are kept to answer
/// retransmissions; past it (a flood), requests are still answered, statelessly.
const MAX_SERVER_TRANSACTIONS: usize = 50_000;

/// `Retry-After` of a 503 while busy ([`Endpoint::set_busy`]), in seconds: a
/// busy spell lasts seconds (the calls' audio is on time again), not the minute
/// of a shutdown.
const BUSY_RETRY_AFTER: &str = "5";

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// kuma's SIP address, for Via and Contact. When it is unspecified (`0.0.0.0`),
    /// the Request-URI's host is used when it is an IP address (the caller reached
    /// kuma there); the shell should rather set the address callers reach.
    pub local: SocketAddr,
    /// Sent in `Server` and `User-Agent`.
    pub user_agent: String,
    /// When set, only these sources may start calls (and send anything outside one);
    /// everything else is dropped.
    pub trunks: Option<Vec<IpAddr>>,
    /// SIP proxies in front of kuma (Kamailio): they may send OPTIONS and the like
    /// whatever `trunks` says, and the gateway's address in their
    /// [`crate::sip::proxied::HEADER`] stands for the source of their calls.
    pub proxies: Vec<IpAddr>,
    /// At most `.0` new INVITEs per source (IPv6: per /64) per `.1`.
    pub invite_rate: (u32, Duration),
    pub timers: Timers,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            local: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060),
            user_agent: format!("kuma/{}", env!("CARGO_PKG_VERSION")),
            trunks: None,
            proxies: Vec::new(),
            invite_rate: (20, Duration::from_secs(10)),
            timers: Timers::default(),
        }
    }
}

/// What the endpoint asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes (over TCP: on the connection with that address).
    Transmit {
        to: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
    },
    /// Something happened to a call.
    Event(Event),
}

/// What happened to a call, for its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new call. `dialled` is the Request-URI's user part (the number the listener
    /// dialled); `caller` is the From URI's user part: a phone number, privacy
    /// sensitive, never to be logged. `offer` is the SDP offer, `None` when the INVITE
    /// had none (answer with an offer in `accept`, or reject with 488).
    Incoming {
        call: CallId,
        dialled: String,
        caller: String,
        offer: Option<Vec<u8>>,
        /// Where the INVITE came from (a proxy, for a proxied call).
        source: SocketAddr,
        /// The gateway's address: `source`, or the one a configured proxy named
        /// ([`crate::sip::proxied`]).
        origin: SocketAddr,
    },
    /// The caller acknowledged the 200 OK: media flows both ways.
    Established { call: CallId },
    /// The ACK carried the caller's SDP answer to the offer kuma put in its 200
    /// (only when the INVITE had no offer).
    Answer { call: CallId, sdp: Vec<u8> },
    /// A re-INVITE (hold, resume, new address): answer with `accept_reinvite` or
    /// `reject_reinvite`. `None`: it had no offer (kuma's 200 carries one).
    Reoffer {
        call: CallId,
        offer: Option<Vec<u8>>,
    },
    /// A key the caller pressed, sent in a SIP INFO.
    Key { call: CallId, key: char },
    /// How a transfer asked with `refer` went.
    TransferResult { call: CallId, ok: bool },
    /// The call is over; reported exactly once per call.
    Ended { call: CallId, reason: EndReason },
    /// A call kuma placed ([`Endpoint::dial`]) rings (180/183).
    Ringing { call: CallId },
    /// A call kuma placed was answered; `sdp` is the answer to kuma's offer. The
    /// ACK is sent: media flows.
    Answered { call: CallId, sdp: Vec<u8> },
}

/// What the endpoint dropped or answered on its own, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls started (INVITEs let in).
    pub calls: u64,
    /// Datagrams that were not SIP, or not answerable: dropped.
    pub garbage: u64,
    /// CRLF keep-alives.
    pub keepalives: u64,
    /// Malformed requests answered with 400 (416, 505).
    pub malformed: u64,
    /// Requests from sources not in `trunks`: dropped.
    pub not_trunk: u64,
    /// INVITEs over the rate limit: dropped.
    pub rate_limited: u64,
    /// Responses matching no transaction: dropped.
    pub stray_responses: u64,
    /// Responses with the branch of one of kuma's requests that came from another
    /// address (or another transport) than the one the request went to: dropped
    /// (a forgery, or a trunk answering from an address it was not asked at).
    pub responses_from_elsewhere: u64,
    /// Requests for a dialog or transaction that does not exist (481).
    pub no_dialog: u64,
    /// INVITEs refused with 503 while the node was busy ([`Endpoint::set_busy`]).
    pub busy: u64,
    /// Copies of a call's INVITE by another path (482, RFC 3261 §8.2.2.2).
    pub merged: u64,
}

impl Stats {
    /// Every count of something refused, dropped or answered for want of a
    /// transaction, with its reason as the metric `kuma_sip_refused_total{reason}`
    /// names it (and the log lines, where there are any).
    pub fn by_reason(&self) -> [(&'static str, u64); 9] {
        [
            ("garbage", self.garbage),
            ("malformed", self.malformed),
            ("not_trunk", self.not_trunk),
            ("rate_limited", self.rate_limited),
            ("stray_response", self.stray_responses),
            ("response_from_elsewhere", self.responses_from_elsewhere),
            ("no_dialog", self.no_dialog),
            ("busy", self.busy),
            ("merged", self.merged),
        ]
    }
}

/// A server transaction not tied to a call: a non-INVITE request's, or an INVITE
/// answered at once with an error.
#[derive(Debug)]
enum ServerTx {
    Invite(InviteServer),
    NonInvite(NonInviteServer),
}

#[derive(Debug)]
struct ServerEntry {
    tx: ServerTx,
    target: SocketAddr,
    transport: Transport,
    scheduled: Option<Instant>,
}

impl ServerEntry {
    fn retransmission(&self) -> Option<&[u8]> {
        match &self.tx {
            ServerTx::Invite(tx) => tx.on_retransmission(),
            ServerTx::NonInvite(tx) => tx.on_retransmission(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.tx {
            ServerTx::Invite(tx) => tx.poll_timeout(),
            ServerTx::NonInvite(tx) => tx.poll_timeout(),
        }
    }
}

#[derive(Debug)]
struct CallSlot {
    call: Call,
    scheduled: Option<Instant>,
    /// An incoming call's INVITE, as a merged copy would repeat it.
    merged: Option<MergeKey>,
}

/// What a copy of one INVITE that reached kuma by two paths (a forking proxy
/// upstream) shares with the first (RFC 3261 §8.2.2.2): Call-ID, From tag and
/// CSeq; its branch differs, so its transaction is another.
type MergeKey = (String, String, u32);

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerRef {
    Call(CallId),
    Server(TxKey),
}

/// A deadline in the heap; ordered by time only.
#[derive(Debug)]
struct Scheduled {
    at: Instant,
    what: TimerRef,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

/// The sans-IO SIP endpoint (see the module doc).
#[derive(Debug)]
pub struct Endpoint {
    config: Config,
    ids: Ids,
    admission: Admission,
    accepting: bool,
    /// New calls refused for a while ([`Endpoint::set_busy`]).
    busy: bool,
    out: VecDeque<Output>,
    calls: HashMap<CallId, CallSlot>,
    invites: HashMap<TxKey, CallId>,
    dialogs: HashMap<DialogKey, CallId>,
    /// Incoming calls by [`MergeKey`].
    initial: HashMap<MergeKey, CallId>,
    servers: HashMap<TxKey, ServerEntry>,
    clients: HashMap<String, Client>,
    timers: BinaryHeap<Reverse<Scheduled>>,
    next_call: u64,
    stats: Stats,
    warned_elsewhere: Throttle,
}

impl Endpoint {
    /// A new endpoint, its tags, branches and Call-IDs drawn from a generator keyed
    /// by the operating system (see [`crate::sip::ids`]). Fails only when the
    /// operating system has no entropy to give.
    pub fn new(config: Config) -> Result<Self, rand::rngs::SysError> {
        Ok(Endpoint::with_ids(config, Ids::from_os()?))
    }

    /// A new endpoint whose tags, branches and Call-IDs follow from `seed`:
    /// reproducible, and therefore predictable by anyone who knows the seed. For
    /// tests, fuzzing and benchmarks; never for a server facing a network.
    pub fn with_seed(config: Config, seed: u64) -> Self {
        Endpoint::with_ids(config, Ids::seeded(seed))
    }

    fn with_ids(config: Config, ids: Ids) -> Self {
        Endpoint {
            admission: Admission::new(config.trunks.clone(), config.invite_rate)
                .with_proxies(config.proxies.clone()),
            config,
            ids,
            accepting: true,
            busy: false,
            out: VecDeque::new(),
            calls: HashMap::new(),
            invites: HashMap::new(),
            dialogs: HashMap::new(),
            initial: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            timers: BinaryHeap::new(),
            next_call: 1,
            stats: Stats::default(),
            warned_elsewhere: Throttle::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Who may send it requests outside calls (`Admission::may_contact`): for
    /// a transport that admits peers before any request, SIP over TCP.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Counters of what was dropped or answered on its own.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Calls not yet removed (including ended ones finishing their transactions).
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Whether nothing is left: no call, no transaction (graceful shutdown waits for
    /// this; the tests check it to find leaks).
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty()
            && self.invites.is_empty()
            && self.dialogs.is_empty()
            && self.servers.is_empty()
            && self.clients.is_empty()
    }

    /// On shutdown: new INVITEs and OPTIONS get 503 from now on (a proxy probing
    /// with OPTIONS stops sending calls here); calls in progress go on.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// While `busy` (the calls' audio goes out late: `crate::serve`'s media
    /// guard), new INVITEs and OPTIONS get 503 with a short `Retry-After`, as
    /// on shutdown; calls in progress go on, and so do the INVITEs kuma sends.
    pub fn set_busy(&mut self, busy: bool) {
        self.busy = busy;
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`Endpoint::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse(s)| s.at)
    }

    /// One UDP datagram, or one TCP message cut by
    /// [`crate::sip::framing::StreamFramer`], from `from`.
    pub fn handle_input(
        &mut self,
        data: &[u8],
        from: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        match message::parse(Bytes::copy_from_slice(data), transport) {
            Ok(Message::Request(request)) => self.on_request(request, from, transport, now),
            Ok(Message::Response(response)) => self.on_response(response, from, transport, now),
            Err(Malformed {
                error: ParseError::Empty,
                ..
            }) => self.stats.keepalives += 1,
            Err(Malformed {
                error,
                partial: Some(partial),
            }) => {
                let status = Status {
                    code: error.status(),
                    reason: &error.to_string(),
                };
                self.answer_malformed(
                    &partial.method,
                    &partial.headers,
                    status,
                    from,
                    transport,
                    now,
                );
            }
            Err(Malformed { error, .. }) => {
                self.stats.garbage += 1;
                tracing::trace!(%from, %error, "dropped a datagram");
            }
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse(next)) = self.timers.peek() {
            if next.at > now {
                break;
            }
            let Some(Reverse(Scheduled { at, what })) = self.timers.pop() else {
                break;
            };
            match what {
                TimerRef::Call(id) => {
                    let live = self
                        .calls
                        .get_mut(&id)
                        .is_some_and(|slot| slot.scheduled == Some(at));
                    if live {
                        if let Some(slot) = self.calls.get_mut(&id) {
                            slot.scheduled = None;
                        }
                        self.with_call(id, now, |call, ctx| call.handle_timeout(ctx));
                    }
                }
                TimerRef::Server(key) => self.server_timeout(key, at, now),
            }
        }
    }

    // -- commands ---------------------------------------------------------------------

    /// 180 Ringing (optional: the flow may accept at once).
    pub fn ringing(&mut self, call: CallId, now: Instant) {
        self.with_call(call, now, |c, ctx| c.ringing(ctx));
    }

    /// 200 OK with kuma's SDP answer (or offer, when the INVITE had none).
    pub fn accept(&mut self, call: CallId, sdp: String, now: Instant) {
        self.with_call(call, now, |c, ctx| c.accept(&sdp, ctx));
    }

    /// A final error response: 404 (unknown number), 486 (busy), 488 (no common
    /// codec), 603 (declined on purpose)… The call ends ([`EndReason::Rejected`]).
    pub fn reject(&mut self, call: CallId, code: u16, now: Instant) {
        self.with_call(call, now, |c, ctx| c.reject(code, ctx));
    }

    /// 200 OK to a re-INVITE, with the new SDP.
    pub fn accept_reinvite(&mut self, call: CallId, sdp: String, now: Instant) {
        self.with_call(call, now, |c, ctx| c.accept_reinvite(&sdp, ctx));
    }

    /// Refuses a re-INVITE (488 for an offer kuma cannot take); the call goes on.
    pub fn reject_reinvite(&mut self, call: CallId, code: u16, now: Instant) {
        self.with_call(call, now, |c, ctx| c.reject_reinvite(code, ctx));
    }

    /// Ends the call: BYE when answered (after the ACK), 480 before the answer.
    pub fn hang_up(&mut self, call: CallId, now: Instant) {
        self.with_call(call, now, |c, ctx| c.hang_up(ctx));
    }

    /// Places a call (see [`crate::sip::outgoing`]): the INVITE goes out now; the
    /// call then reports [`Event::Ringing`], [`Event::Answered`] or
    /// [`Event::Ended`] (with [`EndReason::Declined`], [`EndReason::NoResponse`] or
    /// [`EndReason::RingTimeout`]). `hang_up` before the answer cancels it.
    pub fn dial(&mut self, dial: &crate::sip::outgoing::Dial, now: Instant) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        let mut ctx = Ctx {
            now,
            out: &mut self.out,
            ids: &mut self.ids,
            config: &self.config,
            new_branches: Vec::new(),
        };
        let call = Call::dial(id, dial, &mut ctx);
        let branches = ctx.new_branches;
        tracing::debug!(call = %id, "outgoing call");
        self.calls.insert(
            id,
            CallSlot {
                call,
                scheduled: None,
                merged: None,
            },
        );
        self.after_call(id, branches);
        id
    }

    /// Blind transfer (RFC 3515): REFER to `target` (a SIP URI); the outcome comes as
    /// [`Event::TransferResult`]. The flow hangs up when it is told the transfer
    /// succeeded (or the transferee hangs up first).
    pub fn refer(&mut self, call: CallId, target: &str, now: Instant) {
        self.with_call(call, now, |c, ctx| c.refer(target, ctx));
    }

    // -- requests ---------------------------------------------------------------------

    fn on_request(
        &mut self,
        request: Request,
        from: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let info = match RequestInfo::read(&request.method, &request.headers) {
            Ok(info) => info,
            Err(problem) => {
                let status = Status {
                    code: 400,
                    reason: &problem.to_string(),
                };
                self.answer_malformed(
                    &request.method,
                    &request.headers,
                    status,
                    from,
                    transport,
                    now,
                );
                return;
            }
        };
        let key = TxKey::server(&info, &request.method);
        match request.method {
            Method::Ack => return self.on_ack(&request, &info, &key, now),
            Method::Cancel => return self.on_cancel(&request, &info, key, from, transport, now),
            _ => {}
        }

        // A retransmission: the transaction answers it.
        if let Some(&id) = self.invites.get(&key) {
            self.with_call(id, now, |c, ctx| c.on_invite_retransmission(&key, ctx));
            return;
        }
        if let Some(entry) = self.servers.get(&key) {
            if let Some(bytes) = entry.retransmission() {
                let (to, transport) = (entry.target, entry.transport);
                self.transmit(to, transport, bytes.to_vec());
            }
            return;
        }

        let Some(base) = ResponseBase::of(&request.headers, from) else {
            self.stats.garbage += 1;
            return;
        };
        let target = info.via.response_target(from, transport);
        let is_invite = request.method == Method::Invite;

        if let Some(to_tag) = &info.to_tag {
            let dialog = DialogKey {
                call_id: info.call_id.clone(),
                local_tag: to_tag.clone(),
                remote_tag: info.from_tag.clone().unwrap_or_default(),
            };
            let Some(&id) = self.dialogs.get(&dialog) else {
                self.stats.no_dialog += 1;
                let reply = Reply::new(481, target, transport);
                self.respond(key, &base, is_invite, reply, &[], now);
                return;
            };
            if is_invite {
                self.invites.insert(key.clone(), id);
                self.with_call(id, now, |c, ctx| {
                    c.on_reinvite(&request, &info, key, base, from, transport, ctx)
                });
            } else {
                let mut answer = None;
                self.with_call(id, now, |c, ctx| {
                    answer = Some(c.on_request(&request, &info, ctx))
                });
                if let Some((status, extra)) = answer {
                    let extra: Vec<(&str, &str)> =
                        extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
                    let reply = Reply {
                        status,
                        to_tag: None,
                        target,
                        transport,
                    };
                    self.respond(key, &base, false, reply, &extra, now);
                }
            }
            return;
        }

        // Outside a dialog: only from where calls may come.
        if let Err(refusal) = self.admission.may_contact(from.ip()) {
            self.refused(refusal, from, &request.method);
            return;
        }
        let tag = self.ids.tag();
        let reply = |code| Reply {
            status: Status::of(code),
            to_tag: Some(tag.clone()),
            target,
            transport,
        };
        match &request.method {
            Method::Invite => self.on_invite(request, info, key, base, from, transport, now),
            Method::Options if !self.accepting => {
                let extra = [("Retry-After", "60")];
                self.respond(key, &base, false, reply(503), &extra, now);
            }
            Method::Options if self.busy => {
                let extra = [("Retry-After", BUSY_RETRY_AFTER)];
                self.respond(key, &base, false, reply(503), &extra, now);
            }
            Method::Options => {
                let extra = [("Allow", ALLOW), ("Accept", ACCEPT)];
                self.respond(key, &base, false, reply(200), &extra, now);
            }
            Method::Bye | Method::Info | Method::Notify | Method::Update | Method::Prack => {
                self.stats.no_dialog += 1;
                self.respond(key, &base, false, reply(481), &[], now);
            }
            Method::Other(_) => {
                self.respond(key, &base, false, reply(501), &[("Allow", ALLOW)], now);
            }
            _ => {
                self.respond(key, &base, false, reply(405), &[("Allow", ALLOW)], now);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_invite(
        &mut self,
        request: Request,
        info: RequestInfo,
        key: TxKey,
        base: ResponseBase,
        from: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let origin = match proxied::origin(&request.headers, from, self.admission.proxies()) {
            Ok(origin) => origin,
            Err((origin, error)) => {
                tracing::warn!(proxy = %from, %error, "judging the call by the proxy's address");
                origin
            }
        };
        if let Err(refusal) = self.admission.may_invite(origin.addr.ip(), now) {
            self.refused(refusal, origin.addr, &request.method);
            return;
        }
        let target = info.via.response_target(from, transport);
        let tag = self.ids.tag();
        let reply = |code| Reply {
            status: Status::of(code),
            to_tag: Some(tag.clone()),
            target,
            transport,
        };
        // §8.2.2.2: the same INVITE again by another path (a new branch; a
        // retransmission was absorbed above) is a merged request: 482, not a
        // second call for one caller.
        let merge_key = (
            info.call_id.clone(),
            info.from_tag.clone().unwrap_or_default(),
            info.cseq.seq,
        );
        if self.initial.contains_key(&merge_key) {
            self.stats.merged += 1;
            self.respond(key, &base, true, reply(482), &[], now);
            return;
        }
        if !self.accepting {
            self.respond(key, &base, true, reply(503), &[("Retry-After", "60")], now);
            return;
        }
        if self.busy {
            self.stats.busy += 1;
            let extra = [("Retry-After", BUSY_RETRY_AFTER)];
            self.respond(key, &base, true, reply(503), &extra, now);
            return;
        }
        // §8.2.2.3: kuma supports no extension a caller could require (100rel,
        // timer, precondition…).
        if let Some(required) = message::header(&request.headers, &Name::REQUIRE) {
            let unsupported = message::split_list(required).join(", ");
            if !unsupported.is_empty() {
                self.respond(
                    key,
                    &base,
                    true,
                    reply(420),
                    &[("Unsupported", &unsupported)],
                    now,
                );
                return;
            }
        }
        // §8.2.3: a body kuma cannot read (not SDP, or compressed).
        if !request.body.is_empty() && !is_plain_sdp(&request.headers) {
            let extra = [("Accept", ACCEPT), ("Accept-Encoding", "identity")];
            self.respond(key, &base, true, reply(415), &extra, now);
            return;
        }

        let id = CallId(self.next_call);
        self.next_call += 1;
        self.stats.calls += 1;
        let local = self.advertised(&request);
        let mut ctx = Ctx {
            now,
            out: &mut self.out,
            ids: &mut self.ids,
            config: &self.config,
            new_branches: Vec::new(),
        };
        let call = Call::new(
            id,
            &request,
            &info,
            key.clone(),
            base,
            from,
            origin.addr,
            transport,
            local,
            &mut ctx,
        );
        tracing::debug!(call = %id, %from, "incoming call");
        self.invites.insert(key, id);
        self.dialogs.insert(call.dialog.key(), id);
        self.initial.insert(merge_key.clone(), id);
        self.calls.insert(
            id,
            CallSlot {
                call,
                scheduled: None,
                merged: Some(merge_key),
            },
        );
        self.after_call(id, Vec::new());
    }

    fn on_ack(&mut self, request: &Request, info: &RequestInfo, key: &TxKey, now: Instant) {
        // The ACK to a non-2xx belongs to the INVITE's transaction (same branch).
        if let Some(&id) = self.invites.get(key) {
            let mut absorbed = false;
            self.with_call(id, now, |c, ctx| absorbed = c.on_ack_for_failure(key, ctx));
            if absorbed {
                return;
            }
        }
        if let Some(entry) = self.servers.get_mut(key) {
            if let ServerTx::Invite(tx) = &mut entry.tx {
                tx.on_ack(now);
                let (at, old) = (entry.poll_timeout(), entry.scheduled);
                if at != old {
                    entry.scheduled = at;
                    if let Some(at) = at {
                        self.schedule(at, TimerRef::Server(key.clone()));
                    }
                }
            }
            return;
        }
        // The ACK to a 2xx is a transaction of its own, matched by dialog (§13.3.1.4).
        let (Some(to_tag), Some(from_tag)) = (&info.to_tag, &info.from_tag) else {
            return;
        };
        let dialog = DialogKey {
            call_id: info.call_id.clone(),
            local_tag: to_tag.clone(),
            remote_tag: from_tag.clone(),
        };
        if let Some(&id) = self.dialogs.get(&dialog) {
            self.with_call(id, now, |c, ctx| c.on_ack(request, info, ctx));
        }
    }

    fn on_cancel(
        &mut self,
        request: &Request,
        info: &RequestInfo,
        key: TxKey,
        from: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        if let Some(entry) = self.servers.get(&key) {
            if let Some(bytes) = entry.retransmission() {
                let (to, transport) = (entry.target, entry.transport);
                self.transmit(to, transport, bytes.to_vec());
            }
            return;
        }
        let Some(base) = ResponseBase::of(&request.headers, from) else {
            return;
        };
        let target = info.via.response_target(from, transport);
        let invite = key.invite_of();
        match self.invites.get(&invite).copied() {
            Some(id) => {
                // §9.2: 200 to the CANCEL, with the INVITE's To tag, then 487 to the
                // INVITE if it is still unanswered.
                let tag = self.calls.get(&id).map(|s| s.call.dialog.local_tag.clone());
                let reply = Reply {
                    status: Status::of(200),
                    to_tag: tag,
                    target,
                    transport,
                };
                self.respond(key, &base, false, reply, &[], now);
                self.with_call(id, now, |c, ctx| c.on_cancel(&invite, ctx));
            }
            None => {
                // §9.2: 481. Without a To tag: no dialog exists or will, and a
                // CANCEL is answered hop by hop; kuma's tags are for its dialogs, not
                // for whoever asks.
                self.stats.no_dialog += 1;
                tracing::debug!(%from, reason = "cancel_without_transaction", "481 to a CANCEL");
                let reply = Reply::new(481, target, transport);
                self.respond(key, &base, false, reply, &[], now);
            }
        }
    }

    /// A response: to the client transaction with its branch, when it comes from
    /// where that transaction's request went (§17.1.3 matches by branch alone,
    /// which lets anyone who learnt a branch answer for the trunk).
    fn on_response(
        &mut self,
        response: Response,
        from: SocketAddr,
        transport: Transport,
        now: Instant,
    ) {
        let branch = message::top_via(&response.headers).and_then(|via| via.branch);
        let Some((branch, client)) = branch.and_then(|b| self.clients.get(&b).map(|&c| (b, c)))
        else {
            self.stats.stray_responses += 1;
            return;
        };
        if !client.sent_to(from, transport) {
            self.stats.responses_from_elsewhere += 1;
            // A warning for the operator (a forgery, or a trunk answering from an
            // address it was not asked at: every call would fail), at most one
            // every WARN_EVERY; the rest at debug, so a flood fills no disk.
            let since = self.warned_elsewhere.note(now);
            if let Some(more) = since {
                tracing::warn!(
                    %from,
                    ?transport,
                    expected = %client.to,
                    reason = "response_from_elsewhere",
                    since_last_warning = more,
                    "ignored a SIP response: it did not come from where the request went"
                );
            } else {
                tracing::debug!(
                    %from,
                    ?transport,
                    expected = %client.to,
                    reason = "response_from_elsewhere",
                    "ignored a SIP response: it did not come from where the request went"
                );
            }
            return;
        }
        self.with_call(client.call, now, |c, ctx| {
            c.on_response(&branch, &response, ctx)
        });
    }

    /// A request that could be read but not served: answered statelessly when it
    /// carries what a response needs, dropped otherwise. ACKs are never answered.
    fn answer_malformed(
        &mut self,
        method: &Method,
        headers: &Headers,
        status: Status<'_>,
        from: SocketAddr,
        transport: Transport,
        _now: Instant,
    ) {
        if *method == Method::Ack || self.admission.may_contact(from.ip()).is_err() {
            self.stats.garbage += 1;
            return;
        }
        let (Some(base), Some(via)) = (ResponseBase::of(headers, from), message::top_via(headers))
        else {
            self.stats.garbage += 1;
            return;
        };
        let has_all = [Name::CALL_ID, Name::CSEQ]
            .iter()
            .all(|name| message::header(headers, name).is_some());
        if !has_all {
            self.stats.garbage += 1;
            return;
        }
        self.stats.malformed += 1;
        tracing::debug!(%from, reason = status.reason, "answered a malformed request");
        let tag = self.ids.tag();
        let server = [("Server", self.config.user_agent.as_str())];
        let bytes = base.encode(status, Some(&tag), &server, None, false);
        self.transmit(via.response_target(from, transport), transport, bytes);
    }

    fn refused(&mut self, refusal: Refusal, from: SocketAddr, method: &Method) {
        match refusal {
            Refusal::NotTrunk => self.stats.not_trunk += 1,
            Refusal::RateLimited => self.stats.rate_limited += 1,
        }
        tracing::debug!(%from, %method, ?refusal, "dropped a request");
    }

    /// Sends a response and keeps it in a server transaction for retransmissions.
    fn respond(
        &mut self,
        key: TxKey,
        base: &ResponseBase,
        invite: bool,
        reply: Reply,
        extra: &[(&str, &str)],
        now: Instant,
    ) {
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 1);
        headers.extend_from_slice(extra);
        headers.push(("Server", &self.config.user_agent));
        let bytes = base.encode(reply.status, reply.to_tag.as_deref(), &headers, None, false);
        let reliable = reply.transport.is_reliable();
        let tx = if invite {
            let mut tx = InviteServer::new(reliable, self.config.timers);
            tx.respond(reply.status.code, &bytes, now);
            ServerTx::Invite(tx)
        } else {
            let mut tx = NonInviteServer::new(reliable, self.config.timers);
            tx.respond(reply.status.code, &bytes, now);
            if tx.is_terminated() {
                return self.transmit(reply.target, reply.transport, bytes);
            }
            ServerTx::NonInvite(tx)
        };
        self.transmit(reply.target, reply.transport, bytes);
        if self.servers.len() >= MAX_SERVER_TRANSACTIONS {
            return;
        }
        let entry = ServerEntry {
            tx,
            target: reply.target,
            transport: reply.transport,
            scheduled: None,
        };
        let at = entry.poll_timeout();
        self.servers.insert(
            key.clone(),
            ServerEntry {
                scheduled: at,
                ..entry
            },
        );
        if let Some(at) = at {
            self.schedule(at, TimerRef::Server(key));
        }
    }

    fn server_timeout(&mut self, key: TxKey, at: Instant, now: Instant) {
        let Some(entry) = self.servers.get_mut(&key) else {
            return;
        };
        if entry.scheduled != Some(at) {
            return;
        }
        let outcome = match &mut entry.tx {
            ServerTx::Invite(tx) => tx.handle_timeout(now),
            ServerTx::NonInvite(tx) => tx.handle_timeout(now),
        };
        match outcome {
            TxTimeout::Terminated { .. } => {
                self.servers.remove(&key);
            }
            TxTimeout::Retransmit(bytes) => {
                let (to, transport) = (entry.target, entry.transport);
                entry.scheduled = entry.poll_timeout();
                let next = entry.scheduled;
                self.transmit(to, transport, bytes);
                if let Some(next) = next {
                    self.schedule(next, TimerRef::Server(key));
                }
            }
            TxTimeout::Nothing => {
                entry.scheduled = entry.poll_timeout();
                if let Some(next) = entry.scheduled {
                    self.schedule(next, TimerRef::Server(key));
                }
            }
        }
    }

    // -- bookkeeping --------------------------------------------------------------------

    /// Runs `f` on a call with the context it needs, then indexes what it started,
    /// re-arms its timer, and removes it when it is done.
    fn with_call(&mut self, id: CallId, now: Instant, f: impl FnOnce(&mut Call, &mut Ctx<'_>)) {
        let Some(slot) = self.calls.get_mut(&id) else {
            tracing::debug!(call = %id, "no such call");
            return;
        };
        let mut ctx = Ctx {
            now,
            out: &mut self.out,
            ids: &mut self.ids,
            config: &self.config,
            new_branches: Vec::new(),
        };
        f(&mut slot.call, &mut ctx);
        let branches = ctx.new_branches;
        self.after_call(id, branches);
    }

    fn after_call(&mut self, id: CallId, started: Vec<ClientTx>) {
        for c in started {
            let client = Client {
                call: id,
                to: c.to,
                transport: c.transport,
            };
            self.clients.insert(c.branch, client);
        }
        let Some(slot) = self.calls.get_mut(&id) else {
            return;
        };
        if std::mem::take(&mut slot.call.new_dialog) {
            self.dialogs.insert(slot.call.dialog.key(), id);
        }
        if slot.call.is_done() {
            if let Some(slot) = self.calls.remove(&id) {
                for key in &slot.call.invite_keys {
                    self.invites.remove(key);
                }
                for branch in &slot.call.client_branches {
                    self.clients.remove(branch);
                }
                self.dialogs.remove(&slot.call.dialog.key());
                if let Some(merged) = &slot.merged {
                    self.initial.remove(merged);
                }
                tracing::trace!(call = %id, "call removed");
            }
            return;
        }
        let next = slot.call.poll_timeout();
        if next != slot.scheduled {
            slot.scheduled = next;
            if let Some(at) = next {
                self.schedule(at, TimerRef::Call(id));
            }
        }
    }

    fn schedule(&mut self, at: Instant, what: TimerRef) {
        self.timers.push(Reverse(Scheduled { at, what }));
    }

    fn transmit(&mut self, to: SocketAddr, transport: Transport, bytes: Vec<u8>) {
        self.out.push_back(Output::Transmit {
            to,
            transport,
            bytes,
        });
    }

    /// kuma's address for Via and Contact in this call (see [`Config::local`]).
    fn advertised(&self, request: &Request) -> SocketAddr {
        let local = self.config.local;
        if !local.ip().is_unspecified() {
            return local;
        }
        match request.uri.host_port.ip() {
            Some(ip) if !ip.is_unspecified() => {
                SocketAddr::new(ip, request.uri.host_port.port.unwrap_or(local.port()))
            }
            _ => local,
        }
    }
}

/// At most one warning every [`WARN_EVERY`] for a refusal that may repeat without
/// end, on the endpoint's own clock (`now`).
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Throttle {
    next: Option<Instant>,
    quiet: u64,
}

impl Throttle {
    /// One more; `Some(n)` when it is time to warn, `n` being how many were
    /// quiet since the last warning.
    fn note(&mut self, now: Instant) -> Option<u64> {
        if self.next.is_some_and(|next| now < next) {
            self.quiet += 1;
            return None;
        }
        self.next = Some(now + WARN_EVERY);
        Some(std::mem::take(&mut self.quiet))
    }
}

/// A client transaction's entry: its call, and where its request went.
#[derive(Debug, Clone, Copy)]
struct Client {
    call: CallId,
    to: SocketAddr,
    transport: Transport,
}

impl Client {
    /// Whether a response arriving from `from` over `transport` comes from where
    /// the request went. Over TCP, `from` is the connection's peer, so this also
    /// means "on the connection to there". A dual-stack socket sees an IPv4 peer as
    /// an IPv4-mapped IPv6 address: both are compared as IPv4.
    fn sent_to(&self, from: SocketAddr, transport: Transport) -> bool {
        transport == self.transport
            && from.port() == self.to.port()
            && message::canonical_ip(from.ip()) == message::canonical_ip(self.to.ip())
    }
}

/// How to send one response.
struct Reply {
    status: Status<'static>,
    to_tag: Option<String>,
    target: SocketAddr,
    transport: Transport,
}

impl Reply {
    fn new(code: u16, target: SocketAddr, transport: Transport) -> Reply {
        Reply {
            status: Status::of(code),
            to_tag: None,
            target,
            transport,
        }
    }
}

/// Whether a body is SDP kuma can read: `application/sdp`, not encoded.
fn is_plain_sdp(headers: &Headers) -> bool {
    let sdp = message::header(headers, &Name::CONTENT_TYPE).is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/sdp"))
    });
    let encoded = message::header(headers, &Name::CONTENT_ENCODING)
        .is_some_and(|enc| !enc.trim().eq_ignore_ascii_case("identity"));
    sdp && !encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_warning_comes_once_per_period_with_the_count_between() {
        let t0 = Instant::now();
        let mut throttle = Throttle::default();
        assert_eq!(throttle.note(t0), Some(0));
        for ms in 1..=5 {
            assert_eq!(throttle.note(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.note(t0 + WARN_EVERY), Some(5));
        assert_eq!(throttle.note(t0 + WARN_EVERY), None);
    }
}
