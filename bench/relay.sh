#!/usr/bin/env bash
# The relay benchmark: messages DELIVERED per second, end to end.
#
#   smtpload --50 conns, STARTTLS+AUTH--> smtpgate (DKIM Ed25519, click and
#            open tracking, SQLite queue) --relay, no TLS--> smtp-sink
#   smtpload --50 conns, plain---------> Postfix (no features, queue on disk)
#            --relayhost, no TLS--> the same smtp-sink
#
# Both get the same 5 KB HTML newsletter (bench/newsletter.eml, 15 links),
# N messages, 10 per connection. The clock runs from the start of smtpload
# until smtp-sink has counted the N-th message (its -c counters), so the
# figure includes queueing, signing and relaying, not only the "250".
#
# Usage: bench/relay.sh [N]     (default N=10000)
# Environment:
#   BENCH_RELAY_CONCURRENCY  connections from smtpgate to the sink (default 20,
#                            Postfix's default_destination_concurrency_limit)
#   BENCH_DELIVER_TIMEOUT    seconds to wait for the N deliveries (default 300)
#   BENCH_SKIP_POSTFIX=1     measure smtpgate only
# Output: a side-by-side table; bench/out/relay-*.json and relay-*.series
# (seconds since start, messages delivered), bench/out/relay.cpu.prof.
# The Postfix half needs root (Postfix runs its daemons as user postfix) and
# is skipped without it.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
warm=500
export BENCH_RELAY_CONCURRENCY=${BENCH_RELAY_CONCURRENCY:-20}
deliver_timeout=${BENCH_DELIVER_TIMEOUT:-300}
sink_bin=/usr/sbin/smtp-sink
postfix_bin=/usr/sbin/postfix
body=bench/newsletter.eml
out=bench/out
mkdir -p "$out"
[ -x "$sink_bin" ] || { echo "relay.sh: $sink_bin is missing (apt-get install postfix)" >&2; exit 2; }
[ -x bin/smtpgate ] && [ -x bin/smtpload ] || { echo "relay.sh: run make build first" >&2; exit 2; }

tmp=$(mktemp -d)
chmod 755 "$tmp" # smtp-sink and Postfix drop to user postfix
gate_pid= sink_pid= dump_pid= pf_master= load_pid=
pf_dir="$tmp/postfix"

# postfix_pids lists the processes of our private Postfix: Postfix sets
# MAIL_CONFIG to its (unique, ours) config directory in every daemon.
postfix_pids() {
  grep -lsz -x "MAIL_CONFIG=$pf_dir/etc" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
}

cleanup() {
  set +e
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
  [ -n "$gate_pid" ] && kill -INT "$gate_pid" 2>/dev/null && wait "$gate_pid" 2>/dev/null
  if [ -n "$pf_master" ]; then
    "$postfix_bin" -c "$pf_dir/etc" stop >/dev/null 2>&1
    for _ in $(seq 1 100); do kill -0 "$pf_master" 2>/dev/null || break; sleep 0.1; done
    for p in $(postfix_pids); do kill -KILL "$p" 2>/dev/null; done
    wait "$pf_master" 2>/dev/null
  fi
  for p in $sink_pid $dump_pid; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "relay.sh: line $LINENO failed (exit $?)" >&2' ERR

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { # host:port pid what
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || { echo "relay.sh: $3 exited" >&2; return 1; }
    python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); socket.create_connection((h,int(p)),1).close()' "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "relay.sh: $3 not listening on $1" >&2; return 1
}

sink_user=()
[ "$(id -u)" = 0 ] && sink_user=(-u postfix) # required as root

# The measuring sink discards everything and keeps running counters.
sink_addr=127.0.0.1:$(free_port)
"$sink_bin" "${sink_user[@]}" -c "$sink_addr" 1024 >"$tmp/sink.out" 2>&1 &
sink_pid=$!
wait_port "$sink_addr" "$sink_pid" smtp-sink
# The checking sink writes each message to a file.
mkdir -m 777 "$tmp/dump"
dump_addr=127.0.0.1:$(free_port)
"$sink_bin" "${sink_user[@]}" -d "$tmp/dump/m." "$dump_addr" 64 >"$tmp/dump.out" 2>&1 &
dump_pid=$!
wait_port "$dump_addr" "$dump_pid" "smtp-sink -d"

# watch BASE TARGET T0 SERIES: polls the sink's counters every 20 ms until
# TARGET messages past BASE arrived (or the timeout), writes the series and
# prints {"delivered": d, "seconds": s} with s from T0 to the TARGET-th one.
watch() {
  python3 - "$tmp/sink.out" "$@" "$deliver_timeout" <<'EOF'
import json, re, sys, time
path, base, target, t0, series, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], float(sys.argv[6])
pat = re.compile(rb"mesg=(\d+)")
def count():
    with open(path, "rb") as f:
        f.seek(0, 2); f.seek(max(0, f.tell() - 256))
        m = pat.findall(f.read())
    return (int(m[-1]) if m else 0) - base
rows, last, done = [], -1, None
while True:
    now, c = time.time(), count()
    if c != last:
        rows.append((now - t0, c)); last = c
    if c >= target:
        done = now - t0; break
    if now - t0 > timeout:
        break
    time.sleep(0.02)
with open(series, "w") as f:
    f.writelines("%.3f %d\n" % r for r in rows)
print(json.dumps({"delivered": last, "seconds": done if done is not None else now - t0, "complete": done is not None}))
EOF
}

sink_count() { python3 -c 'import re,sys; m=re.findall(rb"mesg=(\d+)", open(sys.argv[1],"rb").read()[-256:]); print(int(m[-1]) if m else 0)' "$tmp/sink.out"; }

# cpu_seconds PID...: the CPU time (user + system) of these processes and of
# their children that exited and were reaped (Postfix's master reaps its
# daemons, so their time stays counted).
cpu_seconds() {
  python3 - "$@" <<'EOF'
import os, sys
tick, total = os.sysconf("SC_CLK_TCK"), 0
for pid in sys.argv[1:]:
    try:
        f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    total += sum(int(x) for x in f[11:15]) # utime stime cutime cstime
print("%.2f" % (total / tick))
EOF
}

# sut_pids: the processes of the system under test.
sut_pids() { if [ -n "$pf_master" ]; then echo "$pf_master" $(postfix_pids); else echo "$gate_pid"; fi; }

# measure NAME ADDR SMTPLOAD-ARGS...: warm up with $warm messages and wait
# for them, then send N and time the deliveries, and the CPU time the
# system under test spent meanwhile. Writes $out/relay-NAME.json.
measure() {
  local name=$1 addr=$2; shift 2
  local base t0 load_rc cpu0 cpu1
  base=$(sink_count)
  bin/smtpload -addr "$addr" "$@" -n "$warm" -c 50 -k 10 -body "$body" -json >/dev/null
  watch "$base" "$warm" "$(date +%s.%N)" /dev/null >"$tmp/warm.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["complete"] else "relay.sh: warm-up not delivered: %s" % r)' "$tmp/warm.json"
  base=$(sink_count)
  cpu0=$(cpu_seconds $(sut_pids))
  t0=$(date +%s.%N)
  bin/smtpload -addr "$addr" "$@" -n "$n" -c 50 -k 10 -body "$body" -json -timeout "${deliver_timeout}s" >"$tmp/$name.load.json" &
  load_pid=$!
  watch "$base" "$n" "$t0" "$out/relay-$name.series" >"$tmp/$name.deliver.json"
  cpu1=$(cpu_seconds $(sut_pids))
  load_rc=0; wait "$load_pid" || load_rc=$?; load_pid=
  sleep 1 # anything more than N is a duplicate delivery
  python3 - "$tmp/$name.load.json" "$tmp/$name.deliver.json" "$(($(sink_count) - base))" "$load_rc" "$out/relay-$name.json" "$cpu0" "$cpu1" <<'EOF'
import json, sys
load, deliver = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
r = {"load": load, "deliver": deliver, "sink_count_after_1s": int(sys.argv[3]), "smtpload_exit": int(sys.argv[4]),
     "cpu_seconds": float(sys.argv[7]) - float(sys.argv[6])}
json.dump(r, open(sys.argv[5], "w"), indent=1)
EOF
}

# --- smtpgate ---------------------------------------------------------------
export BENCH_DATA="$tmp/data" BENCH_SINK="$sink_addr" BENCH_DUMP_SINK="$dump_addr"
export BENCH_HASH=$(printf 'bench-password\n' | bin/smtpgate hash-password)
export BENCH_DKIM_KEY="$tmp/dkim.key"
bin/smtpgate dkim keygen --domain example.com --selector s1 --out "$BENCH_DKIM_KEY" >/dev/null
bin/smtpgate serve --policy bench/relay.hcl --ready-file "$tmp/ready" --log-level warn \
  --cpu-profile "$out/relay.cpu.prof" >"$tmp/serve.log" 2>&1 &
gate_pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/ready" ] && break; kill -0 $gate_pid 2>/dev/null || break; sleep 0.1; done
[ -s "$tmp/ready" ] || { echo "relay.sh: smtpgate did not start:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
gate_addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["smtp"]["submission"])' "$tmp/ready")

echo "== check: 3 messages through smtpgate to a dumping sink: DKIM-signed, links and pixel tracked"
bin/smtpload -addr "$gate_addr" -user check -pass bench-password -n 3 -c 1 -k 3 -body "$body" >/dev/null
for _ in $(seq 1 200); do [ "$(ls "$tmp/dump" | wc -l)" -ge 3 ] && break; sleep 0.05; done
for f in "$tmp"/dump/m.*; do
  grep -q '^DKIM-Signature: .*a=ed25519-sha256' "$f" || { echo "relay.sh: $f is not DKIM-signed with Ed25519:" >&2; head -20 "$f" >&2; exit 1; }
  clicks=$(grep -o 'http://t\.example\.com/c/' "$f" | wc -l)
  grep -q 'http://t\.example\.com/o/' "$f" && [ "$clicks" -ge 15 ] ||
    { echo "relay.sh: $f: $clicks tracked links (want 15) or no open pixel" >&2; exit 1; }
done
echo "ok: $(ls "$tmp/dump" | wc -l) messages, each signed, 15 links tracked, open pixel"

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (the figures depend on what else runs)"
echo "== smtpgate: $n x $(wc -c <"$body") B HTML, 50 connections x 10, STARTTLS + AUTH; relay concurrency $BENCH_RELAY_CONCURRENCY"
measure smtpgate "$gate_addr" -user bench -pass bench-password
kill -INT "$gate_pid"; wait "$gate_pid" || true; gate_pid=

# --- Postfix ----------------------------------------------------------------
if [ "${BENCH_SKIP_POSTFIX:-}" = 1 ]; then
  echo "== Postfix skipped (BENCH_SKIP_POSTFIX=1)"
elif [ "$(id -u)" != 0 ] || [ ! -x "$postfix_bin" ]; then
  echo "== Postfix skipped: it needs root and $postfix_bin"
else
  pf_port=$(free_port)
  mkdir -p "$pf_dir/etc" "$pf_dir/queue"
  chmod 755 "$pf_dir" "$pf_dir/etc" "$pf_dir/queue"
  for f in main.cf master.cf; do
    sed -e "s|@DIR@|$pf_dir|g" -e "s|@PORT@|$pf_port|g" -e "s|@SINK_PORT@|${sink_addr##*:}|g" \
      "bench/postfix/$f" >"$pf_dir/etc/$f"
  done
  "$postfix_bin" -c "$pf_dir/etc" check
  "$postfix_bin" -c "$pf_dir/etc" start-fg >"$tmp/postfix.out" 2>&1 &
  pf_master=$!
  wait_port "127.0.0.1:$pf_port" "$pf_master" postfix || { cat "$tmp/postfix.out" "$pf_dir/maillog" >&2; exit 1; }
  echo "== Postfix $(/usr/sbin/postconf -c "$pf_dir/etc" -h mail_version): $n x $(wc -c <"$body") B HTML, 50 connections x 10, plain SMTP; relayhost = the sink"
  measure postfix "127.0.0.1:$pf_port" -tls none -user ""
fi

# --- report -----------------------------------------------------------------
python3 - "$n" "$out/relay-smtpgate.json" "$out/relay-postfix.json" "${pf_master:+yes}" <<'EOF'
import json, os, sys
n = int(sys.argv[1])
runs = [("smtpgate (DKIM+tracking)", sys.argv[2])]
if sys.argv[4] == "yes":
    runs.append(("Postfix (plain relay)", sys.argv[3]))
rs = [(name, json.load(open(p))) for name, p in runs]
def row(label, f):
    print("%-30s" % label + "".join("%26s" % f(r) for _, r in rs))
row("", lambda r: "")
print("%-30s" % "" + "".join("%26s" % name for name, _ in rs))
row("delivered msgs/s (end to end)", lambda r: "%.0f" % (r["deliver"]["delivered"] / r["deliver"]["seconds"]))
row("  all N delivered after (s)", lambda r: "%.2f%s" % (r["deliver"]["seconds"], "" if r["deliver"]["complete"] else " TIMEOUT"))
row("accepted msgs/s (smtpload)", lambda r: "%.0f" % r["load"]["msgs_per_sec"])
row("  accept latency p50/p99 (ms)", lambda r: "%.1f / %.1f" % (r["load"]["p50_ms"], r["load"]["p99_ms"]))
row("  errors", lambda r: "%d" % r["load"]["errors"])
row("delivered after +1 s (want N)", lambda r: "%d" % r["sink_count_after_1s"])
row("CPU s of the MTA until the N-th", lambda r: "%.1f" % r["cpu_seconds"])
row("  CPU ms per delivered message", lambda r: "%.2f" % (1000 * r["cpu_seconds"] / max(r["deliver"]["delivered"], 1)))
row("  cores busy (CPU s / wall s)", lambda r: "%.2f" % (r["cpu_seconds"] / r["deliver"]["seconds"]))
g = rs[0][1]
rate = g["deliver"]["delivered"] / g["deliver"]["seconds"]
ok = g["deliver"]["complete"] and g["load"]["errors"] == 0 and g["sink_count_after_1s"] == n and rate >= 2000
if len(rs) > 1:
    p = rs[1][1]
    ok = ok and rate >= p["deliver"]["delivered"] / p["deliver"]["seconds"]
print("\ntarget (>= 2,000 delivered msgs/s through smtpgate, and at least Postfix's rate): %s" % ("met" if ok else "NOT met"))
EOF
go tool pprof -top -nodecount=30 bin/smtpgate "$out/relay.cpu.prof" >"$out/relay.pprof.txt" 2>/dev/null || true
echo "series: $out/relay-*.series   CPU profile: $out/relay.pprof.txt (go tool pprof -top bin/smtpgate $out/relay.cpu.prof)"
