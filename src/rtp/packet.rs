//! The RTP packet (RFC 3550 §5.1): a zero-copy parse of a datagram and a writer into
//! the caller's buffer.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers  (CC × 32)  |
//! |  profile-defined (X)          |  extension length in words    |
//! |                    extension ... | payload ... | padding | n  |
//! ```
//!
//! Anything may arrive on an RTP port (scanners, stray RTCP, a truncated datagram), so
//! [`Packet::parse`] checks every length before it reads and returns a
//! [`PacketError`] for every malformed datagram; it never panics, whatever the bytes
//! (a proptest below feeds it arbitrary ones). Parsing borrows: the payload is a slice
//! of the datagram, nothing is copied, so the receive path allocates nothing.
//!
//! kuma sends only the plain header (no padding, extension or CSRC), which
//! [`Header::write`] writes in front of a payload.

use thiserror::Error;

/// Length of the fixed RTP header, bytes.
pub const HEADER_LEN: usize = 12;
/// The only RTP version in use (RFC 3550).
pub const VERSION: u8 = 2;

/// The fixed fields of an RTP header that matter to a sender and a receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The marker bit: for audio, the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// Payload type, 0–127.
    pub payload_type: u8,
    /// Sequence number, +1 per packet sent.
    pub sequence: u16,
    /// Sampling instant of the first byte of the payload, in clock-rate units.
    pub timestamp: u32,
    /// Synchronization source: identifies the stream.
    pub ssrc: u32,
}

/// A datagram parsed as RTP: the header, and slices of the datagram for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The fixed header.
    pub header: Header,
    /// Contributing sources (a mixer's inputs), raw; usually empty.
    pub csrcs: Csrcs<'a>,
    /// The header extension, when the X bit is set.
    pub extension: Option<Extension<'a>>,
    /// How many bytes of padding followed the payload (already removed from it).
    pub padding: u8,
    /// The payload, without header, CSRCs, extension or padding.
    pub payload: &'a [u8],
}

/// The CSRC list of a packet, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Csrcs<'a>(&'a [u8]);

impl<'a> Csrcs<'a> {
    /// How many CSRC identifiers there are (the CC field).
    pub fn len(&self) -> usize {
        self.0.len() / 4
    }

    /// True when there are none, as in every packet a phone sends.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The identifiers, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        self.0
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// An RTP header extension (RFC 3550 §5.3.1), borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The profile-defined 16 bits (0xBEDE for RFC 8285 one-byte extensions).
    pub profile: u16,
    /// The extension's data, a multiple of 4 bytes.
    pub data: &'a [u8],
}

/// Why a datagram is not an RTP packet kuma can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Shorter than the 12-byte fixed header.
    #[error("datagram of {0} bytes is shorter than an RTP header ({HEADER_LEN})")]
    TooShort(usize),
    /// The version bits are not 2 (STUN, garbage, or an ancient RTP).
    #[error("RTP version {0}, expected {VERSION}")]
    BadVersion(u8),
    /// An RTCP packet (RFC 5761 §4: its second byte is 192–223) on the RTP port.
    #[error("RTCP packet (type {0}) on the RTP port")]
    Rtcp(u8),
    /// The CSRC count claims more identifiers than the datagram holds.
    #[error("{0} CSRC identifiers do not fit in the datagram")]
    CsrcOverrun(u8),
    /// The header extension claims more bytes than the datagram holds.
    #[error("the header extension runs past the end of the datagram")]
    ExtensionOverrun,
    /// The padding count is zero or longer than what follows the header.
    #[error("{padding} bytes of padding in a packet with {available} bytes after the header")]
    BadPadding {
        /// The count in the last byte.
        padding: u8,
        /// The bytes after the header, CSRCs and extension.
        available: usize,
    },
}

/// The caller's buffer cannot hold the packet being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("an RTP packet of {needed} bytes does not fit in a buffer of {available}")]
pub struct BufferTooSmall {
    /// Bytes the packet needs.
    pub needed: usize,
    /// Bytes the buffer has.
    pub available: usize,
}

impl<'a> Packet<'a> {
    /// Parses one datagram as RTP. The payload and the other variable parts are
    /// slices of `datagram`.
    pub fn parse(datagram: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let Some((fixed, rest)) = datagram.split_first_chunk::<HEADER_LEN>() else {
            return Err(PacketError::TooShort(datagram.len()));
        };
        let version = fixed[0] >> 6;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        // RTCP's packet types 192–223 land where RTP has M=1 and PT 64–95, which is
        // why RFC 3551 keeps those payload types unassigned.
        if (192..=223).contains(&fixed[1]) {
            return Err(PacketError::Rtcp(fixed[1]));
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = fixed[0] & 0x0F;
        let header = Header {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7F,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        };

        let csrc_len = usize::from(csrc_count) * 4;
        let Some((csrcs, rest)) = rest.split_at_checked(csrc_len) else {
            return Err(PacketError::CsrcOverrun(csrc_count));
        };

        let (extension, rest) = if has_extension {
            let Some((ext_header, rest)) = rest.split_first_chunk::<4>() else {
                return Err(PacketError::ExtensionOverrun);
            };
            let profile = u16::from_be_bytes([ext_header[0], ext_header[1]]);
            let words = usize::from(u16::from_be_bytes([ext_header[2], ext_header[3]]));
            let Some((data, rest)) = rest.split_at_checked(words * 4) else {
                return Err(PacketError::ExtensionOverrun);
            };
            (Some(Extension { profile, data }), rest)
        } else {
            (None, rest)
        };

        let (payload, padding) = if has_padding {
            // The last byte counts the padding, itself included, so it is at least 1.
            let padding = rest.last().copied().unwrap_or(0);
            match rest.len().checked_sub(usize::from(padding)) {
                Some(end) if padding > 0 => (&rest[..end], padding),
                _ => {
                    return Err(PacketError::BadPadding {
                        padding,
                        available: rest.len(),
                    });
                }
            }
        } else {
            (rest, 0)
        };

        Ok(Packet {
            header,
            csrcs: Csrcs(csrcs),
            extension,
            padding,
            payload,
        })
    }
}

impl Header {
    /// Writes the 12-byte fixed header (version 2; no padding, extension or CSRC).
    pub fn write_header(&self, out: &mut [u8; HEADER_LEN]) {
        out[0] = VERSION << 6;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Writes a whole packet, this header then `payload`, at the start of `out`, and
    /// returns its length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let needed = HEADER_LEN + payload.len();
        let available = out.len();
        let Some((header, body)) = out
            .get_mut(..needed)
            .and_then(|packet| packet.split_first_chunk_mut::<HEADER_LEN>())
        else {
            return Err(BufferTooSmall { needed, available });
        };
        self.write_header(header);
        body.copy_from_slice(payload);
        Ok(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            marker: true,
            payload_type: 8,
            sequence: 0xBEEF,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
        }
    }

    #[test]
    fn writes_and_parses_back() {
        let payload = [0xD5u8; 160];
        let mut buf = [0u8; 1500];
        let n = header().write(&payload, &mut buf).unwrap();
        assert_eq!(n, 172);
        assert_eq!(&buf[..4], &[0x80, 0x88, 0xBE, 0xEF]);
        let packet = Packet::parse(&buf[..n]).unwrap();
        assert_eq!(packet.header, header());
        assert_eq!(packet.payload, &payload[..]);
        assert!(packet.csrcs.is_empty());
        assert_eq!(packet.extension, None);
        assert_eq!(packet.padding, 0);
    }

    #[test]
    fn write_refuses_a_small_buffer() {
        let mut buf = [0u8; 100];
        assert_eq!(
            header().write(&[0; 160], &mut buf),
            Err(BufferTooSmall {
                needed: 172,
                available: 100
            })
        );
    }

    #[test]
    fn parses_a_packet_captured_from_a_phone() {
        // A µ-law packet as a Linphone sends it, trimmed to 4 payload bytes.
        let datagram = [
            0x80, 0x00, 0x1c, 0x7a, 0x00, 0x01, 0xb8, 0x40, 0x3f, 0x2c, 0x5e, 0x01, 0xff, 0xfe,
            0x7f, 0x7e,
        ];
        let packet = Packet::parse(&datagram).unwrap();
        assert_eq!(
            packet.header,
            Header {
                marker: false,
                payload_type: 0,
                sequence: 7290,
                timestamp: 112_704,
                ssrc: 0x3f2c_5e01,
            }
        );
        assert_eq!(packet.payload, &[0xff, 0xfe, 0x7f, 0x7e]);
    }

    #[test]
    fn parses_csrcs_extension_and_padding() {
        let mut d = vec![0xB2, 0x60, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
        d.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // two CSRCs
        d.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // one-word extension
        d.extend_from_slice(&[9, 9, 9]); // payload
        d.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let packet = Packet::parse(&d).unwrap();
        assert_eq!(packet.header.payload_type, 96);
        assert_eq!(packet.csrcs.iter().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(packet.csrcs.len(), 2);
        let ext = packet.extension.unwrap();
        assert_eq!(ext.profile, 0xBEDE);
        assert_eq!(ext.data, &[0x10, 0xAA, 0, 0]);
        assert_eq!(packet.payload, &[9, 9, 9]);
        assert_eq!(packet.padding, 3);
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert_eq!(Packet::parse(&[]), Err(PacketError::TooShort(0)));
        assert_eq!(Packet::parse(&[0x80; 11]), Err(PacketError::TooShort(11)));
        // STUN binding request: version bits 0.
        let stun = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0];
        assert_eq!(Packet::parse(&stun), Err(PacketError::BadVersion(0)));
        // An RTCP receiver report.
        let rr = [0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(Packet::parse(&rr), Err(PacketError::Rtcp(201)));
        // CC = 15 with no CSRCs.
        let mut cc = [0u8; 12];
        cc[0] = 0x8F;
        assert_eq!(Packet::parse(&cc), Err(PacketError::CsrcOverrun(15)));
        // Extension header missing, then an extension claiming 0xFFFF words.
        let mut x = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(Packet::parse(&x), Err(PacketError::ExtensionOverrun));
        x.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
        assert_eq!(Packet::parse(&x), Err(PacketError::ExtensionOverrun));
        // Padding of zero, and padding longer than the packet.
        let mut p = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(
            Packet::parse(&p),
            Err(PacketError::BadPadding {
                padding: 0,
                available: 2
            })
        );
        *p.last_mut().unwrap() = 3;
        assert_eq!(
            Packet::parse(&p),
            Err(PacketError::BadPadding {
                padding: 3,
                available: 2
            })
        );
        // Padding bit on a packet with nothing after the header.
        assert_eq!(
            Packet::parse(&p[..12]),
            Err(PacketError::BadPadding {
                padding: 0,
                available: 0
            })
        );
    }

    #[test]
    fn a_64_kib_datagram_parses() {
        let mut d = vec![0u8; 65_535];
        d[0] = 0x80;
        let packet = Packet::parse(&d).unwrap();
        assert_eq!(packet.payload.len(), 65_535 - HEADER_LEN);
    }

    #[test]
    fn seed_corpus_parses_without_panic() {
        for (name, bytes) in crate::rtp::fuzz::corpus("rtp") {
            // Each seed is either a packet or a reason; neither may panic.
            let _ = Packet::parse(&bytes).map_err(|e| (name, e));
        }
    }

    proptest! {
        #![proptest_config(crate::rtp::fuzz::config("rtp_packet"))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            if let Ok(packet) = Packet::parse(&bytes) {
                // Whatever parsed lies inside the datagram.
                prop_assert!(packet.payload.len() + HEADER_LEN <= bytes.len());
                prop_assert!(packet.header.payload_type < 128);
            }
        }

        #[test]
        fn rtp_like_bytes_never_panic(
            first in any::<u8>().prop_map(|b| (b & 0x3F) | 0x80),
            rest in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            // Version 2 in front, so the parser goes past its first check.
            let mut bytes = vec![first];
            bytes.extend(rest);
            let _ = Packet::parse(&bytes);
        }

        #[test]
        fn write_then_parse_is_identity(
            marker in any::<bool>(),
            payload_type in 0u8..128,
            sequence in any::<u16>(),
            timestamp in any::<u32>(),
            ssrc in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..320),
        ) {
            // PT 64–95 with the marker set is what RTCP looks like; RFC 3551 never
            // assigns those payload types, so a sender never writes them.
            prop_assume!(!(marker && (64..96).contains(&payload_type)));
            let header = Header { marker, payload_type, sequence, timestamp, ssrc };
            let mut buf = [0u8; 400];
            let n = header.write(&payload, &mut buf).unwrap();
            let packet = Packet::parse(&buf[..n]).unwrap();
            prop_assert_eq!(packet.header, header);
            prop_assert_eq!(packet.payload, &payload[..]);
        }
    }
}
