#!/bin/sh
# Writes bench/results.md from run.sh's measurements and prints one summary
# line. Arguments: RESULTS STARTUP_MS STORAGE DURATION CONNECTIONS WRK_THREADS THREADS
# WAL ("send_8s_end=B sustained_end=B sustained_peak=B sustained_s=S") LOAD
# PAIRS RATIOS (" verify-code=r1,r2,r3 send-code=r1,r2,r3": each pair's ratio)
set -eu
RESULTS=$1 STARTUP=$2 STORAGE=$3 DURATION=$4 CONNECTIONS=$5 WRK_THREADS=$6 THREADS=$7
WAL=${8:-} LOAD=${9:-unknown} PAIRS=${10:-1} RATIOS=${11:-}
# The baseline a run is compared with: the bare server driven by the same
# wrk script (verify.lua or send.lua) in the pair measured beside it.
BASE_OF='function base_of(n) { if (n ~ /^baseline-/) return n; if (n ~ /^verify-code/) return "baseline-verify-code"; return "baseline-send-code" }'
ratiov() {
  echo "$RATIOS" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {
    n = split($2, r, ","); out = ""
    for (i = 1; i <= n; i++) out = out (i > 1 ? ", " : "") sprintf("%.2f", r[i])
    print out }'
}
walv() { echo "$WAL" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
WAL_PEAK_MB=$(awk -v b="$(walv sustained_peak)" 'BEGIN {printf "%.1f", (b + 0) / 1048576}')
WAL_END_MB=$(awk -v b="$(walv sustained_end)" 'BEGIN {printf "%.1f", (b + 0) / 1048576}')
WAL_SEND_MB=$(awk -v b="$(walv send_8s_end)" 'BEGIN {printf "%.1f", (b + 0) / 1048576}')
WAL_S=$(walv sustained_s)
OUT=bench/results.md
{
  echo "# otpd benchmark results"
  echo
  echo "Produced by \`make bench\` on $(date -u '+%Y-%m-%d %H:%M UTC'); regenerate, do not edit."
  echo
  echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)."
  echo "Load average when the run ended (other work on the machine): $LOAD."
  echo "Load: wrk -t$WRK_THREADS -c$CONNECTIONS -d${DURATION}s on the same host (loopback); server pool $THREADS threads; otpd built -O2 -DNDEBUG, SQLite WAL, synchronous=NORMAL, log_level=warn, audit trail on; per-user/per-phone send caps and the failure cap at their defaults, per-client request limit raised, resend cooldown and per-IP/global send caps off (see bench/run.sh)."
  echo
  echo "Each of verify-code and send-code was measured in $PAIRS alternating pairs: the bare"
  echo "server, then otpd on a fresh copy of the seeded database, both driven by the same wrk"
  echo "script (the same requests, the same cost to the load generator). The pair whose ratio is"
  echo "the median is shown; each row's ratio is to the baseline of its workload."
  echo "Ratios of the pairs, sorted: verify-code $(ratiov verify-code); send-code $(ratiov send-code)."
  echo
  echo "| run | req/s | ratio to baseline | p50 ms | p99 ms | p99.9 ms | socket errors | 5xx | 2xx | peak RSS MB |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  echo "$RESULTS" | awk -F'|' "$BASE_OF"'
    NF >= 9 { n++; name[n] = $0; rps[$1] = $2 }
    END {
      for (i = 1; i <= n; i++) {
        split(name[i], f, "|")
        printf "| %s | %d | %.2f | %.2f | %.2f | %.2f | %d | %d | %d | %.1f |\n",
               f[1], f[2], f[2] / rps[base_of(f[1])], f[3] / 1000, f[4] / 1000, f[5] / 1000,
               f[6], f[7], f[8], f[9] / 1024
      }
    }'
  echo
  echo "verify-code mixes right and wrong guesses over the seeded users, so its answers are 200,"
  echo "400, 404 (a code already used) and 429 (a code locked): all timed, none an error."
  echo
  echo "Startup to first answered request, 1 000 000 users and live codes: **${STARTUP} ms**."
  echo
  echo "WAL: ${WAL_SEND_MB} MB after the ${DURATION} s send-code run; during ${WAL_S} s of sustained"
  echo "send-code at full speed (send-code-60s) at most **${WAL_PEAK_MB} MB** (sampled every 0.2 s), ${WAL_END_MB} MB at the end."
  echo
  echo "$RESULTS" | awk -F'|' '
    NF >= 9 { rps[$1] = $2; rss[$1] = $9 }
    END {
      if (rss["verify-code-1m"] > 0 && rss["verify-code"] > 0)
        printf "Memory: peak RSS %.1f MB with 100 000 users, %.1f MB with 1 000 000: %.0f bytes per added user.\n",
               rss["verify-code"] / 1024, rss["verify-code-1m"] / 1024,
               (rss["verify-code-1m"] - rss["verify-code"]) * 1024 / 900000
      if (rps["send-code-full"] > 0)
        printf "\nsynchronous = FULL: send-code %d req/s against %d with NORMAL (%.2fx).\n",
               rps["send-code-full"], rps["send-code"], rps["send-code-full"] / rps["send-code"]
    }'
  echo
  echo "Storage alone (no HTTP, bench/storage_bench.cpp):"
  echo
  echo "$STORAGE" | sed 's/^/    /'
  echo
  echo "## Targets"
  echo
  echo "| target | measured | met |"
  echo "|---|---|---|"
  echo "$RESULTS" | awk -F'|' -v startup="$STARTUP" -v walpeak="$WAL_PEAK_MB" '
    NF >= 9 { rps[$1] = $2; p99[$1] = $4; rss[$1] = $9 }
    function row(name, value, ok) { printf "| %s | %s | %s |\n", name, value, ok ? "yes" : "**no**" }
    END {
      v = rps["baseline-verify-code"]; sb = rps["baseline-send-code"]
      row("verify-code >= 0.6x baseline req/s", sprintf("%.2fx", rps["verify-code"] / v), rps["verify-code"] >= 0.6 * v)
      row("send-code >= 0.5x baseline req/s", sprintf("%.2fx", rps["send-code"] / sb), rps["send-code"] >= 0.5 * sb)
      row("verify-code p99 <= 3x baseline p99", sprintf("%.1fx", p99["verify-code"] / p99["baseline-verify-code"]), p99["verify-code"] <= 3 * p99["baseline-verify-code"])
      row("send-code p99 <= 3x baseline p99", sprintf("%.1fx", p99["send-code"] / p99["baseline-send-code"]), p99["send-code"] <= 3 * p99["baseline-send-code"])
      per_user = (rss["verify-code-1m"] - rss["verify-code"]) * 1024 / 900000
      row("memory per added user (100k -> 1M users) < 512 bytes", sprintf("%.0f bytes", per_user), per_user < 512)
      row("1M users: verify within 20% of 100k", sprintf("%.2fx", rps["verify-code-1m"] / rps["verify-code"]), rps["verify-code-1m"] >= 0.8 * rps["verify-code"])
      row("startup with 1M users and live codes < 5 s", startup " ms", startup < 5000)
      row("WAL < 64 MB during sustained sends", walpeak " MB", walpeak + 0 < 64)
    }'
} > "$OUT"
echo "$RESULTS" | awk -F'|' -v startup="$STARTUP" -v walpeak="$WAL_PEAK_MB" '
  NF >= 9 { rps[$1] = $2 }
  END { v = rps["baseline-verify-code"]; sb = rps["baseline-send-code"]
        printf "bench: verify %.2fx of its baseline (%d req/s); send %.2fx (%d); verify@1M %.2fx of 100k; startup %s ms; WAL peak %s MB (bench/results.md)\n",
               rps["verify-code"] / v, v, rps["send-code"] / sb, sb, rps["verify-code-1m"] / rps["verify-code"], startup, walpeak }'
