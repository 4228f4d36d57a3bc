#!/usr/bin/env bash
# Benchmark the downtime of `kfadmin backup --cold` against the naive procedure an operator
# runs today (`docker stop`, `tar czf` of the volume, `docker start`), in one run, on a
# container with a ~300 MB Keyfount-like database that keeps writing. See docs/benchmarks.md.
#
#   bench/cold.sh                    # 3 runs of each
#   BENCH_RUNS=5 BENCH_SIZE_MB=300 bench/cold.sh
#
# Needs a running Docker engine (scripts/test.sh starts one) and root. Prints the machine and
# a Markdown table; exits 1 when kfadmin's median downtime is above 0.3x the naive one.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIZE_MB=${BENCH_SIZE_MB:-300}
RUNS=${BENCH_RUNS:-3}
TAG="kfadmin-bench-$$"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

[ "$(id -u)" -eq 0 ] || { echo "bench/cold.sh: run as root (it reads the volume's files)" >&2; exit 2; }
curl -fsS --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null ||
    { echo "bench/cold.sh: no Docker engine answers on /var/run/docker.sock" >&2; exit 2; }
command -v musl-gcc >/dev/null || { echo "bench/cold.sh: needs musl-tools (scripts/test.sh installs it)" >&2; exit 2; }

log "building release binaries (kfadmin, and keyfount-sim statically for the image)"
(cd "$REPO" && cargo build --quiet --release --locked --bin kfadmin)
(cd "$REPO" && CARGO_TARGET_DIR=target/musl-sim cargo build --quiet --release --locked -p keyfount-sim \
    --target x86_64-unknown-linux-musl)
KF="$REPO/target/release/kfadmin"

WORK=$(mktemp -d /var/tmp/kfadmin-cold-bench.XXXXXX)
cleanup() {
    docker rm -f "$TAG" >/dev/null 2>&1 || true
    docker volume rm -f "$TAG" >/dev/null 2>&1 || true
    docker image rm -f "$TAG:latest" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log "building the image FROM scratch"
ctx="$WORK/ctx"
mkdir -p "$ctx/data" "$ctx/status"
cp "$REPO/target/musl-sim/x86_64-unknown-linux-musl/release/keyfount-sim" "$ctx/"
cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY --chown=1000:1000 data/ /data/
COPY --chown=1000:1000 status/ /status/
COPY keyfount-sim /keyfount-sim
USER 1000:1000
ENTRYPOINT ["/keyfount-sim"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build -q -t "$TAG:latest" "$ctx" >/dev/null

log "starting a container with a ${SIZE_MB} MB database, writing 100 commits/s"
mkdir -p "$WORK/status" && chmod 0777 "$WORK/status"
docker run -d --name "$TAG" --network none -v "$TAG:/data" -v "$WORK/status:/status" "$TAG:latest" \
    run --db /data/keyfount.db --init-size-mb "$SIZE_MB" --rate 100 --status-file /status/status.json >/dev/null
for _ in $(seq 1 600); do [ -s "$WORK/status/status.json" ] && break; sleep 0.1; done
sleep 2
vol=$(docker volume inspect -f '{{.Mountpoint}}' "$TAG")
db_bytes=$(stat -c %s "$vol/keyfount.db")

kf_down=()
kf_total=()
naive_down=()
for i in $(seq 1 "$RUNS"); do
    log "run $i/$RUNS: kfadmin backup --cold"
    sync; cat "$vol/keyfount.db" >/dev/null
    json=$("$KF" backup --cold --container "$TAG" --out "$WORK/kf" --json --quiet)
    kf_down+=("$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["downtime_ms"])')")
    kf_total+=("$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["duration_ms"])')")
    kf_bytes=$(printf '%s' "$json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])')
    rm -rf "$WORK/kf"
    sleep 2

    log "run $i/$RUNS: docker stop; tar czf; docker start"
    sync; cat "$vol/keyfount.db" >/dev/null
    t0=$(now)
    docker stop "$TAG" >/dev/null
    tar czf "$WORK/naive.tgz" -C "$vol" .
    docker start "$TAG" >/dev/null
    t1=$(now)
    naive_down+=("$(ms_between "$t0" "$t1")")
    naive_bytes=$(stat -c %s "$WORK/naive.tgz")
    rm -f "$WORK/naive.tgz"
    sleep 2
done

kf=$(printf '%s\n' "${kf_down[@]}" | median)
kft=$(printf '%s\n' "${kf_total[@]}" | median)
naive=$(printf '%s\n' "${naive_down[@]}" | median)
ratio=$(awk -v a="$kf" -v b="$naive" 'BEGIN { printf "%.3f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.3) ? "PASS" : "FAIL" }')

echo "## Machine"
echo
echo "- $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "- kernel $(uname -r), Docker $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}')"
echo "- volume filesystem: $(df -T "$vol" | awk 'NR==2 {print $2}'), database ${db_bytes} bytes"
echo "- $("$KF" --version)"
echo
echo "## Cold backup downtime (median of $RUNS)"
echo
echo "| criterion | kfadmin | naive stop + tar czf + start | ratio | limit | verdict |"
echo "|---|---|---|---|---|---|"
echo "| downtime | ${kf} ms | ${naive} ms | ${ratio} | <= 0.3 | ${verdict} |"
echo
echo "All runs, ms: kfadmin downtime ${kf_down[*]}; kfadmin whole backup ${kf_total[*]} (median ${kft}); naive ${naive_down[*]}."
echo "Archive sizes: kfadmin ${kf_bytes} bytes, naive tar czf ${naive_bytes} bytes."
[ "$verdict" = PASS ]
