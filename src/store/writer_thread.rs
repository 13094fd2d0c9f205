//! The thread the calls' writes run on.
//!
//! A write transaction is a dozen statements, and with sqlx each statement is
//! a round trip between the task that runs the transaction and the driver (the
//! SQLite connection's own thread, or the PostgreSQL server): the task sends a
//! statement, sleeps, and must be woken and scheduled again to send the next.
//! When that task ran on the runtime that paces hundreds of calls' audio, every
//! step waited its turn behind those calls, while the transaction held SQLite's
//! one write lock (or PostgreSQL's row locks on the counters). From about 500
//! calls on a busy machine one write took over 2 s, the database was taken for
//! away and new calls were refused (issue 16).
//!
//! So the writes calls make (starting a call, its progress, a recording) run on
//! a runtime of their own, on one thread that does nothing else: its steps are
//! woken at once however busy the calls are, and the caller waits for one
//! wake-up, at the end. On SQLite a call's own writes (its row, its progress)
//! then run on this thread itself, without sqlx's hop per statement to its
//! connection's worker thread (`direct.rs`); the other writes still form
//! groups here (`group.rs`): all of them are tasks of this one runtime,
//! queued on the writer's fair lock.
//!
//! A write, once handed over, runs to its end even if the caller stops waiting
//! (a call that hung up meanwhile): an answer given is committed, not cut off
//! halfway (a cut-off transaction rolls back, but the caller would not know).
//! Only a deadline the caller gave with it (the spool's) cuts it off, here, on
//! this thread, which then hands the write back with the error: a call's
//! writes are moved here, never copied, and come back only if not written
//! (`Store::lend`).
//! The thread starts with the first write that needs it, so a store opened
//! only to read (`kuma results`, an export) runs none. It ends when the last
//! clone of its [`Store`](super::Store) is dropped; a write handed over after that (there can be none: the caller holds
//! a clone) would get an error that reads as "the database is away", never a
//! panic.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::StoreError;
use super::group::unavailable;

/// How much lower than the rest of the process the writer thread runs (added
/// to its nice value, of this thread alone on Linux).
///
/// The calls' audio runs on tokio's workers, and a packet due while this thread
/// holds the core waits its turn: on one core at 500 calls, 15–18 % of the
/// packets went out over 2 ms late, and the RTP gaps' p99 was 27–29 ms. At nice
/// 10 a waking worker takes the core at once: 11–13 % late, p99 23–26 ms, in
/// three alternated pairs of runs (`benches/sip-load.sh`, the store's threads
/// reniced from outside). A write is short and still gets a tenth of a busy
/// core: at 1,000 calls (the core full) no write missed the spool's deadline.
const WRITER_NICE: libc::c_int = 10;

/// Lowers the calling thread's priority by [`WRITER_NICE`] (to 19 at most).
/// Threads it starts inherit it; sqlx's SQLite connection threads, opened from
/// the main runtime, do not. Only where a nice value is a thread's own
/// (Linux); a refusal leaves it as it was.
fn yield_to_the_calls() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority only read and set this thread's
        // scheduling attributes.
        let failed = unsafe {
            let tid = libc::gettid() as libc::id_t;
            // getpriority may return -1 as a value: errno tells.
            *libc::__errno_location() = 0;
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            let lower = now.saturating_add(WRITER_NICE).min(19);
            (now == -1 && *libc::__errno_location() != 0)
                || libc::setpriority(libc::PRIO_PROCESS, tid, lower) != 0
        };
        if failed {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the store's writer thread keeps its priority"
            );
        }
    }
}

/// The writer thread's runtime, and what ends it.
pub(super) struct WriterThread {
    handle: Handle,
    /// Dropped with the store: the thread's runtime then stops.
    _stop: oneshot::Sender<()>,
}

impl WriterThread {
    /// Starts the thread (named `kuma-store`).
    pub(super) fn start() -> std::io::Result<WriterThread> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("kuma-store".into())
            .spawn(move || {
                yield_to_the_calls();
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(WriterThread {
            handle,
            _stop: stop,
        })
    }

    /// Runs `job` on the writer thread and waits for its result.
    pub(super) async fn run<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        match self.spawn(job).await {
            Ok(out) => out,
            Err(e) => Err(unavailable(format!("the store's writer thread: {e}"))),
        }
    }

    /// Starts `job` on the writer thread; its handle gives its output, or says
    /// that it panicked.
    pub(super) fn spawn<F>(&self, job: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(job)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> libc::c_int {
        // SAFETY: reads this thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn the_writer_thread_runs_below_the_calls_and_leaves_them_as_they_were() {
        let before = nice_of_this_thread();
        let writer = WriterThread::start().unwrap();
        let (name, nice) = writer
            .run(async {
                Ok((
                    std::thread::current().name().map(str::to_owned),
                    nice_of_this_thread(),
                ))
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("kuma-store"));
        assert_eq!(nice, (before + WRITER_NICE).min(19));
        assert_eq!(nice_of_this_thread(), before);
    }
}
