//! One phone call's media and the shell around its conversation: the RTP
//! socket, the prompt pacer, the receiver (RFC 4733 keys, in-band keys, the
//! caller's voice for record nodes) and the recording's file. What the call
//! does (the engine, its clock, the store writes and their order, subscribing,
//! where recordings go) is `crate::conversation::runtime::Conversation`,
//! sans-IO; this shell only moves bytes, is turned at its earliest deadline by
//! a media thread (`super::media_loop`), and performs the conversation's
//! outputs in order. [`converse`] is the answered part, shared with the calls
//! kuma places (`super::dialer`); [`drive`], its media, also drives the studio
//! line's calls (`super::studio_line`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::Utc;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::Shared;
use super::http::names;
use super::isolation::CallGuard;
use super::media_guard;
use super::media_loop::{self, MediaLoops};
use super::rtp_socket;
use super::sip_shell::Command;
use super::studio_line::{self, Talker};
use super::uring_send::Sender;
use crate::audio::dtmf::keys::{CallKey, CallKeys};
use crate::audio::g711::{decode_alaw, decode_ulaw};
use crate::audio::recording::{EndSettings, Recorder, Verdict, WavRecorder};
use crate::audio::{Prompt, PromptSet};
use crate::campaign::Campaign;
use crate::conversation::runtime::{self, Conversation, Input, Output};
use crate::conversation::{subscription, writes};
use crate::rtp::pacer::{Output as PacerOutput, Pacer, PacerEvent, Paused, PromptId, StreamIds};
use crate::rtp::session::{Event as RtpEvent, RtpSession};
use crate::rtp::{Codec, FRAME_MS};
use crate::sip::sdp::{self, LocalMedia, Media};
use crate::sip::{CallId, EndReason, Event as SipEvent};
use crate::store::WriteOp;
use crate::store::spool;

/// What the SIP side knows of a new call.
pub struct CallStart {
    pub call: CallId,
    /// The caller's number: turned into a pseudonym at once, never stored or logged.
    pub caller: String,
    pub offer: Option<Vec<u8>>,
    pub source: SocketAddr,
    pub campaign: Arc<Campaign>,
    pub prompts: Arc<PromptSet>,
}

/// Runs the call to its end, then tells the SIP side it is gone.
pub async fn run(
    shared: Arc<Shared>,
    start: CallStart,
    events: mpsc::UnboundedReceiver<SipEvent>,
    cmd: mpsc::UnboundedSender<Command>,
) {
    let id = start.call;
    let span = tracing::info_span!(
        "call",
        call = %id,
        campaign = %start.campaign.id,
        caller = tracing::field::Empty
    );
    if let Err(e) = run_call(&shared, start, events, &cmd)
        .instrument(span)
        .await
    {
        tracing::warn!(call = %id, error = %e, "call failed");
        let _ = cmd.send(Command::HangUp { call: id });
    }
    let _ = cmd.send(Command::Gone { call: id });
}

/// A 250 ms 1 kHz beep before a recording, made once.
fn beep() -> Prompt {
    static BEEP: OnceLock<Prompt> = OnceLock::new();
    BEEP.get_or_init(|| {
        let pcm: Vec<i16> = (0..2000)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 8000.0).sin())
                    as i16
            })
            .collect();
        Prompt::from_pcm(&pcm)
    })
    .clone()
}

/// Binds a UDP socket on a free port of the configured range (even ports, as RTP
/// customarily uses, leaving the odd one for RTCP).
///
/// The socket is non-blocking and deliberately *not* registered with the
/// runtime's reactor: the call reads it at every other 20 ms packet slot, which
/// the pacer's timer wakes anyway (`super::rtp_socket`), so a readiness event per
/// incoming packet would only wake a thread (and the reactor) for
/// nothing. That was the larger part of the media plane's scheduling cost in
/// issue 16's profile.
pub fn bind_rtp(ip: IpAddr, (lo, hi): (u16, u16)) -> std::io::Result<UdpSocket> {
    let span = u32::from(hi - lo) + 1;
    for _ in 0..64 {
        let port = lo + (rand::random::<u32>() % span) as u16;
        let port = if port % 2 == 1 && port > lo {
            port - 1
        } else {
            port
        };
        match UdpSocket::bind(SocketAddr::new(ip, port)) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                // An optimisation only: a socket that refuses it sends as before.
                let _ = rtp_socket::dont_fragment(&s);
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free RTP port in the configured range",
    ))
}

/// kuma's side of an offered call: an RTP socket, what kuma announces and the
/// SDP answer; or the SIP status to refuse it with and the call's outcome
/// (no free port: 503, failed; an offer kuma cannot take: 488 and the like,
/// rejected), logged here. Shared by listener and studio calls.
pub fn answer_offer(
    shared: &Shared,
    offer: &[u8],
    source: SocketAddr,
) -> Result<(UdpSocket, LocalMedia, sdp::Answer), (u16, &'static str)> {
    let bind_ip: IpAddr = if source.is_ipv6() {
        IpAddr::from([0u16; 8])
    } else {
        IpAddr::from([0u8; 4])
    };
    let bound = bind_rtp(bind_ip, shared.config.rtp_ports)
        .and_then(|socket| Ok((socket.local_addr()?.port(), socket)));
    let (rtp_port, socket) = bound.map_err(|e| {
        tracing::error!(error = %e, "no RTP port");
        (503, "failed")
    })?;
    let local = LocalMedia {
        ip: shared.config.public_ip.unwrap_or_else(|| route_ip(source)),
        rtp_port,
        session_id: rand::random::<u32>().into(),
        session_version: 1,
    };
    match sdp::answer(offer, &local) {
        Ok(answer) => Ok((socket, local, answer)),
        Err(e) => {
            tracing::info!(error = %e, "offer refused");
            Err((e.sip_status(), "rejected"))
        }
    }
}

/// The local address of the route towards `peer`: what to announce when no public
/// address is configured.
pub fn route_ip(peer: SocketAddr) -> IpAddr {
    let any: SocketAddr = if peer.is_ipv6() {
        "[::]:0".parse()
    } else {
        "0.0.0.0:0".parse()
    }
    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    std::net::UdpSocket::bind(any)
        .and_then(|s| {
            s.connect(peer)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(any.ip())
}

/// A recording in progress: the file the caller's audio goes to.
struct Recording {
    recorder: Recorder<std::io::BufWriter<std::fs::File>>,
    pending: Vec<i16>,
}

/// The call's media, and the SIP side it answers to; the conversation decides
/// the rest (`crate::conversation::runtime`).
struct Live {
    /// A listener's conversation, or a studio call (`super::studio_line`).
    talk: Talker,
    shared: Arc<Shared>,
    id: CallId,
    prompts: Arc<PromptSet>,
    cmd: mpsc::UnboundedSender<Command>,
    pacer: Pacer,
    session: RtpSession,
    media: Media,
    /// Keys from RFC 4733, SIP INFO and in-band tones, each press once, kuma's own
    /// echo left out (`audio::dtmf::keys`).
    call_keys: CallKeys,
    keys: Vec<CallKey>,
    /// The prompt whose end the conversation waits for.
    waiting_for: Option<PromptId>,
    /// The prompts the listener paused (`[replay]`), where they were.
    paused: Option<Paused<Prompt>>,
    recording: Option<Recording>,
    source: SocketAddr,
    /// kuma's side of the SDP, kept for re-INVITE answers (same port, version + 1).
    local: LocalMedia,
    guard: CallGuard,
    /// The address the RTP socket is connected to, while the session accepts
    /// that source only ([`Live::pin`], `super::rtp_socket`).
    pinned: Option<SocketAddr>,
    /// Looked up once: a metrics lookup per packet costs more than the packet.
    packets_sent: metrics::Counter,
    /// Packets sent not yet added to that counter (the media thread's sender
    /// counts those that leave late).
    unflushed_sent: u64,
    /// Packet slots (packets sent and slots skipped) and missed slots (sent a
    /// whole frame late, or skipped) not yet added to `Shared::media` (the
    /// media guard's), and the pacer's skipped slots already counted.
    unflushed_slots: u64,
    unflushed_missed: u64,
    skipped_seen: u64,
    /// The last frame sent and the last received, decoded: kept to reuse their
    /// memory (a packet in or out allocates nothing).
    sent_pcm: Vec<i16>,
    heard_pcm: Vec<i16>,
    /// An output that takes a while (a store write, a PIN check, keeping or
    /// preparing a take), running while the call goes on: its audio is paced,
    /// its keys heard. The outputs after it wait until it is done, so a write
    /// is still committed before the next prompt plays.
    pending: Option<Pending>,
    /// `pending` was set and not yet polled: its waker is not registered, so
    /// the turn that set it polls it before it ends ([`Live::start`]).
    pending_fresh: bool,
}

/// What an output that took a while gives back.
enum Done {
    /// Nothing to tell (a write committed or spooled).
    Nothing,
    Hear(Input),
    Play(Vec<Prompt>),
    /// What the output in flight gave, then what closing a recording that
    /// ended meanwhile gave ([`Live::close_recording`]).
    Then(Box<Done>, Input),
}

type Pending = Pin<Box<dyn Future<Output = anyhow::Result<Done>> + Send + 'static>>;

/// G.711 `codes` decoded into `pcm`, replacing what it held.
fn decode_into(codec: Codec, codes: &[u8], pcm: &mut Vec<i16>) {
    pcm.clear();
    match codec {
        Codec::Pcmu => pcm.extend(codes.iter().map(|&c| decode_ulaw(c))),
        Codec::Pcma => pcm.extend(codes.iter().map(|&c| decode_alaw(c))),
    }
}

async fn run_call(
    shared: &Arc<Shared>,
    start: CallStart,
    mut events: mpsc::UnboundedReceiver<SipEvent>,
    cmd: &mpsc::UnboundedSender<Command>,
) -> anyhow::Result<()> {
    let CallStart {
        call: id,
        caller,
        offer,
        source,
        campaign,
        prompts,
    } = start;
    let mut guard = CallGuard::new(cmd, id, &shared.store);
    let number = caller;
    let caller = shared.pseudonyms.pseudonym(&number);
    tracing::Span::current().record("caller", caller.as_str());
    // Kept (sealed) only if the caller may ask to be called after each broadcast,
    // and kuma may call them; the number itself goes no further than this.
    let sealed = subscription::seal_at_start(
        &campaign,
        &shared.config.callback,
        &shared.sealer,
        &number,
        &crate::outbound::Caller::of(&shared.pseudonyms, &caller, &number),
    );
    drop(number);
    let started = Utc::now();
    // A call's row comes from the database (its id numbers the call's writes), so
    // while the database is away, or the spool is full, new calls are refused at
    // once: 503, the gateway may try another server. Calls in progress go on.
    if shared.writes.refuses_new_calls() {
        tracing::warn!("database away or spool full: call refused (503)");
        let _ = cmd.send(Command::Reject {
            call: id,
            code: 503,
        });
        guard.done();
        return Ok(());
    }
    let new = crate::conversation::start::new_call(&campaign, &caller, "sip", started);
    let store_id =
        match tokio::time::timeout(spool::DIRECT_TIMEOUT, shared.store.start_call(&new)).await {
            Ok(Ok(store_id)) => store_id,
            Ok(Err(e)) if !e.is_unavailable() => return Err(e.into()),
            // The database went away as the call came: refused like the calls
            // after it, and said so (the switch to the spool is said once).
            away => {
                let why = match away {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no commit in time".to_owned(),
                };
                shared.writes.database_unreachable(&why);
                tracing::warn!(reason = %why, "database away: call refused (503)");
                let _ = cmd.send(Command::Reject {
                    call: id,
                    code: 503,
                });
                guard.done();
                return Ok(());
            }
        };
    guard.row(store_id);
    tracing::debug!(row = store_id, "call stored");
    // A call that ends before it reaches the campaign (refused, given up while
    // it rang, kuma's 200 never confirmed: a forged INVITE's fate) is no call
    // of the results: its row goes with its count (`WriteOp::Withdraw`). It
    // stays in `kuma_calls_total` by outcome (counted once written, as the
    // other ends), and in the log.
    let withdraw = |outcome: &'static str| async move {
        let written = shared
            .writes
            .write(WriteOp::Withdraw { call: store_id })
            .await;
        crate::conversation::metrics::ends(outcome).increment(1);
        tracing::info!(outcome, "call ended before it reached the campaign");
        written
    };
    let reject = |code: u16, outcome: &'static str| {
        let _ = cmd.send(Command::Reject { call: id, code });
        withdraw(outcome)
    };
    // An INVITE without SDP would need kuma's offer in the 200 and the answer in the
    // ACK; gateways and trunks send offers, so such a call is refused.
    let Some(offer) = offer else {
        reject(488, "rejected").await?;
        guard.done();
        return Ok(());
    };
    let (socket, local, answer) = match answer_offer(shared, &offer, source) {
        Ok(media) => media,
        Err((code, outcome)) => {
            reject(code, outcome).await?;
            guard.done();
            return Ok(());
        }
    };
    if !shared.config.answer_after.is_zero() {
        let _ = cmd.send(Command::Ringing { call: id });
        let ring = tokio::time::sleep(shared.config.answer_after);
        tokio::pin!(ring);
        loop {
            tokio::select! {
                _ = &mut ring => break,
                event = events.recv() => match event {
                    // The caller gave up while it rang (CANCEL), or the SIP side stopped.
                    Some(SipEvent::Ended { .. }) | None => {
                        withdraw("cancelled").await?;
                        guard.done();
                        return Ok(());
                    }
                    Some(_) => {}
                },
            }
        }
    }
    let _ = cmd.send(Command::Accept {
        call: id,
        sdp: answer.sdp,
    });
    if let Err(outcome) = confirmed(&mut events).await {
        withdraw(outcome).await?;
        guard.done();
        return Ok(());
    }
    let talk = Talk {
        id,
        campaign,
        prompts,
        store_id,
        socket,
        media: answer.media,
        local,
        source,
        caller,
        sealed,
        guard,
    };
    converse(shared, talk, events, cmd).await
}

/// Waits for the caller to confirm kuma's 200 OK (its ACK) before the call's
/// media starts; `Err(outcome)` when the call ended first (`no_ack` when the
/// ACK never came). The 200 goes back to where the INVITE came from, so one
/// who forged that source (over UDP) never learns its tag and cannot confirm:
/// without this wait, one forged INVITE made kuma send a call's audio to
/// whatever address its SDP named, several hundred times the INVITE's size,
/// until the silent line's timeout. Events before the ACK are dropped.
pub async fn confirmed(events: &mut mpsc::UnboundedReceiver<SipEvent>) -> Result<(), &'static str> {
    loop {
        match events.recv().await {
            Some(SipEvent::Established { .. }) => return Ok(()),
            Some(SipEvent::Ended {
                reason: EndReason::AckTimeout,
                ..
            }) => return Err("no_ack"),
            Some(SipEvent::Ended { .. }) | None => return Err("cancelled"),
            Some(_) => {}
        }
    }
}

/// An answered call, either way: what [`converse`] needs.
pub struct Talk {
    pub id: CallId,
    pub campaign: Arc<Campaign>,
    pub prompts: Arc<PromptSet>,
    /// The call's row in the store.
    pub store_id: crate::store::CallRow,
    pub socket: UdpSocket,
    pub media: Media,
    pub local: LocalMedia,
    /// The far end's SIP address (a `tel:` transfer goes back there).
    pub source: SocketAddr,
    /// The listener's pseudonym.
    pub caller: String,
    /// Their number, sealed, when they may subscribe (see [`has_subscribe`]).
    pub sealed: Result<Vec<u8>, &'static str>,
    /// Ends the call if this task stops before the call's end is stored.
    pub guard: CallGuard,
}

pub use crate::conversation::subscription::has_subscribe;

/// Runs the campaign's flow on an answered call until it ends: prompts out, keys
/// and voice in, answers stored.
pub async fn converse(
    shared: &Arc<Shared>,
    talk: Talk,
    events: mpsc::UnboundedReceiver<SipEvent>,
    cmd: &mpsc::UnboundedSender<Command>,
) -> anyhow::Result<()> {
    let Talk {
        id,
        campaign,
        prompts,
        store_id,
        socket,
        media,
        local,
        source,
        caller,
        sealed,
        guard,
    } = talk;
    let now = Instant::now();
    let conversation = Conversation::answered(
        runtime::Start {
            campaign,
            row: store_id,
            caller,
            sealed,
            policy: Arc::clone(&shared.policy),
            recordings: shared.data.join("recordings"),
        },
        Utc::now(),
        now,
    );
    let answered = Answered {
        id,
        prompts,
        socket,
        media,
        local,
        source,
        guard,
    };
    drive(
        shared,
        answered,
        Talker::Listener(conversation),
        events,
        cmd,
    )
    .await
}

/// An answered call's media: what [`drive`] needs besides what it drives.
pub struct Answered {
    pub id: CallId,
    /// The campaign's prompts ([`Output::Play`]).
    pub prompts: Arc<PromptSet>,
    pub socket: UdpSocket,
    pub media: Media,
    pub local: LocalMedia,
    pub source: SocketAddr,
    pub guard: CallGuard,
}

/// Runs an answered call's media around what drives it (a listener's
/// conversation or a studio call) until it is finished, on one of the media
/// threads (`super::media_loop`), in the current tracing span.
pub async fn drive(
    shared: &Arc<Shared>,
    call: Answered,
    talk: Talker,
    events: mpsc::UnboundedReceiver<SipEvent>,
    cmd: &mpsc::UnboundedSender<Command>,
) -> anyhow::Result<()> {
    let Answered {
        id,
        prompts,
        socket,
        media,
        local,
        source,
        guard,
    } = call;
    let now = Instant::now();
    let live = Live {
        talk,
        shared: Arc::clone(shared),
        id,
        prompts,
        cmd: cmd.clone(),
        pacer: Pacer::new(media.pacer_config(StreamIds::random()), now),
        // The caller's packets come from the SDP's host or the one its SIP
        // came from (the gateway, or a phone's NAT); no one else's count.
        session: RtpSession::new(media.session_config().with_signalling(source.ip()), now),
        call_keys: CallKeys::new(),
        media,
        keys: Vec::new(),
        waiting_for: None,
        paused: None,
        recording: None,
        source,
        local,
        guard,
        pinned: None,
        packets_sent: metrics::counter!(names::RTP_PACKETS_SENT),
        unflushed_sent: 0,
        unflushed_slots: 0,
        unflushed_missed: 0,
        skipped_seen: 0,
        sent_pcm: Vec::with_capacity(crate::rtp::FRAME_LEN),
        heard_pcm: Vec::with_capacity(crate::rtp::FRAME_LEN),
        pending: None,
        pending_fresh: false,
    };
    let paced = Paced {
        live,
        socket: Arc::new(socket),
        events,
        sip_gone: false,
        next_read: now,
        started: false,
    };
    let loops = shared.media_loops.get_or_init(|| {
        MediaLoops::start(
            tokio::runtime::Handle::current(),
            shared.config.io_uring,
            shared.config.media_realtime,
        )
    });
    let ended = loops.run(Box::new(paced), tracing::Span::current())?;
    ended
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the media thread stopped")))
}

/// A call as its media thread runs it: the call, its socket and its SIP side.
struct Paced {
    live: Live,
    /// Shared with the packets in flight in the media thread's io_uring, which
    /// keep it open until sent (`super::uring_send`).
    socket: Arc<UdpSocket>,
    events: mpsc::UnboundedReceiver<SipEvent>,
    /// The SIP side has gone (shutdown): the call was told it hung up.
    sip_gone: bool,
    /// When the caller's packets are next read.
    next_read: Instant,
    /// The first turn performs the conversation's first outputs first.
    started: bool,
}

impl media_loop::Paced for Paced {
    /// What the call's task did at each wake-up when it was a task: the SIP
    /// events and the pending output's result (both polled with `cx`, whose
    /// waker turns the call at once, and only then: a channel polled at every
    /// slot was 3 % of the media thread's samples), then the slot's packet, every
    /// [`rtp_socket::READ_EVERY`] the caller's packets, the time's events and
    /// the conversation's outputs.
    fn turn(
        &mut self,
        cx: &mut Context<'_>,
        woken: bool,
        send: &mut Sender,
    ) -> anyhow::Result<Option<Instant>> {
        let live = &mut self.live;
        if !self.started {
            self.started = true;
            live.perform_ready()?;
        }
        while woken && !self.sip_gone {
            match self.events.poll_recv(cx) {
                Poll::Ready(Some(e)) => live.on_sip(e)?,
                // The SIP side is gone (shutdown): end the call.
                Poll::Ready(None) => {
                    self.sip_gone = true;
                    live.hear(Input::HungUp);
                }
                Poll::Pending => break,
            }
        }
        if woken {
            live.poll_pending(cx)?;
        }
        // The slot's packet goes out first: reading (and the detector's work on
        // what was read) would otherwise delay it, every other slot.
        let now = Instant::now();
        let finished = live.send_due(&self.socket, send, now);
        // The caller's packets are read every READ_EVERY (two slots), all that
        // wait in one system call (`rtp_socket`): about one read per two packets
        // instead of one per packet plus the reads that found the socket empty.
        // Then the socket is connected to the caller, or released, as the
        // session's rules allow (`Live::pin`).
        if now >= self.next_read {
            self.next_read = now + rtp_socket::READ_EVERY;
            rtp_socket::read_all(&self.socket, |bytes, from| {
                live.on_datagram(bytes, from, now)
            })?;
            live.flush_counters();
        }
        live.pin(&self.socket, send, now);
        live.on_time(finished);
        live.perform_ready()?;
        // An output in flight since an earlier turn registered the waker when
        // it was polled, and has not woken the call since: polled again only
        // when it does (above). One started in this turn is polled now.
        if live.pending_fresh {
            live.poll_pending(cx)?;
        }
        // A call whose conversation has ended still finishes its last write.
        if live.talk.is_finished() && live.pending.is_none() {
            return Ok(None);
        }
        Ok(Some(live.next_wake()))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.flush_counters();
    }
}

impl Live {
    fn next_wake(&self) -> Instant {
        let mut at = self.pacer.poll_timeout();
        if let Some(t) = self.session.poll_timeout() {
            at = at.min(t);
        }
        if let Some(t) = self.talk.poll_timeout() {
            at = at.min(t);
        }
        at
    }

    /// Polls the output in flight; when it is done, takes its result and
    /// performs the outputs it held back, up to the next that takes a while.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> anyhow::Result<()> {
        while let Some(p) = self.pending.as_mut() {
            self.pending_fresh = false;
            let Poll::Ready(done) = p.as_mut().poll(cx) else {
                break;
            };
            self.pending = None;
            self.done(done?);
            self.perform_ready()?;
        }
        Ok(())
    }

    fn hear(&mut self, input: Input) {
        self.talk.handle_input(input, Instant::now());
    }

    /// What an output that took a while gave back.
    fn done(&mut self, done: Done) {
        match done {
            Done::Nothing => {}
            Done::Hear(input) => self.hear(input),
            Done::Play(prompts) => self.play(prompts),
            Done::Then(first, input) => {
                self.done(*first);
                self.hear(input);
            }
        }
    }

    /// Sends the packets that are due; `true` when the prompt the conversation
    /// waits for has ended (told by [`Live::on_time`], after the keys read in
    /// this wake-up, as before).
    fn send_due(&mut self, socket: &Arc<UdpSocket>, send: &mut Sender, now: Instant) -> bool {
        let remote = self.session.remote();
        let mut finished = false;
        loop {
            match self.pacer.poll(now) {
                PacerOutput::Transmit(t) => {
                    // Late packets are counted by `send`, when they leave.
                    let lateness = now.saturating_duration_since(t.due);
                    if lateness >= media_guard::MISSED_AFTER {
                        self.unflushed_missed += 1;
                    }
                    self.unflushed_sent += 1;
                    self.unflushed_slots += 1;
                    // A full socket buffer drops the packet rather than delay the
                    // next ones: late audio is worse than a lost frame. Queued
                    // on the media thread's ring, it goes out with the other
                    // calls' after this wake-up's turns (`super::uring_send`).
                    if self.pinned == Some(remote) {
                        send.send(socket, t.packet, None, t.due);
                    } else if remote.port() != 0 && !remote.ip().is_unspecified() {
                        send.send(socket, t.packet, Some(remote), t.due);
                    }
                    // What kuma says, so that its echo is not taken for the caller's
                    // keys: known beforehand for prompts and silence, so the
                    // detector runs over sent audio only when it is not.
                    let payload = t
                        .packet
                        .get(crate::rtp::packet::HEADER_LEN..)
                        .unwrap_or_default();
                    match t.keys {
                        Some(keys) => self.call_keys.sent_keys(keys, payload.len()),
                        None => {
                            decode_into(self.media.codec, payload, &mut self.sent_pcm);
                            self.call_keys.sent(&self.sent_pcm);
                        }
                    }
                }
                PacerOutput::Event(PacerEvent::PromptFinished(id)) => {
                    if self.waiting_for == Some(id) {
                        self.waiting_for = None;
                        finished = true;
                    }
                }
                PacerOutput::Timeout(_) => break,
            }
        }
        // Slots the pacer skipped, too late to send: missed slots too.
        let skipped = self.pacer.stats().slots_skipped;
        if let Some(more) = skipped.checked_sub(self.skipped_seen).filter(|&n| n > 0) {
            self.unflushed_slots += more;
            self.unflushed_missed += more;
            self.skipped_seen = skipped;
        }
        finished
    }

    /// Connects the RTP socket to the caller while the session accepts its
    /// packets only, and releases it as soon as another source may take over
    /// (a silence of 5 s, a re-INVITE to a new address), before the next read:
    /// the kernel then drops strangers' datagrams and kuma's sends skip the route
    /// lookup (`super::rtp_socket`). A failed `connect` leaves the socket as it
    /// was (sends then name their address) and is tried again at the next wake.
    /// The packets queued on the thread's ring are sent first: each was queued
    /// in the form (connected or not) of the association it was queued under.
    fn pin(&mut self, socket: &UdpSocket, send: &mut Sender, now: Instant) {
        let want = self.session.pinned(now);
        if want == self.pinned {
            return;
        }
        send.settle();
        match rtp_socket::associate(socket, want) {
            Ok(()) => self.pinned = want,
            Err(e) => tracing::debug!(error = %e, to = ?want, "RTP socket not (dis)connected"),
        }
    }

    /// Tells the conversation what the time brought: the end of the prompt it
    /// waited for (`finished`, from [`Live::send_due`]), no RTP for too long,
    /// its own deadlines.
    fn on_time(&mut self, finished: bool) {
        let now = Instant::now();
        if finished {
            self.talk.handle_input(Input::PlayFinished, now);
        }
        if let Some(RtpEvent::MediaTimeout) = self.session.handle_timeout(now) {
            tracing::info!("no RTP for 30 s: hanging up");
            self.talk.handle_input(Input::MediaTimeout, now);
        }
        self.talk.handle_timeout(now);
    }

    /// A key from RFC 4733 (`info` false) or SIP INFO, unless another source
    /// already gave it.
    fn key_event(&mut self, key: char, info: bool) {
        self.tell_keys(Instant::now(), |keys, out| {
            if info {
                keys.info(key, out);
            } else {
                keys.event(key, out);
            }
        });
    }

    /// The presses `find` gets from the call's key sources (each press once,
    /// kuma's own echo left out), told to the conversation as heard at `now`.
    fn tell_keys(&mut self, now: Instant, find: impl FnOnce(&mut CallKeys, &mut Vec<CallKey>)) {
        self.keys.clear();
        find(&mut self.call_keys, &mut self.keys);
        for k in &self.keys {
            self.talk.handle_input(Input::Key(k.key), now);
        }
    }

    /// One packet from the caller, read at `now`.
    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) -> anyhow::Result<()> {
        let mut pcm = std::mem::take(&mut self.heard_pcm);
        pcm.clear();
        match self.session.handle_datagram(bytes, from, now) {
            // The caller's audio is only decoded when something listens to it.
            Some(RtpEvent::Audio(a)) => decode_into(self.media.codec, a.payload, &mut pcm),
            Some(RtpEvent::Key(k)) => self.key_event(k.key, false),
            Some(RtpEvent::MediaTimeout) | None => {}
        }
        let heard = self.on_audio(&pcm, now);
        self.heard_pcm = pcm;
        heard
    }

    /// Adds the packets counted since the last flush to the metrics (an
    /// increment of a shared counter per packet cost more than the packet's
    /// bookkeeping).
    fn flush_counters(&mut self) {
        if self.unflushed_slots > 0 {
            self.shared
                .media
                .add(self.unflushed_slots, self.unflushed_missed);
            self.unflushed_slots = 0;
            self.unflushed_missed = 0;
        }
        if self.unflushed_sent > 0 {
            self.packets_sent.increment(self.unflushed_sent);
            self.unflushed_sent = 0;
        }
    }

    /// The caller's audio (8 kHz linear): keys in it, and the recording.
    fn on_audio(&mut self, pcm: &[i16], now: Instant) -> anyhow::Result<()> {
        if pcm.is_empty() {
            return Ok(());
        }
        self.tell_keys(now, |keys, out| keys.received(pcm, out));
        if let Some(rec) = self.recording.as_mut() {
            rec.pending.extend_from_slice(pcm);
            let mut done = false;
            while rec.pending.len() >= 160 && !done {
                let mut frame = [0i16; 160];
                frame.copy_from_slice(&rec.pending[..160]);
                rec.pending.drain(..160);
                done = !matches!(rec.recorder.push(&frame)?, Verdict::Continue);
            }
            if done {
                self.close_recording()?;
            }
        }
        Ok(())
    }

    /// The call's audio as a new offer or answer has it: where to send, in
    /// which codec, in which directions.
    fn use_media(&mut self, m: sdp::Media) {
        if !m.direction.receives() {
            // The caller's audio stops (on hold): a key its detector still
            // held back is the caller's now.
            self.tell_keys(Instant::now(), CallKeys::received_end);
        }
        self.session.update_remote(m.pt, m.dtmf_pt, m.remote);
        self.session
            .set_expect_media(m.direction.receives(), Instant::now());
        self.pacer.set_muted(!m.direction.sends());
        if (m.codec, m.pt) != (self.media.codec, self.media.pt) {
            self.pacer.set_codec(m.codec, m.pt);
        }
        self.media = m;
    }

    fn on_sip(&mut self, e: SipEvent) -> anyhow::Result<()> {
        match e {
            SipEvent::Key { key, .. } => self.key_event(key, true),
            SipEvent::Reoffer {
                offer: Some(offer), ..
            } => {
                self.local.session_version += 1;
                match sdp::answer(&offer, &self.local) {
                    Ok(a) => {
                        self.use_media(a.media);
                        let _ = self.cmd.send(Command::AcceptReinvite {
                            call: self.id,
                            sdp: a.sdp,
                        });
                    }
                    Err(e) => {
                        let _ = self.cmd.send(Command::RejectReinvite {
                            call: self.id,
                            code: e.sip_status(),
                        });
                    }
                }
            }
            // A re-INVITE without an offer (a session refresh; some gateways
            // check a long call this way): kuma's offer in the 200 (RFC 3261
            // §14.2), the caller's answer in the ACK. Refused, the refresher
            // would end the call.
            SipEvent::Reoffer { offer: None, .. } => {
                self.local.session_version += 1;
                let _ = self.cmd.send(Command::AcceptReinvite {
                    call: self.id,
                    sdp: sdp::offer_again(&self.local, &self.media),
                });
            }
            SipEvent::Answer { sdp: answer, .. } => match sdp::media_from_answer(&answer) {
                Ok(m) => self.use_media(m),
                Err(e) => {
                    tracing::info!(error = %e, "the answer in the ACK is not usable: the call's audio goes on as it was");
                }
            },
            SipEvent::TransferResult { ok, .. } => self.hear(Input::TransferResult { ok }),
            SipEvent::Ended { reason, .. } => {
                tracing::debug!(?reason, "SIP call ended");
                self.hear(Input::HungUp);
            }
            SipEvent::Established { .. }
            | SipEvent::Incoming { .. }
            | SipEvent::Ringing { .. }
            | SipEvent::Answered { .. } => {}
        }
        Ok(())
    }

    /// Performs what the conversation asks, in order, up to an output that
    /// takes a while ([`Live::pending`]): a write is committed (or synced to
    /// the spool while the database is away) before the next output (the next
    /// prompt) is performed, and meanwhile the call's audio goes on.
    fn perform_ready(&mut self) -> anyhow::Result<()> {
        while self.pending.is_none() {
            let Some(output) = self.talk.poll_output(Instant::now()) else {
                break;
            };
            self.perform(output)?;
        }
        Ok(())
    }

    fn perform(&mut self, output: Output) -> anyhow::Result<()> {
        match output {
            Output::Write(w) => {
                // The writes due together (an answer and the next node) in
                // one transaction (`writes::perform_all`).
                let mut ws = vec![w];
                while let Some(w) = self.talk.next_write() {
                    ws.push(w);
                }
                let to = Arc::clone(&self.shared.writes);
                self.start(Box::pin(async move {
                    writes::perform_all(ws, &to).await?;
                    Ok(Done::Nothing)
                }));
            }
            Output::Play(prompts) => {
                // After the previous answer's commit: tests/database_outage.rs reads it.
                tracing::debug!(prompts = ?prompts.iter().map(|p| &p.name).collect::<Vec<_>>(), "play");
                let found: Vec<Prompt> = prompts
                    .iter()
                    .filter_map(|p| self.prompts.get(&p.language, &p.name).cloned())
                    .collect();
                self.play(found);
            }
            Output::PlaySounds(sounds) => {
                tracing::debug!(?sounds, "play");
                let shared = Arc::clone(&self.shared);
                self.start(Box::pin(async move {
                    Ok(Done::Play(studio_line::sounds(&shared, sounds).await))
                }));
            }
            Output::CheckPin { pin } => {
                let check = self.talk.check_pin(&self.shared, pin);
                self.start(Box::pin(async move { Ok(Done::Hear(check.await)) }));
            }
            Output::Keep(take) => {
                let shared = Arc::clone(&self.shared);
                self.start(Box::pin(async move {
                    Ok(Done::Hear(studio_line::keep(&shared, take).await))
                }));
            }
            Output::StopPlayback => {
                self.pacer.stop();
                self.paused = None;
                self.waiting_for = None;
            }
            Output::Record { path, max } => {
                self.pacer.stop();
                self.paused = None;
                self.waiting_for = None;
                self.pacer.enqueue(beep());
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let sink = WavRecorder::create(&path)?;
                let settings = EndSettings {
                    max,
                    ..EndSettings::default()
                };
                self.recording = Some(Recording {
                    recorder: Recorder::new(sink, settings),
                    pending: Vec::new(),
                });
            }
            Output::Seek { seconds } => {
                let frames = i64::from(seconds) * i64::from(1000 / FRAME_MS);
                let frame = match &mut self.paused {
                    Some(held) => {
                        held.seek(frames);
                        held.position()
                    }
                    None => {
                        self.pacer.seek(frames);
                        self.pacer.position()
                    }
                };
                tracing::debug!(seconds, at_ms = frame * FRAME_MS as usize, "seek");
            }
            Output::Pause => {
                if self.paused.is_none() {
                    let held = self.pacer.pause();
                    tracing::debug!(at_ms = held.position() * FRAME_MS as usize, "pause");
                    self.paused = Some(held);
                }
            }
            Output::Resume => {
                if let Some(held) = self.paused.take() {
                    tracing::debug!(at_ms = held.position() * FRAME_MS as usize, "resume");
                    self.pacer.resume(held);
                }
            }
            Output::StopRecording => self.close_recording()?,
            Output::Transfer { to } => {
                // A tel: number goes back to the gateway the call came from.
                let target = match to.strip_prefix("tel:") {
                    Some(number) => format!("sip:{number}@{}", self.source),
                    None => to,
                };
                let _ = self.cmd.send(Command::Refer {
                    call: self.id,
                    target,
                });
            }
            Output::HangUp => {
                let _ = self.cmd.send(Command::HangUp { call: self.id });
            }
            Output::Finished(_) => self.guard.done(),
        }
        Ok(())
    }

    /// Stops what plays and plays `prompts`; the talk hears `PlayFinished`
    /// when the last ends, or at once when there is none.
    fn play(&mut self, prompts: Vec<Prompt>) {
        self.pacer.stop();
        self.paused = None;
        self.waiting_for = None;
        for prompt in prompts {
            self.waiting_for = Some(self.pacer.enqueue(prompt));
        }
        if self.waiting_for.is_none() {
            self.hear(Input::PlayFinished);
        }
    }

    /// Closes the recording in progress (synced to disk) and tells the
    /// conversation, which stores it before anything else.
    ///
    /// The file is finished and synced on tokio's blocking pool, as an output
    /// that takes a while ([`Live::pending`]): a sync waits for the disk (a
    /// station's SD card or a busy disk: tens to hundreds of milliseconds), and
    /// on the call's media thread it would hold back every call's audio on
    /// that thread meanwhile. The outputs after it wait for it, as they waited
    /// for the synchronous close, and the call's own audio goes on.
    fn close_recording(&mut self) -> anyhow::Result<()> {
        let Some(rec) = self.recording.take() else {
            return Ok(());
        };
        let sink = rec.recorder.sink;
        let closed = tokio::task::spawn_blocking(move || sink.finish_synced());
        let close = async move {
            let duration = closed
                .await
                .map_err(|e| anyhow::anyhow!("closing the recording: {e}"))??;
            anyhow::Ok(Input::RecordingClosed { duration })
        };
        // A recording that ends by itself (silence, its longest) while another
        // output is in flight is told after that output's result.
        let both: Pending = match self.pending.take() {
            None => Box::pin(async move { Ok(Done::Hear(close.await?)) }),
            Some(first) => Box::pin(async move {
                let first = first.await;
                let closed = close.await?;
                Ok(Done::Then(Box::new(first?), closed))
            }),
        };
        self.start(both);
        Ok(())
    }

    /// Sets the output in flight, to be polled before the turn ends.
    fn start(&mut self, pending: Pending) {
        self.pending = Some(pending);
        self.pending_fresh = true;
    }
}
