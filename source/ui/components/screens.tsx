import React from 'react';
import { Box, Text } from 'ink';
import { useTheme } from '../theme.js';
import { MAIN_KEYS, MONITOR_KEYS } from '../keymap.js';
import { clip } from '../format-ui.js';
import { Lines, type Line } from './lines.js';

export function HelpScreen({ width, height }: { readonly width: number; readonly height: number }) {
  const lines: Line[] = [
    { text: 'Keys on the phase screen', level: 'title' },
    ...MAIN_KEYS.filter((b) => !b.action.startsWith('phase-')).map((b) => ({ text: clip(`  ${b.label.padEnd(8)} ${b.help}`, width) })),
    { text: '  1-5      jump to phase 1 … 5' },
    { text: 'Keys on the monitor screen', level: 'title' },
    ...MONITOR_KEYS.map((b) => ({ text: clip(`  ${b.label.padEnd(8)} ${b.help}`, width) })),
    { text: 'Confirmations', level: 'title' },
    { text: clip('  DROP and restore: type the object\'s name exactly, then enter. Others: y. Esc always cancels.', width) },
    { text: clip('  A refused step cannot be confirmed; where an override exists, type the name plus OVERRIDE.', width) },
    { text: '' },
    { text: 'esc or ? closes this help', level: 'dim' },
  ];
  return <Lines lines={lines} height={height} width={width} />;
}

export function PreviewScreen({ title, lines, scroll, width, height }: {
  readonly title: string; readonly lines: readonly Line[]; readonly scroll: number; readonly width: number; readonly height: number;
}) {
  const t = useTheme();
  const body = Math.max(1, height - 2);
  const start = Math.min(scroll, Math.max(0, lines.length - body));
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Text bold color={t.accent} wrap="truncate-end">{clip(title, width)}</Text>
      <Lines lines={lines.slice(start, start + body)} height={body} width={width} />
      <Text color={t.dim} wrap="truncate-end">{clip(`lines ${lines.length ? start + 1 : 0}-${Math.min(lines.length, start + body)} of ${lines.length} · ↑/↓ pgup/pgdn scroll · esc or p closes`, width)}</Text>
    </Box>
  );
}

export function PromptBox({ title, children, width, tone }: { readonly title: string; readonly children: React.ReactNode; readonly width: number; readonly tone?: 'warn' | 'danger' }) {
  const t = useTheme();
  return (
    <Box flexDirection="column" width={width} borderStyle="round" borderColor={tone === 'danger' ? t.danger : t.warn} paddingX={1}>
      <Text bold wrap="truncate-end">{clip(title, width - 4)}</Text>
      {children}
    </Box>
  );
}

export function SkipPrompt({ stepId, text, error, width }: { readonly stepId: string; readonly text: string; readonly error?: string; readonly width: number }) {
  const t = useTheme();
  return (
    <PromptBox title={`Skip ${stepId}: why? (journaled with your name)`} width={width}>
      <Text wrap="truncate-end">{'> '}{text}<Text inverse> </Text></Text>
      <Text color={error ? t.error : t.dim} wrap="truncate-end">{clip(error ?? 'enter skips · esc cancels', width - 4)}</Text>
    </PromptBox>
  );
}

export function QuitPrompt({ running, width }: { readonly running: boolean; readonly width: number }) {
  return (
    <PromptBox title="Quit pgshift?" width={width} tone="danger">
      <Text wrap="truncate-end">
        {clip(running ? 'A run is in progress: the current batch finishes and commits its checkpoint, then pgshift exits. Resume later with the same command.' : 'Nothing is running. The journal keeps every step; run again to continue.', width - 4)}
      </Text>
      <Text wrap="truncate-end">y quits · n or esc stays</Text>
    </PromptBox>
  );
}
