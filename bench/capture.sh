#!/usr/bin/env bash
# The capture benchmarks, against a real smtpgate (SQLite, a durable commit
# before every "250"), with the load generator on the same machine:
#   A. the front door: N 5 KB text messages over 50 STARTTLS+AUTH connections,
#      10 messages each, every feature off, from a client that behaves like
#      Postfix's smtp client on Debian 12 (PIPELINING of MAIL/RCPT/DATA,
#      X25519 as OpenSSL 3.0 offers it, TLS sessions resumed from a session
#      cache);
#   A2. the same from a client that sends one command per round trip,
#      offers Go's default TLS groups (X25519MLKEM768) and makes a full TLS
#      handshake on every connection, as go-smtp's client;
#   B. the content features: the same load with a 2.8 KB HTML newsletter
#      (a <style> sheet, 4 links), first with every feature off, then with CSS
#      inlining, click and open tracking on; prints the ratio.
# Each run prints msgs/s, latency percentiles, and smtpgate's own CPU time per
# message (from /proc). A CPU profile of the whole session is written to
# bench/out/capture.cpu.prof.
# Usage: bench/capture.sh [N]   (default N=5000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
out=bench/out
mkdir -p "$out"
tmp=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT

export BENCH_DATA="$tmp/data"
export BENCH_HASH=$(printf 'bench-password\n' | bin/smtpgate hash-password)
bin/smtpgate serve --policy bench/capture.hcl --ready-file "$tmp/ready" --log-level warn \
  --cpu-profile "$out/capture.cpu.prof" >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["smtp"]["submission"])' "$tmp/ready")
hz=$(getconf CLK_TCK)

# cputicks prints smtpgate's user+system CPU time so far, in clock ticks.
cputicks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# run LABEL USER ARGS...: one measured load, with smtpgate's CPU per message.
run() {
  local label=$1 user=$2
  shift 2
  local before after
  before=$(cputicks)
  echo "== $label"
  bin/smtpload -addr "$addr" -user "$user" -pass bench-password -n "$n" -c 50 -k 10 -json "$@" >"$tmp/r.json"
  after=$(cputicks)
  python3 - "$tmp/r.json" "$before" "$after" "$hz" "$label" <<'PY' | tee -a "$out/capture.txt"
import json, sys
r = json.load(open(sys.argv[1]))
ticks = int(sys.argv[3]) - int(sys.argv[2]); hz = int(sys.argv[4])
cpu_us = ticks / hz * 1e6 / max(r["sent"], 1)
print(f'{sys.argv[5]}: {r["msgs_per_sec"]:.0f} msgs/s, p50 {r["p50_ms"]:.1f} ms, p99 {r["p99_ms"]:.1f} ms, '
      f'{r["errors"]} errors; smtpgate CPU {cpu_us:.0f} us/msg')
json.dump({"label": sys.argv[5], "msgs_per_sec": r["msgs_per_sec"], "p99_ms": r["p99_ms"], "cpu_us": cpu_us},
          open(sys.argv[1] + ".summary", "w"))
PY
  cp "$tmp/r.json.summary" "$tmp/$user-$(echo "$label" | tr -c 'a-z0-9' '_').summary"
}

: >"$out/capture.txt"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (the figures depend on what else runs)" | tee -a "$out/capture.txt"
echo "== warm-up"
bin/smtpload -addr "$addr" -user bench -pass bench-password -n 500 -c 50 -k 10 >/dev/null
bin/smtpload -addr "$addr" -user featured -pass bench-password -n 500 -c 50 -k 10 -body bench/newsletter-css.eml >/dev/null

run "A. capture, 5 KB text, features off" bench -size 5120
run "A2. capture, 5 KB text, no PIPELINING, Go's TLS groups, no TLS resumption" bench -size 5120 -pipelining=false -curves default -tls-resume=false
run "B1. newsletter, features off" bench -body bench/newsletter-css.eml
run "B2. newsletter, CSS inlining + click + open tracking" featured -body bench/newsletter-css.eml

python3 - "$tmp" <<'PY' | tee -a "$out/capture.txt"
import glob, json, sys
s = {json.load(open(f))["label"][:2]: json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.summary")}
off, on = s["B1"], s["B2"]
print(f'features on / off: {on["msgs_per_sec"] / off["msgs_per_sec"] * 100:.0f}% of the throughput; '
      f'CPU {on["cpu_us"]:.0f} vs {off["cpu_us"]:.0f} us/msg')
PY

kill -INT $pid; wait $pid || true
pid=
echo "CPU profile: go tool pprof -top bin/smtpgate $out/capture.cpu.prof"
go tool pprof -top -nodecount=25 bin/smtpgate "$out/capture.cpu.prof" 2>/dev/null >"$out/capture.pprof.txt" || true
