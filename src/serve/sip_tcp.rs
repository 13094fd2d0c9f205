//! SIP over TCP: one task per connection cuts the byte stream into messages
//! ([`StreamFramer`]) and hands them to the SIP shell; the shell sends responses and
//! requests back on the connection of the peer they are for.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::sip::framing::StreamFramer;

/// A message read from a connection.
pub struct Incoming {
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What the shell uses to answer on TCP.
#[derive(Default)]
pub struct Connections {
    writers: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
}

impl Connections {
    /// Sends on the connection with `to`; false when it is gone (RFC 3261 §18.2.2
    /// would open a new one; kuma's peers keep theirs open while a call lasts).
    pub fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) -> bool {
        match self.writers.get(&to) {
            Some(w) if w.send(bytes).is_ok() => true,
            _ => {
                self.writers.remove(&to);
                false
            }
        }
    }
}

/// A connection opened, with the sender the shell answers through.
pub struct Opened {
    pub from: SocketAddr,
    pub writer: mpsc::UnboundedSender<Vec<u8>>,
}

impl Connections {
    pub fn opened(&mut self, o: Opened) {
        self.writers.insert(o.from, o.writer);
    }
}

/// Accepts connections until the listener fails; each one gets its task.
pub async fn accept(
    listener: TcpListener,
    messages: mpsc::UnboundedSender<Incoming>,
    opened: mpsc::UnboundedSender<Opened>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "SIP TCP accept");
                continue;
            }
        };
        let (mut read, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        if opened.send(Opened { from, writer: tx }).is_err() {
            return;
        }
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if write.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let messages = messages.clone();
        tokio::spawn(async move {
            let mut framer = StreamFramer::default();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.next_message() {
                        Ok(Some(bytes)) => {
                            if messages.send(Incoming { from, bytes }).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        // A stream that cannot be framed cannot be resynchronised.
                        Err(e) => {
                            tracing::debug!(%from, error = %e, "closing a SIP TCP connection");
                            return;
                        }
                    }
                }
            }
        });
    }
}
