import React from 'react';
import { Box, Text } from 'ink';
import Spinner from 'ink-spinner';
import { useTheme } from '../theme.js';
import { bar, clip, progressText, type ProgressView } from '../format-ui.js';

/** done/total as a bar with rows/s and ETA; without a total, a spinner with what the step waits for. */
export function ProgressBar({ progress, waitingFor, width }: { readonly progress?: ProgressView; readonly waitingFor?: string; readonly width: number }) {
  const t = useTheme();
  if (progress && progress.total !== undefined && progress.total > 0) {
    const barW = Math.max(10, Math.min(40, width - 2));
    return (
      <Box flexDirection="column" width={width}>
        <Text color={t.running}>{bar(progress.done / progress.total, barW)}</Text>
        <Text wrap="truncate-end">{clip(progressText(progress), width)}</Text>
        {progress.detail ? <Text color={t.dim} wrap="truncate-end">{clip(progress.detail, width)}</Text> : null}
      </Box>
    );
  }
  const what = progress ? `${progressText(progress)}${progress.detail ? ` · ${progress.detail}` : ''}` : waitingFor ?? 'working…';
  return (
    <Box width={width}>
      <Text color={t.running}><Spinner type="dots" /></Text>
      <Text wrap="truncate-end">{' '}{clip(progress && waitingFor ? `${what} · ${waitingFor}` : what, width - 2)}</Text>
    </Box>
  );
}
