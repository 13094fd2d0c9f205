//! Framing SIP over a byte stream (TCP): where one message ends and the next begins
//! (RFC 3261 §18.3: by Content-Length, which stream transports must send).
//!
//! The shell keeps one [`StreamFramer`] per connection, pushes whatever it reads,
//! and passes each complete message to [`crate::sip::Endpoint::handle_input`].
//! CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped, and the
//! double-CRLF pings among them counted, for the shell to answer each with a pong. A header
//! section longer than [`MAX_HEAD`] or a body longer than [`MAX_BODY`] is an error:
//! the shell hands [`StreamFramer::take_rejected`] to the endpoint, which answers
//! 513 or 400 naming the problem when the head holds what a response copies, and
//! closes the connection, as nothing after it can be framed. So a connection never
//! holds more than `MAX_HEAD + MAX_BODY` bytes and a read.

use thiserror::Error;

use crate::sip::message::{MAX_BODY, MAX_HEAD};

/// Why a stream cannot be framed any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FramingError {
    #[error("SIP header section longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("SIP body longer than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("malformed Content-Length")]
    BadContentLength,
}

/// Cuts a byte stream into SIP messages.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// How far the search for the end of the header section got.
    scanned: usize,
    /// After an error: how much of `buf` the endpoint needs to answer it.
    rejected: usize,
    /// How much of a CRLF CRLF ping has been seen between messages (0 to 3).
    ping_seen: u8,
    /// Pings not yet answered.
    pings: usize,
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes held, waiting for the rest of a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, if the stream holds one.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        // Keep-alives and stray line ends before a message.
        let skip = self
            .buf
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(self.buf.len());
        if skip > 0 {
            for b in self.buf.drain(..skip) {
                // A double CRLF, however it was split across reads, is a ping.
                self.ping_seen = match (self.ping_seen, b) {
                    (0 | 2, b'\r') => self.ping_seen + 1,
                    (1, b'\n') => 2,
                    (3, b'\n') => {
                        self.pings += 1;
                        0
                    }
                    (_, b'\r') => 1,
                    _ => 0,
                };
            }
            self.scanned = 0;
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        self.ping_seen = 0;
        // One byte past MAX_HEAD: the parser then knows the head was cut.
        let cut = MAX_HEAD + 1;
        let Some(head_end) = self.find_head_end() else {
            if self.buf.len() > MAX_HEAD {
                self.rejected = cut;
                return Err(FramingError::HeadTooLarge);
            }
            return Ok(None);
        };
        if head_end > MAX_HEAD {
            self.rejected = cut;
            return Err(FramingError::HeadTooLarge);
        }
        self.rejected = head_end;
        let body_len = content_length(&self.buf[..head_end])?;
        if body_len > MAX_BODY {
            return Err(FramingError::BodyTooLarge);
        }
        let total = head_end + body_len;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let message = std::mem::replace(&mut self.buf, rest);
        self.scanned = 0;
        Ok(Some(message))
    }

    /// How many double-CRLF pings came since the last call: each is answered
    /// with a CRLF pong (RFC 5626 §4.4.1), which tells the peer the connection
    /// still works.
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// After [`Self::next_message`] failed: the start of the message that broke the
    /// stream (its head, or the first `MAX_HEAD + 1` bytes of a head too long), for
    /// [`crate::sip::message::parse`] to name the problem in a response. The framer
    /// is empty afterwards.
    pub fn take_rejected(&mut self) -> Vec<u8> {
        let mut head = std::mem::take(&mut self.buf);
        head.truncate(self.rejected);
        self.scanned = 0;
        self.rejected = 0;
        head
    }

    /// The index just past the blank line ending the header section (CRLF CRLF, or
    /// bare LF LF from lenient peers).
    fn find_head_end(&mut self) -> Option<usize> {
        let start = self.scanned.saturating_sub(3);
        let buf = &self.buf;
        for i in start..buf.len() {
            if buf[i] == b'\n' {
                if buf.get(i + 1) == Some(&b'\n') {
                    return Some(i + 2);
                }
                if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                    return Some(i + 3);
                }
            }
        }
        self.scanned = buf.len();
        None
    }
}

/// Content-Length (or `l`) in a header section; 0 when absent.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let text = String::from_utf8_lossy(head);
    let mut found = None;
    for line in text.split('\n').skip(1) {
        // A line that starts with white space continues the header before it
        // (RFC 3261 §7.3.1): `Subject: x` folded over ` Content-Length: 30`
        // is a subject, not a length.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let value = value.trim();
            if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FramingError::BadContentLength);
            }
            let len: usize = value.parse().map_err(|_| FramingError::BadContentLength)?;
            if found.is_some_and(|f| f != len) {
                return Err(FramingError::BadContentLength);
            }
            found = Some(len);
        }
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:kuma@192.0.2.1 SIP/2.0\r\n\
        Via: SIP/2.0/TCP 192.0.2.9:40000;branch=z9hG4bKo1\r\n\
        From: <sip:gw@192.0.2.9>;tag=1\r\nTo: <sip:kuma@192.0.2.1>\r\n\
        Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn invite_with_body() -> Vec<u8> {
        let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        format!(
            "INVITE sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKi1\r\n\
             From: <sip:a@192.0.2.9>;tag=2\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: i1\r\n\
             CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nl: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn a_folded_line_is_not_a_content_length() {
        let folded = b"OPTIONS sip:kuma@192.0.2.1 SIP/2.0\r\n\
            Via: SIP/2.0/TCP 192.0.2.9:40000;branch=z9hG4bKo2\r\n\
            Subject: x\r\n Content-Length: 30\r\n\
            From: <sip:gw@192.0.2.9>;tag=1\r\nTo: <sip:kuma@192.0.2.1>\r\n\
            Call-ID: o2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let mut framer = StreamFramer::new();
        framer.push(folded);
        framer.push(OPTIONS);
        assert_eq!(framer.next_message().unwrap().as_deref(), Some(&folded[..]));
        assert_eq!(framer.next_message().unwrap().as_deref(), Some(OPTIONS));
    }

    #[test]
    fn messages_are_cut_by_content_length_across_reads() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(&invite_with_body());
        stream.extend_from_slice(OPTIONS);
        // Byte by byte: the worst a TCP stack can do.
        let mut framer = StreamFramer::new();
        let mut messages = Vec::new();
        for b in &stream {
            framer.push(std::slice::from_ref(b));
            while let Some(m) = framer.next_message().unwrap() {
                messages.push(m);
            }
        }
        assert_eq!(
            messages,
            vec![OPTIONS.to_vec(), invite_with_body(), OPTIONS.to_vec()]
        );
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn oversized_heads_and_bodies_and_bad_lengths_are_errors() {
        let mut framer = StreamFramer::new();
        framer.push(b"INVITE sip:a@b SIP/2.0\r\nX: ");
        framer.push(&vec![b'a'; MAX_HEAD + 10]);
        assert_eq!(framer.next_message(), Err(FramingError::HeadTooLarge));

        let mut framer = StreamFramer::new();
        framer.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        assert_eq!(framer.next_message(), Err(FramingError::BodyTooLarge));

        let mut framer = StreamFramer::new();
        framer.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(framer.next_message(), Err(FramingError::BadContentLength));
    }

    #[test]
    fn what_broke_the_stream_is_answered_with_its_name() {
        use crate::sip::Transport;
        use crate::sip::message::{ParseError, parse};
        let head = |extra: &str| {
            format!(
                "OPTIONS sip:kuma@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bKo1\r\n\
                 From: <sip:gw@192.0.2.9>;tag=1\r\nTo: <sip:kuma@192.0.2.1>\r\n\
                 Call-ID: o1\r\nCSeq: 1 OPTIONS\r\n{extra}"
            )
        };
        let answer = |stream: &[u8]| {
            let mut framer = StreamFramer::new();
            framer.push(stream);
            framer.next_message().unwrap_err();
            let rejected = framer.take_rejected();
            assert!(rejected.len() <= MAX_HEAD + 1);
            assert_eq!(framer.buffered(), 0);
            let e = parse(bytes::Bytes::from(rejected), Transport::Tcp).unwrap_err();
            assert!(e.partial.is_some(), "{e}: nothing to answer with");
            (e.error, e.error.status())
        };
        let endless = format!("{}X-Pad: {}", head(""), "a".repeat(MAX_HEAD));
        assert_eq!(answer(endless.as_bytes()), (ParseError::HeadTooLarge, 513));
        let long = format!("{}X-Pad: {}\r\n\r\n", head(""), "a".repeat(MAX_HEAD));
        assert_eq!(answer(long.as_bytes()), (ParseError::HeadTooLarge, 513));
        let big_body = head("Content-Length: 99999999\r\n\r\nv=0");
        assert_eq!(answer(big_body.as_bytes()), (ParseError::BodyTooLarge, 513));
        let bad = head("Content-Length: twelve\r\n\r\n");
        assert_eq!(answer(bad.as_bytes()), (ParseError::BadContentLength, 400));
    }

    #[test]
    fn double_crlf_pings_are_counted_however_they_are_split() {
        let mut framer = StreamFramer::new();
        for chunk in [&b"\r\n\r"[..], b"\n", b"\r\n\r\n\r\n"] {
            framer.push(chunk);
            assert_eq!(framer.next_message(), Ok(None));
        }
        // Two pings and half of a third.
        assert_eq!(framer.take_pings(), 2);
        assert_eq!(framer.take_pings(), 0);
        // A message cuts the half ping; a lone line end is no ping.
        framer.push(OPTIONS);
        framer.push(b"\r\n");
        assert_eq!(framer.next_message(), Ok(Some(OPTIONS.to_vec())));
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(b"\n\n\r\n");
        assert_eq!(framer.next_message(), Ok(None));
        assert_eq!(framer.take_pings(), 0);
    }

    #[test]
    fn a_message_waits_for_its_body() {
        let whole = invite_with_body();
        let mut framer = StreamFramer::new();
        framer.push(&whole[..whole.len() - 5]);
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(&whole[whole.len() - 5..]);
        assert_eq!(framer.next_message(), Ok(Some(whole)));
    }

    proptest! {
        #[test]
        fn fuzz_framer_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut framer = StreamFramer::new();
            for chunk in chunks {
                framer.push(&chunk);
                while let Ok(Some(_)) = framer.next_message() {}
            }
        }
    }
}
