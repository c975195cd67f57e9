import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { freshDatabase, type FreshDb } from '../helpers/db.js';
import { resolveConnection } from '../../source/db/connection.js';
import { pgMonitorSource } from '../../source/ui/monitor-source.js';
import { KEY, maxRun, mountApp, press, tick, waitFor, type Mounted } from './harness.js';

// found in tmux: a key the screen does not take (a typo, a key from another tool) did nothing and said nothing
describe('wizard: a key no binding takes', () => {
  let db: FreshDb;
  let m: Mounted;
  beforeAll(async () => {
    db = await freshDatabase('ui_unknown_key');
    await db.client.query(`CREATE TABLE public.orders (id bigint PRIMARY KEY, placed_at timestamptz NOT NULL)`);
    m = await mountApp(db.url, {
      phases: [1], monitor: pgMonitorSource(resolveConnection(db.url).config),
      plan: { monitor: { refreshMs: 250 } }, size: { columns: 120, rows: 40 },
    });
    await waitFor(() => m.frame().includes('Foreign-key dependencies'), 'phase 1 steps');
  });
  afterAll(async () => {
    await m?.close();
    await db?.drop();
  });

  it('the phase screen names the key and where the keys are, and runs nothing', async () => {
    const runs = await maxRun(db.client);
    await press(m.ui.stdin, 'x');
    await waitFor(() => m.frame().includes('"x" does nothing here: press ? for the keys of this screen'), 'the unknown-key line');
    // keys that are bound, and keys that are not characters, say nothing of the kind
    await press(m.ui.stdin, KEY.down, KEY.up, KEY.backspace);
    await tick(100);
    expect(m.frame()).not.toContain('"\u007f"');
    expect(await maxRun(db.client)).toBe(runs);
  });

  it('the activity view says it on its status line', async () => {
    await press(m.ui.stdin, 'm');
    await waitFor(() => m.frame().includes('sessions'), 'the activity view');
    await press(m.ui.stdin, 'z');
    await waitFor(() => m.frame().includes('"z" does nothing here'), 'the notice in the activity view');
    // a bound key of this screen does what it says: esc goes back to the phase screen
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => m.frame().includes('Foreign-key dependencies'), 'back on the phase screen');
  });
});
