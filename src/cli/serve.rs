//! `kuma serve`: answer phone calls over SIP (see `crate::serve`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::Env;
use crate::serve::config::{Overrides, load};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The settings file (missing is fine unless named explicitly).
    #[arg(long, env = "KUMA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// SIP address (UDP) [default: 0.0.0.0:5060]
    #[arg(long, env = "KUMA_SIP", value_name = "ADDR")]
    sip: Option<String>,
    /// RTP port range [default: 10000-20000]
    #[arg(long, env = "KUMA_RTP_PORTS", value_name = "A-B")]
    rtp_ports: Option<String>,
    /// HTTP address (/healthz, /metrics) [default: 127.0.0.1:8080]
    #[arg(long, env = "KUMA_HTTP", value_name = "ADDR")]
    http: Option<String>,
    /// The IP address callers reach kuma on, announced in SDP (behind NAT).
    #[arg(long, env = "KUMA_PUBLIC_IP", value_name = "IP")]
    public_ip: Option<String>,
    /// Only these addresses may send calls, comma-separated (the station's gateway).
    #[arg(long, env = "KUMA_TRUNKS", value_name = "IP,IP")]
    trunks: Option<String>,
    /// SIP proxies in front of kuma (Kamailio), comma-separated: they may probe with
    /// OPTIONS, and the gateway address they add in X-Kuma-Source counts as the
    /// source of their calls (for --trunks, rate limits and call-backs).
    #[arg(long, env = "KUMA_PROXIES", value_name = "IP,IP")]
    proxies: Option<String>,
    /// Campaign for numbers no campaign lists (otherwise they get 404).
    #[arg(long, env = "KUMA_DEFAULT_CAMPAIGN", value_name = "ID")]
    default_campaign: Option<String>,
    /// The most calls at once; more get 486 Busy Here [default: 1000]
    #[arg(long, env = "KUMA_MAX_CALLS", value_name = "N")]
    max_calls: Option<usize>,
    /// Let callers hear ringing this long before kuma answers, e.g. 2s [default: 0]
    #[arg(long, env = "KUMA_ANSWER_AFTER", value_name = "DURATION")]
    answer_after: Option<String>,
    /// The base URL voice providers reach kuma on, e.g. https://ivr.example.org
    /// (Africa's Talking and Twilio webhooks; prompt URLs are built from it).
    #[arg(long, env = "KUMA_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Only these networks may call the Africa's Talking webhook, comma-separated.
    #[arg(long, env = "KUMA_AT_ALLOW", value_name = "CIDR,CIDR")]
    at_allow: Option<String>,
    /// The web API shows breakdown cells below this many callers as "<N"; 0 or 1
    /// shows every number [default: 5]
    #[arg(long, env = "KUMA_SMALL_GROUP", value_name = "N")]
    small_group: Option<u64>,
    /// The SIP trunk call-backs go through, sip:HOST:PORT
    #[arg(long, env = "KUMA_TRUNK", value_name = "URI")]
    trunk: Option<String>,
    /// The account on the trunk.
    #[arg(long, env = "KUMA_TRUNK_USER", value_name = "USER")]
    trunk_user: Option<String>,
    /// From a missed call to its call-back, e.g. 20s; 0 calls back at once [default: 20s]
    #[arg(long, env = "KUMA_CALLBACK_DELAY", value_name = "DURATION")]
    callback_delay: Option<String>,
    /// SIP over TCP: connections open at once, in all [default: 1024]
    #[arg(long, env = "KUMA_SIP_TCP_MAX_CONNECTIONS", value_name = "N")]
    sip_tcp_max_connections: Option<usize>,
    /// SIP over TCP: connections open at once from one IP address [default: 32]
    #[arg(long, env = "KUMA_SIP_TCP_MAX_PER_SOURCE", value_name = "N")]
    sip_tcp_max_per_source: Option<usize>,
    /// SIP over TCP: close a connection silent this long (no call on it) [default: 120s]
    #[arg(long, env = "KUMA_SIP_TCP_IDLE_TIMEOUT", value_name = "DURATION")]
    sip_tcp_idle_timeout: Option<String>,
    /// HTTP: connections open at once; more get 503 [default: 512]
    #[arg(long, env = "KUMA_HTTP_MAX_CONNECTIONS", value_name = "N")]
    http_max_connections: Option<usize>,
    /// HTTP: time a client has to send a request's headers, from connecting or
    /// from its previous response (so also the idle keep-alive time) [default: 15s]
    #[arg(long, env = "KUMA_HTTP_HEADER_TIMEOUT", value_name = "DURATION")]
    http_header_timeout: Option<String>,
    /// HTTP: the largest request body, in bytes; larger get 413 [default: 1048576]
    #[arg(long, env = "KUMA_HTTP_MAX_BODY", value_name = "BYTES")]
    http_max_body: Option<usize>,
    /// The most writes kept on disk while the database is away; when full, new
    /// calls are refused [default: 100000]
    #[arg(long, env = "KUMA_SPOOL_MAX_RECORDS", value_name = "N")]
    spool_max_records: Option<u64>,
    /// Refuse new calls (503) while this share of the calls' packets goes out
    /// 40 ms late or more, e.g. 10%; `off` never refuses [default: 5%]
    #[arg(long, env = "KUMA_MEDIA_GUARD", value_name = "PERCENT|off")]
    media_guard: Option<String>,
    /// Send the calls' RTP packets through io_uring (one system call per media
    /// thread's wake-up); `off` (or `0`): one `sendto` each. Without io_uring
    /// (an old kernel, a container's seccomp profile) kuma uses `sendto` anyway
    /// [default: on]
    #[arg(long, env = "KUMA_IO_URING", value_name = "on|off",
          value_parser = clap::builder::BoolishValueParser::new())]
    io_uring: Option<bool>,
    /// Run the threads that pace the calls' audio at real-time priority
    /// (SCHED_RR 10) where the system allows it (root, CAP_SYS_NICE, or
    /// systemd's LimitRTPRIO); `off`: at kuma's own priority [default: on]
    #[arg(long, env = "KUMA_MEDIA_REALTIME", value_name = "on|off",
          value_parser = clap::builder::BoolishValueParser::new())]
    media_realtime: Option<bool>,
    /// Let `[callback] country_code` differ from the one this database's
    /// pseudonyms were made with (stop every kuma on the database first):
    /// subscribers and waiting call-backs move to the new pseudonyms; other
    /// callers in national spelling get new ones
    #[arg(long)]
    change_country_code: bool,
}

pub async fn run(env: &Env, args: Args) -> anyhow::Result<ExitCode> {
    let explicit = args.config.is_some();
    let file = args.config.unwrap_or_else(|| PathBuf::from("kuma.toml"));
    let overrides = Overrides {
        sip: args.sip,
        rtp_ports: args.rtp_ports,
        http: args.http,
        public_ip: args.public_ip,
        trunks: args.trunks,
        proxies: args.proxies,
        default_campaign: args.default_campaign,
        max_calls: args.max_calls,
        answer_after: args.answer_after,
        public_url: args.public_url,
        at_allow: args.at_allow,
        at_open: match std::env::var("KUMA_AT_OPEN") {
            Ok(v) => Some(matches!(v.trim(), "1" | "true" | "yes")),
            Err(_) => None,
        },
        recording_hosts: std::env::var("KUMA_RECORDING_HOSTS").ok(),
        metrics_token: std::env::var("KUMA_METRICS_TOKEN").ok(),
        // Secrets come from the environment (or kuma.toml), never from a flag
        // that every user of the machine can read in the process list.
        twilio_auth_token: std::env::var("KUMA_TWILIO_AUTH_TOKEN").ok(),
        at_path_secret: std::env::var("KUMA_AT_PATH_SECRET").ok(),
        small_group: args.small_group,
        trunk: args.trunk,
        trunk_user: args.trunk_user,
        trunk_password: std::env::var("KUMA_TRUNK_PASSWORD").ok(),
        callback_delay: args.callback_delay,
        sip_tcp_max_connections: args.sip_tcp_max_connections,
        sip_tcp_max_per_source: args.sip_tcp_max_per_source,
        sip_tcp_idle_timeout: args.sip_tcp_idle_timeout,
        http_max_connections: args.http_max_connections,
        http_header_timeout: args.http_header_timeout,
        http_max_body: args.http_max_body,
        spool_max_records: args.spool_max_records,
        media_guard: args.media_guard,
        io_uring: args.io_uring,
        media_realtime: args.media_realtime,
    };
    let config = load(&file, explicit, &overrides).map_err(anyhow::Error::msg)?;
    let store = env.store().await?;
    // Another secret would give every caller a new pseudonym, make blocked
    // numbers callable again and leave sealed numbers unreadable: stop instead.
    let keys = env.keys(&store).await?;
    // One pseudonym per caller whichever way their number is written, with the
    // station's country code: the database follows the settings.
    let (keys, joined) = store
        .join_numbers(
            keys,
            config.callback.country_code.as_deref(),
            args.change_country_code,
        )
        .await?;
    if let Some(j) = joined {
        say_joined(&j);
    }
    let crate::store::Keys { pseudonyms, sealer } = keys;
    crate::serve::run(
        config,
        env.campaigns.clone(),
        env.data.clone(),
        store.clone(),
        pseudonyms,
        sealer,
    )
    .await?;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// One line on how the pseudonyms changed with `[callback] country_code`.
fn say_joined(j: &crate::store::Joined) {
    let code = |c: &Option<String>| c.as_deref().map_or("none".to_owned(), |c| format!("+{c}"));
    let (was, now) = (code(&j.was), code(&j.now));
    if j.had_calls {
        tracing::warn!(
            was = %was,
            now = %now,
            callers_carried_over = j.callers,
            merged = j.merged,
            "[callback] country_code changed how national numbers get their pseudonym: \
             subscribers and waiting call-backs keep theirs, with their history; other callers \
             seen before in national spelling get a new one from their next call; \
             `[callback] blocked` entries made before still block"
        );
    } else {
        tracing::info!(was = %was, now = %now, "[callback] country_code: pseudonyms of national numbers follow it");
    }
}
