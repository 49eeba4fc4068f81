#!/bin/sh
# Profiles the verify-code path with callgrind (instruction counts: the
# same on a busy or an idle machine) and writes bench/profile.md.
# Needs bench/run.sh's tools (make bench builds them) and valgrind.
set -eu
# The machine's /etc/otpd/otpd.conf, if any, stays out of the profile.
export OTPD_DEFAULT_CONFIG=
cd "$(dirname "$0")/.."
B=build-bench
BENCH_DIR=$(pwd)/bench
export BENCH_DIR
SECRET=bench-secret-0123456789abcdef
TMP=$(mktemp -d /tmp/otpd_profile.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$TMP"' EXIT INT TERM
[ -x "$B/otpd" ] && [ -x "$B/seed" ] || { echo "run make bench first" >&2; exit 1; }
"$B/seed" "$TMP/db" "$SECRET" 10000
PORT=$("$B/startup" --free-port)
valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
  "$B/otpd" serve --port "$PORT" --database "$TMP/db" --secret "$SECRET" --log-level warn \
  --threads 4 --expiry 86400 --ip-requests-per-minute 1000000 --ip-burst 1000000 \
  2>"$TMP/valgrind.log" &
PID=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done
OUT=$(BENCH_USERS=10000 wrk -t1 -c1 -d10s -s bench/verify.lua "http://127.0.0.1:$PORT" | grep RESULT)
REQUESTS=$(echo "$OUT" | tr ' ' '\n' | sed -n 's/^requests=//p')
kill -INT $PID
wait $PID 2>/dev/null || true
TOTAL=$(callgrind_annotate "$TMP/callgrind.out" | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
{
  echo "# Profile of the verify-code path"
  echo
  echo "Produced by \`bench/profile.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): otpd (-O2 -g) under"
  echo "\`valgrind --tool=callgrind\`, 10 000 seeded users, $REQUESTS verify-code requests from one"
  echo "keep-alive connection (half right codes, half wrong). Instruction counts do not depend"
  echo "on machine load. Whole process, start-up and shutdown included:"
  echo "**$(awk -v t="$TOTAL" -v r="$REQUESTS" 'BEGIN {printf "%.0f", t / r}') instructions per request**."
  echo
  echo "Inclusive cost of the main parts, in % of the total:"
  echo
  echo '```'
  callgrind_annotate --auto=no --inclusive=yes "$TMP/callgrind.out" 2>/dev/null |
    grep -E 'sqlite3_step|sqlite3VdbeExec|HttpApi::Handle|OtpService::VerifyCode|SqliteStorage::VerifyCode|CodeHasher::Hash|nlohmann.*parse|process_request|read_content|write_response|BusyWait|sqlite3WalFrames|sqlite3PagerCommit|walIndex|Prepare|::Log\(' |
    head -n 30 | sed 's/ \[[^]]*\]$//' | cut -c1-150
  echo '```'
  echo
  echo "Top functions by own cost (exclusive):"
  echo
  echo '```'
  callgrind_annotate --auto=no "$TMP/callgrind.out" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n '3,27p' |
    sed 's/ \[[^]]*\]$//' | cut -c1-150
  echo '```'
} > bench/profile.md
echo "profile: $REQUESTS requests, bench/profile.md"
