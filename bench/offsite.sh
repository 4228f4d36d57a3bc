#!/usr/bin/env bash
# Benchmark kfadmin's offsite upload against the AWS CLI: an online backup of a Keyfount-like
# database whose archive is about 300 MB, with `--to s3://…` to a moto server on loopback, and
# `aws s3 cp` of the same archive file to the same server, alternated, median of N runs each.
# Also the peak RSS of the whole `kfadmin backup … --to` run.
#
#   bench/offsite.sh
#   BENCH_RUNS=5 BENCH_SIZE_MB=320 BENCH_DIR=/var/tmp bench/offsite.sh
#
# Prints the machine and a Markdown table; exits 1 when kfadmin's upload takes longer than
# `aws s3 cp` (ratio > 1.0) or the backup's peak RSS exceeds 64 MiB.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${BENCH_SIZE_MB:-320}
RUNS=${BENCH_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
now_ms() { date +%s%3N; }

for tool in moto_server aws; do
    command -v "$tool" >/dev/null || {
        echo "bench/offsite.sh: needs $tool (pip install 'moto[server]' awscli)" >&2
        exit 2
    }
done
log "building release binaries"
(cd "$REPO" && cargo build --quiet --release --locked --workspace)
KF="$REPO/target/release/kfadmin"
SIM="$REPO/target/release/keyfount-sim"

mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/kfadmin-offsite-bench.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true; rm -rf "$WORK"' EXIT
export AWS_ACCESS_KEY_ID=AKIAKFADMINBENCH0001 AWS_SECRET_ACCESS_KEY=kfadmin-bench-secret-0123456789
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export KFADMIN_STATE_DIR="$WORK/state"
for _ in $(seq 1 100); do
    curl -fsS "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1 && break
    sleep 0.2
done
aws s3 mb s3://kfadmin-bench >/dev/null

"$SIM" init --db "$WORK/data/keyfount.db" --size-mb "$SIZE_MB" 2>/dev/null

# Runs a command, prints its peak RSS in KiB on fd 3.
peak_rss() {
    python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
sys.stdout.buffer.write(r.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=open("/dev/fd/3", "w"))
sys.exit(r.returncode)' "$@"
}

kf=()
cli=()
rss=()
for i in $(seq 1 "$RUNS"); do
    log "run $i/$RUNS: kfadmin backup --online --to"
    cat "$WORK/data/keyfount.db" >/dev/null
    json=$(peak_rss "$KF" backup --online --db "$WORK/data/keyfount.db" -r "$WORK/out" \
        --to "s3://kfadmin-bench/kfadmin" --plaintext-offsite --json --quiet 3>"$WORK/rss")
    ok=$(printf '%s' "$json" | field '["offsite"][0]["ok"]')
    [ "$ok" = True ] || { echo "the upload failed: $json" >&2; exit 1; }
    kf+=("$(printf '%s' "$json" | field '["offsite"][0]["upload_ms"]')")
    rss+=("$(cat "$WORK/rss")")
    archive=$(printf '%s' "$json" | field '["archive"]')
    bytes=$(printf '%s' "$json" | field '["bytes"]')
    log "run $i/$RUNS: aws s3 cp of the same file"
    t0=$(now_ms)
    aws s3 cp --quiet "$archive" "s3://kfadmin-bench/awscli/$(basename "$archive")"
    cli+=("$(($(now_ms) - t0))")
    # moto keeps everything in memory: start each run from an empty bucket.
    aws s3 rm --quiet --recursive s3://kfadmin-bench/
    rm -rf "$WORK/out"
done

k=$(printf '%s\n' "${kf[@]}" | median)
c=$(printf '%s\n' "${cli[@]}" | median)
r=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
ratio=$(awk -v a="$k" -v b="$c" 'BEGIN { printf "%.3f", a / b }')
up_verdict=$(awk -v x="$ratio" 'BEGIN { print (x <= 1.0) ? "PASS" : "FAIL" }')
rss_verdict=$(awk -v x="$r" 'BEGIN { print (x <= 65536) ? "PASS" : "FAIL" }')

echo "## Machine"
echo
echo "- $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
echo "- moto_server $(python3 -c 'import moto; print(moto.__version__)') on 127.0.0.1, $(aws --version 2>&1 | cut -d' ' -f1)"
echo "- archive: $bytes bytes (database $(stat -c %s "$WORK/data/keyfount.db") bytes), $RUNS runs, medians"
echo
echo "| measure | kfadmin | aws s3 cp | ratio | criterion | verdict |"
echo "|---|---:|---:|---:|---|---|"
echo "| upload of the archive (ms) | $k | $c | $ratio | ≤ 1.0× | $up_verdict |"
echo "| peak RSS of the whole backup with --to (KiB, worst run) | $r | | | ≤ 65536 | $rss_verdict |"
echo
echo "kfadmin runs: ${kf[*]} ms; aws s3 cp runs: ${cli[*]} ms; peak RSS: ${rss[*]} KiB"
[ "$up_verdict" = PASS ] && [ "$rss_verdict" = PASS ]
