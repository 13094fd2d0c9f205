//! SIP: kuma answers phone calls itself, from SIP trunks and GSM gateways.
//!
//! A station points its SIP trunk or its GSM-to-SIP gateway at kuma; kuma is the user
//! agent server (RFC 3261) at the far end of every call, with no Asterisk or
//! FreeSWITCH in between. Everything here is sans-IO, in the manner of `str0m`: the
//! [`Endpoint`] is a plain struct fed datagrams and the time, which says what to send
//! and what happened. It never reads a clock or touches a socket, so the tests drive
//! thousands of calls on simulated time, faster than real time and deterministically.
//!
//! How the async shell (`kuma serve`) drives it:
//!
//! - one UDP socket and one TCP listener; every UDP datagram is passed to
//!   [`Endpoint::handle_input`] as it is; every TCP connection's bytes go through a
//!   [`framing::StreamFramer`] and each complete message is passed the same way;
//! - one timer sleeps until [`Endpoint::poll_timeout`] and then calls
//!   [`Endpoint::handle_timeout`] (an early wake-up is harmless);
//! - after every input, timeout or command, [`Endpoint::poll_output`] is drained:
//!   [`Output::Transmit`] goes to the socket (for TCP, the connection to that address),
//!   [`Output::Event`] goes to the call's flow (RTP setup, prompts, the store);
//! - the flow answers with commands: [`Endpoint::accept`] with the SDP answer from
//!   [`sdp::answer`], [`Endpoint::reject`] (404 unknown number, 488 no common codec),
//!   [`Endpoint::hang_up`], [`Endpoint::refer`]…
//!
//! The parts, each a file:
//!
//! - [`message`]: parse one message (ezk-sip-types underneath), write responses and
//!   requests; [`framing`]: split a TCP byte stream into messages;
//! - [`transaction`]: the RFC 3261 §17 transactions and their timers (T1, T2, T4);
//! - [`dialog`]: what a dialog remembers (tags, route set, remote target, CSeq) and the
//!   requests kuma sends in one (BYE, REFER);
//! - [`call`]: one call seen from the UAS side: the INVITE, its 100/180/200, the 2xx
//!   retransmitted until the ACK, CANCEL, BYE both ways, re-INVITE, INFO keys, REFER;
//! - [`outgoing`]: a call kuma places (the UAC side: INVITE through the trunk,
//!   [`digest`] authentication, CANCEL on ring timeout), which becomes an ordinary
//!   dialog once answered;
//! - [`admission`]: who may call: the trunk allow-list and the INVITE rate limit;
//!   [`proxied`]: the gateway's address a trusted proxy (Kamailio) adds;
//! - [`endpoint`]: ties them together and answers the stateless cases (OPTIONS
//!   keep-alives, 405, 501, 400, 481);
//! - [`sdp`]: SDP offer/answer (RFC 3264).
pub mod sdp;

pub mod admission;
pub mod call;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
mod ids;
pub mod message;
pub mod outgoing;
pub mod proxied;
pub mod transaction;

#[cfg(test)]
mod tests;

pub use call::{CallId, EndReason};
pub use endpoint::{Config, Endpoint, Event, Output, Stats};
pub use message::Transport;
pub use outgoing::{Credentials, Dial};
pub use transaction::Timers;
