//! Calls kuma places (the UAC side), against a scripted trunk on simulated time.

use std::net::SocketAddr;
use std::time::Duration;

use super::{ANSWER, Harness, SDP, Sent, ms};
use crate::sip::message::Transport;
use crate::sip::{Credentials, Dial, EndReason, Event};

const TRUNK: &str = "192.0.2.50:5060";
const PHONE: &str = "192.0.2.60:5070";

fn trunk() -> SocketAddr {
    TRUNK.parse().unwrap()
}

fn dial(credentials: Option<Credentials>) -> Dial {
    Dial {
        target: format!("sip:+22370123456@{TRUNK}"),
        from: format!("sip:2001@{TRUNK}"),
        next_hop: trunk(),
        proxy: None,
        credentials,
        offer: ANSWER.to_owned(),
        ring_timeout: Duration::from_secs(30),
        local: "127.0.0.1:5060".parse().unwrap(),
    }
}

/// A response of the trunk to a request kuma sent.
fn reply(req: &Sent, code: u16, to_tag: &str, extra: &str, body: &str) -> String {
    let to = req.header("To").unwrap();
    let to = if to.contains("tag=") || code == 100 {
        to
    } else {
        format!("{to};tag={to_tag}")
    };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {code} X\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        req.header("Via").unwrap(),
        req.header("From").unwrap(),
        req.header("Call-ID").unwrap(),
        req.header("CSeq").unwrap(),
        body.len()
    )
}

fn ok_with_sdp(invite: &Sent) -> String {
    reply(
        invite,
        200,
        "pt",
        &format!("Contact: <sip:phone@{PHONE}>\r\n"),
        SDP,
    )
}

#[test]
fn an_answered_call_is_acked_in_the_dialog_and_ends_with_the_phones_bye() {
    let mut h = Harness::new();
    let call = h.ep.dial(&dial(None), h.now);
    let invite = h.one_sent();
    assert_eq!(invite.method(), Some("INVITE"));
    assert_eq!(invite.to, trunk());
    assert!(
        invite
            .text
            .starts_with(&format!("INVITE sip:+22370123456@{TRUNK} SIP/2.0"))
    );
    assert!(invite.text.contains("CSeq: 1 INVITE"));
    assert!(invite.text.ends_with(ANSWER), "the offer is the body");
    assert!(invite.header("From").unwrap().contains(";tag="));

    h.input(&reply(&invite, 100, "pt", "", ""), trunk(), Transport::Udp);
    h.input(&reply(&invite, 180, "pt", "", ""), trunk(), Transport::Udp);
    assert_eq!(h.take_events(), [Event::Ringing { call }]);
    h.advance(ms(2000));
    assert!(h.take_sent().is_empty(), "no retransmission once it rings");

    let ok = ok_with_sdp(&invite);
    h.input(&ok, trunk(), Transport::Udp);
    assert_eq!(
        h.take_events(),
        [Event::Answered {
            call,
            sdp: SDP.as_bytes().to_vec()
        }]
    );
    let ack = h.one_sent();
    assert!(
        ack.text
            .starts_with(&format!("ACK sip:phone@{PHONE} SIP/2.0")),
        "{}",
        ack.text
    );
    assert_eq!(ack.to, PHONE.parse::<SocketAddr>().unwrap());
    assert!(ack.text.contains("CSeq: 1 ACK"));
    assert_ne!(
        ack.branch(),
        invite.branch(),
        "the 2xx's ACK is a new transaction"
    );
    assert!(ack.header("To").unwrap().contains("tag=pt"));

    // The ACK was lost: the phone sends its 200 again, and gets the ACK again.
    h.input(&ok, trunk(), Transport::Udp);
    assert_eq!(h.one_sent().text, ack.text);
    assert!(h.take_events().is_empty());

    // The listener hangs up.
    let from = ack.header("From").unwrap();
    let bye = format!(
        "BYE sip:kuma@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bKbye1\r\n\
         From: {}\r\nTo: {from}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        ack.header("To").unwrap(),
        ack.header("Call-ID").unwrap(),
    );
    h.input(&bye, PHONE.parse().unwrap(), Transport::Udp);
    assert_eq!(h.one_sent().status(), Some(200));
    assert_eq!(
        h.take_events(),
        [Event::Ended {
            call,
            reason: EndReason::CallerHangup
        }]
    );
    h.assert_idle_after_a_while();
}

#[test]
fn a_401_is_acked_and_answered_with_digest_credentials() {
    let mut h = Harness::new();
    let creds = Credentials {
        user: "kuma".into(),
        password: "s3cret".into(),
    };
    let call = h.ep.dial(&dial(Some(creds)), h.now);
    let first = h.one_sent();
    h.input(
        &reply(
            &first,
            401,
            "t1",
            "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"abc\", qop=\"auth\"\r\n",
            "",
        ),
        trunk(),
        Transport::Udp,
    );
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    let (ack, second) = (&sent[0], &sent[1]);
    assert_eq!(ack.method(), Some("ACK"));
    assert_eq!(
        ack.branch(),
        first.branch(),
        "the failure's ACK is in its transaction"
    );
    assert!(ack.header("To").unwrap().contains("tag=t1"));
    assert!(ack.text.contains("CSeq: 1 ACK"));
    assert_eq!(second.method(), Some("INVITE"));
    assert!(second.text.contains("CSeq: 2 INVITE"));
    assert_ne!(second.branch(), first.branch());
    let auth = second.header("Authorization").unwrap();
    assert!(
        auth.starts_with("Digest username=\"kuma\", realm=\"trunk\", nonce=\"abc\""),
        "{auth}"
    );
    assert!(auth.contains("qop=auth") && auth.contains("nc=00000001"));
    assert!(h.take_events().is_empty());

    // A retransmitted 401 is ACKed again and nothing else happens.
    h.input(
        &reply(
            &first,
            401,
            "t1",
            "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"abc\"\r\n",
            "",
        ),
        trunk(),
        Transport::Udp,
    );
    assert_eq!(h.one_sent().text, ack.text);

    h.input(&ok_with_sdp(second), trunk(), Transport::Udp);
    assert!(matches!(h.take_events().as_slice(), [Event::Answered { call: c, .. }] if *c == call));
    assert_eq!(h.one_sent().method(), Some("ACK"));
    h.ep.hang_up(call, h.now);
    let bye = h.one_sent();
    assert_eq!(bye.method(), Some("BYE"));
    assert!(bye.text.contains("CSeq: 3 BYE"));
    h.input(
        &bye.answer(200, "OK"),
        PHONE.parse().unwrap(),
        Transport::Udp,
    );
    h.assert_idle_after_a_while();
}

#[test]
fn wrong_credentials_fail_after_one_try_without_a_storm() {
    let mut h = Harness::new();
    let creds = Credentials {
        user: "kuma".into(),
        password: "wrong".into(),
    };
    let call = h.ep.dial(&dial(Some(creds)), h.now);
    let challenge = "Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"abc\"\r\n";
    let first = h.one_sent();
    h.input(
        &reply(&first, 407, "t1", challenge, ""),
        trunk(),
        Transport::Udp,
    );
    let second = h.take_sent().pop().unwrap();
    assert!(second.header("Proxy-Authorization").is_some());
    h.input(
        &reply(&second, 407, "t2", challenge, ""),
        trunk(),
        Transport::Udp,
    );
    assert_eq!(h.one_sent().method(), Some("ACK"));
    assert_eq!(
        h.take_events(),
        [Event::Ended {
            call,
            reason: EndReason::Declined(407)
        }]
    );
    h.assert_idle_after_a_while();
}

#[test]
fn busy_and_refusals_end_the_call_with_their_code() {
    for code in [486, 403, 503] {
        let mut h = Harness::new();
        let call = h.ep.dial(&dial(None), h.now);
        let invite = h.one_sent();
        h.input(&reply(&invite, code, "t", "", ""), trunk(), Transport::Udp);
        assert_eq!(h.one_sent().method(), Some("ACK"));
        assert_eq!(
            h.take_events(),
            [Event::Ended {
                call,
                reason: EndReason::Declined(code)
            }]
        );
        h.assert_idle_after_a_while();
    }
}

#[test]
fn a_trunk_that_never_answers_gets_timer_a_retransmissions_then_timer_b() {
    let mut h = Harness::new();
    let long_ring = Dial {
        ring_timeout: Duration::from_secs(60),
        ..dial(None)
    };
    let call = h.ep.dial(&long_ring, h.now);
    h.take_sent();
    h.advance(Duration::from_secs(40));
    let at: Vec<u128> = h.take_sent().iter().map(|s| s.at.as_millis()).collect();
    assert_eq!(at, [500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(
        h.take_events(),
        [Event::Ended {
            call,
            reason: EndReason::NoResponse
        }]
    );
    h.assert_idle_after_a_while();
}

#[test]
fn a_phone_that_rings_too_long_is_cancelled_and_its_487_acked() {
    let mut h = Harness::new();
    let call = h.ep.dial(&dial(None), h.now);
    let invite = h.one_sent();
    h.input(&reply(&invite, 180, "pt", "", ""), trunk(), Transport::Udp);
    h.take_events();
    h.advance(Duration::from_secs(30));
    let cancel = h.one_sent();
    assert_eq!(cancel.method(), Some("CANCEL"));
    assert_eq!(cancel.branch(), invite.branch());
    assert!(cancel.text.contains("CSeq: 1 CANCEL"));
    assert!(
        !cancel.header("To").unwrap().contains("tag="),
        "CANCEL's To is the INVITE's"
    );
    assert_eq!(
        h.take_events(),
        [Event::Ended {
            call,
            reason: EndReason::RingTimeout
        }]
    );
    h.input(&cancel.answer(200, "OK"), trunk(), Transport::Udp);
    h.input(&reply(&invite, 487, "pt", "", ""), trunk(), Transport::Udp);
    assert_eq!(h.one_sent().method(), Some("ACK"));
    assert!(h.take_events().is_empty());
    h.assert_idle_after_a_while();
}

#[test]
fn an_answer_that_crosses_the_cancel_is_acked_and_ended_with_bye() {
    let mut h = Harness::new();
    let call = h.ep.dial(&dial(None), h.now);
    let invite = h.one_sent();
    // Hanging up before any provisional response: CANCEL must wait for one.
    h.ep.hang_up(call, h.now);
    assert!(h.take_sent().is_empty());
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Ended {
            reason: EndReason::HungUp,
            ..
        }]
    ));
    h.input(&reply(&invite, 180, "pt", "", ""), trunk(), Transport::Udp);
    assert_eq!(h.one_sent().method(), Some("CANCEL"));
    h.input(&ok_with_sdp(&invite), trunk(), Transport::Udp);
    let sent = h.take_sent();
    let methods: Vec<_> = sent.iter().map(|s| s.method()).collect();
    assert_eq!(methods, [Some("ACK"), Some("BYE")]);
    assert!(
        h.take_events().is_empty(),
        "the call was already reported ended"
    );
    h.input(
        &sent[1].answer(200, "OK"),
        PHONE.parse().unwrap(),
        Transport::Udp,
    );
    h.assert_idle_after_a_while();
}

#[test]
fn an_outbound_proxy_carries_every_request_and_the_route_set_is_reversed() {
    let mut h = Harness::new();
    let proxy: SocketAddr = "192.0.2.70:5060".parse().unwrap();
    let via_proxy = Dial {
        next_hop: proxy,
        proxy: Some(proxy),
        ..dial(None)
    };
    let call = h.ep.dial(&via_proxy, h.now);
    let invite = h.one_sent();
    assert_eq!(invite.to, proxy);
    assert!(
        invite
            .text
            .starts_with(&format!("INVITE sip:+22370123456@{TRUNK} SIP/2.0"))
    );
    let ok = reply(
        &invite,
        200,
        "pt",
        &format!(
            "Contact: <sip:phone@{PHONE}>\r\nRecord-Route: <sip:192.0.2.71;lr>, <sip:192.0.2.70;lr>\r\n"
        ),
        SDP,
    );
    h.input(&ok, proxy, Transport::Udp);
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Answered { .. }]
    ));
    let ack = h.one_sent();
    assert_eq!(ack.to, proxy);
    let first = ack.text.find("Route: <sip:192.0.2.70;lr>").unwrap();
    let second = ack.text.find("Route: <sip:192.0.2.71;lr>").unwrap();
    assert!(
        first < second,
        "the UAC's route set is the Record-Route reversed"
    );
    h.ep.hang_up(call, h.now);
    let bye = h.one_sent();
    assert_eq!((bye.method(), bye.to), (Some("BYE"), proxy));
    assert!(
        bye.text
            .starts_with(&format!("BYE sip:phone@{PHONE} SIP/2.0"))
    );
    h.input(&bye.answer(200, "OK"), proxy, Transport::Udp);
    h.assert_idle_after_a_while();
}

#[test]
fn a_second_answer_from_a_fork_is_not_acked_as_if_it_were_the_first() {
    let mut h = Harness::new();
    h.ep.dial(&dial(None), h.now);
    let invite = h.one_sent();
    h.input(&ok_with_sdp(&invite), trunk(), Transport::Udp);
    h.take_events();
    assert_eq!(h.one_sent().method(), Some("ACK"));
    let other = reply(
        &invite,
        200,
        "other-phone",
        &format!("Contact: <sip:phone@{PHONE}>\r\n"),
        SDP,
    );
    h.input(&other, trunk(), Transport::Udp);
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
}

/// An attacker who learnt the INVITE's branch (on the path, or by guessing) answers
/// before the trunk: from another host, from another port of the trunk's host, over
/// another transport. None of it counts; the trunk's own answer does.
#[test]
fn forged_answers_to_a_call_back_from_another_address_are_ignored() {
    let mut h = Harness::new();
    let call = h.ep.dial(&dial(None), h.now);
    let invite = h.one_sent();
    let elsewhere: [(SocketAddr, Transport); 3] = [
        ("192.0.2.66:5060".parse().unwrap(), Transport::Udp),
        ("192.0.2.50:5061".parse().unwrap(), Transport::Udp),
        (trunk(), Transport::Tcp),
    ];
    for (from, transport) in elsewhere {
        // A forged 404 would erase the number; a forged 200 would take the call.
        h.input(&reply(&invite, 404, "forged", "", ""), from, transport);
        h.input(&ok_with_sdp(&invite), from, transport);
        h.input(&reply(&invite, 180, "forged", "", ""), from, transport);
    }
    assert!(
        h.take_events().is_empty(),
        "no Ended, no Answered, no Ringing"
    );
    assert!(h.take_sent().is_empty(), "no ACK to a forgery");
    assert_eq!(h.ep.stats().responses_from_elsewhere, 9);
    h.advance(ms(500));
    assert_eq!(
        h.one_sent().text,
        invite.text,
        "the INVITE is still waiting for the trunk (timer A)"
    );

    // The trunk itself, seen by a dual-stack socket as an IPv4-mapped address.
    let mapped: SocketAddr = "[::ffff:192.0.2.50]:5060".parse().unwrap();
    h.input(&reply(&invite, 180, "pt", "", ""), mapped, Transport::Udp);
    assert_eq!(h.take_events(), [Event::Ringing { call }]);
    h.input(&ok_with_sdp(&invite), trunk(), Transport::Udp);
    assert_eq!(
        h.take_events(),
        [Event::Answered {
            call,
            sdp: SDP.as_bytes().to_vec()
        }]
    );
    assert_eq!(h.one_sent().method(), Some("ACK"));
    assert_eq!(h.ep.stats().responses_from_elsewhere, 9);
}

/// kuma's CANCEL (ring timeout) shares the INVITE's branch: a forged 200 to it, or
/// a forged 487 to the INVITE, from elsewhere, changes nothing.
#[test]
fn forged_answers_to_kumas_cancel_from_another_address_are_ignored() {
    let mut h = Harness::new();
    let call = h.ep.dial(&dial(None), h.now);
    let invite = h.one_sent();
    h.input(&reply(&invite, 180, "pt", "", ""), trunk(), Transport::Udp);
    assert_eq!(h.take_events(), [Event::Ringing { call }]);
    h.advance(Duration::from_secs(30));
    let cancel = h.one_sent();
    assert_eq!(cancel.method(), Some("CANCEL"));
    let forger: SocketAddr = "192.0.2.66:5060".parse().unwrap();
    h.input(&cancel.answer(200, "OK"), forger, Transport::Udp);
    h.input(&reply(&invite, 487, "pt", "", ""), forger, Transport::Udp);
    assert!(h.take_sent().is_empty(), "no ACK to the forged 487");
    h.advance(ms(500));
    assert_eq!(
        h.one_sent().text,
        cancel.text,
        "the CANCEL is still retransmitted (timer E)"
    );
    assert_eq!(h.ep.stats().responses_from_elsewhere, 2);
    h.input(&cancel.answer(200, "OK"), trunk(), Transport::Udp);
    h.input(&reply(&invite, 487, "pt", "", ""), trunk(), Transport::Udp);
    assert_eq!(h.one_sent().method(), Some("ACK"));
    h.assert_idle_after_a_while();
}
