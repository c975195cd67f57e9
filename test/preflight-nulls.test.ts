import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

// under pgbench the preflight's scan of pgbench_accounts for a NULL bid (no index on it) was where the application's
// longest transaction fell; on a large table it would read the whole table before anything else happens
describe('preflight: whether a nullable partition key holds NULLs, without reading the whole table', () => {
  let db: FreshDb;
  let dir: string;
  let file: string;
  beforeAll(async () => {
    db = await freshDatabase('preflight_nulls');
    await db.client.query(`CREATE TABLE public.events (id bigint PRIMARY KEY, at timestamptz, note text)`);
    await db.client.query(`INSERT INTO public.events SELECT g, timestamptz '2025-01-01' + g * interval '1 minute', 'x' FROM generate_series(1, 5000) g`);
    await db.client.query(`ANALYZE public.events`);
    // a NULL key written after ANALYZE: the statistics do not know it, an index lookup or a full scan would
    await db.client.query(`INSERT INTO public.events VALUES (5001, NULL, 'late')`);
    dir = tmpDir('preflight-nulls');
    file = writePlan(path.join(dir, 'a'), {
      partition: [{ source: 'public.events', strategy: 'range', key: 'at', interval: '1 month', defaultPartition: true }], pruning: { queries: [] },
    });
  });
  afterAll(async () => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  });

  async function keyCheck(): Promise<string> {
    const o = await openEngine(db.url, file);
    try {
      await o.engine.run({ phases: [1], only: ['preflight'] });
      const done = o.events.find((e) => e.type === 'step-done' && e.stepId === 'preflight');
      const table = done && done.type === 'step-done' ? done.tables?.[0] : undefined;
      const row = table?.rows.find((r) => r[0] === 'public.events: key at NOT NULL');
      expect(row, o.logs().join('\n')).toBeDefined();
      return row!.slice(1).join(' | ');
    } finally {
      await o.engine.close();
    }
  }

  it('no index leads with the key: ANALYZE\'s sample is what it says, and says so', async () => {
    const r = await keyCheck();
    expect(r).toContain('warn');
    expect(r).toContain("at is nullable (ANALYZE's sample found no NULL; not read in full: no index leads with it)");
  });

  it('an index leads with the key: the exact answer through it', async () => {
    await db.client.query(`CREATE INDEX events_at_idx ON public.events (at)`);
    const r = await keyCheck();
    expect(r).toContain('at is nullable and holds NULLs: rows with a NULL key go to the DEFAULT partition');
    await db.client.query(`DELETE FROM public.events WHERE at IS NULL`);
    expect(await keyCheck()).toContain('at is nullable (no NULL in it: looked up through its index)');
  });
});
