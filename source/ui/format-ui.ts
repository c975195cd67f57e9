import type { ReportTable } from '../engine/types.js';
import { fmtCount, fmtDuration, renderTable } from '../format.js';

/** Cuts a line to width (in characters), with an ellipsis. */
export function clip(s: string, width: number): string {
  if (width <= 0) return '';
  const one = s.replace(/[\r\n\t]+/g, ' ');
  return one.length > width ? one.slice(0, Math.max(0, width - 1)) + '…' : one;
}

/** A text progress bar: [██████░░░░] */
export function bar(fraction: number, width: number): string {
  const w = Math.max(4, width);
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * w);
  return '█'.repeat(full) + '░'.repeat(w - full);
}

export interface ProgressView {
  readonly done: number;
  readonly total?: number;
  readonly unit?: string;
  readonly detail?: string;
  readonly ratePerSec?: number;
  readonly etaSec?: number;
}

/** "12,000 / 20,000 rows (60.0%) · 8,100 rows/s · ETA 1.0 s" */
export function progressText(p: ProgressView): string {
  const unit = p.unit ?? 'rows';
  const pct = p.total ? ` (${Math.min(100, (100 * p.done) / p.total).toFixed(1)}%)` : '';
  const rate = p.ratePerSec ? ` · ${fmtCount(p.ratePerSec)} ${unit}/s` : '';
  const finished = p.total !== undefined && p.done >= p.total;
  const eta = p.etaSec !== undefined && !finished ? ` · ETA ${fmtDuration(p.etaSec * 1000)}` : '';
  return `${fmtCount(p.done)}${p.total !== undefined ? ` / ${fmtCount(p.total)}` : ''} ${unit}${pct}${rate}${eta}`;
}

/** A report table as plain lines, every cell cut so the table fits the width. */
export function tableLines(t: ReportTable, width: number): string[] {
  // the widest cells that still fit; long cells are cut with an ellipsis, the rest keep their alignment
  let lines = renderTable(t, 60);
  for (let cell = 59; cell >= 8 && lines.some((l) => l.length > width); cell--) lines = renderTable(t, cell);
  return lines.map((l) => clip(l, width));
}

export function elapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${h > 0 ? `${h}:` : ''}${pad(m)}:${pad(s % 60)}`;
}

/** Wraps text into lines of at most width characters (hard wrap, keeps words where it can). */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.replace(/\t/g, '  ');
    if (line.length === 0) {
      out.push('');
      continue;
    }
    while (line.length > width) {
      let cut = line.lastIndexOf(' ', width);
      if (cut < width / 2) cut = width;
      out.push(line.slice(0, cut));
      line = line.slice(cut).replace(/^ /, '');
    }
    out.push(line);
  }
  return out;
}
