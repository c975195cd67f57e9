import React from 'react';
import { Box, Text } from 'ink';
import { useTheme } from '../theme.js';
import { MAIN_KEYS, MONITOR_KEYS } from '../keymap.js';
import { clip, wrap } from '../format-ui.js';
import { Lines, type Line } from './lines.js';

export function helpLines(width: number): Line[] {
  const out: Line[] = [];
  const item = (label: string, help: string) => {
    const pad = `  ${label.padEnd(8)} `;
    wrap(help, Math.max(10, width - pad.length)).forEach((l, i) => out.push({ text: (i === 0 ? pad : ' '.repeat(pad.length)) + l }));
  };
  const para = (text: string) => wrap(text, Math.max(10, width - 2)).forEach((l) => out.push({ text: `  ${l}` }));
  out.push({ text: 'Keys on the phase screen', level: 'title' });
  for (const b of MAIN_KEYS.filter((b) => !b.action.startsWith('phase-'))) item(b.label, b.help);
  item('1-5', 'jump to phase 1 … 5');
  out.push({ text: 'Keys on the monitor screen', level: 'title' });
  for (const b of MONITOR_KEYS) item(b.label, b.help);
  out.push({ text: 'Confirmations', level: 'title' });
  para("DROP and restore: type the object's name exactly, then enter. Others: y. Esc always cancels.");
  para('A refused step cannot be confirmed; where an override exists, type the name plus OVERRIDE.');
  out.push({ text: '' });
  out.push({ text: 'esc or ? closes this help', level: 'dim' });
  return out;
}

/** Every key, wrapped to the width; scrolls (↑/↓ pgup/pgdn) when the terminal is short. */
export function HelpScreen({ width, height, scroll = 0 }: { readonly width: number; readonly height: number; readonly scroll?: number }) {
  const t = useTheme();
  const lines = helpLines(width);
  const fits = lines.length <= height;
  const body = fits ? height : Math.max(1, height - 1);
  const start = Math.min(scroll, Math.max(0, lines.length - body));
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Lines lines={lines.slice(start, start + body)} height={body} width={width} />
      {fits ? null : <Text color={t.dim} wrap="truncate-end">{clip(`help lines ${start + 1}-${Math.min(lines.length, start + body)} of ${lines.length} · ↑/↓ pgup/pgdn scroll · esc closes`, width)}</Text>}
    </Box>
  );
}

/** A text (an error's full message) wrapped at word boundaries, scrolling. */
export function TextScreen({ title, text, width, height, scroll }: { readonly title: string; readonly text: string; readonly width: number; readonly height: number; readonly scroll: number }) {
  const t = useTheme();
  const lines: Line[] = text.split('\n').flatMap((l) => wrap(l, Math.max(10, width)).map((x) => ({ text: x, level: /^hint: /.test(l) ? ('warn' as const) : undefined })));
  return <ScrollingScreen title={title} color={t.error} lines={lines} scroll={scroll} width={width} height={height} keys="↑/↓ scroll · esc or e closes" />;
}

/** A title, the lines from `scroll` that fit, and a footer saying where the view is and which keys move it. */
function ScrollingScreen({ title, color, lines, scroll, width, height, keys }: {
  readonly title: string; readonly color: string | undefined; readonly lines: readonly Line[]; readonly scroll: number; readonly width: number; readonly height: number; readonly keys: string;
}) {
  const t = useTheme();
  const body = Math.max(1, height - 2);
  const start = Math.min(scroll, Math.max(0, lines.length - body));
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Text bold color={color} wrap="truncate-end">{clip(title, width)}</Text>
      <Lines lines={lines.slice(start, start + body)} height={body} width={width} />
      <Text color={t.dim} wrap="truncate-end">{clip(`lines ${lines.length ? start + 1 : 0}-${Math.min(lines.length, start + body)} of ${lines.length} · ${keys}`, width)}</Text>
    </Box>
  );
}

export function PreviewScreen({ title, lines, scroll, width, height }: {
  readonly title: string; readonly lines: readonly Line[]; readonly scroll: number; readonly width: number; readonly height: number;
}) {
  const t = useTheme();
  return <ScrollingScreen title={title} color={t.accent} lines={lines} scroll={scroll} width={width} height={height} keys="↑/↓ pgup/pgdn scroll · esc or p closes" />;
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

const quitText = (running: boolean) => (running
  ? 'A run is in progress: the current batch finishes and commits its checkpoint, then pgshift exits. Resume later with the same command.'
  : 'Nothing is running. The journal keeps every step; run again to continue.');

export function quitPromptHeight(running: boolean, width: number): number {
  return wrap(quitText(running), Math.max(10, width - 4)).length + 4;
}

/** Quit? — its sentence wrapped, never cut. */
export function QuitPrompt({ running, width }: { readonly running: boolean; readonly width: number }) {
  return (
    <PromptBox title="Quit pgshift?" width={width} tone="danger">
      {wrap(quitText(running), Math.max(10, width - 4)).map((l, i) => <Text key={i}>{l}</Text>)}
      <Text wrap="truncate-end">y quits · n or esc stays</Text>
    </PromptBox>
  );
}
