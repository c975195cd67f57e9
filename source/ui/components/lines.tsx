import { Box, Text } from 'ink';
import { useTheme, type Palette } from '../theme.js';

export type Level = 'title' | 'info' | 'warn' | 'error' | 'dim' | 'ok' | 'accent';
export interface Line {
  readonly text: string;
  readonly level?: Level;
  readonly selected?: boolean;
}

export function levelColor(p: Palette, level: Level | undefined): string | undefined {
  switch (level) {
    case 'title': case 'accent': return p.accent;
    case 'warn': return p.warn;
    case 'error': return p.error;
    case 'dim': return p.dim;
    case 'ok': return p.ok;
    default: return undefined;
  }
}

/** A fixed-height block of one-line texts (never wraps, never grows past `height`). */
export function Lines({ lines, height, width }: { readonly lines: readonly Line[]; readonly height: number; readonly width: number }) {
  const p = useTheme();
  const shown = lines.slice(0, Math.max(0, height));
  return (
    <Box flexDirection="column" height={Math.max(0, height)} width={width} overflow="hidden">
      {shown.map((l, i) => (
        <Text key={i} wrap="truncate-end" color={levelColor(p, l.level)} bold={l.level === 'title'} inverse={l.selected}>
          {l.text || ' '}
        </Text>
      ))}
    </Box>
  );
}
