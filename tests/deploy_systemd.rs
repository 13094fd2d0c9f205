//! The systemd unit in `deploy/systemd/` lets kuma make the system calls it
//! makes. Its `SystemCallFilter` kills the service with SIGSYS on any other
//! (unless `SystemCallErrorNumber` says otherwise), and a call taken away by
//! a group it denies is easy to miss: `~@resources` once took away the
//! store's `setpriority`, which would have killed kuma at its first database
//! write. The groups are expanded by `systemd-analyze syscall-filter` (this
//! machine's systemd), and the lines combined as systemd.exec(5) says
//! ([`allowed_by_unit`]). The calls checked are those a real `kuma serve`
//! makes under strace while it does a station's work, and a few of paths
//! that work does not take.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use common::{Server, eventually};

const UNIT: &str = include_str!("../deploy/systemd/kuma.service");

/// System calls kuma makes on paths the station of
/// [`the_systemd_unit_allows_every_system_call_kuma_serve_makes_at_a_station`]
/// does not take (its trace has the others): `sendmmsg` is how glibc's
/// resolver sends its A and AAAA queries together when kuma looks up a host
/// name (a trunk's, `src/serve/dialer.rs`; a provider's recording's,
/// `src/serve/fetch_policy.rs`), while the station's peers are all addresses.
const UNTRACED_CALLS: &[&str] = &["sendmmsg"];

/// System calls kuma makes only when it runs as root, as the trace's may
/// (`./test` run as root, as CI does): the unit runs it as a user of its own
/// (`DynamicUser`), so they never reach its filter. `fchown`: SQLite gives a
/// new rollback journal or WAL its database's owner when its process is root
/// (sqlite3.c, `robustFchown`: `osGeteuid() ? 0 : osFchown(..)`), and ignores
/// a failure.
const ROOT_ONLY: &[&str] = &["fchown"];

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
    let refused: Vec<_> = UNTRACED_CALLS
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

/// Every system call a real `kuma serve` makes while it does a station's work
/// is one the unit allows: a list written by hand misses some. kuma runs under
/// `strace -f` (every thread, and any process it starts) on SQLite in a
/// temporary folder, as the unit runs it on `/var/lib/kuma`; it answers
/// `/healthz`, a whole sipp call (RTP audio out, RFC 4733 keys in, the answers
/// written to the store), `/metrics`, reloads its campaigns and prepares their
/// prompts on SIGHUP, and drains and exits on SIGTERM. strace slows every
/// system call, hence the long waits (the test takes about 25 s).
#[test]
fn the_systemd_unit_allows_every_system_call_kuma_serve_makes_at_a_station() {
    let Some(allowed) = allowed_by_unit() else {
        return;
    };
    let have_strace = Command::new("strace").arg("-V").output().is_ok()
        || common::peer_missing("strace (Debian's strace)");
    if !have_strace || !common::have_sipp() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("strace.txt");
    let strace = ["strace", "-f", "-qq", "-o"].map(OsStr::new);
    let wrapper: Vec<&OsStr> = strace.into_iter().chain([trace.as_os_str()]).collect();
    let mut k = Server::start_under(&wrapper, &common::open_poll_campaigns(), &[], &[]);
    let mut kuma = Tracee::of(&k);

    let health = common::http(k.http, "GET", "/healthz", &[], None);
    assert_eq!(
        health.status,
        200,
        "{}",
        String::from_utf8_lossy(&health.body)
    );
    let out = k.sipp("poll_rfc4733.xml", "2000", &[]);
    assert!(
        out.status.success(),
        "the sipp call under strace did not complete: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The call's answers and its end reach the store after sipp's last step.
    let completed = "kuma_calls_total{outcome=\"completed\"} 1";
    let metrics = eventually(Duration::from_secs(60), || {
        let reply = common::http(k.http, "GET", "/metrics", &[], None);
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        (reply.status == 200 && body.contains(completed))
            .then_some(())
            .ok_or(body)
    });
    assert!(
        metrics.is_ok(),
        "no completed call in /metrics: {metrics:?}"
    );

    // New audio, then a reload: the reload prepares the prompts again, so the
    // audio cache's writes (`src/audio/cache.rs`) are traced too.
    std::fs::remove_dir_all(k.data.join("audio-cache")).unwrap();
    kuma.signal("-HUP");
    let log = || std::fs::read_to_string(&k.log).unwrap_or_default();
    let reloaded = eventually(Duration::from_secs(60), || {
        log().contains("campaigns reloaded").then_some(()).ok_or(())
    });
    assert!(reloaded.is_ok(), "not reloaded after SIGHUP:\n{}", log());

    kuma.signal("-TERM");
    // strace exits when kuma has, with kuma's status, its trace written.
    let exited = eventually(Duration::from_secs(120), || {
        k.child.try_wait().unwrap().ok_or(())
    });
    let Ok(status) = exited else {
        panic!("kuma did not stop after SIGTERM:\n{}", log())
    };
    kuma.exited();
    assert!(status.success(), "{status:?}\n{}", log());
    assert!(log().contains("all calls ended; stopped"), "{}", log());

    let trace = std::fs::read_to_string(&trace).unwrap();
    let calls = system_calls(&trace);
    let names: Vec<_> = calls.keys().collect();
    eprintln!("kuma serve made {} system calls: {names:?}", names.len());
    // The trace saw the parts of kuma the unit's comments are about: a trace
    // that missed them would prove little.
    for call in [
        "io_uring_setup",
        "recvmmsg",
        "setpriority",
        "sched_setscheduler",
    ] {
        assert!(calls.contains_key(call), "the trace has no {call}");
    }
    // The temporary folder is the test's user's: is that root?
    let as_root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
    let refused: BTreeMap<_, _> = calls
        .into_iter()
        .filter(|(call, _)| !allowed.contains(*call))
        .filter(|(call, _)| !(as_root && ROOT_ONLY.contains(call)))
        .collect();
    assert!(
        refused.is_empty(),
        "the unit refuses {:?}, which kuma serve made; the first of each:\n{}",
        refused.keys().collect::<Vec<_>>(),
        refused.values().copied().collect::<Vec<_>>().join("\n")
    );
}

/// The system calls in `strace -f` output, each with the first line that made
/// it. A line is `PID name(args) = result` (the number padded with spaces),
/// or `PID name(args <unfinished ...>` when another thread's call came in
/// between, finished later by `PID <... name resumed>) = result` (named
/// already); signals (`--- SIGHUP`) and exits (`+++`) are not calls.
fn system_calls(trace: &str) -> BTreeMap<&str, &str> {
    let mut calls = BTreeMap::new();
    for line in trace.lines() {
        let Some((_pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let name = rest
            .trim_start()
            .split_once('(')
            .map_or("", |(name, _)| name);
        let is_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if is_name {
            calls.entry(name).or_insert(line);
        }
    }
    calls
}

/// The `kuma serve` strace runs (strace's one child, there once kuma has
/// printed its addresses), killed if the test stops before it has exited:
/// strace killed (`Server`'s drop) leaves it running.
struct Tracee {
    pid: String,
    running: bool,
}

impl Tracee {
    fn of(server: &Server) -> Tracee {
        let strace = server.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children")).unwrap();
        let pid = children.split_whitespace().next();
        let pid = pid.unwrap_or_else(|| panic!("strace runs no kuma: {children:?}"));
        Tracee {
            pid: pid.to_string(),
            running: true,
        }
    }

    fn signal(&self, signal: &str) {
        let kill = Command::new("kill").args([signal, &self.pid]).status();
        assert!(
            kill.is_ok_and(|s| s.success()),
            "kill {signal} {}",
            self.pid
        );
    }

    /// It has exited (strace, which waits for it, has): its number may be
    /// another process's now.
    fn exited(&mut self) {
        self.running = false;
    }
}

impl Drop for Tracee {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("kill").args(["-KILL", &self.pid]).status();
        }
    }
}
