//! Bad input: garbage, malformed requests, unknown methods and dialogs, scanners,
//! and fuzzing the whole endpoint. Nothing may crash it, leak, or disturb a call.

use proptest::prelude::*;

use super::*;
use crate::sip::message::tests::CORPUS;

#[test]
fn unknown_methods_get_501_and_unserved_ones_405_with_allow() {
    let mut h = Harness::new();
    let caller = Caller::new("192.0.2.60:5060", "m1");
    let unknown = caller.request("FROBNICATE", 1, "z9hG4bKm1", "", "");
    h.from(&caller, &unknown);
    let r = h.one_sent();
    assert_eq!(r.status(), Some(501));
    assert!(r.header("Allow").is_some());
    for (i, method) in ["REGISTER", "SUBSCRIBE", "MESSAGE", "PUBLISH", "REFER"]
        .iter()
        .enumerate()
    {
        let req = caller.request(method, 1, &format!("z9hG4bKm2{i}"), "", "");
        h.from(&caller, &req);
        let r = h.one_sent();
        assert_eq!(r.status(), Some(405), "{method}");
        assert_eq!(r.header("Allow").as_deref(), Some(crate::sip::call::ALLOW));
    }
    assert!(h.take_events().is_empty());
    h.assert_idle_after_a_while();
}

#[test]
fn malformed_requests_get_400_naming_the_problem() {
    let mut h = Harness::new();
    let from: SocketAddr = "192.0.2.61:5060".parse().unwrap();
    let no_call_id = "OPTIONS sip:kuma@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.61;branch=z9hG4bKx1\r\n\
                      From: <sip:a@192.0.2.61>;tag=1\r\nTo: <sip:kuma@127.0.0.1>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.input(no_call_id, from, Transport::Udp);
    // Without a Call-ID there is nothing a response could copy: dropped.
    assert!(h.take_sent().is_empty());

    let cases = [
        (
            "rfc4475-clerr",
            "SIP/2.0 400 Body shorter than Content-Length\r\n",
        ),
        ("rfc4475-ncl", "SIP/2.0 400 Malformed Content-Length\r\n"),
        ("rfc4475-scalar02", "SIP/2.0 400 Malformed CSeq\r\n"),
        ("rfc4475-ltgtruri", "SIP/2.0 400 Malformed Request-URI\r\n"),
        (
            "rfc4475-mismatch01",
            "SIP/2.0 400 CSeq method does not match\r\n",
        ),
        ("rfc4475-badvers", "SIP/2.0 505 Version Not Supported\r\n"),
        ("rfc4475-unkscm", "SIP/2.0 416 Unsupported URI Scheme\r\n"),
    ];
    for (name, status_line) in cases {
        let bytes = CORPUS.iter().find(|(n, _)| *n == name).unwrap().1;
        h.ep.handle_input(bytes, from, Transport::Udp, h.now);
        let mut out = Vec::new();
        while let Some(o) = h.ep.poll_output() {
            out.push(o);
        }
        match out.as_slice() {
            [Output::Transmit { bytes, .. }] => {
                let text = String::from_utf8_lossy(bytes);
                assert!(text.starts_with(status_line), "{name}: {text}");
                assert!(text.contains("To: "), "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(h.ep.stats().malformed, 7);
    assert!(
        h.ep.is_idle(),
        "malformed requests are answered statelessly"
    );
}

#[test]
fn an_invite_with_a_body_that_is_not_sdp_gets_415_and_a_required_extension_420() {
    let mut h = Harness::new();
    let caller = Caller::new("192.0.2.62:5060", "b1");
    let invite = caller.request(
        "INVITE",
        1,
        "z9hG4bKb1",
        "Content-Type: text/plain\r\n",
        "hello",
    );
    h.from(&caller, &invite);
    let r = h.one_sent();
    assert_eq!(r.status(), Some(415));
    assert_eq!(r.header("Accept").as_deref(), Some("application/sdp"));
    let invite = caller.request(
        "INVITE",
        1,
        "z9hG4bKb2",
        "Require: 100rel, precondition\r\n",
        "",
    );
    h.from(&caller, &invite);
    let r = h.one_sent();
    assert_eq!(r.status(), Some(420));
    assert_eq!(
        r.header("Unsupported").as_deref(),
        Some("100rel, precondition")
    );
    assert!(h.take_events().is_empty());
    // The ACK to either is absorbed by its transaction; then nothing is left.
    let ack = caller.request("ACK", 1, "z9hG4bKb2", "", "");
    h.from(&caller, &ack);
    assert!(h.take_sent().is_empty());
    h.assert_idle_after_a_while();
}

#[test]
fn garbage_keepalives_huge_datagrams_and_stray_responses_are_dropped() {
    let mut h = Harness::new();
    let from: SocketAddr = "198.51.100.66:5060".parse().unwrap();
    h.input("\r\n\r\n", from, Transport::Udp);
    h.ep.handle_input(&[0u8; 300], from, Transport::Udp, h.now);
    h.ep.handle_input(&vec![b'x'; 65_535], from, Transport::Udp, h.now);
    let mut huge = b"INVITE sip:a@127.0.0.1 SIP/2.0\r\n".to_vec();
    huge.resize(65_535, b'A');
    h.ep.handle_input(&huge, from, Transport::Udp, h.now);
    h.input("GET / HTTP/1.1\r\nHost: kuma\r\n\r\n", from, Transport::Udp);
    let stray = CORPUS
        .iter()
        .find(|(n, _)| *n == "response-200-bye")
        .unwrap()
        .1;
    h.ep.handle_input(stray, from, Transport::Udp, h.now);
    assert!(h.ep.poll_output().is_none());
    let stats = h.ep.stats();
    assert_eq!(stats.keepalives, 1);
    assert_eq!(stats.garbage, 4);
    assert_eq!(stats.stray_responses, 1);
    assert!(h.ep.is_idle());
}

#[test]
fn requests_for_unknown_dialogs_and_transactions_get_481() {
    let mut h = Harness::new();
    let mut caller = Caller::new("192.0.2.63:5060", "u1");
    caller.to_tag = Some("nosuchtag".into());
    let bye = caller.bye();
    h.from(&caller, &bye);
    assert_eq!(h.one_sent().status(), Some(481));
    let reinvite = caller.reinvite(SDP);
    h.from(&caller, &reinvite);
    assert_eq!(h.one_sent().status(), Some(481));
    let cancel = Caller::new("192.0.2.63:5060", "u2").request("CANCEL", 1, "z9hG4bKnone", "", "");
    h.from(&caller, &cancel);
    assert_eq!(h.one_sent().status(), Some(481));
    // BYE without a To tag cannot belong to a dialog either.
    let no_tag = Caller::new("192.0.2.63:5060", "u3").request("BYE", 2, "z9hG4bKnotag", "", "");
    h.from(&caller, &no_tag);
    assert_eq!(h.one_sent().status(), Some(481));
    assert_eq!(h.ep.stats().no_dialog, 4);
    assert!(h.take_events().is_empty());
    h.assert_idle_after_a_while();
}

#[test]
fn a_flood_of_invites_from_one_source_is_rate_limited_without_disturbing_others() {
    let mut h = Harness::with(Config {
        local: "127.0.0.1:5060".parse().unwrap(),
        invite_rate: (3, Duration::from_secs(10)),
        ..Config::default()
    });
    // A call in progress from the trunk.
    let mut trunk = Caller::new("192.0.2.10:5060", "trunk-call");
    let invite = trunk.invite();
    h.from(&trunk, &invite);
    h.take_sent();
    let call = h.incoming();

    for i in 0..50 {
        let mut scanner = Caller::new("203.0.113.66:5070", &format!("scan-{i}"));
        let invite = scanner.invite();
        h.from(&scanner, &invite);
    }
    let answered = h.take_sent().len();
    assert_eq!(answered, 3, "3 let in (100 Trying each), 47 dropped");
    assert_eq!(h.ep.stats().rate_limited, 47);
    assert_eq!(h.take_events().len(), 3);

    // The trunk's call is undisturbed.
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    assert_eq!(h.one_sent().status(), Some(200));
    // The window passes: the source may call again.
    h.advance(Duration::from_secs(10));
    h.take_sent();
    let mut again = Caller::new("203.0.113.66:5070", "scan-later");
    let invite = again.invite();
    h.from(&again, &invite);
    assert_eq!(h.one_sent().status(), Some(100));
}

#[test]
fn only_trunks_may_call_when_trunks_are_configured() {
    let mut h = Harness::with(Config {
        local: "192.0.2.1:5060".parse().unwrap(),
        trunks: Some(vec!["192.0.2.10".parse().unwrap()]),
        ..Config::default()
    });
    let mut stranger = Caller::new("203.0.113.66:5060", "x1");
    let invite = stranger.invite();
    h.from(&stranger, &invite);
    let options = stranger.request("OPTIONS", 1, "z9hG4bKx2", "", "");
    h.from(&stranger, &options);
    let garbage = stranger.request("INVITE", 1, "z9hG4bKx3", "Content-Length: 5\r\n", "");
    h.from(&stranger, &garbage);
    assert!(h.take_sent().is_empty(), "a stranger learns nothing");
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.stats().not_trunk, 2);

    let mut trunk = Caller::new("192.0.2.10:5060", "t1");
    let invite = trunk.invite();
    h.from(&trunk, &invite);
    assert_eq!(h.one_sent().status(), Some(100));
    h.incoming();
}

#[test]
fn stop_accepting_turns_new_calls_away_with_503() {
    let mut h = Harness::new();
    let mut first = Caller::new("192.0.2.10:5060", "s1");
    let invite = first.invite();
    h.from(&first, &invite);
    h.take_sent();
    let call = h.incoming();
    h.ep.stop_accepting();
    let mut second = Caller::new("192.0.2.10:5060", "s2");
    let invite = second.invite();
    h.from(&second, &invite);
    assert_eq!(h.one_sent().status(), Some(503));
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    assert_eq!(
        h.one_sent().status(),
        Some(200),
        "the call in progress goes on"
    );
}

#[test]
fn a_draining_endpoint_answers_options_with_503_so_a_proxy_stops_sending() {
    let mut h = Harness::new();
    let mut proxy = Caller::new("192.0.2.5:5060", "o1");
    let options = proxy.request("OPTIONS", 1, "z9hG4bKo1", "", "");
    h.from(&proxy, &options);
    assert_eq!(h.one_sent().status(), Some(200));
    h.ep.stop_accepting();
    let options = proxy.request("OPTIONS", 2, "z9hG4bKo2", "", "");
    h.from(&proxy, &options);
    let busy = h.one_sent();
    assert_eq!(busy.status(), Some(503));
    assert_eq!(busy.header("Retry-After").as_deref(), Some("60"));
    let invite = proxy.invite();
    h.from(&proxy, &invite);
    assert_eq!(h.one_sent().status(), Some(503));
}

#[test]
fn a_busy_endpoint_refuses_new_calls_and_probes_until_it_is_calm_again() {
    let mut h = Harness::new();
    let mut first = Caller::new("192.0.2.10:5060", "b1");
    let invite = first.invite();
    h.from(&first, &invite);
    h.take_sent();
    let call = h.incoming();

    h.ep.set_busy(true);
    let mut proxy = Caller::new("192.0.2.5:5060", "b2");
    let options = proxy.request("OPTIONS", 1, "z9hG4bKb1", "", "");
    h.from(&proxy, &options);
    let busy = h.one_sent();
    assert_eq!(busy.status(), Some(503));
    assert_eq!(busy.header("Retry-After").as_deref(), Some("5"));
    let invite = proxy.invite();
    h.from(&proxy, &invite);
    let refused = h.one_sent();
    assert_eq!(refused.status(), Some(503));
    assert_eq!(refused.header("Retry-After").as_deref(), Some("5"));
    assert!(h.take_events().is_empty(), "no call for the shell");
    assert_eq!(h.ep.stats().busy, 1);
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    assert_eq!(
        h.one_sent().status(),
        Some(200),
        "the call in progress goes on"
    );

    h.ep.set_busy(false);
    let options = proxy.request("OPTIONS", 2, "z9hG4bKb2", "", "");
    h.from(&proxy, &options);
    assert_eq!(h.one_sent().status(), Some(200));
    let mut third = Caller::new("192.0.2.10:5060", "b3");
    let invite = third.invite();
    h.from(&third, &invite);
    assert_eq!(h.one_sent().status(), Some(100));
    h.incoming();
}

/// A node behind Kamailio: `trunks` names the gateway, `proxies` the proxy.
fn behind_a_proxy() -> Harness {
    Harness::with(Config {
        local: "10.0.0.11:5060".parse().unwrap(),
        trunks: Some(vec!["192.0.2.10".parse().unwrap()]),
        proxies: vec!["10.0.0.2".parse().unwrap()],
        invite_rate: (2, Duration::from_secs(10)),
        ..Config::default()
    })
}

#[test]
fn a_proxy_may_probe_and_its_calls_are_judged_by_the_gateway_it_names() {
    let mut h = behind_a_proxy();
    let proxy = Caller::new("10.0.0.2:5060", "p1");
    let options = proxy.request("OPTIONS", 1, "z9hG4bKp1", "", "");
    h.from(&proxy, &options);
    assert_eq!(h.one_sent().status(), Some(200), "the proxy's probe");

    // The trunk's call, through the proxy: many of them, never rate limited.
    for n in 0..5 {
        let mut call = Caller::new("10.0.0.2:5060", &format!("g{n}"));
        let invite = call.invite().replace(
            "Max-Forwards",
            "X-Kuma-Source: 192.0.2.10:5062
Max-Forwards",
        );
        h.from(&call, &invite);
        let trying = h.one_sent();
        assert_eq!(trying.status(), Some(100));
        assert_eq!(
            trying.to,
            "10.0.0.2:5060".parse().unwrap(),
            "answers go back to the proxy"
        );
        match h.take_events().as_slice() {
            [Event::Incoming { source, origin, .. }] => {
                assert_eq!(*source, "10.0.0.2:5060".parse().unwrap());
                assert_eq!(*origin, "192.0.2.10:5062".parse().unwrap());
            }
            other => panic!("{other:?}"),
        }
    }

    // A stranger's call through the same proxy is still a stranger's.
    let mut call = Caller::new("10.0.0.2:5060", "s1");
    let invite = call.invite().replace(
        "Max-Forwards",
        "X-Kuma-Source: 203.0.113.66
Max-Forwards",
    );
    h.from(&call, &invite);
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.stats().not_trunk, 1);
}

#[test]
fn the_header_from_a_gateway_or_a_bad_one_from_the_proxy_earns_no_trust() {
    let mut h = behind_a_proxy();
    // A stranger writing the header itself is still a stranger.
    let mut stranger = Caller::new("203.0.113.66:5060", "x1");
    let invite = stranger.invite().replace(
        "Max-Forwards",
        "X-Kuma-Source: 192.0.2.10
Max-Forwards",
    );
    h.from(&stranger, &invite);
    assert!(h.take_sent().is_empty());
    // The proxy's unreadable header: judged by the proxy's own address, which is
    // not a trunk here.
    for (n, header) in [
        "X-Kuma-Source: gateway
",
        "X-Kuma-Source: 192.0.2.10
X-Kuma-Source: 192.0.2.10
",
        "",
    ]
    .iter()
    .enumerate()
    {
        let mut call = Caller::new("10.0.0.2:5060", &format!("b{n}"));
        let invite = call
            .invite()
            .replace("Max-Forwards", &format!("{header}Max-Forwards"));
        h.from(&call, &invite);
        assert!(h.take_sent().is_empty(), "{header}");
    }
    assert_eq!(h.ep.stats().not_trunk, 4);

    // Without `trunks`, the rate limit counts the gateway the proxy names.
    let mut h = Harness::with(Config {
        proxies: vec!["10.0.0.2".parse().unwrap()],
        invite_rate: (2, Duration::from_secs(10)),
        ..Config::default()
    });
    let mut admitted = 0;
    for n in 0..6 {
        let gateway = if n % 2 == 0 {
            "192.0.2.10"
        } else {
            "192.0.2.11"
        };
        let mut call = Caller::new("10.0.0.2:5060", &format!("r{n}"));
        let invite = call.invite().replace(
            "Max-Forwards",
            &format!("X-Kuma-Source: {gateway}\r\nMax-Forwards"),
        );
        h.from(&call, &invite);
        admitted += h.take_events().len();
    }
    assert_eq!(admitted, 4, "two per gateway, not two for the proxy");
}

/// Inputs for the endpoint fuzzer: corpus messages (some with a To tag pointing at a
/// live call), mutated ones, noise, and time steps.
#[derive(Debug, Clone)]
enum Step {
    Datagram(Vec<u8>),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let corpus: Vec<Vec<u8>> = CORPUS.iter().map(|(_, b)| b.to_vec()).collect();
    prop_oneof![
        prop::sample::select(corpus.clone()).prop_map(Step::Datagram),
        (
            prop::sample::select(corpus),
            any::<prop::sample::Index>(),
            any::<u8>()
        )
            .prop_map(|(mut m, at, b)| {
                let i = at.index(m.len());
                m[i] = b;
                Step::Datagram(m)
            }),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Step::Datagram),
        (0u64..40_000).prop_map(Step::Wait),
    ]
}

proptest! {
    // Each case is a whole session of up to 40 steps: fewer cases than the parser's
    // fuzzers by default; PROPTEST_CASES still raises it.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(128)
    ))]

    #[test]
    fn fuzz_endpoint_never_panics_and_leaks_nothing(steps in prop::collection::vec(step(), 0..40)) {
        let mut h = Harness::new();
        let from: SocketAddr = "192.0.2.99:5060".parse().unwrap();
        let mut calls = Vec::new();
        for step in steps {
            match step {
                Step::Datagram(data) => {
                    h.ep.handle_input(&data, from, Transport::Udp, h.now);
                    h.ep.handle_input(&data, from, Transport::Tcp, h.now);
                }
                Step::Wait(ms) => h.advance(Duration::from_millis(ms)),
            }
            while let Some(output) = h.ep.poll_output() {
                if let Output::Event(Event::Incoming { call, .. }) = output {
                    calls.push(call);
                }
            }
            // The application answers some calls, so every path is taken.
            if let Some(call) = calls.pop() {
                match call.0 % 4 {
                    0 => h.ep.accept(call, ANSWER.to_owned(), h.now),
                    1 => h.ep.reject(call, 488, h.now),
                    2 => h.ep.hang_up(call, h.now),
                    _ => h.ep.ringing(call, h.now),
                }
            }
        }
        h.advance(Duration::from_secs(400));
        prop_assert!(h.ep.is_idle());
    }
}

/// §9.2: a CANCEL that matches no transaction gets 481. It is answered hop by hop and
/// starts no dialog, so the 481 carries the request's To as it was: kuma hands out
/// no tag to whoever asks.
#[test]
fn cancel_for_an_unknown_transaction_gets_481_without_a_to_tag() {
    let mut h = Harness::new();
    let stranger = Caller::new("192.0.2.63:5060", "x1");
    let cancel = stranger.request("CANCEL", 1, "z9hG4bKnosuchinvite", "", "");
    h.from(&stranger, &cancel);
    let r = h.one_sent();
    assert_eq!(r.status(), Some(481));
    assert_eq!(r.to, stranger.addr);
    assert_eq!(r.to_tag(), None, "{}", r.text);
    assert_eq!(r.header("To"), Some(stranger.to()));
    assert_eq!(h.ep.stats().no_dialog, 1);
    // Its retransmission gets the same 481, still without a tag.
    h.from(&stranger, &cancel);
    assert_eq!(h.one_sent().text, r.text);
    assert!(h.take_events().is_empty());
    h.assert_idle_after_a_while();
}

/// The tag of an OPTIONS response (anyone may ask for one) outside a dialog.
fn options_tag(h: &mut Harness, n: u32) -> String {
    let asker = Caller::new("192.0.2.64:5060", &format!("o{n}"));
    let options = asker.request("OPTIONS", 1, &format!("z9hG4bKo{n}"), "", "");
    h.from(&asker, &options);
    let r = h.one_sent();
    assert_eq!(r.status(), Some(200));
    r.to_tag().unwrap()
}

/// The next output of SplitMix64 from one output: its mixing function can be
/// undone, so one tag gives the whole state away.
fn splitmix_next(output: u64) -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    const M1: u64 = 0xBF58_476D_1CE4_E5B9;
    const M2: u64 = 0x94D0_49BB_1331_11EB;
    fn unxorshift(y: u64, s: u32) -> u64 {
        let mut x = y;
        for _ in 0..64 / s + 1 {
            x = y ^ (x >> s);
        }
        x
    }
    fn inverse(a: u64) -> u64 {
        // Newton's iteration: each step doubles the correct low bits.
        let mut x = a;
        for _ in 0..6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        }
        x
    }
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(M1);
        z = (z ^ (z >> 27)).wrapping_mul(M2);
        z ^ (z >> 31)
    }
    let mut z = unxorshift(output, 31).wrapping_mul(inverse(M2));
    z = unxorshift(z, 27).wrapping_mul(inverse(M1));
    let state = unxorshift(z, 30);
    debug_assert_eq!(mix(state), output);
    mix(state.wrapping_add(GAMMA))
}

#[test]
fn one_tag_seen_does_not_predict_the_next() {
    // The predictor works: on SplitMix64 (kuma's generator before), it is exact.
    let mut state = 0x1234_5678_u64;
    let mut splitmix = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (a, b) = (splitmix(), splitmix());
    assert_eq!(splitmix_next(a), b);

    // kuma's tags: one seen, the next one is not what it would give.
    let mut h = Harness::new();
    for n in 0..100 {
        let seen = u64::from_str_radix(&options_tag(&mut h, 2 * n), 16).unwrap();
        let next = u64::from_str_radix(&options_tag(&mut h, 2 * n + 1), 16).unwrap();
        assert_ne!(splitmix_next(seen), next);
    }
}

#[test]
fn two_endpoints_made_alike_give_different_tags_branches_and_call_ids() {
    let config = || Config {
        local: "127.0.0.1:5060".parse().unwrap(),
        ..Config::default()
    };
    let mut made = Vec::new();
    for _ in 0..2 {
        let mut h = Harness::new();
        h.ep = Endpoint::new(config()).unwrap();
        let tag = options_tag(&mut h, 1);
        let dial = crate::sip::Dial {
            target: "sip:+22370123456@192.0.2.50".into(),
            from: "sip:2001@192.0.2.50".into(),
            next_hop: "192.0.2.50:5060".parse().unwrap(),
            proxy: None,
            credentials: None,
            offer: ANSWER.to_owned(),
            ring_timeout: Duration::from_secs(30),
            local: "127.0.0.1:5060".parse().unwrap(),
        };
        h.ep.dial(&dial, h.now);
        let invite = h.one_sent();
        let from_tag = message::header_param(&invite.header("From").unwrap(), "tag")
            .unwrap()
            .to_owned();
        made.push((
            tag,
            from_tag,
            invite.branch().unwrap(),
            invite.header("Call-ID").unwrap(),
        ));
    }
    let [a, b] = made.as_slice() else {
        unreachable!()
    };
    assert_ne!(a.0, b.0, "To tags");
    assert_ne!(a.1, b.1, "From tags");
    assert_ne!(a.2, b.2, "branches");
    assert_ne!(a.3, b.3, "Call-IDs");
    let local = a.3.split('@').next().unwrap();
    assert_eq!(local.len(), 32, "128 bits in the Call-ID: {}", a.3);
}
