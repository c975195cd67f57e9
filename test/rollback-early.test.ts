import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Engine } from '../source/engine/engine.js';
import { flagConfirmer } from '../source/engine/confirm.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan, type LoadedPlan } from '../source/plan/load.js';
import type { ConfirmRequest, EngineEvent } from '../source/engine/types.js';
import { examplePlan } from './fixtures/swap.js';
import { autoPartitionFunctionSql, autoPartitionTriggerSql } from '../source/structure/autopartition.js';
import { takeSnapshot, diffSnapshots, tableFingerprint, type CatalogSnapshot } from '../source/snapshot.js';
import { catalogFingerprint } from './helpers/catalog.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PHASE_REGISTRY } from '../phases/index.js';

/**
 * Rollback BEFORE any swap, after the real phases 1–3: what phase 2 built (partitioned tables, partitions, the
 * auto-partition trigger on pilot_programs and its function, the plan's SQL files) and what phase 3 left (the online
 * copy's change capture, the copy checkpoint) goes; the catalog equals the pre-migration snapshot; data is untouched.
 */

const TABLES = ['petri_observations', 'gasifier_observations', 'petri_observation_images', 'gasifier_alerts', 'pilot_programs', 'sites'];
const ROLLBACK_OBJECTS = ['created-objects', 'public.gasifier_observations_partitioned', 'public.petri_observations_partitioned'];

type StepDone = Extract<EngineEvent, { type: 'step-done' }>;

async function contents(c: pg.Client): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of TABLES) {
    const f = await tableFingerprint(c, 'public', t);
    out[t] = `${f.rows}:${f.hash}`;
  }
  return out;
}

async function one<T = Record<string, unknown>>(c: pg.Client, sql: string, params: unknown[] = []): Promise<T> {
  return (await c.query(sql, params)).rows[0] as T;
}

/** pgshift's own leftovers of a migration: capture logs and functions, auto-partition triggers and functions. */
async function leftovers(c: pg.Client): Promise<string[]> {
  const r = await c.query<{ x: string }>(`
    SELECT 'table ' || relname AS x FROM pg_class WHERE relnamespace = 'pgshift'::regnamespace AND relkind = 'r' AND relname LIKE 'log\\_%'
    UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
      WHERE (p.pronamespace = 'pgshift'::regnamespace AND p.proname LIKE 'capture\\_public%') OR p.proname = 'pgshift_auto_partition'
    UNION ALL SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname FROM pg_trigger WHERE tgname LIKE 'pgshift%'
    ORDER BY 1`);
  return r.rows.map((x) => x.x);
}

interface Harness {
  db: FreshDb;
  dir: string;
  loaded: LoadedPlan;
  engine: Engine;
  /** content hashes of the application's tables and the catalog, before phase 1 */
  before: Record<string, string>;
  snap0: CatalogSnapshot;
  /** the objects named with --confirm */
  confirms: Set<string>;
  requests: ConfirmRequest[];
  events: EngineEvent[];
}

/** A demo database (5,000 rows), the example plan with `over`, an engine answering like headless mode with --confirm. */
function harness(name: string, over: Record<string, unknown>, prepare?: (c: pg.Client, loaded: LoadedPlan) => Promise<void>): Harness {
  const h = { confirms: new Set<string>(), requests: [], events: [] } as unknown as Harness;
  beforeAll(async () => {
    h.db = await freshDatabase(name);
    h.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-rb-'));
    await createDemoDatabase(h.db.client, { rows: 5000 });
    h.loaded = loadPlan(examplePlan(h.dir, over));
    await prepare?.(h.db.client, h.loaded);
    h.before = await contents(h.db.client);
    h.snap0 = await takeSnapshot(h.db.client);
    const answer = flagConfirmer({ confirms: h.confirms, overrides: new Set(), operator: 'tester' });
    h.engine = await Engine.open({
      phases: PHASE_REGISTRY,
      conn: resolveConnection(h.db.url), loaded: h.loaded, mode: 'test', operator: 'tester',
      confirm: async (r) => (h.requests.push(r), answer(r)),
    });
    h.engine.on((x) => h.events.push(x));
  });
  afterAll(async () => {
    await h.engine?.close();
    await h.db?.drop();
    if (h.dir) fs.rmSync(h.dir, { recursive: true, force: true });
  });
  return h;
}

describe('rollback after phases 1–3 (online copy, nothing swapped)', () => {
  const h = harness('rollback_early', {
    copy: { mode: 'online', batchRows: 1000, pauseMs: 0 },
    locks: { timeoutMs: 500, attempts: 10, backoffMs: 50, maxBackoffMs: 500 },
  });
  beforeAll(async () => {
    const o = await h.engine.run({ phases: [1, 2, 3] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
  });

  it('the migration left what the rollback must remove', async () => {
    expect(await leftovers(h.db.client)).toEqual([
      'function pgshift.capture_public_gasifier_observations_' + (await captureSuffix(h.db.client, 'gasifier')) + '()',
      'function pgshift.capture_public_petri_observations_' + (await captureSuffix(h.db.client, 'petri')) + '()',
      'function pgshift_auto_partition()',
      'table ' + (await logName(h.db.client, 'gasifier')),
      'table ' + (await logName(h.db.client, 'petri')),
      expect.stringMatching(/^trigger gasifier_observations\.pgshift_capture$/),
      'trigger gasifier_observations.pgshift_capture_no_truncate',
      'trigger petri_observations.pgshift_capture',
      'trigger petri_observations.pgshift_capture_no_truncate',
      expect.stringMatching(/^trigger pilot_programs\.pgshift_autopart_[0-9a-f]{12}$/),
    ]);
    const s = await one<{ n: number }>(h.db.client, `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'public.gasifier_observations_partitioned'::regclass`);
    expect(s.n).toBeGreaterThan(20); // one per program + DEFAULT
    expect(diffSnapshots(h.snap0, await takeSnapshot(h.db.client)).length).toBeGreaterThan(50);
    // every artifact the forward steps wrote is in some step's undo footprint (so a rollback can forget it), but for
    // phase 1's (the backup and the snapshot outlive the migration) and the capture's (removed with the capture)
    const declared = new Set((await h.engine.planContext().forwardSteps()).flatMap((s) => (s.undo?.artifacts ?? []).map((a) => a.key)));
    const keys = (await h.db.client.query<{ key: string }>(`SELECT key FROM pgshift.artifacts ORDER BY key`)).rows.map((r) => r.key);
    expect(keys.filter((k) => k.startsWith('structure:') || k.startsWith('app-triggers:') || k === 'integrity-report' || k.startsWith('sql:')).length).toBeGreaterThan(4);
    expect(keys.filter((k) => !declared.has(k) && !/^(backup|snapshot:catalog|capture:.*)$/.test(k))).toEqual([]);
  });

  it('headless without --confirm: stops before the first destructive step and changes nothing', async () => {
    const fp = await catalogFingerprint(h.db.client);
    const o = await h.engine.run({ phases: ['rollback'] });
    expect(o.status).toBe('needs-confirmation');
    expect(o.message).toMatch(/rollback:created-objects needs confirmation: rollback created-objects/);
    expect(o.hint).toBe('to allow it in headless mode, pass --confirm created-objects');
    expect(await catalogFingerprint(h.db.client)).toBe(fp);
  });

  it('with --confirm for each object: everything built goes, the catalog equals the snapshot, data unchanged', async () => {
    for (const x of ROLLBACK_OBJECTS) h.confirms.add(x);
    const n0 = h.requests.length;
    const e0 = h.events.length;
    const o = await h.engine.run({ phases: ['rollback'] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const asked = h.requests.slice(n0);
    // nothing swapped: no swap-back question; every destructive step confirmed, by name, typed
    expect(asked.map((r) => `${r.stepId} ${r.kind} ${r.object} ${r.typed}`)).toEqual([
      'rollback:created-objects rollback created-objects true',
      'rollback:structure:public.gasifier_observations rollback public.gasifier_observations_partitioned true',
      'rollback:structure:public.petri_observations rollback public.petri_observations_partitioned true',
    ]);
    const conf = await h.db.client.query(`SELECT object, answer, method FROM pgshift.confirmations WHERE run_id = $1 ORDER BY id`, [o.runId]);
    expect(conf.rows).toEqual(ROLLBACK_OBJECTS.map((object) => ({ object, answer: 'confirmed', method: 'flag' })));

    const created = asked[0]!;
    // the plan's SQL-file tables are empty: dropped; the auto-partition trigger/function and capture triggers are not
    // this step's business (the table steps drop them with their own confirmation)
    expect(created.statements.some((s) => /^DROP TABLE (?=.*"public"."dashboards")(?=.*"public"."report_folders")/.test(s))).toBe(true);
    expect(created.statements.join('\n')).not.toMatch(/pgshift_autopart|pgshift_auto_partition|pgshift_capture/);

    const gas = asked[1]!;
    expect(gas.statements).toEqual([
      'DROP TRIGGER IF EXISTS "pgshift_capture" ON "public"."gasifier_observations"',
      'DROP TRIGGER IF EXISTS "pgshift_capture_no_truncate" ON "public"."gasifier_observations"',
      expect.stringMatching(/^DROP FUNCTION IF EXISTS "pgshift"."capture_public_gasifier_observations_[0-9a-f]{8}"\(\)$/),
      expect.stringMatching(/^DROP TABLE IF EXISTS "pgshift"."log_public_gasifier_observations_[0-9a-f]{8}"$/),
      // one transaction, its locks first: the targets of the copy's foreign keys, then the copy (as phase 5's DROP)
      'BEGIN', expect.stringMatching(/^SET LOCAL lock_timeout = \d+$/),
      'LOCK TABLE "public"."pilot_programs" IN ACCESS EXCLUSIVE MODE',
      'LOCK TABLE "public"."sites" IN ACCESS EXCLUSIVE MODE',
      'LOCK TABLE "public"."gasifier_observations_partitioned" IN ACCESS EXCLUSIVE MODE',
      expect.stringMatching(/^DROP TRIGGER "pgshift_autopart_[0-9a-f]{12}" ON "public"."pilot_programs"$/),
      'DROP FUNCTION "public"."pgshift_auto_partition"()',
      'DROP TABLE "public"."gasifier_observations_partitioned"',
      'COMMIT',
    ]);
    expect(gas.impact.join('\n')).toMatch(/public\.gasifier_observations_partitioned and its \d+ partition\(s\) are dropped/);
    expect(gas.impact.join('\n')).toMatch(/function public\.pgshift_auto_partition\(\) is dropped: no other trigger uses it/);
    expect(gas.impact.join('\n')).toMatch(/the copy checkpoint of public\.gasifier_observations \([\d,]+ rows\) is cleared/);
    expect(asked[2]!.statements.slice(-2)).toEqual(['DROP TABLE "public"."petri_observations_partitioned"', 'COMMIT']);
    expect(asked[2]!.statements.join('\n')).not.toMatch(/autopart|auto_partition/);

    // the proof
    expect(await leftovers(h.db.client)).toEqual([]);
    expect(diffSnapshots(h.snap0, await takeSnapshot(h.db.client))).toEqual([]);
    expect(await contents(h.db.client)).toEqual(h.before);
    const verify = h.events.slice(e0).find((e): e is StepDone => e.type === 'step-done' && e.stepId === 'rollback:verify')!;
    expect(verify.summary).toMatch(/catalog matches the pre-migration snapshot/);
    expect(verify.summary).not.toMatch(/left in place/);
    const j = await one<{ cp: number; st: number; art: string[] }>(h.db.client, `
      SELECT (SELECT count(*)::int FROM pgshift.checkpoints) AS cp, (SELECT count(*)::int FROM pgshift.step_state WHERE step_id <> 'rollback:verify') AS st,
             ARRAY(SELECT key FROM pgshift.artifacts WHERE key NOT IN ('backup', 'backup:before-rollback') ORDER BY key) AS art`);
    expect(j).toEqual({ cp: 0, st: 0, art: [] });
    // a new program no longer creates a partition anywhere (the trigger is gone): the insert just works
    await h.db.client.query(`INSERT INTO public.pilot_programs (name) VALUES ('after rollback')`);
    await h.db.client.query(`DELETE FROM public.pilot_programs WHERE name = 'after rollback'`);
  });

  it('a second rollback finds nothing to do; a new run of phases 1–3 starts over and succeeds', async () => {
    const fp = await catalogFingerprint(h.db.client);
    const r0 = h.requests.length;
    const e1 = h.events.length;
    let o = await h.engine.run({ phases: ['rollback'] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    expect(h.requests.length).toBe(r0); // nothing destructive left to ask about
    expect(h.events.slice(e1).filter((e): e is StepDone => e.type === 'step-done').map((e) => e.status).every((s) => s === 'already-done')).toBe(true);
    expect(await catalogFingerprint(h.db.client)).toBe(fp);
    const e0 = h.events.length;
    o = await h.engine.run({ phases: [1, 2, 3] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const ran = h.events.slice(e0).filter((e): e is StepDone => e.type === 'step-done').map((e) => `${e.stepId} ${e.status}`);
    expect(ran).toContain('sql:sql/20250716_report_management_schema.sql done');
    expect(ran).toContain('structure:public.gasifier_observations done');
    expect(ran).toContain('copy:public.petri_observations done');
    const c = await one<{ a: number; b: number; d: number }>(h.db.client, `
      SELECT (SELECT count(*)::int FROM public.petri_observations) AS a, (SELECT count(*)::int FROM public.petri_observations_partitioned) AS b,
             (SELECT count(DISTINCT observation_id)::int FROM public.petri_observations_partitioned) AS d`);
    expect(c).toEqual({ a: 5000, b: 5000, d: 5000 });
  });
});

async function captureSuffix(c: pg.Client, which: 'petri' | 'gasifier'): Promise<string> {
  return (await logName(c, which)).slice(-8);
}
async function logName(c: pg.Client, which: 'petri' | 'gasifier'): Promise<string> {
  const r = await c.query<{ n: string }>(`SELECT relname AS n FROM pg_class WHERE relnamespace = 'pgshift'::regnamespace AND relname LIKE $1`, [`log\\_public\\_${which}%`]);
  return r.rows[0]!.n;
}

describe('rollback in the middle of phase 3 (batch copy stopped at a checkpoint)', () => {
  // an earlier pgshift migration of another table left its auto-partition trigger, using the same function: the
  // function exists before this migration and must survive its rollback
  const h = harness('rollback_midcopy', { copy: { mode: 'batch', batchRows: 500, pauseMs: 20 } }, async (c, loaded) => {
    await c.query(`CREATE TABLE public.legacy_programs (program_id uuid PRIMARY KEY)`);
    await c.query(autoPartitionFunctionSql('public', loaded.plan.locks.timeoutMs));
    await c.query(`REVOKE ALL ON FUNCTION public.pgshift_auto_partition() FROM PUBLIC`);
    await c.query(autoPartitionTriggerSql({ table: { schema: 'public', name: 'legacy_programs' }, trigger: 'legacy_autopart', fnSchema: 'public', parentOid: 0, base: 'legacy_obs', column: 'program_id' }));
  });

  it('clears the checkpoint with the table; a new run copies from zero, no duplicates', async () => {
    for (const x of ROLLBACK_OBJECTS) h.confirms.add(x);
    expect((await h.engine.run({ phases: [1, 2] })).status).toBe('completed');
    // phase 3, stopped by the operator after a few committed batches of the first table
    const stop = new AbortController();
    const off = h.engine.on((e) => {
      if (e.type === 'step-progress' && e.stepId === 'copy:public.petri_observations' && e.progress.done >= 1500) stop.abort();
    });
    let o = await h.engine.run({ phases: [3], signal: stop.signal });
    off();
    expect(o.status).toBe('aborted');
    const cp = await one<{ rows_done: string }>(h.db.client, `SELECT rows_done FROM pgshift.checkpoints WHERE step_id = 'copy:public.petri_observations'`);
    const copied = Number(cp.rows_done);
    expect(copied).toBeGreaterThanOrEqual(1500);
    expect(copied).toBeLessThan(5000);
    expect((await one<{ n: number }>(h.db.client, `SELECT count(*)::int AS n FROM public.petri_observations_partitioned`)).n).toBe(copied);
    // the copy step has no "done" state (killed or stopped): only its checkpoint remembers it
    expect((await h.db.client.query(`SELECT 1 FROM pgshift.step_state WHERE step_id = 'copy:public.petri_observations'`)).rowCount).toBe(0);

    const r0 = h.requests.length;
    o = await h.engine.run({ phases: ['rollback'] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const gas = h.requests.slice(r0).find((r) => r.object === 'public.gasifier_observations_partitioned')!;
    expect(gas.statements.some((x) => /^DROP TRIGGER "pgshift_autopart_[0-9a-f]{12}" ON "public"."pilot_programs"$/.test(x))).toBe(true);
    expect(gas.statements.join('\n')).not.toMatch(/DROP FUNCTION/);
    expect(gas.impact).toContain('function public.pgshift_auto_partition() is kept: still used by trigger(s) legacy_programs.legacy_autopart');
    const petri = h.requests.slice(r0).find((r) => r.object === 'public.petri_observations_partitioned')!;
    expect(petri.impact.join('\n')).toMatch(new RegExp(`the copy checkpoint of public\\.petri_observations \\(${copied.toLocaleString('en-US')} rows\\) is cleared: a new run copies from the first row`));
    expect((await h.db.client.query(`SELECT step_id FROM pgshift.checkpoints`)).rows).toEqual([]);
    expect((await h.db.client.query(`SELECT tgrelid::regclass::text AS t, tgname FROM pg_trigger WHERE tgname LIKE '%autopart%'`)).rows).toEqual([{ t: 'legacy_programs', tgname: 'legacy_autopart' }]);
    expect(diffSnapshots(h.snap0, await takeSnapshot(h.db.client))).toEqual([]);
    expect(await contents(h.db.client)).toEqual(h.before);

    // a new run: phase 2 rebuilds, the copy starts at row 0 (not at the old checkpoint), every row once
    const e0 = h.events.length;
    o = await h.engine.run({ phases: [1, 2, 3] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const copy = h.events.slice(e0).find((e): e is StepDone => e.type === 'step-done' && e.stepId === 'copy:public.petri_observations')!;
    // by pages: ~500 rows a batch (as many pages as hold them), so about ten batches
    expect(copy.summary).toMatch(/^5,000 rows in (9|10|11|12) batches/);
    expect(copy.summary).not.toMatch(/resumed/);
    const c = await one<{ a: number; b: number; d: number }>(h.db.client, `
      SELECT (SELECT count(*)::int FROM public.petri_observations) AS a, (SELECT count(*)::int FROM public.petri_observations_partitioned) AS b,
             (SELECT count(DISTINCT observation_id)::int FROM public.petri_observations_partitioned) AS d`);
    expect(c).toEqual({ a: 5000, b: 5000, d: 5000 });
    const rep = await one<{ value: { pass: boolean } }>(h.db.client, `SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`);
    expect(rep.value.pass).toBe(true);
  });
});

describe('rollback:verify when the catalog differs from the snapshot in a way pgshift did not make', () => {
  const h = harness('rollback_verify_differs', {});
  beforeAll(async () => {
    const o = await h.engine.run({ phases: [1], only: ['snapshot:catalog'] });
    expect(o.status).toBe('completed');
  });

  it('fails the run with a typed failure naming the difference (never a "done"), and keeps the snapshot', async () => {
    // someone else's change after the snapshot: not pgshift's to undo, and the rollback cannot prove the catalog equal
    await h.db.client.query(`ALTER TABLE public.sites ADD COLUMN added_by_someone_else text`);
    for (const o of ROLLBACK_OBJECTS) h.confirms.add(o);
    const n = h.events.length;
    const o = await h.engine.run({ phases: ['rollback'] });
    expect(o.status).toBe('failed');
    expect(o.message).toMatch(/^rollback:verify: the catalog differs from the pre-migration snapshot in \d+ place\(s\):[\s\S]*added_by_someone_else/);
    const failed = h.events.slice(n).filter((e) => e.type === 'step-failed');
    expect(failed.map((e) => e.type === 'step-failed' && [e.stepId, e.reason])).toEqual([['rollback:verify', 'failed']]);
    expect(h.events.slice(n).some((e) => e.type === 'step-done' && e.stepId === 'rollback:verify')).toBe(false);
    const st = await one<{ status: string }>(h.db.client, `SELECT status FROM pgshift.step_state WHERE step_id = 'rollback:verify'`);
    expect(st.status).toBe('failed');
    // the snapshot stays: a failed verification forgets nothing
    const snap = await one<{ n: number }>(h.db.client, `SELECT count(*)::int AS n FROM pgshift.artifacts WHERE key = 'snapshot:catalog'`);
    expect(snap.n).toBe(1);
  });
});
