#!/usr/bin/env bash
# Login benchmark (pulse bench logins): the cost of one argon2id verification, and a burst of
# 1,000 failed logins from one address: how many reach the password check (the rest must get
# 429 from the rate limit) and what /health's latency is meanwhile (hashing runs on worker
# threads, never on the event loops). Figures, never pass/fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${PULSE_BIN:-$root/build/pulse}
command -v wrk >/dev/null || { echo "bench: wrk is missing: apt-get install wrk" >&2; exit 1; }
export PULSE_HOME=$root
"$bin" migrate >/dev/null

out=$(mktemp)
"$bin" serve --port 0 >"$out" 2>/dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q "serving on" "$out" && break; sleep 0.1; done
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$out")
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -fs "$base/ready" >/dev/null && break; sleep 0.1; done

# an account to fail against (registration is itself rate-limited per address: reuse it if it exists)
curl -s -o /dev/null -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"email":"bench-owner@example.com","password":"a long bench passphrase 42","name":"Bench","organization":"Bench Co","industry":"ecommerce"}'

t0=$(date +%s.%N)
curl -s -o /dev/null -X POST "$base/api/v1/auth/login/json" -H 'content-type: application/json' \
    -d '{"email":"bench-owner@example.com","password":"a long bench passphrase 42"}'
t1=$(date +%s.%N)
printf '%-52s %8.1f ms (argon2id m=46 MiB, t=2, p=1)\n' "One successful login (hash verify + tokens):" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print (b - a) * 1000}')"

# the burst and, at the same time, /health
wrk -t1 -c20 -d6s --latency "$base/health" >"$out.health" &
hp=$!
statuses=$(wrk -t1 -c50 -d5s -s "$here/failed_login.lua" "$base/api/v1/auth/login/json" | sed -n 's/^statuses //p')
wait $hp
h99=$(awk '/^ +99%/ {print $2}' "$out.health")
hreq=$(awk '/Requests\/sec/ {print $2}' "$out.health")
rm -f "$out.health"
printf '%-52s %s\n' "Failed-login burst (5 s, 50 connections):" "$statuses (401 = reached the password check, 429 = rate-limited)"
printf '%-52s %s req/s, p99 %s\n' "/health during the burst:" "$hreq" "$h99"
