//! The task that owns the SIP socket: datagrams and timeouts into the sans-IO
//! [`Endpoint`], its transmissions out, its call events to each call's task, and
//! each call's commands back into it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::Shared;
use super::call::{self, CallStart};
use super::dialer;
use super::http::names;
use super::isolation::{first_line, guarded};
use super::media_guard::{self, MediaGuard};
use super::sip_tcp;
use super::studio_line::{self, StudioStart};
use crate::sip::{CallId, Config, Dial, Endpoint, Event, Output, Stats, Transport};

/// What a call's task asks of the SIP side.
#[derive(Debug)]
pub enum Command {
    Ringing {
        call: CallId,
    },
    Accept {
        call: CallId,
        sdp: String,
    },
    Reject {
        call: CallId,
        code: u16,
    },
    AcceptReinvite {
        call: CallId,
        sdp: String,
    },
    RejectReinvite {
        call: CallId,
        code: u16,
    },
    HangUp {
        call: CallId,
    },
    Refer {
        call: CallId,
        target: String,
    },
    /// The call's task is over (after its `Ended`, or on its own).
    Gone {
        call: CallId,
    },
    /// Place a call; its events go to `events`, its id comes back on `placed`.
    Dial {
        dial: Box<Dial>,
        events: mpsc::UnboundedSender<Event>,
        placed: oneshot::Sender<CallId>,
    },
}

impl Command {
    /// The command's name, for a log line.
    fn name(&self) -> &'static str {
        match self {
            Command::Ringing { .. } => "Ringing",
            Command::Accept { .. } => "Accept",
            Command::Reject { .. } => "Reject",
            Command::AcceptReinvite { .. } => "AcceptReinvite",
            Command::RejectReinvite { .. } => "RejectReinvite",
            Command::HangUp { .. } => "HangUp",
            Command::Refer { .. } => "Refer",
            Command::Gone { .. } => "Gone",
            Command::Dial { .. } => "Dial",
        }
    }
}

/// How long a stopping server keeps answering retransmissions after its last call.
const LINGER: Duration = Duration::from_secs(2);

/// A dialled number as a log may show it: a short code (up to six characters,
/// a station's) whole; a longer one, which a misrouted call could make a
/// person's number, only by its length and last two characters.
fn loggable_dialled(dialled: &str) -> String {
    let count = dialled.chars().count();
    if count <= 6 {
        return dialled.to_string();
    }
    let tail: String = dialled.chars().skip(count - 2).collect();
    format!("{count} characters ending in {tail}")
}

/// The largest datagram read; bigger ones are cut and then fail to parse.
const MAX_DATAGRAM: usize = 65_536;

pub async fn run(
    shared: Arc<Shared>,
    socket: UdpSocket,
    tcp: tokio::net::TcpListener,
    local: SocketAddr,
    mut stop: watch::Receiver<bool>,
    (cmd_tx, mut cmd_rx): (
        mpsc::UnboundedSender<Command>,
        mpsc::UnboundedReceiver<Command>,
    ),
) -> anyhow::Result<()> {
    let (tcp_tx, mut tcp_rx) = mpsc::channel(sip_tcp::QUEUE);
    let (open_tx, mut open_rx) = mpsc::unbounded_channel();
    let limits = shared.config.limits.clone();
    let mut connections = sip_tcp::Connections::default();
    let mut endpoint = Endpoint::new(Config {
        local: shared
            .config
            .public_ip
            .map_or(local, |ip| SocketAddr::new(ip, local.port())),
        trunks: shared.config.trunks.clone(),
        proxies: shared.config.proxies.clone(),
        ..Config::default()
    })
    .map_err(|e| anyhow::anyhow!("no entropy from the operating system for SIP tags: {e}"))?;
    // Who may connect over TCP: the endpoint's own rules.
    let who = endpoint.admission().clone();
    tokio::spawn(sip_tcp::accept(tcp, limits, who, tcp_tx, open_tx));
    let mut calls: HashMap<CallId, mpsc::UnboundedSender<Event>> = HashMap::new();
    let mut exported = Stats::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut stopping = false;
    let mut stop_deadline: Option<Instant> = None;
    let mut linger: Option<Instant> = None;
    // Off: the guard never ticks, and the node is never busy for lateness.
    let mut guard = shared.config.media_guard.map(MediaGuard::new);
    let mut guard_tick = tokio::time::interval(media_guard::TICK);
    guard_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    metrics::gauge!(names::MEDIA_BUSY).set(0.0);
    loop {
        let wake = endpoint.poll_timeout().map(Instant::from_std);
        tokio::select! {
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, from)) => {
                    let datagram = buf.get(..n).unwrap_or_default();
                    guarded(
                        || first_line(datagram),
                        || endpoint.handle_input(datagram, from, Transport::Udp, Instant::now().into_std()),
                    );
                }
                // ICMP errors from a previous send surface here on some systems.
                Err(e) => tracing::debug!(error = %e, "SIP receive"),
            },
            Some(m) = tcp_rx.recv() => {
                guarded(
                    || first_line(&m.bytes),
                    || endpoint.handle_input(&m.bytes, m.from, Transport::Tcp, Instant::now().into_std()),
                );
            }
            Some(o) = open_rx.recv() => connections.opened(o),
            Some(cmd) = cmd_rx.recv() => {
                let now = Instant::now().into_std();
                let name = cmd.name();
                guarded(|| format!("the command {name}"), || match cmd {
                    Command::Ringing { call } => endpoint.ringing(call, now),
                    Command::Accept { call, sdp } => endpoint.accept(call, sdp, now),
                    Command::Reject { call, code } => endpoint.reject(call, code, now),
                    Command::AcceptReinvite { call, sdp } => endpoint.accept_reinvite(call, sdp, now),
                    Command::RejectReinvite { call, code } => endpoint.reject_reinvite(call, code, now),
                    Command::HangUp { call } => endpoint.hang_up(call, now),
                    Command::Refer { call, target } => endpoint.refer(call, &target, now),
                    Command::Gone { call } => {
                        calls.remove(&call);
                        connections.release(call);
                    }
                    Command::Dial { dial, events, placed } => {
                        let call = endpoint.dial(&dial, now);
                        calls.insert(call, events);
                        let _ = placed.send(call);
                    }
                });
            }
            _ = guard_tick.tick(), if guard.is_some() => {
                if let Some(change) = guard.as_mut().and_then(|g| g.tick(shared.media.totals())) {
                    endpoint.set_busy(change.busy);
                    shared.media.set_busy(change.busy);
                    metrics::gauge!(names::MEDIA_BUSY).set(if change.busy { 1.0 } else { 0.0 });
                    let share = format!("{}.{}%", change.missed_permille / 10, change.missed_permille % 10);
                    if change.busy {
                        tracing::warn!(missed = %share, slots = change.slots, calls = calls.len(), "the calls' audio goes out late: new calls refused (503) until it is on time");
                    } else {
                        tracing::warn!(missed = %share, slots = change.slots, calls = calls.len(), "the calls' audio is on time again: new calls taken");
                    }
                }
            }
            _ = sleep_until(wake) => {
                guarded(|| "a timer".into(), || endpoint.handle_timeout(Instant::now().into_std()));
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                endpoint.stop_accepting();
                stop_deadline = Some(Instant::now() + shared.config.drain);
            }
            _ = sleep_until(linger), if linger.is_some() => {}
            _ = sleep_until(stop_deadline), if stopping => {
                eprintln!("kuma serve: drain time is over; hanging up {} calls", calls.len());
                let now = Instant::now().into_std();
                for call in calls.keys() {
                    endpoint.hang_up(*call, now);
                }
                stop_deadline = Some(Instant::now() + Duration::from_secs(2));
            }
        }
        while let Some(out) =
            guarded(|| "the next output".into(), || endpoint.poll_output()).flatten()
        {
            match out {
                Output::Transmit {
                    to,
                    bytes,
                    transport: Transport::Tcp,
                } => {
                    if !connections.send(to, bytes) {
                        tracing::debug!(%to, "SIP TCP connection gone");
                    }
                }
                Output::Transmit { to, bytes, .. } => {
                    if let Err(e) = socket.send_to(&bytes, to).await {
                        tracing::debug!(error = %e, %to, "SIP send");
                    }
                }
                Output::Event(Event::Incoming {
                    call,
                    dialled,
                    caller,
                    offer,
                    source,
                    origin,
                }) => {
                    let now = Instant::now().into_std();
                    if calls.len() >= shared.config.max_calls {
                        endpoint.reject(call, 486, now);
                        continue;
                    }
                    if shared.config.studio_numbers.contains(&dialled) {
                        // The studio line: broadcasters with a PIN, no campaign.
                        let (tx, rx) = mpsc::unbounded_channel();
                        calls.insert(call, tx);
                        connections.hold(call, source);
                        metrics::gauge!(names::CALLS_ACTIVE).set(calls.len() as f64);
                        let start = StudioStart {
                            call,
                            caller,
                            offer,
                            source: origin,
                        };
                        tokio::spawn(studio_line::run(
                            Arc::clone(&shared),
                            start,
                            rx,
                            cmd_tx.clone(),
                        ));
                        continue;
                    }
                    let catalog = shared.catalog();
                    let Some((campaign, prompts)) =
                        catalog.route(&dialled, shared.config.default_campaign.as_deref())
                    else {
                        tracing::info!(%call, number = %loggable_dialled(&dialled), "no campaign for this number");
                        endpoint.reject(call, 404, now);
                        continue;
                    };
                    if campaign.callback_numbers.contains(&dialled) {
                        // Never answered, so the listener pays nothing: refused
                        // at once, and called back.
                        endpoint.reject(call, 486, now);
                        // Only a configured trunk may make kuma call (the endpoint
                        // already turns away every other source when `trunks` is
                        // set): anyone else could have kuma dial numbers they choose.
                        if shared.config.trunks.is_some() {
                            tokio::spawn(dialer::missed_call(
                                Arc::clone(&shared),
                                campaign,
                                caller,
                            ));
                        } else {
                            metrics::counter!(names::MISSED_CALLS, "outcome" => "untrusted_source")
                                .increment(1);
                            tracing::info!(source = %origin, %call, "missed call refused: call-backs need `trunks` (no call-back)");
                        }
                        continue;
                    }
                    let (tx, rx) = mpsc::unbounded_channel();
                    calls.insert(call, tx);
                    connections.hold(call, source);
                    metrics::gauge!(names::CALLS_ACTIVE).set(calls.len() as f64);
                    // The call's media and transfers go to the gateway, not to a
                    // proxy in between.
                    let start = CallStart {
                        call,
                        caller,
                        offer,
                        source: origin,
                        campaign,
                        prompts,
                    };
                    tokio::spawn(call::run(Arc::clone(&shared), start, rx, cmd_tx.clone()));
                }
                Output::Event(event) => {
                    let id = event_call(&event);
                    if let Some(tx) = calls.get(&id) {
                        // A task that already finished has dropped its receiver.
                        let _ = tx.send(event);
                    }
                }
            }
        }
        metrics::gauge!(names::CALLS_ACTIVE).set(calls.len() as f64);
        export_refusals(&mut exported, endpoint.stats());
        // Once the last call is gone, the endpoint's finished transactions only
        // absorb retransmissions (up to 64*T1 = 32 s over UDP): a short linger
        // covers the usual ones without holding a restart for half a minute.
        if stopping && calls.is_empty() && linger.is_none() {
            linger = Some(Instant::now() + LINGER);
        }
        let lingered = linger.is_some_and(|at| Instant::now() >= at);
        if stopping && calls.is_empty() && (endpoint.is_idle() || lingered) {
            eprintln!("kuma serve: all calls ended; stopped");
            return Ok(());
        }
    }
}

/// Adds what the endpoint refused since the last look to `kuma_sip_refused_total`.
fn export_refusals(exported: &mut Stats, now: Stats) {
    for ((reason, before), (_, after)) in exported.by_reason().into_iter().zip(now.by_reason()) {
        if let Some(more) = after.checked_sub(before).filter(|&n| n > 0) {
            metrics::counter!(names::SIP_REFUSED, "reason" => reason).increment(more);
        }
    }
    *exported = now;
}

fn event_call(e: &Event) -> CallId {
    match e {
        Event::Incoming { call, .. }
        | Event::Established { call }
        | Event::Answer { call, .. }
        | Event::Reoffer { call, .. }
        | Event::Key { call, .. }
        | Event::TransferResult { call, .. }
        | Event::Ended { call, .. }
        | Event::Ringing { call }
        | Event::Answered { call, .. } => *call,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_dialled_number_is_logged_whole_only_when_it_is_a_short_code() {
        assert_eq!(super::loggable_dialled("2000"), "2000");
        assert_eq!(super::loggable_dialled("36123"), "36123");
        assert_eq!(
            super::loggable_dialled("+22376533333"),
            "12 characters ending in 33"
        );
        assert_eq!(
            super::loggable_dialled("9é9é9é9é"),
            "8 characters ending in 9é"
        );
    }
}
