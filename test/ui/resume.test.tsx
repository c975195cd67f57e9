import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { createDemoDatabase } from '../../source/demo/schema.js';
import { freshDatabase, type FreshDb } from '../helpers/db.js';
import { PETRI_ENTRY, createPetriTarget } from '../fixtures/copy-helpers.js';
import { mountApp, press, selectStep, waitFor, writePlan as harnessPlan } from './harness.js';
import os from 'node:os';
import { first } from '../../source/db/session.js';

const root = path.resolve(__dirname, '../..');

/**
 * A copy killed mid-way (SIGKILL of the headless CLI once a checkpoint is committed); the wizard then opens on
 * phase 3 with a banner naming the run, the step and the committed rows, and the copy step shows its checkpoint.
 */
describe('the wizard opens where the run stopped', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('ui_resume');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-resume-'));
    await createDemoDatabase(db.client, { rows: 20_000 });
    await createPetriTarget(db.client);
  }, 180_000);
  afterAll(async () => {
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('banner "run N was killed … in copy:… (phase 3): X of ~Y rows committed", phase 3 shown, the step shows its checkpoint', async () => {
    const extra = { partition: [PETRI_ENTRY], copy: { batchRows: 200, pauseMs: 100 }, pruning: { queries: [] } };
    const file = harnessPlan(dir, extra);
    const child = spawn(process.execPath, [path.join(root, 'bin/pgshift.js'), '--headless', '--phase', '3', '--plan', file, '--db', db.url, '--skip-backup', '--confirm', 'backup'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let gone = false;
    const exited = new Promise((r) => child.on('exit', (c) => ((gone = true), r(c))));
    // kill once a checkpoint with rows is committed (observable progress; the test's own timeout bounds a stall)
    let done = 0;
    while (done === 0 && !gone) {
      const r = await db.client.query<{ n: number }>(`SELECT coalesce(max(rows_done), 0)::int AS n FROM pgshift.checkpoints`).catch(() => ({ rows: [{ n: 0 }] }));
      done = r.rows[0]!.n;
      if (!done) await new Promise((res) => setTimeout(res, 50));
    }
    expect(done, `the copy ended before its first checkpoint:\n${out}`).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await exited;
    const cp = await db.client.query<{ step_id: string; n: number }>(`SELECT step_id, rows_done::int AS n FROM pgshift.checkpoints`);
    const { step_id: stepId, n } = first(cp.rows, 'checkpoint');
    expect(stepId).toBe('copy:public.petri_observations');
    const run = (await db.client.query<{ r: number | null }>(`SELECT max(run_id)::int AS r FROM pgshift.runs`)).rows[0]!.r;

    const m = await mountApp(db.url, { phases: [1, 2, 3, 4, 5], plan: extra, size: { columns: 120, rows: 40 } });
    try {
      const nf = n.toLocaleString('en-US');
      await waitFor(() => m.frame().includes(`run ${run} was killed`), 'the resume banner');
      const f = m.frame();
      expect(f).toMatch(new RegExp(`run ${run} was killed \\(it never ended\\) in ${stepId} \\(phase 3\\): ${nf} of ~[\\d,]+ rows committed`));
      await waitFor(() => m.frame().includes('Phase 3 · Data'), 'phase 3 on screen');
      await selectStep(m, stepId);
      await waitFor(() => m.frame().includes(`${stepId} · pending · ${nf} of ~`), 'the checkpoint on the step');
      // the rail: phase 1 and 2 were never run here (○), phase 3 has its steps planned
      expect(m.frame()).toMatch(/○ 1 Preparation/);
      await press(m.ui.stdin, '1');
      await waitFor(() => m.frame().includes('Phase 1 · Preparation'), 'phase 1');
    } finally {
      await m.close();
    }
  }, 120_000);
});
