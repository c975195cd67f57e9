import pg from 'pg';
import { sleep } from './session.js';

/** One lock wait: who waits, on whom, for what. */
export interface LockWait {
  readonly pid: number;
  readonly blockingPids: readonly number[];
  readonly mode: string | null;
  readonly relation: string | null;
  readonly waitMs: number;
  readonly query: string;
  readonly applicationName: string;
  readonly pgshift: boolean;
  /** what is waited on: 'relation', 'virtualxid' (CREATE INDEX CONCURRENTLY waiting for older snapshots), 'transactionid'… */
  readonly lockType?: string | null;
}

export interface Activity {
  readonly pid: number;
  readonly state: string;
  readonly durationMs: number;
  readonly query: string;
  readonly applicationName: string;
  readonly user: string;
  readonly waitEvent: string | null;
  readonly pgshift: boolean;
  /** another role's session read without pg_read_all_stats: its state, query and waits are hidden from us */
  readonly hidden?: boolean;
  /** when its transaction began (ms ago), null outside a transaction */
  readonly xactMs?: number | null;
}

/** One lock on a table of this database, granted or awaited. */
export interface TableLock {
  readonly relation: string;
  readonly pid: number;
  readonly mode: string;
  readonly granted: boolean;
}

/** What the monitoring role may see and do. */
export interface MonitorPrivileges {
  readonly role: string;
  readonly superuser: boolean;
  /** member of pg_read_all_stats (or superuser): sees every session's query, state and waits */
  readonly readAllStats: boolean;
  /** member of pg_signal_backend (or superuser): may cancel / terminate other roles' (non-superuser) backends */
  readonly signalBackend: boolean;
}

export interface MonitorSnapshot {
  readonly at: Date;
  readonly waits: LockWait[];
  /** active queries longer than the threshold, and sessions idle in transaction longer than it */
  readonly long: Activity[];
  /** blockers (pids others wait on) with their activity */
  readonly blockers: Activity[];
  readonly costMs: number;
  /** every client session of this database (none dropped: hidden ones are marked `hidden`) */
  readonly sessions?: Activity[];
  /** every relation lock of this database's sessions */
  readonly tableLocks?: TableLock[];
  /** sessions of other roles whose details this role may not read (no pg_read_all_stats) */
  readonly hiddenSessions?: number;
  /** what the monitoring role may see and signal (filled by the wizard's monitor source) */
  readonly privileges?: MonitorPrivileges;
}

const isPgshift = (app: string) => app.startsWith('pgshift');

/**
 * One monitor refresh: pg_stat_activity with pg_blocking_pids and pg_locks, on its own connection (application_name
 * pgshift-monitor, statement_timeout 1 s). Only backends of this database. NULL-safe: without pg_read_all_stats,
 * other roles' sessions have NULL backend_type, state, query and wait columns — they are kept (marked hidden), never
 * dropped, and their lock waits still show (pg_blocking_pids and pg_locks need no privilege).
 */
export const MONITOR_SQL = `
WITH act AS (
  SELECT pid, COALESCE(usename::text, '') AS usename, COALESCE(application_name, '') AS application_name,
         COALESCE(state, '') AS state, COALESCE(query, '') AS query, wait_event_type, wait_event,
         (state IS NULL OR query = '<insufficient privilege>') AS hidden,
         COALESCE(query_start, xact_start, backend_start) AS qs, xact_start, state_change,
         pg_blocking_pids(pid) AS blocking
    FROM pg_stat_activity
   WHERE datname = current_database() AND pid <> pg_backend_pid()
     AND (backend_type = 'client backend' OR backend_type IS NULL)
), waiting AS (
  SELECT DISTINCT ON (l.pid) l.pid, l.mode, l.locktype,
         CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS rel
    FROM pg_locks l WHERE NOT l.granted AND l.pid IN (SELECT pid FROM act WHERE cardinality(blocking) > 0)
   ORDER BY l.pid, l.relation NULLS LAST
)
SELECT a.pid, a.usename, a.application_name, a.state, left(a.query, 500) AS query, a.wait_event_type, a.wait_event,
       a.blocking, w.mode, w.rel, w.locktype, a.hidden,
       COALESCE((extract(epoch FROM clock_timestamp() - CASE WHEN a.state = 'active' THEN a.qs ELSE COALESCE(a.state_change, a.qs) END) * 1000)::bigint, 0) AS ms,
       COALESCE((extract(epoch FROM clock_timestamp() - COALESCE(a.state_change, a.qs)) * 1000)::bigint, 0) AS state_ms,
       (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::bigint AS xact_ms,
       EXISTS (SELECT 1 FROM act b WHERE a.pid = ANY (b.blocking)) AS is_blocker
  FROM act a LEFT JOIN waiting w ON w.pid = a.pid`;

/** Relation locks of this database's client sessions (granted and awaited). */
export const TABLE_LOCKS_SQL = `
SELECT l.pid, l.mode, l.granted, l.relation::regclass::text AS rel
  FROM pg_locks l
 WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.pid <> pg_backend_pid()
   AND l.relation IN (SELECT oid FROM pg_class WHERE relkind IN ('r', 'p', 'm', 'f') AND relnamespace <> 'pg_catalog'::regnamespace)
 ORDER BY 4, l.granted DESC, l.pid
 LIMIT 500`;

interface Row {
  pid: number; usename: string; application_name: string; state: string; query: string; wait_event_type: string | null; wait_event: string | null;
  blocking: number[] | null; mode: string | null; rel: string | null; locktype: string | null; hidden: boolean | null;
  ms: string | null; state_ms: string | null; xact_ms: string | null; is_blocker: boolean;
}

export async function monitorSnapshot(client: pg.ClientBase | pg.Pool, longQuerySeconds: number, opts: { tableLocks?: boolean } = {}): Promise<MonitorSnapshot> {
  const t0 = performance.now();
  const r = await client.query<Row>(MONITOR_SQL);
  // locks per table: for the activity view only (the copy's throttle and the cleanup do not need the second query)
  const lr = opts.tableLocks ? await client.query<{ pid: number; mode: string; granted: boolean; rel: string }>(TABLE_LOCKS_SQL) : null;
  const costMs = performance.now() - t0;
  const rows = r.rows.map((x) => ({ ...x, state: x.state ?? '', query: x.hidden ? '' : x.query ?? '', application_name: x.application_name ?? '', usename: x.usename ?? '', blocking: x.blocking ?? [] }));
  const act = (x: Row): Activity => ({
    pid: x.pid, state: x.state ?? '', durationMs: Number(x.ms ?? 0), query: x.query ?? '', applicationName: x.application_name ?? '', user: x.usename ?? '',
    waitEvent: x.wait_event ? `${x.wait_event_type}:${x.wait_event}` : null, pgshift: isPgshift(x.application_name ?? ''),
    hidden: !!x.hidden, xactMs: x.xact_ms === null ? null : Number(x.xact_ms),
  });
  const waits: LockWait[] = rows
    .filter((x) => x.blocking.length > 0)
    .map((x) => ({
      pid: x.pid, blockingPids: x.blocking, mode: x.mode, relation: x.rel, waitMs: Number(x.state_ms ?? 0), query: x.query,
      applicationName: x.application_name, pgshift: isPgshift(x.application_name), lockType: x.locktype,
    }));
  const limit = longQuerySeconds * 1000;
  const long = rows
    .filter((x) => (x.state === 'active' || x.state.startsWith('idle in transaction')) && Number(x.ms ?? 0) >= limit)
    .map(act)
    .sort((a, b) => b.durationMs - a.durationMs);
  const blockers = rows.filter((x) => x.is_blocker).map(act);
  const sessions = rows.map(act);
  const tableLocks: TableLock[] | undefined = lr?.rows.map((l) => ({ relation: l.rel, pid: l.pid, mode: l.mode, granted: l.granted }));
  return { at: new Date(), waits, long, blockers, costMs, sessions, tableLocks, hiddenSessions: sessions.filter((x) => x.hidden).length };
}

/** What this role may see and signal (pg_read_all_stats, pg_signal_backend; a superuser has both). */
export async function monitorPrivileges(client: pg.ClientBase | pg.Pool): Promise<MonitorPrivileges> {
  const r = await client.query<{ role: string; su: boolean; stats: boolean; signal: boolean }>(
    `SELECT current_user::text AS role, r.rolsuper AS su,
            r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS stats,
            r.rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal
       FROM pg_roles r WHERE r.rolname = current_user`,
  );
  const x = r.rows[0]!;
  return { role: x.role, superuser: x.su, readAllStats: x.stats, signalBackend: x.signal };
}

/** Opens the monitor's own connection. */
export async function openMonitorClient(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client({ ...config, application_name: 'pgshift-monitor', statement_timeout: 1000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/**
 * A loop on a monitor connection of its own (openMonitorClient): `tick` runs at once, then `intervalMs` after each
 * tick ends, until stop(). A tick that throws ends the loop, said through `onFailure` (never an unhandled rejection).
 * stop() waits for a tick in flight, then closes the connection. The copy's throttle and its pace canary run on it.
 */
export class MonitorLoop {
  client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  stopped = false;

  /** Opens the connection; the error when it cannot (the caller says what it does without it). */
  async open(config: pg.ClientConfig): Promise<Error | null> {
    try {
      this.client = await openMonitorClient(config);
      return null;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  start(intervalMs: number, tick: () => Promise<void>, onFailure: (e: unknown) => void): void {
    const schedule = (ms: number) => {
      this.timer = setTimeout(() => {
        if (this.stopped) return;
        this.ticking = true;
        tick().then(
          () => {
            this.ticking = false;
            if (!this.stopped) schedule(intervalMs);
          },
          (e: unknown) => {
            this.ticking = false;
            onFailure(e);
          },
        );
      }, ms);
    };
    schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    while (this.ticking) await sleep(10);
    await this.client?.end().catch(() => {});
    this.client = null;
  }
}

/** Lock-wait chains as a tree: roots are blockers that wait on nobody. */
export interface WaitNode { readonly pid: number; readonly wait?: LockWait; readonly children: WaitNode[] }
export function waitTree(waits: readonly LockWait[]): WaitNode[] {
  const byPid = new Map(waits.map((w) => [w.pid, w]));
  const children = new Map<number, number[]>();
  for (const w of waits) for (const b of w.blockingPids) children.set(b, [...(children.get(b) ?? []), w.pid]);
  const build = (pid: number, seen: Set<number>): WaitNode => {
    if (seen.has(pid)) return { pid, wait: byPid.get(pid), children: [] };
    const s = new Set(seen).add(pid);
    return { pid, wait: byPid.get(pid), children: (children.get(pid) ?? []).map((c) => build(c, s)) };
  };
  const roots = [...children.keys()].filter((pid) => !byPid.has(pid) || byPid.get(pid)!.blockingPids.every((b) => !children.has(b) && !byPid.has(b)));
  const rootList = roots.length ? roots : [...children.keys()].slice(0, 1);
  return rootList.map((r) => build(r, new Set()));
}
