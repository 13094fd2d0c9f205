//! The systemd unit in `deploy/systemd/` lets kuma make the system calls it
//! makes. Its `SystemCallFilter` kills the service with SIGSYS on any other
//! (unless `SystemCallErrorNumber` says otherwise), and a call taken away by
//! a group it denies is easy to miss: `~@resources` once took away the
//! store's `setpriority`, which would have killed kuma at its first database
//! write. The groups are expanded by `systemd-analyze syscall-filter` (this
//! machine's systemd), and the lines combined as systemd.exec(5) says
//! ([`allowed_by_unit`]).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

const UNIT: &str = include_str!("../deploy/systemd/kuma.service");

/// System calls kuma makes beyond what any Rust program makes, each with
/// where: `io_uring_*` the media threads' sender, `recvmmsg` the RTP reads,
/// `setpriority` the store's writer thread, `sched_setscheduler` the media
/// threads' real-time priority.
const KUMA_CALLS: &[&str] = &[
    "io_uring_setup",
    "io_uring_enter",
    "recvmmsg",
    "sendto",
    "setpriority",
    "getpriority",
    "sched_setscheduler",
    "sched_getscheduler",
    "epoll_wait",
    "futex",
    "fdatasync",
    "pwrite64",
];

/// The lines `key=value` of the unit, in order, comments left out.
fn values(key: &str) -> Vec<&'static str> {
    UNIT.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

/// `systemd-analyze syscall-filter`: every group and its members (nested
/// groups named as `@name`).
fn groups() -> Option<std::collections::HashMap<String, Vec<String>>> {
    let out = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .arg("--no-pager")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut groups = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') && t.starts_with('@') {
            current = Some(t.to_string());
            groups.insert(t.to_string(), Vec::new());
        } else if let Some(g) = &current {
            groups.get_mut(g).unwrap().push(t.to_string());
        }
    }
    Some(groups)
}

fn expand(
    name: &str,
    groups: &std::collections::HashMap<String, Vec<String>>,
    out: &mut BTreeSet<String>,
) {
    if let Some(members) = groups.get(name) {
        for m in members {
            expand(m, groups, out);
        }
    } else {
        assert!(!name.starts_with('@'), "unknown group {name}");
        out.insert(name.to_string());
    }
}

/// The system calls the unit's `SystemCallFilter` lines allow, combined as
/// systemd.exec(5) says: the first line's kind (an allow list here) sets the
/// default, and an allow list always holds `@default`; later allow lines add
/// to the set, later `~` lines take away. `None` (after
/// [`common::peer_missing`]) without `systemd-analyze`.
fn allowed_by_unit() -> Option<BTreeSet<String>> {
    let Some(groups) = groups() else {
        common::peer_missing("systemd-analyze (Debian's systemd)");
        return None;
    };
    let lines = values("SystemCallFilter");
    assert!(
        lines.first().is_some_and(|l| !l.starts_with('~')),
        "the first SystemCallFilter line is an allow list: {lines:?}"
    );
    let mut allowed = BTreeSet::new();
    expand("@default", &groups, &mut allowed);
    for line in &lines {
        let (deny, list) = match line.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, *line),
        };
        let mut set = BTreeSet::new();
        for name in list.split_whitespace() {
            expand(name, &groups, &mut set);
        }
        if deny {
            allowed.retain(|c| !set.contains(c));
        } else {
            allowed.extend(set);
        }
    }
    Some(allowed)
}

#[test]
fn the_systemd_unit_lets_kuma_make_its_system_calls_and_ask_for_its_priority() {
    let Some(allowed) = allowed_by_unit() else {
        return;
    };
    let refused: Vec<_> = KUMA_CALLS
        .iter()
        .filter(|c| !allowed.contains(**c))
        .collect();
    assert!(refused.is_empty(), "the unit refuses {refused:?}");
    // Anything else it refuses fails with an error kuma handles, not SIGSYS.
    assert_eq!(values("SystemCallErrorNumber"), ["EPERM"]);
    // The media threads may take their real-time priority.
    assert_eq!(values("RestrictRealtime"), ["no"]);
    let rtprio: i32 = values("LimitRTPRIO")
        .first()
        .expect("LimitRTPRIO")
        .parse()
        .unwrap();
    assert!(
        rtprio >= kuma::serve::REALTIME_PRIORITY,
        "LimitRTPRIO {rtprio}"
    );
}
