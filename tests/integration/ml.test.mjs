// Churn models end to end over HTTP: a generated telecom customers file with its Churned label is
// uploaded, a model trained (POST /api/v1/ml/train, a job), listed with its metrics, every customer
// scored (POST /api/v1/ml/predict/batch), the predictions listed and one customer's prediction
// read with its reasons; another tenant sees none of it; a corrupted model fails the scoring job
// with a clear error. The IBM Telco file (../shared/data/telco_churn.csv, skipped when absent) goes
// through the same upload + train path and must reach the ROC AUC.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createContext, FIXTURES, REPO, assertProblem, tenantHelpers, sleep } from './harness.mjs';

const TOKEN_ROUTES = path.join(FIXTURES, 'token_routes.lua');
const TELCO = path.resolve(REPO, '..', 'shared', 'data', 'telco_churn.csv');

// a short stale time: heartbeats every half second, so the test can see a waiting job's beat
const SERVER = { env: { PULSE_APP_EXTRA: TOKEN_ROUTES, PULSE_JOB_THREADS: '1', PULSE_MAX_UPLOAD_BYTES: String(16 << 20),
    PULSE_JOB_STALE_SECONDS: '3' } };

describe('churn models over HTTP', { timeout: 300000 }, () => {
    let ctx, srv, a, b;

    const call = (t, method, p, body) => srv.fetch(p, {
        method,
        headers: { authorization: `Bearer ${t.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const upload = async (t, bytes, name = 'customers.csv') => {
        const form = new FormData();
        form.append('file', new Blob([bytes], { type: 'text/csv' }), name);
        const r = await srv.fetch('/api/v1/imports', { method: 'POST', headers: { authorization: `Bearer ${t.token}` }, body: form });
        assert.equal(r.status, 202, r.text.slice(0, 1500));
        return r.json.job_id;
    };
    const finished = async (t, id) => {
        for (let i = 0; i < 2400; i++) {
            const r = await call(t, 'GET', `/api/v1/jobs/${id}`);
            assert.equal(r.status, 200, r.text);
            if (['done', 'failed', 'cancelled'].includes(r.json.state)) return r.json;
            await sleep(50);
        }
        throw new Error(`job ${id} did not finish`);
    };
    const done = async (t, id) => {
        const j = await finished(t, id);
        assert.equal(j.state, 'done', JSON.stringify(j));
        return j;
    };

    before(async () => {
        ctx = await createContext('pulse-it-ml-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer(SERVER);
        const h = tenantHelpers(ctx, () => srv, { industry: 'telecom' });
        a = await h.makeTenant('ML Telco', 'owner@ml-telco.test');
        b = await h.makeTenant('Other Telco', 'owner@other-telco.test');
    });

    after(async () => {
        await ctx?.destroy();
    });

    let model, customerId, e;

    it('says what to do before there is anything to train on', async () => {
        const s = await call(a, 'GET', '/api/v1/ml/status');
        assert.equal(s.status, 200, s.text);
        assert.equal(s.json.churn.trained, false);
        assert.match(s.json.churn.next, /churn column/);
        assertProblem(assert, await call(a, 'POST', '/api/v1/ml/train', { dataset_type: 'telco' }), 422, 'no_labels');
        assertProblem(assert, await call(a, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] }), 409, 'no_model');
    });

    it('trains on an uploaded customers file with a churn label', async () => {
        const dir = path.join(ctx.varDir, 'gen');
        const g = await ctx.pulse(['gen', '--industry', 'telecom', '--customers', '400', '--seed', '3', '--out', dir]);
        assert.equal(g.code, 0, g.stderr);
        await done(a, await upload(a, await readFile(path.join(dir, 'customers.csv'))));
        const r = await call(a, 'POST', '/api/v1/ml/train', { dataset_type: 'telco' });
        assert.equal(r.status, 202, r.text);
        const j = await done(a, r.json.job_id);
        assert.equal(j.result.version, 1);
        assert.equal(j.result.active, true);
        for (const k of ['roc_auc', 'pr_auc', 'log_loss', 'brier', 'accuracy', 'precision', 'recall', 'f1'])
            assert.equal(typeof j.result.metrics[k], 'number', k);
        model = j.result.model_id;

        const list = await call(a, 'GET', '/api/v1/ml/models');
        assert.equal(list.status, 200, list.text);
        assert.equal(list.json.total, 1);
        assert.equal(list.json.items[0].id, model);
        assert.equal(list.json.items[0].active, true);
        const m = await call(a, 'GET', `/api/v1/ml/models/${model}`);
        assert.equal(m.status, 200, m.text);
        assert.ok(m.json.metrics.roc_auc > 0.6, JSON.stringify(m.json.metrics));
        assert.equal(m.json.metrics.deciles.length, 10);
        assert.ok(m.json.report.models.logreg && m.json.report.models.logreg.metrics.roc_auc > 0);
        assert.ok(m.json.features.includes('Contract'), JSON.stringify(m.json.features));
        assert.ok(!m.json.features.some((f) => /churn/i.test(f)), 'the label is not a feature');
    });

    it('a second run is a new version, inactive until activated (audited)', async () => {
        const r = await call(a, 'POST', '/api/v1/ml/train', { seed: 7 });
        const j = await done(a, r.json.job_id);
        assert.equal(j.result.version, 2);
        assert.equal(j.result.active, false);
        const act = await call(a, 'POST', `/api/v1/ml/models/${j.result.model_id}/activate`);
        assert.equal(act.status, 200, act.text);
        const list = await call(a, 'GET', '/api/v1/ml/models');
        assert.deepEqual(list.json.items.map((m) => [m.version, m.active]), [[2, true], [1, false]]);
        const back = await call(a, 'POST', `/api/v1/ml/models/${model}/activate`);
        assert.equal(back.status, 200, back.text);
        const cmp = await call(a, 'GET', `/api/v1/ml/models/compare?ids=${model},${j.result.model_id}`);
        assert.equal(cmp.status, 200, cmp.text);
        assert.deepEqual(cmp.json.models.map((m) => m.version), [1, 2]);
        assert.equal(cmp.json.metrics.roc_auc.length, 2);
        const better = cmp.json.metrics.roc_auc[0] >= cmp.json.metrics.roc_auc[1] ? model : j.result.model_id;
        assert.equal(cmp.json.best.roc_auc.id, better);
        const lower = cmp.json.metrics.log_loss[0] <= cmp.json.metrics.log_loss[1] ? model : j.result.model_id;
        assert.equal(cmp.json.best.log_loss.id, lower);
        assert.deepEqual(cmp.json.differences.params.seed, { [model]: 42, [j.result.model_id]: 7 });
        assertProblem(assert, await call(a, 'GET', `/api/v1/ml/models/compare?ids=${model}`), 422, 'validation_failed');
        assertProblem(assert, await call(b, 'GET', `/api/v1/ml/models/compare?ids=${model},${j.result.model_id}`), 404, 'not_found');
        const audit = await ctx.sql(`SELECT count(*) FROM audit_log WHERE tenant_id = '${a.tenant}' AND event = 'model_activated'`);
        assert.equal(audit[0], '2');
    });

    it('scores every customer and lists the predictions with reasons', async () => {
        const r = await call(a, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        assert.equal(r.status, 202, r.text);
        const j = await done(a, r.json.job_id);
        assert.equal(j.result.scored, 400);
        assert.equal(j.result.model_id, model);
        const p = await call(a, 'GET', '/api/v1/ml/predictions?limit=5');
        assert.equal(p.status, 200, p.text);
        assert.equal(p.json.total, 400);
        assert.equal(p.json.items.length, 5);
        const top = p.json.items[0];
        assert.ok(top.churn_probability >= p.json.items[4].churn_probability);
        assert.ok(['low', 'medium', 'high'].includes(top.risk_band));
        assert.ok(top.reasons.length > 0 && top.reasons.length <= 6);
        assert.match(top.reasons[0].text, / — (raises|lowers) the risk$/);
        const high = await call(a, 'GET', '/api/v1/ml/predictions?risk_band=high&limit=500');
        assert.ok(high.json.items.every((x) => x.risk_band === 'high'));
        customerId = top.customer_id;

        const c = await call(a, 'GET', `/api/v1/ai/churn-prediction/${customerId}`);
        assert.equal(c.status, 200, c.text);
        assert.equal(c.json.churn_probability, top.churn_probability);
        assert.equal(c.json.risk_level, top.risk_band);
        assert.ok(Array.isArray(c.json.risk_factors) && Array.isArray(c.json.recommendations));
        assert.ok(c.json.confidence >= 0 && c.json.confidence <= 1);

        const s = await call(a, 'GET', '/api/v1/ml/status');
        assert.equal(s.json.churn.trained, true);
        assert.equal(s.json.data.scored, 400);
        assert.equal(s.json.data.labelled, 400);
    });

    it('scores a list of customers, keeping the others\' predictions', async () => {
        const others = () => ctx.sql(`SELECT md5(string_agg(x::text, ',' ORDER BY customer_id)) FROM predictions x
            WHERE tenant_id = '${a.tenant}' AND customer_id <> ${customerId}`);
        const before = await others();
        const r = await call(a, 'POST', '/api/v1/ml/predict/batch', { customer_ids: [customerId] });
        const j = await done(a, r.json.job_id);
        assert.equal(j.result.scored, 1);
        assert.deepEqual(await others(), before);
        const [mine] = await ctx.sql(`SELECT count(*) || ' ' || bool_and(scored_at > now() - interval '1 minute')
            FROM predictions WHERE customer_id = ${customerId}`);
        assert.equal(mine, '1 true');
        const p = await call(a, 'GET', '/api/v1/ml/predictions?limit=1');
        assert.equal(p.json.total, 400);
    });

    it('a run over every customer replaces the predictions whole: a stale row goes', async () => {
        const [ghost] = await ctx.sql(`INSERT INTO customers (tenant_id, external_id) VALUES ('${a.tenant}', 'gone-soon') RETURNING id`);
        await ctx.sql(`INSERT INTO predictions (tenant_id, customer_id, churn_probability, risk_band)
            VALUES ('${a.tenant}', ${ghost}, 0.5, 'medium')`);
        await ctx.sql(`DELETE FROM customers WHERE id = ${ghost}`); // the trigger takes the prediction with it
        assert.deepEqual(await ctx.sql(`SELECT count(*) FROM predictions WHERE customer_id = ${ghost}`), ['0']);
        // a row the foreign key used to refuse (no such customer): the next full run drops it
        await ctx.sql(`INSERT INTO predictions (tenant_id, customer_id, churn_probability, risk_band)
            VALUES ('${a.tenant}', ${ghost}, 0.5, 'medium')`);
        const r = await call(a, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        const j = await done(a, r.json.job_id);
        assert.equal(j.result.scored, 400);
        assert.deepEqual(await ctx.sql(`SELECT count(*) FROM predictions WHERE tenant_id = '${a.tenant}'`), ['400']);
    });

    it('pulse train and pulse score run the same jobs from the command line', async () => {
        const t = await ctx.pulse(['train', '--tenant', a.tenant]);
        assert.equal(t.code, 0, t.stderr + t.stdout);
        assert.match(t.stdout, /done: .*"version": ?3\b/);
        const s = await ctx.pulse(['score', '--tenant', a.tenant]);
        assert.equal(s.code, 0, s.stderr + s.stdout);
        assert.match(s.stdout, /"scored": ?400\b/);
        const jobs = await ctx.sql(`SELECT kind FROM jobs WHERE tenant_id = '${a.tenant}' AND params->>'source' = 'cli' ORDER BY created_at`);
        assert.deepEqual(jobs, ['train', 'score']);
        const usage = await ctx.pulse(['train']);
        assert.equal(usage.code, 2);
        assert.match(usage.stderr, /--tenant/);
        const none = await ctx.pulse(['score', '--tenant', b.tenant]);
        assert.equal(none.code, 1);
        assert.match(none.stderr, /no active churn model/);
    });

    it('another tenant sees none of it', async () => {
        assertProblem(assert, await call(b, 'GET', `/api/v1/ml/models/${model}`), 404, 'not_found');
        assertProblem(assert, await call(b, 'POST', `/api/v1/ml/models/${model}/activate`), 404, 'not_found');
        assertProblem(assert, await call(b, 'GET', `/api/v1/ai/churn-prediction/${customerId}`), 404, 'not_found');
        const list = await call(b, 'GET', '/api/v1/ml/models');
        assert.equal(list.json.total, 0);
        const p = await call(b, 'GET', '/api/v1/ml/predictions');
        assert.equal(p.json.total, 0);
    });

    // A running job is asked to stop at its next step; holding what the job waits for (the registry's
    // per-tenant lock, the predictions table) keeps it running until the cancel has been asked.
    const runningIn = async (t, id, phase) => {
        for (let i = 0; i < 400; i++) {
            const r = await call(t, 'GET', `/api/v1/jobs/${id}`);
            if (r.json.state === 'running' && r.json.phase === phase) return r.json;
            assert.ok(!['done', 'failed', 'cancelled'].includes(r.json.state), `the job ended before '${phase}': ${r.text}`);
            await sleep(25);
        }
        throw new Error(`job ${id} never reached '${phase}'`);
    };
    const cancelRunning = async (t, id) => {
        const del = await call(t, 'DELETE', `/api/v1/jobs/${id}`);
        assert.equal(del.status, 202, del.text);
        assert.equal(del.json.cancel_requested, true);
    };

    it('cancels a running training: it ends cancelled and no model version is stored', async () => {
        const versions = () => ctx.sql(`SELECT count(*) || ' ' || max(version) FROM models WHERE tenant_id = '${a.tenant}'`);
        const before = await versions();
        const holder = ctx.sql(`BEGIN; SELECT pg_advisory_xact_lock(hashtext('pulse.models.${a.tenant}')); SELECT pg_sleep(3); COMMIT`);
        await sleep(500);
        const r = await call(a, 'POST', '/api/v1/ml/train', { seed: 11, activate: true });
        assert.equal(r.status, 202, r.text);
        await runningIn(a, r.json.job_id, 'storing the model');
        // waiting on the lock, the job keeps its heartbeat (no other worker may take it for dead)
        const beat = () => ctx.sql(`SELECT extract(epoch FROM heartbeat_at) FROM jobs WHERE id = '${r.json.job_id}'`);
        const [b1] = await beat();
        await sleep(1200);
        const [b2] = await beat();
        assert.ok(Number(b2) > Number(b1), `heartbeat ${b1} -> ${b2}`);
        await cancelRunning(a, r.json.job_id);
        await holder;
        const j = await finished(a, r.json.job_id);
        assert.equal(j.state, 'cancelled', JSON.stringify(j));
        assert.equal(j.error.code, 'cancelled');
        assert.equal(j.error.message, 'cancelled by a user; nothing was stored');
        assert.deepEqual(await versions(), before);
        const active = await call(a, 'GET', '/api/v1/ml/models');
        assert.equal(active.json.items.find((m) => m.active).id, model, 'the active model stays');
    });

    it('cancels a running scoring: it ends cancelled and the previous predictions stay', async () => {
        const digest = () => ctx.sql(`SELECT md5(string_agg(x::text, ',' ORDER BY customer_id)) || ' ' || count(*)
            FROM predictions x WHERE tenant_id = '${a.tenant}'`);
        const before = await digest();
        const reader = ctx.sql('BEGIN; LOCK TABLE predictions IN ACCESS SHARE MODE; SELECT pg_sleep(3); COMMIT');
        await sleep(500);
        const r = await call(a, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        assert.equal(r.status, 202, r.text);
        await runningIn(a, r.json.job_id, 'storing predictions');
        await cancelRunning(a, r.json.job_id);
        await reader;
        const j = await finished(a, r.json.job_id);
        assert.equal(j.state, 'cancelled', JSON.stringify(j));
        assert.equal(j.error.message, 'cancelled by a user; nothing was stored');
        assert.deepEqual(await digest(), before);
        assert.deepEqual(await ctx.sql(`SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_next'`), ['0']);
    });

    it('hands a running training back to the queue when its server stops, and the next server finishes it', async () => {
        const holder = ctx.sql(`BEGIN; SELECT pg_advisory_xact_lock(hashtext('pulse.models.${a.tenant}')); SELECT pg_sleep(4); COMMIT`);
        await sleep(500);
        const r = await call(a, 'POST', '/api/v1/ml/train', { seed: 12 });
        assert.equal(r.status, 202, r.text);
        await runningIn(a, r.json.job_id, 'storing the model');
        assert.equal(await srv.stop('SIGTERM'), 0, srv.exitReport());
        const [row] = await ctx.sql(`SELECT state || '|' || phase || '|' || attempts FROM jobs WHERE id = '${r.json.job_id}'`);
        assert.equal(row, 'queued|queued again: the server stopped while it ran|0');
        await holder;
        srv = await ctx.startServer(SERVER);
        const h = tenantHelpers(ctx, () => srv);
        for (const t of [a, b]) t.token = await h.mint(t.userId, t.tenant, 'owner'); // a new server signs anew
        const j = await done(a, r.json.job_id);
        assert.equal(j.attempts, 1);
        assert.equal(j.result.active, false);
    });

    it('POST /api/v1/predict scores features in with reasons and the segment', async () => {
        const risky = { Contract: 'month-to-month', TenureMonths: 1, MonthlyCharges: 110, Plan: 'Unlimited' };
        const safe = { Contract: 'two-year', TenureMonths: 70, MonthlyCharges: 20, Plan: 'Basic' };
        const r1 = await call(a, 'POST', '/api/v1/predict', { features: risky, r: 1, f: 1, m: 5 });
        assert.equal(r1.status, 200, r1.text);
        const r2 = await call(a, 'POST', '/api/v1/predict', { features: safe });
        assert.equal(r2.status, 200, r2.text);
        console.log(`predict: risky ${r1.json.churn_probability.toFixed(3)} (${r1.json.risk_band}, ${r1.json.segment}), ` +
            `safe ${r2.json.churn_probability.toFixed(3)} (${r2.json.risk_band})`);
        assert.equal(r1.json.model_id, model);
        assert.ok(r1.json.churn_probability > r2.json.churn_probability, `${r1.text} / ${r2.text}`);
        assert.ok(r1.json.churn_probability >= 0 && r1.json.churn_probability <= 1);
        assert.ok(['low', 'medium', 'high'].includes(r1.json.risk_band));
        assert.ok(r1.json.reasons.length > 0 && r1.json.reasons.length <= 6, r1.text);
        assert.match(r1.json.reasons[0].text, / — (raises|lowers) the risk$/);
        assert.equal(typeof r1.json.segment, 'string', r1.text);
        assert.equal(r2.json.segment, null);
        assert.ok(Array.isArray(r2.json.missing_features));
        // the same answer as the batch scorer for a stored customer: same features, same probability
        const m = await call(a, 'GET', `/api/v1/ml/models/${model}`);
        const one = await call(a, 'GET', `/api/v1/ml/predictions?limit=1`);
        const cust = await ctx.sql(`SELECT attributes::text FROM customers WHERE id = ${one.json.items[0].customer_id}`);
        const attrs = JSON.parse(cust[0]);
        const feats = {};
        for (const f of m.json.features) if (f in attrs) feats[f] = attrs[f];
        const same = await call(a, 'POST', '/api/v1/predict', { features: feats });
        assert.equal(same.status, 200, same.text);
        if (!m.json.features.some((f) => f.startsWith('analytics.')))
            assert.ok(Math.abs(same.json.churn_probability - one.json.items[0].churn_probability) < 1e-5, `${same.text} vs ${one.text}`);
        assertProblem(assert, await call(a, 'POST', '/api/v1/predict', { features: risky, r: 1 }), 422, 'validation_failed');
        assertProblem(assert, await call(a, 'POST', '/api/v1/predict', {}), 422, 'validation_failed');
        assertProblem(assert, await call(b, 'POST', '/api/v1/predict', { features: risky }), 409, 'no_model');
    });

    it('a corrupted model fails the scoring job with a clear error, and the server lives on', async () => {
        await ctx.sql(`UPDATE models SET model = overlay(model placing '\\xdeadbeef'::bytea from 40) WHERE id = '${model}'`);
        const r = await call(a, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        const j = await finished(a, r.json.job_id);
        assert.equal(j.state, 'failed');
        assert.equal(j.error.code, 'model_invalid');
        assert.match(j.error.message, /cannot be loaded/);
        assertProblem(assert, await call(a, 'POST', '/api/v1/predict', { features: {} }), 409, 'model_invalid');
        const h = await call(a, 'GET', '/api/v1/ml/status');
        assert.equal(h.status, 200);
    });

    it('trains on behavioural labels from e-commerce transactions (planted churn)', async () => {
        const h = tenantHelpers(ctx, () => srv, { industry: 'ecommerce' });
        e = await h.makeTenant('ML Shop', 'owner@ml-shop.test');
        const dir = path.join(ctx.varDir, 'gen-shop');
        const g = await ctx.pulse(['gen', '--industry', 'ecommerce', '--customers', '400', '--seed', '5', '--out', dir]);
        assert.equal(g.code, 0, g.stderr);
        await done(e, await upload(e, await readFile(path.join(dir, 'transactions.csv')), 'transactions.csv'));
        // no labels: the route picks behavioural ones; too long a horizon for ~2 years of data is refused
        const long = await call(e, 'POST', '/api/v1/ml/train', { horizon_days: 700 });
        assert.equal(long.status, 202, long.text);
        const lj = await finished(e, long.json.job_id);
        assert.equal(lj.state, 'failed', JSON.stringify(lj));
        assert.equal(lj.error.code, 'insufficient_history', JSON.stringify(lj));
        assert.match(lj.error.message, /span \d+ days .* at least 790 days/);
        const r = await call(e, 'POST', '/api/v1/ml/train', { label: 'behavioural' });
        assert.equal(r.status, 202, r.text);
        const j = await done(e, r.json.job_id);
        assert.equal(j.result.label, 'behavioural');
        console.log(`behavioural churn, ecommerce 400 seed 5: test roc_auc ${j.result.metrics.roc_auc.toFixed(4)} ` +
            `(${j.result.algorithm}, ${j.result.rows} customers)`);
        assert.ok(j.result.metrics.roc_auc > 0.75, JSON.stringify(j.result.metrics));
        const m = await call(e, 'GET', `/api/v1/ml/models/${j.result.model_id}`);
        assert.equal(m.status, 200, m.text);
        assert.equal(m.json.params.label, 'behavioural');
        assert.equal(m.json.params.horizon_days, 90);
        assert.equal(m.json.data_snapshot.label, 'behavioural');
        assert.equal(m.json.data_snapshot.data_to, '2026-06-30');
        assert.equal(m.json.data_snapshot.cutoff, '2026-04-02');
        assert.ok(m.json.features.includes('analytics.recency_days'), JSON.stringify(m.json.features));
    });

    it('explains behavioural scores in a marketer\'s words (recency against the customer\'s own rhythm)', async () => {
        // the model reads computed features: before any segmentation, scoring says what to do
        const early = await call(e, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        assert.equal(early.status, 202, early.text);
        const ej = await finished(e, early.json.job_id);
        assert.equal(ej.state, 'failed', JSON.stringify(ej));
        assert.equal(ej.error.code, 'needs_segmentation');
        assert.match(ej.error.message, /run the segmentation first/);
        const seg = await ctx.pulse(['segment', '--tenant', e.tenant]);
        assert.equal(seg.code, 0, seg.stderr);
        const sc = await call(e, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        assert.equal(sc.status, 202, sc.text);
        await done(e, sc.json.job_id);
        // the reasons are stored as codes and worded when read (the sentence compares with the
        // customer's usual gap, a value kept next to the codes)
        const page = await call(e, 'GET', '/api/v1/ml/predictions?limit=500');
        assert.equal(page.status, 200, page.text);
        const texts = page.json.items.flatMap((x) => x.reasons).filter((r) => r.feature === 'recency_days').map((r) => r.text);
        assert.ok(texts.length > 0, 'recency is among the reasons');
        const RECENCY = /^(no purchase for \d+ days, \d+\.\d× longer than usual|bought \d+ days ago, sooner than their usual \d+ days|last purchase \d+ days ago) — (raises|lowers) the risk$/;
        for (const t of texts) assert.match(t, RECENCY);
        assert.ok(texts.some((t) => /longer than usual/.test(t)), texts.slice(0, 5).join(' | '));
    });

    // A customer's stored features by name (the last segmentation's run), as POST /api/v1/predict takes them.
    const storedFeatures = async (cid) => {
        const [names, vals] = (await ctx.sql(`SELECT array_to_json(r.feature_names) || '|' || array_to_json(a.features)
            FROM customer_analytics a JOIN analytics_runs r ON r.id = a.run_id WHERE a.customer_id = ${cid}`))[0].split('|');
        const fv = JSON.parse(vals);
        return Object.fromEntries(JSON.parse(names).map((n, i) => [n, fv[i]]));
    };

    it('words the stored reasons as the live explanation of the same features', async () => {
        const page = await call(e, 'GET', '/api/v1/ml/predictions?limit=20');
        assert.equal(page.status, 200, page.text);
        for (const item of page.json.items.slice(0, 5)) {
            const live = await call(e, 'POST', '/api/v1/predict', { features: await storedFeatures(item.customer_id) });
            assert.equal(live.status, 200, live.text);
            assert.ok(Math.abs(live.json.churn_probability - item.churn_probability) < 1e-5, `${live.text} vs ${JSON.stringify(item)}`);
            assert.equal(item.reasons.length, live.json.reasons.length, JSON.stringify([item.reasons, live.json.reasons]));
            item.reasons.forEach((r, i) => {
                const l = live.json.reasons[i];
                assert.equal(r.feature, l.feature);
                assert.equal(r.text, l.text);
                assert.equal(r.direction, l.direction);
                assert.ok(Math.abs(r.effect - l.effect) <= 0.00005 + 1e-9, `${r.effect} vs ${l.effect}`); // stored: 4 decimals
                assert.equal(r.value, l.value === 'missing' ? null : l.value);
            });
        }
    });

    it('a prediction whose model is gone still shows, its reasons without words', async () => {
        const page = await call(e, 'GET', '/api/v1/ml/predictions?limit=2');
        const [gone, kept] = page.json.items;
        const [was] = await ctx.sql(`SELECT model_id FROM predictions WHERE customer_id = ${gone.customer_id}`);
        await ctx.sql(`UPDATE predictions SET model_id = gen_random_uuid() WHERE customer_id = ${gone.customer_id}`);
        try {
            const again = await call(e, 'GET', '/api/v1/ml/predictions?limit=2');
            assert.equal(again.status, 200, again.text);
            const [g, k] = again.json.items;
            assert.equal(g.churn_probability, gone.churn_probability);
            assert.equal(g.reasons.length, gone.reasons.length);
            assert.ok(g.reasons.every((r) => r.text === null && r.feature === null && typeof r.effect === 'number'), JSON.stringify(g));
            assert.deepEqual(g.reasons.map((r) => r.direction), gone.reasons.map((r) => r.direction));
            assert.match(g.reasons_note, /gone or cannot be loaded/);
            assert.deepEqual(k.reasons, kept.reasons, 'the other rows keep their words');
            assert.equal(k.reasons_note, undefined);
            const one = await call(e, 'GET', `/api/v1/ai/churn-prediction/${gone.customer_id}`);
            assert.equal(one.status, 200, one.text);
            assert.match(one.json.reasons_note, /gone/);
        } finally {
            await ctx.sql(`UPDATE predictions SET model_id = '${was}' WHERE customer_id = ${gone.customer_id}`);
        }
    });

    it('the churn in segment and customer answers follows a new scoring run, without segmenting again', async () => {
        const shown = async () => {
            const page = await call(e, 'GET', '/api/v1/ml/predictions?limit=500');
            const cid = page.json.items[7].customer_id;
            const seg = await call(e, 'GET', `/api/v1/segmentation/customers/${cid}/segment`);
            assert.equal(seg.status, 200, seg.text);
            const cust = await call(e, 'GET', `/api/v1/customers/${cid}`);
            assert.equal(cust.status, 200, cust.text);
            const dist = await call(e, 'GET', `/api/v1/segmentation/organizations/${e.tenant}/segments`);
            assert.equal(dist.status, 200, dist.text);
            const [avg] = await ctx.sql(`SELECT round(avg(p.churn_probability)::numeric, 6) FROM predictions p
                JOIN customer_analytics a ON a.tenant_id = p.tenant_id AND a.customer_id = p.customer_id
                WHERE p.tenant_id = '${e.tenant}' AND a.segment = '${seg.json.segment}'`);
            const pred = page.json.items[7];
            assert.equal(seg.json.churn_probability, pred.churn_probability);
            assert.equal(seg.json.churn_band, pred.risk_band);
            assert.equal(cust.json.analytics.churn.probability, pred.churn_probability);
            assert.equal(cust.json.analytics.churn.band, pred.risk_band);
            const row = dist.json.segments.find((x) => x.segment === seg.json.segment);
            assert.ok(Math.abs(row.avg_churn - Number(avg)) < 1e-5, `${row.avg_churn} vs ${avg}`);
            return { cid, p: pred.churn_probability, avg: row.avg_churn };
        };
        const before = await shown();
        const t = await call(e, 'POST', '/api/v1/ml/train', { label: 'behavioural', horizon_days: 60, seed: 3, activate: true });
        assert.equal(t.status, 202, t.text);
        await done(e, t.json.job_id);
        const sc = await call(e, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        await done(e, sc.json.job_id);
        const after = await shown();
        assert.notEqual(after.avg, before.avg, 'another model, other averages');
    });

    // A customer's BG/NBD summary straight from the stored transactions (days, UTC), as the models see it.
    const summaryOf = async (tenant, ref) => {
        const [line] = await ctx.sql(`WITH d AS (SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, sum(amount) AS spend
                FROM transactions WHERE tenant_id = '${tenant}' AND customer_ref = '${ref}' AND NOT is_return AND amount >= 0
                GROUP BY 1),
            f AS (SELECT min(day) AS first FROM d),
            e AS (SELECT max((occurred_at AT TIME ZONE 'UTC')::date) + 1 AS end_day FROM transactions WHERE tenant_id = '${tenant}')
            SELECT count(*) - 1, max(day) - min(day), (SELECT end_day FROM e) - min(day),
                coalesce(sum(spend) FILTER (WHERE day > (SELECT first FROM f)) / nullif(count(*) - 1, 0), 0) FROM d`);
        const [x, t_x, T, zbar] = line.split('|').map(Number);
        return { x, t_x, T, zbar };
    };

    it('trains both CLV models on a time split, keeps the lower holdout MAE and writes every customer\'s CLV', async () => {
        const seg = await ctx.pulse(['segment', '--tenant', e.tenant, '--k', '3']);
        assert.equal(seg.code, 0, seg.stderr);
        // a holdout that leaves too little calibration history is refused with the figures
        const long = await call(e, 'POST', '/api/v1/ml/train', { kind: 'clv', horizon_days: 700 });
        assert.equal(long.status, 202, long.text);
        const lj = await finished(e, long.json.job_id);
        assert.equal(lj.state, 'failed', JSON.stringify(lj));
        assert.equal(lj.error.code, 'insufficient_history', JSON.stringify(lj));
        assert.match(lj.error.message, /span \d+ days .* at least 790 days/);

        const r = await call(e, 'POST', '/api/v1/ml/train', { kind: 'clv' });
        assert.equal(r.status, 202, r.text);
        const j = await done(e, r.json.job_id);
        assert.equal(j.result.kind, 'clv');
        assert.equal(j.result.active, true);
        const c = j.result.candidates;
        for (const k of ['bgnbd', 'clv_gbdt']) {
            assert.equal(typeof c[k].mae, 'number', JSON.stringify(c));
            assert.ok(c[k].mae > 0 && c[k].rmse >= c[k].mae, JSON.stringify(c));
        }
        const alg = c.clv_gbdt.mae < c.bgnbd.mae ? 'clv_gbdt' : 'bgnbd';
        assert.equal(j.result.algorithm, alg, 'the lower holdout MAE is kept');
        assert.equal(j.result.metrics.mae, c[alg].mae);
        assert.equal(j.result.metrics.rmse, c[alg].rmse);
        console.log(`clv, ecommerce 400 seed 5, 90-day holdout: bgnbd MAE ${c.bgnbd.mae} RMSE ${c.bgnbd.rmse}, ` +
            `clv_gbdt MAE ${c.clv_gbdt.mae} RMSE ${c.clv_gbdt.rmse}: ${alg}, fit ${j.result.fit_seconds} s`);

        const m = await call(e, 'GET', `/api/v1/ml/models/${j.result.model_id}`);
        assert.equal(m.status, 200, m.text);
        assert.equal(m.json.algorithm, alg);
        assert.equal(m.json.metrics.mae, c[alg].mae);
        assert.equal(m.json.params.horizon_days, 90);
        assert.equal(m.json.data_snapshot.cutoff, '2026-04-02');
        const rep = m.json.report;
        assert.equal(rep.chosen, alg);
        assert.deepEqual(rep.holdout, ['2026-04-02', '2026-06-30']);
        assert.equal(rep.models.bgnbd.metrics.mae, c.bgnbd.mae);
        assert.equal(rep.models.clv_gbdt.metrics.rmse, c.clv_gbdt.rmse);
        for (const k of ['r', 'alpha', 'a', 'b', 'p', 'q', 'gamma']) assert.ok(rep.models.bgnbd.params[k] > 0, k);
        const tbl = rep.frequency_table;
        assert.deepEqual(tbl.map((g) => g.repeat_purchases), ['0', '1', '2', '3', '4', '5', '6', '7+']);
        assert.equal(tbl.reduce((s, g) => s + g.customers, 0), rep.n_test);
        for (const g of tbl.filter((g) => g.customers > 0))
            for (const k of ['predicted_purchases', 'actual_purchases', 'predicted_spend_bgnbd', 'predicted_spend_clv_gbdt', 'actual_spend'])
                assert.equal(typeof g[k], 'number', `${k} ${JSON.stringify(g)}`);
        assert.equal(rep.refit.model, alg);
        assert.equal(j.result.clv_written, 400);
        const [nclv] = await ctx.sql(`SELECT count(*) FROM customer_analytics WHERE tenant_id = '${e.tenant}' AND clv > 0`);
        assert.ok(Number(nclv) > 300, nclv);
        const list = await call(e, 'GET', '/api/v1/ml/models?kind=clv');
        assert.equal(list.status, 200, list.text);
        assert.equal(list.json.items[0].algorithm, alg);
        const s = await call(e, 'GET', '/api/v1/ml/status');
        assert.equal(s.json.clv.trained, true);

        // scoring writes each customer's CLV from the active CLV model into the predictions
        await ctx.sql(`UPDATE customer_analytics SET clv = NULL WHERE tenant_id = '${e.tenant}'`);
        const sc = await call(e, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
        assert.equal(sc.status, 202, sc.text);
        const sj = await done(e, sc.json.job_id);
        assert.equal(sj.result.clv.written, 400, JSON.stringify(sj.result));
        const [npred] = await ctx.sql(`SELECT count(*) FROM predictions WHERE tenant_id = '${e.tenant}' AND clv > 0`);
        assert.ok(Number(npred) > 300, npred);
        const [top] = await ctx.sql(`SELECT p.customer_id || '|' || c.external_id || '|' || p.clv FROM predictions p JOIN customers c
            ON c.tenant_id = p.tenant_id AND c.id = p.customer_id WHERE p.tenant_id = '${e.tenant}' ORDER BY p.clv DESC LIMIT 1`);
        const [cid, ref, stored] = top.split('|');
        const one = await call(e, 'GET', `/api/v1/ai/churn-prediction/${cid}`);
        assert.equal(one.status, 200, one.text);
        assert.ok(Math.abs(one.json.clv - Number(stored)) < 1e-6, one.text);

        // /api/v1/predict values the same customer as the scorer did, from the inputs its model reads
        let body;
        if (alg === 'bgnbd') {
            body = { features: {}, summary: await summaryOf(e.tenant, ref) };
        } else {
            const [names, vals] = (await ctx.sql(`SELECT array_to_json(r.feature_names) || '|' || array_to_json(a.features)
                FROM customer_analytics a JOIN analytics_runs r ON r.id = a.run_id WHERE a.customer_id = ${cid}`))[0].split('|');
            const fv = JSON.parse(vals);
            body = { features: Object.fromEntries(JSON.parse(names).map((n, i) => [n, fv[i]])) };
        }
        const p = await call(e, 'POST', '/api/v1/predict', body);
        assert.equal(p.status, 200, p.text);
        assert.equal(p.json.clv_model.algorithm, alg);
        assert.equal(p.json.clv_model.horizon_days, 90);
        assert.deepEqual(p.json.clv_missing, []);
        assert.ok(Math.abs(p.json.clv - Number(stored)) < 1e-4 * Number(stored), `${p.text} vs ${stored}`);
        assert.equal(typeof p.json.churn_probability, 'number', 'the churn model answers too');
        // a summary-less, feature-less request is valued only where the model can (bgnbd: missing inputs listed)
        const bare = await call(e, 'POST', '/api/v1/predict', { features: {} });
        assert.equal(bare.status, 200, bare.text);
        if (alg === 'bgnbd') {
            assert.equal(bare.json.clv, null);
            assert.deepEqual(bare.json.clv_missing, ['frequency', 'span_days', 'tenure_days']);
        }
        assertProblem(assert, await call(e, 'POST', '/api/v1/predict', { features: {}, summary: { x: -1 } }), 422, 'validation_failed');
    });

    it('pulse train --kind clv --horizon and --label run the same jobs from the command line', async () => {
        const t = await ctx.pulse(['train', '--tenant', e.tenant, '--kind', 'clv', '--horizon', '60']);
        assert.equal(t.code, 0, t.stderr + t.stdout);
        assert.match(t.stdout, /done: .*"kind": ?"clv"/);
        assert.match(t.stdout, /"horizon_days": ?60\b/);
        const b2 = await ctx.pulse(['train', '--tenant', e.tenant, '--label', 'behavioural', '--horizon', '60']);
        assert.equal(b2.code, 0, b2.stderr + b2.stdout);
        const [h] = await ctx.sql(`SELECT params->>'horizon_days' FROM models WHERE tenant_id = '${e.tenant}' AND kind = 'churn'
            ORDER BY version DESC LIMIT 1`);
        assert.equal(h, '60');
        for (const args of [['--horizon', 'ninety'], ['--horizon', '3'], ['--kind', 'clv', '--label', 'explicit'], ['--label', 'maybe']]) {
            const bad = await ctx.pulse(['train', '--tenant', e.tenant, ...args]);
            assert.equal(bad.code, 2, `${args}: ${bad.stderr}`);
            assert.match(bad.stderr, /--(horizon|label)/);
        }
        const long = await ctx.pulse(['train', '--tenant', e.tenant, '--kind', 'clv', '--horizon', '700']);
        assert.equal(long.code, 1);
        assert.match(long.stderr, /not enough history/);
    });

    it('pulse bench score prints batch scoring throughput through the container', async () => {
        const r = await ctx.pulse(['bench', 'score', '--rows', '20000', '--trees', '20']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /20 trees depth 4/);
        assert.match(r.stdout, /1 thread : +[\d.]+ M rows\/s wall, +[\d.]+ M rows\/s per core/);
        assert.match(r.stdout, /2 threads: /);
        const bad = await ctx.pulse(['bench', 'score', '--rows']);
        assert.equal(bad.code, 2);
    });

    it('reaches the Telco ROC AUC through upload and train', { skip: !existsSync(TELCO) && 'no ../shared/data/telco_churn.csv' },
        async () => {
            const t = await tenantHelpers(ctx, () => srv, { industry: 'telecom' }).makeTenant('Real Telco', 'owner@real.test');
            await done(t, await upload(t, await readFile(TELCO)));
            const r = await call(t, 'POST', '/api/v1/ml/train', { dataset_type: 'telco' });
            const j = await done(t, r.json.job_id);
            console.log(`# telco: ${j.result.algorithm} roc_auc ${j.result.metrics.roc_auc} on ${j.result.rows} customers, ` +
                `training ${j.result.train_seconds} s`);
            assert.ok(j.result.metrics.roc_auc >= 0.845, JSON.stringify(j.result.metrics));
            const s = await call(t, 'POST', '/api/v1/ml/predict/batch', { customer_ids: ['all'] });
            const sj = await done(t, s.json.job_id);
            console.log(`# telco scoring: ${sj.result.scored} customers in ${sj.result.seconds} s (${sj.result.rows_per_second}/s; read ${sj.result.seconds_read}, predict ${sj.result.seconds_predict}, reasons ${sj.result.seconds_reasons}, write ${sj.result.seconds_write})`);
        });
});
