//! One call, seen from kuma's side (the UAS): from the caller's INVITE to the end.
//!
//! - **INVITE**: 100 Trying at once; [`Event::Incoming`] to the application, which
//!   answers with `ringing` (180), `accept` (200 with the SDP answer) or `reject`.
//!   An INVITE without SDP is reported with `offer: None`: the application may then
//!   put an offer in the 200 (the caller's answer comes in the ACK, reported as
//!   [`Event::Answer`]) or simply reject it with 488.
//! - **The 2xx** is retransmitted by the call itself (RFC 3261 §13.3.1.4), T1
//!   doubling to T2, until the ACK arrives ([`Event::Established`]). Without an ACK
//!   after 64·T1, the call is ended with BYE (§13.3.1.4 "the session SHOULD be
//!   terminated") and reported as [`EndReason::AckTimeout`].
//! - **CANCEL** before the final response: 200 to the CANCEL, 487 to the INVITE
//!   (§9.2), [`EndReason::Cancelled`].
//! - **BYE** from the caller: 200, [`EndReason::CallerHangup`]. `hang_up` from the
//!   application: BYE once the dialog is confirmed (§15: not before the ACK),
//!   retransmitted until its 200; before the answer, 480.
//! - **re-INVITE** (hold, resume, a new address): [`Event::Reoffer`]; the application
//!   answers with `accept_reinvite` (200 with SDP, retransmitted like the first) or
//!   `reject_reinvite`; either way the call goes on. A re-INVITE while another is
//!   unanswered gets 500 with Retry-After (§14.2).
//! - **INFO** with `application/dtmf-relay` (`Signal=5`) or `application/dtmf`:
//!   [`Event::Key`], 200. Some GSM gateways send keys this way instead of RFC 4733.
//! - **REFER** (RFC 3515, blind transfer): kuma sends it; the NOTIFYs' sipfrag says
//!   how it went: [`Event::TransferResult`] (2xx: transferred; 3xx–6xx, a refused
//!   REFER, or no answer: failed).
//!
//! Every call reports exactly one [`Event::Ended`]; it then stays only as long as its
//! transactions need (at most 64·T1), and is removed.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ezk_sip_types::Name;

use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{Config, Event, Output};
use crate::sip::ids::Ids;
use crate::sip::message::Response;
use crate::sip::message::{
    self, Body, Method, Request, RequestInfo, ResponseBase, Status, Transport,
};
use crate::sip::outgoing::{Dial, Uac, UacStep};
use crate::sip::transaction::{InviteServer, NonInviteClient, TxKey, TxTimeout};

/// The methods kuma serves, for Allow (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY";
/// The bodies kuma takes in an INVITE.
pub const ACCEPT: &str = "application/sdp";

/// A call, as the endpoint and the application name it. Never the phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    CallerHangup,
    /// The caller gave up before the answer (CANCEL).
    Cancelled,
    /// The caller never acknowledged the 200 OK (a lost ACK, a broken NAT).
    AckTimeout,
    /// The application rejected the call with this code.
    Rejected(u16),
    /// The application hung up.
    HungUp,
    /// The application neither answered nor rejected within the ring timeout (480).
    NotAnswered,
    /// A call kuma placed was refused with this final response (486 busy, 403,
    /// 503…).
    Declined(u16),
    /// A call kuma placed got no response at all (timer B: the trunk is down).
    NoResponse,
    /// A call kuma placed rang until its ring timeout: kuma cancelled it.
    RingTimeout,
}

/// What a call needs from the endpoint while it runs.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub out: &'a mut VecDeque<Output>,
    pub ids: &'a mut Ids,
    pub config: &'a Config,
    /// Client transactions started, for the endpoint to index.
    pub new_branches: Vec<ClientTx>,
}

/// A client transaction a call started: its branch, and where its request went.
/// Responses are taken only from there (over TCP: on the connection to there);
/// anyone else who learnt the branch could otherwise answer for the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientTx {
    pub branch: String,
    pub to: SocketAddr,
    pub transport: Transport,
}

impl Ctx<'_> {
    pub fn send(&mut self, to: SocketAddr, transport: Transport, bytes: Vec<u8>) {
        self.out.push_back(Output::Transmit {
            to,
            transport,
            bytes,
        });
    }

    pub fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }

    /// A client transaction's request was sent: the endpoint routes the responses
    /// from `to` with this branch to the call.
    pub fn client_started(&mut self, branch: &str, to: SocketAddr, transport: Transport) {
        self.new_branches.push(ClientTx {
            branch: branch.to_owned(),
            to,
            transport,
        });
    }
}

/// An INVITE server transaction of this call and where its responses go.
#[derive(Debug)]
struct InviteTx {
    key: TxKey,
    tx: InviteServer,
    target: SocketAddr,
}

/// The INVITE the application has not answered yet.
#[derive(Debug)]
struct Pending {
    key: TxKey,
    base: ResponseBase,
    target: SocketAddr,
    cseq: u32,
    reinvite: bool,
    /// Whether it carried an SDP offer (otherwise kuma's 200 carries the offer).
    had_offer: bool,
}

/// A 2xx waiting for its ACK (§13.3.1.4).
#[derive(Debug)]
struct AwaitingAck {
    bytes: Vec<u8>,
    target: SocketAddr,
    next: Instant,
    interval: Duration,
    give_up: Instant,
    cseq: u32,
    reinvite: bool,
    /// The 200 carried kuma's offer: the answer comes in the ACK.
    offer_in_ok: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// kuma placed the call; no answer yet.
    Dialing,
    /// The initial INVITE is unanswered.
    Ringing,
    /// The 2xx is sent; no ACK yet.
    Answered,
    /// The ACK came.
    Confirmed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    None,
    /// REFER sent, no final response yet.
    Requested,
    /// REFER accepted (202): waiting for the NOTIFY with the outcome.
    Accepted,
}

/// One call (see the module doc).
#[derive(Debug)]
pub(crate) struct Call {
    pub id: CallId,
    pub dialog: Dialog,
    phase: Phase,
    ended: bool,
    invites: Vec<InviteTx>,
    pending: Option<Pending>,
    awaiting_ack: Option<AwaitingAck>,
    ring_deadline: Option<Instant>,
    /// The application hung up between the 2xx and its ACK: BYE when the ACK comes.
    bye_after_ack: bool,
    bye: Option<(String, NonInviteClient, SocketAddr)>,
    refer: Option<(String, NonInviteClient, SocketAddr)>,
    transfer: Transfer,
    /// Every INVITE transaction key and client branch this call ever had, for the
    /// endpoint to forget when the call is removed.
    pub invite_keys: Vec<TxKey>,
    pub client_branches: Vec<String>,
    /// The dialling side of a call kuma placed.
    uac: Option<Uac>,
    /// The dialog was just made (a call kuma placed was answered): the endpoint
    /// indexes it and clears this.
    pub new_dialog: bool,
}

impl Call {
    /// A new call from an INVITE: 100 Trying, [`Event::Incoming`]. `source` sent
    /// it; `origin` is the gateway's address (`source`, unless a trusted proxy
    /// named another, see [`crate::sip::proxied`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: CallId,
        request: &Request,
        info: &RequestInfo,
        key: TxKey,
        base: ResponseBase,
        source: SocketAddr,
        origin: SocketAddr,
        transport: Transport,
        local: SocketAddr,
        ctx: &mut Ctx<'_>,
    ) -> Call {
        let local_tag = ctx.ids.tag();
        let dialog = Dialog::from_invite(request, info, local_tag, source, transport, local);
        let target = info.via.response_target(source, transport);
        let mut call = Call {
            id,
            dialog,
            phase: Phase::Ringing,
            ended: false,
            invites: Vec::new(),
            pending: None,
            awaiting_ack: None,
            ring_deadline: Some(ctx.now + ctx.config.timers.ring_timeout),
            bye_after_ack: false,
            bye: None,
            refer: None,
            transfer: Transfer::None,
            invite_keys: vec![key.clone()],
            client_branches: Vec::new(),
            uac: None,
            new_dialog: false,
        };
        let offer = offer_of(request);
        call.invites.push(InviteTx {
            key: key.clone(),
            tx: InviteServer::new(transport.is_reliable(), ctx.config.timers),
            target,
        });
        call.pending = Some(Pending {
            key,
            base,
            target,
            cseq: info.cseq.seq,
            reinvite: false,
            had_offer: offer.is_some(),
        });
        call.respond_pending(Status::of(100), &[], None, ctx);
        ctx.event(Event::Incoming {
            call: id,
            dialled: message::uri_user(&request.uri),
            caller: message::header(&request.headers, &Name::FROM)
                .map(message::user_of)
                .unwrap_or_default(),
            offer,
            source,
            origin,
        });
        call
    }

    /// A call kuma places: sends the INVITE (see [`crate::sip::outgoing`]).
    pub fn dial(id: CallId, dial: &Dial, ctx: &mut Ctx<'_>) -> Call {
        let call_id = format!("{}@{}", ctx.ids.call_id(), dial.local.ip());
        let mut dialog = Dialog::outgoing(
            call_id,
            ctx.ids.tag(),
            format!("<{}>", dial.from),
            dial.target.clone(),
            dial.next_hop,
            dial.proxy,
            Transport::Udp,
            dial.local,
        );
        let uac = Uac::start(dial, &mut dialog, ctx);
        Call {
            id,
            dialog,
            phase: Phase::Dialing,
            ended: false,
            invites: Vec::new(),
            pending: None,
            awaiting_ack: None,
            ring_deadline: None,
            bye_after_ack: false,
            bye: None,
            refer: None,
            transfer: Transfer::None,
            invite_keys: Vec::new(),
            client_branches: ctx.new_branches.iter().map(|c| c.branch.clone()).collect(),
            uac: Some(uac),
            new_dialog: false,
        }
    }

    /// What the dialling side reported.
    fn on_uac_step(&mut self, step: UacStep, ctx: &mut Ctx<'_>) {
        for c in &ctx.new_branches {
            if !self.client_branches.contains(&c.branch) {
                self.client_branches.push(c.branch.clone());
            }
        }
        match step {
            UacStep::Nothing => {}
            UacStep::Ringing => {
                if !self.ended {
                    ctx.event(Event::Ringing { call: self.id });
                }
            }
            UacStep::Answered(sdp) => {
                self.phase = Phase::Confirmed;
                self.new_dialog = true;
                if self.ended {
                    // The answer crossed kuma's CANCEL or hang-up (§15): end it.
                    self.send_bye(ctx);
                } else {
                    ctx.event(Event::Answered { call: self.id, sdp });
                }
            }
            UacStep::Failed(Some(code)) => self.end(EndReason::Declined(code), ctx),
            UacStep::Failed(None) => self.end(EndReason::NoResponse, ctx),
            UacStep::RingTimeout => self.end(EndReason::RingTimeout, ctx),
        }
    }

    /// Whether nothing is left to do: ended, and every transaction finished.
    pub fn is_done(&self) -> bool {
        self.ended
            && self.uac.as_ref().is_none_or(Uac::is_done)
            && self.invites.is_empty()
            && self.awaiting_ack.is_none()
            && self.bye.is_none()
            && self.refer.is_none()
    }

    fn end(&mut self, reason: EndReason, ctx: &mut Ctx<'_>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.ring_deadline = None;
        tracing::debug!(call = %self.id, ?reason, "call ended");
        ctx.event(Event::Ended {
            call: self.id,
            reason,
        });
    }

    /// Sends a response to the pending INVITE through its transaction; a 2xx then
    /// waits for its ACK.
    fn respond_pending(
        &mut self,
        status: Status<'_>,
        extra: &[(&str, &str)],
        body: Option<Body<'_>>,
        ctx: &mut Ctx<'_>,
    ) -> bool {
        let Some(pending) = self.pending.take() else {
            return false;
        };
        let sent = self.respond_on(
            &pending.key,
            &pending.base,
            pending.target,
            status,
            extra,
            body,
            ctx,
        );
        let Some(bytes) = sent else {
            self.pending = Some(pending);
            return false;
        };
        if status.code < 200 {
            self.pending = Some(pending);
        } else if status.code < 300 {
            let t1 = ctx.config.timers.t1;
            self.awaiting_ack = Some(AwaitingAck {
                bytes,
                target: pending.target,
                next: ctx.now + t1,
                interval: t1,
                give_up: ctx.now + ctx.config.timers.t64(),
                cseq: pending.cseq,
                reinvite: pending.reinvite,
                offer_in_ok: !pending.had_offer,
            });
        }
        true
    }

    /// Sends a response through the INVITE transaction `key`; returns the bytes sent.
    #[allow(clippy::too_many_arguments)]
    fn respond_on(
        &mut self,
        key: &TxKey,
        base: &ResponseBase,
        target: SocketAddr,
        status: Status<'_>,
        extra: &[(&str, &str)],
        body: Option<Body<'_>>,
        ctx: &mut Ctx<'_>,
    ) -> Option<Vec<u8>> {
        let itx = self.invites.iter_mut().find(|t| &t.key == key)?;
        let tag = (status.code > 100).then_some(self.dialog.local_tag.as_str());
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 1);
        headers.extend_from_slice(extra);
        headers.push(("Server", &ctx.config.user_agent));
        let bytes = base.encode(status, tag, &headers, body, true);
        if !itx.tx.respond(status.code, &bytes, ctx.now) {
            return None;
        }
        ctx.send(target, self.dialog.transport(), bytes.clone());
        Some(bytes)
    }

    fn pending_is(&self, reinvite: bool) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.reinvite == reinvite)
    }

    // -- commands from the application ------------------------------------------

    pub fn ringing(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending_is(false) && !self.ended {
            let contact = self.dialog.contact();
            self.respond_pending(Status::of(180), &[("Contact", &contact)], None, ctx);
        }
    }

    pub fn accept(&mut self, sdp: &str, ctx: &mut Ctx<'_>) {
        if !self.pending_is(false) || self.ended {
            return;
        }
        self.answer_pending(sdp, ctx);
        self.phase = Phase::Answered;
        self.ring_deadline = None;
    }

    pub fn accept_reinvite(&mut self, sdp: &str, ctx: &mut Ctx<'_>) {
        if self.pending_is(true) && !self.ended {
            self.answer_pending(sdp, ctx);
        }
    }

    fn answer_pending(&mut self, sdp: &str, ctx: &mut Ctx<'_>) {
        let contact = self.dialog.contact();
        let body = Body {
            content_type: "application/sdp",
            bytes: sdp.as_bytes(),
        };
        self.respond_pending(
            Status::of(200),
            &[("Contact", &contact), ("Allow", ALLOW)],
            Some(body),
            ctx,
        );
    }

    pub fn reject(&mut self, code: u16, ctx: &mut Ctx<'_>) {
        if !self.pending_is(false) || self.ended {
            return;
        }
        let code = if (300..700).contains(&code) {
            code
        } else {
            500
        };
        self.respond_pending(Status::of(code), &[], None, ctx);
        self.end(EndReason::Rejected(code), ctx);
    }

    pub fn reject_reinvite(&mut self, code: u16, ctx: &mut Ctx<'_>) {
        if self.pending_is(true) {
            let code = if (300..700).contains(&code) {
                code
            } else {
                488
            };
            self.respond_pending(Status::of(code), &[], None, ctx);
        }
    }

    pub fn hang_up(&mut self, ctx: &mut Ctx<'_>) {
        if self.ended {
            return;
        }
        match self.phase {
            Phase::Dialing => {
                if let Some(uac) = &mut self.uac {
                    uac.cancel(&self.dialog, ctx);
                }
            }
            Phase::Ringing => {
                self.respond_pending(Status::of(480), &[], None, ctx);
            }
            Phase::Answered => {
                self.bye_after_ack = true;
                self.terminate_pending_reinvite(ctx);
            }
            Phase::Confirmed => {
                self.terminate_pending_reinvite(ctx);
                self.send_bye(ctx);
            }
        }
        self.end(EndReason::HungUp, ctx);
    }

    pub fn refer(&mut self, target: &str, ctx: &mut Ctx<'_>) {
        if self.ended || self.phase != Phase::Confirmed || self.transfer != Transfer::None {
            ctx.event(Event::TransferResult {
                call: self.id,
                ok: false,
            });
            return;
        }
        let refer_to = format!(
            "<{}>",
            target.trim().trim_start_matches('<').trim_end_matches('>')
        );
        let referred_by = format!("<sip:kuma@{}>", self.dialog.local());
        let branch = ctx.ids.branch();
        let (bytes, to) = self.dialog.request(
            &Method::Refer,
            &branch,
            &[("Refer-To", &refer_to), ("Referred-By", &referred_by)],
            None,
            &ctx.config.user_agent,
        );
        let tx = NonInviteClient::new(
            bytes.clone(),
            self.dialog.transport().is_reliable(),
            ctx.config.timers,
            ctx.now,
        );
        ctx.send(to, self.dialog.transport(), bytes);
        ctx.client_started(&branch, to, self.dialog.transport());
        self.client_branches.push(branch.clone());
        self.refer = Some((branch, tx, to));
        self.transfer = Transfer::Requested;
    }

    fn send_bye(&mut self, ctx: &mut Ctx<'_>) {
        if self.bye.is_some() {
            return;
        }
        self.awaiting_ack = None;
        let branch = ctx.ids.branch();
        let (bytes, to) =
            self.dialog
                .request(&Method::Bye, &branch, &[], None, &ctx.config.user_agent);
        let tx = NonInviteClient::new(
            bytes.clone(),
            self.dialog.transport().is_reliable(),
            ctx.config.timers,
            ctx.now,
        );
        ctx.send(to, self.dialog.transport(), bytes);
        ctx.client_started(&branch, to, self.dialog.transport());
        self.client_branches.push(branch.clone());
        self.bye = Some((branch, tx, to));
    }

    /// A re-INVITE still unanswered when the call ends gets 487.
    fn terminate_pending_reinvite(&mut self, ctx: &mut Ctx<'_>) {
        if self.pending_is(true) {
            self.respond_pending(Status::of(487), &[], None, ctx);
        }
    }

    // -- requests from the caller -------------------------------------------------

    /// A retransmission of one of this call's INVITEs: the latest response again.
    pub fn on_invite_retransmission(&mut self, key: &TxKey, ctx: &mut Ctx<'_>) {
        if let Some(itx) = self.invites.iter().find(|t| &t.key == key)
            && let Some(bytes) = itx.tx.on_retransmission()
        {
            ctx.send(itx.target, self.dialog.transport(), bytes.to_vec());
        }
    }

    /// The ACK to a non-2xx (same branch as its INVITE).
    /// Returns whether it was absorbed (false for a 2xx's ACK that reused the
    /// INVITE's branch, which goes to the dialog).
    pub fn on_ack_for_failure(&mut self, key: &TxKey, ctx: &mut Ctx<'_>) -> bool {
        self.invites
            .iter_mut()
            .find(|t| &t.key == key)
            .is_some_and(|itx| itx.tx.on_ack(ctx.now))
    }

    /// CANCEL for the INVITE with this key: 487 if it is still unanswered (the
    /// endpoint has answered the CANCEL itself).
    pub fn on_cancel(&mut self, key: &TxKey, ctx: &mut Ctx<'_>) {
        let Some(pending) = &self.pending else {
            return;
        };
        if &pending.key != key {
            return;
        }
        let reinvite = pending.reinvite;
        self.respond_pending(Status::of(487), &[], None, ctx);
        if !reinvite {
            self.end(EndReason::Cancelled, ctx);
        }
    }

    /// The ACK to a 2xx, matched by dialog.
    pub fn on_ack(&mut self, request: &Request, info: &RequestInfo, ctx: &mut Ctx<'_>) {
        let Some(waiting) = &self.awaiting_ack else {
            return; // a retransmitted ACK, or one for a 2xx given up on
        };
        if waiting.cseq != info.cseq.seq {
            return;
        }
        let (reinvite, offer_in_ok) = (waiting.reinvite, waiting.offer_in_ok);
        self.awaiting_ack = None;
        if offer_in_ok && !request.body.is_empty() {
            ctx.event(Event::Answer {
                call: self.id,
                sdp: request.body.to_vec(),
            });
        }
        if !reinvite && self.phase == Phase::Answered {
            self.phase = Phase::Confirmed;
            if !self.ended {
                ctx.event(Event::Established { call: self.id });
            }
        }
        if self.bye_after_ack {
            self.bye_after_ack = false;
            self.send_bye(ctx);
        }
    }

    /// A new INVITE in this dialog (a re-INVITE).
    #[allow(clippy::too_many_arguments)]
    pub fn on_reinvite(
        &mut self,
        request: &Request,
        info: &RequestInfo,
        key: TxKey,
        base: ResponseBase,
        source: SocketAddr,
        transport: Transport,
        ctx: &mut Ctx<'_>,
    ) {
        let target = info.via.response_target(source, transport);
        self.invites.push(InviteTx {
            key: key.clone(),
            tx: InviteServer::new(transport.is_reliable(), ctx.config.timers),
            target,
        });
        self.invite_keys.push(key.clone());
        let refusal = if self.ended || self.phase == Phase::Ringing {
            Some((Status::of(481), None))
        } else if !self.dialog.check_remote_cseq(info.cseq.seq) {
            Some((
                Status {
                    code: 500,
                    reason: "CSeq Out of Order",
                },
                None,
            ))
        } else if self.pending.is_some() || self.awaiting_ack.is_some() {
            // §14.2: an INVITE before the previous one is answered: 500, Retry-After
            // 0–10 s.
            Some((Status::of(500), Some(ctx.ids.below(11).to_string())))
        } else {
            None
        };
        if let Some((status, retry_after)) = refusal {
            // Answered at once through its own transaction; whatever else is going on
            // in the call is not disturbed.
            let extra: Vec<(&str, &str)> = match &retry_after {
                Some(secs) => vec![("Retry-After", secs.as_str())],
                None => Vec::new(),
            };
            self.respond_on(&key, &base, target, status, &extra, None, ctx);
            return;
        }
        let offer = offer_of(request);
        self.pending = Some(Pending {
            key,
            base,
            target,
            cseq: info.cseq.seq,
            reinvite: true,
            had_offer: offer.is_some(),
        });
        self.dialog.refresh_target(request);
        self.respond_pending(Status::of(100), &[], None, ctx);
        ctx.event(Event::Reoffer {
            call: self.id,
            offer,
        });
    }

    /// An in-dialog request other than INVITE, ACK, CANCEL. Returns the status and
    /// extra headers of the response, which the endpoint sends through a non-INVITE
    /// server transaction.
    pub fn on_request(
        &mut self,
        request: &Request,
        info: &RequestInfo,
        ctx: &mut Ctx<'_>,
    ) -> (Status<'static>, Vec<(&'static str, String)>) {
        if self.ended && request.method != Method::Bye {
            return (Status::of(481), Vec::new());
        }
        if !self.dialog.check_remote_cseq(info.cseq.seq) {
            return (
                Status {
                    code: 500,
                    reason: "CSeq Out of Order",
                },
                Vec::new(),
            );
        }
        match &request.method {
            Method::Bye => {
                // §15.1.2: a BYE while the INVITE is unanswered also ends it with 487.
                if self.pending_is(false) {
                    self.respond_pending(Status::of(487), &[], None, ctx);
                }
                self.terminate_pending_reinvite(ctx);
                self.awaiting_ack = None;
                self.bye_after_ack = false;
                self.end(EndReason::CallerHangup, ctx);
                (Status::of(200), Vec::new())
            }
            Method::Options => (
                Status::of(200),
                vec![("Allow", ALLOW.to_owned()), ("Accept", ACCEPT.to_owned())],
            ),
            Method::Info => {
                if let Some(key) = key_of(request) {
                    ctx.event(Event::Key { call: self.id, key });
                }
                (Status::of(200), Vec::new())
            }
            Method::Notify => self.on_notify(request, ctx),
            Method::Other(_) => (Status::of(501), vec![("Allow", ALLOW.to_owned())]),
            _ => (Status::of(405), vec![("Allow", ALLOW.to_owned())]),
        }
    }

    /// A NOTIFY for kuma's REFER (RFC 3515 §2.4.5): the body is a sipfrag status line.
    fn on_notify(
        &mut self,
        request: &Request,
        ctx: &mut Ctx<'_>,
    ) -> (Status<'static>, Vec<(&'static str, String)>) {
        let event = message::header(&request.headers, &Name::EVENT).unwrap_or("");
        let package = event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case("refer") {
            return (Status::of(489), Vec::new());
        }
        if self.transfer == Transfer::None {
            return (Status::of(481), Vec::new());
        }
        let code = std::str::from_utf8(&request.body)
            .ok()
            .and_then(|frag| frag.trim_start().strip_prefix("SIP/2.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok());
        let terminated =
            message::header(&request.headers, &Name::SUBSCRIPTION_STATE).is_some_and(|s| {
                s.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("terminated")
            });
        match code {
            Some(100..=199) if !terminated => {}
            Some(code @ 200..=299) => self.transfer_done(true, code, ctx),
            Some(code) => self.transfer_done(false, code, ctx),
            None if terminated => self.transfer_done(false, 0, ctx),
            None => {}
        }
        (Status::of(200), Vec::new())
    }

    fn transfer_done(&mut self, ok: bool, code: u16, ctx: &mut Ctx<'_>) {
        if self.transfer == Transfer::None {
            return;
        }
        self.transfer = Transfer::None;
        tracing::debug!(call = %self.id, ok, code, "transfer outcome");
        ctx.event(Event::TransferResult { call: self.id, ok });
    }

    /// A final response to a request kuma sent (matched by branch).
    pub fn on_response(&mut self, branch: &str, response: &Response, ctx: &mut Ctx<'_>) {
        let code = response.code;
        if let Some(uac) = &mut self.uac {
            let method = message::cseq(&response.headers).map(|c| c.method);
            if matches!(method, Some(Method::Invite | Method::Cancel)) {
                let step = uac.on_response(branch, response, &mut self.dialog, ctx);
                self.on_uac_step(step, ctx);
                return;
            }
        }
        if let Some((b, tx, _)) = &mut self.bye
            && b == branch
        {
            tx.on_response(code, ctx.now);
            return;
        }
        if let Some((b, tx, _)) = &mut self.refer
            && b == branch
            && let Some(code) = tx.on_response(code, ctx.now)
        {
            if code >= 300 {
                self.transfer_done(false, code, ctx);
            } else if self.transfer == Transfer::Requested {
                self.transfer = Transfer::Accepted;
            }
        }
    }

    // -- time ---------------------------------------------------------------------

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.ring_deadline;
        if let Some(t) = self.uac.as_ref().and_then(Uac::poll_timeout) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for itx in &self.invites {
            consider(itx.tx.poll_timeout());
        }
        if let Some(w) = &self.awaiting_ack {
            consider(Some(w.next.min(w.give_up)));
        }
        if let Some((_, tx, _)) = &self.bye {
            consider(tx.poll_timeout());
        }
        if let Some((_, tx, _)) = &self.refer {
            consider(tx.poll_timeout());
        }
        next
    }

    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        let transport = self.dialog.transport();
        if let Some(uac) = &mut self.uac {
            let step = uac.handle_timeout(&self.dialog, ctx);
            self.on_uac_step(step, ctx);
        }

        let mut i = 0;
        while i < self.invites.len() {
            let itx = &mut self.invites[i];
            match itx.tx.handle_timeout(now) {
                TxTimeout::Retransmit(bytes) => ctx.send(itx.target, transport, bytes),
                TxTimeout::Terminated { .. } => {
                    self.invites.remove(i);
                    continue;
                }
                TxTimeout::Nothing => {}
            }
            i += 1;
        }

        if let Some(w) = &mut self.awaiting_ack {
            if now >= w.give_up {
                let reinvite = w.reinvite;
                self.awaiting_ack = None;
                tracing::info!(call = %self.id, reinvite, "no ACK for the 200 OK: ending the call");
                if self.phase == Phase::Answered {
                    self.phase = Phase::Confirmed; // §13.3.1.4: confirmed, then ended
                }
                self.bye_after_ack = false;
                self.send_bye(ctx);
                self.end(EndReason::AckTimeout, ctx);
            } else if now >= w.next {
                w.interval = ctx.config.timers.backoff(w.interval);
                w.next = now + w.interval;
                ctx.send(w.target, transport, w.bytes.clone());
            }
        }

        if self.ring_deadline.is_some_and(|d| now >= d) {
            self.ring_deadline = None;
            if self.pending_is(false) {
                self.respond_pending(Status::of(480), &[], None, ctx);
                self.end(EndReason::NotAnswered, ctx);
            }
        }

        if let Some((_, tx, to)) = &mut self.bye {
            match tx.handle_timeout(now) {
                TxTimeout::Retransmit(bytes) => ctx.send(*to, transport, bytes),
                TxTimeout::Terminated { .. } => self.bye = None,
                TxTimeout::Nothing => {}
            }
        }
        if let Some((_, tx, to)) = &mut self.refer {
            match tx.handle_timeout(now) {
                TxTimeout::Retransmit(bytes) => ctx.send(*to, transport, bytes),
                TxTimeout::Terminated { timed_out } => {
                    self.refer = None;
                    if timed_out {
                        self.transfer_done(false, 408, ctx);
                    }
                }
                TxTimeout::Nothing => {}
            }
        }
    }
}

/// The SDP offer of an INVITE: its body, when it is `application/sdp` (checked by
/// the endpoint, which answers other types with 415) and not empty.
fn offer_of(request: &Request) -> Option<Vec<u8>> {
    (!request.body.is_empty()).then(|| request.body.to_vec())
}

/// A key from an INFO body (`application/dtmf-relay`: `Signal=5\r\nDuration=160`;
/// `application/dtmf`: `5`). Some devices send 10 and 11 for `*` and `#`.
pub fn key_of(request: &Request) -> Option<char> {
    let content_type = message::header(&request.headers, &Name::CONTENT_TYPE)?;
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(&request.body).ok()?;
    let signal = match mime.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|line| {
            let (name, value) = line.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    match signal {
        "10" => Some('*'),
        "11" => Some('#'),
        "12" => Some('A'),
        "13" => Some('B'),
        "14" => Some('C'),
        "15" => Some('D'),
        s if s.len() == 1 => {
            let c = s.chars().next()?.to_ascii_uppercase();
            (c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')).then_some(c)
        }
        _ => None,
    }
}
