#!/usr/bin/env bash
# Runs kfadmin's whole test suite: formatting, lints, unit and integration tests.
# The integration tests run the real binary against a real SQLite writer process, tmpfs
# mounts and (for the Docker tests) a real Docker Engine, so this script runs as root and
# installs what is missing first. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: the tests mount tmpfs filesystems, change file owners and drive Docker; run as root" >&2
    exit 2
fi

# Debian packages the tests use: sqlite3 (baselines), mount/umount (util-linux), sha256sum.
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v mount >/dev/null || missing+=(mount)
command -v sha256sum >/dev/null || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
