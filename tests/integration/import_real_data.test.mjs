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
    });
});
