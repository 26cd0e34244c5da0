#!/usr/bin/env bash
# Installs what Pulse needs on Debian 12 (system packages, front-end packages) and builds it.
# Safe to run again: installs only what is missing, rebuilds only what changed.
# Usage: scripts/setup.sh [--sanitize|--fuzz]   (--sanitize: ASan+UBSan build in build-asan/;
#        --fuzz: also clang and its libFuzzer runtime, packages only: scripts/fuzz.sh builds build-fuzz/)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config liblua5.4-dev libh2o-evloop-dev libpq-dev libcurl4-openssl-dev
          libjwt-dev libcmocka-dev libssl-dev zlib1g-dev libargon2-dev libzip-dev libexpat1-dev postgresql postgresql-contrib
          ca-certificates
          chromium)
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)
# libclang_rt.fuzzer is in libclang-rt-14-dev, only a Recommends of clang (installed without them)
[ "${1:-}" = "--fuzz" ] && PACKAGES+=(clang libclang-rt-14-dev)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "setup: run as root or install sudo (missing: ${missing[*]})" >&2; exit 1; }
        SUDO=sudo
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ "${1:-}" = "--fuzz" ] && exit 0

# npm packages: dashboard/ (served locally, never from a CDN) and tests/e2e/ (playwright-core,
# which drives Debian's chromium). --ignore-scripts: no install-time code, no browser download.
for dir in dashboard tests/e2e; do
    if [ ! -f $dir/node_modules/.package-lock.json ] || [ $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]; then
        echo "setup: installing npm packages in $dir (npm ci)"
        (cd $dir && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fi
done

build_dir=build
cmake_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [ "${1:-}" = "--sanitize" ]; then
    build_dir=build-asan
    cmake_flags=(-DCMAKE_BUILD_TYPE=Debug -DPULSE_SANITIZE=ON)
fi
[ "${CI:-}" = "true" ] && cmake_flags+=(-DPULSE_WERROR=ON)
cmake -S . -B "$build_dir" "${cmake_flags[@]}" >/dev/null
cmake --build "$build_dir" -j"$(nproc)" 2>&1 | grep -vE '^\[ *[0-9]+%\]' || true
test -x "$build_dir/pulse" || { echo "setup: build failed" >&2; exit 1; }
echo "setup: built $build_dir/pulse"
