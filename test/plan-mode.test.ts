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
    // nothing changed: not even the journal schema exists
    expect(await catalogFingerprint(db.client)).toBe(before);
    const j = await db.client.query(`SELECT to_regnamespace('pgshift') AS n`);
    expect(j.rows[0].n).toBeNull();
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
    const ids = (io: ReturnType<typeof captureIo>) => (JSON.parse(io.stdout.join('\n')) as { steps: { id: string }[] }[]).flatMap((p) => p.steps.map((s) => s.id));
    expect(ids(a)).toEqual(ids(b));
    expect(ids(a)).toEqual(expect.arrayContaining(['report:data-volume', 'report:fk-dependencies']));
  });
});
