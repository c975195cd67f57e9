import React from 'react';
import { Box, Text } from 'ink';
import { useTheme } from '../theme.js';
import { clip, elapsed } from '../format-ui.js';

export interface HeaderProps {
  readonly database: string;
  readonly serverVersion: string;
  readonly runId?: number;
  readonly elapsedMs: number;
  readonly operator: string;
  readonly demo: boolean;
  readonly width: number;
}

/** One line: database (never a password), server version, run, elapsed time, operator. */
export function Header(p: HeaderProps) {
  const t = useTheme();
  const text = `pgshift · ${p.database} · PostgreSQL ${p.serverVersion} · run ${p.runId ?? '—'} · ${elapsed(p.elapsedMs)} · operator ${p.operator}${p.demo ? ' · DEMO' : ''}`;
  return (
    <Box width={p.width} height={1}>
      <Text bold color={t.accent} wrap="truncate-end">{clip(text, p.width)}</Text>
    </Box>
  );
}
