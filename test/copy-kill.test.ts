import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createDemoDatabase } from '../source/demo/schema.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PETRI_COLS, PETRI_ENTRY, contentHash, createPetriTarget, tmpDir, writePlan } from './fixtures/copy-helpers.js';

const root = path.resolve(__dirname, '..');
const ROWS = 30_000;

const BATCH = 250;
const STEP = 'copy:public.petri_observations';

interface Child { code: number | null; signal: NodeJS.Signals | null; out: string }

/** Runs the built CLI (dist/, built once by the global setup) in a child process. */
function spawnCli(args: string[]): { child: ChildProcess; exited: Promise<Child> } {
  const child = spawn(process.execPath, [path.join(root, 'bin/pgshift.js'), ...args], { cwd: root, env: { ...process.env, CI: '' } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<Child>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out })));
  return { child, exited };
}

describe('SIGKILL after N committed checkpoints during the copy, then resume: no duplicate, no gap', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    // the child runs the CLI from dist/, which the global setup (test/build-dist.ts) built before any test started
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
      const r = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'pgshift%'`);
      if (r.rows[0]!.n === 0) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error('pgshift backends still there 10 s after the kill');
  }

  /** rows_done of the copy's checkpoint, or null while the journal or the checkpoint does not exist yet. */
  async function committedRows(): Promise<number | null> {
    const r = await db.client.query<{ n: string | null }>(
      `SELECT (SELECT rows_done FROM pgshift.checkpoints WHERE step_id = $1) AS n FROM (SELECT to_regclass('pgshift.checkpoints') AS t) x WHERE t IS NOT NULL`,
      [STEP],
    ).catch(() => ({ rows: [] as { n: string | null }[] }));
    const n = r.rows[0]?.n;
    return n === undefined || n === null ? null : Number(n);
  }

  /**
   * Starts the CLI and SIGKILLs it as soon as the checkpoint (read from the database) shows `atLeast` committed rows.
   * No wall-clock budget: it fails if the child exits first, or if the copy stops progressing (same checkpoint, child
   * alive) for as long as the whole copy so far has taken per batch, times a generous factor.
   */
  async function killAfter(args: string[], atLeast: number): Promise<{ exit: Child; seenAtKill: number }> {
    const { child, exited } = spawnCli(args);
    let done: Child | null = null;
    void exited.then((r) => (done = r));
    let last = await committedRows();
    let stalledPolls = 0;
    for (;;) {
      if (done) throw new Error(`the copy ended before reaching ${atLeast} committed rows (checkpoint ${last}):\n${(done as Child).out}`);
      const n = await committedRows();
      if (n !== null && n >= atLeast) {
        child.kill('SIGKILL');
        return { exit: await exited, seenAtKill: n };
      }
      stalledPolls = n === last ? stalledPolls + 1 : 0;
      last = n;
      // 20 ms polls: 3,000 polls without a single new checkpoint (start-up included) means the copy is stuck
      if (stalledPolls > 3000) {
        child.kill('SIGKILL');
        throw new Error(`no new checkpoint in 3,000 polls (checkpoint ${n}); output:\n${(await exited).out}`);
      }
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  it('is killed six times mid-copy, each after N more committed checkpoints, and resumes each time; the final content hash equals the source', async () => {
    const file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY], copy: { batchRows: BATCH, pauseMs: 50 }, pruning: { queries: [] } });
    const args = ['--headless', '--phase', '3', '--plan', file, '--db', db.url, '--skip-backup', '--confirm', 'backup'];
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const seen: number[] = [];
    // 6 kills of at most 12 batches each: 72 of the 120 batches, so every kill lands mid-copy
    for (let kill = 0; kill < 6; kill++) {
      const before = seen.at(-1) ?? 0;
      const batches = 1 + Math.floor(rnd() * 12);
      const { exit, seenAtKill } = await killAfter(args, before + batches * BATCH);
      expect(exit.signal, exit.out).toBe('SIGKILL');
      await waitForPgshiftToLeave();
      const cp = await committedRows();
      const n = (await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations_partitioned`)).rows[0]!.n;
      // the invariant a kill must never break: what is committed in the target is exactly what the checkpoint says
      expect(n).toBe(cp);
      // the kill came after that many committed rows: nothing committed is lost, and the copy never finished
      expect(n).toBeGreaterThanOrEqual(seenAtKill);
      expect(n).toBeGreaterThan(before);
      expect(n).toBeLessThan(ROWS);
      seen.push(n);
    }
    const final = await spawnCli(args).exited;
    expect(final.code, final.out).toBe(0);
    expect(final.out).toMatch(/resuming: run \d+ stopped|already done/);
    const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
    const b = await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id');
    expect(a.n).toBe(ROWS);
    expect(b).toEqual(a);
    const dups = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT observation_id FROM public.petri_observations_partitioned GROUP BY 1 HAVING count(*) > 1) d`);
    expect(dups.rows[0]!.n).toBe(0);
    const runs = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.runs WHERE status = 'interrupted'`);
    // every kill came after a checkpoint of its own run, so each killed run is journaled and shows as interrupted
    expect(runs.rows[0]!.n).toBe(seen.length);
    const rep = await db.client.query<{ value: { pass: boolean } }>(`SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`);
    expect(rep.rows[0]!.value.pass).toBe(true);
  });
});
