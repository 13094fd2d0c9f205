//! Where a call's 20 ms packet slots fall: on a grid shared by every call of the
//! process, so that one wake-up of the worker thread sends the packets of many
//! calls.
//!
//! Each call's pacer ticks every 20 ms from its own start (`crate::rtp::pacer`).
//! Started at arbitrary instants, 500 calls spread their slots over the whole
//! 20 ms, and the runtime sleeps and wakes once per millisecond (its timer's
//! resolution) to serve 25 of them each time. Starting every pacer on a multiple
//! of [`GRID`] from one process-wide origin puts the slots of all calls on
//! 20 / [`GRID`] instants: the worker wakes ten times per 20 ms and sends a burst
//! each time, and the peer (a gateway's socket, or sipp's on loopback) is woken
//! once per burst rather than once per packet. Each stream still leaves exactly
//! 20 ms apart: only its phase is chosen, by at most [`GRID`] of delay before its
//! first packet. The grid is coarse enough to batch and fine enough that a burst
//! stays short: the order of the calls within a burst varies from one to the
//! next, so a burst's length is the jitter it adds to a stream (50 calls, about
//! 0.7 ms, at 500 calls a core; 5 ms bursts of 125 calls put many more packets
//! past the pacer's 2 ms lateness bound in issue 16's load benchmark).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The spacing of the instants a call's packet slots may fall on.
pub const GRID: Duration = Duration::from_millis(2);

/// The first instant at or after `now` on the process's slot grid: where a new
/// call's pacer starts.
pub fn slot_start(now: Instant) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    on_grid(*ORIGIN.get_or_init(|| now), now)
}

/// The first instant at or after `now` that is a whole number of [`GRID`]s after
/// `origin` (`now` itself when it is before `origin`).
fn on_grid(origin: Instant, now: Instant) -> Instant {
    let grid = GRID.as_nanos();
    let since = now.saturating_duration_since(origin).as_nanos();
    let wait = (grid - since % grid) % grid;
    // Under GRID, so it fits in a u64 of nanoseconds.
    now + Duration::from_nanos(u64::try_from(wait).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_are_on_the_grid_and_never_early() {
        let origin = Instant::now();
        for micros in [0u64, 1, 999, 1_999, 2_000, 2_001, 12_345, 1_000_000_007] {
            let now = origin + Duration::from_micros(micros);
            let start = on_grid(origin, now);
            assert!(start >= now);
            assert!(start - now < GRID, "{micros} µs: waits {:?}", start - now);
            assert_eq!(
                (start - origin).as_nanos() % GRID.as_nanos(),
                0,
                "{micros} µs"
            );
        }
    }

    #[test]
    fn before_the_origin_starts_at_once() {
        let origin = Instant::now() + Duration::from_secs(1);
        let now = Instant::now();
        assert_eq!(on_grid(origin, now), now);
    }

    #[test]
    fn two_calls_share_their_slot_instants() {
        let origin = Instant::now();
        let a = on_grid(origin, origin + Duration::from_micros(2_200));
        let b = on_grid(origin, origin + Duration::from_micros(3_900));
        assert_eq!(a, b);
    }
}
