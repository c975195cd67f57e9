import { Box, Text } from 'ink';
import type { LogLine, WizardState } from '../state/use-wizard-state.js';
import { selectedStep } from '../state/use-wizard-state.js';
import { clip, wrap } from '../format-ui.js';
import { useTheme } from '../theme.js';
import { Lines, type Line } from './lines.js';

const stamp = (at: number) => new Date(at).toTimeString().slice(0, 8);
const lvl = (l: LogLine): Line['level'] => (l.level === 'info' ? undefined : l.level);

/** Every log entry whole, wrapped at word boundaries under its time stamp (the full-screen log). */
export function fullLogLines(log: readonly LogLine[], width: number): Line[] {
  const out: Line[] = [];
  for (const l of log) {
    wrap(l.text, Math.max(10, width - 9)).forEach((t, i) => out.push({ text: `${i === 0 ? stamp(l.at) : '        '} ${t}`, level: lvl(l) }));
  }
  return out;
}

/**
 * The log pane: the newest entries (or, scrolled back, older ones), each wrapped on up to two lines; an entry
 * longer than that ends with "…" and is whole in the full-screen log (L) or, for an error, behind e.
 */
export function LogView({ log, height, width, scroll = 0, focused }: {
  readonly log: readonly LogLine[]; readonly height: number; readonly width: number; readonly scroll?: number; readonly focused?: boolean;
}) {
  const body = Math.max(0, height - 1);
  const end = Math.max(0, log.length - scroll);
  const lines: Line[] = [];
  for (let i = end - 1; i >= 0 && lines.length < body; i--) {
    const l = log[i]!;
    const w = wrap(l.text.replace(/\s*\n\s*/g, ' '), Math.max(10, width - 9));
    const shown = w.length > 2 ? [w[0]!, clip(`${w[1]!} ${w.slice(2).join(' ')}`, Math.max(10, width - 9))] : w;
    const entry = shown.map((t, k) => ({ text: `${k === 0 ? stamp(l.at) : '        '} ${t}`, level: lvl(l) }));
    lines.unshift(...entry);
  }
  while (lines.length > body) lines.shift();
  const title = `─ log${focused ? ' (focus: ↑/↓ scroll)' : ''}${scroll > 0 ? ` · ${scroll} newer below` : ''} · L full screen · e error `;
  return <Lines lines={[{ text: clip(title + '─'.repeat(Math.max(0, width - title.length)), width), level: focused ? 'title' : 'dim' }, ...lines]} height={height} width={width} />;
}

export function FullLog({ log, width, height, scroll }: { readonly log: readonly LogLine[]; readonly width: number; readonly height: number; readonly scroll: number }) {
  const t = useTheme();
  const lines = fullLogLines(log, width);
  const body = Math.max(1, height - 2);
  const start = Math.min(scroll, Math.max(0, lines.length - body));
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      <Text bold color={t.accent} wrap="truncate-end">{clip(`Log · ${log.length} entries, every line whole`, width)}</Text>
      <Lines lines={lines.slice(start, start + body)} height={body} width={width} />
      <Text color={t.dim} wrap="truncate-end">{clip(`lines ${lines.length ? start + 1 : 0}-${Math.min(lines.length, start + body)} of ${lines.length} · ↑/↓ pgup/pgdn scroll · G newest · esc or L closes`, width)}</Text>
    </Box>
  );
}

/** The full text of the selected step's error (with its hint), else of the last error in the log. */
export function logErrorText(s: WizardState): string | null {
  const step = selectedStep(s);
  if (step?.error) return `${step.id} · ${step.title}\n\n${step.error}${step.hint ? `\n\nhint: ${step.hint}` : ''}`;
  const failed = Object.values(s.steps).filter((x) => x.error && x.status === 'failed');
  if (failed.length) {
    const f = failed[failed.length - 1]!;
    return `${f.id} · ${f.title}\n\n${f.error}${f.hint ? `\n\nhint: ${f.hint}` : ''}`;
  }
  const last = [...s.log].reverse().find((l) => l.level === 'error');
  if (last) return `${stamp(last.at)}\n\n${last.text.trim()}`;
  const plan = s.phases.find((p) => p.error);
  return plan ? `phase ${plan.id} cannot be planned\n\n${plan.error}` : null;
}
