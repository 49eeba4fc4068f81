#!/bin/sh
# The layering check (DESIGN.md "Layers"): every #include "layer/x.h" in
# src/ must point down. Prints each wrong include as file:line and exits 1
# when there is one. Allowed, per layer (a layer may always use itself):
#   core/    nothing else
#   otp/     core/
#   store/   otp/ core/
#   sms/     otp/ core/
#   http/    otp/ core/             (never store/)
#   config/  http/ core/            (validates API keys and proxy lists)
#   app/     everything
# and nothing in src/ includes app/ (main.cpp and tests/ may).
# Usage: tests/layers_check.sh [SRC_DIR]   (default: src)
set -eu
src=${1:-src}
allowed() {
  case $1 in
    core) echo "core" ;;
    otp) echo "otp core" ;;
    store) echo "store otp core" ;;
    sms) echo "sms otp core" ;;
    http) echo "http otp core" ;;
    config) echo "config http core" ;;
    app) echo "app http otp store sms config core" ;;
    *) echo "" ;;
  esac
}
bad=0
checked=0
for file in $(find "$src" -maxdepth 1 -name '*.h' -o -maxdepth 1 -name '*.cpp'); do
  echo "$file: not in a layer folder" >&2
  bad=1
done
for file in $(find "$src" -mindepth 2 -name '*.h' -o -mindepth 2 -name '*.cpp' | sort); do
  layer=$(echo "${file#"$src"/}" | cut -d/ -f1)
  ok=$(allowed "$layer")
  if [ -z "$ok" ]; then
    echo "$file: not in a known layer folder" >&2
    bad=1
    continue
  fi
  # Each quoted include with a folder: line number and target layer.
  for hit in $(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z_]*/' "$file" |
               sed 's/^\([0-9]*\):[^"]*"\([a-z_]*\)\/.*/\1:\2/'); do
    line=${hit%%:*}
    target=${hit#*:}
    checked=$((checked + 1))
    case " $ok " in
      *" $target "*) ;;
      *) echo "$file:$line: $layer/ must not include $target/" >&2; bad=1 ;;
    esac
  done
done
if [ "$checked" -eq 0 ]; then
  echo "layers_check: no include checked under $src" >&2
  exit 1
fi
[ "$bad" -eq 0 ] && echo "layers_check: $checked includes point down"
exit "$bad"
