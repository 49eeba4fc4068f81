#!/bin/sh
# Runs contrib/nginx-otpd.conf for real: nginx with a self-signed
# certificate in front of ./otpd, both on free loopback ports, then checks
# send and verify over HTTPS, the redirect, the header and body limits,
# /metrics from localhost and the request ID handed to otpd.
# Skips with a message when nginx, openssl or curl is missing.
set -eu
for tool in nginx openssl curl; do
  PATH="$PATH:/usr/sbin" command -v $tool >/dev/null 2>&1 ||
    { echo "nginx_test: SKIP: $tool not installed"; exit 0; }
done
NGINX=$(PATH="$PATH:/usr/sbin" command -v nginx)
tmp=$(mktemp -d)
otpd_pid=""
nginx_pid=""
cleanup() {
  [ -z "$nginx_pid" ] || kill "$nginx_pid" 2>/dev/null || true
  [ -z "$otpd_pid" ] || kill "$otpd_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "nginx_test: FAIL: $*" >&2
  cat "$tmp/otpd.log" "$tmp/error.log" >&2 2>/dev/null || true
  exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cat >"$tmp/otpd.conf" <<CONF
listen = "127.0.0.1"
port = 0
database = "$tmp/otpd.db"
sms_log_file = "$tmp/sms.log"
[users]
abc = "+11111111111"
CONF
# The log exists before the poll below reads it, whenever the shell opens it.
: >"$tmp/otpd.log"
./otpd serve --config "$tmp/otpd.conf" 2>>"$tmp/otpd.log" &
otpd_pid=$!
for _ in $(seq 100); do
  port=$(sed -n 's/.*msg="otpd started".* port=\([0-9]*\).*/\1/p' "$tmp/otpd.log")
  [ -z "$port" ] || break
  sleep 0.1
done
[ -n "$port" ] || fail "otpd did not start"

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=otp.example.com \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
https=$(free_port)
http=$(free_port)
# The example as shipped, with test ports and paths.
sed -e "s|server 127.0.0.1:8000;|server 127.0.0.1:$port;|" \
    -e "s|listen 443 ssl http2;|listen 127.0.0.1:$https ssl http2;|" \
    -e "s|listen 80;|listen 127.0.0.1:$http;|" \
    -e '/listen \[::\]/d' \
    -e "s|/etc/letsencrypt/live/otp.example.com/fullchain.pem|$tmp/cert.pem|" \
    -e "s|/etc/letsencrypt/live/otp.example.com/privkey.pem|$tmp/key.pem|" \
    contrib/nginx-otpd.conf >"$tmp/site.conf"
cat >"$tmp/nginx.conf" <<CONF
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 64; }
http {
  access_log $tmp/access.log;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;
  include $tmp/site.conf;
}
CONF
"$NGINX" -t -q -c "$tmp/nginx.conf" -p "$tmp" 2>"$tmp/error.log" || fail "nginx -t"
"$NGINX" -c "$tmp/nginx.conf" -p "$tmp" 2>>"$tmp/error.log" &
nginx_pid=$!
base=https://otp.example.com:$https
c() { curl -sk --resolve "otp.example.com:$https:127.0.0.1" "$@"; }
for _ in $(seq 50); do c -o /dev/null "$base/healthz" && break; sleep 0.1; done

out=$(c -X POST "$base/send-code" -H 'Content-Type: application/json' -d '{"user_id":"ABC"}')
[ "$out" = '{"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+1*******111"}' ] ||
  fail "send-code through nginx: $out"
code=$(sed -n 's/^+11111111111 .* \([0-9]\{6\}\)\..*/\1/p' "$tmp/sms.log" | tail -n 1)
[ -n "$code" ] || fail "no code in the sms log"
out=$(c -X POST "$base/verify-code" -H 'Content-Type: application/json' \
  -d "{\"user_id\":\"abc\",\"passcode\":\"$code\"}")
[ "$out" = '{"success":true,"message":"OTP verified successfully","user_id":"abc"}' ] ||
  fail "verify-code through nginx: $out"

status() { c -o /dev/null -w '%{http_code}' "$@"; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/healthz")" = 301 ] ||
  fail "port 80 does not redirect"
big=$(head -c 9000 /dev/zero | tr '\0' a)
[ "$(status -H "X-Big: $big" "$base/healthz")" = 400 ] || fail "a 9 KB header line passed"
body=$(head -c 20000 /dev/zero | tr '\0' a)
[ "$(status -X POST -H 'Content-Type: application/json' -d "$body" "$base/send-code")" = 413 ] ||
  fail "a 20 KB body passed"
c "$base/metrics" | grep -q '^otpd_verifies_total{outcome="ok"} 1$' || fail "metrics via nginx"
id=$(c -D - -o /dev/null "$base/healthz" | tr -d '\r' | sed -n 's/^[Xx]-[Rr]equest-[Ii]d: //p')
[ ${#id} -eq 32 ] || fail "nginx's request ID did not reach otpd: '$id'"
grep -q "request_id=$id " "$tmp/otpd.log" || fail "otpd did not log nginx's request ID"
echo "nginx_test: ok (nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'))"
