import { Box, Text } from 'ink';
import { useTheme } from '../theme.js';
import type { PhaseView, StepView } from '../state/use-wizard-state.js';

const ICON: Record<PhaseView['status'], string> = {
  idle: '○', planning: '…', ready: '○', running: '▶', done: '✓', failed: '✗', error: '!',
};

export function phaseState(p: PhaseView, steps: Readonly<Record<string, StepView>>): PhaseView['status'] {
  if (p.status === 'running' || p.status === 'error' || p.status === 'planning' || p.status === 'idle') return p.status;
  const st = p.stepIds.map((id) => steps[id]?.status);
  if (st.some((s) => s === 'failed' || s === 'stopped')) return 'failed';
  if (st.length > 0 && st.every((s) => s === 'done' || s === 'already-done' || s === 'skipped')) return 'done';
  return p.status;
}

/** 1 Preparation · 2 Structure · … · Rollback, each with its state; the current one highlighted. */
export function PhaseRail({ phases, steps, current, width }: {
  readonly phases: readonly PhaseView[]; readonly steps: Readonly<Record<string, StepView>>; readonly current: number; readonly width: number;
}) {
  const t = useTheme();
  const narrow = width < 96;
  const tiny = width < 66;
  // one line of nested texts, cut at the end: never wraps into a garbled second line on narrow terminals
  return (
    <Box width={width} height={1} overflow="hidden">
      <Text wrap="truncate-end">
        {phases.map((p, i) => {
          const st = phaseState(p, steps);
          const name = tiny && i !== current ? p.name.slice(0, 3) : narrow && i !== current ? p.name.slice(0, 4) : p.name;
          const label = `${ICON[st]} ${p.id === 'rollback' ? '' : `${p.id} `}${name}`;
          const color = st === 'done' ? t.ok : st === 'failed' || st === 'error' ? t.error : st === 'running' ? t.running : undefined;
          return (
            <Text key={String(p.id)}>
              <Text color={color} inverse={i === current} bold={i === current}>{label}</Text>
              {i < phases.length - 1 ? <Text color={t.dim}>{tiny ? ' ' : ' · '}</Text> : null}
            </Text>
          );
        })}
      </Text>
    </Box>
  );
}
