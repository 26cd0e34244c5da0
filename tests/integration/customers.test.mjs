// The customer list's filters, sorting and paging, including inputs that try to escape the
// search (LIKE wildcards, quotes) and sort orders that are not on the list.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { createContext, FIXTURES, assertProblem } from './harness.mjs';

const TOKEN_ROUTES = path.join(FIXTURES, 'token_routes.lua');

describe('customers list', { timeout: 120000 }, () => {
    let ctx, srv, token;

    const get = (p) => srv.fetch(p, { headers: { authorization: `Bearer ${token}` } });
    const ids = (r) => r.json.items.map((c) => c.external_id);

    before(async () => {
        ctx = await createContext('pulse-it-customers-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TOKEN_ROUTES } });
        const [line] = await ctx.sql(
            "SELECT tenant_id || '|' || user_id FROM pulse_register('List Org', 'telecom', 'owner@list.test', 'Owner', 'unusable-hash')");
        const [tenant, userId] = line.split('|');
        const minted = await srv.fetch('/api/test/token', { json: { sub: userId, tenant, role: 'analyst' } });
        token = minted.json.access_token;
        const people = [
            ['K1', 'Ada Byron', 'ada@example.com', '2024-01-01T00:00:00Z'],
            ['K2', 'Alan Turing', 'alan@example.com', '2024-02-01T00:00:00Z'],
            ['K3', 'Grace Hopper', 'GRACE@example.com', '2024-03-01T00:00:00Z'],
            ['K4', '100% Real_Name', 'odd@example.com', '2024-04-01T00:00:00Z'],
            ['K5', null, 'noname@example.com', '2024-05-01T00:00:00Z'],
        ];
        for (const [ext, name, email] of people) {
            const r = await srv.fetch('/api/v1/customers', {
                headers: { authorization: `Bearer ${token}` }, json: { external_id: ext, name, email, attributes: {} },
            });
            assert.equal(r.status, 201, r.text);
        }
        for (const [ext, , , at] of people) await ctx.sql(`UPDATE customers SET created_at = '${at}' WHERE external_id = '${ext}'`);
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    it('searches name, e-mail and external id by prefix, case-insensitively', async () => {
        assert.deepEqual(ids(await get('/api/v1/customers?q=al')), ['K2']);
        assert.deepEqual(ids(await get('/api/v1/customers?q=GRA')), ['K3']);
        assert.deepEqual(ids(await get('/api/v1/customers?q=k')).sort(), ['K1', 'K2', 'K3', 'K4', 'K5']);
        const none = await get('/api/v1/customers?q=zzz');
        assert.deepEqual([none.json.items, none.json.total], [[], 0]);
    });

    it('treats LIKE wildcards and quotes in a search as plain characters', async () => {
        assert.deepEqual(ids(await get(`/api/v1/customers?q=${encodeURIComponent('100%')}`)), ['K4']);
        assert.deepEqual(ids(await get(`/api/v1/customers?q=${encodeURIComponent('%')}`)), []);
        assert.deepEqual(ids(await get(`/api/v1/customers?q=${encodeURIComponent('_')}`)), []);
        const quote = await get(`/api/v1/customers?q=${encodeURIComponent("' OR 1=1 --")}`);
        assert.equal(quote.status, 200, quote.text);
        assert.deepEqual(quote.json.items, []);
    });

    it('filters by e-mail, external id and creation time', async () => {
        assert.deepEqual(ids(await get('/api/v1/customers?email=grace@EXAMPLE.com')), ['K3']);
        assert.deepEqual(ids(await get('/api/v1/customers?external_id=K5')), ['K5']);
        const window = await get('/api/v1/customers?created_after=2024-02-01T00:00:00Z&created_before=2024-04-01T00:00:00Z&sort=created_at');
        assert.deepEqual(ids(window), ['K2', 'K3']);
        assert.equal(window.json.total, 2);
    });

    it('sorts by the listed orders only, with stable pages', async () => {
        assert.deepEqual(ids(await get('/api/v1/customers?sort=-created_at')), ['K5', 'K4', 'K3', 'K2', 'K1']);
        assert.deepEqual(ids(await get('/api/v1/customers?sort=name')), ['K4', 'K1', 'K2', 'K3', 'K5']);
        const page1 = await get('/api/v1/customers?sort=-id&limit=2');
        const page2 = await get('/api/v1/customers?sort=-id&limit=2&offset=2');
        assert.deepEqual([...ids(page1), ...ids(page2)], ['K5', 'K4', 'K3', 'K2']);
        assert.equal(page1.json.total, 5);
        const bad = await get('/api/v1/customers?sort=' + encodeURIComponent('name; DROP TABLE customers'));
        assertProblem(assert, bad, 422, 'validation_failed');
        assert.equal(bad.json.errors[0].field, 'query.sort');
        const badDate = await get('/api/v1/customers?created_after=yesterday');
        assertProblem(assert, badDate, 422, 'validation_failed');
    });
});
