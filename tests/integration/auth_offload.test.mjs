// Password hashing runs on the worker pool, not on the loop threads: a hash/verify round trip
// through the `auth` binding, /health answering fast while 20 hashes are in flight, and a full
// worker queue answering 503 busy (PULSE_WORKERS=1, PULSE_WORKER_QUEUE=1).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createContext, TEST_ROUTES, assertProblem, sleep } from './harness.mjs';

const PASSWORD = 'correct horse battery staple';

describe('auth offload', { timeout: 120000 }, () => {
    let ctx;

    before(async () => {
        ctx = await createContext('pulse-it-auth-');
        await ctx.startDb();
        await ctx.migrate();
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    const hash = (srv, path = '/api/test/auth/hash', timeoutMs = 30000) =>
        srv.fetch(path, { json: { password: PASSWORD }, timeoutMs });

    it('hashes a password and verifies the right one, a wrong one and an unknown user', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES } });
        for (let round = 0; round < 2; round++) { // twice: no state left behind
            const res = await srv.fetch('/api/test/auth/roundtrip', { json: { password: PASSWORD, wrong: 'Correct horse battery staple' } });
            assert.equal(res.status, 200, res.text);
            assert.deepEqual(res.json, { prefix: '$argon2id$v=19$', correct: true, wrong: false, unknown: false });
        }
        assert.ok(!srv.stderr.includes(PASSWORD), 'the password never reaches the log');
        assert.equal(await srv.stop(), 0, srv.exitReport());
    });

    it('keeps the loop free while 20 hashes are in flight', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_WORKERS: '1' } });
        await srv.fetch('/health'); // warm the connection path
        let finished = 0;
        const hashes = Array.from({ length: 20 }, () => hash(srv).then((r) => { finished++; return r; }));
        await sleep(50); // they are queued now; 20 × ~70 ms on one worker keeps it busy > 1 s
        const times = [];
        while (finished < 15 && times.length < 40) {
            const res = await srv.fetch('/health');
            assert.equal(res.status, 200, res.text);
            times.push(res.ms);
            await sleep(20);
        }
        const results = await Promise.all(hashes);
        for (const r of results) assert.equal(r.status, 200, r.text);
        assert.ok(times.length >= 5, `measured /health ${times.length} times while hashing (need 5)`);
        for (const ms of times) assert.ok(ms < 100, `/health took ${ms.toFixed(1)} ms while hashing: ${times.map((t) => t.toFixed(1))}`);
        assert.equal(await srv.stop(), 0, srv.exitReport());
    });

    it('answers 503 busy when the worker queue is full', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_WORKERS: '1', PULSE_WORKER_QUEUE: '1' } });
        const results = await Promise.all(Array.from({ length: 8 }, () => hash(srv)));
        const ok = results.filter((r) => r.status === 200);
        const busy = results.filter((r) => r.status === 503);
        assert.equal(ok.length + busy.length, results.length, results.map((r) => `${r.status} ${r.text}`).join('\n'));
        assert.ok(ok.length >= 1, 'the running and queued ones finish');
        assert.ok(busy.length >= 1, 'the others are refused');
        assertProblem(assert, busy[0], 503, 'busy');
        assert.equal(busy[0].headers.get('retry-after'), '1');
        // once the queue drained, hashing works again
        const again = await hash(srv);
        assert.equal(again.status, 200, again.text);
        assert.equal(await srv.stop(), 0, srv.exitReport());
    });

    it('refuses bad worker settings at startup', async () => {
        for (const [name, value] of [['PULSE_WORKERS', '0'], ['PULSE_WORKER_QUEUE', 'lots']]) {
            await assert.rejects(ctx.startServer({ env: { [name]: value } }), new RegExp(`${name} must be an integer`));
        }
    });

    it('refuses to start in production without PULSE_JWT_KEYS', async () => {
        const url = (await ctx.pulse(['db', 'url'])).stdout.trim();
        assert.ok(url, 'pulse db url prints the connection string');
        await assert.rejects(ctx.startServer({ env: { PULSE_ENV: 'production', PULSE_DATABASE_URL: url } }),
            /PULSE_JWT_KEYS is not set/);
    });

    it('finishes hashes in flight on SIGTERM and exits 0', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_WORKERS: '1' } });
        const inflight = Array.from({ length: 6 }, () => hash(srv).catch((e) => ({ status: 0, text: e.message })));
        await sleep(100);
        srv.child.kill('SIGTERM');
        const results = await Promise.all(inflight);
        for (const r of results) assert.ok(r.status === 200 || r.status === 503, `${r.status} ${r.text}`);
        assert.equal(await srv.waitExit(15000), 0, srv.exitReport());
    });
});
