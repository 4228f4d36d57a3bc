#!/usr/bin/env bash
# Benchmark kfadmin's offsite upload against the AWS CLI: an online backup of a Keyfount-like
# database whose archive is about 300 MB, with `--to s3://…` to a moto server on loopback, and
# `aws s3 cp` of the same archive file to the same server, alternated, median of N runs each.
# Also the peak RSS of the whole `kfadmin backup … --to` run. Then the same through a slow link
# (bench/throttle.py: BENCH_SLOW_RATE bytes/s over all connections, default 2 MiB/s) with a
# smaller database (BENCH_SLOW_MB, default 64: more parts than are in flight at once), one run
# each: a slow link must not raise memory.
#
#   bench/offsite.sh
#   BENCH_RUNS=5 BENCH_SIZE_MB=320 BENCH_DIR=/var/tmp bench/offsite.sh
#
# Prints the machine and a Markdown table; exits 1 when kfadmin's upload takes longer than
# `aws s3 cp` (ratio > 1.0) or a backup's peak RSS exceeds 64 MiB.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${BENCH_SIZE_MB:-320}
RUNS=${BENCH_RUNS:-3}
SLOW_MB=${BENCH_SLOW_MB:-64}
SLOW_RATE=${BENCH_SLOW_RATE:-2097152}
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
slow_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 "$REPO/bench/throttle.py" "$slow_port" "$port" "$SLOW_RATE" >"$WORK/throttle.log" 2>&1 &
throttle=$!
trap 'kill "$moto" "$throttle" 2>/dev/null || true; rm -rf "$WORK"' EXIT
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

# The slow link: one run each, through the throttling proxy.
"$SIM" init --db "$WORK/slow/keyfount.db" --size-mb "$SLOW_MB" 2>/dev/null
log "slow link ($SLOW_RATE bytes/s): kfadmin backup --online --to"
json=$(AWS_ENDPOINT_URL="http://127.0.0.1:$slow_port" peak_rss "$KF" backup --online \
    --db "$WORK/slow/keyfount.db" -r "$WORK/out" --to "s3://kfadmin-bench/slow" \
    --plaintext-offsite --json --quiet 3>"$WORK/rss")
ok=$(printf '%s' "$json" | field '["offsite"][0]["ok"]')
[ "$ok" = True ] || { echo "the upload through the slow link failed: $json" >&2; exit 1; }
slow_kf=$(printf '%s' "$json" | field '["offsite"][0]["upload_ms"]')
slow_rss=$(cat "$WORK/rss")
slow_bytes=$(printf '%s' "$json" | field '["bytes"]')
archive=$(printf '%s' "$json" | field '["archive"]')
log "slow link: aws s3 cp of the same file"
t0=$(now_ms)
aws --endpoint-url "http://127.0.0.1:$slow_port" s3 cp --quiet "$archive" "s3://kfadmin-bench/slowcli/$(basename "$archive")"
slow_cli=$(($(now_ms) - t0))
aws s3 rm --quiet --recursive s3://kfadmin-bench/
rm -rf "$WORK/out"

k=$(printf '%s\n' "${kf[@]}" | median)
c=$(printf '%s\n' "${cli[@]}" | median)
r=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
ratio=$(awk -v a="$k" -v b="$c" 'BEGIN { printf "%.3f", a / b }')
up_verdict=$(awk -v x="$ratio" 'BEGIN { print (x <= 1.0) ? "PASS" : "FAIL" }')
rss_verdict=$(awk -v x="$r" 'BEGIN { print (x <= 65536) ? "PASS" : "FAIL" }')
slow_ratio=$(awk -v a="$slow_kf" -v b="$slow_cli" 'BEGIN { printf "%.3f", a / b }')
slow_up_verdict=$(awk -v x="$slow_ratio" 'BEGIN { print (x <= 1.0) ? "PASS" : "FAIL" }')
slow_rss_verdict=$(awk -v x="$slow_rss" 'BEGIN { print (x <= 65536) ? "PASS" : "FAIL" }')

echo "## Machine"
echo
echo "- $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
echo "- moto_server $(python3 -c 'import moto; print(moto.__version__)') on 127.0.0.1, $(aws --version 2>&1 | cut -d' ' -f1)"
echo "- archive: $bytes bytes (database $(stat -c %s "$WORK/data/keyfount.db") bytes), $RUNS runs, medians"
echo "- slow link: bench/throttle.py at $SLOW_RATE bytes/s over all connections; archive $slow_bytes bytes, one run each"
echo "- load when done: $(uptime | sed 's/.*load average/load average/')"
echo
echo "| measure | kfadmin | aws s3 cp | ratio | criterion | verdict |"
echo "|---|---:|---:|---:|---|---|"
echo "| upload of the archive (ms) | $k | $c | $ratio | ≤ 1.0× | $up_verdict |"
echo "| peak RSS of the whole backup with --to (KiB, worst run) | $r | | | ≤ 65536 | $rss_verdict |"
echo "| slow link: upload of the archive (ms) | $slow_kf | $slow_cli | $slow_ratio | ≤ 1.0× | $slow_up_verdict |"
echo "| slow link: peak RSS of the whole backup with --to (KiB) | $slow_rss | | | ≤ 65536 | $slow_rss_verdict |"
echo
echo "kfadmin runs: ${kf[*]} ms; aws s3 cp runs: ${cli[*]} ms; peak RSS: ${rss[*]} KiB"
[ "$up_verdict" = PASS ] && [ "$rss_verdict" = PASS ] && [ "$slow_up_verdict" = PASS ] && [ "$slow_rss_verdict" = PASS ]
