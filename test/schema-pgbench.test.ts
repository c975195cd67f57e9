import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { main } from '../source/cli.js';
import { freshDatabase, type FreshDb, dropRoles } from './helpers/db.js';
import { captureIo } from './helpers/io.js';

/**
 * pgbench's own tables, as a new user would try them: pgbench_accounts by RANGE(aid) in partitions of 100,000 ids
 * end to end with the application (a non-superuser role) running pgbench before and after; pgbench_history (no
 * primary key) refused by `pgshift plan` and by preflight with exit 2 before any change.
 */
describe('pgbench: integer RANGE partitioning and tables without a primary key', () => {
  let db: FreshDb;
  let dir: string;
  const app = `app_pgb_${randomBytes(3).toString('hex')}`;
  let appUrl: string;

  const planFile = (name: string, partition: unknown[]): string => {
    const file = path.join(dir, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify({
      version: 1, name, partition,
      backup: { directory: path.join(dir, `backups-${name}`), verify: 'list' },
      retention: { days: 0 },
      locks: { timeoutMs: 1000, attempts: 20, backoffMs: 50, maxBackoffMs: 500 },
    }));
    return file;
  };
  const pgbenchAsApp = (args: string[]) => execFileSync('pgbench', [...args, appUrl], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const invariant = async () => (await db.client.query(
    `SELECT (SELECT sum(abalance) FROM pgbench_accounts)::bigint AS a, (SELECT sum(delta) FROM pgbench_history)::bigint AS h,
            (SELECT sum(bbalance) FROM pgbench_branches)::bigint AS b, (SELECT count(*) FROM pgbench_accounts)::int AS n`,
  )).rows[0] as { a: string; h: string; b: string; n: number };

  beforeAll(async () => {
    db = await freshDatabase('schema_pgbench');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-pgbench-'));
    execFileSync('pgbench', ['-i', '-s', '2', '-q', db.url], { stdio: 'pipe' });
    await db.client.query(`CREATE ROLE ${app} LOGIN PASSWORD 'app'`);
    await db.client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${app}`);
    const u = new URL(db.url);
    u.username = app;
    u.password = 'app';
    appUrl = u.toString();
  });
  afterAll(async () => {
    await db?.drop();
    await dropRoles(app);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pgshift plan refuses pgbench_history (no primary key) with exit 2, one line per problem with its hint, changing nothing', async () => {
    const file = planFile('history', [{ source: 'public.pgbench_history', strategy: 'range', key: 'mtime', interval: '1 month' }]);
    const io = captureIo();
    const code = await main(['plan', '--plan', file, '--db', db.url], io);
    expect(code, io.text()).toBe(2);
    expect(io.stdout).toEqual([]);
    expect(io.stderr[0]).toMatch(/^pgshift: the plan cannot run on this database \(1 problem; nothing was changed\):$/);
    expect(io.stderr[1]).toMatch(/^ {2}✗ public\.pgbench_history: row key: public\.pgbench_history has no primary key and no unique index on NOT NULL columns: .* — add one before the migration — ALTER TABLE public\.pgbench_history ADD PRIMARY KEY/);
    expect(io.stderr.at(-1)).toMatch(/^hint: /);
    // nothing changed: no journal schema, no backup
    expect((await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgshift'`)).rows[0]!.n).toBe(0);
    expect(fs.existsSync(path.join(dir, 'backups-history'))).toBe(false);
  });

  it('the run refuses it in preflight with exit 2, before the backup; the full text is in pgshift status', async () => {
    const file = planFile('history', [{ source: 'public.pgbench_history', strategy: 'range', key: 'mtime', interval: '1 month' }]);
    const io = captureIo();
    const code = await main(['--headless', '--plan', file, '--db', db.url], io);
    const out = io.text();
    expect(code, out).toBe(2);
    const problems = io.stdout.filter((l) => l.startsWith('  ✗ '));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/row key: .* — add one before the migration/);
    expect(out).toMatch(/✗ preflight {2}preflight: 1 problem \(above\), nothing was changed/);
    expect(out).not.toMatch(/backup:pg_dump/);
    expect(fs.existsSync(path.join(dir, 'backups-history'))).toBe(false);
    expect((await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'pgbench_history_%'`)).rows[0]!.n).toBe(0);
    const st = captureIo();
    expect(await main(['status', '--db', db.url], st)).toBe(0);
    expect(st.text()).toMatch(/preflight \(run \d+\):\n {2}✗ public\.pgbench_history: row key: .*ADD PRIMARY KEY/);
  });

  it('a calendar interval on an integer key and a number on a date key are refused by plan with the right hint', async () => {
    const file = planFile('wrong', [
      { source: 'public.pgbench_accounts', strategy: 'range', key: 'aid', interval: '1 month' },
      { source: 'public.pgbench_history', strategy: 'range', key: 'mtime', interval: 1000 },
    ]);
    const io = captureIo();
    expect(await main(['plan', '--plan', file, '--db', db.url], io), io.text()).toBe(2);
    expect(io.stderr).toContainEqual(expect.stringMatching(/pgbench_accounts: key aid type: the key is integer: a calendar interval \("1 month"\) cannot split it — give the width of each partition as a number, e\.g\. "interval": 100000/));
    expect(io.stderr).toContainEqual(expect.stringMatching(/pgbench_history: key mtime type: the key is timestamp without time zone, the interval 1000 is a number .* — use a calendar interval/));
  });

  it('pgbench_accounts by RANGE(aid), "interval": 100000, runs end to end; pgbench as the application before and after keeps its invariant', async () => {
    pgbenchAsApp(['-n', '-c', '2', '-t', '50']);
    const before = await invariant();
    expect(before.a).toBe(before.h);
    expect(before.n).toBe(200_000);
    const file = planFile('accounts', [{ source: 'public.pgbench_accounts', strategy: 'range', key: 'aid', interval: 100000, premake: 2, defaultPartition: false }]);

    const dry = captureIo();
    expect(await main(['plan', '--plan', file, '--db', db.url], dry), dry.text()).toBe(0);
    const dryText = dry.text();
    expect(dryText).toMatch(/data spans 1 \.\. 200000; 5 partitions of 100,000 ids from 0 through 500000 \(exclusive\), including 2 ahead of max\(aid\)/);
    for (const p of ['p0', 'p100000', 'p200000', 'p300000', 'p400000']) expect(dryText).toContain(`"public"."pgbench_accounts_${p}" PARTITION OF`);

    const io = captureIo();
    const code = await main(['--headless', '--plan', file, '--db', db.url, '--confirm', 'public.pgbench_accounts', '--confirm', 'public.pgbench_accounts_old'], io);
    expect(code, io.text()).toBe(0);
    expect(io.text()).toMatch(/✓ verify:integrity {2}done: PASS/);
    const parts = await db.client.query(
      `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound, (SELECT count(*) FROM pgbench_accounts a WHERE a.tableoid = c.oid)::int AS n
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.pgbench_accounts'::regclass ORDER BY c.relname`,
    );
    expect(parts.rows).toEqual([
      { relname: 'pgbench_accounts_p0', bound: 'FOR VALUES FROM (0) TO (100000)', n: 99_999 },
      { relname: 'pgbench_accounts_p100000', bound: 'FOR VALUES FROM (100000) TO (200000)', n: 100_000 },
      { relname: 'pgbench_accounts_p200000', bound: 'FOR VALUES FROM (200000) TO (300000)', n: 1 },
      { relname: 'pgbench_accounts_p300000', bound: 'FOR VALUES FROM (300000) TO (400000)', n: 0 },
      { relname: 'pgbench_accounts_p400000', bound: 'FOR VALUES FROM (400000) TO (500000)', n: 0 },
    ]);
    // the application keeps working on the partitioned table (pgbench's tpcb-like script accepts RANGE partitioning)
    pgbenchAsApp(['-n', '-c', '2', '-t', '50']);
    const after = await invariant();
    expect(after.a).toBe(after.h);
    expect(after.n).toBe(200_000);
    expect(BigInt(after.b) - BigInt(before.b)).toBe(BigInt(after.h) - BigInt(before.h));
  });

  it('a table without a primary key but with a unique index on NOT NULL columns uses that index as its key', async () => {
    await db.client.query(`CREATE TABLE public.readings (id bigint NOT NULL, at timestamptz NOT NULL, v int);
      CREATE UNIQUE INDEX readings_id_key ON public.readings (id);
      INSERT INTO public.readings SELECT g, timestamptz '2025-01-01 00:00+00' + g * interval '1 hour', g % 7 FROM generate_series(1, 3000) g;
      GRANT SELECT, INSERT, UPDATE, DELETE ON public.readings TO ${app}`);
    const file = planFile('readings', [{ source: 'public.readings', strategy: 'range', key: 'at', interval: '1 month', premake: 0 }]);
    const dry = captureIo();
    expect(await main(['plan', '--plan', file, '--db', db.url, '--until', '3'], dry), dry.text()).toBe(0);
    const io = captureIo();
    expect(await main(['--headless', '--plan', file, '--db', db.url, '--until', '3'], io), io.text()).toBe(0);
    expect(io.text()).toMatch(/public\.readings: row key +pass +no primary key: the unique index readings_id_key on NOT NUL/);
    expect(io.text()).toMatch(/✓ verify:integrity {2}done: PASS/);
    const n = await db.client.query<{ n: number; s: number | null; s0: number | null }>(`SELECT (SELECT count(*) FROM public.readings_partitioned)::int AS n, (SELECT sum(v) FROM public.readings_partitioned)::int AS s, (SELECT sum(v) FROM public.readings)::int AS s0`);
    expect(n.rows[0]).toEqual({ n: 3000, s: n.rows[0]!.s0, s0: n.rows[0]!.s0 });
  });
});
