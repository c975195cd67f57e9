import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { freshDatabase, type FreshDb } from '../helpers/db.js';
import { mountApp, press, selectStep, tick, waitFor, type Mounted } from './harness.js';

// found in tmux: text and Enter arriving in one chunk (a paste, fast typing over ssh) must submit, as in the confirmation
describe('skip prompt: a pasted reason with its newline', () => {
  let db: FreshDb;
  let m: Mounted;
  beforeAll(async () => {
    db = await freshDatabase('ui_skip_paste');
    await db.client.query(`CREATE TABLE public.orders (id bigint PRIMARY KEY, placed_at timestamptz NOT NULL)`);
    m = await mountApp(db.url, { phases: [1], size: { columns: 120, rows: 40 } });
    await waitFor(() => m.frame().includes('Foreign-key dependencies'), 'phase 1 steps');
  });
  afterAll(async () => {
    await m?.close();
    await db?.drop();
  });

  it('submits the reason and journals the skip', async () => {
    await selectStep(m, 'report:fk-dependencies');
    await press(m.ui.stdin, 's');
    await waitFor(() => m.frame().includes('Skip report:fk-dependencies: why?'), 'the skip prompt');
    await tick(60);
    m.ui.stdin.write('reviewed in CHG-42\r');
    await waitFor(() => m.frame().includes('– Foreign-key dependencies'), 'the skipped state');
    const r = await db.client.query(`SELECT s.status, s.summary FROM pgshift.steps s WHERE s.step_id = 'report:fk-dependencies'`);
    expect(r.rows).toEqual([{ status: 'skipped', summary: 'skipped by tester: reviewed in CHG-42' }]);
  });
});
