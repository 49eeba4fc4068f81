#!/bin/sh
# make deb, then the packages installed with `dpkg --root` into a throw-away
# root (maintainer scripts run there, chrootless, with $DPKG_ROOT): the
# layout, modes, conffile, system user, stripped binary and its separate
# debug symbols, the installed otpd started as the unit starts it (its
# ExecStart, the token only in $CREDENTIALS_DIRECTORY), then remove and
# purge. Run from the repository root (make test does). Skips without dpkg-deb.
set -eu
fail() { echo "deb_test: FAIL: $*" >&2; exit 1; }
if ! command -v dpkg-deb >/dev/null 2>&1 || ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
  echo "deb_test: SKIP: dpkg-deb or dpkg-shlibdeps (dpkg-dev) not installed"
  exit 0
fi
make=${MAKE:-make}
build=${BUILD:-build}
tmp=$(mktemp -d)
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
mode() { stat -c %a "$1"; }

debs=$($make -s --no-print-directory deb BUILD="$build" | grep '\.deb$')
deb=$(echo "$debs" | grep '/otpd_')
dbgsym=$(echo "$debs" | grep '/otpd-dbgsym_')
[ -f "$deb" ] && [ -f "$dbgsym" ] || fail "make deb did not print both packages: $debs"

[ "$(dpkg-deb -f "$deb" Package)" = otpd ] || fail "Package"
dpkg-deb -f "$deb" Depends | grep -q 'libc6' || fail "Depends lacks libc6"
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/otpd/otpd.conf ] ||
  fail "conffiles is not /etc/otpd/otpd.conf"
[ "$(dpkg-deb -f "$dbgsym" Depends)" = "otpd (= $(dpkg-deb -f "$deb" Version))" ] ||
  fail "dbgsym Depends"

host_passwd=$(cksum </etc/passwd)
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
: >"$root/var/lib/dpkg/status"
dpkgr() { dpkg --root="$root" --force-script-chrootless --force-depends --force-confold "$@"; }
dpkgr -i "$deb" "$dbgsym" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -i"; }

bin=$root/usr/bin/otpd
for f in usr/bin/otpd usr/lib/systemd/system/otpd.service usr/lib/sysusers.d/otpd.conf \
  usr/share/man/man8/otpd.8.gz usr/share/man/man5/otpd.conf.5.gz \
  usr/share/bash-completion/completions/otpd usr/share/doc/otpd/copyright etc/otpd/otpd.conf; do
  [ -f "$root/$f" ] || fail "missing /$f"
done
[ "$(mode "$bin")" = 755 ] || fail "binary mode"
[ "$(mode "$root/etc/otpd/otpd.conf")" = 644 ] || fail "config mode"
[ "$(mode "$root/etc/otpd/twilio_auth_token")" = 600 ] || fail "token file mode (postinst)"
[ ! -s "$root/etc/otpd/twilio_auth_token" ] || fail "token file not empty"
cmp -s otpd.conf.example "$root/etc/otpd/otpd.conf" || fail "config differs from the example"
grep -q '^otpd:x:[0-9]*:[0-9]*:.*:/var/lib/otpd:' "$root/etc/passwd" || fail "no otpd user (postinst)"
[ "$(cksum </etc/passwd)" = "$host_passwd" ] || fail "the maintainer scripts changed the host's /etc/passwd"
dpkg-deb -c "$deb" | awk '{print $2}' | grep -vqx 'root/root' && fail "a file not owned by root"

# Stripped, with the symbols in the dbgsym package under the build ID.
readelf -S "$bin" | grep -q '\.symtab' && fail "installed binary is not stripped"
build_id=$(readelf -n "$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
debug=$root/usr/lib/debug/.build-id/$(echo "$build_id" | cut -c1-2)/$(echo "$build_id" | cut -c3-).debug
[ -f "$debug" ] || fail "no debug file for build ID $build_id"
readelf -S "$debug" 2>/dev/null | grep -q '\.debug_info' || fail "debug file has no .debug_info"
size=$(stat -c %s "$bin")
[ "$size" -lt 8000000 ] || fail "installed binary is $size bytes"

# The unit's ExecStart, as systemd runs it: the config only, the token in
# the credentials directory, the account in the environment file. The
# database goes into the throw-away root through the environment (the
# unit's StateDirectory= is /var/lib/otpd).
exec_start=$(sed -n 's/^ExecStart=//p' "$root/usr/lib/systemd/system/otpd.service")
[ "$exec_start" = "/usr/bin/otpd serve --config /etc/otpd/otpd.conf" ] || fail "ExecStart: $exec_start"
mkdir -p "$tmp/creds" "$root/var/lib/otpd"
: >"$tmp/otpd.log"
echo "deb-test-token-0123456789" >"$tmp/creds/twilio_auth_token"
chmod 0400 "$tmp/creds/twilio_auth_token"
CREDENTIALS_DIRECTORY=$tmp/creds TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef \
  TWILIO_PHONE_NUMBER=+15550001111 OTPD_DATABASE=$root/var/lib/otpd/otpd.db OTPD_PORT=0 \
  OTPD_DEFAULT_CONFIG= "$bin" serve --config "$root/etc/otpd/otpd.conf" >>"$tmp/otpd.log" 2>&1 &
pid=$!
i=0
until grep -q 'msg="otpd started"' "$tmp/otpd.log"; do
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/otpd.log" >&2; fail "the installed otpd did not start"; }
  i=$((i + 1))
  [ "$i" -lt 1000 ] || fail "no start after 10 s"
  sleep 0.01
done
grep -q 'sms_backend=twilio' "$tmp/otpd.log" || fail "the credential did not make Twilio the backend"
port=$(sed -n 's/.*msg="otpd started".* port=\([0-9]*\).*/\1/p' "$tmp/otpd.log")
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] || fail "readyz"
kill -TERM "$pid"
wait "$pid" || fail "the installed otpd exited $?"
pid=""
grep -q deb-test-token "$tmp/otpd.log" && fail "the token is in the log"

# An upgrade keeps an edited conffile; remove keeps it; purge removes it.
echo 'code_length = 8' >>"$root/etc/otpd/otpd.conf"
echo tok >"$root/etc/otpd/twilio_auth_token"
dpkgr -i "$deb" >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "reinstall"; }
grep -q '^code_length = 8$' "$root/etc/otpd/otpd.conf" || fail "upgrade replaced the edited config"
grep -q '^tok$' "$root/etc/otpd/twilio_auth_token" || fail "upgrade replaced the token"
dpkgr -r otpd-dbgsym otpd >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg -r"; }
[ ! -e "$bin" ] || fail "remove left the binary"
[ -e "$root/etc/otpd/otpd.conf" ] || fail "remove took the config"
dpkgr --purge otpd >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg --purge"; }
[ ! -e "$root/etc/otpd" ] || fail "purge left /etc/otpd: $(ls -A "$root/etc/otpd")"
echo "deb_test: ok ($(basename "$deb"), binary $size bytes)"
