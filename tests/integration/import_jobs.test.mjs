// Uploads as jobs: POST /api/v1/imports and /api/v1/customers/bulk store the file and queue a job;
// a worker (a second `pulse serve` here, so the tests can stop it) loads the rows into
// PostgreSQL, all or nothing; the jobs API and its Server-Sent Events show progress; the report
// lists what was cleaned. Every layout of the preview suite, re-uploads and overlaps, the bad
// inputs, cancelling, a worker that died, and `pulse import` on the command line. Fixtures are
// made here; nothing depends on ../shared/data.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { createContext, FIXTURES, assertProblem, tenantHelpers } from './harness.mjs';

const TOKEN_ROUTES = path.join(FIXTURES, 'token_routes.lua');

const PULSE_TX = [
    'CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity',
    'C001,2024-01-15,49.99,Books,1',
    'C002,2024-01-16,120.00,Electronics,2',
    'C001,2024-02-03,15.50,Books,3',
    'C003,2024-02-20,7.25,Grocery,1',
].join('\n') + '\n';

const RETAIL = [
    'InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country',
    '536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom',
    '536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom',
    '536366,22633,"HAND WARMER, UNION JACK",6,12/13/2010 8:28,1.85,17851,France',
    'C536379,D,Discount,-1,12/14/2010 9:41,27.50,14527,United Kingdom',
].join('\r\n') + '\r\n';

const CDNOW = [
    ' 00001 19970101  1   11.77',
    ' 00002 19970112  1   12.00',
    ' 00002 19970112  5   77.00',
    ' 00003 19970102  2   20.76',
].join('\n') + '\n';

const SEMICOLON = [
    'CustomerID;TransactionDate;TransactionAmount;ProductCategory',
    'K-100;31.01.2024;12,50;Bücher',
    'K-101;15.02.2024;1.234,99;Technik',
    'K-102;13.03.2024;99,00;Haushalt',
].join('\n') + '\n';

const AMBIGUOUS = [
    'customer_id,invoice_date,invoice_id,amount',
    '1,01/02/2024,A1,10.00',
    '2,03/04/2024,A2,20.00',
    '3,05/06/2024,A3,30.00',
].join('\n') + '\n';

const TELCO = [
    'customerID,gender,SeniorCitizen,tenure,Contract,MonthlyCharges,Churn',
    '7590-VHVEG,Female,0,1,Month-to-month,29.85,No',
    '5575-GNVDE,Male,0,34,One year,56.95,No',
    '3668-QPYBK,Male,0,2,Month-to-month,53.85,Yes',
].join('\n') + '\n';

const EVENTS = [
    'CustomerID,EventDate,EventType,RevenueImpact',
    'S-1,2024-03-01,data_usage,0.00',
    'S-2,2024-03-01,complaint,-5.00',
    'S-1,2024-03-02,payment,29.99',
].join('\n') + '\n';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('imports as jobs', { timeout: 240000 }, () => {
    let ctx, api, worker, shop, analyst, viewer, other, telecom;

    const startWorker = () => ctx.startServer({ env: { PULSE_JOB_THREADS: '1', PULSE_JOB_STALE_SECONDS: '2' }, threads: 1 });

    const upload = (file, fields = {}, { token = analyst.token, route = '/api/v1/imports', filename = 'upload.csv' } = {}) => {
        const form = new FormData();
        if (file !== null) form.append('file', new Blob([file], { type: 'text/csv' }), filename);
        for (const [k, v] of Object.entries(fields)) form.append(k, v);
        return api.fetch(route, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
    };
    const accepted = (r) => {
        assert.equal(r.status, 202, r.text.slice(0, 1500));
        assert.match(r.json.job_id, /^[0-9a-f-]{36}$/);
        assert.equal(r.headers.get('location'), `/api/v1/jobs/${r.json.job_id}`);
        return r.json;
    };
    const job = async (id, token = analyst.token) => (await api.fetch(`/api/v1/jobs/${id}`, { headers: { authorization: `Bearer ${token}` } }));
    const finished = async (id, token = analyst.token) => {
        for (let i = 0; i < 1200; i++) {
            const r = await job(id, token);
            assert.equal(r.status, 200, r.text);
            if (['done', 'failed', 'cancelled'].includes(r.json.state)) return r.json;
            await sleep(50);
        }
        throw new Error(`job ${id} did not finish`);
    };
    const report = async (id, token = analyst.token) => {
        const r = await api.fetch(`/api/v1/imports/${id}/report`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 200, r.text);
        return r.json;
    };
    const issue = (rep, code) => rep.issues.find((i) => i.code === code);
    const count = async (table, tenant, where = 'true') =>
        Number((await ctx.sql(`SELECT count(*) FROM ${table} WHERE tenant_id = '${tenant}' AND ${where}`))[0]);

    before(async () => {
        ctx = await createContext('pulse-it-jobs-');
        await ctx.startDb();
        await ctx.migrate();
        // the API server runs no jobs: the worker below does, and the tests stop it at will
        api = await ctx.startServer({ env: { PULSE_APP_EXTRA: TOKEN_ROUTES, PULSE_JOB_THREADS: '0', PULSE_MAX_UPLOAD_BYTES: String(48 << 20) } });
        worker = await startWorker();
        const helpers = tenantHelpers(ctx, () => api, { industry: 'ecommerce' });
        shop = await helpers.makeTenant('Jobs Shop', 'owner@jobs-shop.test');
        analyst = await helpers.makeUser(shop, 'analyst@jobs-shop.test', 'analyst');
        viewer = await helpers.makeUser(shop, 'viewer@jobs-shop.test', 'viewer');
        other = await helpers.makeTenant('Other Shop', 'owner@other-shop.test');
        const tel = tenantHelpers(ctx, () => api, { industry: 'telecom' });
        telecom = await tel.makeTenant('Jobs Telco', 'owner@jobs-telco.test');
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    it('imports Pulse transactions: 202 with a job, done, rows and customers stored, report and job readable', async () => {
        const a = accepted(await upload(PULSE_TX));
        assert.equal(a.kind, 'transactions');
        assert.equal(a.mapping.customer_id, 'CustomerID');
        const j = await finished(a.job_id);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.equal(j.progress, 100);
        assert.equal(j.rows_read, 4);
        assert.equal(j.rows_accepted, 4);
        assert.equal(j.import_id, a.job_id);
        assert.equal(await count('transactions', shop.tenant), 4);
        assert.deepEqual(await ctx.sql(`SELECT customer_ref || ' ' || occurred_at::date || ' ' || amount || ' ' || quantity
            FROM transactions WHERE tenant_id = '${shop.tenant}' ORDER BY occurred_at`),
        ['C001 2024-01-15 49.9900 1', 'C002 2024-01-16 120.0000 2', 'C001 2024-02-03 15.5000 3', 'C003 2024-02-20 7.2500 1']);
        assert.equal(await count('customers', shop.tenant, "external_id IN ('C001','C002','C003')"), 3);
        const rep = await report(a.job_id);
        assert.equal(rep.rows_read, 4);
        assert.equal(rep.rows_rejected, 0);
        assert.ok(Array.isArray(rep.issues));
        const imp = await api.fetch(`/api/v1/imports/${a.job_id}`, { headers: { authorization: `Bearer ${viewer.token}` } });
        assert.equal(imp.status, 200);
        assert.equal(imp.json.state, 'done');
        assert.equal(imp.json.kind, 'transactions');
        assert.match(imp.json.content_hash, /^[0-9a-f]{64}$/);
        const list = await api.fetch('/api/v1/jobs?state=done', { headers: { authorization: `Bearer ${viewer.token}` } });
        assert.ok(list.json.items.some((x) => x.id === a.job_id));
        const imports = await api.fetch('/api/v1/imports?kind=transactions&limit=5', { headers: { authorization: `Bearer ${viewer.token}` } });
        assert.equal(imports.status, 200, imports.text);
        assert.equal(imports.json.items[0].id, a.job_id);
        assert.equal(imports.json.total, 1);
    });

    it('adds nothing when the same file comes again, and only the new records of an overlapping file', async () => {
        const before = await count('transactions', shop.tenant);
        const again = await finished(accepted(await upload(PULSE_TX)).job_id);
        assert.equal(again.state, 'done');
        assert.equal(await count('transactions', shop.tenant), before, 'the same file twice does not double anything');
        const overlap = PULSE_TX.split('\n').slice(0, 3).join('\n') + '\nC004,2024-03-01,10.00,Toys,1\n';
        const j = await finished(accepted(await upload(overlap)).job_id);
        assert.equal(j.state, 'done');
        assert.equal(await count('transactions', shop.tenant), before + 1, 'only the new record is added');
        const rep = await report(j.id);
        assert.equal(rep.rows_existing, 2, JSON.stringify(rep));
    });

    it('reads the retail export: amount = quantity × price, C-invoices kept as negative returns and counted', async () => {
        const t = await tenantHelpers(ctx, () => api).makeTenant('Retail Shop', 'owner@retail.test');
        const j = await finished(accepted(await upload(RETAIL, {}, { token: t.token })).job_id, t.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        const rows = await ctx.sql(`SELECT customer_ref || ' ' || amount || ' ' || is_return FROM transactions
            WHERE tenant_id = '${t.tenant}' ORDER BY occurred_at, amount`);
        assert.deepEqual(rows, ['17850 15.3000 false', '17850 20.3400 false', '17851 11.1000 false', '14527 -27.5000 true']);
        const rep = await report(j.id, t.token);
        assert.equal(issue(rep, 'returns')?.count, 1, JSON.stringify(rep.issues));
    });

    it('reads CDNOW-like whitespace files, raw body, and ; files with decimal commas and DD.MM.YYYY dates', async () => {
        const t = await tenantHelpers(ctx, () => api).makeTenant('Cd Shop', 'owner@cd.test');
        const r = await api.fetch('/api/v1/customers/bulk', {
            method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'text/plain' }, body: CDNOW,
        });
        const j = await finished(accepted(r).job_id, t.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.equal(await count('transactions', t.tenant), 4);
        assert.equal((await ctx.sql(`SELECT min(occurred_at)::date FROM transactions WHERE tenant_id = '${t.tenant}'`))[0], '1997-01-01');
        const s = await finished(accepted(await upload(SEMICOLON, {}, { token: t.token })).job_id, t.token);
        assert.equal(s.state, 'done', JSON.stringify(s));
        assert.deepEqual(await ctx.sql(`SELECT amount FROM transactions WHERE tenant_id = '${t.tenant}' AND customer_ref LIKE 'K-%'
            ORDER BY occurred_at`), ['12.5000', '1234.9900', '99.0000']);
    });

    it('asks about ambiguous dates (422 with the options) and imports with the answer', async () => {
        const p = assertProblem(assert, await upload(AMBIGUOUS), 422, 'validation_failed');
        const e = p.errors.find((x) => x.code === 'ambiguous_date_format');
        assert.ok(e, JSON.stringify(p.errors));
        assert.equal(e.column, 'invoice_date');
        const t = await tenantHelpers(ctx, () => api).makeTenant('Amb Shop', 'owner@amb.test');
        const j = await finished(accepted(await upload(AMBIGUOUS, { date_formats: JSON.stringify({ invoice_date: e.options[1] }) },
            { token: t.token })).job_id, t.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        const first = (await ctx.sql(`SELECT occurred_at::date FROM transactions WHERE tenant_id = '${t.tenant}' AND customer_ref = '1'`))[0];
        assert.equal(first, e.options[1].startsWith('MM') ? '2024-01-02' : '2024-02-01');
    });

    it('merges a customer attribute file: typed attributes and the churn label', async () => {
        const j = await finished(accepted(await upload(TELCO, {}, { token: telecom.token })).job_id, telecom.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        const rows = await ctx.sql(`SELECT external_id || ' ' || churned || ' ' || (attributes->>'tenure') || ' ' ||
            jsonb_typeof(attributes->'tenure') || ' ' || (attributes->>'Contract') FROM customers
            WHERE tenant_id = '${telecom.tenant}' ORDER BY external_id`);
        assert.deepEqual(rows, ['3668-QPYBK true 2 number Month-to-month', '5575-GNVDE false 34 number One year',
            '7590-VHVEG false 1 number Month-to-month']);
        const list = await api.fetch('/api/v1/customers?churned=true', { headers: { authorization: `Bearer ${telecom.token}` } });
        assert.equal(list.status, 200, list.text);
        assert.deepEqual(list.json.items.map((c) => [c.external_id, c.churned, c.attributes.Contract]),
            [['3668-QPYBK', true, 'Month-to-month']]);
    });

    it('stores telecom events', async () => {
        const j = await finished(accepted(await upload(EVENTS, {}, { token: telecom.token })).job_id, telecom.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.deepEqual(await ctx.sql(`SELECT customer_ref || ' ' || event_type || ' ' || revenue_impact FROM events
            WHERE tenant_id = '${telecom.tenant}' ORDER BY occurred_at, customer_ref`),
        ['S-1 data_usage 0.0000', 'S-2 complaint -5.0000', 'S-1 payment 29.9900']);
    });

    it('refuses the whole upload above the bad-row threshold, and skips and lists bad rows below it', async () => {
        const t = await tenantHelpers(ctx, () => api).makeTenant('Bad Rows', 'owner@bad.test');
        const bad = PULSE_TX + ',2024-03-01,5.00,Toys,1\nC009,not-a-date,5.00,Toys,1\nC010,2024-03-02,lots,Toys,1\n';
        const f = await finished(accepted(await upload(bad, {}, { token: t.token })).job_id, t.token);
        assert.equal(f.state, 'failed');
        assert.equal(f.error.code, 'too_many_bad_rows');
        assert.equal(await count('transactions', t.tenant), 0, 'nothing stored');
        assert.equal(await count('customers', t.tenant), 0, 'no customers either');
        const ok = await finished(accepted(await upload(bad, { max_error_rate: '0.5' }, { token: t.token })).job_id, t.token);
        assert.equal(ok.state, 'done', JSON.stringify(ok));
        assert.equal(ok.rows_rejected, 3);
        assert.equal(await count('transactions', t.tenant), 4);
        const rep = await report(ok.id, t.token);
        assert.deepEqual(issue(rep, 'missing_customer_id').first_lines, [6]);
        assert.ok(rep.issues.some((i) => i.first_lines?.includes(7)), 'the bad date is listed with its line');
        assert.ok(rep.issues.some((i) => i.first_lines?.includes(8)), 'the bad amount is listed with its line');
    });

    it('refuses bad files with a clear 4xx and stores nothing', async () => {
        const t = await tenantHelpers(ctx, () => api).makeTenant('Bad Files', 'owner@badfiles.test');
        const opts = { token: t.token };
        let p = assertProblem(assert, await upload('', {}, opts), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'body.file');
        p = assertProblem(assert, await upload('CustomerID,TransactionDate,TransactionAmount\n', {}, opts), 422, 'validation_failed');
        assert.equal(p.errors[0].code, 'empty_file');
        assertProblem(assert, await upload(Buffer.from([0, 1, 2, 3, 0, 255, 254, 0, 7, 8]), {}, opts), 422, 'not_tabular');
        const wrong = await upload(PULSE_TX, {}, { ...opts, filename: 'data.xlsx' });
        assert.equal(wrong.status, 422, wrong.text);
        assert.match(wrong.json.detail, /xlsx/);
        p = assertProblem(assert, await upload('colour,size\nred,1\nblue,2\n', {}, opts), 422, 'validation_failed');
        assert.ok(p.errors.some((e) => e.code === 'unmapped_field'), JSON.stringify(p.errors));
        p = assertProblem(assert, await upload(PULSE_TX, { kind: 'events' }, opts), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'body.kind');
        const big = Buffer.alloc((48 << 20) + 10, 'a');
        assertProblem(assert, await upload(big, {}, opts), 413, 'body_too_large');
        assertProblem(assert, await upload(PULSE_TX, {}, { token: viewer.token }), 403, 'forbidden');
        assert.equal(await count('jobs', t.tenant), 0, 'no job for a refused file');
        // an unterminated quote: refused, naming the line
        p = assertProblem(assert, await upload(PULSE_TX + 'C005,2024-03-01,1.00,"Toys,1\n', {}, opts), 422, 'malformed');
        assert.equal(p.row, 6);
        // a 10 MB line past the part the checks read: the job fails, says where, stores nothing
        const long = await finished(accepted(await upload(PULSE_TX + 'C005,2024-03-01,' + 'x'.repeat(10 << 20) + ',Toys,1\n', {},
            opts)).job_id, t.token);
        assert.equal(long.state, 'failed', JSON.stringify(long));
        assert.equal(long.error.code, 'malformed');
        assert.match(long.error.message, /line 6/);
        assert.equal(await count('transactions', t.tenant), 0);
        // ragged rows, invalid UTF-8, a future date: rows rejected (counted, lines listed), the rest stored
        const messy = Buffer.concat([Buffer.from(PULSE_TX + 'C006,2024-03-01\n'),
            Buffer.from('C007,2024-03-01,1.00,'), Buffer.from([0xff, 0xfe]), Buffer.from(',1\n'),
            Buffer.from('C008,2099-01-01,1.00,Toys,1\n')]);
        const j = await finished(accepted(await upload(messy, { max_error_rate: '0.5' }, opts)).job_id, t.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.equal(j.rows_rejected, 3);
        const rep = await report(j.id, t.token);
        for (const line of [6, 7, 8]) assert.ok(rep.issues.some((i) => i.first_lines?.includes(line)), `line ${line}: ${JSON.stringify(rep.issues)}`);
        assert.equal(await count('transactions', t.tenant), 4);
    });

    it('keeps tenants apart: another organization sees 404 for the job, its import and its report', async () => {
        const a = accepted(await upload(PULSE_TX));
        await finished(a.job_id);
        for (const p of [`/api/v1/jobs/${a.job_id}`, `/api/v1/imports/${a.job_id}`, `/api/v1/imports/${a.job_id}/report`,
            `/api/v1/jobs/${a.job_id}/events`]) {
            assertProblem(assert, await api.fetch(p, { headers: { authorization: `Bearer ${other.token}` } }), 404, 'not_found');
        }
        const del = await api.fetch(`/api/v1/jobs/${a.job_id}`, { method: 'DELETE', headers: { authorization: `Bearer ${other.token}` } });
        assertProblem(assert, del, 404, 'not_found');
    });

    it('streams progress as Server-Sent Events and ends with the final state', async () => {
        const rows = ['CustomerID,TransactionDate,TransactionAmount,ProductCategory,Quantity'];
        for (let i = 0; i < 200000; i++) rows.push(`S${i % 5000},2024-01-${String(1 + (i % 28)).padStart(2, '0')},${(i % 997) / 10},Cat${i % 7},${1 + (i % 3)}`);
        const a = accepted(await upload(rows.join('\n') + '\n'));
        const res = await fetch(`${api.url}/api/v1/jobs/${a.job_id}/events`, { headers: { authorization: `Bearer ${analyst.token}` } });
        assert.equal(res.status, 200);
        assert.match(res.headers.get('content-type'), /^text\/event-stream/);
        const text = await res.text();
        const events = text.split('\n\n').filter((b) => b.includes('data:')).map((b) => ({
            event: (b.match(/^event: (.*)$/m) || [])[1], data: JSON.parse(b.match(/^data: (.*)$/m)[1]),
        }));
        const last = events[events.length - 1];
        assert.equal(last.event, 'done', text.slice(-500));
        assert.equal(last.data.state, 'done');
        assert.equal(last.data.rows_read, 200000);
        for (let i = 1; i < events.length; i++) {
            assert.ok(events[i].data.progress >= events[i - 1].data.progress,
                `progress never goes back: ${events.map((e) => `${e.data.phase} ${e.data.progress}`).join(', ')}`);
        }
    });

    it('cancels a queued job (200, nothing stored) and deletes a finished one (204)', async () => {
        await worker.stop('SIGTERM');
        const t = await tenantHelpers(ctx, () => api).makeTenant('Cancel Shop', 'owner@cancel.test');
        const a = accepted(await upload(PULSE_TX, {}, { token: t.token }));
        const q = await job(a.job_id, t.token);
        assert.equal(q.json.state, 'queued');
        const del = await api.fetch(`/api/v1/jobs/${a.job_id}`, { method: 'DELETE', headers: { authorization: `Bearer ${t.token}` } });
        assert.equal(del.status, 200, del.text);
        assert.equal(del.json.state, 'cancelled');
        worker = await startWorker();
        await sleep(500);
        assert.equal((await job(a.job_id, t.token)).json.state, 'cancelled', 'a cancelled job is never run');
        assert.equal(await count('transactions', t.tenant), 0);
        const gone = await api.fetch(`/api/v1/jobs/${a.job_id}`, { method: 'DELETE', headers: { authorization: `Bearer ${t.token}` } });
        assert.equal(gone.status, 204);
        assertProblem(assert, await job(a.job_id, t.token), 404, 'not_found');
    });

    it('retries a job whose worker died (no heartbeat) and finishes it', async () => {
        await worker.stop('SIGTERM');
        const t = await tenantHelpers(ctx, () => api).makeTenant('Crash Shop', 'owner@crash.test');
        const a = accepted(await upload(PULSE_TX, {}, { token: t.token }));
        // as a worker that claimed it and then vanished would leave it
        await ctx.sql(`UPDATE jobs SET state = 'running', attempts = 1, heartbeat_at = now() - interval '1 hour' WHERE id = '${a.job_id}'`);
        worker = await startWorker();
        const j = await finished(a.job_id, t.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.equal(j.attempts, 2);
        assert.equal(await count('transactions', t.tenant), 4);
    });

    it('hands a running job back to the queue when its server stops, and another run finishes it', async () => {
        const t = await tenantHelpers(ctx, () => api).makeTenant('Stop Shop', 'owner@stop.test');
        const dir = path.join(ctx.varDir, 'gen-stop');
        const g = await ctx.pulse(['gen', '--industry', 'ecommerce', '--customers', '20000', '--seed', '5', '--out', dir]);
        assert.equal(g.code, 0, g.stderr);
        const a = accepted(await upload(await readFile(path.join(dir, 'transactions.csv')), {}, { token: t.token }));
        for (let i = 0; i < 400 && (await job(a.job_id, t.token)).json.state !== 'running'; i++) await sleep(25);
        const t0 = Date.now();
        assert.equal(await worker.stop('SIGTERM'), 0, worker.exitReport());
        const stoppedIn = Date.now() - t0;
        const back = (await job(a.job_id, t.token)).json;
        if (back.state === 'done') return; // the machine was fast enough to finish first: nothing to hand back
        assert.ok(stoppedIn < 8000, `the worker stopped in ${stoppedIn} ms`);
        assert.equal(back.state, 'queued', JSON.stringify(back));
        assert.match(back.phase, /queued again/);
        assert.equal(await count('transactions', t.tenant), 0, 'nothing of the interrupted run is stored');
        worker = await startWorker();
        const j = await finished(a.job_id, t.token);
        assert.equal(j.state, 'done', JSON.stringify(j));
        assert.equal(await count('transactions', t.tenant), j.rows_accepted);
    });

    it('imports from the command line: pulse import --tenant ... FILE', async () => {
        const t = await tenantHelpers(ctx, () => api).makeTenant('Cli Shop', 'owner@cli.test');
        const file = path.join(ctx.varDir, 'cli.csv');
        await writeFile(file, PULSE_TX);
        const r = await ctx.pulse(['import', '--tenant', t.tenant, '--kind', 'transactions', '--quiet', file]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /done .*4 rows read, 4 accepted, 0 rejected/);
        assert.equal(await count('transactions', t.tenant), 4);
        assert.equal(await count('jobs', t.tenant, "state = 'done'"), 1, 'the CLI import shows in the job list');
        const bad = await ctx.pulse(['import', '--tenant', t.tenant, '--kind', 'events', file]);
        assert.equal(bad.code, 1);
        assert.match(bad.stderr, /events/);
        const usage = await ctx.pulse(['import', file]);
        assert.equal(usage.code, 2);
        assert.match(usage.stderr, /--tenant/);
        const nobody = await ctx.pulse(['import', '--tenant', 'No Such Org', file]);
        assert.equal(nobody.code, 1);
        assert.match(nobody.stderr, /no organization/);
    });
});
