//! Refusing new calls while the media plane falls behind.
//!
//! Every call's audio leaves on a 20 ms schedule; when the machine cannot keep
//! it (more calls than its cores can pace, another program taking the CPU, a
//! virtual machine's host stealing it), every call's packets go out late, then
//! in bursts, then not at all. Taking more calls then makes it worse for all of
//! them: on a loaded two-core machine, 1,000 callers at once on one core lost
//! 1,544 of 2,000 calls and every caller heard gaps of over 1.5 s (issue 16).
//! Refused with 503 instead, a new call goes to another node (Kamailio's
//! dispatcher fails over on 503, and stops sending to a node whose OPTIONS get
//! 503 until they get 200 again: `deploy/kamailio/`), or the gateway tells the
//! caller the line is busy; the calls in progress keep their audio. FreeSWITCH
//! (`min-idle-cpu`) and Asterisk (`maxload`) guard the same way, from the CPU
//! load; kuma looks at what callers hear instead: its own packets' lateness.
//!
//! Calls count their packet slots and the ones they missed (a packet sent
//! [`MISSED_AFTER`] after its time, or a slot the pacer skipped because it was
//! too late to send) into [`MediaLoad`]. The SIP shell looks at
//! those totals every [`TICK`] through [`MediaGuard`], a plain struct with no
//! clock of its own: the node is busy from the tick at which
//! [`BUSY_SHARE_PERMILLE`] or more of the last second's slots were missed (and there
//! were [`MIN_SLOTS`] slots: a handful of calls cannot overload a machine, and
//! one late packet of two calls is not a trend), and it is calm again once the
//! last [`CALM_TICKS`] ticks together missed under [`CALM_SHARE_PERMILLE`] of
//! theirs (or had too few slots to tell: the calls ended). While busy, new
//! INVITEs and OPTIONS get 503 (`crate::sip::endpoint::Endpoint::set_busy`) and
//! the dialer places no call-back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the shell looks at the totals.
pub const TICK: Duration = Duration::from_millis(250);
/// A packet sent this long after its time is a missed slot: two frames, more
/// than a small jitter buffer (a gateway's, a phone's) holds. The pacer sends
/// packets up to 60 ms late in a burst, and skips the slots of a longer delay
/// (`crate::rtp::pacer::MAX_CATCH_UP`): those are missed slots too.
pub const MISSED_AFTER: Duration = Duration::from_millis(40);
/// Ticks in the window that can make the node busy (1 s).
pub const BUSY_TICKS: usize = 4;
/// Missed slots, per thousand, that make the node busy by default (5 %: one
/// frame in twenty, in every call, which callers hear; `media_guard` in
/// `kuma.toml` changes it, or turns the guard off). Not less: on a single node a
/// refused caller hears a busy line, which is worse than a few late frames
/// (keys still arrive). At 1,000 calls on one core of the session-11
/// machine, where kuma runs at its edge but every call completes, 2 % refused
/// 38 % of the calls for a p99 gap of 62 ms instead of 68 to 118 ms. A
/// machine that cannot keep up at all falls further behind with every call
/// (gaps of seconds, calls lost) and passes 5 % within the second.
pub const BUSY_SHARE_PERMILLE: u64 = 50;
/// Slots a window needs before its share counts: 250 a second is five calls.
pub const MIN_SLOTS: u64 = 250;
/// Ticks in the window that make a busy node calm again (2 s).
pub const CALM_TICKS: usize = 8;
/// Missed slots, per thousand, under which a busy node is calm again (1 %):
/// a fifth of [`BUSY_SHARE_PERMILLE`], so that a node does not go from busy
/// to calm and back with every small change of its load.
pub const CALM_SHARE_PERMILLE: u64 = 10;

/// The shares that make a node busy and calm again (`media_guard = "5%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Missed slots, per thousand, that make the node busy.
    pub busy_permille: u64,
    /// Missed slots, per thousand, under which it is calm again.
    pub calm_permille: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            busy_permille: BUSY_SHARE_PERMILLE,
            calm_permille: CALM_SHARE_PERMILLE,
        }
    }
}

impl Thresholds {
    /// The lowest and highest busy share a setting may give, per thousand: under
    /// 1 %, a node refuses calls for the jitter of a busy machine; over 50 %,
    /// every other frame is lost before it acts, and `off` says so plainly.
    pub const RANGE: std::ops::RangeInclusive<u64> = 10..=500;

    /// The setting's value: `off` (never busy: a single station that prefers
    /// late frames to a busy line), or the busy share as a percentage (`5%`,
    /// `12.5%`); calm is then under a fifth of it. `None` for off.
    pub fn parse(value: &str) -> Result<Option<Thresholds>, String> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || {
            format!(
                "media_guard: `{value}` is neither `off` nor a share of late packets from {}% to {}% (like `5%`)",
                Self::RANGE.start() / 10,
                Self::RANGE.end() / 10
            )
        };
        let number = v.strip_suffix('%').ok_or_else(bad)?.trim();
        let (whole, tenth) = match number.split_once('.') {
            Some((w, t)) if t.len() == 1 => (w, t),
            Some(_) => return Err(bad()),
            None => (number, "0"),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || !digits(tenth) {
            return Err(bad());
        }
        let busy_permille = whole
            .parse::<u64>()
            .ok()
            .and_then(|w| w.checked_mul(10))
            .and_then(|w| tenth.parse::<u64>().ok().and_then(|t| w.checked_add(t)))
            .filter(|p| Self::RANGE.contains(p))
            .ok_or_else(bad)?;
        Ok(Some(Thresholds {
            busy_permille,
            calm_permille: (busy_permille / 5).max(1),
        }))
    }
}

/// What the calls of this process add up: packet slots, and those missed.
#[derive(Debug, Default)]
pub struct MediaLoad {
    slots: AtomicU64,
    missed: AtomicU64,
    busy: AtomicBool,
}

impl MediaLoad {
    /// Adds a call's slots and missed slots since it last added (calls add
    /// every few packets, not every packet: one shared counter per packet
    /// would cost more than the packet's bookkeeping).
    pub fn add(&self, slots: u64, missed: u64) {
        self.slots.fetch_add(slots, Ordering::Relaxed);
        self.missed.fetch_add(missed, Ordering::Relaxed);
    }

    /// Slots and missed slots so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.slots.load(Ordering::Relaxed),
            self.missed.load(Ordering::Relaxed),
        )
    }

    /// Whether new calls are refused now (set by the SIP shell's guard).
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }
}

/// A change of the guard's verdict, with the share that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Busy from now on (`true`), or calm again.
    pub busy: bool,
    /// Slots missed, per thousand, in the window that decided.
    pub missed_permille: u64,
    /// Slots in that window.
    pub slots: u64,
}

/// Decides, tick by tick, whether the node is busy; see the module doc.
#[derive(Debug, Default)]
pub struct MediaGuard {
    thresholds: Thresholds,
    /// Totals at the last tick (the process's start: none).
    last: (u64, u64),
    /// Slots and missed slots of each of the last [`CALM_TICKS`] ticks, newest last.
    ticks: VecDeque<(u64, u64)>,
    busy: bool,
}

impl MediaGuard {
    pub fn new(thresholds: Thresholds) -> MediaGuard {
        MediaGuard {
            thresholds,
            ..MediaGuard::default()
        }
    }

    #[cfg(test)]
    fn is_busy(&self) -> bool {
        self.busy
    }

    /// One tick, with the totals of [`MediaLoad::totals`] now; the change of
    /// verdict, if any.
    pub fn tick(&mut self, (slots, missed): (u64, u64)) -> Option<Change> {
        // Totals only grow; a smaller one (never seen) counts as nothing new.
        let (last_slots, last_missed) = self.last;
        self.last = (slots, missed);
        let new = (
            slots.saturating_sub(last_slots),
            missed.saturating_sub(last_missed),
        );
        if self.ticks.len() == CALM_TICKS {
            self.ticks.pop_front();
        }
        self.ticks.push_back(new);
        let window = |n: usize| {
            self.ticks
                .iter()
                .rev()
                .take(n)
                .fold((0u64, 0u64), |(s, m), &(ts, tm)| {
                    (s.saturating_add(ts), m.saturating_add(tm))
                })
        };
        let permille = |(s, m): (u64, u64)| m.saturating_mul(1000).checked_div(s).unwrap_or(0);
        if self.busy {
            // A whole calm window after the ticks that made it busy, on time
            // or with too few slots to tell (the calls ended): a window cut
            // short would let a machine stopped for most of each tick (few
            // slots at each) look calm.
            let w = window(CALM_TICKS);
            let full = self.ticks.len() == CALM_TICKS;
            let few = w.0 < MIN_SLOTS.saturating_mul(CALM_TICKS as u64 / BUSY_TICKS as u64);
            if full && (few || permille(w) < self.thresholds.calm_permille) {
                self.busy = false;
                return Some(Change {
                    busy: false,
                    missed_permille: permille(w),
                    slots: w.0,
                });
            }
        } else {
            let w = window(BUSY_TICKS);
            if w.0 >= MIN_SLOTS && permille(w) >= self.thresholds.busy_permille {
                self.busy = true;
                // The calm window starts now: the ticks that made it busy must
                // not also keep it busy for longer than they last.
                self.ticks.clear();
                return Some(Change {
                    busy: true,
                    missed_permille: permille(w),
                    slots: w.0,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `ticks` ticks at `slots` slots and `missed` missed slots each;
    /// the changes seen.
    fn run(
        guard: &mut MediaGuard,
        totals: &mut (u64, u64),
        ticks: usize,
        slots: u64,
        missed: u64,
    ) -> Vec<Change> {
        (0..ticks)
            .filter_map(|_| {
                totals.0 += slots;
                totals.1 += missed;
                guard.tick(*totals)
            })
            .collect()
    }

    #[test]
    fn a_steady_load_on_time_is_never_busy() {
        let mut g = MediaGuard::new(Thresholds::default());
        let mut t = (0, 0);
        // 1,000 calls (12,500 slots a tick), 4.5 % of their slots missed.
        assert!(run(&mut g, &mut t, 400, 12_500, 562).is_empty());
        assert!(!g.is_busy());
    }

    #[test]
    fn missed_slots_make_the_node_busy_within_a_second_and_calm_two_seconds_after() {
        let mut g = MediaGuard::new(Thresholds::default());
        let mut t = (0, 0);
        assert!(run(&mut g, &mut t, 8, 5_000, 0).is_empty());
        // 25 % missed: busy at the first tick whose window holds 5 %.
        let changes = run(&mut g, &mut t, 1, 5_000, 1_250);
        assert_eq!(
            changes,
            [Change {
                busy: true,
                missed_permille: 62,
                slots: 20_000
            }]
        );
        assert!(g.is_busy());
        // Still missing 2 %: over the calm share, stays busy.
        assert!(run(&mut g, &mut t, 20, 5_000, 100).is_empty());
        // On time again: calm once the calm window holds under 1 % (400
        // missed slots in 40,000: after five ticks on time), not at the first.
        let calm_after = (1..=CALM_TICKS)
            .find(|_| !run(&mut g, &mut t, 1, 5_000, 0).is_empty())
            .unwrap_or(usize::MAX);
        assert_eq!(calm_after, 5);
        assert!(!g.is_busy());
    }

    #[test]
    fn a_few_calls_cannot_make_it_busy() {
        let mut g = MediaGuard::new(Thresholds::default());
        let mut t = (0, 0);
        // Four calls (50 slots a tick), every other packet a frame late.
        assert!(run(&mut g, &mut t, 100, 50, 25).is_empty());
    }

    #[test]
    fn a_busy_node_whose_calls_ended_is_calm_after_the_calm_window() {
        let mut g = MediaGuard::new(Thresholds::default());
        let mut t = (0, 0);
        assert_eq!(run(&mut g, &mut t, 1, 5_000, 1_000).len(), 1);
        // The calls ended with the late tick: nothing to pace, nothing to guard.
        assert!(run(&mut g, &mut t, CALM_TICKS - 1, 0, 0).is_empty());
        assert_eq!(run(&mut g, &mut t, 1, 0, 0).len(), 1);
        assert!(!g.is_busy());
    }

    #[test]
    fn a_machine_stopped_for_most_of_each_tick_stays_busy() {
        let mut g = MediaGuard::new(Thresholds::default());
        let mut t = (0, 0);
        // Twelve calls (150 slots a tick), stopped 150 ms of every 200: few
        // slots a tick, most of them skipped. Busy, and busy it stays.
        assert_eq!(run(&mut g, &mut t, 4, 150, 100).len(), 1);
        assert!(run(&mut g, &mut t, 40, 150, 100).is_empty());
        assert!(g.is_busy());
    }

    #[test]
    fn a_busy_spell_lasts_no_longer_than_the_lateness_plus_the_calm_window() {
        let mut g = MediaGuard::new(Thresholds::default());
        let mut t = (0, 0);
        // Late for one tick only (a stopped process): busy, then calm after
        // CALM_TICKS ticks on time, not held by the late tick's memory.
        assert_eq!(run(&mut g, &mut t, 1, 5_000, 2_000).len(), 1);
        let calm_after = (1..=CALM_TICKS * 2)
            .find(|_| !run(&mut g, &mut t, 1, 5_000, 0).is_empty())
            .unwrap_or(usize::MAX);
        assert_eq!(calm_after, CALM_TICKS);
    }

    #[test]
    fn totals_going_backwards_count_as_nothing_new() {
        let mut g = MediaGuard::new(Thresholds::default());
        assert_eq!(g.tick((100_000, 0)), None);
        assert_eq!(g.tick((10, 10)), None);
        assert!(!g.is_busy());
    }

    #[test]
    fn a_higher_setting_lets_more_lateness_through_and_calms_under_a_fifth_of_it() {
        let t10 = Thresholds::parse("10%").ok().flatten();
        assert_eq!(
            t10,
            Some(Thresholds {
                busy_permille: 100,
                calm_permille: 20
            })
        );
        let mut g = MediaGuard::new(t10.unwrap_or_default());
        let mut t = (0, 0);
        // 8 % missed: busy at the default 5 %, not at 10 %.
        assert!(run(&mut g, &mut t, 20, 5_000, 400).is_empty());
        assert_eq!(run(&mut g, &mut t, 4, 5_000, 600).len(), 1);
        // 1.5 % is calm at 10 % (under 2 %), where the default would stay busy.
        let calm_after = (1..=CALM_TICKS * 2)
            .find(|_| !run(&mut g, &mut t, 1, 5_000, 75).is_empty())
            .unwrap_or(usize::MAX);
        assert_eq!(calm_after, CALM_TICKS);
    }

    #[test]
    fn the_setting_reads_off_or_a_percentage_in_range() {
        assert_eq!(Thresholds::parse("off"), Ok(None));
        assert_eq!(Thresholds::parse(" OFF "), Ok(None));
        let busy = |s: &str| Thresholds::parse(s).map(|t| t.map(|t| t.busy_permille));
        assert_eq!(busy("5%"), Ok(Some(50)));
        assert_eq!(busy("12.5%"), Ok(Some(125)));
        assert_eq!(busy("1%"), Ok(Some(10)));
        assert_eq!(busy("50 %"), Ok(Some(500)));
        assert_eq!(
            Thresholds::parse("1%").map(|t| t.map(|t| t.calm_permille)),
            Ok(Some(2))
        );
        for bad in [
            "",
            "5",
            "0%",
            "0.5%",
            "51%",
            "-5%",
            "5.25%",
            "5.%",
            ".5%",
            "%",
            "1e1%",
            "99999999999999999999%",
            "cinq%",
            "on",
        ] {
            let e = Thresholds::parse(bad).err().unwrap_or_default();
            assert!(e.starts_with("media_guard: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn shared_totals_add_up() {
        let load = MediaLoad::default();
        load.add(100, 3);
        load.add(50, 1);
        assert_eq!(load.totals(), (150, 4));
        assert!(!load.is_busy());
        load.set_busy(true);
        assert!(load.is_busy());
    }
}
