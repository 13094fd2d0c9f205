//! Reading a call's RTP socket in batches: one system call per 20 ms slot.
//!
//! A call's task reads the caller's packets once per slot of its pacer
//! (`super::call::converse`). Reading them one `recvfrom` at a time costs a second
//! call per slot, the one that answers "nothing left" (`EAGAIN`): at thousands of
//! calls that is tens of thousands of system calls a second for nothing. On Linux
//! [`RecvBatch::recv`] asks `recvmmsg(2)` for up to [`BATCH`] datagrams at once
//! and leaves the socket marked readable when the batch was not full, so the next
//! slot's one call finds the next packet (or clears the mark). Elsewhere it falls
//! back to `recv_from` until the socket is empty.
//!
//! The socket stays one per call, as kuma announces it in the SDP: symmetric RTP
//! (learning where the caller's packets really come from), a port that tells the
//! calls apart without trusting anything in the packet, and no call able to inject
//! into another's stream. Batching across calls (`sendmmsg` on a shared socket)
//! would give those up; see issue 16's closing note.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Datagrams read per system call: one slot's packet, and room for a burst after
/// the caller's network stalled (or an RFC 4733 event beside the audio).
pub const BATCH: usize = 4;
/// The largest datagram kept whole: an Ethernet MTU. A G.711 packet is 172 bytes;
/// a longer datagram is cut to this and then refused by the RTP parser.
pub const MAX_DATAGRAM: usize = 1500;

/// Buffers for one call's reads, reused from slot to slot.
pub struct RecvBatch {
    bufs: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    got: [(usize, Option<SocketAddr>); BATCH],
    n: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    pub fn new() -> Self {
        RecvBatch {
            bufs: Box::new([[0; MAX_DATAGRAM]; BATCH]),
            got: [(0, None); BATCH],
            n: 0,
        }
    }

    /// Reads what is waiting, up to [`BATCH`] datagrams, without waiting: the
    /// count read (the batch is full when more may wait), or `WouldBlock`.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.n = 0;
        let n = self.recv_inner(socket)?;
        self.n = n;
        Ok(n)
    }

    /// The datagrams of the last [`recv`](Self::recv), in order, with their
    /// sources.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.got
            .iter()
            .zip(self.bufs.iter())
            .take(self.n)
            .filter_map(|(&(len, from), buf)| Some((buf.get(..len)?, from?)))
    }

    #[cfg(target_os = "linux")]
    fn recv_inner(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = socket.as_raw_fd();
        let bufs = &mut self.bufs;
        let got = &mut self.got;
        socket.try_io(tokio::io::Interest::READABLE, || {
            linux::recvmmsg(fd, bufs, got)
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn recv_inner(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut n = 0;
        for (buf, got) in self.bufs.iter_mut().zip(self.got.iter_mut()) {
            match socket.try_recv_from(buf) {
                Ok((len, from)) => {
                    *got = (len, Some(from));
                    n += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::RawFd;

    use super::{BATCH, MAX_DATAGRAM};

    /// `recvmmsg(2)` without waiting into `bufs`; each datagram's length and
    /// source go to `got` (no source when the kernel gave none it could read).
    pub(super) fn recvmmsg(
        fd: RawFd,
        bufs: &mut [[u8; MAX_DATAGRAM]; BATCH],
        got: &mut [(usize, Option<SocketAddr>); BATCH],
    ) -> io::Result<usize> {
        // SAFETY: all-zero bytes are valid for these plain C structs.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for ((buf, iov), (msg, name)) in bufs
            .iter_mut()
            .zip(iovs.iter_mut())
            .zip(msgs.iter_mut().zip(names.iter_mut()))
        {
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = MAX_DATAGRAM;
            msg.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            msg.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at a buffer, an iovec and a name that live
        // until the call returns, with their true sizes; the kernel writes no
        // more than BATCH messages.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        for ((slot, msg), name) in got.iter_mut().zip(msgs.iter()).zip(names.iter()).take(n) {
            let len = (msg.msg_len as usize).min(MAX_DATAGRAM);
            *slot = (len, source(name, msg.msg_hdr.msg_namelen));
        }
        Ok(n.min(BATCH))
    }

    /// The source address the kernel wrote.
    fn source(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        match libc::c_int::from(name.ss_family) {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let a = unsafe {
                    &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let a = unsafe {
                    &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real sockets on loopback: what is sent arrives whole, in order, with its
    /// source, in as many batches as it takes; an empty socket says WouldBlock.
    #[tokio::test]
    async fn reads_what_waits_in_batches_with_sources() {
        for any in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(rx) = UdpSocket::bind(any).await else {
                continue; // no IPv6 on this machine
            };
            let tx = UdpSocket::bind(any).await.unwrap();
            let to = rx.local_addr().unwrap();
            let mut batch = RecvBatch::new();
            assert_eq!(
                batch.recv(&rx).map_err(|e| e.kind()),
                Err(io::ErrorKind::WouldBlock)
            );
            let sent: Vec<Vec<u8>> = (0..BATCH + 2)
                .map(|i| vec![i as u8; 100 + i])
                .chain([vec![7u8; MAX_DATAGRAM + 10]])
                .collect();
            for d in &sent {
                tx.send_to(d, to).await.unwrap();
            }
            rx.readable().await.unwrap();
            let mut heard = Vec::new();
            for _ in 0..10 {
                match batch.recv(&rx) {
                    Ok(n) => {
                        assert!((1..=BATCH).contains(&n));
                        for (bytes, from) in batch.datagrams() {
                            assert_eq!(from, tx.local_addr().unwrap());
                            heard.push(bytes.to_vec());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(heard.len(), sent.len());
            assert_eq!(heard[..BATCH + 2], sent[..BATCH + 2]);
            // Too long: cut to the buffer, which the RTP parser then refuses.
            assert_eq!(heard.last().map(Vec::len), Some(MAX_DATAGRAM));
        }
    }
}
