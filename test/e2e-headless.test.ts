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

const TABLES = DEMO_TABLES;

/**
 * The example plan end to end through the CLI, headless, as an operator would run it; then the application's own
 * queries against the swapped tables; then the rollback back to the exact pre-migration catalog and data.
 */
describe('end to end, headless: the seed plan on the demo data, then back', () => {
  let db: FreshDb;
  let dir: string;
  let plan: string;
  let before: Record<string, { rows: number; hash: string }>;
  let snap0: CatalogSnapshot;
  beforeAll(async () => {
    db = await freshDatabase('e2e_headless');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-e2e-'));
    await createDemoDatabase(db.client, { rows: 6000 });
    plan = examplePlan(dir);
    before = {};
    for (const t of TABLES) before[t] = await tableFingerprint(db.client, 'public', t);
    snap0 = await takeSnapshot(db.client);
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stops before the first swap without --confirm (exit 3, naming the flag), then completes with it', async () => {
    let io = captureIo();
    let code = await main(['--headless', '--plan', plan, '--db', db.url], io);
    expect(code, io.text()).toBe(3);
    expect(io.stderr.at(-1)).toBe('hint: to allow it in headless mode, pass --confirm public.petri_observations');
    // nothing was renamed
    expect(first((await db.client.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.petri_observations'::regclass`)).rows, 'pg_class row').relkind).toBe('r');

    io = captureIo();
    code = await main(['--headless', '--plan', plan, '--db', db.url, '--confirm', 'public.petri_observations', '--confirm', 'public.gasifier_observations'], io);
    const out = io.text();
    expect(code, out).toBe(0);
    expect(out).toMatch(/✓ verify:integrity {2}done: PASS/);
    expect(out).toMatch(/pruning works: 1 of \d+ partitions scanned/);
    expect(out).toMatch(/– drop:public\.petri_observations_old {2}skipped: kept until \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    const kinds = await db.client.query(`SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relname IN ('petri_observations', 'petri_observations_old', 'gasifier_observations', 'gasifier_observations_old') ORDER BY 1`);
    expect(kinds.rows).toEqual([
      { relname: 'gasifier_observations', relkind: 'p' }, { relname: 'gasifier_observations_old', relkind: 'r' },
      { relname: 'petri_observations', relkind: 'p' }, { relname: 'petri_observations_old', relkind: 'r' },
    ]);
    const conf = await db.client.query<{ object: string; answer: string; method: string; confirmed_by: string }>(`SELECT object, answer, method, confirmed_by FROM pgshift.confirmations WHERE answer = 'confirmed' ORDER BY id`);
    expect(conf.rows.map((r) => `${r.object} ${r.method}`)).toEqual(['public.petri_observations flag', 'public.gasifier_observations flag']);
    expect(conf.rows.every((r) => r.confirmed_by === os.userInfo().username)).toBe(true);
  });

  it("the application's queries work unchanged against the swapped tables", async () => {
    const c = db.client;
    const counts = await c.query(`SELECT (SELECT count(*) FROM petri_observations)::int AS p, (SELECT count(*) FROM gasifier_observations)::int AS g,
                                         (SELECT count(*) FROM petri_observations_with_names)::int AS pv, (SELECT count(*) FROM gasifier_observations_with_names)::int AS gv`);
    expect(counts.rows[0]).toEqual({ p: before.petri_observations!.rows, g: before.gasifier_observations!.rows, pv: before.petri_observations!.rows, gv: before.gasifier_observations!.rows });
    // the views now read the partitioned tables
    const v = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class = 'public.petri_observations_with_names'::regclass AND d.refobjid = 'public.petri_observations'::regclass`);
    expect(v.rows[0]!.n).toBeGreaterThan(0);
    // an insert as the app does it: defaults (uuid, serial, timestamps) fill in, the row lands in its month's partition
    const ins = await c.query<{ observation_id: string; observation_seq: string; part: string }>(`INSERT INTO petri_observations (program_id, site_id, petri_code, growth_index, created_at)
                               SELECT program_id, site_id, 'E2E-1', 12.5, '2025-06-15 10:00+00' FROM sites LIMIT 1
                               RETURNING observation_id, observation_seq, tableoid::regclass::text AS part`);
    expect(first(ins.rows, 'inserted observation').part).toBe('petri_observations_p2025_06');
    expect(Number(first(ins.rows, 'inserted observation').observation_seq)).toBeGreaterThan(before.petri_observations!.rows);
    // the image table's FK now points at the partitioned table, on (observation_id, observation_created_at)
    await c.query(`INSERT INTO petri_observation_images (image_id, observation_id, observation_created_at, url)
                   VALUES (gen_random_uuid(), $1, '2025-06-15 10:00+00', 'https://img/e2e.png')`, [first(ins.rows, 'inserted observation').observation_id]);
    await expect(c.query(`INSERT INTO petri_observation_images (image_id, observation_id, observation_created_at, url)
                          VALUES (gen_random_uuid(), gen_random_uuid(), now(), 'https://img/orphan.png')`)).rejects.toThrow(/violates foreign key constraint/);
    const join = await c.query(`SELECT o.petri_code, i.url FROM petri_observation_images i JOIN petri_observations o USING (observation_id) WHERE o.petri_code = 'E2E-1'`);
    expect(join.rows).toEqual([{ petri_code: 'E2E-1', url: 'https://img/e2e.png' }]);
    // seed 003: a new program gets its own gasifier partition automatically
    const prog = await c.query<{ program_id: string }>(`INSERT INTO pilot_programs (name) VALUES ('E2E program') RETURNING program_id`);
    const g = await c.query<{ part: string; reading_no: string }>(`INSERT INTO gasifier_observations (program_id, site_id, gasifier_code, measure)
                             SELECT $1, site_id, 'G-E2E', 1.5 FROM sites LIMIT 1 RETURNING tableoid::regclass::text AS part, reading_no`, [first(prog.rows, 'inserted program').program_id]);
    expect(first(g.rows, 'inserted gasifier reading').part).toBe(`gasifier_observations_p_${String(first(prog.rows, 'inserted program').program_id).replace(/-/g, '')}`);
    expect(Number(first(g.rows, 'inserted gasifier reading').reading_no)).toBeGreaterThan(before.gasifier_observations!.rows);
    // undo the app writes so the rollback proof compares with the starting data
    await c.query(`DELETE FROM petri_observation_images WHERE url = 'https://img/e2e.png'`);
    await c.query(`DELETE FROM petri_observations WHERE petri_code = 'E2E-1'`);
    await c.query(`DELETE FROM gasifier_observations WHERE gasifier_code = 'G-E2E'`);
  });

  it('the rollback, confirmed object by object, restores the exact catalog and data', async () => {
    const confirms: string[] = [];
    let last = '';
    let all = '';
    for (let i = 0; i < 10; i++) {
      const io = captureIo();
      const code = await main(['--headless', '--rollback', '--plan', plan, '--db', db.url, ...confirms.flatMap((x) => ['--confirm', x])], io);
      last = io.text();
      all += last + '\n';
      if (code === 0) break;
      expect(code, last).toBe(3);
      const m = /pass --confirm (\S+)$/.exec(io.stderr.at(-1) ?? '');
      expect(m, last).not.toBeNull();
      confirms.push(m![1]!);
    }
    expect(last).toMatch(/run \d+ completed/);
    expect(confirms).toEqual(expect.arrayContaining(['public.petri_observations', 'public.gasifier_observations']));
    // the confirmation lists what is left in place; a view created by the migration is dropped, not "a column added"
    expect(all).toMatch(/rollback created-objects/i);
    expect(all).not.toMatch(/_with_names\.\w+ was added to an existing table/);
    // the program inserted by the app after the swap stays (data written by the application is never dropped)
    await db.client.query(`DELETE FROM pilot_programs WHERE name = 'E2E program'`);
    expect(diffSnapshots(snap0, await takeSnapshot(db.client))).toEqual([]);
    for (const t of TABLES) expect(await tableFingerprint(db.client, 'public', t), t).toEqual(before[t]);
  });
});
