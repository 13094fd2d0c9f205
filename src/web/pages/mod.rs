//! The web app's pages, served by `kuma serve` next to the JSON API: the campaign
//! list, a campaign's results, the on-air board, the voice messages and the call
//! simulator, plus the login page.
//!
//! Pages are HTML rendered on the server (maud, which escapes every value), with
//! charts as inline SVG (`chart.rs`); one small stylesheet and one small script,
//! compiled into the binary, are the only assets. Everything works without
//! JavaScript except what cannot: the board's live updates (`EventSource`) and the
//! simulator's audio. A page with its assets stays far under 150 KB, for cheap
//! phones on slow connections (measured by the browser tests).
//!
//! Login: the user pastes a token once; `POST /login` checks it and keeps it in an
//! `HttpOnly`, `SameSite=Strict` cookie, which [`super::Auth`] accepts like the
//! bearer header, so the pages' scripts and `EventSource` reach the API with it.
//! The cookie is marked `Secure` when the request came through HTTPS (a reverse
//! proxy's `X-Forwarded-Proto: https`); kuma itself speaks plain HTTP. Roles apply
//! as in the API: an analyst gets a 403 page for the voice messages and the
//! simulator.
//!
//! Numbers on the pages come from the same [`super::api::masked_results`] as the
//! API's, small groups included.
//!
//! Layout: `i18n.rs` (every word, French and English), `chart.rs` (SVG),
//! `campaign.rs` (list, results page, on-air board), `recordings.rs`,
//! `simulator.rs`; the assets are `kuma.css` and `kuma.js`.

mod campaign;
mod chart;
mod i18n;
mod recordings;
mod simulator;
mod studio;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use i18n::Lang;

use super::{ApiError, ApiState, Role, TOKEN_COOKIE, cookie, request_token, token_role};

/// The cookie that remembers `?lang=`.
const LANG_COOKIE: &str = "kuma_lang";
/// How long the login cookie lasts: a working week of a studio computer.
const LOGIN_DAYS: u32 = 7;

const CSS: &str = include_str!("kuma.css");
const JS: &str = include_str!("kuma.js");

/// The page routes, ready to merge into the API's router.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/", get(campaign::list))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/assets/kuma.css", get(css))
        .route("/assets/kuma.js", get(js))
        .route("/campaigns/{id}", get(campaign::page))
        .route("/campaigns/{id}/board", get(campaign::board))
        .route(
            "/campaigns/{id}/recordings",
            get(recordings::page).post(recordings::save),
        )
        .route("/campaigns/{id}/simulator", get(simulator::page))
        .route("/campaigns/{id}/schedule", get(studio::schedule))
        .route("/campaigns/{id}/prompts", get(studio::prompts))
        .route("/campaigns/{id}/questions", get(studio::questions))
        .route("/assets/studio.js", get(studio::js))
}

/// What every page handler knows of its request: the language, who is asking,
/// and where it is.
pub struct Ctx {
    pub lang: Lang,
    /// None: not logged in (or the token was revoked).
    pub role: Option<Role>,
    /// Set when `?lang=` chose the language, to be remembered in a cookie.
    remember_lang: bool,
    /// Path and query, for the language switch and the login redirect.
    pub here: String,
    /// `X-Forwarded-Proto: https`: the cookie can be `Secure`.
    https: bool,
    /// The request's `Origin` matches its host (for form POSTs).
    pub same_origin: bool,
    /// The browser takes gzip: pages shrink about five times on a slow line.
    gzip: bool,
    /// The campaigns the token reaches (already checked against the path).
    pub scope: crate::web::scope::Scope,
}

impl FromRequestParts<Arc<ApiState>> for Ctx {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let from_query = parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|p| p.strip_prefix("lang="))
                .find_map(Lang::parse)
        });
        let lang = from_query
            .or_else(|| cookie(parts, LANG_COOKIE).and_then(Lang::parse))
            .or_else(|| {
                parts
                    .headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(Lang::from_accept_language)
            })
            .unwrap_or(Lang::En);
        let fail = |e: ApiError| PageError {
            lang,
            error: e,
            here: String::new(),
        };
        let (role, scope) = match request_token(parts).map_err(fail)? {
            Some((token, _)) => match token_role(state, &token).await.map_err(fail)? {
                Some(role) => {
                    let scope = crate::web::scope::of(state, &super::token_hash(&token))
                        .await
                        .map_err(fail)?;
                    (Some(role), scope)
                }
                None => (None, Default::default()),
            },
            None => (None, Default::default()),
        };
        if role.is_some() {
            scope
                .check(state, &parts.method, parts.uri.path())
                .await
                .map_err(fail)?;
        }
        let https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        Ok(Ctx {
            lang,
            role,
            remember_lang: from_query.is_some(),
            here: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            https,
            same_origin: super::same_origin(parts),
            gzip: accepts_gzip(&parts.headers),
            scope,
        })
    }
}

impl Ctx {
    /// Ok if logged in with at least `needed`; else a redirect to the login page
    /// (not logged in) or a 403 page.
    pub fn require(&self, needed: Role) -> Result<Role, PageError> {
        match self.role {
            None => Err(self.error(ApiError::Unauthorized("log in"))),
            Some(r) if r >= needed => Ok(r),
            Some(_) => Err(self.error(ApiError::Forbidden(self.lang.t().forbidden.into()))),
        }
    }

    pub fn error(&self, error: ApiError) -> PageError {
        PageError {
            lang: self.lang,
            error,
            here: self.here.clone(),
        }
    }

    /// A whole page: the layout around `body`, with the language cookie when
    /// `?lang=` was given.
    pub fn page(&self, status: StatusCode, title: &str, body: Markup) -> Response {
        let t = self.lang.t();
        let markup = html! {
            (DOCTYPE)
            html lang=(self.lang.code()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · kuma" }
                    link rel="stylesheet" href={ "/assets/kuma.css?v=" (CSS_ASSET.version()) };
                    script src={ "/assets/kuma.js?v=" (JS_ASSET.version()) } defer {}
                }
                body {
                    header {
                        nav {
                            a.brand href="/" { "kuma" }
                            @if self.role.is_some() {
                                a href="/" { (t.campaigns) }
                            }
                            span.grow {}
                            a lang="fr" hreflang="fr" href=(self.with_lang(Lang::Fr)) { "FR" }
                            a lang="en" hreflang="en" href=(self.with_lang(Lang::En)) { "EN" }
                            @if self.role.is_some() {
                                form.inline method="post" action="/logout" {
                                    button.link type="submit" { (t.log_out) }
                                }
                            }
                        }
                    }
                    main { (body) }
                }
            }
        };
        let html = markup.into_string();
        let mut response = match self.gzip.then(|| gzip(html.as_bytes())).flatten() {
            Some(bytes) => (
                status,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                bytes,
            )
                .into_response(),
            None => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
        };
        response.headers_mut().insert(
            header::VARY,
            HeaderValue::from_static("Accept-Encoding, Accept-Language, Cookie"),
        );
        // Results and voice messages are not for shared caches or the back button
        // of a studio computer after logout.
        let h = response.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        // Defence in depth behind maud's escaping: only kuma's own script runs,
        // nothing is loaded from elsewhere, and no other site can frame a page.
        // (Inline style attributes stay allowed: the board's bars use them.)
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
            ),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if self.remember_lang {
            let c = format!(
                "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                self.lang.code()
            );
            if let Ok(v) = HeaderValue::from_str(&c) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    }

    /// This page in another language.
    fn with_lang(&self, lang: Lang) -> String {
        let (path, query) = self.here.split_once('?').unwrap_or((&self.here, ""));
        let mut pairs: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("lang="))
            .collect();
        let l = format!("lang={}", lang.code());
        pairs.push(&l);
        format!("{path}?{}", pairs.join("&"))
    }
}

/// A page that could not be shown, rendered in the page's language.
pub struct PageError {
    lang: Lang,
    error: ApiError,
    /// The page asked for, to come back to after logging in.
    here: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let t = self.lang.t();
        let (status, text) = match &self.error {
            ApiError::Unauthorized(_) => {
                return see_other(&match safe_next(&self.here) {
                    Some(next) => format!("/login?next={}", percent_encode(next)),
                    None => "/login".to_string(),
                });
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, t.forbidden.to_string()),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, t.not_found.to_string()),
            ApiError::Conflict(why) => (StatusCode::CONFLICT, why.clone()),
            ApiError::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, why.clone()),
            ApiError::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, format!("{} {why}", t.bad_request))
            }
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, t.internal.to_string())
            }
        };
        let ctx = Ctx {
            lang: self.lang,
            role: None,
            remember_lang: false,
            here: "/".into(),
            https: false,
            same_origin: false,
            gzip: false,
            scope: Default::default(),
        };
        ctx.page(
            status,
            &status.as_u16().to_string(),
            html! {
                h1 { (status.as_u16()) }
                p.error { (text) }
                p { a href="/" { (t.back) } }
            },
        )
    }
}

/// A 303 redirect (after a form POST, or to the login page).
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// `next` if it is a path on this site, else None: where a login may send the
/// browser. Parsed as a URI reference, not pattern-matched: it must have no scheme
/// and no authority, and start with one `/` followed by anything but `/` or `\`,
/// also once percent-decoded. Browsers drop tabs and newlines from a URL and read
/// `\` as `/`, so `/\t/evil.example` or `/\evil.example` would leave the site:
/// a control character or a backslash anywhere, raw or percent-encoded, refuses
/// the path.
fn local_path(next: &str) -> Option<&str> {
    let uri: axum::http::Uri = next.parse().ok()?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(next)
        .decode_utf8()
        .ok()?;
    let hostile = |s: &str| s.chars().any(|c| c.is_control() || c == '\\');
    if hostile(next) || hostile(&decoded) {
        return None;
    }
    for path in [uri.path(), &*decoded] {
        let rest = path.strip_prefix('/')?;
        if rest.starts_with('/') {
            return None;
        }
    }
    Some(next)
}

/// [`local_path`], but not `/` itself (the default needs no `next`).
fn safe_next(next: &str) -> Option<&str> {
    local_path(next).filter(|p| *p != "/")
}

/// Percent-encodes everything but unreserved characters and `/`.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// `GET /login?next=`: a `next` that does not decode is dropped, not a 400.
async fn login_page(
    ctx: Ctx,
    q: Result<axum::extract::Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = q.ok().and_then(|q| q.0.next);
    login_form(&ctx, StatusCode::OK, None, next.as_deref())
}

fn login_form(
    ctx: &Ctx,
    status: StatusCode,
    problem: Option<&str>,
    next: Option<&str>,
) -> Response {
    let t = ctx.lang.t();
    ctx.page(
        status,
        t.log_in,
        html! {
            h1 { (t.log_in) }
            @if let Some(p) = problem { p.error role="alert" { (p) } }
            form.login method="post" action="/login" {
                label for="token" { (t.token) }
                input #token name="token" type="password" autocomplete="off" required;
                @if let Some(next) = next.and_then(safe_next) {
                    input type="hidden" name="next" value=(next);
                }
                p.help { (t.token_help) }
                button type="submit" { (t.log_in) }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// `POST /login`: a working token becomes the login cookie.
async fn login(
    ctx: Ctx,
    headers: HeaderMap,
    State(st): State<Arc<ApiState>>,
    Form(form): Form<LoginForm>,
) -> Response {
    // Another site must not log this browser in with its own token.
    if headers.contains_key(header::ORIGIN) && !ctx.same_origin {
        return ctx
            .error(ApiError::Forbidden("cross-site login".into()))
            .into_response();
    }
    let token = form.token.trim();
    // Tokens are `kuma_` and hex: anything else cannot be one, and must not
    // reach a Set-Cookie header.
    let plausible = token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let role = if plausible {
        match token_role(&st, token).await {
            Ok(r) => r,
            Err(e) => return ctx.error(e).into_response(),
        }
    } else {
        None
    };
    if role.is_none() {
        return login_form(
            &ctx,
            StatusCode::UNAUTHORIZED,
            Some(ctx.lang.t().bad_token),
            form.next.as_deref(),
        );
    }
    let secure = if ctx.https { "; Secure" } else { "" };
    let cookie = format!(
        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        u64::from(LOGIN_DAYS) * 86_400
    );
    let mut r = see_other(form.next.as_deref().and_then(local_path).unwrap_or("/"));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: forgets the cookie.
async fn logout() -> Response {
    let mut r = see_other("/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("kuma_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

/// One of the two assets, with what is derived from it once per process.
/// (Each is a `static`, so each has one address and its own cells.)
struct Asset {
    body: &'static str,
    content_type: &'static str,
    version: OnceLock<String>,
    gzipped: OnceLock<Option<Vec<u8>>>,
}

static CSS_ASSET: Asset = Asset {
    body: CSS,
    content_type: "text/css; charset=utf-8",
    version: OnceLock::new(),
    gzipped: OnceLock::new(),
};

static JS_ASSET: Asset = Asset {
    body: JS,
    content_type: "text/javascript; charset=utf-8",
    version: OnceLock::new(),
    gzipped: OnceLock::new(),
};

impl Asset {
    /// A short hash of the asset, for its URL and ETag: a new binary with a
    /// changed asset gets a new URL, so browsers can keep the old one for long.
    fn version(&self) -> &str {
        self.version
            .get_or_init(|| hex::encode(&Sha256::digest(self.body.as_bytes())[..6]))
    }

    fn gzipped(&self) -> Option<&[u8]> {
        self.gzipped
            .get_or_init(|| gzip(self.body.as_bytes()))
            .as_deref()
    }
}

/// `bytes` gzipped; None if compression failed (then they go out as they are).
fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).ok()?;
    enc.finish().ok()
}

/// Whether `Accept-Encoding` lists gzip (with a non-zero quality).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn asset(headers: &HeaderMap, a: &'static Asset) -> Response {
    let etag = format!("\"{}\"", a.version());
    let mut r = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if let Some(gz) = a.gzipped().filter(|_| accepts_gzip(headers)) {
        (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            gz,
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

async fn css(headers: HeaderMap) -> Response {
    asset(&headers, &CSS_ASSET)
}

async fn js(headers: HeaderMap) -> Response {
    asset(&headers, &JS_ASSET)
}

/// A question or choice id as words: `q_offered_work` → "offered work".
pub fn words(id: &str) -> String {
    id.strip_prefix("q_").unwrap_or(id).replace('_', " ")
}

/// JSON for a `<script type="application/json">` block: `<` escaped so the text
/// can never close the script element.
pub fn script_json(v: &serde_json::Value) -> PreEscaped<String> {
    PreEscaped(v.to_string().replace('<', "\\u003c"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next("/campaigns/x?by=q"), Some("/campaigns/x?by=q"));
        assert_eq!(local_path("/"), Some("/"));
        assert_eq!(safe_next("/"), None);
        for hostile in [
            "//evil.example/",
            "/\\evil.example/",
            "\\\\evil.example/",
            "/\t/evil.example",
            "/%09/evil.example",
            "/\n/evil.example",
            "/%0d%0a/evil.example",
            "/%2F%2Fevil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "https://evil.example/",
            "https:evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /x",
            "/x\u{7f}",
        ] {
            assert_eq!(local_path(hostile), None, "{hostile:?}");
        }
        assert_eq!(
            percent_encode("/c/x?by=q&lang=fr"),
            "/c/x%3Fby%3Dq%26lang%3Dfr"
        );
    }

    #[test]
    fn gzip_when_the_browser_takes_it() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, GZIP;q=0.5")));
        assert!(!accepts_gzip(&h("gzip;q=0, br")));
        assert!(!accepts_gzip(&h("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
        let page = "<p>kuma</p>".repeat(200);
        let gz = gzip(page.as_bytes()).unwrap();
        assert!(gz.len() * 5 < page.len());
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back)
            .unwrap();
        assert_eq!(back, page);
    }

    #[test]
    fn each_asset_is_served_as_itself() {
        assert_ne!(CSS_ASSET.version(), JS_ASSET.version());
        let unzip = |gz: &[u8]| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gz), &mut s).unwrap();
            s
        };
        assert_eq!(unzip(CSS_ASSET.gzipped().unwrap()), CSS);
        assert_eq!(unzip(JS_ASSET.gzipped().unwrap()), JS);
    }

    #[test]
    fn ids_read_as_words() {
        assert_eq!(words("q_offered_work"), "offered work");
        assert_eq!(words("not_sure"), "not sure");
    }

    #[test]
    fn json_in_a_script_cannot_close_it() {
        let v = serde_json::json!({"note": "</script><script>alert(1)"});
        assert!(!script_json(&v).into_string().contains("</script"));
    }
}
