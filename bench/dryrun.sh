#!/usr/bin/env bash
# Rules dry-run benchmark (pulse bench dryrun): a tenant with N customers (default 1,000,000)
# whose analytics rows are generated in SQL, then a segments draft dry-run over all of them,
# timed end to end over HTTP. Figures, never a pass/fail. BENCH_CUSTOMERS sets N.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
bin=${PULSE_BIN:-$root/build/pulse}
n=${BENCH_CUSTOMERS:-1000000}
export PULSE_HOME=$root PULSE_APP_EXTRA=$here/routes.lua
"$bin" migrate >/dev/null
url=${PULSE_DATABASE_URL:-$("$bin" db url)}
tenant=$(psql -qAt -X "$url" -v ON_ERROR_STOP=1 <<SQL
SELECT id FROM organizations WHERE name = 'Bench Dry Run' UNION ALL
SELECT tenant_id FROM pulse_register('Bench Dry Run', 'ecommerce', 'bench-dryrun@pulse.local', 'Bench', 'unusable-hash')
WHERE NOT EXISTS (SELECT 1 FROM organizations WHERE name = 'Bench Dry Run') LIMIT 1;
SQL
)
have=$(psql -qAt -X "$url" -c "SELECT count(*) FROM customer_analytics WHERE tenant_id = '$tenant'")
if [ "$have" -lt "$n" ]; then
    echo "bench: generating $n customers with RFM scores for the bench tenant (once)..."
    psql -q -X "$url" -v ON_ERROR_STOP=1 <<SQL >/dev/null
DELETE FROM customers WHERE tenant_id = '$tenant';
INSERT INTO customers (tenant_id, external_id) SELECT '$tenant', 'c' || g FROM generate_series(1, $n) g;
INSERT INTO analytics_runs (id, tenant_id, as_of, feature_names) VALUES ('00000000-0000-0000-0000-00000000d000', '$tenant', current_date, '{}')
    ON CONFLICT (id) DO NOTHING;
INSERT INTO customer_analytics (tenant_id, customer_id, run_id, r, f, m, churn_band, segment)
SELECT '$tenant', id, '00000000-0000-0000-0000-00000000d000', 1 + id % 5, 1 + (id / 5) % 5, 1 + (id / 25) % 5,
       (ARRAY[NULL, 'low', 'medium', 'high'])[1 + (id / 125) % 4], 'Champions'
FROM customers WHERE tenant_id = '$tenant';
ANALYZE customer_analytics;
SQL
fi
out=$(mktemp)
"$bin" serve --port 0 --threads 1 >"$out" 2>/dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q "serving on" "$out" && break; sleep 0.1; done
port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$out")
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done
for i in 1 2 3; do
    t0=$(date +%s.%N)
    body=$(curl -fs "http://127.0.0.1:$port/api/bench/dry-run/$tenant")
    t1=$(date +%s.%N)
    printf 'segments dry-run, run %d: %s  (%.3f s over HTTP; target <= 2 s for 1 M customers)\n' "$i" "$body" "$(echo "$t1 - $t0" | bc)"
done
