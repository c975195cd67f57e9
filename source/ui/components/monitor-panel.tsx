import { Box, Text } from 'ink';
import type { MonitorSnapshot } from '../../db/monitor.js';
import { useTheme } from '../theme.js';
import { compactLines, monitorLines, privilegeHeader, type SessionSort } from '../monitor-lines.js';
import { clip, wrap } from '../format-ui.js';
import { Lines, type Line } from './lines.js';

export interface MonitorView {
  readonly snapshot: MonitorSnapshot | null;
  readonly error: string | null;
}

/** The compact panel beside (or under) every phase. */
export function CompactMonitor({ view, width, height, longQuerySeconds, strip }: {
  readonly view: MonitorView; readonly width: number; readonly height: number; readonly longQuerySeconds: number;
  /** two lines under the phase (narrow terminals) instead of a column beside it */
  readonly strip?: boolean;
}) {
  const t = useTheme();
  const lines = compactLines(view.snapshot, view.error, width, longQuerySeconds);
  if (strip) {
    const all = compactLines(view.snapshot, view.error, 400, longQuerySeconds);
    const worst: 'error' | 'warn' | 'dim' = all.some((l) => l.level === 'error') ? 'error' : all.some((l) => l.level === 'warn') ? 'warn' : 'dim';
    const strips = [
      { text: clip(`monitors (m) · ${all.map((l) => l.text).join(' · ')}`, width), level: worst },
    ];
    return <Lines lines={strips} height={height} width={width} />;
  }
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Text bold color={t.accent} wrap="truncate-end">{clip('Monitors (m)', width)}</Text>
      <Lines lines={lines} height={height - 1} width={width} />
    </Box>
  );
}

/** The activity view (full screen); `selectedPid` is the backend c / t act on (kept by pid across refreshes). */
export function FullMonitor({ view, width, height, longQuerySeconds, selectedPid, refreshMs, notice, sort, filter, filterEditing, paused }: {
  readonly view: MonitorView; readonly width: number; readonly height: number; readonly longQuerySeconds: number;
  readonly selectedPid: number | null; readonly refreshMs: number; readonly notice?: string;
  readonly sort?: SessionSort; readonly filter?: string; readonly filterEditing?: boolean; readonly paused?: boolean;
}) {
  const t = useTheme();
  const snap = view.snapshot;
  const privs = snap ? privilegeHeader(snap.privileges, snap.hiddenSessions) : [];
  const shownPrivs = privs.filter((l) => l.level === 'warn').length ? privs : [];
  const lines = snap ? monitorLines(snap, width, longQuerySeconds, { sort, filter }).map((l) => ({ ...l, selected: l.pid !== undefined && l.pid === selectedPid })) : [{ text: view.error ? `monitor: ${view.error}` : 'connecting…', level: view.error ? ('error' as const) : ('dim' as const) }];
  const head: Line[] = shownPrivs.flatMap((l) => wrap(l.text, width).map((x) => ({ text: x, level: l.level })));
  const body = Math.max(1, height - 3 - head.length - (filterEditing ? 1 : 0));
  // keep the selected line visible (its first occurrence)
  const selIdx = lines.findIndex((l) => 'selected' in l && l.selected);
  const start = selIdx >= body ? Math.min(selIdx - Math.floor(body / 2), Math.max(0, lines.length - body)) : 0;
  const status = snap
    ? `${paused ? 'PAUSED (space resumes) · ' : ''}refreshed ${snap.at.toTimeString().slice(0, 8)} every ${refreshMs} ms (+/-) · one refresh costs ${snap.costMs.toFixed(1)} ms${view.error ? ` · last refresh failed: ${view.error}` : ''}`
    : '';
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Text bold color={t.accent} wrap="truncate-end">{clip(`Activity · own connection (pgshift-monitor, statement_timeout 1 s)${snap?.privileges ? ` as ${snap.privileges.role}` : ''}${selectedPid ? ` · selected pid ${selectedPid}` : ''}`, width)}</Text>
      {head.length ? <Lines lines={head} height={head.length} width={width} /> : null}
      <Text color={view.error ? t.error : paused ? t.warn : t.dim} wrap="truncate-end">{clip(notice ?? status, width)}</Text>
      {filterEditing ? <Text wrap="truncate-end">{clip(`filter: ${filter ?? ''}`, width - 1)}<Text inverse> </Text></Text> : null}
      <Lines lines={lines.slice(start, start + body)} height={body} width={width} />
      <Text color={t.dim} wrap="truncate-end">{clip(`[pgshift] marks pgshift's own sessions · ${lines.length} lines${start > 0 || start + body < lines.length ? ` (${start + 1}-${Math.min(lines.length, start + body)} shown, ↑/↓ pgup/pgdn)` : ''}`, width)}</Text>
    </Box>
  );
}
