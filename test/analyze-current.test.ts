import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Db } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { parentStatsCurrent } from '../source/copy/parent-stats.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PETRI_ENTRY, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

const ANALYZE = 'analyze:public.petri_observations';

// phase 5 analyzed the new table again right after the swap, seconds after phase 3 had: under pgbench that second
// ANALYZE was where the application's longest transaction fell in four runs of fourteen
describe('phase 5 analyzes the swapped table only when the statistics of the ANALYZE after the copy are not current', () => {
  let db: FreshDb;
  let dir: string;
  let file: string;
  let pdb: Db;
  beforeAll(async () => {
    db = await freshDatabase('analyze_current');
    await createDemoDatabase(db.client, { rows: 6000 });
    dir = tmpDir('analyze-current');
    file = writePlan(path.join(dir, 'a'), {
      partition: [{ ...PETRI_ENTRY, defaultPartition: true }], copy: { batchRows: 2000 }, pruning: { queries: [] },
      locks: { timeoutMs: 500, attempts: 5, backoffMs: 50, maxBackoffMs: 200 },
    });
    const o = await openEngine(db.url, file);
    try {
      for (const p of [2, 3, 4] as const) {
        const r = await o.engine.run({ phases: [p] });
        expect(r.status, o.logs().join('\n')).toBe('completed');
      }
    } finally {
      await o.engine.close();
    }
    pdb = new Db(resolveConnection(db.url));
  }, 120_000);
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await pdb?.close();
    await db?.drop();
  });

  it('after the swap: the ANALYZE after the copy is current (the copy\'s own inserts do not count as changes), so none runs', async () => {
    const before = await parentStatsCurrent(pdb, 'public', 'petri_observations_partitioned');
    expect(before.current, before.why).toBe(true);
    expect(before.changed).toBeLessThan(50);
    const o = await openEngine(db.url, file);
    try {
      const r = await o.engine.run({ phases: [5], only: ['swap:public.petri_observations', ANALYZE] });
      expect(r.status, o.logs().join('\n')).toBe('completed');
      const done = o.events.find((e) => e.type === 'step-done' && e.stepId === ANALYZE);
      expect(done && done.type === 'step-done' ? done.summary : '').toMatch(/^not analyzed again: the statistics of the ANALYZE after the copy are current: \d+ rows changed since, within autovacuum's rule \(50 \+ 0\.1 × [\d,]+ rows\)$/);
    } finally {
      await o.engine.close();
    }
    const j = await db.client.query(`SELECT sql FROM pgshift.statements WHERE step_id = $1 AND sql LIKE 'ANALYZE%'`, [ANALYZE]);
    expect(j.rows).toEqual([]);
  });

  it('rows changed past autovacuum\'s rule make them stale; an ANALYZE makes them current again; a parent never analyzed has none', async () => {
    // the swapped table is the partitioned one now; change every row (the counters reach the statistics on flush)
    const upd = await db.client.query(`UPDATE public.petri_observations SET notes = coalesce(notes, '') || '.'`);
    expect(upd.rowCount).toBeGreaterThan(1000);
    await db.client.query(`SELECT pg_stat_force_next_flush()`);
    const stale = await parentStatsCurrent(pdb, 'public', 'petri_observations');
    expect(stale.current, stale.why).toBe(false);
    expect(stale.why).toMatch(/^[\d,]+ rows changed since the last ANALYZE, over autovacuum's rule/);
    expect(stale.changed).toBeGreaterThanOrEqual(upd.rowCount!);
    await db.client.query(`ANALYZE public.petri_observations`);
    expect((await parentStatsCurrent(pdb, 'public', 'petri_observations')).current).toBe(true);
    await db.client.query(`CREATE TABLE public.fresh_parent (id int, k int) PARTITION BY LIST (k)`);
    await db.client.query(`CREATE TABLE public.fresh_parent_1 PARTITION OF public.fresh_parent FOR VALUES IN (1)`);
    await db.client.query(`INSERT INTO public.fresh_parent SELECT g, 1 FROM generate_series(1, 100) g`);
    expect(await parentStatsCurrent(pdb, 'public', 'fresh_parent')).toMatchObject({ current: false, why: 'the parent has no statistics of its own yet' });
  });
});
