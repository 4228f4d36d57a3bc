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

# Debian packages the tests use: sqlite3 (baselines), mount/umount (util-linux), sha256sum,
# the Docker engine (docker.io), and musl-gcc to build the static writer for the test image.
missing=()
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v mount >/dev/null || missing+=(mount)
command -v sha256sum >/dev/null || missing+=(coreutils)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v curl >/dev/null || missing+=(curl)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v tmux >/dev/null || missing+=(tmux)
command -v age >/dev/null || missing+=(age)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
# bindfs (a FUSE filesystem) is what replicate must refuse to follow a database on.
command -v bindfs >/dev/null || missing+=(bindfs)
# GNU time measures the peak memory of kfadmin alone in the memory tests.
[ -x /usr/bin/time ] || missing+=(time)
# The completion scripts are tested in the shells they are for; the units schedule writes are
# checked by systemd-analyze.
command -v fish >/dev/null || missing+=(fish)
command -v zsh >/dev/null || missing+=(zsh)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The offsite tests run a real S3 server (moto) and read what it holds with the AWS CLI.
pip_missing=()
command -v moto_server >/dev/null || pip_missing+=('moto[server]')
command -v aws >/dev/null || pip_missing+=(awscli)
if [ ${#pip_missing[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${pip_missing[*]} with pip" >&2
    command -v pip3 >/dev/null || command -v pip >/dev/null || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-pip >/dev/null
    }
    pip=$(command -v pip3 || command -v pip)
    "$pip" install -q "${pip_missing[@]}" 2>/dev/null ||
        "$pip" install -q --break-system-packages "${pip_missing[@]}"
    hash -r
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The test image's static writer: musl when the target can be added, static glibc otherwise.
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 ||
    echo "scripts/test.sh: no musl target; the test image will use a static glibc build" >&2

# A running Docker engine: the Docker tests fail (never skip) without one.
sock=/var/run/docker.sock
if ! curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then
    echo "scripts/test.sh: starting dockerd" >&2
    # A daemon killed without cleaning up (the machine's last session ended) leaves pid files
    # behind that stop the next one from starting; a live daemon gets a moment to answer first.
    alive() { # pid file -> 0 when it names a live (not zombie) dockerd or containerd
        local pid state
        pid=$(cat "$1" 2>/dev/null || true)
        [ -n "$pid" ] || return 1
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
        [ -n "$state" ] && [ "$state" != Z ] && grep -qE '^(dockerd|containerd)$' "/proc/$pid/comm" 2>/dev/null
    }
    for _ in $(seq 1 20); do
        alive /var/run/docker.pid || break
        curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1 && break
        sleep 0.5
    done
    for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! alive "$pidfile"; then
            rm -f "$pidfile"
        fi
    done
    log=/var/log/kfadmin-test-dockerd.log
    setsid nohup dockerd >"$log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
        curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1; then
        echo "scripts/test.sh: dockerd did not come up; its log:" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
fi

shellcheck install.sh scripts/*.sh .ci/run bench/*.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# install.sh into a temporary prefix, twice (it is idempotent), then the installed binary runs.
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
./install.sh --prefix "$prefix"
./install.sh --prefix "$prefix"
"$prefix/bin/kfadmin" --version
test -s "$prefix/share/man/man1/kfadmin-backup.1"
test -s "$prefix/share/bash-completion/completions/kfadmin"
# It refuses to replace a file that is not kfadmin, unless --force.
printf '#!/bin/sh\necho other\n' >"$prefix/bin/kfadmin"
chmod +x "$prefix/bin/kfadmin"
if ./install.sh --prefix "$prefix" 2>/dev/null; then
    echo "install.sh replaced a different binary without --force" >&2
    exit 1
fi
./install.sh --prefix "$prefix" --force
"$prefix/bin/kfadmin" --version
echo "install.sh: ok"
