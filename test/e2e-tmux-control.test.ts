import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createDemoDatabase } from '../source/demo/schema.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PETRI_ENTRY, createPetriTarget, tmpDir, writePlan } from './fixtures/copy-helpers.js';
import { hasTmux } from './helpers/tmux.js';

/*
 * The operator's live control of a running copy, in a real terminal: the wizard pauses the copy with P and changes
 * its batch size with +; `pgshift control resume` from another terminal resumes it. Every wait is on state
 * committed in the database (checkpoints, pgshift.control rows) or on the screen, never on a guessed duration.
 */
const root = path.resolve(__dirname, '..');
const session = `pgshift-ctl-${process.pid}-${Date.now().toString(36)}`;
const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
const screen = () => {
  try {
    return tmux('capture-pane', '-p', '-t', session);
  } catch {
    return '';
  }
};
const keys = (...k: string[]) => tmux('send-keys', '-t', session, ...k);
const tick = () => new Promise((r) => setTimeout(r, 100));

function control(url: string, ...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/pgshift.js'), 'control', ...args, '--db', url, '--operator', 'oncall', '--no-wait'],
      { env: { ...process.env, CI: 'true' } }, (e, out, err) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out: out + err }));
  });
}

describe.skipIf(!hasTmux)('live control of a running copy in the wizard (tmux 120×40)', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('tmux_control');
    dir = tmpDir('tmux-control');
    await createDemoDatabase(db.client, { rows: 12_000 });
    await createPetriTarget(db.client);
  });
  afterAll(async () => {
    try {
      tmux('kill-session', '-t', session);
    } catch {
      // already gone
    }
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Waits until check() holds; the test's own timeout bounds a stall. `what` and the screen go into the failure. */
  async function until<T>(what: string, check: () => Promise<T | null | undefined | false>): Promise<T> {
    for (;;) {
      const v = await check();
      if (v) return v;
      await tick();
      if (screen().includes('PGSHIFT-EXIT=')) throw new Error(`the wizard ended while waiting for ${what}:\n${screen()}`);
    }
  }
  const rowsDone = async () => Number((await db.client.query<{ n: number }>(`SELECT coalesce(max(rows_done), 0)::int AS n FROM pgshift.checkpoints WHERE step_id = 'copy:public.petri_observations'`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0]!.n);
  const controlRow = async (command: string) =>
    (await db.client.query(`SELECT * FROM pgshift.control WHERE command = $1 AND applied_at IS NOT NULL ORDER BY id DESC LIMIT 1`, [command]).catch(() => ({ rows: [] }))).rows[0] as Record<string, unknown> | undefined;

  it('P pauses (the checkpoint stops), + doubles the batch, pgshift control resume from another terminal resumes; each is journaled', async () => {
    const plan = writePlan(path.join(dir, 'p'), { partition: [PETRI_ENTRY], copy: { batchRows: 200, pauseMs: 150 }, pruning: { queries: [] } });
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', '-c', root,
      `env -u CI NO_COLOR=1 node bin/pgshift.js --plan ${plan} --db '${db.url}' --phase 3 --skip-backup; echo "PGSHIFT-EXIT=$?"; sleep 120`);
    await until('the phase 3 screen', () => Promise.resolve(screen().includes('Phase 3 · Data') && screen().includes('a run phase')));
    keys('a');
    // the copy without a pgshift backup is refused unless overridden by name (typed), as headless needs --confirm backup
    await until('the backup override prompt', () => Promise.resolve(screen().includes('type backup OVERRIDE')));
    keys('-l', 'backup OVERRIDE');
    keys('Enter');
    await until('a committed batch', async () => (await rowsDone()) > 0);

    keys('P');
    const paused = await until('the pause applied', () => controlRow('pause'));
    expect(String(paused.issued_from)).toMatch(/wizard/);
    await until('PAUSED on the progress line', () => Promise.resolve(screen().includes('PAUSED')));
    const at = await rowsDone();
    // paused: ten more looks at the database (each a round trip) find the checkpoint where it stopped
    for (let i = 0; i < 10; i++) {
      await tick();
      expect(await rowsDone()).toBe(at);
    }

    keys('+');
    await until('the batch change applied', () => controlRow('batch'));

    const r = await control(db.url, 'resume');
    expect(r.code, r.out).toBe(0);
    await until('the resume applied', () => controlRow('resume'));
    await until('the copy moving again', async () => (await rowsDone()) > at);

    const journal = (await db.client.query<{ command: string; value: number | null; issued_by: string; issued_from: string; applied: boolean }>(`SELECT command, value, issued_by, issued_from, applied_at IS NOT NULL AS applied FROM pgshift.control ORDER BY id`)).rows;
    expect(journal.map((x) => x.command)).toEqual(['pause', 'batch', 'resume']);
    expect(journal.every((x) => x.applied)).toBe(true);
    expect(journal[1]?.value).toBe(400); // + doubles the 200-row batch
    expect(journal[2]?.issued_by).toBe('oncall');
    // the copy completes and nothing was lost or doubled by the pause
    await until('the copy done', async () => {
      const c = (await db.client.query<{ position: { done?: boolean } | null }>(`SELECT position FROM pgshift.checkpoints WHERE step_id = 'copy:public.petri_observations'`)).rows[0];
      return c?.position?.done === true;
    });
    const counts = (await db.client.query<{ o: number; n: number; d: number }>(`SELECT (SELECT count(*) FROM public.petri_observations)::int AS o, (SELECT count(*) FROM public.petri_observations_partitioned)::int AS n, (SELECT count(DISTINCT observation_id) FROM public.petri_observations_partitioned)::int AS d`)).rows[0]!;
    expect(counts.n).toBe(counts.o);
    expect(counts.d).toBe(counts.o);
  });
});
