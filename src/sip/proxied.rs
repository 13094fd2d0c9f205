//! Calls that reach kuma through a SIP proxy (Kamailio's dispatcher in front of
//! several `kuma serve` nodes, `deploy/kamailio/`): whose call it really is.
//!
//! Behind a proxy every request comes from the proxy's address, so the trunk
//! allow-list, the INVITE rate limit and the call-back rule ("only a configured
//! trunk may make kuma call") would all see the proxy instead of the gateway. The
//! proxy therefore adds the address it received the INVITE from:
//!
//! ```text
//! X-Kuma-Source: 192.0.2.10:5060        (or 192.0.2.10, or [2001:db8::10]:5060)
//! ```
//!
//! kuma believes that header only from the addresses in its `proxies` setting
//! (`KUMA_PROXIES`): from anyone else it is ignored, or any gateway could claim to
//! be the trunk. The proxy must remove any such header the caller sent before
//! adding its own (the Kamailio config does); kuma refuses to pick among several.
//! A header from a proxy that cannot be read (garbage, several values) costs one
//! log line and the call is judged by the proxy's own address, as if it had come
//! without a header: nothing is lost, and nothing is trusted that should not be.

use std::net::{IpAddr, SocketAddr};

use ezk_sip_types::{Headers, Name};

use crate::sip::message;

/// The header a trusted proxy adds: the address the INVITE came to it from.
pub const HEADER: &str = "X-Kuma-Source";

/// Where a request comes from, for the admission rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The gateway's address: the proxy's word for it, or the request's source.
    pub addr: SocketAddr,
    /// The request came from a configured proxy (which may send requests outside
    /// calls, such as its OPTIONS probes, whatever `trunks` says).
    pub via_proxy: bool,
}

/// Why a proxy's header was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSource {
    #[error("{HEADER} appears {0} times (the proxy must replace the caller's, not add one)")]
    Repeated(usize),
    #[error("{HEADER} is not an IP address or IP:port")]
    NotAnAddress,
}

/// The origin of a request from `from`: when `from` is one of `proxies`, the
/// address in its [`HEADER`] (absent: the proxy itself, for instance its OPTIONS
/// probes). `Err` carries the proxy's own origin and what was wrong, to log.
pub fn origin(
    headers: &Headers,
    from: SocketAddr,
    proxies: &[IpAddr],
) -> Result<Origin, (Origin, BadSource)> {
    let own = Origin {
        addr: from,
        via_proxy: false,
    };
    if !proxies.contains(&canonical(from.ip())) {
        return Ok(own);
    }
    let proxy = Origin {
        via_proxy: true,
        ..own
    };
    let name = Name::from(HEADER.to_owned());
    let mut values = message::header_all(headers, &name);
    let (Some(value), None) = (values.next(), values.next()) else {
        let count = message::header_all(headers, &name).count();
        return match count {
            0 => Ok(proxy),
            n => Err((proxy, BadSource::Repeated(n))),
        };
    };
    match parse(value) {
        Some(addr) => Ok(Origin {
            addr,
            via_proxy: true,
        }),
        None => Err((proxy, BadSource::NotAnAddress)),
    }
}

/// `IP`, `IP:port` or `[IPv6]:port`; a missing port is SIP's 5060.
pub fn parse(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 5060))
}

/// IPv4-mapped IPv6 addresses (from a dual-stack socket) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> Headers {
        let mut h = Headers::new();
        for l in lines {
            h.insert(Name::from(HEADER.to_owned()), l.to_string());
        }
        h
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const PROXY: &str = "10.0.0.2:5060";

    fn proxies() -> Vec<IpAddr> {
        vec!["10.0.0.2".parse().unwrap()]
    }

    #[test]
    fn a_proxy_names_the_gateway() {
        let o = origin(&headers(&["192.0.2.10:5062"]), addr(PROXY), &proxies()).unwrap();
        assert_eq!(o.addr, addr("192.0.2.10:5062"));
        assert!(o.via_proxy);
        let o = origin(&headers(&[" 192.0.2.10 "]), addr(PROXY), &proxies()).unwrap();
        assert_eq!(o.addr, addr("192.0.2.10:5060"), "SIP's port by default");
        let o = origin(&headers(&["[2001:db8::10]:5070"]), addr(PROXY), &proxies()).unwrap();
        assert_eq!(o.addr, addr("[2001:db8::10]:5070"));
        let o = origin(&headers(&["2001:db8::10"]), addr(PROXY), &proxies()).unwrap();
        assert_eq!(o.addr, addr("[2001:db8::10]:5060"));
    }

    #[test]
    fn the_header_from_anyone_else_is_ignored() {
        let gateway = addr("192.0.2.66:5060");
        let o = origin(&headers(&["192.0.2.10"]), gateway, &proxies()).unwrap();
        assert_eq!(
            o,
            Origin {
                addr: gateway,
                via_proxy: false
            }
        );
        let o = origin(&headers(&["192.0.2.10"]), addr(PROXY), &[]).unwrap();
        assert_eq!(o.addr, addr(PROXY), "no proxy configured");
    }

    #[test]
    fn a_proxy_without_the_header_is_itself() {
        let o = origin(&headers(&[]), addr(PROXY), &proxies()).unwrap();
        assert_eq!(
            o,
            Origin {
                addr: addr(PROXY),
                via_proxy: true
            }
        );
        let mapped = addr("[::ffff:10.0.0.2]:5060");
        assert!(origin(&headers(&[]), mapped, &proxies()).unwrap().via_proxy);
    }

    #[test]
    fn a_bad_header_falls_back_to_the_proxy_with_the_reason() {
        for (lines, why) in [
            (vec!["gateway.example"], BadSource::NotAnAddress),
            (vec!["192.0.2.10:99999"], BadSource::NotAnAddress),
            (vec![""], BadSource::NotAnAddress),
            (vec!["192.0.2.10", "192.0.2.11"], BadSource::Repeated(2)),
        ] {
            let (o, e) = origin(&headers(&lines), addr(PROXY), &proxies()).unwrap_err();
            assert_eq!(o.addr, addr(PROXY), "{lines:?}");
            assert!(o.via_proxy);
            assert_eq!(e, why, "{lines:?}");
        }
    }
}
