//! Calls from start to end, every path of `call.rs` and `endpoint.rs`.

use super::*;
use crate::sip::{EndReason, Timers};

/// A call up to kuma's 200 OK; returns the call id and the 200.
fn answered(h: &mut Harness, caller: &mut Caller) -> (crate::sip::CallId, Sent) {
    let invite = caller.invite();
    h.from(caller, &invite);
    let trying = h.one_sent();
    assert_eq!(trying.status(), Some(100));
    let call = h.incoming();
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    let ok = h.one_sent();
    assert_eq!(ok.status(), Some(200));
    caller.learn_tag(&ok);
    (call, ok)
}

/// A call up to the ACK.
fn established(h: &mut Harness, caller: &mut Caller) -> crate::sip::CallId {
    let (call, _) = answered(h, caller);
    let ack = caller.ack();
    h.from(caller, &ack);
    assert_eq!(h.take_events(), vec![Event::Established { call }]);
    assert!(h.take_sent().is_empty(), "nothing answers an ACK");
    call
}

#[test]
fn invite_gets_100_trying_at_once_and_is_reported() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c1");
    let invite = caller.invite();
    h.from(&caller, &invite);
    let trying = h.one_sent();
    assert_eq!(trying.status(), Some(100));
    assert_eq!(trying.to, caller.addr);
    assert_eq!(trying.to_tag(), None, "a 100 has no tag");
    assert_eq!(
        trying.header("Via").as_deref(),
        Some("SIP/2.0/UDP 127.0.1.1:5061;branch=z9hG4bK-c1-1")
    );
    match h.take_events().as_slice() {
        [
            Event::Incoming {
                dialled,
                caller: number,
                offer,
                source,
                ..
            },
        ] => {
            assert_eq!(dialled, "service");
            assert_eq!(number, "0700123456");
            assert_eq!(offer.as_deref(), Some(SDP.as_bytes()));
            assert_eq!(*source, caller.addr);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_200_is_retransmitted_500ms_1s_2s_4s_4s_until_the_ack() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c2");
    let (call, ok) = answered(&mut h, &mut caller);
    assert!(ok.text.contains("Content-Type: application/sdp\r\n"));
    assert!(ok.text.ends_with(ANSWER));
    assert!(
        ok.header("Contact")
            .unwrap()
            .contains("sip:kuma@127.0.0.1:5060")
    );
    let tag = ok.to_tag().unwrap();

    h.advance(ms(12_000));
    let resent = h.take_sent();
    let times: Vec<u128> = resent.iter().map(|s| s.at.as_millis()).collect();
    assert_eq!(times, vec![500, 1500, 3500, 7500, 11500]);
    assert!(
        resent.iter().all(|s| s.text == ok.text),
        "the same 200 each time"
    );

    let ack = caller.ack();
    h.from(&caller, &ack);
    assert_eq!(h.take_events(), vec![Event::Established { call }]);
    h.advance(ms(60_000));
    assert!(h.take_sent().is_empty(), "no retransmission after the ACK");
    assert!(h.take_events().is_empty());

    // The caller hangs up.
    let bye = caller.bye();
    h.from(&caller, &bye);
    let ok_bye = h.one_sent();
    assert_eq!(ok_bye.status(), Some(200));
    assert_eq!(ok_bye.to_tag(), Some(tag));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::CallerHangup
        }]
    );
    // A retransmitted BYE gets the same 200 from the transaction.
    h.from(&caller, &bye);
    assert_eq!(h.one_sent().text, ok_bye.text);
    assert!(h.take_events().is_empty());
    h.assert_idle_after_a_while();
}

#[test]
fn a_lost_ack_ends_the_call_with_bye_after_64_t1() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c3");
    let (call, _) = answered(&mut h, &mut caller);
    h.advance(ms(31_999));
    assert!(h.take_events().is_empty());
    h.take_sent();
    h.advance(ms(1));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::AckTimeout
        }]
    );
    let bye = h.one_sent();
    assert_eq!(bye.method(), Some("BYE"));
    assert_eq!(bye.to, caller.addr);
    assert!(bye.text.starts_with("BYE sip:sipp@127.0.1.1:5061 SIP/2.0"));
    assert_eq!(
        bye.header("To").unwrap(),
        format!(
            "sipp <sip:0700123456@127.0.1.1:5061>;tag={}",
            caller.from_tag
        )
    );
    // Retransmitted until answered.
    h.advance(ms(2000));
    let again = h.take_sent();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|s| s.text == bye.text));
    h.input(&bye.answer(200, "OK"), caller.addr, Transport::Udp);
    h.advance(ms(10_000));
    assert!(h.take_sent().is_empty());
    h.assert_idle_after_a_while();
}

#[test]
fn cancel_before_the_answer_gets_200_and_the_invite_487() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c4");
    let invite = caller.invite();
    h.from(&caller, &invite);
    h.take_sent();
    let call = h.incoming();
    h.ep.ringing(call, h.now);
    let ringing = h.one_sent();
    assert_eq!(ringing.status(), Some(180));
    let tag = ringing.to_tag().unwrap();

    h.advance(ms(2000));
    let cancel = caller.cancel();
    h.from(&caller, &cancel);
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0].status(), Some(200));
    assert_eq!(sent[0].header("CSeq").as_deref(), Some("1 CANCEL"));
    assert_eq!(sent[0].to_tag().as_deref(), Some(tag.as_str()));
    assert_eq!(sent[1].status(), Some(487));
    assert_eq!(sent[1].to_tag().as_deref(), Some(tag.as_str()));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::Cancelled
        }]
    );
    // The 487 is retransmitted (timer G) until the ACK, which is absorbed.
    h.advance(ms(600));
    assert_eq!(h.one_sent().status(), Some(487));
    caller.learn_tag(&sent[1]);
    let ack = caller.ack_failure();
    h.from(&caller, &ack);
    h.advance(ms(10_000));
    assert!(h.take_sent().is_empty());
    // The application's late answer changes nothing.
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    assert!(h.take_sent().is_empty());
    h.assert_idle_after_a_while();
}

#[test]
fn kuma_hangs_up_with_a_bye_retransmitted_until_its_200() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c5");
    let call = established(&mut h, &mut caller);
    h.advance(ms(5000));
    h.ep.hang_up(call, h.now);
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::HungUp
        }]
    );
    let bye = h.one_sent();
    assert_eq!(bye.method(), Some("BYE"));
    assert!(bye.header("CSeq").unwrap().ends_with(" BYE"));
    assert!(bye.branch().unwrap().starts_with("z9hG4bK"));
    h.advance(ms(1600));
    let times: Vec<u128> = h.take_sent().iter().map(|s| s.at.as_millis()).collect();
    assert_eq!(times, vec![5500, 6500]);
    h.input(&bye.answer(200, "OK"), caller.addr, Transport::Udp);
    h.advance(ms(40_000));
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty(), "one Ended only");
    // A BYE from the caller crossing kuma's: 481 once the call is gone.
    let late = caller.bye();
    h.from(&caller, &late);
    assert_eq!(h.one_sent().status(), Some(481));
    h.assert_idle_after_a_while();
}

#[test]
fn hang_up_between_the_200_and_the_ack_sends_bye_after_the_ack() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c6");
    let (call, _) = answered(&mut h, &mut caller);
    h.ep.hang_up(call, h.now);
    assert!(
        h.take_sent().is_empty(),
        "RFC 3261 §15: no BYE before the ACK"
    );
    let ack = caller.ack();
    h.from(&caller, &ack);
    assert_eq!(h.one_sent().method(), Some("BYE"));
    let events = h.take_events();
    assert_eq!(
        events,
        vec![Event::Ended {
            call,
            reason: EndReason::HungUp
        }]
    );
}

#[test]
fn hang_up_before_the_answer_is_480_and_reject_sends_the_code() {
    let mut h = Harness::new();
    let mut a = Caller::new("127.0.1.1:5061", "c7a");
    let invite = a.invite();
    h.from(&a, &invite);
    h.take_sent();
    let call = h.incoming();
    h.ep.hang_up(call, h.now);
    assert_eq!(h.one_sent().status(), Some(480));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::HungUp
        }]
    );

    for code in [404, 486, 488, 603] {
        let mut b = Caller::new("127.0.1.1:5061", &format!("c7-{code}"));
        let invite = b.invite();
        h.from(&b, &invite);
        h.take_sent();
        let call = h.incoming();
        h.ep.reject(call, code, h.now);
        assert_eq!(h.one_sent().status(), Some(code));
        assert_eq!(
            h.take_events(),
            vec![Event::Ended {
                call,
                reason: EndReason::Rejected(code)
            }]
        );
        // The INVITE retransmitted: the same final response.
        let again = b.invite_again();
        h.from(&b, &again);
        assert_eq!(h.one_sent().status(), Some(code));
        let ack = b.ack_failure();
        h.from(&b, &ack);
    }
    h.assert_idle_after_a_while();
}

#[test]
fn invite_retransmissions_are_absorbed() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c8");
    let invite = caller.invite();
    h.from(&caller, &invite);
    let trying = h.one_sent();
    let call = h.incoming();
    h.advance(ms(500));
    h.from(&caller, &invite);
    assert_eq!(h.one_sent().text, trying.text, "the latest response again");
    assert!(h.take_events().is_empty(), "one call, not two");
    h.ep.ringing(call, h.now);
    let ringing = h.one_sent();
    h.from(&caller, &invite);
    assert_eq!(h.one_sent().text, ringing.text);
    // After the 200 (RFC 6026 Accepted), the call's own timer resends the 200.
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    h.take_sent();
    h.from(&caller, &invite);
    assert!(h.take_sent().is_empty());
    assert_eq!(h.ep.calls(), 1);
}

/// RFC 3261 §8.2.2.2: the same INVITE by a second path (a forking proxy
/// upstream: same Call-ID, From tag and CSeq, another branch) gets 482, and
/// the caller has one call, not two.
#[test]
fn a_merged_invite_gets_482_and_makes_no_second_call() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "merged");
    let invite = caller.invite();
    h.from(&caller, &invite);
    assert_eq!(h.one_sent().status(), Some(100));
    let call = h.incoming();
    let copy = caller.invite();
    assert_ne!(copy, invite, "another branch");
    h.from(&caller, &copy);
    let loop_detected = h.one_sent();
    assert_eq!(loop_detected.status(), Some(482), "{}", loop_detected.text);
    assert!(h.take_events().is_empty(), "one call, not two");
    assert_eq!(h.ep.calls(), 1);
    assert_eq!(h.ep.stats().merged, 1);
    // The first goes on as ever.
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    assert_eq!(h.one_sent().status(), Some(200));
}

#[test]
fn reinvite_hold_and_resume_keep_the_call() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c9");
    let call = established(&mut h, &mut caller);
    let hold = SDP.replace(
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n",
    );
    for (offer, answer) in [(hold.as_str(), "hold answer"), (SDP, "resume answer")] {
        let reinvite = caller.reinvite(offer);
        h.from(&caller, &reinvite);
        assert_eq!(h.one_sent().status(), Some(100));
        assert_eq!(
            h.take_events(),
            vec![Event::Reoffer {
                call,
                offer: Some(offer.as_bytes().to_vec())
            }]
        );
        h.ep.accept_reinvite(call, answer.to_owned(), h.now);
        let ok = h.one_sent();
        assert_eq!(ok.status(), Some(200));
        assert!(ok.text.ends_with(answer));
        h.advance(ms(500));
        assert_eq!(h.one_sent().text, ok.text, "retransmitted until the ACK");
        let ack = caller.ack();
        h.from(&caller, &ack);
        h.advance(ms(5000));
        assert!(h.take_sent().is_empty());
        assert!(h.take_events().is_empty(), "the call goes on");
    }
    // A re-INVITE kuma cannot take is refused; the call still goes on.
    let reinvite = caller.reinvite(SDP);
    h.from(&caller, &reinvite);
    h.take_sent();
    h.take_events();
    h.ep.reject_reinvite(call, 488, h.now);
    assert_eq!(h.one_sent().status(), Some(488));
    let ack = caller.ack_failure();
    h.from(&caller, &ack);
    let bye = caller.bye();
    h.from(&caller, &bye);
    assert_eq!(h.one_sent().status(), Some(200));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::CallerHangup
        }]
    );
    h.assert_idle_after_a_while();
}

#[test]
fn a_second_reinvite_before_the_first_is_answered_gets_500_with_retry_after() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c10");
    let call = established(&mut h, &mut caller);
    let first = caller.reinvite(SDP);
    h.from(&caller, &first);
    h.take_sent();
    h.take_events();
    let second = caller.reinvite(SDP);
    h.from(&caller, &second);
    let refused = h.one_sent();
    assert_eq!(refused.status(), Some(500));
    let secs: u32 = refused.header("Retry-After").unwrap().parse().unwrap();
    assert!(secs <= 10);
    // The first is still answerable.
    h.ep.accept_reinvite(call, ANSWER.to_owned(), h.now);
    assert_eq!(h.one_sent().status(), Some(200));
}

#[test]
fn an_invite_without_sdp_gets_kumas_offer_and_the_answer_comes_in_the_ack() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c11");
    let invite = caller.invite_without_sdp();
    h.from(&caller, &invite);
    h.take_sent();
    let call = match h.take_events().as_slice() {
        [
            Event::Incoming {
                call, offer: None, ..
            },
        ] => *call,
        other => panic!("{other:?}"),
    };
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    let ok = h.one_sent();
    caller.learn_tag(&ok);
    let branch = format!("z9hG4bK-ack-{}", caller.call_id);
    let ack = caller.request("ACK", 1, &branch, "Content-Type: application/sdp\r\n", SDP);
    h.from(&caller, &ack);
    assert_eq!(
        h.take_events(),
        vec![
            Event::Answer {
                call,
                sdp: SDP.as_bytes().to_vec()
            },
            Event::Established { call }
        ]
    );
}

#[test]
fn info_keys_dtmf_relay_and_dtmf() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c12");
    let call = established(&mut h, &mut caller);
    let bodies = [
        (
            "application/dtmf-relay",
            "Signal=5\r\nDuration=160\r\n",
            Some('5'),
        ),
        (
            "application/dtmf-relay",
            "Signal= 11\r\nDuration= 100\r\n",
            Some('#'),
        ),
        ("application/dtmf", "*", Some('*')),
        ("application/media_control+xml", "<media_control/>", None),
    ];
    for (content_type, body, key) in bodies {
        let info = caller.in_dialog("INFO", &format!("Content-Type: {content_type}\r\n"), body);
        h.from(&caller, &info);
        assert_eq!(h.one_sent().status(), Some(200));
        let expected: Vec<Event> = key
            .map(|key| Event::Key { call, key })
            .into_iter()
            .collect();
        assert_eq!(h.take_events(), expected);
    }
}

#[test]
fn options_in_a_dialog_and_outside_are_200_with_allow() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c13");
    established(&mut h, &mut caller);
    let options = caller.in_dialog("OPTIONS", "", "");
    h.from(&caller, &options);
    let ok = h.one_sent();
    assert_eq!(ok.status(), Some(200));
    assert!(ok.header("Allow").unwrap().contains("INVITE"));

    // A trunk's keep-alive, outside any dialog.
    let ping = Caller::new("192.0.2.50:5060", "ping");
    let options = ping.request(
        "OPTIONS",
        1,
        "z9hG4bKping1",
        "Accept: application/sdp\r\n",
        "",
    );
    h.from(&ping, &options);
    let ok = h.one_sent();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.to, ping.addr);
    assert!(ok.to_tag().is_some());
    assert_eq!(ok.header("Accept").as_deref(), Some("application/sdp"));
    assert!(ok.header("Allow").unwrap().contains("OPTIONS"));
}

#[test]
fn refer_then_notify_sipfrag_reports_the_transfer() {
    for (frag, ok) in [("SIP/2.0 200 OK", true), ("SIP/2.0 486 Busy Here", false)] {
        let mut h = Harness::new();
        let mut caller = Caller::new("127.0.1.1:5061", "c14");
        let call = established(&mut h, &mut caller);
        h.ep.refer(call, "sip:helpline@192.0.2.80", h.now);
        let refer = h.one_sent();
        assert_eq!(refer.method(), Some("REFER"));
        assert_eq!(
            refer.header("Refer-To").as_deref(),
            Some("<sip:helpline@192.0.2.80>")
        );
        assert!(refer.header("Contact").is_some());
        h.advance(ms(500));
        assert_eq!(
            h.one_sent().text,
            refer.text,
            "retransmitted until answered"
        );
        h.input(&refer.answer(202, "Accepted"), caller.addr, Transport::Udp);
        h.advance(ms(5000));
        assert!(h.take_sent().is_empty());

        let trying = caller.in_dialog(
            "NOTIFY",
            "Event: refer\r\nSubscription-State: active;expires=60\r\nContent-Type: message/sipfrag;version=2.0\r\n",
            "SIP/2.0 100 Trying\r\n",
        );
        h.from(&caller, &trying);
        assert_eq!(h.one_sent().status(), Some(200));
        assert!(h.take_events().is_empty());
        let done = caller.in_dialog(
            "NOTIFY",
            "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag;version=2.0\r\n",
            &format!("{frag}\r\n"),
        );
        h.from(&caller, &done);
        assert_eq!(h.one_sent().status(), Some(200));
        assert_eq!(h.take_events(), vec![Event::TransferResult { call, ok }]);
        h.ep.hang_up(call, h.now);
        let bye = h.take_sent().pop().unwrap();
        h.input(&bye.answer(200, "OK"), caller.addr, Transport::Udp);
        h.assert_idle_after_a_while();
    }
}

#[test]
fn a_refused_or_unanswered_refer_is_a_failed_transfer() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c15");
    let call = established(&mut h, &mut caller);
    h.ep.refer(call, "sip:helpline@192.0.2.80", h.now);
    let refer = h.one_sent();
    h.input(
        &refer.answer(405, "Method Not Allowed"),
        caller.addr,
        Transport::Udp,
    );
    assert_eq!(
        h.take_events(),
        vec![Event::TransferResult { call, ok: false }]
    );
    // No answer at all: timer F.
    h.ep.refer(call, "sip:helpline@192.0.2.80", h.now);
    h.take_sent();
    h.advance(ms(32_000));
    assert_eq!(
        h.take_events(),
        vec![Event::TransferResult { call, ok: false }]
    );
}

#[test]
fn ring_timeout_is_480() {
    let mut h = Harness::with(Config {
        local: "127.0.0.1:5060".parse().unwrap(),
        timers: Timers {
            ring_timeout: Duration::from_secs(60),
            ..Timers::default()
        },
        ..Config::default()
    });
    let mut caller = Caller::new("127.0.1.1:5061", "c16");
    let invite = caller.invite();
    h.from(&caller, &invite);
    h.take_sent();
    let call = h.incoming();
    h.advance(Duration::from_secs(60));
    assert_eq!(h.take_sent().first().and_then(Sent::status), Some(480));
    assert_eq!(
        h.take_events(),
        vec![Event::Ended {
            call,
            reason: EndReason::NotAnswered
        }]
    );
}

#[test]
fn rport_and_received_send_responses_back_through_the_nat() {
    let mut h = Harness::new();
    // The caller thinks it is 192.168.1.37:5060; its NAT shows 203.0.113.9:41234.
    let invite = include_str!("../../../fuzz/corpus/sip/baresip-invite.sip");
    let nat: SocketAddr = "203.0.113.9:41234".parse().unwrap();
    h.input(invite, nat, Transport::Udp);
    let trying = h.one_sent();
    assert_eq!(trying.to, nat);
    assert_eq!(
        trying.header("Via").as_deref(),
        Some(
            "SIP/2.0/UDP 192.168.1.37:5060;branch=z9hG4bK9a1f2e3d4c5b6a79;rport=41234;received=203.0.113.9"
        )
    );
    // Without rport: to the source address, at the Via port (RFC 3261 §18.2.2).
    let sipp = include_str!("../../../fuzz/corpus/sip/sipp-uac-invite.sip");
    let from: SocketAddr = "198.51.100.4:40000".parse().unwrap();
    h.input(sipp, from, Transport::Udp);
    let trying = h.one_sent();
    assert_eq!(trying.to, "198.51.100.4:5061".parse().unwrap());
    assert!(
        trying
            .header("Via")
            .unwrap()
            .ends_with(";received=198.51.100.4")
    );
}

#[test]
fn an_ipv6_call_from_start_to_end() {
    let mut h = Harness::with(Config {
        local: "[2001:db8::10]:5060".parse().unwrap(),
        ..Config::default()
    });
    let invite = include_str!("../../../fuzz/corpus/sip/ipv6-invite.sip");
    let from: SocketAddr = "[2001:db8:85a3::8a2e:370:7334]:5062".parse().unwrap();
    h.input(invite, from, Transport::Udp);
    assert_eq!(h.one_sent().to, from);
    let call = match h.take_events().as_slice() {
        [
            Event::Incoming {
                call,
                dialled,
                caller,
                ..
            },
        ] => {
            assert_eq!((dialled.as_str(), caller.as_str()), ("3100", "ama"));
            *call
        }
        other => panic!("{other:?}"),
    };
    h.ep.accept(call, ANSWER.to_owned(), h.now);
    let ok = h.one_sent();
    assert!(
        ok.header("Contact")
            .unwrap()
            .contains("[2001:db8::10]:5060")
    );
    let tag = ok.to_tag().unwrap();
    let ack = format!(
        "ACK sip:ama@[2001:db8:85a3::8a2e:370:7334]:5062 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8:85a3::8a2e:370:7334]:5062;branch=z9hG4bK6ack;rport\r\n\
         From: <sip:ama@[2001:db8:85a3::8a2e:370:7334]>;tag=v6tag\r\n\
         To: <sip:3100@[2001:db8::10]>;tag={tag}\r\n\
         Call-ID: v6call@2001:db8:85a3::8a2e:370:7334\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    h.input(&ack, from, Transport::Udp);
    assert_eq!(h.take_events(), vec![Event::Established { call }]);
    h.ep.hang_up(call, h.now);
    let bye = h.one_sent();
    assert_eq!(bye.to, from);
    assert!(
        bye.text
            .starts_with("BYE sip:ama@[2001:db8:85a3::8a2e:370:7334]:5062 SIP/2.0")
    );
    assert!(
        bye.text
            .contains("Via: SIP/2.0/UDP [2001:db8::10]:5060;branch=")
    );
}

#[test]
fn over_tcp_nothing_is_retransmitted_by_the_transactions() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:40001", "c17");
    caller.transport = Transport::Tcp;
    let invite = caller.invite();
    h.from(&caller, &invite);
    let trying = h.one_sent();
    assert_eq!((trying.to, trying.transport), (caller.addr, Transport::Tcp));
    let call = h.incoming();
    h.ep.reject(call, 486, h.now);
    assert_eq!(h.one_sent().status(), Some(486));
    h.advance(ms(10_000));
    assert!(h.take_sent().is_empty(), "no timer G over TCP");
    h.assert_idle_after_a_while();
}

#[test]
fn an_rfc2543_invite_without_branch_is_served() {
    let mut h = Harness::new();
    let invite = include_str!("../../../fuzz/corpus/sip/rfc2543-invite-no-branch.sip");
    let from: SocketAddr = "192.0.2.77:5060".parse().unwrap();
    h.input(invite, from, Transport::Udp);
    assert_eq!(h.one_sent().status(), Some(100));
    let call = h.incoming();
    h.input(invite, from, Transport::Udp);
    assert_eq!(h.one_sent().status(), Some(100), "retransmission matched");
    assert!(h.take_events().is_empty());
    h.ep.reject(call, 603, h.now);
    assert_eq!(h.one_sent().status(), Some(603));
    h.assert_idle_after_a_while();
}

#[test]
fn thousands_of_calls_leave_nothing_behind() {
    let mut h = Harness::with(Config {
        local: "127.0.0.1:5060".parse().unwrap(),
        invite_rate: (u32::MAX, Duration::from_secs(1)),
        ..Config::default()
    });
    let mut ended = 0;
    for i in 0..4000u32 {
        let mut caller = Caller::new(
            &format!("10.0.{}.{}:5060", i / 250, i % 250 + 1),
            &format!("load-{i}"),
        );
        let invite = caller.invite();
        h.from(&caller, &invite);
        let call = match h.take_events().as_slice() {
            [Event::Incoming { call, .. }] => *call,
            other => panic!("{other:?}"),
        };
        match i % 5 {
            0 => {
                // A whole call: answer, ACK, caller hangs up.
                h.ep.accept(call, ANSWER.to_owned(), h.now);
                let ok = h.take_sent().pop().unwrap();
                caller.learn_tag(&ok);
                let ack = caller.ack();
                h.from(&caller, &ack);
                let bye = caller.bye();
                h.from(&caller, &bye);
            }
            1 => {
                let cancel = caller.cancel();
                h.from(&caller, &cancel);
                let ack = caller.ack_failure();
                h.from(&caller, &ack);
            }
            2 => h.ep.accept(call, ANSWER.to_owned(), h.now), // the ACK is lost
            3 => h.ep.reject(call, 404, h.now),               // no ACK either
            _ => {
                // kuma hangs up; the BYE is answered.
                h.ep.accept(call, ANSWER.to_owned(), h.now);
                let ok = h.take_sent().pop().unwrap();
                caller.learn_tag(&ok);
                let ack = caller.ack();
                h.from(&caller, &ack);
                h.ep.hang_up(call, h.now);
                let bye = h.take_sent().pop().unwrap();
                h.input(&bye.answer(200, "OK"), caller.addr, Transport::Udp);
            }
        }
        h.take_sent();
        ended += h
            .take_events()
            .iter()
            .filter(|e| matches!(e, Event::Ended { .. }))
            .count();
        if i % 100 == 0 {
            h.advance(ms(100));
        }
    }
    h.advance(Duration::from_secs(200));
    ended += h
        .take_events()
        .iter()
        .filter(|e| matches!(e, Event::Ended { .. }))
        .count();
    assert_eq!(ended, 4000, "one Ended per call");
    assert!(h.ep.is_idle(), "{} calls left", h.ep.calls());
    assert_eq!(h.ep.poll_timeout(), None, "no timer left either");
}

/// kuma's BYE and REFER are client transactions too: a forged answer from another
/// address neither stops the BYE's retransmissions nor decides the transfer.
#[test]
fn forged_answers_to_kumas_bye_and_refer_from_another_address_are_ignored() {
    let forger: SocketAddr = "192.0.2.66:5061".parse().unwrap();
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:5061", "c30");
    let call = established(&mut h, &mut caller);

    h.ep.refer(call, "sip:helpline@192.0.2.80", h.now);
    let refer = h.one_sent();
    h.input(&refer.answer(603, "Decline"), forger, Transport::Udp);
    assert!(
        h.take_events().is_empty(),
        "the transfer is not failed by a forgery"
    );
    h.input(&refer.answer(202, "Accepted"), caller.addr, Transport::Udp);
    assert!(h.take_events().is_empty());
    assert!(h.take_sent().is_empty());

    h.ep.hang_up(call, h.now);
    h.take_events();
    let bye = h.one_sent();
    assert_eq!(bye.method(), Some("BYE"));
    h.input(&bye.answer(200, "OK"), forger, Transport::Udp);
    h.input(&bye.answer(200, "OK"), caller.addr, Transport::Tcp);
    h.advance(ms(500));
    assert_eq!(h.one_sent().text, bye.text, "still retransmitted (timer E)");
    assert_eq!(h.ep.stats().responses_from_elsewhere, 3);
    h.input(&bye.answer(200, "OK"), caller.addr, Transport::Udp);
    h.advance(ms(5000));
    assert!(h.take_sent().is_empty());
    h.assert_idle_after_a_while();
}

/// Over TCP, a response must come on the connection to the address the request
/// went to: the same address over UDP is someone else.
#[test]
fn over_tcp_a_response_to_kumas_refer_counts_only_on_the_connection() {
    let mut h = Harness::new();
    let mut caller = Caller::new("127.0.1.1:40002", "c31");
    caller.transport = Transport::Tcp;
    let call = established(&mut h, &mut caller);
    h.ep.refer(call, "sip:helpline@192.0.2.80", h.now);
    let refer = h.one_sent();
    assert_eq!((refer.to, refer.transport), (caller.addr, Transport::Tcp));
    h.input(&refer.answer(603, "Decline"), caller.addr, Transport::Udp);
    assert!(h.take_events().is_empty());
    assert_eq!(h.ep.stats().responses_from_elsewhere, 1);
    h.input(&refer.answer(603, "Decline"), caller.addr, Transport::Tcp);
    assert_eq!(
        h.take_events(),
        vec![Event::TransferResult { call, ok: false }]
    );
}
