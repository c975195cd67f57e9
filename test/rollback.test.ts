import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import type { ConfirmRequest } from '../source/engine/types.js';
import { buildFixture, examplePlan, writeIntegrityReport } from './fixtures/swap.js';
import { Artifacts } from '../source/engine/artifacts.js';
import { takeSnapshot, diffSnapshots, tableFingerprint, type CatalogSnapshot } from '../source/snapshot.js';
import { sha256File } from '../source/restore.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { first } from '../source/db/session.js';

const TABLES = ['petri_observations', 'gasifier_observations', 'petri_observation_images', 'gasifier_alerts', 'pilot_programs'];

async function fingerprints(c: pg.Client, exclude = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of TABLES) {
    const f = await tableFingerprint(c, 'public', t);
    out[t] = `${f.rows}:${f.hash}`;
  }
  if (exclude) {
    const r = await c.query<{ n: string; h: string }>(`SELECT count(*) AS n, md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) AS h FROM public.petri_observations t WHERE petri_code <> $1`, [exclude]);
    out.petri_observations = `${r.rows[0]!.n}:${r.rows[0]!.h}`;
  }
  return out;
}

describe('rollback after the swap restores the exact catalog and data', () => {
  let db: FreshDb;
  let dir: string;
  let engine: Engine;
  const requests: ConfirmRequest[] = [];

  beforeAll(async () => {
    db = await freshDatabase('rollback');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-rb-'));
    await createDemoDatabase(db.client, { rows: 4000 });
    const loaded = loadPlan(examplePlan(dir, { locks: { timeoutMs: 500, attempts: 10, backoffMs: 50, maxBackoffMs: 500 } }));
    engine = await Engine.open({
      phases: PHASE_REGISTRY,
      conn: resolveConnection(db.url), loaded, mode: 'test', operator: 'tester',
      confirm: (r) => (requests.push(r), Promise.resolve({ confirmed: true, method: r.typed ? 'typed' : 'yes', by: 'tester', typedText: r.typed ? r.object : undefined })),
    });
  });
  afterAll(async () => {
    await engine?.close();
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('swap back carries rows written after the swap; diffSnapshots = [] and equal content hashes', async () => {
    const before = await fingerprints(db.client);
    expect((await engine.run({ phases: [1], only: ['snapshot:catalog'] })).status).toBe('completed');
    const snap = first((await db.client.query<{ value: CatalogSnapshot }>(`SELECT value FROM pgshift.artifacts WHERE key = 'snapshot:catalog'`)).rows, 'catalog snapshot').value;
    expect(Object.keys(snap.objects).length).toBeGreaterThan(100);
    // the migration, with phase 2/3 stood in for by the fixture, plus the plan's SQL files of phase 4
    for (const f of engine.opts.loaded.plan.sql.structure) await db.client.query(fs.readFileSync(path.join(engine.opts.loaded.dir, f), 'utf8'));
    await db.client.query(`INSERT INTO public.report_folders (name) VALUES ('kept: holds a row')`);
    for (const t of engine.opts.loaded.tables) await buildFixture(engine, t);
    await writeIntegrityReport(engine, engine.opts.loaded.tables);
    let o = await engine.run({ phases: [4] });
    expect(o.message ?? '').toBe('');
    o = await engine.run({ phases: [5], only: ['swap:public.petri_observations', 'validate-fks:public.petri_observations', 'analyze:public.petri_observations', 'swap:public.gasifier_observations'] });
    expect(o.message ?? '').toBe('');
    expect(diffSnapshots(snap, await takeSnapshot(db.client)).length).toBeGreaterThan(20);
    // the application writes to the swapped table
    await db.client.query(`INSERT INTO public.petri_observations (program_id, site_id, petri_code, created_at)
                           SELECT program_id, site_id, 'AFTER-SWAP', '2025-08-03' FROM public.sites ORDER BY site_id LIMIT 1`);
    await db.client.query(`INSERT INTO public.petri_observations (program_id, site_id, petri_code, created_at)
                           SELECT program_id, site_id, 'GONE', '2025-08-04' FROM public.sites ORDER BY site_id LIMIT 1`);
    await db.client.query(`DELETE FROM public.petri_observations WHERE petri_code = 'GONE'`);

    o = await engine.run({ phases: ['rollback'] });
    expect(o.message ?? '').toBe('');
    expect(o.status).toBe('completed');
    const kinds = requests.filter((r) => r.stepId.startsWith('rollback:')).map((r) => `${r.kind} ${r.object} ${r.typed}`);
    expect(kinds).toEqual([
      'rollback public.gasifier_observations false', 'rollback public.petri_observations false', 'rollback created-objects true',
      'rollback public.gasifier_observations_partitioned true', 'rollback public.petri_observations_partitioned true',
    ]);
    const created = requests.find((r) => r.object === 'created-objects')!;
    expect(created.statements.find((x) => x.startsWith('DROP VIEW'))).toMatch(/^DROP VIEW (?=.*"public"."gasifier_observations_with_names")(?=.*"public"."petri_observations_with_names")/);
    // empty tables of the plan's SQL files go; a table holding rows stays (no down-migration), reported
    expect(created.statements.some((s) => /^DROP TABLE (?=.*"public"."dashboards")(?=.*"public"."saved_reports")/.test(s))).toBe(true);
    expect(created.statements.some((s) => s.includes('"report_folders"'))).toBe(false);
    expect(created.impact.some((l) => /table public.report_folders holds rows: left in place/.test(l))).toBe(true);
    // its policy reads report_folder_permissions: that one stays too
    expect(created.impact.some((l) => /table public.report_folder_permissions is empty but public.report_folders .* depends on it/.test(l))).toBe(true);
    const verify = await db.client.query<{ summary: string | null }>(`SELECT summary FROM pgshift.steps WHERE step_id = 'rollback:verify' ORDER BY started_at DESC LIMIT 1`);
    expect(first(verify.rows, 'rollback:verify step').summary).toMatch(/except 2 table\(s\) left in place/);
    await db.client.query(`DROP TABLE public.report_folders, public.report_folder_permissions`); // the operator's call, after reading the report

    // the proof: catalog identical to the snapshot, data identical (plus the row written after the swap)
    expect(diffSnapshots(snap, await takeSnapshot(db.client))).toEqual([]);
    const after = await fingerprints(db.client, 'AFTER-SWAP');
    expect(after).toEqual(before);
    const kept = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations WHERE petri_code IN ('AFTER-SWAP', 'GONE')`);
    expect(kept.rows[0]!.n).toBe(1);
    const fk = await db.client.query<{ convalidated: boolean }>(`SELECT convalidated FROM pg_constraint WHERE conname = 'petri_observation_images_observation_id_fkey'`);
    expect(first(fk.rows, 'image foreign key').convalidated).toBe(true);
    // the journal forgot the undone steps: a new run starts over
    const st = await db.client.query(`SELECT step_id FROM pgshift.step_state WHERE step_id LIKE 'swap:%' OR step_id LIKE 'dependencies:%' OR step_id = 'snapshot:catalog'`);
    expect(st.rows).toEqual([]);
    const art = await db.client.query(`SELECT key FROM pgshift.artifacts WHERE key LIKE 'swap:%' OR key = 'snapshot:catalog'`);
    expect(art.rows).toEqual([]);
  });

  it('an old table gone without a record of the swap: the restore is refused with what to do, nothing changes', async () => {
    // a verified backup as phase 1 records it, then the old table is gone, but the journal holds no swap record
    const file = path.join(dir, 'backup.dump');
    const u = new URL(db.url);
    execFileSync('pg_dump', ['--format=custom', '--file', file, '--dbname', db.name], {
      env: { ...process.env, PGHOST: u.hostname, PGPORT: u.port, PGUSER: decodeURIComponent(u.username), PGPASSWORD: decodeURIComponent(u.password) },
    });
    const now_ = new Date().toISOString();
    await engine.journal.setArtifact(Artifacts.backup, {
      file, bytes: fs.statSync(file).size, sha256: await sha256File(file), startedAt: now_, endedAt: now_, format: 'custom',
      serverMajor: engine.serverMajor, pgDumpVersion: null, database: db.name, verified: true, verifiedAt: now_, verifyMethod: 'list',
    });
    const snap = await takeSnapshot(db.client);
    await db.client.query(`CREATE TABLE public.petri_observations_partitioned (LIKE public.petri_observations) PARTITION BY RANGE (created_at)`);
    await db.client.query(`CREATE TABLE public.po_all PARTITION OF public.petri_observations_partitioned DEFAULT`);
    await db.client.query(`INSERT INTO public.petri_observations_partitioned SELECT * FROM public.petri_observations`);
    await db.client.query(`DROP VIEW public.petri_observations_summary`);
    await db.client.query(`ALTER TABLE public.petri_observation_images DROP CONSTRAINT petri_observation_images_observation_id_fkey`);
    await db.client.query(`DROP TABLE public.petri_observations`);
    await db.client.query(`ALTER TABLE public.petri_observations_partitioned RENAME TO petri_observations`);
    await engine.journal.setArtifact(Artifacts.snapshot, snap);
    const now = await takeSnapshot(db.client);

    await engine.close();
    const seen: ConfirmRequest[] = [];
    engine = await Engine.open({
      phases: PHASE_REGISTRY,
      conn: resolveConnection(db.url), loaded: engine.opts.loaded, mode: 'test', operator: 'tester',
      confirm: (r) => (seen.push(r), Promise.resolve({ confirmed: true, method: 'typed', by: 'tester', typedText: r.object })),
    });
    const o = await engine.run({ phases: ['rollback'] });
    expect(o.status).toBe('stopped');
    const req = seen.find((r) => r.kind === 'restore')!;
    expect(req).toMatchObject({ object: 'public.petri_observations', typed: true, stepId: 'rollback:restore:public.petri_observations' });
    expect(req.refusal).toMatch(/journal has no record of the swap .* restore public\.petri_observations from .*backup\.dump by hand/);
    expect(diffSnapshots(now, await takeSnapshot(db.client))).toEqual([]);
  });
});
