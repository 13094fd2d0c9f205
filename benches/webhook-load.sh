#!/usr/bin/env bash
# Load benchmark of the Africa's Talking webhook of `kuma serve`, with wrk on
# loopback (issue 5): whole calls of the example campaign (benches/webhook_at.lua:
# ten requests a call, every reply checked), against SQLite.
#
#   benches/webhook-load.sh [CONNECTIONS ...]     (default: 2 8 32; DURATION=20s)
#
# Each connection is one wrk thread playing one caller after another, so a
# call's requests stay in order, as a provider sends them. Reports requests per
# second, latency percentiles (p99 included) and the count of wrong replies.
#
# Needs wrk (Debian's wrk). The campaign is the example campaign without its
# schedule (so that the poll is open whatever the day). Every port is chosen at
# run time.
set -euo pipefail
cd "$(dirname "$0")/.."
levels=("$@")
((${#levels[@]})) || levels=(2 8 32)
duration=${DURATION:-20s}
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet
kuma=$PWD/target/release/kuma
work=$(mktemp -d -t kuma-webhook-load.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# The example campaign without [schedule] and the node only the schedule reaches.
mkdir -p "$work/campaigns"
awk -v audio="$PWD/audio/stop-trafficking-mali" '
    /^\[schedule\]/ { skip = 1 }
    /^\[defaults\]/ { skip = 0 }
    /^\[\[node\]\]/ { held = $0; next }
    held != "" { if ($0 ~ /^id = "poll_closed"/) { drop = 1 } else { drop = 0; print held } held = "" }
    drop && /^\[\[node\]\]/ { drop = 0 }
    /^audio = / { print "audio = \"" audio "\""; next }
    !skip && !drop { print }
' campaigns/stop-trafficking-mali.toml >"$work/campaigns/stop-trafficking-mali.toml"
common=(--campaigns "$work/campaigns" --data "$work/data" --database "sqlite://$work/data/kuma.db")
"$kuma" check "${common[@]}" >/dev/null
"$kuma" audio prepare stop-trafficking-mali "${common[@]}" >/dev/null

export KUMA_PUBLIC_URL=https://ivr.example.test KUMA_AT_PATH_SECRET=bench-secret-0123456789
"$kuma" serve --sip 127.0.0.1:0 --http 127.0.0.1:0 "${common[@]}" >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
for _ in $(seq 1 100); do grep -q "HTTP on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
http=$(grep -o 'http://[0-9.]*:[0-9]*' "$work/serve.out")

echo "kuma serve on $http, SQLite, $(nproc) cores, $duration per level"
for c in "${levels[@]}"; do
    echo "--- $c connections"
    wrk -t "$c" -c "$c" -d "$duration" --latency -s benches/webhook_at.lua "$http" | grep -E 'calls completed|latency p50|requests/s|Non-2xx|Socket errors'
done
echo "--- stored"
"$kuma" results stop-trafficking-mali --format json "${common[@]}" | head -c 300; echo
