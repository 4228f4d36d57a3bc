#!/usr/bin/env bash
# Benchmark `kfadmin backup --online` against what an operator would otherwise use
# (sqlite3's VACUUM INTO and .backup, tar czf), in one run. See docs/benchmarks.md.
#
#   bench/online.sh                  # work dir under /var/tmp
#   BENCH_DIR=/srv/tmp bench/online.sh
#   BENCH_KEEP=1 bench/online.sh     # keep the work dir (databases, logs) for inspection
#
# Prints the machine, then a Markdown table with each criterion, the numbers, the ratio and
# PASS/FAIL. Exit status: 0 when every criterion passes, 1 when any fails, 2 on a setup error.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB="$REPO/bench/benchlib.py"
BENCH_DIR=${BENCH_DIR:-/var/tmp}
SIZE_MB=${BENCH_SIZE_MB:-300}     # criteria 1-3
BIG_MB=${BENCH_BIG_MB:-1024}      # criterion 4
TEXT_MB=${BENCH_TEXT_MB:-338}     # criterion 5: a 354 MB text-heavy database
NICE=10                           # kfadmin's --nice default: the naive pipeline compresses at it too
SQ_TIMEOUT=60                     # seconds given to `sqlite3 .backup` under load

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 2; }
now() { date +%s.%N; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
py() { python3 "$LIB" "$@"; }

# ---------------------------------------------------------------- tools and binaries
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need_pkgs=()
command -v sqlite3 >/dev/null 2>&1 || need_pkgs+=(sqlite3)
[ -x /usr/bin/time ] || need_pkgs+=(time)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]} with apt-get"
    as_root apt-get update >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >&2
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed"

log "building release binaries"
(cd "$REPO" && cargo build --release --workspace >&2) || die "cargo build failed"
KF="$REPO/target/release/kfadmin"
SIM="$REPO/target/release/keyfount-sim"

# ---------------------------------------------------------------- work dir and cleanup
mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/kfadmin-bench.XXXXXX")
WRITER_PID=""
SAMPLER_PID=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local rc=$?
    [ -n "$SAMPLER_PID" ] && kill -TERM "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
    [ -n "$WRITER_PID" ] && kill -TERM "$WRITER_PID" 2>/dev/null && wait "$WRITER_PID" 2>/dev/null
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DB="$WORK/db/keyfount.db"
RES="$WORK/results.txt"
: >"$RES"
put() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
warm() { cat "$1" "$1-wal" >/dev/null 2>&1 || true; }   # same page cache for every tool

start_writer() {  # start_writer RATE STATUS_FILE
    "$SIM" run --db "$DB" --rate "$1" --status-file "$2" >>"$WORK/writer.log" 2>&1 &
    WRITER_PID=$!
    for _ in $(seq 100); do [ -s "$2" ] && return 0; sleep 0.05; done
    die "keyfount-sim run did not write its status file"
}
stop_writer() {
    local rc=0
    kill -TERM "$WRITER_PID"
    wait "$WRITER_PID" || rc=$?
    WRITER_PID=""
    [ "$rc" -eq 0 ] || die "keyfount-sim run exited $rc (see $WORK/writer.log)"
}
kfadmin_backup() {  # kfadmin_backup OUTDIR JSONFILE [DB] -> sets KF_RC, KF_T0, KF_T1
    KF_RC=0
    KF_T0=$(now)
    "$KF" backup --online --db "${3:-$DB}" --out "$1" --json --no-progress >"$2" 2>>"$WORK/kfadmin.log" || KF_RC=$?
    KF_T1=$(now)
}
# The naive pipeline: VACUUM INTO, then tar czf of the copy. Like kfadmin (whose --nice 10
# applies after its snapshot), the copy runs at nice 0 and the compression at nice $NICE, so
# that both sides get the same share of a shared machine.
naive_backup() {  # naive_backup DB -> sets NV_VAC_MS, NV_TAR_MS, NV_MS, NV_BYTES
    rm -f "$WORK/copy.db" "$WORK/out.tgz"
    warm "$1"
    local t0 t1 t2
    t0=$(now)
    sqlite3 "$1" "VACUUM INTO '$WORK/copy.db'"
    t1=$(now)
    nice -n "$NICE" tar czf "$WORK/out.tgz" -C "$WORK" copy.db
    t2=$(now)
    NV_VAC_MS=$(ms_between "$t0" "$t1"); NV_TAR_MS=$(ms_between "$t1" "$t2"); NV_MS=$(ms_between "$t0" "$t2")
    NV_BYTES=$(stat -c %s "$WORK/out.tgz")
    rm -f "$WORK/copy.db" "$WORK/out.tgz"
}

# ---------------------------------------------------------------- the machine
fs_type=$(df -T "$WORK" | awk 'NR == 2 { print $2 }')
fs_dev=$(df -T "$WORK" | awk 'NR == 2 { print $1 }')
cat <<EOF
## Machine

| | |
|---|---|
| date | $(date -u +%Y-%m-%dT%H:%MZ) |
| CPU | $(nproc) × $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) |
| memory | $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |
| kernel | $(uname -sr) |
| BENCH_DIR | $BENCH_DIR ($fs_type on $fs_dev) |
| load average at start | $(cut -d' ' -f1-3 /proc/loadavg) |
| sqlite3 | $(sqlite3 --version | cut -d' ' -f1-2) |
| priorities | kfadmin: \`--nice $NICE\` (its default) after the snapshot; naive pipeline: \`VACUUM INTO\` at nice 0, \`tar czf\` at nice $NICE |
| kfadmin | $("$KF" --version) ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo ', dirty')) |

EOF

# ---------------------------------------------------------------- database
log "creating a ${SIZE_MB} MiB database"
"$SIM" init --db "$DB" --size-mb "$SIZE_MB" >&2
put db_bytes "$(stat -c %s "$DB")"

# ---------------------------------------------------------------- 1 + 3: idle, median of 3
# Interleaved: naive pipeline, then kfadmin, three times. The page cache is warmed with the
# database before each timed command so every tool starts from the same state.
snap=() check=() arch=() verify=() kfwall=() vac=() tarms=() naive=()
for i in 1 2 3; do
    log "idle run $i/3: VACUUM INTO + tar czf"
    naive_backup "$DB"
    vac+=("$NV_VAC_MS"); tarms+=("$NV_TAR_MS"); naive+=("$NV_MS")
    put tar_bytes "$NV_BYTES"

    log "idle run $i/3: kfadmin backup --online"
    rm -rf "$WORK/out"
    warm "$DB"
    kfadmin_backup "$WORK/out" "$WORK/idle$i.json"
    [ "$KF_RC" -eq 0 ] || die "kfadmin backup (idle) exited $KF_RC (see $WORK/kfadmin.log)"
    kfwall+=("$(ms_between "$KF_T0" "$KF_T1")")
    snap+=("$(py get "$WORK/idle$i.json" timings.snapshot_ms)")
    check+=("$(py get "$WORK/idle$i.json" timings.check_ms)")
    arch+=("$(py get "$WORK/idle$i.json" timings.archive_ms)")
    verify+=("$(py get "$WORK/idle$i.json" timings.verify_ms)")
    put kf_bytes "$(py get "$WORK/idle$i.json" bytes)"
    rm -rf "$WORK/out"
done
med() { py median "$@" | awk '{ printf "%d", $1 }'; }
runs() { local IFS=/; echo "$*"; }
put snap_ms_med "$(med "${snap[@]}")";     put snap_ms_runs "$(runs "${snap[@]}")"
put vacuum_ms_med "$(med "${vac[@]}")";    put vacuum_ms_runs "$(runs "${vac[@]}")"
put check_ms_med "$(med "${check[@]}")"
put archive_ms_med "$(med "${arch[@]}")"
put verify_ms_med "$(med "${verify[@]}")"
put tar_ms_med "$(med "${tarms[@]}")"
put kf_wall_med "$(med "${kfwall[@]}")";   put kf_wall_runs "$(runs "${kfwall[@]}")"
put naive_med "$(med "${naive[@]}")";      put naive_runs "$(runs "${naive[@]}")"

# ---------------------------------------------------------------- 5: text-heavy database
# An audit log of text rows with hex ids between the random vault blobs, pages split by
# rewrites (keyfount-sim init --text-heavy). Size: kfadmin's archive against `gzip -6` of the
# database file. Time: as 3a, interleaved, median of 3.
TDB="$WORK/text/keyfount.db"
log "creating a text-heavy ${TEXT_MB} MiB database"
"$SIM" init --db "$TDB" --size-mb "$TEXT_MB" --text-heavy >&2
put text_db_bytes "$(stat -c %s "$TDB")"
put text_gzip6_bytes "$(gzip -6 -c "$TDB" | wc -c)"
tsnap=() tcheck=() tarch=() tverify=() tkfwall=() tvac=() ttarms=() tnaive=()
for i in 1 2 3; do
    log "text-heavy run $i/3: VACUUM INTO + tar czf"
    naive_backup "$TDB"
    tvac+=("$NV_VAC_MS"); ttarms+=("$NV_TAR_MS"); tnaive+=("$NV_MS")
    put text_tar_bytes "$NV_BYTES"

    log "text-heavy run $i/3: kfadmin backup --online"
    rm -rf "$WORK/out"
    warm "$TDB"
    kfadmin_backup "$WORK/out" "$WORK/text$i.json" "$TDB"
    [ "$KF_RC" -eq 0 ] || die "kfadmin backup (text-heavy) exited $KF_RC (see $WORK/kfadmin.log)"
    tkfwall+=("$(ms_between "$KF_T0" "$KF_T1")")
    tsnap+=("$(py get "$WORK/text$i.json" timings.snapshot_ms)")
    tcheck+=("$(py get "$WORK/text$i.json" timings.check_ms)")
    tarch+=("$(py get "$WORK/text$i.json" timings.archive_ms)")
    tverify+=("$(py get "$WORK/text$i.json" timings.verify_ms)")
    put text_kf_bytes "$(py get "$WORK/text$i.json" bytes)"
    rm -rf "$WORK/out"
done
rm -rf "$WORK/text"
put text_snap_ms_med "$(med "${tsnap[@]}")"
put text_check_ms_med "$(med "${tcheck[@]}")"
put text_archive_ms_med "$(med "${tarch[@]}")"
put text_verify_ms_med "$(med "${tverify[@]}")"
put text_vacuum_ms_med "$(med "${tvac[@]}")"
put text_tar_ms_med "$(med "${ttarms[@]}")"
put text_kf_wall_med "$(med "${tkfwall[@]}")";   put text_kf_wall_runs "$(runs "${tkfwall[@]}")"
put text_naive_med "$(med "${tnaive[@]}")";      put text_naive_runs "$(runs "${tnaive[@]}")"

# ---------------------------------------------------------------- 2c: writer at max rate
# The writer commits as fast as it can; a sampler records its status file every 20 ms.
# Three kfadmin backups run one after the other with idle gaps between them. For each, the
# rate during the backup is commits/elapsed between the status read just before kfadmin starts
# and just after it exits; the rate without a backup is the mean of two windows of the same
# length, one ending just before the backup and one starting 0.5 s after it. The criterion
# uses the median of the three ratios.
kf_med_s=$(awk -v m="$(med "${kfwall[@]}")" 'BEGIN { printf "%.3f", m / 1000 }')
gap() { awk -v d="$1" -v m="$kf_med_s" 'BEGIN { x = (d > m ? d : m); printf "%.2f", x * 1.3 + 0.6 }'; }
rate_of() { awk -v c="$1" -v e="$2" 'BEGIN { printf "%.1f", c * 1000 / e }'; }
log "writer at max rate: 3 kfadmin backups with idle windows around them"
ST="$WORK/status-max.json"
SAMPLES="$WORK/samples-max.txt"
start_writer 0 "$ST"
python3 "$LIB" sample "$ST" "$SAMPLES" &
SAMPLER_PID=$!
sleep 1
sleep "$(gap 0)"
declare -a mx_t0 mx_t1 mx_win mx_during
for i in 1 2 3; do
    warm "$DB"
    read -r c0 e0 < <(py status "$ST")
    kfadmin_backup "$WORK/out" "$WORK/max$i.json"
    read -r c1 e1 < <(py status "$ST")
    [ "$KF_RC" -eq 0 ] || die "kfadmin backup (writer at max rate) exited $KF_RC (see $WORK/kfadmin.log)"
    [ "$i" -eq 1 ] && put max_wal_bytes "$(stat -c %s "$DB-wal" 2>/dev/null || echo 0)"
    rm -rf "$WORK/out"
    mx_t0[i]=$KF_T0; mx_t1[i]=$KF_T1
    mx_win[i]=$((e1 - e0))
    mx_during[i]=$(rate_of "$((c1 - c0))" "$((e1 - e0))")
    sleep "$(gap "$(awk -v e="${mx_win[i]}" 'BEGIN { print e / 1000 }')")"
done
kill -TERM "$SAMPLER_PID"; wait "$SAMPLER_PID" || true; SAMPLER_PID=""
stop_writer
ratios=() lines=()
for i in 1 2 3; do
    w=$(awk -v e="${mx_win[i]}" 'BEGIN { printf "%.3f", e / 1000 }')
    # (Should a backup take much longer than the one before it, its "before" window is cut
    # short so that it starts no earlier than 0.5 s after the previous backup.)
    prev_end=$([ "$i" -gt 1 ] && echo "${mx_t1[i - 1]}" || echo 0)
    pre=$(py window "$SAMPLES" "$(awk -v t="${mx_t0[i]}" -v w="$w" -v p="$prev_end" \
        'BEGIN { s = t - 0.05 - w; if (s < p + 0.5) s = p + 0.5; printf "%.6f", s }')" \
        "$(awk -v t="${mx_t0[i]}" 'BEGIN { printf "%.6f", t - 0.05 }')" | awk '{ print $3 }')
    post=$(py window "$SAMPLES" "$(awk -v t="${mx_t1[i]}" 'BEGIN { printf "%.6f", t + 0.5 }')" \
        "$(awk -v t="${mx_t1[i]}" -v w="$w" 'BEGIN { printf "%.6f", t + 0.5 + w }')" | awk '{ print $3 }')
    base=$(awk -v a="$pre" -v b="$post" 'BEGIN { printf "%.1f", (a + b) / 2 }')
    ratio=$(awk -v d="${mx_during[i]}" -v b="$base" 'BEGIN { printf "%.3f", d / b }')
    ratios+=("$ratio")
    lines+=("$i|$ratio|${mx_during[i]}|$base|$pre|$post|${mx_win[i]}|$(py phases "$SAMPLES" "${mx_t0[i]}" "$WORK/max$i.json")|$(py get "$WORK/max$i.json" snapshot.restarts)")
done
mid=$(py median "${ratios[@]}")
for l in "${lines[@]}"; do
    IFS='|' read -r i ratio during base pre post win phases restarts <<<"$l"
    noisy=$(awk -v a="$pre" -v b="$post" 'BEGIN { d = a > b ? a - b : b - a; if (d > 0.15 * (a + b) / 2) print " NOISY: the two windows without a backup differ by more than 15 %, the machine was busy;" }')
    put "max_run$i" "ratio $ratio: $(printf '%.0f' "$during")/s during ${win} ms, without $(printf '%.0f' "$base")/s (before $(printf '%.0f' "$pre"), after $(printf '%.0f' "$post"));$noisy $restarts restarts; by phase: $phases"
    if [ -z "${picked:-}" ] && awk -v a="$ratio" -v b="$mid" 'BEGIN { exit !(a == b) }'; then
        picked=1
        put max_ratio "$ratio"; put max_during "$during"; put max_base "$base"
        put max_pre "$pre"; put max_post "$post"; put max_win_ms "$win"
    fi
done
put max_ratio_runs "$(runs "${ratios[@]}")"

# ---------------------------------------------------------------- 2a, 2b, 2d: writer at 500/s
log "writer at 500 commits/s: kfadmin, then sqlite3 .backup (timeout ${SQ_TIMEOUT} s)"
ST="$WORK/status-500.json"
start_writer 500 "$ST"
sleep 2
warm "$DB"
read -r c0 e0 < <(py status "$ST")
seq0=$(py get "$ST" last_seq)
kfadmin_backup "$WORK/out" "$WORK/500.json"
read -r c1 e1 < <(py status "$ST")
put kf500_rc "$KF_RC"
put kf500_ms "$(ms_between "$KF_T0" "$KF_T1")"
put kf500_rate "$(awk -v c="$((c1 - c0))" -v e="$((e1 - e0))" 'BEGIN { printf "%.1f", c * 1000 / e }')"
if [ "$KF_RC" -eq 0 ]; then
    put kf500_steps "$(py get "$WORK/500.json" snapshot.steps)"
    put kf500_restarts "$(py get "$WORK/500.json" snapshot.restarts)"
    # The archived database must hold a consistent snapshot at least as new as the backup's start.
    mkdir -p "$WORK/extract"
    tar xzf "$(py get "$WORK/500.json" archive)" -C "$WORK/extract"
    if "$SIM" check --db "$WORK/extract/data/keyfount.db" --min-seq "$seq0" >"$WORK/check500.json" 2>&1; then
        put kf500_check ok
    else
        put kf500_check failed
    fi
    rm -rf "$WORK/extract" "$WORK/out"
else
    put kf500_steps "-"; put kf500_restarts "-"; put kf500_check "no archive"
fi

warm "$DB"
read -r c0 e0 < <(py status "$ST")
sq_rc=0
t0=$(now)
timeout "$SQ_TIMEOUT" sqlite3 "$DB" ".backup '$WORK/sq.db'" >>"$WORK/sqlite3.log" 2>&1 || sq_rc=$?
t1=$(now)
read -r c1 e1 < <(py status "$ST")
stop_writer
put sq500_rc "$sq_rc"
put sq500_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
put sq500_rate "$(awk -v c="$((c1 - c0))" -v e="$((e1 - e0))" 'BEGIN { printf "%.0f", c * 1000 / e }')"
rm -f "$WORK/sq.db" "$WORK/sq.db-journal"

# ---------------------------------------------------------------- 4: peak memory, 1 GiB
rm -rf "$WORK/db"
log "creating a ${BIG_MB} MiB database; peak RSS of kfadmin backup"
"$SIM" init --db "$DB" --size-mb "$BIG_MB" >&2
put big_db_bytes "$(stat -c %s "$DB")"
warm "$DB"
big_rc=0
t0=$(now)
/usr/bin/time -f %M -o "$WORK/rss.txt" \
    "$KF" backup --online --db "$DB" --out "$WORK/out" --json --no-progress >"$WORK/big.json" 2>>"$WORK/kfadmin.log" || big_rc=$?
t1=$(now)
put big_rc "$big_rc"
put big_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
put rss_kb "$(tail -n 1 "$WORK/rss.txt")"
rm -rf "$WORK/out" "$WORK/db"

# ---------------------------------------------------------------- results
put load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "## Results"
echo
rc=0
py report "$RES" || rc=$?
exit "$rc"
