//! Missed-call call-backs in `kuma serve`: a call to a campaign's call-back number
//! is refused by the SIP shell (the listener pays nothing) and becomes a queued
//! call-back here ([`missed_call`]); the [`Dialer`] claims due call-backs from the
//! store, places each call through the trunk and runs the answered ones through
//! the campaign like any call ([`super::call::converse`]).
//!
//! The rules (who is called back, retries) are [`crate::outbound`]'s; the queue is
//! the store's, so a restart loses nothing and several processes on one
//! PostgreSQL database share it without dialling anyone twice. The number is
//! opened from its sealed form only to write the INVITE, and never logged: logs
//! name the call-back by its id and the caller by pseudonym.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tracing::Instrument;

use super::Shared;
use super::call::{self, Talk};
use super::config::TrunkConfig;
use super::http::names;
use super::sip_shell::Command;
use crate::campaign::Campaign;
use crate::outbound::{Attempt, Next, Status, after_attempt, screen};
use crate::schedule::Poll;
use crate::sip::sdp::{self, LocalMedia};
use crate::sip::{Credentials, Dial, EndReason, Event};
use crate::store::{Claimed, NewCallback};

/// How often the queue is looked at when nothing wakes the dialer (the delay's
/// granularity, and how soon call-backs queued by other processes are seen).
const POLL: Duration = Duration::from_secs(1);

/// A `dialing` call-back untouched this long belongs to a process that died.
const STALE: chrono::Duration = chrono::Duration::hours(2);

/// A missed call to a call-back number: queued, or stored as refused with the
/// reason. `number` is the caller ID; it is sealed or dropped here.
pub async fn missed_call(shared: Arc<Shared>, campaign: Arc<Campaign>, number: String) {
    let caller = shared.pseudonyms.pseudonym(&number);
    let now = Utc::now();
    let policy = &shared.config.callback;
    let open = campaign
        .schedule
        .as_ref()
        .is_none_or(|s| matches!(s.poll(now), Poll::Open { .. }));
    let store = &shared.store;
    let who = crate::outbound::Caller::of(&shared.pseudonyms, &caller, &number);
    let outcome = match screen(policy, number.trim(), &who, open) {
        Err(refusal) => store
            .callbacks()
            .refuse(&campaign.id, &caller, refusal, now)
            .await
            .map(|id| (id, Err(refusal))),
        Ok(()) => match shared.sealer.seal(number.trim(), &caller) {
            Ok(sealed) => {
                let due = crate::schedule::later(now, policy.delay);
                let new = NewCallback {
                    campaign: &campaign.id,
                    caller: &caller,
                    sealed: &sealed,
                    at: now,
                    due,
                };
                store.callbacks().queue(&new, policy).await
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot seal a number: no call-back");
                return;
            }
        },
    };
    match outcome {
        Ok((id, Ok(()))) => {
            metrics::counter!(names::MISSED_CALLS, "outcome" => "queued").increment(1);
            tracing::info!(callback = id, campaign = %campaign.id, %caller, "missed call: call-back queued");
            shared.callbacks_queued.notify_one();
        }
        Ok((id, Err(refusal))) => {
            metrics::counter!(names::MISSED_CALLS, "outcome" => refusal.as_str()).increment(1);
            tracing::info!(
                callback = id,
                campaign = %campaign.id,
                %caller,
                reason = refusal.as_str(),
                "missed call: no call-back"
            )
        }
        Err(e) => {
            tracing::error!(error = %e, campaign = %campaign.id, %caller, "cannot queue a call-back")
        }
    }
}

/// After each broadcast (`after_broadcast` past its start), queues a call to every
/// subscriber of the campaign, at once or at the end of the quiet hours. Every
/// process may do it: the store queues a subscriber once per broadcast. A
/// broadcast more than a day past (a server started long after it) is not
/// followed up. Listeners who subscribe while it is followed up are queued too
/// (the work is redone only when the number of subscribers changes).
pub async fn follow_broadcasts(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut done: std::collections::HashMap<String, (chrono::DateTime<Utc>, u64)> =
        std::collections::HashMap::new();
    let policy = &shared.config.callback;
    loop {
        let now = Utc::now();
        for campaign in shared.catalog().campaigns() {
            let Some(schedule) = campaign.schedule.as_ref() else {
                continue;
            };
            if !call::has_subscribe(&campaign) {
                continue;
            }
            let Some(broadcast) = schedule.last_broadcast(now) else {
                continue;
            };
            let start = crate::schedule::later(broadcast, policy.after_broadcast);
            if now < start || now > crate::schedule::later(start, Duration::from_secs(86_400)) {
                continue;
            }
            let subscribers = match shared
                .store
                .callbacks()
                .subscriber_count(&campaign.id)
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(campaign = %campaign.id, error = %e, "cannot count the subscribers");
                    continue;
                }
            };
            if subscribers == 0 || done.get(&campaign.id) == Some(&(broadcast, subscribers)) {
                continue;
            }
            let due = policy
                .quiet_hours
                .map_or(now, |q| q.next_allowed(now, schedule.timezone));
            match shared
                .store
                .callbacks()
                .queue_broadcast(&campaign.id, broadcast, due, now, policy)
                .await
            {
                Ok(n) => {
                    done.insert(campaign.id.clone(), (broadcast, subscribers));
                    if n > 0 {
                        tracing::info!(campaign = %campaign.id, %broadcast, subscribers = n, %due, "calls to subscribers queued after the broadcast");
                        shared.callbacks_queued.notify_one();
                    }
                }
                Err(e) => {
                    tracing::error!(campaign = %campaign.id, error = %e, "cannot queue the calls to subscribers")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Claims due call-backs and places them (see the module doc).
pub struct Dialer {
    shared: Arc<Shared>,
    /// `HOST:PORT` of the trunk, for the Request-URI and From.
    trunk: String,
    next_hop: SocketAddr,
    proxy: Option<SocketAddr>,
    credentials: Option<Credentials>,
    from_user: Option<String>,
    /// kuma's SIP address for Via and Contact.
    local: SocketAddr,
    slots: Arc<Semaphore>,
    /// This process, in `claimed_by`.
    worker: String,
    cmd: mpsc::UnboundedSender<Command>,
}

impl Dialer {
    /// Resolves the trunk (and proxy) once: kuma does no DNS per call.
    pub async fn new(
        shared: Arc<Shared>,
        trunk: &TrunkConfig,
        sip: SocketAddr,
        cmd: mpsc::UnboundedSender<Command>,
    ) -> anyhow::Result<Dialer> {
        let trunk_addr = resolve(&trunk.host, trunk.port)
            .await
            .with_context(|| format!("trunk: cannot resolve `{}`", trunk.host))?;
        let proxy = match &trunk.outbound_proxy {
            Some(p) => {
                let (host, port) = super::config::parse_trunk_uri(p).map_err(anyhow::Error::msg)?;
                Some(
                    resolve(&host, port)
                        .await
                        .with_context(|| format!("trunk.outbound_proxy: cannot resolve `{p}`"))?,
                )
            }
            None => None,
        };
        let next_hop = proxy.unwrap_or(trunk_addr);
        let ip = match shared.config.public_ip {
            Some(ip) => ip,
            None if sip.ip().is_unspecified() => call::route_ip(next_hop),
            None => sip.ip(),
        };
        let host = match trunk.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => trunk.host.clone(),
        };
        let credentials = match (&trunk.user, &trunk.password) {
            (Some(user), Some(password)) => Some(Credentials {
                user: user.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        eprintln!(
            "kuma serve: call-backs through sip:{host}:{} ({} at once)",
            trunk.port, trunk.max_calls
        );
        Ok(Dialer {
            trunk: format!("{host}:{}", trunk.port),
            next_hop,
            proxy,
            credentials,
            from_user: trunk.user.clone(),
            local: SocketAddr::new(ip, sip.port()),
            slots: Arc::new(Semaphore::new(trunk.max_calls)),
            worker: format!("kuma-{}-{:08x}", std::process::id(), rand::random::<u32>()),
            cmd,
            shared,
        })
    }

    /// Until `stop`: claims as many due call-backs as there are free slots,
    /// none while the node is busy.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let me = Arc::new(self);
        loop {
            // While the calls' audio goes out late (`super::media_guard`), a
            // call-back would only add to it: the due ones wait for the next look.
            while !me.shared.media.is_busy()
                && let Ok(permit) = Arc::clone(&me.slots).try_acquire_owned()
            {
                let now = Utc::now();
                match me
                    .shared
                    .store
                    .callbacks()
                    .claim(&me.worker, now, now - STALE)
                    .await
                {
                    Ok(Some(claimed)) => {
                        let span = tracing::info_span!(
                            "callback",
                            callback = claimed.id,
                            attempt = claimed.attempt,
                            campaign = %claimed.campaign,
                            caller = %claimed.caller,
                        );
                        tokio::spawn(Arc::clone(&me).attempt(claimed, permit).instrument(span));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the call-back queue");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = me.shared.callbacks_queued.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn attempt(self: Arc<Self>, claimed: Claimed, _slot: OwnedSemaphorePermit) {
        // Its own task: a bug that panics in it still marks the attempt failed,
        // instead of leaving the call-back "dialing" until it goes stale.
        let (me, c) = (Arc::clone(&self), claimed.clone());
        let tried = tokio::spawn(
            async move { me.try_attempt(&c).await }.instrument(tracing::Span::current()),
        )
        .await
        // Not the JoinError's text: it quotes the panic's message.
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the attempt's task stopped (a bug)")));
        if let Err(e) = tried {
            tracing::warn!(error = %e, "call-back attempt failed");
            let policy = &self.shared.config.callback;
            let next = after_attempt(policy, Attempt::Failed, claimed.attempt, Utc::now());
            let _ = self
                .shared
                .store
                .callbacks()
                .finish_attempt(
                    claimed.id,
                    claimed.attempt,
                    Status::Failed,
                    None,
                    next,
                    None,
                    Utc::now(),
                )
                .await;
        }
    }

    async fn try_attempt(&self, c: &Claimed) -> anyhow::Result<()> {
        let shared = &self.shared;
        let store = &shared.store;
        let policy = &shared.config.callback;
        // The call-back over without a call: its number erased.
        let end = |status: Status| {
            let next = Next::Final(status);
            store
                .callbacks()
                .finish_attempt(c.id, c.attempt, status, None, next, None, Utc::now())
        };
        let Some((campaign, prompts)) = shared.catalog().get(&c.campaign) else {
            tracing::warn!("the campaign is no longer served: call-back cancelled");
            end(Status::Cancelled).await?;
            return Ok(());
        };
        let number = match c
            .sealed
            .as_deref()
            .map(|s| shared.sealer.open(s, &c.caller))
        {
            Some(Ok(n)) => n,
            other => {
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "the number was erased".into(),
                };
                tracing::warn!(reason = %why, "cannot call back");
                end(Status::Failed).await?;
                return Ok(());
            }
        };
        // Blocked, or outside `prefixes`, since it was queued (the settings
        // changed, kuma restarted), or since the subscriber subscribed: never
        // called. Such a subscriber is erased with the calls still waiting for
        // them: a number kuma may not call is not kept.
        let who = crate::outbound::Caller::of(&shared.pseudonyms, &c.caller, &number);
        if let Err(refusal) = crate::outbound::may_call(policy, &number, &who) {
            tracing::info!(reason = refusal.as_str(), "call-back cancelled");
            if c.broadcast.is_some() {
                store
                    .callbacks()
                    .unsubscribe(&c.campaign, &c.caller, Utc::now())
                    .await?;
            }
            end(Status::Cancelled).await?;
            return Ok(());
        }
        let bind_ip: IpAddr = if self.next_hop.is_ipv6() {
            IpAddr::from([0u16; 8])
        } else {
            IpAddr::from([0u8; 4])
        };
        let socket = call::bind_rtp(bind_ip, shared.config.rtp_ports)?;
        let local_media = LocalMedia {
            ip: shared
                .config
                .public_ip
                .unwrap_or_else(|| call::route_ip(self.next_hop)),
            rtp_port: socket.local_addr()?.port(),
            session_id: rand::random::<u32>().into(),
            session_version: 1,
        };
        let from_user = self
            .from_user
            .clone()
            .or_else(|| campaign.callback_numbers.first().cloned())
            .unwrap_or_else(|| "kuma".into());
        let dial = Dial {
            target: format!("sip:{number}@{}", self.trunk),
            from: format!("sip:{from_user}@{}", self.trunk),
            next_hop: self.next_hop,
            proxy: self.proxy,
            credentials: self.credentials.clone(),
            offer: sdp::offer(&local_media),
            ring_timeout: policy.ring_timeout,
            local: self.local,
        };
        drop(number);
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (placed_tx, placed) = oneshot::channel();
        self.cmd
            .send(Command::Dial {
                dial: Box::new(dial),
                events: events_tx,
                placed: placed_tx,
            })
            .map_err(|_| anyhow::anyhow!("the SIP side has stopped"))?;
        let id = placed.await?;
        tracing::info!(call = %id, "calling back");
        let answer = loop {
            match events.recv().await {
                Some(Event::Ringing { .. }) => {
                    if let Err(e) = store.callbacks().ringing(c.id, c.attempt).await {
                        tracing::warn!(error = %e, "cannot record that the call-back rings");
                    }
                }
                Some(Event::Answered { sdp, .. }) => break Ok(sdp),
                Some(Event::Ended { reason, .. }) => break Err(Some(reason)),
                Some(_) => {}
                None => break Err(None),
            }
        };
        let sdp = match answer {
            Ok(sdp) => sdp,
            Err(reason) => {
                let _ = self.cmd.send(Command::Gone { call: id });
                let attempt = reason.map_or(Attempt::Cancelled, attempt_of);
                let code = match reason {
                    Some(EndReason::Declined(code)) => Some(code),
                    _ => None,
                };
                let mut next = after_attempt(policy, attempt, c.attempt, Utc::now());
                // A call to a subscriber is not retried in the quiet hours either.
                if let (Next::Retry(at), Some(_), Some(quiet), Some(schedule)) = (
                    next,
                    c.broadcast,
                    policy.quiet_hours,
                    campaign.schedule.as_ref(),
                ) {
                    next = Next::Retry(quiet.next_allowed(at, schedule.timezone));
                }
                metrics::counter!(names::CALLBACK_ATTEMPTS, "status" => attempt.status().as_str())
                    .increment(1);
                tracing::info!(
                    status = attempt.status().as_str(),
                    code,
                    retry = matches!(next, Next::Retry(_)),
                    "call-back not answered"
                );
                store
                    .callbacks()
                    .finish_attempt(
                        c.id,
                        c.attempt,
                        attempt.status(),
                        code,
                        next,
                        None,
                        Utc::now(),
                    )
                    .await?;
                return Ok(());
            }
        };
        let media = match sdp::media_from_answer(&sdp) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "the answer's SDP cannot be used: hanging up");
                let _ = self.cmd.send(Command::HangUp { call: id });
                let _ = self.cmd.send(Command::Gone { call: id });
                end(Status::Failed).await?;
                return Ok(());
            }
        };
        // The answered call is this task's to end, whatever fails from here on.
        let stored = async {
            let new =
                crate::conversation::start::new_call(&campaign, &c.caller, "callback", Utc::now());
            let store_id = store.start_call(&new).await?;
            // The listener is reached: the call-back is over and its number erased
            // before the conversation, whatever happens in it.
            let answered = Status::Answered;
            store
                .callbacks()
                .finish_attempt(
                    c.id,
                    c.attempt,
                    answered,
                    None,
                    Next::Final(answered),
                    Some(store_id),
                    Utc::now(),
                )
                .await?;
            Ok::<_, crate::store::StoreError>(store_id)
        }
        .await;
        let store_id = match stored {
            Ok(id) => id,
            Err(e) => {
                let _ = self.cmd.send(Command::HangUp { call: id });
                let _ = self.cmd.send(Command::Gone { call: id });
                return Err(e.into());
            }
        };
        let mut guard = super::isolation::CallGuard::new(&self.cmd, id, store);
        guard.row(store_id);
        metrics::counter!(names::CALLBACK_ATTEMPTS, "status" => "answered").increment(1);
        tracing::info!(call = %id, "call-back answered");
        let talk = Talk {
            id,
            campaign,
            prompts,
            store_id,
            socket,
            media,
            local: local_media,
            source: self.next_hop,
            caller: c.caller.clone(),
            sealed: c.sealed.clone().ok_or("withheld_number"),
            guard,
        };
        if let Err(e) = call::converse(shared, talk, events, &self.cmd).await {
            tracing::warn!(call = %id, error = %e, "call-back failed");
            let _ = self.cmd.send(Command::HangUp { call: id });
        }
        let _ = self.cmd.send(Command::Gone { call: id });
        Ok(())
    }
}

async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("no address"))
}

/// What a call-back attempt that was never answered comes to.
fn attempt_of(reason: EndReason) -> Attempt {
    match reason {
        EndReason::Declined(code) => Attempt::declined(code),
        EndReason::RingTimeout => Attempt::NoAnswer,
        EndReason::HungUp => Attempt::Cancelled,
        // No response at all (the trunk is down); the others belong to answered
        // calls (or to calls kuma answers).
        _ => Attempt::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_endings_become_attempt_statuses() {
        assert_eq!(attempt_of(EndReason::Declined(486)), Attempt::Busy);
        assert_eq!(attempt_of(EndReason::RingTimeout), Attempt::NoAnswer);
        assert_eq!(attempt_of(EndReason::Declined(480)), Attempt::NoAnswer);
        assert_eq!(attempt_of(EndReason::Declined(503)), Attempt::Failed);
        assert_eq!(attempt_of(EndReason::NoResponse), Attempt::Failed);
        assert_eq!(attempt_of(EndReason::Declined(403)), Attempt::Refused);
        assert_eq!(attempt_of(EndReason::HungUp), Attempt::Cancelled);
    }
}
