import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { main } from '../source/cli.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import { UserError } from '../source/engine/errors.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';
import { PHASE_REGISTRY } from '../phases/index.js';

const root = path.resolve(__dirname, '..');

function writePlan(dir: string, plan: object, files: Record<string, string> = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  const file = path.join(dir, 'plan.json');
  fs.writeFileSync(file, JSON.stringify({ version: 1, name: 'engine test', backup: { directory: path.join(dir, 'backups') }, ...plan }));
  return file;
}

async function q<T = Record<string, unknown>>(c: pg.Client, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await c.query(sql, params)).rows as T[];
}

describe('engine: journal, one run per database, resume after SIGKILL', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('engine');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-engine-'));
    await db.client.query(`CREATE TABLE public.things (id bigint PRIMARY KEY, note text)`);
    await db.client.query(`INSERT INTO public.things SELECT g, 'n' || g FROM generate_series(1, 500) g`);
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates a versioned journal and records the run, its steps and their statements', async () => {
    const file = writePlan(path.join(dir, 'a'), {});
    const io = captureIo();
    const code = await main(['--headless', '--phase', '1', '--plan', file, '--db', db.url], io);
    expect(io.text()).toContain('report:data-volume');
    expect(code).toBe(0);
    const [meta] = await q<{ value: string }>(db.client, `SELECT value FROM pgshift.meta WHERE key = 'version'`);
    expect(meta!.value).toBe('1');
    const runs = await q<{ status: string; operator: string; plan_checksum: string; ended_at: Date | null }>(db.client, `SELECT * FROM pgshift.runs`);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.status).toBe('completed');
    expect(runs[0]!.operator).toBe(os.userInfo().username);
    expect(runs[0]!.plan_checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(runs[0]!.ended_at).not.toBeNull();
    const steps = await q<{ step_id: string; status: string }>(db.client, `SELECT step_id, status FROM pgshift.steps ORDER BY started_at`);
    expect(steps.map((s) => s.step_id)).toEqual(expect.arrayContaining(['report:data-volume', 'report:fk-dependencies']));
    expect(steps.every((s) => s.status === 'done' || s.status === 'skipped' || s.status === 'already-done')).toBe(true);
    // external commands are journaled like statements: the pg_dump command line with its duration, no password
    const cmds = await q<{ step_id: string; sql: string; duration_ms: string }>(db.client, `SELECT step_id, sql, duration_ms FROM pgshift.statements WHERE sql LIKE '$ pg_dump %'`);
    expect(cmds).toHaveLength(1);
    expect(cmds[0]!.step_id).toBe('backup:pg_dump');
    expect(cmds[0]!.sql).toMatch(/^\$ pg_dump --format=custom --file=\S+\.dump --no-password --verbose --compress=1 --snapshot=\S+$/);
    expect(Number(cmds[0]!.duration_ms)).toBeGreaterThan(0);
  });

  it('refuses a second pgshift on the same database, naming the holder', async () => {
    const loaded = loadPlan(writePlan(path.join(dir, 'b'), {}));
    const conn = resolveConnection(db.url);
    const confirm = () => Promise.resolve({ confirmed: false, method: 'declined' as const, by: 'test' });
    const first = await Engine.open({ phases: PHASE_REGISTRY, conn, loaded, confirm, mode: 'test' });
    try {
      let err: unknown;
      try {
        const second = await Engine.open({ phases: PHASE_REGISTRY, conn, loaded, confirm, mode: 'test' });
        await second.close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UserError);
      const msg = (err as Error).message;
      expect(msg).toMatch(/^another pgshift run is active on this database: "pgshift run by .+ pid \d+" \(backend pid \d+, user postgres/);
      // and through the CLI: exit 1, one line, a hint
      const io = captureIo();
      expect(await main(['--headless', '--phase', '1', '--plan', loaded.path, '--db', db.url], io)).toBe(1);
      expect(io.stderr[0]).toMatch(/^pgshift: another pgshift run is active on this database/);
      expect(io.stderr[1]).toMatch(/^hint: wait for it to finish/);
    } finally {
      await first.close();
    }
    // released with the first engine: a new one opens
    const third = await Engine.open({ phases: PHASE_REGISTRY, conn, loaded, confirm, mode: 'test' });
    await third.close();
  });

  it('resumes after the process is SIGKILLed mid-step: the interrupted step runs again, the finished ones are not repeated', async () => {
    const sub = path.join(dir, 'c');
    const file = writePlan(sub, { sql: { structure: ['sql/001_slow.sql'] } }, {
      'sql/001_slow.sql': `CREATE TABLE public.created_by_plan (id int PRIMARY KEY);\nINSERT INTO public.created_by_plan VALUES (1);\nSELECT pg_sleep(4);\n`,
    });
    const child = spawn(process.execPath, [path.join(root, 'bin/pgshift.js'), '--headless', '--until', '2', '--plan', file, '--db', db.url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b) => (out += String(b)));
    child.stderr.on('data', (b) => (out += String(b)));
    // wait until the journal shows the slow step running, then kill -9
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM pgshift.steps WHERE step_id = 'sql:sql/001_slow.sql' AND status = 'running'`).catch(() => [{ n: 0 }]);
      if (r[0]!.n > 0) break;
      if (Date.now() > deadline) throw new Error(`the slow step never started:\n${out}`);
      await new Promise((r2) => setTimeout(r2, 100));
    }
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const killedRun = await q<{ run_id: string; ended_at: Date | null }>(db.client, `SELECT run_id, ended_at FROM pgshift.runs ORDER BY run_id DESC LIMIT 1`);
    expect(killedRun[0]!.ended_at).toBeNull();
    // the killed transaction left nothing behind
    expect((await q(db.client, `SELECT to_regclass('public.created_by_plan') AS r`))[0]!.r).toBeNull();
    const doneBefore = await q<{ step_id: string }>(db.client, `SELECT step_id FROM pgshift.steps WHERE status IN ('done', 'already-done') AND run_id = $1`, [killedRun[0]!.run_id]);

    const io = captureIo();
    const code = await main(['--headless', '--until', '2', '--plan', file, '--db', db.url], io);
    const text = io.text();
    expect(code, text).toBe(0);
    expect(text).toContain(`↻ resuming: run ${killedRun[0]!.run_id} stopped in step sql:sql/001_slow.sql (running)`);
    expect((await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM public.created_by_plan`))[0]!.n).toBe(1);
    const old = await q<{ status: string }>(db.client, `SELECT status FROM pgshift.runs WHERE run_id = $1`, [killedRun[0]!.run_id]);
    expect(old[0]!.status).toBe('interrupted');
    // steps finished before the kill were not run again (except those that re-check on every run: preflight, reports)
    const probe = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded: loadPlan(file), confirm: () => Promise.resolve({ confirmed: false, method: 'declined', by: 't' }), mode: 'plan', dryRun: true });
    const rerunnable = new Set((await probe.plan([1, 2])).flatMap((p) => p.steps.filter((st) => st.rerunnable).map((st) => st.id)));
    await probe.close();
    const once = doneBefore.map((x) => x.step_id).filter((id) => !rerunnable.has(id));
    expect(once).toEqual(expect.arrayContaining(['backup:pg_dump', 'backup:verify']));
    for (const s of once) {
      expect(text).toMatch(new RegExp(`✓ ${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}  already done`));
    }
  });
});
