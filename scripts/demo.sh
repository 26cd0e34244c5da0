#!/usr/bin/env bash
# Quick start 1: install what is missing, build, provision the private PostgreSQL under var/
# (unless PULSE_DATABASE_URL is set), migrate, load demo data and serve. Prints the URL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/pulse demo "$@"
