#!/bin/sh
# `promtool check metrics` on a live otpd's /metrics (after a send and a
# verify, so every family has samples). Skips where promtool (Debian
# package prometheus) is not installed. Run from the repository root after
# `make otpd` (make test does).
set -eu
fail() { echo "promtool_test: FAIL: $*" >&2; exit 1; }
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool_test: SKIP: promtool not installed (Debian package prometheus)"
  exit 0
fi
tmp=$(mktemp -d)
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
: >"$tmp/otpd.log"
OTPD_DEFAULT_CONFIG= ./otpd serve --config= --port 0 --database "$tmp/otpd.db" \
  --sms-log-file "$tmp/sms.log" >>"$tmp/otpd.log" 2>&1 &
pid=$!
i=0
until grep -q 'msg="otpd started"' "$tmp/otpd.log"; do
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/otpd.log" >&2; fail "otpd did not start"; }
  i=$((i + 1))
  [ "$i" -lt 1000 ] || fail "no start after 10 s"
  sleep 0.01
done
port=$(sed -n 's/.*msg="otpd started".* port=\([0-9]*\).*/\1/p' "$tmp/otpd.log")
base=http://127.0.0.1:$port
curl -s -o /dev/null -X POST "$base/send-code" -H 'Content-Type: application/json' -d '{"user_id":"nobody"}'
curl -s -o /dev/null -X POST "$base/verify-code" -H 'Content-Type: application/json' \
  -d '{"user_id":"nobody","passcode":"000000"}'
curl -s "$base/metrics" >"$tmp/metrics"
grep -q '^otpd_sends_total' "$tmp/metrics" || fail "no otpd_sends_total in /metrics"
out=$(promtool check metrics <"$tmp/metrics" 2>&1) || fail "promtool check metrics: $out"
kill -TERM "$pid"
wait "$pid" || fail "otpd exited $?"
pid=""
echo "promtool_test: ok${out:+ ($out)}"
