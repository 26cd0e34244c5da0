// Tenant resources over HTTP: users (invite, accept, roles, removal, the last owner), API keys
// (shown once, never listed, a working credential until revoked), customers (CRUD, paging,
// duplicates) and the audit log, with the role checks of each route. Tenants and their owners are
// made directly in the database (pulse_register) and tokens minted by a test-only route
// (fixtures/token_routes.lua), so the suite does not depend on the sign-in routes.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createContext, FIXTURES, assertProblem, tenantHelpers } from './harness.mjs';

const TOKEN_ROUTES = path.join(FIXTURES, 'token_routes.lua');
const STRONG_PASSWORD = 'violet-Harbor-7-lantern';

describe('tenants', { timeout: 120000 }, () => {
    let ctx, srv;
    let A; // { tenant, userId, token }
    let viewerA, analystA;

    let call, mint, makeTenant, makeUser;

    const auditEvents = async (t, event) => {
        const r = await call(t.token, 'GET', `/api/v1/audit?limit=500${event ? `&event=${event}` : ''}`);
        assert.equal(r.status, 200, r.text);
        return r.json.items;
    };

    before(async () => {
        ctx = await createContext('pulse-it-tenants-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TOKEN_ROUTES } });
        ({ call, mint, makeTenant, makeUser } = tenantHelpers(ctx, () => srv));
        A = await makeTenant('Org A', 'owner@org-a.test');
        viewerA = await makeUser(A, 'viewer@org-a.test', 'viewer');
        analystA = await makeUser(A, 'analyst@org-a.test', 'analyst');
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    describe('customers', () => {
        it('creates, reads, replaces and deletes a customer of the caller\'s tenant', async () => {
            const created = await call(analystA.token, 'POST', '/api/v1/customers',
                { external_id: 'c-1', email: 'c1@shop.test', name: 'Cee One', attributes: { plan: 'gold', visits: 3 } });
            assert.equal(created.status, 201, created.text);
            const c = created.json;
            assert.ok(Number.isInteger(c.id));
            assert.equal(c.external_id, 'c-1');
            assert.deepEqual(c.attributes, { plan: 'gold', visits: 3 });
            assert.equal(c.tenant_id, undefined);
            assert.deepEqual(await ctx.sql(`SELECT tenant_id FROM customers WHERE id = ${c.id}`), [A.tenant]);

            const read = await call(viewerA.token, 'GET', `/api/v1/customers/${c.id}`);
            assert.equal(read.status, 200, read.text);
            assert.equal(read.json.email, 'c1@shop.test');

            const put = await call(analystA.token, 'PUT', `/api/v1/customers/${c.id}`, { name: 'Cee Renamed' });
            assert.equal(put.status, 200, put.text);
            assert.equal(put.json.name, 'Cee Renamed');
            assert.equal(put.json.email, null, 'PUT replaces: a field left out becomes null');
            assert.deepEqual(put.json.attributes, {});
            assert.equal(put.json.external_id, 'c-1');

            const del = await call(analystA.token, 'DELETE', `/api/v1/customers/${c.id}`);
            assert.equal(del.status, 204, del.text);
            assertProblem(assert, await call(viewerA.token, 'GET', `/api/v1/customers/${c.id}`), 404, 'not_found');
            assertProblem(assert, await call(analystA.token, 'DELETE', `/api/v1/customers/${c.id}`), 404, 'not_found');
            assertProblem(assert, await call(analystA.token, 'PUT', `/api/v1/customers/${c.id}`, { name: 'x' }), 404, 'not_found');
        });

        it('takes the tenant only from the identity, never from the body', async () => {
            const r = await call(A.token, 'POST', '/api/v1/customers', { external_id: 'c-t', tenant_id: A.tenant });
            const p = assertProblem(assert, r, 422, 'validation_failed');
            assert.ok(p.errors.some((e) => e.field === 'body.tenant_id'), r.text);
        });

        it('answers 409 to a duplicate external_id and names bad fields', async () => {
            const first = await call(A.token, 'POST', '/api/v1/customers', { external_id: 'dup-1' });
            assert.equal(first.status, 201, first.text);
            assertProblem(assert, await call(A.token, 'POST', '/api/v1/customers', { external_id: 'dup-1', name: 'again' }),
                409, 'duplicate_external_id');
            const bad = await call(A.token, 'POST', '/api/v1/customers', { email: 'not-an-email', attributes: [1] });
            const p = assertProblem(assert, bad, 422, 'validation_failed');
            const fields = p.errors.map((e) => e.field).sort();
            assert.deepEqual(fields, ['body.attributes', 'body.email', 'body.external_id']);
        });

        it('lists customers in pages', async () => {
            for (let i = 0; i < 5; i++) {
                const r = await call(A.token, 'POST', '/api/v1/customers', { external_id: `page-${i}` });
                assert.equal(r.status, 201, r.text);
            }
            const [total] = await ctx.sql(`SELECT count(*) FROM customers WHERE tenant_id = '${A.tenant}'`);
            const all = await call(viewerA.token, 'GET', '/api/v1/customers');
            assert.equal(all.status, 200, all.text);
            assert.equal(all.json.total, Number(total));
            assert.equal(all.json.limit, 50);
            assert.equal(all.json.offset, 0);
            const page = await call(viewerA.token, 'GET', '/api/v1/customers?limit=2&offset=1');
            assert.equal(page.json.items.length, 2);
            assert.equal(page.json.limit, 2);
            assert.equal(page.json.offset, 1);
            assert.deepEqual(page.json.items.map((c) => c.id), all.json.items.slice(1, 3).map((c) => c.id));
            assertProblem(assert, await call(viewerA.token, 'GET', '/api/v1/customers?limit=501'), 422, 'validation_failed');
            assertProblem(assert, await call(viewerA.token, 'GET', '/api/v1/customers?offset=-1'), 422, 'validation_failed');
        });

        it('lets a viewer read but not write', async () => {
            assertProblem(assert, await call(viewerA.token, 'POST', '/api/v1/customers', { external_id: 'v-1' }), 403, 'forbidden');
            const [some] = await ctx.sql(`SELECT id FROM customers WHERE tenant_id = '${A.tenant}' LIMIT 1`);
            assertProblem(assert, await call(viewerA.token, 'PUT', `/api/v1/customers/${some}`, {}), 403, 'forbidden');
            assertProblem(assert, await call(viewerA.token, 'DELETE', `/api/v1/customers/${some}`), 403, 'forbidden');
            assert.equal((await call(viewerA.token, 'GET', `/api/v1/customers/${some}`)).status, 200);
        });

        it('answers 401 without a credential', async () => {
            assertProblem(assert, await call(null, 'GET', '/api/v1/customers'), 401, 'unauthorized');
            assertProblem(assert, await call('not-a-token', 'GET', '/api/v1/customers'), 401, 'unauthorized');
        });
    });

    describe('users', () => {
        it('lets only owners manage users', async () => {
            assertProblem(assert, await call(analystA.token, 'GET', '/api/v1/users'), 403, 'forbidden');
            assertProblem(assert, await call(analystA.token, 'POST', '/api/v1/users',
                { email: 'x@org-a.test', name: 'X', role: 'viewer' }), 403, 'forbidden');
            assertProblem(assert, await call(analystA.token, 'PUT', `/api/v1/users/${viewerA.userId}/role`, { role: 'owner' }),
                403, 'forbidden');
            assertProblem(assert, await call(viewerA.token, 'DELETE', `/api/v1/users/${analystA.userId}`), 403, 'forbidden');
        });

        it('lists the tenant\'s users in pages', async () => {
            const r = await call(A.token, 'GET', '/api/v1/users');
            assert.equal(r.status, 200, r.text);
            const emails = r.json.items.map((u) => u.email);
            assert.ok(emails.includes('owner@org-a.test') && emails.includes('viewer@org-a.test'), r.text);
            assert.equal(r.json.total, r.json.items.length);
            for (const u of r.json.items) {
                assert.deepEqual(Object.keys(u).sort(), ['created_at', 'email', 'id', 'name', 'role']);
            }
            const page = await call(A.token, 'GET', '/api/v1/users?limit=1&offset=1');
            assert.equal(page.json.items.length, 1);
            assert.equal(page.json.total, r.json.total);
            assert.equal(page.json.items[0].id, r.json.items[1].id);
        });

        it('invites a user, who sets a password once with the token', async () => {
            const r = await call(A.token, 'POST', '/api/v1/users', { email: 'New.Person@Org-A.test', name: 'New Person', role: 'analyst' });
            assert.equal(r.status, 201, r.text);
            const u = r.json;
            assert.equal(u.email, 'new.person@org-a.test');
            assert.equal(u.role, 'analyst');
            assert.match(u.invitation_token, /^[A-Za-z0-9_-]{40,}$/);
            assert.deepEqual(await ctx.sql(`SELECT password_hash IS NULL FROM users WHERE id = ${u.id}`), ['t']);
            // only the digest is stored
            const stored = await ctx.sql(`SELECT encode(token_hash, 'hex') FROM invitations WHERE user_id = ${u.id}`);
            assert.equal(stored.length, 1);
            assert.ok(!stored[0].includes(u.invitation_token));

            assertProblem(assert, await call(A.token, 'POST', '/api/v1/users', { email: 'new.person@org-a.test', name: 'Again', role: 'viewer' }),
                409, 'email_taken');

            const weak = await call(null, 'POST', '/api/v1/auth/accept-invite', { invitation_token: u.invitation_token, password: 'password123' });
            const p = assertProblem(assert, weak, 422, 'validation_failed');
            assert.equal(p.errors[0].field, 'body.password');
            assertProblem(assert, await call(null, 'POST', '/api/v1/auth/accept-invite',
                { invitation_token: 'no-such-token', password: STRONG_PASSWORD }), 404, 'not_found');

            const ok = await call(null, 'POST', '/api/v1/auth/accept-invite', { invitation_token: u.invitation_token, password: STRONG_PASSWORD });
            assert.equal(ok.status, 200, ok.text);
            assert.equal(ok.json.user_id, u.id);
            assert.deepEqual(await ctx.sql(`SELECT password_hash LIKE '$argon2id$%' FROM users WHERE id = ${u.id}`), ['t']);
            assertProblem(assert, await call(null, 'POST', '/api/v1/auth/accept-invite',
                { invitation_token: u.invitation_token, password: STRONG_PASSWORD }), 404, 'not_found');

            const events = await auditEvents(A);
            assert.ok(events.some((e) => e.event === 'user_invited' && e.detail.user_id === u.id));
            assert.ok(events.some((e) => e.event === 'invitation_accepted' && e.user_id === u.id));
            assert.ok(!JSON.stringify(events).includes(u.invitation_token), 'the audit log never holds the token');
        });

        it('changes roles, and never demotes or removes the last owner', async () => {
            const target = await makeUser(A, 'promote@org-a.test', 'viewer');
            const up = await call(A.token, 'PUT', `/api/v1/users/${target.userId}/role`, { role: 'owner' });
            assert.equal(up.status, 200, up.text);
            assert.equal(up.json.role, 'owner');
            const events = await auditEvents(A, 'role_changed');
            assert.ok(events.some((e) => e.detail.user_id === target.userId && e.detail.from === 'viewer' && e.detail.to === 'owner'));

            // two owners now: the first may be demoted; then the second is the last
            const down = await call(A.token, 'PUT', `/api/v1/users/${target.userId}/role`, { role: 'analyst' });
            assert.equal(down.status, 200, down.text);
            assertProblem(assert, await call(A.token, 'PUT', `/api/v1/users/${A.userId}/role`, { role: 'viewer' }), 409, 'last_owner');
            assertProblem(assert, await call(A.token, 'DELETE', `/api/v1/users/${A.userId}`), 409, 'last_owner');
            assert.deepEqual(await ctx.sql(`SELECT role FROM users WHERE id = ${A.userId}`), ['owner']);
            // an owner keeping the owner role is fine
            assert.equal((await call(A.token, 'PUT', `/api/v1/users/${A.userId}/role`, { role: 'owner' })).status, 200);

            assertProblem(assert, await call(A.token, 'PUT', `/api/v1/users/${target.userId}/role`, { role: 'boss' }), 422, 'validation_failed');
            assertProblem(assert, await call(A.token, 'PUT', '/api/v1/users/99999999/role', { role: 'viewer' }), 404, 'not_found');
        });

        it('removes a user', async () => {
            const gone = await makeUser(A, 'leaving@org-a.test', 'analyst');
            const r = await call(A.token, 'DELETE', `/api/v1/users/${gone.userId}`);
            assert.equal(r.status, 204, r.text);
            assert.deepEqual(await ctx.sql(`SELECT count(*) FROM users WHERE id = ${gone.userId}`), ['0']);
            assertProblem(assert, await call(A.token, 'DELETE', `/api/v1/users/${gone.userId}`), 404, 'not_found');
            const events = await auditEvents(A, 'user_removed');
            assert.ok(events.some((e) => e.detail.user_id === gone.userId && e.user_id === A.userId));
        });
    });

    it('a statement failing inside a transaction leaves no connection in a failed state', async () => {
        // a duplicate e-mail fails the INSERT inside the invite's transaction; the ROLLBACK must
        // still run, or the connection goes back to the pool in an aborted transaction
        for (let i = 0; i < 8; i++) {
            assertProblem(assert, await call(A.token, 'POST', '/api/v1/users', { email: 'owner@org-a.test', name: 'Dup', role: 'viewer' }),
                409, 'email_taken');
        }
        const answers = await Promise.all(Array.from({ length: 16 }, () => call(A.token, 'GET', '/api/v1/users?limit=1')));
        assert.deepEqual(answers.map((r) => r.status), answers.map(() => 200), answers.map((r) => r.text).join('\n'));
    });

    describe('api keys', () => {
        it('shows a key once, lists it without the secret, and lets it act with its role until revoked', async () => {
            const created = await call(A.token, 'POST', '/api/v1/api-keys', { name: 'ingest server', role: 'analyst' });
            assert.equal(created.status, 201, created.text);
            const k = created.json;
            assert.match(k.key, /^pk_[A-Za-z0-9_-]{43}$/);
            assert.equal(k.prefix, k.key.slice(0, k.prefix.length));
            assert.ok(k.prefix.length < 16);
            assert.equal(k.role, 'analyst');
            assert.deepEqual(await ctx.sql(`SELECT count(*) FROM api_keys WHERE encode(key_hash, 'hex') LIKE '%${k.key.slice(3, 20)}%' OR prefix = '${k.key}'`), ['0']);

            const listed = await call(A.token, 'GET', '/api/v1/api-keys');
            assert.equal(listed.status, 200, listed.text);
            assert.ok(!listed.text.includes(k.key), 'the key is never listed');
            const item = listed.json.items.find((i) => i.id === k.id);
            assert.deepEqual(Object.keys(item).sort(), ['created_at', 'id', 'last_used_at', 'name', 'prefix', 'revoked_at', 'role']);
            assert.equal(item.last_used_at, null);
            assert.equal(item.revoked_at, null);

            // the key is a credential with its own role
            assert.equal((await call(k.key, 'GET', '/api/v1/customers')).status, 200);
            const made = await call(k.key, 'POST', '/api/v1/customers', { external_id: 'by-key' });
            assert.equal(made.status, 201, made.text);
            assert.deepEqual(await ctx.sql(`SELECT tenant_id FROM customers WHERE id = ${made.json.id}`), [A.tenant]);
            assertProblem(assert, await call(k.key, 'GET', '/api/v1/users'), 403, 'forbidden');
            const used = (await call(A.token, 'GET', '/api/v1/api-keys')).json.items.find((i) => i.id === k.id);
            assert.notEqual(used.last_used_at, null);

            const revoked = await call(A.token, 'DELETE', `/api/v1/api-keys/${k.id}`);
            assert.equal(revoked.status, 204, revoked.text);
            assertProblem(assert, await call(k.key, 'GET', '/api/v1/customers'), 401, 'unauthorized');
            assert.equal((await call(A.token, 'DELETE', `/api/v1/api-keys/${k.id}`)).status, 204, 'revoking again changes nothing');
            const after = (await call(A.token, 'GET', '/api/v1/api-keys')).json.items.find((i) => i.id === k.id);
            assert.notEqual(after.revoked_at, null);

            const events = await auditEvents(A);
            assert.equal(events.filter((e) => e.event === 'api_key_created' && e.detail.key_id === k.id).length, 1);
            assert.equal(events.filter((e) => e.event === 'api_key_revoked' && e.detail.key_id === k.id).length, 1);
            assert.ok(!JSON.stringify(events).includes(k.key), 'the audit log never holds the key');
        });

        it('refuses non-owners, bad roles and unknown ids', async () => {
            assertProblem(assert, await call(analystA.token, 'POST', '/api/v1/api-keys', { name: 'k', role: 'viewer' }), 403, 'forbidden');
            assertProblem(assert, await call(analystA.token, 'GET', '/api/v1/api-keys'), 403, 'forbidden');
            assertProblem(assert, await call(A.token, 'POST', '/api/v1/api-keys', { name: 'k', role: 'root' }), 422, 'validation_failed');
            assertProblem(assert, await call(A.token, 'POST', '/api/v1/api-keys', { name: '', role: 'viewer' }), 422, 'validation_failed');
            assertProblem(assert, await call(A.token, 'DELETE', '/api/v1/api-keys/00000000-0000-4000-8000-000000000000'), 404, 'not_found');
            assertProblem(assert, await call(A.token, 'DELETE', '/api/v1/api-keys/not-a-uuid'), 422, 'validation_failed');
            assertProblem(assert, await call('pk_unknownkey', 'GET', '/api/v1/customers'), 401, 'unauthorized');
        });
    });

    describe('audit log', () => {
        it('is for owners, newest first, filterable by event', async () => {
            assertProblem(assert, await call(analystA.token, 'GET', '/api/v1/audit'), 403, 'forbidden');
            const r = await call(A.token, 'GET', '/api/v1/audit?limit=3');
            assert.equal(r.status, 200, r.text);
            assert.equal(r.json.limit, 3);
            assert.ok(r.json.total >= r.json.items.length);
            for (const e of r.json.items) {
                assert.deepEqual(Object.keys(e).sort(), ['created_at', 'detail', 'event', 'id', 'ip', 'user_id']);
            }
            const ids = r.json.items.map((e) => e.id);
            assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
            const only = await auditEvents(A, 'api_key_created');
            assert.ok(only.length >= 1 && only.every((e) => e.event === 'api_key_created'));
            assert.equal(only[0].ip, '127.0.0.1');
        });
    });
});
