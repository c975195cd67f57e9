import type { ReportTable } from '../engine/types.js';
import { fmtCount, fmtDuration } from '../format.js';

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
  readonly state?: 'running' | 'throttled' | 'waiting-lock' | 'paused';
  readonly reason?: string;
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

const isNumericCell = (v: unknown) => typeof v === 'number' || (typeof v === 'string' && /^[-+]?[\d,.]+( ?[a-zA-Z%/]{1,6})?$/.test(v.trim()));

/** Columns whose cut costs the operator least (first cut); key figures (numbers, bounds, results) are never cut. */
const LEAST_IMPORTANT = ['parent', 'definition', 'query', 'application', 'owner', 'grants', 'user', 'direction', 'new table', 'under the swap lock', 'references', 'kind'];
const NEVER_CUT = ['bounds', 'partition', 'result', 'status', 'verdict', 'missing', 'extra', 'changed', 'rows', 'old rows', 'new rows', 'pid'];

/**
 * A report table as plain lines that fit the width. Numbers and key columns are never cut: the least important
 * text column is cut first (parent, definition, query…, then the rightmost others); when the table still does not
 * fit, each row is shown as a record ("column: value" lines, wrapped at word boundaries), so nothing is lost.
 */
export function tableLines(t: ReportTable, width: number): string[] {
  const cellText = (v: string | number | boolean | null | undefined) => (v === null || v === undefined ? '' : typeof v === 'number' ? v.toLocaleString('en-US') : String(v)).replace(/[\r\n\t]+/g, ' ');
  const rows = t.rows.map((r) => t.columns.map((_, i) => cellText(r[i])));
  const natural = t.columns.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  let gap = 2;
  const total = (w: number[]) => w.reduce((a, b) => a + b, 0) + gap * Math.max(0, w.length - 1);
  const widths = [...natural];
  if (total(widths) > width) {
    const numeric = t.columns.map((_, i) => rows.length > 0 && t.rows.every((r) => r[i] === null || r[i] === undefined || r[i] === '' || isNumericCell(r[i])));
    const cuttable = t.columns.map((c, i) => !numeric[i] && !NEVER_CUT.includes(c.toLowerCase()));
    const order = t.columns.map((c, i) => i).filter((i) => cuttable[i]).sort((a, b) => {
      const ra = LEAST_IMPORTANT.indexOf(t.columns[a]!.toLowerCase());
      const rb = LEAST_IMPORTANT.indexOf(t.columns[b]!.toLowerCase());
      if ((ra >= 0) !== (rb >= 0)) return ra >= 0 ? -1 : 1;
      if (ra >= 0 && rb >= 0) return ra - rb;
      return b - a; // rightmost first
    });
    for (const i of order) {
      if (total(widths) <= width) break;
      const min = Math.max(6, Math.min(t.columns[i]!.length, 10));
      widths[i] = Math.max(min, widths[i]! - (total(widths) - width));
    }
  }
  if (total(widths) > width && total(widths) - Math.max(0, widths.length - 1) <= width) gap = 1; // one space between columns
  // width left over: back to the cut columns, the most important first (a table name cut to "publi…" tells nothing)
  for (let i = 0; i < widths.length; i++) {
    const spare = width - total(widths);
    if (spare <= 0) break;
    if (widths[i]! < natural[i]!) widths[i] = Math.min(natural[i]!, widths[i]! + spare);
  }
  let wrapCol = -1;
  if (total(widths) > width) {
    // one text column (the widest key column, e.g. partition bounds) wraps inside its cell, at word boundaries
    const text = t.columns.map((_, i) => i).filter((i) => !rows.every((r) => isNumericCell(r[i]) || r[i] === ''));
    const widest = text.sort((a, b) => widths[b]! - widths[a]!)[0];
    if (widest !== undefined) {
      const room = width - (total(widths) - widths[widest]!);
      if (room >= 16) {
        wrapCol = widest;
        widths[widest] = room;
      }
    }
  }
  if (total(widths) > width) {
    // records: nothing cut
    const out = wrap(t.title, width);
    const keyW = Math.min(Math.max(...t.columns.map((c) => c.length)), Math.floor(width / 3));
    rows.forEach((r) => {
      r.forEach((v, i) => {
        const label = `${i === 0 ? '• ' : '  '}${clip(t.columns[i]!, keyW).padEnd(keyW)}  `;
        const body = wrap(v || '—', Math.max(10, width - label.length));
        body.forEach((b, k) => out.push((k === 0 ? label : ' '.repeat(label.length)) + b));
      });
    });
    return out;
  }
  const cut = (s: string, w: number) => (s.length > w ? s.slice(0, Math.max(0, w - 1)) + '…' : s);
  const line = (cols: string[]) => cols.map((c, i) => cut(c, widths[i]!).padEnd(widths[i]!)).join(' '.repeat(gap)).trimEnd();
  const rowLines = (r: string[]): string[] => {
    if (wrapCol < 0) return [line(r)];
    const parts = wrap(r[wrapCol]!, widths[wrapCol]!);
    return parts.map((p, k) => line(r.map((c, i) => (i === wrapCol ? p : k === 0 ? c : ''))));
  };
  return [...wrap(t.title, width), line([...t.columns]), line(widths.map((w) => '─'.repeat(w))), ...rows.flatMap(rowLines)];
}

export function elapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${h > 0 ? `${h}:` : ''}${pad(m)}:${pad(s % 60)}`;
}

/** Wraps text into lines of at most width characters, at word boundaries (after a space, else after , ; ( ) . = or /); a single word longer than the line is cut hard. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  const w = Math.max(1, width);
  for (const raw of text.split('\n')) {
    let line = raw.replace(/\t/g, '  ').replace(/\r/g, '');
    if (line.length === 0) {
      out.push('');
      continue;
    }
    while (line.length > w) {
      let cut = breakAt(line, w);
      if (cut <= 0) {
        const head = line.slice(0, w);
        const m = Math.max(head.lastIndexOf(','), head.lastIndexOf(';'), head.lastIndexOf('('), head.lastIndexOf(')'), head.lastIndexOf('.'), head.lastIndexOf('='), head.lastIndexOf('/'));
        cut = m >= w / 3 ? m + 1 : w;
      }
      out.push(line.slice(0, cut).trimEnd());
      line = line.slice(cut).replace(/^ +/, '');
    }
    out.push(line);
  }
  return out;
}

/** The last space at or before `w` that is not inside a '…' literal (a timestamp stays on one line); else any last space. */
function breakAt(line: string, w: number): number {
  let quoted = false;
  let best = -1;
  for (let i = 0; i <= Math.min(w, line.length - 1); i++) {
    const c = line[i];
    // a quote, not an apostrophe (backend's): opens after a non-word character, closes before one
    if (c === "'" && !(/\w/.test(line[i - 1] ?? '') && /\w/.test(line[i + 1] ?? ''))) quoted = !quoted;
    else if (c === ' ' && !quoted && i > 0) best = i;
  }
  return best > 0 ? best : line.lastIndexOf(' ', w);
}

/** Joins parts with " · " into as few lines as fit the width; a part is never cut unless it alone is wider. */
export function joinFit(parts: readonly string[], width: number, sep = ' · '): string[] {
  const out: string[] = [];
  let cur = '';
  for (const p of parts.filter(Boolean)) {
    if (!cur) cur = p;
    else if (cur.length + sep.length + p.length <= width) cur += sep + p;
    else {
      out.push(cur);
      cur = p;
    }
  }
  if (cur) out.push(cur);
  return out.flatMap((l) => (l.length > width ? wrap(l, width) : [l]));
}

export interface RateSample {
  readonly t: number;
  readonly done: number;
}

/** The samples a moving window keeps (the last 60 s, at most 120). */
export function addSample(samples: readonly RateSample[] | undefined, s: RateSample): RateSample[] {
  const kept = (samples ?? []).filter((x) => x.t > s.t - 60_000 && x.done <= s.done);
  return [...kept, s].slice(-120);
}

/**
 * Rate and ETA over a moving window ending now: when nothing has moved for a while the rate falls towards zero
 * (the window's end is the clock, not the last sample) and the ETA is unknown ("stalled").
 */
export function windowRate(samples: readonly RateSample[] | undefined, now: number, total: number | undefined, windowMs = 10_000): { ratePerSec?: number; etaSec?: number; stalledMs?: number } {
  if (!samples?.length) return {};
  const last = samples[samples.length - 1]!;
  const from = now - windowMs;
  let base = samples.find((x) => x.t >= from) ?? last;
  if (base === last) {
    // the only sample in the window is the last: measure from the one before it, up to now
    const prev = samples.length > 1 ? samples[samples.length - 2]! : null;
    if (!prev) return {};
    base = prev;
  }
  const spanMs = Math.max(1, now - base.t);
  const rate = Math.max(0, ((last.done - base.done) * 1000) / spanMs);
  const stalledMs = now - last.t;
  const remaining = total !== undefined ? Math.max(0, total - last.done) : undefined;
  const etaSec = remaining !== undefined && rate > 0 && stalledMs < windowMs ? remaining / rate : undefined;
  return { ratePerSec: rate, etaSec, stalledMs };
}

/** The copy's state as the progress line's first words. */
export function stateWord(p: { state?: string; reason?: string }): { text: string; level: 'ok' | 'warn' | 'error' } | null {
  const why = p.reason ? ` (${p.reason})` : '';
  switch (p.state) {
    case 'running': return { text: 'running', level: 'ok' };
    case 'throttled': return { text: `THROTTLED${why}`, level: 'warn' };
    case 'waiting-lock': return { text: `WAITING FOR LOCK${why}`, level: 'error' };
    case 'paused': return { text: `PAUSED${why}`, level: 'warn' };
    default: return null;
  }
}

/** The progress figures as parts: "N / M rows (p%)", "R rows/s", "ETA …" (each kept whole when lines wrap). */
export function progressParts(p: ProgressView): string[] {
  const unit = p.unit ?? 'rows';
  const pct = p.total ? ` (${Math.min(100, (100 * p.done) / p.total).toFixed(1)}%)` : '';
  const finished = p.total !== undefined && p.done >= p.total;
  const parts = [`${fmtCount(p.done)}${p.total !== undefined ? ` / ${fmtCount(p.total)}` : ''} ${unit}${pct}`];
  if (p.ratePerSec !== undefined && (p.ratePerSec > 0 || p.total !== undefined)) parts.push(`${fmtCount(p.ratePerSec)} ${unit}/s`);
  if (!finished && p.total !== undefined && p.ratePerSec !== undefined) parts.push(p.etaSec !== undefined ? `ETA ${fmtDuration(p.etaSec * 1000)}` : 'ETA —');
  return parts;
}
