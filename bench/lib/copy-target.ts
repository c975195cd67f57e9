import type pg from 'pg';
import { qname } from '../../source/db/quote.js';

/**
 * A partitioned copy of public.petri_observations as phase 2 makes it (monthly RANGE on created_at, 2024-01 ..
 * 2025-12, plus DEFAULT; primary key (observation_id, created_at)), for the benchmark's own targets.
 */
export async function createPetriTarget(c: pg.ClientBase, name: string): Promise<void> {
  const t = qname('public', name);
  await c.query(`CREATE TABLE ${t} (LIKE public.petri_observations INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (observation_id, created_at)) PARTITION BY RANGE (created_at)`);
  for (let m = 0; m < 24; m++) {
    const y = 2024 + Math.floor(m / 12);
    const mm = (m % 12) + 1;
    const ny = mm === 12 ? y + 1 : y;
    const nm = mm === 12 ? 1 : mm + 1;
    const p = (x: number) => String(x).padStart(2, '0');
    await c.query(`CREATE TABLE ${qname('public', `${name}_p${y}_${p(mm)}`)} PARTITION OF ${t}
      FOR VALUES FROM ('${y}-${p(mm)}-01 00:00+00') TO ('${ny}-${p(nm)}-01 00:00+00')`);
  }
  await c.query(`CREATE TABLE ${qname('public', `${name}_default`)} PARTITION OF ${t} DEFAULT`);
}

export const PETRI_COLUMNS = [
  'observation_id', 'observation_seq', 'program_id', 'site_id', 'petri_code', 'growth_index', 'fungicide_used', 'outdoor_temperature',
  'outdoor_humidity', 'placement', 'notes', 'image_url', 'created_at', 'updated_at',
];

export async function contentHash(c: pg.ClientBase, table: string): Promise<{ n: number; h: string }> {
  const r = await c.query<{ n: string; h: string }>(
    `SELECT count(*) AS n, md5(string_agg(md5(ROW(${PETRI_COLUMNS.join(', ')})::text), '' ORDER BY observation_id)) AS h FROM ${table}`,
  );
  return { n: Number(r.rows[0]!.n), h: r.rows[0]!.h };
}

export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
