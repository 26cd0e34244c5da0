// `pulse demo`: on an empty database it migrates, creates the demo organization, its owner and
// customers, prints how to sign in, and serves; a second run keeps everything (same password,
// no duplicate customers). The printed credentials really sign in.
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
            const m = srv.stdout.match(/sign in as demo@pulse\.local with password (\S+)/);
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
    });
});
