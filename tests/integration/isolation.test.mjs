// Tenant isolation, driven by the router's own route table (/openapi.json lists every declared
// route but hidden ones), so a new route is covered without anyone remembering to add it:
// - every non-public operation answers 401 without a credential;
// - every non-public operation with a path parameter, called by tenant B's owner with tenant A's
//   real ids (and a valid body), answers 404 (or 403) and changes nothing of A's;
// - list operations of B show nothing of A's;
// - the second wall: the application role, without the tenant setting, sees no tenant rows, and
//   with another tenant's setting can neither see nor write A's rows (Row-Level Security).
// A route whose path parameter has no entry in ID_FOR fails the suite, naming the route: add the
// resource to the map (and make one of it in A) knowingly.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createContext, FIXTURES, tenantHelpers } from './harness.mjs';

const TOKEN_ROUTES = path.join(FIXTURES, 'token_routes.lua');
const SEGMENTS_RULE = fs.readFileSync(path.join(path.dirname(FIXTURES), '..', '..', 'rules', 'segments.lua'), 'utf8')
    .replace('"Champions", description = "Bought recently, buy often and spend the most."',
        '"Champions", description = "A-secret: bought recently, buy often and spend the most."');

describe('isolation', { timeout: 120000 }, () => {
    let ctx, srv, doc;
    let A, B; // { tenant, userId, token }
    const idsOfA = {}; // resource segment -> an id of A's

    // Path parameter -> A's id, keyed by the path segment naming the resource ({id} follows it).
    const ID_FOR = {
        customers: () => idsOfA.customer,
        users: () => idsOfA.user,
        'api-keys': () => idsOfA.apiKey,
        jobs: () => idsOfA.job,
        imports: () => idsOfA.job, // an import's id is its job's
        organizations: () => A.tenant,
        clusters: () => idsOfA.clustering,
        models: () => idsOfA.model,
        'churn-prediction': () => idsOfA.customer,
        versions: () => 1, // A published version 1 of its segments rule; B has none
    };
    // Parameters that name something every tenant has (a rule kind), not one of A's rows: B reaches
    // its own. Such routes must still show nothing of A's and change nothing of A's.
    const SHARED_NAME = { rules: 'segments' };
    const sharedOnly = (p) => p.split('/').every((seg, i, all) => !/^\{.+\}$/.test(seg) || SHARED_NAME[all[i - 1]] !== undefined);

    let call, mint, makeTenant;

    // Every table with a tenant column (and organizations, keyed by id).
    const tenantTables = async () => ctx.sql(`SELECT table_name FROM information_schema.columns
        WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name`);

    // A's rows, whole, in every tenant table: what B must never change.
    const snapshotA = async () => {
        const out = {};
        for (const t of await tenantTables()) {
            out[t] = await ctx.sql(`SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM ${t} x WHERE tenant_id = '${A.tenant}'`);
        }
        out.organizations = await ctx.sql(`SELECT x::text FROM organizations x WHERE id = '${A.tenant}'`);
        return out;
    };

    const resolve = (s) => {
        if (s && s.$ref) return resolve(s.$ref.split('/').reduce((o, k) => (k === '#' ? doc : o[k]), null));
        return s;
    };

    // A value valid against an OpenAPI schema (the subset our routes use), so that the request
    // gets past validation to the handler, which is what must refuse another tenant's id.
    const sample = (s0) => {
        const s = resolve(s0) || {};
        if (s.default !== undefined) return s.default;
        if (s.enum) return s.enum[s.enum.length - 1];
        if (s.const !== undefined) return s.const;
        if (s.oneOf || s.anyOf) return sample((s.oneOf || s.anyOf)[0]);
        const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
        switch (type) {
        case 'object': {
            const o = {};
            for (const [k, v] of Object.entries(s.properties || {})) o[k] = sample(v);
            return o;
        }
        case 'array': return s.minItems ? Array.from({ length: s.minItems }, () => sample(s.items)) : [];
        case 'integer': case 'number': return s.minimum ?? 1;
        case 'boolean': return false;
        case 'string':
            if (s.format === 'email') return 'iso@b-tenant.test';
            if (s.format === 'uuid') return '00000000-0000-4000-8000-000000000000';
            if (s.format === 'date-time') return '2026-01-01T00:00:00Z';
            if (s.format === 'date') return '2026-01-01';
            if (s.format === 'uri') return 'https://b-tenant.test/';
            return 'iso-' + 'x'.repeat(Math.max(0, (s.minLength || 1) - 4));
        default: return null;
        }
    };

    const operations = () => {
        const ops = [];
        for (const [p, item] of Object.entries(doc.paths)) {
            for (const [method, op] of Object.entries(item)) {
                if (!op || typeof op !== 'object' || !op.responses) continue;
                ops.push({ method: method.toUpperCase(), path: p, op, role: op['x-required-role'] });
            }
        }
        return ops;
    };

    // Required query parameters that name tenant resources, filled with A's ids.
    const QUERY_FOR = { ids: () => idsOfA.model && idsOfA.model2 && `${idsOfA.model},${idsOfA.model2}` };
    const requiredQuery = (op) => (op.parameters || []).filter((x) => x.in === 'query' && x.required).map((x) => x.name);
    const takesIds = (o) => /\{[^}]+\}/.test(o.path) || requiredQuery(o.op).length > 0;

    // The path (and required query) with A's ids; the names of parameters no id is known for.
    const fill = (p, op) => {
        const missing = [];
        const segments = p.split('/');
        const filled = segments.map((seg, i) => {
            const m = /^\{(.+)\}$/.exec(seg);
            if (!m) return seg;
            const resource = segments[i - 1];
            const id = SHARED_NAME[resource] !== undefined ? SHARED_NAME[resource] : ID_FOR[resource] && ID_FOR[resource]();
            if (id === undefined || id === null) {
                missing.push(`${m[1]} (after /${resource})`);
                return 'x';
            }
            return encodeURIComponent(String(id));
        });
        const query = requiredQuery(op || {}).map((name) => {
            const v = QUERY_FOR[name] && QUERY_FOR[name]();
            if (!v) missing.push(`query ${name}`);
            return `${name}=${encodeURIComponent(v || 'x')}`;
        });
        return { url: filled.join('/') + (query.length ? `?${query.join('&')}` : ''), missing };
    };

    const bodyFor = (op) => {
        const media = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
        return media ? sample(media.schema) : undefined;
    };

    before(async () => {
        ctx = await createContext('pulse-it-isolation-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TOKEN_ROUTES } });
        ({ call, mint, makeTenant } = tenantHelpers(ctx, () => srv, { industry: 'banking' }));
        A = await makeTenant('Tenant A', 'owner@a-tenant.test');
        B = await makeTenant('Tenant B', 'owner@b-tenant.test');

        // one of each resource in A, made through the API as A's owner
        const customer = await call(A.token, 'POST', '/api/v1/customers',
            { external_id: 'a-secret-customer', email: 'cust@a-tenant.test', name: 'A Customer', attributes: { tier: 'a' } });
        assert.equal(customer.status, 201, customer.text);
        idsOfA.customer = customer.json.id;
        const user = await call(A.token, 'POST', '/api/v1/users', { email: 'member@a-tenant.test', name: 'A Member', role: 'analyst' });
        assert.equal(user.status, 201, user.text);
        idsOfA.user = user.json.id;
        const key = await call(A.token, 'POST', '/api/v1/api-keys', { name: 'a-key', role: 'viewer' });
        assert.equal(key.status, 201, key.text);
        idsOfA.apiKey = key.json.id;
        const form = new FormData();
        form.append('file', new Blob(['CustomerID,EventDate,EventType,RevenueImpact\na-1,2024-01-02,login,0\n']), 'a.csv');
        const up = await srv.fetch('/api/v1/imports', { method: 'POST', headers: { authorization: `Bearer ${A.token}` }, body: form });
        assert.equal(up.status, 202, up.text);
        idsOfA.job = up.json.job_id;
        for (let i = 0; i < 200 && (await call(A.token, 'GET', `/api/v1/jobs/${idsOfA.job}`)).json.state !== 'done'; i++) {
            await new Promise((r) => setTimeout(r, 50));
        }
        // a published rule version and a clustering of A's
        const pub = await call(A.token, 'POST', '/api/v1/rules/segments/publish', { source: SEGMENTS_RULE, note: 'a-tenant.test rule' });
        assert.equal(pub.status, 201, pub.text);
        const cl = await call(A.token, 'POST', '/api/v1/clusters', { method: 'kmeans', k: 3 });
        assert.equal(cl.status, 202, cl.text);
        idsOfA.clustering = cl.json.job_id;
        // a registry entry of A's (training needs labelled customers: ml.test.mjs trains for real)
        [idsOfA.model] = await ctx.sql(`INSERT INTO models (tenant_id, kind, algorithm, version, active, model)
            VALUES ('${A.tenant}', 'churn', 'churn_gbdt', 1, true, '\\x00') RETURNING id`);
        [idsOfA.model2] = await ctx.sql(`INSERT INTO models (tenant_id, kind, algorithm, version, active, model)
            VALUES ('${A.tenant}', 'churn', 'churn_logreg', 2, false, '\\x00') RETURNING id`);
        // and one of B's own, so B's lists are not trivially empty
        assert.equal((await call(B.token, 'POST', '/api/v1/customers', { external_id: 'b-customer' })).status, 201);

        const res = await srv.fetch('/openapi.json');
        assert.equal(res.status, 200);
        doc = JSON.parse(res.text);
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    it('finds the tenant routes in the route table', () => {
        const ops = operations();
        const scoped = ops.filter((o) => o.role !== 'public');
        assert.ok(scoped.length >= 12, `tenant routes: ${scoped.map((o) => `${o.method} ${o.path}`).join(', ')}`);
        for (const must of ['GET /api/v1/customers/{id}', 'DELETE /api/v1/users/{id}', 'DELETE /api/v1/api-keys/{id}']) {
            assert.ok(scoped.some((o) => `${o.method} ${o.path}` === must), `${must} is in the route table`);
        }
        for (const o of ops) assert.ok(o.role, `${o.method} ${o.path} declares x-required-role`);
    });

    it('answers 401 to every non-public operation without a credential', async () => {
        const wrong = [];
        for (const o of operations().filter((x) => x.role !== 'public')) {
            const { url } = fill(o.path, o.op);
            const r = await call(null, o.method, url, bodyFor(o.op));
            if (r.status !== 401) wrong.push(`${o.method} ${o.path}: ${r.status} ${r.text.slice(0, 200)}`);
            const bad = await call('pk_not-a-real-key', o.method, url, bodyFor(o.op));
            if (bad.status !== 401) wrong.push(`${o.method} ${o.path} (bad key): ${bad.status} ${bad.text.slice(0, 200)}`);
        }
        assert.deepEqual(wrong, []);
    });

    it('gives tenant B 404 (or 403) for every route with tenant A\'s ids, and changes nothing of A\'s', async () => {
        const withParams = operations().filter((o) => o.role !== 'public' && takesIds(o));
        assert.ok(withParams.length > 0);
        const unmapped = [];
        for (const o of withParams) {
            const { missing } = fill(o.path, o.op);
            if (missing.length) unmapped.push(`${o.method} ${o.path}: no id of tenant A for ${missing.join(', ')}`);
        }
        assert.deepEqual(unmapped, [], 'add these resources to ID_FOR in isolation.test.mjs (and create one in A)');

        const before = await snapshotA();
        const wrong = [];
        // reads first, then writes, deletions last: each must fail on its own
        const order = { GET: 0, HEAD: 0, POST: 1, PUT: 1, PATCH: 1, DELETE: 2 };
        withParams.sort((x, y) => (order[x.method] ?? 1) - (order[y.method] ?? 1));
        for (const o of withParams) {
            const { url } = fill(o.path, o.op);
            const r = await call(B.token, o.method, url, bodyFor(o.op));
            if (sharedOnly(o.path)) {
                if (r.status >= 500) wrong.push(`${o.method} ${url} as tenant B: ${r.status} ${r.text.slice(0, 300)}`);
            } else if (r.status !== 404 && r.status !== 403) {
                wrong.push(`${o.method} ${url} as tenant B: ${r.status} ${r.text.slice(0, 300)}`);
            }
            if (r.text.includes('a-secret-customer') || r.text.includes('a-tenant.test')) {
                wrong.push(`${o.method} ${url} as tenant B shows tenant A's data: ${r.text.slice(0, 300)}`);
            }
        }
        assert.deepEqual(wrong, []);
        assert.deepEqual(await snapshotA(), before, 'tenant A\'s rows are unchanged');
        // and A still sees its own
        assert.equal((await call(A.token, 'GET', `/api/v1/customers/${idsOfA.customer}`)).status, 200);
    });

    it('shows tenant B nothing of tenant A in any list', async () => {
        const lists = operations().filter((o) => o.role !== 'public' && o.method === 'GET' && !takesIds(o));
        assert.ok(lists.length > 0);
        const leaks = [];
        for (const o of lists) {
            const r = await call(B.token, 'GET', o.path);
            if (r.status !== 200 && r.status !== 403) leaks.push(`${o.path}: ${r.status} ${r.text.slice(0, 200)}`);
            for (const marker of ['a-secret-customer', 'a-tenant.test', A.tenant, idsOfA.apiKey]) {
                if (r.text.includes(String(marker))) leaks.push(`${o.path} shows tenant B "${marker}": ${r.text.slice(0, 300)}`);
            }
        }
        assert.deepEqual(leaks, []);
    });

    it('keeps every tenant table behind Row-Level Security', async () => {
        const tables = await tenantTables();
        for (const t of ['api_keys', 'audit_log', 'customers', 'invitations', 'refresh_tokens', 'users']) {
            assert.ok(tables.includes(t), `${t} has a tenant_id column`);
        }
        const noRls = await ctx.sql(`SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
            AND relkind = 'r' AND NOT relrowsecurity
            AND (relname = 'organizations' OR relname IN (SELECT table_name FROM information_schema.columns
                 WHERE table_schema = 'public' AND column_name = 'tenant_id'))`);
        assert.deepEqual(noRls, [], 'tables without Row-Level Security');
        const bypass = await ctx.sql(`SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = 'pulse_app'`);
        assert.deepEqual(bypass, ['f']);
        const owns = await ctx.sql(`SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
            WHERE r.rolname = 'pulse_app'`);
        assert.deepEqual(owns, ['0'], 'pulse_app owns no table (an owner is not bound by its policies)');
    });

    it('shows the application role no tenant rows without the tenant setting', async () => {
        for (const t of [...await tenantTables(), 'organizations']) {
            const [asOwner] = await ctx.sql(`SELECT count(*) FROM ${t}`);
            const asApp = (await ctx.sql(`SET ROLE pulse_app; SELECT count(*) FROM ${t}`)).slice(-1)[0];
            assert.equal(asApp, '0', `${t}: pulse_app without pulse.tenant_id sees ${asApp} rows (the owner sees ${asOwner})`);
        }
        for (const t of ['customers', 'users', 'api_keys', 'audit_log', 'organizations', 'invitations']) {
            const [n] = await ctx.sql(`SELECT count(*) FROM ${t}`);
            assert.ok(Number(n) > 0, `${t} has rows for the check above to mean something`);
        }
    });

    it('gives the application role no way around the derived-results swap', async () => {
        const asB = `SET ROLE pulse_app; SELECT set_config('pulse.tenant_id', '${B.tenant}', false);`;
        const stage = `customer_analytics_${B.tenant.replaceAll('-', '')}_next`;
        // a temporary table standing in for the stage (its triggers would run as the functions' owner)
        await assert.rejects(ctx.sql(`${asB} CREATE TEMP TABLE ${stage} (LIKE customer_analytics);
            SELECT pulse_derived_swap('customer_analytics', false, 0, NULL)`), /nothing staged/);
        // the same for the in-place merge of a run over a few customers
        await assert.rejects(ctx.sql(`${asB} CREATE TEMP TABLE ${stage} (LIKE customer_analytics);
            SELECT pulse_derived_merge('customer_analytics', 0, NULL)`), /nothing staged/);
        // rows only through a checked swap; the helpers are not callable (the lock would stall swaps)
        await assert.rejects(ctx.sql(`${asB} INSERT INTO customer_analytics (customer_id, run_id)
            VALUES (1, gen_random_uuid())`), /permission denied/);
        await assert.rejects(ctx.sql(`${asB} SELECT pulse_derived_lock('${A.tenant}')`), /permission denied/);
        const bypass = await ctx.sql(`SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = 'pulse_app'`);
        assert.deepEqual(bypass, ['f']);
    });

    it('lets the application role neither see nor write another tenant\'s rows with a tenant set', async () => {
        const asB = `SET ROLE pulse_app; SELECT set_config('pulse.tenant_id', '${B.tenant}', false);`;
        const seen = await ctx.sql(`${asB} SELECT count(*) FROM customers WHERE tenant_id = '${A.tenant}'`);
        assert.deepEqual(seen.slice(-1), ['0']);
        const own = await ctx.sql(`${asB} SELECT count(*) FROM customers`);
        assert.deepEqual(own.slice(-1), ['1']);
        const updated = await ctx.sql(`${asB} WITH u AS (UPDATE customers SET name = 'pwned' WHERE id = ${idsOfA.customer} RETURNING 1)
            SELECT count(*) FROM u`);
        assert.deepEqual(updated.slice(-1), ['0']);
        await assert.rejects(
            ctx.sql(`${asB} INSERT INTO customers (tenant_id, external_id) VALUES ('${A.tenant}', 'planted')`),
            /row-level security/);
        assert.deepEqual(await ctx.sql(`SELECT name FROM customers WHERE id = ${idsOfA.customer}`), ['A Customer']);
    });
});
