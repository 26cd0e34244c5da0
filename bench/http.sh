#!/usr/bin/env bash
# HTTP benchmark (pulse bench http): prints req/s, latency and memory for
#   1. a Lua handler answering JSON without the database, one loop thread;
#   2. a Lua handler doing one primary-key query, 32 connections;
#   3. resident memory idle and under load.
# wrk runs on the same machine. Figures, never a pass/fail. Options via env:
#   BENCH_SECONDS (default 10), BENCH_CONNECTIONS (32), BENCH_THREADS_PK (server threads for 2; default: cores)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${PULSE_BIN:-$root/build/pulse}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-32}
pk_threads=${BENCH_THREADS_PK:-$(nproc)}
command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$bin" ] || { echo "bench: $bin not built: run scripts/setup.sh" >&2; exit 1; }
export PULSE_HOME=$root PULSE_APP_EXTRA=$here/routes.lua

"$bin" migrate >/dev/null
url=${PULSE_DATABASE_URL:-$("$bin" db url)}
psql -q -X "$url" -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE TABLE IF NOT EXISTS bench_customers (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL,
                                            created_at timestamptz NOT NULL DEFAULT now());
GRANT SELECT ON bench_customers TO pulse_app;
INSERT INTO bench_customers (id, name, email)
SELECT g, 'Customer ' || g, 'customer' || g || '@example.com' FROM generate_series(1, 100000) g
ON CONFLICT (id) DO NOTHING;
SQL

server_pid=
start_server() { # $1: threads
    local out; out=$(mktemp)
    "$bin" serve --port 0 --threads "$1" >"$out" 2>/dev/null &
    server_pid=$!
    for _ in $(seq 100); do grep -q "serving on" "$out" && break; sleep 0.1; done
    port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$out")
    rm -f "$out"
    [ -n "$port" ] || { echo "bench: server did not start" >&2; exit 1; }
    for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
}
stop_server() { kill -TERM "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status"; }
run_wrk() { # $1 path, extra args... -> "reqs p50 p99"
    local path=$1; shift
    wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" "http://127.0.0.1:$port$path" |
        awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} END {print r, p50, p99}'
}

echo "pulse bench http: $(nproc) cores, wrk -t1 -c$conns -d${secs}s on the same machine"
start_server 1
sleep 1
idle=$(rss_kb)
read -r r p50 p99 < <(run_wrk /api/bench/json)
printf '%-52s %10s req/s  p50 %-8s p99 %-8s (target >= 90000)\n' "JSON handler, no database, 1 loop thread:" "$r" "$p50" "$p99"
stop_server

start_server "$pk_threads"
sleep 1
read -r r p50 p99 < <(run_wrk /api/bench/customers/1 -s "$here/pk.lua")
printf '%-52s %10s req/s  p50 %-8s p99 %-8s (target >= 35000, p99 <= 5ms)\n' \
    "One primary-key query, $pk_threads loop threads:" "$r" "$p50" "$p99"
load=$(hwm_kb)
stop_server
printf '%-52s %7d KB idle, %d KB peak under load (targets <= 30 MB idle, <= 60 MB loaded)\n' "Resident memory:" "$idle" "$load"
