#!/bin/sh
# make install into a temporary DESTDIR, then checks of what it installed:
# modes, the config never overwritten, the unit's hardening, and, where the
# tools exist, `systemd-analyze verify` and `systemd-analyze security`.
# Run from the repository root after `make otpd` (make test does).
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make=${MAKE:-make}
fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
mode() { stat -c %a "$1"; }

$make -s --no-print-directory install DESTDIR="$tmp" PREFIX=/usr >/dev/null
unit=$tmp/usr/lib/systemd/system/otpd.service
[ "$(mode "$tmp/usr/bin/otpd")" = 755 ] || fail "binary mode"
[ "$(mode "$tmp/etc/otpd/otpd.conf")" = 644 ] || fail "config mode"
[ "$(mode "$tmp/etc/otpd/twilio_auth_token")" = 600 ] || fail "token file mode"
[ ! -s "$tmp/etc/otpd/twilio_auth_token" ] || fail "token file not empty"
cmp -s otpd.conf.example "$tmp/etc/otpd/otpd.conf" || fail "config differs from the example"
[ -f "$tmp/usr/lib/sysusers.d/otpd.conf" ] || fail "sysusers file"
for f in usr/share/man/man8/otpd.8 usr/share/man/man5/otpd.conf.5 \
  usr/share/bash-completion/completions/otpd; do
  [ "$(mode "$tmp/$f")" = 644 ] || fail "/$f missing or not 0644"
done
# Installed stripped: no symbol table, no debug sections.
if readelf -S "$tmp/usr/bin/otpd" | grep -q -e '\.symtab' -e '\.debug_'; then
  fail "installed binary is not stripped"
fi
"$tmp/usr/bin/otpd" --version >/dev/null || fail "installed binary does not run"
"$tmp/usr/bin/otpd" check-config --config "$tmp/etc/otpd/otpd.conf" >/dev/null ||
  fail "installed config does not check"

# A second install keeps an edited config and token.
echo 'code_length = 8' >>"$tmp/etc/otpd/otpd.conf"
echo 'tok' >"$tmp/etc/otpd/twilio_auth_token"
$make -s --no-print-directory install DESTDIR="$tmp" PREFIX=/usr >/dev/null
grep -q '^code_length = 8$' "$tmp/etc/otpd/otpd.conf" || fail "config was overwritten"
grep -q '^tok$' "$tmp/etc/otpd/twilio_auth_token" || fail "token was overwritten"

# Settings belong in the config file: the unit passes only --config.
grep -qxF 'ExecStart=/usr/bin/otpd serve --config /etc/otpd/otpd.conf' "$unit" || fail "ExecStart"
for line in User=otpd StateDirectory=otpd \
  LoadCredential=twilio_auth_token:/etc/otpd/twilio_auth_token \
  EnvironmentFile=-/etc/otpd/otpd.env 'ExecReload=/bin/kill -HUP $MAINPID' \
  NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
  'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' SystemCallFilter=@system-service \
  CapabilityBoundingSet= MemoryDenyWriteExecute=yes Type=notify NotifyAccess=main \
  WatchdogSec=30s RestartPreventExitStatus=2 LimitCORE=0; do
  grep -qxF "$line" "$unit" || fail "unit lacks $line"
done

# The README names the credential as the unit does.
unit_credential=$(sed -n 's/^LoadCredential=//p' "$unit")
for c in $(grep -o 'LoadCredential=[^` ]*' README.md otpd.conf.example | sed 's/^.*LoadCredential=//' | sort -u); do
  [ "$c" = "$unit_credential" ] || fail "README names LoadCredential=$c, the unit has $unit_credential"
done

if command -v systemd-analyze >/dev/null 2>&1; then
  # verify checks that ExecStart's binary exists: point it into DESTDIR.
  mkdir -p "$tmp/check"
  sed "s|^ExecStart=/usr/bin/otpd|ExecStart=$tmp/usr/bin/otpd|" "$unit" >"$tmp/check/otpd.service"
  out=$(systemd-analyze verify "$tmp/check/otpd.service" 2>&1) || fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warned: $out"
  if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
    score=$(systemd-analyze security --offline=true "$tmp/check/otpd.service" 2>&1 |
      sed -n 's/.*Overall exposure level for otpd.service: \([0-9.]*\).*/\1/p')
    [ -n "$score" ] || fail "no systemd-analyze security score"
    systemd-analyze security --offline=true --threshold=12 "$tmp/check/otpd.service" >/dev/null ||
      fail "exposure $score is above 1.2"
    echo "install_test: systemd-analyze security: exposure $score"
  else
    echo "install_test: SKIP systemd-analyze security: this systemd has no --offline"
  fi
else
  echo "install_test: SKIP systemd-analyze verify/security: systemd-analyze not installed"
fi

$make -s --no-print-directory uninstall DESTDIR="$tmp" PREFIX=/usr >/dev/null
[ ! -e "$tmp/usr/bin/otpd" ] && [ ! -e "$unit" ] || fail "uninstall left files"
[ -e "$tmp/etc/otpd/otpd.conf" ] || fail "uninstall removed the config"
echo "install_test: ok"
