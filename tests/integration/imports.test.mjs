// POST /api/v1/imports/preview: the first step of an upload. Small CSV files made here (no
// dependency on ../shared/data) in each layout users bring: Pulse's transactions, the classic
// retail export, a CDNOW-like whitespace file, ';' with decimal commas and DD.MM.YYYY dates, an
// ambiguous DD/MM file, a Telco-like attribute file with a churn label, telecom events; raw and
// multipart uploads, and the bad requests. The previews need the ingest binding (src/script/ingest.c);
// on a build without it the route answers 501 and only the checks made before reading the file run.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { makeXlsx } from './fixtures/xlsx.mjs';
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
    ' 00003 19970330  2   20.76',
    ' 00004 19970101  2   29.33',
].join('\n') + '\n';

const SEMICOLON = [
    'CustomerID;TransactionDate;TransactionAmount;ProductCategory',
    'K-100;31.01.2024;12,50;Bücher',
    'K-101;15.02.2024;1.234,99;Technik',
    'K-100;28.02.2024;3,05;Bücher',
    'K-102;13.03.2024;99,00;Haushalt',
].join('\n') + '\n';

const AMBIGUOUS = [
    'customer_id,invoice_date,invoice_id,amount',
    '1,01/02/2024,A1,10.00',
    '2,03/04/2024,A2,20.00',
    '3,05/06/2024,A3,30.00',
    '1,07/08/2024,A4,40.00',
].join('\n') + '\n';

const TELCO = [
    'customerID,gender,SeniorCitizen,Partner,tenure,Contract,MonthlyCharges,TotalCharges,Churn',
    '7590-VHVEG,Female,0,Yes,1,Month-to-month,29.85,29.85,No',
    '5575-GNVDE,Male,0,No,34,One year,56.95,1889.5,No',
    '3668-QPYBK,Male,0,No,2,Month-to-month,53.85,108.15,Yes',
    '7795-CFOCW,Male,0,No,45,One year,42.30,1840.75,No',
    '9237-HQITU,Female,0,No,2,Month-to-month,70.70,151.65,Yes',
].join('\n') + '\n';

const EVENTS = [
    'CustomerID,EventDate,EventType,RevenueImpact',
    'S-1,2024-03-01,data_usage,0.00',
    'S-2,2024-03-01,complaint,-5.00',
    'S-1,2024-03-02,payment,29.99',
].join('\n') + '\n';

describe('imports preview', { timeout: 120000 }, () => {
    let ctx, srv, analyst, viewer, telecomAnalyst;

    // A raw-body upload; opts: query (object), type (content type), token.
    const raw = (body, { query = {}, type = 'text/csv', token = analyst.token } = {}) => {
        const qs = new URLSearchParams(query).toString();
        return srv.fetch(`/api/v1/imports/preview${qs ? `?${qs}` : ''}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, ...(type ? { 'content-type': type } : {}) },
            body,
        });
    };
    // A multipart upload: file (text or Buffer, or null to leave it out) and other form fields.
    const multipart = (file, fields = {}, { filename = 'upload.csv', token = analyst.token } = {}) => {
        const form = new FormData();
        if (file !== null) form.append('file', new Blob([file], { type: 'text/csv' }), filename);
        for (const [k, v] of Object.entries(fields)) form.append(k, v);
        return srv.fetch('/api/v1/imports/preview', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
    };
    const ok = (r) => {
        assert.equal(r.status, 200, r.text.slice(0, 1000));
        return r.json;
    };
    const column = (p, name) => p.columns.find((c) => c.name === name);

    before(async () => {
        ctx = await createContext('pulse-it-imports-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer({ env: { PULSE_APP_EXTRA: TOKEN_ROUTES } });
        const shop = tenantHelpers(ctx, () => srv, { industry: 'ecommerce' });
        const owner = await shop.makeTenant('Import Shop', 'owner@import-shop.test');
        analyst = await shop.makeUser(owner, 'analyst@import-shop.test', 'analyst');
        viewer = await shop.makeUser(owner, 'viewer@import-shop.test', 'viewer');
        const tel = tenantHelpers(ctx, () => srv, { industry: 'telecom' });
        const telOwner = await tel.makeTenant('Import Telco', 'owner@import-telco.test');
        telecomAnalyst = await tel.makeUser(telOwner, 'analyst@import-telco.test', 'analyst');
    });

    after(async () => {
        if (ctx) await ctx.destroy();
    });

    // --- checks made before the file is read (run on every build) ---

    it('needs an analyst: 401 without a credential, 403 for a viewer', async () => {
        const anon = await srv.fetch('/api/v1/imports/preview', { method: 'POST', headers: { 'content-type': 'text/csv' }, body: PULSE_TX });
        assertProblem(assert, anon, 401, 'unauthorized');
        assertProblem(assert, await raw(PULSE_TX, { token: viewer.token }), 403, 'forbidden');
    });

    it('answers 415 to a body that is not a file type', async () => {
        assertProblem(assert, await raw('{"a":1}', { type: 'application/json' }), 415, 'unsupported_media_type');
        assertProblem(assert, await raw('a=1', { type: 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
    });

    it('answers 422 naming body.file when no file is sent', async () => {
        const p = assertProblem(assert, await raw(''), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'body.file');
    });

    it('checks the options: separator, kind, mapping JSON', async () => {
        let p = assertProblem(assert, await raw(PULSE_TX, { query: { sep: 'x' } }), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'query.sep');
        p = assertProblem(assert, await raw(PULSE_TX, { query: { kind: 'events' } }), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'query.kind');
        assert.match(p.errors[0].message, /customers, transactions/);
        p = assertProblem(assert, await raw(PULSE_TX, { query: { mapping: '[1,2]' } }), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'query.mapping');
        p = assertProblem(assert, await raw(PULSE_TX, { query: { mapping: '{nope' } }), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'query.mapping');
    });

    it('documents the route in /openapi.json', async () => {
        const doc = (await srv.fetch('/openapi.json')).json;
        const op = doc.paths['/api/v1/imports/preview'].post;
        assert.ok(op.requestBody.content['multipart/form-data']);
        assert.ok(op.parameters.some((x) => x.name === 'sep' && x.in === 'query'));
        assert.match(op.description, /reads only what is sent/);
    });

    // --- previews (need the ingest binding) ---

    it("previews Pulse's own transaction CSV (raw body)", async (t) => {
        const p = ok(await raw(PULSE_TX, { query: { filename: 'tx.csv' } }));
        assert.equal(p.format, 'csv');
        assert.equal(p.dialect.sep, ',');
        assert.equal(p.industry, 'ecommerce');
        assert.equal(p.rows.length, 4);
        assert.deepEqual(p.rows[0], ['C001', '2024-01-15', '49.99', 'Books', '1']);
        assert.equal(column(p, 'TransactionDate').type, 'date');
        assert.equal(column(p, 'TransactionAmount').type, 'decimal');
        assert.equal(p.suggestion.kind, 'transactions');
        assert.deepEqual(p.suggestion.mapping, {
            customer_id: 'CustomerID', transaction_date: 'TransactionDate', amount: 'TransactionAmount',
            product_category: 'ProductCategory', quantity: 'Quantity',
        });
        assert.equal(p.kind, 'transactions');
        assert.equal(p.mapping_source, 'suggestion');
        assert.deepEqual(p.questions, []);
    });

    it('previews the classic retail export: amount derived, cancellations marked', async (t) => {
        const p = ok(await multipart(RETAIL, {}, { filename: 'online_retail.csv' }));
        assert.equal(p.dialect.crlf, true);
        assert.equal(p.rows[2][2], 'HAND WARMER, UNION JACK');
        assert.equal(p.suggestion.kind, 'transactions');
        assert.equal(p.suggestion.mapping.invoice_no, 'InvoiceNo');
        assert.equal(p.suggestion.mapping.transaction_date, 'InvoiceDate');
        assert.deepEqual(p.suggestion.derived.amount, { from: ['quantity', 'unit_price'], op: 'multiply' });
        assert.deepEqual(p.suggestion.cancellation, { field: 'invoice_no', column: 'InvoiceNo', prefix: 'C' });
        assert.deepEqual(p.suggestion.unmapped_required, []);
        assert.ok(['date', 'datetime'].includes(column(p, 'InvoiceDate').type), JSON.stringify(column(p, 'InvoiceDate')));
    });

    it('previews a CDNOW-like whitespace file without a header', async (t) => {
        const p = ok(await raw(CDNOW, { query: { filename: 'cdnow_master.txt' }, type: 'text/plain' }));
        assert.equal(p.dialect.sep, 'whitespace');
        assert.equal(p.dialect.header, false);
        assert.equal(p.columns.length, 4);
        assert.equal(p.suggestion.kind, 'transactions', JSON.stringify(p.suggestion));
        const names = p.columns.map((c) => c.name);
        assert.deepEqual(p.suggestion.mapping, {
            customer_id: names[0], transaction_date: names[1], quantity: names[2], amount: names[3],
        });
        assert.equal(p.suggestion.layout, 'cdnow');
    });

    it("previews a ';' file with decimal commas and DD.MM.YYYY dates", async (t) => {
        const p = ok(await raw(SEMICOLON, { query: { filename: 'umsatz.csv' } }));
        assert.equal(p.dialect.sep, ';');
        assert.equal(p.dialect.decimal_comma, true);
        assert.equal(column(p, 'TransactionDate').type, 'date');
        assert.match(column(p, 'TransactionDate').date_format, /DD\.MM\.YYYY|%d\.%m\.%Y/i);
        assert.equal(column(p, 'TransactionAmount').type, 'decimal');
        assert.equal(p.suggestion.kind, 'transactions');
        assert.deepEqual(p.suggestion.unmapped_required, []);
    });

    it('asks about an ambiguous DD/MM date column', async (t) => {
        const p = ok(await raw(AMBIGUOUS));
        const col = column(p, 'invoice_date');
        assert.equal(col.ambiguous, true, JSON.stringify(col));
        const q = p.questions.find((x) => x.code === 'date_format');
        assert.ok(q, JSON.stringify(p.questions));
        assert.equal(q.column, 'invoice_date');
        assert.equal(q.mapped, true);
        assert.deepEqual([...q.options].sort(), ['DD/MM/YYYY', 'MM/DD/YYYY']);
        assert.equal(p.suggestion.mapping.transaction_date, 'invoice_date');
        assert.equal(p.suggestion.mapping.invoice_no, 'invoice_id');
    });

    it('recognizes a Telco-like attribute file with a churn label', async (t) => {
        const p = ok(await multipart(TELCO, {}, { filename: 'telco_churn.csv', token: telecomAnalyst.token }));
        assert.equal(p.industry, 'telecom');
        assert.equal(p.suggestion.kind, 'customers');
        assert.equal(p.suggestion.mapping.customer_id, 'customerID');
        assert.equal(p.suggestion.mapping.churned, 'Churn');
        assert.equal(p.suggestion.label.column, 'Churn');
        assert.equal(p.suggestion.label.looks_boolean, true, JSON.stringify(column(p, 'Churn')));
        assert.ok(p.suggestion.attributes.includes('MonthlyCharges'));
        assert.ok(p.suggestion.alternatives.some((a) => a.kind === 'events'));
    });

    it('previews telecom events for a telecom organization', async (t) => {
        const p = ok(await raw(EVENTS, { token: telecomAnalyst.token }));
        assert.equal(p.suggestion.kind, 'events');
        assert.deepEqual(p.suggestion.mapping, {
            customer_id: 'CustomerID', event_date: 'EventDate', event_type: 'EventType', revenue_impact: 'RevenueImpact',
        });
    });

    it('takes options and a mapping override as multipart fields', async (t) => {
        const mapping = { customer_id: 'customer_id', transaction_date: 'invoice_date', amount: 'amount' };
        const p = ok(await multipart(AMBIGUOUS, { kind: 'transactions', sep: ',', header: 'true', mapping: JSON.stringify(mapping) }));
        assert.equal(p.kind, 'transactions');
        assert.equal(p.mapping_source, 'request');
        assert.deepEqual(p.mapping, mapping);
        assert.ok(!p.questions.some((q) => q.code === 'unmapped_field'));
        // and a kind alone restricts the suggestion
        const c = ok(await multipart(PULSE_TX, { kind: 'customers' }));
        assert.equal(c.suggestion.kind, 'customers');
        assert.deepEqual(c.suggestion.alternatives, []);
    });

    it('asks for required fields no column maps to', async (t) => {
        const p = ok(await raw('CustomerID,when,total_spend\nC1,yesterday,12.5\nC2,today,3\n', { query: { kind: 'transactions' } }));
        const missing = p.questions.filter((q) => q.code === 'unmapped_field').map((q) => q.field).sort();
        assert.deepEqual(missing, ['amount', 'transaction_date']);
        assert.deepEqual(p.suggestion.unused_columns.sort(), ['total_spend', 'when']);
    });

    it('answers 422 naming the fields of a mapping that does not fit the file', async (t) => {
        const mapping = JSON.stringify({ customer_id: 'CustomerID', transaction_date: 'Nope', colour: 'Quantity' });
        let p = assertProblem(assert, await multipart(PULSE_TX, { mapping }), 422, 'validation_failed');
        const fields = p.errors.map((e) => e.field).sort();
        assert.deepEqual(fields, ['body.mapping.amount', 'body.mapping.colour', 'body.mapping.transaction_date']);
        p = assertProblem(assert, await raw(PULSE_TX, { query: { mapping: JSON.stringify({ customer_id: 'Quantity' }), kind: 'transactions' } }),
            422, 'validation_failed');
        assert.ok(p.errors.every((e) => e.field.startsWith('query.mapping.')), JSON.stringify(p.errors));
    });

    it('answers 422 for a multipart body without the file field', async (t) => {
        const p = assertProblem(assert, await multipart(null, { kind: 'transactions' }), 422, 'validation_failed');
        assert.equal(p.errors[0].field, 'body.file');
    });

    it('answers 400 to a multipart body that cannot be read', async (t) => {
        const r = await raw('--nope\r\nnot really\r\n', { type: 'multipart/form-data; boundary=xyz' });
        assertProblem(assert, r, 400, 'bad_multipart');
    });

    it('previews an .xlsx workbook: sheets, typed columns, dates from the cell style', async () => {
        const book = makeXlsx([
            ['CustomerID', 'TransactionDate', 'TransactionAmount', 'ProductCategory', 'Quantity'],
            [1001, new Date(Date.UTC(2024, 0, 15)), 19.99, 'Books', 1],
            [1002, new Date(Date.UTC(2024, 1, 29)), 5.5, 'Toys', 3],
            [1003, new Date(Date.UTC(2024, 2, 1)), 120, 'Garden, outdoor', 2],
        ], { sheet: 'Orders' });
        const p = ok(await multipart(book, {}, { filename: 'orders.xlsx' }));
        assert.equal(p.format, 'xlsx');
        assert.deepEqual(p.sheets, ['Orders']);
        assert.equal(column(p, 'TransactionDate').type, 'date', JSON.stringify(column(p, 'TransactionDate')));
        assert.equal(p.rows[1][1], '2024-02-29');
        assert.equal(p.rows[2][3], 'Garden, outdoor');
        assert.equal(column(p, 'CustomerID').type, 'integer');
        assert.equal(column(p, 'TransactionAmount').type, 'decimal');
        assert.equal(p.suggestion.kind, 'transactions');
        assert.deepEqual(p.suggestion.unmapped_required, []);
        const missing = await multipart(book, { sheet: 'Nope' }, { filename: 'orders.xlsx' });
        assert.equal(assertProblem(assert, missing, 422, 'unknown_sheet').detail.includes('Orders'), true, missing.text);
    });

    it('answers 422 with the ingest code for an empty file and for binary garbage', async (t) => {
        let p = assertProblem(assert, await multipart('', {}), 422, 'empty_file');
        assert.equal(p.errors[0].field, 'body.file');
        const garbage = Buffer.alloc(4096);
        for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 256;
        const r = await raw(garbage, { type: 'application/octet-stream' });
        assert.equal(r.status, 422, r.text);
        assert.match(r.json.code, /^(not_tabular|malformed)$/);
    });
});
