import type { Activity, MonitorSnapshot, WaitNode } from '../db/monitor.js';
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

/** The full monitor screen as lines: lock-wait chains as a tree, long queries, idle-in-transaction sessions. */
export function monitorLines(snap: MonitorSnapshot, width: number, longQuerySeconds: number): MonitorLine[] {
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
        text: clip(`${prefix}${branch}pid ${w.pid}${mark(w.pgshift)} waits ${fmtDuration(w.waitMs)} for ${w.mode ?? 'a lock'}${w.relation ? ` on ${w.relation}` : ''} (blocked by ${w.blockingPids.join(', ')}) · ${q(w.query, qw)}`, width),
      });
    } else {
      const a = byPid.get(n.pid);
      out.push({
        pid: n.pid, pgshift: a?.pgshift, level: 'error',
        text: clip(`${prefix}${branch}pid ${n.pid}${mark(!!a?.pgshift)} blocks ${countDesc(n)} · ${a ? `${a.state} ${fmtDuration(a.durationMs)} · ${a.applicationName || a.user} · ${q(a.query, qw)}` : 'holder'}`, width),
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
    out.push({ text: clip(`locks: ${snap.waits.length} waiting · pid ${w.pid} ← ${w.blockingPids.join(',')} ${w.mode ?? ''} ${w.relation ?? ''} ${fmtDuration(w.waitMs)}`, width), level: 'warn', pid: w.pid });
  }
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
