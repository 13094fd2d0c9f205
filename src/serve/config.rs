//! `kuma serve`'s settings: built-in defaults, overridden by `kuma.toml`, overridden
//! by `KUMA_*` environment variables and command-line flags.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Everything `kuma serve` needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Where SIP listens (UDP).
    pub sip: SocketAddr,
    /// First and last RTP port.
    pub rtp_ports: (u16, u16),
    /// The HTTP server (health, metrics).
    pub http: SocketAddr,
    /// The address announced to callers in SDP and Contact. Default: the local
    /// address of the route towards each caller.
    pub public_ip: Option<IpAddr>,
    /// Only these addresses may send calls (the station's trunk or gateway).
    pub trunks: Option<Vec<IpAddr>>,
    /// Campaign that answers numbers no campaign lists (otherwise 404).
    pub default_campaign: Option<String>,
    /// The most calls at once; more get 486 Busy Here.
    pub max_calls: usize,
    /// How long SIGTERM waits for calls in progress.
    pub drain: Duration,
    /// Let the caller hear ringing this long before answering (0: answer at once).
    pub answer_after: Duration,
    /// The web API shows breakdown cells counting fewer callers than this as
    /// `"<N"` (0 or 1: no masking).
    pub small_group: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            sip: "0.0.0.0:5060"
                .parse()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 5060))),
            rtp_ports: (10000, 20000),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_ip: None,
            trunks: None,
            default_campaign: None,
            max_calls: 1000,
            drain: Duration::from_secs(600),
            answer_after: Duration::ZERO,
            small_group: crate::web::SMALL_GROUP,
        }
    }
}

/// `kuma.toml`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub sip: Option<String>,
    pub rtp_ports: Option<String>,
    pub http: Option<String>,
    pub public_ip: Option<String>,
    pub trunks: Option<Vec<String>>,
    pub default_campaign: Option<String>,
    pub max_calls: Option<usize>,
    pub drain: Option<String>,
    pub answer_after: Option<String>,
    pub small_group: Option<u64>,
    /// Read by other parts of kuma (kept here so a shared file is accepted).
    pub database: Option<String>,
    pub campaigns: Option<String>,
    pub data: Option<String>,
}

/// Settings given on the command line or in the environment (already merged by
/// clap: a flag wins over its variable).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub sip: Option<String>,
    pub rtp_ports: Option<String>,
    pub http: Option<String>,
    pub public_ip: Option<String>,
    pub trunks: Option<String>,
    pub default_campaign: Option<String>,
    pub max_calls: Option<usize>,
    pub answer_after: Option<String>,
    pub small_group: Option<u64>,
}

/// Reads `kuma.toml` (if `path` exists) and applies the overrides.
pub fn load(path: &Path, explicit: bool, o: &Overrides) -> Result<ServeConfig, String> {
    let file: FileConfig = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            format!("{}:{line}: {}", path.display(), e.message())
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => FileConfig::default(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut c = ServeConfig::default();
    let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or_else(|| file.clone());
    if let Some(s) = pick(&o.sip, &file.sip) {
        c.sip = parse_addr(&s, "sip")?;
    }
    if let Some(s) = pick(&o.http, &file.http) {
        c.http = parse_addr(&s, "http")?;
    }
    if let Some(s) = pick(&o.rtp_ports, &file.rtp_ports) {
        c.rtp_ports = parse_ports(&s)?;
    }
    if let Some(s) = pick(&o.public_ip, &file.public_ip) {
        c.public_ip = Some(
            s.parse()
                .map_err(|_| format!("public_ip: `{s}` is not an IP address"))?,
        );
    }
    let trunks = o
        .trunks
        .as_ref()
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect())
        .or(file.trunks);
    if let Some(list) = trunks {
        let ips: Result<Vec<IpAddr>, String> = list
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("trunks: `{s}` is not an IP address"))
            })
            .collect();
        c.trunks = Some(ips?);
    }
    c.default_campaign = pick(&o.default_campaign, &file.default_campaign);
    if let Some(n) = o.max_calls.or(file.max_calls) {
        if n == 0 {
            return Err("max_calls must be at least 1".into());
        }
        c.max_calls = n;
    }
    if let Some(d) = pick(&o.answer_after, &file.answer_after) {
        c.answer_after = if d.trim() == "0" {
            Duration::ZERO
        } else {
            crate::campaign::parse_duration(&d).map_err(|e| format!("answer_after: {e}"))?
        };
        if c.answer_after > Duration::from_secs(60) {
            return Err("answer_after: at most 60s (callers hang up)".into());
        }
    }
    if let Some(n) = o.small_group.or(file.small_group) {
        c.small_group = n;
    }
    if let Some(d) = &file.drain {
        c.drain = crate::campaign::parse_duration(d).map_err(|e| format!("drain: {e}"))?;
    }
    Ok(c)
}

fn parse_addr(s: &str, what: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{what}: `{s}` is not an address such as 0.0.0.0:5060 or [::]:5060"))
}

/// `10000-20000`.
pub fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let err = || format!("rtp ports: `{s}` is not a range such as 10000-20000");
    let (a, b) = s.split_once('-').ok_or_else(err)?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| err())?,
        b.trim().parse().map_err(|_| err())?,
    );
    if a == 0 || a > b {
        return Err(err());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(
            &file,
            "sip = \"127.0.0.1:5070\"\nrtp_ports = \"30000-30100\"\ntrunks = [\"192.0.2.1\"]\n",
        )
        .unwrap();
        let c = load(
            &file,
            true,
            &Overrides {
                sip: Some("127.0.0.1:6000".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.sip, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(c.rtp_ports, (30000, 30100));
        assert_eq!(c.trunks, Some(vec!["192.0.2.1".parse().unwrap()]));
        assert_eq!(c.http, ServeConfig::default().http);
        assert_eq!(c.small_group, 5);
        std::fs::write(&file, "small_group = 10\n").unwrap();
        let c = load(&file, true, &Overrides::default()).unwrap();
        assert_eq!(c.small_group, 10);
        let o = Overrides {
            small_group: Some(0),
            ..Default::default()
        };
        assert_eq!(load(&file, true, &o).unwrap().small_group, 0);
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(&file, "sip = \"x\"\n").unwrap();
        assert!(
            load(&file, true, &Overrides::default())
                .unwrap_err()
                .contains("sip: `x` is not an address")
        );
        std::fs::write(&file, "\nsipp = \"x\"\n").unwrap();
        let e = load(&file, true, &Overrides::default()).unwrap_err();
        assert!(e.starts_with(&format!("{}:2:", file.display())), "{e}");
        assert!(parse_ports("20000-10000").is_err());
        assert!(load(&dir.path().join("none.toml"), true, &Overrides::default()).is_err());
        assert!(load(&dir.path().join("none.toml"), false, &Overrides::default()).is_ok());
    }
}
