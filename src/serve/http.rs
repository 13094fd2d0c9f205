//! The HTTP side of `kuma serve`: `/healthz` for supervisors and load balancers,
//! `/metrics` for Prometheus, the voice-provider webhooks (`super::webhook`) and the
//! web API (`crate::web`).

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Metric names, in one place so dashboards and code agree.
pub mod names {
    pub const CALLS_ACTIVE: &str = "kuma_calls_active";
    pub use crate::conversation::metrics::{ANSWERS_TOTAL, CALLS_TOTAL};
    pub const RTP_PACKETS_SENT: &str = "kuma_rtp_packets_sent_total";
    pub const RTP_PACKETS_LATE: &str = "kuma_rtp_packets_late_total";
    pub const RTP_PACKETS_SENT_AT_ONCE: &str = "kuma_rtp_packets_sent_at_once_total";
    pub const MISSED_CALLS: &str = "kuma_missed_calls_total";
    pub const CALLBACK_ATTEMPTS: &str = "kuma_callback_attempts_total";
    pub const PANICS: &str = "kuma_panics_total";
    pub const RECORDINGS_REFUSED: &str = "kuma_recording_fetches_refused_total";
    pub const SIP_TCP_CONNECTIONS: &str = "kuma_sip_tcp_connections";
    pub const SIP_TCP_REFUSED: &str = "kuma_sip_tcp_refused_total";
    pub const SIP_TCP_CLOSED: &str = "kuma_sip_tcp_closed_total";
    pub const HTTP_CONNECTIONS: &str = "kuma_http_connections";
    pub const HTTP_REFUSED: &str = "kuma_http_refused_total";
    pub const SIP_REFUSED: &str = "kuma_sip_refused_total";
    /// 1 while new calls are refused because the calls' audio goes out late.
    pub const MEDIA_BUSY: &str = "kuma_media_busy";
    pub const STUDIO_PINS: &str = "kuma_studio_pins_total";
    pub const STUDIO_TAKES: &str = "kuma_studio_takes_total";
}

pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot start the metrics recorder: {e}"))?;
    metrics::describe_gauge!(names::CALLS_ACTIVE, "calls in progress");
    metrics::describe_counter!(names::CALLS_TOTAL, "calls ended, by outcome");
    metrics::describe_counter!(
        names::STUDIO_PINS,
        "PINs entered on the studio line, by result (ok, wrong, locked, unchecked)"
    );
    metrics::describe_counter!(
        names::STUDIO_TAKES,
        "takes kept on the studio line, by result (stored, refused)"
    );
    metrics::describe_counter!(names::ANSWERS_TOTAL, "poll answers stored");
    metrics::describe_counter!(names::RTP_PACKETS_SENT, "RTP packets sent to callers");
    metrics::describe_counter!(
        names::RTP_PACKETS_LATE,
        "RTP packets sent more than 2 ms after their time"
    );
    metrics::describe_counter!(
        names::RTP_PACKETS_SENT_AT_ONCE,
        "RTP packets sent with a system call of their own, not through the media thread's io_uring"
    );
    metrics::describe_counter!(
        names::MISSED_CALLS,
        "calls to a call-back number, by what became of them (queued, or the refusal)"
    );
    metrics::describe_counter!(
        names::CALLBACK_ATTEMPTS,
        "call-back and subscriber calls placed, by how they ended"
    );
    metrics::describe_counter!(
        names::PANICS,
        "bugs caught: a SIP message dropped (where=sip) or a call hung up (where=call) after a panic"
    );
    metrics::describe_counter!(
        names::RECORDINGS_REFUSED,
        "provider recording URLs never fetched: not HTTPS, not in recording_hosts, or not public"
    );
    metrics::describe_gauge!(names::SIP_TCP_CONNECTIONS, "SIP TCP connections open");
    metrics::describe_counter!(
        names::SIP_TCP_REFUSED,
        "SIP TCP connections closed at once: over the limit in all or per source, or not from a trunk while trunks are set"
    );
    metrics::describe_counter!(
        names::SIP_TCP_CLOSED,
        "SIP TCP connections closed by kuma: idle, unframeable, or not reading"
    );
    metrics::describe_gauge!(names::HTTP_CONNECTIONS, "HTTP connections open");
    metrics::describe_counter!(
        names::HTTP_REFUSED,
        "HTTP connections answered 503, over the connection limit"
    );
    metrics::describe_counter!(
        names::SIP_REFUSED,
        "SIP messages refused or dropped by the endpoint, by reason (see sip::Stats)"
    );
    use crate::store::spool::metric;
    metrics::describe_counter!(
        metric::SPOOLED,
        "writes kept in the spool because the database was away"
    );
    metrics::describe_counter!(metric::REPLAYED, "spooled writes applied to the database");
    metrics::describe_counter!(
        metric::REJECTED,
        "spooled writes set aside in rejected.jsonl (the database refuses them)"
    );
    metrics::describe_gauge!(metric::PENDING, "writes waiting in the spool");
    metrics::gauge!(names::CALLS_ACTIVE).set(0.0);
    metrics::gauge!(names::SIP_TCP_CONNECTIONS).set(0.0);
    metrics::gauge!(names::HTTP_CONNECTIONS).set(0.0);
    Ok(handle)
}

/// The largest request head (request line and headers): 431 above. Browsers'
/// cookies and a proxy's `Forwarded` lines fit many times over.
pub const MAX_HEAD: usize = 32 * 1024;

/// Connections over the limit are answered 503 by at most this many tasks at
/// once; beyond that they are closed without a word.
const MAX_REFUSING: usize = 64;
/// `ok` (200) while the database takes the writes; otherwise 503 with what is
/// wrong, so that a load balancer sends new calls elsewhere:
/// `{"status":"degraded","database":"unreachable"|"reachable","spooled":N}`
/// (reachable with writes still spooled: the spool is being applied).
async fn health(
    axum::extract::State(shared): axum::extract::State<std::sync::Arc<super::Shared>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let s = shared.writes.status();
    if s.database_reachable && s.pending == 0 {
        return "ok\n".into_response();
    }
    let body = serde_json::json!({
        "status": "degraded",
        "database": if s.database_reachable { "reachable" } else { "unreachable" },
        "spooled": s.pending,
        "spool_full": s.full,
    });
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

pub async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    shared: std::sync::Arc<super::Shared>,
    stop: watch::Receiver<bool>,
) {
    let limits = shared.config.limits.clone();
    let app = Router::new()
        .route("/healthz", get(health))
        .route(
            "/metrics",
            get({
                let token = shared.config.metrics_token.clone();
                move |req: axum::extract::Request| {
                    std::future::ready(metrics_page(&metrics, token.as_ref(), &req))
                }
            }),
        )
        .with_state(std::sync::Arc::clone(&shared))
        .merge(super::webhook_routes::router(std::sync::Arc::clone(
            &shared,
        )))
        .merge(crate::web::router(crate::web::Context {
            store: shared.store.clone(),
            pseudonyms: shared.pseudonyms.clone(),
            catalogs: std::sync::Arc::clone(&shared.catalog),
            small_group: shared.config.small_group,
            data: shared.data.clone(),
        }))
        // Every extractor that reads a body (`Bytes`, `Json`, `Form`) stops at
        // this; the webhooks read theirs with their own, smaller bound.
        .layer(axum::extract::DefaultBodyLimit::max(limits.http_max_body))
        .layer(axum::middleware::map_response(json_refusals));
    accept(listener, app, &limits, stop).await;
}

/// `/metrics`: with `metrics_token` set, for requests that carry it as a bearer
/// token; without, for requests from this machine only (a Prometheus beside
/// kuma, or through an SSH tunnel). Counts of calls and refusals tell an outsider
/// how a station's line is used and whether its defences fire.
fn metrics_page(
    metrics: &PrometheusHandle,
    token: Option<&super::config::Secret>,
    req: &axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let allowed = match token {
        Some(token) => req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| super::webhook_routes::constant_time_eq(given.as_bytes(), token.0.as_bytes())),
        None => req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .is_some_and(|peer| {
                let ip = peer.0.ip();
                ip.is_loopback() || matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
            }),
    };
    if !allowed {
        return (
            axum::http::StatusCode::FORBIDDEN,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"error": "metrics need the metrics token (KUMA_METRICS_TOKEN), or a request from this machine"}"#,
        )
            .into_response();
    }
    metrics.render().into_response()
}

/// The accept loop, instead of `axum::serve`, for what that does not bound: the
/// connections open at once (a semaphore), the time a client may take to send a
/// request head or leave a kept-alive connection idle (hyper's header read
/// timeout, which also runs between requests), the pace of a request body
/// ([`PacedBody`]), and the size of a head.
async fn accept(
    listener: TcpListener,
    app: Router,
    limits: &super::config::Limits,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::Arc;
    let open = Arc::new(tokio::sync::Semaphore::new(limits.http_max_connections));
    let refusing = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSING));
    let mut refused = super::quiet::QuietLog::new("HTTP connections refused");
    let mut failed = super::quiet::QuietLog::new("HTTP accept failed");
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.http_header_timeout)
        .max_header_size(MAX_HEAD)
        .max_buf_size(MAX_HEAD + 8 * 1024);
    let builder = Arc::new(builder);
    loop {
        let (stream, peer) = tokio::select! {
            got = listener.accept() => match got {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, typically: retrying at once would spin.
                    failed.note(&e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            metrics::counter!(names::HTTP_REFUSED).increment(1);
            refused.note(&format_args!(
                "{} open, the limit; the last from {peer}",
                limits.http_max_connections
            ));
            if let Ok(p) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(p);
                });
            }
            continue;
        };
        metrics::gauge!(names::HTTP_CONNECTIONS)
            .set((limits.http_max_connections - open.available_permits()) as f64);
        // The peer's address: the Africa's Talking allowlist checks it.
        let grace = limits.http_header_timeout;
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req.map(|body| axum::body::Body::new(PacedBody::new(body, grace)))
            },
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let builder = Arc::clone(&builder);
        let mut stop = stop.clone();
        let open = Arc::clone(&open);
        let max = limits.http_max_connections;
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(%peer, error = %e, "HTTP connection");
                    }
                }
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
            metrics::gauge!(names::HTTP_CONNECTIONS).set((max - open.available_permits()) as f64);
        });
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Answers a connection over the limit with 503 and closes it. What the client
/// sent is read and dropped for a moment after the answer, so that closing with
/// unread data does not reset the connection before the client has read it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = "{\"error\": \"too many connections; try again later\"}\n";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let linger = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), linger).await;
}

/// The slowest a request body may come: after the header timeout's grace, at
/// least this many bytes a second on average since its head (Apache's
/// `mod_reqtimeout` default). A 3 MB recording needs 4 kbit/s; a client sending
/// a byte now and then to hold one of the few connections is cut off.
pub const BODY_MIN_RATE: u64 = 500;

/// A request body that fails (and so closes its connection, the handler
/// reading it answering 400) once it comes slower than [`BODY_MIN_RATE`] after
/// `grace`. Without it a client announcing a large body and sending a byte every
/// few seconds held its connection for ever: a few hundred of them took every
/// connection of `http_max_connections`, and with them the API, `/healthz` and
/// the voice providers' webhooks.
struct PacedBody {
    inner: hyper::body::Incoming,
    since: tokio::time::Instant,
    grace: std::time::Duration,
    received: u64,
    /// Made at the first wait: a body that is all there costs no timer.
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl PacedBody {
    fn new(inner: hyper::body::Incoming, grace: std::time::Duration) -> Self {
        PacedBody {
            inner,
            since: tokio::time::Instant::now(),
            grace,
            received: 0,
            timer: None,
        }
    }

    fn deadline(&self) -> tokio::time::Instant {
        let earned =
            std::time::Duration::from_millis(self.received.saturating_mul(1000) / BODY_MIN_RATE);
        self.since + self.grace.saturating_add(earned)
    }
}

impl hyper::body::Body for PacedBody {
    type Data = hyper::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received = this.received.saturating_add(data.len() as u64);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        let deadline = this.deadline();
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(format!(
                "the request body came slower than {BODY_MIN_RATE} bytes a second"
            )
            .into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Refusals of a body too large (413: axum's extractors, the webhooks) may be
/// plain text: here they become the JSON error every other answer of the API is,
/// with the same words.
async fn json_refusals(response: axum::response::Response) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text = if text.is_empty() {
        "the request body is too large".to_string()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = format!("{}\n", serde_json::json!({ "error": text }));
    axum::response::Response::from_parts(parts, axum::body::Body::from(body))
}
