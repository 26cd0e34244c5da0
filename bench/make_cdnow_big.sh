#!/usr/bin/env bash
# Writes a large CDNOW-layout file for `pulse bench features`: the 69,659-row CDNOW master file
# repeated N times (default 150: 10.4 M rows, 3.5 M customers), each copy with customer ids shifted
# by copy * 100000 so every copy is a new set of customers. Data files are never committed.
# Usage: bench/make_cdnow_big.sh [OUT] [COPIES]   (OUT default: /tmp/cdnow_big.txt)
set -euo pipefail
src=${PULSE_CDNOW:-/work/shared/data/cdnow_master.txt}
out=${1:-/tmp/cdnow_big.txt}
copies=${2:-150}
[ -r "$src" ] || { echo "make_cdnow_big: cannot read $src (set PULSE_CDNOW)" >&2; exit 1; }
awk -v copies="$copies" '
    NR == FNR { if ($1 ~ /^[0-9]+$/) { n++; id[n] = $1; rest[n] = sprintf("  %s  %4s  %10s", $2, $3, $4) } next }
    END {
        for (c = 0; c < copies; c++)
            for (i = 1; i <= n; i++)
                printf " %07d%s\n", id[i] + c * 100000, rest[i]
    }' "$src" "$src" > "$out"
echo "make_cdnow_big: $(wc -l < "$out") rows, $(du -m "$out" | cut -f1) MB in $out"
