import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import { Db } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import { integrityReport, hashPlan, LIVE_PACE } from '../source/copy/integrity.js';
import { resolvePair, columnMap, primaryKeyOf, type Pair } from '../source/copy/meta.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PETRI_ENTRY, createPetriTarget, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

describe('integrity check at scan speed: same guarantees, its own progress', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('copy_speed_integrity');
    dir = tmpDir('copy-speed-integrity');
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('hashes by value where value and text equality agree, by text elsewhere, and catches every kind of difference in both', async () => {
    const c = db.client;
    await c.query(`CREATE TABLE public.things (
      id integer PRIMARY KEY, k date NOT NULL, label text, at timestamptz, price numeric(8,2), ratio numeric, doc json, score float8)`);
    await c.query(`INSERT INTO public.things
      SELECT g, date '2024-01-01' + (g % 300), 'label ' || g, timestamptz '2024-01-01' + g * interval '1 minute', g / 7.0, 1.0, json_build_object('g', g), g / 3.0
        FROM generate_series(1, 3000) g`);
    await c.query(`CREATE TABLE public.things_new (LIKE public.things INCLUDING DEFAULTS, PRIMARY KEY (id, k)) PARTITION BY RANGE (k)`);
    for (const [n, from, to] of [['a', '2024-01-01', '2024-05-01'], ['b', '2024-05-01', '2024-09-01'], ['c', '2024-09-01', '2025-01-01']]) {
      await c.query(`CREATE TABLE public.things_new_${n} PARTITION OF public.things_new FOR VALUES FROM ('${from}') TO ('${to}')`);
    }
    await c.query(`INSERT INTO public.things_new SELECT * FROM public.things`);
    const file = writePlan(path.join(dir, 'things'), {
      partition: [{ source: 'public.things', target: 'things_new', strategy: 'range', key: 'k', interval: '1 month' }], pruning: { queries: [] },
    });
    const loaded = loadPlan(file);
    const pg = new Db(resolveConnection(db.url), 'pgshift-test');
    try {
      const pair = (await resolvePair(pg, loaded.tables[0]!)) as Pair;
      const map = await columnMap(pg, pair);
      const plan = await hashPlan(pg, pair, map.columns, await primaryKeyOf(pg, pair.source.oid));
      // numeric without a fixed scale (1.0 = 1.00), json (no equality), float8 (-0 = 0): through their text
      expect(plan).toEqual({ byValue: ['id', 'k', 'label', 'at', 'price'], byText: ['ratio', 'doc', 'score'], pkByValue: true });

      const run = async () => (await integrityReport(pg, loaded.tables, { log: () => {}, signal: new AbortController().signal, stepId: null })).tables[0]!;
      const clean = await run();
      expect(clean).toMatchObject({ oldRows: 3000, newRows: 3000, missing: 0, extra: 0, mismatched: 0, pass: true });
      expect(clean.partitions).toEqual([{ name: 'things_new_a', rows: expect.any(Number) as number }, { name: 'things_new_b', rows: expect.any(Number) as number }, { name: 'things_new_c', rows: expect.any(Number) as number }]);
      expect(clean.partitions.reduce((a, p) => a + p.rows, 0)).toBe(3000);

      // one change per column kind: value-hashed (timestamptz, text, numeric(8,2)), text-hashed (numeric scale only,
      // json, float8), a row moved to another partition, one missing, one extra
      await c.query(`UPDATE public.things_new SET at = at + interval '1 microsecond' WHERE id = 11`);
      await c.query(`UPDATE public.things_new SET label = 'Label 12' WHERE id = 12`);
      await c.query(`UPDATE public.things_new SET price = price + 0.01 WHERE id = 13`);
      await c.query(`UPDATE public.things_new SET ratio = 1.00 WHERE id = 14`);
      await c.query(`UPDATE public.things_new SET doc = '{"g":15}' WHERE id = 15`);
      await c.query(`UPDATE public.things_new SET score = score + 1e-12 WHERE id = 16`);
      await c.query(`UPDATE public.things_new SET k = date '2024-11-30' WHERE id = 17`);
      await c.query(`DELETE FROM public.things_new WHERE id = 18`);
      await c.query(`INSERT INTO public.things_new (id, k) VALUES (9999, '2024-02-02')`);
      const bad = await run();
      expect(bad).toMatchObject({ oldRows: 3000, newRows: 3000, missing: 1, extra: 1, mismatched: 7, pass: false });
      expect(bad.samples.filter((s) => s.kind === 'mismatched').map((s) => s.pk).sort()).toEqual(['(11)', '(12)', '(13)', '(14)', '(15)', '(16)', '(17)']);
      expect(bad.samples.find((s) => s.kind === 'missing')!.pk).toBe('(18)');
      expect(bad.samples.find((s) => s.kind === 'extra')!.pk).toBe('(9999)');
    } finally {
      await pg.close();
    }
  });

  it('reports its own progress: rows hashed of both tables, rising to the total, with the blocks read', async () => {
    await createDemoDatabase(db.client, { rows: 20_000 });
    await createPetriTarget(db.client);
    const file = writePlan(path.join(dir, 'petri'), { partition: [PETRI_ENTRY], copy: { batchRows: 5000 }, pruning: { queries: [] } });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.petri_observations', 'verify:integrity'] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
    const ev = o.events.flatMap((e) => (e.type === 'step-progress' && e.stepId === 'verify:integrity' ? [e] : []));
    // the old table and each of the 25 partitions report as they are hashed, then the final figure
    expect(ev.length).toBeGreaterThan(10);
    expect(ev.every((e) => e.progress.unit === 'rows hashed')).toBe(true);
    const done = ev.map((e) => e.progress.done);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    expect(ev.at(-1)!.progress).toMatchObject({ done: 40_000, total: 40_000 });
    expect(ev.some((e) => /public\.petri_observations ↔ public\.petri_observations_partitioned: [\d,]+ \/ [\d,]+ blocks hashed/.test(e.progress.detail ?? ''))).toBe(true);
    expect(ev.some((e) => e.ratePerSec !== undefined && e.ratePerSec > 0)).toBe(true);
  });

  it('on live tables (online mode) hashes in short ranges, each reported, to the same verdict as the quiet check', async () => {
    const c = db.client;
    // ~1,700 heap blocks: one range of the quiet check, four of the live one
    await c.query(`CREATE TABLE public.wide (id integer PRIMARY KEY, k date NOT NULL, pad text)`);
    await c.query(`INSERT INTO public.wide SELECT g, date '2024-01-01' + (g % 200), repeat(md5(g::text), 14) FROM generate_series(1, 27000) g`);
    await c.query(`CREATE TABLE public.wide_new (LIKE public.wide INCLUDING DEFAULTS, PRIMARY KEY (id, k)) PARTITION BY RANGE (k)`);
    await c.query(`CREATE TABLE public.wide_new_all PARTITION OF public.wide_new FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
    await c.query(`INSERT INTO public.wide_new SELECT * FROM public.wide`);
    await c.query(`UPDATE public.wide_new SET pad = 'changed' WHERE id = 26999`);
    const blocks = (await c.query<{ n: number }>(`SELECT pg_relation_size('public.wide')::bigint / current_setting('block_size')::int AS n`)).rows[0]!.n;
    expect(Number(blocks)).toBeGreaterThan(3 * LIVE_PACE.blocks);
    const file = writePlan(path.join(dir, 'wide'), {
      partition: [{ source: 'public.wide', target: 'wide_new', strategy: 'range', key: 'k', interval: '1 year' }], pruning: { queries: [] },
    });
    const loaded = loadPlan(file);
    const pg = new Db(resolveConnection(db.url), 'pgshift-test');
    try {
      const check = async (live: boolean) => {
        const steps: { done: number }[] = [];
        const r = (await integrityReport(pg, loaded.tables, {
          log: () => {}, signal: new AbortController().signal, stepId: null, live,
          onRows: (p) => steps.push({ done: p.done }),
        })).tables[0]!;
        return { r, steps };
      };
      const quiet = await check(false);
      const live = await check(true);
      for (const x of [quiet, live]) expect(x.r).toMatchObject({ oldRows: 27000, newRows: 27000, missing: 0, extra: 0, mismatched: 1, pass: false });
      expect(live.r.samples).toEqual(quiet.r.samples);
      // the quiet check reads the old table in one statement; the live one in ranges of LIVE_PACE.blocks, each reported
      const oldQuiet = quiet.steps.filter((s) => s.done <= 27000 && s.done > 0);
      const oldLive = live.steps.filter((s) => s.done <= 27000 && s.done > 0);
      expect(oldQuiet.length).toBe(1);
      expect(oldLive.length).toBeGreaterThanOrEqual(Math.floor(Number(blocks) / LIVE_PACE.blocks));
    } finally {
      await pg.close();
    }
  });
});
