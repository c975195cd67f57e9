import { Box, Text } from 'ink';
import Spinner from 'ink-spinner';
import { useTheme } from '../theme.js';
import { bar, joinFit, progressParts, stateWord, wrap, type ProgressView } from '../format-ui.js';
import { levelColor, type Line } from './lines.js';

/**
 * The progress as lines that fit the width, never cut: the copy's state (running / THROTTLED (why) /
 * WAITING FOR LOCK (holder) / PAUSED), then "N / M rows (p%) · R rows/s · ETA …" (wrapped between figures,
 * never inside one), then the detail (partition, batch).
 */
export function progressLines(progress: ProgressView | undefined, waitingFor: string | undefined, width: number): Line[] {
  const out: Line[] = [];
  if (!progress) {
    for (const l of wrap(waitingFor ?? 'working…', width)) out.push({ text: l });
    return out;
  }
  const st = stateWord(progress);
  const parts = progressParts(progress);
  const lines = joinFit(st ? [st.text, ...parts] : parts, width);
  lines.forEach((l, i) => out.push({ text: l, level: i === 0 && st && st.level !== 'ok' ? (st.level === 'error' ? 'error' : 'warn') : undefined }));
  if (progress.detail) for (const l of joinFit(progress.detail.split(' · '), width)) out.push({ text: l, level: 'dim' });
  if (!progress.total && waitingFor && !progress.detail) for (const l of wrap(waitingFor, width)) out.push({ text: l, level: 'dim' });
  return out;
}

/** The number of lines ProgressBar takes at this width. */
export function progressHeight(progress: ProgressView | undefined, waitingFor: string | undefined, width: number): number {
  const hasBar = !!(progress && progress.total !== undefined && progress.total > 0);
  return (hasBar ? 1 : 0) + progressLines(progress, waitingFor, hasBar ? width : width - 2).length;
}

/** done/total as a bar, then the figures; without a total, a spinner with what the step waits for. */
export function ProgressBar({ progress, waitingFor, width }: { readonly progress?: ProgressView; readonly waitingFor?: string; readonly width: number }) {
  const t = useTheme();
  if (progress && progress.total !== undefined && progress.total > 0) {
    const barW = Math.max(10, Math.min(40, width - 2));
    const lines = progressLines(progress, waitingFor, width);
    return (
      <Box flexDirection="column" width={width}>
        <Text color={progress.state === 'paused' || progress.state === 'throttled' ? t.warn : progress.state === 'waiting-lock' ? t.error : t.running}>{bar(progress.done / progress.total, barW)}</Text>
        {lines.map((l, i) => <Text key={i} color={levelColor(t, l.level)} bold={i === 0 && !!progress.state && progress.state !== 'running'}>{l.text}</Text>)}
      </Box>
    );
  }
  const lines = progressLines(progress, waitingFor, width - 2);
  return (
    <Box flexDirection="column" width={width}>
      {lines.map((l, i) => (
        <Box key={i} width={width}>
          {i === 0 ? <Text color={t.running}><Spinner type="dots" /></Text> : <Text> </Text>}
          <Text color={levelColor(t, l.level)}>{' '}{l.text}</Text>
        </Box>
      ))}
    </Box>
  );
}
