import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan, type LoadedPlan } from '../source/plan/load.js';
import type { ConfirmFn, EngineEvent, ReportTable } from '../source/engine/types.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { examplePlanPath } from '../source/paths.js';
import type { BackupArtifact } from '../source/backup.js';
import { PHASE_REGISTRY } from '../phases/index.js';

const yes: ConfirmFn = () => Promise.resolve({ confirmed: true, method: 'yes', by: 'test' });

/** The example plan copied to a temp dir (its backups go there), optionally changed. */
function examplePlanCopy(change: (p: Record<string, unknown>) => void = () => {}): { dir: string; loaded: LoadedPlan } {
  const src = path.dirname(examplePlanPath());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-p1-'));
  fs.cpSync(path.join(src, 'sql'), path.join(dir, 'sql'), { recursive: true });
  const plan = JSON.parse(fs.readFileSync(examplePlanPath(), 'utf8')) as Record<string, unknown>;
  delete plan.$schema;
  plan.backup = { ...(plan.backup as object), directory: './backups' };
  change(plan);
  fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(plan, null, 2));
  return { dir, loaded: loadPlan(path.join(dir, 'plan.json')) };
}

async function run(url: string, loaded: LoadedPlan) {
  const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(url), loaded, confirm: yes, mode: 'test' });
  const events: EngineEvent[] = [];
  engine.on((e) => events.push(e));
  try {
    return { outcome: await engine.run({ phases: [1] }), events };
  } finally {
    await engine.close();
  }
}

function preflightTable(events: EngineEvent[]): ReportTable {
  const e = events.find((x) => x.type === 'step-done' && x.stepId === 'preflight') as Extract<EngineEvent, { type: 'step-done' }>;
  return e.tables![0]!;
}
const rowOf = (t: ReportTable, check: string) => t.rows.find((r) => r[0] === check);
/** A failed preflight prints one line per problem ("check: cause — hint"), not its table. */
const problems = (events: EngineEvent[]) => events.filter((x) => x.type === 'step-log' && x.stepId === 'preflight' && x.level === 'error').map((x) => (x as { message: string }).message);

describe('phase 1 on the demo data with the example plan', () => {
  let db: FreshDb;
  let dir: string;
  let result: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    db = await freshDatabase('phase1_demo');
    await createDemoDatabase(db.client, { rows: 20_000 });
    const copy = examplePlanCopy();
    dir = copy.dir;
    result = await run(db.url, copy.loaded);
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs preflight, backup, verify, the two reports and the snapshot, in that order', () => {
    expect(result.outcome.status, result.outcome.message).toBe('completed');
    const started = result.events.filter((e) => e.type === 'step-started').map((e) => (e as { stepId: string }).stepId);
    expect(started).toEqual(['preflight', 'backup:pg_dump', 'backup:verify', 'report:data-volume', 'report:fk-dependencies', 'snapshot:catalog']);
  });

  it('preflight explains what the partitioning changes', () => {
    const t = preflightTable(result.events);
    expect(t.columns).toEqual(['check', 'status', 'detail', 'hint']);
    expect(rowOf(t, 'public.petri_observations: PK')!.slice(0, 2)).toEqual(['public.petri_observations: PK', 'warn']);
    expect(rowOf(t, 'public.petri_observations: PK')![2]).toMatch(/^behaviour change: PK \(observation_id\) becomes \(observation_id, created_at\) — .*no longer unique across partitions/);
    expect(rowOf(t, 'public.petri_observations: row key')![2]).toBe('primary key (observation_id)');
    const fk = rowOf(t, 'public.petri_observations: inbound FK from public.petri_observation_images')!;
    expect(fk[1]).toBe('pass');
    expect(fk[2]).toContain('petri_observation_images.observation_created_at holds the key');
    expect(rowOf(t, 'public.gasifier_observations: inbound FK from public.gasifier_alerts')![1]).toBe('pass');
    expect(rowOf(t, 'public.petri_observations: inbound FK from public.petri_observation_images: behaviour change')![2]).toMatch(/updating created_at of a referenced .* now fails/);
    expect(rowOf(t, 'public.petri_observations: dependent views')![2]).toContain('petri_observations_summary');
    expect(rowOf(t, 'public.petri_observations: RLS')![2]).toContain('2 policies');
    expect(rowOf(t, 'public.petri_observations: sequences')![2]).toContain('petri_observations_observation_seq_seq');
    expect(rowOf(t, 'public.gasifier_observations: sequences')![2]).toContain('reading_no (identity BY DEFAULT)');
    expect(rowOf(t, 'pg_dump version')![1]).toBe('pass');
    expect(t.rows.filter((r) => r[1] === 'fail')).toEqual([]);
  });

  it('writes a 0600 custom-format backup, records it, and verifies it', async () => {
    const [a] = (await db.client.query<{ value: BackupArtifact }>(`SELECT value FROM pgshift.artifacts WHERE key = 'backup'`)).rows;
    const b = a!.value;
    expect(b.file.startsWith(path.join(dir, 'backups') + path.sep)).toBe(true);
    expect(path.basename(b.file)).toMatch(new RegExp(`^${db.name}_\\d{8}_\\d{6}\\.dump$`));
    expect(fs.statSync(b.file).mode & 0o777).toBe(0o600);
    expect(b.bytes).toBe(fs.statSync(b.file).size);
    expect(b.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(b.verified).toBe(true);
    expect(b.verifiedAt).toBeTruthy();
    expect(b.format).toBe('custom');
    expect(b.tables!.map((t) => t.table)).toEqual(expect.arrayContaining(['public.petri_observations', 'public.gasifier_alerts']));
    const logs = result.events.filter((e) => e.type === 'step-log' && e.stepId === 'backup:pg_dump').map((e) => (e as { message: string }).message);
    expect(logs.some((l) => l.includes('ACCESS SHARE on every table'))).toBe(true);
    const progress = result.events.filter((e) => e.type === 'step-progress' && e.stepId === 'backup:pg_dump');
    expect(progress.length).toBeGreaterThan(0);
  });

  it('groups the FK report by table', () => {
    const e = result.events.find((x) => x.type === 'step-done' && x.stepId === 'report:fk-dependencies') as Extract<EngineEvent, { type: 'step-done' }> & { tables: readonly ReportTable[]; summary: string };
    expect(e.summary).toContain('2 point at tables this plan partitions');
    const tables = e.tables[0]!.rows.map((r) => r[0]).filter((x) => x);
    expect(new Set(tables).size).toBe(tables.length);
  });

  it('a second run finds the backup already done (same sha256)', async () => {
    const again = await run(db.url, loadPlan(path.join(dir, 'plan.json')));
    expect(again.outcome.status).toBe('completed');
    const files = fs.readdirSync(path.join(dir, 'backups'));
    expect(files).toHaveLength(1);
  });
});

describe('preflight failures stop the run before anything changes', () => {
  let db: FreshDb;
  let fakeBin: string;
  beforeAll(async () => {
    db = await freshDatabase('phase1_fail');
    await createDemoDatabase(db.client, { rows: 2_000 });
    fakeBin = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-fakebin-'));
  });
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(fakeBin, { recursive: true, force: true });
  });

  it('a pg_dump older than the server is reported, naming the package to install', async () => {
    for (const tool of ['pg_dump', 'pg_restore']) {
      fs.writeFileSync(path.join(fakeBin, tool), `#!/bin/sh\necho "${tool} (PostgreSQL) 11.0"\n`, { mode: 0o755 });
    }
    const { dir, loaded } = examplePlanCopy();
    const oldPath = process.env.PATH;
    process.env.PATH = `${fakeBin}${path.delimiter}${oldPath}`;
    try {
      const r = await run(db.url, loaded);
      expect(r.outcome.status).toBe('failed');
      expect(r.outcome.message).toBe('preflight: preflight: 2 problems (above), nothing was changed');
      expect(r.outcome.exitCode).toBe(2);
      const [{ major }] = (await db.client.query<{ major: number }>(`SELECT current_setting('server_version_num')::int / 10000 AS major`)).rows as [{ major: number }];
      expect(problems(r.events)).toEqual([
        `pg_dump version: pg_dump 11.0 is older than the server (PostgreSQL ${major}): it refuses to dump a newer server — install postgresql-client-${major} and put its bin directory first on PATH`,
        `pg_restore version: pg_restore 11.0 is older than the server (PostgreSQL ${major}): it refuses to dump a newer server — install postgresql-client-${major} and put its bin directory first on PATH`,
      ]);
      // nothing ran after the preflight: no backup, no file
      expect(r.events.some((e) => e.type === 'step-started' && e.stepId === 'backup:pg_dump')).toBe(false);
      expect(fs.existsSync(path.join(dir, 'backups'))).toBe(false);
    } finally {
      process.env.PATH = oldPath;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an inbound FK whose table has no column for the key fails, explaining what to add', async () => {
    await db.client.query(`CREATE TABLE public.petri_notes (id int PRIMARY KEY, observation_id uuid REFERENCES public.petri_observations (observation_id))`);
    const { dir, loaded } = examplePlanCopy();
    try {
      const r = await run(db.url, loaded);
      expect(r.outcome.status).toBe('failed');
      const lines = problems(r.events);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^public\.petri_observations: inbound FK from public\.petri_notes: petri_notes_observation_id_fkey \(observation_id\) → public\.petri_observations: .* has no column created_at — let pgshift add, fill and keep it filled: "addKeyColumns": \["public\.petri_notes"\]/);
      expect(lines[0]).toContain('inboundKeyColumns');
    } finally {
      await db.client.query(`DROP TABLE public.petri_notes`);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing table and a key of the wrong type fail', async () => {
    const { dir, loaded } = examplePlanCopy((p) => {
      p.partition = [
        { source: 'public.nope', strategy: 'range', key: 'created_at', interval: '1 month' },
        { source: 'public.sites', strategy: 'range', key: 'name', interval: '1 month' },
      ];
    });
    try {
      const r = await run(db.url, loaded);
      expect(r.outcome.status).toBe('failed');
      expect(problems(r.events).slice(0, 2)).toEqual([
        'public.nope: exists: table public.nope does not exist — check "source" in the plan (schema.table)',
        'public.sites: key name type: the key is text: RANGE partitioning needs a date, timestamp, timestamptz, integer, bigint or numeric key — choose another key column, or "strategy": "list"',
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
