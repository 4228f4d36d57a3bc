#!/usr/bin/env bash
# Benchmark `kfadmin replicate` (issue 18) against the same writer without it, in one run.
# See docs/benchmarks.md.
#
#   bench/replicate.sh                               # short form (5 min of history)
#   BENCH_HISTORY_SECONDS=3600 bench/replicate.sh    # the full form: one hour at 500 commits/s
#   BENCH_DIR=/srv/tmp BENCH_KEEP=1 bench/replicate.sh
#
# Measures: the writer's commit rate at full speed with and without replicate, its WAL's peak
# size with and without, replicate's peak RSS, the lag from a commit (the writer's own clock,
# inside the transaction) to its segment being durable in the repository at 500 commits/s,
# bytes shipped per hour against the WAL bytes those commits wrote, and the time to restore
# the last point of that history against restoring a full backup of the same database.
# Prints the machine and a Markdown table with PASS/FAIL; exit 0 when every target passes,
# 1 when one fails, 2 on a setup error.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB="$REPO/bench/pitrlib.py"
BENCH_DIR=${BENCH_DIR:-/var/tmp}
SIZE_MB=${BENCH_SIZE_MB:-100}          # the database before the writer starts
FULL_S=${BENCH_FULL_SECONDS:-30}       # writer at full speed, without and with replicate
HIST_S=${BENCH_HISTORY_SECONDS:-300}   # history at RATE commits/s (full form: 3600)
RATE=${BENCH_RATE:-500}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 2; }
now() { date +%s.%N; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.3f", a / b }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

command -v sqlite3 >/dev/null 2>&1 || die "sqlite3 is needed (apt-get install sqlite3)"
command -v python3 >/dev/null 2>&1 || die "python3 is needed"

log "building release binaries"
(cd "$REPO" && cargo build --release --workspace >&2) || die "cargo build failed"
KF="$REPO/target/release/kfadmin"
SIM="$REPO/target/release/keyfount-sim"

mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/kfadmin-bench-replicate.XXXXXX")
PIDS=()
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export KFADMIN_STATE_DIR="$WORK/state"

cat <<EOF2
## Machine

| | |
|---|---|
| date | $(date -u +%Y-%m-%dT%H:%MZ) |
| CPU | $(nproc) × $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) |
| memory | $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |
| kernel | $(uname -sr) |
| BENCH_DIR | $BENCH_DIR ($(df -T "$WORK" | awk 'NR == 2 { print $2 }')) |
| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |
| form | database ${SIZE_MB} MiB; full speed ${FULL_S} s each; history ${HIST_S} s at ${RATE} commits/s |
| kfadmin | $("$KF" --version) ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')) |

EOF2

log "creating a ${SIZE_MB} MiB database"
"$SIM" init --db "$WORK/seed.db" --size-mb "$SIZE_MB" >&2
fresh() {  # fresh NAME -> a copy of the seed database in its own directory
    mkdir -p "$WORK/$1"
    cp "$WORK/seed.db" "$WORK/$1/keyfount.db"
    echo "$WORK/$1/keyfount.db"
}
status_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

start_replicate() {  # start_replicate DB REPO -> REP_PID, once its chain's base is written
    "$KF" replicate --db "$1" -r "$2" --no-progress 2>>"$WORK/replicate.log" >/dev/null &
    REP_PID=$!
    PIDS+=("$REP_PID")
    for _ in $(seq 600); do
        compgen -G "$2/pitr/*/chain.json" >/dev/null && return 0
        kill -0 "$REP_PID" 2>/dev/null || die "replicate exited early (see $WORK/replicate.log)"
        sleep 0.1
    done
    die "replicate wrote no chain in 60 s"
}
stop_replicate() {  # SIGTERM: a last read, then exit 0
    kill -TERM "$REP_PID"
    wait "$REP_PID" || die "replicate exited $? on SIGTERM (see $WORK/replicate.log)"
}

# run_writer DB RATE SECONDS TAG -> W_RATE (commits/s) W_SEQ, and WAL_PEAK (bytes)
run_writer() {
    local st="$WORK/writer-$4.json" peak="$WORK/walpeak-$4"
    python3 "$LIB" walpeak "$1" "$peak" &
    local sampler=$!
    "$SIM" run --db "$1" --rate "$2" --status-file "$st" 2>>"$WORK/writer.log" &
    local w=$!
    PIDS+=("$w" "$sampler")
    sleep "$3"
    kill -TERM "$w"
    wait "$w" || die "the writer exited $? (see $WORK/writer.log)"
    touch "$peak.stop"
    wait "$sampler"
    W_RATE=$(status_get "$st" rate)
    W_SEQ=$(status_get "$st" last_seq)
    WAL_PEAK=$(cat "$peak")
}

# ---------------------------------------------------------------- 1. full speed, without and with
log "writer at full speed for ${FULL_S} s, without replicate"
db=$(fresh without)
run_writer "$db" 0 "$FULL_S" without
rate_without=$W_RATE; wal_without=$WAL_PEAK

log "writer at full speed for ${FULL_S} s, with replicate"
db=$(fresh with)
start_replicate "$db" "$WORK/repo-with"
run_writer "$db" 0 "$FULL_S" with
rate_with=$W_RATE; wal_with=$WAL_PEAK
sleep 1.5
rss_full_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$REP_PID/status")
stop_replicate

log "writer at ${RATE} commits/s for ${FULL_S} s, without replicate (the WAL's size at that rate)"
db=$(fresh rate-without)
run_writer "$db" "$RATE" "$FULL_S" rate-without
wal_rate_without=$WAL_PEAK

# ---------------------------------------------------------------- 2. history at RATE
log "history: ${HIST_S} s at ${RATE} commits/s with replicate"
db=$(fresh hist)
start_replicate "$db" "$WORK/repo-hist"
run_writer "$db" "$RATE" "$HIST_S" hist
hist_rate=$W_RATE; wal_rate_with=$WAL_PEAK
sleep 1.5
rss_hist_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$REP_PID/status")
stop_replicate
python3 "$LIB" chain "$WORK/repo-hist" "$db" >"$WORK/chain.txt"
val() { awk -F= -v k="$1" '$1 == k { print $2 }' "$WORK/chain.txt"; }
[ "$(val commits)" -gt 0 ] || die "the chain holds no commit"
[ "$(val lag_min_ms)" -ge 0 ] || die "a commit durable before it was made: the txn/seq mapping is wrong"

# ---------------------------------------------------------------- 3. restore a point vs a full backup
log "restoring the last point of the history"
t0=$(now)
"$KF" restore --at now -r "$WORK/repo-hist" --data-dir "$WORK/r-point" --yes --no-progress \
    >/dev/null 2>>"$WORK/restore.log" || die "restore --at failed (see $WORK/restore.log)"
t1=$(now)
point_ms=$(ms_between "$t0" "$t1")
got=$(sqlite3 "$WORK/r-point/keyfount.db" "SELECT value FROM meta WHERE key = 'last_seq'")
[ "$got" = "$W_SEQ" ] || die "the restored point holds seq $got, the writer committed $W_SEQ"

log "a full backup of the same database, restored"
"$KF" backup --online --db "$db" --out "$WORK/full" --json --no-progress >"$WORK/full.json" 2>>"$WORK/restore.log"
archive=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["archive"])' "$WORK/full.json")
t0=$(now)
"$KF" restore "$archive" --data-dir "$WORK/r-full" --yes --no-progress >/dev/null 2>>"$WORK/restore.log" ||
    die "restore of the full backup failed (see $WORK/restore.log)"
t1=$(now)
full_ms=$(ms_between "$t0" "$t1")

# ---------------------------------------------------------------- report
fails=0
judge() { if "$@"; then echo PASS; else echo FAIL; fi; }
rate_ratio=$(ratio "$rate_with" "$rate_without")
wal_ratio=$(ratio "$wal_with" "$wal_without")
wal_rate_ratio=$(ratio "$wal_rate_with" "$wal_rate_without")
rss_kib=$(( rss_full_kib > rss_hist_kib ? rss_full_kib : rss_hist_kib ))
shipped=$(val shipped_bytes); walb=$(val wal_bytes)
per_hour() { awk -v b="$1" -v s="$HIST_S" 'BEGIN { printf "%.2f GiB", b * 3600 / s / 1073741824 }'; }
restore_ratio=$(ratio "$point_ms" "$full_ms")
v_rate=$(judge ge "$rate_ratio" 0.95)
v_wal=$(judge le "$wal_ratio" 1.5)
v_wal_rate=$(judge le "$wal_rate_ratio" 1.5)
v_rss=$(judge le "$rss_kib" 65536)
v_lag=$(judge le "$(val lag_p99_ms)" 1000)
v_restore=$(judge le "$restore_ratio" 2)
for v in "$v_rate" "$v_wal" "$v_wal_rate" "$v_rss" "$v_lag" "$v_restore"; do
    [ "$v" = PASS ] || fails=$((fails + 1))
done
cat <<EOF2
## Results

| criterion | measured | baseline | ratio | target | verdict |
|---|---|---|---|---|---|
| writer's commit rate at full speed | ${rate_with}/s with replicate | ${rate_without}/s without | $rate_ratio | ≥ 0.95 | $v_rate |
| the WAL's peak size | $((wal_with / 1024)) KiB with | $((wal_without / 1024)) KiB without | $wal_ratio | ≤ 1.5 | $v_wal |
| the WAL's peak size at ${RATE} commits/s | $((wal_rate_with / 1024)) KiB with | $((wal_rate_without / 1024)) KiB without | $wal_rate_ratio | ≤ 1.5 | $v_wal_rate |
| replicate's peak RSS (VmHWM) | $((rss_kib / 1024)) MiB | | | ≤ 64 MiB | $v_rss |
| lag, commit to durable segment, at ${hist_rate}/s | p50 $(val lag_p50_ms) ms, p99 $(val lag_p99_ms) ms, max $(val lag_max_ms) ms | $(val matched) commits | | p99 ≤ 1000 ms | $v_lag |
| bytes shipped per hour | $(per_hour "$shipped") | WAL: $(per_hour "$walb") | $(ratio "$shipped" "$walb") | (reported) | |
| restore of the last point after ${HIST_S} s | ${point_ms} ms ($(val segments) segments) | full backup: ${full_ms} ms | $restore_ratio | ≤ 2 | $v_restore |

EOF2
echo "$fails of 6 targets missed."
[ "$fails" -eq 0 ] || exit 1
