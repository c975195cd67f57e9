import type { Activity, MonitorPrivileges, MonitorSnapshot, TableLock, WaitNode } from '../db/monitor.js';
import { privilegeLines } from '../preflight-privileges.js';
import { waitTree } from '../db/monitor.js';
import { clip } from './format-ui.js';
import { fmtDuration } from '../format.js';

export interface MonitorLine {
  readonly text: string;
  /** the backend this line is about: selectable for cancel / terminate */
  readonly pid?: number;
  readonly level: 'title' | 'info' | 'warn' | 'error' | 'dim';
  readonly pgshift?: boolean;
}

const mark = (pgshift: boolean) => (pgshift ? ' [pgshift]' : '');
const q = (s: string, w: number) => clip(s.trim() || '—', Math.max(10, w));

export type SessionSort = 'duration' | 'pid' | 'state' | 'user' | 'wait';
export const SESSION_SORTS: readonly SessionSort[] = ['duration', 'pid', 'state', 'user', 'wait'];

export interface MonitorViewOptions {
  readonly sort?: SessionSort;
  /** a case-insensitive filter on pid, user, application, state, wait event and query */
  readonly filter?: string;
}

/** What the monitoring role may see and signal, with the GRANT that fixes what is missing. */
export function privilegeHeader(p: MonitorPrivileges | undefined, hidden: number | undefined): MonitorLine[] {
  if (!p) return [];
  return privilegeLines(p).map((l) => ({ text: l.text + (!l.ok && l.text.startsWith('pg_read_all_stats') && hidden ? ` (${hidden} session${hidden === 1 ? '' : 's'} hidden now)` : ''), level: l.ok ? ('dim' as const) : ('warn' as const) }));
}

const waitWhat = (w: { mode: string | null; relation: string | null; lockType?: string | null }) =>
  w.lockType === 'virtualxid'
    ? `${w.mode ?? 'a lock'} on a virtualxid (an older snapshot: CREATE INDEX CONCURRENTLY waits for every transaction that started before it)`
    : w.lockType === 'transactionid'
      ? `${w.mode ?? 'a lock'} on a transaction id (a row another transaction changed)`
      : `${w.mode ?? 'a lock'}${w.relation ? ` on ${w.relation}` : ''}`;

function sessionMatches(a: Activity, f: string): boolean {
  if (!f) return true;
  const needle = f.toLowerCase();
  return [String(a.pid), a.user, a.applicationName, a.state, a.waitEvent ?? '', a.query].some((x) => x.toLowerCase().includes(needle));
}

export function sortSessions(list: readonly Activity[], sort: SessionSort): Activity[] {
  const by: Record<SessionSort, (a: Activity, b: Activity) => number> = {
    duration: (a, b) => b.durationMs - a.durationMs,
    pid: (a, b) => a.pid - b.pid,
    state: (a, b) => a.state.localeCompare(b.state) || b.durationMs - a.durationMs,
    user: (a, b) => `${a.user}/${a.applicationName}`.localeCompare(`${b.user}/${b.applicationName}`) || a.pid - b.pid,
    wait: (a, b) => (b.waitEvent ?? '').localeCompare(a.waitEvent ?? '') || b.durationMs - a.durationMs,
  };
  return [...list].sort(by[sort]);
}

/** Relation locks grouped by table: granted and waiting, with pids and modes. */
export function locksPerTable(locks: readonly TableLock[]): { relation: string; granted: TableLock[]; waiting: TableLock[] }[] {
  const m = new Map<string, { relation: string; granted: TableLock[]; waiting: TableLock[] }>();
  for (const l of locks) {
    const e = m.get(l.relation) ?? { relation: l.relation, granted: [], waiting: [] };
    (l.granted ? e.granted : e.waiting).push(l);
    m.set(l.relation, e);
  }
  return [...m.values()].sort((a, b) => b.waiting.length - a.waiting.length || a.relation.localeCompare(b.relation));
}

/**
 * The activity view as lines: privileges, lock-wait chains as a tree (virtualxid waits named), long queries,
 * idle-in-transaction sessions, locks per table, then every session (sorted, filtered).
 */
export function monitorLines(snap: MonitorSnapshot, width: number, longQuerySeconds: number, opts: MonitorViewOptions = {}): MonitorLine[] {
  const out: MonitorLine[] = [];
  const byPid = new Map<number, Activity>();
  for (const a of [...snap.blockers, ...snap.long]) byPid.set(a.pid, a);
  const qw = Math.max(20, Math.floor(width / 2) - 4);

  out.push({ text: `Lock waits (${snap.waits.length})`, level: 'title' });
  if (snap.waits.length === 0) out.push({ text: '  none: no session waits on a lock', level: 'dim' });
  const walk = (n: WaitNode, prefix: string, last: boolean, root: boolean) => {
    const branch = root ? '' : last ? '└─ ' : '├─ ';
    if (n.wait) {
      const w = n.wait;
      out.push({
        pid: w.pid, pgshift: w.pgshift, level: 'warn',
        text: clip(`${prefix}${branch}pid ${w.pid}${mark(w.pgshift)} waits ${fmtDuration(w.waitMs)} for ${waitWhat(w)} (blocked by ${w.blockingPids.join(', ')}) · ${q(w.query, qw)}`, width),
      });
    } else {
      const a = byPid.get(n.pid);
      out.push({
        pid: n.pid, pgshift: a?.pgshift, level: 'error',
        text: clip(`${prefix}${branch}pid ${n.pid}${mark(!!a?.pgshift)} blocks ${countDesc(n)} · ${a ? (a.hidden ? `${a.user || 'another role'} · hidden (no pg_read_all_stats)` : `${a.state} ${fmtDuration(a.durationMs)} · ${a.applicationName || a.user} · ${q(a.query, qw)}`) : 'holder'}`, width),
      });
    }
    const kids = n.children;
    kids.forEach((c, i) => walk(c, root ? '  ' : prefix + (last ? '   ' : '│  '), i === kids.length - 1, false));
  };
  for (const root of waitTree(snap.waits)) walk(root, '  ', true, true);

  const active = snap.long.filter((a) => a.state === 'active');
  const idle = snap.long.filter((a) => a.state.startsWith('idle in transaction'));
  out.push({ text: `Long-running queries > ${longQuerySeconds} s (${active.length})`, level: 'title' });
  if (active.length === 0) out.push({ text: '  none', level: 'dim' });
  for (const a of active) {
    out.push({ pid: a.pid, pgshift: a.pgshift, level: 'warn', text: clip(`  pid ${a.pid}${mark(a.pgshift)} ${fmtDuration(a.durationMs)} · ${a.applicationName || a.user}${a.waitEvent ? ` · waits ${a.waitEvent}` : ''} · ${q(a.query, qw)}`, width) });
  }
  out.push({ text: `Idle in transaction > ${longQuerySeconds} s (${idle.length})`, level: 'title' });
  if (idle.length === 0) out.push({ text: '  none', level: 'dim' });
  for (const a of idle) {
    out.push({ pid: a.pid, pgshift: a.pgshift, level: 'warn', text: clip(`  pid ${a.pid}${mark(a.pgshift)} ${a.state} ${fmtDuration(a.durationMs)} · ${a.applicationName || a.user} · last: ${q(a.query, qw)}`, width) });
  }
  if (snap.tableLocks) {
    const groups = locksPerTable(snap.tableLocks);
    out.push({ text: `Locks per table (${groups.length})`, level: 'title' });
    if (!groups.length) out.push({ text: '  none', level: 'dim' });
    for (const g of groups) {
      const held = g.granted.map((l) => `${l.pid} ${l.mode.replace(/Lock$/, '')}`).join(', ');
      const wait = g.waiting.map((l) => `${l.pid} ${l.mode.replace(/Lock$/, '')}`).join(', ');
      out.push({ text: clip(`  ${g.relation}: held by ${held || '—'}${wait ? ` · WAITING: ${wait}` : ''}`, width), level: g.waiting.length ? 'warn' : 'info', pid: g.waiting[0]?.pid });
    }
  }
  if (snap.sessions) {
    const sort = opts.sort ?? 'duration';
    const list = sortSessions(snap.sessions.filter((a) => sessionMatches(a, opts.filter ?? '')), sort);
    out.push({ text: clip(`Sessions (${list.length}${opts.filter ? ` of ${snap.sessions.length}, filter "${opts.filter}"` : ''}) · sorted by ${sort}`, width), level: 'title' });
    if (!list.length) out.push({ text: '  none', level: 'dim' });
    for (const a of list) {
      const who = a.applicationName ? `${a.user}/${a.applicationName}` : a.user;
      const text = a.hidden
        ? `  ${String(a.pid).padStart(7)} ${who || 'another role'}${mark(a.pgshift)} · hidden: no pg_read_all_stats (state, query and wait unknown)`
        : `  ${String(a.pid).padStart(7)} ${(a.state || '—').padEnd(19)} ${fmtDuration(a.durationMs).padStart(9)} · ${who}${mark(a.pgshift)}${a.waitEvent && a.waitEvent !== 'Client:ClientRead' ? ` · waits ${a.waitEvent}` : ''} · ${q(a.query, Math.max(20, width - 60))}`;
      out.push({ pid: a.pid, pgshift: a.pgshift, level: a.hidden ? 'dim' : a.waitEvent?.startsWith('Lock') ? 'warn' : 'info', text: clip(text, width) });
    }
  }
  return out;
}

function countDesc(n: WaitNode): string {
  let c = 0;
  const walk = (x: WaitNode) => {
    for (const k of x.children) {
      c++;
      walk(k);
    }
  };
  walk(n);
  return `${c} session${c === 1 ? '' : 's'}`;
}

/** The compact panel: a few lines that fit beside (or under) every phase. */
export function compactLines(snap: MonitorSnapshot | null, error: string | null, width: number, longQuerySeconds: number): MonitorLine[] {
  if (!snap) return [{ text: error ? clip(`monitor: ${error}`, width) : 'monitor: connecting…', level: error ? 'error' : 'dim' }];
  const out: MonitorLine[] = [];
  const idle = snap.long.filter((a) => a.state.startsWith('idle in transaction'));
  const active = snap.long.filter((a) => a.state === 'active');
  if (snap.waits.length === 0) out.push({ text: clip('locks: no waits', width), level: 'dim' });
  else {
    const w = [...snap.waits].sort((a, b) => b.waitMs - a.waitMs)[0]!;
    out.push({ text: clip(`locks: ${snap.waits.length} waiting · pid ${w.pid} ← ${w.blockingPids.join(',')} ${w.mode ?? ''} ${w.lockType === 'virtualxid' ? 'virtualxid (older snapshot)' : w.relation ?? ''} ${fmtDuration(w.waitMs)}`, width), level: 'warn', pid: w.pid });
  }
  if (snap.hiddenSessions) out.push({ text: clip(`${snap.hiddenSessions} session(s) hidden: no pg_read_all_stats`, width), level: 'warn' });
  else if (snap.privileges && !snap.privileges.readAllStats) out.push({ text: clip('no pg_read_all_stats: other roles hidden (m)', width), level: 'warn' });
  if (snap.privileges && !snap.privileges.signalBackend) out.push({ text: clip('no pg_signal_backend: cancel own sessions only', width), level: 'warn' });
  out.push({
    text: clip(`long > ${longQuerySeconds} s: ${active.length}${active[0] ? ` · pid ${active[0].pid} ${fmtDuration(active[0].durationMs)}` : ''}`, width),
    level: active.length ? 'warn' : 'dim',
  });
  out.push({
    text: clip(`idle in tx: ${idle.length}${idle[0] ? ` · pid ${idle[0].pid} ${fmtDuration(idle[0].durationMs)}` : ''}`, width),
    level: idle.length ? 'warn' : 'dim',
  });
  out.push({ text: clip(`${error ? `stale: ${error}` : `refresh ${snap.costMs.toFixed(1)} ms`} · ${snap.at.toTimeString().slice(0, 8)}`, width), level: error ? 'error' : 'dim' });
  return out;
}
