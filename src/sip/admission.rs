//! Who may call kuma: the trunk allow-list and the INVITE rate limit.
//!
//! A SIP port on a public address is probed all day by scanners (SIPVicious'
//! "friendly-scanner" and its kin) sending OPTIONS and INVITEs to guess numbers
//! and look for open relays. A station's calls only ever come from its own trunk or
//! GSM gateway, so when `trunks` is configured, every request from elsewhere that is
//! not part of a call in progress is dropped without an answer: a scanner learns
//! nothing, and an answer would only make kuma an amplifier. Whatever the
//! allow-list, each source may start at most `n` calls per window; INVITEs past that
//! are dropped too (a retransmission of an INVITE already let in is not counted: it
//! matches its transaction first). IPv6 sources are counted per /64, the block one
//! host usually holds, so a scanner cannot escape the limit by changing address.
//!
//! Behind a SIP proxy (`proxies`), the proxy's address may always send requests
//! outside calls (its OPTIONS probes), while a new call is judged by the gateway's
//! address the proxy vouches for ([`crate::sip::proxied`]): the allow-list and the
//! rate limit see the true source, not the proxy every call shares.
//!
//! Dropped requests are counted ([`crate::sip::Stats`]) and logged with the source
//! address only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The admission rules and the per-source counters.
#[derive(Debug, Clone)]
pub struct Admission {
    trunks: Option<Vec<IpAddr>>,
    proxies: Vec<IpAddr>,
    limit: u32,
    window: Duration,
    sources: HashMap<IpAddr, Window>,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not from a configured trunk.
    NotTrunk,
    /// Too many INVITEs from this source in the window.
    RateLimited,
}

impl Admission {
    /// `trunks`: the only sources that may start calls, when set. `rate`: at most
    /// `rate.0` INVITEs per source per `rate.1`.
    pub fn new(trunks: Option<Vec<IpAddr>>, rate: (u32, Duration)) -> Self {
        Admission {
            trunks: trunks.map(|t| t.into_iter().map(canonical).collect()),
            proxies: Vec::new(),
            limit: rate.0,
            window: rate.1,
            sources: HashMap::new(),
            last_sweep: None,
        }
    }

    /// The SIP proxies in front of kuma: they may send requests outside calls
    /// whatever `trunks` says, and their calls carry the gateway's address.
    pub fn with_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.proxies = proxies.into_iter().map(canonical).collect();
        self
    }

    /// The configured proxies.
    pub fn proxies(&self) -> &[IpAddr] {
        &self.proxies
    }

    /// Whether a request outside any call may be served from this address.
    pub fn may_contact(&self, source: IpAddr) -> Result<(), Refusal> {
        if self.proxies.contains(&canonical(source)) {
            return Ok(());
        }
        self.is_trunk(source)
    }

    fn is_trunk(&self, source: IpAddr) -> Result<(), Refusal> {
        match &self.trunks {
            Some(trunks) if !trunks.contains(&canonical(source)) => Err(Refusal::NotTrunk),
            _ => Ok(()),
        }
    }

    /// Whether a new INVITE from `origin` may start a call; counts it if so. For a
    /// call through a proxy, `origin` is the gateway the proxy names (or the proxy
    /// itself, when it names none): a proxy is not a trunk unless it is listed in
    /// `trunks` too.
    pub fn may_invite(&mut self, origin: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.is_trunk(origin)?;
        let source = origin;
        // A configured trunk is the station's own gateway: every listener's call
        // comes from it, hundreds in the minutes after a broadcast. Limiting it
        // would drop exactly the calls kuma is for.
        if self.trunks.is_some() {
            return Ok(());
        }
        self.sweep(now);
        let window = self.window;
        let entry = self.sources.entry(block(source)).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.saturating_duration_since(entry.start) >= window {
            *entry = Window {
                start: now,
                count: 0,
            };
        }
        if entry.count >= self.limit {
            return Err(Refusal::RateLimited);
        }
        entry.count += 1;
        Ok(())
    }

    /// Forgets sources whose window is over, once per window, so the table holds
    /// only the sources of the last window.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < self.window)
        {
            return;
        }
        self.last_sweep = Some(now);
        let window = self.window;
        self.sources
            .retain(|_, w| now.saturating_duration_since(w.start) < window);
    }

    /// How many sources are being counted (for tests and metrics).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The unit counted: an IPv4 address, or an IPv6 /64.
fn block(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trunks_may_call_when_trunks_are_set() {
        let admission = Admission::new(
            Some(vec![ip("192.0.2.10"), ip("2001:db8::10")]),
            (10, Duration::from_secs(10)),
        );
        assert_eq!(admission.may_contact(ip("192.0.2.10")), Ok(()));
        assert_eq!(admission.may_contact(ip("::ffff:192.0.2.10")), Ok(()));
        assert_eq!(admission.may_contact(ip("2001:db8::10")), Ok(()));
        assert_eq!(
            admission.may_contact(ip("198.51.100.7")),
            Err(Refusal::NotTrunk)
        );
        let open = Admission::new(None, (10, Duration::from_secs(10)));
        assert_eq!(open.may_contact(ip("198.51.100.7")), Ok(()));
    }

    #[test]
    fn a_configured_trunk_is_not_rate_limited() {
        let trunk = ip("192.0.2.1");
        let mut a = Admission::new(Some(vec![trunk]), (2, Duration::from_secs(10)));
        let now = Instant::now();
        for _ in 0..500 {
            assert_eq!(a.may_invite(trunk, now), Ok(()));
        }
        assert_eq!(
            a.may_invite(ip("198.51.100.7"), now),
            Err(Refusal::NotTrunk)
        );
    }

    #[test]
    fn a_proxy_may_contact_but_is_no_trunk_unless_listed() {
        let a = Admission::new(Some(vec![ip("192.0.2.10")]), (10, Duration::from_secs(10)))
            .with_proxies(vec![ip("10.0.0.2")]);
        assert_eq!(a.may_contact(ip("10.0.0.2")), Ok(()));
        assert_eq!(a.may_contact(ip("::ffff:10.0.0.2")), Ok(()));
        let mut a = a;
        let now = Instant::now();
        assert_eq!(a.may_invite(ip("10.0.0.2"), now), Err(Refusal::NotTrunk));
        assert_eq!(a.may_invite(ip("192.0.2.10"), now), Ok(()));
    }

    #[test]
    fn invites_are_limited_per_source_per_window() {
        let t0 = Instant::now();
        let mut admission = Admission::new(None, (3, Duration::from_secs(10)));
        for _ in 0..3 {
            assert_eq!(admission.may_invite(ip("198.51.100.7"), t0), Ok(()));
        }
        assert_eq!(
            admission.may_invite(ip("198.51.100.7"), t0),
            Err(Refusal::RateLimited)
        );
        assert_eq!(
            admission.may_invite(ip("198.51.100.8"), t0),
            Ok(()),
            "another source"
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(admission.may_invite(ip("198.51.100.7"), later), Ok(()));
        assert_eq!(admission.tracked_sources(), 1, "the old windows were swept");
    }

    #[test]
    fn an_ipv6_scanner_cannot_escape_by_changing_its_interface_id() {
        let t0 = Instant::now();
        let mut admission = Admission::new(None, (2, Duration::from_secs(10)));
        assert_eq!(admission.may_invite(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert_eq!(admission.may_invite(ip("2001:db8:1:2::2"), t0), Ok(()));
        assert_eq!(
            admission.may_invite(ip("2001:db8:1:2:ffff::3"), t0),
            Err(Refusal::RateLimited)
        );
        assert_eq!(admission.may_invite(ip("2001:db8:1:3::1"), t0), Ok(()));
    }
}
