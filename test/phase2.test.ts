import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan, type LoadedPlan } from '../source/plan/load.js';
import type { ConfirmFn, ConfirmRequest, EngineEvent } from '../source/engine/types.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { failureOf } from './fixtures/copy-helpers.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { examplePlanPath } from '../source/paths.js';
import { structure } from '../phases/2-structure.js';
import type { StructureArtifact } from '../source/structure/build.js';
import { finishDeferred } from '../source/copy/finish.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { APP_ROLE } from './app-role.js';

const yes: ConfirmFn = () => Promise.resolve({ confirmed: true, method: 'yes', by: 'test' });

async function q<T = Record<string, unknown>>(c: pg.Client, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await c.query(sql, params)).rows as T[];
}

/** the plan directories this file made: removed when it ends */
const made: string[] = [];
afterAll(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

/** A copy of a plan directory with the plan replaced, so tests can change SQL files. */
function planDir(plan: object, files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-p2-'));
  made.push(dir);
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify({ version: 1, name: 'phase 2 test', backup: { directory: path.join(dir, 'backups') }, ...plan }));
  return dir;
}

async function runPhase(url: string, loaded: LoadedPlan, phases: (1 | 2)[] = [2]) {
  const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(url), loaded, confirm: yes, mode: 'test' });
  const events: EngineEvent[] = [];
  engine.on((e) => events.push(e));
  try {
    const outcome = await engine.run({ phases });
    return { outcome, events, engine };
  } finally {
    await engine.close();
  }
}

/** Everything phase 2 could change, as one comparable text (excludes the journal). */
async function fingerprint(c: pg.Client): Promise<string> {
  const rows = await q<{ f: string }>(c, `
    SELECT string_agg(x, E'\\n' ORDER BY x) AS f FROM (
      SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(pg_get_expr(c.relpartbound, c.oid), '') || ' ' || coalesce(c.relacl::text, '') AS x
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgshift') AND n.nspname NOT LIKE 'pg_toast%'
      UNION ALL SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace <> 'pg_catalog'::regnamespace AND conrelid <> 0
      UNION ALL SELECT 'trg ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
      UNION ALL SELECT 'pol ' || schemaname || '.' || tablename || ' ' || policyname FROM pg_policies
      UNION ALL SELECT 'fn ' || p.oid::regprocedure::text || md5(p.prosrc) FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
    ) s`);
  return rows[0]!.f;
}

describe('phase 2 on the demo data with the example plan', () => {
  let db: FreshDb;
  let loaded: LoadedPlan;
  let first: Awaited<ReturnType<typeof runPhase>>;

  beforeAll(async () => {
    db = await freshDatabase('phase2_demo');
    await createDemoDatabase(db.client, { rows: 20_000 });
    loaded = loadPlan(examplePlanPath());
    first = await runPhase(db.url, loaded);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('runs every step: the SQL files, both tables, the partition report', () => {
    expect(first.outcome.status, first.outcome.message).toBe('completed');
    const done = first.events.filter((e) => e.type === 'step-done').map((e) => (e as { stepId: string }).stepId);
    expect(done).toEqual([
      'sql:sql/20250716_report_management_schema.sql', 'sql:sql/035_create_dashboard_schema.sql',
      'structure:public.petri_observations', 'structure:public.gasifier_observations', 'report:partitions',
    ]);
  });

  it('applied each SQL file once, with its checksum recorded', async () => {
    const tables = await q<{ table_name: string }>(db.client, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND (table_name LIKE 'report%' OR table_name LIKE 'dashboard%') ORDER BY 1`);
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['report_folders', 'report_version_history', 'dashboards', 'dashboard_widgets']));
    const [a] = await q<{ value: { checksum: string } }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = 'sql:sql/035_create_dashboard_schema.sql'`);
    const crypto = await import('node:crypto');
    const text = fs.readFileSync(path.join(loaded.dir, 'sql/035_create_dashboard_schema.sql'));
    expect(a!.value.checksum).toBe(crypto.createHash('sha256').update(text).digest('hex'));
  });

  it('range: monthly partitions from the real min through max(key, now) + premake, plus DEFAULT; PK gains created_at', async () => {
    const [pt] = await q<{ strat: string; key: string }>(db.client, `SELECT partstrat AS strat, (SELECT attname FROM pg_attribute WHERE attrelid = partrelid AND attnum = partattrs[0]) AS key FROM pg_partitioned_table WHERE partrelid = 'public.petri_observations_partitioned'::regclass`);
    expect(pt).toEqual({ strat: 'r', key: 'created_at' });
    const parts = await q<{ name: string; bound: string }>(db.client, `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.petri_observations_partitioned'::regclass ORDER BY 1`);
    const names = parts.map((p) => p.name);
    expect(names.filter((n) => n !== 'petri_observations_default')[0]).toBe('petri_observations_p2024_01');
    expect(names).toContain('petri_observations_p2025_11');
    expect(names).toContain('petri_observations_default');
    // max(key, today) + 3 premade months
    const [{ last }] = await q<{ last: string }>(db.client, `SELECT 'petri_observations_p' || to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', 'YYYY_MM') AS last`) as [{ last: string }];
    expect(names).toContain(last);
    const monthly = names.filter((n) => /_p\d{4}_\d{2}$/.test(n));
    expect(new Set(monthly).size).toBe(monthly.length);
    expect(parts.find((p) => p.name === 'petri_observations_p2024_02')!.bound).toBe(`FOR VALUES FROM ('2024-02-01 00:00:00+00') TO ('2024-03-01 00:00:00+00')`);
    // the widened primary key is phase 3's to add, after the copy (the table phase 2 creates has none yet)
    const pk = await q(db.client, `SELECT 1 FROM pg_constraint WHERE conrelid = 'public.petri_observations_partitioned'::regclass AND contype = 'p'`);
    expect(pk).toEqual([]);
    const [art] = await q<{ value: StructureArtifact }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = 'structure:public.petri_observations'`);
    expect(art!.value.deferred!.keys!.map((k) => k.statement)).toEqual([
      'ALTER TABLE "public"."petri_observations_partitioned" ADD CONSTRAINT "petri_observations_pkey_p" PRIMARY KEY ("observation_id", "created_at")',
    ]);
    // the operator was told why, before it ran
    const logs = first.events.filter((e) => e.type === 'step-log' && e.stepId === 'structure:public.petri_observations').map((e) => (e as { message: string }).message);
    expect(logs.some((l) => l.startsWith('primary key (observation_id) → (observation_id, created_at): PostgreSQL requires every unique constraint on a partitioned table to include the partition key'))).toBe(true);
    expect(logs.some((l) => l.includes('LIKE') && l.includes('RLS policies, triggers, grants'))).toBe(true);
  });

  it('keeps columns, defaults, CHECKs, identity, comments, PK and the updated_at trigger; defers secondary indexes and outbound FKs to phase 3', async () => {
    const cols = (t: string) => q<{ c: string }>(db.client, `SELECT attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull || ' ' || attidentity::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || coalesce(col_description(a.attrelid, a.attnum), '') AS c
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [t]);
    expect(await cols('public.petri_observations_partitioned')).toEqual(await cols('public.petri_observations'));
    // serial default kept as is: still the old sequence
    const seq = (await cols('public.petri_observations_partitioned')).find((c) => c.c.startsWith('observation_seq'))!.c;
    expect(seq).toContain(`nextval('petri_observations_observation_seq_seq'::regclass)`);
    // identity: a new sequence of its own
    const g = (await cols('public.gasifier_observations_partitioned')).find((c) => c.c.startsWith('reading_no'))!.c;
    expect(g).toMatch(/^reading_no bigint true d/);
    expect((await q(db.client, `SELECT pg_get_serial_sequence('public.gasifier_observations_partitioned', 'reading_no') AS s`))[0]!.s).not.toBe(
      (await q(db.client, `SELECT pg_get_serial_sequence('public.gasifier_observations', 'reading_no') AS s`))[0]!.s,
    );
    const checks = await q<{ def: string }>(db.client, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'public.gasifier_observations_partitioned'::regclass AND contype = 'c'`);
    expect(checks[0]!.def).toContain('Geraniol');
    // after phase 2 no index at all: the primary key, the 3 secondary indexes and the 2 outbound FKs are built by
    // phase 3 after the copy (the key by the copy step, the rest by step finish:…; asserted in test/finish.test.ts)
    const idx = await q<{ name: string; def: string }>(db.client, `SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = 'public.petri_observations_partitioned'::regclass ORDER BY 1`);
    expect(idx.map((i) => i.name)).toEqual([]);
    const fks = await q<{ def: string }>(db.client, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'public.petri_observations_partitioned'::regclass AND contype = 'f' ORDER BY 1`);
    expect(fks).toEqual([]);
    const [art] = await q<{ value: StructureArtifact }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = 'structure:public.petri_observations'`);
    expect(art!.value.deferred!.indexes.map((i) => i.statement)).toEqual([
      'CREATE INDEX "petri_observations_created_at_idx_p" ON "public"."petri_observations_partitioned" USING btree (created_at)',
      'CREATE INDEX "petri_observations_program_id_created_at_idx_p" ON "public"."petri_observations_partitioned" USING btree (program_id, created_at)',
      'CREATE INDEX "petri_observations_site_id_idx_p" ON "public"."petri_observations_partitioned" USING btree (site_id)',
    ]);
    expect(art!.value.deferred!.foreignKeys.map((f) => f.definition)).toEqual(['FOREIGN KEY (program_id) REFERENCES public.pilot_programs(program_id)', 'FOREIGN KEY (site_id) REFERENCES public.sites(site_id)']);
    const logs = first.events.filter((e) => e.type === 'step-log' && e.stepId === 'structure:public.petri_observations').map((e) => (e as { message: string }).message);
    expect(logs.some((l) => l.startsWith('the primary key, 3 secondary indexes and 2 foreign keys are built after the copy (phase 3: the keys right after the last batch, the rest in step finish): index maintenance and foreign-key checks on every inserted row would slow the copy'))).toBe(true);
    const trg = await q<{ def: string }>(db.client, `SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = 'public.petri_observations_partitioned'::regclass AND NOT tgisinternal`);
    expect(trg.map((t) => t.def)).toEqual(['CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.petri_observations_partitioned FOR EACH ROW EXECUTE FUNCTION set_updated_at()']);
    const [cm] = await q<{ c: string }>(db.client, `SELECT obj_description('public.petri_observations_partitioned'::regclass, 'pg_class') AS c`);
    expect(cm!.c).toMatch(/^Petri dish observations/);
  });

  it('recreates RLS, the policies and the grants (LIKE copies none of them)', async () => {
    const [f] = await q<{ rls: boolean }>(db.client, `SELECT relrowsecurity AS rls FROM pg_class WHERE oid = 'public.petri_observations_partitioned'::regclass`);
    expect(f!.rls).toBe(true);
    const pol = (t: string) => q<{ p: string }>(db.client, `SELECT policyname || ' ' || permissive || ' ' || roles::text || ' ' || cmd || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '') AS p FROM pg_policies WHERE schemaname = 'public' AND tablename = $1 ORDER BY 1`, [t]);
    expect(await pol('petri_observations_partitioned')).toEqual(await pol('petri_observations'));
    expect((await pol('petri_observations_partitioned')).length).toBe(2);
    const acl = (t: string) => q<{ a: string }>(db.client, `SELECT pg_get_userbyid(a.grantee) || ' ' || a.privilege_type AS a FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::regclass AND a.grantee <> c.relowner ORDER BY 1`, [t]);
    expect(await acl('public.petri_observations_partitioned')).toEqual(await acl('public.petri_observations'));
    const [p] = await q<{ sel: boolean; ins: boolean; anon: boolean }>(db.client, `SELECT has_table_privilege('authenticated', 'public.petri_observations_partitioned', 'SELECT') AS sel,
        has_table_privilege('service_role', 'public.petri_observations_partitioned', 'INSERT') AS ins, has_table_privilege('anon', 'public.petri_observations_partitioned', 'SELECT') AS anon`);
    expect(p).toEqual({ sel: true, ins: true, anon: false });
  });

  it('records the name mapping for the swap in artifact structure:<table>', async () => {
    const [a] = await q<{ value: StructureArtifact }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = 'structure:public.petri_observations'`);
    const v = a!.value;
    expect(v.target).toBe('petri_observations_partitioned');
    expect(v.strategy).toBe('range');
    expect(v.pkChange).toEqual({ constraint: 'petri_observations_pkey', from: ['observation_id'], to: ['observation_id', 'created_at'] });
    expect(v.indexes).toContainEqual({ newName: 'petri_observations_created_at_idx_p', sourceName: 'petri_observations_created_at_idx' });
    expect(v.constraints.map((c) => c.sourceName)).toEqual(expect.arrayContaining(['petri_observations_growth_index_check', 'petri_observations_pkey', 'petri_observations_program_id_fkey']));
    expect(v.partitions[0]).toEqual({ name: 'petri_observations_p2024_01', bound: `FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')` });
  });

  it('list: one partition per pilot program plus DEFAULT; the data routes to them, none to DEFAULT', async () => {
    const parts = await q<{ name: string }>(db.client, `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'public.gasifier_observations_partitioned'::regclass`);
    expect(parts.length).toBe(21);
    const [p] = await q<{ program_id: string }>(db.client, `SELECT program_id FROM public.pilot_programs ORDER BY created_at, program_id LIMIT 1`);
    expect(parts.map((x) => x.name)).toContain(`gasifier_observations_p_${p!.program_id.replace(/-/g, '')}`);
    await db.client.query(`INSERT INTO public.gasifier_observations_partitioned SELECT * FROM public.gasifier_observations`);
    await db.client.query(`INSERT INTO public.petri_observations_partitioned SELECT * FROM public.petri_observations`);
    const [d] = await q<{ g: string; p: string }>(db.client, `SELECT (SELECT count(*) FROM public.gasifier_observations_default) AS g, (SELECT count(*) FROM public.petri_observations_default) AS p`);
    expect(d).toEqual({ g: '0', p: '0' });
    const [n] = await q<{ n: string }>(db.client, `SELECT count(*) AS n FROM public.petri_observations_partitioned`);
    expect(Number(n!.n)).toBe(20_000);
  });

  it('auto partitions: a new pilot program gets its partition; its observation lands there, not in DEFAULT', async () => {
    const [{ program_id }] = await q<{ program_id: string }>(db.client, `INSERT INTO public.pilot_programs (name) VALUES ('Brand New Program') RETURNING program_id`) as [{ program_id: string }];
    const [site] = await q<{ site_id: string }>(db.client, `SELECT site_id FROM public.sites LIMIT 1`);
    await db.client.query(`INSERT INTO public.gasifier_observations_partitioned (program_id, site_id, gasifier_code) VALUES ($1, $2, 'GS-NEW')`, [program_id, site!.site_id]);
    const [r] = await q<{ part: string }>(db.client, `SELECT tableoid::regclass::text AS part FROM public.gasifier_observations_partitioned WHERE gasifier_code = 'GS-NEW'`);
    expect(r!.part).toBe(`gasifier_observations_p_${program_id.replace(/-/g, '')}`);
    // the trigger names the parent by OID: it survives a rename (the swap)
    await db.client.query(`ALTER TABLE public.gasifier_observations_partitioned RENAME TO gasifier_renamed_for_test`);
    const [{ program_id: p2 }] = await q<{ program_id: string }>(db.client, `INSERT INTO public.pilot_programs (name) VALUES ('After Rename') RETURNING program_id`) as [{ program_id: string }];
    await db.client.query(`INSERT INTO public.gasifier_renamed_for_test (program_id, site_id, gasifier_code) VALUES ($1, $2, 'GS-NEW2')`, [p2, site!.site_id]);
    const [r2] = await q<{ part: string }>(db.client, `SELECT tableoid::regclass::text AS part FROM public.gasifier_renamed_for_test WHERE gasifier_code = 'GS-NEW2'`);
    expect(r2!.part).toBe(`gasifier_observations_p_${p2.replace(/-/g, '')}`);
    await db.client.query(`ALTER TABLE public.gasifier_renamed_for_test RENAME TO gasifier_observations_partitioned`);
  });

  it('auto partitions: rows of the new value already in DEFAULT are moved first', async () => {
    // a program inserted while the trigger was off: its rows went to DEFAULT
    const [trg] = await q<{ tgname: string }>(db.client, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.pilot_programs'::regclass AND tgname LIKE 'pgshift_autopart%'`);
    await db.client.query(`ALTER TABLE public.pilot_programs DISABLE TRIGGER ${trg!.tgname}`);
    const [{ program_id }] = await q<{ program_id: string }>(db.client, `INSERT INTO public.pilot_programs (name) VALUES ('Missed Program') RETURNING program_id`) as [{ program_id: string }];
    await db.client.query(`ALTER TABLE public.pilot_programs ENABLE TRIGGER ${trg!.tgname}`);
    const [site] = await q<{ site_id: string }>(db.client, `SELECT site_id FROM public.sites LIMIT 1`);
    await db.client.query(`INSERT INTO public.gasifier_observations_partitioned (program_id, site_id, gasifier_code) SELECT $1, $2, 'GS-MISSED-' || g FROM generate_series(1, 3) g`, [program_id, site!.site_id]);
    const [inDefault] = await q<{ n: string }>(db.client, `SELECT count(*) AS n FROM public.gasifier_observations_default WHERE program_id = $1`, [program_id]);
    expect(inDefault!.n).toBe('3');
    // re-running phase 2's structure step creates the missing partition and moves the rows out of DEFAULT
    const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded, confirm: yes, mode: 'test' });
    try {
      const steps = await structure.plan(engine.planContext());
      const step = steps.find((s) => s.id === 'structure:public.gasifier_observations')!;
      const logs: string[] = [];
      const ctx = { ...engine.planContext(), runId: 0, stepId: step.id, operator: 't', signal: new AbortController().signal, log: (m: string) => { logs.push(m); }, progress: () => {}, confirm: (req: Omit<ConfirmRequest, 'stepId'>) => yes({ ...req, stepId: step.id }), overrides: new Set<string>(), demo: false };
      const r = await step.run(ctx);
      expect(failureOf(r)).toBeUndefined();
      expect(r.summary).toContain('1 missing partition(s) created');
      expect(r.summary).toContain('3 row(s) moved out of DEFAULT');
      const rows = await q<{ part: string }>(db.client, `SELECT DISTINCT tableoid::regclass::text AS part FROM public.gasifier_observations_partitioned WHERE program_id = $1`, [program_id]);
      expect(rows).toEqual([{ part: `gasifier_observations_p_${program_id.replace(/-/g, '')}` }]);
      const again = await step.run(ctx);
      expect(again.status).toBe('already-done');
    } finally {
      await engine.close();
    }
  });

  it('running phase 2 again changes nothing', async () => {
    const before = await fingerprint(db.client);
    const second = await runPhase(db.url, loaded);
    expect(second.outcome.status).toBe('completed');
    const statuses = second.events.filter((e) => e.type === 'step-done').map((e) => `${(e as { stepId: string }).stepId} ${(e as { status: string }).status}`);
    expect(statuses).toEqual([
      'sql:sql/20250716_report_management_schema.sql already-done', 'sql:sql/035_create_dashboard_schema.sql already-done',
      'structure:public.petri_observations already-done', 'structure:public.gasifier_observations already-done', 'report:partitions done',
    ]);
    expect(await fingerprint(db.client)).toBe(before);
    // and the structure step itself, run directly, finds nothing to do
    const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded, confirm: yes, mode: 'test' });
    try {
      const steps = await structure.plan(engine.planContext());
      const ctx = { ...engine.planContext(), runId: 0, stepId: 'x', operator: 't', signal: new AbortController().signal, log: () => {}, progress: () => {}, confirm: (req: Omit<ConfirmRequest, 'stepId'>) => yes({ ...req, stepId: 'x' }), overrides: new Set<string>(), demo: false };
      for (const s of steps.filter((x) => x.id.startsWith('structure:'))) expect((await s.run(ctx)).status).toBe('already-done');
    } finally {
      await engine.close();
    }
    expect(await fingerprint(db.client)).toBe(before);
  });
});

describe('phase 2: names that need quoting, list values, SQL files', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('phase2_odd');
    await db.client.query(`DO $$ BEGIN CREATE ROLE pgshift_test_reader NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    await db.client.query(`
      CREATE SCHEMA "Mixed Schema";
      CREATE TABLE "Mixed Schema"."Odd ""Obs"" Table" (
        id bigint GENERATED ALWAYS AS IDENTITY,
        "Created At" timestamptz NOT NULL DEFAULT now(),
        "Kind" text COLLATE "C" NOT NULL,
        "note's" text CHECK ("note's" <> 'forbidden'),
        CONSTRAINT "Odd PK" PRIMARY KEY (id),
        CONSTRAINT "kind per id" UNIQUE ("Kind", id)
      );
      CREATE INDEX "By ""Created At""" ON "Mixed Schema"."Odd ""Obs"" Table" ("Created At" DESC);
      CREATE UNIQUE INDEX "one kind" ON "Mixed Schema"."Odd ""Obs"" Table" ("Kind") WHERE "Kind" = 'special';
      ALTER TABLE "Mixed Schema"."Odd ""Obs"" Table" ENABLE ROW LEVEL SECURITY;
      CREATE POLICY "readers see all" ON "Mixed Schema"."Odd ""Obs"" Table" FOR SELECT TO pgshift_test_reader USING (true);
      GRANT SELECT ON "Mixed Schema"."Odd ""Obs"" Table" TO pgshift_test_reader;
      GRANT UPDATE ("note's") ON "Mixed Schema"."Odd ""Obs"" Table" TO pgshift_test_reader;
      INSERT INTO "Mixed Schema"."Odd ""Obs"" Table" ("Created At", "Kind") SELECT timestamptz '2025-01-01 00:00:00+00' + g * interval '1 day', 'k' || (g % 3) FROM generate_series(0, 59) g;

      CREATE TABLE "Mixed Schema"."Regions" ("Code" text PRIMARY KEY);
      INSERT INTO "Mixed Schema"."Regions" VALUES ('North'), ('south-east'), ('a/b');
      CREATE TABLE "Mixed Schema"."Region Readings" (id int, "Region Code" text NOT NULL, v numeric, PRIMARY KEY (id))
        WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02);
      ALTER TABLE "Mixed Schema"."Region Readings" OWNER TO ${APP_ROLE};
      INSERT INTO "Mixed Schema"."Region Readings" SELECT g, (ARRAY['North', 'south-east', 'a/b'])[g % 3 + 1], g FROM generate_series(1, 30) g;
    `);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const oddPlan = {
    partition: [
      { source: '"Mixed Schema"."Odd ""Obs"" Table"', strategy: 'range', key: 'Created At', interval: '1 week', premake: 1, start: '2025-01-06', defaultPartition: true },
      {
        source: '"Mixed Schema"."Region Readings"', strategy: 'list', key: 'Region Code', values: { query: 'SELECT "Code" FROM "Mixed Schema"."Regions" ORDER BY 1' },
        defaultPartition: true, autoPartitions: { table: '"Mixed Schema"."Regions"', column: 'Code' },
      },
    ],
    sql: { structure: ['sql/a.sql'] },
  };

  it('builds both tables with every name quoted right', async () => {
    const dir = planDir(oddPlan, { 'sql/a.sql': `CREATE TABLE "Mixed Schema"."From File" (id int);\n` });
    const r = await runPhase(db.url, loadPlan(path.join(dir, 'plan.json')));
    expect(r.outcome.status, r.outcome.message).toBe('completed');
    const target = `"Mixed Schema"."Odd ""Obs"" Table_partitioned"`;
    // the key phase 3 adds after the copy: its statement, quoted right, runs as recorded
    const [keyArt] = await q<{ value: StructureArtifact }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = $1`, ['structure:Mixed Schema.Odd "Obs" Table']);
    const keys = keyArt!.value.deferred!.keys!;
    expect(keys.map((k) => k.statement)).toEqual([
      `ALTER TABLE ${target} ADD CONSTRAINT "Odd PK_p" PRIMARY KEY ("id", "Created At")`,
      `ALTER TABLE ${target} ADD CONSTRAINT "kind per id_p" UNIQUE ("Kind", "id", "Created At")`,
    ]);
    for (const k of keys) await db.client.query(k.statement);
    const [pk] = await q<{ def: string; name: string }>(db.client, `SELECT conname AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, [target]);
    expect(pk).toEqual({ name: 'Odd PK_p', def: 'PRIMARY KEY (id, "Created At")' });
    const [uq] = await q<{ def: string }>(db.client, `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'u'`, [target]);
    expect(uq!.def).toBe('UNIQUE ("Kind", id, "Created At")');
    const indexDefs = async () => (await q<{ def: string }>(db.client, `SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index i WHERE indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid) ORDER BY 1`, [target])).map((i) => i.def);
    // the unique index is correctness and is built by phase 2; the non-unique one waits for phase 3 (after the copy)
    expect(await indexDefs()).toEqual([
      `CREATE UNIQUE INDEX "one kind_p" ON ONLY "Mixed Schema"."Odd ""Obs"" Table_partitioned" USING btree ("Kind", "Created At") WHERE ("Kind" = 'special'::text)`,
    ]);
    const parts = await q<{ name: string; bound: string }>(db.client, `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`, [target]);
    expect(parts[0]).toEqual({ name: 'Odd "Obs" Table_default', bound: 'DEFAULT' });
    expect(parts[1]).toEqual({ name: 'Odd "Obs" Table_p2025w02', bound: `FOR VALUES FROM ('2025-01-06 00:00:00+00') TO ('2025-01-13 00:00:00+00')` });
    const acl = await q<{ a: string }>(db.client, `SELECT has_table_privilege('pgshift_test_reader', $1, 'SELECT') AND has_column_privilege('pgshift_test_reader', $1, 'note''s', 'UPDATE') AND NOT has_table_privilege('pgshift_test_reader', $1, 'UPDATE') AS a`, [target]);
    expect(acl[0]!.a).toBe(true);
    const pols = await q<{ p: string }>(db.client, `SELECT policyname AS p FROM pg_policies WHERE schemaname = 'Mixed Schema' AND tablename = 'Odd "Obs" Table_partitioned'`);
    expect(pols).toEqual([{ p: 'readers see all' }]);
    // the data fits: rows before start (2025-01-01..05) go to DEFAULT, the rest to their week
    await db.client.query(`INSERT INTO ${target} (id, "Created At", "Kind", "note's") OVERRIDING SYSTEM VALUE SELECT id, "Created At", "Kind", "note's" FROM "Mixed Schema"."Odd ""Obs"" Table"`);
    const [d] = await q<{ n: string }>(db.client, `SELECT count(*) AS n FROM "Mixed Schema"."Odd ""Obs"" Table_default"`);
    expect(d!.n).toBe('5');
    // phase 3's finish builds the deferred index: every name quoted right, ON ONLY + CONCURRENTLY per partition + ATTACH
    const [art] = await q<{ value: StructureArtifact }>(db.client, `SELECT value FROM pgshift.artifacts WHERE key = $1`, ['structure:Mixed Schema.Odd "Obs" Table']);
    expect(art!.value.deferred!.indexes.map((i) => i.sourceName)).toEqual(['By "Created At"']);
    const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded: loadPlan(path.join(dir, 'plan.json')), confirm: yes, mode: 'test' });
    try {
      const fin = await finishDeferred(engine.planContext().db, {
        stepId: 'finish:test', schema: 'Mixed Schema', table: 'Odd "Obs" Table_partitioned', deferred: art!.value.deferred!, signal: new AbortController().signal,
        log: () => {}, progress: () => {}, confirm: () => Promise.resolve({ confirmed: false, method: 'declined', by: 't' }),
      });
      expect(fin.indexes).toMatchObject([{ name: 'By "Created At"_p', partitions: parts.length, built: parts.length, valid: true }]);
    } finally {
      await engine.close();
    }
    expect(await indexDefs()).toEqual([
      `CREATE INDEX "By ""Created At""_p" ON ONLY "Mixed Schema"."Odd ""Obs"" Table_partitioned" USING btree ("Created At" DESC)`,
      `CREATE UNIQUE INDEX "one kind_p" ON ONLY "Mixed Schema"."Odd ""Obs"" Table_partitioned" USING btree ("Kind", "Created At") WHERE ("Kind" = 'special'::text)`,
    ]);
    const logs = r.events.filter((e) => e.type === 'step-log').map((e) => (e as { message: string }).message);
    expect(logs.some((l) => l.includes('values before the plan\'s start 2025-01-06 will go to the DEFAULT partition'))).toBe(true);
  });

  it('list values with odd characters get distinct sanitized names; the auto-partition trigger names them the same way and moves DEFAULT rows', async () => {
    const { listPartitionName } = await import('../source/structure/names.js');
    const target = `"Mixed Schema"."Region Readings_partitioned"`;
    const parts = (await q<{ name: string }>(db.client, `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass ORDER BY 1`, [target])).map((p) => p.name);
    expect(parts.sort()).toEqual(['Region Readings_default', listPartitionName('Region Readings', 'North'), listPartitionName('Region Readings', 'a/b'), listPartitionName('Region Readings', 'south-east')].sort());
    expect(listPartitionName('Region Readings', 'North')).toMatch(/^Region Readings_p_north_[0-9a-f]{6}$/);
    // a reading for a region that does not exist yet lands in DEFAULT
    await db.client.query(`INSERT INTO ${target} VALUES (100, 'New Zone', 1), (101, 'New Zone', 2)`);
    const long = 'L'.repeat(90);
    await db.client.query(`INSERT INTO ${target} VALUES (102, $1, 3)`, [long]);
    // the region is born: its partition is created and the DEFAULT rows move into it
    await db.client.query(`INSERT INTO "Mixed Schema"."Regions" VALUES ('New Zone'), ($1)`, [long]);
    const rows = await q<{ id: number; part: string }>(db.client, `SELECT id, tableoid::regclass::text AS part FROM ${target} WHERE id >= 100 ORDER BY id`);
    expect(rows).toEqual([
      { id: 100, part: `"Mixed Schema"."${listPartitionName('Region Readings', 'New Zone')}"` },
      { id: 101, part: `"Mixed Schema"."${listPartitionName('Region Readings', 'New Zone')}"` },
      { id: 102, part: `"Mixed Schema"."${listPartitionName('Region Readings', long)}"` },
    ]);
    expect(Buffer.byteLength(listPartitionName('Region Readings', long))).toBeLessThanOrEqual(63);
    const [d] = await q<{ n: string }>(db.client, `SELECT count(*) AS n FROM "Mixed Schema"."Region Readings_default"`);
    expect(d!.n).toBe('0');
    // the born partitions are like their siblings: the table owner's (not the migration role's), same storage parameters
    const props = await q<{ name: string; owner: string; opts: string[] | null }>(db.client,
      `SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner, c.reloptions AS opts FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1::regclass ORDER BY 1`, [target]);
    expect(props.length).toBe(6);
    expect(props).toEqual(props.map((p) => ({ name: p.name, owner: APP_ROLE, opts: ['fillfactor=80', 'autovacuum_vacuum_scale_factor=0.02'] })));
  });

  it('refuses an SQL file changed after it was applied, showing both checksums', async () => {
    const dir = planDir(oddPlan, { 'sql/a.sql': `CREATE TABLE "Mixed Schema"."From File" (id int);\n` });
    const loaded = loadPlan(path.join(dir, 'plan.json'));
    const same = await runPhase(db.url, loaded);
    expect(same.outcome.status).toBe('completed');
    expect(same.events.find((e) => e.type === 'step-done' && e.stepId === 'sql:sql/a.sql')).toMatchObject({ status: 'already-done' });
    const crypto = await import('node:crypto');
    const before = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, 'sql/a.sql'))).digest('hex');
    fs.writeFileSync(path.join(dir, 'sql/a.sql'), `CREATE TABLE "Mixed Schema"."From File" (id int, more text);\n`);
    const after = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, 'sql/a.sql'))).digest('hex');
    const changed = await runPhase(db.url, loadPlan(path.join(dir, 'plan.json')));
    expect(changed.outcome.status).toBe('failed');
    expect(changed.outcome.message).toContain(`applied sha256 ${before}, file now sha256 ${after}`);
    const cols = await q(db.client, `SELECT attname FROM pg_attribute WHERE attrelid = '"Mixed Schema"."From File"'::regclass AND attnum > 0`);
    expect(cols).toHaveLength(1);
  });

  it('refuses a file with psql meta-commands, naming the line, and applies nothing of it', async () => {
    const dir = planDir({ sql: { structure: ['sql/meta.sql'] } }, {
      'sql/meta.sql': `CREATE TABLE public.meta_a (id int);\n-- a comment\n\\set ON_ERROR_STOP on\nCREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $$ SELECT '\\n' $$;\n`,
    });
    const r = await runPhase(db.url, loadPlan(path.join(dir, 'plan.json')));
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toContain('line 3: \\set ON_ERROR_STOP on — psql meta-command');
    expect(r.outcome.message).not.toContain('line 4');
    expect((await q(db.client, `SELECT to_regclass('public.meta_a') AS r`))[0]!.r).toBeNull();
  });

  it('refuses a target that exists but was not created by pgshift', async () => {
    await db.client.query(`CREATE TABLE public.plain (id int PRIMARY KEY, at date NOT NULL); CREATE TABLE public.plain_partitioned (id int)`);
    const dir = planDir({ partition: [{ source: 'public.plain', strategy: 'range', key: 'at', interval: '1 year' }] }, {});
    const r = await runPhase(db.url, loadPlan(path.join(dir, 'plan.json')));
    expect(r.outcome.status).toBe('failed');
    expect(r.outcome.message).toContain('public.plain_partitioned already exists and was not created by pgshift');
  });
});

describe('plan mode (dry run) shows phase 1 and 2 statements and changes nothing', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('phase2_preview');
    await createDemoDatabase(db.client, { rows: 2_000 });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('previews every statement', async () => {
    const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded: loadPlan(examplePlanPath()), confirm: yes, mode: 'plan', dryRun: true });
    try {
      const pv = await engine.preview([1, 2]);
      const all = pv.flatMap((p) => p.steps.flatMap((s) => s.statements));
      expect(all.some((s) => s.startsWith('pg_dump --format=custom'))).toBe(true);
      expect(all.some((s) => s.includes('CREATE TABLE public.report_folders'))).toBe(true);
      expect(all.some((s) => s.startsWith('CREATE TABLE "public"."petri_observations_partitioned" (') && !s.includes('PRIMARY KEY') && s.endsWith('PARTITION BY RANGE ("created_at")'))).toBe(true);
      expect(all).toContain('--   ALTER TABLE "public"."petri_observations_partitioned" ADD CONSTRAINT "petri_observations_pkey_p" PRIMARY KEY ("observation_id", "created_at")  (after the last batch, before the replay)');
      // the deferred indexes and FKs: not among phase 2's statements, shown as going to phase 3
      expect(all.some((s) => /^(CREATE INDEX "petri_observations_site_id_idx_p"|ALTER TABLE "public"."petri_observations_partitioned" ADD CONSTRAINT)/.test(s))).toBe(false);
      expect(all).toContain('-- the primary key, 3 secondary indexes and 2 foreign keys are built after the copy (phase 3: the keys right after the last batch, the rest in step finish): index maintenance and foreign-key checks on every inserted row would slow the copy; they run in phase 3 once the copy is done (keys: step copy:public.petri_observations; the rest: step finish:public.petri_observations):');
      expect(all).toContain('--   CREATE INDEX "petri_observations_site_id_idx_p" ON "public"."petri_observations_partitioned" USING btree (site_id)  (ON ONLY the parent, CONCURRENTLY per partition, ATTACH)');
      expect(all).toContain(`CREATE TABLE "public"."petri_observations_p2024_01" PARTITION OF "public"."petri_observations_partitioned" FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')`);
      expect(all.some((s) => s.startsWith('CREATE TRIGGER "pgshift_autopart_') && s.includes(`'<oid of public.gasifier_observations_partitioned>', 'gasifier_observations', 'program_id'`))).toBe(true);
    } finally {
      await engine.close();
    }
    const [r] = await q<{ j: string | null; t: string | null }>(db.client, `SELECT to_regclass('pgshift.runs')::text AS j, to_regclass('public.petri_observations_partitioned')::text AS t`);
    expect(r).toEqual({ j: null, t: null });
  });
});
