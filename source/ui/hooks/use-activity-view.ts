import { useMemo, useRef, useState } from 'react';
import type { MonitorSnapshot } from '../../db/monitor.js';
import type { ConfirmRequest } from '../../engine/types.js';
import { fmtDuration } from '../../format.js';
import { stripControl } from '../keymap.js';
import { monitorLines, SESSION_SORTS, type SessionSort } from '../monitor-lines.js';
import type { MonitorSource } from '../monitor-source.js';
import { useMonitor } from './use-monitor.js';

/** What the monitor panels draw: the last snapshot, or why there is none ('off' without a monitor connection). */
export interface MonitorView {
  readonly snapshot: MonitorSnapshot | null;
  readonly error: string | null;
}

/** A session of the activity view, in its order: the one line it shows, and whether it is one of pgshift's. */
export interface ActivitySession {
  readonly pid: number;
  readonly text: string;
  readonly pgshift: boolean;
}

export interface ActivityView {
  readonly view: MonitorView;
  readonly sessions: readonly ActivitySession[];
  /** kept by pid while that session is listed, else the first one */
  readonly selectedPid: number | null;
  readonly sort: SessionSort;
  readonly filter: string;
  readonly filterEditing: boolean;
  readonly refreshMs: number;
  readonly paused: boolean;
  /** the last action's result ("cancel pid 42: sent …"), shown in the view */
  readonly notice: string | undefined;
  readonly setNotice: (notice: string | undefined) => void;
  /** whether the filter is being typed, up to date between renders (the keys of one chunk) */
  readonly isEditingFilter: () => boolean;
  readonly move: (delta: number) => void;
  readonly cycleSort: () => void;
  readonly editFilter: () => void;
  readonly typeFilter: (text: string) => void;
  readonly backspaceFilter: () => void;
  /** enter: keeps the filter, stops editing it */
  readonly keepFilter: () => void;
  /** esc: clears the filter, stops editing it */
  readonly clearFilter: () => void;
  readonly togglePause: () => void;
  readonly slower: () => void;
  readonly faster: () => void;
  /** the live line of a cancel / terminate dialog: what the backend does now, or that it has ended */
  readonly liveFor: (r: ConfirmRequest) => { text: string; gone: boolean } | undefined;
}

/** The activity view: polling the monitor connection, its selection (by pid), sort, filter, refresh interval, pause. */
export function useActivityView({ monitor, refreshMs: initialRefreshMs, longQuerySeconds }: {
  readonly monitor: MonitorSource | null;
  readonly refreshMs: number;
  readonly longQuerySeconds: number;
}): ActivityView {
  const [pid, setPid] = useState<number | null>(null);
  const [sort, setSort] = useState<SessionSort>('duration');
  const [filter, setFilter] = useState('');
  const [filterEditing, setFilterEditing] = useState(false);
  const [refreshMs, setRefreshMs] = useState<number>(initialRefreshMs);
  const [paused, setPaused] = useState(false);
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const filterRef = useRef('');
  const filterEditingRef = useRef(false);

  const poll = useMonitor(monitor, refreshMs, longQuerySeconds, paused);
  const view: MonitorView = monitor ? { snapshot: poll.value, error: poll.error } : { snapshot: null, error: 'off' };
  const sessions = useMemo(() => {
    if (!poll.value) return [] as ActivitySession[];
    const seen = new Set<number>();
    const out: ActivitySession[] = [];
    for (const l of monitorLines(poll.value, 200, longQuerySeconds, { sort, filter })) {
      if (l.pid !== undefined && !seen.has(l.pid)) {
        seen.add(l.pid);
        out.push({ pid: l.pid, text: l.text.trim(), pgshift: !!l.pgshift });
      }
    }
    return out;
  }, [poll.value, longQuerySeconds, sort, filter]);
  const selectedPid = pid !== null && sessions.some((x) => x.pid === pid) ? pid : sessions[0]?.pid ?? null;

  const setEditing = (on: boolean) => {
    setFilterEditing(on);
    filterEditingRef.current = on;
  };
  const setFilterText = (text: string) => {
    filterRef.current = text;
    setFilter(text);
  };

  return {
    view, sessions, selectedPid, sort, filter, filterEditing, refreshMs, paused, notice, setNotice,
    isEditingFilter: () => filterEditingRef.current,
    move: (delta) => {
      if (!sessions.length) return;
      const i = Math.max(0, sessions.findIndex((x) => x.pid === selectedPid));
      setPid(sessions[Math.max(0, Math.min(sessions.length - 1, i + delta))]!.pid);
    },
    cycleSort: () => setSort((x) => SESSION_SORTS[(SESSION_SORTS.indexOf(x) + 1) % SESSION_SORTS.length]!),
    editFilter: () => setEditing(true),
    typeFilter: (text) => setFilterText((filterRef.current + stripControl(text)).slice(0, 80)),
    backspaceFilter: () => setFilterText(filterRef.current.slice(0, -1)),
    keepFilter: () => setEditing(false),
    clearFilter: () => {
      setFilterText('');
      setEditing(false);
    },
    togglePause: () => setPaused((p) => !p),
    slower: () => setRefreshMs((ms) => Math.min(30_000, ms * 2)),
    faster: () => setRefreshMs((ms) => Math.max(250, Math.round(ms / 2))),
    liveFor: (r) => {
      if (r.stepId !== 'monitor' || !poll.value?.sessions) return undefined;
      const p = Number(/pid (\d+)/.exec(r.object)?.[1]);
      const a = poll.value.sessions.find((x) => x.pid === p);
      const at = poll.value.at.toTimeString().slice(0, 8);
      if (!a) return { text: `now (${at}): pid ${p} has ended — nothing left to ${r.kind}; esc closes`, gone: true };
      const blocks = poll.value.waits.filter((w) => w.blockingPids.includes(p)).length;
      return { text: `now (${at}): pid ${p} ${a.hidden ? 'hidden (no pg_read_all_stats)' : `${a.state || '—'} ${fmtDuration(a.durationMs)}${a.waitEvent ? ` · waits ${a.waitEvent}` : ''}`}${blocks ? ` · blocks ${blocks} session(s)` : ''}${a.hidden ? '' : ` · ${a.query.replace(/\s+/g, ' ').slice(0, 200)}`}`, gone: false };
    },
  };
}
