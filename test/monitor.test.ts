import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import React from 'react';
import pg from 'pg';
import { render } from 'ink-testing-library';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { monitorSnapshot, openMonitorClient, type MonitorSnapshot } from '../source/db/monitor.js';
import { backendActionSql, cancelBackend, terminateBackend } from '../source/db/monitor-actions.js';
import { resolveConnection } from '../source/db/connection.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { FullMonitor, CompactMonitor } from '../source/ui/components/monitor-panel.js';
import { pgMonitorSource } from '../source/ui/monitor-source.js';
import { KEY, mountApp, press, strip, tick, waitFor } from './ui/harness.js';

async function connect(url: string, app: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url, application_name: app });
  c.on('error', () => {});
  await c.connect();
  return c;
}
const pidOf = async (c: pg.Client) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

async function snapshotUntil(mon: pg.Client, longSec: number, ok: (s: MonitorSnapshot) => boolean, what: string): Promise<MonitorSnapshot> {
  const t0 = Date.now();
  for (;;) {
    const s = await monitorSnapshot(mon, longSec);
    if (ok(s)) return s;
    if (Date.now() - t0 > 10_000) throw new Error(`monitor never showed ${what}: ${JSON.stringify(s)}`);
    await tick(100);
  }
}

describe('live monitors against a real PostgreSQL', () => {
  let db: FreshDb;
  let mon: pg.Client;
  const extra: pg.Client[] = [];
  beforeAll(async () => {
    db = await freshDatabase('monitor');
    await db.client.query('CREATE TABLE public.accounts (id int PRIMARY KEY, balance int)');
    await db.client.query('INSERT INTO public.accounts SELECT g, 0 FROM generate_series(1, 100) g');
    mon = await openMonitorClient(resolveConnection(db.url).config);
  });
  afterAll(async () => {
    await mon?.end().catch(() => {});
    // a terminated client may never finish end(): do not wait on it for long
    for (const c of extra) await Promise.race([c.end().catch(() => {}), tick(500)]);
    await db?.drop();
  });

  it('its own connection is named pgshift-monitor and bounded by a 1 s statement_timeout', async () => {
    const r = await mon.query(`SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS st`);
    expect(r.rows[0]).toEqual({ app: 'pgshift-monitor', st: '1s' });
  });

  it('a lock held by one session and waited on by another: the pair, their pids, the mode, the relation; rendered as a tree', async () => {
    const holder = await connect(db.url, 'pgshift-copy');
    const waiter = await connect(db.url, 'app-writer');
    extra.push(holder, waiter);
    const [hp, wp] = [await pidOf(holder), await pidOf(waiter)];
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE public.accounts IN ACCESS EXCLUSIVE MODE');
    const pending = waiter.query('UPDATE public.accounts SET balance = balance + 1 WHERE id = 1').catch((e: Error) => e);
    const snap = await snapshotUntil(mon, 30, (s) => s.waits.some((w) => w.pid === wp), 'the waiter');
    const w = snap.waits.find((x) => x.pid === wp)!;
    expect(w.blockingPids).toEqual([hp]);
    expect(w.mode).toBe('RowExclusiveLock');
    expect(w.relation).toBe('accounts');
    expect(w.query).toContain('UPDATE public.accounts');
    expect(w.pgshift).toBe(false);
    const blocker = snap.blockers.find((b) => b.pid === hp)!;
    expect(blocker.state).toBe('idle in transaction');
    expect(blocker.pgshift).toBe(true); // application_name starts with pgshift: marked as our own
    expect(snap.costMs).toBeGreaterThan(0);

    const ui = render(React.createElement(FullMonitor, { view: { snapshot: snap, error: null }, width: 160, height: 20, longQuerySeconds: 30, selectedPid: wp, refreshMs: 1000 }));
    await tick();
    const f = strip(ui.lastFrame());
    expect(f).toContain('Lock waits (1)');
    expect(f).toMatch(new RegExp(`pid ${hp} \\[pgshift\\] blocks 1 session · idle in transaction`));
    expect(f).toMatch(new RegExp(`└─ pid ${wp} waits [\\d.]+ (ms|s) for RowExclusiveLock on accounts \\(blocked by ${hp}\\) · UPDATE public.accounts`));
    expect(f).toContain(`selected pid ${wp}`);
    ui.unmount();
    const compact = render(React.createElement(CompactMonitor, { view: { snapshot: snap, error: null }, width: 90, height: 6, longQuerySeconds: 30 }));
    await tick();
    expect(strip(compact.lastFrame())).toMatch(new RegExp(`locks: 1 waiting · pid ${wp} ← ${hp} RowExclusiveLock accounts`));
    compact.unmount();

    await holder.query('ROLLBACK');
    expect(await pending).not.toBeInstanceOf(Error);
    const after = await snapshotUntil(mon, 30, (s) => !s.waits.some((x) => x.pid === wp), 'the wait to end');
    expect(after.waits).toEqual([]);
  });

  it('a long pg_sleep shows as a long query above the threshold, and cancel stops it', async () => {
    const sleeper = await connect(db.url, 'reporting');
    extra.push(sleeper);
    const sp = await pidOf(sleeper);
    const running = sleeper.query('SELECT pg_sleep(30)').then(() => null, (e: Error & { code?: string }) => e);
    const snap = await snapshotUntil(mon, 1, (s) => s.long.some((a) => a.pid === sp), 'the long query');
    const a = snap.long.find((x) => x.pid === sp)!;
    expect(a.state).toBe('active');
    expect(a.durationMs).toBeGreaterThanOrEqual(1000);
    expect(a.query).toBe('SELECT pg_sleep(30)');
    expect(a.applicationName).toBe('reporting');
    // below the threshold it is not listed
    expect((await monitorSnapshot(mon, 3600)).long.some((x) => x.pid === sp)).toBe(false);
    expect(backendActionSql('cancel', sp)).toBe(`SELECT pg_cancel_backend(${sp})`);
    expect(() => backendActionSql('cancel', -1)).toThrow(/not a backend pid/);
    expect(await cancelBackend(mon, sp)).toBe(true);
    const err = await running;
    expect(err?.code).toBe('57014'); // query_canceled
    // the session survives a cancel
    expect((await sleeper.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
  });

  it('idle in transaction shows up; terminate ends that session', async () => {
    const idle = await connect(db.url, 'forgotten-psql');
    extra.push(idle);
    const ip = await pidOf(idle);
    await idle.query('BEGIN');
    await idle.query('SELECT count(*) FROM public.accounts');
    const snap = await snapshotUntil(mon, 1, (s) => s.long.some((a) => a.pid === ip), 'the idle transaction');
    expect(snap.long.find((x) => x.pid === ip)!.state).toBe('idle in transaction');
    expect(await terminateBackend(mon, ip)).toBe(true);
    await snapshotUntil(mon, 1, (s) => !s.long.some((a) => a.pid === ip), 'the session to be gone');
    const gone = await db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [ip]);
    expect(gone.rows[0]!.n).toBe(0);
  });

  it('in the wizard: m opens the monitors, t asks, y terminates and journals it; n sends nothing', async () => {
    const idle = await connect(db.url, 'stuck-report');
    extra.push(idle);
    const ip = await pidOf(idle);
    await idle.query('BEGIN');
    await idle.query('SELECT 1');
    const m = await mountApp(db.url, {
      phases: [1], monitor: pgMonitorSource(resolveConnection(db.url).config),
      plan: { monitor: { longQuerySeconds: 1, refreshMs: 250 } }, size: { columns: 140, rows: 40 },
    });
    try {
      await press(m.ui.stdin, 'm');
      await waitFor(() => m.frame().includes(`pid ${ip} idle in transaction`), 'the idle session on the monitor screen', 15_000);
      expect(m.frame()).toMatch(/one refresh costs [\d.]+ ms/);
      for (let i = 0; i < 10 && !m.frame().includes(`selected pid ${ip}`); i++) await press(m.ui.stdin, 'j');
      expect(m.frame()).toContain(`selected pid ${ip}`);
      // declined first: nothing is sent
      await press(m.ui.stdin, 't');
      await waitFor(() => m.frame().includes(`CONFIRM: TERMINATE pid ${ip}`), 'the confirmation');
      expect(m.frame()).toContain(`SELECT pg_terminate_backend(${ip})`);
      expect(m.frame()).toContain('its session ends: its open transaction rolls back');
      await press(m.ui.stdin, 'n');
      await waitFor(() => m.frame().includes(`terminate pid ${ip}: not confirmed, nothing sent`), 'the decline');
      expect((await db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [ip])).rows[0]!.n).toBe(1);
      // then confirmed
      await press(m.ui.stdin, 't');
      await waitFor(() => m.frame().includes(`CONFIRM: TERMINATE pid ${ip}`), 'the confirmation again');
      await press(m.ui.stdin, 'y');
      await waitFor(() => m.frame().includes(`terminate pid ${ip}: sent`), 'the terminate');
      await waitFor(() => !m.frame().includes(`pid ${ip} idle in transaction`), 'the session to leave the screen', 10_000);
      expect((await db.client.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [ip])).rows[0]!.n).toBe(0);
      const j = await db.client.query(`SELECT step_id, kind, object, statements, answer, method, confirmed_by FROM pgshift.confirmations WHERE object = $1 ORDER BY id`, [`pid ${ip}`]);
      expect(j.rows).toEqual([
        { step_id: 'monitor', kind: 'terminate', object: `pid ${ip}`, statements: [`SELECT pg_terminate_backend(${ip})`], answer: 'declined', method: 'declined', confirmed_by: 'tester' },
        { step_id: 'monitor', kind: 'terminate', object: `pid ${ip}`, statements: [`SELECT pg_terminate_backend(${ip})`], answer: 'confirmed', method: 'yes', confirmed_by: 'tester' },
      ]);
      await press(m.ui.stdin, KEY.esc);
      await waitFor(() => m.frame().includes('Phase 1'), 'back on the phase screen');
    } finally {
      await m.close();
    }
  });
});

describe('monitor refresh cost on the demo database with 100 extra idle connections', () => {
  let db: FreshDb;
  const idle: pg.Client[] = [];
  beforeAll(async () => {
    db = await freshDatabase('monitor_cost');
    await createDemoDatabase(db.client, { rows: 5000 });
    for (let i = 0; i < 100; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => connect(db.url, 'idle-app')));
      idle.push(...batch);
    }
  });
  afterAll(async () => {
    await Promise.all(idle.map((c) => c.end().catch(() => {})));
    await db?.drop();
  });

  it('measures costMs (median and max of 30 refreshes) and stays far under the 1 s statement_timeout', async () => {
    const n = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database()`);
    expect(n.rows[0]!.n).toBeGreaterThanOrEqual(101);
    const mon = await openMonitorClient(resolveConnection(db.url).config);
    try {
      const costs: number[] = [];
      for (let i = 0; i < 30; i++) costs.push((await monitorSnapshot(mon, 30)).costMs);
      costs.sort((a, b) => a - b);
      const median = costs[15]!;
      const max = costs[29]!;
      console.log(`[monitor cost] ${n.rows[0]!.n} sessions on the database: median ${median.toFixed(2)} ms, max ${max.toFixed(2)} ms per refresh`);
      expect(median).toBeLessThan(100);
      expect(max).toBeLessThan(1000);
    } finally {
      await mon.end();
    }
  });
});
