// Debian's chromium, headless, driven by playwright-core: never a browser of its own download.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.PULSE_CHROMIUM || '/usr/bin/chromium';

// -> { browser, page, close() }; the profile is a fresh temporary folder.
export async function openBrowser() {
    const profile = await mkdtemp(path.join(os.tmpdir(), 'pulse-e2e-profile-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
        timeout: 30000,
    });
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    return {
        page,
        errors,
        async close() {
            await context.close();
            await rm(profile, { recursive: true, force: true });
        },
    };
}
