#!/usr/bin/env bash
# Benchmark what age encryption adds to an online backup of a ~300 MB Keyfount-like database:
# `kfadmin backup --online` with and without `--encrypt-to`, alternated, median of N runs each.
#
#   bench/encrypt.sh
#   BENCH_RUNS=5 BENCH_SIZE_MB=300 BENCH_DIR=/var/tmp bench/encrypt.sh
#
# Prints the machine and a Markdown table; exits 1 when encryption adds more than 10 %.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${BENCH_SIZE_MB:-300}
RUNS=${BENCH_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

command -v age-keygen >/dev/null || { echo "bench/encrypt.sh: needs Debian's age (apt-get install age)" >&2; exit 2; }
log "building release binaries"
(cd "$REPO" && cargo build --quiet --release --locked --workspace)
KF="$REPO/target/release/kfadmin"
SIM="$REPO/target/release/keyfount-sim"

mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/kfadmin-encrypt-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$SIM" init --db "$WORK/data/keyfount.db" --size-mb "$SIZE_MB" 2>/dev/null
age-keygen -o "$WORK/key.txt" 2>/dev/null
recipient=$(sed -n 's/^# public key: //p' "$WORK/key.txt")

plain=()
enc=()
for i in $(seq 1 "$RUNS"); do
    for kind in plain age; do
        log "run $i/$RUNS: $kind"
        cat "$WORK/data/keyfount.db" >/dev/null
        extra=()
        [ "$kind" = age ] && extra=(--encrypt-to "$recipient")
        json=$("$KF" backup --online --db "$WORK/data/keyfount.db" --out "$WORK/out" --json --quiet "${extra[@]}")
        ms=$(printf '%s' "$json" | field '["duration_ms"]')
        bytes=$(printf '%s' "$json" | field '["bytes"]')
        if [ "$kind" = plain ]; then plain+=("$ms"); plain_bytes=$bytes; else enc+=("$ms"); enc_bytes=$bytes; fi
        rm -rf "$WORK/out"
    done
done
# The encrypted archive really is readable with the key.
"$KF" backup --online --db "$WORK/data/keyfount.db" --out "$WORK/out" --quiet --encrypt-to "$recipient" >/dev/null
age -d -i "$WORK/key.txt" "$WORK"/out/*.age | tar tzf - >/dev/null

p=$(printf '%s\n' "${plain[@]}" | median)
e=$(printf '%s\n' "${enc[@]}" | median)
ratio=$(awk -v a="$e" -v b="$p" 'BEGIN { printf "%.3f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.10) ? "PASS" : "FAIL" }')

echo "## Machine"
echo
echo "- $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
echo "- work dir filesystem: $(df -T "$WORK" | awk 'NR==2 {print $2}'), database $(stat -c %s "$WORK/data/keyfount.db") bytes"
echo "- $("$KF" --version)"
echo
echo "## Encryption overhead (median of $RUNS, whole online backup incl. verification)"
echo
echo "| criterion | plain | encrypted (age X25519) | ratio | limit | verdict |"
echo "|---|---|---|---|---|---|"
echo "| online backup time | ${p} ms | ${e} ms | ${ratio} | <= 1.10 | ${verdict} |"
echo
echo "All runs, ms: plain ${plain[*]}; encrypted ${enc[*]}. Archive sizes: plain ${plain_bytes}, encrypted ${enc_bytes} bytes."
[ "$verdict" = PASS ]
