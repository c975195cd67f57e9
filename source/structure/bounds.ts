import { literal } from '../db/quote.js';
import { fitName, defaultPartitionName, listPartitionName } from './names.js';

export type RangeInterval = '1 day' | '1 week' | '1 month' | '3 months' | '1 year';
export type KeyKind = 'timestamptz' | 'timestamp' | 'date' | 'integer' | 'numeric' | 'other';

export interface PartitionSpec {
  readonly name: string;
  /** SQL after PARTITION OF parent: `FOR VALUES FROM ('…') TO ('…')`, `FOR VALUES IN ('…')` or `DEFAULT` */
  readonly bound: string;
  /** rows the partition accepts, as SQL over the key column (for moving rows out of the DEFAULT partition) */
  readonly where?: (keySql: string) => string;
  readonly isDefault?: boolean;
  /** range: [from, to) as YYYY-MM-DD (integer keys: the bounds as decimal strings); list: the value */
  readonly from?: string;
  readonly to?: string;
  readonly value?: string;
}

/** Maps a PostgreSQL type (format_type) to how pgshift treats it as a partition key. */
export function keyKind(type: string): KeyKind {
  const t = type.toLowerCase();
  if (t === 'timestamp with time zone') return 'timestamptz';
  if (t.startsWith('timestamp')) return t.includes('with time zone') ? 'timestamptz' : 'timestamp';
  if (t === 'date') return 'date';
  if (t === 'integer' || t === 'bigint' || t === 'smallint') return 'integer';
  if (t === 'numeric' || t.startsWith('numeric(')) return 'numeric';
  return 'other';
}

const isCalendarKind = (k: KeyKind) => k === 'timestamptz' || k === 'timestamp' || k === 'date';
const isNumberKind = (k: KeyKind) => k === 'integer' || k === 'numeric';

/**
 * Whether a RANGE interval suits the key's type: calendar intervals for date/timestamp keys, a number for
 * integer/bigint/numeric keys. One answer for preflight, `pgshift plan` and phase 2. null when it fits.
 */
export function rangeMismatch(type: string, interval: string | number | undefined): { cause: string; hint: string } | null {
  const k = keyKind(type);
  if (interval === undefined) return { cause: 'a RANGE partitioning needs an interval', hint: isNumberKind(k) ? 'set "interval": 100000 (ids per partition)' : 'set "interval": "1 month"' };
  if (typeof interval === 'number') {
    if (isNumberKind(k)) return null;
    if (isCalendarKind(k)) return { cause: `the key is ${type}, the interval ${interval} is a number (for integer keys)`, hint: 'use a calendar interval such as "interval": "1 month"' };
  } else {
    if (isCalendarKind(k)) return null;
    if (isNumberKind(k)) return { cause: `the key is ${type}: a calendar interval ("${interval}") cannot split it`, hint: 'give the width of each partition as a number, e.g. "interval": 100000' };
  }
  return { cause: `the key is ${type}: RANGE partitioning needs a date, timestamp, timestamptz, integer, bigint or numeric key`, hint: 'choose another key column, or "strategy": "list"' };
}

export interface IntegerRangeInput {
  readonly base: string;
  readonly width: number;
  /** floor of the data's min and max key (decimal strings; null when the table is empty) */
  readonly min: string | null;
  readonly max: string | null;
  readonly premake: number;
  readonly defaultPartition: boolean;
  readonly limit?: number;
}

function floorTo(v: bigint, w: bigint): bigint {
  const q = v / w;
  return (v % w !== 0n && v < 0n ? q - 1n : q) * w;
}

/** Partition name suffix of an integer bound: p0, p100000, pm100000 (minus). */
export function integerSuffix(from: bigint): string {
  return from < 0n ? `pm${-from}` : `p${from}`;
}

/**
 * Integer range partitions of `width` ids from the data's real span: from floor(min) down to a multiple of width
 * through the partition holding max, plus `premake` more ahead of it, plus DEFAULT when asked.
 * An empty table gets [0, width) and the premade ones.
 */
export function integerRangePartitions(r: IntegerRangeInput): PartitionSpec[] {
  const w = BigInt(r.width);
  const lo = r.min === null ? 0n : BigInt(r.min);
  const hi = r.max === null ? lo : BigInt(r.max);
  const first = floorTo(lo, w);
  const end = floorTo(hi, w) + w * BigInt(1 + r.premake);
  const limit = BigInt(r.limit ?? 5000);
  if ((end - first) / w > limit) {
    throw new Error(`this would create ${(end - first) / w} partitions of ${r.width}: more than ${limit}; choose a wider interval`);
  }
  const out: PartitionSpec[] = [];
  for (let cur = first; cur < end; cur += w) {
    const next = cur + w;
    const a = literal(String(cur));
    const b = literal(String(next));
    out.push({
      name: fitName(`${r.base}_${integerSuffix(cur)}`),
      bound: `FOR VALUES FROM (${a}) TO (${b})`,
      where: (k) => `${k} >= ${a} AND ${k} < ${b}`,
      from: String(cur),
      to: String(next),
    });
  }
  if (r.defaultPartition) out.push({ name: defaultPartitionName(r.base), bound: 'DEFAULT', isDefault: true });
  return out;
}

/** A UTC calendar date. */
interface Ymd { y: number; m: number; d: number }

export function parseYmd(s: string): Ymd {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(s);
  if (!m) throw new Error(`expected a date YYYY-MM-DD, got ${JSON.stringify(s)}`);
  return { y: Number(m[1]), m: Number(m[2]), d: Number(m[3]) };
}

function toDate(x: Ymd): Date {
  return new Date(Date.UTC(x.y, x.m - 1, x.d));
}
function fromDate(dt: Date): Ymd {
  return { y: dt.getUTCFullYear(), m: dt.getUTCMonth() + 1, d: dt.getUTCDate() };
}
export function fmtYmd(x: Ymd): string {
  return `${String(x.y).padStart(4, '0')}-${String(x.m).padStart(2, '0')}-${String(x.d).padStart(2, '0')}`;
}

/** The start of the interval containing `x` (date_trunc semantics; weeks start on Monday, quarters in Jan/Apr/Jul/Oct). */
export function align(x: Ymd, interval: RangeInterval): Ymd {
  switch (interval) {
    case '1 day': return x;
    case '1 week': {
      const dt = toDate(x);
      const dow = (dt.getUTCDay() + 6) % 7; // Monday = 0
      return fromDate(new Date(dt.getTime() - dow * 86_400_000));
    }
    case '1 month': return { y: x.y, m: x.m, d: 1 };
    case '3 months': return { y: x.y, m: Math.floor((x.m - 1) / 3) * 3 + 1, d: 1 };
    case '1 year': return { y: x.y, m: 1, d: 1 };
  }
}

export function addInterval(x: Ymd, interval: RangeInterval, n = 1): Ymd {
  switch (interval) {
    case '1 day': return fromDate(new Date(toDate(x).getTime() + n * 86_400_000));
    case '1 week': return fromDate(new Date(toDate(x).getTime() + 7 * n * 86_400_000));
    case '1 month': case '3 months': {
      const months = (interval === '1 month' ? 1 : 3) * n;
      const total = x.y * 12 + (x.m - 1) + months;
      return { y: Math.floor(total / 12), m: (total % 12) + 1, d: x.d };
    }
    case '1 year': return { y: x.y + n, m: x.m, d: x.d };
  }
}

/** ISO 8601 week-numbering year and week of a date. */
export function isoWeek(x: Ymd): { year: number; week: number } {
  const dt = toDate(x);
  const dow = (dt.getUTCDay() + 6) % 7;
  const thursday = new Date(dt.getTime() + (3 - dow) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const jan1 = Date.UTC(year, 0, 1);
  const week = Math.floor((thursday.getTime() - jan1) / 86_400_000 / 7) + 1;
  return { year, week };
}

/** Suffix of a range partition: p2024_01 (month), p2024_01_15 (day), p2024w03 (ISO week), p2024q1 (quarter), p2024 (year). */
export function rangeSuffix(x: Ymd, interval: RangeInterval): string {
  const mm = String(x.m).padStart(2, '0');
  switch (interval) {
    case '1 day': return `p${x.y}_${mm}_${String(x.d).padStart(2, '0')}`;
    case '1 week': {
      const w = isoWeek(x);
      return `p${w.year}w${String(w.week).padStart(2, '0')}`;
    }
    case '1 month': return `p${x.y}_${mm}`;
    case '3 months': return `p${x.y}q${Math.floor((x.m - 1) / 3) + 1}`;
    case '1 year': return `p${x.y}`;
  }
}

/** The literal of a bound for the key's type; timestamptz bounds are written in UTC explicitly. */
export function boundLiteral(x: Ymd, kind: KeyKind): string {
  const d = fmtYmd(x);
  return kind === 'timestamptz' ? literal(`${d} 00:00:00+00`) : literal(d);
}

export interface RangeInput {
  readonly base: string;
  readonly interval: RangeInterval;
  readonly kind: KeyKind;
  /** the data's min and max key as UTC dates (null when the table is empty) */
  readonly min: string | null;
  readonly max: string | null;
  /** today (UTC) */
  readonly today: string;
  readonly start?: string;
  readonly premake: number;
  readonly defaultPartition: boolean;
  /** refuse plans that would create more partitions than this */
  readonly limit?: number;
}

/**
 * Range partitions from the data's real span: from the aligned start (plan.start, else the minimum key, else today)
 * through the interval holding max(max key, today), plus `premake` more, plus DEFAULT when asked.
 */
export function rangePartitions(r: RangeInput): PartitionSpec[] {
  if (r.kind !== 'timestamptz' && r.kind !== 'timestamp' && r.kind !== 'date') {
    throw new Error(`range partitions by "${r.interval}" need a date or timestamp key, this key is ${r.kind}`);
  }
  const first = align(parseYmd(r.start ?? r.min ?? r.today), r.interval);
  const lastData = [r.max, r.today].filter((x): x is string => !!x).sort().at(-1)!;
  const lastStart = align(parseYmd(lastData), r.interval);
  const end = addInterval(lastStart, r.interval, 1 + r.premake);
  const out: PartitionSpec[] = [];
  const limit = r.limit ?? 5000;
  for (let cur = first; fmtYmd(cur) < fmtYmd(end); ) {
    const next = addInterval(cur, r.interval);
    const lo = boundLiteral(cur, r.kind);
    const hi = boundLiteral(next, r.kind);
    out.push({
      name: fitName(`${r.base}_${rangeSuffix(cur, r.interval)}`),
      bound: `FOR VALUES FROM (${lo}) TO (${hi})`,
      where: (k) => `${k} >= ${lo} AND ${k} < ${hi}`,
      from: fmtYmd(cur),
      to: fmtYmd(next),
    });
    if (out.length > limit) throw new Error(`this would create more than ${limit} partitions of ${r.interval}: choose a wider interval or a later start`);
    cur = next;
  }
  if (r.defaultPartition) out.push({ name: defaultPartitionName(r.base), bound: 'DEFAULT', isDefault: true });
  return out;
}

/** One LIST partition per distinct non-null value, plus DEFAULT when asked. */
export function listPartitions(base: string, values: readonly (string | null)[], defaultPartition: boolean): PartitionSpec[] {
  const seen = new Set<string>();
  const out: PartitionSpec[] = [];
  for (const v of values) {
    if (v === null || seen.has(v)) continue;
    seen.add(v);
    const lit = literal(v);
    out.push({ name: listPartitionName(base, v), bound: `FOR VALUES IN (${lit})`, where: (k) => `${k} = ${lit}`, value: v });
  }
  const names = new Set<string>();
  for (const p of out) {
    if (names.has(p.name)) throw new Error(`two list values map to the partition name ${p.name}`);
    names.add(p.name);
  }
  if (defaultPartition) out.push({ name: defaultPartitionName(base), bound: 'DEFAULT', isDefault: true });
  return out;
}
