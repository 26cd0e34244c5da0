// The real public files in ../shared/data (when present: the suite must pass without them) go
// through the API as a user would upload them: the IBM Telco churn attribute file (labels kept)
// and the CDNOW transactions (whitespace-separated, YYYYMMDD dates). Expected counts are computed
// from the files here, not written down.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createContext, FIXTURES, PULSE_HOME, tenantHelpers } from './harness.mjs';

const DATA = path.resolve(PULSE_HOME, '..', 'shared', 'data');
const TELCO = path.join(DATA, 'telco_churn.csv');
const CDNOW = path.join(DATA, 'cdnow_master.txt');
const present = existsSync(TELCO) && existsSync(CDNOW);

describe('imports of the real data sets', { timeout: 240000, skip: present ? false : `no ${DATA}` }, () => {
    let ctx, srv;

    before(async () => {
        ctx = await createContext('pulse-it-realdata-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: path.join(FIXTURES, 'token_routes.lua') } });
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    const importFile = async (token, file) => {
        const form = new FormData();
        form.append('file', new Blob([await readFile(file)]), path.basename(file));
        const r = await srv.fetch('/api/v1/imports', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
        assert.equal(r.status, 202, r.text);
        for (let i = 0; i < 1200; i++) {
            const j = await srv.fetch(`/api/v1/jobs/${r.json.job_id}`, { headers: { authorization: `Bearer ${token}` } });
            if (['done', 'failed', 'cancelled'].includes(j.json.state)) return { accepted: r.json, job: j.json };
            await new Promise((res) => setTimeout(res, 100));
        }
        throw new Error('the import did not finish');
    };

    it('imports the Telco churn file as customer attributes with their labels', async () => {
        const t = await tenantHelpers(ctx, () => srv, { industry: 'telecom' }).makeTenant('Real Telco', 'owner@real-telco.test');
        const { accepted, job } = await importFile(t.token, TELCO);
        assert.equal(accepted.kind, 'customers');
        assert.equal(accepted.mapping.churned, 'Churn');
        assert.equal(job.state, 'done', JSON.stringify(job));
        const lines = (await readFile(TELCO, 'utf8')).trim().split('\n').slice(1);
        const churned = lines.filter((l) => l.trim().endsWith(',Yes')).length;
        assert.deepEqual(await ctx.sql(`SELECT count(*) || ' ' || count(*) FILTER (WHERE churned) FROM customers
            WHERE tenant_id = '${t.tenant}'`), [`${lines.length} ${churned}`]);
        const [contract] = await ctx.sql(`SELECT attributes->>'Contract' FROM customers WHERE tenant_id = '${t.tenant}'
            AND external_id = '7590-VHVEG'`);
        assert.equal(contract, 'Month-to-month');
    });

    it('imports the CDNOW transactions: every row, every customer, 1997-1998', async () => {
        const t = await tenantHelpers(ctx, () => srv, { industry: 'ecommerce' }).makeTenant('Real Cdnow', 'owner@real-cdnow.test');
        const { accepted, job } = await importFile(t.token, CDNOW);
        assert.equal(accepted.kind, 'transactions');
        assert.equal(job.state, 'done', JSON.stringify(job));
        const rows = (await readFile(CDNOW, 'utf8')).trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
        const customers = new Set(rows.map((r) => r[0])).size;
        assert.equal(job.rows_read, rows.length);
        const report = (await srv.fetch(`/api/v1/imports/${job.id}/report`, { headers: { authorization: `Bearer ${t.token}` } })).json;
        assert.equal(report.rows_accepted + report.rows_duplicate + report.rows_rejected, rows.length, JSON.stringify(report));
        const [stored] = await ctx.sql(`SELECT count(*) || ' ' || count(DISTINCT customer_ref) || ' ' || min(occurred_at)::date
            || ' ' || max(occurred_at)::date FROM transactions WHERE tenant_id = '${t.tenant}'`);
        assert.equal(stored, `${report.rows_accepted} ${customers} 1997-01-01 1998-06-30`);

        // the CLV models on a 90-day time split of the real data: both measured, the lower MAE kept
        const auth = { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' };
        const r = await srv.fetch('/api/v1/ml/train', { method: 'POST', headers: auth, body: JSON.stringify({ kind: 'clv' }) });
        assert.equal(r.status, 202, r.text);
        let j;
        for (let i = 0; i < 1200; i++) {
            j = (await srv.fetch(`/api/v1/jobs/${r.json.job_id}`, { headers: auth })).json;
            if (['done', 'failed', 'cancelled'].includes(j.state)) break;
            await new Promise((res) => setTimeout(res, 100));
        }
        assert.equal(j.state, 'done', JSON.stringify(j));
        const c = j.result.candidates;
        const m = (await srv.fetch(`/api/v1/ml/models/${j.result.model_id}`, { headers: auth })).json;
        console.log(`# cdnow clv, 90-day holdout ${m.report.holdout.join(' to ')}, ${m.report.n_test} held-out customers: ` +
            `bgnbd MAE ${c.bgnbd.mae} RMSE ${c.bgnbd.rmse}, clv_gbdt MAE ${c.clv_gbdt.mae} RMSE ${c.clv_gbdt.rmse}; ` +
            `${j.result.algorithm} kept, ${j.result.fit_seconds} s`);
        for (const g of m.report.frequency_table)
            console.log(`#   repeat ${g.repeat_purchases}: ${g.customers} customers, purchases ${g.predicted_purchases} vs ` +
                `${g.actual_purchases}, spend bgnbd ${g.predicted_spend_bgnbd} clv_gbdt ${g.predicted_spend_clv_gbdt} vs ${g.actual_spend}`);
        assert.deepEqual(m.report.holdout, ['1998-04-02', '1998-06-30']);
        assert.equal(m.report.customers, customers, 'every CDNOW customer bought in the first quarter of 1997');
        assert.equal(j.result.algorithm, c.clv_gbdt.mae < c.bgnbd.mae ? 'clv_gbdt' : 'bgnbd');
        assert.ok(c.bgnbd.mae > 0 && c.clv_gbdt.mae > 0, JSON.stringify(c));
        assert.equal(m.report.frequency_table.reduce((n, g) => n + g.customers, 0), m.report.n_test);
    });
});
