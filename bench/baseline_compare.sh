#!/bin/sh
# The HTTP layer's own ceiling before and after the move to the vendored
# cpp-httplib: bench/baseline_server.cpp built against Debian's 0.11.4
# (libcpp-httplib-dev, with the flags otpd used with it) and against the
# vendored v0.53.1 (otpd's settings, third_party/cpp-httplib/otpd_httplib.h),
# driven by wrk in turns in one run: A B A B ... Loopback, bounded
# (ROUNDS x 2 x DURATION seconds). Needs wrk and, for the old build only,
# libcpp-httplib-dev (not in any packages list: the build no longer uses it).
#   DURATION (s, default 5), ROUNDS (3), CONNECTIONS (32), WRK_THREADS (2),
#   THREADS (128, both servers' fixed pool)
# Prints a Markdown table; writes nothing else.
set -eu
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
THREADS=${THREADS:-128}
BENCH_DIR=$(pwd)/bench
export BENCH_DIR
B=build-bench/baseline-compare
TMP=$(mktemp -d /tmp/otpd_baseline.XXXXXX)
PID=""
cleanup() {
  [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
mkdir -p "$B/old-include"

# Old: the same source; its <otpd_httplib.h> is Debian's <httplib.h>.
printf '#include <httplib.h>\n' >"$B/old-include/otpd_httplib.h"
g++ -std=c++17 -O2 -DNDEBUG -I"$B/old-include" $(pkg-config --cflags cpp-httplib) \
  bench/baseline_server.cpp $(pkg-config --libs cpp-httplib openssl) -lpthread -o "$B/old"
# New: the split header and its implementation, as otpd compiles them.
make --no-print-directory build/gen/cpp-httplib/httplib.h >/dev/null
printf '#include <otpd_httplib.h>\n#include <httplib_impl.inc>\n' >"$TMP/impl.cpp"
NEW_FLAGS="-std=c++17 -O2 -DNDEBUG -isystem build/gen/cpp-httplib -isystem third_party/cpp-httplib"
g++ $NEW_FLAGS bench/baseline_server.cpp "$TMP/impl.cpp" $(pkg-config --libs openssl) \
  -lpthread -o "$B/new"

# run NAME: one wrk run against a fresh server; prints "NAME rps p50 p99 rss".
run() {
  "$B/$1" "$THREADS" >"$TMP/port" &
  PID=$!
  for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
  out=$(BENCH_USERS=1 wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        -s bench/baseline.lua "http://127.0.0.1:$(cat "$TMP/port")" 2>&1)
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=""
  : >"$TMP/port"
  line=$(echo "$out" | grep '^RESULT' || { echo "$out" >&2; exit 1; })
  v() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
  awk -v n="$1" -v r="$(v requests)" -v d="$(v duration_us)" -v p50="$(v p50_us)" \
      -v p99="$(v p99_us)" -v e="$(v socket_errors)" -v rss="$rss" \
      'BEGIN {printf "%s %.0f %.2f %.2f %d %.1f\n", n, r / (d / 1e6), p50 / 1000, p99 / 1000, e, rss / 1024}'
}

echo "| round | library | req/s | p50 ms | p99 ms | socket errors | peak RSS MB |"
echo "|---|---|---:|---:|---:|---:|---:|"
for r in $(seq 1 "$ROUNDS"); do
  for lib in old new; do
    set -- $(run $lib)
    name=$([ "$lib" = old ] && echo "Debian 0.11.4" || echo "vendored v0.53.1")
    echo "| $r | $name | $2 | $3 | $4 | $5 | $6 |"
    echo "$lib $2" >>"$TMP/rps"
  done
done
awk '{s[$1] += $2; n[$1]++} END {printf "\nmean req/s: 0.11.4 %.0f, v0.53.1 %.0f; ratio new/old %.2f\n",
  s["old"] / n["old"], s["new"] / n["new"], (s["new"] / n["new"]) / (s["old"] / n["old"])}' "$TMP/rps"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
