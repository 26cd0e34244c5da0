// HTTP behaviour of a real `pulse serve`: the problem+json error shapes, validation, request ids,
// timing, CORS, HEAD, the OpenAPI document, /docs, the dashboard's static files and the access log.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createContext, TEST_ROUTES, PULSE_HOME, assertProblem, rawHttp, rawRequest, waitFor } from './harness.mjs';

const ORIGIN = 'https://app.example.com';
const MAX_BODY = 2048;

describe('http', { timeout: 90000 }, () => {
    let ctx, srv;

    before(async () => {
        ctx = await createContext('pulse-it-http-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({
            env: { PULSE_APP_EXTRA: TEST_ROUTES, PULSE_MAX_BODY_BYTES: String(MAX_BODY), PULSE_CORS_ORIGINS: ORIGIN,
                PULSE_MAX_UPLOAD_BYTES: String(8 << 20) },
        });
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    const post = (p, body, headers = {}) =>
        srv.fetch(p, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

    it('prints where it serves and answers /health', async () => {
        assert.match(srv.printedUrl, /^http:\/\/127\.0\.0\.1:\d+\/$/);
        assert.equal(srv.printedPid, srv.pid);
        assert.equal(srv.threads, 2);
        const res = await srv.fetch('/health');
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') || '', /^application\/json/);
        assert.equal(res.json.status, 'ok');
        assert.equal(typeof res.json.version, 'string');
        assert.ok(res.json.version.length > 0);
    });

    it('answers an unknown route with a 404 problem', async () => {
        const res = await srv.fetch('/api/no/such/route');
        const p = assertProblem(assert, res, 404, 'not_found');
        assert.equal(p.title, 'Not Found');
        assert.match(p.detail, /\/api\/no\/such\/route/);
        assert.equal(p.errors, undefined);
    });

    it('answers a wrong method with 405 and an Allow header', async () => {
        const res = await srv.fetch('/api/test/methods', { method: 'PUT' });
        assertProblem(assert, res, 405, 'method_not_allowed');
        const allow = (res.headers.get('allow') || '').split(/\s*,\s*/).sort();
        assert.deepEqual(allow, ['DELETE', 'GET']);

        const res2 = await srv.fetch('/health', { method: 'POST' });
        assertProblem(assert, res2, 405, 'method_not_allowed');
        assert.match(res2.headers.get('allow') || '', /\bGET\b/);
    });

    it('refuses a body over PULSE_MAX_BODY_BYTES with 413', async () => {
        const big = JSON.stringify({ name: 'big', note: 'x'.repeat(10 * 1024) });
        const res = await post('/api/test/echo/1', big);
        const p = assertProblem(assert, res, 413, 'body_too_large');
        assert.match(p.detail, new RegExp(String(MAX_BODY)));
        // just under the limit is fine
        const ok = await post('/api/test/echo/1', JSON.stringify({ name: 'small', note: 'y'.repeat(MAX_BODY - 100) }));
        assert.equal(ok.status, 201, ok.text);
    });

    it('applies a 1 MiB body limit by default', async () => {
        const plain = await ctx.startServer({ env: { PULSE_APP_EXTRA: TEST_ROUTES } });
        try {
            const over = await plain.fetch('/api/test/echo/1', { json: { name: 'x', note: 'n'.repeat(1024 * 1024) } });
            assertProblem(assert, over, 413, 'body_too_large');
            const under = await plain.fetch('/api/test/echo/1', { json: { name: 'x', note: 'n'.repeat(1024 * 1024 - 100) } });
            assert.equal(under.status, 201, under.text.slice(0, 300));
            assert.equal(under.json.body.note.length, 1024 * 1024 - 100);
        } finally {
            assert.equal(await plain.stop(), 0, plain.exitReport());
        }
    });

    it('answers a body past the transport cap with a 413 problem too', async () => {
        // h2o buffers bodies up to an internal cap (max(16 MiB, 4 x PULSE_MAX_BODY_BYTES,
        // PULSE_MAX_UPLOAD_BYTES + 1 MiB)); a request announcing more must still get the API's
        // problem+json, like any other 413.
        const announced = 17 * 1024 * 1024;
        const res = await rawHttp(srv.port,
            `POST /api/test/echo/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
            `Content-Length: ${announced}\r\nX-Request-Id: it-huge-body\r\n\r\n{"name":"`);
        assert.equal(res.status, 413, res.raw.slice(0, 500));
        assert.match(res.headers['content-type'] || '', /^application\/problem\+json/,
            `content type of the 413: ${res.raw.slice(0, 500)}`);
        const p = JSON.parse(res.body);
        assert.equal(p.code, 'body_too_large');
        assert.equal(p.status, 413);
        assert.equal(res.headers['x-request-id'], 'it-huge-body');
    });

    it('answers malformed JSON with 400 malformed_json', async () => {
        const res = await post('/api/test/echo/1', '{"name": "x",');
        assertProblem(assert, res, 400, 'malformed_json');
        const res2 = await post('/api/test/echo/1', '{"name": "x"} trailing');
        assertProblem(assert, res2, 400, 'malformed_json');
    });

    it('refuses hostile JSON with 400 and stays up', async () => {
        const deep = await post('/api/test/echo/1', '['.repeat(MAX_BODY - 10));
        assertProblem(assert, deep, 400, 'malformed_json');
        const badUtf8 = await srv.fetch('/api/test/echo/1', {
            method: 'POST', headers: { 'content-type': 'application/json' },
            body: Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
        });
        assertProblem(assert, badUtf8, 400, 'malformed_json');
        const surrogate = await post('/api/test/echo/1', '{"name":"a\\ud800"}');
        assertProblem(assert, surrogate, 400, 'malformed_json');
        const huge = await post('/api/test/echo/1', '{"name":"x","qty":1e400}');
        assert.ok([400, 422].includes(huge.status), `1e400: ${huge.status} ${huge.text}`);
        const repeated = await post('/api/test/echo/1?limit=5&limit=6', '{"name":"x"}');
        const pr = assertProblem(assert, repeated, 422, 'validation_failed');
        assert.deepEqual(pr.errors.map((e) => e.field), ['query.limit']);
        assert.equal((await srv.fetch('/health')).status, 200);
    });

    it('answers a non-JSON content type with 415', async () => {
        const res = await srv.fetch('/api/test/echo/1', {
            method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"name":"x"}',
        });
        assertProblem(assert, res, 415, 'unsupported_media_type');
        const form = await srv.fetch('/api/test/echo/1', {
            method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=x',
        });
        assertProblem(assert, form, 415, 'unsupported_media_type');
        // parameters on the media type are fine
        const ok = await post('/api/test/echo/1', '{"name":"x"}', { 'content-type': 'application/json; charset=utf-8' });
        assert.equal(ok.status, 201, ok.text);
    });

    it('validates path, query and body and echoes the coerced values', async () => {
        const res = await post('/api/test/echo/7?verbose=true&limit=5', JSON.stringify({ name: 'Ada', qty: 3 }));
        assert.equal(res.status, 201, res.text);
        assert.match(res.headers.get('content-type') || '', /^application\/json/);
        assert.deepEqual(
            { id: res.json.id, verbose: res.json.verbose, limit: res.json.limit, body: res.json.body },
            { id: 7, verbose: true, limit: 5, body: { name: 'Ada', qty: 3 } },
        );
        assert.equal(res.json.request_id, res.headers.get('x-request-id'));
        const dflt = await post('/api/test/echo/8', JSON.stringify({ name: 'Bob' }));
        assert.equal(dflt.status, 201, dflt.text);
        assert.equal(dflt.json.verbose, false, 'query default applied');
    });

    it('answers 422 naming every offending field at once', async () => {
        const res = await post('/api/test/echo/0?limit=abc&verbose=maybe',
            JSON.stringify({ name: '', qty: -1, extra: true }));
        const p = assertProblem(assert, res, 422, 'validation_failed');
        assert.ok(Array.isArray(p.errors), 'errors is an array');
        const fields = p.errors.map((e) => e.field).sort();
        assert.deepEqual(fields, ['body.extra', 'body.name', 'body.qty', 'path.id', 'query.limit', 'query.verbose']);
        for (const e of p.errors) {
            assert.equal(typeof e.code, 'string', JSON.stringify(e));
            assert.ok(e.code.length > 0);
            assert.equal(typeof e.message, 'string', JSON.stringify(e));
            assert.ok(e.message.length > 0);
        }
        const missing = await post('/api/test/echo/1', JSON.stringify({ qty: 1 }));
        const pm = assertProblem(assert, missing, 422, 'validation_failed');
        assert.deepEqual(pm.errors.map((e) => e.field), ['body.name']);

        const wrongType = await post('/api/test/echo/1', JSON.stringify(['not', 'an', 'object']));
        const pw = assertProblem(assert, wrongType, 422, 'validation_failed');
        assert.deepEqual(pw.errors.map((e) => e.field), ['body']);

        const noBody = await srv.fetch('/api/test/echo/1', { method: 'POST', headers: { 'content-type': 'application/json' } });
        const pn = assertProblem(assert, noBody, 422, 'validation_failed');
        assert.deepEqual(pn.errors.map((e) => e.field), ['body']);
    });

    it('answers a failing handler with 500 without internals, and logs the error with the request id', async () => {
        const id = 'it-boom-' + Date.now();
        const res = await srv.fetch('/api/test/boom', { headers: { 'x-request-id': id } });
        const p = assertProblem(assert, res, 500, 'internal_error');
        assert.equal(p.request_id, id);
        for (const leak of ['it-secret-detail', 'flux', 'traceback', '.lua', 'test_routes']) {
            assert.ok(!res.text.includes(leak), `the body must not reveal "${leak}": ${res.text}`);
        }
        const line = await srv.waitForLog((l) => l.level === 'error' && typeof l.msg === 'string' && l.msg.includes(id));
        assert.match(line.msg, /it-secret-detail: the flux capacitor broke/);
        assert.match(line.msg, /\/api\/test\/boom/);
    });

    it('refuses to send a response header holding CR LF', async () => {
        const res = await srv.fetch('/api/test/header-injection');
        assertProblem(assert, res, 500, 'internal_error');
        assert.equal(res.headers.get('set-cookie'), null);
        assert.equal(res.headers.get('x-note'), null);
    });

    it('answers a protected route with 401', async () => {
        const res = await srv.fetch('/api/test/protected');
        assertProblem(assert, res, 401, 'unauthorized');
        assert.ok(!res.text.includes('analysts only'));
        assert.match(res.headers.get('www-authenticate') || '', /^Bearer/);
    });

    it('generates a request id, or echoes a safe one', async () => {
        const a = await srv.fetch('/health');
        const b = await srv.fetch('/health');
        const idA = a.headers.get('x-request-id'), idB = b.headers.get('x-request-id');
        assert.match(idA || '', /^[A-Za-z0-9._-]{6,}$/);
        assert.match(idB || '', /^[A-Za-z0-9._-]{6,}$/);
        assert.notEqual(idA, idB);

        const mine = 'it-req_123.abc-XYZ';
        const c = await srv.fetch('/api/no/such', { headers: { 'x-request-id': mine } });
        assert.equal(c.headers.get('x-request-id'), mine);
        assert.equal(c.json.request_id, mine);

        for (const unsafe of ['has space', 'quote"d', 'a/b', 'x'.repeat(300)]) {
            const d = await srv.fetch('/health', { headers: { 'x-request-id': unsafe } });
            const got = d.headers.get('x-request-id');
            assert.ok(got && got !== unsafe, `unsafe id ${JSON.stringify(unsafe.slice(0, 20))} is replaced, got ${got}`);
            assert.match(got, /^[A-Za-z0-9._-]+$/);
        }
    });

    it('sends server-timing on API answers and errors', async () => {
        for (const [p, init] of [['/health', {}], ['/api/no/such', {}], ['/api/test/boom', {}], ['/openapi.json', {}],
            ['/api/test/echo/1', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }]]) {
            const res = await srv.fetch(p, init);
            assert.match(res.headers.get('server-timing') || '', /^app;dur=\d+(\.\d+)?$/, `${p}: ${res.status}`);
            assert.ok(res.headers.get('x-request-id'), `${p} has x-request-id`);
        }
    });

    it('answers CORS simple requests and preflights for allowed origins only', async () => {
        const res = await srv.fetch('/health', { headers: { origin: ORIGIN } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('access-control-allow-origin'), ORIGIN);
        assert.match(res.headers.get('vary') || '', /origin/i);
        assert.match(res.headers.get('access-control-expose-headers') || '', /x-request-id/i);

        const err = await srv.fetch('/api/no/such', { headers: { origin: ORIGIN } });
        assert.equal(err.status, 404);
        assert.equal(err.headers.get('access-control-allow-origin'), ORIGIN, 'errors carry CORS headers too');

        const other = await srv.fetch('/health', { headers: { origin: 'https://evil.example.net' } });
        assert.equal(other.status, 200);
        assert.equal(other.headers.get('access-control-allow-origin'), null);

        const pre = await srv.fetch('/api/test/echo/1', {
            method: 'OPTIONS',
            headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
        });
        assert.equal(pre.status, 204, pre.text);
        assert.equal(pre.text, '');
        assert.equal(pre.headers.get('access-control-allow-origin'), ORIGIN);
        assert.match(pre.headers.get('access-control-allow-methods') || '', /\bPOST\b/);
        assert.match(pre.headers.get('access-control-allow-headers') || '', /content-type/i);
        assert.ok(Number(pre.headers.get('access-control-max-age')) > 0);

        const pre2 = await srv.fetch('/api/test/methods', {
            method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'DELETE' },
        });
        assert.equal(pre2.status, 204);
        const methods = (pre2.headers.get('access-control-allow-methods') || '').split(/\s*,\s*/);
        assert.ok(methods.includes('GET') && methods.includes('DELETE'), methods.join(','));

        const preMissing = await srv.fetch('/api/no/such', {
            method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'GET' },
        });
        assertProblem(assert, preMissing, 404, 'not_found');
    });

    it('answers HEAD like GET without a body', async () => {
        const get = await srv.fetch('/health');
        const head = await srv.fetch('/health', { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.text, '');
        assert.equal(head.headers.get('content-type'), get.headers.get('content-type'));
        assert.ok(head.headers.get('x-request-id'));
        const miss = await srv.fetch('/api/no/such', { method: 'HEAD' });
        assert.equal(miss.status, 404);
        assert.equal(miss.text, '');
        assert.match(miss.headers.get('content-type') || '', /^application\/problem\+json/);
    });

    it('describes the API in /openapi.json (OpenAPI 3.1)', async () => {
        const res = await srv.fetch('/openapi.json');
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') || '', /^application\/json/);
        const doc = JSON.parse(res.text);
        assert.match(doc.openapi, /^3\.1\.\d+$/);
        assert.equal(typeof doc.info?.title, 'string');
        assert.equal(typeof doc.info?.version, 'string');
        for (const [p, m] of [['/health', 'get'], ['/ready', 'get'], ['/openapi.json', 'get'],
            ['/api/test/echo/{id}', 'post'], ['/api/test/boom', 'get'], ['/api/test/protected', 'get'],
            ['/api/test/methods', 'get'], ['/api/test/methods', 'delete']]) {
            assert.ok(doc.paths?.[p]?.[m], `paths["${p}"].${m} is documented`);
            assert.equal(typeof doc.paths[p][m].summary, 'string', `${m} ${p} has a summary`);
            assert.ok(doc.paths[p][m].responses, `${m} ${p} has responses`);
        }
        const echo = doc.paths['/api/test/echo/{id}'].post;
        assert.ok(echo.requestBody, 'the body route documents its requestBody');
        assert.ok(echo.requestBody.content?.['application/json']?.schema, 'requestBody has a JSON schema');
        assert.ok(echo.responses['422'], 'a route with a body documents 422');
        const params = (echo.parameters || []).map((x) => `${x.in}:${x.name}`).sort();
        assert.deepEqual(params, ['path:id', 'query:limit', 'query:verbose']);
        assert.equal(echo.parameters.find((x) => x.name === 'id').required, true);
        assert.ok(doc.paths['/api/test/protected'].get.responses['401'], 'a protected route documents 401');
        // $refs resolve
        const refs = [...res.text.matchAll(/"\$ref":"#\/([^"]+)"/g)].map((m) => m[1]);
        for (const ref of new Set(refs)) {
            const target = ref.split('/').reduce((o, k) => (o ? o[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
            assert.ok(target, `$ref #/${ref} resolves`);
        }
    });

    it('serves /docs and its Swagger UI assets', async () => {
        const res = await srv.fetch('/docs');
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') || '', /^text\/html/);
        assert.match(res.text, /\/docs\/assets\/swagger-ui-bundle\.js/);
        assert.match(res.text, /\/openapi\.json/);
        const js = await srv.fetch('/docs/assets/swagger-ui-bundle.js', { headers: { 'accept-encoding': 'identity' } });
        assert.equal(js.status, 200);
        assert.match(js.headers.get('content-type') || '', /javascript/);
        assert.ok(js.text.length > 100000, `bundle size ${js.text.length}`);
        assert.match(js.headers.get('cache-control') || '', /max-age=\d+/);
        const css = await srv.fetch('/docs/assets/swagger-ui.css');
        assert.equal(css.status, 200);
        assert.match(css.headers.get('content-type') || '', /text\/css/);
    });

    it('serves the dashboard with an ETag and answers If-None-Match with 304', async () => {
        const onDisk = await readFile(path.join(PULSE_HOME, 'dashboard', 'index.html'), 'utf8');
        const res = await srv.fetch('/', { headers: { 'accept-encoding': 'identity' } });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type') || '', /^text\/html/);
        assert.equal(res.text, onDisk);
        const etag = res.headers.get('etag');
        assert.ok(etag, 'an ETag is sent');
        assert.ok(res.headers.get('cache-control'), 'cache-control is sent');
        const again = await srv.fetch('/', { headers: { 'if-none-match': etag } });
        assert.equal(again.status, 304);
        assert.equal(again.text, '');
        const stale = await srv.fetch('/', { headers: { 'if-none-match': '"not-the-etag"' } });
        assert.equal(stale.status, 200);
        const byName = await srv.fetch('/index.html', { headers: { 'accept-encoding': 'identity' } });
        assert.equal(byName.status, 200);
        assert.equal(byName.text, onDisk);
    });

    it('gzips a large static file when asked, and only then', async () => {
        const file = path.join(PULSE_HOME, 'dashboard', 'node_modules', 'swagger-ui-dist', 'swagger-ui-bundle.js');
        const onDisk = await readFile(file);
        const url = srv.url + 'docs/assets/swagger-ui-bundle.js';
        const gz = await rawRequest(url, { headers: { 'accept-encoding': 'gzip' } });
        assert.equal(gz.status, 200);
        assert.equal(gz.headers['content-encoding'], 'gzip');
        assert.ok(gz.body.length < onDisk.length / 2, `compressed ${gz.body.length} of ${onDisk.length}`);
        assert.ok(gunzipSync(gz.body).equals(onDisk), 'gunzipped body equals the file');
        assert.match(gz.headers.vary || '', /accept-encoding/i);
        const plain = await rawRequest(url, { headers: { 'accept-encoding': 'identity' } });
        assert.equal(plain.status, 200);
        assert.equal(plain.headers['content-encoding'], undefined);
        assert.ok(plain.body.equals(onDisk));
    });

    it('answers a static miss with a problem+json 404', async () => {
        for (const p of ['/docs/assets/no-such-file.js', '/no-such-page.html', '/widget/no-such.js']) {
            const res = await srv.fetch(p);
            assertProblem(assert, res, 404, 'not_found');
        }
    });

    it('never serves files outside the static folders', async () => {
        for (const p of ['/docs/assets/../../../../etc/passwd', '/..%2f..%2f..%2f..%2fetc%2fpasswd',
            '/docs/assets/..%2f..%2f..%2fCMakeLists.txt', '/widget/../CMakeLists.txt', '/%2e%2e/%2e%2e/etc/passwd']) {
            const res = await rawHttp(srv.port, `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
            assert.ok(res.status === 404 || res.status === 400, `${p}: ${res.raw.slice(0, 300)}`);
            assert.ok(!res.body.includes('root:'), `${p} leaks /etc/passwd`);
            assert.ok(!res.body.includes('cmake_minimum_required'), `${p} leaks the source tree`);
        }
    });

    it('gives static answers a request id', async () => {
        const id = `it-static-id-${Date.now()}`;
        const res = await srv.fetch('/', { headers: { 'x-request-id': id } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('x-request-id'), id, 'every response carries x-request-id (GET / from dashboard/)');
    });

    it('writes access log lines for static answers', async () => {
        const id = `it-static-log-${Date.now()}`;
        const res = await srv.fetch('/docs/assets/swagger-ui.css', { headers: { 'x-request-id': id } });
        assert.equal(res.status, 200);
        const mark = Date.now();
        await srv.fetch('/health', { headers: { 'x-request-id': `${id}-api` } }); // flushed in the same batch
        await srv.waitForLog((l) => l.event === 'request' && l.id === `${id}-api`, 2000);
        const line = srv.logs.find((l) => l.event === 'request' && l.path === '/docs/assets/swagger-ui.css');
        assert.ok(line, `one access line per request, static files included (none for GET /docs/assets/swagger-ui.css; checked ${Date.now() - mark} ms)`);
        assert.equal(line.status, 200);
        assert.equal(line.method, 'GET');
    });

    it('writes one access log line per request', async () => {
        const stamp = Date.now();
        const cases = [
            { id: `it-log-a-${stamp}`, method: 'GET', path: '/health', status: 200 },
            { id: `it-log-b-${stamp}`, method: 'GET', path: '/api/no/such', status: 404 },
            { id: `it-log-c-${stamp}`, method: 'POST', path: '/api/test/echo/3', status: 201, body: '{"name":"log"}' },
            { id: `it-log-d-${stamp}`, method: 'GET', path: '/api/test/protected', status: 401, query: '?token=sekrit' },
        ];
        for (const c of cases) {
            const res = await srv.fetch(c.path + (c.query || ''), {
                method: c.method,
                headers: { 'x-request-id': c.id, ...(c.body ? { 'content-type': 'application/json' } : {}) },
                body: c.body,
            });
            assert.equal(res.status, c.status, `${c.method} ${c.path}: ${res.text}`);
        }
        // access lines are batched (every 200 ms)
        await waitFor(() => cases.every((c) => srv.logs.some((l) => l.event === 'request' && l.id === c.id)), 3000,
            { what: 'access log lines' }).catch((e) => { throw new Error(`${e.message}\n${srv.stderr.slice(-3000)}`); });
        for (const c of cases) {
            const lines = srv.logs.filter((l) => l.event === 'request' && l.id === c.id);
            assert.equal(lines.length, 1, `exactly one access line for ${c.id}`);
            const l = lines[0];
            assert.equal(l.method, c.method);
            assert.equal(l.path, c.path, 'the path, without the query string');
            assert.equal(l.status, c.status);
            assert.equal(typeof l.ms, 'number');
            assert.ok(l.ms >= 0);
            assert.equal(typeof l.bytes, 'number');
            assert.equal(typeof l.ts, 'string');
            assert.ok(!JSON.stringify(l).includes('sekrit'), 'the query string is never logged');
        }
    });
});
