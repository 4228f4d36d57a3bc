#!/usr/bin/env bash
# Build kfadmin from this checkout and install it with its shell completions and man pages.
#
#   ./install.sh                    # into /usr/local
#   ./install.sh --prefix ~/.local  # elsewhere
#   ./install.sh --force            # replace a file named kfadmin that is not kfadmin
#   ./install.sh --unit-dir DIR     # the systemd unit kfadmin-replicate@.service goes there
#                                   # (default /etc/systemd/system, when systemd runs here)
#   ./install.sh --units-only       # only the unit, for a kfadmin already in PREFIX/bin
#
# Running it again is harmless: an identical binary or unit is left as it is.
set -euo pipefail
cd "$(dirname "$0")"

prefix=/usr/local
force=0
unit_dir=
units_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --force) force=1; shift ;;
        --unit-dir) unit_dir="${2:?--unit-dir needs a directory}"; shift 2 ;;
        --unit-dir=*) unit_dir="${1#--unit-dir=}"; shift ;;
        --units-only) units_only=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

bin="$prefix/bin/kfadmin"

# The systemd unit of `kfadmin replicate`, with this kfadmin's absolute path in ExecStart.
install_unit() {
    local dir="$unit_dir"
    if [ -z "$dir" ]; then
        if [ ! -d /run/systemd/system ]; then
            echo "systemd does not run here: kfadmin-replicate@.service not installed (--unit-dir DIR to install it anyway)" >&2
            return 0
        fi
        dir=/etc/systemd/system
    fi
    case "$bin" in
        /*) ;;
        *) echo "install.sh: --prefix must be an absolute path for the unit's ExecStart" >&2; exit 2 ;;
    esac
    local unit="$dir/kfadmin-replicate@.service"
    local new
    new=$(sed "s|@BIN@|$bin|" systemd/kfadmin-replicate@.service)
    if [ -e "$unit" ] && [ "$(cat "$unit")" = "$new" ]; then
        echo "$unit is already installed" >&2
        return 0
    fi
    if [ -e "$unit" ] && [ "$force" -eq 0 ] && ! head -n 1 "$unit" | grep -q '^# kfadmin point-in-time replication'; then
        echo "install.sh: $unit exists and was not installed by kfadmin; pass --force to replace it" >&2
        exit 1
    fi
    install -d -m 0755 "$dir"
    printf '%s\n' "$new" > "$unit.partial"
    chmod 0644 "$unit.partial"
    mv -f "$unit.partial" "$unit"
    if [ -z "$unit_dir" ] && command -v systemctl >/dev/null; then
        systemctl daemon-reload || true
    fi
    echo "Installed $unit: write /etc/kfadmin/replicate-NAME.env, then systemctl enable --now kfadmin-replicate@NAME (see docs/runbook.md)" >&2
}

if [ "$units_only" -eq 1 ]; then
    if [ ! -x "$bin" ]; then
        echo "install.sh: --units-only needs kfadmin installed at $bin first" >&2
        exit 1
    fi
    install_unit
    exit 0
fi

if ! command -v cargo >/dev/null; then
    echo "install.sh: cargo is not installed; install Rust (https://rustup.rs) first" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
echo "Building kfadmin (release)..." >&2
cargo install --quiet --locked --path . --root "$stage" --target-dir target --bin kfadmin
built="$stage/bin/kfadmin"

if [ -e "$bin" ]; then
    if cmp -s "$built" "$bin"; then
        echo "kfadmin $("$bin" --version | cut -d' ' -f2) is already installed at $bin" >&2
    elif [ "$force" -eq 0 ] && ! "$bin" --version 2>/dev/null | grep -q '^kfadmin '; then
        echo "install.sh: $bin exists and is not kfadmin; pass --force to replace it" >&2
        exit 1
    fi
fi
install -d -m 0755 "$prefix/bin"
cmp -s "$built" "$bin" 2>/dev/null || install -m 0755 "$built" "$bin"

# Shell completions and man pages, as committed (a test keeps them in step with the binary).
install -d -m 0755 "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" \
    "$prefix/share/fish/vendor_completions.d" "$prefix/share/man/man1"
install -m 0644 completions/kfadmin.bash "$prefix/share/bash-completion/completions/kfadmin"
install -m 0644 completions/_kfadmin "$prefix/share/zsh/site-functions/_kfadmin"
install -m 0644 completions/kfadmin.fish "$prefix/share/fish/vendor_completions.d/kfadmin.fish"
install -m 0644 man/*.1 "$prefix/share/man/man1/"
install_unit

echo "Installed $("$bin" --version) at $bin, with completions and man pages under $prefix/share" >&2
