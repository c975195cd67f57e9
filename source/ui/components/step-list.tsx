import { Box, Text } from 'ink';
import Spinner from 'ink-spinner';
import { useTheme } from '../theme.js';
import type { StepView } from '../state/use-wizard-state.js';
import { clip } from '../format-ui.js';

const ICON: Record<StepView['status'], string> = {
  pending: '·', running: '▶', done: '✓', 'already-done': '✓', failed: '✗', skipped: '–', stopped: '■', declined: '■',
};

/** The phase's steps with their state; the selected one highlighted; scrolls to keep the selection visible. */
export function StepList({ steps, selected, height, width, title, focused }: {
  readonly steps: readonly StepView[]; readonly selected: number; readonly height: number; readonly width: number; readonly title: string; readonly focused?: boolean;
}) {
  const t = useTheme();
  const rows = Math.max(1, height - 1);
  const start = Math.max(0, Math.min(selected - Math.floor(rows / 2), steps.length - rows));
  const shown = steps.slice(start, start + rows);
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Text bold color={t.accent} underline={!!focused} wrap="truncate-end">{clip(title, width)}</Text>
      {steps.length === 0 ? <Text color={t.dim} wrap="truncate-end">{clip('no steps', width)}</Text> : null}
      {shown.map((s, k) => {
        const i = start + k;
        const color = s.status === 'done' || s.status === 'already-done' ? t.ok : s.status === 'failed' ? t.error : s.status === 'running' ? t.running : s.status === 'skipped' || s.status === 'stopped' || s.status === 'declined' ? t.warn : undefined;
        return (
          <Box key={s.id} width={width} height={1}>
            <Text color={color} inverse={i === selected} wrap="truncate-end">
              {i === selected ? '›' : ' '}
              {s.status === 'running' ? <Spinner type="dots" /> : ICON[s.status]}
              {' '}
              {clip(s.title, width - 4)}
            </Text>
          </Box>
        );
      })}
    </Box>
  );
}
