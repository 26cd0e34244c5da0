// The server and its database: readiness before and after `pulse migrate`, values through the
// async driver, transactions, errors, the statement timeout, and a database restart under a
// running server (fail fast with 503, recover on its own).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createContext, TEST_ROUTES, assertProblem, waitFor, sleep } from './harness.mjs';

describe('database', { timeout: 120000 }, () => {
    let ctx, srv;

    before(async () => {
        ctx = await createContext('pulse-it-db-');
        await ctx.startDb();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES } });
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    it('is not ready before pulse migrate, and ready after', async () => {
        // Before the first migration the server's database role (pulse_app) does not exist yet:
        // not ready, and the answer says what to do.
        const before = await srv.fetch('/ready');
        assert.equal(before.status, 503, before.text);
        assert.equal(before.json.status, 'unavailable');
        assert.match(before.json.checks.database, /role pulse_app is missing: run 'pulse migrate'/);
        assert.ok(before.headers.get('retry-after'), '503 says when to retry');

        const status = await ctx.pulse(['migrate', '--status']);
        assert.equal(status.code, 3, `--status with pending migrations exits 3: ${status.stdout}${status.stderr}`);

        const m = await ctx.migrate();
        assert.match(m.stdout, /0001_foundation/);

        // the pool reconnects (back-off of at most 2 s) as soon as the role exists
        let afterMigrate;
        await waitFor(async () => (afterMigrate = await srv.fetch('/ready')).status === 200, 6000, { what: '/ready after migrate' });
        // every loop thread has its own connections: wait until all of them are back
        await waitFor(async () => {
            const all = await Promise.all(Array.from({ length: 8 }, () => srv.fetch('/ready')));
            return all.every((r) => r.status === 200);
        }, 6000, { what: 'every thread ready after migrate' });
        assert.equal(afterMigrate.status, 200, afterMigrate.text);
        assert.deepEqual(afterMigrate.json, { status: 'ready', checks: { database: 'ok', migrations: 'ok' } });
    });

    it('brings column types back as JSON values, NULL included', async () => {
        const res = await srv.fetch('/api/test/types');
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json, {
            null_text: null,
            j: { a: [1, 2, 3], b: { c: 'd' }, e: null },
            jb: { k: 'v', n: 1.5 },
            empty_array: [],
            yes: true,
            no: false,
            big: 9007199254740991,
            small: -32768,
            medium: 2147483647,
            f8: 1.5,
            f4: 0.25,
            num: 12.75,
            txt: 'héllo "wörld"\ntab\t',
            empty_text: '',
            d: '2024-02-29',
            // RFC 3339 in UTC, whatever the server's time zone (the connection runs in UTC)
            ts: '2024-02-29T11:45:06.5Z',
            ts_whole: '2024-02-29T13:45:06Z',
            ts_local: '2024-02-29T13:45:06',
        });
        // the exact digits of a 64-bit integer survive the JSON encoding
        assert.match(res.text, /"big":9007199254740991[,}]/);
    });

    it('sends request values as query parameters and gets them back', async () => {
        const sent = { i: -42, s: "it's \"quoted\"; DROP TABLE x; --", b: false, n: null, j: { a: [1, null, 'z'], o: {} }, f: 0.125 };
        const res = await srv.fetch('/api/test/params', { json: sent });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json, sent);
        const res2 = await srv.fetch('/api/test/params', { json: { i: 9007199254740991, s: '', b: true, f: -1e10 } });
        assert.equal(res2.status, 200, res2.text);
        assert.deepEqual(res2.json, { i: 9007199254740991, s: '', b: true, n: null, j: null, f: -1e10 });
    });

    it('commits a transaction, and rolls back on a raised error or a returned error', async () => {
        const stamp = Date.now();
        const committed = `it-commit-${stamp}`, raised = `it-raise-${stamp}`, failed = `it-fail-${stamp}`;
        const count = async (name) => {
            const r = await srv.fetch(`/api/test/tx/items?name=${encodeURIComponent(name)}`);
            assert.equal(r.status, 200, r.text);
            return r.json.count;
        };

        const c = await srv.fetch('/api/test/tx/commit', { json: { name: committed } });
        assert.equal(c.status, 201, c.text);
        assert.equal(c.json.seen_inside, 1);
        assert.equal(typeof c.json.id, 'number');

        const r = await srv.fetch('/api/test/tx/raise', { json: { name: raised } });
        assertProblem(assert, r, 500, 'internal_error');
        assert.ok(!r.text.includes('it-tx-raise'), 'no internals in the body');

        const f = await srv.fetch('/api/test/tx/fail', { json: { name: failed } });
        assertProblem(assert, f, 409, 'it_rolled_back');

        // several reads, so that they land on several pooled connections: none may still hold
        // the rolled-back transaction open (it would see its own uncommitted row)
        for (let i = 0; i < 6; i++) {
            assert.equal(await count(committed), 1, 'the committed row persists');
            assert.equal(await count(raised), 0, 'a raised error rolls back');
            assert.equal(await count(failed), 0, 'a returned error rolls back');
        }
        const parallel = await Promise.all(Array.from({ length: 12 }, () => count(raised)));
        assert.deepEqual(parallel, Array(12).fill(0));
    });

    it('rolls back a transaction a handler left open, and frees its connection', async () => {
        // one thread with one connection: if the abandoned transaction kept it, nothing else could run
        const one = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_DB_POOL: '1' }, threads: 1 });
        try {
            for (let i = 0; i < 3; i++) {
                const res = await one.fetch('/api/test/tx-abandoned', { method: 'POST' });
                assert.equal(res.status, 200, res.text);
                assert.equal(res.json.in_tx, true);
            }
            const after = await one.fetch('/api/test/tx/items?name=it-abandoned', { timeoutMs: 5000 });
            assert.equal(after.status, 200, after.text);
            assert.equal(after.json.count, 0, 'the abandoned inserts were rolled back');
        } finally {
            assert.equal(await one.stop('SIGTERM'), 0, one.exitReport());
        }
    });

    it('runs each request\'s queries for its own tenant, even pipelined with other tenants', async () => {
        const uuid = (i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
        const one = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_DB_POOL: '1' }, threads: 1 });
        try {
            // one connection, 40 requests of 20 tenants and 20 without: all on the wire together
            const all = await Promise.all(Array.from({ length: 40 }, (_, i) =>
                one.fetch(i % 2 ? `/api/test/tenant?t=${uuid(i)}` : '/api/test/tenant').then((r) => ({ i, r }))));
            for (const { i, r } of all) {
                assert.equal(r.status, 200, r.text);
                assert.equal(r.json.tenant, i % 2 ? uuid(i) : '', `request ${i} saw ${r.json.tenant}`);
            }
            // inside a transaction the setting holds for every query of it
            const tx = await one.fetch(`/api/test/tenant?t=${uuid(7)}&tx=true`);
            assert.equal(tx.status, 200, tx.text);
            assert.deepEqual([tx.json.tenant, tx.json.again], [uuid(7), uuid(7)]);
            const after = await one.fetch('/api/test/tenant');
            assert.equal(after.json.tenant, '', 'nothing stays on the connection afterwards');
            const bad = await one.fetch("/api/test/tenant?t=x'%20OR%201=1");
            assert.equal(bad.status, 400, 'a tenant that is not a UUID is refused');
        } finally {
            assert.equal(await one.stop('SIGTERM'), 0, one.exitReport());
        }
    });

    it('queues requests beyond the pool size and answers them all', async () => {
        // 2 threads x PULSE_DB_POOL (4) connections; 24 concurrent 0.2 s queries must all succeed
        const t0 = performance.now();
        const all = await Promise.all(Array.from({ length: 24 }, () => srv.fetch('/api/test/sleep?s=0.2', { timeoutMs: 20000 })));
        assert.deepEqual(all.map((r) => r.status), Array(24).fill(200), all.filter((r) => r.status !== 200).map((r) => r.text).join('\n'));
        const ms = performance.now() - t0;
        assert.ok(ms >= 350, `queries really queued behind the pool (${ms.toFixed(0)} ms)`);
    });

    it('runs concurrent queries on separate pooled connections: a slow one does not hold up the others', async () => {
        const one = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_DB_POOL: '4' }, threads: 1 });
        try {
            // the pool connects at start; on a busy machine some connections are still on their way
            for (let i = 0; (await one.fetch('/api/test/pool')).json.ready < 4; i++) {
                assert.ok(i < 100, 'the pool of 4 connected within 5 s');
                await new Promise((r) => setTimeout(r, 50));
            }
            // four 0.5 s queries with four connections: parallel, about 0.5 s in all (serial: 2 s)
            const t0 = performance.now();
            const four = await Promise.all(Array.from({ length: 4 }, () =>
                one.fetch('/api/test/sleep?s=0.5').then((r) => ({ status: r.status, at: performance.now() - t0 }))));
            assert.deepEqual(four.map((r) => r.status), [200, 200, 200, 200]);
            const last = Math.max(...four.map((r) => r.at));
            assert.ok(last < 1000, `4 concurrent 0.5 s queries on a pool of 4 took ${last.toFixed(0)} ms ` +
                `(finished at ${four.map((r) => r.at.toFixed(0)).join(', ')} ms): they ran one after another`);

            // a fast query behind a slow one, with idle connections available
            const slow = one.fetch('/api/test/sleep?s=1.5', { timeoutMs: 10000 });
            await new Promise((r) => setTimeout(r, 100));
            const quick = await one.fetch('/api/test/types');
            assert.equal(quick.status, 200);
            assert.ok(quick.ms < 500, `a quick query waited ${quick.ms.toFixed(0)} ms behind a slow one`);
            assert.equal((await slow).status, 200);
        } finally {
            assert.equal(await one.stop('SIGTERM'), 0, one.exitReport());
        }
    });

    it('answers a failing query with 500, without the SQL, and logs it', async () => {
        const id = `it-sqlerr-${Date.now()}`;
        const res = await srv.fetch('/api/test/sql-error', { headers: { 'x-request-id': id } });
        assertProblem(assert, res, 500, 'internal_error');
        for (const leak of ['it_no_such_table', 'it_secret_column', '42P01', 'SELECT']) {
            assert.ok(!res.text.includes(leak), `body must not reveal ${leak}: ${res.text}`);
        }
        const line = await srv.waitForLog((l) => l.level === 'error' && typeof l.msg === 'string' && l.msg.includes(id));
        assert.match(line.msg, /it_no_such_table/);
        // the pool is still healthy
        const ok = await srv.fetch('/api/test/types');
        assert.equal(ok.status, 200);
    });

    it('keeps stderr JSON lines when PostgreSQL sends NOTICEs', async () => {
        const res = await srv.fetch('/api/test/notice');
        assert.equal(res.status, 200, res.text);
        await srv.fetch('/api/test/notice');
        await sleep(400); // past the access log flush
        const raw = [...new Set(srv.logs.filter((l) => l.event === '(not json)').map((l) => l.raw))];
        assert.deepEqual(raw.slice(0, 5), [], `every stderr line of pulse serve is a JSON log line (${raw.length} distinct raw lines)`);
    });

    it('answers 503 db_timeout past PULSE_DB_STATEMENT_TIMEOUT_MS', async () => {
        const quick = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_DB_STATEMENT_TIMEOUT_MS: '200' } });
        try {
            const res = await quick.fetch('/api/test/sleep?s=1');
            assertProblem(assert, res, 503, 'db_timeout');
            assert.ok(res.headers.get('retry-after'), 'a 503 says when to retry');
            assert.ok(res.ms < 900, `answered in ${res.ms.toFixed(0)} ms, before the 1 s sleep ended`);
            // a query within the limit still works on the same server
            const ok = await quick.fetch('/api/test/sleep?s=0.01');
            assert.equal(ok.status, 200, ok.text);
            assert.equal(ok.json.s, 0.01);
        } finally {
            assert.equal(await quick.stop('SIGTERM'), 0, quick.exitReport());
        }
    });

    it('on one connection, a failing or timed-out query does not take the others down with it', async () => {
        const single = await ctx.startServer({
            env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_DB_POOL: '1', PULSE_DB_STATEMENT_TIMEOUT_MS: '300' }, threads: 1,
        });
        try {
            const mixed = await Promise.all([
                single.fetch('/api/test/types'),
                single.fetch('/api/test/sql-error'),
                single.fetch('/api/test/types'),
                single.fetch('/api/test/sleep?s=1'),
                single.fetch('/api/test/types'),
                single.fetch('/api/test/tx/commit', { json: { name: `it-single-${Date.now()}` } }),
                single.fetch('/api/test/tx/fail', { json: { name: `it-single-fail-${Date.now()}` } }),
                single.fetch('/api/test/types'),
            ]);
            assert.deepEqual(mixed.map((r) => r.status), [200, 500, 200, 503, 200, 201, 409, 200],
                mixed.map((r) => `${r.status} ${r.text.slice(0, 120)}`).join('\n'));
            assert.equal(mixed[3].json.code, 'db_timeout');
            assert.deepEqual(mixed[0].json, mixed[7].json);
            const after = await single.fetch('/api/test/types');
            assert.equal(after.status, 200);

            // other requests' queries never run inside a transaction sharing the connection
            for (let round = 0; round < 8; round++) {
                const name = `it-iso-${round}-${Date.now()}`;
                const q = `/api/test/tx/items?name=${name}`;
                const rs = await Promise.all([
                    single.fetch(q),
                    single.fetch('/api/test/tx/raise', { json: { name } }),
                    single.fetch(q), single.fetch(q),
                    single.fetch('/api/test/tx/fail', { json: { name } }),
                    single.fetch(q), single.fetch(q),
                ]);
                assert.deepEqual(rs.map((r) => r.status), [200, 500, 200, 200, 409, 200, 200], `round ${round}`);
                for (const r of [rs[0], rs[2], rs[3], rs[5], rs[6]]) {
                    assert.equal(r.json.count, 0, `round ${round}: a read saw another request's uncommitted row`);
                }
            }
        } finally {
            assert.equal(await single.stop('SIGTERM'), 0, single.exitReport());
        }
    });

    it('fails fast while the database is down and recovers when it is back', { timeout: 60000 }, async () => {
        // warm every pooled connection
        await Promise.all(Array.from({ length: 8 }, () => srv.fetch('/api/test/types')));
        // a query in flight when the database goes away must end, not hang
        const inflight = srv.fetch('/api/test/sleep?s=20', { timeoutMs: 30000 });
        await sleep(300);
        const stopped = await ctx.pulse(['db', 'stop']);
        assert.equal(stopped.code, 0, `pulse db stop: ${stopped.stderr}`);
        const started = performance.now();
        const lost = await inflight;
        assert.equal(lost.status, 503, `the in-flight query answers 503: ${lost.text}`);
        assert.equal(lost.json.code, 'db_unavailable');
        assert.ok(performance.now() - started < 2000, 'the in-flight request ended promptly after the stop');

        for (let i = 0; i < 5; i++) {
            const res = await srv.fetch('/api/test/types', { timeoutMs: 5000 });
            assertProblem(assert, res, 503, 'db_unavailable');
            assert.ok(res.headers.get('retry-after'), '503 carries retry-after');
            assert.ok(res.ms < 1000, `request ${i} answered in ${res.ms.toFixed(0)} ms (must be < 1000)`);
        }
        const burst = await Promise.all(Array.from({ length: 10 }, () => srv.fetch('/api/test/types', { timeoutMs: 5000 })));
        for (const res of burst) {
            assert.equal(res.status, 503);
            assert.ok(res.ms < 1000, `concurrent request answered in ${res.ms.toFixed(0)} ms`);
        }
        const ready = await srv.fetch('/ready', { timeoutMs: 5000 });
        assert.equal(ready.status, 503, ready.text);
        assert.equal(ready.json.status, 'unavailable');
        assert.match(ready.json.checks.database, /^unavailable/);
        assert.ok(ready.ms < 1000, `/ready answered in ${ready.ms.toFixed(0)} ms`);

        const health = await srv.fetch('/health');
        assert.equal(health.status, 200, 'the process is alive and serving');
        assert.ok(srv.alive(), 'pulse serve is still running');

        const restarted = await ctx.pulse(['db', 'start']);
        assert.equal(restarted.code, 0, `pulse db start: ${restarted.stderr}`);
        const back = performance.now();
        await waitFor(async () => (await srv.fetch('/api/test/types', { timeoutMs: 3000 })).status === 200, 10000,
            { interval: 200, what: 'a query to succeed after the restart' });
        await waitFor(async () => (await srv.fetch('/ready', { timeoutMs: 3000 })).status === 200, 10000,
            { interval: 200, what: '/ready to answer 200 after the restart' });
        // every loop thread reconnects on its own back-off (at most 2 s): wait until all of them
        // answer, then measure
        await waitFor(async () => {
            const all = await Promise.all(Array.from({ length: 16 }, () => srv.fetch('/api/test/types', { timeoutMs: 3000 })));
            return all.every((r) => r.status === 200);
        }, 10000, { interval: 200, what: 'every thread answering from the database' });
        const recoveredIn = performance.now() - back;
        assert.ok(recoveredIn < 10000, `recovered in ${recoveredIn.toFixed(0)} ms`);

        // once it answers again, it keeps answering
        const after = await Promise.all(Array.from({ length: 16 }, () => srv.fetch('/api/test/types')));
        assert.deepEqual(after.map((r) => r.status), Array(16).fill(200));
        const tx = await srv.fetch('/api/test/tx/commit', { json: { name: `it-after-restart-${Date.now()}` } });
        assert.equal(tx.status, 201, tx.text);
        assert.ok(srv.alive());
    });
    it('starts while its database is down, answers 503 fast, and connects once it is up', { timeout: 60000 }, async () => {
        const u = await ctx.pulse(['db', 'url']);
        assert.equal(u.code, 0, u.stderr);
        const url = u.stdout.trim().split('\n').pop();
        const stopped = await ctx.pulse(['db', 'stop']);
        assert.equal(stopped.code, 0, stopped.stderr);
        const late = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_DATABASE_URL: url } });
        try {
            assert.equal((await late.fetch('/health')).status, 200);
            for (let i = 0; i < 3; i++) {
                const res = await late.fetch('/api/test/types', { timeoutMs: 5000 });
                assertProblem(assert, res, 503, 'db_unavailable');
                assert.ok(res.ms < 1000, `answered in ${res.ms.toFixed(0)} ms`);
            }
            const ready = await late.fetch('/ready', { timeoutMs: 5000 });
            assert.equal(ready.status, 503);
            assert.ok(ready.ms < 1000, `/ready answered in ${ready.ms.toFixed(0)} ms`);

            const started = await ctx.pulse(['db', 'start']);
            assert.equal(started.code, 0, started.stderr);
            await waitFor(async () => (await late.fetch('/ready', { timeoutMs: 3000 })).status === 200, 10000,
                { interval: 200, what: '/ready 200 once the database is up' });
            // each loop thread reconnects on its own back-off (at most 2 s): a request may land on
            // a thread that has not yet; within a few seconds every thread answers
            await waitFor(async () => {
                const all = await Promise.all(Array.from({ length: 8 }, () => late.fetch('/api/test/types', { timeoutMs: 3000 })));
                return all.every((r) => r.status === 200);
            }, 10000, { interval: 200, what: 'every thread answering from the database' });
        } finally {
            assert.equal(await late.stop('SIGTERM'), 0, late.exitReport());
        }
    });
});
