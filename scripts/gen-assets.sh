#!/usr/bin/env bash
# Regenerate the committed shell completions (completions/) and man pages (man/) from the
# command line definition. A test fails when they are stale: run this and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked --bin kfadmin
bin=target/debug/kfadmin
mkdir -p completions man
"$bin" completions bash >completions/kfadmin.bash
"$bin" completions zsh >completions/_kfadmin
"$bin" completions fish >completions/kfadmin.fish
"$bin" completions elvish >completions/kfadmin.elv
"$bin" completions powershell >completions/_kfadmin.ps1
rm -f man/*.1
"$bin" manpages man >/dev/null
echo "completions/ and man/ regenerated" >&2
