//! One SIP message, as a UDP datagram and as a TCP message: parsed, and on
//! success every header reader the endpoint uses on it.
#![no_main]

use std::net::SocketAddr;

use bytes::Bytes;
use kuma::sip::message::{self, Message, RequestInfo, ResponseBase, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source: SocketAddr = "192.0.2.1:5060".parse().unwrap();
    for transport in [Transport::Udp, Transport::Tcp] {
        match message::parse(Bytes::copy_from_slice(data), transport) {
            Ok(Message::Request(r)) => {
                let _ = RequestInfo::read(&r.method, &r.headers);
                let _ = ResponseBase::of(&r.headers, source);
                if let Some(via) = message::top_via(&r.headers) {
                    let _ = via.sent_by();
                    let _ = via.for_response(source);
                    let _ = via.response_target(source, transport);
                }
                let _ = message::cseq(&r.headers);
            }
            Ok(Message::Response(r)) => {
                let _ = message::top_via(&r.headers);
                let _ = message::cseq(&r.headers);
            }
            Err(_) => {}
        }
    }
    // The text helpers, on any text.
    let text = String::from_utf8_lossy(data);
    for value in message::split_list(&text) {
        let _ = message::header_param(value, "tag");
        let _ = message::header_param(value, "branch");
        let uri = message::uri_text(value);
        let _ = message::user_of(value);
        if let Some(uri) = message::parse_sip_uri(uri) {
            let _ = message::uri_user(&uri);
            let _ = message::uri_socket_addr(&uri);
        }
    }
});
