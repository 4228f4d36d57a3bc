#!/usr/bin/env bash
# Build kfadmin from this checkout and install it with its shell completions and man pages.
#
#   ./install.sh                    # into /usr/local
#   ./install.sh --prefix ~/.local  # elsewhere
#   ./install.sh --force            # replace a file named kfadmin that is not kfadmin
#
# Running it again is harmless: an identical binary is left as it is.
set -euo pipefail
cd "$(dirname "$0")"

prefix=/usr/local
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) prefix="${1#--prefix=}"; shift ;;
        --force) force=1; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if ! command -v cargo >/dev/null; then
    echo "install.sh: cargo is not installed; install Rust (https://rustup.rs) first" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
echo "Building kfadmin (release)..." >&2
cargo install --quiet --locked --path . --root "$stage" --target-dir target --bin kfadmin
built="$stage/bin/kfadmin"

bin="$prefix/bin/kfadmin"
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

echo "Installed $("$bin" --version) at $bin, with completions and man pages under $prefix/share" >&2
