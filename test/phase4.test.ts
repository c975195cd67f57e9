import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Engine } from '../source/engine/engine.js';
import { flagConfirmer } from '../source/engine/confirm.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import type { ConfirmRequest, EngineEvent } from '../source/engine/types.js';
import { discoverDependencies, measureMaterializedViews, type DependencyRecord } from '../source/swap/deps.js';
import { examplePlan } from './fixtures/swap.js';
import { catalogFingerprint } from './helpers/catalog.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PHASE_REGISTRY } from '../phases/index.js';

/**
 * Phase 4 after the REAL phases 1–3 (no fixture): demo data, the example plan, headless confirmations
 * (`--confirm <object>` semantics through flagConfirmer).
 */

type StepDone = Extract<EngineEvent, { type: 'step-done' }>;
type StepFailed = Extract<EngineEvent, { type: 'step-failed' }>;
type StepLog = Extract<EngineEvent, { type: 'step-log' }>;

async function artifact<T>(c: pg.Client, key: string): Promise<T | null> {
  const r = await c.query<{ value: T }>(`SELECT value FROM pgshift.artifacts WHERE key = $1`, [key]);
  return r.rows[0]?.value ?? null;
}

describe('phase 4 · dependencies, after the real phases 1–3', () => {
  let db: FreshDb;
  let dir: string;
  let engine: Engine;
  const events: EngineEvent[] = [];
  const requests: ConfirmRequest[] = [];
  const confirms = new Set<string>();

  const since = (n: number) => events.slice(n);
  const done = (ev: EngineEvent[], id: string) => ev.find((e): e is StepDone => e.type === 'step-done' && e.stepId === id);
  const logs = (ev: EngineEvent[], id: string) => ev.filter((e): e is StepLog => e.type === 'step-log' && e.stepId === id).map((e) => e.message);

  beforeAll(async () => {
    db = await freshDatabase('phase4');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-p4-'));
    await createDemoDatabase(db.client, { rows: 5000 });
    // what the application has besides the demo: a materialized view (with an index, a grant and a comment) and a
    // function whose body names the table (PostgreSQL does not track that dependency)
    await db.client.query(`
      CREATE MATERIALIZED VIEW public.petri_monthly_mv AS
        SELECT program_id, date_trunc('month', created_at) AS month, count(*) AS n, sum(growth_index) AS growth
          FROM public.petri_observations GROUP BY 1, 2;
      CREATE UNIQUE INDEX petri_monthly_mv_key ON public.petri_monthly_mv (program_id, month);
      GRANT SELECT ON public.petri_monthly_mv TO authenticated;
      COMMENT ON MATERIALIZED VIEW public.petri_monthly_mv IS 'monthly petri counts';
      CREATE FUNCTION public.petri_count_for(p uuid) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
      BEGIN
        RETURN (SELECT count(*) FROM public.petri_observations WHERE program_id = p);
      END $$;`);
    const loaded = loadPlan(examplePlan(dir, { locks: { timeoutMs: 500, attempts: 10, backoffMs: 50, maxBackoffMs: 500 } }));
    engine = await Engine.open({
      phases: PHASE_REGISTRY,
      conn: resolveConnection(db.url), loaded, mode: 'test', operator: 'tester',
      confirm: async (r) => {
        requests.push(r);
        return flagConfirmer({ confirms, overrides: new Set(), operator: 'tester' })(r);
      },
    });
    engine.on((e) => events.push(e));
    const o = await engine.run({ phases: [1, 2, 3] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
  });
  afterAll(async () => {
    await engine?.close();
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a referencing table with no column holding the partition key fails phase 4, naming the column to add', async () => {
    await db.client.query(`
      CREATE TABLE public.petri_notes (note_id bigserial PRIMARY KEY, observation_id uuid NOT NULL REFERENCES public.petri_observations (observation_id), body text);
      INSERT INTO public.petri_notes (observation_id, body) SELECT observation_id, 'note ' || observation_seq FROM public.petri_observations ORDER BY observation_seq LIMIT 50;`);
    const n = events.length;
    const o = await engine.run({ phases: [4] });
    expect(o.status).toBe('failed');
    const failed = since(n).find((e): e is StepFailed => e.type === 'step-failed')!;
    expect(failed.stepId).toBe('dependencies:public.petri_observations');
    expect(failed.error).toMatch(/public\.petri_notes\.petri_notes_observation_id_fkey references public\.petri_observations\(observation_id\)/);
    expect(failed.error).toMatch(/Add a column "created_at" \(timestamp with time zone\) to public\.petri_notes/);
    expect(failed.error).toMatch(/inboundKeyColumns\["public\.petri_notes"\]/);
    // nothing recorded, nothing changed
    expect(await artifact(db.client, 'dependencies:public.petri_observations')).toBeNull();
    // the operator does what the message says
    await db.client.query(`
      ALTER TABLE public.petri_notes ADD COLUMN created_at timestamptz;
      UPDATE public.petri_notes n SET created_at = o.created_at FROM public.petri_observations o WHERE o.observation_id = n.observation_id;
      ALTER TABLE public.petri_notes ALTER COLUMN created_at SET NOT NULL;`);
  });

  it('records views, foreign keys, functions, the materialized view; re-grants a privilege added after phase 2', async () => {
    // privileges granted (table and column level) and revoked on the live table after phase 2 built the new one
    await db.client.query(`GRANT INSERT, UPDATE ON public.petri_observations TO anon`);
    await db.client.query(`GRANT UPDATE (notes) ON public.petri_observations TO authenticated`);
    await db.client.query(`REVOKE TRUNCATE ON public.gasifier_observations FROM service_role`);
    expect((await db.client.query<{ t: boolean }>(`SELECT has_table_privilege('service_role', 'public.gasifier_observations_partitioned', 'TRUNCATE') AS t`)).rows[0]!.t).toBe(true);
    const before = await db.client.query<{ i: boolean }>(`SELECT has_table_privilege('anon', 'public.petri_observations_partitioned', 'INSERT') AS i`);
    expect(before.rows[0]!.i).toBe(false);
    const n = events.length;
    const o = await engine.run({ phases: [4] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const ev = since(n);
    const ids = ev.filter((e): e is StepDone => e.type === 'step-done').map((e) => `${e.stepId} ${e.status}`);
    expect(ids).toEqual([
      'sql:sql/034_create_petri_observations_with_names_view.sql already-done', 'sql:sql/036_create_gasifier_observations_with_names_view.sql already-done',
      'dependencies:public.petri_observations done', 'grants:public.petri_observations done',
      'dependencies:public.gasifier_observations done', 'grants:public.gasifier_observations done',
    ]);

    const petri = (await artifact<DependencyRecord>(db.client, 'dependencies:public.petri_observations'))!;
    const views = Object.fromEntries(petri.views.map((v) => [`${v.schema}.${v.name}`, v]));
    expect(Object.keys(views).sort()).toEqual(['public.petri_monthly_mv', 'public.petri_observations_summary', 'public.petri_observations_with_names']);
    for (const v of Object.values(views)) {
      expect(v.definition).toMatch(/FROM public\.petri_observations\b/);
      expect(v.owner).toBe(engine.opts.conn.config.user ?? 'postgres');
    }
    expect(views['public.petri_observations_summary']!.acl!.some((a) => a.startsWith('authenticated=r/'))).toBe(true);
    expect(views['public.petri_observations_with_names']!.acl!.some((a) => a.startsWith('service_role=r/'))).toBe(true);
    expect(views['public.petri_observations_with_names']!.comment).toBe('petri_observations joined with program and site names.');
    const mv = views['public.petri_monthly_mv']!;
    expect(mv.kind).toBe('m');
    expect(mv.indexes).toEqual(['CREATE UNIQUE INDEX petri_monthly_mv_key ON public.petri_monthly_mv USING btree (program_id, month)']);
    expect(mv.grants).toEqual(['GRANT SELECT ON "public"."petri_monthly_mv" TO "authenticated"']);
    expect(mv.comment).toBe('monthly petri counts');
    expect(mv.refreshMs).toBeGreaterThanOrEqual(0);
    const gas = (await artifact<DependencyRecord>(db.client, 'dependencies:public.gasifier_observations'))!;
    expect(gas.views.map((v) => `${v.schema}.${v.name}`).sort()).toEqual(['public.gasifier_observations_with_names', 'public.recent_gasifier_anomalies']);

    // the materialized view: what the swap does with it, timed now
    const p4logs = logs(ev, 'dependencies:public.petri_observations');
    expect(p4logs.some((m) => /materialized view public\.petri_monthly_mv is dropped and re-created WITH DATA inside the swap transaction, under its ACCESS EXCLUSIVE lock .*: its query takes \d+ ms now \(343 rows\)/.test(m))).toBe(true);

    // a function naming the table in its body: a warning
    const dd = done(ev, 'dependencies:public.petri_observations')!;
    expect(dd.warnings!.some((w) => /function public\.petri_count_for\(p uuid\) names petri_observations in its body/.test(w))).toBe(true);
    expect(done(ev, 'dependencies:public.gasifier_observations')!.warnings!.some((w) => w.includes('petri_count_for'))).toBe(false);

    // inbound foreign keys: the column holding the partition key comes from inboundKeyColumns, or is named like the key
    const fk = Object.fromEntries([...petri.fks, ...gas.fks].map((f) => [`${f.schema}.${f.table}`, f]));
    expect(fk['public.petri_observation_images']).toMatchObject({ columns: ['observation_id'], newColumns: ['observation_id', 'observation_created_at'], newRefColumns: ['observation_id', 'created_at'] });
    expect(fk['public.gasifier_alerts']).toMatchObject({ columns: ['observation_id'], newColumns: ['observation_id', 'program_id'], newRefColumns: ['observation_id', 'program_id'] });
    expect(fk['public.petri_notes']).toMatchObject({ newColumns: ['observation_id', 'created_at'], newRefColumns: ['observation_id', 'created_at'] });
    // sequences: the serial and the identity
    expect(petri.sequences.map((s) => `${s.column} ${s.kind} ${s.ownedByOld}`)).toEqual(['observation_seq serial true']);
    expect(gas.sequences.map((s) => `${s.column} ${s.kind}`)).toEqual(['reading_no identity']);

    // grants: the privileges added after phase 2 are on the new table now, the revoked one is gone from it
    const after = await db.client.query(`SELECT has_table_privilege('anon', 'public.petri_observations_partitioned', 'INSERT') AS i,
                                                has_table_privilege('anon', 'public.petri_observations_partitioned', 'UPDATE') AS u,
                                                has_column_privilege('authenticated', 'public.petri_observations_partitioned', 'notes', 'UPDATE') AS c,
                                                has_column_privilege('authenticated', 'public.petri_observations_partitioned', 'growth_index', 'UPDATE') AS c2,
                                                has_table_privilege('service_role', 'public.gasifier_observations_partitioned', 'TRUNCATE') AS t,
                                                has_table_privilege('service_role', 'public.gasifier_observations_partitioned', 'DELETE') AS d`);
    expect(after.rows[0]).toEqual({ i: true, u: true, c: true, c2: false, t: false, d: true });
    expect(done(ev, 'grants:public.petri_observations')!.summary).toMatch(/^granted 3 missing privilege\(s\), revoked 0/);
    expect(done(ev, 'grants:public.gasifier_observations')!.summary).toMatch(/^granted 0 missing privilege\(s\), revoked 1/);
    const acl = await db.client.query<{ same: boolean | null }>(`SELECT (SELECT relacl::text FROM pg_class WHERE oid = 'public.petri_observations'::regclass) = (SELECT relacl::text FROM pg_class WHERE oid = 'public.petri_observations_partitioned'::regclass) AS same`);
    expect(acl.rows[0]!.same).toBe(true);
    expect(logs(ev, 'grants:public.petri_observations').some((m) => /granted on public\.petri_observations after phase 2 built/.test(m))).toBe(true);
  });

  it('is idempotent: a second run changes nothing, and so does re-running the steps after the journal forgot them', async () => {
    const fp = await catalogFingerprint(db.client);
    const rec = (await artifact<DependencyRecord>(db.client, 'dependencies:public.petri_observations'))!;
    let n = events.length;
    let o = await engine.run({ phases: [4] });
    expect(o.status).toBe('completed');
    expect(since(n).filter((e): e is StepDone => e.type === 'step-done').every((e) => e.status === 'already-done')).toBe(true);
    expect(await catalogFingerprint(db.client)).toBe(fp);
    // a process killed after the work but before the journal noted it: the steps run again and find nothing to do
    await db.client.query(`DELETE FROM pgshift.step_state WHERE step_id LIKE 'dependencies:%' OR step_id LIKE 'grants:%'`);
    n = events.length;
    o = await engine.run({ phases: [4] });
    expect(o.message ?? '').toBe('');
    const ev = since(n);
    expect(done(ev, 'grants:public.petri_observations')!.status).toBe('already-done');
    expect(done(ev, 'grants:public.gasifier_observations')!.status).toBe('already-done');
    expect(await catalogFingerprint(db.client)).toBe(fp);
    const again = (await artifact<DependencyRecord>(db.client, 'dependencies:public.petri_observations'))!;
    expect({ ...again, at: '' , views: again.views.map((v) => ({ ...v, refreshMs: 0 })) }).toEqual({ ...rec, at: '', views: rec.views.map((v) => ({ ...v, refreshMs: 0 })) });
    // and the statements journaled by this run wrote nothing (reads only)
    const writes = await db.client.query(`SELECT sql FROM pgshift.statements WHERE run_id = $1 AND sql ~* '^\\s*(GRANT|CREATE|ALTER|DROP)'`, [o.runId]);
    expect(writes.rows).toEqual([]);
  });

  it('the swap re-creates the materialized view WITH DATA on the new table, with its index, grant and comment', async () => {
    confirms.add('public.petri_observations');
    const rows0 = await db.client.query<{ n: number; total: number | null }>(`SELECT count(*)::int AS n, sum(n)::int AS total FROM public.petri_monthly_mv`);
    const n = events.length;
    const o = await engine.run({ phases: [5], only: ['swap:public.petri_observations'] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const req = requests.find((r) => r.stepId === 'swap:public.petri_observations')!;
    expect(req.statements).toContain('DROP MATERIALIZED VIEW "public"."petri_monthly_mv"');
    expect(req.statements.some((s) => /^CREATE MATERIALIZED VIEW "public"."petri_monthly_mv" AS .* WITH DATA$/s.test(s))).toBe(true);
    const mv = await db.client.query(`
      SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                      WHERE r.ev_class = 'public.petri_monthly_mv'::regclass AND d.refobjid = 'public.petri_observations'::regclass) AS on_new,
             (SELECT relkind FROM pg_class WHERE oid = 'public.petri_observations'::regclass) AS kind,
             has_table_privilege('authenticated', 'public.petri_monthly_mv', 'SELECT') AS granted,
             obj_description('public.petri_monthly_mv'::regclass, 'pg_class') AS comment,
             to_regclass('public.petri_monthly_mv_key') IS NOT NULL AS indexed,
             (SELECT count(*)::int FROM public.petri_monthly_mv) AS n, (SELECT sum(n)::int FROM public.petri_monthly_mv) AS total`);
    expect(mv.rows[0]).toEqual({ on_new: true, kind: 'p', granted: true, comment: 'monthly petri counts', indexed: true, n: rows0.rows[0]!.n, total: rows0.rows[0]!.total });
    const sd = done(since(n), 'swap:public.petri_observations')!;
    expect(sd.summary).toMatch(/exclusive lock held \d+ ms/);
  });

  it("phase 4's SQL files go through phase 2's steps: checksum recorded, a changed file refused, a psql meta-command refused", async () => {
    const rel = 'sql/034_create_petri_observations_with_names_view.sql';
    const file = path.join(dir, rel);
    const text = fs.readFileSync(file, 'utf8');
    const a = (await artifact<{ checksum: string; file: string }>(db.client, `sql:${rel}`))!;
    expect(a.checksum).toBe(crypto.createHash('sha256').update(text).digest('hex'));
    // changed after it was applied: refused with both checksums, nothing run
    fs.writeFileSync(file, text.replace('AS site_name', 'AS site_label'));
    const fp = await catalogFingerprint(db.client);
    let o = await engine.run({ phases: [4] });
    expect(o.status).toBe('failed');
    expect(o.message).toMatch(new RegExp(`sql:${rel.replace(/[.]/g, '\\.')}: ${rel.replace(/[.]/g, '\\.')} changed after it was applied .*applied sha256 ${a.checksum}`));
    expect(await catalogFingerprint(db.client)).toBe(fp);
    fs.writeFileSync(file, text);
    // a file with a psql meta-command: refused with its line, before anything runs
    fs.writeFileSync(path.join(dir, 'sql/037_meta.sql'), 'CREATE VIEW public.meta_v AS SELECT 1 AS one;\n\\i other.sql\n');
    const planFile = path.join(dir, 'plan.json');
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as { sql: { dependencies: string[] } };
    plan.sql.dependencies.push('sql/037_meta.sql');
    fs.writeFileSync(planFile, JSON.stringify(plan));
    await engine.close();
    engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded: loadPlan(planFile), mode: 'test', operator: 'tester', confirm: flagConfirmer({ confirms, overrides: new Set(), operator: 'tester' }) });
    engine.on((e) => events.push(e));
    const n = events.length;
    o = await engine.run({ phases: [4] });
    expect(o.status).toBe('failed');
    expect(o.message).toMatch(/sql\/037_meta\.sql refused: line 2: \\i other\.sql — psql meta-command/);
    expect(since(n).filter((e): e is StepDone => e.type === 'step-done' && e.stepId.startsWith('sql:sql/03')).map((e) => e.status)).toEqual(['already-done', 'already-done']);
    // the refused file ends as a failed step (typed reason), never as a "done" carrying a failure
    expect(since(n).filter((e): e is StepFailed => e.type === 'step-failed').map((e) => [e.stepId, e.reason])).toEqual([['sql:sql/037_meta.sql', 'failed']]);
    expect((await db.client.query<{ v: string | null }>(`SELECT to_regclass('public.meta_v') AS v`)).rows[0]!.v).toBeNull();
  });

  it('timing a materialized view is bounded: past the limit it reads as "longer than", a failing query as not timed', async () => {
    const base = { schema: 'public', kind: 'm' as const, depth: 1, owner: 'x', options: null, acl: null, comment: null, grants: [], indexes: [] };
    const [slow, writing, plain] = await measureMaterializedViews(engine.db, [
      { ...base, name: 'slow', definition: 'SELECT pg_sleep(2) AS s FROM public.pilot_programs LIMIT 1' },
      { ...base, name: 'writing', definition: `SELECT nextval('public.petri_observations_observation_seq_seq') AS n` },
      { ...base, name: 'plain', kind: 'v', definition: 'SELECT 1' },
    ], { limitMs: 200 });
    expect(slow!.refreshMs).toBeNull();
    expect(writing!.measureError).toMatch(/read-only transaction/);
    expect(writing!.refreshMs).toBeUndefined();
    expect(plain!.refreshMs).toBeUndefined();
  });

  it('a view reading a materialized view over the table is a problem found by phase 4, not a failed DROP under the swap lock', async () => {
    const gas = engine.opts.loaded.tables.find((t) => t.table === 'gasifier_observations')!;
    await db.client.query(`CREATE MATERIALIZED VIEW public.gas_mv AS SELECT program_id, count(*) AS n FROM public.gasifier_observations GROUP BY 1`);
    await db.client.query(`CREATE VIEW public.gas_mv_top AS SELECT * FROM public.gas_mv WHERE n > 10`);
    try {
      const { record, problems } = await discoverDependencies(engine.db, gas);
      expect(record.views.map((v) => `${v.name} ${v.kind} ${v.depth}`)).toContain('gas_mv_top v 2');
      expect(problems).toEqual([expect.stringMatching(/^public\.gas_mv_top reads the materialized view public\.gas_mv, which the swap must drop and create again .*Drop public\.gas_mv_top before the swap/)]);
      await db.client.query(`DROP VIEW public.gas_mv_top`);
      expect((await discoverDependencies(engine.db, gas)).problems).toEqual([]);
    } finally {
      await db.client.query(`DROP VIEW IF EXISTS public.gas_mv_top; DROP MATERIALIZED VIEW public.gas_mv`);
    }
  });
});
