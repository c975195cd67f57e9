import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { main } from '../source/cli.js';
import { createDemoDatabase, DEMO_TABLES } from '../source/demo/schema.js';
import { diffSnapshots, takeSnapshot, tableFingerprint, type CatalogSnapshot } from '../source/snapshot.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';
import { examplePlan } from './fixtures/swap.js';
import { first } from '../source/db/session.js';

/**
 * The demo's rollback after the drop (it failed on sites_pkey with pg_restore --clean of the whole database), then
 * a forward run after the rollback takes a new backup instead of reusing the stale one.
 */
describe('the demo: rollback after the old tables were dropped, then a fresh backup', () => {
  let db: FreshDb;
  let dir: string;
  let plan: string;
  let before: Record<string, { rows: number; hash: string }>;
  let snap0: CatalogSnapshot;
  beforeAll(async () => {
    db = await freshDatabase('schema_demo_drop');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-demo-drop-'));
    await createDemoDatabase(db.client, { rows: 3000 });
    plan = examplePlan(dir, { retention: { days: 0 } });
    before = {};
    for (const t of DEMO_TABLES) before[t] = await tableFingerprint(db.client, 'public', t);
    snap0 = await takeSnapshot(db.client);
  });
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function confirming(argv: string[]): Promise<{ code: number; out: string; confirms: string[] }> {
    const confirms: string[] = [];
    let out = '';
    for (let i = 0; i < 12; i++) {
      const io = captureIo();
      const code = await main(['--headless', ...argv, ...confirms.flatMap((x) => ['--confirm', x])], io);
      out += io.text() + '\n';
      const m = code === 3 ? /pass --confirm (\S+)$/.exec(io.stderr.at(-1) ?? '') : null;
      if (!m) return { code, out, confirms };
      confirms.push(m[1]!);
    }
    return { code: -1, out, confirms };
  }

  it('runs through the drop, rolls back to the exact catalog and data, and the next run takes a new backup', async () => {
    // one confirmation per run, as an operator finds them: the run after the first drop resumes with one table
    // swapped and its old table gone (phase 3's rerunnable steps used to fail there: "target does not exist")
    const names = ['public.petri_observations', 'public.gasifier_observations', 'public.petri_observations_old', 'public.gasifier_observations_old'];
    const run = await confirming(['--plan', plan, '--db', db.url]);
    expect(run.code, run.out).toBe(0);
    expect(run.confirms).toEqual(names);
    expect(run.out).toMatch(/public\.petri_observations is the partitioned table already and public\.petri_observations_old was dropped/);
    expect((await db.client.query<{ gone: boolean }>(`SELECT to_regclass('public.petri_observations_old') IS NULL AND to_regclass('public.gasifier_observations_old') IS NULL AS gone`)).rows[0]!.gone).toBe(true);
    // the swap confirmation shows the backup file's own time, not a re-verification's
    expect(run.out).toMatch(/protection: backup \S+\.dump \([^)]+\), taken \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, verified /);

    const rb = await confirming(['--rollback', '--plan', plan, '--db', db.url]);
    expect(rb.code, rb.out).toBe(0);
    expect(rb.out).not.toMatch(/cannot drop (inherited )?constraint/);
    expect(rb.out).toMatch(/rollback:restore:public\.petri_observations {2}done/);
    expect(rb.out).toMatch(/rollback:restore:public\.gasifier_observations {2}done/);
    expect(diffSnapshots(snap0, await takeSnapshot(db.client))).toEqual([]);
    for (const t of DEMO_TABLES) expect(await tableFingerprint(db.client, 'public', t), t).toEqual(before[t]);

    const files0 = fs.readdirSync(path.join(dir, 'backups'));
    expect(files0).toHaveLength(1);
    // the stale backup is not reused: the next forward run takes its own
    const io = captureIo();
    expect(await main(['--headless', '--plan', plan, '--db', db.url, '--until', '1'], io), io.text()).toBe(0);
    expect(io.text()).not.toMatch(/backup:pg_dump {2}already done/);
    expect(fs.readdirSync(path.join(dir, 'backups'))).toHaveLength(2);
    const art = await db.client.query<{ file: string }>(`SELECT value->>'file' AS file FROM pgshift.artifacts WHERE key = 'backup'`);
    expect(files0).not.toContain(path.basename(first(art.rows, 'backup artifact').file));
  });
});
