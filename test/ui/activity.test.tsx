import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import pg from 'pg';
import { freshDatabase, type FreshDb } from '../helpers/db.js';
import { resolveConnection } from '../../source/db/connection.js';
import { pgMonitorSource } from '../../source/ui/monitor-source.js';
import { KEY, mountApp, press, tick, waitFor } from './harness.js';

/** The activity view in the wizard on a real server: every session, sort, filter, pause, interval, selection by pid, live dialog. */
describe('activity view (m)', () => {
  let db: FreshDb;
  const clients: pg.Client[] = [];
  const role = `act_app_${Math.random().toString(36).slice(2, 8)}`;
  const urlAs = (r: string) => {
    const u = new URL(db.url);
    u.username = r;
    u.password = 'pw';
    return u.toString();
  };
  const connect = async (url: string, name: string) => {
    const c = new pg.Client({ connectionString: url, application_name: name });
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
    return c;
  };
  const pidOf = async (c: pg.Client) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  beforeAll(async () => {
    db = await freshDatabase('ui_activity');
    await db.client.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    await db.client.query(`CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL)`);
    await db.client.query(`GRANT SELECT, UPDATE ON public.accounts TO ${role}`);
    await db.client.query(`INSERT INTO public.accounts SELECT g, 100 FROM generate_series(1, 10) g`);
  });
  afterAll(async () => {
    for (const c of clients) await Promise.race([c.end().catch(() => {}), tick(500)]);
    await db.client.query(`DROP OWNED BY ${role}`).catch(() => {});
    await db?.drop();
    const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
    await admin.end();
  });

  it('lists every session; / filters, o sorts, space pauses, + slows the refresh; the selection stays on its pid; the dialog follows the backend live', async () => {
    const holder = await connect(urlAs(role), 'app-holder');
    const waiter = await connect(urlAs(role), 'app-waiter');
    const quiet = await connect(urlAs(role), 'app-quiet');
    const [hp, wp, qp] = [await pidOf(holder), await pidOf(waiter), await pidOf(quiet)];
    await holder.query('BEGIN');
    await holder.query('UPDATE public.accounts SET balance = balance - 1 WHERE id = 1');
    const pending = waiter.query('UPDATE public.accounts SET balance = balance + 1 WHERE id = 1').catch((e: Error) => e);
    const m = await mountApp(db.url, {
      phases: [1], monitor: pgMonitorSource(resolveConnection(db.url).config),
      plan: { monitor: { longQuerySeconds: 30, refreshMs: 250 } }, size: { columns: 120, rows: 40 },
    });
    try {
      await press(m.ui.stdin, 'm');
      await waitFor(() => m.frame().includes('Sessions (') && m.frame().includes(`${qp}`), 'the session list with the idle session', 15_000);
      const f = m.frame();
      expect(f).toMatch(new RegExp(`${qp} idle\\s+[\\d.]+ (ms|s) · ${role}/app-quiet`)); // an idle session: listed too
      expect(f).toContain('Locks per table');
      expect(f).toMatch(new RegExp(`accounts: held by .*${hp} RowExclusive`));
      expect(f).toMatch(new RegExp(`pid ${wp} waits .* \\(blocked by ${hp}\\)`));

      // select the holder by moving down until it is selected; it stays selected when the order changes
      for (let i = 0; i < 30 && !m.frame().includes(`selected pid ${hp}`); i++) await press(m.ui.stdin, 'j');
      expect(m.frame()).toContain(`selected pid ${hp}`);
      await press(m.ui.stdin, 'o'); // sort by pid
      await waitFor(() => m.frame().includes('sorted by pid'), 'sorted by pid');
      const late = await connect(urlAs(role), 'app-late'); // a new session appears above the selection
      const lp = await pidOf(late);
      await waitFor(() => m.frame().includes(`${lp}`), 'the new session');
      expect(m.frame()).toContain(`selected pid ${hp}`);

      // filter
      await press(m.ui.stdin, '/');
      await waitFor(() => /^filter:/m.test(m.frame()), 'the filter prompt');
      await press(m.ui.stdin, 'app-quiet', KEY.enter);
      await waitFor(() => /Sessions \(1 of \d+, filter "app-quiet"\)/.test(m.frame()), 'the filtered list');
      expect(m.frame()).not.toMatch(new RegExp(`^\\s+${lp} `, 'm'));
      await press(m.ui.stdin, '/', KEY.esc);
      await waitFor(() => !m.frame().includes('filter "app-quiet"'), 'the filter cleared');

      // pause and interval
      await press(m.ui.stdin, '+');
      await waitFor(() => m.frame().includes('every 500 ms'), 'the slower refresh');
      await press(m.ui.stdin, ' ');
      await waitFor(() => m.frame().includes('PAUSED (space resumes)'), 'paused');
      await press(m.ui.stdin, ' ');
      await waitFor(() => !m.frame().includes('PAUSED'), 'resumed');

      // the cancel dialog follows the holder: it ends while the dialog is open
      for (let i = 0; i < 30 && !m.frame().includes(`selected pid ${hp}`); i++) await press(m.ui.stdin, 'k');
      expect(m.frame()).toContain(`selected pid ${hp}`);
      await press(m.ui.stdin, 'c');
      await waitFor(() => m.frame().includes(`CONFIRM: CANCEL pid ${hp}`), 'the cancel dialog on the holder');
      await waitFor(() => new RegExp(`now \\(\\d\\d:\\d\\d:\\d\\d\\): pid ${hp} idle in transaction`).test(m.frame()), 'the live line');
      expect(m.frame()).toMatch(/blocks 1 session/);
      await holder.query('ROLLBACK');
      await holder.end();
      await waitFor(() => m.frame().includes(`pid ${hp} has ended — nothing left to cancel`), 'the dialog to see the holder gone');
      await press(m.ui.stdin, KEY.esc);
      await waitFor(() => m.frame().includes(`cancel pid ${hp}: not confirmed, nothing sent`), 'the decline');
      expect(await pending).not.toBeInstanceOf(Error);
      const sum = await db.client.query<{ s: number }>('SELECT sum(balance)::int AS s FROM public.accounts');
      expect(sum.rows[0]!.s).toBe(1001); // the holder's change rolled back, the waiter's committed
    } finally {
      await m.close();
    }
  });
});
