//! SIP transactions (RFC 3261 §17, with RFC 6026 for the 2xx): the layer that makes
//! a request and its final response arrive exactly once over a lossy transport.
//!
//! - [`InviteServer`]: a caller's INVITE. kuma answers 100 Trying at once (§17.2.1,
//!   so the caller stops retransmitting); a retransmitted INVITE gets the latest
//!   response again; a final non-2xx is retransmitted over UDP by timer G (T1
//!   doubling, capped at T2) until the ACK, and given up after timer H (64·T1); the
//!   ACK starts timer I (T4) that soaks up ACK retransmissions. A 2xx moves it to
//!   RFC 6026's *Accepted* state for timer L (64·T1), absorbing INVITE
//!   retransmissions: the 2xx itself is retransmitted by the call ([`crate::sip::call`],
//!   §13.3.1.4), because the ACK to a 2xx is its own transaction, end to end.
//! - [`NonInviteServer`]: BYE, CANCEL, OPTIONS, INFO, NOTIFY… kuma answers at once,
//!   and keeps the response for timer J (64·T1 over UDP) to answer retransmissions.
//! - [`NonInviteClient`]: a BYE or REFER kuma sends, retransmitted by timer E (T1
//!   doubling to T2; every T2 once a provisional response came) until a final
//!   response, given up after timer F (64·T1); timer K (T4) then absorbs response
//!   retransmissions.
//!
//! Each is a plain state machine: inputs and `now` in, what to (re)send out. They
//! hold the bytes to retransmit; the endpoint sends them. Matching (§17.2.3) is by
//! [`TxKey`]: the top Via's branch and sent-by, and the method, with ACK and CANCEL
//! finding their INVITE.

use std::time::{Duration, Instant};

use crate::sip::message::{Method, RequestInfo};

/// The SIP timer values (RFC 3261 §17.1.1.1, Table 4), configurable for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate, 500 ms.
    pub t1: Duration,
    /// Longest interval between retransmissions of non-INVITE requests and INVITE
    /// responses, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
    /// How long a call may ring before kuma gives up with 480 (the flow should answer
    /// or reject well before; this only keeps a stuck call from living forever).
    pub ring_timeout: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            ring_timeout: Duration::from_secs(180),
        }
    }
}

impl Timers {
    /// 64·T1: timers B, F, H, J, L and the wait for the ACK to a 2xx (32 s).
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }

    /// The next retransmission interval: doubled, capped at T2 (§17.2.1, §13.3.1.4).
    pub fn backoff(&self, interval: Duration) -> Duration {
        (interval * 2).min(self.t2)
    }
}

/// What matches a request to its server transaction (RFC 3261 §17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey {
    branch: String,
    sent_by: String,
    method: Method,
}

impl TxKey {
    /// The key of the server transaction a request belongs to. ACK (for a non-2xx)
    /// belongs to its INVITE. A branch without the magic cookie comes from an RFC 2543
    /// client: its key is made of what stays the same across its retransmissions
    /// (Call-ID, From tag, CSeq number), which is close to §17.2.3's fallback and
    /// never crashes.
    pub fn server(info: &RequestInfo, method: &Method) -> TxKey {
        let method = match method {
            Method::Ack => Method::Invite,
            other => other.clone(),
        };
        let branch = if info.via.is_rfc3261() {
            info.via.branch.clone().unwrap_or_default()
        } else {
            format!(
                "rfc2543;{};{};{};{}",
                info.call_id,
                info.from_tag.as_deref().unwrap_or(""),
                info.cseq.seq,
                info.via.branch.as_deref().unwrap_or("")
            )
        };
        TxKey {
            branch,
            sent_by: info.via.sent_by(),
            method,
        }
    }

    /// The INVITE transaction a CANCEL with this key cancels (§9.2: same branch).
    pub fn invite_of(&self) -> TxKey {
        TxKey {
            method: Method::Invite,
            ..self.clone()
        }
    }
}

/// What a transaction asks for when a timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxTimeout {
    /// Nothing due yet.
    Nothing,
    /// Send these bytes again.
    Retransmit(Vec<u8>),
    /// The transaction is over; `timed_out` when it ended because the other side never
    /// answered (timer H: no ACK; timer F: no response).
    Terminated { timed_out: bool },
}

/// States of the INVITE server transaction (RFC 3261 Figure 7, RFC 6026 Figure 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// The INVITE server transaction.
#[derive(Debug, Clone)]
pub struct InviteServer {
    state: InviteState,
    reliable: bool,
    timers: Timers,
    last: Option<Vec<u8>>,
    timer_g: Option<(Instant, Duration)>,
    /// Timer H (Completed), I (Confirmed) or L (Accepted): the end of the state.
    end: Option<Instant>,
}

impl InviteServer {
    pub fn new(reliable: bool, timers: Timers) -> Self {
        InviteServer {
            state: InviteState::Proceeding,
            reliable,
            timers,
            last: None,
            timer_g: None,
            end: None,
        }
    }

    pub fn state(&self) -> InviteState {
        self.state
    }

    /// Whether a final response was sent.
    pub fn is_final(&self) -> bool {
        self.state != InviteState::Proceeding
    }

    /// The TU sends a response through the transaction. Returns false (and sends
    /// nothing) when the state does not allow it: a response after the final one.
    pub fn respond(&mut self, code: u16, bytes: &[u8], now: Instant) -> bool {
        if self.state != InviteState::Proceeding {
            return false;
        }
        match code {
            100..=199 => self.last = Some(bytes.to_vec()),
            200..=299 => {
                self.state = InviteState::Accepted;
                self.last = None;
                self.end = Some(now + self.timers.t64());
            }
            _ => {
                self.state = InviteState::Completed;
                self.last = Some(bytes.to_vec());
                if !self.reliable {
                    self.timer_g = Some((now + self.timers.t1, self.timers.t1));
                }
                self.end = Some(now + self.timers.t64());
            }
        }
        true
    }

    /// A retransmission of the INVITE arrived: the response to send again, if any
    /// (none in Accepted, where the call retransmits the 2xx itself).
    pub fn on_retransmission(&self) -> Option<&[u8]> {
        match self.state {
            InviteState::Proceeding | InviteState::Completed => self.last.as_deref(),
            _ => None,
        }
    }

    /// The ACK to a non-2xx arrived (same branch). Returns true when the transaction
    /// absorbed it.
    pub fn on_ack(&mut self, now: Instant) -> bool {
        match self.state {
            InviteState::Completed => {
                self.state = InviteState::Confirmed;
                self.timer_g = None;
                self.end = Some(if self.reliable {
                    now
                } else {
                    now + self.timers.t4
                });
                true
            }
            InviteState::Confirmed => true,
            _ => false,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timer_g, self.end) {
            (Some((g, _)), Some(end)) => Some(g.min(end)),
            (Some((g, _)), None) => Some(g),
            (None, end) => end,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TxTimeout {
        if self.end.is_some_and(|end| now >= end) {
            let timed_out = self.state == InviteState::Completed;
            self.state = InviteState::Terminated;
            self.timer_g = None;
            self.end = None;
            self.last = None;
            return TxTimeout::Terminated { timed_out };
        }
        if let Some((at, interval)) = self.timer_g
            && now >= at
        {
            let next = self.timers.backoff(interval);
            self.timer_g = Some((now + next, next));
            if let Some(last) = &self.last {
                return TxTimeout::Retransmit(last.clone());
            }
        }
        TxTimeout::Nothing
    }
}

/// States of the non-INVITE server transaction (RFC 3261 Figure 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonInviteState {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// The non-INVITE server transaction.
#[derive(Debug, Clone)]
pub struct NonInviteServer {
    state: NonInviteState,
    reliable: bool,
    timers: Timers,
    last: Option<Vec<u8>>,
    timer_j: Option<Instant>,
}

impl NonInviteServer {
    pub fn new(reliable: bool, timers: Timers) -> Self {
        NonInviteServer {
            state: NonInviteState::Trying,
            reliable,
            timers,
            last: None,
            timer_j: None,
        }
    }

    pub fn state(&self) -> NonInviteState {
        self.state
    }

    /// The TU answers. A final response moves to Completed, and straight to
    /// Terminated over a reliable transport (timer J is zero there).
    pub fn respond(&mut self, code: u16, bytes: &[u8], now: Instant) -> bool {
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding => {
                if code < 200 {
                    self.state = NonInviteState::Proceeding;
                    self.last = Some(bytes.to_vec());
                } else if self.reliable {
                    self.state = NonInviteState::Terminated;
                    self.last = None;
                } else {
                    self.state = NonInviteState::Completed;
                    self.last = Some(bytes.to_vec());
                    self.timer_j = Some(now + self.timers.t64());
                }
                true
            }
            _ => false,
        }
    }

    /// A retransmission of the request arrived: what to send again (nothing while
    /// Trying: the TU has not answered yet).
    pub fn on_retransmission(&self) -> Option<&[u8]> {
        match self.state {
            NonInviteState::Proceeding | NonInviteState::Completed => self.last.as_deref(),
            _ => None,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TxTimeout {
        if self.timer_j.is_some_and(|j| now >= j) {
            self.state = NonInviteState::Terminated;
            self.timer_j = None;
            self.last = None;
            return TxTimeout::Terminated { timed_out: false };
        }
        TxTimeout::Nothing
    }

    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }
}

/// The non-INVITE client transaction (RFC 3261 Figure 6).
#[derive(Debug, Clone)]
pub struct NonInviteClient {
    state: NonInviteState,
    reliable: bool,
    timers: Timers,
    request: Vec<u8>,
    timer_e: Option<(Instant, Duration)>,
    /// Timer F (Trying, Proceeding) or K (Completed).
    end: Option<Instant>,
}

impl NonInviteClient {
    /// Starts the transaction; the caller sends `request` once now.
    pub fn new(request: Vec<u8>, reliable: bool, timers: Timers, now: Instant) -> Self {
        NonInviteClient {
            state: NonInviteState::Trying,
            reliable,
            timers,
            timer_e: (!reliable).then(|| (now + timers.t1, timers.t1)),
            end: Some(now + timers.t64()),
            request,
        }
    }

    pub fn request(&self) -> &[u8] {
        &self.request
    }

    pub fn state(&self) -> NonInviteState {
        self.state
    }

    /// A response arrived. Returns its code when it is the final response, passed to
    /// the TU once; retransmissions of it are absorbed.
    pub fn on_response(&mut self, code: u16, now: Instant) -> Option<u16> {
        match self.state {
            NonInviteState::Trying | NonInviteState::Proceeding if code < 200 => {
                self.state = NonInviteState::Proceeding;
                None
            }
            NonInviteState::Trying | NonInviteState::Proceeding => {
                self.state = NonInviteState::Completed;
                self.timer_e = None;
                self.end = Some(if self.reliable {
                    now
                } else {
                    now + self.timers.t4
                });
                Some(code)
            }
            _ => None,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timer_e, self.end) {
            (Some((e, _)), Some(end)) => Some(e.min(end)),
            (Some((e, _)), None) => Some(e),
            (None, end) => end,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TxTimeout {
        if self.end.is_some_and(|end| now >= end) {
            let timed_out = self.state != NonInviteState::Completed;
            self.state = NonInviteState::Terminated;
            self.timer_e = None;
            self.end = None;
            return TxTimeout::Terminated { timed_out };
        }
        if let Some((at, interval)) = self.timer_e
            && now >= at
        {
            // §17.1.2.2: doubling up to T2 while Trying; every T2 once Proceeding.
            let next = if self.state == NonInviteState::Proceeding {
                self.timers.t2
            } else {
                self.timers.backoff(interval)
            };
            self.timer_e = Some((now + next, next));
            return TxTimeout::Retransmit(self.request.clone());
        }
        TxTimeout::Nothing
    }

    pub fn is_terminated(&self) -> bool {
        self.state == NonInviteState::Terminated
    }
}

/// States of the INVITE client transaction (RFC 3261 Figure 5, RFC 6026 Figure 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteClientState {
    Calling,
    Proceeding,
    /// A final failure came: its ACK is sent, retransmissions of it are answered
    /// with the ACK again until timer D.
    Completed,
    /// A 2xx came (RFC 6026): 2xx retransmissions go to the call until timer M.
    Accepted,
    Terminated,
}

/// What the INVITE client transaction makes of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteClientVerdict {
    /// For the call: a provisional, the first final failure, or any 2xx (the call
    /// ACKs every 2xx itself, §13.2.2.4).
    Pass,
    /// A retransmitted failure: send the ACK again.
    ResendAck,
    /// Nothing to do.
    Absorb,
}

/// The INVITE client transaction: kuma's INVITE to a trunk, retransmitted by timer
/// A (T1 doubling, UDP only) until a response, given up after timer B (64·T1).
#[derive(Debug, Clone)]
pub struct InviteClient {
    state: InviteClientState,
    reliable: bool,
    timers: Timers,
    request: Vec<u8>,
    timer_a: Option<(Instant, Duration)>,
    /// Timer B (Calling), D (Completed) or M (Accepted).
    end: Option<Instant>,
}

impl InviteClient {
    /// Starts the transaction; the caller sends `request` once now.
    pub fn new(request: Vec<u8>, reliable: bool, timers: Timers, now: Instant) -> Self {
        InviteClient {
            state: InviteClientState::Calling,
            reliable,
            timers,
            timer_a: (!reliable).then(|| (now + timers.t1, timers.t1)),
            end: Some(now + timers.t64()),
            request,
        }
    }

    pub fn state(&self) -> InviteClientState {
        self.state
    }

    pub fn is_terminated(&self) -> bool {
        self.state == InviteClientState::Terminated
    }

    pub fn on_response(&mut self, code: u16, now: Instant) -> InviteClientVerdict {
        use InviteClientState as S;
        match (self.state, code) {
            (S::Calling | S::Proceeding, 100..=199) => {
                self.state = S::Proceeding;
                self.timer_a = None;
                // §17.1.1.2: timer B only runs in Calling; a ringing phone may ring
                // as long as the call allows (its own ring timeout).
                self.end = None;
                InviteClientVerdict::Pass
            }
            (S::Calling | S::Proceeding, 200..=299) => {
                self.state = S::Accepted;
                self.timer_a = None;
                self.end = Some(now + self.timers.t64());
                InviteClientVerdict::Pass
            }
            (S::Calling | S::Proceeding, _) => {
                self.state = S::Completed;
                self.timer_a = None;
                // Timer D: at least 32 s over UDP, zero over TCP.
                self.end = Some(if self.reliable {
                    now
                } else {
                    now + self.timers.t64()
                });
                InviteClientVerdict::Pass
            }
            (S::Accepted, 200..=299) => InviteClientVerdict::Pass,
            (S::Completed, 300..) => InviteClientVerdict::ResendAck,
            _ => InviteClientVerdict::Absorb,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timer_a, self.end) {
            (Some((a, _)), Some(end)) => Some(a.min(end)),
            (Some((a, _)), None) => Some(a),
            (None, end) => end,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> TxTimeout {
        if self.end.is_some_and(|end| now >= end) {
            let timed_out = self.state == InviteClientState::Calling;
            self.state = InviteClientState::Terminated;
            self.timer_a = None;
            self.end = None;
            return TxTimeout::Terminated { timed_out };
        }
        if let Some((at, interval)) = self.timer_a
            && now >= at
        {
            // Timer A doubles without the T2 cap (§17.1.1.2).
            let next = interval * 2;
            self.timer_a = Some((now + next, next));
            return TxTimeout::Retransmit(self.request.clone());
        }
        TxTimeout::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs a transaction's timers to the end, returning when it retransmitted
    /// (ms after `t0`) and how it ended.
    fn run<F, P>(t0: Instant, mut poll: P, mut fire: F) -> (Vec<u64>, TxTimeout)
    where
        P: FnMut() -> Option<Instant>,
        F: FnMut(Instant) -> TxTimeout,
    {
        let mut sent = Vec::new();
        while let Some(at) = poll() {
            match fire(at) {
                TxTimeout::Retransmit(_) => sent.push((at - t0).as_millis() as u64),
                TxTimeout::Nothing => {}
                end @ TxTimeout::Terminated { .. } => return (sent, end),
            }
        }
        (sent, TxTimeout::Nothing)
    }

    #[test]
    fn invite_non_2xx_is_retransmitted_by_timer_g_until_timer_h() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(false, Timers::default());
        assert!(tx.respond(100, b"100", t0));
        assert_eq!(tx.on_retransmission(), Some(&b"100"[..]));
        assert!(tx.respond(486, b"486", t0));
        assert!(!tx.respond(200, b"200", t0), "no second final response");
        assert_eq!(tx.on_retransmission(), Some(&b"486"[..]));
        let cell = std::cell::RefCell::new(tx);
        let (sent, end) = run(
            t0,
            || cell.borrow().poll_timeout(),
            |at| cell.borrow_mut().handle_timeout(at),
        );
        // G: 500 ms, then doubling to T2 = 4 s: at 0.5, 1.5, 3.5, 7.5, 11.5, … < 32 s.
        assert_eq!(
            sent,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(end, TxTimeout::Terminated { timed_out: true });
    }

    #[test]
    fn ack_stops_timer_g_and_timer_i_soaks_up_ack_retransmissions() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(false, Timers::default());
        tx.respond(487, b"487", t0);
        assert_eq!(
            tx.handle_timeout(t0 + ms(500)),
            TxTimeout::Retransmit(b"487".to_vec())
        );
        assert!(tx.on_ack(t0 + ms(600)));
        assert_eq!(tx.state(), InviteState::Confirmed);
        assert!(tx.on_ack(t0 + ms(700)), "a retransmitted ACK is absorbed");
        assert_eq!(tx.on_retransmission(), None);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5600)));
        assert_eq!(
            tx.handle_timeout(t0 + ms(5600)),
            TxTimeout::Terminated { timed_out: false }
        );
    }

    #[test]
    fn invite_over_tcp_has_no_timer_g_and_timer_i_is_zero() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(true, Timers::default());
        tx.respond(603, b"603", t0);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.on_ack(t0 + ms(10));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(10)));
    }

    #[test]
    fn a_2xx_moves_to_accepted_for_timer_l_and_absorbs_invites() {
        let t0 = Instant::now();
        let mut tx = InviteServer::new(false, Timers::default());
        tx.respond(100, b"100", t0);
        tx.respond(200, b"200", t0);
        assert_eq!(tx.state(), InviteState::Accepted);
        assert_eq!(tx.on_retransmission(), None);
        assert!(!tx.on_ack(t0), "the ACK to a 2xx goes to the dialog");
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(tx.handle_timeout(t0 + ms(31_999)), TxTimeout::Nothing);
        assert_eq!(
            tx.handle_timeout(t0 + ms(32_000)),
            TxTimeout::Terminated { timed_out: false }
        );
    }

    #[test]
    fn non_invite_server_keeps_its_response_for_timer_j() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::new(false, Timers::default());
        assert_eq!(tx.on_retransmission(), None);
        tx.respond(200, b"200", t0);
        assert_eq!(tx.on_retransmission(), Some(&b"200"[..]));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(
            tx.handle_timeout(t0 + ms(32_000)),
            TxTimeout::Terminated { timed_out: false }
        );
        let mut tcp = NonInviteServer::new(true, Timers::default());
        tcp.respond(200, b"200", t0);
        assert!(tcp.is_terminated());
    }

    #[test]
    fn non_invite_client_timer_e_doubles_to_t2_then_timer_f() {
        let t0 = Instant::now();
        let tx = NonInviteClient::new(b"BYE".to_vec(), false, Timers::default(), t0);
        let cell = std::cell::RefCell::new(tx);
        let (sent, end) = run(
            t0,
            || cell.borrow().poll_timeout(),
            |at| cell.borrow_mut().handle_timeout(at),
        );
        assert_eq!(
            sent,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(end, TxTimeout::Terminated { timed_out: true });
    }

    #[test]
    fn non_invite_client_proceeding_retransmits_every_t2_and_completes() {
        let t0 = Instant::now();
        let mut tx = NonInviteClient::new(b"REFER".to_vec(), false, Timers::default(), t0);
        assert_eq!(tx.on_response(100, t0 + ms(100)), None);
        assert_eq!(
            tx.handle_timeout(t0 + ms(500)),
            TxTimeout::Retransmit(b"REFER".to_vec())
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(4500)));
        assert_eq!(tx.on_response(202, t0 + ms(600)), Some(202));
        assert_eq!(
            tx.on_response(202, t0 + ms(700)),
            None,
            "retransmission absorbed"
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5600)), "timer K = T4");
        assert_eq!(
            tx.handle_timeout(t0 + ms(5600)),
            TxTimeout::Terminated { timed_out: false }
        );
    }

    #[test]
    fn shorter_timers_for_tests_scale_everything() {
        let timers = Timers {
            t1: ms(10),
            t2: ms(80),
            t4: ms(100),
            ring_timeout: ms(1000),
        };
        assert_eq!(timers.t64(), ms(640));
        assert_eq!(timers.backoff(ms(40)), ms(80));
        assert_eq!(timers.backoff(ms(80)), ms(80));
    }
    #[test]
    fn invite_client_timer_a_doubles_until_timer_b() {
        let t0 = Instant::now();
        let tx = InviteClient::new(b"INVITE".to_vec(), false, Timers::default(), t0);
        let cell = std::cell::RefCell::new(tx);
        let (sent, end) = run(
            t0,
            || cell.borrow().poll_timeout(),
            |at| cell.borrow_mut().handle_timeout(at),
        );
        assert_eq!(sent, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(end, TxTimeout::Terminated { timed_out: true });
    }

    #[test]
    fn invite_client_provisional_stops_timers_failure_is_acked_again() {
        let t0 = Instant::now();
        let mut tx = InviteClient::new(b"INVITE".to_vec(), false, Timers::default(), t0);
        assert_eq!(tx.on_response(180, t0 + ms(100)), InviteClientVerdict::Pass);
        assert_eq!(tx.poll_timeout(), None, "a ringing phone rings on");
        assert_eq!(tx.on_response(486, t0 + ms(200)), InviteClientVerdict::Pass);
        assert_eq!(tx.state(), InviteClientState::Completed);
        assert_eq!(
            tx.on_response(486, t0 + ms(300)),
            InviteClientVerdict::ResendAck
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_200)), "timer D");
        let mut ok = InviteClient::new(b"INVITE".to_vec(), true, Timers::default(), t0);
        assert_eq!(
            ok.poll_timeout(),
            Some(t0 + ms(32_000)),
            "no timer A on TCP"
        );
        assert_eq!(ok.on_response(200, t0), InviteClientVerdict::Pass);
        assert_eq!(ok.on_response(200, t0), InviteClientVerdict::Pass);
        assert_eq!(
            ok.handle_timeout(t0 + ms(32_000)),
            TxTimeout::Terminated { timed_out: false }
        );
    }
}
