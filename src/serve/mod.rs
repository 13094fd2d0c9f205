//! `kuma serve`: answers phone calls over SIP and runs them through the campaigns.
//!
//! The shape follows ARCHITECTURE.md: the protocol logic lives in sans-IO machines
//! ([`crate::sip::endpoint::Endpoint`], [`crate::rtp`], [`crate::flow`]); this module
//! is the thin async shell around them:
//!
//! - `sip_shell`: one task owns the SIP UDP socket and the endpoint, feeds it
//!   datagrams and timeouts, sends what it asks, and hands each call's events to the
//!   call;
//! - `call`: a call owns its RTP socket, the pacer, the receiver, the flow
//!   engine and the store writes; its media is paced by `media_loop`, one
//!   thread per core taking turns between its calls on one timer heap, while
//!   the call's SIP side and its end are awaited by a task; each media
//!   thread sends its calls' packets through one io_uring (`uring_send`);
//! - `media_guard`: new calls (and call-backs) wait while the calls' audio goes
//!   out late: 503, so a proxy sends them to another node;
//! - `dialer`: missed calls to a call-back number become queued call-backs; the
//!   dialer claims the due ones from the store and places them through the trunk;
//!   an answered call-back runs like any call;
//! - `catalog`: the campaigns and their prepared prompts, swapped as a whole on
//!   SIGHUP (a call keeps the version it started with);
//! - `sip_tcp`: SIP over TCP, one task per connection, within the connection,
//!   idle and size limits of `config::Limits`;
//! - `http`: `/healthz` and Prometheus `/metrics`, and the HTTP accept loop with
//!   its limits (connections, header size and time, body size);
//! - `quiet`: a log line that stays one line when its cause repeats thousands of
//!   times (refused connections);
//! - `http`: `/healthz` (503 while the database is away or the spool is not yet
//!   applied) and Prometheus `/metrics`;
//! - calls write through [`SpooledStore`]: straight to the database, or to the
//!   spool in `DATA/spool` while the database is away (`crate::store::spool`);
//! - `webhook`: the voice-provider webhooks (Africa's Talking, Twilio) around the
//!   pure `crate::webhook` channel, with `recording_fetch` (the provider's
//!   recordings, fetched with retries); the prompts they play are served by
//!   `crate::web` (`/audio/…`).

mod call;
pub mod config;
mod dialer;
pub mod fetch_policy;
mod http;
mod isolation;
mod media_guard;
mod media_loop;
mod quiet;
mod recording_fetch;
mod rtp_socket;
mod sip_shell;
mod sip_tcp;
mod studio_line;
mod uring_send;
mod webhook_routes;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

pub use crate::catalog::{Catalog, Catalogs};
pub use config::ServeConfig;
/// The media threads' real-time priority (the systemd unit's `LimitRTPRIO`
/// must reach it).
pub use media_loop::REALTIME_PRIORITY;

use crate::outbound::sealed::Sealer;
use crate::secret::Pseudonymizer;
use crate::store::Store;
use crate::store::spool::SpooledStore;

/// What every call shares.
pub struct Shared {
    pub config: ServeConfig,
    pub store: Store,
    /// What calls in progress write through: the store, or the spool while the
    /// database is away.
    pub writes: Arc<SpooledStore>,
    pub pseudonyms: Pseudonymizer,
    /// Seals the numbers of queued call-backs.
    pub sealer: Sealer,
    /// Wakes the dialer when a call-back was queued.
    pub callbacks_queued: tokio::sync::Notify,
    pub data: PathBuf,
    pub catalog: Arc<Catalogs>,
    /// The calls' packet slots and missed slots, and whether new calls are
    /// refused for them (`media_guard`).
    pub media: media_guard::MediaLoad,
    /// `config.callback`, shared by the calls' conversations.
    pub policy: Arc<crate::outbound::Policy>,
    /// The threads that pace the calls' media (`media_loop`), started with
    /// the first call.
    pub media_loops: std::sync::OnceLock<media_loop::MediaLoops>,
}

impl Shared {
    /// The campaigns as they are now; a call keeps the snapshot it started with.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.current()
    }
}

/// Runs the server until SIGTERM/SIGINT and the calls in progress have ended.
pub async fn run(
    config: ServeConfig,
    campaigns: PathBuf,
    data: PathBuf,
    store: Store,
    pseudonyms: Pseudonymizer,
    sealer: Sealer,
) -> anyhow::Result<()> {
    let (dir, cache) = (campaigns.clone(), data.clone());
    isolation::install_panic_hook();
    let private = data.clone();
    match tokio::task::spawn_blocking(move || make_private(&private)).await? {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "kuma serve: {n} files and folders in {} were readable by others: now the owner's only",
            data.display()
        ),
        Err(e) => tracing::warn!(error = %e, "cannot restrict the data folder"),
    }
    let catalog = tokio::task::spawn_blocking(move || Catalog::load(&dir, &cache)).await?;
    catalog.report();
    for line in studio_line::report(&config, &catalog) {
        eprintln!("kuma serve: {line}");
    }
    if catalog.is_empty() {
        anyhow::bail!("no campaign can take calls: fix the problems above (kuma check)");
    }
    let metrics = http::install_metrics()?;
    let (sip_socket, sip_tcp) = bind_sip(config.sip).await?;
    let http_listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http))?;
    let sip_addr = sip_socket.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    // Tests and scripts read this line to find the ports chosen at run time.
    println!("kuma serve: SIP on udp {sip_addr} (and tcp), HTTP on http://{http_addr}");
    tracing::info!(%sip_addr, %http_addr, "listening");
    let (lo, hi) = config.rtp_ports;
    eprintln!(
        "kuma serve: up to {} calls at once; RTP ports {lo}-{hi} allow {} (two ports a call)",
        config.max_calls,
        config::rtp_calls(config.rtp_ports)
    );

    let writes = Arc::new(
        SpooledStore::open(store.clone(), &data.join("spool"), config.spool.clone())
            .context("cannot open the spool")?,
    );
    let replay = Arc::clone(&writes);
    tokio::spawn(async move { replay.replay().await });
    let policy = Arc::new(config.callback.clone());
    let shared = Arc::new(Shared {
        config,
        policy,
        media_loops: std::sync::OnceLock::new(),
        store,
        writes,
        pseudonyms,
        sealer,
        callbacks_queued: tokio::sync::Notify::new(),
        data,
        media: media_guard::MediaLoad::default(),
        catalog: Arc::new(Catalogs::new(catalog)),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(http::serve(
        http_listener,
        metrics,
        Arc::clone(&shared),
        stop_rx.clone(),
    ));
    let reload = Arc::clone(&shared);
    let reload_dir = campaigns.clone();
    tokio::spawn(async move { signals(reload, reload_dir, stop_tx).await });
    let commands = tokio::sync::mpsc::unbounded_channel();
    if let Some(trunk) = shared.config.trunk.clone() {
        let dialer =
            dialer::Dialer::new(Arc::clone(&shared), &trunk, sip_addr, commands.0.clone()).await?;
        tokio::spawn(dialer.run(stop_rx.clone()));
        tokio::spawn(dialer::follow_broadcasts(
            Arc::clone(&shared),
            stop_rx.clone(),
        ));
    } else if catalog_has_callbacks(&shared) && shared.config.trunks.is_some() {
        eprintln!(
            "kuma serve: no [trunk] configured (KUMA_TRUNK): missed calls are queued, but nobody is called back"
        );
    }
    let hooks = &shared.config.webhooks;
    if hooks.at_open && hooks.at_path_secret.is_none() {
        eprintln!(
            "kuma serve: at_open = true: /voice/africastalking takes calls and answers from anyone who finds it; set KUMA_AT_PATH_SECRET instead"
        );
    }
    if catalog_has_callbacks(&shared) {
        for line in callback_warnings(&shared.config) {
            eprintln!("kuma serve: {line}");
        }
    }
    let writes = Arc::clone(&shared.writes);
    let out = sip_shell::run(shared, sip_socket, sip_tcp, sip_addr, stop_rx, commands).await;
    let left = writes.status().pending;
    if left > 0 {
        eprintln!(
            "kuma serve: {left} writes wait in the spool (the database is away); they are applied at the next start"
        );
    }
    out
}

/// Folders 0700 and files 0600 under `dir` (kuma's umask makes new ones so; this
/// mends what an older kuma or a copy left open). The count of those changed.
fn make_private(dir: &std::path::Path) -> std::io::Result<usize> {
    use std::os::unix::fs::PermissionsExt;
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.permissions().mode() & 0o777 != want {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
            changed += 1;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(changed)
}

/// What a station with call-back numbers should know of its settings: without
/// `trunks` no call-back is made (any source could have kuma dial a number it
/// chooses); without `prefixes`, a call-back may go to any number the trunk carries.
pub fn callback_warnings(config: &ServeConfig) -> Vec<String> {
    let mut out = Vec::new();
    if config.trunks.is_none() {
        out.push(
            "call-backs are off: no `trunks` configured (KUMA_TRUNKS, --trunks); only missed calls from a configured trunk are called back".into(),
        );
    }
    if config.callback.prefixes.is_none() {
        out.push(
            "call-backs may go to any number the trunk carries (premium and international included): set [callback] prefixes = [\"+22376\", …]".into(),
        );
    }
    out
}

fn catalog_has_callbacks(shared: &Shared) -> bool {
    shared.catalog().has_callbacks()
}

/// The SIP sockets: UDP, and TCP on the same address and port (RFC 3261 §18).
///
/// With port 0 the system picks a free UDP port, but its TCP twin may be taken,
/// for instance as the local end of some outgoing TCP connection (they share the
/// ephemeral range): then another port is tried, instead of failing at start-up.
async fn bind_sip(
    addr: std::net::SocketAddr,
) -> anyhow::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    const TRIES: usize = 20;
    for attempt in 1..=TRIES {
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("cannot listen for SIP on {addr}"))?;
        let bound = udp.local_addr()?;
        widen_receive_buffer(&udp);
        match tokio::net::TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < TRIES =>
            {
                tracing::debug!(%bound, "TCP twin of the SIP port is taken; trying another port");
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("cannot listen for SIP over TCP on {bound}")));
            }
        }
    }
    anyhow::bail!("cannot find a port free for SIP over both UDP and TCP on {addr}")
}

/// What the SIP socket asks to hold while the shell is busy: 4 MiB, about
/// 2,000 datagrams of kernel memory. The default (208 KiB on Linux, about 90
/// datagrams) overflowed in load runs of 2,000 calls on one core: kuma's SIP
/// socket dropped 700 to 2,000 datagrams a run, INVITEs and BYEs among them,
/// while the shell waited for the core. Linux caps the size at
/// `net.core.rmem_max` (the README's deployment section).
const SIP_RECEIVE_BUFFER: usize = 4 << 20;

/// Asks for [`SIP_RECEIVE_BUFFER`] on the SIP socket; logs what it got.
fn widen_receive_buffer(udp: &tokio::net::UdpSocket) {
    let socket = socket2::SockRef::from(udp);
    if let Err(e) = socket.set_recv_buffer_size(SIP_RECEIVE_BUFFER) {
        tracing::warn!(error = %e, "cannot widen the SIP socket's receive buffer");
        return;
    }
    // Linux reports twice what it grants (the kernel's bookkeeping included).
    if let Ok(got) = socket.recv_buffer_size()
        && got / 2 < SIP_RECEIVE_BUFFER
    {
        tracing::info!(
            granted_kib = got / 2 / 1024,
            asked_kib = SIP_RECEIVE_BUFFER / 1024,
            "the SIP socket's receive buffer is capped by net.core.rmem_max"
        );
    }
}

/// SIGHUP reloads the campaigns; SIGTERM or SIGINT stops taking calls.
async fn signals(shared: Arc<Shared>, campaigns: PathBuf, stop: watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                shared.catalog.reload(campaigns.clone(), shared.data.clone()).await;
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    eprintln!("kuma serve: stopping: no new calls; waiting for the calls in progress");
    let _ = stop.send(true);
}

#[cfg(test)]
mod tests {
    use super::bind_sip;

    #[test]
    fn the_data_folder_is_made_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("recordings/c")).unwrap();
        std::fs::write(data.join("recordings/c/1.wav"), b"x").unwrap();
        std::fs::write(data.join("kuma.db"), b"x").unwrap();
        for p in ["", "recordings", "recordings/c"] {
            std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for p in ["recordings/c/1.wav", "kuma.db"] {
            std::fs::set_permissions(data.join(p), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        assert_eq!(super::make_private(&data).unwrap(), 5);
        let mode = |p: &str| {
            std::fs::metadata(data.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("recordings/c"), 0o700);
        assert_eq!(mode("recordings/c/1.wav"), 0o600);
        assert_eq!(mode("kuma.db"), 0o600);
        assert_eq!(
            super::make_private(&data).unwrap(),
            0,
            "nothing left to change"
        );
    }

    #[tokio::test]
    async fn sip_listens_on_one_port_for_udp_and_tcp() {
        let (udp, tcp) = bind_sip("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_eq!(udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    }

    #[tokio::test]
    async fn a_named_port_whose_tcp_twin_is_taken_is_one_clear_error() {
        // Take a TCP port, then ask for SIP on that port number: UDP binds, TCP
        // cannot, and a port the user named is never swapped for another.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        if std::net::UdpSocket::bind(addr).is_err() {
            return; // someone else holds the UDP twin: nothing to learn here
        }
        let err = bind_sip(addr).await.unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("SIP over TCP on {addr}")),
            "{err:#}"
        );
    }
}
