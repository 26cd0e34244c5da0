// Regression tests for the findings of the security review of authentication and isolation:
// a token never outlives the user's current row, pending invitations are not owners, login names
// are e-mail addresses (no NUL or Unicode-fold tricks around the per-account limit), invitations
// are rate-limited, NUL characters are refused with a clear answer, and a database role that
// bypasses Row-Level Security is never used to serve requests.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createContext, FIXTURES, assertProblem, tenantHelpers } from './harness.mjs';

const TOKEN_ROUTES = path.join(FIXTURES, 'token_routes.lua');

describe('security', { timeout: 120000 }, () => {
    let ctx, srv;

    let call, makeTenant, makeUser;

    before(async () => {
        ctx = await createContext('pulse-it-security-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TOKEN_ROUTES, PULSE_LIMIT_INVITE_TENANT: '3/3600' } });
        ({ call, makeTenant, makeUser } = tenantHelpers(ctx, () => srv));
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    it('a demoted owner cannot use the old token to promote themselves back, and loses keys above the new role', async () => {
        const A = await makeTenant('Sec A', 'alice@sec-a.test');
        const bob = await makeUser(A, 'bob@sec-a.test', 'owner');
        const key = await call(bob.token, 'POST', '/api/v1/api-keys', { name: 'bob-key', role: 'owner' });
        assert.equal(key.status, 201, key.text);
        const analystKey = await call(bob.token, 'POST', '/api/v1/api-keys', { name: 'bob-read', role: 'viewer' });
        assert.equal(analystKey.status, 201, analystKey.text);

        assert.equal((await call(A.token, 'PUT', `/api/v1/users/${bob.userId}/role`, { role: 'viewer' })).status, 200);
        const again = await call(bob.token, 'PUT', `/api/v1/users/${bob.userId}/role`, { role: 'owner' });
        assertProblem(assert, again, 403, 'forbidden');
        assertProblem(assert, await call(key.json.key, 'GET', '/api/v1/users'), 401, 'unauthorized');
        assert.equal((await call(analystKey.json.key, 'GET', '/api/v1/customers')).status, 200, 'a key within the new role stays');
        assert.equal((await call(bob.token, 'GET', '/api/v1/customers')).status, 200, 'still a viewer');

        assert.equal((await call(A.token, 'DELETE', `/api/v1/users/${bob.userId}`)).status, 204);
        assertProblem(assert, await call(bob.token, 'GET', '/api/v1/customers'), 401, 'unauthorized');
        assertProblem(assert, await call(analystKey.json.key, 'GET', '/api/v1/customers'), 401, 'unauthorized');
    });

    it('a pending invitation is not an owner: the only real owner cannot step down', async () => {
        const B = await makeTenant('Sec B', 'owner@sec-b.test');
        const invite = await call(B.token, 'POST', '/api/v1/users', { email: 'ghost@sec-b.test', name: 'Ghost', role: 'owner' });
        assert.equal(invite.status, 201, invite.text);
        assertProblem(assert, await call(B.token, 'PUT', `/api/v1/users/${B.userId}/role`, { role: 'viewer' }), 409, 'last_owner');
        assertProblem(assert, await call(B.token, 'DELETE', `/api/v1/users/${B.userId}`), 409, 'last_owner');
    });

    it('refuses login names that are not e-mail addresses (NUL bytes, Unicode case folds)', async () => {
        const form = (username) => srv.fetch('/api/v1/auth/login', {
            method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: `username=${username}&password=whatever-password-1`,
        });
        for (const name of ['kate%40example.com%00abc', '%E2%84%AAate%40example.com', 'user%3A2']) {
            const r = await form(name);
            assert.equal(assertProblem(assert, r, 422, 'validation_failed').errors[0].field, 'body.username', name);
        }
    });

    it('limits invitations per organization', async () => {
        const C = await makeTenant('Sec C', 'owner@sec-c.test');
        const statuses = [];
        for (let i = 0; i < 4; i++) {
            statuses.push((await call(C.token, 'POST', '/api/v1/users', { email: `probe${i}@elsewhere.test`, name: 'P', role: 'viewer' })).status);
        }
        assert.deepEqual(statuses, [201, 201, 201, 429]);
    });

    it('answers a NUL character in a JSON text with 422, not a server error', async () => {
        const D = await makeTenant('Sec D', 'owner@sec-d.test');
        const r = await srv.fetch('/api/v1/customers', {
            method: 'POST', headers: { authorization: `Bearer ${D.token}`, 'content-type': 'application/json' },
            body: '{"external_id":"X1","name":"a\\u0000b","attributes":{}}',
        });
        assert.equal(assertProblem(assert, r, 422, 'validation_failed').errors[0].code, 'invalid_characters');
    });

    it('never serves requests as a role that bypasses Row-Level Security', async () => {
        const [owner] = await ctx.sql('SELECT current_user');
        const bypass = await ctx.startServer({ env: { PULSE_DB_ROLE: owner } });
        try {
            const ready = await bypass.fetch('/ready');
            assert.equal(ready.status, 503, ready.text);
            assert.match(ready.json.checks.database, /bypasses Row-Level Security/);
        } finally {
            assert.equal(await bypass.stop(), 0, bypass.exitReport());
        }
    });
});
