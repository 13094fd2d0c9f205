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
    /// SIP proxies in front of kuma (Kamailio, `deploy/kamailio/`): they may probe
    /// with OPTIONS, and the gateway address they put in `X-Kuma-Source` is the
    /// source `trunks`, rate limits and call-backs judge (`crate::sip::proxied`).
    pub proxies: Vec<IpAddr>,
    /// Campaign that answers numbers no campaign lists (otherwise 404).
    pub default_campaign: Option<String>,
    /// Dialled numbers that reach the studio line, where a broadcaster with a
    /// PIN records prompts by phone (`crate::conversation::studio`); checked
    /// before the campaigns' numbers. Empty (the default): no studio line.
    pub studio_numbers: Vec<String>,
    /// The language of the studio line's own prompts (`fr` or `en`).
    pub studio_language: String,
    /// The most calls at once; more get 486 Busy Here.
    pub max_calls: usize,
    /// How long SIGTERM waits for calls in progress.
    pub drain: Duration,
    /// Let the caller hear ringing this long before answering (0: answer at once).
    pub answer_after: Duration,
    /// The provider webhooks' settings (`crate::serve::webhook_routes`).
    pub webhooks: WebhookConfig,
    /// The web API shows breakdown cells counting fewer callers than this as
    /// `"<N"` (0 or 1: no masking).
    pub small_group: u64,
    /// The trunk kuma places calls through (call-backs); `None`: no call-backs.
    pub trunk: Option<TrunkConfig>,
    /// The call-back rules.
    pub callback: crate::outbound::Policy,
    /// Bounds on what peers may hold open (SIP over TCP, HTTP).
    pub limits: Limits,
    /// A bearer token `/metrics` asks for; without one, only local requests.
    pub metrics_token: Option<Secret>,
    /// How much the spool may hold while the database is away
    /// (`crate::store::spool`); when full, new calls are refused.
    pub spool: crate::store::spool::SpoolLimits,
    /// When new calls are refused because the calls' audio goes out late
    /// (`super::media_guard`); `None`: never (`media_guard = "off"`).
    pub media_guard: Option<super::media_guard::Thresholds>,
    /// Send the calls' RTP packets through one io_uring per media thread
    /// (`super::uring_send`); false: one `sendto` each, as without io_uring.
    pub io_uring: bool,
    /// Run the media threads at real-time priority where the system allows
    /// it (`super::media_loop::go_realtime`); false: at the process's.
    pub media_realtime: bool,
}

/// How much of kuma a peer may hold: connections, their idle time, request sizes.
/// Over a bound, a peer is refused or closed, and kuma goes on for everybody else.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// SIP over TCP: connections open at once, from everybody.
    pub sip_tcp_max_connections: usize,
    /// SIP over TCP: connections open at once from one IP address.
    pub sip_tcp_max_per_source: usize,
    /// SIP over TCP: a connection that carries neither a message nor a keep-alive
    /// for this long is closed, unless a call in progress uses it.
    pub sip_tcp_idle_timeout: Duration,
    /// HTTP: connections open at once; more get 503.
    pub http_max_connections: usize,
    /// HTTP: a client must send a request's whole header section within this of
    /// connecting or of its previous response (slow clients, "slowloris"); a
    /// kept-alive connection with no new request for this long is closed too.
    pub http_header_timeout: Duration,
    /// HTTP: the largest request body on any route (413 above).
    pub http_max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sip_tcp_max_connections: 1024,
            sip_tcp_max_per_source: 32,
            sip_tcp_idle_timeout: Duration::from_secs(120),
            http_max_connections: 512,
            http_header_timeout: Duration::from_secs(15),
            http_max_body: 1024 * 1024,
        }
    }
}

/// Settings of the voice-provider webhooks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookConfig {
    /// The base URL providers reach kuma on (`https://ivr.example.org`, no
    /// trailing `/`): prompt and callback URLs are built from it, and Twilio
    /// signs the URL it called. Without it the webhooks answer 503.
    pub public_url: Option<String>,
    /// Twilio's auth token: without one, Twilio requests are refused.
    pub twilio_auth_token: Option<Secret>,
    /// A secret path segment for Africa's Talking: the URL becomes
    /// `/voice/africastalking/SECRET` and the bare path answers 404.
    pub at_path_secret: Option<Secret>,
    /// Only these networks may call the Africa's Talking URL (default: any).
    pub at_allow: Option<Vec<ipnet::IpNet>>,
    /// `at_open = true`: the bare `/voice/africastalking` answers without a secret
    /// path (anyone who finds it may post calls; kuma warns at start-up).
    pub at_open: bool,
    /// Where provider recordings may be fetched from (`recording_hosts`).
    pub recording_hosts: super::fetch_policy::FetchPolicy,
}

/// A value never printed (in `Debug`, logs or errors).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `[trunk]`: where outbound calls go.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Host (an IP address or a name, resolved when `kuma serve` starts) and port.
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `HOST:PORT` every outbound request goes through, if the provider wants one.
    pub outbound_proxy: Option<String>,
    /// The most outbound calls at once on this trunk.
    pub max_calls: usize,
}

impl std::fmt::Debug for TrunkConfig {
    // The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("outbound_proxy", &self.outbound_proxy)
            .field("max_calls", &self.max_calls)
            .finish_non_exhaustive()
    }
}

/// `[trunk]` in `kuma.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkFile {
    pub uri: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub outbound_proxy: Option<String>,
    pub max_calls: Option<usize>,
}

/// `[callback]` in `kuma.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackFile {
    pub delay: Option<String>,
    pub per_caller_per_day: Option<u32>,
    pub per_campaign_per_day: Option<u32>,
    pub min_interval: Option<String>,
    pub retries: Option<u32>,
    pub retry_after: Option<String>,
    pub ring_timeout: Option<String>,
    /// Pseudonyms (`c_…`) that never get a call-back.
    pub blocked: Option<Vec<String>>,
    /// Subscribers are called this long after each broadcast starts.
    pub after_broadcast: Option<String>,
    /// `HH:MM-HH:MM`, local time of each campaign: no call to subscribers then.
    pub quiet_hours: Option<String>,
    /// E.164 prefixes call-backs may go to (`["+22376", "+22366"]`).
    pub prefixes: Option<Vec<String>>,
    /// The country code of the numbers the gateway sends without one (`"223"`).
    pub country_code: Option<String>,
    /// At most this many subscribers per campaign (default 1000).
    pub subscribers_per_campaign: Option<u32>,
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
            proxies: Vec::new(),
            default_campaign: None,
            studio_numbers: Vec::new(),
            studio_language: "fr".into(),
            max_calls: 1000,
            drain: Duration::from_secs(600),
            answer_after: Duration::ZERO,
            webhooks: WebhookConfig::default(),
            small_group: crate::results::SMALL_GROUP,
            trunk: None,
            callback: crate::outbound::Policy::default(),
            limits: Limits::default(),
            metrics_token: None,
            spool: crate::store::spool::SpoolLimits::default(),
            media_guard: Some(super::media_guard::Thresholds::default()),
            io_uring: true,
            media_realtime: true,
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
    pub proxies: Option<Vec<String>>,
    pub default_campaign: Option<String>,
    pub studio_numbers: Option<Vec<String>>,
    pub studio_language: Option<String>,
    pub max_calls: Option<usize>,
    pub drain: Option<String>,
    pub answer_after: Option<String>,
    pub public_url: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub at_path_secret: Option<String>,
    pub at_allow: Option<Vec<String>>,
    pub at_open: Option<bool>,
    pub recording_hosts: Option<Vec<String>>,
    pub metrics_token: Option<String>,
    pub small_group: Option<u64>,
    pub trunk: Option<TrunkFile>,
    pub callback: Option<CallbackFile>,
    pub sip_tcp_max_connections: Option<usize>,
    pub sip_tcp_max_per_source: Option<usize>,
    pub sip_tcp_idle_timeout: Option<String>,
    pub http_max_connections: Option<usize>,
    pub http_header_timeout: Option<String>,
    pub http_max_body: Option<usize>,
    pub spool_max_records: Option<u64>,
    pub spool_max_bytes: Option<u64>,
    /// `"off"`, or the share of late packets that makes the node busy (`"5%"`).
    pub media_guard: Option<String>,
    pub io_uring: Option<bool>,
    pub media_realtime: Option<bool>,
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
    /// Comma-separated (`KUMA_PROXIES`).
    pub proxies: Option<String>,
    pub default_campaign: Option<String>,
    pub max_calls: Option<usize>,
    pub answer_after: Option<String>,
    pub public_url: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub at_path_secret: Option<String>,
    /// Comma-separated networks (`196.201.214.0/24,…`).
    pub at_allow: Option<String>,
    /// `KUMA_AT_OPEN=true`.
    pub at_open: Option<bool>,
    /// Comma-separated (`KUMA_RECORDING_HOSTS`).
    pub recording_hosts: Option<String>,
    /// `KUMA_METRICS_TOKEN`.
    pub metrics_token: Option<String>,
    pub small_group: Option<u64>,
    /// `sip:HOST:PORT` (`KUMA_TRUNK`).
    pub trunk: Option<String>,
    pub trunk_user: Option<String>,
    pub trunk_password: Option<String>,
    pub callback_delay: Option<String>,
    pub sip_tcp_max_connections: Option<usize>,
    pub sip_tcp_max_per_source: Option<usize>,
    pub sip_tcp_idle_timeout: Option<String>,
    pub http_max_connections: Option<usize>,
    pub http_header_timeout: Option<String>,
    pub http_max_body: Option<usize>,
    pub spool_max_records: Option<u64>,
    /// `KUMA_MEDIA_GUARD`, `--media-guard`.
    pub media_guard: Option<String>,
    /// `KUMA_IO_URING`, `--io-uring`.
    pub io_uring: Option<bool>,
    /// `KUMA_MEDIA_REALTIME`, `--media-realtime`.
    pub media_realtime: Option<bool>,
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
    let hooks = webhooks(&file, o)?;
    let limits = limits(&file, o)?;
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
    let proxies = o
        .proxies
        .as_ref()
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect())
        .or(file.proxies);
    if let Some(list) = proxies {
        c.proxies = list
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("proxies: `{s}` is not an IP address"))
            })
            .collect::<Result<_, String>>()?;
    }
    c.default_campaign = pick(&o.default_campaign, &file.default_campaign);
    if let Some(numbers) = file.studio_numbers {
        if let Some(bad) = numbers.iter().find(|n| n.trim().is_empty()) {
            return Err(format!("studio_numbers: `{bad}` is not a number"));
        }
        c.studio_numbers = numbers;
    }
    if let Some(lang) = file.studio_language {
        if !crate::conversation::studio::LANGUAGES.contains(&lang.as_str()) {
            return Err(format!(
                "studio_language: `{lang}`: the studio line speaks {}",
                crate::conversation::studio::LANGUAGES.join(" or ")
            ));
        }
        c.studio_language = lang;
    }
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
    let calls = rtp_calls(c.rtp_ports);
    // Checked here, once both are known, so `kuma serve` refuses to start rather
    // than refusing calls later for want of ports.
    if calls < c.max_calls {
        let (lo, hi) = c.rtp_ports;
        return Err(format!(
            "rtp_ports {lo}-{hi} allow {calls} calls (two ports a call), fewer than max_calls {}: widen the range or lower max_calls",
            c.max_calls
        ));
    }
    if let Some(n) = o.small_group.or(file.small_group) {
        c.small_group = n;
    }
    if let Some(d) = &file.drain {
        c.drain = at_most(
            crate::campaign::parse_duration(d).map_err(|e| format!("drain: {e}"))?,
            "drain",
            Duration::from_secs(24 * 3600),
        )?;
    }
    c.webhooks = hooks;
    c.metrics_token = pick(&o.metrics_token, &file.metrics_token).map(Secret);
    c.limits = limits;
    let trunk_file = file.trunk.unwrap_or_default();
    if let Some(uri) = pick(&o.trunk, &trunk_file.uri) {
        let (host, port) = parse_trunk_uri(&uri)?;
        let max_calls = trunk_file.max_calls.unwrap_or(10);
        if max_calls == 0 {
            return Err("trunk.max_calls must be at least 1".into());
        }
        c.trunk = Some(TrunkConfig {
            host,
            port,
            user: pick(&o.trunk_user, &trunk_file.user),
            password: pick(&o.trunk_password, &trunk_file.password),
            outbound_proxy: trunk_file.outbound_proxy,
            max_calls,
        });
    }
    if let Some(n) = o.spool_max_records.or(file.spool_max_records) {
        if n == 0 {
            return Err("spool_max_records must be at least 1".into());
        }
        c.spool.max_records = n;
    }
    if let Some(n) = file.spool_max_bytes {
        if n < 64 * 1024 {
            return Err("spool_max_bytes must be at least 65536".into());
        }
        c.spool.max_bytes = n;
    }
    if let Some(v) = pick(&o.media_guard, &file.media_guard) {
        c.media_guard = super::media_guard::Thresholds::parse(&v)?;
    }
    if let Some(on) = o.io_uring.or(file.io_uring) {
        c.io_uring = on;
    }
    if let Some(on) = o.media_realtime.or(file.media_realtime) {
        c.media_realtime = on;
    }
    let cb = file.callback.unwrap_or_default();
    let p = &mut c.callback;
    if let Some(d) = pick(&o.callback_delay, &cb.delay) {
        p.delay = at_most(
            duration_or_zero(&d, "callback.delay")?,
            "callback.delay",
            WEEK,
        )?;
    }
    if let Some(d) = &cb.min_interval {
        p.min_interval = at_most(
            duration_or_zero(d, "callback.min_interval")?,
            "callback.min_interval",
            WEEK,
        )?;
    }
    if let Some(d) = &cb.retry_after {
        p.retry_after = at_most(
            crate::campaign::parse_duration(d).map_err(|e| format!("callback.retry_after: {e}"))?,
            "callback.retry_after",
            WEEK,
        )?;
    }
    if let Some(d) = &cb.ring_timeout {
        p.ring_timeout = at_most(
            crate::campaign::parse_duration(d)
                .map_err(|e| format!("callback.ring_timeout: {e}"))?,
            "callback.ring_timeout",
            Duration::from_secs(300),
        )?;
    }
    if let Some(d) = &cb.after_broadcast {
        p.after_broadcast = at_most(
            duration_or_zero(d, "callback.after_broadcast")?,
            "callback.after_broadcast",
            WEEK,
        )?;
    }
    if let Some(q) = &cb.quiet_hours {
        p.quiet_hours = Some(
            crate::outbound::QuietHours::parse(q)
                .map_err(|e| format!("callback.quiet_hours: {e}"))?,
        );
    }
    if let Some(prefixes) = cb.prefixes {
        if let Some(bad) = prefixes.iter().find(|p| {
            let digits = p.strip_prefix('+').unwrap_or("");
            !(1..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit())
        }) {
            return Err(format!(
                "callback.prefixes: `{bad}` is not an E.164 prefix such as \"+22376\""
            ));
        }
        p.prefixes = Some(prefixes);
    }
    if let Some(cc) = cb.country_code {
        let digits = cc.trim_start_matches('+');
        if !(1..=3).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "callback.country_code: `{cc}` is not a country calling code such as \"223\""
            ));
        }
        p.country_code = Some(digits.to_owned());
    }
    p.per_caller_per_day = cb.per_caller_per_day.unwrap_or(p.per_caller_per_day);
    p.per_campaign_per_day = cb.per_campaign_per_day.unwrap_or(p.per_campaign_per_day);
    p.retries = cb.retries.unwrap_or(p.retries);
    p.subscribers_per_campaign = cb
        .subscribers_per_campaign
        .unwrap_or(p.subscribers_per_campaign);
    if let Some(blocked) = cb.blocked {
        if let Some(bad) = blocked.iter().find(|b| !b.starts_with("c_")) {
            return Err(format!(
                "callback.blocked: `{bad}` is not a pseudonym (c_…); list pseudonyms, never numbers (`kuma callbacks` shows them; `kuma secret pseudonym` gives a number's)"
            ));
        }
        p.blocked = blocked;
    }
    Ok(c)
}

/// How many calls an RTP port range allows: each call takes an even port for RTP
/// and leaves the odd one after it for RTCP (`super::call::bind_rtp`).
pub fn rtp_calls((lo, hi): (u16, u16)) -> usize {
    (usize::from(hi) + 1).saturating_sub(usize::from(lo)) / 2
}

fn limits(file: &FileConfig, o: &Overrides) -> Result<Limits, String> {
    let mut l = Limits::default();
    let count = |flag: Option<usize>, file: Option<usize>, what: &str, into: &mut usize| {
        if let Some(n) = flag.or(file) {
            if n == 0 {
                return Err(format!("{what} must be at least 1"));
            }
            *into = n;
        }
        Ok(())
    };
    let time = |flag: &Option<String>, file: &Option<String>, what: &str, into: &mut Duration| {
        if let Some(d) = flag.clone().or_else(|| file.clone()) {
            let d = crate::campaign::parse_duration(&d).map_err(|e| format!("{what}: {e}"))?;
            if d.is_zero() {
                return Err(format!("{what} must be longer than 0"));
            }
            *into = d;
        }
        Ok::<(), String>(())
    };
    count(
        o.sip_tcp_max_connections,
        file.sip_tcp_max_connections,
        "sip_tcp_max_connections",
        &mut l.sip_tcp_max_connections,
    )?;
    count(
        o.sip_tcp_max_per_source,
        file.sip_tcp_max_per_source,
        "sip_tcp_max_per_source",
        &mut l.sip_tcp_max_per_source,
    )?;
    count(
        o.http_max_connections,
        file.http_max_connections,
        "http_max_connections",
        &mut l.http_max_connections,
    )?;
    count(
        o.http_max_body,
        file.http_max_body,
        "http_max_body",
        &mut l.http_max_body,
    )?;
    time(
        &o.sip_tcp_idle_timeout,
        &file.sip_tcp_idle_timeout,
        "sip_tcp_idle_timeout",
        &mut l.sip_tcp_idle_timeout,
    )?;
    time(
        &o.http_header_timeout,
        &file.http_header_timeout,
        "http_header_timeout",
        &mut l.http_header_timeout,
    )?;
    Ok(l)
}

fn webhooks(file: &FileConfig, o: &Overrides) -> Result<WebhookConfig, String> {
    let pick = |flag: &Option<String>, file: &Option<String>| {
        flag.clone()
            .or_else(|| file.clone())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut w = WebhookConfig::default();
    if let Some(url) = pick(&o.public_url, &file.public_url) {
        let url = url.trim_end_matches('/').to_string();
        url.strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .filter(|r| !r.is_empty() && !r.contains(['?', '#', ' ']))
            .ok_or_else(|| {
                format!("public_url: `{url}` is not a URL such as https://ivr.example.org")
            })?;
        w.public_url = Some(url);
    }
    w.twilio_auth_token = pick(&o.twilio_auth_token, &file.twilio_auth_token).map(Secret);
    if let Some(s) = pick(&o.at_path_secret, &file.at_path_secret) {
        if s.len() < 16
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(
                "at_path_secret: at least 16 letters, digits, `-` or `_` (it is a password)".into(),
            );
        }
        w.at_path_secret = Some(Secret(s));
    }
    w.at_open = o.at_open.or(file.at_open).unwrap_or(false);
    let hosts: Option<Vec<String>> = o
        .recording_hosts
        .as_ref()
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect())
        .or_else(|| file.recording_hosts.clone());
    if let Some(hosts) = hosts {
        w.recording_hosts = super::fetch_policy::FetchPolicy::parse(&hosts)?;
    }
    let allow = o
        .at_allow
        .as_ref()
        .map(|t| t.split(',').map(|s| s.trim().to_string()).collect())
        .or_else(|| file.at_allow.clone());
    if let Some(list) = allow {
        let nets: Result<Vec<ipnet::IpNet>, String> = list
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!(
                            "at_allow: `{s}` is not an address or network such as 196.201.214.0/24"
                        )
                    })
            })
            .collect();
        w.at_allow = Some(nets?);
    }
    Ok(w)
}

/// `sip:HOST:PORT` (or `sip:HOST`, port 5060; `HOST:PORT` is accepted too).
pub fn parse_trunk_uri(uri: &str) -> Result<(String, u16), String> {
    let err = || format!("trunk: `{uri}` is not a SIP address such as sip:192.0.2.1:5060");
    let rest = uri.trim();
    let rest = rest
        .strip_prefix("sip:")
        .or_else(|| rest.strip_prefix("SIP:"))
        .unwrap_or(rest);
    let rest = rest.split(';').next().unwrap_or("");
    if rest.is_empty() || rest.contains('@') {
        return Err(err());
    }
    if let Ok(addr) = rest.parse::<std::net::SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    if let Ok(ip) = rest.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok((ip.to_string(), 5060));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| err())?),
        None => (rest, 5060),
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !valid || port == 0 {
        return Err(err());
    }
    Ok((host.to_owned(), port))
}

/// Call-back delays and intervals: a week at most (a typo such as `20d` for `20s`
/// would hold every call-back for weeks).
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// `d` if it is at most `max`; else one line saying so.
fn at_most(d: Duration, what: &str, max: Duration) -> Result<Duration, String> {
    if d > max {
        return Err(format!(
            "{what}: `{}` is longer than the most allowed, {}",
            crate::campaign::format_duration(d),
            crate::campaign::format_duration(max)
        ));
    }
    Ok(d)
}

fn duration_or_zero(d: &str, what: &str) -> Result<Duration, String> {
    if d.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    crate::campaign::parse_duration(d).map_err(|e| format!("{what}: {e}"))
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
            "sip = \"127.0.0.1:5070\"\nrtp_ports = \"30000-30100\"\nmax_calls = 50\ntrunks = [\"192.0.2.1\"]\n",
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
    fn proxies_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(&file, "proxies = [\"10.0.0.2\"]\n").unwrap();
        let c = load(&file, true, &Overrides::default()).unwrap();
        assert_eq!(c.proxies, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
        let o = Overrides {
            proxies: Some("10.0.0.3, 2001:db8::3".into()),
            ..Default::default()
        };
        assert_eq!(load(&file, true, &o).unwrap().proxies.len(), 2);
        let o = Overrides {
            proxies: Some("kamailio.lan".into()),
            ..Default::default()
        };
        let err = load(&file, true, &o).unwrap_err();
        assert!(err.contains("proxies: `kamailio.lan`"), "{err}");
        assert!(ServeConfig::default().proxies.is_empty(), "none by default");
    }

    #[test]
    fn the_media_guard_is_on_at_five_percent_until_set_otherwise() {
        use crate::serve::media_guard::Thresholds;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(&file, "").unwrap();
        let c = load(&file, true, &Overrides::default()).unwrap();
        assert_eq!(c.media_guard, Some(Thresholds::default()));
        std::fs::write(&file, "media_guard = \"off\"\n").unwrap();
        assert_eq!(
            load(&file, true, &Overrides::default())
                .unwrap()
                .media_guard,
            None
        );
        let o = Overrides {
            media_guard: Some("12%".into()),
            ..Default::default()
        };
        let c = load(&file, true, &o).unwrap();
        assert_eq!(c.media_guard.map(|t| t.busy_permille), Some(120));
        std::fs::write(&file, "media_guard = \"lots\"\n").unwrap();
        let err = load(&file, true, &Overrides::default()).unwrap_err();
        assert!(err.starts_with("media_guard: `lots` is neither"), "{err}");
    }

    #[test]
    fn io_uring_is_used_unless_turned_off_and_a_flag_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(&file, "").unwrap();
        assert!(load(&file, true, &Overrides::default()).unwrap().io_uring);
        std::fs::write(&file, "io_uring = false\n").unwrap();
        assert!(!load(&file, true, &Overrides::default()).unwrap().io_uring);
        let o = Overrides {
            io_uring: Some(true),
            ..Default::default()
        };
        assert!(load(&file, true, &o).unwrap().io_uring);
        std::fs::write(&file, "io_uring = \"no\"\n").unwrap();
        assert!(load(&file, true, &Overrides::default()).is_err());
    }

    #[test]
    fn media_threads_ask_for_real_time_unless_turned_off_and_a_flag_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(&file, "").unwrap();
        assert!(
            load(&file, true, &Overrides::default())
                .unwrap()
                .media_realtime
        );
        std::fs::write(&file, "media_realtime = false\n").unwrap();
        assert!(
            !load(&file, true, &Overrides::default())
                .unwrap()
                .media_realtime
        );
        let o = Overrides {
            media_realtime: Some(true),
            ..Default::default()
        };
        assert!(load(&file, true, &o).unwrap().media_realtime);
        std::fs::write(&file, "media_realtime = 1\n").unwrap();
        assert!(load(&file, true, &Overrides::default()).is_err());
    }

    #[test]
    fn the_studio_line_is_closed_until_numbers_are_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        let c = load(&file, false, &Overrides::default()).unwrap();
        assert!(c.studio_numbers.is_empty(), "no studio line by default");
        assert_eq!(c.studio_language, "fr");
        std::fs::write(
            &file,
            "studio_numbers = [\"2999\"]\nstudio_language = \"en\"\n",
        )
        .unwrap();
        let c = load(&file, true, &Overrides::default()).unwrap();
        assert_eq!(c.studio_numbers, vec!["2999".to_string()]);
        assert_eq!(c.studio_language, "en");
        std::fs::write(&file, "studio_language = \"bm\"\n").unwrap();
        let err = load(&file, true, &Overrides::default()).unwrap_err();
        assert!(err.contains("studio_language: `bm`"), "{err}");
        std::fs::write(&file, "studio_numbers = [\" \"]\n").unwrap();
        assert!(load(&file, true, &Overrides::default()).is_err());
    }

    #[test]
    fn webhook_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(
            &file,
            "public_url = \"https://ivr.example.org/\"\nat_allow = [\"192.0.2.0/24\", \"198.51.100.7\"]\n",
        )
        .unwrap();
        let c = load(
            &file,
            true,
            &Overrides {
                twilio_auth_token: Some("tok".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let w = &c.webhooks;
        assert_eq!(w.public_url.as_deref(), Some("https://ivr.example.org"));
        assert_eq!(w.twilio_auth_token, Some(Secret("tok".into())));
        assert_eq!(w.at_allow.as_ref().map(Vec::len), Some(2));
        assert!(
            !format!("{c:?}").contains("tok\""),
            "the token is never printed"
        );
        let bad = |o: Overrides| load(&file, true, &o).unwrap_err();
        assert!(
            bad(Overrides {
                public_url: Some("ivr.example.org".into()),
                ..Default::default()
            })
            .contains("public_url")
        );
        assert!(
            bad(Overrides {
                at_path_secret: Some("short".into()),
                ..Default::default()
            })
            .contains("at_path_secret")
        );
        assert!(
            bad(Overrides {
                at_allow: Some("10.0.0.0/33".into()),
                ..Default::default()
            })
            .contains("at_allow")
        );
    }

    #[test]
    fn trunk_and_callback_settings_with_their_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(
            &file,
            "[trunk]\nuri = \"sip:trunk.example.org\"\nuser = \"kuma\"\npassword = \"pw\"\nmax_calls = 4\n\
             [callback]\ndelay = \"30s\"\nretries = 1\nretry_after = \"10m\"\nblocked = [\"c_00\"]\n\
             quiet_hours = \"21:00-07:00\"\nafter_broadcast = \"30m\"\n\
             prefixes = [\"+22376\", \"+22366\"]\ncountry_code = \"223\"\nsubscribers_per_campaign = 250\n",
        )
        .unwrap();
        let c = load(&file, true, &Overrides::default()).unwrap();
        assert_eq!(
            c.callback.prefixes,
            Some(vec!["+22376".to_string(), "+22366".to_string()])
        );
        assert_eq!(c.callback.country_code.as_deref(), Some("223"));
        assert_eq!(c.callback.subscribers_per_campaign, 250);
        let t = c.trunk.unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.max_calls),
            ("trunk.example.org", 5060, 4)
        );
        assert_eq!(t.password.as_deref(), Some("pw"));
        assert_eq!(c.callback.delay, Duration::from_secs(30));
        assert_eq!(c.callback.retries, 1);
        assert_eq!(c.callback.retry_after, Duration::from_secs(600));
        assert_eq!(c.callback.after_broadcast, Duration::from_secs(1800));
        assert!(c.callback.quiet_hours.is_some());
        let o = Overrides {
            trunk: Some("sip:127.0.0.1:5070".into()),
            trunk_password: Some("env".into()),
            callback_delay: Some("0".into()),
            ..Default::default()
        };
        let c = load(&file, true, &o).unwrap();
        let t = c.trunk.unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 5070));
        assert_eq!(t.password.as_deref(), Some("env"));
        assert_eq!(c.callback.delay, Duration::ZERO);
        let absurd = Overrides {
            callback_delay: Some("20d".into()),
            ..Default::default()
        };
        let err = load(&file, true, &absurd).unwrap_err();
        assert!(
            err.contains("callback.delay") && err.contains("7d"),
            "{err}"
        );
        assert!(parse_trunk_uri("sip:+223@host").is_err());
        assert!(parse_trunk_uri("sip:host:x").is_err());
        assert_eq!(
            parse_trunk_uri("sip:[::1]:5080").unwrap(),
            ("::1".to_string(), 5080)
        );
        for (bad, says) in [
            ("prefixes = [\"22376\"]", "callback.prefixes"),
            ("prefixes = [\"+2237x\"]", "callback.prefixes"),
            ("country_code = \"2233\"", "callback.country_code"),
        ] {
            std::fs::write(&file, format!("[callback]\n{bad}\n")).unwrap();
            let err = load(&file, true, &Overrides::default()).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        std::fs::write(&file, "[callback]\nblocked = [\"+22370123456\"]\n").unwrap();
        assert!(
            load(&file, true, &Overrides::default())
                .unwrap_err()
                .contains("not a pseudonym")
        );
        assert!(ServeConfig::default().trunk.is_none());
    }

    #[test]
    fn limits_and_the_rtp_range_against_max_calls() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        std::fs::write(
            &file,
            "sip_tcp_max_connections = 10\nsip_tcp_idle_timeout = \"5s\"\nhttp_max_body = 100\n",
        )
        .unwrap();
        let o = Overrides {
            sip_tcp_max_connections: Some(20),
            http_header_timeout: Some("2s".into()),
            ..Default::default()
        };
        let l = load(&file, true, &o).unwrap().limits;
        assert_eq!(l.sip_tcp_max_connections, 20);
        assert_eq!(
            l.sip_tcp_max_per_source,
            Limits::default().sip_tcp_max_per_source
        );
        assert_eq!(l.sip_tcp_idle_timeout, Duration::from_secs(5));
        assert_eq!(l.http_header_timeout, Duration::from_secs(2));
        assert_eq!(l.http_max_body, 100);
        let bad = |o: Overrides| load(&file, true, &o).unwrap_err();
        assert!(
            bad(Overrides {
                sip_tcp_max_per_source: Some(0),
                ..Default::default()
            })
            .contains("sip_tcp_max_per_source must be at least 1")
        );
        assert!(
            bad(Overrides {
                http_header_timeout: Some("0s".into()),
                ..Default::default()
            })
            .contains("http_header_timeout must be longer than 0")
        );

        // Two ports a call: the defaults fit, a range one call short does not.
        let d = ServeConfig::default();
        assert_eq!(rtp_calls(d.rtp_ports), 5000);
        assert!(rtp_calls(d.rtp_ports) >= d.max_calls);
        assert_eq!(rtp_calls((10000, 10001)), 1);
        assert_eq!(rtp_calls((10000, 10000)), 0);
        let short = Overrides {
            rtp_ports: Some("10000-10009".into()),
            max_calls: Some(6),
            ..Default::default()
        };
        assert_eq!(
            bad(short.clone()),
            "rtp_ports 10000-10009 allow 5 calls (two ports a call), fewer than max_calls 6: widen the range or lower max_calls"
        );
        let fits = Overrides {
            max_calls: Some(5),
            ..short
        };
        assert!(load(&file, true, &fits).is_ok());
    }

    #[test]
    fn spool_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kuma.toml");
        let c = load(&file, false, &Overrides::default()).unwrap();
        assert_eq!(c.spool, crate::store::spool::SpoolLimits::default());
        std::fs::write(
            &file,
            "spool_max_records = 500\nspool_max_bytes = 1048576\n",
        )
        .unwrap();
        let c = load(&file, true, &Overrides::default()).unwrap();
        assert_eq!((c.spool.max_records, c.spool.max_bytes), (500, 1 << 20));
        let o = Overrides {
            spool_max_records: Some(7),
            ..Default::default()
        };
        assert_eq!(load(&file, true, &o).unwrap().spool.max_records, 7);
        std::fs::write(&file, "spool_max_records = 0\n").unwrap();
        assert!(load(&file, true, &Overrides::default()).is_err());
        std::fs::write(&file, "spool_max_bytes = 10\n").unwrap();
        assert!(load(&file, true, &Overrides::default()).is_err());
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
