#!/bin/sh
# Proves tests/layers_check.sh: it passes on the real tree, and fails on a
# copy of one small tree for each wrong include it must catch.
set -eu
here=$(dirname "$0")
check="$here/layers_check.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh "$check" "$here/../src" >/dev/null

expect_fail() {  # layer file, included header
  rm -rf "$tmp/src"; mkdir -p "$tmp/src/core" "$tmp/src/${1%/*}"
  echo '#pragma once' > "$tmp/src/core/status.h"
  printf '#include "core/status.h"\n#include "%s"\n' "$2" > "$tmp/src/$1"
  if sh "$check" "$tmp/src" 2>"$tmp/err"; then
    echo "layers_check_test: $1 including $2 was not caught" >&2; exit 1
  fi
  grep -q "$1:2:" "$tmp/err" || { echo "layers_check_test: no line for $1" >&2; exit 1; }
}
expect_fail otp/otp_service.cpp store/storage_sqlite.h
expect_fail core/log.cpp otp/storage.h
expect_fail http/http_api.cpp store/sqlite_db.h
expect_fail store/storage_sqlite.cpp app/daemon.h
expect_fail sms/sms_twilio.cpp http/http_server.h
# A file outside every layer folder fails too.
rm -rf "$tmp/src"; mkdir -p "$tmp/src/core"
echo '#include "core/status.h"' > "$tmp/src/core/a.cpp"; : > "$tmp/src/flat.cpp"
if sh "$check" "$tmp/src" 2>/dev/null; then echo "layers_check_test: flat file not caught" >&2; exit 1; fi
echo "layers_check_test: 6 wrong layouts caught, the real tree passes"
