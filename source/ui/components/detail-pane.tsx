import React from 'react';
import { Box } from 'ink';
import type { StepView } from '../state/use-wizard-state.js';
import { clip, tableLines, wrap } from '../format-ui.js';
import { fmtDuration } from '../../format.js';
import { Lines, type Line } from './lines.js';
import { ProgressBar } from './progress-bar.js';

export interface Preview {
  readonly statements?: readonly string[];
  readonly error?: string;
}

/** Everything the detail pane shows for a step, as lines (also the full-screen preview's body). */
export function detailLines(step: StepView | undefined, preview: Preview | undefined, width: number, opts: { previewOnly?: boolean } = {}): Line[] {
  if (!step) return [{ text: 'no step selected', level: 'dim' }];
  const out: Line[] = [];
  const push = (text: string, level?: Line['level']) => {
    for (const l of wrap(text, Math.max(10, width))) out.push({ text: l, level });
  };
  if (!opts.previewOnly) {
    out.push({ text: clip(`${step.id} · ${step.status === 'already-done' ? 'already done' : step.status}${step.durationMs !== undefined ? ` · ${fmtDuration(step.durationMs)}` : ''}`, width), level: 'title' });
    push(step.title);
    if (step.summary) push(step.summary, step.status === 'skipped' ? 'warn' : 'ok');
    if (step.error) push(`✗ ${step.error}`, 'error');
    if (step.hint) push(`hint: ${step.hint}`, 'warn');
    for (const w of step.warnings ?? []) push(`⚠ ${w}`, 'warn');
    for (const t of step.tables ?? []) {
      out.push({ text: '' });
      const [title, ...rest] = tableLines(t, width);
      out.push({ text: title ?? '', level: 'title' });
      for (const l of rest) out.push({ text: l });
    }
    out.push({ text: '' });
  }
  out.push({ text: 'SQL preview', level: 'title' });
  if (!preview) out.push({ text: 'loading…', level: 'dim' });
  else if (preview.error) push(`cannot preview: ${preview.error}`, 'error');
  else if (!preview.statements?.length) out.push({ text: '(no statements)', level: 'dim' });
  else for (const s of preview.statements) push(s.trimEnd().endsWith(';') || s.startsWith('--') || s.startsWith('$ ') ? s : `${s};`, 'info');
  return out;
}

export function DetailPane({ step, preview, height, width, scroll }: {
  readonly step: StepView | undefined; readonly preview: Preview | undefined; readonly height: number; readonly width: number; readonly scroll: number;
}) {
  const running = step?.status === 'running';
  const barH = running ? (step?.progress?.total ? (step.progress.detail ? 3 : 2) : 1) : 0;
  const lines = detailLines(step, preview, width);
  const body = Math.max(0, height - barH);
  const start = Math.min(scroll, Math.max(0, lines.length - body));
  const shown = lines.slice(start, start + body);
  if (start + body < lines.length && shown.length > 0) shown[shown.length - 1] = { text: `… ${lines.length - start - body + 1} more lines (pgdn, or p for the full preview)`, level: 'dim' };
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      {running ? <ProgressBar progress={step!.progress} waitingFor={step!.lastLog} width={width} /> : null}
      <Lines lines={shown} height={body} width={width} />
    </Box>
  );
}
