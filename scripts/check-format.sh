#!/usr/bin/env bash
# Fails when a C file differs from .clang-format (the house style file, not a debate).
# Fix with: clang-format -i $(git ls-files '*.c' '*.h')
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format missing (apt-get install clang-format)" >&2; exit 1; }
files=$(git ls-files '*.c' '*.h')
if ! clang-format --dry-run --Werror $files 2>/tmp/pulse-format.$$; then
    head -40 /tmp/pulse-format.$$ >&2
    rm -f /tmp/pulse-format.$$
    echo "check-format: run clang-format -i \$(git ls-files '*.c' '*.h')" >&2
    exit 1
fi
rm -f /tmp/pulse-format.$$
echo "check-format: $(echo "$files" | wc -l) files match .clang-format"
