#!/bin/sh
# A live otpd's /metrics (after a send and a verify, so every family has
# samples) against the README's metrics table: every metric and every
# outcome the endpoint shows is in the table, and every metric in the table
# is served. Then `promtool check metrics` on it where promtool (Debian
# package prometheus) is on the PATH. Run from the repository root after
# `make otpd` (make test does).
set -eu
fail() { echo "metrics_check: FAIL: $*" >&2; exit 1; }
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
kill -TERM "$pid"
wait "$pid" || fail "otpd exited $?"
pid=""

# The README's table: the rows between "| metric | type | labels |" and
# the first line that is not a row.
sed -n '/^| metric | type | labels |$/,/^[^|]/p' README.md | grep '^| `otpd_' >"$tmp/table"
[ -s "$tmp/table" ] || fail "no metrics table in README.md"
sed -n 's/^# TYPE \(otpd_[a-z_]*\) .*/\1/p' "$tmp/metrics" | sort -u >"$tmp/served"
sed -n 's/^| `\(otpd_[a-z_]*\)`.*/\1/p' "$tmp/table" | sort -u >"$tmp/documented"
missing=$(comm -23 "$tmp/served" "$tmp/documented" | tr '\n' ' ')
[ -z "$missing" ] || fail "metrics served but not in README's table: $missing"
extra=$(comm -13 "$tmp/served" "$tmp/documented" | tr '\n' ' ')
[ -z "$extra" ] || fail "README's table lists metrics otpd does not serve: $extra"
for metric in otpd_sends_total otpd_verifies_total; do
  row=$(grep "^| \`$metric\`" "$tmp/table")
  for outcome in $(sed -n "s/^$metric{outcome=\"\([a-z_]*\)\"}.*/\1/p" "$tmp/metrics"); do
    echo "$row" | grep -q "\`$outcome\`" || fail "README's $metric row lacks the outcome $outcome"
  done
done

row=$(grep '^| `otpd_channel_sends_total`' "$tmp/table") || fail "no otpd_channel_sends_total row"
for channel in $(sed -n 's/^otpd_channel_sends_total{channel="\([a-z]*\)".*/\1/p' "$tmp/metrics" | sort -u); do
  echo "$row" | grep -q "\`$channel\`" || fail "README's otpd_channel_sends_total row lacks the channel $channel"
done

if command -v promtool >/dev/null 2>&1; then
  out=$(promtool check metrics <"$tmp/metrics" 2>&1) || fail "promtool check metrics: $out"
  echo "metrics_check: ok, promtool check metrics passes${out:+ ($out)}"
else
  echo "metrics_check: ok; SKIP promtool check metrics: promtool not installed (Debian package prometheus)"
fi
