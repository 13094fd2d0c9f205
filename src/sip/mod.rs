//! SIP: the session signalling kuma answers calls with. For now, SDP offer/answer.

pub mod sdp;
