// Segmentation end to end: a tenant uploads generated e-commerce transactions through the import
// API; the segment job (features, RFM, the shipped segments rule as a lookup table, behaviour) and
// a cluster job run through `pulse segment --tenant` (the same job code the workers run) and
// through the HTTP routes (lua/routes/analytics.lua); GET /api/v1/customers/{id} shows the
// analytics, another tenant gets 404; `pulse segment FILE` gives the same segments with no database.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, readdir } from 'node:fs/promises';
import { createContext, FIXTURES, sleep, tenantHelpers } from './harness.mjs';

const TOKEN_ROUTES = path.join(FIXTURES, 'token_routes.lua');
const SEGMENTS = ['Champions', 'Loyal Customers', 'Potential Loyalists', 'New Customers', 'Promising', 'Need Attention',
    'About to Sleep', 'At Risk', 'Cannot Lose Them', 'Hibernating', 'Lost'];

describe('segmentation', () => {
    let ctx, api, shop, other, telco, genDir;
    const auth = (t) => ({ authorization: `Bearer ${t.token}` });
    const finished = async (id, t) => {
        for (let i = 0; i < 1200; i++) {
            const r = await api.fetch(`/api/v1/jobs/${id}`, { headers: auth(t) });
            assert.equal(r.status, 200, r.text);
            if (['done', 'failed', 'cancelled'].includes(r.json.state)) return r.json;
            await sleep(50);
        }
        throw new Error(`job ${id} did not finish`);
    };
    const jobResult = (stdout, kind) => {
        const m = stdout.match(new RegExp(`^${kind} job ([0-9a-f-]{36}) done: (.*)$`, 'm'));
        assert.ok(m, `no ${kind} job result in: ${stdout}`);
        return { id: m[1], result: JSON.parse(m[2]) };
    };

    before(async () => {
        ctx = await createContext('pulse-it-segments-');
        await ctx.startDb();
        await ctx.migrate();
        api = await ctx.startServer({ env: { PULSE_APP_EXTRA: TOKEN_ROUTES } });
        shop = await tenantHelpers(ctx, () => api, { industry: 'ecommerce' }).makeTenant('Segment Shop', 'owner@seg-shop.test');
        other = await tenantHelpers(ctx, () => api, { industry: 'ecommerce' }).makeTenant('Other Shop', 'owner@other.test');
        telco = await tenantHelpers(ctx, () => api, { industry: 'telecom' }).makeTenant('Quiet Telco', 'owner@telco.test');
        genDir = path.join(ctx.varDir, 'gen');
        const g = await ctx.pulse(['gen', '--industry', 'ecommerce', '--customers', '300', '--seed', '7', '--out', genDir]);
        assert.equal(g.code, 0, g.stderr);
        const form = new FormData();
        form.append('file', new Blob([await readFile(path.join(genDir, 'transactions.csv'))], { type: 'text/csv' }), 'transactions.csv');
        const up = await api.fetch('/api/v1/imports', { method: 'POST', headers: auth(shop), body: form });
        assert.equal(up.status, 202, up.text.slice(0, 1000));
        const j = await finished(up.json.job_id, shop);
        assert.equal(j.state, 'done', JSON.stringify(j));
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    let seg, clu;
    it('segments every customer with a purchase into the 11 segments; counts add up', async () => {
        const r = await ctx.pulse(['segment', '--tenant', shop.tenant, '--k', '4']);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        seg = jobResult(r.stdout, 'segment');
        clu = jobResult(r.stdout, 'cluster');
        assert.equal(seg.result.customers, 300);
        assert.equal(seg.result.segmented, 300);
        assert.deepEqual(Object.keys(seg.result.segments).sort(), [...SEGMENTS].sort());
        assert.equal(Object.values(seg.result.segments).reduce((a, b) => a + b, 0), 300);
        const jobs = await ctx.sql(`SELECT kind || ' ' || state || ' ' || progress FROM jobs
            WHERE tenant_id = '${shop.tenant}' AND kind <> 'import' ORDER BY created_at`);
        assert.deepEqual(jobs, ['segment done 100', 'cluster done 100']);
        const buyers = Number((await ctx.sql(`SELECT count(DISTINCT customer_ref) FROM transactions
            WHERE tenant_id = '${shop.tenant}' AND NOT is_return AND amount >= 0`))[0]);
        const bad = await ctx.sql(`SELECT c.external_id FROM customers c
            LEFT JOIN customer_analytics a ON a.customer_id = c.id
            WHERE c.tenant_id = '${shop.tenant}' AND EXISTS (SELECT 1 FROM transactions t WHERE t.tenant_id = c.tenant_id
              AND t.customer_ref = c.external_id AND NOT t.is_return AND t.amount >= 0)
              AND (a.segment IS NULL OR a.segment NOT IN (${SEGMENTS.map((s) => `'${s}'`).join(',')}))`);
        assert.deepEqual(bad, [], 'every buyer has one of the 11 segments');
        const bySegment = await ctx.sql(`SELECT segment || '=' || count(*) FROM customer_analytics
            WHERE tenant_id = '${shop.tenant}' GROUP BY segment ORDER BY segment`);
        const expected = Object.entries(seg.result.segments).filter(([, n]) => n > 0).map(([s, n]) => `${s}=${n}`).sort();
        assert.deepEqual(bySegment, expected);
        assert.equal(buyers, 300);
        const run = await ctx.sql(`SELECT customers || ' ' || transactions || ' ' || array_length(feature_names, 1) || ' ' ||
            (snapshot->>'transactions') || ' ' || segments_rule FROM analytics_runs WHERE tenant_id = '${shop.tenant}'`);
        assert.match(run[0], /^300 \d+ 21 \d+ 0$/);
    });

    it('writes features, RFM, behaviour and signals per customer; GET /customers/{id} shows them, other tenants get 404', async () => {
        const [id] = await ctx.sql(`SELECT customer_id FROM customer_analytics WHERE tenant_id = '${shop.tenant}'
            AND jsonb_array_length(risk_signals) > 0 ORDER BY customer_id LIMIT 1`);
        const r = await api.fetch(`/api/v1/customers/${id}`, { headers: auth(shop) });
        assert.equal(r.status, 200, r.text);
        const a = r.json.analytics;
        assert.ok(a, r.text);
        assert.ok(SEGMENTS.includes(a.segment.name));
        for (const k of ['r', 'f', 'm']) assert.ok(a.segment[k] >= 1 && a.segment[k] <= 5);
        assert.ok(a.segment.score >= 0 && a.segment.score <= 100);
        assert.equal(typeof a.features.recency_days, 'number', JSON.stringify(a.features));
        assert.equal(typeof a.features.cart_abandoned_30d, 'number');
        assert.ok(a.behavior.score >= 0 && a.behavior.score <= 100);
        assert.ok(['increasing', 'stable', 'declining'].includes(a.behavior.trend));
        const s = a.behavior.risk_signals[0];
        for (const k of ['name', 'feature', 'value', 'threshold', 'message']) assert.ok(k in s, JSON.stringify(s));
        assert.doesNotMatch(s.message, /\{value\}|\{threshold\}/);
        assert.ok(a.behavior.recommendations.length >= 1);
        assert.equal(a.cluster.clustering_id, clu.id);
        const theirs = await api.fetch(`/api/v1/customers/${id}`, { headers: auth(other) });
        assert.equal(theirs.status, 404);
        assert.equal(Number((await ctx.sql(`SELECT count(*) FROM customer_analytics WHERE tenant_id = '${other.tenant}'`))[0]), 0);
    });

    it('clusters into k groups with personas', async () => {
        assert.equal(clu.result.k, 4);
        assert.equal(clu.result.sizes.reduce((a, b) => a + b, 0), 300);
        const [doc] = await ctx.sql(`SELECT result FROM clusterings WHERE id = '${clu.id}' AND state = 'done'`);
        const c = JSON.parse(doc);
        assert.equal(c.personas.length, 4);
        for (const p of c.personas) {
            assert.ok(p.label && p.action, JSON.stringify(p));
            assert.equal(typeof p.centroid.monetary, 'number');
        }
        assert.deepEqual(c.features, ['recency_days', 'frequency', 'monetary']);
        const labelled = await ctx.sql(`SELECT cluster || '=' || count(*) FROM customer_analytics
            WHERE tenant_id = '${shop.tenant}' AND cluster_id = '${clu.id}' GROUP BY cluster ORDER BY cluster`);
        assert.deepEqual(labelled, c.sizes.map((n, i) => `${i}=${n}`));
    });

    it('keeps a churn probability across re-segmentation and bands it', async () => {
        await ctx.sql(`UPDATE customer_analytics SET churn_probability = 0.9 WHERE tenant_id = '${shop.tenant}'`);
        const r = await ctx.pulse(['segment', '--tenant', shop.tenant]);
        assert.equal(r.code, 0, r.stderr);
        const rows = await ctx.sql(`SELECT DISTINCT churn_probability::text || ' ' || churn_band FROM customer_analytics
            WHERE tenant_id = '${shop.tenant}'`);
        assert.deepEqual(rows, ['0.9 high']);
        assert.equal(Number((await ctx.sql(`SELECT count(*) FROM analytics_runs WHERE tenant_id = '${shop.tenant}'`))[0]), 2);
    });

    it('carries the fresher of a prediction and the stored churn across re-segmentation', async () => {
        const [a, b] = await ctx.sql(`SELECT customer_id FROM customer_analytics WHERE tenant_id = '${shop.tenant}'
            ORDER BY customer_id LIMIT 2`);
        const [part] = await ctx.sql(`SELECT pulse_derived_partition('predictions', '${shop.tenant}')`);
        await ctx.sql(`CREATE TABLE IF NOT EXISTS ${part} PARTITION OF predictions FOR VALUES IN ('${shop.tenant}')`);
        // a was scored after its stored churn (0.9, the test above) was written, b before it
        await ctx.sql(`INSERT INTO predictions (tenant_id, customer_id, churn_probability, risk_band, scored_at) VALUES
            ('${shop.tenant}', ${a}, 0.1, 'low', now() + interval '1 hour'),
            ('${shop.tenant}', ${b}, 0.2, 'low', now() - interval '1 hour')`);
        const r = await ctx.pulse(['segment', '--tenant', shop.tenant]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(await ctx.sql(`SELECT customer_id || ' ' || churn_probability::text || ' ' || churn_band
            FROM customer_analytics WHERE customer_id IN (${a}, ${b}) ORDER BY customer_id`), [`${a} 0.1 low`, `${b} 0.9 high`]);
        await ctx.sql(`DELETE FROM predictions WHERE tenant_id = '${shop.tenant}'`);
    });

    it('stages a tenant\'s results without locking the shared parent (other tenants\' swaps need it)', async () => {
        // the stage lives until the job commits: a lock on the parent would hold up every swap
        const lines = await ctx.sql(`BEGIN; SET LOCAL ROLE pulse_app;
            SELECT set_config('pulse.tenant_id', '${shop.tenant}', true);
            SELECT pulse_derived_stage('predictions'), pulse_derived_stage('customer_analytics');
            SELECT 'parents locked: ' || count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                WHERE l.pid = pg_backend_pid() AND c.relname IN ('predictions', 'customer_analytics');
            ROLLBACK;`);
        assert.equal(lines.at(-1), 'parents locked: 0');
    });

    it('replaces the tenant\'s rows as a whole: a customer the new run does not compute loses their stale row', async () => {
        const [ghost] = await ctx.sql(`INSERT INTO customers (tenant_id, external_id) VALUES ('${shop.tenant}', 'no-purchases')
            RETURNING id`);
        const [run] = await ctx.sql(`SELECT run_id FROM customer_analytics WHERE tenant_id = '${shop.tenant}' LIMIT 1`);
        await ctx.sql(`INSERT INTO customer_analytics (tenant_id, customer_id, run_id, segment)
            VALUES ('${shop.tenant}', ${ghost}, '${run}', 'Champions')`);
        const r = await ctx.pulse(['segment', '--tenant', shop.tenant]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(jobResult(r.stdout, 'segment').result.customers, 300);
        assert.deepEqual(await ctx.sql(`SELECT count(*) FROM customer_analytics WHERE customer_id = ${ghost}`), ['0']);
        assert.deepEqual(await ctx.sql(`SELECT count(*) || ' ' || count(DISTINCT run_id) FROM customer_analytics
            WHERE tenant_id = '${shop.tenant}'`), ['300 1']);
        // the tenant's rows are one partition, behind the same policy as every tenant table
        const [part] = await ctx.sql(`SELECT c.relname || ' ' || c.relrowsecurity FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'customer_analytics'::regclass
            AND pg_get_expr(c.relpartbound, c.oid) LIKE '%${shop.tenant}%'`);
        assert.equal(part, `customer_analytics_${shop.tenant.replaceAll('-', '')} true`);
        // deleting a customer deletes their derived rows (what the foreign key's cascade did)
        await ctx.sql(`INSERT INTO customer_analytics (tenant_id, customer_id, run_id) VALUES ('${shop.tenant}', ${ghost}, '${run}')`);
        await ctx.sql(`DELETE FROM customers WHERE id = ${ghost}`);
        assert.deepEqual(await ctx.sql(`SELECT count(*) FROM customer_analytics WHERE customer_id = ${ghost}`), ['0']);
        // and tells the next swap to check its ids against the customers (derived_epochs)
        assert.deepEqual(await ctx.sql(`SELECT customers_deleted FROM derived_epochs WHERE tenant_id = '${shop.tenant}'`), ['1']);
    });

    it('leaves the previous results whole when a run fails after writing its rows', async () => {
        const digest = () => ctx.sql(`SELECT md5(string_agg(x::text, ',' ORDER BY customer_id)) || ' ' || count(*)
            FROM customer_analytics x WHERE tenant_id = '${shop.tenant}'`);
        const before = await digest();
        const runs = await ctx.sql(`SELECT count(*) FROM analytics_runs WHERE tenant_id = '${shop.tenant}'`);
        // a reader holding the shared table past the swap's retries (about 10 s): the swap gives up
        const reader = ctx.sql('BEGIN; LOCK TABLE customer_analytics IN ACCESS SHARE MODE; SELECT pg_sleep(14); COMMIT');
        await sleep(500);
        const r = await ctx.pulse(['segment', '--tenant', shop.tenant]);
        await reader;
        assert.equal(r.code, 1, r.stdout);
        assert.match(r.stderr, /customer_analytics stayed busy for 10 s \(long-running readers\); run the job again/);
        assert.deepEqual(await digest(), before);
        assert.deepEqual(await ctx.sql(`SELECT count(*) FROM analytics_runs WHERE tenant_id = '${shop.tenant}'`), runs);
        assert.deepEqual(await ctx.sql(`SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_next'`), ['0']);
    });

    it('takes uploaded churn scores (customer_id,churn_score) and bands segments with them', async () => {
        const ids = await ctx.sql(`SELECT c.external_id FROM customer_analytics a JOIN customers c ON c.id = a.customer_id
            WHERE a.tenant_id = '${shop.tenant}' AND a.segment IS NOT NULL ORDER BY c.external_id LIMIT 3`);
        assert.equal(ids.length, 3);
        const segUrl = `/api/v1/segmentation/organizations/${shop.tenant}/segment`;
        // a header without a score column is refused at once, naming what it has
        const noScore = await api.fetch(segUrl, { method: 'POST', headers: { ...auth(shop), 'content-type': 'text/csv' },
            body: 'customer_id,value\nC1,3\n' });
        assert.equal(noScore.status, 422, noScore.text);
        assert.match(noScore.json.errors[0].message, /churn score column.*customer_id, value/);
        // a bad value fails the job with its line, and nothing changes
        const bad = await api.fetch(segUrl, { method: 'POST', headers: { ...auth(shop), 'content-type': 'text/csv' },
            body: `customer_id,churn_score\n${ids[0]},0.2\n${ids[1]},1.7\n` });
        assert.equal(bad.status, 202, bad.text);
        const badJob = await finished(bad.json.job_id, shop);
        assert.equal(badJob.state, 'failed');
        assert.match(badJob.error.message, /line 3: 'churn_score' is '1.7'/);
        // multipart, a percentage, an unknown customer
        const form = new FormData();
        form.append('file', new Blob([`Customer ID;Churn Probability\n${ids[0]};0,05\n${ids[1]};45%\n${ids[2]};0.97\nnobody;0.5\n`],
            { type: 'text/csv' }), 'scores.csv');
        const up = await api.fetch(segUrl, { method: 'POST', headers: auth(shop), body: form });
        assert.equal(up.status, 202, up.text);
        const j = await finished(up.json.job_id, shop);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.deepEqual(j.result.churn_scores, { rows: 4, matched: 3, not_matched: 1 });
        const rows = await ctx.sql(`SELECT c.external_id || ' ' || a.churn_probability || ' ' || a.churn_band
            FROM customer_analytics a JOIN customers c ON c.id = a.customer_id
            WHERE a.tenant_id = '${shop.tenant}' AND c.external_id IN ('${ids.join("','")}') ORDER BY c.external_id`);
        assert.deepEqual(rows, [`${ids[0]} 0.05 low`, `${ids[1]} 0.45 medium`, `${ids[2]} 0.97 high`]);
        // the upload served its run and is gone
        const left = (await readdir(path.join(ctx.varDir, 'uploads'))).filter((f) => f.endsWith('.scores'));
        assert.deepEqual(left, []);
    });

    it('fails clearly with nothing to segment', async () => {
        const r = await ctx.pulse(['segment', '--tenant', telco.tenant]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /nothing to segment: import transactions or events first/);
        const [state] = await ctx.sql(`SELECT state || ' ' || error_code FROM jobs WHERE tenant_id = '${telco.tenant}'`);
        assert.equal(state, 'failed nothing_to_segment');
        const usage = await ctx.pulse(['segment']);
        assert.equal(usage.code, 2);
    });

    it('runs over HTTP: segment and cluster jobs, distribution, a customer\'s segment and behaviour, 404 elsewhere', async () => {
        const call = (t, method, p, body) => api.fetch(p, { method, headers: { ...auth(t), ...(body ? { 'content-type': 'application/json' } : {}) },
            body: body ? JSON.stringify(body) : undefined });
        const started = await call(shop, 'POST', `/api/v1/segmentation/organizations/${shop.tenant}/segment`, {});
        assert.equal(started.status, 202, started.text);
        const j = await finished(started.json.job_id, shop);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.equal(j.result.customers, 300);
        const dist = await call(shop, 'GET', `/api/v1/segmentation/organizations/${shop.tenant}/segments`);
        assert.equal(dist.status, 200, dist.text);
        assert.equal(dist.json.customers, 300);
        assert.deepEqual(dist.json.segments.map((x) => x.segment), SEGMENTS);
        assert.equal(dist.json.segments.reduce((a, x) => a + x.customers, 0), 300);
        const [id] = await ctx.sql(`SELECT customer_id FROM customer_analytics WHERE tenant_id = '${shop.tenant}' ORDER BY customer_id LIMIT 1`);
        const one = await call(shop, 'GET', `/api/v1/segmentation/customers/${id}/segment`);
        assert.equal(one.status, 200, one.text);
        assert.ok(SEGMENTS.includes(one.json.segment));
        const beh = await call(shop, 'GET', `/api/v1/behavior/customers/${id}/behavior`);
        assert.equal(beh.status, 200, beh.text);
        assert.ok(beh.json.behavior_score >= 0 && beh.json.behavior_score <= 100);
        const insights = await call(shop, 'GET', `/api/v1/behavior/organizations/${shop.tenant}/behavior-insights`);
        assert.equal(insights.status, 200, insights.text);
        assert.equal(insights.json.customers, 300);
        const cl = await call(shop, 'POST', '/api/v1/clusters', { method: 'kmeans', k: 3 });
        assert.equal(cl.status, 202, cl.text);
        const cj = await finished(cl.json.job_id, shop);
        assert.equal(cj.state, 'done', JSON.stringify(cj));
        const c = await call(shop, 'GET', `/api/v1/clusters/${cl.json.job_id}`);
        assert.equal(c.status, 200, c.text);
        assert.equal(JSON.stringify(c.json).includes('personas'), true, c.text);
        assert.equal((await call(other, 'GET', `/api/v1/segmentation/organizations/${shop.tenant}/segments`)).status, 404);
        assert.equal((await call(other, 'POST', `/api/v1/segmentation/organizations/${shop.tenant}/segment`, {})).status, 404);
        assert.equal((await call(other, 'GET', `/api/v1/segmentation/customers/${id}/segment`)).status, 404);
        assert.equal((await call(other, 'GET', `/api/v1/clusters/${cl.json.job_id}`)).status, 404);
    });

    it('pulse segment FILE gives the same segments without a database', async () => {
        const out = path.join(ctx.varDir, 'result.csv');
        const r = await ctx.pulse(['segment', path.join(genDir, 'transactions.csv'), '--out', out]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /300 customers/);
        assert.match(r.stdout, /clusters \(kmeans, k = 4/);
        const lines = (await readFile(out, 'utf8')).trim().split('\n');
        assert.equal(lines[0], 'customer_id,recency_days,frequency,monetary,r,f,m,segment,segment_score,behavior_score,trend,signals,cluster,cluster_label');
        assert.equal(lines.length, 301);
        const counts = {};
        for (const l of lines.slice(1)) {
            const seg = l.split(',')[7];
            counts[seg] = (counts[seg] || 0) + 1;
        }
        for (const [name, n] of Object.entries(seg.result.segments)) assert.equal(counts[name] || 0, n, name);
    });
});
