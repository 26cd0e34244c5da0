// Streamed answers (Server-Sent Events, response.sse) and pulse.sleep on a real `pulse serve`:
// events arrive as they are produced, framing, headers, a client that goes away, the request
// timeout not cutting a stream, PULSE_STREAM_MAX_SECONDS, SIGTERM with a stream open, keep-alive
// comments, and a sleeping handler not blocking its loop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createContext, TEST_ROUTES, rawRequest } from './harness.mjs';

const REQUEST_TIMEOUT_MS = 500;
const STREAM_MAX_SECONDS = 2;

// Parses the SSE text of one event block into {event, id, retry, data, comments}.
function parseBlock(block) {
    const ev = { data: [], comments: [] };
    for (const line of block.split('\n')) {
        if (line.startsWith(':')) ev.comments.push(line.slice(1).trim());
        else if (line.startsWith('data: ')) ev.data.push(line.slice(6));
        else if (line.startsWith('event: ')) ev.event = line.slice(7);
        else if (line.startsWith('id: ')) ev.id = line.slice(4);
        else if (line.startsWith('retry: ')) ev.retry = Number(line.slice(7));
    }
    ev.data = ev.data.length ? ev.data.join('\n') : undefined;
    return ev;
}

// Opens a stream with node:http and collects its blocks with their arrival time (Date.now()).
// Resolves once the headers arrived: {status, headers, blocks, ended (promise), close()}.
function openStream(srv, p, { headers = {}, timeoutMs = 30000 } = {}) {
    return new Promise((resolve, reject) => {
        const req = http.get(srv.url + p.replace(/^\//, ''), { headers, agent: false }, (res) => {
            const s = { status: res.statusCode, headers: res.headers, blocks: [], text: '' };
            let pending = '';
            s.ended = new Promise((done) => {
                res.on('end', () => done('end'));
                res.on('close', () => done('close'));
                res.on('error', () => done('error'));
            });
            res.setEncoding('utf8');
            res.on('data', (d) => {
                s.text += d;
                pending += d;
                let at;
                while ((at = pending.indexOf('\n\n')) >= 0) {
                    const block = pending.slice(0, at);
                    pending = pending.slice(at + 2);
                    s.blocks.push({ at: Date.now(), ...parseBlock(block) });
                }
            });
            s.close = () => req.destroy();
            s.waitBlocks = async (n, ms = 10000) => {
                const until = Date.now() + ms;
                while (s.blocks.length < n) {
                    if (Date.now() > until) throw new Error(`${s.blocks.length} of ${n} blocks after ${ms} ms: ${s.text}`);
                    await new Promise((r) => setTimeout(r, 10));
                }
            };
            resolve(s);
        });
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${p} timed out`)));
        req.on('error', reject);
    });
}

const withTimeout = (promise, ms, what) =>
    Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);

describe('sse', { timeout: 120000 }, () => {
    let ctx, srv;

    before(async () => {
        ctx = await createContext('pulse-it-sse-');
        await ctx.startDb();
        srv = await ctx.startServer({
            threads: 1,
            env: {
                PULSE_APP_EXTRA: TEST_ROUTES,
                PULSE_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
                PULSE_STREAM_MAX_SECONDS: String(STREAM_MAX_SECONDS),
            },
        });
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    it('sends events as they are produced, with the stream headers', async () => {
        for (let round = 0; round < 2; round++) { // twice: no state may leak between streams
            const s = await openStream(srv, `/api/test/sse?n=3&ms=300&tag=inc${round}`);
            assert.equal(s.status, 200);
            assert.equal(s.headers['content-type'], 'text/event-stream; charset=utf-8');
            assert.equal(s.headers['cache-control'], 'no-store');
            assert.equal(s.headers['x-accel-buffering'], 'no');
            assert.equal(s.headers['content-length'], undefined);
            assert.equal(s.headers['content-encoding'], undefined);
            assert.equal(s.headers['x-stream-tag'], `inc${round}`, 'the handler\'s extra headers');
            assert.match(s.headers['x-request-id'] || '', /\S/);
            assert.match(s.headers['server-timing'] || '', /^app;dur=/);
            assert.equal(await withTimeout(s.ended, 10000, 'stream end'), 'end');
            const ticks = s.blocks.filter((b) => b.event === 'tick');
            assert.deepEqual(ticks.map((b) => b.id), ['1', '2', '3']);
            const data = ticks.map((b) => JSON.parse(b.data));
            assert.deepEqual(data.map((d) => d.i), [1, 2, 3]);
            const last = s.blocks[s.blocks.length - 1];
            assert.equal(last.event, 'done');
            assert.equal(last.data, 'bye');
            // the first event was in the client's hands before the third one was even made
            assert.ok(ticks[0].at < data[2].at * 1000 - 200,
                `first arrived at ${ticks[0].at}, third produced at ${data[2].at * 1000}`);
            assert.ok(ticks[2].at - ticks[0].at >= 450, `events spread over ${ticks[2].at - ticks[0].at} ms`);
        }
    });

    it('frames every event shape and refuses CR/LF in event and id', async () => {
        const res = await srv.fetch('/api/test/sse-shapes');
        assert.equal(res.status, 200);
        const blocks = res.text.split('\n\n');
        assert.equal(blocks[0], 'data: plain text');
        assert.equal(blocks[1], 'data: line one\ndata: line two\ndata: line three');
        const obj = parseBlock(blocks[2]);
        assert.deepEqual({ ...obj, data: JSON.parse(obj.data) },
            { event: 'obj', id: '42', retry: 1500, data: { a: [1, 2], b: 'x' }, comments: [] });
        assert.match(blocks[2], /^event: obj\nid: 42\nretry: 1500\ndata: \{[^\n]*\}$/);
        assert.equal(blocks[3], ': just a comment');
        const refused = parseBlock(blocks[4]);
        assert.equal(refused.event, 'refused');
        const errs = JSON.parse(refused.data);
        assert.equal(errs.length, 5);
        assert.match(errs[0], /event must not contain CR, LF/);
        assert.match(errs[1], /id must not contain CR, LF/);
        assert.match(errs[2], /retry must be a non-negative integer/);
        assert.match(errs[3], /cannot encode function/);
        assert.match(errs[4], /an event is a string or a table/);
        assert.equal(res.text.endsWith('\n\n'), true);
    });

    it('passes through CORS and is never gzipped', async () => {
        const res = await rawRequest(srv.url + 'api/test/sse?n=2&ms=0', {
            headers: { origin: 'https://app.example.com', 'accept-encoding': 'gzip' },
        });
        assert.equal(res.status, 200);
        assert.equal(res.headers['content-encoding'], undefined);
        assert.equal(res.headers['access-control-allow-origin'], '*');
        assert.match(res.body.toString('utf8'), /event: done\ndata: bye\n\n$/);
    });

    it('logs a producer that raises with the request id and ends the stream', async () => {
        const from = srv.logs.length;
        const res = await srv.fetch('/api/test/sse-raise', { headers: { 'x-request-id': 'it-sse-raise-1' } });
        assert.equal(res.status, 200);
        assert.equal(res.text, 'data: first\n\n');
        const line = await srv.waitForLog((l) => l.event === 'stream_error', 5000, from);
        assert.match(line.msg, /request it-sse-raise-1: .*it-sse-raise: the producer broke/);
        const access = await srv.waitForLog((l) => l.event === 'request' && l.id === 'it-sse-raise-1', 5000, from);
        assert.equal(access.status, 200);
        assert.equal(access.bytes, 'data: first\n\n'.length);
    });

    it('ends the producer loop when the client goes away, and keeps serving', async () => {
        for (let round = 0; round < 2; round++) {
            const tag = `gone${round}`;
            const from = srv.logs.length;
            const s = await openStream(srv, `/api/test/sse?n=1000000&ms=50&tag=${tag}`);
            await s.waitBlocks(3);
            s.close();
            const end = await srv.waitForLog((l) => l.event === 'it_sse_end' && l.msg.includes(`tag=${tag} `), 5000, from);
            assert.match(end.msg, /reason=(closed|false)/);
            const access = await srv.waitForLog((l) => l.event === 'request' && l.path === '/api/test/sse' &&
                l.id === end.msg.match(/request (\S+):/)[1], 5000, from);
            assert.equal(access.status, 200);
            assert.ok(access.bytes > 0);
            const health = await srv.fetch('/health');
            assert.equal(health.status, 200);
            assert.ok(srv.alive(), srv.exitReport());
        }
    });

    it(`is not cut by PULSE_REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS} ms) once started`, async () => {
        const from = srv.logs.length;
        const started = Date.now();
        const s = await openStream(srv, '/api/test/sse?n=6&ms=200&tag=long');
        assert.equal(s.status, 200);
        await withTimeout(s.ended, 10000, 'stream end');
        assert.ok(Date.now() - started >= 1000);
        assert.equal(s.blocks.filter((b) => b.event === 'tick').length, 6);
        assert.equal(s.blocks[s.blocks.length - 1].event, 'done');
        assert.ok(!srv.logs.slice(from).some((l) => l.event === 'request_timeout'), 'no 504');
    });

    it(`ends a stream after PULSE_STREAM_MAX_SECONDS (${STREAM_MAX_SECONDS} s)`, async () => {
        const from = srv.logs.length;
        const started = Date.now();
        const s = await openStream(srv, '/api/test/sse?n=1000000&ms=100&tag=expire');
        assert.equal(await withTimeout(s.ended, 10000, 'stream end'), 'end');
        const took = Date.now() - started;
        assert.ok(took >= STREAM_MAX_SECONDS * 1000 - 100 && took < STREAM_MAX_SECONDS * 1000 + 1500, `lasted ${took} ms`);
        const end = await srv.waitForLog((l) => l.event === 'it_sse_end' && l.msg.includes('tag=expire '), 5000, from);
        assert.match(end.msg, /reason=expired/);
        const id = end.msg.match(/request (\S+):/)[1];
        const access = await srv.waitForLog((l) => l.event === 'request' && l.id === id, 5000, from);
        assert.equal(access.status, 200);
        assert.ok(access.ms >= STREAM_MAX_SECONDS * 1000 - 100, `logged ${access.ms} ms`);
        assert.ok(access.bytes >= s.text.length, `logged ${access.bytes} bytes, received ${s.text.length}`);
    });

    it('pulse.sleep waits without blocking the loop (threads: 1)', async () => {
        for (let round = 0; round < 2; round++) {
            const started = Date.now();
            let sleptAt = 0;
            const sleeping = srv.fetch('/api/test/sleep-lua?s=0.2').then((r) => { sleptAt = Date.now(); return r; });
            const latencies = [];
            for (let i = 0; i < 5; i++) {
                const h = await srv.fetch('/health');
                assert.equal(h.status, 200);
                latencies.push(h.ms);
            }
            const healthDone = Date.now();
            const res = await sleeping;
            const took = sleptAt - started;
            assert.equal(res.status, 200, res.text);
            assert.equal(res.json.slept, true);
            assert.ok(res.json.ms >= 195 && res.json.ms < 400, `slept ${res.json.ms} ms`);
            assert.ok(took >= 195 && took < 800, `answered after ${took} ms`);
            // the one loop thread answered /health while the handler slept
            assert.ok(healthDone < sleptAt, `five /health answers done ${healthDone - started} ms in, the sleep after ${took} ms`);
            assert.ok(Math.max(...latencies) < 150, `/health latencies ${latencies.map((x) => x.toFixed(0))} ms`);
        }
    });

    it('pulse.sleep refuses bad arguments and a context that cannot yield', async () => {
        const res = await srv.fetch('/api/test/sleep-misuse');
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json.map((e) => e.ok), [false, false, false, false]);
        assert.match(res.json[0].err, /seconds must be from 0 to 3600/);
        assert.match(res.json[1].err, /seconds must be from 0 to 3600/);
        assert.match(res.json[2].err, /number expected/);
        assert.match(res.json[3].err, /pulse\.sleep can only be called while handling a request/);
    });

    it('sends a keep-alive comment while the producer sleeps for long', { timeout: 40000 }, async () => {
        // its own server: the suite's streams expire after STREAM_MAX_SECONDS
        const own = await ctx.startServer({ threads: 1, env: { PULSE_APP_EXTRA: TEST_ROUTES } });
        const s = await openStream(own, '/api/test/sse?n=1&ms=30000&tag=keepalive');
        await s.waitBlocks(1);
        const first = s.blocks[0].at;
        await s.waitBlocks(2, 20000);
        const ka = s.blocks[1];
        assert.deepEqual(ka.comments, ['keep-alive']);
        const gap = ka.at - first;
        assert.ok(gap >= 14500 && gap < 17000, `keep-alive after ${gap} ms`);
        s.close();
        await own.kill();
    });

    it('SIGTERM with a stream open: the producer is told, the process exits 0 promptly', async () => {
        const own = await ctx.startServer({ threads: 1, env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_SHUTDOWN_TIMEOUT_MS: '3000' } });
        const s = await openStream(own, '/api/test/sse?n=1000000&ms=1000&tag=term');
        await s.waitBlocks(1);
        const started = Date.now();
        const code = await own.stop('SIGTERM', 5000);
        const took = Date.now() - started;
        assert.equal(code, 0, own.exitReport());
        assert.ok(took < 2500, `exited ${took} ms after SIGTERM`);
        const end = own.logs.find((l) => l.event === 'it_sse_end' && l.msg.includes('tag=term '));
        assert.ok(end, own.exitReport());
        assert.match(end.msg, /reason=shutdown/);
        assert.ok(!own.logs.some((l) => l.event === 'shutdown_timeout'), 'no request was abandoned');
        assert.equal(await withTimeout(s.ended, 5000, 'client side end'), 'end', 'the stream ended cleanly');
    });
});
