#!/usr/bin/env bash
# The front door's capture benchmark: 5 KB messages over 50 STARTTLS+AUTH
# connections, 10 messages each, into SQLite with a durable commit per "250".
# Usage: bench/capture.sh [N]   (default N=5000 messages; also writes a CPU
# profile of smtpgate to bench/out/capture.cpu.prof)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5000}
out=bench/out
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT

export BENCH_DATA="$tmp/data"
export BENCH_HASH=$(printf 'bench-password\n' | bin/smtpgate hash-password)
bin/smtpgate serve --policy bench/capture.hcl --ready-file "$tmp/ready" --log-level warn \
  --cpu-profile "$out/capture.cpu.prof" >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["smtp"]["submission"])' "$tmp/ready")

echo "== warm-up"
bin/smtpload -addr "$addr" -user bench -pass bench-password -n 500 -c 50 -k 10 >/dev/null
echo "== capture: $n x 5 KB, 50 connections x 10 messages, STARTTLS + AUTH PLAIN"
bin/smtpload -addr "$addr" -user bench -pass bench-password -n "$n" -c 50 -k 10 -size 5120 | tee "$out/capture.txt"
kill -INT $pid; wait $pid || true
echo "CPU profile: go tool pprof -top bin/smtpgate $out/capture.cpu.prof"
go tool pprof -top -nodecount=25 bin/smtpgate "$out/capture.cpu.prof" 2>/dev/null | tee "$out/capture.pprof.txt" | head -35
