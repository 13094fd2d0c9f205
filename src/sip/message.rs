//! SIP messages: one datagram (or one framed TCP message) in, a request or response
//! out; responses and requests written back as bytes.
//!
//! Parsing is done with `ezk-sip-types`: its `PullParser` splits the header section
//! into lines (joining folded ones), `Line` splits a line into a [`Name`] (compact
//! forms `v f t i m l c k s` included) and a value, and its typed headers read the
//! values kuma needs ([`Via`], [`FromTo`]; the Request-URI and Contact/Route URIs as
//! [`SipUri`], which reads IPv6 hosts). The start line and CSeq are read here
//! instead: ezk's method parser matches a *prefix*, case-insensitively (`INVITEX` and
//! `invite` both come out as INVITE), where RFC 3261 §7.1 says methods are
//! case-sensitive tokens.
//!
//! What a UAS must copy into its responses (Via list, From, To, Call-ID, CSeq,
//! Record-Route, RFC 3261 §8.2.6.2 and §12.1.1) stays the raw text it arrived as
//! ([`ResponseBase`]), so nothing is lost or re-encoded on the way back. Folded lines
//! (RFC 3261 §7.3.1) are unfolded to one space first.
//!
//! Bounds: the header section is at most [`MAX_HEAD`] bytes, a body at most
//! [`MAX_BODY`]; anything else, including a 64 KiB datagram of noise, is an error,
//! never a panic (fuzzed below with proptest, from the messages in
//! `fuzz/corpus/sip/`).

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::str;

use bytes::Bytes;
use ezk_sip_types::header::HeaderParse;
use ezk_sip_types::header::typed::{FromTo, Via};
use ezk_sip_types::host::Host;
use ezk_sip_types::msg::{Line, PullParser};
use ezk_sip_types::parse::Parse;
use ezk_sip_types::uri::{SipUri, SipUriUserPart};
use ezk_sip_types::{Headers, Name};
use thiserror::Error;

/// The longest header section accepted (start line and headers), bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest body accepted, bytes. An SDP offer is well under 2 KiB.
pub const MAX_BODY: usize = 32 * 1024;
/// RFC 3261 §8.1.1.7: the branch of every RFC 3261 client starts with this.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// How a message came, and how its answer must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Datagrams: kuma retransmits (RFC 3261 §17, timers G, E, 2xx).
    Udp,
    /// A stream: the message was framed by Content-Length; no retransmissions.
    Tcp,
}

impl Transport {
    /// Whether the transport itself delivers (RFC 3261 §17: no retransmissions).
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// The name in a Via header.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
}

/// A SIP method. Matched exactly: methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Refer,
    Notify,
    Register,
    Subscribe,
    Message,
    Publish,
    Update,
    Prack,
    /// Any other token: answered with 501.
    Other(String),
}

impl Method {
    /// Reads a method token; `None` when it is not a token (RFC 3261 §25.1).
    pub fn parse(token: &str) -> Option<Method> {
        if token.is_empty() || !token.bytes().all(is_token_char) {
            return None;
        }
        Some(match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "REGISTER" => Method::Register,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            other => Method::Other(other.to_owned()),
        })
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Register => "REGISTER",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Other(other) => other,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// A request, as parsed.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub uri: SipUri,
    /// Header values as they came (folded lines unfolded), under their names.
    pub headers: Headers,
    pub body: Bytes,
}

/// A response, as parsed.
#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// One parsed message.
#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Why a message could not be read. The text is the reason phrase of the 400 (or
/// 416, 505, 513) sent back when the request can still be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Nothing but line ends: a keep-alive (RFC 5626 §3.5.1), not an error.
    #[error("Empty message")]
    Empty,
    #[error("Not a SIP message")]
    NotSip,
    #[error("Header section too large")]
    HeadTooLarge,
    #[error("Header section not terminated")]
    Unterminated,
    #[error("Header not UTF-8")]
    NotUtf8,
    #[error("Malformed header line")]
    BadHeaderLine,
    #[error("Malformed Request-URI")]
    BadRequestUri,
    #[error("Malformed Content-Length")]
    BadContentLength,
    #[error("Body shorter than Content-Length")]
    BodyTruncated,
    #[error("Body too large")]
    BodyTooLarge,
    /// RFC 3261 §8.2.2.1: answered with 416.
    #[error("Unsupported URI Scheme")]
    UnsupportedScheme,
    /// RFC 3261 §8.1.1.1: answered with 505.
    #[error("Version Not Supported")]
    BadVersion,
}

impl ParseError {
    /// The status code to answer a request that failed this way with.
    pub fn status(self) -> u16 {
        match self {
            ParseError::UnsupportedScheme => 416,
            ParseError::BadVersion => 505,
            // RFC 3261 §21.5.14.
            ParseError::HeadTooLarge | ParseError::BodyTooLarge => 513,
            _ => 400,
        }
    }
}

/// A message that could not be read, with what was read of it when its start line
/// was a request line and its headers could be read: enough to answer 400 when the
/// headers a response copies are there.
#[derive(Debug, Clone, Error)]
#[error("{error}")]
pub struct Malformed {
    pub error: ParseError,
    pub partial: Option<Box<Partial>>,
}

/// The readable part of a malformed request.
#[derive(Debug, Clone)]
pub struct Partial {
    pub method: Method,
    pub headers: Headers,
}

impl From<ParseError> for Malformed {
    fn from(error: ParseError) -> Self {
        Malformed {
            error,
            partial: None,
        }
    }
}

enum StartLine<'a> {
    Request {
        method: Method,
        uri: &'a str,
        version_ok: bool,
    },
    Response {
        code: u16,
        reason: &'a str,
    },
}

/// Reads one message. `data` is one UDP datagram or one message cut from a TCP stream
/// by [`crate::sip::framing::StreamFramer`].
///
/// Content-Length governs the body (RFC 3261 §18.3): over UDP a body longer than it
/// is cut, a shorter one is an error; without it, a UDP body is the rest of the
/// datagram, a TCP body is empty.
pub fn parse(data: Bytes, transport: Transport) -> Result<Message, Malformed> {
    // RFC 3261 §7.5: line ends before the start line are ignored.
    let skip = data
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .ok_or(ParseError::Empty)?;

    // Only the first MAX_HEAD bytes may hold the header section: a 64 KiB datagram
    // of noise is not scanned to its end.
    let window_end = data.len().min(skip + MAX_HEAD);
    let mut lines = PullParser::new(&data[..window_end], skip);

    let first = match lines.next() {
        Some(Ok(line)) => line,
        _ => {
            return Err(if window_end < data.len() {
                ParseError::HeadTooLarge
            } else {
                ParseError::NotSip
            }
            .into());
        }
    };
    let first = str::from_utf8(first).map_err(|_| ParseError::NotSip)?;
    let start = parse_start_line(first).ok_or(ParseError::NotSip)?;

    let mut headers = Headers::with_capacity(16);
    let mut header_error = None;
    let mut complete = false;
    for line in lines.by_ref() {
        let Ok(line) = line else {
            break;
        };
        let Ok(text) = str::from_utf8(line) else {
            header_error.get_or_insert(ParseError::NotUtf8);
            continue;
        };
        match Line::parse(&data, text) {
            Ok((_, line)) if !line.name.as_print_str().is_empty() => {
                insert_unfolded(&mut headers, line.name, &line.value);
            }
            _ => {
                header_error.get_or_insert(ParseError::BadHeaderLine);
            }
        }
    }
    // The iterator ends with `None` exactly at the empty line ending the head, and
    // stops with an error when it runs out of input first.
    if lines.clone().next().is_none() {
        complete = true;
    }
    let request_method = match &start {
        StartLine::Request { method, .. } => Some(method.clone()),
        StartLine::Response { .. } => None,
    };
    let partial = |error: ParseError, headers: Headers| -> Malformed {
        Malformed {
            error,
            partial: request_method
                .clone()
                .map(|method| Box::new(Partial { method, headers })),
        }
    };
    if !complete {
        if window_end < data.len() {
            // The headers read before the cut usually hold what a 513 copies, so
            // the sender learns why instead of retransmitting into silence.
            return Err(partial(ParseError::HeadTooLarge, headers));
        }
        return Err(ParseError::Unterminated.into());
    }
    let head_end = lines.head_end();
    if let Some(error) = header_error {
        return Err(partial(error, headers));
    }

    let rest = data.len() - head_end;
    let body_len = match content_length(&headers) {
        Ok(Some(len)) => len,
        Ok(None) => match transport {
            Transport::Udp => rest,
            Transport::Tcp => 0,
        },
        Err(error) => return Err(partial(error, headers)),
    };
    if body_len > MAX_BODY {
        return Err(partial(ParseError::BodyTooLarge, headers));
    }
    if body_len > rest {
        return Err(partial(ParseError::BodyTruncated, headers));
    }
    let body = data.slice(head_end..head_end + body_len);

    match start {
        StartLine::Response { code, reason } => Ok(Message::Response(Response {
            code,
            reason: reason.to_owned(),
            headers,
            body,
        })),
        StartLine::Request {
            method,
            uri,
            version_ok,
        } => {
            if !version_ok {
                return Err(partial(ParseError::BadVersion, headers));
            }
            // `get`, not `uri[..4]`: the fourth byte may fall inside a multibyte
            // character (`sipé`), and one datagram must never panic the server.
            let scheme_ok = uri.len() > 4
                && (uri.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:"))
                    || uri
                        .get(..5)
                        .is_some_and(|s| s.eq_ignore_ascii_case("sips:")));
            if !scheme_ok {
                let error = if uri.contains(':') && !uri.starts_with('<') {
                    ParseError::UnsupportedScheme
                } else {
                    ParseError::BadRequestUri
                };
                return Err(partial(error, headers));
            }
            match parse_sip_uri(uri) {
                Some(uri) => Ok(Message::Request(Request {
                    method,
                    uri,
                    headers,
                    body,
                })),
                None => Err(partial(ParseError::BadRequestUri, headers)),
            }
        }
    }
}

/// RFC 3261 §7.1 and §7.2: `Method SP Request-URI SP SIP-Version` or
/// `SIP-Version SP Status-Code SP Reason-Phrase`, single spaces (RFC 4475 §3.1.2.11).
fn parse_start_line(line: &str) -> Option<StartLine<'_>> {
    // A start line followed by a line starting with white space was joined to it.
    if line.contains(['\r', '\n']) {
        return None;
    }
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let code = rest.get(..3)?;
        if !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let code: u16 = code.parse().ok()?;
        if !(100..700).contains(&code) {
            return None;
        }
        let reason = match &rest[3..] {
            "" => "",
            r => r.strip_prefix(' ')?,
        };
        return Some(StartLine::Response { code, reason });
    }
    let mut parts = line.split(' ');
    let method = Method::parse(parts.next()?)?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || uri.is_empty() {
        return None;
    }
    let version_ok = version == "SIP/2.0";
    if !version_ok && !version.starts_with("SIP/") {
        return None;
    }
    Some(StartLine::Request {
        method,
        uri,
        version_ok,
    })
}

/// A `sip:` or `sips:` URI, read whole (trailing text is an error).
pub fn parse_sip_uri(text: &str) -> Option<SipUri> {
    let src = Bytes::copy_from_slice(text.as_bytes());
    let text = str::from_utf8(&src).ok()?;
    match SipUri::parse(&src)(text) {
        Ok(("", uri)) => Some(uri),
        _ => None,
    }
}

/// Inserts a header, unfolding continuation lines (RFC 3261 §7.3.1: a line end
/// followed by white space is one space).
fn insert_unfolded(headers: &mut Headers, name: Name, value: &str) {
    let value = value.trim();
    if value.contains(['\r', '\n']) {
        let mut unfolded = String::with_capacity(value.len());
        let mut in_break = false;
        for c in value.chars() {
            if matches!(c, '\r' | '\n') {
                in_break = true;
            } else if in_break && matches!(c, ' ' | '\t') {
                continue;
            } else {
                if in_break {
                    unfolded.push(' ');
                    in_break = false;
                }
                unfolded.push(c);
            }
        }
        headers.insert(name, unfolded);
    } else {
        headers.insert(name, value);
    }
}

/// Content-Length, when present; several values must agree.
fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    let mut found = None;
    for value in headers.get_raw(&Name::CONTENT_LENGTH) {
        let value = value.trim();
        if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadContentLength);
        }
        let len: usize = value.parse().map_err(|_| ParseError::BadContentLength)?;
        if found.is_some_and(|f| f != len) {
            return Err(ParseError::BadContentLength);
        }
        found = Some(len);
    }
    Ok(found)
}

// ---------------------------------------------------------------------------------
// Reading header values.

/// The first value of a header, if any.
pub fn header<'a>(headers: &'a Headers, name: &Name) -> Option<&'a str> {
    headers.get_raw(name).next().map(|v| v.as_str())
}

/// Every value of a header, in order.
pub fn header_all<'a>(headers: &'a Headers, name: &Name) -> impl Iterator<Item = &'a str> {
    headers.get_raw(name).map(|v| v.as_str())
}

/// Splits a header value into its comma-separated elements, minding quoted strings
/// and `<…>` (a URI may hold commas).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '<' => angle = true,
            '>' => angle = false,
            ',' if !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Where a name-addr's or addr-spec's own parameters start (after `>`, or after the
/// URI of a bare addr-spec, whose `;` parameters belong to the header: RFC 3261
/// §20.10), skipping a quoted display name.
fn header_params_of(value: &str) -> &str {
    let mut rest = value.trim_start();
    if rest.starts_with('"') {
        let mut escaped = false;
        let mut end = rest.len();
        for (i, c) in rest.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    if let Some(open) = rest.find('<') {
        match rest[open..].find('>') {
            Some(close) => &rest[open + close + 1..],
            None => "",
        }
    } else {
        match rest.find(';') {
            Some(semi) => &rest[semi..],
            None => "",
        }
    }
}

/// A header parameter of a From, To, Contact or Route value (`tag`, `expires`…).
/// Parameter names are case-insensitive; white space around `=` is allowed (RFC 4475
/// §3.1.1.1).
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    header_params_of(value).split(';').find_map(|param| {
        let (key, val) = match param.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (param.trim(), ""),
        };
        key.eq_ignore_ascii_case(name).then_some(val)
    })
}

/// The URI of a name-addr (inside `<>`) or of an addr-spec (up to its parameters).
pub fn uri_text(value: &str) -> &str {
    let value = value.trim();
    if let Some(open) = value.find('<') {
        let inner = &value[open + 1..];
        return inner
            .find('>')
            .map_or(inner, |close| &inner[..close])
            .trim();
    }
    value.split(';').next().unwrap_or(value).trim()
}

/// The user part of a From or To value: a phone number, most of the time. Read with
/// ezk's `FromTo`; `tel:` URIs (RFC 3966), which it does not read, by hand.
pub fn user_of(value: &str) -> String {
    let src = Bytes::copy_from_slice(value.as_bytes());
    if let Ok(text) = str::from_utf8(&src)
        && let Ok((_, from_to)) = FromTo::parse(&src, text)
    {
        return match &from_to.uri.uri.user_part {
            SipUriUserPart::User(user) => user.to_string(),
            SipUriUserPart::UserPw(user_pw) => user_pw.user.to_string(),
            SipUriUserPart::Empty => String::new(),
        };
    }
    let uri = uri_text(value);
    match uri.get(..4) {
        Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => {
            uri[4..].split(';').next().unwrap_or("").to_owned()
        }
        _ => String::new(),
    }
}

/// The user part of a SIP URI (the dialled number in a Request-URI).
pub fn uri_user(uri: &SipUri) -> String {
    match &uri.user_part {
        SipUriUserPart::User(user) => user.to_string(),
        SipUriUserPart::UserPw(user_pw) => user_pw.user.to_string(),
        SipUriUserPart::Empty => String::new(),
    }
}

/// Where to send a request for this URI, when its host is an IP address (kuma does
/// no DNS: the caller's address is used otherwise, see `dialog`).
pub fn uri_socket_addr(uri: &SipUri) -> Option<SocketAddr> {
    let ip = uri.host_port.ip()?;
    let port = uri
        .host_port
        .port
        .unwrap_or(if uri.sips { 5061 } else { 5060 });
    Some(SocketAddr::new(ip, port))
}

/// The topmost Via, as far as kuma needs it.
#[derive(Debug, Clone)]
pub struct TopVia {
    /// The transport named in it (`UDP`, `TCP`…).
    pub transport: String,
    /// `sent-by`, host and port, as ezk read it.
    pub host: Host,
    pub port: Option<u16>,
    /// The branch, when there is one.
    pub branch: Option<String>,
    /// RFC 3581: the client asks for the response at the request's source port.
    pub rport: bool,
    /// The raw text of this Via value and the text after it in the same header line
    /// (further values, after a comma).
    raw: String,
    rest: String,
}

impl TopVia {
    /// `sent-by` as a string for transaction matching (RFC 3261 §17.2.3), with the
    /// default port filled in so `host` and `host:5060` match.
    pub fn sent_by(&self) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(5060)).to_ascii_lowercase()
    }

    /// Whether the branch carries the RFC 3261 magic cookie.
    pub fn is_rfc3261(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// This Via value as it goes back in responses: `received` set to the source
    /// address when it differs from sent-by, or whenever `rport` is asked for, and
    /// `rport` filled in with the source port (RFC 3261 §18.2.1, RFC 3581 §4).
    pub fn for_response(&self, source: SocketAddr) -> String {
        let source_ip = canonical_ip(source.ip());
        let same_host = match &self.host {
            Host::IP4(ip) => IpAddr::V4(*ip) == source_ip,
            Host::IP6(ip) => IpAddr::V6(*ip) == source_ip,
            Host::Name(_) => false,
        };
        let (head, params) = match self.raw.find(';') {
            Some(semi) => (&self.raw[..semi], &self.raw[semi + 1..]),
            None => (self.raw.as_str(), ""),
        };
        let mut out = String::with_capacity(self.raw.len() + 40);
        out.push_str(head.trim_end());
        for param in params.split(';') {
            let name = param.split('=').next().unwrap_or("").trim();
            if name.is_empty() || name.eq_ignore_ascii_case("received") {
                continue;
            }
            out.push(';');
            if name.eq_ignore_ascii_case("rport") && self.rport {
                let _ = write!(out, "rport={}", source.port());
            } else {
                out.push_str(param.trim());
            }
        }
        if self.rport || !same_host {
            let _ = write!(out, ";received={source_ip}");
        }
        out.push_str(&self.rest);
        out
    }

    /// Where responses go (RFC 3261 §18.2.2, RFC 3581 §4): over TCP, back on the
    /// connection; over UDP, to the source address and port with `rport`, otherwise
    /// to the source address (`received`) and the sent-by port.
    pub fn response_target(&self, source: SocketAddr, transport: Transport) -> SocketAddr {
        if transport.is_reliable() || self.rport {
            source
        } else {
            SocketAddr::new(source.ip(), self.port.unwrap_or(5060))
        }
    }
}

/// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as IPv4.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Reads the topmost Via of a request.
pub fn top_via(headers: &Headers) -> Option<TopVia> {
    let value = header(headers, &Name::VIA)?;
    // ezk reads only `SIP/2.0/…`; a request of another SIP version still deserves its
    // 505 (RFC 4475 §3.1.2.17), so its Via is read as if it said 2.0. Same length, so
    // the raw text keeps its offsets.
    let mut normalised = value.to_owned();
    if let Some(after) = value.strip_prefix("SIP/")
        && let Some(version) = after.get(..3)
        && version != "2.0"
        && after[3..].starts_with('/')
    {
        normalised.replace_range(4..7, "2.0");
    }
    let src = Bytes::from(normalised);
    let text = str::from_utf8(&src).ok()?;
    let (rest, via) = Via::parse(&src, text).ok()?;
    let rest = rest.trim_start();
    if !(rest.is_empty() || rest.starts_with(',')) {
        return None;
    }
    let consumed = text.len() - rest.len();
    let raw = value.get(..consumed)?.trim_end().to_owned();
    let rest = value.get(consumed..)?;
    let branch = via.params.get_val("branch").map(|b| b.to_string());
    let rport = via
        .params
        .get("rport")
        .is_some_and(|param| param.value.is_none());
    Some(TopVia {
        transport: via.transport.to_string(),
        host: via.sent_by.host.clone(),
        port: via.sent_by.port,
        branch,
        rport,
        raw,
        rest: rest.to_owned(),
    })
}

/// CSeq (RFC 3261 §20.16): a number below 2^31 and a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

/// Reads CSeq, strictly: `0009 INVITE` is fine (RFC 4475 §3.1.1.1), an overlarge
/// number or a third word is not (§3.1.2.3).
pub fn cseq(headers: &Headers) -> Option<CSeq> {
    let value = header(headers, &Name::CSEQ)?;
    let mut words = value.split_ascii_whitespace();
    let seq = words.next()?;
    let method = Method::parse(words.next()?)?;
    if words.next().is_some() || seq.len() > 10 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq: u64 = seq.parse().ok()?;
    if seq >= 1 << 31 {
        return None;
    }
    Some(CSeq {
        seq: seq as u32,
        method,
    })
}

/// Why a request cannot be served although it could be read; the text is the 400's
/// reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderProblem {
    #[error("Missing Via")]
    MissingVia,
    #[error("Malformed Via")]
    BadVia,
    #[error("Missing From")]
    MissingFrom,
    #[error("Missing To")]
    MissingTo,
    #[error("Missing Call-ID")]
    MissingCallId,
    #[error("Missing CSeq")]
    MissingCSeq,
    #[error("Malformed CSeq")]
    BadCSeq,
    #[error("CSeq method does not match")]
    CSeqMismatch,
    #[error("Malformed Max-Forwards")]
    BadMaxForwards,
    #[error("Malformed From")]
    BadFrom,
    #[error("Malformed To")]
    BadTo,
}

/// What RFC 3261 §8.1.1 says every request carries, read and checked.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub via: TopVia,
    pub call_id: String,
    pub cseq: CSeq,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

impl RequestInfo {
    /// Reads and checks the mandatory headers of a request with method `method`.
    pub fn read(method: &Method, headers: &Headers) -> Result<RequestInfo, HeaderProblem> {
        let via = match header(headers, &Name::VIA) {
            None => return Err(HeaderProblem::MissingVia),
            Some(_) => top_via(headers).ok_or(HeaderProblem::BadVia)?,
        };
        let from = header(headers, &Name::FROM).ok_or(HeaderProblem::MissingFrom)?;
        let to = header(headers, &Name::TO).ok_or(HeaderProblem::MissingTo)?;
        if uri_text(from).is_empty() || from.contains(['\r', '\n']) {
            return Err(HeaderProblem::BadFrom);
        }
        if uri_text(to).is_empty() || to.contains(['\r', '\n']) {
            return Err(HeaderProblem::BadTo);
        }
        let call_id = header(headers, &Name::CALL_ID)
            .map(str::trim)
            .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
            .ok_or(HeaderProblem::MissingCallId)?;
        let cseq = match header(headers, &Name::CSEQ) {
            None => return Err(HeaderProblem::MissingCSeq),
            Some(_) => cseq(headers).ok_or(HeaderProblem::BadCSeq)?,
        };
        if &cseq.method != method {
            return Err(HeaderProblem::CSeqMismatch);
        }
        if let Some(max_forwards) = header(headers, &Name::MAX_FORWARDS) {
            let max_forwards = max_forwards.trim();
            if max_forwards.is_empty()
                || max_forwards.len() > 10
                || !max_forwards.bytes().all(|b| b.is_ascii_digit())
                || max_forwards.parse::<u32>().map_or(true, |n| n > 255)
            {
                return Err(HeaderProblem::BadMaxForwards);
            }
        }
        let tag = |value: &str| {
            header_param(value, "tag")
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        Ok(RequestInfo {
            from_tag: tag(from),
            to_tag: tag(to),
            via,
            call_id: call_id.to_owned(),
            cseq,
        })
    }
}

// ---------------------------------------------------------------------------------
// Writing messages.

/// What a response copies from its request (RFC 3261 §8.2.6.2, §12.1.1), kept as
/// text: the Via values (the top one with `received`/`rport`), From, To, Call-ID,
/// CSeq, and Record-Route for responses that make a dialog.
#[derive(Debug, Clone)]
pub struct ResponseBase {
    pub vias: Vec<String>,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: String,
    pub record_route: Vec<String>,
    /// Whether To already has a tag (a request inside a dialog).
    pub to_has_tag: bool,
}

impl ResponseBase {
    /// Collects what responses to this request copy. `None` when a header a
    /// response needs is missing (such a request is dropped, RFC 3261 §8.2.6.2).
    pub fn of(headers: &Headers, source: SocketAddr) -> Option<ResponseBase> {
        let top = top_via(headers)?;
        let mut vias: Vec<String> = header_all(headers, &Name::VIA).map(str::to_owned).collect();
        *vias.first_mut()? = top.for_response(source);
        let to = header(headers, &Name::TO)?.to_owned();
        Some(ResponseBase {
            vias,
            from: header(headers, &Name::FROM)?.to_owned(),
            to_has_tag: header_param(&to, "tag").is_some_and(|t| !t.is_empty()),
            to,
            call_id: header(headers, &Name::CALL_ID)?.trim().to_owned(),
            cseq: header(headers, &Name::CSEQ)?.to_owned(),
            record_route: header_all(headers, &Name::RECORD_ROUTE)
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Writes a response. `to_tag` is added to To unless it has one already (never
    /// on a 100, RFC 3261 §8.2.6.2); Record-Route is copied on 1xx/2xx to an INVITE
    /// when `dialog` is set.
    pub fn encode(
        &self,
        status: Status<'_>,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Body<'_>>,
        dialog: bool,
    ) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        let _ = write!(out, "SIP/2.0 {} {}\r\n", status.code, status.reason);
        for via in &self.vias {
            let _ = write!(out, "Via: {via}\r\n");
        }
        if dialog && status.code < 300 {
            for rr in &self.record_route {
                let _ = write!(out, "Record-Route: {rr}\r\n");
            }
        }
        let _ = write!(out, "From: {}\r\n", self.from);
        match to_tag {
            Some(tag) if !self.to_has_tag && status.code > 100 => {
                let _ = write!(out, "To: {};tag={tag}\r\n", self.to);
            }
            _ => {
                let _ = write!(out, "To: {}\r\n", self.to);
            }
        }
        let _ = write!(out, "Call-ID: {}\r\nCSeq: {}\r\n", self.call_id, self.cseq);
        finish(out, extra, body)
    }
}

/// A status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    pub code: u16,
    pub reason: &'a str,
}

impl Status<'static> {
    /// The code with the reason phrase of RFC 3261 §21 (and RFC 3515 for 202).
    pub fn of(code: u16) -> Status<'static> {
        Status {
            code,
            reason: reason_phrase(code),
        }
    }
}

/// A body and its Content-Type.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub content_type: &'a str,
    pub bytes: &'a [u8],
}

/// Writes a request: start line, headers in order, Content-Length, body.
pub fn encode_request(
    method: &Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<Body<'_>>,
) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let _ = write!(out, "{method} {uri} SIP/2.0\r\n");
    finish(out, headers, body)
}

fn finish(mut out: String, headers: &[(&str, &str)], body: Option<Body<'_>>) -> Vec<u8> {
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let len = body.map_or(0, |b| b.bytes.len());
    if let Some(body) = body {
        let _ = write!(out, "Content-Type: {}\r\n", body.content_type);
    }
    let _ = write!(out, "Content-Length: {len}\r\n\r\n");
    let mut bytes = out.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body.bytes);
    }
    bytes
}

/// RFC 3261 §21 reason phrases for the codes kuma sends.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

#[cfg(test)]
pub(crate) mod tests;
