#!/usr/bin/env bash
# Quick start 2: install what is missing, build, and run every test suite (unit, Lua specs,
# integration against a real PostgreSQL and a real `pulse serve`, browser tests in Debian's
# chromium). PULSE_SANITIZE=1 also runs
# the whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer (CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j2
if [ "${PULSE_SANITIZE:-0}" = 1 ]; then
    scripts/setup.sh --sanitize
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    # Leaks are checked in the unit and Lua suites; the server leaves its VMs to the exit.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --test-dir build-asan --output-on-failure -j2 -L "unit|lua"
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 ctest --test-dir build-asan --output-on-failure -j2 -L "integration|e2e"
fi
