//! Parser tests on real messages (sipp 3.6, baresip, a GSM gateway, RFC 4475's
//! torture tests) and proptest fuzzing from `fuzz/corpus/sip/`.

use super::*;
use proptest::prelude::*;

/// The corpus, as constants, so every message added there is tested and fuzzed.
pub(crate) const CORPUS: &[(&str, &[u8])] = &[
    (
        "sipp-uac-invite",
        include_bytes!("../../../fuzz/corpus/sip/sipp-uac-invite.sip"),
    ),
    (
        "sipp-uac-ack",
        include_bytes!("../../../fuzz/corpus/sip/sipp-uac-ack.sip"),
    ),
    (
        "sipp-uac-bye",
        include_bytes!("../../../fuzz/corpus/sip/sipp-uac-bye.sip"),
    ),
    (
        "baresip-invite",
        include_bytes!("../../../fuzz/corpus/sip/baresip-invite.sip"),
    ),
    (
        "gsm-gateway-compact-invite",
        include_bytes!("../../../fuzz/corpus/sip/gsm-gateway-compact-invite.sip"),
    ),
    (
        "ipv6-invite",
        include_bytes!("../../../fuzz/corpus/sip/ipv6-invite.sip"),
    ),
    (
        "info-dtmf-relay",
        include_bytes!("../../../fuzz/corpus/sip/info-dtmf-relay.sip"),
    ),
    (
        "notify-sipfrag",
        include_bytes!("../../../fuzz/corpus/sip/notify-sipfrag.sip"),
    ),
    (
        "response-200-bye",
        include_bytes!("../../../fuzz/corpus/sip/response-200-bye.sip"),
    ),
    (
        "rfc4475-wsinv",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-wsinv.sip"),
    ),
    (
        "rfc4475-semiuri",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-semiuri.sip"),
    ),
    (
        "rfc4475-clerr",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-clerr.sip"),
    ),
    (
        "rfc4475-ncl",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-ncl.sip"),
    ),
    (
        "rfc4475-scalar02",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-scalar02.sip"),
    ),
    (
        "rfc4475-ltgtruri",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-ltgtruri.sip"),
    ),
    (
        "rfc4475-badvers",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-badvers.sip"),
    ),
    (
        "rfc4475-unkscm",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-unkscm.sip"),
    ),
    (
        "rfc4475-mismatch01",
        include_bytes!("../../../fuzz/corpus/sip/rfc4475-mismatch01.sip"),
    ),
    (
        "rfc2543-invite-no-branch",
        include_bytes!("../../../fuzz/corpus/sip/rfc2543-invite-no-branch.sip"),
    ),
];

fn corpus(name: &str) -> &'static [u8] {
    CORPUS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no {name} in the corpus"))
}

fn request(name: &str) -> Request {
    match parse(Bytes::from_static(corpus(name)), Transport::Udp) {
        Ok(Message::Request(request)) => request,
        other => panic!("{name}: {other:?}"),
    }
}

fn error(name: &str) -> Malformed {
    match parse(Bytes::from_static(corpus(name)), Transport::Udp) {
        Err(malformed) => malformed,
        Ok(message) => panic!("{name} parsed: {message:?}"),
    }
}

fn info(request: &Request) -> RequestInfo {
    RequestInfo::read(&request.method, &request.headers).unwrap()
}

#[test]
fn sipp_uac_invite() {
    let req = request("sipp-uac-invite");
    assert_eq!(req.method, Method::Invite);
    assert_eq!(uri_user(&req.uri), "service");
    let info = info(&req);
    assert_eq!(info.via.branch.as_deref(), Some("z9hG4bK-4242-1-0"));
    assert!(info.via.is_rfc3261());
    assert!(!info.via.rport);
    assert_eq!(info.via.sent_by(), "127.0.1.1:5061");
    assert_eq!(info.call_id, "1-4242@127.0.1.1");
    assert_eq!(
        info.cseq,
        CSeq {
            seq: 1,
            method: Method::Invite
        }
    );
    assert_eq!(info.from_tag.as_deref(), Some("4242SIPpTag001"));
    assert_eq!(info.to_tag, None);
    assert!(req.body.starts_with(b"v=0\r\n"));
    assert!(req.body.ends_with(b"a=rtpmap:0 PCMU/8000\r\n"));
    let from = header(&req.headers, &Name::FROM).unwrap();
    assert_eq!(user_of(from), "sipp");
}

#[test]
fn baresip_invite_with_rport() {
    let req = request("baresip-invite");
    let info = info(&req);
    assert!(info.via.rport);
    assert_eq!(uri_user(&req.uri), "3100");
    assert_eq!(user_of(header(&req.headers, &Name::FROM).unwrap()), "ama");
    assert_eq!(info.cseq.seq, 27183);
}

#[test]
fn compact_header_forms_are_read() {
    let req = request("gsm-gateway-compact-invite");
    let info = info(&req);
    assert_eq!(info.call_id, "1650018712-77@192.168.5.150");
    assert_eq!(info.from_tag.as_deref(), Some("1650018712"));
    assert!(info.via.rport);
    assert_eq!(
        user_of(header(&req.headers, &Name::FROM).unwrap()),
        "+22376000000"
    );
    assert_eq!(
        header(&req.headers, &Name::CONTENT_TYPE),
        Some("application/sdp")
    );
    assert_eq!(
        header(&req.headers, &Name::CONTACT),
        Some("<sip:+22376000000@192.168.5.150:5060>")
    );
    assert_eq!(header(&req.headers, &Name::SUPPORTED), Some("timer"));
    assert!(req.body.ends_with(b"a=sendrecv\r\n"));
}

#[test]
fn ipv6_hosts_in_request_uri_and_via() {
    let req = request("ipv6-invite");
    assert_eq!(
        uri_socket_addr(&req.uri),
        Some("[2001:db8::10]:5060".parse().unwrap())
    );
    let info = info(&req);
    assert_eq!(info.via.sent_by(), "[2001:db8:85a3::8a2e:370:7334]:5062");
    let source: SocketAddr = "[2001:db8:85a3::8a2e:370:7334]:5062".parse().unwrap();
    assert_eq!(
        info.via.for_response(source),
        "SIP/2.0/UDP [2001:db8:85a3::8a2e:370:7334]:5062;branch=z9hG4bK6v6v6v;rport=5062;received=2001:db8:85a3::8a2e:370:7334"
    );
}

#[test]
fn rfc4475_wsinv_a_short_tortuous_invite_is_valid() {
    let req = request("rfc4475-wsinv");
    assert_eq!(req.method, Method::Invite);
    assert_eq!(uri_user(&req.uri), "vivekg");
    let info = info(&req);
    assert_eq!(info.call_id, "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(
        info.cseq,
        CSeq {
            seq: 9,
            method: Method::Invite
        }
    );
    assert_eq!(info.from_tag.as_deref(), Some("98asjd8"));
    assert_eq!(info.to_tag.as_deref(), Some("1918181833n"));
    assert_eq!(info.via.branch.as_deref(), Some("390skdjuw"));
    assert!(!info.via.is_rfc3261(), "no magic cookie: RFC 2543 matching");
    assert_eq!(info.via.sent_by(), "192.0.2.2:5060");
    assert_eq!(
        header_all(&req.headers, &Name::VIA).count(),
        2,
        "two Via lines"
    );
    assert_eq!(req.body.len(), 150);
    assert_eq!(
        header(&req.headers, &Name::unknown("NewFangledHeader".into())),
        Some("newfangled value continued newfangled value"),
        "folded lines are unfolded"
    );
    assert_eq!(header(&req.headers, &Name::SUBJECT), Some(""));
}

#[test]
fn rfc4475_semiuri_escaped_semicolon_in_user() {
    let req = request("rfc4475-semiuri");
    assert_eq!(req.method, Method::Options);
    assert_eq!(uri_user(&req.uri), "user;par=u@example.net");
    assert_eq!(info(&req).from_tag.as_deref(), Some("33242"));
}

#[test]
fn rfc4475_invalid_messages_are_refused_with_the_right_answer() {
    let clerr = error("rfc4475-clerr");
    assert_eq!(clerr.error, ParseError::BodyTruncated);
    let partial = clerr.partial.expect("answerable");
    assert_eq!(partial.method, Method::Invite);
    assert!(ResponseBase::of(&partial.headers, "192.0.2.1:5060".parse().unwrap()).is_some());

    assert_eq!(error("rfc4475-ncl").error, ParseError::BadContentLength);
    assert_eq!(error("rfc4475-ltgtruri").error, ParseError::BadRequestUri);
    let badvers = error("rfc4475-badvers");
    assert_eq!(
        (badvers.error, badvers.error.status()),
        (ParseError::BadVersion, 505)
    );
    let unkscm = error("rfc4475-unkscm");
    assert_eq!(
        (unkscm.error, unkscm.error.status()),
        (ParseError::UnsupportedScheme, 416)
    );

    let scalar02 = request("rfc4475-scalar02");
    assert_eq!(
        RequestInfo::read(&scalar02.method, &scalar02.headers).unwrap_err(),
        HeaderProblem::BadCSeq
    );
    let mismatch = request("rfc4475-mismatch01");
    let problem = RequestInfo::read(&mismatch.method, &mismatch.headers).unwrap_err();
    assert_eq!(problem, HeaderProblem::CSeqMismatch);
    assert_eq!(problem.to_string(), "CSeq method does not match");
}

#[test]
fn methods_are_case_sensitive_tokens() {
    let text = |m: &str| {
        format!(
            "{m} sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\n\
             From: <sip:b@192.0.2.2>;tag=1\r\nTo: <sip:a@192.0.2.1>\r\nCall-ID: x\r\n\
             CSeq: 1 {m}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    for (token, method) in [
        ("INVITE", Method::Invite),
        ("invite", Method::Other("invite".into())),
        ("INVITEX", Method::Other("INVITEX".into())),
        ("IN%56ITE", Method::Other("IN%56ITE".into())),
    ] {
        match parse(Bytes::from(text(token)), Transport::Udp) {
            Ok(Message::Request(req)) => assert_eq!(req.method, method, "{token}"),
            other => panic!("{token}: {other:?}"),
        }
    }
    assert!(parse(Bytes::from(text("IN VITE")), Transport::Udp).is_err());
}

#[test]
fn content_length_governs_the_body() {
    let head = "OPTIONS sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\n\
                From: <sip:b@192.0.2.2>;tag=1\r\nTo: <sip:a@192.0.2.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n";
    let body_of = |extra: &str, body: &str, transport| match parse(
        Bytes::from(format!("{head}{extra}\r\n{body}")),
        transport,
    ) {
        Ok(Message::Request(req)) => Ok(req.body),
        Err(e) => Err(e.error),
        Ok(other) => panic!("{other:?}"),
    };
    assert_eq!(
        body_of("Content-Length: 3\r\n", "abcdef", Transport::Udp),
        Ok(Bytes::from("abc"))
    );
    assert_eq!(
        body_of("", "abcdef", Transport::Udp),
        Ok(Bytes::from("abcdef"))
    );
    assert_eq!(body_of("", "abcdef", Transport::Tcp), Ok(Bytes::new()));
    assert_eq!(
        body_of("Content-Length: 7\r\n", "abcdef", Transport::Udp),
        Err(ParseError::BodyTruncated)
    );
    assert_eq!(
        body_of("Content-Length: 3\r\nl: 4\r\n", "abcdef", Transport::Udp),
        Err(ParseError::BadContentLength)
    );
    assert_eq!(
        body_of("Content-Length: 99999\r\n", "abc", Transport::Udp),
        Err(ParseError::BodyTooLarge)
    );
}

#[test]
fn keep_alives_garbage_and_huge_datagrams() {
    assert_eq!(
        parse(Bytes::from_static(b"\r\n\r\n"), Transport::Udp)
            .unwrap_err()
            .error,
        ParseError::Empty
    );
    assert_eq!(
        parse(Bytes::from_static(b"\x00\x01garbage"), Transport::Udp)
            .unwrap_err()
            .error,
        ParseError::NotSip
    );
    assert_eq!(
        parse(
            Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            Transport::Udp
        )
        .unwrap_err()
        .error,
        ParseError::NotSip
    );
    let huge = vec![b'A'; 65_535];
    assert_eq!(
        parse(Bytes::from(huge), Transport::Udp).unwrap_err().error,
        ParseError::HeadTooLarge
    );
    let mut long_header = b"OPTIONS sip:a@b SIP/2.0\r\nX: ".to_vec();
    long_header.extend(std::iter::repeat_n(b'x', 65_000));
    long_header.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        parse(Bytes::from(long_header), Transport::Udp)
            .unwrap_err()
            .error,
        ParseError::HeadTooLarge
    );
}

#[test]
fn a_response_is_read() {
    let Ok(Message::Response(resp)) = parse(
        Bytes::from_static(corpus("response-200-bye")),
        Transport::Udp,
    ) else {
        panic!("not a response");
    };
    assert_eq!((resp.code, resp.reason.as_str()), (200, "OK"));
    let via = top_via(&resp.headers).unwrap();
    assert_eq!(via.branch.as_deref(), Some("z9hG4bK0011223344556677"));
    assert_eq!(cseq(&resp.headers).unwrap().method, Method::Bye);
}

#[test]
fn via_received_and_rport_for_responses() {
    let req = request("sipp-uac-invite");
    let via = info(&req).via;
    let same: SocketAddr = "127.0.1.1:5061".parse().unwrap();
    let other: SocketAddr = "198.51.100.7:33000".parse().unwrap();
    assert_eq!(
        via.for_response(same),
        "SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-4242-1-0"
    );
    assert_eq!(
        via.for_response(other),
        "SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-4242-1-0;received=198.51.100.7"
    );
    // Without rport the response goes to the source address and the Via port.
    assert_eq!(
        via.response_target(other, Transport::Udp),
        "198.51.100.7:5061".parse().unwrap()
    );
    assert_eq!(via.response_target(other, Transport::Tcp), other);

    let gw = info(&request("gsm-gateway-compact-invite")).via;
    let nat: SocketAddr = "203.0.113.9:41234".parse().unwrap();
    assert_eq!(
        gw.for_response(nat),
        "SIP/2.0/UDP 192.168.5.150:5060;rport=41234;branch=z9hG4bK1650018712;received=203.0.113.9"
    );
    assert_eq!(gw.response_target(nat, Transport::Udp), nat);
}

#[test]
fn responses_copy_what_rfc3261_says_and_parse_back() {
    let req = request("gsm-gateway-compact-invite");
    let source: SocketAddr = "192.168.5.150:5060".parse().unwrap();
    let base = ResponseBase::of(&req.headers, source).unwrap();
    let bytes = base.encode(
        Status::of(180),
        Some("abc"),
        &[("Contact", "<sip:kuma@192.168.5.10>")],
        None,
        true,
    );
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"), "{text}");
    assert!(text.contains("To: <sip:3100@192.168.5.10;user=phone>;tag=abc\r\n"));
    assert!(text.contains("Record-Route: <sip:192.168.5.150;lr>\r\n"));
    assert!(text.contains("CSeq: 102 INVITE\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    let Ok(Message::Response(resp)) = parse(Bytes::from(bytes), Transport::Udp) else {
        panic!("{text}");
    };
    assert_eq!(resp.code, 180);
    assert_eq!(
        header(&resp.headers, &Name::CALL_ID),
        Some("1650018712-77@192.168.5.150")
    );
    // A 100 never gets a tag; a failure does not get Record-Route.
    let trying =
        String::from_utf8(base.encode(Status::of(100), Some("abc"), &[], None, true)).unwrap();
    assert!(trying.contains("To: <sip:3100@192.168.5.10;user=phone>\r\n"));
    let busy =
        String::from_utf8(base.encode(Status::of(486), Some("abc"), &[], None, true)).unwrap();
    assert!(!busy.contains("Record-Route"));
}

#[test]
fn header_params_and_lists() {
    assert_eq!(
        header_param("\"A;tag=x\" <sip:a@b;tag=no>;tag=yes", "tag"),
        Some("yes")
    );
    assert_eq!(header_param("sip:a@b;tag=1", "TAG"), Some("1"));
    assert_eq!(header_param("<sip:a@b>", "tag"), None);
    assert_eq!(
        split_list("<sip:a@b;x=1,2>, \"x,y\" <sip:c@d>,sip:e@f"),
        vec!["<sip:a@b;x=1,2>", "\"x,y\" <sip:c@d>", "sip:e@f"]
    );
    assert_eq!(uri_text("\"A\" <sip:a@b;lr>;tag=1"), "sip:a@b;lr");
    assert_eq!(uri_text("sip:a@b;tag=1"), "sip:a@b");
    assert_eq!(
        user_of("<tel:+22376000000;phone-context=ml>;tag=1"),
        "+22376000000"
    );
}

#[test]
fn every_corpus_message_either_parses_or_names_its_fault() {
    for (name, bytes) in CORPUS {
        match parse(Bytes::from_static(bytes), Transport::Udp) {
            Ok(Message::Request(req)) => {
                let _ = RequestInfo::read(&req.method, &req.headers);
            }
            Ok(Message::Response(_)) => {}
            Err(e) => assert!(name.starts_with("rfc4475"), "{name}: {e}"),
        }
    }
}

/// Everything a parsed message is put through by the endpoint, none of which may
/// panic.
fn exercise(data: &[u8]) {
    let source: SocketAddr = "192.0.2.9:5060".parse().unwrap();
    match parse(Bytes::copy_from_slice(data), Transport::Udp) {
        Ok(Message::Request(req)) => {
            let _ = RequestInfo::read(&req.method, &req.headers);
            let _ = ResponseBase::of(&req.headers, source)
                .map(|b| b.encode(Status::of(200), Some("t"), &[], None, true));
            let _ = top_via(&req.headers).map(|v| (v.for_response(source), v.sent_by()));
            let _ = uri_user(&req.uri);
            for (_, value) in req.headers.iter() {
                let _ = (
                    user_of(value),
                    header_param(value, "tag"),
                    split_list(value),
                    uri_text(value),
                );
            }
        }
        Ok(Message::Response(resp)) => {
            let _ = top_via(&resp.headers);
            let _ = cseq(&resp.headers);
        }
        Err(Malformed {
            partial: Some(p), ..
        }) => {
            let _ = ResponseBase::of(&p.headers, source);
        }
        Err(_) => {}
    }
    let _ = parse(Bytes::copy_from_slice(data), Transport::Tcp);
}

fn corpus_message() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(CORPUS.iter().map(|(_, b)| b.to_vec()).collect::<Vec<_>>())
}

/// A corpus message with a few bytes replaced, cut short, or spliced.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        corpus_message(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        prop::option::of((
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u8>(), 0..40),
        )),
    )
        .prop_map(|(mut msg, replacements, cut, splice)| {
            for (at, byte) in replacements {
                let i = at.index(msg.len());
                msg[i] = byte;
            }
            if let Some((at, bytes)) = splice {
                let i = at.index(msg.len());
                msg.splice(i..i, bytes);
            }
            let keep = cut.index(msg.len() + 1).max(msg.len() * 3 / 4);
            msg.truncate(keep);
            msg
        })
}

/// SIP-looking text: corpus lines shuffled with noise.
fn sip_like() -> impl Strategy<Value = Vec<u8>> {
    let lines: Vec<String> = CORPUS
        .iter()
        .flat_map(|(_, b)| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(lines),
            "[ -~]{0,40}",
            Just(String::new()),
            Just(" ".to_owned()),
        ],
        0..30,
    )
    .prop_map(|lines| lines.join("\r\n").into_bytes())
}

proptest! {
    #[test]
    fn fuzz_arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&data);
    }

    #[test]
    fn fuzz_mutated_corpus_never_panics(data in mutated()) {
        exercise(&data);
    }

    #[test]
    fn fuzz_sip_like_text_never_panics(data in sip_like()) {
        exercise(&data);
    }
}

/// A scanner's datagram with a multibyte character where the scheme's colon would
/// be once stopped the whole server (`uri[..4]` cut inside `é`).
#[test]
fn a_multibyte_request_uri_is_refused_not_a_panic() {
    for line in [
        "OPTIONS sipé SIP/2.0",
        "OPTIONS sié: SIP/2.0",
        "INVITE ééé SIP/2.0",
    ] {
        let data = format!(
            "{line}\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1\r\nFrom: <sip:b@192.0.2.2>;tag=1\r\n\
             To: <sip:a@192.0.2.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        assert!(parse(Bytes::from(data), Transport::Udp).is_err(), "{line}");
        exercise(line.as_bytes());
    }
}

/// Every byte position of a valid request, with a multibyte character, an invalid
/// UTF-8 byte, a NUL or a line break put in there, parses or is refused.
#[test]
fn bytes_inserted_at_every_offset_never_panic() {
    let valid = CORPUS
        .iter()
        .find(|(name, _)| *name == "sipp-uac-invite")
        .map(|(_, bytes)| *bytes)
        .unwrap();
    for at in 0..=valid.len() {
        for insert in [&b"\xc3\xa9"[..], b"\xff", b"\0", b"\r\n", b"\xe2\x82"] {
            let mut data = valid[..at].to_vec();
            data.extend_from_slice(insert);
            data.extend_from_slice(&valid[at..]);
            exercise(&data);
        }
        exercise(&valid[..at]);
    }
}
