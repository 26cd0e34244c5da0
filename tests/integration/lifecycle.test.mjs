// Process lifecycle of `pulse serve`: graceful SIGTERM with requests in flight (and its time
// limit), startup failures, SIGHUP reloads (a broken reload keeps the old code; a good one takes
// over, keep-alive connections and running requests survive), clients that disconnect, and the
// per-request deadline (504).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createContext, FIXTURES, TEST_ROUTES, assertProblem, rawRequest, sleep, tryConnect, waitFor } from './harness.mjs';

describe('lifecycle', { timeout: 120000 }, () => {
    let ctx, tmp;

    before(async () => {
        ctx = await createContext('pulse-it-life-');
        tmp = await mkdtemp(path.join(tmpdir(), 'pulse-it-life-lua-'));
        await ctx.startDb();
        await ctx.migrate();
    });

    after(async () => {
        if (tmp) await rm(tmp, { recursive: true, force: true });
        if (ctx) await ctx.destroy();
    });

    it('SIGTERM lets in-flight requests finish, refuses new connections, exits 0', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_DB_POOL: '6' } });
        const port = srv.port;
        const started = performance.now();
        const inflight = Array.from({ length: 5 }, (_, i) =>
            srv.fetch('/api/test/sleep?s=1', { headers: { 'x-request-id': `it-term-${i}` }, timeoutMs: 15000 })
                .then((r) => ({ ...r, doneAt: performance.now() }), (e) => ({ error: e })));
        await sleep(300); // the five are running in the database now
        const mark = srv.logs.length;
        srv.child.kill('SIGTERM');
        await srv.waitForLog((l) => l.event === 'shutdown', 2000, mark);
        // the listeners close as each loop thread sees the shutdown
        const refused = await waitFor(async () => (await tryConnect(port, '127.0.0.1', 500)) === 'ECONNREFUSED', 1000,
            { interval: 20, what: 'new connections to be refused' });
        assert.ok(refused);
        assert.ok(performance.now() - started < 1000, 'refused while the slow requests were still running');
        assert.ok(srv.alive(), 'still running while requests are in flight');

        const results = await Promise.all(inflight);
        for (const [i, r] of results.entries()) {
            assert.ok(!r.error, `in-flight request ${i} failed: ${r.error && r.error.message}`);
            assert.equal(r.status, 200, `in-flight request ${i}: ${r.text}`);
            assert.equal(r.json.s, 1);
            assert.ok(r.doneAt - started >= 900, 'it really slept');
        }
        const code = await srv.waitExit(15000);
        assert.equal(code, 0, srv.exitReport());
        assert.ok(srv.logs.some((l) => l.event === 'stopped'), 'logs that it stopped');
        // every finished request made it to the access log before the exit
        for (let i = 0; i < 5; i++) {
            assert.ok(srv.logs.some((l) => l.event === 'request' && l.id === `it-term-${i}` && l.status === 200),
                `access line for it-term-${i}`);
        }
        assert.equal(await tryConnect(port), 'ECONNREFUSED');
    });

    it('SIGTERM gives up on requests past PULSE_SHUTDOWN_TIMEOUT_MS', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_SHUTDOWN_TIMEOUT_MS: '300' } });
        const id = `it-abandoned-${Date.now()}`;
        const stuck = srv.fetch('/api/test/sleep?s=5', { headers: { 'x-request-id': id }, timeoutMs: 10000 })
            .then((r) => ({ status: r.status, code: r.json && r.json.code }), (e) => ({ error: e.message.split('\n')[0] }));
        await sleep(300);
        const t0 = performance.now();
        const code = await srv.stop('SIGTERM', 5000);
        const took = performance.now() - t0;
        assert.equal(code, 0, srv.exitReport());
        assert.ok(took < 2000, `exited ${took.toFixed(0)} ms after SIGTERM (shutdown timeout 300 ms)`);
        const outcome = await stuck;
        assert.ok(outcome.error || outcome.status === 503, `the abandoned request ended: ${JSON.stringify(outcome)}`);
        assert.ok(srv.logs.some((l) => l.event === 'shutdown_timeout'), 'the log says requests were abandoned');
        if (outcome.status) {
            assert.ok(srv.logs.some((l) => l.event === 'request' && l.id === id),
                `the answered request (${outcome.status}) has its access log line\n${srv.stderr.slice(-1500)}`);
        }
    });

    it('refuses to start, with a clear message, when it cannot serve', async () => {
        const running = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES } });
        const busy = await ctx.pulse(['serve', '--port', String(running.port), '--threads', '1'], {}, { timeoutMs: 15000 });
        assert.equal(busy.code, 1, `port in use: ${busy.stdout}${busy.stderr}`);
        assert.match(busy.stderr, /cannot listen on port \d+/);
        assert.equal((await running.fetch('/health')).status, 200, 'the first server is unaffected');
        assert.equal(await running.stop(), 0, running.exitReport());

        const broken = path.join(tmp, 'broken_at_start.lua');
        await writeFile(broken, 'return function(routes\n');
        const bad = await ctx.pulse(['serve', '--port', '0'], { PULSE_APP_EXTRA: broken }, { timeoutMs: 15000 });
        assert.equal(bad.code, 1, `broken PULSE_APP_EXTRA: ${bad.stdout}${bad.stderr}`);
        assert.match(bad.stderr, /broken_at_start\.lua:\d+/);
        assert.doesNotMatch(bad.stdout, /serving on/);

        const conf = await ctx.pulse(['serve', '--port', '0'], { PULSE_THREADS: 'many' }, { timeoutMs: 15000 });
        assert.equal(conf.code, 1, `bad PULSE_THREADS: ${conf.stderr}`);
        assert.match(conf.stderr, /PULSE_THREADS/);

        const usage = await ctx.pulse(['serve', '--bogus'], {}, { timeoutMs: 15000 });
        assert.equal(usage.code, 2, `unknown option: ${usage.stderr}`);
    });

    it('SIGTERM on an idle server exits 0 promptly', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES } });
        assert.equal((await srv.fetch('/health')).status, 200);
        const t0 = performance.now();
        assert.equal(await srv.stop('SIGTERM', 10000), 0, srv.exitReport());
        assert.ok(performance.now() - t0 < 3000, `exited in ${(performance.now() - t0).toFixed(0)} ms`);
    });

    it('SIGHUP reloads the Lua app; a broken reload keeps the old code', async () => {
        const file = path.join(tmp, 'reload_route.lua');
        await copyFile(path.join(FIXTURES, 'reload_route.lua'), file);
        const original = await readFile(file, 'utf8');
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: `${TEST_ROUTES};${file}` }, threads: 2 });
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
            const url = srv.url + 'api/test/reload';
            const get = async () => {
                const r = await rawRequest(url, { agent });
                assert.equal(r.status, 200, r.body.toString());
                return { version: JSON.parse(r.body.toString()).version, reused: r.reusedSocket, localPort: r.localPort };
            };
            const first = await get();
            assert.equal(first.version, 1);

            // 1. broken syntax: every thread refuses the new code and keeps the old
            await writeFile(file, original.replace('local VERSION = 1', 'local VERSION = = 2 -- broken'));
            let mark = srv.logs.length;
            srv.child.kill('SIGHUP');
            await waitFor(() => srv.logs.slice(mark).filter((l) => l.event === 'reload_failed').length >= srv.threads, 5000,
                { what: `reload_failed from each of the ${srv.threads} threads` })
                .catch((e) => { throw new Error(`${e.message}\n${srv.stderr.slice(-3000)}`); });
            const failed = srv.logs.slice(mark).find((l) => l.event === 'reload_failed');
            assert.equal(failed.level, 'error');
            assert.match(failed.msg, /reload_route\.lua:\d+:/, 'the log names the broken file and line');
            assert.match(failed.msg, /unexpected symbol|expected/, 'the log has the Lua error');
            assert.ok(!srv.logs.slice(mark).some((l) => l.event === 'reloaded'), 'no thread took the broken code');
            for (let i = 0; i < 4; i++) {
                const r = await get();
                assert.equal(r.version, 1, 'the old route still answers');
            }
            assert.ok(srv.alive());
            const other = await srv.fetch('/api/test/types');
            assert.equal(other.status, 200, 'the rest of the app still answers');

            // 2. fixed, with a new answer: the reload takes over on the same keep-alive connection
            await writeFile(file, original.replace('local VERSION = 1', 'local VERSION = 2'));
            mark = srv.logs.length;
            srv.child.kill('SIGHUP');
            await waitFor(() => srv.logs.slice(mark).filter((l) => l.event === 'reloaded').length >= srv.threads, 5000,
                { what: `reloaded from each of the ${srv.threads} threads` })
                .catch((e) => { throw new Error(`${e.message}\n${srv.stderr.slice(-3000)}`); });
            assert.ok(!srv.logs.slice(mark).some((l) => l.event === 'reload_failed'));
            const second = await get();
            assert.equal(second.version, 2, 'the new code answers');
            assert.equal(second.reused, true, 'the keep-alive connection stayed open across the reload');
            assert.equal(second.localPort, first.localPort, 'same TCP connection');
            // and on new connections
            for (let i = 0; i < 4; i++) {
                const r = await srv.fetch('/api/test/reload');
                assert.equal(r.json.version, 2);
            }
            assert.equal(await srv.stop('SIGTERM'), 0, srv.exitReport());
        } finally {
            agent.destroy();
        }
    });

    it('requests running during a reload finish on the old code; clients that go away do no harm', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES } });
        // a request in flight across a SIGHUP completes normally
        const slow = srv.fetch('/api/test/sleep?s=0.6', { timeoutMs: 10000 });
        await sleep(150);
        const mark = srv.logs.length;
        srv.child.kill('SIGHUP');
        await waitFor(() => srv.logs.slice(mark).filter((l) => l.event === 'reloaded').length >= srv.threads, 5000,
            { what: 'every thread to reload' });
        const r = await slow;
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.s, 0.6);

        // clients that disconnect while their handler waits on the database
        const aborted = [];
        for (let i = 0; i < 6; i++) {
            const ac = new AbortController();
            const p = fetch(srv.url + 'api/test/sleep?s=0.4', { signal: ac.signal }).then(() => 'answered', (e) => e.name);
            setTimeout(() => ac.abort(), 100 + i * 20);
            aborted.push(p);
        }
        assert.deepEqual(await Promise.all(aborted), Array(6).fill('AbortError'));
        await sleep(600); // the handlers resume after their clients are gone
        assert.ok(srv.alive(), `pulse serve survived the disconnects\n${srv.stderr.slice(-2000)}`);
        const after = await Promise.all(Array.from({ length: 8 }, () => srv.fetch('/api/test/sleep?s=0.01')));
        assert.deepEqual(after.map((x) => x.status), Array(8).fill(200));
        assert.equal(await srv.stop('SIGTERM'), 0, srv.exitReport());
    });

    it('answers 504 past PULSE_REQUEST_TIMEOUT_MS and keeps serving', async () => {
        const srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_REQUEST_TIMEOUT_MS: '300' } });
        const id = `it-deadline-${Date.now()}`;
        const res = await srv.fetch('/api/test/sleep?s=1', { headers: { 'x-request-id': id } });
        assert.equal(res.status, 504, res.text);
        const p = assertProblem(assert, res, 504, res.json && res.json.code);
        assert.equal(typeof p.code, 'string');
        assert.equal(p.request_id, id);
        assert.ok(res.ms >= 250 && res.ms < 900, `answered after ${res.ms.toFixed(0)} ms (deadline 300 ms, handler 1 s)`);
        await srv.waitForLog((l) => l.event === 'request' && l.id === id && l.status === 504, 3000);

        // the abandoned handler finishes in the background; nothing else is affected
        await sleep(900);
        const ok = await srv.fetch('/api/test/sleep?s=0.05');
        assert.equal(ok.status, 200, ok.text);
        const health = await srv.fetch('/health');
        assert.equal(health.status, 200);
        assert.ok(srv.alive());
        // exactly one answer per request: the late handler result is dropped, not logged as a 2nd answer
        await sleep(300);
        assert.equal(srv.logs.filter((l) => l.event === 'request' && l.id === id).length, 1);
        assert.equal(await srv.stop('SIGTERM'), 0, srv.exitReport());
    });
});
