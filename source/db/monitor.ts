import pg from 'pg';

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
}

export interface MonitorSnapshot {
  readonly at: Date;
  readonly waits: LockWait[];
  /** active queries longer than the threshold, and sessions idle in transaction longer than it */
  readonly long: Activity[];
  /** blockers (pids others wait on) with their activity */
  readonly blockers: Activity[];
  readonly costMs: number;
}

const isPgshift = (app: string) => app.startsWith('pgshift');

/**
 * One monitor refresh: a single round trip over pg_stat_activity with pg_blocking_pids and pg_locks, on its own
 * connection (application_name pgshift-monitor, statement_timeout 1 s). Only backends of this database.
 */
export const MONITOR_SQL = `
WITH act AS (
  SELECT pid, usename, application_name, state, query, wait_event_type, wait_event,
         COALESCE(query_start, xact_start, backend_start) AS qs, xact_start, state_change,
         pg_blocking_pids(pid) AS blocking
    FROM pg_stat_activity
   WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
), waiting AS (
  SELECT DISTINCT ON (l.pid) l.pid, l.mode, CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS rel
    FROM pg_locks l WHERE NOT l.granted AND l.pid IN (SELECT pid FROM act WHERE cardinality(blocking) > 0)
   ORDER BY l.pid, l.relation NULLS LAST
)
SELECT a.pid, a.usename, a.application_name, a.state, left(a.query, 500) AS query, a.wait_event_type, a.wait_event,
       a.blocking, w.mode, w.rel,
       (extract(epoch FROM clock_timestamp() - CASE WHEN a.state = 'active' THEN a.qs ELSE COALESCE(a.state_change, a.qs) END) * 1000)::bigint AS ms,
       (extract(epoch FROM clock_timestamp() - COALESCE(a.state_change, a.qs)) * 1000)::bigint AS state_ms,
       EXISTS (SELECT 1 FROM act b WHERE a.pid = ANY (b.blocking)) AS is_blocker
  FROM act a LEFT JOIN waiting w ON w.pid = a.pid
 WHERE cardinality(a.blocking) > 0
    OR a.state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
    OR EXISTS (SELECT 1 FROM act b WHERE a.pid = ANY (b.blocking))`;

interface Row {
  pid: number; usename: string; application_name: string; state: string; query: string; wait_event_type: string | null; wait_event: string | null;
  blocking: number[]; mode: string | null; rel: string | null; ms: string; state_ms: string; is_blocker: boolean;
}

export async function monitorSnapshot(client: pg.ClientBase | pg.Pool, longQuerySeconds: number): Promise<MonitorSnapshot> {
  const t0 = performance.now();
  const r = await client.query<Row>(MONITOR_SQL);
  const costMs = performance.now() - t0;
  const act = (x: Row): Activity => ({
    pid: x.pid, state: x.state, durationMs: Number(x.ms), query: x.query, applicationName: x.application_name, user: x.usename,
    waitEvent: x.wait_event ? `${x.wait_event_type}:${x.wait_event}` : null, pgshift: isPgshift(x.application_name),
  });
  const waits: LockWait[] = r.rows
    .filter((x) => x.blocking.length > 0)
    .map((x) => ({
      pid: x.pid, blockingPids: x.blocking, mode: x.mode, relation: x.rel, waitMs: Number(x.state_ms), query: x.query,
      applicationName: x.application_name, pgshift: isPgshift(x.application_name),
    }));
  const limit = longQuerySeconds * 1000;
  const long = r.rows
    .filter((x) => (x.state === 'active' || x.state.startsWith('idle in transaction')) && Number(x.ms) >= limit)
    .map(act)
    .sort((a, b) => b.durationMs - a.durationMs);
  const blockers = r.rows.filter((x) => x.is_blocker).map(act);
  return { at: new Date(), waits, long, blockers, costMs };
}

/** Opens the monitor's own connection. */
export async function openMonitorClient(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client({ ...config, application_name: 'pgshift-monitor', statement_timeout: 1000 });
  c.on('error', () => {});
  await c.connect();
  return c;
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
