# Sourced by the load benches: `netns_up KUMA_CPUS PEER_CPUS` gives the peer
# (sipp, or the floor's caller) a network namespace of its own, joined to the
# host by a veth pair, with receive packet steering (RPS) sending each side's
# receive processing to that side's cores (taskset lists, e.g. 0 and 1). It sets
# `ns`, `kuma_ip`, `sipp_ip`, `dev` (the host's end, for tcpdump) and `in_ns`
# (the prefix of a command run on the peer's side); `netns_down` removes them.
# Needs root and `ip netns`.
netns_up() {
    local kuma_cpus=$1 peer_cpus=$2 net
    # A /30 of 10.0.0.0/8 not in use here, names of this run.
    for _ in $(seq 1 20); do
        net="10.$((RANDOM % 200 + 20)).$((RANDOM % 250))"
        ip -o -4 addr | grep -q " $net\." || break
    done
    ns="kl$$"
    kuma_ip="$net.1" sipp_ip="$net.2" dev="$ns-k"
    ip netns add "$ns"
    ip link add "$ns-k" type veth peer name "$ns-s"
    ip link set "$ns-s" netns "$ns"
    ip addr add "$kuma_ip/30" dev "$ns-k"
    ip -n "$ns" addr add "$sipp_ip/30" dev "$ns-s"
    ip link set "$ns-k" up
    ip -n "$ns" link set "$ns-s" up
    ip -n "$ns" link set lo up
    echo "$(cpu_mask "$kuma_cpus")" >"/sys/class/net/$ns-k/queues/rx-0/rps_cpus"
    ip netns exec "$ns" sh -c "echo $(cpu_mask "$peer_cpus") >/sys/class/net/$ns-s/queues/rx-0/rps_cpus"
    in_ns=(ip netns exec "$ns")
}

netns_down() {
    if [[ -n "${ns:-}" ]]; then
        ip link del "$ns-k" 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    fi
}

# A hexadecimal mask of cores ("0" and "1,3" as taskset lists).
cpu_mask() {
    python3 -c 'import sys; m=0
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-"); b = b or a
    for c in range(int(a), int(b) + 1): m |= 1 << c
print(format(m, "x"))' "$1"
}

# Ticks of the cores of a taskset list (all cores when empty), from /proc/stat:
# `softirq_ticks` their softirq time, `idle_ticks` their idle and iowait time.
# The kernel counts user, system and softirq time by sampling at its timer
# tick, which misses work that wakes just after each tick and sleeps before the
# next (a 1 ms pacer does); idle time it measures at each entry to and exit from
# idle. So a core's busy time over an interval is the interval less its idle
# time: whatever ran there, the program under test and the kernel's work for
# it, each counted once, when nothing else is pinned to those cores.
softirq_ticks() { cpu_ticks_of "$1" 7; }
idle_ticks() { cpu_ticks_of "$1" 4 5; }
# How many cores a taskset list names (all of them when empty).
cpu_count() {
    if [[ -z "$1" ]]; then nproc --all; else python3 -c 'import sys
n = 0
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-"); n += int(b or a) - int(a) + 1
print(n)' "$1"; fi
}
cpu_ticks_of() {
    python3 -c 'import sys
cpus = set()
for part in filter(None, sys.argv[1].split(",")):
    a, _, b = part.partition("-"); cpus.update(range(int(a), int((b or a)) + 1))
fields = [int(i) for i in sys.argv[2:]]
t = 0
for line in open("/proc/stat"):
    f = line.split()
    if f[0].startswith("cpu") and f[0] != "cpu" and (not cpus or int(f[0][3:]) in cpus):
        t += sum(int(f[i]) for i in fields)
print(t)' "$@"
}
