#!/bin/sh
# Clean build time of otpd, per commit: `make -j$JOBS otpd` from clean, then
# `make -j$JOBS otpd_test` on top of it (the test sources and the link; the
# sum is a clean `make otpd otpd_test`). Plain g++, no ccache. Each commit is
# checked out in a temporary worktree (removed at the end), built RUNS times;
# the run with the least CPU (user + sys, the figure that is robust to other
# load on the machine) is kept, wall time and `uptime` beside it.
#   bench/build_time.sh [COMMIT...]
# Default commits: the one before cpp-httplib was vendored (Debian's
# libcpp-httplib-dev 0.11.4 must be installed to build it) and HEAD.
# JOBS (default 2), RUNS (default 2), KEEP=1 keeps the raw figures. Also prints the CPU seconds of every
# translation unit that includes cpp-httplib, per commit (lowest run).
set -eu
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
RUNS=${RUNS:-2}
if [ $# -eq 0 ]; then
  first=$(git log --reverse --diff-filter=A --format=%H -- \
    third_party/cpp-httplib/httplib.h | head -1)
  set -- "$first^" HEAD
fi
TMP=$(mktemp -d /tmp/otpd_build_time.XXXXXX)
TREES=""
SHAS=""  # the commits as measured (HEAD may move during the runs)
cleanup() {
  for t in $TREES; do git worktree remove --force "$t" 2>/dev/null || true; done
  rm -rf "$TMP"/tree-*
  if [ -n "${KEEP:-}" ]; then echo "raw figures kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT INT TERM

# measure COMMIT: lines "sha|target|wall|user|sys|load" in $TMP/runs and
# "sha|run|user+sys|source" per compiled file in $TMP/tus.
measure() {
  sha=$(git rev-parse --short "$1")
  SHAS="$SHAS $sha"
  tree=$TMP/tree-$sha
  git worktree add -q --detach "$tree" "$sha"
  TREES="$TREES $tree"
  has_test=$(cd "$tree" && make -n otpd_test >/dev/null 2>&1 && echo 1 || true)
  run=1
  while [ "$run" -le "$RUNS" ]; do
    (cd "$tree" && rm -rf build otpd otpd_test libotpd.a .build-flavour)
    for target in otpd ${has_test:+otpd_test}; do
      load=$(uptime | sed 's/.*load average: //')
      tus=$TMP/tu-$sha-$run
      # Every compile and link is timed too, to find the costly files.
      (cd "$tree" && /usr/bin/time -o "$TMP/t" -f '%e|%U|%S' \
        make -j"$JOBS" CXX="/usr/bin/time -a -o $tus -f %U+%S@%C g++" \
        "$target" >"$TMP/log" 2>&1) || {
        echo "build_time.sh: make $target failed at $sha:" >&2
        tail -20 "$TMP/log" >&2
        exit 1
      }
      echo "$sha|$target|$(cat "$TMP/t")|$load" >>"$TMP/runs"
      echo "  $sha $target run $run: $(cut -d'|' -f1 "$TMP/t") s wall," \
        "load $load" >&2
    done
    awk -F'@' -v s="$sha" -v r="$run" '{
        split($1, t, "+"); src = "link"
        n = split($2, w, " ")
        for (i = 1; i <= n; i++) if (w[i] ~ /\.cpp$/) src = w[i]
        printf "%s|%s|%.2f|%s\n", s, r, t[1] + t[2], src }' "$tus" >>"$TMP/tus"
    run=$((run + 1))
  done
  # The files that include cpp-httplib, directly or through a header.
  (cd "$tree" && grep -rlE '#include [<"](otpd_)?httplib' src tests main.cpp \
    2>/dev/null || true) >"$TMP/inc-$sha"
}

for c in "$@"; do measure "$c"; done

printf '\n%-10s %-10s %9s %9s %9s %9s  %s\n' commit target wall_s user_s \
  sys_s cpu_s 'load (1, 5, 15 min)'
awk -F'|' '{ k = $1 "|" $2; cpu = $4 + $5
    if (!(k in best) || cpu < best[k]) { best[k] = cpu; line[k] = $0 }
    if (!(k in order)) { order[k] = ++n; keys[n] = k } }
  END { for (i = 1; i <= n; i++) { split(line[keys[i]], f, "|")
    printf "%-10s %-10s %9.1f %9.1f %9.1f %9.1f  %s\n",
      f[1], f[2], f[3], f[4], f[5], f[4] + f[5], f[6] } }' "$TMP/runs"
echo
echo "Translation units with cpp-httplib in them (CPU s, lowest run):"
for sha in $SHAS; do
  # Headers that include it, directly or through another one, then the
  # .cpp files that include any of them.
  (cd "$TMP/tree-$sha" && {
    inc=$TMP/inc-$sha
    while :; do
      hdrs=$(grep '\.h$' "$inc" | sed 's|.*/||' | sort -u | tr '\n' '|' | sed 's/|$//')
      [ -n "$hdrs" ] || break
      { cat "$inc"; grep -rlE "#include [<\"]([^>\"]*/)?($hdrs)[>\"]" src tests main.cpp; } \
        | sort -u >"$inc.new"
      if cmp -s "$inc" "$inc.new"; then break; fi
      mv "$inc.new" "$inc"
    done
    grep '\.cpp$' "$inc" || true
  }) >"$TMP/cpp-$sha"
  awk -F'|' -v s="$sha" 'NR == FNR { want[$1] = 1; next }
    $1 != s { next }
    { all[$2] += $3 }
    $4 in want { if (!($4 in b) || $3 < b[$4]) b[$4] = $3 }
    END { for (r in all) if (lo == "" || all[r] < lo) lo = all[r]
      for (f in b) { n++; sum += b[f] }
      printf "  %s: %d files, %.1f s of the %.1f s of all compiles and links\n",
        s, n, sum, lo
      for (f in b) printf "    %6.1f  %s\n", b[f], f | "sort -rn"
      close("sort -rn") }' "$TMP/cpp-$sha" "$TMP/tus"
done
