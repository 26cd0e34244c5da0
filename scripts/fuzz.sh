#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang in build-fuzz/ and runs each for SECONDS
# (default 20) over a copy of its seeds (tests/fuzz/corpus/<name>/) in a temp dir, so the source
# tree is never written. Prints executions and the result per target; fails if any target finds a
# crash, a leak or a hang, and leaves the reproducer in its temp dir (the path is printed; replay
# it with build-fuzz/tests/fuzz/<target> <file>). CI runs it with 15.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }

scripts/setup.sh --fuzz # clang and libclang-rt-14-dev (libFuzzer), plus the build's own packages

# target:max_len (bytes an input may grow to)
targets=(fuzz_csv:4096 fuzz_dates:64 fuzz_json:4096 fuzz_multipart:8192 fuzz_xlsx:16384 fuzz_model:8192 fuzz_gbdt:8192)
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPULSE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]%%:*}" 2>&1 | grep -vE '^\[ *[0-9]+%\]' || true

failed=0
for t in "${targets[@]}"; do
    name=${t%%:*} max_len=${t#*:}
    bin=$PWD/build-fuzz/tests/fuzz/$name
    test -x "$bin" || { echo "fuzz: $name was not built" >&2; exit 1; }
    work=$(mktemp -d "${TMPDIR:-/tmp}/pulse-$name.XXXXXX")
    mkdir "$work/corpus"
    seeds=tests/fuzz/corpus/${name#fuzz_}
    [ -d "$seeds" ] && cp -r "$seeds/." "$work/corpus/"
    args=(-max_total_time="$secs" -max_len="$max_len" -timeout=10 -artifact_prefix="$work/" -print_final_stats=1)
    [ -f "tests/fuzz/${name#fuzz_}.dict" ] && args+=(-dict="$PWD/tests/fuzz/${name#fuzz_}.dict")
    rc=0
    (cd "$work" && "$bin" "${args[@]}" corpus) >"$work/log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    if [ "$rc" = 0 ]; then
        echo "fuzz: $name: ok, ${runs:-?} executions in ${secs}s, corpus $(ls "$work/corpus" | wc -l) inputs"
        rm -rf "$work"
        continue
    fi
    failed=1
    echo "fuzz: $name: FAILED (exit $rc) after ${runs:-?} executions" >&2
    grep -E '^(==[0-9]+==|SUMMARY|    #[0-9]+ |.*runtime error)' "$work/log" | head -40 >&2 || tail -30 "$work/log" >&2
    for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
        [ -e "$f" ] || continue
        echo "fuzz: $name: reproducer $f ($(stat -c %s "$f") bytes); replay: $bin $f" >&2
        # CI keeps only the log: small reproducers are printed so they can be rebuilt from it
        [ "$(stat -c %s "$f")" -le 4096 ] && { echo "fuzz: base64 of $(basename "$f"):" >&2; base64 "$f" >&2; }
    done
    echo "fuzz: full log in $work/log" >&2
done
exit $failed
