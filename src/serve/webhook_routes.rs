//! The voice-provider webhooks of `kuma serve`: the thin HTTP shell around the
//! pure [`crate::webhook`] channel.
//!
//! - `POST /voice/africastalking` (or `/voice/africastalking/SECRET` when
//!   `KUMA_AT_PATH_SECRET` is set; the bare path then answers 404), limited to the
//!   `at_allow` networks when set: Africa's Talking signs nothing, so the secret
//!   path and the allowlist are what keep others from posting fake answers;
//! - `POST /voice/twilio` (the number's voice URL, and every `action` kuma gives)
//!   and `POST /voice/twilio/status` (the number's status callback): each request's
//!   `X-Twilio-Signature` is checked against `KUMA_TWILIO_AUTH_TOKEN` and the URL
//!   Twilio called (the public URL, the path and the query); without a token every
//!   Twilio request is refused.
//!
//! One request: load the call's session (engine state, step, last reply) from the
//! store, run the engine ([`crate::webhook::run_step`]), store the answers, then
//! write the new state only if the session still has the step it was read at. A
//! request whose step is not the session's (a replay, a late or reordered request)
//! changes nothing and gets the session's last reply again; a request for a
//! finished or unknown call gets a hang-up. Bad input is a 4xx with one line of
//! text; an internal failure is a 500 without details (they are logged).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request as HttpRequest, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use tokio::sync::mpsc;

use super::Shared;
use super::recording_fetch;
use crate::campaign::Campaign;
use crate::conversation::runtime::Write;
use crate::conversation::{subscription, writes};
use crate::flow::{Action, Call, EngineOptions, Outcome};
use crate::store::{SessionStep, WriteOp};
use crate::webhook::{self, MAX_BODY, Provider, Request, RequestError, Urls, Verb};

/// What the webhook handlers share.
pub struct WebhookState {
    shared: Arc<Shared>,
    /// New recordings to fetch, by `recording_fetches` id.
    fetches: mpsc::UnboundedSender<i64>,
}

/// The `/voice` routes, ready to merge into `kuma serve`'s router. Starts the
/// recording fetcher (which first retries the fetches left pending).
pub fn router(shared: Arc<Shared>) -> Router {
    let fetches = recording_fetch::spawn(Arc::clone(&shared));
    let state = Arc::new(WebhookState { shared, fetches });
    Router::new()
        .route("/voice/africastalking", post(at_bare))
        .route("/voice/africastalking/{secret}", post(at_secret))
        .route("/voice/twilio", post(twilio))
        .route("/voice/twilio/status", post(twilio_status))
        .with_state(state)
}

/// A refusal: its status and one line of text.
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, format!("{}\n", self.1)).into_response()
    }
}

impl From<RequestError> for Refused {
    fn from(e: RequestError) -> Self {
        Refused(StatusCode::BAD_REQUEST, e.to_string())
    }
}

fn internal(e: impl std::fmt::Display) -> Refused {
    tracing::error!(error = %e, "webhook request failed");
    Refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error (logged)".into(),
    )
}

/// The parts of an HTTP request a handler reads, the body bounded.
struct Incoming {
    peer: Option<SocketAddr>,
    path: String,
    query: Option<String>,
    signature: Option<String>,
    body: bytes::Bytes,
}

async fn incoming(req: HttpRequest) -> Result<Incoming, Refused> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    })?;
    Ok(Incoming {
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        signature: parts
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    })
}

fn public_url(st: &WebhookState) -> Result<String, Refused> {
    st.shared.config.webhooks.public_url.clone().ok_or_else(|| {
        Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "the webhooks need a public URL: set public_url (KUMA_PUBLIC_URL)".into(),
        )
    })
}

async fn at_bare(State(st): State<Arc<WebhookState>>, req: HttpRequest) -> Response {
    // Closed unless opened on purpose: Africa's Talking signs nothing, so the bare
    // path would let anyone post calls and answers.
    let w = &st.shared.config.webhooks;
    if w.at_path_secret.is_some() || !w.at_open {
        return Refused(StatusCode::NOT_FOUND, "not found".into()).into_response();
    }
    respond(at(&st, req).await)
}

async fn at_secret(
    State(st): State<Arc<WebhookState>>,
    axum::extract::Path(secret): axum::extract::Path<String>,
    req: HttpRequest,
) -> Response {
    let matches = st
        .shared
        .config
        .webhooks
        .at_path_secret
        .as_ref()
        .is_some_and(|s| constant_time_eq(s.0.as_bytes(), secret.as_bytes()));
    if !matches {
        return Refused(StatusCode::NOT_FOUND, "not found".into()).into_response();
    }
    respond(at(&st, req).await)
}

/// Compares without leaking, through timing, how much of a secret was right.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Hashing first makes the lengths equal and the comparison's time fixed.
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

async fn at(st: &WebhookState, req: HttpRequest) -> Result<String, Refused> {
    let inc = incoming(req).await?;
    if let Some(allow) = &st.shared.config.webhooks.at_allow {
        let ok = inc
            .peer
            .is_some_and(|p| allow.iter().any(|net| net.contains(&p.ip())));
        if !ok {
            return Err(Refused(
                StatusCode::FORBIDDEN,
                "this address may not call the Africa's Talking webhook (at_allow)".into(),
            ));
        }
    }
    let public = public_url(st)?;
    let step = webhook::step_of(inc.query.as_deref())?;
    let r = webhook::at::parse(&inc.body, step)?;
    let callback = format!("{public}{}", inc.path);
    let render = |verbs: &[Verb], urls: &Urls, step: i64| webhook::at::render(verbs, urls, step);
    call(st, Provider::AfricasTalking, r, public, callback, &render).await
}

async fn twilio(State(st): State<Arc<WebhookState>>, req: HttpRequest) -> Response {
    respond(twilio_request(&st, req, false).await)
}

async fn twilio_status(State(st): State<Arc<WebhookState>>, req: HttpRequest) -> Response {
    respond(twilio_request(&st, req, true).await)
}

async fn twilio_request(
    st: &WebhookState,
    req: HttpRequest,
    status_callback: bool,
) -> Result<String, Refused> {
    // Without its auth token the Twilio route does not exist.
    let Some(token) = &st.shared.config.webhooks.twilio_auth_token else {
        return Err(Refused(StatusCode::NOT_FOUND, "not found".into()));
    };
    let inc = incoming(req).await?;
    let public = public_url(st)?;
    let pairs = webhook::form_pairs(&inc.body)?;
    // Twilio signs the URL it called: ours, as configured, with the query.
    let signed_url = match &inc.query {
        Some(q) => format!("{public}{}?{q}", inc.path),
        None => format!("{public}{}", inc.path),
    };
    let genuine = inc
        .signature
        .as_deref()
        .is_some_and(|sig| webhook::twilio::verify(&token.0, &signed_url, &pairs, sig));
    if !genuine {
        return Err(Refused(
            StatusCode::FORBIDDEN,
            "bad or missing X-Twilio-Signature".into(),
        ));
    }
    let step = webhook::step_of(inc.query.as_deref())?;
    let r = webhook::twilio::parse_pairs(&pairs, step)?;
    let render =
        |verbs: &[Verb], urls: &Urls, step: i64| webhook::twilio::render(verbs, urls, step);
    if status_callback && !r.ended {
        // A progress event (ringing, answered): nothing to do.
        return Ok(render(&[], &urls_for(&public, "", &public), 0));
    }
    let callback = format!("{public}/voice/twilio");
    call(st, Provider::Twilio, r, public, callback, &render).await
}

fn urls_for(public: &str, campaign: &str, callback: &str) -> Urls {
    Urls {
        public: public.to_string(),
        campaign: campaign.to_string(),
        callback: callback.to_string(),
    }
}

fn respond(r: Result<String, Refused>) -> Response {
    match r {
        Ok(xml) => {
            let mut response = Response::new(Body::from(xml));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/xml; charset=utf-8"),
            );
            response
        }
        Err(refused) => refused.into_response(),
    }
}

type Render<'a> = &'a (dyn Fn(&[Verb], &Urls, i64) -> String + Send + Sync);

/// One request of a call, whatever the dialect.
async fn call(
    st: &WebhookState,
    provider: Provider,
    r: Request,
    public: String,
    callback: String,
    render: Render<'_>,
) -> Result<String, Refused> {
    // A hang-up must not be lost to a step that another request wrote in the
    // meantime: it is applied again on the newer state.
    for _ in 0..3 {
        match call_once(st, provider, &r, &public, &callback, render).await? {
            Applied::Reply(reply) => return Ok(reply),
            Applied::Lost(reply) if !r.ended => return Ok(reply),
            Applied::Lost(_) => continue,
        }
    }
    Ok(render(&[], &urls_for(&public, "", &callback), 0))
}

/// What became of one try at a request.
enum Applied {
    /// Answered (a step written, or nothing to write).
    Reply(String),
    /// Another request wrote the step first: its reply.
    Lost(String),
}

async fn call_once(
    st: &WebhookState,
    provider: Provider,
    r: &Request,
    public: &str,
    callback: &str,
    render: Render<'_>,
) -> Result<Applied, Refused> {
    let (public, callback) = (public.to_string(), callback.to_string());
    let store = &st.shared.store;
    let now = Utc::now();
    let session = store
        .webhook_session(provider.as_str(), &r.session)
        .await
        .map_err(internal)?;
    let hang_up =
        |campaign: &str| render(&[Verb::HangUp], &urls_for(&public, campaign, &callback), 0);
    let Some(s) = session else {
        if r.ended {
            // The end of a call kuma never saw (or refused): nothing to keep.
            return Ok(Applied::Reply(render(
                &[],
                &urls_for(&public, "", &callback),
                0,
            )));
        }
        if r.step.is_some() {
            tracing::info!(provider = provider.as_str(), session = %r.session, "request for an unknown call");
            return Ok(Applied::Reply(hang_up("")));
        }
        return start(st, provider, r, &public, &callback, render)
            .await
            .map(Applied::Reply);
    };
    let urls = urls_for(&public, &s.campaign, &callback);
    if s.finished {
        return Ok(Applied::Reply(if r.ended {
            render(&[], &urls, 0)
        } else {
            hang_up(&s.campaign)
        }));
    }
    if !r.ended && r.step != Some(s.seq) {
        // A replay (the provider did not get our reply) or a request from an
        // older step: nothing is applied twice; the latest reply again.
        tracing::info!(provider = provider.as_str(), session = %r.session, step = ?r.step, seq = s.seq, "stale request: last reply sent again");
        return Ok(Applied::Reply(s.reply));
    }
    let catalog = st.shared.catalog();
    let restored = serde_json::from_str::<Call>(&s.state);
    let (Some((campaign, _)), Ok(mut engine)) = (catalog.get(&s.campaign), restored) else {
        // The campaign was removed (or its state no longer reads): end the call
        // rather than guess.
        tracing::warn!(campaign = %s.campaign, "webhook call ends: its campaign or state is gone");
        let reply = hang_up(&s.campaign);
        let end = Action::Finished {
            outcome: Outcome::Error,
            last_node: None,
        };
        store_action(st, s.call, &end, now).await?;
        let step = SessionStep {
            state: &s.state,
            reply: &reply,
            finished: true,
            at: now,
        };
        store
            .advance_webhook_session(provider.as_str(), &r.session, s.seq, &step)
            .await
            .map_err(internal)?;
        return Ok(Applied::Reply(reply));
    };
    let turn = webhook::run_step(&mut engine, &campaign, r, now);
    for action in &turn.store {
        store_action(st, s.call, action, now).await?;
        subscription(st, &campaign, s.call, r, action, now).await?;
    }
    if let Some((node, url)) = &turn.recording {
        let id = store
            .add_recording_fetch(s.call, node, url, provider.as_str(), now)
            .await
            .map_err(internal)?;
        let _ = st.fetches.send(id);
    }
    let reply = render(&turn.verbs, &urls, s.seq + 1);
    let state = serde_json::to_string(&engine).map_err(internal)?;
    let step = SessionStep {
        state: &state,
        reply: &reply,
        finished: turn.finished,
        at: now,
    };
    let applied = store
        .advance_webhook_session(provider.as_str(), &r.session, s.seq, &step)
        .await
        .map_err(internal)?;
    if applied {
        return Ok(Applied::Reply(reply));
    }
    // The same request ran twice at once and the other one won: its reply.
    let now_stored = store
        .webhook_session(provider.as_str(), &r.session)
        .await
        .map_err(internal)?;
    Ok(Applied::Lost(
        now_stored.map_or_else(|| hang_up(&s.campaign), |s| s.reply),
    ))
}

/// The first request of a call: route the dialled number, start the flow.
async fn start(
    st: &WebhookState,
    provider: Provider,
    r: &Request,
    public: &str,
    callback: &str,
    render: Render<'_>,
) -> Result<String, Refused> {
    let catalog = st.shared.catalog();
    let dialled = r.dialled.as_deref().unwrap_or("");
    let Some((campaign, _)) = catalog.route(dialled, st.shared.config.default_campaign.as_deref())
    else {
        tracing::info!(
            provider = provider.as_str(),
            "call to a number no campaign lists: rejected"
        );
        return Ok(render(&[Verb::Reject], &urls_for(public, "", callback), 0));
    };
    let now = Utc::now();
    // The number never goes further than this line.
    let caller = st
        .shared
        .pseudonyms
        .pseudonym(r.caller.as_deref().unwrap_or("anonymous"));
    let mut engine = Call::new(EngineOptions::default());
    let turn = webhook::run_start(&mut engine, &campaign, now);
    let urls = urls_for(public, &campaign.id, callback);
    let reply = render(&turn.verbs, &urls, 1);
    let state = serde_json::to_string(&engine).map_err(internal)?;
    let new_call = crate::conversation::start::new_call(&campaign, &caller, provider.as_str(), now);
    let step = SessionStep {
        state: &state,
        reply: &reply,
        finished: turn.finished,
        at: now,
    };
    let started = st
        .shared
        .store
        .start_webhook_call(&new_call, provider.as_str(), &r.session, &step)
        .await
        .map_err(internal)?;
    match started {
        Some(id) => {
            tracing::info!(provider = provider.as_str(), session = %r.session, call = id, campaign = %campaign.id, "webhook call started");
            for action in &turn.store {
                store_action(st, id, action, now).await?;
                subscription(st, &campaign, id, r, action, now).await?;
            }
            Ok(reply)
        }
        // The provider sent its first request twice: the call is counted once,
        // and both get the same reply.
        None => {
            let s = st
                .shared
                .store
                .webhook_session(provider.as_str(), &r.session)
                .await
                .map_err(internal)?;
            Ok(s.map_or_else(|| render(&[Verb::HangUp], &urls, 0), |s| s.reply))
        }
    }
}

/// An answer to a question with `subscribe` (see `crate::conversation::subscription`):
/// the number is the one this request carries, kept only if it is the call's
/// caller's (a request naming another number subscribes nobody).
async fn subscription(
    st: &WebhookState,
    campaign: &Campaign,
    call: crate::store::CallRow,
    r: &Request,
    action: &Action,
    now: chrono::DateTime<Utc>,
) -> Result<(), Refused> {
    let Action::StoreAnswer {
        question, choice, ..
    } = action
    else {
        return Ok(());
    };
    // Most answers are not to a subscription question: no work for them.
    if !subscription::asks(campaign, question) {
        return Ok(());
    }
    let shared = &st.shared;
    let number = r.caller.as_deref();
    let pseudonym = shared.pseudonyms.pseudonym(number.unwrap_or("anonymous"));
    let Some(caller) = shared.store.call_caller(call).await.map_err(internal)? else {
        return Ok(());
    };
    let sealed = || {
        if pseudonym != caller {
            return Err("caller_changed");
        }
        let number = number.filter(|n| crate::outbound::callable(n.trim()));
        let who = crate::outbound::Caller::of(&shared.pseudonyms, &caller, number.unwrap_or(""));
        subscription::seal(&shared.config.callback, &shared.sealer, number, &who)
    };
    let policy = &shared.config.callback;
    let Some(change) =
        subscription::on_answer(campaign, question, choice, &caller, sealed, policy, now)
    else {
        return Ok(());
    };
    subscription::log(&change, &caller);
    if let subscription::Change::Subscribe(op) | subscription::Change::Unsubscribe(op) = change {
        writes::perform(Write { op }, &shared.store)
            .await
            .map_err(internal)?;
    }
    Ok(())
}

async fn store_action(
    st: &WebhookState,
    call: crate::store::CallRow,
    action: &Action,
    now: chrono::DateTime<Utc>,
) -> Result<(), Refused> {
    let Some(op) = WriteOp::from_action(call, action, now) else {
        return Ok(());
    };
    writes::perform(Write { op }, &st.shared.store)
        .await
        .map_err(internal)
}
