import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import type { ConfirmRequest, StepResult } from '../source/engine/types.js';
import type { StructureArtifact } from '../source/structure/build.js';
import { finishDeferred, partitionIndexName } from '../source/copy/finish.js';
import { main } from '../source/cli.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';
import { GASIFIER_ENTRY, PETRI_ENTRY, failureOf, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

async function q<T = Record<string, unknown>>(c: pg.ClientBase, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await c.query(sql, params)).rows as T[];
}

const T = 'public.petri_observations_partitioned';
const LOCKS = { timeoutMs: 200, attempts: 40, backoffMs: 50, maxBackoffMs: 200 };

/** The non-constraint indexes of a table with their validity. */
const secondaryIndexes = (c: pg.ClientBase, t: string) => q<{ name: string; valid: boolean }>(c,
  `SELECT ic.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    WHERE i.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid) ORDER BY 1`, [t]);
const fks = (c: pg.ClientBase, t: string) => q<{ name: string; def: string; validated: boolean }>(c,
  `SELECT conname AS name, pg_get_constraintdef(oid) AS def, convalidated AS validated FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f' ORDER BY 1`, [t]);

describe('phase 2 defers the secondary indexes and outbound FKs; phase 3 builds them after the copy', () => {
  let db: FreshDb;
  let dir: string;
  let file: string;
  let p2: Awaited<ReturnType<typeof openEngine>>;
  let p3: Awaited<ReturnType<typeof openEngine>>;
  const after2: { idx: { name: string; valid: boolean }[]; fks: unknown[]; pk: unknown[] } = { idx: [], fks: [], pk: [] };

  beforeAll(async () => {
    db = await freshDatabase('finish');
    dir = tmpDir('finish');
    await createDemoDatabase(db.client, { rows: 10_000 });
    file = writePlan(path.join(dir, 'a'), { partition: [{ ...PETRI_ENTRY, defaultPartition: true }, GASIFIER_ENTRY], copy: { batchRows: 2500 }, pruning: { queries: [] }, locks: LOCKS });
    p2 = await openEngine(db.url, file);
    try {
      const o = await p2.engine.run({ phases: [2] });
      expect(o.status, p2.logs().join('\n')).toBe('completed');
    } finally {
      await p2.engine.close();
    }
    after2.idx = await secondaryIndexes(db.client, T);
    after2.fks = await fks(db.client, T);
    after2.pk = await q(db.client, `SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u')`, [T]);
    p3 = await openEngine(db.url, file);
    try {
      const o = await p3.engine.run({ phases: [3] });
      expect(o.status, p3.logs().join('\n')).toBe('completed');
    } finally {
      await p3.engine.close();
    }
  }, 60_000);
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('phase 2 builds neither the keys, the non-unique indexes nor the FKs, records them as deferred and says why; the copy step adds the key after its last batch', async () => {
    expect(after2.idx).toEqual([]);
    expect(after2.fks).toEqual([]);
    expect(after2.pk).toEqual([]);
    // after phase 3: the widened primary key, added by the copy step (journaled there) once the rows were in
    const [pk] = await q<{ def: string }>(db.client, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, [T]);
    expect(pk!.def).toBe('PRIMARY KEY (observation_id, created_at)');
    const added = await q<{ step_id: string }>(db.client, `SELECT step_id FROM pgshift.statements WHERE sql LIKE 'ALTER TABLE "public"."petri_observations_partitioned" ADD CONSTRAINT "petri_observations_pkey_p" PRIMARY KEY%' AND error IS NULL`);
    expect(added).toEqual([{ step_id: 'copy:public.petri_observations' }]);
    const copied = p3.events.find((e) => e.type === 'step-done' && e.stepId === 'copy:public.petri_observations');
    expect(copied && copied.type === 'step-done' && copied.summary).toMatch(/; primary key petri_observations_pkey_p added after the copy in \d+\.\d s/);
    const [a] = await q<{ value: StructureArtifact }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = 'structure:public.petri_observations'`);
    const d = a!.value.deferred!;
    expect(d.indexes.map((x) => [x.newName, x.sourceName])).toEqual([
      ['petri_observations_created_at_idx_p', 'petri_observations_created_at_idx'],
      ['petri_observations_program_id_created_at_idx_p', 'petri_observations_program_id_created_at_idx'],
      ['petri_observations_site_id_idx_p', 'petri_observations_site_id_idx'],
    ]);
    expect(d.indexes[0]!.using).toBe('btree (created_at)');
    expect(d.foreignKeys.map((x) => [x.newName, x.definition])).toEqual([
      ['petri_observations_program_id_fkey_p', 'FOREIGN KEY (program_id) REFERENCES public.pilot_programs(program_id)'],
      ['petri_observations_site_id_fkey_p', 'FOREIGN KEY (site_id) REFERENCES public.sites(site_id)'],
    ]);
    // the swap's name mapping still lists them
    expect(a!.value.indexes).toContainEqual({ newName: 'petri_observations_site_id_idx_p', sourceName: 'petri_observations_site_id_idx' });
    expect(a!.value.constraints.map((c) => c.newName)).toContain('petri_observations_site_id_fkey_p');
    const done = p2.events.find((e) => e.type === 'step-done' && e.stepId === 'structure:public.petri_observations');
    expect(done && done.type === 'step-done' && done.summary).toContain('the primary key, 3 secondary indexes and 2 foreign keys are built after the copy (phase 3: the keys right after the last batch, the rest in step finish): index maintenance and foreign-key checks on every inserted row would slow the copy');
  });

  it('phase 3 runs vacuum and finish after each copy and before the integrity report', () => {
    const order = p3.events.filter((e) => e.type === 'step-done').map((e) => (e as { stepId: string }).stepId);
    expect(order).toEqual([
      'copy:public.petri_observations', 'vacuum:public.petri_observations', 'finish:public.petri_observations',
      'copy:public.gasifier_observations', 'vacuum:public.gasifier_observations', 'finish:public.gasifier_observations',
      'verify:integrity', 'verify:pruning',
    ]);
    const logs = p3.logs();
    expect(logs.some((l) => l.includes('CREATE INDEX CONCURRENTLY does not work on a partitioned parent'))).toBe(true);
    expect(logs.some((l) => l.includes('cannot be NOT VALID') && l.includes('SHARE ROW EXCLUSIVE'))).toBe(true);
    const ver = p3.events.find((e) => e.type === 'step-done' && e.stepId === 'verify:integrity');
    expect(ver && ver.type === 'step-done' && ver.summary).toMatch(/^PASS/);
  });

  it('the parent indexes are valid and every partition has its own, built concurrently (journaled) and attached', async () => {
    expect(await secondaryIndexes(db.client, T)).toEqual([
      { name: 'petri_observations_created_at_idx_p', valid: true },
      { name: 'petri_observations_program_id_created_at_idx_p', valid: true },
      { name: 'petri_observations_site_id_idx_p', valid: true },
    ]);
    const parts = await q<{ name: string }>(db.client, `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`, [T]);
    const attached = await q<{ parent: string; n: number }>(db.client,
      `SELECT p.relname AS parent, count(*)::int AS n FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent JOIN pg_index x ON x.indexrelid = h.inhrelid
        WHERE h.inhparent IN (SELECT indexrelid FROM pg_index WHERE indrelid = $1::regclass) AND x.indisvalid GROUP BY 1 ORDER BY 1`, [T]);
    expect(attached.filter((x) => !x.parent.includes('pkey'))).toEqual([
      { parent: 'petri_observations_created_at_idx_p', n: parts.length },
      { parent: 'petri_observations_program_id_created_at_idx_p', n: parts.length },
      { parent: 'petri_observations_site_id_idx_p', n: parts.length },
    ]);
    const [own] = await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM pg_class WHERE relname = $1`, [partitionIndexName('petri_observations_p2025_11', { sourceName: 'petri_observations_site_id_idx' })]);
    expect(own!.n).toBe(1);
    const stmts = await q<{ sql: string; error: string | null }>(db.client, `SELECT sql, error FROM pgshift.statements WHERE step_id = 'finish:public.petri_observations' ORDER BY id`);
    expect(stmts.filter((s) => s.sql.startsWith('CREATE INDEX CONCURRENTLY') && !s.error)).toHaveLength(3 * parts.length);
    expect(stmts.filter((s) => / ON ONLY /.test(s.sql))).toHaveLength(3);
    // a query by site uses an index on the partitions now
    const plan = await q<{ 'QUERY PLAN': string }>(db.client, `EXPLAIN SELECT * FROM ${T} WHERE site_id = (SELECT site_id FROM public.sites LIMIT 1)`);
    expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index|Bitmap/);
  });

  it('the FKs are on the parent, validated, and the partitions\' own constraints were adopted (conparentid), not re-scanned', async () => {
    expect(await fks(db.client, T)).toEqual([
      { name: 'petri_observations_program_id_fkey_p', def: 'FOREIGN KEY (program_id) REFERENCES pilot_programs(program_id)', validated: true },
      { name: 'petri_observations_site_id_fkey_p', def: 'FOREIGN KEY (site_id) REFERENCES sites(site_id)', validated: true },
    ]);
    const kids = await q<{ part: string; name: string; adopted: boolean; validated: boolean }>(db.client,
      `SELECT c.conrelid::regclass::text AS part, c.conname AS name, p.conrelid = $1::regclass AS adopted, c.convalidated AS validated
         FROM pg_constraint c JOIN pg_constraint p ON p.oid = c.conparentid
        WHERE c.conrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass) AND c.contype = 'f'`, [T]);
    const parts = await q(db.client, `SELECT 1 FROM pg_inherits WHERE inhparent = $1::regclass`, [T]);
    expect(kids).toHaveLength(2 * parts.length);
    expect(kids.every((k) => k.adopted && k.validated && k.name.endsWith('_fkey_p'))).toBe(true);
    // the statements: per partition NOT VALID then VALIDATE, then the parent
    const stmts = (await q<{ sql: string }>(db.client, `SELECT sql FROM pgshift.statements WHERE step_id = 'finish:public.petri_observations' AND sql LIKE 'ALTER TABLE%' ORDER BY id`)).map((s) => s.sql);
    expect(stmts.filter((s) => s.endsWith('NOT VALID'))).toHaveLength(2 * parts.length);
    expect(stmts.filter((s) => s.includes('VALIDATE CONSTRAINT'))).toHaveLength(2 * parts.length);
    expect(stmts.at(-1)).toBe(`ALTER TABLE "public"."petri_observations_partitioned" ADD CONSTRAINT "petri_observations_site_id_fkey_p" FOREIGN KEY (site_id) REFERENCES public.sites(site_id)`);
    const done = p3.events.find((e) => e.type === 'step-done' && e.stepId === 'finish:public.petri_observations');
    expect(done && done.type === 'step-done' && done.summary).toMatch(new RegExp(`^3 index\\(es\\) \\(${3 * parts.length} partition indexes built concurrently\\), 2 foreign key\\(s\\) \\(validated per partition, ${2 * parts.length} partition constraints adopted by the parent\\) in \\d+\\.\\d s`));
    // enforced now: an orphan is refused
    await expect(db.client.query(`INSERT INTO ${T} (program_id, site_id, petri_code, created_at) SELECT gen_random_uuid(), site_id, 'X', now() FROM public.sites LIMIT 1`)).rejects.toMatchObject({ code: '23503' });
  });

  it('is idempotent: a second run of phase 3 finds everything built and changes nothing', async () => {
    const snap = () => q<{ x: string }>(db.client, `SELECT string_agg(x, ',' ORDER BY x) AS x FROM (
      SELECT c.relname || ':' || i.indisvalid AS x FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE 'petri_observations%'
      UNION ALL SELECT conrelid::regclass || '.' || conname || ':' || oid FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text LIKE 'petri_observations%') s`);
    const before = await snap();
    const o = await openEngine(db.url, file);
    try {
      const steps = await (await import('../phases/3-data.js')).data.plan(o.engine.planContext());
      const step = steps.find((s) => s.id === 'finish:public.petri_observations')!;
      const ctx = { ...o.engine.planContext(), runId: 0, stepId: step.id, operator: 't', signal: new AbortController().signal, log: () => {}, progress: () => {}, confirm: () => Promise.resolve({ confirmed: false, method: 'declined' as const, by: 't' }), overrides: new Set<string>(), demo: false };
      const r = await step.run(ctx);
      expect(r.status).toBe('already-done');
      expect(failureOf(r)).toBeUndefined();
    } finally {
      await o.engine.close();
    }
    expect(await snap()).toEqual(before);
  });

  it('pgshift plan shows the deferred statements under phase 3, and phase 2\'s preview says where they went', async () => {
    const io = captureIo();
    expect(await main(['plan', '--phase', '3', '--plan', file, '--db', db.url], io)).toBe(0);
    const text = io.text();
    expect(text).toContain('finish:public.petri_observations');
    expect(text).toContain(`CREATE INDEX "petri_observations_site_id_idx_p" ON ONLY "public"."petri_observations_partitioned" USING btree (site_id)`);
    expect(text).toContain(`CREATE INDEX CONCURRENTLY "petri_observations_p2025_11_petri_observations_site_id_idx" ON "public"."petri_observations_p2025_11" USING btree (site_id)`);
    expect(text).toContain(`ALTER TABLE "public"."petri_observations_p2025_11" ADD CONSTRAINT "petri_observations_program_id_fkey_p" FOREIGN KEY (program_id) REFERENCES public.pilot_programs(program_id) NOT VALID`);
  });
});

describe('finish on a live table: lock timeouts, an invalid leftover, orphans', () => {
  let db: FreshDb;
  let dir: string;
  let file: string;
  beforeAll(async () => {
    db = await freshDatabase('finish_live');
    dir = tmpDir('finish-live');
    await createDemoDatabase(db.client, { rows: 4_000 });
    file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY], copy: { batchRows: 2000 }, pruning: { queries: [] }, locks: LOCKS });
    const o = await openEngine(db.url, file);
    try {
      const r = await o.engine.run({ phases: [2, 3], only: ['structure:public.petri_observations', 'copy:public.petri_observations'] });
      expect(r.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
  }, 60_000);
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function runFinish(confirm: (r: ConfirmRequest) => boolean, onLog?: (m: string) => void): Promise<{ r: StepResult | Error; logs: string[]; asked: ConfirmRequest[] }> {
    const asked: ConfirmRequest[] = [];
    const o = await openEngine(db.url, file);
    const logs: string[] = [];
    try {
      const steps = await (await import('../phases/3-data.js')).data.plan(o.engine.planContext());
      const step = steps.find((s) => s.id === 'finish:public.petri_observations')!;
      const ctx = {
        ...o.engine.planContext(), runId: 0, stepId: step.id, operator: 't', signal: new AbortController().signal,
        log: (m: string) => {
          logs.push(m);
          onLog?.(m);
        },
        progress: () => {}, overrides: new Set<string>(), demo: false,
        confirm: (req: Omit<ConfirmRequest, 'stepId'>) => {
          asked.push({ ...req, stepId: step.id });
          return Promise.resolve(confirm({ ...req, stepId: step.id }) ? { confirmed: true, method: 'typed' as const, by: 't' } : { confirmed: false, method: 'declined' as const, by: 't' });
        },
      };
      const r = await step.run(ctx).catch((e: Error) => e);
      return { r, logs, asked };
    } finally {
      await o.engine.close();
    }
  }

  it('refuses to build before the copy has finished', async () => {
    // a fresh checkpoint-less table would be built too early: simulate with the checkpoint marked not done
    await db.client.query(`UPDATE pgshift.checkpoints SET position = jsonb_set(position, '{done}', 'false') WHERE step_id = 'copy:public.petri_observations'`);
    const { r } = await runFinish(() => true);
    expect(failureOf(r as StepResult)).toMatch(/has not finished: the deferred indexes and foreign keys are built after it/);
    await db.client.query(`UPDATE pgshift.checkpoints SET position = jsonb_set(position, '{done}', 'true') WHERE step_id = 'copy:public.petri_observations'`);
  });

  it('the integrity report does not pass while the deferred objects are not built (the swap trusts it)', async () => {
    const o = await openEngine(db.url, file);
    try {
      const r = await o.engine.run({ phases: [3], only: ['verify:integrity'] });
      expect(r.status).toBe('failed');
      expect(r.message).toContain('public.petri_observations_partitioned: index petri_observations_created_at_idx_p, index petri_observations_program_id_created_at_idx_p, index petri_observations_site_id_idx_p, foreign key petri_observations_program_id_fkey_p, foreign key petri_observations_site_id_fkey_p not built (step finish:public.petri_observations)');
    } finally {
      await o.engine.close();
    }
    const [a] = await q<{ value: { pass: boolean; tables: { pass: boolean; missing: number; note?: string }[] } }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`);
    expect(a!.value.pass).toBe(false);
    expect(a!.value.tables[0]).toMatchObject({ pass: false, missing: 0 });
    expect(a!.value.tables[0]!.note).toContain('not built (step finish:public.petri_observations)');
  });

  it('an INVALID index left by an interrupted CREATE INDEX CONCURRENTLY: declined → stops; confirmed → dropped and rebuilt. A lock timeout mid-build is retried', async () => {
    const part = 'petri_observations_p2025_11';
    const name = partitionIndexName(part, { sourceName: 'petri_observations_site_id_idx' });
    // make the leftover the way it happens: CIC waits for an older snapshot and times out, leaving the index INVALID
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    const builder = new pg.Client({ connectionString: db.url });
    await builder.connect();
    try {
      await holder.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM public.sites`);
      await builder.query(`SET lock_timeout = 300`);
      await expect(builder.query(`CREATE INDEX CONCURRENTLY "${name}" ON public."${part}" (site_id)`)).rejects.toMatchObject({ code: '55P03' });
      await holder.query('COMMIT');
      const [inv] = await q<{ valid: boolean }>(db.client, `SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = $1::regclass`, [`public."${name}"`]);
      expect(inv!.valid).toBe(false);

      const declined = await runFinish(() => false);
      expect(declined.asked).toHaveLength(1);
      expect(declined.asked[0]).toMatchObject({ kind: 'drop', typed: true, object: `public.${name}` });
      expect(declined.asked[0]!.statements[0]).toBe(`DROP INDEX CONCURRENTLY "public"."${name}"`);
      expect((declined.r as Error).message).toContain('is INVALID and was not dropped');
      expect((await q(db.client, `SELECT 1 FROM pg_class WHERE relname = $1`, [name])).length).toBe(1);

      // a session holding an old snapshot: every CREATE INDEX CONCURRENTLY waits for it and times out (lock_timeout
      // 200 ms) until it ends — it ends when finish logs its first retry (progress, not a timer); finish retries,
      // dropping its own invalid leftovers
      await holder.query(`BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM public.sites`);
      let released = false;
      const ok = await runFinish(() => true, (m) => {
        if (!released && /^CREATE INDEX CONCURRENTLY \S+: lock not available .*retry 2\//.test(m)) {
          released = true;
          void holder.query('COMMIT');
        }
      });
      await holder.query('COMMIT').catch(() => {});
      expect(ok.r instanceof Error ? ok.r.message : failureOf(ok.r)).toBeUndefined();
      expect((ok.r as StepResult).status).toBe('done');
      expect(ok.asked).toHaveLength(1); // only the leftover of the earlier run, not the step's own retries
      expect(ok.logs.some((l) => l.startsWith(`${name} on ${part} is INVALID (left by an interrupted CREATE INDEX CONCURRENTLY): dropping it and building it again`))).toBe(true);
      expect(ok.logs.some((l) => /^CREATE INDEX CONCURRENTLY \S+: lock not available .*retry 2\//.test(l))).toBe(true);
      expect(await secondaryIndexes(db.client, T)).toEqual([
        { name: 'petri_observations_created_at_idx_p', valid: true },
        { name: 'petri_observations_program_id_created_at_idx_p', valid: true },
        { name: 'petri_observations_site_id_idx_p', valid: true },
      ]);
      const [bad] = await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname LIKE 'petri_observations%' AND NOT i.indisvalid AND c.relkind = 'r'`);
      expect(bad!.n).toBe(0);
      const [{ valid }] = await q<{ valid: boolean }>(db.client, `SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = $1::regclass`, [`public."${name}"`]) as [{ valid: boolean }];
      expect(valid).toBe(true);
      // and now the report passes
      const o = await openEngine(db.url, file);
      try {
        const r = await o.engine.run({ phases: [3], only: ['verify:integrity'] });
        expect(r.status, o.logs().join('\n')).toBe('completed');
      } finally {
        await o.engine.close();
      }
    } finally {
      await holder.end().catch(() => {});
      await builder.end().catch(() => {});
    }
  }, 60_000);
});

describe('PostgreSQL 15: a parent FK adopts validated partition FKs without scanning', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('finish_adopt');
    await db.client.query(`
      CREATE TABLE ref (id int PRIMARY KEY); INSERT INTO ref SELECT g FROM generate_series(1, 1000) g;
      CREATE TABLE a (id int, k int NOT NULL, r int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
      CREATE TABLE b (id int, k int NOT NULL, r int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
    `);
    for (const t of ['a', 'b']) {
      for (let k = 0; k < 4; k++) await db.client.query(`CREATE TABLE ${t}${k} PARTITION OF ${t} FOR VALUES IN (${k})`);
      await db.client.query(`INSERT INTO ${t} SELECT g, g % 4, 1 + g % 1000 FROM generate_series(1, 400000) g`);
    }
  }, 60_000);
  afterAll(async () => {
    await db?.drop();
  });

  it('ADD on the parent after NOT VALID + VALIDATE per partition is fast and keeps the partition constraints (conparentid set)', async () => {
    const time = async (sql: string) => { const t0 = performance.now(); await db.client.query(sql); return performance.now() - t0; };
    const direct = await time(`ALTER TABLE b ADD CONSTRAINT b_r_fkey FOREIGN KEY (r) REFERENCES ref(id)`);
    for (let k = 0; k < 4; k++) {
      await db.client.query(`ALTER TABLE a${k} ADD CONSTRAINT a_r_fkey FOREIGN KEY (r) REFERENCES ref(id) NOT VALID`);
      await db.client.query(`ALTER TABLE a${k} VALIDATE CONSTRAINT a_r_fkey`);
    }
    const before = await q<{ oid: number }>(db.client, `SELECT oid::int AS oid FROM pg_constraint WHERE conname = 'a_r_fkey' ORDER BY oid`);
    const adopt = await time(`ALTER TABLE a ADD CONSTRAINT a_r_fkey FOREIGN KEY (r) REFERENCES ref(id)`);
    const kids = await q<{ oid: number; parent: string | null; validated: boolean }>(db.client,
      `SELECT c.oid::int AS oid, p.conrelid::regclass::text AS parent, c.convalidated AS validated FROM pg_constraint c LEFT JOIN pg_constraint p ON p.oid = c.conparentid
        WHERE c.conname = 'a_r_fkey' AND c.conrelid <> 'a'::regclass ORDER BY c.oid`);
    expect(kids.map((k) => k.oid)).toEqual(before.map((b) => b.oid));
    expect(kids.every((k) => k.parent === 'a' && k.validated)).toBe(true);
    console.log(`FK on a partitioned table, 400,000 rows in 4 partitions: ADD on the parent directly ${Math.round(direct)} ms; after per-partition VALIDATE, the parent's ADD ${Math.round(adopt)} ms`);
    expect(adopt).toBeLessThan(direct / 4);
  }, 60_000);

  it('orphans in the copied rows: VALIDATE fails, the step says which FK and partition, the parent gets no FK', async () => {
    await db.client.query(`
      CREATE TABLE c (id int, k int NOT NULL, r int, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
      CREATE TABLE c0 PARTITION OF c FOR VALUES IN (0); CREATE TABLE c1 PARTITION OF c FOR VALUES IN (1);
      INSERT INTO c VALUES (1, 0, 5), (2, 1, 5), (3, 1, 999999);`);
    const { Db } = await import('../source/db/session.js');
    const { resolveConnection } = await import('../source/db/connection.js');
    const pool = new Db(resolveConnection(db.url));
    const logs: string[] = [];
    try {
      const fk = { newName: 'c_r_fkey_p', sourceName: 'c_r_fkey', definition: 'FOREIGN KEY (r) REFERENCES public.ref(id)', statement: '', comment: null };
      const err = await finishDeferred(pool, {
        stepId: 'finish:test', schema: 'public', table: 'c', deferred: { indexes: [], foreignKeys: [fk] }, signal: new AbortController().signal,
        log: (m) => logs.push(m), progress: () => {}, confirm: () => Promise.resolve({ confirmed: false, method: 'declined', by: 't' }),
      }).catch((e: Error & { code?: string }) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error & { code?: string }).code).toBe('23503');
      expect((err as Error).message).toMatch(/^rows of c1 violate foreign key c_r_fkey \(FOREIGN KEY \(r\) REFERENCES public\.ref\(id\)\)/);
    } finally {
      await pool.close();
    }
    const cons = await q<{ rel: string; validated: boolean }>(db.client, `SELECT conrelid::regclass::text AS rel, convalidated AS validated FROM pg_constraint WHERE conname = 'c_r_fkey_p' ORDER BY 1`);
    expect(cons).toEqual([{ rel: 'c0', validated: true }, { rel: 'c1', validated: false }]);
  });
});

describe('the keys phase 2 deferred: added by the copy step after its last batch', () => {
  let db: FreshDb;
  let dir: string;

  beforeAll(async () => {
    db = await freshDatabase('finish_keys');
    dir = tmpDir('finish-keys');
    await createDemoDatabase(db.client, { rows: 6_000 });
  }, 60_000);
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a row in the new table twice stops the key (the step fails, says which key and what to do; nothing is added); emptied as told, the copy starts over and the key is added', async () => {
    const file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY], copy: { batchRows: 500, pauseMs: 5 }, pruning: { queries: [] }, locks: LOCKS });
    const p2 = await openEngine(db.url, file);
    try {
      expect((await p2.engine.run({ phases: [2], only: ['structure:public.petri_observations'] })).status, p2.logs().join('\n')).toBe('completed');
    } finally {
      await p2.engine.close();
    }
    // a copy stopped midway, then one of its rows inserted a second time (what a copy bug would leave)
    const ac = new AbortController();
    const cut = await openEngine(db.url, file);
    cut.engine.on((e) => {
      if (e.type === 'step-progress' && e.stepId === 'copy:public.petri_observations' && e.progress.unit === 'rows' && e.progress.done >= 1500) ac.abort();
    });
    try {
      expect((await cut.engine.run({ phases: [3], only: ['copy:public.petri_observations'], signal: ac.signal })).status).toBe('aborted');
    } finally {
      await cut.engine.close();
    }
    const keysOf = () => q<{ name: string; def: string }>(db.client, `SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'u')`, [T]);
    expect(await keysOf()).toEqual([]);
    await db.client.query(`INSERT INTO ${T} SELECT * FROM ${T} LIMIT 1`);
    const [{ n: before }] = await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM ${T}`) as [{ n: number }];
    const again = await openEngine(db.url, file);
    try {
      const out = await again.engine.run({ phases: [3], only: ['copy:public.petri_observations'] });
      expect(out.status).toBe('failed');
      const failed = again.events.find((e) => e.type === 'step-failed');
      expect(failed && failed.type === 'step-failed' && failed.error).toMatch(/^public\.petri_observations_partitioned holds a key twice, so primary key petri_observations_pkey_p cannot be added \(nothing was added\): could not create unique index/);
      expect(failed && failed.type === 'step-failed' && failed.hint).toContain('TRUNCATE public.petri_observations_partitioned');
    } finally {
      await again.engine.close();
    }
    expect(await keysOf()).toEqual([]);
    const [{ n: after }] = await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM ${T}`) as [{ n: number }];
    const [{ n: source }] = await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM public.petri_observations`) as [{ n: number }];
    // the copy itself finished (every row once, plus the planted one); only the key is missing
    expect(after).toBe(source + 1);
    expect(after).toBeGreaterThan(before);
    await db.client.query(`TRUNCATE ${T}`);
    const last = await openEngine(db.url, file);
    try {
      expect((await last.engine.run({ phases: [3], only: ['copy:public.petri_observations'] })).status, last.logs().join('\n')).toBe('completed');
      expect(last.logs().some((l) => l.includes('adding primary key petri_observations_pkey_p to public.petri_observations_partitioned now that its rows are in'))).toBe(true);
    } finally {
      await last.engine.close();
    }
    expect(await keysOf()).toEqual([{ name: 'petri_observations_pkey_p', def: 'PRIMARY KEY (observation_id, created_at)' }]);
    const dup = await q(db.client, `SELECT observation_id FROM ${T} GROUP BY 1 HAVING count(*) > 1`);
    expect(dup).toEqual([]);
    const [{ n: copied }] = await q<{ n: number }>(db.client, `SELECT count(*)::int AS n FROM ${T}`) as [{ n: number }];
    expect(copied).toBe(source);
  }, 60_000);
});
