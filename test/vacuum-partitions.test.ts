import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PETRI_ENTRY, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

const T = 'public.petri_observations_partitioned';
const COPY = 'copy:public.petri_observations';
const VACUUM = 'vacuum:public.petri_observations';

interface Leaf { name: string; pages: number; visible: number; vacuumed: boolean }
async function leaves(c: pg.ClientBase): Promise<Leaf[]> {
  const r = await c.query<Leaf>(
    `SELECT c.relname AS name, c.relpages::int AS pages, c.relallvisible::int AS visible, s.last_vacuum IS NOT NULL AS vacuumed
       FROM pg_partition_tree($1::regclass) t JOIN pg_class c ON c.oid = t.relid JOIN pg_stat_all_tables s ON s.relid = t.relid
      WHERE t.isleaf ORDER BY c.relpages DESC, c.relname`, [T]);
  return r.rows;
}

// at 20,000,000 rows the swap retried for 18 s behind an autovacuum of a freshly copied partition: the copy makes every
// partition due for one, and an autovacuum never yields to a lock_timeout below deadlock_timeout
describe('phase 3 vacuums the new partitions after the copy', () => {
  let db: FreshDb;
  let dir: string;
  let file: string;
  beforeAll(async () => {
    db = await freshDatabase('vacuum_parts');
    await createDemoDatabase(db.client, { rows: 20_000 });
    dir = tmpDir('vacuum');
    file = writePlan(path.join(dir, 'a'), {
      partition: [{ ...PETRI_ENTRY, defaultPartition: true }], copy: { batchRows: 5000 }, pruning: { queries: [] },
      locks: { timeoutMs: 200, attempts: 5, backoffMs: 50, maxBackoffMs: 200 },
    });
    const o = await openEngine(db.url, file);
    try {
      const r2 = await o.engine.run({ phases: [2] });
      expect(r2.status, o.logs().join('\n')).toBe('completed');
      const r3 = await o.engine.run({ phases: [3], only: [COPY] });
      expect(r3.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
  }, 120_000);
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  it('vacuums every partition the copy filled, leaves one a session holds locked (an autovacuum) without waiting, and takes it on the next run', async () => {
    const before = await leaves(db.client);
    expect(before.filter((l) => l.pages > 0).length).toBeGreaterThan(1);
    expect(before.every((l) => !l.vacuumed)).toBe(true);
    const busy = before[0]!.name;
    // what an autovacuum worker holds on the partition it is on
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE public.${busy} IN SHARE UPDATE EXCLUSIVE MODE`);
    const o = await openEngine(db.url, file);
    try {
      const r = await o.engine.run({ phases: [3], only: [VACUUM] });
      expect(r.status, o.logs().join('\n')).toBe('completed');
      const done = o.events.find((e) => e.type === 'step-done' && e.stepId === VACUUM);
      expect(done && done.type === 'step-done' ? done.summary : '').toMatch(new RegExp(`vacuumed ${before.length - 1} of ${before.length} partition\\(s\\).*1 skipped, an autovacuum was on them already \\(public\\.${busy}\\)`));
      const mid = await leaves(db.client);
      for (const l of mid) {
        expect(l.vacuumed, l.name).toBe(l.name !== busy);
        // the visibility map is set: the scans before the swap (integrity) and after it find every page all-visible
        if (l.name !== busy) expect(l.visible, l.name).toBe(l.pages);
      }
      await holder.query('COMMIT');
      const again = await o.engine.run({ phases: [3], only: [VACUUM] });
      expect(again.status).toBe('completed');
      const after = await leaves(db.client);
      expect(after.every((l) => l.vacuumed)).toBe(true);
      expect(after.find((l) => l.name === busy)!.visible).toBe(after.find((l) => l.name === busy)!.pages);
      // journaled, one statement per partition, with the step
      const j = await db.client.query<{ sql: string }>(`SELECT sql FROM pgshift.statements WHERE step_id = $1 ORDER BY id`, [VACUUM]);
      expect(j.rows.filter((x) => x.sql === `VACUUM (SKIP_LOCKED) "public"."${busy}"`)).toHaveLength(2);
      expect(new Set(j.rows.map((x) => x.sql)).size).toBe(before.length);
    } finally {
      await holder.end().catch(() => {});
      await o.engine.close();
    }
  }, 120_000);
});
