import React from 'react';
import { Box, Text } from 'ink';
import type { MonitorSnapshot } from '../../db/monitor.js';
import { useTheme } from '../theme.js';
import { compactLines, monitorLines } from '../monitor-lines.js';
import { clip } from '../format-ui.js';
import { Lines } from './lines.js';

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

/** The full-screen monitors; `selectedPid` is the backend c / t act on. */
export function FullMonitor({ view, width, height, longQuerySeconds, selectedPid, refreshMs, notice }: {
  readonly view: MonitorView; readonly width: number; readonly height: number; readonly longQuerySeconds: number;
  readonly selectedPid: number | null; readonly refreshMs: number; readonly notice?: string;
}) {
  const t = useTheme();
  const snap = view.snapshot;
  const lines = snap ? monitorLines(snap, width, longQuerySeconds).map((l) => ({ ...l, selected: l.pid !== undefined && l.pid === selectedPid })) : [{ text: view.error ? `monitor: ${view.error}` : 'connecting…', level: view.error ? ('error' as const) : ('dim' as const) }];
  const body = Math.max(1, height - 3);
  // keep the selected line visible
  const selIdx = lines.findIndex((l) => 'selected' in l && l.selected);
  const start = selIdx >= body ? selIdx - body + 1 : 0;
  const status = snap
    ? `refreshed ${snap.at.toTimeString().slice(0, 8)} every ${refreshMs} ms · one refresh costs ${snap.costMs.toFixed(1)} ms${view.error ? ` · last refresh failed: ${view.error}` : ''}`
    : '';
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Text bold color={t.accent} wrap="truncate-end">{clip(`Live monitors · own connection (pgshift-monitor, statement_timeout 1 s)${selectedPid ? ` · selected pid ${selectedPid}` : ''}`, width)}</Text>
      <Text color={view.error ? t.error : t.dim} wrap="truncate-end">{clip(notice ?? status, width)}</Text>
      <Lines lines={lines.slice(start, start + body)} height={body} width={width} />
      <Text color={t.dim} wrap="truncate-end">{clip('[pgshift] marks pgshift\'s own sessions', width)}</Text>
    </Box>
  );
}
