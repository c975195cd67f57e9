import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { parsePlanText, resolveTables, type LoadedPlan } from '../source/plan/load.js';
import type { ConfirmFn, Step, StepContext } from '../source/engine/types.js';
import { failureOf } from './fixtures/copy-helpers.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { preparation } from '../phases/1-preparation.js';
import { parseToolVersion, runPgDump, tocHas, restoreList } from '../source/backup.js';
import { toolCheck } from '../source/preflight.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { Artifacts } from '../source/engine/artifacts.js';

const yes: ConfirmFn = () => Promise.resolve({ confirmed: true, method: 'yes', by: 'test' });

function loadedPlan(dir: string, verify: 'list' | 'restore', format: 'custom' | 'directory' = 'custom'): LoadedPlan {
  const text = JSON.stringify({ version: 1, name: 'backup test', backup: { directory: './backups', verify, format } });
  const plan = parsePlanText(text, 'plan.json');
  return { plan, path: path.join(dir, 'plan.json'), dir, checksum: 'x', tables: resolveTables(plan) };
}

async function withSteps<T>(url: string, loaded: LoadedPlan, fn: (ctx: StepContext, step: (id: string) => Step, engine: Engine) => Promise<T>): Promise<T> {
  const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(url), loaded, confirm: yes, mode: 'test' });
  try {
    const steps = await preparation.plan(engine.planContext());
    const logs: string[] = [];
    const runId = await engine.journal.startRun({ planName: 'x', planPath: 'x', checksum: 'x', operator: 't', host: 'h', mode: 'test', phases: '1', version: '0' });
    const ctx: StepContext = {
      ...engine.planContext(), runId, stepId: 'test', operator: 't', signal: new AbortController().signal,
      log: (m) => { logs.push(m); }, progress: () => {}, confirm: (req) => yes({ ...req, stepId: 'test' }), overrides: new Set(), demo: false,
    };
    return await fn(ctx, (id) => steps.find((s) => s.id === id)!, engine);
  } finally {
    await engine.close();
  }
}

describe('backup: pg_dump, pg_restore --list, test restore', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('backup');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-backup-'));
    await db.client.query(`CREATE TABLE public.things (id bigint PRIMARY KEY, note text)`);
    await db.client.query(`INSERT INTO public.things SELECT g, 'n' || g FROM generate_series(1, 3000) g`);
    await db.client.query(`CREATE SCHEMA "Odd Schema"`);
    await db.client.query(`CREATE TABLE "Odd Schema"."Odd ""Obs"" Table" (id int PRIMARY KEY, "Created At" timestamptz)`);
    await db.client.query(`INSERT INTO "Odd Schema"."Odd ""Obs"" Table" SELECT g, now() FROM generate_series(1, 17) g`);
  });
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('verify: restore — restores into a scratch database, compares exact row counts, drops it', async () => {
    await withSteps(db.url, loadedPlan(dir, 'restore'), async (ctx, step, engine) => {
      const r1 = await step('backup:pg_dump').run(ctx);
      expect(failureOf(r1)).toBeUndefined();
      const r2 = await step('backup:verify').run(ctx);
      expect(failureOf(r2), failureOf(r2)).toBeUndefined();
      const a = (await engine.journal.getArtifact(Artifacts.backup))!;
      expect(a.verified).toBe(true);
      expect(a.verifyMethod).toBe('restore');
      expect(a.snapshotCounts).toEqual({ 'public.things': 3000, 'Odd Schema.Odd "Obs" Table': 17 });
      expect(a.tables).toEqual(expect.arrayContaining([{ table: 'public.things', rows: 3000 }, { table: 'Odd Schema.Odd "Obs" Table', rows: 17 }]));
      const left = await db.client.query(`SELECT datname FROM pg_database WHERE datname LIKE 'pgshift_verify_%' AND datname LIKE $1`, [`%_${process.pid}`]);
      expect(left.rows).toEqual([]);
      // the backup step again: same file, same sha256 → already done
      expect((await step('backup:pg_dump').run(ctx)).status).toBe('already-done');
    });
  });

  it('a backup file pg_restore cannot read is reported as failed, and recorded unverified', async () => {
    await withSteps(db.url, loadedPlan(dir, 'list'), async (ctx, step, engine) => {
      const a = (await engine.journal.getArtifact(Artifacts.backup))!;
      // truncated: pg_restore cannot read it (checksum recorded again so only pg_restore judges it)
      const half = fs.readFileSync(a.file).subarray(0, 40);
      fs.writeFileSync(a.file, half);
      const { sha256File } = await import('../source/backup.js');
      await engine.journal.setArtifact(Artifacts.backup, { ...a, sha256: await sha256File(a.file) });
      const r = await step('backup:verify').run(ctx);
      expect(failureOf(r)).toMatch(/^backup not verified: pg_restore cannot read /);
      const after = (await engine.journal.getArtifact(Artifacts.backup))!;
      expect(after.verified).toBe(false);
      expect(after.verifyError).toContain('pg_restore cannot read');
      // a file changed behind pgshift's back: checksum mismatch
      fs.writeFileSync(a.file, 'garbage');
      const r2 = await step('backup:verify').run(ctx);
      expect(failureOf(r2)).toContain('changed since it was written');
      // no backup at all
      fs.rmSync(a.file);
      const r3 = await step('backup:verify').run(ctx);
      expect(failureOf(r3)).toContain('is missing');
    });
  });

  it('the TOC check matches names that need quoting, and would notice a missing table', async () => {
    const file = path.join(dir, 'toc.dump');
    await runPgDump({ conn: resolveConnection(db.url), file, format: 'custom' });
    const toc = await restoreList(file);
    expect(tocHas(toc, 'TABLE', 'Odd Schema', 'Odd "Obs" Table')).toBe(true);
    expect(tocHas(toc, 'TABLE DATA', 'public', 'things')).toBe(true);
    expect(tocHas(toc, 'TABLE', 'public', 'thing')).toBe(false);
    expect(tocHas(toc, 'TABLE DATA', 'public', 'nothings')).toBe(false);
  });

  it('pg_dump gets the password through PGPASSWORD only, never in argv', async () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-spy-'));
    const log = path.join(bin, 'log');
    fs.writeFileSync(path.join(bin, 'pg_dump'), `#!/bin/sh\necho "ARGV $*" >> ${log}\necho "PW \${PGPASSWORD:-none}" >> ${log}\nexit 0\n`, { mode: 0o755 });
    const url = new URL(db.url);
    url.password = 's3cret-Pass';
    const conn = resolveConnection(url.toString());
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}${path.delimiter}${oldPath}`;
    try {
      await runPgDump({ conn, file: path.join(bin, 'out.dump'), format: 'custom' });
    } finally {
      process.env.PATH = oldPath;
    }
    const text = fs.readFileSync(log, 'utf8');
    expect(text).toContain('PW s3cret-Pass');
    expect(text.split('\n').find((l) => l.startsWith('ARGV'))).not.toContain('s3cret');
    fs.rmSync(bin, { recursive: true, force: true });
  });

  it('a failing pg_dump leaves no partial file and says why', async () => {
    const bad = resolveConnection(db.url.replace(/\/[^/]+$/, '/no_such_db_here'));
    const file = path.join(dir, 'bad.dump');
    await expect(runPgDump({ conn: bad, file, format: 'custom' })).rejects.toThrow(/pg_dump failed \(exit 1\).*no_such_db_here/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('directory format: a 0700 directory, hashed file by file, verified by pg_restore --list', async () => {
    const d2 = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-backup-dir-'));
    try {
      await withSteps(db.url, loadedPlan(d2, 'list', 'directory'), async (ctx, step, engine) => {
        await engine.journal.deleteArtifact(Artifacts.backup);
        const r = await step('backup:pg_dump').run(ctx);
        expect(failureOf(r)).toBeUndefined();
        const a = (await engine.journal.getArtifact(Artifacts.backup))!;
        expect(a.file.endsWith('.dir')).toBe(true);
        expect(fs.statSync(a.file).isDirectory()).toBe(true);
        expect(fs.statSync(a.file).mode & 0o777).toBe(0o700);
        expect(fs.readdirSync(a.file)).toContain('toc.dat');
        const v = await step('backup:verify').run(ctx);
        expect(failureOf(v)).toBeUndefined();
        expect((await engine.journal.getArtifact(Artifacts.backup))!.verified).toBe(true);
      });
    } finally {
      fs.rmSync(d2, { recursive: true, force: true });
    }
  });

  it('parses tool versions and names the client package to install', () => {
    expect(parseToolVersion('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)')).toEqual({ version: '15.18', major: 15 });
    expect(parseToolVersion('pg_dump (PostgreSQL) 11.0')).toEqual({ version: '11.0', major: 11 });
    expect(toolCheck('pg_dump', { tool: 'pg_dump', version: '15.18', major: 15 }, 17)).toMatchObject({ status: 'fail', hint: expect.stringContaining('postgresql-client-17') as string });
    expect(toolCheck('pg_dump', null, 16)).toMatchObject({ status: 'fail', hint: expect.stringContaining('postgresql-client-16') as string });
    expect(toolCheck('pg_dump', { tool: 'pg_dump', version: '17.2', major: 17 }, 15).status).toBe('pass');
  });
});
