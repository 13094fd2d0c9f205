#!/usr/bin/env bash
# The kernel's floor under `kuma serve`'s CPU per call-minute (issue 16): the
# CPU a program doing nothing but a media plane's socket work needs, per
# call-minute, on this machine, in the network namespaces of
# `benches/sip-load.sh KUMA_LOAD_NETNS=1` (see `benches/udp_floor.rs`).
#
#   benches/udp-floor.sh [CONCURRENT_CALLS ...]     (default: 500 1000)
#
# For each level, five designs: a socket per call (kuma's) in a plain loop,
# the same with each call a tokio task woken by its timer (as kuma's calls
# are), one socket for all calls with `sendmmsg`/`recvmmsg` batches, and the
# sockets per call driven through one io_uring (each tick's sends in one
# `io_uring_enter`, receives by multishot `recv`; `uring-send`: the same sends,
# reads with `recvmmsg` as per-call's). Columns: the media side's own
# CPU per call-minute (getrusage), the softirq time of its core per call-minute
# (/proc/stat), as sip-load.sh reports them, and all the busy time of its core
# per call-minute (the program and the kernel's work for it, counted once: the
# time not idle; see `benches/netns.sh`). Needs root and
# `ip netns`; FLOOR_SECONDS (default 20) per run; FLOOR_MEDIA_CPUS and
# FLOOR_CALLER_CPUS (default 0 and 1) pin the two sides; FLOOR_DESIGNS (default
# all five, in the order above) picks and orders the designs.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/netns.sh
levels=("$@")
((${#levels[@]})) || levels=(500 1000)
seconds=${FLOOR_SECONDS:-20}
read -r -a designs <<<"${FLOOR_DESIGNS:-per-call tokio shared uring uring-send}"
media_cpus=${FLOOR_MEDIA_CPUS:-0} caller_cpus=${FLOOR_CALLER_CPUS:-1}
cargo bench --bench udp_floor --no-run --quiet 2>/dev/null
bin=$(cargo bench --bench udp_floor --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "udp_floor" and m.get("executable"):
        print(m["executable"])')
work=$(mktemp -d -t kuma-floor.XXXXXX)
ns=""
trap 'netns_down; rm -rf "$work"' EXIT
netns_up "$media_cpus" "$caller_cpus"
hz=$(getconf CLK_TCK)
printf '%-10s %-10s %-16s %-18s %-18s %s\n' concurrent design cpu-ms/call-min softirq-ms/c-min core-ms/call-min load1
for n in "${levels[@]}"; do
    for design in "${designs[@]}"; do
        ports="$work/ports-$n-$design"
        port=$("${in_ns[@]}" python3 -c 'import socket, sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$sipp_ip")
        taskset -c "$media_cpus" "$bin" media "$design" "$n" "$kuma_ip" "$sipp_ip:$port" "$seconds" "$ports" >"$work/out" &
        media=$!
        taskset -c "$caller_cpus" "${in_ns[@]}" "$bin" caller "$n" "$sipp_ip:$port" "$kuma_ip" "$ports" "$seconds" &
        caller=$!
        while [[ ! -s "$ports" ]]; do sleep 0.1; done
        sleep 1
        soft0=$(softirq_ticks "$media_cpus"); idle0=$(idle_ticks "$media_cpus"); t0=$(date +%s.%N)
        touch "$ports.go"
        wait "$media"
        soft1=$(softirq_ticks "$media_cpus"); idle1=$(idle_ticks "$media_cpus"); t1=$(date +%s.%N)
        wait "$caller" || true
        awk -v n="$n" -v d="$design" -v q0="$soft0" -v q1="$soft1" -v i0="$idle0" -v i1="$idle1" -v t0="$t0" -v t1="$t1" -v cores="$(cpu_count "$media_cpus")" -v hz="$hz" -v load="$(cut -d' ' -f1 /proc/loadavg)" '
            { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
            END { callmin = v["sent"] / 50 / 60
                  printf "%-10d %-10s %-16.1f %-18.1f %-18.1f %s\n", n, d, v["cpu_ms_per_call_min"], 1000 * (q1 - q0) / hz / callmin,
                      1000 * ((t1 - t0) * cores - (i1 - i0) / hz) / callmin, load }' "$work/out"
    done
done
