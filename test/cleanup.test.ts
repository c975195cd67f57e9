import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import { flagConfirmer } from '../source/engine/confirm.js';
import type { EngineEvent } from '../source/engine/types.js';
import { buildFixture, examplePlan, writeIntegrityReport } from './fixtures/swap.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { first } from '../source/db/session.js';
import { PHASE_REGISTRY } from '../phases/index.js';

describe('cleanup: validate, analyze, and DROP only after retention (or --force-retention + typed name)', () => {
  let db: FreshDb;
  let dir: string;
  let planFile: string;

  const open = async (confirms: string[], overrides: string[] = []) => {
    const o = new Set(overrides);
    const e = await Engine.open({
      phases: PHASE_REGISTRY,
      conn: resolveConnection(db.url), loaded: loadPlan(planFile), mode: 'test', operator: 'tester', overrides: o,
      confirm: flagConfirmer({ confirms: new Set(confirms), overrides: o, operator: 'tester' }),
    });
    const events: EngineEvent[] = [];
    e.on((x) => events.push(x));
    return { e, events };
  };

  beforeAll(async () => {
    db = await freshDatabase('cleanup');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-cleanup-'));
    await createDemoDatabase(db.client, { rows: 3000 });
    planFile = examplePlan(dir, { partition: [(JSON.parse(fs.readFileSync(path.join(__dirname, '../examples/seed-plan/plan.json'), 'utf8')) as { partition: unknown[] }).partition[0]] });
    const { e } = await open([]);
    for (const t of e.opts.loaded.tables) await buildFixture(e, t);
    await writeIntegrityReport(e, e.opts.loaded.tables);
    expect((await e.run({ phases: [4] })).message ?? '').toBe('');
    await e.close();
  });
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('without --confirm the swap stops (needs-confirmation naming the object); with it, phase 5 runs and the drop is skipped until the retention date', async () => {
    let { e } = await open([]);
    let o = await e.run({ phases: [5] });
    await e.close();
    expect(o.status).toBe('needs-confirmation');
    expect(o.message).toBe('swap:public.petri_observations needs confirmation: rename public.petri_observations');

    const confirmed = await open(['public.petri_observations']);
    e = confirmed.e;
    const events = confirmed.events;
    o = await e.run({ phases: [5] });
    await e.close();
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const done = (id: string) => events.find((x) => x.type === 'step-done' && x.stepId === id) as Extract<EngineEvent, { type: 'step-done' }>;
    expect(done('validate-fks:public.petri_observations').summary).toBe('1 foreign key(s) validated');
    // every partition of the swapped-in table, as the catalog counts them
    const parts = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'public.petri_observations'::regclass`);
    expect(parts.rows[0]!.n).toBeGreaterThan(1);
    expect(done('analyze:public.petri_observations').summary).toMatch(new RegExp(`analyzed the parent and ${parts.rows[0]!.n} partition\\(s\\)`));
    const drop = done('drop:public.petri_observations_old');
    expect(drop.status).toBe('skipped');
    const until = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10);
    expect(drop.summary).toMatch(new RegExp(`^kept until ${until} \\d\\d:\\d\\d UTC`));
    const st = await db.client.query<{ analyzed: boolean }>(`SELECT reltuples >= 0 AS analyzed FROM pg_class WHERE oid = 'public.petri_observations'::regclass`);
    expect(first(st.rows, 'pg_class row').analyzed).toBe(true);
    const stats = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = 'petri_observations'`);
    expect(stats.rows[0]!.n).toBeGreaterThan(0); // the partitioned parent has statistics now
    // the ANALYZE yields to the application as autovacuum does: cost-based delay set for its transaction, journaled before it
    const an = await db.client.query<{ sql: string }>(`SELECT sql FROM pgshift.statements WHERE step_id = 'analyze:public.petri_observations' ORDER BY id`);
    const sqls = an.rows.map((r) => r.sql);
    expect(sqls.indexOf('SET LOCAL vacuum_cost_delay = 2')).toBeGreaterThanOrEqual(0);
    expect(sqls.indexOf('SET LOCAL vacuum_cost_delay = 2')).toBeLessThan(sqls.indexOf('ANALYZE "public"."petri_observations"'));
    expect((await db.client.query<{ x: boolean }>(`SELECT to_regclass('public.petri_observations_old') IS NOT NULL AS x`)).rows[0]!.x).toBe(true);
  });

  it('an early drop offered in the wizard and kept refused (Esc) skips the step and the run goes on', async () => {
    const o = new Set(['force-retention']);
    const asked: string[] = [];
    const e = await Engine.open({
      phases: PHASE_REGISTRY,
      conn: resolveConnection(db.url), loaded: loadPlan(planFile), mode: 'test', operator: 'tester', overrides: o,
      // what the wizard answers when the operator presses Esc on a refusal
      confirm: (r) => (asked.push(`${r.kind} ${r.object}: ${r.refusal ?? ''}`), Promise.resolve({ confirmed: false, method: 'refused', by: 'tester' })),
    });
    const events: EngineEvent[] = [];
    e.on((x) => events.push(x));
    const out = await e.run({ phases: [5], only: ['drop:public.petri_observations_old'] });
    await e.close();
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(/^drop public\.petri_observations_old: the retention period runs until /);
    expect(out.status).toBe('completed');
    const done = events.find((x) => x.type === 'step-done' && x.stepId === 'drop:public.petri_observations_old') as Extract<EngineEvent, { type: 'step-done' }>;
    expect(done.status).toBe('skipped');
    expect(done.summary).toMatch(/^not done: the retention period runs until /);
    expect((await db.client.query<{ kept: boolean }>(`SELECT to_regclass('public.petri_observations_old') IS NOT NULL AS kept`)).rows[0]!.kept).toBe(true);
  });

  it('--force-retention alone stops before the drop and names the --confirm to pass; with --confirm it drops, keeping the moved sequence', async () => {
    let { e } = await open(['public.petri_observations'], ['force-retention']);
    let o = await e.run({ phases: [5], only: ['drop:public.petri_observations_old'] });
    await e.close();
    expect(o.status).toBe('needs-confirmation');
    expect(o.message).toBe('drop:public.petri_observations_old needs confirmation: drop public.petri_observations_old');
    expect(o.hint).toBe('to allow it in headless mode, pass --confirm public.petri_observations_old');
    expect((await db.client.query<{ kept: boolean }>(`SELECT to_regclass('public.petri_observations_old') IS NOT NULL AS kept`)).rows[0]!.kept).toBe(true);
    const c = await db.client.query(`SELECT kind, object, answer FROM pgshift.confirmations WHERE step_id = 'drop:public.petri_observations_old' ORDER BY id`);
    expect(c.rows.at(-1)).toEqual({ kind: 'drop', object: 'public.petri_observations_old', answer: 'declined' });

    ({ e } = await open(['public.petri_observations_old'], ['force-retention']));
    o = await e.run({ phases: [5], only: ['drop:public.petri_observations_old'] });
    await e.close();
    expect(o.message ?? '').toBe('');
    const r = await db.client.query(`SELECT to_regclass('public.petri_observations_old') AS old, to_regclass('public.petri_observations_observation_seq_seq') IS NOT NULL AS seq`);
    expect(r.rows[0]).toEqual({ old: null, seq: true });
    const ins = await db.client.query<{ observation_seq: string }>(`INSERT INTO public.petri_observations (program_id, site_id, petri_code, created_at)
                                        SELECT program_id, site_id, 'AFTER-DROP', '2025-03-03' FROM public.sites LIMIT 1 RETURNING observation_seq`);
    expect(Number(first(ins.rows, 'inserted row').observation_seq)).toBeGreaterThan(3000);
    const trig = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname = 'pgshift_swap_reverse'`);
    expect(trig.rows[0]!.n).toBe(0);
    const conf = await db.client.query(`SELECT answer, method FROM pgshift.confirmations WHERE step_id = 'drop:public.petri_observations_old' ORDER BY id`);
    expect(conf.rows.at(-1)).toEqual({ answer: 'confirmed', method: 'flag' });
  });
});
