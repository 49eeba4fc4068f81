#!/bin/sh
# make bench: measures otpd against the ceiling of its HTTP layer, on
# loopback, and writes bench/results.md. Bounded: about 7 minutes on 2 cores.
#   DURATION (s, default 8), CONNECTIONS (32), WRK_THREADS (2), THREADS (128),
#   PAIRS (default 3: baseline/otpd pairs per workload, the median reported),
#   WAL_DURATION (s, default 60: the sustained send run whose WAL is measured)
#   REDIS=1 (make REDIS=1 bench): the Redis build, plus verify and send with
#   the code store in a redis-server started here.
set -eu
# The machine's /etc/otpd/otpd.conf, if any, stays out of the measurements.
export OTPD_DEFAULT_CONFIG=
cd "$(dirname "$0")/.."
REDIS=${REDIS:-}
if [ "$REDIS" = 1 ]; then B=build-bench-redis; else B=build-bench; fi
BENCH_DIR=$(pwd)/bench
export BENCH_DIR
DURATION=${DURATION:-8}
WAL_DURATION=${WAL_DURATION:-60}
PAIRS=${PAIRS:-3}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
THREADS=${THREADS:-128}
SECRET=bench-secret-0123456789abcdef
TMP=$(mktemp -d /tmp/otpd_bench.XXXXXX)
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

RESULTS=""  # lines: name|rps|p50|p99|p999|socket_errors|5xx|2xx|rss_kb

# The abuse limits as they run in production, except what one load
# generator on one address would trip: the per-client request limit is
# raised, the resend cooldown, the per-IP and the global send caps are off
# (one client address and one global budget would refuse nearly every
# send). Per-user and per-phone caps and the failure cap stay at their
# defaults.
LIMITS="--ip-requests-per-minute 1000000 --ip-burst 1000000 --send-cooldown 0
  --send-ip-cap 0 --sms-budget-per-hour 0 --pumping-detection false"

# measure NAME SCRIPT PORT PID USERS: one wrk run; sets LINE to
# name|rps|p50|p99|p999|socket_errors|5xx|2xx|rss_kb.
measure() {
  out=$(BENCH_USERS=$5 wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        -s "bench/$2" "http://127.0.0.1:$3" 2>&1)
  line=$(echo "$out" | grep '^RESULT' || { echo "$out" >&2; exit 1; })
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$4/status")
  # A run answered mostly by refusals measures nothing: fail loudly.
  case $1 in baseline*) ;; *)
    if [ "$(echo "$line" | sed 's/.*status_2xx=\([0-9]*\).*/\1/')" -lt \
         "$(echo "$line" | sed 's/.*requests=\([0-9]*\).*/\1/' | awk '{print int($1 / 20)}')" ]; then
      echo "bench: $1: under 5% of answers were 2xx; limits or errors interfered" >&2
      echo "$line" >&2
      exit 1
    fi ;;
  esac
  v() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
  rps=$(awk -v r="$(v requests)" -v d="$(v duration_us)" 'BEGIN {printf "%.0f", r / (d / 1e6)}')
  LINE="$1|$rps|$(v p50_us)|$(v p99_us)|$(v p999_us)|$(v socket_errors)|$(v status_5xx)|$(v status_2xx)|$rss"
  echo "  $1: $rps req/s, p99 $(v p99_us) us, rss $rss kB" >&2
}

# wrk_run NAME SCRIPT PORT PID USERS: one run, added to RESULTS.
wrk_run() {
  measure "$@"
  RESULTS="$RESULTS$LINE
"
}

# start_baseline: the bare server on a free port; sets BPORT, BPID.
start_baseline() {
  rm -f "$TMP/port"
  "$B/baseline_server" "$THREADS" >"$TMP/port" &
  BPID=$!
  PIDS="$PIDS $BPID"
  for _ in $(seq 1 500); do
    [ -s "$TMP/port" ] && break
    sleep 0.01
  done
  BPORT=$(cat "$TMP/port")
}

# pair NAME SCRIPT SEED_DB USERS OTPD_ARGS...: PAIRS alternating runs of the
# baseline and of otpd (on a fresh copy of SEED_DB each time) with the same
# wrk script, so that both pay the same load generator and meet the same
# moments of the machine; adds the pair whose ratio is the median to
# RESULTS as baseline-NAME and NAME.
pair() {
  name=$1 script=$2 seed=$3 users=$4
  shift 4
  : >"$TMP/pairs"
  for i in $(seq 1 "$PAIRS"); do
    start_baseline
    measure "baseline-$name" "$script" "$BPORT" "$BPID" "$users"
    base=$LINE
    kill "$BPID"; wait "$BPID" 2>/dev/null || true
    rm -f "$TMP/run.db" "$TMP/run.db-wal" "$TMP/run.db-shm"
    cp "$seed" "$TMP/run.db"
    start_otpd "$TMP/run.db" "$@"
    measure "$name" "$script" "$PORT" "$PID" "$users"
    WAL_AFTER=$(stat -c %s "$TMP/run.db-wal" 2>/dev/null || echo 0)
    kill "$PID"; wait "$PID" 2>/dev/null || true
    echo "$base $LINE" | awk -F'[| ]' '{printf "%.6f %s\n", $11 / $2, $0}' >>"$TMP/pairs"
    echo "    pair $i/$PAIRS: $(tail -n1 "$TMP/pairs" | cut -d' ' -f1 | cut -c1-5)x" >&2
  done
  chosen=$(sort -n "$TMP/pairs" | awk -v n="$PAIRS" 'NR == int((n + 1) / 2)')
  RESULTS="$RESULTS$(echo "$chosen" | cut -d' ' -f2)
$(echo "$chosen" | cut -d' ' -f3)
"
  RATIOS="$RATIOS $name=$(cut -d' ' -f1 "$TMP/pairs" | sort -n | tr '\n' ',' | sed 's/,$//')"
}
RATIOS=""

# start_otpd DB EXTRA_ARGS...: starts otpd on a free port; sets PORT, PID.
start_otpd() {
  db=$1
  shift
  # The seed's pages on disk first: otherwise the first checkpoint's fsync
  # writes back the whole freshly written file (tens of ms, once per run).
  sync
  PORT=$("$B/startup" --free-port)
  "$B/otpd" serve --port "$PORT" --database "$db" --secret "$SECRET" --log-level warn \
    --threads "$THREADS" --expiry 86400 $LIMITS "$@" 2>"$TMP/otpd.log" &
  PID=$!
  PIDS="$PIDS $PID"
  for _ in $(seq 1 500); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && return 0
    sleep 0.01
  done
  cat "$TMP/otpd.log" >&2
  exit 1
}

echo "building (optimised) ..." >&2
make --no-print-directory REDIS="$REDIS" BUILD=$B OUT=$B OPT='-O2 -g -DNDEBUG' $B/otpd \
  $B/libotpd.a >/dev/null
FLAGS="-std=c++17 -O2 -DNDEBUG -Isrc -isystem $B/gen/cpp-httplib -isystem third_party/cpp-httplib"
LIBS="$B/libotpd.a $(pkg-config --libs sqlite3 openssl libbrotlienc zlib) -lphonenumber
  $(pkg-config --libs protobuf 2>/dev/null || echo -lprotobuf) -lpthread"
if [ "$REDIS" = 1 ]; then
  FLAGS="$FLAGS -DOTPD_REDIS=1"
  LIBS="$LIBS $(pkg-config --libs hiredis)"
fi
for tool in baseline_server seed startup storage_bench; do
  g++ $FLAGS "bench/$tool.cpp" $LIBS -o "$B/$tool"
done

echo "1/5 verify-code, 100 000 users with live codes: $PAIRS pairs with the baseline" >&2
"$B/seed" "$TMP/100k.db" "$SECRET" 100000
pair verify-code verify.lua "$TMP/100k.db" 100000

# Right after the 100k runs, so that load from elsewhere on the machine
# drifts as little as possible between the two it compares.
echo "2/5 verify-code, 1 000 000 users with live codes; startup time" >&2
"$B/seed" "$TMP/1m.db" "$SECRET" 1000000
sync
STARTUP=$("$B/startup" "$B/otpd" serve --database "$TMP/1m.db" --secret "$SECRET" \
          --log-level warn --threads "$THREADS")
start_otpd "$TMP/1m.db"
wrk_run verify-code-1m verify.lua "$PORT" "$PID" 1000000
kill "$PID"; wait "$PID" 2>/dev/null || true

echo "3/5 send-code, 100 000 users, console sender writing to a file: $PAIRS pairs" >&2
"$B/seed" "$TMP/send.db" "$SECRET" 100000 users-only
pair send-code send.lua "$TMP/send.db" 100000 --sms-log-file "$TMP/sms.log"
WAL_SEND=$WAL_AFTER

echo "3b/5 send-code with synchronous = FULL (an fsync per commit)" >&2
"$B/seed" "$TMP/sendfull.db" "$SECRET" 100000 users-only
start_otpd "$TMP/sendfull.db" --sms-log-file "$TMP/smsfull.log" --synchronous FULL
wrk_run send-code-full send.lua "$PORT" "$PID" 100000
kill "$PID"; wait "$PID" 2>/dev/null || true

echo "3c/5 send-code sustained for ${WAL_DURATION}s: the WAL's size" >&2
"$B/seed" "$TMP/sendwal.db" "$SECRET" 100000 users-only
start_otpd "$TMP/sendwal.db" --sms-log-file "$TMP/smswal.log"
WAL_PEAK=0
( while kill -0 "$PID" 2>/dev/null; do
    stat -c %s "$TMP/sendwal.db-wal" 2>/dev/null || true
    sleep 0.2
  done ) >"$TMP/walsizes" &
WATCH=$!
SAVED_DURATION=$DURATION
DURATION=$WAL_DURATION
wrk_run send-code-60s send.lua "$PORT" "$PID" 100000
DURATION=$SAVED_DURATION
WAL_END=$(stat -c %s "$TMP/sendwal.db-wal" 2>/dev/null || echo 0)
kill "$PID"; wait "$PID" 2>/dev/null || true
wait "$WATCH" 2>/dev/null || true
WAL_PEAK=$(sort -n "$TMP/walsizes" | tail -n1)
WAL="send_8s_end=${WAL_SEND:-0} sustained_end=${WAL_END:-0} sustained_peak=${WAL_PEAK:-0} sustained_s=$WAL_DURATION"
echo "  WAL: $WAL" >&2


if [ "$REDIS" = 1 ]; then
  echo "4/5 verify-code and send-code with the code store in Redis" >&2
  RPORT=$("$B/startup" --free-port)
  redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no --daemonize no \
    --dir "$TMP" >"$TMP/redis.log" 2>&1 &
  RPID=$!
  PIDS="$PIDS $RPID"
  for _ in $(seq 1 500); do
    [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break
    sleep 0.01
  done
  REDIS_ARGS="--store redis --redis-url redis://127.0.0.1:$RPORT/0 --redis-fallback false"
  "$B/seed" "$TMP/r100k.db" "$SECRET" 100000 redis "$RPORT" otpd:
  start_otpd "$TMP/r100k.db" $REDIS_ARGS
  wrk_run verify-code-redis verify.lua "$PORT" "$PID" 100000
  kill "$PID"; wait "$PID" 2>/dev/null || true
  "$B/seed" "$TMP/rsend.db" "$SECRET" 100000 users-only
  start_otpd "$TMP/rsend.db" --sms-log-file "$TMP/rsms.log" $REDIS_ARGS
  wrk_run send-code-redis send.lua "$PORT" "$PID" 100000
  kill "$PID"; wait "$PID" 2>/dev/null || true
fi

echo "5/5 storage micro-benchmark (no HTTP)" >&2
STORAGE=$("$B/storage_bench" "$TMP" 20000)

bench/report.sh "$RESULTS" "$STARTUP" "$STORAGE" "$DURATION" "$CONNECTIONS" "$WRK_THREADS" \
  "$THREADS" "$WAL" "$(cut -d' ' -f1-3 /proc/loadavg)" "$PAIRS" "$RATIOS"
