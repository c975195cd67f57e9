import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import type { ConfirmRequest, EngineEvent } from '../source/engine/types.js';
import { buildFixture, examplePlan, writeIntegrityReport } from './fixtures/swap.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { first } from '../source/db/session.js';

describe('swap: one short exclusive transaction, retried under lock_timeout', () => {
  let db: FreshDb;
  let dir: string;
  let engine: Engine;
  const requests: ConfirmRequest[] = [];
  const events: EngineEvent[] = [];

  beforeAll(async () => {
    db = await freshDatabase('swap');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-swap-'));
    await createDemoDatabase(db.client, { rows: 6000 });
    const loaded = loadPlan(examplePlan(dir, { locks: { timeoutMs: 400, attempts: 30, backoffMs: 100, maxBackoffMs: 400 } }));
    engine = await Engine.open({
      phases: PHASE_REGISTRY,
      conn: resolveConnection(db.url), loaded, mode: 'test', operator: 'tester',
      confirm: (r) => {
        requests.push(r);
        // never cancel other sessions in these tests: pgshift must wait for them with lock_timeout retries
        if (r.kind === 'cancel' || r.kind === 'terminate') return Promise.resolve({ confirmed: false, method: 'declined', by: 'tester' });
        return Promise.resolve({ confirmed: true, method: 'yes', by: 'tester' });
      },
    });
    engine.on((e) => events.push(e));
    expect((await engine.run({ phases: [1], only: ['snapshot:catalog'] })).status).toBe('completed');
    for (const t of loaded.tables) await buildFixture(engine, t);
    const p4 = await engine.run({ phases: [4] });
    expect(p4.message ?? '').toBe('');
    expect(p4.status).toBe('completed');
  });
  afterAll(async () => {
    await engine?.close();
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses the swap while the integrity report is missing or failed ("swap before the copy is verified")', async () => {
    let o = await engine.run({ phases: [5], only: ['swap:public.petri_observations'] });
    expect(o.status).toBe('stopped');
    expect(o.message).toMatch(/swap before the copy is verified: no integrity report/);
    await writeIntegrityReport(engine, engine.opts.loaded.tables, false);
    o = await engine.run({ phases: [5], only: ['swap:public.petri_observations'] });
    expect(o.status).toBe('stopped');
    expect(o.message).toMatch(/did not pass/);
    const r = await db.client.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE relname = 'petri_observations' AND relnamespace = 'public'::regnamespace`);
    expect(first(r.rows, 'pg_class row').relkind).toBe('r');
    const refused = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.confirmations WHERE answer = 'refused' AND kind = 'rename'`);
    expect(refused.rows[0]!.n).toBe(2);
  });

  it('batch mode: refuses under the lock when writes reached the old table after the copy, and renames nothing', async () => {
    await writeIntegrityReport(engine, engine.opts.loaded.tables, true);
    await db.client.query(`INSERT INTO public.petri_observations (program_id, site_id, petri_code, created_at)
                           SELECT program_id, site_id, 'LATE-1', '2025-06-01' FROM public.sites LIMIT 1`);
    const o = await engine.run({ phases: [5], only: ['swap:public.petri_observations'] });
    expect(o.status).toBe('failed');
    expect(o.message).toMatch(/writes reached the old table after the batch copy/);
    const r = await db.client.query(`SELECT to_regclass('public.petri_observations_old') AS old, (SELECT relkind FROM pg_class WHERE oid = 'public.petri_observations'::regclass) AS k`);
    expect(r.rows[0]).toEqual({ old: null, k: 'r' });
    // catch the copy up (what a re-run of phase 3 would do) for the next test
    await db.client.query(`INSERT INTO public.petri_observations_partitioned SELECT * FROM public.petri_observations WHERE petri_code = 'LATE-1'`);
  });

  it('a session holding a lock: nobody waits longer than lock_timeout per attempt, the swap retries and succeeds after it ends', async () => {
    const url = db.url;
    const blocker = new pg.Client({ connectionString: url });
    const probe = new pg.Client({ connectionString: url });
    await blocker.connect();
    await probe.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM public.petri_observations'); // ACCESS SHARE until COMMIT
    const before = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations`);
    let stop = false;
    let maxWait = 0;
    let probes = 0;
    const probing = (async () => {
      while (!stop) {
        const t0 = performance.now();
        await probe.query(`SELECT observation_id FROM public.petri_observations LIMIT 1`);
        maxWait = Math.max(maxWait, performance.now() - t0);
        probes++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // the blocker lets go once pgshift has given up its lock request three times (progress, not a clock)
    const n0 = events.length;
    const retries = () => events.slice(n0).filter((e) => e.type === 'step-log' && /retry \d+\/30/.test(e.message)).length;
    let released = false;
    const off = engine.on(() => {
      if (!released && retries() >= 3) {
        released = true;
        void blocker.query('COMMIT');
      }
    });
    const o = await engine.run({ phases: [5], only: ['swap:public.petri_observations'] });
    off();
    stop = true;
    await probing;
    await blocker.end();
    await probe.end();
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    expect(released).toBe(true); // it waited for the blocker, retrying, and went through once it was gone
    expect(retries()).toBeGreaterThanOrEqual(3);
    expect(probes).toBeGreaterThan(20);
    // a probe queued behind the swap's lock request waits at most one lock_timeout (400 ms) plus the swap itself
    expect(maxWait).toBeLessThan(400 + 450);
    const logs = events.filter((e) => e.type === 'step-log' && e.stepId === 'swap:public.petri_observations').map((e) => (e as { message: string }).message);
    expect(logs.some((m) => /retry \d+\/30/.test(m))).toBe(true);
    expect(logs.some((m) => /hold locks on public\.petri_observations/.test(m))).toBe(true);
    // the blocker is idle in transaction: a cancel would do nothing, so pgshift offers to terminate it (declined here)
    expect(requests.some((r) => r.kind === 'terminate' && /^pid \d+$/.test(r.object) && r.statements[0]!.startsWith('SELECT pg_terminate_backend('))).toBe(true);

    // the catalog: names, views, FKs and sequences followed the swap
    const k = await db.client.query(`SELECT (SELECT relkind FROM pg_class WHERE oid = 'public.petri_observations'::regclass) AS k,
                                            to_regclass('public.petri_observations_old') IS NOT NULL AS old,
                                            to_regclass('public.petri_observations_partitioned') AS target`);
    expect(k.rows[0]).toEqual({ k: 'p', old: true, target: null });
    const pk = await db.client.query(`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'public.petri_observations'::regclass AND contype = 'p'`);
    expect(pk.rows[0]).toEqual({ conname: 'petri_observations_pkey', def: 'PRIMARY KEY (observation_id, created_at)' });
    const oldPk = await db.client.query<{ conname: string }>(`SELECT conname FROM pg_constraint WHERE conrelid = 'public.petri_observations_old'::regclass AND contype = 'p'`);
    expect(first(oldPk.rows, 'old primary key').conname).toBe('petri_observations_pkey_old');
    const views = await db.client.query<{ relname: string }>(`SELECT DISTINCT v.relname FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                                          WHERE d.refobjid = $1::regclass AND v.relname <> $2 ORDER BY 1`, ['public.petri_observations', 'petri_observations']);
    expect(views.rows.map((r) => r.relname)).toEqual(['petri_observations_summary', 'petri_observations_with_names']);
    const oldViews = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE d.refobjid = 'public.petri_observations_old'::regclass AND r.ev_class <> d.refobjid`);
    expect(oldViews.rows[0]!.n).toBe(0);
    const grants = await db.client.query<{ v: boolean }>(`SELECT has_table_privilege('authenticated', 'public.petri_observations_with_names', 'SELECT') AS v`);
    expect(grants.rows[0]!.v).toBe(true);
    const fk = await db.client.query(`SELECT confrelid::regclass::text AS ref, convalidated, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'petri_observation_images_observation_id_fkey'`);
    expect(fk.rows[0]).toEqual({
      ref: 'petri_observations', convalidated: false,
      def: 'FOREIGN KEY (observation_id, observation_created_at) REFERENCES petri_observations(observation_id, created_at) ON DELETE CASCADE NOT VALID',
    });
    const seq = await db.client.query<{ s: string | null }>(`SELECT pg_get_serial_sequence('public.petri_observations', 'observation_seq') AS s`);
    expect(seq.rows[0]!.s).toBe('public.petri_observations_observation_seq_seq');
    // the swap artifact records the lock time; the data is all there and the app's writes work unchanged
    const a = await db.client.query<{ value: { lockHeldMs: number; attempts: number } }>(`SELECT value FROM pgshift.artifacts WHERE key = 'swap:public.petri_observations'`);
    expect(first(a.rows, 'swap artifact').value.lockHeldMs).toBeGreaterThanOrEqual(0);
    expect(first(a.rows, 'swap artifact').value.lockHeldMs).toBeLessThan(2000);
    expect(first(a.rows, 'swap artifact').value.attempts).toBeGreaterThan(1);
    const after = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations`);
    expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
    const ins = await db.client.query<{ observation_seq: string }>(`INSERT INTO public.petri_observations (program_id, site_id, petri_code, created_at)
                                        SELECT program_id, site_id, 'AFTER-SWAP', '2025-07-02' FROM public.sites LIMIT 1 RETURNING observation_seq`);
    const maxSeq = await db.client.query<{ m: string }>(`SELECT max(observation_seq) AS m FROM public.petri_observations_old`);
    expect(BigInt(first(ins.rows, 'inserted observation').observation_seq)).toBeGreaterThan(BigInt(maxSeq.rows[0]!.m));
    const n = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations_with_names WHERE petri_code = 'AFTER-SWAP'`);
    expect(n.rows[0]!.n).toBe(1);

    // idempotent: a second run detects "already swapped" from the catalog
    await db.client.query(`DELETE FROM pgshift.step_state WHERE step_id = 'swap:public.petri_observations'`);
    const again = await engine.run({ phases: [5], only: ['swap:public.petri_observations'] });
    expect(again.status).toBe('completed');
    expect(events.some((e) => e.type === 'step-done' && e.stepId === 'swap:public.petri_observations' && e.status === 'already-done')).toBe(true);
  });

  it('identity columns: the new identity sequence continues past the copied values (gasifier reading_no)', async () => {
    const o = await engine.run({ phases: [5], only: ['swap:public.gasifier_observations', 'validate-fks:public.gasifier_observations'] });
    expect(o.message ?? '').toBe('');
    const max = await db.client.query<{ m: string }>(`SELECT max(reading_no) AS m FROM public.gasifier_observations_old`);
    const ins = await db.client.query<{ reading_no: string }>(`INSERT INTO public.gasifier_observations (program_id, site_id, gasifier_code, created_at)
                                        SELECT program_id, site_id, 'G-NEW', now() FROM public.sites LIMIT 1 RETURNING reading_no`);
    expect(BigInt(first(ins.rows, 'inserted reading').reading_no)).toBeGreaterThan(BigInt(max.rows[0]!.m));
    const fk = await db.client.query(`SELECT convalidated, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = 'gasifier_alerts_observation_id_fkey'`);
    expect(fk.rows[0]).toEqual({ convalidated: true, def: 'FOREIGN KEY (observation_id, program_id) REFERENCES gasifier_observations(observation_id, program_id)' });
  });
});
