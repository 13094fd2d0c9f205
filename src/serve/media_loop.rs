//! The threads that pace the calls' media: one per core the process may run
//! on, each taking turns between its calls on one timer heap.
//!
//! A call's media is a slot every 20 ms (a packet out, every other slot the
//! caller's packets read) and, now and then, a SIP event or the end of a store
//! write. As a tokio task per call, each slot cost a task wake-up, a poll of
//! the call's `select!` (its timer, its SIP channel, its pending output) and a
//! timer reset in tokio's wheel, whose 1 ms granularity also made a packet up
//! to a millisecond late (issue 16's profile: tokio 7–10 % of kuma's samples;
//! most packets late by over 2 ms were a timer tick late). Here a thread keeps
//! its calls in a heap ordered by when each is next due, runs every call that
//! is due when it wakes, and sleeps until the next one, woken early only when
//! a call's waker fires (a SIP event, a write committed) or a call starts.
//!
//! A call is a [`Paced`]: `turn` does what is due and says when it is next
//! due. It runs on this thread with the tokio runtime entered, so it may spawn
//! work, and poll futures (a store write, its SIP channel) with the waker it is
//! given: a waker that fires queues the call for a turn and unparks the
//! thread. Nothing on this thread may block: slow work (a disk sync, a
//! database round trip) is a future or a task of the runtime.
//!
//! Wake-ups are rounded up to a [`GRID`] of half a millisecond, so that calls
//! due a few microseconds apart share one wake-up (at 1,000 calls, one every
//! 20 µs is due) and a packet is at most that late for it.
//!
//! The packets the calls send in their turns go out together once every call
//! due at a wake-up has had its turn: one `io_uring_enter` for them all
//! (`super::uring_send`), where each was a `sendto` of its own.
//!
//! The threads ask for real-time priority ([`go_realtime`], where the system
//! allows it; `media_realtime = false` does without): then a packet due is
//! not kept waiting behind the kernel's network work (`ksoftirqd`) or kuma's
//! other threads on the same core. `benches/sip-load.sh` with kuma on one
//! core: at 500 calls 0.05 % of the packets over 2 ms late instead of 1.4–2.4
//! %, RTP gaps' p99 20.5 ms instead of 23.7–27.3; at 1,000 calls 0.8–1.0 %
//! instead of 16.6 %, p99 22.1–22.9 instead of 48.3, and no caller refused
//! instead of 282 of 2,000. A thread that cannot keep up leaves its priority
//! until it can ([`DUTY_WINDOW`]).
//!
//! A call's turn runs inside `catch_unwind`, with the call's tracing span
//! entered: a call that panics is dropped (its `CallGuard` hangs it up and ends
//! its row) and its `drive` gets an error; the other calls go on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::uring_send::{self, Sender};

/// Wake-ups are rounded up to this grid (see the module's doc).
pub const GRID: Duration = Duration::from_micros(500);

/// One call as a media thread runs it.
pub trait Paced: Send + 'static {
    /// Does what is due now; `Ok(Some(at))`: call again at `at` (or sooner,
    /// when `cx`'s waker fires); `Ok(None)`: the call is finished. `woken`:
    /// the waker fired since the last turn (or this is the first): what the
    /// call polls with it may be ready. A turn that was only due need not poll
    /// them: what was not ready then has not woken it since. Packets go out
    /// through `send`, the thread's, after the wake-up's last turn.
    fn turn(
        &mut self,
        cx: &mut Context<'_>,
        woken: bool,
        send: &mut Sender,
    ) -> anyhow::Result<Option<Instant>>;
}

/// The media threads of one server.
pub struct MediaLoops {
    loops: Vec<Arc<Loop>>,
}

/// What a media thread and the rest of the process share.
struct Loop {
    inbox: Mutex<Inbox>,
    thread: OnceLock<Thread>,
    /// Calls on this thread (new calls go to the thread with fewest).
    calls: AtomicUsize,
    next_key: AtomicU64,
}

#[derive(Default)]
struct Inbox {
    messages: Vec<Message>,
    /// The server is gone: the thread ends once its calls have.
    stop: bool,
}

enum Message {
    Start(Box<Start>),
    Wake(u64),
}

struct Start {
    key: u64,
    call: Box<dyn Paced>,
    span: tracing::Span,
    done: oneshot::Sender<anyhow::Result<()>>,
}

impl Loop {
    fn send(&self, message: Message) {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .messages
            .push(message);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

impl MediaLoops {
    /// Starts one thread per core this process may run on, each with
    /// `runtime` entered, sending through an io_uring when `ring` is true and
    /// the kernel gives one (`super::uring_send`), at real-time priority when
    /// `realtime` is true and the system allows it ([`go_realtime`]). A
    /// thread that cannot be started is logged; with none,
    /// [`MediaLoops::run`] refuses calls.
    pub fn start(runtime: tokio::runtime::Handle, ring: bool, realtime: bool) -> MediaLoops {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut loops = Vec::with_capacity(n);
        for i in 0..n {
            let lp = Arc::new(Loop {
                inbox: Mutex::new(Inbox::default()),
                thread: OnceLock::new(),
                calls: AtomicUsize::new(0),
                next_key: AtomicU64::new(0),
            });
            let (shared, rt) = (Arc::clone(&lp), runtime.clone());
            match std::thread::Builder::new()
                .name(format!("kuma-media-{i}"))
                .spawn(move || {
                    let _rt = rt.enter();
                    let (send, path) = Sender::new(ring, uring_send::SLOTS);
                    say_path(&path);
                    let realtime = realtime && {
                        let got = go_realtime();
                        say_priority(&got);
                        got.is_ok()
                    };
                    run_thread(&shared, send, realtime);
                }) {
                Ok(handle) => {
                    let _ = lp.thread.set(handle.thread().clone());
                    loops.push(lp);
                }
                Err(e) => tracing::error!(error = %e, "cannot start a media thread"),
            }
        }
        MediaLoops { loops }
    }

    /// Runs `call` on the media thread with the fewest calls, inside `span`;
    /// the receiver gets how it ended.
    pub fn run(
        &self,
        call: Box<dyn Paced>,
        span: tracing::Span,
    ) -> anyhow::Result<oneshot::Receiver<anyhow::Result<()>>> {
        let lp = self
            .loops
            .iter()
            .min_by_key(|l| l.calls.load(Ordering::Relaxed))
            .ok_or_else(|| anyhow::anyhow!("no media thread could be started"))?;
        lp.calls.fetch_add(1, Ordering::Relaxed);
        let (done, ended) = oneshot::channel();
        let key = lp.next_key.fetch_add(1, Ordering::Relaxed);
        lp.send(Message::Start(Box::new(Start {
            key,
            call,
            span,
            done,
        })));
        Ok(ended)
    }
}

impl Drop for MediaLoops {
    fn drop(&mut self) {
        for lp in &self.loops {
            lp.inbox.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
            if let Some(t) = lp.thread.get() {
                t.unpark();
            }
        }
    }
}

/// Logs which way the calls' packets go: once, from the first media thread
/// (and again from another should it differ, which only a lack of memory
/// would make).
fn say_path(path: &Result<(), String>) {
    static SAID: Mutex<Option<bool>> = Mutex::new(None);
    if !first_time(&SAID, path.is_ok()) {
        return;
    }
    match path {
        Ok(()) => tracing::info!("RTP packets sent through io_uring, one submit per wake-up"),
        Err(why) => tracing::info!(why = %why, "RTP packets sent with sendto (no io_uring)"),
    }
}

/// The real-time priority of the media threads (`SCHED_RR`, 1–99): low, under
/// the kernel's threaded interrupt handlers (50) and audio servers' (PipeWire
/// 88), as Asterisk's `-p` (10).
pub const REALTIME_PRIORITY: libc::c_int = 10;

/// Puts the calling thread under `SCHED_RR` at [`REALTIME_PRIORITY`], with
/// `SCHED_RESET_ON_FORK`: a thread it starts (a runtime's blocking thread
/// spawned from a call's turn) is an ordinary one. Allowed to root
/// (`CAP_SYS_NICE`) or where `RLIMIT_RTPRIO` reaches the priority (systemd's
/// `LimitRTPRIO=`); the error says why not.
pub fn go_realtime() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        set_policy(libc::SCHED_RR, REALTIME_PRIORITY)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("real-time priority is set on Linux only".into())
    }
}

/// Sets the calling thread's scheduling policy (with `SCHED_RESET_ON_FORK`)
/// and priority.
#[cfg(target_os = "linux")]
fn set_policy(policy: libc::c_int, priority: libc::c_int) -> Result<(), String> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread,
    // whose scheduling alone changes.
    let r = unsafe { libc::sched_setscheduler(0, policy | libc::SCHED_RESET_ON_FORK, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// Logs the media threads' priority once (and again should another thread's
/// differ).
fn say_priority(got: &Result<(), String>) {
    static SAID: Mutex<Option<bool>> = Mutex::new(None);
    if !first_time(&SAID, got.is_ok()) {
        return;
    }
    match got {
        Ok(()) => tracing::info!(
            priority = REALTIME_PRIORITY,
            "media threads at real-time priority (SCHED_RR)"
        ),
        Err(why) => tracing::info!(
            why = %why,
            "media threads at normal priority (real-time refused: root, CAP_SYS_NICE or LimitRTPRIO allow it)"
        ),
    }
}

/// How a real-time media thread keeps from starving its core: over each
/// [`DUTY_WINDOW`] it measures the share of the time it was awake (from a
/// wake-up to its next sleep). Over [`DUTY_HIGH`] it cannot keep up (more
/// calls than its core can pace) and goes back to ordinary scheduling, where
/// the kernel shares the core with what else needs it (its deferred network
/// work in `ksoftirqd`, SIP, the store) and the media guard refuses new
/// calls as it did before; under [`DUTY_LOW`] for [`CALM_WINDOWS`] windows in
/// a row it takes its priority again. Real-time at any load, at twice the
/// calls one core can pace those got the 5 % the kernel's real-time
/// throttling leaves them: SIP answers and the store's writes waited
/// seconds, and calls failed instead of being refused (`benches/sip-load.sh
/// 2000`, kuma on one core: 2,233 of 4,000 calls failed; resting 1 ms after
/// every 3 ms of work did not help: 1,212, against 37–547 at ordinary
/// priority).
pub const DUTY_WINDOW: Duration = Duration::from_millis(100);
/// See [`DUTY_WINDOW`] (per mille).
pub const DUTY_HIGH: u32 = 900;
/// See [`DUTY_WINDOW`] (per mille).
pub const DUTY_LOW: u32 = 700;
/// See [`DUTY_WINDOW`].
pub const CALM_WINDOWS: u32 = 10;

/// The media thread's duty, and whether it is real-time now (see
/// [`DUTY_WINDOW`]).
struct Duty {
    /// It asked for real-time priority and got it.
    allowed: bool,
    realtime: bool,
    window_start: Instant,
    awake: Duration,
    calm: u32,
}

impl Duty {
    fn new(allowed: bool, now: Instant) -> Duty {
        Duty {
            allowed,
            realtime: allowed,
            window_start: now,
            awake: Duration::ZERO,
            calm: 0,
        }
    }

    /// The thread was awake from `woke` to `now` (it goes to sleep, or
    /// goes on with calls already due); at the end of a window, what its
    /// priority should now be (`Some`: change to real-time `true` or
    /// ordinary `false`).
    fn awake(&mut self, woke: Instant, now: Instant) -> Option<bool> {
        if !self.allowed {
            return None;
        }
        self.awake += now.saturating_duration_since(woke);
        let window = now.saturating_duration_since(self.window_start);
        if window < DUTY_WINDOW {
            return None;
        }
        let permille = u32::try_from(self.awake.as_micros() * 1000 / window.as_micros().max(1))
            .unwrap_or(1000);
        self.window_start = now;
        self.awake = Duration::ZERO;
        if self.realtime && permille > DUTY_HIGH {
            self.realtime = false;
            self.calm = 0;
            return Some(false);
        }
        if !self.realtime {
            self.calm = if permille < DUTY_LOW {
                self.calm + 1
            } else {
                0
            };
            if self.calm >= CALM_WINDOWS {
                self.realtime = true;
                return Some(true);
            }
        }
        None
    }
}

/// Puts the calling thread back under ordinary scheduling (`SCHED_OTHER`).
fn go_ordinary() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        set_policy(libc::SCHED_OTHER, 0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(())
    }
}

/// Changes the media thread's priority as its duty says, and logs it.
fn change_priority(realtime: bool, duty: &mut Duty) {
    let got = if realtime {
        go_realtime()
    } else {
        go_ordinary()
    };
    match got {
        Ok(()) if realtime => {
            tracing::info!("media thread on time again: back at real-time priority")
        }
        Ok(()) => tracing::warn!(
            "media thread cannot keep up: at ordinary priority until it can, so that SIP and the store keep their share of its core"
        ),
        Err(why) => {
            tracing::warn!(why = %why, "media thread's priority not changed");
            duty.realtime = !realtime;
        }
    }
}

/// Whether `outcome` differs from the last one `said` records (none at
/// first), recording it: the media threads log how they started once, not
/// once each.
fn first_time(said: &Mutex<Option<bool>>, outcome: bool) -> bool {
    let mut said = said.lock().unwrap_or_else(|e| e.into_inner());
    let first = *said != Some(outcome);
    *said = Some(outcome);
    first
}

/// A call's waker: queues the call for a turn, once until it has had it.
struct CallWaker {
    key: u64,
    lp: Arc<Loop>,
    queued: AtomicBool,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.lp.send(Message::Wake(self.key));
        }
    }
}

/// A call on its thread.
struct Running {
    /// Its key in [`MediaLoops::run`]'s numbering (the waker's).
    key: u64,
    call: Box<dyn Paced>,
    span: tracing::Span,
    done: oneshot::Sender<anyhow::Result<()>>,
    wake: Arc<CallWaker>,
    waker: Waker,
    /// The number of its last scheduled turn: heap entries of older turns
    /// are stale.
    turn: u64,
}

struct Turns {
    lp: Arc<Loop>,
    /// Sends what the calls' turns queued, once a wake-up's turns are done.
    send: Sender,
    /// The calls, in slots reused once free.
    slots: Vec<Option<Running>>,
    free: Vec<usize>,
    /// Where each call's key is (a waker names its key).
    by_key: HashMap<u64, usize>,
    /// When each call is next due: (at, turn number, slot). Turn numbers are
    /// the thread's, never reused: an entry whose number is not its slot's
    /// call's last is stale.
    due: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    turns: u64,
    /// Turns since the calls' `drive`s were last checked for.
    since_check: u32,
}

/// Turns between checks that each call's `drive` is still there.
const CHECK_EVERY: u32 = 4096;

fn run_thread(lp: &Arc<Loop>, send: Sender, realtime: bool) {
    let mut t = Turns {
        lp: Arc::clone(lp),
        send,
        slots: Vec::new(),
        free: Vec::new(),
        by_key: HashMap::new(),
        due: BinaryHeap::new(),
        turns: 0,
        since_check: 0,
    };
    let epoch = Instant::now();
    let mut messages = Vec::new();
    // When the thread last woke from sleep, and its duty (see DUTY_WINDOW).
    let mut woke = epoch;
    let mut duty = Duty::new(realtime, epoch);
    loop {
        let stop = {
            let mut inbox = lp.inbox.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut messages, &mut inbox.messages);
            inbox.stop
        };
        for m in messages.drain(..) {
            match m {
                Message::Start(s) => t.start(*s),
                Message::Wake(key) => {
                    if let Some(&slot) = t.by_key.get(&key) {
                        t.turn(slot, true);
                    }
                }
            }
        }
        let now = Instant::now();
        while let Some(&Reverse((at, turn, slot))) = t.due.peek() {
            if at > now {
                break;
            }
            t.due.pop();
            if t.slots
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.turn == turn)
            {
                t.turn(slot, false);
            }
        }
        // Every call due has had its turn: their packets go out together.
        t.send.flush();
        t.count_sends();
        if t.since_check >= CHECK_EVERY {
            t.since_check = 0;
            t.drop_abandoned();
        }
        if stop && t.by_key.is_empty() {
            return;
        }
        if !lp
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .messages
            .is_empty()
        {
            continue;
        }
        let now = Instant::now();
        if let Some(realtime) = duty.awake(woke, now) {
            change_priority(realtime, &mut duty);
        }
        woke = now;
        match t.due.peek() {
            // Calls already due: their turns come next, awake.
            Some(&Reverse((at, _, _))) if at <= now => continue,
            Some(&Reverse((at, _, _))) => std::thread::park_timeout(on_grid(at, epoch) - now),
            None => std::thread::park(),
        }
        woke = Instant::now();
    }
}

/// `at` rounded up to the next multiple of [`GRID`] after `epoch`.
fn on_grid(at: Instant, epoch: Instant) -> Instant {
    let since = at.saturating_duration_since(epoch).as_nanos();
    let grid = GRID.as_nanos();
    let rest = since % grid;
    if rest == 0 {
        at
    } else {
        // Under GRID: fits in u64 nanoseconds.
        at + Duration::from_nanos(u64::try_from(grid - rest).unwrap_or(0))
    }
}

impl Turns {
    fn start(&mut self, s: Start) {
        let wake = Arc::new(CallWaker {
            key: s.key,
            lp: Arc::clone(&self.lp),
            queued: AtomicBool::new(false),
        });
        let waker = Waker::from(Arc::clone(&wake));
        let running = Running {
            key: s.key,
            call: s.call,
            span: s.span,
            done: s.done,
            wake,
            waker,
            turn: 0,
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        if let Some(place) = self.slots.get_mut(slot) {
            *place = Some(running);
        }
        self.by_key.insert(s.key, slot);
        self.turn(slot, true);
    }

    /// Runs one turn of the call in `slot` (if there is one), and schedules
    /// its next or ends it.
    fn turn(&mut self, slot: usize, woken: bool) {
        let Some(c) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        self.since_check += 1;
        c.wake.queued.store(false, Ordering::Release);
        let outcome = {
            let _span = c.span.enter();
            let mut cx = Context::from_waker(&c.waker);
            let send = &mut self.send;
            std::panic::catch_unwind(AssertUnwindSafe(|| c.call.turn(&mut cx, woken, send)))
        };
        match outcome {
            Ok(Ok(Some(at))) => {
                self.turns += 1;
                c.turn = self.turns;
                self.due.push(Reverse((at, self.turns, slot)));
            }
            Ok(Ok(None)) => self.end(slot, Some(Ok(()))),
            Ok(Err(e)) => self.end(slot, Some(Err(e))),
            Err(_) => {
                metrics::counter!(super::http::names::PANICS, "where" => "media").increment(1);
                self.end(
                    slot,
                    Some(Err(anyhow::anyhow!("BUG: the call's media panicked"))),
                );
            }
        }
    }

    /// Adds what the sender counted to the metrics (looked up here, once per
    /// wake-up that counted something: the thread may start before the
    /// metrics are installed).
    fn count_sends(&mut self) {
        let counts = self.send.take_counts();
        if counts.late > 0 {
            metrics::counter!(super::http::names::RTP_PACKETS_LATE).increment(counts.late);
        }
        if counts.at_once > 0 {
            metrics::counter!(super::http::names::RTP_PACKETS_SENT_AT_ONCE)
                .increment(counts.at_once);
        }
    }

    /// Ends the calls whose `drive` is gone (the runtime shutting down).
    fn drop_abandoned(&mut self) {
        let gone: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                self.slots
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|c| c.done.is_closed())
            })
            .collect();
        for slot in gone {
            self.end(slot, None);
        }
    }

    /// Drops the call (inside its span: its guard logs there) and tells its
    /// `drive` how it ended.
    fn end(&mut self, slot: usize, outcome: Option<anyhow::Result<()>>) {
        let Some(c) = self.slots.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.by_key.remove(&c.key);
        self.lp.calls.fetch_sub(1, Ordering::Relaxed);
        let Running {
            call, span, done, ..
        } = c;
        {
            let _span = span.enter();
            // A drop that panics (a bug) must not take the thread's other calls.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(call)));
        }
        if let Some(outcome) = outcome {
            let _ = done.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Counts its turns; finished after `turns`, each `every` apart.
    struct Ticker {
        turns: Arc<AtomicU32>,
        last: u32,
        every: Duration,
        fail_at: Option<u32>,
        panic_at: Option<u32>,
    }

    impl Paced for Ticker {
        fn turn(
            &mut self,
            _cx: &mut Context<'_>,
            _woken: bool,
            _send: &mut Sender,
        ) -> anyhow::Result<Option<Instant>> {
            let n = self.turns.fetch_add(1, Ordering::Relaxed) + 1;
            if Some(n) == self.fail_at {
                anyhow::bail!("failed at {n}");
            }
            if Some(n) == self.panic_at {
                panic!("test panic at {n}");
            }
            Ok((n < self.last).then(|| Instant::now() + self.every))
        }
    }

    fn ticker(last: u32, fail_at: Option<u32>, panic_at: Option<u32>) -> (Ticker, Arc<AtomicU32>) {
        let turns = Arc::new(AtomicU32::new(0));
        let t = Ticker {
            turns: Arc::clone(&turns),
            last,
            every: Duration::from_millis(2),
            fail_at,
            panic_at,
        };
        (t, turns)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_run_to_their_end_and_a_failing_or_panicking_call_stops_alone() {
        let loops = MediaLoops::start(tokio::runtime::Handle::current(), true, true);
        let (ok, ok_turns) = ticker(20, None, None);
        let (bad, bad_turns) = ticker(20, Some(5), None);
        let (boom, boom_turns) = ticker(20, None, Some(3));
        let ok = loops.run(Box::new(ok), tracing::Span::none()).unwrap();
        let bad = loops.run(Box::new(bad), tracing::Span::none()).unwrap();
        let boom = loops.run(Box::new(boom), tracing::Span::none()).unwrap();
        let bad = bad.await.unwrap();
        assert_eq!(bad.unwrap_err().to_string(), "failed at 5");
        assert_eq!(bad_turns.load(Ordering::Relaxed), 5);
        assert!(
            boom.await
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("panicked")
        );
        assert_eq!(boom_turns.load(Ordering::Relaxed), 3);
        ok.await.unwrap().unwrap();
        assert_eq!(ok_turns.load(Ordering::Relaxed), 20);
    }

    /// A call waiting for a future is turned when the future's waker fires,
    /// not only when it is due.
    struct Waiting {
        rx: oneshot::Receiver<u32>,
        got: Arc<AtomicU32>,
    }

    impl Paced for Waiting {
        fn turn(
            &mut self,
            cx: &mut Context<'_>,
            _woken: bool,
            _send: &mut Sender,
        ) -> anyhow::Result<Option<Instant>> {
            match std::pin::Pin::new(&mut self.rx).poll(cx) {
                std::task::Poll::Ready(v) => {
                    self.got.store(v?, Ordering::Relaxed);
                    Ok(None)
                }
                // Due in an hour: only the waker can turn it sooner.
                std::task::Poll::Pending => Ok(Some(Instant::now() + Duration::from_secs(3600))),
            }
        }
    }

    use std::future::Future;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waker_turns_the_call_at_once() {
        let loops = MediaLoops::start(tokio::runtime::Handle::current(), true, true);
        let (tx, rx) = oneshot::channel();
        let got = Arc::new(AtomicU32::new(0));
        let ended = loops
            .run(
                Box::new(Waiting {
                    rx,
                    got: Arc::clone(&got),
                }),
                tracing::Span::none(),
            )
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(7).unwrap();
        tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("woken, not left for an hour")
            .unwrap()
            .unwrap();
        assert_eq!(got.load(Ordering::Relaxed), 7);
    }

    /// Records its thread's scheduling policy, and that of a thread it starts.
    struct Policies(std::sync::mpsc::Sender<(i32, i32)>);

    impl Paced for Policies {
        fn turn(
            &mut self,
            _cx: &mut Context<'_>,
            _woken: bool,
            _send: &mut Sender,
        ) -> anyhow::Result<Option<Instant>> {
            // SAFETY: reads the calling thread's policy.
            let policy = || unsafe { libc::sched_getscheduler(0) };
            let child = std::thread::spawn(policy).join().unwrap();
            self.0.send((policy(), child)).unwrap();
            Ok(None)
        }
    }

    fn policies_of_a_call(realtime: bool) -> (i32, i32) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let loops = MediaLoops::start(rt.handle().clone(), true, realtime);
        let (tx, rx) = std::sync::mpsc::channel();
        let _ended = loops
            .run(Box::new(Policies(tx)), tracing::Span::none())
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn media_threads_run_at_real_time_priority_when_allowed_and_their_children_do_not() {
        // Whether this process may: root or CAP_SYS_NICE (CI runs as root),
        // or RLIMIT_RTPRIO; asked on a thread of its own.
        let allowed = std::thread::spawn(go_realtime).join().unwrap().is_ok();
        let (media, child) = policies_of_a_call(true);
        if allowed {
            assert_eq!(
                media,
                libc::SCHED_RR | libc::SCHED_RESET_ON_FORK,
                "the media thread is real-time, not its children"
            );
        } else {
            assert_eq!(media, libc::SCHED_OTHER, "refused: it goes on as it was");
        }
        assert_eq!(child, libc::SCHED_OTHER, "a thread it starts is ordinary");
        let (media, _) = policies_of_a_call(false);
        assert_eq!(media, libc::SCHED_OTHER, "media_realtime = false");
    }

    #[test]
    fn a_media_thread_that_cannot_keep_up_leaves_real_time_until_it_can() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // One window: awake `awake_ms` of its 100 ms, in one piece.
        let window = |d: &mut Duty, start: u64, awake_ms: u64| {
            let mut change = d.awake(ms(start), ms(start + awake_ms));
            if awake_ms < 100 {
                change = change.or(d.awake(ms(start + 100), ms(start + 100)));
            }
            change
        };
        let mut d = Duty::new(true, t0);
        assert_eq!(window(&mut d, 0, 60), None, "on time: stays real-time");
        assert_eq!(
            window(&mut d, 100, 100),
            Some(false),
            "always awake: leaves"
        );
        assert_eq!(window(&mut d, 200, 100), None, "said once");
        for i in 0..CALM_WINDOWS - 1 {
            let start = 300 + 100 * u64::from(i);
            assert_eq!(window(&mut d, start, 50), None, "calm for {i} windows");
        }
        let start = 300 + 100 * u64::from(CALM_WINDOWS - 1);
        assert_eq!(window(&mut d, start, 50), Some(true), "calm long enough");
        // A busy window in the calm run starts it again.
        let mut d = Duty::new(true, t0);
        assert_eq!(window(&mut d, 0, 100), Some(false));
        for i in 0..CALM_WINDOWS - 1 {
            assert_eq!(window(&mut d, 100 + 100 * u64::from(i), 50), None);
        }
        let at = 100 + 100 * u64::from(CALM_WINDOWS - 1);
        assert_eq!(window(&mut d, at, 80), None, "not calm: the count restarts");
        assert_eq!(window(&mut d, at + 100, 50), None);
        // A thread refused real-time never asks.
        let mut d = Duty::new(false, t0);
        assert_eq!(window(&mut d, 0, 100), None);
        for i in 1..20 {
            assert_eq!(window(&mut d, 100 * i, 10), None);
        }
    }

    #[test]
    fn wake_ups_are_rounded_up_to_the_grid() {
        let epoch = Instant::now();
        assert_eq!(on_grid(epoch, epoch), epoch);
        assert_eq!(
            on_grid(epoch + Duration::from_micros(1), epoch),
            epoch + GRID
        );
        assert_eq!(
            on_grid(epoch + Duration::from_micros(500), epoch),
            epoch + GRID
        );
        assert_eq!(
            on_grid(epoch + Duration::from_micros(501), epoch),
            epoch + 2 * GRID
        );
    }
}
