//! The second line of defence: a bug that still panics costs one message or one
//! call, never the server.
//!
//! The parsers and machines are written so that nothing from outside can make them
//! panic (and fuzzed for it); this module is for the bug nobody found yet:
//!
//! - [`guarded`]: the SIP task runs each step of the sans-IO endpoint inside
//!   `catch_unwind`; a step that panics drops its message (logged by its first
//!   line, never its body) and the task goes on with the next one;
//! - [`CallGuard`]: a call's task holds one; if the task stops without saying the
//!   call is over (a panic, or an error that aborts it), the guard hangs the call
//!   up (BYE), tells the SIP task it is gone and ends its row in the store as
//!   `error`. The RTP socket and any recording file are closed by the drop;
//! - [`install_panic_hook`]: a panic is one log line with its place in the code;
//!   its message is cut short and stripped of digit runs, since a slicing panic
//!   quotes the text it was cutting, which may hold a phone number.

use std::panic::AssertUnwindSafe;

use chrono::Utc;
use tokio::sync::mpsc;

use super::sip_shell::Command;
use crate::sip::CallId;
use crate::store::{CallEnd, Store};

/// Runs `step`; `None` if it panicked. `what` names the input in the log: the first
/// line of a message, never more.
pub fn guarded<T>(what: impl FnOnce() -> String, step: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(step)) {
        Ok(v) => Some(v),
        Err(_) => {
            metrics::counter!(super::http::names::PANICS, "where" => "sip").increment(1);
            tracing::error!(
                input = %what(),
                "BUG: the SIP endpoint panicked on this input; it is dropped and the server goes on"
            );
            None
        }
    }
}

/// The first line of a SIP message, for a log: at most 120 characters, lossily
/// decoded, control characters replaced.
pub fn first_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len())
        .min(120);
    let line = bytes.get(..end).unwrap_or_default();
    String::from_utf8_lossy(line)
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Ends a call that its task could not end: see the module doc.
pub struct CallGuard {
    cmd: mpsc::UnboundedSender<Command>,
    call: CallId,
    store: Store,
    row: Option<crate::store::CallRow>,
    done: bool,
}

impl CallGuard {
    pub fn new(cmd: &mpsc::UnboundedSender<Command>, call: CallId, store: &Store) -> CallGuard {
        CallGuard {
            cmd: cmd.clone(),
            call,
            store: store.clone(),
            row: None,
            done: false,
        }
    }

    /// The call's row in the store, once written.
    pub fn row(&mut self, row: crate::store::CallRow) {
        self.row = Some(row);
    }

    /// The task ended the call itself (its row is ended, the SIP side told).
    pub fn done(&mut self) {
        self.done = true;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        tracing::error!(
            call = %self.call,
            "the call's task stopped before the call ended: hanging up"
        );
        metrics::counter!(super::http::names::PANICS, "where" => "call").increment(1);
        let _ = self.cmd.send(Command::HangUp { call: self.call });
        let _ = self.cmd.send(Command::Gone { call: self.call });
        let Some(row) = self.row else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        runtime.spawn(async move {
            let end = CallEnd {
                ended_at: Utc::now(),
                outcome: "error",
                last_node: None,
            };
            if let Err(e) = store.end_call(row, &end).await {
                tracing::warn!(error = %e, row, "cannot end the call's row");
            }
        });
    }
}

/// Replaces the default panic message (which quotes what was being cut or
/// unwrapped) with one log line: where, and the message without digit runs.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, message = %scrub(&message), "BUG: panic");
    }));
}

/// At most 160 characters, with every run of 3 or more digits replaced by `#`.
fn scrub(message: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in message.chars().take(160) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        out.push_str(if digits.len() >= 3 { "#" } else { &digits });
        digits.clear();
        out.push(c);
    }
    out.push_str(if digits.len() >= 3 { "#" } else { &digits });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_step_is_none_and_the_next_one_runs() {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let bad: Option<u8> = guarded(|| "OPTIONS sipé SIP/2.0".into(), || panic!("boom"));
        std::panic::set_hook(quiet);
        assert_eq!(bad, None);
        assert_eq!(guarded(String::new, || 7), Some(7));
    }

    #[test]
    fn first_line_is_short_and_printable() {
        assert_eq!(
            first_line(b"OPTIONS sip:a SIP/2.0\r\nFrom: 223"),
            "OPTIONS sip:a SIP/2.0"
        );
        assert_eq!(first_line(b"A\x1b[2mB"), "A\u{fffd}[2mB");
        assert_eq!(first_line(&[b'x'; 500]).len(), 120);
        assert_eq!(first_line(b"\xff\xfe"), "\u{fffd}\u{fffd}");
        assert_eq!(first_line(b""), "");
    }

    #[test]
    fn scrubbed_messages_keep_no_number() {
        assert_eq!(
            scrub("byte index 4 is not a char boundary of `sip:+22376123456@x`"),
            "byte index 4 is not a char boundary of `sip:+#@x`"
        );
        assert_eq!(scrub("12 ab 1234"), "12 ab #");
    }

    /// A call task that panics after its row was written: the call is hung up,
    /// the SIP task told it is gone, and the row ended as `error`.
    #[tokio::test]
    async fn a_call_task_that_panics_is_hung_up_and_its_row_ended() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/k.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let row = store
            .start_call(&crate::store::NewCall {
                campaign: "c",
                caller: "c_x",
                channel: "sip",
                started_at: Utc::now(),
                broadcast: None,
            })
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let call = CallId(42);
        let mut guard = CallGuard::new(&tx, call, &store);
        guard.row(row);
        let task = tokio::spawn(async move {
            let _guard = guard;
            tokio::task::yield_now().await;
            let v: Vec<u8> = Vec::new();
            v[3]
        });
        assert!(task.await.unwrap_err().is_panic());
        assert!(matches!(rx.recv().await, Some(Command::HangUp { call: c }) if c == call));
        assert!(matches!(rx.recv().await, Some(Command::Gone { call: c }) if c == call));
        let mut outcome = None;
        for _ in 0..100 {
            outcome = store.call_outcome(row).await.unwrap();
            if outcome.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(outcome.as_deref(), Some("error"));
    }

    #[tokio::test]
    async fn a_call_that_ended_itself_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/k.db", dir.path().display());
        let store = Store::open(&url).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut guard = CallGuard::new(&tx, CallId(1), &store);
        guard.done();
        drop(guard);
        assert!(rx.try_recv().is_err());
    }
}
