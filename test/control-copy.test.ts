import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import pg from 'pg';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createDemoDatabase } from '../source/demo/schema.js';
import { main } from '../source/cli.js';
import { parseControl } from '../source/copy/control.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { first } from '../source/db/session.js';
import { captureIo } from './helpers/io.js';
import { PETRI_COLS, PETRI_ENTRY, contentHash, createPetriTarget, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROWS = 12_000;
const FIRST = 1_000;
const STEP = 'copy:public.petri_observations';

/** `pgshift control …` as a second process, the way an operator runs it from another terminal. */
function control(url: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/pgshift.js'), 'control', ...args, '--db', url, '--operator', 'oncall', '--no-wait'],
      { env: { ...process.env, CI: 'true' } }, (e, out, err) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err }));
  });
}

describe('live control of a running copy (pgshift control, through pgshift.control)', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('control_copy');
    dir = tmpDir('control-copy');
    await createDemoDatabase(db.client, { rows: ROWS });
    await createPetriTarget(db.client);
    // the application's role: not a superuser, writes through grants only
    await db.client.query(`DO $$ BEGIN CREATE ROLE ctl_app LOGIN PASSWORD 'app'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    await db.client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ctl_app`);
    await db.client.query(`GRANT USAGE ON SCHEMA public TO ctl_app`);
    await db.client.query(`GRANT service_role TO ctl_app`); // the demo's RLS policies let service_role write
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const poll = async <T>(_what: string, fn: () => Promise<T | null | undefined | false>): Promise<T> => {
    // waits on state committed in the database, never on a guessed duration (the test's own timeout bounds it)
    for (;;) {
      const v = await fn();
      if (v) return v;
      await new Promise((r) => setImmediate(r));
      await db.client.query('SELECT 1'); // one round trip between looks
    }
  };
  const checkpoint = async () => {
    const r = await db.client.query(`SELECT rows_done::int AS n, position FROM pgshift.checkpoints WHERE step_id = $1`, [STEP]);
    return r.rows[0] as { n: number; position: { batches: number; done: boolean } } | undefined;
  };
  const applied = async (id: number) => {
    const r = await db.client.query<{ applied_at: Date | null; result: string; run: number }>(`SELECT applied_at, result, applied_run::int AS run FROM pgshift.control WHERE id = $1`, [id]);
    const row = r.rows[0];
    return row?.applied_at ? row : null;
  };
  const idOf = (out: string) => Number(/control #(\d+)/.exec(out)![1]);

  it('rejects bad commands with exit 2, naming what is wrong, and writes nothing', async () => {
    expect(() => parseControl(['batch', '50'])).toThrow(/batch expects a whole number of rows per batch from 100 to 1,000,000, got "50"/);
    expect(() => parseControl(['throttle'])).toThrow(/throttle needs a number/);
    expect(() => parseControl(['stop'])).toThrow(/unknown control command "stop"/);
    expect(() => parseControl(['pause', '3'])).toThrow(/pause takes no value/);
    const io = captureIo();
    expect(await main(['control', 'batch', 'many', '--db', db.url], io)).toBe(2);
    expect(io.text()).toContain('batch expects a whole number');
    // no journal yet in this database: nothing to control, nothing created
    expect(await main(['control', 'pause', '--db', db.url], io)).toBe(2);
    expect(io.text()).toContain('no pgshift journal in this database');
    const j = await db.client.query<{ t: string | null }>(`SELECT to_regclass('pgshift.control') AS t`);
    expect(j.rows[0]!.t).toBeNull();
  });

  it('is paused and resumed from another process, its batch size changed; each command journaled; no row lost or doubled', async () => {
    // the plan rests 60 s between batches: only the commands below can move the copy along
    const file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY], copy: { batchRows: FIRST, pauseMs: 60_000, order: 'key' }, pruning: { queries: [] } });
    const o = await openEngine(db.url, file);
    const ac = new AbortController();
    const running = o.engine.run({ phases: [3], only: [STEP], signal: ac.signal });
    try {
      // the first batch commits, then the copy rests
      await poll('first batch', async () => ((await checkpoint())?.position.batches ?? 0) >= 1);
      // the application keeps writing through its own role meanwhile (the copy is bounded by the key at its start)
      const app = new URL(db.url);
      app.username = 'ctl_app';
      app.password = 'app';
      const before = await db.client.query(`SELECT count(*)::int AS n, sum(growth_index)::text AS s FROM public.petri_observations`);

      const p = await control(db.url, 'pause');
      expect(p.code, p.err).toBe(0);
      expect(p.out).toMatch(/control #\d+: pause \(by oncall\) written to pgshift.control; run \d+ \(.*\) is live/);
      const pause = await poll('pause applied', () => applied(idOf(p.out)));
      expect(pause.result).toBe('applied: paused after batch 1');
      const atPause = (await checkpoint())!;

      // while paused: a new batch size and no rest; both applied, and still no batch ran
      const b = await control(db.url, 'batch', '700');
      const t = await control(db.url, 'throttle', '0');
      expect((await poll('batch applied', () => applied(idOf(b.out)))).result).toBe('applied: batches of 700 rows from batch 2');
      expect((await poll('throttle applied', () => applied(idOf(t.out)))).result).toBe('applied: 0 ms rest between batches from batch 2');
      expect(await checkpoint()).toEqual(atPause);
      expect(atPause).toMatchObject({ n: FIRST, position: { batches: 1 } });
      const paused = o.events.find((e) => e.type === 'step-progress' && e.progress.state === 'paused');
      expect(paused && paused.type === 'step-progress' && paused.progress.reason).toMatch(/^paused by oncall \(pgshift control\): no batch runs, no lock held/);

      // paused, the copy holds no lock: the application's role writes (and back: the sums stay)
      const c = new pg.Client({ connectionString: app.toString() });
      await c.connect();
      try {
        await c.query(`SET lock_timeout = '1s'`);
        // a row the copy has not reached yet (it walks created_at upwards): the copy must carry the application's write
        const id = first((await c.query<{ observation_id: string }>(`SELECT observation_id FROM public.petri_observations WHERE growth_index IS NOT NULL ORDER BY created_at DESC LIMIT 1`)).rows, 'observation').observation_id;
        expect((await c.query(`UPDATE public.petri_observations SET growth_index = growth_index + 1 WHERE observation_id = $1`, [id])).rowCount).toBe(1);
        expect((await c.query(`UPDATE public.petri_observations SET growth_index = growth_index - 1 WHERE observation_id = $1`, [id])).rowCount).toBe(1);
      } finally {
        await c.end();
      }

      const r = await control(db.url, 'resume');
      expect((await poll('resume applied', () => applied(idOf(r.out)))).result).toBe('applied: resumed after batch 1');
      const out = await running;
      expect(out.status, o.logs().join('\n')).toBe('completed');

      // every row once: the rest in batches of 700
      const cp = (await checkpoint())!;
      expect(cp.n).toBe(ROWS);
      expect(cp.position).toMatchObject({ done: true, batches: 1 + Math.ceil((ROWS - FIRST) / 700) });
      const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
      const n = await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id');
      expect(n).toEqual(a);
      const after = await db.client.query(`SELECT count(*)::int AS n, sum(growth_index)::text AS s FROM public.petri_observations_partitioned`);
      expect(after.rows[0]).toEqual(before.rows[0]);

      // the journal: each command with who, from where, and what the copy did with it
      const rows = await db.client.query(`SELECT command, value, issued_by, issued_from, result, applied_step FROM pgshift.control ORDER BY id`);
      expect(rows.rows).toEqual([
        { command: 'pause', value: null, issued_by: 'oncall', issued_from: 'pgshift control', result: 'applied: paused after batch 1', applied_step: STEP },
        { command: 'batch', value: 700, issued_by: 'oncall', issued_from: 'pgshift control', result: 'applied: batches of 700 rows from batch 2', applied_step: STEP },
        { command: 'throttle', value: 0, issued_by: 'oncall', issued_from: 'pgshift control', result: 'applied: 0 ms rest between batches from batch 2', applied_step: STEP },
        { command: 'resume', value: null, issued_by: 'oncall', issued_from: 'pgshift control', result: 'applied: resumed after batch 1', applied_step: STEP },
      ]);
      expect(o.logs().join('\n')).toMatch(/control #\d+ from oncall \(pgshift control\): pause — applied: paused after batch 1/);
      // each batch statement is journaled with its duration and row count, in the batch's own transaction
      // (the last batch reaches the upper bound; only when the rows end exactly on a batch's end does an empty one follow)
      const st = await db.client.query<{ n: number; empty: number; rows: number }>(
        `SELECT count(*) FILTER (WHERE rows > 0)::int AS n, count(*) FILTER (WHERE rows = 0)::int AS empty, sum(rows)::int AS rows FROM pgshift.statements WHERE step_id = $1 AND sql LIKE '-- batch:%'`, [STEP],
      );
      expect(st.rows[0]).toMatchObject({ n: cp.position.batches, rows: ROWS });
      expect(st.rows[0]!.empty).toBeLessThanOrEqual(1);
    } finally {
      ac.abort(); // a failed assertion must not wait for a copy that rests 60 s between batches
      await running.catch(() => {});
      await o.engine.close();
    }
  });

  it('never applies a command issued before the run started (marked expired)', async () => {
    await db.client.query(`TRUNCATE public.petri_observations_partitioned`);
    await db.client.query(`DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state`);
    const p = await control(db.url, 'pause');
    expect(p.out).toContain('no pgshift run is live on this database right now');
    const file = writePlan(path.join(dir, 'b'), { partition: [PETRI_ENTRY], copy: { batchRows: 5000 }, pruning: { queries: [] } });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: [STEP] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
    const r = await db.client.query<{ result: string }>(`SELECT result FROM pgshift.control WHERE id = $1`, [idOf(p.out)]);
    expect(first(r.rows, 'control command').result).toMatch(/^expired: issued before run \d+ started, not applied$/);
    expect((await checkpoint())!.n).toBe(ROWS);
  });

  it('says WAITING FOR LOCK with the holder while a session holds a lock the copy needs, then goes on', async () => {
    await db.client.query(`TRUNCATE public.petri_observations_partitioned`);
    await db.client.query(`DO $$ BEGIN IF to_regclass('pgshift.checkpoints') IS NOT NULL THEN DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state; END IF; END $$`);
    const app = new URL(db.url);
    app.username = 'ctl_app';
    app.password = 'app';
    const file = writePlan(path.join(dir, 'c'), {
      partition: [PETRI_ENTRY], copy: { batchRows: 4000 }, pruning: { queries: [] },
      locks: { timeoutMs: 200, attempts: 100, backoffMs: 50, maxBackoffMs: 200 },
    });
    const o = await openEngine(db.url, file);
    // the application's role holds SHARE on the new table (as a long report with LOCK would): the copy's INSERT waits
    const holder = new pg.Client({ connectionString: app.toString(), application_name: 'report-job' });
    holder.on('error', () => {});
    await holder.connect();
    const pid = Number((await holder.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p);
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE public.petri_observations_partitioned IN SHARE MODE');
    const ac = new AbortController();
    const running = o.engine.run({ phases: [3], only: [STEP], signal: ac.signal });
    try {
      const waiting = await (async () => {
        for (;;) {
          const e = o.events.find((x) => x.type === 'step-progress' && x.progress.state === 'waiting-lock');
          if (e && e.type === 'step-progress') return e;
          await new Promise((r) => setTimeout(r, 20)); // the copy retries under lock_timeout meanwhile
        }
      })();
      expect(waiting.progress.reason).toMatch(new RegExp(`^pid ${pid} \\(report-job\\) holds Share on public\\.petri_observations_partitioned · retry \\d+/100$`));
      expect((await checkpoint())!.n).toBe(0);
      await holder.query('ROLLBACK');
      const out = await running;
      expect(out.status, o.logs().join('\n')).toBe('completed');
      expect((await checkpoint())!.n).toBe(ROWS);
      const last = o.events.filter((x) => x.type === 'step-progress').at(-1);
      expect(last && last.type === 'step-progress' && last.progress.state).toBe('running');
    } finally {
      ac.abort();
      await running.catch(() => {});
      await o.engine.close();
      await holder.end().catch(() => {});
    }
  });
});
