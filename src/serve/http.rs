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
    pub const CALLS_TOTAL: &str = "kuma_calls_total";
    pub const ANSWERS_TOTAL: &str = "kuma_answers_total";
    pub const RTP_PACKETS_SENT: &str = "kuma_rtp_packets_sent_total";
    pub const RTP_PACKETS_LATE: &str = "kuma_rtp_packets_late_total";
    pub const MISSED_CALLS: &str = "kuma_missed_calls_total";
    pub const CALLBACK_ATTEMPTS: &str = "kuma_callback_attempts_total";
}

pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot start the metrics recorder: {e}"))?;
    metrics::describe_gauge!(names::CALLS_ACTIVE, "calls in progress");
    metrics::describe_counter!(names::CALLS_TOTAL, "calls ended, by outcome");
    metrics::describe_counter!(names::ANSWERS_TOTAL, "poll answers stored");
    metrics::describe_counter!(names::RTP_PACKETS_SENT, "RTP packets sent to callers");
    metrics::describe_counter!(
        names::RTP_PACKETS_LATE,
        "RTP packets sent more than 2 ms after their time"
    );
    metrics::describe_counter!(
        names::MISSED_CALLS,
        "calls to a call-back number, by what became of them (queued, or the refusal)"
    );
    metrics::describe_counter!(
        names::CALLBACK_ATTEMPTS,
        "call-back and subscriber calls placed, by how they ended"
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
    Ok(handle)
}

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
    mut stop: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(health))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .with_state(std::sync::Arc::clone(&shared))
        .merge(super::webhook::router(std::sync::Arc::clone(&shared)))
        .merge(crate::web::router(shared));
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    // The peer's address: the Africa's Talking allowlist checks it.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}
