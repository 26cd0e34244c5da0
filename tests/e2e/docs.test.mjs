// The pages a person opens today, in a real browser: the dashboard's status page and the API
// reference at /docs (Swagger UI served by pulse itself, built from /openapi.json).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { createContext } from '../integration/harness.mjs';
import { openBrowser } from './browser.mjs';

describe('browser', { timeout: 120000 }, () => {
    let ctx, srv, browser;

    before(async () => {
        ctx = await createContext('pulse-e2e-');
        await ctx.startDb();
        await ctx.migrate();
        srv = await ctx.startServer();
        browser = await openBrowser();
    });

    after(async () => {
        if (browser) await browser.close();
        if (ctx) await ctx.destroy();
    });

    it('shows the server status on the dashboard', async () => {
        const { page } = browser;
        await page.goto(srv.url, { waitUntil: 'load' });
        await page.waitForFunction(() => document.getElementById('status').textContent !== 'Checking…', null, { timeout: 10000 });
        assert.equal(await page.textContent('#status'), 'Ready');
        const checks = await page.$$eval('#checks dt', (dts) => dts.map((d) => d.textContent).sort());
        assert.deepEqual(checks, ['database', 'migrations']);
        await page.screenshot({ path: path.join(os.tmpdir(), 'pulse-e2e-dashboard.png') }); // for a person to look at
    });

    it('renders the API reference from /openapi.json without any outside request', async () => {
        const { page, errors } = browser;
        const outside = [];
        page.on('request', (r) => { if (!r.url().startsWith(srv.url)) outside.push(r.url()); });
        await page.goto(`${srv.url}docs`, { waitUntil: 'load' });
        await page.waitForSelector('.opblock', { timeout: 15000 });
        const title = await page.textContent('.info .title');
        assert.match(title, /Pulse API/);
        const paths = await page.$$eval('.opblock-summary-path', (els) => els.map((e) => e.textContent.trim()));
        for (const p of ['/health', '/ready', '/openapi.json']) assert.ok(paths.includes(p), `${p} listed in ${paths}`);
        // open /health and run it from the page: the reference is usable, not just readable
        await page.click('.opblock-summary-path >> text=/health');
        await page.click('button.try-out__btn');
        await page.click('button.execute');
        const body = await page.waitForFunction(() => {
            const blocks = [...document.querySelectorAll('.live-responses-table .microlight')];
            const hit = blocks.find((e) => e.textContent.includes('"status"'));
            return hit && hit.textContent;
        }, null, { timeout: 10000 }).then((h) => h.jsonValue());
        assert.match(body, /"status": "ok"/);
        await page.screenshot({ path: path.join(os.tmpdir(), 'pulse-e2e-docs.png') });
        assert.deepEqual(outside, [], 'no request leaves the server (no CDN)');
        assert.deepEqual(errors, []);
    });
});
