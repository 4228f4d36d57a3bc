#!/usr/bin/env bash
# kfadmin's main job, end to end, on a throwaway Keyfount-like database:
#   1. a writer process commits like the Keyfount server (WAL, synchronous=NORMAL, ...);
#   2. kfadmin takes an online backup while it keeps writing;
#   3. kfadmin verifies the archive (checksums, gzip, tar, SQLite integrity);
#   4. kfadmin restores it into a new data directory, and the writer resumes on it.
# Uses the kfadmin on PATH (./install.sh puts it there). Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v kfadmin >/dev/null || { echo "demo: kfadmin is not on PATH; run ./install.sh first" >&2; exit 1; }

echo "== building the Keyfount-like writer (tests/keyfount-sim)"
cargo build --quiet --release --locked -p keyfount-sim
sim="$PWD/target/release/keyfount-sim"

work=$(mktemp -d)
writer=""
cleanup() {
    [ -n "$writer" ] && kill "$writer" 2>/dev/null && wait "$writer" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== a 64 MB Keyfount-like database in $work/data"
"$sim" init --db "$work/data/keyfount.db" --size-mb 64

echo "== the server writes 300 transactions/s"
"$sim" run --db "$work/data/keyfount.db" --rate 300 --status-file "$work/writer.json" >/dev/null &
writer=$!
sleep 1
seq_before=$(sed 's/.*"last_seq":\([0-9]*\).*/\1/' "$work/writer.json")
echo "   committed so far: $seq_before"

echo "== kfadmin backup --online (the server keeps writing)"
kfadmin backup --online --db "$work/data/keyfount.db" --out "$work/backups"
archive=$(ls "$work"/backups/*.tar.gz)

echo "== kfadmin verify"
kfadmin verify "$archive"

kill -TERM "$writer"; wait "$writer"; writer=""
echo "== the server stopped; it had committed $(sed 's/.*"last_seq":\([0-9]*\).*/\1/' "$work/writer.json")"

echo "== kfadmin restore into a new data directory"
kfadmin restore "$archive" --data-dir "$work/restored" --yes

echo "== the restored database holds everything committed before the backup began ($seq_before)"
"$sim" check --db "$work/restored/keyfount.db" --min-seq "$seq_before"
echo
echo "== the server resumes on the restored database"
"$sim" run --db "$work/restored/keyfount.db" --rate 300 --duration 1 --status-file "$work/again.json" >/dev/null
"$sim" check --db "$work/restored/keyfount.db"
echo
echo "Demo finished: online backup, verification and restore all worked."
