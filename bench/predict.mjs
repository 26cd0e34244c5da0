// POST /api/v1/predict benchmark: a private PostgreSQL and `pulse serve` (one loop thread) through the
// integration harness, an e-commerce tenant (pulse gen, 400 customers) with a behavioural churn model
// and a CLV model, then wrk posting one stored customer's features (3 runs, the median) and the
// server's CPU time per request. Figures, never a pass/fail. PULSE_BIN / PULSE_HOME pick the build
// (compare two builds by running this twice); BENCH_SECONDS (default 10), BENCH_CONNECTIONS (8).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createContext, FIXTURES, tenantHelpers, sleep } from '../tests/integration/harness.mjs';

const secs = Number(process.env.BENCH_SECONDS || 10);
const conns = Number(process.env.BENCH_CONNECTIONS || 8);

const cpuTicks = (pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
};

const ctx = await createContext('pulse-bench-predict-');
try {
    await ctx.startDb();
    await ctx.migrate();
    const srv = await ctx.startServer({ threads: 1, env: { PULSE_APP_EXTRA: path.join(FIXTURES, 'token_routes.lua'), PULSE_JOB_THREADS: '1',
        PULSE_LIMIT_API: '1000000000/1' } }); // the per-identity API limit would answer 429s
    const t = await tenantHelpers(ctx, () => srv, { industry: 'ecommerce' }).makeTenant('Bench Predict', 'owner@bench-predict.test');
    const call = (method, p, body) => srv.fetch(p, {
        method, headers: { authorization: `Bearer ${t.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
    });
    const done = async (id) => {
        for (;;) {
            const j = (await call('GET', `/api/v1/jobs/${id}`)).json;
            if (['done', 'failed', 'cancelled'].includes(j.state)) return j;
            await sleep(50);
        }
    };
    const dir = path.join(ctx.varDir, 'gen');
    await ctx.pulse(['gen', '--industry', 'ecommerce', '--customers', '400', '--seed', '5', '--out', dir]);
    const form = new FormData();
    form.append('file', new Blob([readFileSync(path.join(dir, 'transactions.csv'))]), 'transactions.csv');
    const up = await srv.fetch('/api/v1/imports', { method: 'POST', headers: { authorization: `Bearer ${t.token}` }, body: form });
    await done(up.json.job_id);
    await ctx.pulse(['segment', '--tenant', t.tenant, '--k', '3']);
    for (const body of [{ label: 'behavioural' }, { kind: 'clv' }]) {
        const j = await done((await call('POST', '/api/v1/ml/train', body)).json.job_id);
        console.log(`trained ${body.kind || 'churn'}: ${j.state} ${j.result ? j.result.algorithm : JSON.stringify(j.error)}`);
    }
    const [line] = await ctx.sql(`SELECT array_to_json(r.feature_names) || '|' || array_to_json(a.features)
        FROM customer_analytics a JOIN analytics_runs r ON r.id = a.run_id WHERE a.tenant_id = '${t.tenant}' ORDER BY a.customer_id LIMIT 1`);
    const [names, vals] = line.split('|').map((s) => JSON.parse(s));
    const body = JSON.stringify({ features: Object.fromEntries(names.map((n, i) => [n, vals[i]])) });
    const sample = await call('POST', '/api/v1/predict', JSON.parse(body));
    console.log(`one answer (${sample.status}): ${sample.text.slice(0, 300)}`);
    const script = path.join(ctx.varDir, 'predict.lua');
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\n` +
        `wrk.headers["content-type"] = "application/json"\nwrk.headers["authorization"] = "Bearer ${t.token}"\n`);
    const url = `http://127.0.0.1:${srv.port}/api/v1/predict`;
    const runs = [];
    for (let k = 0; k < 3; k++) {
        const c0 = cpuTicks(srv.pid);
        // asynchronous, so that this process keeps draining the server's log pipe meanwhile
        const { stdout: out } = await promisify(execFile)('wrk', ['-t1', `-c${conns}`, `-d${secs}s`, '--latency', '-s', script, url]);
        const cpu = (cpuTicks(srv.pid) - c0) / 100;
        if (process.env.BENCH_VERBOSE) console.log(out);
        const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)[1]);
        const non2xx = out.match(/Non-2xx or 3xx responses: (\d+)/);
        const p50 = out.match(/^\s+50%\s+(\S+)/m)[1];
        runs.push({ rps, p50, cpuPerReq: (cpu / (rps * secs)) * 1e6, non2xx: non2xx ? Number(non2xx[1]) : 0 });
        console.log(`run ${k + 1}: ${rps} req/s, p50 ${p50}, server CPU ${runs[k].cpuPerReq.toFixed(0)} us/request` +
            (runs[k].non2xx ? `, ${runs[k].non2xx} non-2xx` : ''));
    }
    runs.sort((a, b) => a.rps - b.rps);
    console.log(`median: ${runs[1].rps} req/s (wrk -t1 -c${conns} -d${secs}s, 1 loop thread, shared machine), ` +
        `server CPU ${runs[1].cpuPerReq.toFixed(0)} us/request`);
} finally {
    await ctx.destroy();
}
