// `pulse migrate` against a private cluster, with a PULSE_HOME of its own (lua/, dashboard/,
// widget/ linked from the repository; migrations/ copied, so the suite can add, edit and break
// files): apply, no-op, --status exit codes, edited or misnamed files, failing SQL, concurrent runs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createContext, PULSE_HOME, TEST_ROUTES, run, waitFor } from './harness.mjs';

describe('migrate', { timeout: 120000 }, () => {
    let ctx, home, migrations, env, url;
    const shipped = []; // the repository's own migrations: [{ version, name }] in order
    const shippedApplied = () => shipped.map((m) => `${m.version}:${m.name}`);

    const migrate = (...args) => ctx.pulse(['migrate', ...args], env);
    const out = (r) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    const file = (name) => path.join(migrations, name);
    const psql = async (sql) => {
        const r = await run('psql', [url, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], { timeoutMs: 20000 });
        assert.equal(r.code, 0, `psql ${sql}: ${r.stderr}`);
        return r.stdout.trim().split('\n').filter(Boolean);
    };
    const applied = async () => (await psql('SELECT version || \':\' || name FROM schema_migrations ORDER BY version'));

    before(async () => {
        ctx = await createContext('pulse-it-mig-');
        home = await mkdtemp(path.join(tmpdir(), 'pulse-it-mig-home-'));
        for (const dir of ['lua', 'dashboard', 'widget']) await symlink(path.join(PULSE_HOME, dir), path.join(home, dir));
        migrations = path.join(home, 'migrations');
        await mkdir(migrations);
        for (const name of (await readdir(path.join(PULSE_HOME, 'migrations'))).sort()) {
            if (!name.endsWith('.sql')) continue;
            await copyFile(path.join(PULSE_HOME, 'migrations', name), file(name));
            shipped.push({ version: Number(name.split('_')[0]), name: name.replace(/\.sql$/, '') });
        }
        await writeFile(file('9001_it_widgets.sql'),
            '-- integration test migration\nCREATE TABLE it_widgets (id int PRIMARY KEY, name text NOT NULL);\n');
        env = { PULSE_HOME: home };
        await ctx.startDb();
        const u = await ctx.pulse(['db', 'url'], env);
        assert.equal(u.code, 0, out(u));
        url = u.stdout.trim().split('\n').pop();
    });

    after(async () => {
        if (home) await rm(home, { recursive: true, force: true });
        if (ctx) await ctx.destroy();
    });

    it('refuses an unknown argument with exit 2', async () => {
        const r = await migrate('--bogus');
        assert.equal(r.code, 2, out(r));
        assert.match(r.stderr, /--bogus/);
    });

    it('--status exits 3 while migrations are pending', async () => {
        const r = await migrate('--status');
        assert.equal(r.code, 3, out(r));
        for (const m of shipped) assert.match(r.stdout, new RegExp(`${m.name}\\s+pending`));
        assert.match(r.stdout, /9001_it_widgets\s+pending/);
    });

    it('applies the pending migrations in order, once', async () => {
        const r = await migrate();
        assert.equal(r.code, 0, out(r));
        for (const m of shipped) assert.match(r.stdout, new RegExp(`applied ${m.name}`));
        assert.match(r.stdout, /applied 9001_it_widgets/);
        const order = shipped.map((m) => r.stdout.indexOf(`applied ${m.name}`)).concat(r.stdout.indexOf('applied 9001_it_widgets'));
        assert.deepEqual(order, [...order].sort((a, b) => a - b), 'version order');
        assert.deepEqual(await applied(), [...shippedApplied(), '9001:9001_it_widgets']);
        assert.deepEqual(await psql("SELECT to_regclass('it_widgets') IS NOT NULL"), ['t']);
    });

    it('does nothing on a second run, and --status exits 0', async () => {
        const r = await migrate();
        assert.equal(r.code, 0, out(r));
        assert.doesNotMatch(r.stdout, /applied \d{4}_/);
        assert.match(r.stdout, /up to date/);
        const s = await migrate('--status');
        assert.equal(s.code, 0, out(s));
        assert.match(s.stdout, new RegExp(`${shipped.length + 1} applied, 0 pending`));
        assert.deepEqual(await applied(), [...shippedApplied(), '9001:9001_it_widgets']);
    });

    it('applies a new migration added later', async () => {
        await writeFile(file('9002_it_more.sql'), 'ALTER TABLE it_widgets ADD COLUMN qty int NOT NULL DEFAULT 0;\n');
        const s = await migrate('--status');
        assert.equal(s.code, 3, out(s));
        assert.match(s.stdout, /9002_it_more\s+pending/);
        const r = await migrate();
        assert.equal(r.code, 0, out(r));
        assert.match(r.stdout, /applied 9002_it_more/);
        assert.doesNotMatch(r.stdout, /applied 9001_/);
        assert.equal((await migrate('--status')).code, 0);
    });

    it('serialises two concurrent runs: both succeed, each migration applied once', async (t) => {
        await writeFile(file('9003_it_slow.sql'),
            'CREATE TABLE it_once (v int PRIMARY KEY);\nSELECT pg_sleep(0.5);\nINSERT INTO it_once VALUES (3);\n');
        await writeFile(file('9004_it_after.sql'), 'INSERT INTO it_once VALUES (4);\n');
        const [a, b] = await Promise.all([migrate(), migrate()]);
        t.diagnostic(`waited for the lock: ${[a, b].some((r) => /waiting for another migration run/.test(r.stdout))}`);
        assert.equal(a.code, 0, `first run: ${out(a)}`);
        assert.equal(b.code, 0, `second run: ${out(b)}`);
        const appliedBy = (r, name) => new RegExp(`applied ${name}`).test(r.stdout);
        for (const name of ['9003_it_slow', '9004_it_after']) {
            assert.equal([a, b].filter((r) => appliedBy(r, name)).length, 1, `${name} applied by exactly one run`);
        }
        assert.deepEqual(await psql('SELECT v FROM it_once ORDER BY v'), ['3', '4']);
        assert.deepEqual(await psql('SELECT version FROM schema_migrations GROUP BY version HAVING count(*) > 1'), []);
        assert.deepEqual(await applied(),
            [...shippedApplied(), '9001:9001_it_widgets', '9002:9002_it_more', '9003:9003_it_slow', '9004:9004_it_after']);
    });

    it('refuses when an applied migration was edited, naming the file', async () => {
        const original = await readFile(file('9001_it_widgets.sql'), 'utf8');
        await appendFile(file('9001_it_widgets.sql'), '-- an edit after the fact\n');
        await writeFile(file('9005_it_pending.sql'), 'CREATE TABLE it_pending (id int);\n');
        try {
            const r = await migrate();
            assert.equal(r.code, 1, out(r));
            assert.match(r.stderr, /9001_it_widgets/);
            assert.match(r.stderr, /changed/i);
            assert.deepEqual(await psql("SELECT to_regclass('it_pending') IS NULL"), ['t'], 'nothing else was applied');
            const s = await migrate('--status');
            assert.equal(s.code, 1, `--status reports the problem with exit 1: ${out(s)}`);
            assert.match(s.stdout + s.stderr, /9001_it_widgets.*CHANGED/);
        } finally {
            await writeFile(file('9001_it_widgets.sql'), original);
        }
        const fixed = await migrate();
        assert.equal(fixed.code, 0, out(fixed));
        assert.match(fixed.stdout, /applied 9005_it_pending/);
    });

    it('rejects a file whose name is not NNNN_name.sql, naming it', async () => {
        for (const bad of ['9006-Bad Name.sql', 'notes.txt', '9006_UPPER.sql']) {
            await writeFile(file(bad), 'SELECT 1;\n');
            try {
                const r = await migrate();
                assert.equal(r.code, 1, `${bad}: ${out(r)}`);
                assert.ok(r.stderr.includes(bad), `the message names ${bad}: ${r.stderr}`);
                const s = await migrate('--status');
                assert.equal(s.code, 1, `--status with ${bad}: ${out(s)}`);
            } finally {
                await unlink(file(bad));
            }
        }
        assert.equal((await migrate()).code, 0);
    });

    it('rolls back a failing migration and records nothing', async () => {
        await writeFile(file('9007_it_broken.sql'),
            'CREATE TABLE it_half (id int);\nINSERT INTO it_half VALUES (1);\nSELECT * FROM it_no_such_table;\n');
        try {
            const r = await migrate();
            assert.equal(r.code, 1, out(r));
            assert.match(r.stderr, /9007_it_broken/);
            assert.match(r.stderr, /it_no_such_table/);
            assert.match(r.stderr, /line 3/);
            assert.deepEqual(await psql("SELECT to_regclass('it_half') IS NULL"), ['t'], 'the half-done work was rolled back');
            assert.deepEqual(await psql('SELECT count(*) FROM schema_migrations WHERE version = 9007'), ['0']);
            assert.equal((await migrate('--status')).code, 3, 'still pending');
        } finally {
            await unlink(file('9007_it_broken.sql'));
        }
        assert.equal((await migrate('--status')).code, 0);
    });

    it('/ready follows the migrations folder across a reload', async () => {
        const srv = await ctx.startServer({ env: { ...env, PULSE_APP_EXTRA: TEST_ROUTES } });
        const ready = await srv.fetch('/ready');
        assert.equal(ready.status, 200, ready.text);
        const listed = await srv.fetch('/api/test/migrations');
        assert.equal(listed.status, 200, listed.text);
        assert.deepEqual(listed.json.items.map((m) => m.version), [...shipped.map((m) => m.version), 9001, 9002, 9003, 9004, 9005]);

        await writeFile(file('9008_it_late.sql'), 'CREATE TABLE it_late (id int);\n');
        const mark = srv.logs.length;
        srv.child.kill('SIGHUP');
        await waitFor(() => srv.logs.slice(mark).filter((l) => l.event === 'reloaded').length >= srv.threads, 5000,
            { what: 'every thread to reload' });
        const pending = await srv.fetch('/ready');
        assert.equal(pending.json.checks.database, 'ok');
        assert.match(pending.json.checks.migrations, /9008_it_late/);

        const r = await migrate();
        assert.equal(r.code, 0, out(r));
        const again = await srv.fetch('/ready');
        assert.equal(again.status, 200, again.text);
        assert.equal(await srv.stop('SIGTERM'), 0, srv.exitReport());
    });
});
