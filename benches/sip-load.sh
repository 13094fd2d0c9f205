#!/usr/bin/env bash
# Load benchmark of `kuma serve` with sipp on loopback (issue 3).
#
# Callers that listen, send speech all along (as a phone does), press keys as RFC
# 4733 events, answer the whole poll of the example campaign and wait for kuma's
# goodbye. For each level of concurrent calls it reports: calls set up per second,
# calls completed, calls refused at once because kuma's audio was going out late
# (503 from its media guard, from kuma's /metrics), other failed calls, the share
# of RTP packets kuma sent more than 2 ms after their schedule (from its /metrics), and kuma's own CPU time per call-minute (from
# /proc/PID/stat, so sipp's CPU is not counted). After each level it checks that
# every call sipp took to its goodbye is stored as completed in `kuma results`
# (a line on standard error, starting `!!` when some are missing), and what kuma
# holds once the level's calls have ended (resident memory, its peak, threads,
# open files): the same level repeated (`sip-load.sh 200 200 200 …`) is a soak.
#
#   benches/sip-load.sh [CONCURRENT_CALLS ...]     (default: 50 100 200)
#
# With tcpdump installed (and the right to capture on lo), it also captures 5 s
# of kuma's RTP once every call is up and reports the gaps between consecutive
# packets of each stream (p50, p99, worst; a perfect pacer gives 20 ms), from
# the capture's timestamps (benches/rtp_gaps.py); KUMA_LOAD_GAPS=0 skips it.
#
# kuma's CPU is shared with sipp's on a small machine: KUMA_LOAD_KUMA_CPUS and
# KUMA_LOAD_SIPP_CPUS (taskset lists, e.g. 0 and 1) pin each to its own cores.
# KUMA_LOAD_BIN runs that kuma binary instead of building this tree (to compare a
# saved "before" build with the current one, back to back). The last column is
# the machine's load average at the end of the level: the figures of a shared
# machine are only comparable beside it.
#
# On one machine the kernel's delivery of kuma's packets into sipp's socket runs
# inside kuma's sendto (loopback delivers in the sender's context) and is charged
# to kuma, which a real network card would not do. KUMA_LOAD_NETNS=1 (needs root
# and `ip netns`) runs sipp in a network namespace of its own, joined to kuma by
# a veth pair, with receive packet steering (RPS) sending each side's receive
# processing to that side's cores (KUMA_LOAD_KUMA_CPUS and KUMA_LOAD_SIPP_CPUS
# must then be set): the delivery into sipp's socket runs on sipp's core, and
# the delivery of sipp's packets to kuma's sockets runs in softirq on kuma's
# core, outside kuma's process. Both are the kuma host's cost, so the mode adds
# two columns: the softirq time of kuma's cores (from /proc/stat) per
# call-minute, and all their busy time per call-minute (kuma and the kernel's
# work for it, counted once: the time they were not idle; see benches/netns.sh,
# and why the softirq column is a sample that can miss or double-count).
#
# KUMA_LOAD_KUMA_SHARE=50 (as root) gives kuma that percentage of its cores'
# time, through a CPU quota of its own cgroup (10 ms period): kuma overloaded
# at half the calls, with sipp's core not overloaded as well. At 2,000 calls on
# a 2-core machine sipp's one core is saturated too (its SIP socket drops
# datagrams by the ten thousand) and the calls it fails are partly its own;
# 1,000 calls with half of kuma's core overload kuma alone.
#
# KUMA_LOAD_POSTGRES_URL (an admin URL, e.g. from .ci/start-postgres) runs kuma
# on a database of its own on that PostgreSQL server instead of SQLite (the
# server's CPU is not in kuma's column).
#
# Needs sipp (Debian's sip-tester). Every port is chosen at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/netns.sh
levels=("$@")
((${#levels[@]})) || levels=(50 100 200)
command -v sipp >/dev/null || { echo "needs sipp: apt-get install sip-tester" >&2; exit 1; }

kuma=${KUMA_LOAD_BIN:-}
if [[ -z "$kuma" ]]; then
    cargo build --release --quiet
    kuma=target/release/kuma
fi
pin() { # pin CPUS COMMAND...: becomes COMMAND (same pid), on those cores when CPUS is set
    local cpus=$1
    shift
    if [[ -n "$cpus" ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
work=$(mktemp -d -t kuma-load.XXXXXX)
netns=${KUMA_LOAD_NETNS:-0}
ns=""
cgroup=""
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -n "$cgroup" ]] && rmdir "$cgroup" 2>/dev/null || true
    netns_down
    [[ -n "$pg_db" ]] && psql "$KUMA_LOAD_POSTGRES_URL" -qAtc "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
pid=""
pg_db=""
trap cleanup EXIT
kuma_ip=127.0.0.1 sipp_ip=127.0.0.1 dev=lo
in_ns=()   # prefix of a command run on sipp's side
if [[ "$netns" == 1 ]]; then
    [[ -n "${KUMA_LOAD_KUMA_CPUS:-}" && -n "${KUMA_LOAD_SIPP_CPUS:-}" ]] || {
        echo "KUMA_LOAD_NETNS=1 needs KUMA_LOAD_KUMA_CPUS and KUMA_LOAD_SIPP_CPUS" >&2
        exit 1
    }
    netns_up "$KUMA_LOAD_KUMA_CPUS" "$KUMA_LOAD_SIPP_CPUS"
fi
# The example campaign with its poll open whatever the day (its window closes
# between Thursday 19:00 and Saturday 08:30, and Monday 08:30 and Tuesday 19:00,
# when the callers would hear "poll closed" instead of the questions).
mkdir -p "$work/campaigns"
sed -e '/^poll_window = /d' -e "s|^audio = \"\.\./audio/|audio = \"$PWD/audio/|" \
    campaigns/stop-trafficking-mali.toml >"$work/campaigns/stop-trafficking-mali.toml"
database="sqlite://$work/data/kuma.db"
if [[ -n "${KUMA_LOAD_POSTGRES_URL:-}" ]]; then
    # A database of this run's own on that server (an admin URL, as the tests'
    # KUMA_TEST_POSTGRES_URL), dropped at the end.
    command -v psql >/dev/null || { echo "KUMA_LOAD_POSTGRES_URL needs psql" >&2; exit 1; }
    pg_db="kuma_load_$$"
    psql "$KUMA_LOAD_POSTGRES_URL" -qAtc "CREATE DATABASE $pg_db" >/dev/null
    database=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$KUMA_LOAD_POSTGRES_URL" "$pg_db")
fi
common=(--campaigns "$work/campaigns" --data "$work/data" --database "$database")
"$kuma" audio prepare stop-trafficking-mali "${common[@]}" >/dev/null

# The caller's voice: any French prompt, as raw µ-law.
"$kuma" audio export stop-trafficking-mali fr welcome --format wav-ulaw -o "$work/speech.wav" "${common[@]}" >/dev/null
tail -c +59 "$work/speech.wav" >"$work/speech.ulaw"
# KUMA_LOAD_KEY_PAUSE_MS: how long the caller waits after each key but the last
# (default 1200: it barges through every prompt, a call lasts about 16 s). With
# 6000 it hears most of each prompt, as a listener does (calls of about 64 s):
# what a call costs once (SIP, its keys, its rows) is then spread over more
# minutes, and two runs tell it apart from what each minute of audio costs.
key_pause=${KUMA_LOAD_KEY_PAUSE_MS:-1200}
[[ "$key_pause" =~ ^[0-9]+$ ]] && ((key_pause >= 100 && key_pause <= 6000)) || {
    echo "KUMA_LOAD_KEY_PAUSE_MS: a number of milliseconds from 100 to 6000 (the campaign waits 6 s for a key)" >&2
    exit 1
}
sed "s/<pause milliseconds=\"1200\"\/>/<pause milliseconds=\"$key_pause\"\/>/" benches/sipp/load_call.xml >"$work/load_call.xml"
# About how long a call lasts: a second before the first key, 10 pauses, the
# goodbye (16 s by default, as before).
call_secs=$(awk -v p="$key_pause" 'BEGIN { printf "%.1f", 4 + 10 * p / 1000 }')

# sipp is the station's gateway: a trunk, so its calls are not rate-limited;
# --max-calls as high as the RTP range allows (two ports a call).
pin "${KUMA_LOAD_KUMA_CPUS:-}" "$kuma" serve --sip "$kuma_ip:0" --http 127.0.0.1:0 --rtp-ports 20000-59999 --max-calls 20000 --trunks "$sipp_ip" \
    "${common[@]}" >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
for _ in $(seq 1 100); do grep -q "SIP on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
sip=$(grep -o 'udp [0-9.]*:[0-9]*' "$work/serve.out" | cut -d' ' -f2)
if [[ -n "${KUMA_LOAD_KUMA_SHARE:-}" ]]; then
    # The quota is per period over all of kuma's cores: share% of each.
    quota=$((KUMA_LOAD_KUMA_SHARE * 100 * $(cpu_count "${KUMA_LOAD_KUMA_CPUS:-}")))
    if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        cgroup=/sys/fs/cgroup/kuma-load-$$
        mkdir "$cgroup"
        echo "$quota 10000" >"$cgroup/cpu.max"
    else
        cgroup=/sys/fs/cgroup/cpu/kuma-load-$$
        mkdir "$cgroup"
        echo 10000 >"$cgroup/cpu.cfs_period_us"
        echo "$quota" >"$cgroup/cpu.cfs_quota_us"
    fi
    echo "$pid" >"$cgroup/cgroup.procs"
    echo "kuma held to ${KUMA_LOAD_KUMA_SHARE}% of its cores' time" >&2
fi
http=$(grep -o 'http://[0-9.]*:[0-9]*' "$work/serve.out")

free_port() { "${in_ns[@]}" python3 -c 'import socket, sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$sipp_ip"; }
metric() { { curl -s --max-time 10 "$http/metrics" || true; } | awk -v m="$1" '$1==m {print $2}' | head -1; }
# The last value of a named column of sipp's statistics file.
column() { awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i } END { print $c + 0 }' "$1"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

gaps=0
[[ "${KUMA_LOAD_GAPS:-1}" == 1 ]] && command -v tcpdump >/dev/null && gaps=1
printf '%-10s %-10s %-8s %-8s %-8s %-10s %-12s %-16s %-18s %-14s %-26s %s\n' concurrent calls/s ok refused failed 'late>2ms' 'late%' 'cpu-ms/call-min' \
"$( [[ "$netns" == 1 ]] && echo 'softirq-ms/c-min')" "$( [[ "$netns" == 1 ]] && echo 'core-ms/c-min')" "$( ((gaps)) && echo 'RTP gap p50/p99/worst ms')" load1
completed_at_sipp=0
for n in "${levels[@]}"; do
    total=$((n * 2))
    rate=$(awk -v n="$n" -v d="$call_secs" 'BEGIN { printf "%.1f", n / d }')
    # sipp's own -timeout did not always end it: in one overloaded run it still
    # held 14 calls (that kuma had ended) 13 minutes later. A level takes 2 to 4
    # minutes; past 10, sipp is stopped and the level reported as it stands.
    sipp_limit=600
    sent0=$(metric kuma_rtp_packets_sent_total); late0=$(metric kuma_rtp_packets_late_total)
    busy0=$(metric 'kuma_sip_refused_total{reason="busy"}')
    log0=$(wc -l <"$work/serve.err")
    cpu0=$(cpu_ticks); soft0=$(softirq_ticks "${KUMA_LOAD_KUMA_CPUS:-}"); idle0=$(idle_ticks "${KUMA_LOAD_KUMA_CPUS:-}"); t0=$(date +%s.%N)
    mp=$(free_port)
    sp=$(free_port)
    (cd "$work" && pin "${KUMA_LOAD_SIPP_CPUS:-}" "${in_ns[@]}" timeout -k 10 "$sipp_limit" sipp -sf load_call.xml -s 2000 "$sip" -l "$n" -r "$rate" -m "$total" \
        -i "$sipp_ip" -mi "$sipp_ip" -p "$sp" -mp "$mp" \
        -nostdin -timeout 300 -trace_stat -stf "stat-$n.csv" -trace_err -error_file "err-$n.log" >/dev/null 2>&1) &
    sipp_pid=$!
    gap=""
    if ((gaps)); then
        # Every call is up after the ramp (n / rate = a call's length); kuma sends
        # all its RTP to sipp's one media port.
        sleep "$(awk -v d="$call_secs" 'BEGIN { printf "%.0f", d + 2 }')"
        timeout 5 tcpdump -i "$dev" -s 64 -w "$work/rtp-$n.pcap" "udp and dst port $mp" >/dev/null 2>&1 || true
        gap=$(python3 benches/rtp_gaps.py "$work/rtp-$n.pcap" 2>/dev/null || echo '?')
    fi
    wait "$sipp_pid" || true
    t1=$(date +%s.%N); cpu1=$(cpu_ticks); soft1=$(softirq_ticks "${KUMA_LOAD_KUMA_CPUS:-}"); idle1=$(idle_ticks "${KUMA_LOAD_KUMA_CPUS:-}")
    sent1=$(metric kuma_rtp_packets_sent_total); late1=$(metric kuma_rtp_packets_late_total)
    busy1=$(metric 'kuma_sip_refused_total{reason="busy"}')
    load=$(cut -d' ' -f1 /proc/loadavg)
    ok=$(column "$work/stat-$n.csv" 'SuccessfulCall(C)')
    failed=$(column "$work/stat-$n.csv" 'FailedCall(C)')
    awk -v n="$n" -v gap="$gap" -v load="$load" -v ok="$ok" -v failed="$failed" -v b0="${busy0:-0}" -v b1="${busy1:-0}" -v t0="$t0" -v t1="$t1" -v s0="${sent0:-0}" -v s1="${sent1:-0}" \
        -v l0="${late0:-0}" -v l1="${late1:-0}" -v c0="$cpu0" -v c1="$cpu1" -v hz="$hz" \
        -v q0="$soft0" -v q1="$soft1" -v i0="$idle0" -v i1="$idle1" -v cores="$(cpu_count "${KUMA_LOAD_KUMA_CPUS:-}")" -v netns="$netns" 'BEGIN {
        secs = t1 - t0; sent = s1 - s0; late = l1 - l0
        # sipp counts a call refused with 503 as failed
        refused = b1 - b0; other = failed - refused; if (other < 0) other = 0
        # call-minutes of audio kuma sent: 50 packets a second per call
        callmin = sent / 50 / 60
        soft = netns == 1 ? sprintf("%.1f", callmin ? 1000 * (q1 - q0) / hz / callmin : 0) : ""
        core = netns == 1 ? sprintf("%.1f", callmin ? 1000 * (secs * cores - (i1 - i0) / hz) / callmin : 0) : ""
        printf "%-10d %-10.1f %-8d %-8d %-8d %-10d %-12.3f %-16.1f %-18s %-14s %-26s %s\n", n, (ok + failed) / secs, ok, refused, other, late,
            (sent ? 100 * late / sent : 0), (callmin ? 1000 * (c1 - c0) / hz / callmin : 0), soft, core, gap, load
    }'
    # The media guard's changes during the level (when, at how many calls, the
    # share missed), on standard error so the table stays a table.
    tail -n +"$((log0 + 1))" "$work/serve.err" | grep -E 'refused \(503\)|on time again' | sed 's/^/    guard: /' >&2 || true
    # Why the other calls failed: kuma's refusals other than busy since it
    # started (`kuma_sip_refused_total` by reason), and sipp's errors in the level (its
    # statistics' Failed* counters, and its -trace_err file, most frequent first).
    { curl -s --max-time 10 "$http/metrics" || true; } | awk '$1 ~ /^kuma_sip_refused_total\{/ && $1 !~ /"busy"/ && $2 > 0 { print "    kuma refused (since start): " $1 " " $2 }' >&2
    awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i } END { for (i = 1; i <= NF; i++) if (name[i] ~ /^Failed.*\(C\)$/ && $i > 0) printf "    sipp: %s %d\n", name[i], $i }' "$work/stat-$n.csv" >&2
    if [[ -s "$work/err-$n.log" ]]; then
        grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}' "$work/err-$n.log" | cut -f3- | sed -E "s/Call-Id '[^']*'/Call-Id X/g; s/[0-9]+/N/g" | cut -c1-110 | sort | uniq -c | sort -rn | head -5 | sed 's/^/    sipp: /' >&2
    fi
    # Datagrams the kernel dropped at kuma's SIP socket, its buffer full, since
    # kuma started (the last column of /proc/net/udp).
    awk -v port=":$(printf '%04X' "${sip##*:}")" '$2 ~ port "$" { d += $NF } END { print "    kuma'"'"'s SIP socket dropped " d + 0 " datagrams so far" }' "/proc/$pid/net/udp" >&2 || true
    # What kuma holds once the level's calls have ended: a level repeated
    # (`sip-load.sh 200 200 200 …`) is a soak, and these must not grow with it.
    awk '/^VmRSS|^VmHWM|^Threads/ { printf "%s %s%s ", $1, $2, ($3 ? " " $3 : "") } END { print "" }' "/proc/$pid/status" |
        sed "s/^/    kuma holds: /; s/\$/open files $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)/" >&2 || true
    # Nothing lost under load: every call sipp took to its goodbye is stored as
    # completed (`kuma results`, on the run's database; writes a slow database
    # held back are spooled and applied within seconds).
    completed_at_sipp=$((completed_at_sipp + ok))
    stored=""
    for _ in $(seq 1 30); do
        stored=$("$kuma" results stop-trafficking-mali --format json "${common[@]}" 2>/dev/null |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["completed"])' 2>/dev/null || true)
        [[ "$stored" =~ ^[0-9]+$ ]] && ((stored >= completed_at_sipp)) && break
        sleep 1
    done
    echo "    stored as completed: ${stored:-?} calls; completed at sipp: $completed_at_sipp (since start)" >&2
    [[ "$stored" =~ ^[0-9]+$ ]] && ((stored >= completed_at_sipp)) ||
        echo "    !! calls that sipp completed are missing from kuma's results" >&2
done
