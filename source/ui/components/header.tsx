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
  const full = `pgshift · ${p.database} · PostgreSQL ${p.serverVersion} · run ${p.runId ?? '—'} · ${elapsed(p.elapsedMs)} · operator ${p.operator}${p.demo ? ' · DEMO' : ''}`;
  // narrow terminals: the same facts, shorter words, the database name cut last
  const tail = ` · PG ${p.serverVersion} · run ${p.runId ?? '—'} · ${elapsed(p.elapsedMs)} · ${p.operator}${p.demo ? ' · DEMO' : ''}`;
  const text = full.length <= p.width ? full : clip(p.database, Math.max(12, p.width - tail.length)) + tail;
  return (
    <Box width={p.width} height={1}>
      <Text bold color={t.accent} wrap="truncate-end">{clip(text, p.width)}</Text>
    </Box>
  );
}
