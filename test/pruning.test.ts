import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import { createDemoDatabase } from '../source/demo/schema.js';
import { retarget, scannedRelations } from '../source/copy/pruning.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { GASIFIER_ENTRY, PETRI_ENTRY, createGasifierTarget, createPetriTarget, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

describe('retarget: the qualified table name is replaced as a token', () => {
  const to = '"public"."petri_observations_partitioned"';
  it('replaces bare, quoted and mixed-case forms, and nothing else', () => {
    const sql = `SELECT * FROM public.petri_observations p JOIN PUBLIC.Petri_Observations q USING (x)
      JOIN "public"."petri_observations" r USING (x) JOIN public . petri_observations s USING (x)
      WHERE p.x = 'public.petri_observations' -- public.petri_observations
      AND EXISTS (SELECT 1 FROM public.petri_observations_summary) /* public.petri_observations */
      AND y IN (SELECT 1 FROM other.public.petri_observations) AND z = "public.petri_observations"`;
    const r = retarget(sql, 'public', 'petri_observations', to);
    expect(r.count).toBe(4);
    expect(r.sql).toContain(`FROM ${to} p JOIN ${to} q`);
    expect(r.sql).toContain(`JOIN ${to} r USING (x) JOIN ${to} s`);
    expect(r.sql).toContain(`'public.petri_observations' -- public.petri_observations`);
    expect(r.sql).toContain('public.petri_observations_summary');
    expect(r.sql).toContain('/* public.petri_observations */');
    expect(r.sql).toContain('other.public.petri_observations');
    expect(r.sql).toContain('"public.petri_observations"');
  });
  it('handles names that need quoting', () => {
    const r = retarget(`SELECT 1 FROM "Sales ""EU"""."Order Lines" WHERE x = 'it''s "Order Lines"'`, 'Sales "EU"', 'Order Lines', 'NEW');
    expect(r).toEqual({ sql: `SELECT 1 FROM NEW WHERE x = 'it''s "Order Lines"'`, count: 1 });
  });
  it('counts only scan nodes that ran', () => {
    const plan = {
      'Node Type': 'Append', 'Subplans Removed': 0,
      Plans: [
        { 'Node Type': 'Seq Scan', 'Relation Name': 'a', 'Actual Loops': 1 },
        { 'Node Type': 'Index Scan', 'Relation Name': 'b', 'Actual Loops': 0 },
        { 'Node Type': 'Aggregate', Plans: [{ 'Node Type': 'Bitmap Heap Scan', 'Relation Name': 'c', 'Actual Loops': 2 }] },
      ],
    };
    expect([...scannedRelations(plan)]).toEqual(['a', 'c']);
  });
});

describe('verify:pruning on the demo data', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('pruning');
    dir = tmpDir('pruning');
    await createDemoDatabase(db.client, { rows: 6000 });
    await createPetriTarget(db.client);
    await createGasifierTarget(db.client);
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reports partitions scanned out of total, plan-time and run-time pruning, and says when a query cannot prune', async () => {
    const file = writePlan(path.join(dir, 'a'), {
      partition: [PETRI_ENTRY, GASIFIER_ENTRY],
      pruning: {
        queries: [
          {
            name: 'one month', table: 'public.petri_observations',
            sql: `SELECT count(*), avg(growth_index) FROM public.petri_observations WHERE program_id = (SELECT program_id FROM public.pilot_programs ORDER BY name LIMIT 1) AND created_at >= TIMESTAMPTZ '2025-11-01' AND created_at < TIMESTAMPTZ '2025-12-01'`,
          },
          {
            name: 'one program (run-time pruning)', table: 'public.gasifier_observations',
            sql: `SELECT count(*), avg(measure) FROM public.gasifier_observations WHERE program_id = (SELECT program_id FROM public.pilot_programs ORDER BY name LIMIT 1)`,
          },
          { name: 'no key filter', table: 'public.petri_observations', sql: `SELECT count(*) FROM public.petri_observations WHERE growth_index > 50` },
          { name: 'wrapped key', table: 'public.petri_observations', sql: `SELECT count(*) FROM public.petri_observations WHERE date_trunc('month', created_at) = '2025-01-01'` },
          { name: 'writes are rolled back', table: 'public.petri_observations', sql: `DELETE FROM public.petri_observations WHERE created_at < '2024-02-01'` },
          { name: 'not in the plan', table: 'public.sites', sql: `SELECT 1 FROM public.sites` },
        ],
      },
    });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
    const step = o.events.find((e) => e.type === 'step-done' && e.stepId === 'verify:pruning');
    if (!step || step.type !== 'step-done') throw new Error('no pruning step');
    const rows = step.tables![0]!.rows;
    const verdict = (name: string) => rows.find((r) => r[0] === name)!;
    expect(verdict('one month')[6]).toBe('pruning works: 1 of 25 partitions scanned');
    expect(verdict('one month')[5]).toBe('1 / 25');
    expect(verdict('one program (run-time pruning)')[6]).toBe('pruning works: 1 of 21 partitions scanned');
    expect(verdict('no key filter')[6]).toBe('no pruning: all 25 partitions scanned — the query does not filter on created_at');
    expect(String(verdict('wrapped key')[6])).toMatch(/^no pruning: all 25 partitions scanned — the filter on created_at cannot be used for pruning/);
    expect(String(verdict('not in the plan')[6])).toContain('skipped: public.sites is not partitioned by this plan');
    for (const r of rows.slice(0, 3)) {
      expect(String(r[1])).toMatch(/^\d+\.\d ms$/);
      expect(Number(r[3])).toBeGreaterThan(0);
      expect(Number(r[4])).toBeGreaterThan(0);
    }
    // warned, never failed; the DELETE ran under EXPLAIN ANALYZE in a read-only transaction: nothing deleted
    expect(step.warnings?.some((w) => w.startsWith('no key filter: no pruning'))).toBe(true);
    const n = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations WHERE created_at < '2024-02-01'`);
    expect(n.rows[0]!.n).toBeGreaterThan(0);
    expect(String(verdict('writes are rolled back')[6])).toMatch(/could not run: cannot execute DELETE in a read-only transaction/);
    // the copy analyzed the new tree after its last batch; the pruning check uses those statistics instead of a second ANALYZE
    expect(o.logs().join('\n')).toContain('public.petri_observations_partitioned has statistics for the whole tree already');
    const an = await db.client.query<{ step_id: string }>(`SELECT step_id FROM pgshift.statements WHERE sql = 'ANALYZE "public"."petri_observations_partitioned"' ORDER BY id`);
    expect(an.rows.map((r) => r.step_id)).toEqual(['copy:public.petri_observations']);
  });

  it('analyzes the new tree itself when it has no statistics for the whole tree (the copy\'s ANALYZE lost or never run)', async () => {
    await db.client.query(`DELETE FROM pg_statistic WHERE starelid = 'public.petri_observations_partitioned'::regclass AND stainherit`);
    const file = writePlan(path.join(dir, 'b'), {
      partition: [PETRI_ENTRY],
      pruning: { queries: [{ name: 'one month', table: 'public.petri_observations', sql: `SELECT count(*) FROM public.petri_observations WHERE created_at >= TIMESTAMPTZ '2025-11-01' AND created_at < TIMESTAMPTZ '2025-12-01'` }] },
    });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['verify:pruning'] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
    expect(o.logs().join('\n')).toContain('ANALYZE public.petri_observations_partitioned (autovacuum never analyzes a partitioned parent');
    const an = await db.client.query<{ sql: string }>(`SELECT sql FROM pgshift.statements WHERE step_id = 'verify:pruning' AND sql LIKE '%ANALYZE "public"."petri_observations_partitioned"' OR (step_id = 'verify:pruning' AND sql LIKE 'SET LOCAL vacuum_cost_delay%') ORDER BY id`);
    expect(an.rows.map((r) => r.sql).slice(-2)).toEqual(['SET LOCAL vacuum_cost_delay = 2', 'ANALYZE "public"."petri_observations_partitioned"']);
    const st = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = 'petri_observations_partitioned' AND inherited`);
    expect(st.rows[0]!.n).toBeGreaterThan(0);
  });
});
