import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { createDemoDatabase } from '../source/demo/schema.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PETRI_COLS, PETRI_ENTRY, contentHash, createPetriTarget, tmpDir, writePlan } from './fixtures/copy-helpers.js';

const root = path.resolve(__dirname, '..');
const ROWS = 30_000;

/** Runs `pgshift --headless --phase 3` in a child process; kills it with SIGKILL after killMs (if given). */
function runCli(args: string[], killMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, 'bin/pgshift.js'), ...args], { cwd: root, env: { ...process.env, CI: '' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = killMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), killMs);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

describe('SIGKILL at random points during the copy, then resume: no duplicate, no gap', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    // the child runs the built CLI: build it (tsc emits even while other parts of the repo have type errors)
    spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', root], { cwd: root, stdio: 'ignore' });
    expect(fs.existsSync(path.join(root, 'dist/source/cli.js'))).toBe(true);
    db = await freshDatabase('copy_kill');
    dir = tmpDir('copy-kill');
    await createDemoDatabase(db.client, { rows: ROWS });
    await createPetriTarget(db.client);
  }, 180_000);
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function waitForPgshiftToLeave(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const r = await db.client.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgshift%'`);
      if (r.rows[0].n === 0) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error('pgshift backends still there 10 s after the kill');
  }

  it('is killed six times mid-copy and resumes each time from its checkpoint; the final content hash equals the source', async () => {
    const file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY], copy: { batchRows: 250, pauseMs: 50 }, pruning: { queries: [] } });
    const args = ['--headless', '--phase', '3', '--plan', file, '--db', db.url, '--skip-backup', '--confirm', 'backup'];
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const seen: number[] = [];
    let kills = 0;
    for (let attempt = 0; attempt < 12 && kills < 6; attempt++) {
      const before = seen.at(-1) ?? 0;
      const r = await runCli(args, 500 + Math.floor(rnd() * 900));
      await waitForPgshiftToLeave();
      // a kill during start-up may land before the journal exists
      const journal = (await db.client.query(`SELECT to_regclass('pgshift.checkpoints') IS NOT NULL AS ok`)).rows[0].ok;
      const cp = journal
        ? await db.client.query(`SELECT rows_done FROM pgshift.checkpoints WHERE step_id = 'copy:public.petri_observations'`)
        : { rows: [] as { rows_done: string }[] };
      const n = (await db.client.query(`SELECT count(*)::int AS n FROM public.petri_observations_partitioned`)).rows[0].n;
      // the invariant a kill must never break: what is committed in the target is exactly what the checkpoint says
      expect(n).toBe(cp.rows[0] ? Number(cp.rows[0].rows_done) : 0);
      if (r.signal === 'SIGKILL') {
        kills++;
        seen.push(n);
        expect(n).toBeGreaterThanOrEqual(before);
      } else {
        break; // finished before the kill: the copy is done
      }
    }
    expect(kills).toBeGreaterThanOrEqual(5);
    // at least some kills landed mid-copy (neither before the first batch nor after the last)
    expect(seen.filter((n) => n > 0 && n < ROWS).length).toBeGreaterThanOrEqual(3);
    const final = await runCli(args);
    expect(final.code, final.out).toBe(0);
    expect(final.out).toMatch(/resuming: run \d+ stopped|already done/);
    const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
    const b = await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id');
    expect(a.n).toBe(ROWS);
    expect(b).toEqual(a);
    const dups = await db.client.query(`SELECT count(*)::int AS n FROM (SELECT observation_id FROM public.petri_observations_partitioned GROUP BY 1 HAVING count(*) > 1) d`);
    expect(dups.rows[0].n).toBe(0);
    const runs = await db.client.query(`SELECT count(*)::int AS n FROM pgshift.runs WHERE status = 'interrupted'`);
    // every kill that landed after the run was journaled shows as an interrupted run (a kill during start-up may not)
    expect(runs.rows[0].n).toBeGreaterThanOrEqual(3);
    expect(runs.rows[0].n).toBeLessThanOrEqual(kills);
    const rep = await db.client.query(`SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`);
    expect(rep.rows[0].value.pass).toBe(true);
  });
});
