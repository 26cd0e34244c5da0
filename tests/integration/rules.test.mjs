// Tenant rules over HTTP: read the shipped default, validate (errors with lines), save a draft,
// publish (audited, versioned), evaluate, fall back at run time to the last good version (counted,
// visible), roll back, roles, and the server serving on while rules loop, recurse and eat memory.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createContext, tenantHelpers, REPO, pulse, FIXTURES } from './harness.mjs';

const DEFAULT_OFFERS = fs.readFileSync(path.join(REPO, 'rules', 'offers.lua'), 'utf8');

describe('rules', { timeout: 180000 }, () => {
    let ctx, srv, call, makeTenant, makeUser, A, B, viewer;

    before(async () => {
        ctx = await createContext('pulse-it-rules-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: path.join(FIXTURES, 'token_routes.lua') } });
        ({ call, makeTenant, makeUser } = tenantHelpers(ctx, () => srv));
        A = await makeTenant('Rules A', 'owner@rules-a.test');
        B = await makeTenant('Rules B', 'owner@rules-b.test');
        viewer = await makeUser(A, 'viewer@rules-a.test', 'viewer');
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    it('lists the kinds and serves the shipped default as version 0', async () => {
        const list = await call(A.token, 'GET', '/api/v1/rules');
        assert.equal(list.status, 200, list.text);
        assert.deepEqual(list.json.items.map((k) => k.kind), ['segments', 'offers', 'triggers', 'roi', 'lead_scoring']);
        assert.ok(list.json.items.every((k) => k.version === 0 && k.default === true));
        const r = await call(A.token, 'GET', '/api/v1/rules/offers');
        assert.equal(r.status, 200);
        assert.equal(r.json.source, DEFAULT_OFFERS);
        assert.equal(r.json.draft, null);
        assert.equal((await call(A.token, 'GET', '/api/v1/rules/nonsense')).status, 422);
    });

    it('validates: a syntax error with its line, a wrong type naming the field, a valid rule', async () => {
        let r = await call(A.token, 'POST', '/api/v1/rules/offers/validate', { source: 'local M = {}\nfunction M.offer(p)\n  return {\nend\nreturn M\n' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.valid, false);
        assert.equal(r.json.errors[0].line, 4);
        r = await call(A.token, 'POST', '/api/v1/rules/offers/validate', { source: DEFAULT_OFFERS.replace('validity_days = band == "high" and 14 or 30', 'validity_days = "two weeks"') });
        assert.equal(r.json.valid, false);
        assert.match(r.json.errors[0].message, /validity_days/);
        r = await call(A.token, 'POST', '/api/v1/rules/offers/validate', { source: DEFAULT_OFFERS });
        assert.equal(r.json.valid, true, r.text);
        assert.equal(typeof r.json.milliseconds, 'number'); // timed by pulse bench rules, not here
    });

    it('keeps a draft without changing the active rule; viewers cannot write', async () => {
        const draft = DEFAULT_OFFERS.replace('high = 20', 'high = 22');
        let r = await call(A.token, 'PUT', '/api/v1/rules/offers', { source: draft });
        assert.equal(r.status, 200, r.text);
        r = await call(A.token, 'GET', '/api/v1/rules/offers');
        assert.equal(r.json.version, 0);
        assert.equal(r.json.draft.source, draft);
        assert.equal((await call(A.token, 'PUT', '/api/v1/rules/offers', { source: 'return {' })).status, 422);
        assert.equal((await call(viewer.token, 'PUT', '/api/v1/rules/offers', { source: draft })).status, 403);
        assert.equal((await call(viewer.token, 'POST', '/api/v1/rules/offers/publish', {})).status, 403);
        assert.equal((await call(viewer.token, 'GET', '/api/v1/rules/offers')).status, 200);
    });

    it('publishes the draft as version 1 (audited) and answers with it; B still has the default', async () => {
        const r = await call(A.token, 'POST', '/api/v1/rules/offers/publish', { note: 'bigger high-risk discount' });
        assert.equal(r.status, 201, r.text);
        assert.equal(r.json.version, 1);
        const ev = await call(A.token, 'POST', '/api/v1/rules/offers/evaluate',
            { input: { segment: 'At Risk', risk_band: 'high', monetary: 10, offers: {} } });
        assert.equal(ev.status, 200, ev.text);
        assert.equal(ev.json.version, 1);
        assert.equal(ev.json.result.discount_pct, 22);
        const evB = await call(B.token, 'POST', '/api/v1/rules/offers/evaluate',
            { input: { segment: 'At Risk', risk_band: 'high', monetary: 10, offers: {} } });
        assert.equal(evB.json.result.discount_pct, 20);
        assert.equal(evB.json.version, 0);
        const audit = await ctx.sql(`SELECT event || ':' || (detail->>'version') FROM audit_log WHERE tenant_id = '${A.tenant}' AND event LIKE 'rule_%'`);
        assert.deepEqual(audit, ['rule_published:1']);
        const noDraft = await call(A.token, 'GET', '/api/v1/rules/offers');
        assert.equal(noDraft.json.draft, null);
    });

    it('refuses to publish an invalid rule and changes nothing', async () => {
        const r = await call(A.token, 'POST', '/api/v1/rules/offers/publish', { source: DEFAULT_OFFERS.replace('pct = clamp(pct, M.policy.min_discount, M.policy.max_discount)', 'pct = 75') });
        assert.equal(r.status, 422, r.text);
        assert.equal(r.json.code, 'invalid_rule');
        assert.match(r.json.detail, /from 5 to 30/);
        assert.equal((await call(A.token, 'GET', '/api/v1/rules/offers')).json.version, 1);
    });

    it('falls back to the last good version when the active one fails at run time, and counts it', async () => {
        // passes validation (no sample hits it), fails for one real input
        const fragile = DEFAULT_OFFERS.replace('function M.offer(p)\n', 'function M.offer(p)\n    if p.segment == "VIP" then error("no rule for VIPs") end\n');
        const pub = await call(A.token, 'POST', '/api/v1/rules/offers/publish', { source: fragile });
        assert.equal(pub.status, 201, pub.text);
        assert.equal(pub.json.version, 2);
        const ev = await call(A.token, 'POST', '/api/v1/rules/offers/evaluate',
            { input: { segment: 'VIP', risk_band: 'high', monetary: 10, offers: {} } });
        assert.equal(ev.status, 200, ev.text);
        assert.equal(ev.json.fell_back, true);
        assert.equal(ev.json.version, 1); // the version active before
        assert.equal(ev.json.result.discount_pct, 22);
        assert.match(ev.json.error.message, /no rule for VIPs/);
        assert.equal(ev.json.error.line, fragile.split('\n').findIndex((l) => l.includes('no rule for VIPs')) + 1);
        const ok = await call(A.token, 'POST', '/api/v1/rules/offers/evaluate',
            { input: { segment: 'At Risk', risk_band: 'high', monetary: 10, offers: {} } });
        assert.equal(ok.json.version, 2);
        assert.equal(ok.json.fell_back, false);
        const seen = await call(A.token, 'GET', '/api/v1/rules/offers');
        assert.equal(seen.json.failures, 1);
        assert.match(seen.json.last_error, /no rule for VIPs/);
        const versions = await call(A.token, 'GET', '/api/v1/rules/offers/versions');
        assert.deepEqual(versions.json.items.map((v) => [v.version, v.active, v.failures]), [[2, true, 1], [1, false, 0]]);
    });

    it('rolls back to the fallback, to a given version, and to the default (audited)', async () => {
        let r = await call(A.token, 'POST', '/api/v1/rules/offers/rollback', {});
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.version, 1);
        assert.equal((await call(A.token, 'GET', '/api/v1/rules/offers')).json.version, 1);
        r = await call(A.token, 'POST', '/api/v1/rules/offers/rollback', { version: 0 });
        assert.equal(r.json.default, true);
        const ev = await call(A.token, 'POST', '/api/v1/rules/offers/evaluate',
            { input: { segment: 'At Risk', risk_band: 'high', monetary: 10, offers: {} } });
        assert.equal(ev.json.result.discount_pct, 20);
        assert.equal((await call(A.token, 'POST', '/api/v1/rules/offers/rollback', { version: 9 })).status, 404);
        const one = await call(A.token, 'GET', '/api/v1/rules/offers/versions/1');
        assert.equal(one.status, 200);
        assert.match(one.json.source, /high = 22/);
        assert.equal((await call(B.token, 'GET', '/api/v1/rules/offers/versions/1')).status, 404);
    });

    it('dry-runs a draft: segments with no customers yet, triggers and lead scoring on samples', async () => {
        const seg = fs.readFileSync(path.join(REPO, 'rules', 'segments.lua'), 'utf8').replace('if fm >= 2.5 then return "At Risk" end\n    if r == 2', 'if fm >= 2 then return "At Risk" end\n    if r == 2');
        let r = await call(A.token, 'POST', '/api/v1/rules/segments/dry-run', { source: seg });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.customers, 0);
        assert.equal(r.json.moved, 0);
        const lead = fs.readFileSync(path.join(REPO, 'rules', 'lead_scoring.lua'), 'utf8').replace('M.sql_threshold = 110', 'M.sql_threshold = 50');
        r = await call(A.token, 'POST', '/api/v1/rules/lead_scoring/dry-run', { source: lead });
        assert.equal(r.status, 200, r.text);
        assert.ok(r.json.changed >= 1, r.text);
        assert.equal(r.json.sampled, true);
    });

    it('survives abusive rules and keeps serving', async () => {
        const abuse = {
            loop: 'local M = {}\nfunction M.offer(p) while true do end end\nM.policy = { min_discount = 5, max_discount = 30 }\nreturn M\n',
            pcall_loop: 'local M = { policy = { min_discount = 5, max_discount = 30 } }\nfunction M.offer(p) while true do pcall(function() while true do end end) end end\nreturn M\n',
            memory: 'local M = { policy = { min_discount = 5, max_discount = 30 } }\nfunction M.offer(p) local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 64) .. i end end\nreturn M\n',
            recursion: 'local M = { policy = { min_discount = 5, max_discount = 30 } }\nlocal function f(n) return 1 + f(n + 1) end\nfunction M.offer(p) return f(1) end\nreturn M\n',
            escape: 'local M = { policy = { min_discount = 5, max_discount = 30 } }\nfunction M.offer(p) return { discount_pct = 10, validity_days = 1, message_key = io.open("/etc/passwd"):read("a") } end\nreturn M\n',
            top_level_loop: 'while true do end\n',
        };
        const health = [];
        let stop = false;
        const poller = (async () => {
            while (!stop) {
                const t0 = Date.now();
                const h = await srv.fetch('/health');
                health.push([h.status, Date.now() - t0]);
                await new Promise((res) => setTimeout(res, 20));
            }
        })();
        for (const [name, source] of Object.entries(abuse)) {
            const r = await call(A.token, 'POST', '/api/v1/rules/offers/validate', { source });
            assert.equal(r.status, 200, `${name}: ${r.text}`);
            assert.equal(r.json.valid, false, `${name}: ${r.text}`);
            assert.ok(r.json.errors[0].message.length > 0);
            const p = await call(A.token, 'POST', '/api/v1/rules/offers/publish', { source });
            assert.equal(p.status, 422, `${name} was published: ${p.text}`);
        }
        stop = true;
        await poller;
        assert.ok(health.length > 0);
        assert.ok(health.every(([s]) => s === 200), JSON.stringify(health));
        const ev = await call(A.token, 'POST', '/api/v1/rules/offers/evaluate',
            { input: { segment: 'At Risk', risk_band: 'high', monetary: 10, offers: {} } });
        assert.equal(ev.json.result.discount_pct, 20);
    });

    it('pulse rules check and test give exit codes for a CI', async () => {
        const dir = fs.mkdtempSync(path.join(ctx.dir || '/tmp', 'rules-cli-'));
        const bad = path.join(dir, 'offers.lua');
        fs.writeFileSync(bad, 'local M = {}\nfunction M.offer(p)\n  return { discount_pct = 99 }\nend\nreturn M\n');
        let r = await pulse(['rules', 'check', bad]);
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(r.stderr, /policy: is missing/);
        r = await pulse(['rules', 'check', path.join(REPO, 'rules', 'segments.lua')]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const data = path.join(dir, 'customers.csv');
        fs.writeFileSync(data, 'customer_id,recency_days,frequency,monetary\nA,5,10,900\nB,200,1,20\nC,40,4,300\nD,90,2,60\nE,10,8,700\n');
        r = await pulse(['rules', 'test', path.join(REPO, 'rules', 'segments.lua'), '--data', data]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /A,5,5,5,,Champions,100/);
        assert.match(r.stdout, /B,1,1,1,,Lost,0/);
        r = await pulse(['rules', 'test', path.join(REPO, 'rules', 'segments.lua')]);
        assert.equal(r.code, 2);
    });
});
