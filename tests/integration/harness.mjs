// Integration test harness: a private PostgreSQL cluster per test file (through `pulse db`), real
// `pulse serve` processes, and bounded HTTP helpers. Everything has a time limit: a broken server
// must fail a test, never hang the run. Node 18+ built-ins only (fetch, node:test, child_process).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import net from 'node:net';

const here = path.dirname(fileURLToPath(import.meta.url));

export const REPO = path.resolve(here, '..', '..');
export const PULSE_BIN = process.env.PULSE_BIN || path.join(REPO, 'build', 'pulse');
export const PULSE_HOME = process.env.PULSE_HOME || REPO;
export const FIXTURES = path.join(here, 'fixtures');
export const TEST_ROUTES = path.join(FIXTURES, 'test_routes.lua');

// The environment children inherit: the caller's, minus every PULSE_* setting (a developer's
// PULSE_PORT, PULSE_DATABASE_URL or PULSE_ENV must not leak into the suites); each suite sets its own.
const INHERITED_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PULSE_')));

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// A timer that does not keep the process alive (for races against an exit).
const idleTimer = (ms, value) => new Promise((resolve) => setTimeout(resolve, ms, value).unref());

// Every server this process started, so none outlives the test file (even on a crash).
const live = new Set();
process.on('exit', () => {
    for (const child of live) {
        try { child.kill('SIGKILL'); } catch { /* already gone */ }
    }
});

// Polls fn until it returns a truthy value (returned) or timeoutMs passes (throws, with the last
// error or value in the message).
export async function waitFor(fn, timeoutMs = 5000, { interval = 50, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
            last = v;
        } catch (err) {
            last = err;
        }
        if (Date.now() >= deadline) {
            const detail = last instanceof Error ? last.message : JSON.stringify(last);
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
        }
        await sleep(interval);
    }
}

// Runs a pulse CLI command; resolves {code, signal, stdout, stderr}. Killed after timeoutMs.
export async function pulse(args, env = {}, { timeoutMs = 60000 } = {}) {
    for (let attempt = 1; ; attempt++) {
        try {
            return await run(PULSE_BIN, args, { env: { ...INHERITED_ENV, ...env }, timeoutMs });
        } catch (err) {
            if (!SPAWN_RETRY.has(err.code) || attempt >= 10) throw err;
            await sleep(500); // the binary is being rebuilt
        }
    }
}

export function run(cmd, args, { env = process.env, timeoutMs = 60000, cwd } = {}) {
    return new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '', stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
        child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
        const timer = setTimeout(() => {
            child.kill('SIGKILL');
            reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        child.on('error', (err) => { clearTimeout(timer); reject(err); });
        child.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

// One private cluster per test file: a fresh PULSE_VAR_DIR. env() gives the variables every
// pulse command of the file should see; destroy() stops and deletes the cluster and the folder.
export async function createContext(prefix = 'pulse-it-') {
    const varDir = await mkdtemp(path.join(tmpdir(), prefix));
    const baseEnv = {
        PULSE_HOME,
        PULSE_VAR_DIR: varDir,
        PULSE_PG_FAST: process.env.PULSE_PG_FAST || '1',
        PULSE_BIND: '127.0.0.1',
        PULSE_LOG_LEVEL: 'info',
    };
    const ctx = {
        varDir,
        env: (extra = {}) => ({ ...baseEnv, ...extra }),
        pulse: (args, extra = {}, opts) => pulse(args, { ...baseEnv, ...extra }, opts),
        servers: new Set(),
        async startDb() {
            const r = await ctx.pulse(['db', 'start'], {}, { timeoutMs: 60000 });
            if (r.code !== 0) throw new Error(`pulse db start failed (${r.code}): ${r.stderr}`);
            return r;
        },
        // Migrates, then creates the tables of the test routes (fixtures/schema.sql) as the
        // migrating role: the server itself acts as pulse_app, which may not create tables.
        async migrate(extra = {}) {
            const r = await ctx.pulse(['migrate'], extra, { timeoutMs: 60000 });
            if (r.code !== 0) throw new Error(`pulse migrate failed (${r.code}): ${r.stdout}${r.stderr}`);
            await ctx.sql(await readFile(path.join(FIXTURES, 'schema.sql'), 'utf8'));
            return r;
        },
        // Runs SQL as the migrating (owner) role with psql; returns the rows' text lines.
        async sql(text) {
            const url = await ctx.pulse(['db', 'url'], {}, { timeoutMs: 60000 });
            if (url.code !== 0) throw new Error(`pulse db url failed: ${url.stderr}`);
            const r = await run('psql', [url.stdout.trim(), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', text],
                { timeoutMs: 30000 });
            if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
            return r.stdout.split('\n').filter((l) => l !== '');
        },
        async startServer(opts = {}) {
            const s = await startServer({ ...opts, env: { ...baseEnv, ...(opts.env || {}) } });
            ctx.servers.add(s);
            return s;
        },
        // Kills the servers, stops and deletes the cluster, then the folder. The binary may be
        // briefly missing (a rebuild in progress: ETXTBSY, EACCES, ENOENT), so destroy is retried;
        // if it still fails the folder is kept, since it records where the running cluster lives.
        async destroy() {
            for (const s of ctx.servers) await s.kill();
            let r;
            for (let attempt = 0; attempt < 10; attempt++) {
                r = await pulse(['db', 'destroy'], baseEnv, { timeoutMs: 60000 }).catch((e) => ({ code: -1, stderr: e.message }));
                if (r.code === 0) break;
                await sleep(1000);
            }
            if (r.code !== 0) {
                if (!existsSync(path.join(varDir, 'pg'))) { // no cluster was ever made here
                    await rm(varDir, { recursive: true, force: true });
                    throw new Error(`pulse db destroy failed (${r.code}): ${r.stderr}`);
                }
                throw new Error(`pulse db destroy failed (${r.code}): ${r.stderr}\n` +
                    `kept ${varDir}: run 'PULSE_VAR_DIR=${varDir} pulse db destroy' to remove the cluster`);
            }
            await rm(varDir, { recursive: true, force: true });
        },
    };
    return ctx;
}

// Spawns `pulse serve --port 0` and waits for its "serving on" line. The returned object has the
// base url, the parsed stderr log lines (logs), helpers to wait for log lines, and stop(signal).
export async function startServer(opts = {}) {
    for (let attempt = 1; ; attempt++) {
        try {
            return await startServerOnce(opts);
        } catch (err) {
            if (!SPAWN_RETRY.has(err.spawnCode) || attempt >= 10) throw err;
            await sleep(500); // the binary is being rebuilt
        }
    }
}

// spawn errors that mean "the binary is being replaced right now"
const SPAWN_RETRY = new Set(['EACCES', 'ETXTBSY', 'ENOENT']);

function startServerOnce({ env = {}, args = [], threads = 2, timeoutMs = 15000, command = 'serve' } = {}) {
    const fullArgs = [command, '--port', '0', '--threads', String(threads), ...args];
    const child = spawn(PULSE_BIN, fullArgs, { env: { ...INHERITED_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    const server = {
        child,
        pid: child.pid,
        logs: [],
        stderr: '',
        stdout: '',
        exitCode: undefined,
        exitSignal: undefined,
    };
    const exited = new Promise((resolve) => {
        child.on('exit', (code, signal) => {
            live.delete(child);
            server.exitCode = code;
            server.exitSignal = signal;
            resolve({ code, signal });
        });
    });
    server.exited = exited;
    let partial = '';
    child.stderr.setEncoding('utf8').on('data', (d) => {
        server.stderr += d;
        partial += d;
        let nl;
        while ((nl = partial.indexOf('\n')) >= 0) {
            const line = partial.slice(0, nl);
            partial = partial.slice(nl + 1);
            if (!line.trim()) continue;
            try {
                server.logs.push(JSON.parse(line));
            } catch {
                server.logs.push({ event: '(not json)', raw: line });
            }
        }
    });
    server.alive = () => server.exitCode === undefined;
    // For assertion messages: how the process ended, and its last log lines.
    server.exitReport = () => `pulse serve ${server.alive() ? 'is still running' :
        `exited with code ${server.exitCode}, signal ${server.exitSignal}`}\nstderr tail:\n${server.stderr.slice(-3000)}`;
    // Waits for a log line matching pred (among lines after index `from`); returns it.
    server.waitForLog = (pred, ms = 5000, from = 0) =>
        waitFor(() => server.logs.slice(from).find(pred), ms, { what: 'a matching log line' }).catch((err) => {
            throw new Error(`${err.message}\nlog so far:\n${server.stderr.slice(-4000)}`);
        });
    // Sends `signal` and waits for the exit; resolves the exit code (null when killed by a signal).
    server.stop = async (signal = 'SIGTERM', ms = 20000) => {
        if (!server.alive()) return server.exitCode;
        child.kill(signal);
        const r = await Promise.race([exited, idleTimer(ms, 'timeout')]);
        if (r === 'timeout') {
            child.kill('SIGKILL');
            await exited;
            throw new Error(`pulse serve did not exit within ${ms} ms after ${signal}\n${server.stderr.slice(-4000)}`);
        }
        return r.code;
    };
    // Waits for the exit (after a signal sent elsewhere); resolves the exit code.
    server.waitExit = async (ms = 20000) => {
        const r = await Promise.race([exited, idleTimer(ms, 'timeout')]);
        if (r === 'timeout') throw new Error(`pulse serve did not exit within ${ms} ms\n${server.stderr.slice(-4000)}`);
        return r.code;
    };
    server.kill = async () => {
        if (!server.alive()) return;
        child.kill('SIGKILL');
        await Promise.race([exited, idleTimer(5000)]);
    };
    // http(path, init): fetch against this server with a time limit.
    // A network failure says what became of the server (crash, exit) and shows its last log lines.
    server.fetch = (p, init = {}) => request(server.url + p.replace(/^\//, ''), init).catch(async (err) => {
        await idleTimer(100); // let an exit be noticed
        const cause = err.cause ? ` (${err.cause.code || err.cause.message})` : '';
        const state = server.alive() ? 'still running' : `exited: code ${server.exitCode}, signal ${server.exitSignal}`;
        throw new Error(`${init.method || 'GET'} ${p}: ${err.message}${cause}; pulse serve ${state}\n` +
            `stderr tail:\n${server.stderr.slice(-3000)}`, { cause: err });
    });

    return new Promise((resolve, reject) => {
        let settled = false;
        const fail = (msg, spawnCode) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            child.kill('SIGKILL');
            const err = new Error(`${msg}\nargs: ${fullArgs.join(' ')}\nstdout: ${server.stdout}\nstderr so far:\n${server.stderr}`);
            err.spawnCode = spawnCode;
            reject(err);
        };
        const timer = setTimeout(() => fail(`pulse serve did not print "serving on" within ${timeoutMs} ms`), timeoutMs);
        child.on('error', (err) => { live.delete(child); fail(`cannot run ${PULSE_BIN}: ${err.message}`, err.code); });
        exited.then(({ code, signal }) => fail(`pulse serve exited (code ${code}, signal ${signal}) before serving`));
        child.stdout.setEncoding('utf8').on('data', (d) => {
            server.stdout += d;
            const m = server.stdout.match(/pulse: serving on (http:\/\/[^\s]+:(\d+)\/) \((\d+) threads?, pid (\d+)\)/);
            if (m && !settled) {
                settled = true;
                clearTimeout(timer);
                server.port = Number(m[2]);
                server.url = `http://127.0.0.1:${server.port}/`;
                server.printedUrl = m[1];
                server.threads = Number(m[3]);
                server.printedPid = Number(m[4]);
                resolve(server);
            }
        });
    });
}

// fetch with a time limit; resolves {status, headers, text, json, ms}. json is parsed when the
// content type says JSON (or problem+json).
export async function request(url, init = {}) {
    const { timeoutMs = 10000, json: jsonBody, ...rest } = init;
    const opts = { redirect: 'manual', ...rest, signal: AbortSignal.timeout(timeoutMs) };
    if (jsonBody !== undefined) {
        opts.method = opts.method || 'POST';
        opts.headers = { 'content-type': 'application/json', ...(opts.headers || {}) };
        opts.body = JSON.stringify(jsonBody);
    }
    const started = performance.now();
    const res = await fetch(url, opts);
    const text = await res.text();
    const ms = performance.now() - started;
    let json;
    const ct = res.headers.get('content-type') || '';
    if (/json/.test(ct) && text.length > 0) {
        try { json = JSON.parse(text); } catch { json = undefined; }
    }
    return { status: res.status, headers: res.headers, text, json, ms };
}

// A raw HTTP/1.1 request with node:http (no automatic decompression): for gzip, and for
// keep-alive checks with an explicit agent. Resolves {status, headers, body (Buffer), reusedSocket, localPort}.
export function rawRequest(url, { method = 'GET', headers = {}, body, agent, timeoutMs = 10000 } = {}) {
    return new Promise((resolve, reject) => {
        const req = http.request(url, { method, headers, agent, timeout: timeoutMs }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () =>
                resolve({
                    status: res.statusCode,
                    headers: res.headers,
                    body: Buffer.concat(chunks),
                    reusedSocket: req.reusedSocket,
                    localPort: req.socket && req.socket.localPort,
                }));
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
        req.on('error', reject);
        if (body !== undefined) req.write(body);
        req.end();
    });
}

// Tries a TCP connection: resolves 'connected' or the error code (e.g. 'ECONNREFUSED').
export function tryConnect(port, host = '127.0.0.1', timeoutMs = 2000) {
    return new Promise((resolve) => {
        const sock = net.connect({ port, host });
        const timer = setTimeout(() => { sock.destroy(); resolve('timeout'); }, timeoutMs);
        sock.on('connect', () => { clearTimeout(timer); sock.destroy(); resolve('connected'); });
        sock.on('error', (err) => { clearTimeout(timer); resolve(err.code || err.message); });
    });
}

// The shape every error answer has (application/problem+json with code and request_id).
export function assertProblem(assert, res, status, code) {
    const where = `${status} ${code}: got ${res.status} ${res.headers.get('content-type')} ${res.text.slice(0, 500)}`;
    assert.equal(res.status, status, where);
    assert.match(res.headers.get('content-type') || '', /^application\/problem\+json/, where);
    assert.ok(res.json, `problem body is JSON: ${where}`);
    assert.equal(res.json.status, status, where);
    assert.equal(res.json.code, code, where);
    assert.equal(typeof res.json.title, 'string', where);
    assert.equal(typeof res.json.type, 'string', where);
    assert.equal(typeof res.json.detail, 'string', where);
    assert.equal(res.json.request_id, res.headers.get('x-request-id'), `request_id matches x-request-id: ${where}`);
    return res.json;
}

// Writes `text` (a whole or partial HTTP/1.1 request) on a fresh TCP connection and collects what
// the server sends until it closes, or timeoutMs. Resolves {raw, status, headers, body}; status is
// 0 when nothing parseable arrived. For requests fetch cannot make (huge Content-Length, raw paths).
export function rawHttp(port, text, { timeoutMs = 3000, host = '127.0.0.1' } = {}) {
    return new Promise((resolve) => {
        const sock = net.connect({ port, host });
        let raw = '';
        const done = () => {
            clearTimeout(timer);
            sock.destroy();
            const head = raw.split('\r\n\r\n', 1)[0];
            const lines = head.split('\r\n');
            const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] || '');
            const headers = {};
            for (const l of lines.slice(1)) {
                const i = l.indexOf(':');
                if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
            }
            const body = raw.includes('\r\n\r\n') ? raw.slice(raw.indexOf('\r\n\r\n') + 4) : '';
            resolve({ raw, status: m ? Number(m[1]) : 0, headers, body });
        };
        const timer = setTimeout(done, timeoutMs);
        sock.setEncoding('utf8');
        sock.on('connect', () => sock.write(text));
        sock.on('data', (d) => {
            raw += d;
            // one complete response with a Content-Length is enough
            const at = raw.indexOf('\r\n\r\n');
            const cl = /\r\ncontent-length:\s*(\d+)/i.exec(raw.slice(0, at + 2));
            if (at >= 0 && cl && Buffer.byteLength(raw.slice(at + 4)) >= Number(cl[1])) done();
        });
        sock.on('error', () => {});
        sock.on('close', done);
    });
}

// Helpers for suites that act as users of tenants without going through sign-in: tenants and
// owners are made directly in the database (pulse_register, as the migrating role) and access
// tokens minted by the test-only route of fixtures/token_routes.lua, which the server must load
// (PULSE_APP_EXTRA). getServer returns the running server (it may be started later).
export function tenantHelpers(ctx, getServer, { industry = 'ecommerce' } = {}) {
    const call = (token, method, p, body) => getServer().fetch(p, {
        method,
        headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const mint = async (sub, tenant, role) => {
        const r = await getServer().fetch('/api/test/token', { json: { sub: String(sub), tenant, role } });
        if (r.status !== 200) throw new Error(`minting a token failed: ${r.status} ${r.text}`);
        return r.json.access_token;
    };
    // -> { tenant, userId, token } for a new organization and its owner (who has a password hash,
    // so counts as an owner, but one nobody can sign in with)
    const makeTenant = async (org, email) => {
        const [line] = await ctx.sql(
            `SELECT tenant_id || '|' || user_id FROM pulse_register('${org}', '${industry}', '${email}', 'Owner', 'unusable-hash')`);
        const [tenant, userId] = line.split('|');
        return { tenant, userId: Number(userId), token: await mint(userId, tenant, 'owner') };
    };
    // -> { tenant, userId, token } for another user of tenant t
    const makeUser = async (t, email, role) => {
        const [id] = await ctx.sql(`INSERT INTO users (tenant_id, email, name, role, password_hash)
            VALUES ('${t.tenant}', '${email}', 'U', '${role}', 'unusable-hash') RETURNING id`);
        return { tenant: t.tenant, userId: Number(id), token: await mint(id, t.tenant, role) };
    };
    return { call, mint, makeTenant, makeUser };
}
