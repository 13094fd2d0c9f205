//! Where kuma may fetch a provider's recording from.
//!
//! A webhook request names the recording's URL, and whoever can post to the
//! webhook could name any URL: an address inside the station's network, kuma's own
//! admin pages, a cloud metadata service. So a recording is fetched only:
//!
//! - over HTTPS, from a host in `recording_hosts` (`api.twilio.com`,
//!   `*.africastalking.com`, … see [`DEFAULT_HOSTS`]), every redirect checked
//!   the same way;
//! - from a public address: names are resolved by kuma's own resolver, which
//!   drops loopback, private, link-local, multicast, shared and documentation
//!   addresses, so what was checked is what is connected to (no second lookup
//!   an attacker's DNS could answer differently);
//! - or from an origin the operator wrote out whole in `recording_hosts`
//!   (`https://media.station.lan:8443`, `http://127.0.0.1:8081`): a media server
//!   of their own, trusted as written, private address or not.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

/// The provider media hosts trusted when `recording_hosts` is not set.
pub const DEFAULT_HOSTS: &[&str] = &["api.twilio.com", "*.africastalking.com"];

/// One entry of `recording_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// `api.twilio.com`: that host, over HTTPS on any port.
    Host(String),
    /// `*.africastalking.com`: any host under that domain, over HTTPS.
    Under(String),
    /// `http://127.0.0.1:8081`: exactly that scheme, host and port.
    Origin {
        scheme: String,
        host: String,
        port: u16,
    },
}

/// The rules, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    rules: Vec<Rule>,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        let hosts: Vec<String> = DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect();
        FetchPolicy::parse(&hosts).unwrap_or(FetchPolicy { rules: Vec::new() })
    }
}

impl FetchPolicy {
    /// From the `recording_hosts` setting; the error names the bad entry.
    pub fn parse(entries: &[String]) -> Result<FetchPolicy, String> {
        let mut rules = Vec::new();
        for e in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let bad = || {
                format!(
                    "recording_hosts: `{e}` is not a host (api.twilio.com), a domain \
                     (*.africastalking.com) or an origin (https://media.example.org:8443)"
                )
            };
            let rule = if e.contains("://") {
                let url = Url::parse(e).map_err(|_| bad())?;
                let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
                    return Err(bad());
                };
                if !matches!(url.scheme(), "http" | "https") || url.path() != "/" {
                    return Err(bad());
                }
                Rule::Origin {
                    scheme: url.scheme().to_owned(),
                    host: host.to_ascii_lowercase(),
                    port,
                }
            } else if let Some(domain) = e.strip_prefix("*.") {
                if !is_hostname(domain) {
                    return Err(bad());
                }
                Rule::Under(domain.to_ascii_lowercase())
            } else {
                if !is_hostname(e) {
                    return Err(bad());
                }
                Rule::Host(e.to_ascii_lowercase())
            };
            rules.push(rule);
        }
        Ok(FetchPolicy { rules })
    }

    /// Whether `url` may be requested; the error says why not (for the log and
    /// the fetch's row).
    pub fn check(&self, url: &str) -> Result<(), String> {
        let url = Url::parse(url).map_err(|_| "not a URL".to_string())?;
        self.check_url(&url)
    }

    fn check_url(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(format!("not HTTPS: {}", url.scheme()));
        }
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .ok_or("a URL without a host")?
            .to_ascii_lowercase();
        let port = url.port_or_known_default().ok_or("a URL without a port")?;
        if self.trusted_origin(url.scheme(), &host, port) {
            return Ok(());
        }
        if url.scheme() != "https" {
            return Err(format!("not HTTPS: {}", url.scheme()));
        }
        if host.parse::<IpAddr>().is_ok() {
            return Err("an address, not a host in recording_hosts".into());
        }
        let listed = self.rules.iter().any(|r| match r {
            Rule::Host(h) => *h == host,
            Rule::Under(d) => host
                .strip_suffix(d.as_str())
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            Rule::Origin { .. } => false,
        });
        if !listed {
            return Err(format!("host `{host}` is not in recording_hosts"));
        }
        Ok(())
    }

    fn trusted_origin(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.rules.iter().any(|r| {
            matches!(r, Rule::Origin { scheme: s, host: h, port: p }
                if s == scheme && h == host && *p == port)
        })
    }

    /// Hosts named in whole origins: their addresses are not checked.
    fn trusted_hosts(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter_map(|r| match r {
                Rule::Origin { host, .. } => Some(host.clone()),
                _ => None,
            })
            .collect()
    }

    /// An HTTP client that follows only redirects this policy allows (at most 5)
    /// and connects only to public addresses (or the trusted origins' hosts).
    pub fn client(self: &Arc<Self>) -> reqwest::Result<reqwest::Client> {
        let redirects = Arc::clone(self);
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .connect_timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    return attempt.error("more than 5 redirects");
                }
                match redirects.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(why) => attempt.error(format!("redirect refused: {why}")),
                }
            }))
            .dns_resolver(Arc::new(PublicOnly {
                trusted: self.trusted_hosts(),
            }))
            .build()
    }
}

/// Letters, digits, `-` and dots, with at least one dot or a single label.
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The resolver's refusal, found again in a request's error.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` has no public address")]
struct NotPublic(String);

/// Whether a request failed because a host had no public address.
pub fn refused_address(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<NotPublic>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// An error and its causes, in one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

/// The resolver of the recording fetcher: public addresses only.
struct PublicOnly {
    trusted: Vec<String>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.trusted.contains(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| trusted || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(Box::new(NotPublic(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private,
/// link-local, multicast, broadcast, unspecified, shared (CGNAT), documentation,
/// benchmarking or reserved, nor an IPv6 form of one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 192 && b == 0 && c == 2)
                || (a == 198 && (18..20).contains(&b))
                || (a == 198 && b == 51 && c == 100)
                || (a == 203 && b == 0 && c == 113))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || (s[0] == 0x2002)
                || (s[0] == 0x2001 && s[1] == 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["41.202.219.1", "196.201.214.1", "8.8.8.8", "2c0f:f248::1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_against_the_hosts() {
        let p = FetchPolicy::default();
        assert_eq!(
            p.check("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"),
            Ok(())
        );
        assert_eq!(
            p.check("https://voice.africastalking.com/rec/1.mp3"),
            Ok(())
        );
        for (bad, why) in [
            ("http://api.twilio.com/x", "not HTTPS"),
            ("https://evil.example/x", "not in recording_hosts"),
            (
                "https://africastalking.com.evil.example/x",
                "not in recording_hosts",
            ),
            ("https://evilafricastalking.com/x", "not in recording_hosts"),
            ("https://127.0.0.1/x", "an address"),
            ("https://[::1]/x", "an address"),
            ("https://10.0.0.1/x", "an address"),
            ("file:///etc/passwd", "not HTTPS"),
            ("gopher://api.twilio.com/x", "not HTTPS"),
            ("not a url", "not a URL"),
        ] {
            let err = p.check(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_whole_origin_is_trusted_as_written_and_nothing_else() {
        let p = FetchPolicy::parse(&["http://127.0.0.1:8081".into()]).unwrap();
        assert_eq!(p.check("http://127.0.0.1:8081/rec.wav"), Ok(()));
        assert!(p.check("http://127.0.0.1:8082/rec.wav").is_err());
        assert!(p.check("https://127.0.0.1:8081/rec.wav").is_err());
        assert!(p.check("https://api.twilio.com/x").is_err(), "not listed");
        for bad in ["ftp://x.org", "https://x.org/path", "*.", "a b", "https://"] {
            assert!(FetchPolicy::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
