import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import { createDemoDatabase } from '../source/demo/schema.js';
import { main } from '../source/cli.js';
import { renderIntegrityReport } from '../source/report.js';
import type { IntegrityReport } from '../source/copy/integrity.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';
import { PETRI_ENTRY, createPetriTarget, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';
import { first } from '../source/db/session.js';

describe('integrity report: counts, row-hash content comparison, FK orphans', () => {
  let db: FreshDb;
  let dir: string;
  let file: string;
  beforeAll(async () => {
    db = await freshDatabase('integrity');
    dir = tmpDir('integrity');
    await createDemoDatabase(db.client, { rows: 8000 });
    await createPetriTarget(db.client);
    file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY], copy: { batchRows: 2000 }, pruning: { queries: [] } });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const artifact = async () => first((await db.client.query<{ value: IntegrityReport }>(`SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`)).rows, 'integrity report').value;

  it('passes on a faithful copy, with exact counts and rows per partition', async () => {
    const r = await artifact();
    expect(r.pass).toBe(true);
    const t = r.tables[0]!;
    expect(t).toMatchObject({ table: 'public.petri_observations', target: 'public.petri_observations_partitioned', oldRows: 8000, newRows: 8000, missing: 0, extra: 0, mismatched: 0, pass: true });
    expect(t.partitions).toHaveLength(25);
    expect(t.partitions.reduce((a, p) => a + p.rows, 0)).toBe(8000);
    const real = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations_partitioned_p2025_11`);
    expect(t.partitions.find((p) => p.name === 'petri_observations_partitioned_p2025_11')!.rows).toBe(real.rows[0]!.n);
    expect(t.orphans.map((o) => [o.constraint, o.direction, o.count])).toEqual([
      ['petri_observations_program_id_fkey', 'outbound', 0],
      ['petri_observations_site_id_fkey', 'outbound', 0],
      ['petri_observation_images_observation_id_fkey (+ observation_created_at → created_at)', 'inbound', 0],
    ]);
    const io = captureIo();
    expect(await main(['report', '--db', db.url], io)).toBe(0);
    expect(io.text()).toContain('# Integrity report — ✅ PASS');
    expect(io.text()).toContain('| public.petri_observations | public.petri_observations_partitioned | 8,000 | 8,000 | 0 | 0 | 0 | 0 | pass |');
  });

  it('catches a missing row, an extra row, a changed value, a moved row and the FK orphans they make', async () => {
    // missing: a row that has an image (so the image becomes an inbound orphan)
    const gone = first((await db.client.query<{ id: string }>(`SELECT o.observation_id::text AS id FROM public.petri_observations o
        WHERE EXISTS (SELECT 1 FROM public.petri_observation_images i WHERE i.observation_id = o.observation_id) ORDER BY 1 LIMIT 1`)).rows, 'observation with an image').id;
    await db.client.query(`DELETE FROM public.petri_observations_partitioned WHERE observation_id = $1`, [gone]);
    // extra: a row only in the new table, pointing at a program that does not exist (outbound orphan)
    const extra = '00000000-0000-4000-8000-000000000001';
    await db.client.query(`INSERT INTO public.petri_observations_partitioned (observation_id, program_id, site_id, petri_code, created_at)
        SELECT $1, '00000000-0000-4000-8000-0000000000ff', site_id, 'PLANTED', '2025-03-03' FROM public.sites LIMIT 1`, [extra]);
    // changed value, and a row moved to another partition (partition key changed): both "changed", not missing + extra
    const [v, m] = (await db.client.query<{ id: string }>(`SELECT observation_id::text AS id FROM public.petri_observations o
        WHERE NOT EXISTS (SELECT 1 FROM public.petri_observation_images i WHERE i.observation_id = o.observation_id) ORDER BY 1 DESC LIMIT 2`)).rows.map((x) => x.id);
    await db.client.query(`UPDATE public.petri_observations_partitioned SET growth_index = growth_index + 0.01 WHERE observation_id = $1`, [v]);
    await db.client.query(`UPDATE public.petri_observations_partitioned SET created_at = created_at - interval '45 days' WHERE observation_id = $1`, [m]);

    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['verify:integrity'] });
      expect(out.status).toBe('failed');
      expect(out.message).toContain('verify:integrity: FAIL: public.petri_observations: 1 missing, 1 extra, 2 changed, 2 FK orphans (old 8,000 rows, new 8,000)');
      // a failed check is one step-failed event carrying the report, not a step-done
      expect(o.events.some((e) => e.type === 'step-done' && e.stepId === 'verify:integrity')).toBe(false);
      const done = o.events.find((e) => e.type === 'step-failed' && e.stepId === 'verify:integrity');
      expect(done && done.type === 'step-failed' && done.reason).toBe('failed');
      expect(done && done.type === 'step-failed' && done.tables?.map((t) => t.title)).toEqual([
        'Integrity report (FAIL) — exact counts; content compared by row hash',
        'public.petri_observations_partitioned: rows per partition',
        'public.petri_observations: differing rows (up to 20 samples, by primary key)',
        'public.petri_observations: foreign-key orphans',
      ]);
    } finally {
      await o.engine.close();
    }
    const r = await artifact();
    expect(r.pass).toBe(false);
    const t = r.tables[0]!;
    expect([t.oldRows, t.newRows, t.missing, t.extra, t.mismatched]).toEqual([8000, 8000, 1, 1, 2]);
    expect(t.samples).toEqual(expect.arrayContaining([
      { kind: 'missing', pk: `(${gone})` },
      { kind: 'extra', pk: `(${extra})` },
      { kind: 'mismatched', pk: `(${v})` },
      { kind: 'mismatched', pk: `(${m})` },
    ]));
    expect(t.orphans.filter((x) => x.count > 0).map((x) => [x.direction, x.table, x.count])).toEqual([
      ['outbound', 'public.pilot_programs', 1],
      ['inbound', 'public.petri_observation_images', 1],
    ]);
    expect(t.chunksDiffering).toBeGreaterThanOrEqual(1);
    expect(t.chunksDiffering).toBeLessThanOrEqual(4);
    // the change ticket
    const io = captureIo();
    expect(await main(['report', '--db', db.url, '--format', 'md'], io)).toBe(0);
    const md = io.text();
    expect(md).toContain('# Integrity report — ❌ FAIL');
    expect(md).toContain(`| missing | \`(${gone})\` |`);
    expect(md).toContain('| petri_observations_program_id_fkey | outbound | public.pilot_programs | 1 |');
    const io2 = captureIo();
    expect(await main(['report', '--db', db.url, '--format', 'json'], io2)).toBe(0);
    expect(JSON.parse(io2.stdout.join('\n'))).toEqual(r);
    // the renderer escapes table-breaking characters
    expect(renderIntegrityReport({ ...r, tables: [{ ...t, table: 'a|b' }] }, 'md')).toContain('a\\|b');
  });
});

describe('end to end through phase 2 (real structure) and phase 3 on the demo data', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('p23');
    dir = tmpDir('p23');
    await createDemoDatabase(db.client, { rows: 6000 });
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('phase 2 builds both partitioned tables, phase 3 copies them, the report passes and pruning works', async () => {
    const seed = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../examples/seed-plan/plan.json'), 'utf8')) as { partition: unknown[]; pruning: unknown };
    const file = writePlan(path.join(dir, 'a'), { partition: seed.partition, pruning: seed.pruning, copy: { batchRows: 1000 } });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [2, 3] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
    const r = first((await db.client.query<{ value: IntegrityReport }>(`SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`)).rows, 'integrity report').value;
    expect(r.pass).toBe(true);
    expect(r.tables.map((t) => [t.table, t.oldRows, t.newRows])).toEqual([
      ['public.petri_observations', 6000, 6000],
      ['public.gasifier_observations', 3000, 3000],
    ]);
    const pruning = o.events.find((e) => e.type === 'step-done' && e.stepId === 'verify:pruning');
    expect(pruning && pruning.type === 'step-done' && pruning.summary).toMatch(/^pruning works: 1 of \d+ partitions scanned; pruning works: 1 of \d+ partitions scanned$/);
    // plan mode shows every statement of phase 3 and changes nothing
    const io = captureIo();
    expect(await main(['plan', '--phase', '3', '--plan', file, '--db', db.url], io)).toBe(0);
    const text = io.text();
    expect(text).toContain('-- ▶ copy:public.petri_observations: Copy public.petri_observations → petri_observations_partitioned');
    // each batch inserts the rows of the next pages (a TID range scan), leaving the keys in the change log to the replay
    expect(text).toContain("-- order: the source's pages in physical order (copy.order = physical; PostgreSQL 14+)");
    expect(text).toMatch(/^INSERT INTO "public"\."petri_observations_partitioned" \(/m);
    expect(text).toMatch(/^ {3}WHERE s\.ctid >= \$1::tid AND s\.ctid < \$2::tid\n {5}AND \(age\(s\.xmin\) > \$3 OR NOT EXISTS \(SELECT 1 FROM "pgshift"\."log_public_petri_observations_[0-9a-f]{8}" l WHERE \(l\."observation_id"\) = \(s\."observation_id"\)\)\);$/m);
    expect(text).not.toMatch(/OFFSET/);
    expect(text).toContain('EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT count(*), avg(growth_index) FROM public.petri_observations');
  });
});
