//! SIP over TCP: one task per connection cuts the byte stream into messages
//! ([`StreamFramer`]) and hands them to the SIP shell; the shell sends responses and
//! requests back on the connection of the peer they are for.
//!
//! Every connection costs a socket, a task and up to `MAX_HEAD + MAX_BODY` bytes of
//! framing, so what peers may hold is bounded (`Limits` in `super::config`):
//!
//! - with `trunks` configured, only the trunks and the `proxies` may connect (the
//!   UDP side drops everyone else's requests; over TCP their connections took
//!   every place, and the trunk's own connection was refused): anyone else's
//!   connection is closed at once, counted under the reason `not_trunk`;
//! - at most `sip_tcp_max_connections` at once, and `sip_tcp_max_per_source` from
//!   one IP address: a connection over either is accepted and closed at once (not
//!   left in the kernel's backlog, where it would hold a place a caller's gateway
//!   needs), counted in `kuma_sip_tcp_refused_total`, and logged at most once per
//!   `super::quiet::EVERY` however many there are;
//! - a double-CRLF ping is answered with a CRLF pong (RFC 5626 §4.4.1);
//! - a connection that brings neither a complete message nor a keep-alive for
//!   `sip_tcp_idle_timeout` is closed, so half a message trickled in never holds
//!   one forever; while a call uses the connection (the shell [`Connections::hold`]s
//!   it) it stays, as a call may last longer than any idle time without SIP;
//! - what the shell sends waits in a queue of [`WRITE_QUEUE`] messages, all of
//!   which are written (in one write) before the connection is read again: a
//!   peer that does not read its responses is closed instead of filling kuma's
//!   memory, and a write that does not finish within the idle time closes it too;
//! - messages wait for the shell in one queue of [`QUEUE`]: when the shell is
//!   behind, the connections stop being read and TCP slows their senders down.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::Limits;
use super::http::names;
use super::quiet::QuietLog;
use crate::sip::CallId;
use crate::sip::admission::Admission;
use crate::sip::framing::StreamFramer;

/// Messages read from all connections, waiting for the shell.
pub const QUEUE: usize = 1024;

/// Messages waiting to be written to one connection. The queue is written
/// out before each read, and a read (8 KiB) brings at most some 27 INVITEs
/// with their SDP, or 60 shorter requests; each is answered with up to three
/// messages (100, 180, 200), the [`IN_FLIGHT`] before them too. With 64, and
/// without that bound, a trunk's burst of requests in one write was closed
/// as "not reading" after some 140 answers.
pub const WRITE_QUEUE: usize = 128;

/// After a message that cannot be framed, how long the connection stays for the
/// endpoint's 400 or 513 to be written.
const LINGER: Duration = Duration::from_secs(2);

/// Messages of one connection handed to the shell and not yet handled: the
/// connection reads no further meanwhile. Without this bound a connection read
/// far ahead of the shell (its queue holds [`QUEUE`]), and the shell then
/// answered hundreds of them at once, more than [`WRITE_QUEUE`].
const IN_FLIGHT: usize = 8;

/// A message read from a connection.
pub struct Incoming {
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
    /// Given back to the connection when the shell drops the message, having
    /// queued its answers.
    _turn: tokio::sync::OwnedSemaphorePermit,
}

/// The shell's side of one connection.
struct Writer {
    queue: mpsc::Sender<Vec<u8>>,
    /// How many calls use the connection; while any does, it is not idle.
    calls: Arc<AtomicUsize>,
}

/// What the shell uses to answer on TCP.
#[derive(Default)]
pub struct Connections {
    writers: HashMap<SocketAddr, Writer>,
    /// The calls holding a connection open, and whose.
    held: HashMap<CallId, SocketAddr>,
}

impl Connections {
    /// Sends on the connection with `to`; false when it is gone (RFC 3261 §18.2.2
    /// would open a new one; kuma's peers keep theirs open while a call lasts).
    pub fn send(&mut self, to: SocketAddr, bytes: Vec<u8>) -> bool {
        let Some(w) = self.writers.get(&to) else {
            return false;
        };
        match w.queue.try_send(bytes) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Dropping the sender ends the connection once the queue is written.
                tracing::warn!(%to, "SIP TCP peer does not read what kuma sends; closing");
                metrics::counter!(names::SIP_TCP_CLOSED, "reason" => "not_reading").increment(1);
                self.writers.remove(&to);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.writers.remove(&to);
                false
            }
        }
    }

    pub fn opened(&mut self, o: Opened) {
        // A closed connection leaves its writer behind until now: the map holds
        // the open ones only, so it is as bounded as they are.
        self.writers.retain(|_, w| !w.queue.is_closed());
        self.writers.insert(
            o.from,
            Writer {
                queue: o.writer,
                calls: o.calls,
            },
        );
        let _ = o.known.send(());
    }

    /// `call` came over the connection with `peer` (if it is one): the connection
    /// stays open past its idle time until [`Self::release`].
    pub fn hold(&mut self, call: CallId, peer: SocketAddr) {
        if let Some(w) = self.writers.get(&peer) {
            w.calls.fetch_add(1, Ordering::Relaxed);
            self.held.insert(call, peer);
        }
    }

    /// `call` is over.
    pub fn release(&mut self, call: CallId) {
        let Some(peer) = self.held.remove(&call) else {
            return;
        };
        if let Some(w) = self.writers.get(&peer) {
            let _ = w
                .calls
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

/// A connection opened, with the sender the shell answers through.
pub struct Opened {
    pub from: SocketAddr,
    pub writer: mpsc::Sender<Vec<u8>>,
    calls: Arc<AtomicUsize>,
    /// Fired once the shell knows the connection: its task reads nothing before,
    /// or the answer to a first message could find no connection to go on.
    known: oneshot::Sender<()>,
}

/// The connections open now, in all and by source address.
#[derive(Default)]
struct Tally {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One connection's place in the [`Tally`], given back when its task ends.
struct Place {
    tally: Arc<Mutex<Tally>>,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut t = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        t.total = t.total.saturating_sub(1);
        if let Some(n) = t.by_source.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.by_source.remove(&self.ip);
            }
        }
        metrics::gauge!(names::SIP_TCP_CONNECTIONS).set(t.total as f64);
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotTrunk,
    Total,
    PerSource,
}

impl Tally {
    /// A place for a connection from `ip`, if the limits leave one.
    fn admit(tally: &Arc<Mutex<Tally>>, ip: IpAddr, limits: &Limits) -> Result<Place, Refusal> {
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        if t.total >= limits.sip_tcp_max_connections {
            return Err(Refusal::Total);
        }
        let from_ip = t.by_source.entry(ip).or_default();
        if *from_ip >= limits.sip_tcp_max_per_source {
            return Err(Refusal::PerSource);
        }
        *from_ip += 1;
        t.total += 1;
        metrics::gauge!(names::SIP_TCP_CONNECTIONS).set(t.total as f64);
        Ok(Place {
            tally: Arc::clone(tally),
            ip,
        })
    }
}

/// Accepts connections until the shell is gone; each one admitted gets its task.
/// `who`: the trunk allow-list and the proxies (only `may_contact` is asked).
pub async fn accept(
    listener: TcpListener,
    limits: Limits,
    who: Admission,
    messages: mpsc::Sender<Incoming>,
    opened: mpsc::UnboundedSender<Opened>,
) {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut refused = QuietLog::new("SIP TCP connections refused");
    let mut failed = QuietLog::new("SIP TCP accept failed");
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, typically: accepting again at once
                // would spin; a moment later some may be free.
                failed.note(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match who.may_contact(from.ip()) {
            Ok(()) => Tally::admit(&tally, from.ip(), &limits),
            Err(_) => Err(Refusal::NotTrunk),
        };
        let place = match admitted {
            Ok(p) => p,
            Err(why) => {
                // Dropped: closed at once.
                drop(stream);
                let reason = match why {
                    Refusal::NotTrunk => "not_trunk",
                    Refusal::Total => "total",
                    Refusal::PerSource => "per_source",
                };
                metrics::counter!(names::SIP_TCP_REFUSED, "reason" => reason).increment(1);
                refused.note(&format_args!(
                    "limits: {} in all, {} per source address, trunks and proxies only when trunks are set; the last from {from}, {}",
                    limits.sip_tcp_max_connections,
                    limits.sip_tcp_max_per_source,
                    match why {
                        Refusal::NotTrunk => "not a trunk",
                        Refusal::Total => "over the total",
                        Refusal::PerSource => "over the limit per source",
                    }
                ));
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let calls = Arc::new(AtomicUsize::new(0));
        let (known, shell_knows) = oneshot::channel();
        let o = Opened {
            from,
            writer: tx,
            calls: Arc::clone(&calls),
            known,
        };
        if opened.send(o).is_err() {
            return;
        }
        let conn = Connection {
            from,
            messages: messages.clone(),
            outgoing: rx,
            calls,
            idle: limits.sip_tcp_idle_timeout,
            turns: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
            _place: place,
        };
        tokio::spawn(async move {
            if shell_knows.await.is_ok() {
                conn.run(stream).await;
            }
        });
    }
}

/// One connection's task: reads messages, writes what the shell sends.
struct Connection {
    from: SocketAddr,
    messages: mpsc::Sender<Incoming>,
    outgoing: mpsc::Receiver<Vec<u8>>,
    calls: Arc<AtomicUsize>,
    idle: Duration,
    /// [`IN_FLIGHT`] turns.
    turns: Arc<tokio::sync::Semaphore>,
    _place: Place,
}

impl Connection {
    /// Hands a message to the shell once fewer than [`IN_FLIGHT`] of this
    /// connection's wait there; false when the shell is gone.
    async fn hand_over(&self, bytes: Vec<u8>) -> bool {
        let Ok(turn) = Arc::clone(&self.turns).acquire_owned().await else {
            return false;
        };
        let m = Incoming {
            from: self.from,
            bytes,
            _turn: turn,
        };
        self.messages.send(m).await.is_ok()
    }

    async fn run(mut self, mut stream: TcpStream) {
        let from = self.from;
        let mut framer = StreamFramer::new();
        let mut buf = vec![0u8; 8 * 1024];
        let mut deadline = Instant::now() + self.idle;
        // Set once the stream cannot be framed: nothing more is read.
        let mut closing: Option<Instant> = None;
        let mut out = Vec::new();
        loop {
            tokio::select! {
                // What the shell sent is written before more is read (below).
                biased;
                next = self.outgoing.recv() => {
                    let Some(bytes) = next else {
                        return; // the shell let go of it
                    };
                    // Everything queued, in one write.
                    out.clear();
                    out.extend_from_slice(&bytes);
                    while let Ok(more) = self.outgoing.try_recv() {
                        out.extend_from_slice(&more);
                    }
                    match tokio::time::timeout(self.idle, stream.write_all(&out)).await {
                        Ok(Ok(())) if closing.is_none() => {}
                        // After a framing error, the first thing written is its answer.
                        _ => return,
                    }
                }
                got = stream.read(&mut buf), if closing.is_none() => {
                    let n = match got {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    framer.push(buf.get(..n).unwrap_or_default());
                    loop {
                        match framer.next_message() {
                            Ok(Some(bytes)) => {
                                if !self.hand_over(bytes).await {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!(%from, error = %e, "closing a SIP TCP connection");
                                metrics::counter!(names::SIP_TCP_CLOSED, "reason" => "framing")
                                    .increment(1);
                                // The endpoint answers it if it can (513, 400).
                                let bytes = framer.take_rejected();
                                if !self.hand_over(bytes).await {
                                    return;
                                }
                                closing = Some(Instant::now() + LINGER);
                                break;
                            }
                        }
                    }
                    // Nothing half-read: a whole message or a keep-alive came.
                    if framer.buffered() == 0 {
                        deadline = Instant::now() + self.idle;
                    }
                    let pongs = b"\r\n".repeat(framer.take_pings());
                    if !pongs.is_empty()
                        && !matches!(
                            tokio::time::timeout(self.idle, stream.write_all(&pongs)).await,
                            Ok(Ok(()))
                        )
                    {
                        return;
                    }
                }
                () = tokio::time::sleep_until(closing.unwrap_or(deadline)) => {
                    if closing.is_some() {
                        return;
                    }
                    if self.calls.load(Ordering::Relaxed) > 0 {
                        deadline = Instant::now() + self.idle;
                        continue;
                    }
                    tracing::debug!(%from, "closing an idle SIP TCP connection");
                    metrics::counter!(names::SIP_TCP_CLOSED, "reason" => "idle").increment(1);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_counted_in_all_and_per_source_and_given_back() {
        let limits = Limits {
            sip_tcp_max_connections: 3,
            sip_tcp_max_per_source: 2,
            ..Limits::default()
        };
        let tally = Arc::new(Mutex::new(Tally::default()));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = Tally::admit(&tally, a, &limits).unwrap();
        let _a2 = Tally::admit(&tally, a, &limits).unwrap();
        assert_eq!(
            Tally::admit(&tally, a, &limits).err(),
            Some(Refusal::PerSource)
        );
        let _b1 = Tally::admit(&tally, b, &limits).unwrap();
        assert_eq!(Tally::admit(&tally, b, &limits).err(), Some(Refusal::Total));
        drop(a1);
        let _b2 = Tally::admit(&tally, b, &limits).unwrap();
        assert_eq!(tally.lock().unwrap().total, 3);
    }
}
