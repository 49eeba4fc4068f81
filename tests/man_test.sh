#!/bin/sh
# The manual pages against the program, so they cannot drift:
#   - otpd.conf(5) documents exactly the keys `otpd check-config` prints
#     (it is generated from otpd.conf.example, which documents every key);
#   - otpd(8) names every command and subcommand of `otpd --help`, and the
#     bash completion offers exactly those;
#   - the exit codes are in both --help and otpd(8);
#   - groff formats both pages without a warning (where groff exists).
# Run from the repository root after `make otpd man` (make test does).
set -eu
fail() { echo "man_test: FAIL: $*" >&2; exit 1; }
make=${MAKE:-make}
build=${BUILD:-build}
$make -s --no-print-directory man BUILD="$build" >/dev/null
page8=$build/man/otpd.8
page5=$build/man/otpd.conf.5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

OTPD_DEFAULT_CONFIG= ./otpd check-config --config= | sed -n 's/^\([a-z][a-z0-9_]*\) = .*/\1/p' |
  sort >"$tmp/keys"
[ "$(wc -l <"$tmp/keys")" -gt 40 ] || fail "check-config printed too few keys"
sed -n 's/^\\fB\([a-z][a-z0-9_]*\) = .*/\1/p' "$page5" | sort >"$tmp/documented"
missing=$(comm -23 "$tmp/keys" "$tmp/documented" | tr '\n' ' ')
[ -z "$missing" ] || fail "keys not in otpd.conf(5) (add them to otpd.conf.example): $missing"
extra=$(comm -13 "$tmp/keys" "$tmp/documented" | tr '\n' ' ')
[ -z "$extra" ] || fail "otpd.conf(5) documents keys otpd does not have: $extra"

# The commands of a --help text: the names under "Subcommands:".
commands() { sed -n '/^Subcommands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p'; }
top=$(./otpd --help | commands)
[ -n "$top" ] || fail "no commands in otpd --help"
all=""
for c in $top; do
  subs=""
  if ./otpd "$c" --help | grep -q "^Usage: otpd $c .*SUBCOMMAND"; then subs=$(./otpd "$c" --help | commands); fi
  if [ -z "$subs" ]; then
    all="$all $c"
  else
    for s in $subs; do all="$all $c:$s"; done
  fi
done
for c in $all; do
  words=$(echo "$c" | sed 's/:/ /; s/-/\\\\-/g')  # roff writes check\-config
  grep -q "^\.B[I]* \"*$words" "$page8" || fail "otpd(8) has no entry for '$(echo "$c" | tr : ' ')'"
done
# The completion's lists are the commands of --help, no more, no less.
completion=contrib/bash-completion/otpd
list() { sed -n "s/^  local $1=\"\(.*\)\"$/\1/p" "$completion" | tr ' ' '\n' | sort | tr '\n' ' '; }
[ "$(list commands)" = "$(echo "$top" | sort | tr '\n' ' ')" ] || fail "completion commands: $(list commands)"
[ "$(list users_commands)" = "$(./otpd users --help | commands | sort | tr '\n' ' ')" ] ||
  fail "completion users commands: $(list users_commands)"
[ "$(list sms_commands)" = "$(./otpd sms --help | commands | sort | tr '\n' ' ')" ] ||
  fail "completion sms commands: $(list sms_commands)"
if command -v bash >/dev/null 2>&1; then
  got=$(PATH=.:$PATH bash -c '. contrib/bash-completion/otpd
    COMP_WORDS=(otpd users ""); COMP_CWORD=2; _otpd; echo "${COMPREPLY[*]}"')
  [ "$got" = "add remove list import export" ] || fail "completing 'otpd users ': $got"
fi

./otpd --help | grep -q '^Exit codes: 0 success, 1 runtime failure' || fail "--help: exit codes"
./otpd --help | grep -q '2 bad command line or configuration' || fail "--help: exit code 2"
for code in 0 1 2; do
  sed -n '/^\.SH EXIT STATUS/,/^\.SH/p' "$page8" | grep -qx ".B $code" || fail "otpd(8): exit code $code"
done
./otpd --help | grep -q 'default: /etc/otpd/otpd.conf when it exists' || fail "--help: default config"

if command -v groff >/dev/null 2>&1; then
  for page in "$page8" "$page5"; do
    out=$(LC_ALL=C.UTF-8 groff -k -man -ww -z "$page" 2>&1) || fail "groff $page: $out"
    [ -z "$out" ] || fail "groff warns on $page: $out"
  done
  LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page5" 2>/dev/null | grep -q 'code_length = 6' ||
    fail "man -l otpd.conf.5 does not show code_length"
else
  echo "man_test: SKIP groff checks: groff not installed"
fi
echo "man_test: ok ($(wc -l <"$tmp/keys") keys, $(echo $all | wc -w) commands)"
