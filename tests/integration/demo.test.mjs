// `pulse demo`: on an empty database it migrates, creates one demo organization per industry with
// its owner, generates their data (pulse gen) and imports it through the import jobs, prints how
// to sign in, and serves; a second run keeps everything (same password, nothing imported twice).
// The printed credentials really sign in.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createContext } from './harness.mjs';

describe('demo', { timeout: 120000 }, () => {
    let ctx;

    before(async () => {
        ctx = await createContext('pulse-it-demo-');
        await ctx.startDb();
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    const signIn = async (srv, password) => srv.fetch('/api/v1/auth/login/json', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'demo@pulse.local', password }), timeoutMs: 30000,
    });

    it('loads the demo organization and prints working credentials, twice over', async () => {
        let password;
        for (let run = 0; run < 2; run++) {
            const srv = await ctx.startServer({ command: 'demo' });
            const m = srv.stdout.match(/sign in as demo@pulse\.local\).*\n.*password (\S+)/);
            assert.ok(m, `the demo prints the credentials: ${srv.stdout}`);
            if (run === 0) password = m[1];
            assert.equal(m[1], password, 'the same password on every run');
            const login = await signIn(srv, password);
            assert.equal(login.status, 200, login.text);
            const list = await srv.fetch('/api/v1/customers?limit=5', {
                headers: { authorization: `Bearer ${login.json.access_token}` },
            });
            assert.equal(list.status, 200, list.text);
            assert.equal(list.json.total, 500, 'the demo customers, once');
            assert.equal(list.json.items.length, 5);
            assert.match(list.json.items[0].created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
            assert.equal(await srv.stop(), 0, srv.exitReport());
        }
        assert.ok(!(await ctx.sql("SELECT count(*) FROM users WHERE email = 'demo@pulse.local'")).includes('2'));
        // one organization per industry, each with its customers and their activity, imported once
        const rows = await ctx.sql(`SELECT o.industry || ' ' || (SELECT count(*) FROM customers c WHERE c.tenant_id = o.id)
            || ' ' || (SELECT count(*) FROM transactions t WHERE t.tenant_id = o.id) + (SELECT count(*) FROM events e WHERE e.tenant_id = o.id)
            || ' ' || (SELECT count(*) FROM imports i WHERE i.tenant_id = o.id AND i.state = 'done')
            FROM organizations o WHERE o.name LIKE 'Demo %' ORDER BY o.industry`);
        assert.equal(rows.length, 3, rows.join('\n'));
        for (const r of rows) {
            const [industry, customers, activity, imports] = r.split(' ');
            assert.ok(Number(customers) >= 300, `${industry}: customers ${customers}`);
            assert.ok(Number(activity) > Number(customers), `${industry}: activity rows ${activity}`);
            assert.equal(imports, '2', `${industry}: customers and activity, each imported once`);
        }
        // and each opens segmented (one run, even after two demo starts) and clustered into 4
        const analysed = await ctx.sql(`SELECT o.industry || ' ' || (SELECT count(*) FROM analytics_runs a WHERE a.tenant_id = o.id)
            || ' ' || (SELECT count(*) FROM customer_analytics a WHERE a.tenant_id = o.id AND a.segment IS NOT NULL)
            || ' ' || (SELECT count(DISTINCT cluster) FROM customer_analytics a WHERE a.tenant_id = o.id)
            FROM organizations o WHERE o.name LIKE 'Demo %' ORDER BY o.industry`);
        for (const r of analysed) {
            const [industry, runs, segmented, clusters] = r.split(' ');
            assert.equal(runs, '1', `${industry}: segmented once`);
            assert.ok(Number(segmented) >= 200, `${industry}: ${segmented} customers with a segment`);
            assert.equal(clusters, '4', `${industry}: clusters`);
        }
    });
});
