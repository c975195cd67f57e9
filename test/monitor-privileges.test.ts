import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import React from 'react';
import pg from 'pg';
import { render } from 'ink-testing-library';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { monitorPrivileges, monitorSnapshot, openMonitorClient, type MonitorSnapshot } from '../source/db/monitor.js';
import { privilegeChecks } from '../source/preflight-privileges.js';
import { FullMonitor } from '../source/ui/components/monitor-panel.js';
import { monitorLines } from '../source/ui/monitor-lines.js';
import { strip, tick } from './ui/harness.js';
import { first } from '../source/db/session.js';

/**
 * The monitors as a non-superuser owner without pg_read_all_stats (managed PostgreSQL before the GRANT): other
 * roles' sessions have NULL backend_type, state and query; they must be listed (hidden), never dropped, and their
 * lock waits must show. The application's writes run as a separate non-superuser role "app".
 */
describe('monitors without pg_read_all_stats (non-superuser roles)', () => {
  let db: FreshDb;
  const clients: pg.Client[] = [];
  const suffix = Math.random().toString(36).slice(2, 8);
  const owner = `mon_owner_${suffix}`;
  const app = `mon_app_${suffix}`;
  const urlAs = (role: string) => {
    const u = new URL(db.url);
    u.username = role;
    u.password = 'pw';
    return u.toString();
  };
  const connect = async (role: string, name: string) => {
    const c = new pg.Client({ connectionString: urlAs(role), application_name: name });
    c.on('error', () => {});
    await c.connect();
    clients.push(c);
    return c;
  };
  const pidOf = async (c: pg.Client) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  async function until(mon: pg.Client, ok: (s: MonitorSnapshot) => boolean, what: string): Promise<MonitorSnapshot> {
    const t0 = Date.now();
    for (;;) {
      const s = await monitorSnapshot(mon, 1);
      if (ok(s)) return s;
      if (Date.now() - t0 > 15_000) throw new Error(`monitor never showed ${what}: ${JSON.stringify(s)}`);
      await tick(100);
    }
  }

  beforeAll(async () => {
    db = await freshDatabase('monitor_privs');
    await db.client.query(`CREATE ROLE ${owner} LOGIN PASSWORD 'pw'`);
    await db.client.query(`CREATE ROLE ${app} LOGIN PASSWORD 'pw'`);
    await db.client.query(`GRANT ALL ON SCHEMA public TO ${owner}, ${app}`);
    await db.client.query(`CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL)`);
    await db.client.query(`ALTER TABLE public.accounts OWNER TO ${owner}`);
    await db.client.query(`GRANT SELECT, INSERT, UPDATE ON public.accounts TO ${app}`);
    await db.client.query(`INSERT INTO public.accounts SELECT g, 100 FROM generate_series(1, 100) g`);
  });
  afterAll(async () => {
    for (const c of clients) await Promise.race([c.end().catch(() => {}), tick(500)]);
    await db.client.query(`REASSIGN OWNED BY ${owner}, ${app} TO CURRENT_USER`).catch(() => {});
    await db.client.query(`DROP OWNED BY ${owner}, ${app}`).catch(() => {});
    await db?.drop();
    const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${owner}`).catch(() => {});
    await admin.query(`DROP ROLE IF EXISTS ${app}`).catch(() => {});
    await admin.end();
  });

  it("keeps other roles' sessions (hidden), shows their lock waits, says which privilege is missing and the GRANT", async () => {
    const mon = await openMonitorClient({ connectionString: urlAs(owner) });
    clients.push(mon);
    const privs = await monitorPrivileges(mon);
    expect(privs).toEqual({ role: owner, superuser: false, readAllStats: false, signalBackend: false });

    // the app (another role) holds a row lock in an open transaction; a second app session waits on it
    const holder = await connect(app, 'app-writer');
    const waiter = await connect(app, 'app-writer-2');
    const [hp, wp] = [await pidOf(holder), await pidOf(waiter)];
    await holder.query('BEGIN');
    await holder.query('UPDATE public.accounts SET balance = balance - 10 WHERE id = 1');
    const pending = waiter.query('UPDATE public.accounts SET balance = balance + 10 WHERE id = 1');
    const snap = await until(mon, (s) => s.waits.some((w) => w.pid === wp), "the app's lock wait");
    // not dropped: both sessions listed, marked hidden (their state and query are NULL to this role)
    const ids = snap.sessions!.map((a) => a.pid);
    expect(ids).toEqual(expect.arrayContaining([hp, wp]));
    expect(snap.sessions!.find((a) => a.pid === hp)).toMatchObject({ hidden: true, user: app });
    expect(snap.hiddenSessions).toBeGreaterThanOrEqual(2);
    expect(snap.waits.find((w) => w.pid === wp)!.blockingPids).toEqual([hp]);
    expect(snap.blockers.map((b) => b.pid)).toContain(hp);

    const lines = monitorLines({ ...snap, privileges: privs }, 160, 30).map((l) => l.text).join('\n');
    expect(lines).toContain(`pid ${hp} blocks 1 session`);
    expect(lines).toMatch(new RegExp(`${hp} ${app}/app-writer · hidden: no pg_read_all_stats`));
    const ui = render(React.createElement(FullMonitor, { view: { snapshot: { ...snap, privileges: privs }, error: null }, width: 160, height: 30, longQuerySeconds: 30, selectedPid: hp, refreshMs: 1000 }));
    await tick();
    const f = strip(ui.lastFrame());
    expect(f).toContain(`pg_read_all_stats: NO`);
    expect(f).toContain(`GRANT pg_read_all_stats TO "${owner}";`);
    expect(f).toContain(`GRANT pg_signal_backend TO "${owner}";`);
    ui.unmount();

    // preflight says the same (warn, with the GRANT)
    const checks = await privilegeChecks({ read: async (sql: string) => (await mon.query(sql)).rows as never });
    expect(checks.map((c) => [c.check, c.status])).toEqual([['monitoring: pg_read_all_stats', 'warn'], ['monitoring: pg_signal_backend', 'warn']]);
    expect(checks[0]!.detail).toContain(`GRANT pg_read_all_stats TO "${owner}";`);

    await holder.query('COMMIT');
    await pending;
    // the invariant: the two updates both applied, nothing lost
    const sum = await db.client.query<{ s: string }>('SELECT sum(balance)::text AS s FROM public.accounts');
    expect(sum.rows[0]!.s).toBe('10000');

    // with the GRANT the same sessions are fully readable
    await db.client.query(`GRANT pg_read_all_stats TO ${owner}`);
    const mon2 = await openMonitorClient({ connectionString: urlAs(owner) });
    clients.push(mon2);
    expect((await monitorPrivileges(mon2)).readAllStats).toBe(true);
    const s2 = await monitorSnapshot(mon2, 30);
    expect(s2.sessions!.find((a) => a.pid === hp)).toMatchObject({ hidden: false, state: 'idle' });
    const checks2 = await privilegeChecks({ read: async (sql: string) => (await mon2.query(sql)).rows as never });
    expect(checks2[0]!.status).toBe('pass');
  });

  it('a CREATE INDEX CONCURRENTLY waiting for an older snapshot shows as a virtualxid wait on its holder', async () => {
    const mon = await openMonitorClient({ connectionString: db.url });
    clients.push(mon);
    const reader = await connect(app, 'report');
    const rp = await pidOf(reader);
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await reader.query('SELECT count(*) FROM public.accounts');
    const builder = await connect(owner, 'pgshift-index');
    const bp = await pidOf(builder);
    const building = builder.query('CREATE INDEX CONCURRENTLY accounts_balance_idx ON public.accounts (balance)');
    // (the build also waits, for a moment, on the monitor's own snapshot while a refresh runs)
    // (and, on a loaded machine, may be caught for a moment in another wait the reader is part of: wait for the
    // snapshot wait itself, which lasts until the reader commits)
    const snap = await until(mon, (s) => s.waits.some((w) => w.pid === bp && w.blockingPids.includes(rp) && w.lockType === 'virtualxid'), 'the index build waiting on the reader\'s snapshot');
    const w = snap.waits.find((x) => x.pid === bp)!;
    expect(w.blockingPids).toContain(rp);
    expect(w.lockType).toBe('virtualxid');
    const text = monitorLines(snap, 220, 30).map((l) => l.text).join('\n');
    expect(text).toMatch(/virtualxid \(an older snapshot: CREATE INDEX CONCURRENTLY waits/);
    await reader.query('COMMIT');
    await building;
    const idx = await db.client.query<{ indisvalid: boolean }>(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.accounts_balance_idx'::regclass`);
    expect(first(idx.rows, 'pg_index row').indisvalid).toBe(true);
  });
});
