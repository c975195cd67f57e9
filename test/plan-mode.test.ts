import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { main } from '../source/cli.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { examplePlanPath } from '../source/paths.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';
import { catalogFingerprint } from './helpers/catalog.js';

describe('pgshift plan (dry run)', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('plan_mode');
    await createDemoDatabase(db.client, { rows: 5000 });
  });
  afterAll(async () => {
    await db.drop();
  });

  it('prints every phase with its statements and leaves the catalog and the data unchanged', async () => {
    const before = await catalogFingerprint(db.client);
    const rowsBefore = await db.client.query(`SELECT (SELECT count(*) FROM petri_observations) AS p, (SELECT count(*) FROM gasifier_observations) AS g`);
    const io = captureIo();
    const code = await main(['plan', '--plan', examplePlanPath(), '--db', db.url], io);
    const text = io.stdout.join('\n');
    expect(code, io.text()).toBe(0);
    expect(text).toMatch(/^-- pgshift plan: Seed migration/);
    for (const phase of ['Phase 1 · Preparation', 'Phase 2 · Structure', 'Phase 3 · Data', 'Phase 4 · Dependencies', 'Phase 5 · Cleanup']) {
      expect(text).toContain(`-- ═══ ${phase}`);
    }
    expect(text).toContain('pg_stat_user_tables');
    expect(text).toContain('pg_constraint');
    // phases 4-5 are told from the catalog before phase 4 ran: the inbound FK and the view the swap moves
    expect(text).not.toContain('known after phase 4');
    expect(text).toMatch(/-- \+ foreign key public\.petri_observation_images\.\S+ dropped and re-added NOT VALID/);
    expect(text).toMatch(/ALTER TABLE "public"\."petri_observation_images" VALIDATE CONSTRAINT /);
    expect(text).toMatch(/-- \+ view public\.\S+ re-created against the new table/);
    // nothing changed: not even the journal schema exists
    expect(await catalogFingerprint(db.client)).toBe(before);
    const j = await db.client.query<{ n: string | null }>(`SELECT to_regnamespace('pgshift') AS n`);
    expect(j.rows[0]!.n).toBeNull();
    const rowsAfter = await db.client.query(`SELECT (SELECT count(*) FROM petri_observations) AS p, (SELECT count(*) FROM gasifier_observations) AS g`);
    expect(rowsAfter.rows).toEqual(rowsBefore.rows);
    // the rollback preview is also a dry run
    const io2 = captureIo();
    expect(await main(['plan', '--rollback', '--plan', examplePlanPath(), '--db', db.url], io2)).toBe(0);
    expect(io2.stdout.join('\n')).toContain('-- ═══ Phase rollback · Rollback');
    expect(await catalogFingerprint(db.client)).toBe(before);
  });

  it('JSON output lists steps with deterministic ids', async () => {
    const a = captureIo();
    const b = captureIo();
    expect(await main(['plan', '--json', '--until', '1', '--plan', examplePlanPath(), '--db', db.url], a)).toBe(0);
    expect(await main(['plan', '--json', '--until', '1', '--plan', examplePlanPath(), '--db', db.url], b)).toBe(0);
    const ids = (io: ReturnType<typeof captureIo>) => (JSON.parse(io.stdout.join('\n')) as { phases: { steps: { id: string }[] }[] }).phases.flatMap((p) => p.steps.map((s) => s.id));
    expect(ids(a)).toEqual(ids(b));
    expect(ids(a)).toEqual(expect.arrayContaining(['report:data-volume', 'report:fk-dependencies']));
  });

  it('runs preflight read-only, ends with the headless command line and every --confirm; run as printed it exits 0', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { spawnSync } = await import('node:child_process');
    const root = path.resolve(__dirname, '..');
    // the example folder copied (its SQL paths are relative to the plan), retention 0 days: the drops are in this run
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-plancmd-'));
    fs.cpSync(path.dirname(examplePlanPath()), dir, { recursive: true });
    const planFile = path.join(dir, 'plan.json');
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as { retention: Record<string, unknown>; copy: Record<string, unknown> };
    plan.retention = { ...plan.retention, days: 0 };
    plan.copy = { ...plan.copy, batchRows: 2000 };
    fs.writeFileSync(planFile, JSON.stringify(plan));
    const before = await catalogFingerprint(db.client);
    const env = { ...process.env, DATABASE_URL: db.url, CI: 'true' };
    const p = spawnSync(process.execPath, [path.join(root, 'bin/pgshift.js'), 'plan', '--plan', planFile], { cwd: dir, env, encoding: 'utf8' });
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/-- ═══ Preflight \(read-only\): \d+ pass, \d+ warn, 0 fail/);
    expect(await catalogFingerprint(db.client)).toBe(before); // preflight and plan changed nothing
    const last = p.stdout.trimEnd().split('\n').at(-1)!;
    expect(last).toMatch(/^pgshift --headless --plan \S+/);
    expect(last).toContain('--confirm public.petri_observations');
    expect(last).toContain('--confirm public.gasifier_observations');
    expect(last).not.toContain(db.url.replace(/^.*:([^@]*)@.*$/, '$1')); // no password
    // run as printed (the words split as a POSIX shell would: nothing here needs quotes)
    const words = last.split(' ');
    expect(words.every((w) => !w.startsWith("'"))).toBe(true);
    const run = spawnSync(process.execPath, [path.join(root, 'bin/pgshift.js'), ...words.slice(1)], { cwd: dir, env, encoding: 'utf8', timeout: 600_000 });
    expect(run.status, `${run.stdout}\n${run.stderr}`.slice(-3000)).toBe(0);
    const counts = await db.client.query(`SELECT (SELECT count(*) FROM public.petri_observations)::int AS p, (SELECT relkind FROM pg_class WHERE oid = 'public.petri_observations'::regclass)::text AS k`);
    expect(counts.rows[0]).toEqual({ p: 5000, k: 'p' });
    fs.rmSync(dir, { recursive: true, force: true });
  }, 600_000);

  it('exits 2 when preflight would refuse (a partition key column that does not exist)', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-planbad-'));
    fs.cpSync(path.dirname(examplePlanPath()), dir, { recursive: true });
    const planFile = path.join(dir, 'plan.json');
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as { partition: [{ key: string }] };
    plan.partition[0].key = 'no_such_column';
    fs.writeFileSync(planFile, JSON.stringify(plan));
    const other = await freshDatabase('plan_refuse');
    try {
      await createDemoDatabase(other.client, { rows: 1000 });
      const io = captureIo();
      const code = await main(['plan', '--until', '1', '--plan', planFile, '--db', other.url], io);
      expect(code, io.text()).toBe(2);
      // what cannot run is refused before any statement is generated: one line per problem, with its hint
      expect(io.stderr.join('\n')).toMatch(/the plan cannot run on this database \(1 problem; nothing was changed\)/);
      expect(io.stderr.join('\n')).toMatch(/✗ .*no_such_column/);
      expect(io.stdout.join('\n')).not.toMatch(/^pgshift --headless/m);
    } finally {
      await other.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
