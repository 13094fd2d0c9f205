//! What a dialog remembers (RFC 3261 §12) on kuma's side, the UAS, and the requests
//! kuma sends in it (BYE, REFER).
//!
//! A dialog is made by the caller's INVITE (§12.1.1): its Call-ID, the caller's tag
//! (From) and kuma's own random tag (To of every response but 100); the remote target
//! from the INVITE's Contact (refreshed by a re-INVITE, §12.2.2); the route set from
//! its Record-Route, in order; the caller's CSeq, which must grow (§12.2.2: a lower
//! one gets 500); and kuma's own CSeq for the requests it sends (§12.2.1.1).
//!
//! Where those requests go: the first Route when there is a route set (loose routing,
//! `;lr`, as every proxy since RFC 3261 does; a strict router's URI becomes the
//! Request-URI, §12.2.1.1), else the remote target. kuma does no DNS, and a caller
//! behind NAT announces an address nobody can reach; so when that hop is a host name,
//! or a private address while the INVITE came from a public one, the request goes
//! where the INVITE came from instead, as RFC 3581 does for responses.

use std::net::{IpAddr, SocketAddr};

use ezk_sip_types::Name;

use crate::sip::message::{self, Body, Method, Request, RequestInfo, Transport};

/// What identifies a dialog from kuma's side (§12: Call-ID, local tag, remote tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

/// The state of one dialog in which kuma is the UAS.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// The INVITE's To value (kuma's URI as the caller wrote it), without tag.
    local_uri: String,
    /// The INVITE's From value, with the caller's tag.
    remote_uri: String,
    /// The remote target (Contact URI), as text.
    remote_target: String,
    /// Record-Route entries, in order (for the UAS, the route set as received).
    route_set: Vec<String>,
    local_cseq: u32,
    remote_cseq: u32,
    /// Where the INVITE came from, and over which transport.
    source: SocketAddr,
    transport: Transport,
    /// kuma's address, for Via and Contact.
    local: SocketAddr,
    /// An outbound proxy every request of a call kuma placed goes through.
    proxy: Option<SocketAddr>,
}

impl Dialog {
    /// The dialog an INVITE makes, with kuma's new tag.
    pub fn from_invite(
        request: &Request,
        info: &RequestInfo,
        local_tag: String,
        source: SocketAddr,
        transport: Transport,
        local: SocketAddr,
    ) -> Dialog {
        let headers = &request.headers;
        let route_set = message::header_all(headers, &Name::RECORD_ROUTE)
            .flat_map(message::split_list)
            .map(str::to_owned)
            .collect();
        let mut dialog = Dialog {
            call_id: info.call_id.clone(),
            local_tag,
            remote_tag: info.from_tag.clone().unwrap_or_default(),
            local_uri: message::header(headers, &Name::TO)
                .unwrap_or_default()
                .to_owned(),
            remote_uri: message::header(headers, &Name::FROM)
                .unwrap_or_default()
                .to_owned(),
            remote_target: String::new(),
            route_set,
            local_cseq: 0,
            remote_cseq: info.cseq.seq,
            source,
            transport,
            local,
            proxy: None,
        };
        dialog.refresh_target(request);
        dialog
    }

    /// The dialog of a call kuma places (§12.1.2), before the answer: kuma's tag is
    /// in From, the remote tag comes with the answer ([`Dialog::confirm`]). `target`
    /// is the Request-URI (`sip:NUMBER@trunk`); `next_hop` where the INVITE goes
    /// (the trunk, or the outbound proxy when `proxy` is set).
    #[allow(clippy::too_many_arguments)]
    pub fn outgoing(
        call_id: String,
        local_tag: String,
        from_uri: String,
        target: String,
        next_hop: SocketAddr,
        proxy: Option<SocketAddr>,
        transport: Transport,
        local: SocketAddr,
    ) -> Dialog {
        Dialog {
            call_id,
            local_tag,
            remote_tag: String::new(),
            local_uri: from_uri,
            remote_uri: format!("<{target}>"),
            remote_target: target,
            route_set: Vec::new(),
            local_cseq: 0,
            remote_cseq: 0,
            source: next_hop,
            transport,
            local,
            proxy,
        }
    }

    /// The 2xx to kuma's INVITE made the dialog (§12.1.2): the remote tag and the
    /// To value from it, the remote target from its Contact, the route set from its
    /// Record-Route in reverse order.
    pub fn confirm(&mut self, headers: &ezk_sip_types::Headers) {
        if let Some(to) = message::header(headers, &Name::TO) {
            self.remote_tag = message::header_param(to, "tag")
                .unwrap_or_default()
                .to_owned();
            self.remote_uri = to.to_owned();
        }
        if let Some(contact) = message::header(headers, &Name::CONTACT)
            .and_then(|c| {
                message::split_list(c)
                    .first()
                    .map(|c| message::uri_text(c).to_owned())
            })
            .filter(|c| !c.is_empty())
        {
            self.remote_target = contact;
        }
        let mut routes: Vec<String> = message::header_all(headers, &Name::RECORD_ROUTE)
            .flat_map(message::split_list)
            .map(str::to_owned)
            .collect();
        routes.reverse();
        self.route_set = routes;
    }

    /// The Request-URI of requests in this dialog (the remote target).
    pub fn request_uri(&self) -> &str {
        &self.remote_target
    }

    /// The CSeq number of kuma's last request.
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    pub fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// A target refresh (the INVITE, a re-INVITE): the remote target becomes the
    /// request's Contact; without one, the From URI is the best guess.
    pub fn refresh_target(&mut self, request: &Request) {
        let contact = message::header(&request.headers, &Name::CONTACT).and_then(|c| {
            message::split_list(c)
                .first()
                .map(|c| message::uri_text(c).to_owned())
        });
        self.remote_target = match contact {
            Some(uri) if !uri.is_empty() && uri != "*" => uri,
            _ => message::uri_text(&self.remote_uri).to_owned(),
        };
    }

    /// Checks the CSeq of a new request from the caller (§12.2.2): it must be higher
    /// than the last one; then it becomes the last one.
    pub fn check_remote_cseq(&mut self, seq: u32) -> bool {
        if seq <= self.remote_cseq {
            return false;
        }
        self.remote_cseq = seq;
        true
    }

    /// kuma's Contact: where the caller sends requests in this dialog.
    pub fn contact(&self) -> String {
        match self.transport {
            Transport::Udp => format!("<sip:kuma@{}>", self.local),
            Transport::Tcp => format!("<sip:kuma@{};transport=tcp>", self.local),
        }
    }

    /// Writes a request in the dialog (§12.2.1.1) with a new CSeq and the given
    /// branch, and says where to send it.
    pub fn request(
        &mut self,
        method: &Method,
        branch: &str,
        extra: &[(&str, &str)],
        body: Option<Body<'_>>,
        user_agent: &str,
    ) -> (Vec<u8>, SocketAddr) {
        self.local_cseq += 1;
        self.write(
            method,
            self.local_cseq,
            branch,
            None,
            extra,
            body,
            user_agent,
        )
    }

    /// An ACK or CANCEL for kuma's INVITE number `cseq`: the ACK to a 2xx is sent
    /// in the dialog with a new branch (§13.2.2.4); the ACK to a failure and the
    /// CANCEL reuse the INVITE's branch, with the failure's To for the ACK
    /// (§17.1.1.3, §9.1). No new CSeq either way.
    pub fn ack_or_cancel(
        &self,
        method: &Method,
        cseq: u32,
        branch: &str,
        to: Option<&str>,
        user_agent: &str,
    ) -> (Vec<u8>, SocketAddr) {
        self.write(method, cseq, branch, to, &[], None, user_agent)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        method: &Method,
        cseq: u32,
        branch: &str,
        to: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Body<'_>>,
        user_agent: &str,
    ) -> (Vec<u8>, SocketAddr) {
        let (request_uri, routes): (String, Vec<String>) = match self.route_set.split_first() {
            // A strict router (no `lr`): its URI is the Request-URI, and the remote
            // target goes last in Route.
            Some((first, rest)) if !is_loose(message::uri_text(first)) => {
                let mut routes = rest.to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (message::uri_text(first).to_owned(), routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let first_hop = self
            .route_set
            .first()
            .map_or(self.remote_target.as_str(), |r| message::uri_text(r));
        let destination = self.proxy.unwrap_or_else(|| self.destination(first_hop));

        let via = format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport.via_name(),
            self.local
        );
        let from = format!("{};tag={}", self.local_uri, self.local_tag);
        let cseq = format!("{cseq} {method}");
        let contact = self.contact();
        let mut headers: Vec<(&str, &str)> = vec![("Via", &via), ("Max-Forwards", "70")];
        for route in &routes {
            headers.push(("Route", route));
        }
        headers.extend([
            ("From", from.as_str()),
            ("To", to.unwrap_or(self.remote_uri.as_str())),
            ("Call-ID", self.call_id.as_str()),
            ("CSeq", cseq.as_str()),
        ]);
        if !matches!(method, Method::Ack | Method::Cancel) {
            headers.push(("Contact", contact.as_str()));
        }
        headers.push(("User-Agent", user_agent));
        headers.extend_from_slice(extra);
        (
            message::encode_request(method, &request_uri, &headers, body),
            destination,
        )
    }

    /// Where a request to this URI goes (see the module doc).
    fn destination(&self, uri: &str) -> SocketAddr {
        let Some(addr) = message::parse_sip_uri(uri).and_then(|u| message::uri_socket_addr(&u))
        else {
            return self.source;
        };
        if addr.ip().is_unspecified() || (is_local(addr.ip()) && !is_local(self.source.ip())) {
            self.source
        } else {
            addr
        }
    }
}

/// Whether a Route URI has the `lr` parameter (RFC 3261 §16.12.1.1, loose routing).
fn is_loose(uri: &str) -> bool {
    uri.split(';').skip(1).any(|p| {
        p.trim()
            .split('=')
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case("lr"))
    })
}

/// Private, loopback, link-local and shared (CGNAT) addresses: those a caller behind
/// NAT announces.
fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Message, parse};
    use bytes::Bytes;

    fn invite(extra: &str) -> (Request, RequestInfo) {
        let text = format!(
            "INVITE sip:100@192.0.2.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKabc\r\n\
             From: \"Ama\" <sip:0700123456@203.0.113.5>;tag=ft\r\n\
             To: <sip:100@192.0.2.1>\r\n\
             Call-ID: cid@203.0.113.5\r\n\
             CSeq: 7 INVITE\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        let Ok(Message::Request(req)) = parse(Bytes::from(text), Transport::Udp) else {
            panic!("not a request");
        };
        let info = RequestInfo::read(&req.method, &req.headers).unwrap();
        (req, info)
    }

    fn dialog(extra: &str, source: &str) -> Dialog {
        let (req, info) = invite(extra);
        Dialog::from_invite(
            &req,
            &info,
            "kt".into(),
            source.parse().unwrap(),
            Transport::Udp,
            "192.0.2.1:5060".parse().unwrap(),
        )
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn bye_goes_to_the_contact_with_swapped_from_and_to_and_a_new_cseq() {
        let mut d = dialog("Contact: <sip:gw@203.0.113.5:5070>\r\n", "203.0.113.5:5060");
        let (bye, to) = d.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        let bye = text(&bye);
        assert_eq!(to, "203.0.113.5:5070".parse().unwrap());
        assert!(
            bye.starts_with("BYE sip:gw@203.0.113.5:5070 SIP/2.0\r\n"),
            "{bye}"
        );
        assert!(bye.contains("From: <sip:100@192.0.2.1>;tag=kt\r\n"));
        assert!(bye.contains("To: \"Ama\" <sip:0700123456@203.0.113.5>;tag=ft\r\n"));
        assert!(bye.contains("CSeq: 1 BYE\r\n"));
        assert!(bye.contains("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb1;rport\r\n"));
        let (refer, _) = d.request(&Method::Refer, "z9hG4bKb2", &[], None, "kuma");
        assert!(text(&refer).contains("CSeq: 2 REFER\r\n"));
    }

    #[test]
    fn loose_route_set_is_kept_in_order_and_is_the_first_hop() {
        let mut d = dialog(
            "Contact: <sip:gw@198.51.100.9>\r\n\
             Record-Route: <sip:203.0.113.1;lr>, <sip:203.0.113.2;lr>\r\n",
            "203.0.113.1:5060",
        );
        let (bye, to) = d.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        let bye = text(&bye);
        assert_eq!(to, "203.0.113.1:5060".parse().unwrap());
        assert!(bye.starts_with("BYE sip:gw@198.51.100.9 SIP/2.0"));
        let r1 = bye.find("Route: <sip:203.0.113.1;lr>").unwrap();
        let r2 = bye.find("Route: <sip:203.0.113.2;lr>").unwrap();
        assert!(r1 < r2);
    }

    #[test]
    fn strict_router_becomes_the_request_uri() {
        let mut d = dialog(
            "Contact: <sip:gw@198.51.100.9>\r\nRecord-Route: <sip:203.0.113.1>\r\n",
            "203.0.113.1:5060",
        );
        let (bye, _) = d.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        let bye = text(&bye);
        assert!(bye.starts_with("BYE sip:203.0.113.1 SIP/2.0"), "{bye}");
        assert!(bye.contains("Route: <sip:gw@198.51.100.9>\r\n"));
    }

    #[test]
    fn a_caller_behind_nat_gets_requests_where_its_invite_came_from() {
        let mut d = dialog(
            "Contact: <sip:gw@192.168.1.20:5062>\r\n",
            "203.0.113.5:40000",
        );
        let (_, to) = d.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        assert_eq!(to, "203.0.113.5:40000".parse().unwrap());
        // On the station's own network, the private address is right.
        let mut lan = dialog(
            "Contact: <sip:gw@192.168.1.20:5062>\r\n",
            "192.168.1.20:5062",
        );
        let (_, to) = lan.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        assert_eq!(to, "192.168.1.20:5062".parse().unwrap());
        // A host name cannot be resolved here: the source it is.
        let mut named = dialog("Contact: <sip:gw@gw.example.org>\r\n", "203.0.113.5:5060");
        let (_, to) = named.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        assert_eq!(to, "203.0.113.5:5060".parse().unwrap());
    }

    #[test]
    fn ipv6_contact_is_a_destination() {
        let mut d = dialog(
            "Contact: <sip:gw@[2001:db8::5]:5070>\r\n",
            "[2001:db8::5]:5070",
        );
        let (_, to) = d.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        assert_eq!(to, "[2001:db8::5]:5070".parse().unwrap());
    }

    #[test]
    fn remote_cseq_must_grow() {
        let mut d = dialog("", "203.0.113.5:5060");
        assert!(!d.check_remote_cseq(7));
        assert!(!d.check_remote_cseq(3));
        assert!(d.check_remote_cseq(8));
        assert!(!d.check_remote_cseq(8));
    }

    #[test]
    fn without_contact_the_from_uri_is_the_target() {
        let mut d = dialog("", "203.0.113.5:5060");
        let (bye, _) = d.request(&Method::Bye, "z9hG4bKb1", &[], None, "kuma");
        assert!(text(&bye).starts_with("BYE sip:0700123456@203.0.113.5 SIP/2.0"));
    }
}
