//! A call kuma places (the user agent client side): the INVITE through the trunk,
//! digest authentication, ringing, the answer, or why there was none.
//!
//! - **INVITE** with kuma's SDP offer, through an [`InviteClient`] transaction
//!   (timer A retransmissions over UDP, timer B when nothing answers at all).
//! - **401 / 407**: the failure is ACKed in its transaction (§17.1.1.3) and the
//!   INVITE sent again with a new branch, the next CSeq and an `Authorization` /
//!   `Proxy-Authorization` answering the challenge ([`crate::sip::digest`]); a
//!   second challenge in a row means the credentials are wrong: the call fails.
//! - **1xx**: the phone rings (180/183 are reported as
//!   [`crate::sip::Event::Ringing`]). A CANCEL is only sent once a provisional
//!   response came (§9.1).
//! - **2xx**: the dialog is made from it (remote tag, Contact, Record-Route), the
//!   ACK is sent as a transaction of its own (§13.2.2.4) and sent again for every
//!   retransmitted 2xx while the INVITE transaction stays Accepted (RFC 6026).
//! - **3xx–6xx**: ACKed in the transaction; the call failed with that code.
//! - **Ring timeout**: CANCEL (held until a provisional response, if none came yet);
//!   the 487 that follows is ACKed; a 2xx that crossed the CANCEL is ACKed and
//!   ended with BYE by the call.
//!
//! The call ([`crate::sip::call`]) owns this while it is dialling; once answered, it
//! is an ordinary dialog (BYE either way, INFO keys, re-INVITE).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ezk_sip_types::Name;

use crate::sip::call::Ctx;
use crate::sip::dialog::Dialog;
use crate::sip::digest::Challenge;
use crate::sip::message::{self, Body, Method, Response};
use crate::sip::transaction::{InviteClient, InviteClientVerdict, NonInviteClient, TxTimeout};

/// The account kuma uses on the trunk.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, password: <hidden> }}",
            self.user
        )
    }
}

/// A call to place. Its `Debug` leaves out the target: it holds a phone number.
#[derive(Clone)]
pub struct Dial {
    /// The Request-URI: `sip:NUMBER@TRUNK`. Privacy sensitive (a phone number).
    pub target: String,
    /// kuma's From URI, e.g. `sip:2001@trunk.example` (the station's number).
    pub from: String,
    /// Where the INVITE goes: the trunk, or the outbound proxy.
    pub next_hop: SocketAddr,
    /// Every request of the call goes through this proxy.
    pub proxy: Option<SocketAddr>,
    pub credentials: Option<Credentials>,
    /// kuma's SDP offer.
    pub offer: String,
    /// How long the phone may ring before kuma gives up with CANCEL.
    pub ring_timeout: Duration,
    /// kuma's address for Via and Contact.
    pub local: SocketAddr,
}

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dial")
            .field("next_hop", &self.next_hop)
            .field("proxy", &self.proxy)
            .field("credentials", &self.credentials)
            .field("ring_timeout", &self.ring_timeout)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// What happened, for the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UacStep {
    Nothing,
    /// 180 or 183.
    Ringing,
    /// The first 2xx, with its SDP answer.
    Answered(Vec<u8>),
    /// A final failure (`Some(code)`), or no response at all (`None`, timer B).
    Failed(Option<u16>),
    /// The ring timeout passed: CANCEL is sent (or will be once it may be).
    RingTimeout,
}

#[derive(Debug)]
struct ClientInvite {
    branch: String,
    cseq: u32,
    tx: InviteClient,
    to: SocketAddr,
    /// The ACK to this transaction's failure, sent again for its retransmissions.
    ack: Option<Vec<u8>>,
}

/// The dialling side of a call (see the module doc).
#[derive(Debug)]
pub(crate) struct Uac {
    offer: String,
    credentials: Option<Credentials>,
    invites: Vec<ClientInvite>,
    auth_tries: u32,
    provisional: bool,
    cancel_wanted: bool,
    cancel: Option<(String, NonInviteClient, SocketAddr)>,
    ring_deadline: Option<Instant>,
    answered: bool,
    failed: bool,
    /// The ACK to the 2xx and where it went, for 2xx retransmissions.
    ack_2xx: Option<(Vec<u8>, SocketAddr)>,
}

impl Uac {
    /// Sends the first INVITE.
    pub fn start(dial: &Dial, dialog: &mut Dialog, ctx: &mut Ctx<'_>) -> Uac {
        let mut uac = Uac {
            offer: dial.offer.clone(),
            credentials: dial.credentials.clone(),
            invites: Vec::new(),
            auth_tries: 0,
            provisional: false,
            cancel_wanted: false,
            cancel: None,
            ring_deadline: Some(ctx.now + dial.ring_timeout),
            answered: false,
            failed: false,
            ack_2xx: None,
        };
        uac.send_invite(dialog, None, ctx);
        uac
    }

    fn send_invite(&mut self, dialog: &mut Dialog, auth: Option<(&str, &str)>, ctx: &mut Ctx<'_>) {
        let branch = ctx.ids.branch();
        let mut extra: Vec<(&str, &str)> = vec![("Allow", crate::sip::call::ALLOW)];
        if let Some(header) = auth {
            extra.push(header);
        }
        let body = Body {
            content_type: "application/sdp",
            bytes: self.offer.as_bytes(),
        };
        let (bytes, to) = dialog.request(
            &Method::Invite,
            &branch,
            &extra,
            Some(body),
            &ctx.config.user_agent,
        );
        let reliable = dialog.transport().is_reliable();
        let tx = InviteClient::new(bytes.clone(), reliable, ctx.config.timers, ctx.now);
        ctx.send(to, dialog.transport(), bytes);
        ctx.client_started(&branch, to, dialog.transport());
        self.provisional = false;
        self.invites.push(ClientInvite {
            branch,
            cseq: dialog.local_cseq(),
            tx,
            to,
            ack: None,
        });
    }

    pub fn is_done(&self) -> bool {
        self.invites.is_empty() && self.cancel.is_none()
    }

    /// Gives up ringing: CANCEL now if a provisional response came, else as soon
    /// as one does (or timer B ends the INVITE).
    pub fn cancel(&mut self, dialog: &Dialog, ctx: &mut Ctx<'_>) {
        self.ring_deadline = None;
        if self.answered || self.failed || self.cancel_wanted {
            return;
        }
        self.cancel_wanted = true;
        self.send_cancel_if_allowed(dialog, ctx);
    }

    fn send_cancel_if_allowed(&mut self, dialog: &Dialog, ctx: &mut Ctx<'_>) {
        if !self.cancel_wanted || !self.provisional || self.cancel.is_some() {
            return;
        }
        let Some(current) = self.invites.last() else {
            return;
        };
        if current.tx.state() != crate::sip::transaction::InviteClientState::Proceeding {
            return;
        }
        let (bytes, to) = dialog.ack_or_cancel(
            &Method::Cancel,
            current.cseq,
            &current.branch,
            None,
            &ctx.config.user_agent,
        );
        let tx = NonInviteClient::new(
            bytes.clone(),
            dialog.transport().is_reliable(),
            ctx.config.timers,
            ctx.now,
        );
        // Same branch, same destination as the INVITE (§9.1): the endpoint's entry
        // for the INVITE also admits the CANCEL's responses, from there only.
        ctx.send(to, dialog.transport(), bytes);
        self.cancel = Some((current.branch.clone(), tx, to));
    }

    /// A response to one of this call's INVITEs or its CANCEL (same branch; told
    /// apart by the CSeq method).
    pub fn on_response(
        &mut self,
        branch: &str,
        response: &Response,
        dialog: &mut Dialog,
        ctx: &mut Ctx<'_>,
    ) -> UacStep {
        let method = message::cseq(&response.headers).map(|c| c.method);
        if method == Some(Method::Cancel) {
            if let Some((b, tx, _)) = &mut self.cancel
                && b == branch
            {
                tx.on_response(response.code, ctx.now);
            }
            return UacStep::Nothing;
        }
        let Some(i) = self.invites.iter().position(|t| t.branch == branch) else {
            return UacStep::Nothing;
        };
        let code = response.code;
        let verdict = self.invites[i].tx.on_response(code, ctx.now);
        match verdict {
            InviteClientVerdict::Absorb => return UacStep::Nothing,
            InviteClientVerdict::ResendAck => {
                if let Some(ack) = &self.invites[i].ack {
                    ctx.send(self.invites[i].to, dialog.transport(), ack.clone());
                }
                return UacStep::Nothing;
            }
            InviteClientVerdict::Pass => {}
        }
        match code {
            100..=199 => {
                let current = i + 1 == self.invites.len();
                if current && !self.answered && !self.failed {
                    self.provisional = true;
                    self.send_cancel_if_allowed(dialog, ctx);
                    if matches!(code, 180 | 183) && !self.cancel_wanted {
                        return UacStep::Ringing;
                    }
                }
                UacStep::Nothing
            }
            200..=299 => {
                if self.answered {
                    let tag = message::header(&response.headers, &Name::TO)
                        .and_then(|to| message::header_param(to, "tag"));
                    if tag == Some(dialog.remote_tag.as_str()) {
                        // A retransmitted 2xx: its ACK was lost.
                        if let Some((ack, to)) = &self.ack_2xx {
                            ctx.send(*to, dialog.transport(), ack.clone());
                        }
                    } else {
                        // A second phone answered a forked INVITE: kuma keeps the
                        // first; that one gives up on its 2xx after 64·T1.
                        tracing::info!("a second answer to one call (forked), ignored");
                    }
                    return UacStep::Nothing;
                }
                self.answered = true;
                self.ring_deadline = None;
                dialog.confirm(&response.headers);
                let ack_branch = ctx.ids.branch();
                let (ack, to) = dialog.ack_or_cancel(
                    &Method::Ack,
                    self.invites[i].cseq,
                    &ack_branch,
                    None,
                    &ctx.config.user_agent,
                );
                ctx.send(to, dialog.transport(), ack.clone());
                self.ack_2xx = Some((ack, to));
                UacStep::Answered(response.body.to_vec())
            }
            _ => {
                let to_value = message::header(&response.headers, &Name::TO).unwrap_or("");
                let invite = &mut self.invites[i];
                let (ack, _) = dialog.ack_or_cancel(
                    &Method::Ack,
                    invite.cseq,
                    &invite.branch,
                    Some(to_value),
                    &ctx.config.user_agent,
                );
                ctx.send(invite.to, dialog.transport(), ack.clone());
                invite.ack = Some(ack);
                if i + 1 != self.invites.len() || self.answered || self.failed {
                    return UacStep::Nothing;
                }
                if matches!(code, 401 | 407)
                    && !self.cancel_wanted
                    && let Some(auth) = self.authorization(code, response, dialog, ctx)
                {
                    let name = if code == 401 {
                        "Authorization"
                    } else {
                        "Proxy-Authorization"
                    };
                    self.auth_tries += 1;
                    self.send_invite(dialog, Some((name, &auth)), ctx);
                    return UacStep::Nothing;
                }
                self.failed = true;
                self.ring_deadline = None;
                UacStep::Failed(Some(code))
            }
        }
    }

    /// The answer to a 401/407 challenge, if kuma has credentials and has not
    /// answered one already (a second challenge means they are wrong).
    fn authorization(
        &self,
        code: u16,
        response: &Response,
        dialog: &Dialog,
        ctx: &mut Ctx<'_>,
    ) -> Option<String> {
        let credentials = self.credentials.as_ref()?;
        if self.auth_tries >= 1 {
            tracing::warn!(
                code,
                "the trunk refused kuma's credentials (challenged again)"
            );
            return None;
        }
        let name = if code == 401 {
            Name::WWW_AUTHENTICATE
        } else {
            Name::PROXY_AUTHENTICATE
        };
        let mut problem = None;
        for value in message::header_all(&response.headers, &name) {
            match Challenge::parse(value) {
                Ok(challenge) => {
                    let cnonce = ctx.ids.tag();
                    return Some(challenge.answer(
                        &credentials.user,
                        &credentials.password,
                        "INVITE",
                        dialog.request_uri(),
                        &cnonce,
                        1,
                    ));
                }
                Err(e) => problem = Some(e),
            }
        }
        tracing::warn!(code, problem = ?problem, "cannot answer the trunk's challenge");
        None
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.ring_deadline;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for t in &self.invites {
            consider(t.tx.poll_timeout());
        }
        if let Some((_, tx, _)) = &self.cancel {
            consider(tx.poll_timeout());
        }
        next
    }

    pub fn handle_timeout(&mut self, dialog: &Dialog, ctx: &mut Ctx<'_>) -> UacStep {
        let now = ctx.now;
        let transport = dialog.transport();
        let mut step = UacStep::Nothing;
        let last = self.invites.len().saturating_sub(1);
        let mut i = 0;
        while i < self.invites.len() {
            let t = &mut self.invites[i];
            match t.tx.handle_timeout(now) {
                TxTimeout::Retransmit(bytes) => ctx.send(t.to, transport, bytes),
                TxTimeout::Terminated { timed_out } => {
                    if timed_out && i == last && !self.answered && !self.failed {
                        self.failed = true;
                        self.ring_deadline = None;
                        step = UacStep::Failed(None);
                    }
                    self.invites.remove(i);
                    continue;
                }
                TxTimeout::Nothing => {}
            }
            i += 1;
        }
        if let Some((_, tx, to)) = &mut self.cancel {
            match tx.handle_timeout(now) {
                TxTimeout::Retransmit(bytes) => ctx.send(*to, transport, bytes),
                TxTimeout::Terminated { .. } => self.cancel = None,
                TxTimeout::Nothing => {}
            }
        }
        if self.ring_deadline.is_some_and(|d| now >= d) {
            self.cancel(dialog, ctx);
            if step == UacStep::Nothing {
                step = UacStep::RingTimeout;
            }
        }
        step
    }
}
