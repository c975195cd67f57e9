import { Box } from 'ink';
import type { StepView } from '../state/use-wizard-state.js';
import { clip, tableLines, windowRate, wrap, type ProgressView } from '../format-ui.js';
import { fmtDuration } from '../../format.js';
import { Lines, type Line } from './lines.js';
import { ProgressBar, progressHeight } from './progress-bar.js';

export interface Preview {
  readonly statements?: readonly string[];
  readonly error?: string;
}

/** One word per state, the same everywhere (declined steps: "declined: nothing ran"). */
export function statusWord(step: StepView): string {
  switch (step.status) {
    case 'already-done': return 'already done';
    case 'declined': return 'declined: nothing ran';
    case 'skipped': return step.operatorSkipped ? 'skipped by the operator' : 'skipped';
    case 'stopped': return 'stopped (resumes from its checkpoint)';
    case 'pending': return step.checkpoint ? `pending · ${step.checkpoint}` : 'pending';
    default: return step.status;
  }
}

/** Everything the detail pane shows for a step, as lines (also the full-screen preview's body). */
export function detailLines(step: StepView | undefined, preview: Preview | undefined, width: number, opts: { previewOnly?: boolean } = {}): Line[] {
  if (!step) return [{ text: 'no step selected', level: 'dim' }];
  const out: Line[] = [];
  const push = (text: string, level?: Line['level']) => {
    for (const l of wrap(text, Math.max(10, width))) out.push({ text: l, level });
  };
  if (!opts.previewOnly) {
    for (const l of wrap(`${step.id} · ${statusWord(step)}${step.durationMs !== undefined ? ` · ${fmtDuration(step.durationMs)}` : ''}`, Math.max(10, width))) out.push({ text: l, level: 'title' });
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

/** The step's progress with rate and ETA over a moving window ending now (falls to 0 when nothing moves). */
export function liveProgress(step: StepView | undefined, now: number): ProgressView | undefined {
  const p = step?.progress;
  if (!p) return undefined;
  // the window needs a few seconds of samples; until then the engine's own figures
  if (!step.samples || step.samples.length < 2 || step.samples[step.samples.length - 1]!.t - step.samples[0]!.t < 2000) return p;
  const w = windowRate(step.samples, now, p.total);
  return w.ratePerSec === undefined ? p : { ...p, ratePerSec: w.ratePerSec, etaSec: w.etaSec };
}

export function DetailPane({ step, preview, height, width, scroll, now, focused }: {
  readonly step: StepView | undefined; readonly preview: Preview | undefined; readonly height: number; readonly width: number; readonly scroll: number;
  readonly now?: number; readonly focused?: boolean;
}) {
  const running = step?.status === 'running';
  const progress = running ? liveProgress(step, now ?? Date.now()) : undefined;
  const barH = running ? Math.min(Math.max(0, height - 2), progressHeight(progress, step?.lastLog, width)) : 0;
  const lines = detailLines(step, preview, width);
  if (focused && lines[0]) lines[0] = { ...lines[0], text: clip(`▸ ${lines[0].text}`, width) };
  const body = Math.max(0, height - barH);
  const start = Math.min(scroll, Math.max(0, lines.length - body));
  const shown = lines.slice(start, start + body);
  if (start + body < lines.length && shown.length > 0) shown[shown.length - 1] = { text: clip(`… ${lines.length - start - body + 1} more lines (pgdn, or p for the full preview)`, width), level: 'dim' };
  return (
    <Box flexDirection="column" width={width} height={height} overflow="hidden">
      {running ? <Box height={barH} width={width} overflow="hidden"><ProgressBar progress={progress} waitingFor={step.lastLog} width={width} /></Box> : null}
      <Lines lines={shown} height={body} width={width} />
    </Box>
  );
}
