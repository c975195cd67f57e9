import type { Db } from '../db/session.js';
import type { TablePlan } from '../plan/schema.js';
import type { LogLevel, ReportTable } from '../engine/types.js';
import { ident, displayName } from '../db/quote.js';
import { columnMap, listOf, primaryKeyOf, relByOid, resolvePair, type Pair } from './meta.js';
import { catchUp, findCapture, type Capture } from './online.js';

/**
 * The integrity report: per table, exact counts in old and new, rows missing from the new table, extra rows in it,
 * rows whose content differs, foreign-key orphans, and rows per partition.
 *
 * Content, not only ids (comparing ids misses changed values): every row is hashed, md5 of ROW(columns…)::text
 * with the copied columns in the source's order, named explicitly so the new table's column order does not matter.
 * The rows are split into chunks and each chunk summed on both sides (count + two 32-bit sums of the hash):
 * one sequential pass over each table. Only chunks whose sums differ are drilled into (a full join on the primary
 * key inside those chunks) to count missing/extra/changed rows exactly and list up to 20 sample keys.
 *
 * Chunks are buckets of a hash of the primary key rather than ranges of the partition key: a key range is an
 * index range on the old table but, on the new one, a row comparison no partition bound can prune, so 64 ranges
 * would mean 64 scans of every partition; a pk bucket costs one pass per table whatever the indexes, and a row
 * whose partition key changed stays in the same bucket on both sides (reported as changed, not missing + extra).
 *
 * Online mode: the change log is drained first; a difference whose pk still has a pending change in the log is
 * capture lag, not an error; differences are re-checked after a second drain before they count.
 */

export interface Orphans {
  readonly constraint: string;
  /** outbound: rows of the new table whose referenced row is missing; inbound: referencing rows whose row is missing in the new table */
  readonly direction: 'outbound' | 'inbound';
  readonly table: string;
  readonly count: number;
}

export interface Sample { readonly kind: 'missing' | 'extra' | 'mismatched'; readonly pk: string }

export interface TableIntegrity {
  readonly table: string;
  readonly target: string;
  readonly oldRows: number;
  readonly newRows: number;
  readonly missing: number;
  readonly extra: number;
  readonly mismatched: number;
  readonly orphans: Orphans[];
  readonly samples: Sample[];
  readonly partitions: { name: string; rows: number }[];
  readonly chunks: number;
  readonly chunksDiffering: number;
  readonly pass: boolean;
  readonly note?: string;
}

export interface IntegrityReport {
  readonly at: string;
  readonly pass: boolean;
  readonly tables: TableIntegrity[];
}

interface Agg { n: number; s1: bigint; s2: bigint }

function hashExprs(cols: readonly string[], pk: readonly string[], chunks: number, alias = 'x') {
  const row = `md5(ROW(${cols.map((c) => `${alias}.${ident(c)}`).join(', ')})::text)`;
  const pkText = `ROW(${pk.map((c) => `${alias}.${ident(c)}`).join(', ')})::text`;
  return {
    row,
    pkText,
    bucket: `((hashtext(${pkText}) & 2147483647) % ${chunks})`,
  };
}

async function chunkSums(db: Db, q: string, cols: string[], pk: string[], chunks: number, partitions: boolean): Promise<{ buckets: Map<number, Agg>; parts: Map<number, number> }> {
  const h = hashExprs(cols, pk, chunks);
  const sql = `SELECT b, p, count(*)::bigint AS n,
                      sum(('x' || substr(h, 1, 8))::bit(32)::int::bigint)::text AS s1,
                      sum(('x' || substr(h, 9, 8))::bit(32)::int::bigint)::text AS s2
                 FROM (SELECT ${h.bucket} AS b, ${partitions ? 'x.tableoid::int' : 'NULL::int'} AS p, ${h.row} AS h FROM ${q} x) r
                ${partitions ? 'GROUP BY GROUPING SETS ((b), (p))' : 'GROUP BY b, p'}`;
  const rows = await db.read<{ b: number | null; p: number | null; n: string; s1: string | null; s2: string | null }>(sql);
  const buckets = new Map<number, Agg>();
  const parts = new Map<number, number>();
  for (const r of rows) {
    if (r.b !== null) buckets.set(r.b, { n: Number(r.n), s1: BigInt(r.s1 ?? '0'), s2: BigInt(r.s2 ?? '0') });
    else if (r.p !== null) parts.set(r.p, Number(r.n));
  }
  return { buckets, parts };
}

/** Full join on the pk inside the given buckets: exact counts of missing/extra/changed, and samples. */
async function drill(db: Db, pair: Pair, cols: string[], pk: string[], chunks: number, buckets: number[], cap: Capture | null): Promise<{ missing: number; extra: number; mismatched: number; samples: Sample[]; pks: string[] }> {
  if (!buckets.length) return { missing: 0, extra: 0, mismatched: 0, samples: [], pks: [] };
  const h = hashExprs(cols, pk, chunks);
  const on = pk.map((c) => `o.${ident(c)} = n.${ident(c)}`).join(' AND ');
  const pendingOld = cap ? `AND NOT EXISTS (SELECT 1 FROM ${cap.logQ} l WHERE ${pk.map((c) => `l.${ident(c)} = o.${ident(c)}`).join(' AND ')})` : '';
  const pendingNew = cap ? `AND NOT EXISTS (SELECT 1 FROM ${cap.logQ} l WHERE ${pk.map((c) => `l.${ident(c)} = n.${ident(c)}`).join(' AND ')})` : '';
  // new side: a pk present twice in the new table (its row kept in two partitions) counts once as the row, the rest as extra
  const sql = `
WITH o AS (SELECT ${listOf(pk, 'x.')}, ${h.row} AS h, ${h.pkText} AS k FROM ${pair.source.q} x WHERE ${h.bucket} = ANY($1::int[])),
     n AS (SELECT ${listOf(pk, 'x.')}, ${h.row} AS h, ${h.pkText} AS k,
                  row_number() OVER (PARTITION BY ${listOf(pk, 'x.')}) AS rn
             FROM ${pair.target.q} x WHERE ${h.bucket} = ANY($1::int[])),
     d AS (
       SELECT CASE WHEN n.k IS NULL THEN 'missing' WHEN o.k IS NULL THEN 'extra' ELSE 'mismatched' END AS kind, COALESCE(o.k, n.k) AS k
         FROM o FULL JOIN (SELECT * FROM n WHERE rn = 1) n ON ${on}
        WHERE o.h IS DISTINCT FROM n.h ${pendingOld} ${pendingNew}
       UNION ALL
       SELECT 'extra', n.k FROM n WHERE n.rn > 1 ${pendingNew}
     )
SELECT kind, count(*)::bigint AS n, (array_agg(k ORDER BY k))[1:20] AS samples,
       (array_agg(k ORDER BY k))[1:10000] AS pks
  FROM d GROUP BY kind`;
  const rows = await db.read<{ kind: Sample['kind']; n: string; samples: string[]; pks: string[] }>(sql, [buckets]);
  const get = (k: string) => rows.find((r) => r.kind === k);
  const samples: Sample[] = [];
  for (const kind of ['missing', 'extra', 'mismatched'] as const) for (const pk of get(kind)?.samples ?? []) samples.push({ kind, pk });
  return {
    missing: Number(get('missing')?.n ?? 0), extra: Number(get('extra')?.n ?? 0), mismatched: Number(get('mismatched')?.n ?? 0),
    samples: samples.slice(0, 20), pks: rows.flatMap((r) => r.pks),
  };
}

interface FkRow { conname: string; conrelid: number; confrelid: number; cols: string[]; refcols: string[] }

async function fksTouching(db: Db, oids: number[]): Promise<{ outbound: FkRow[]; inbound: FkRow[] }> {
  const rows = await db.read<FkRow & { dir: string }>(
    `SELECT c.conname, c.conrelid::int AS conrelid, c.confrelid::int AS confrelid,
            ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS cols,
            ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS refcols,
            CASE WHEN c.conrelid = ANY($1::oid[]) THEN 'out' ELSE 'in' END AS dir
       FROM pg_constraint c
      WHERE c.contype = 'f' AND c.conparentid = 0 AND (c.conrelid = ANY($1::oid[]) OR c.confrelid = ANY($1::oid[]))
      ORDER BY c.conname`,
    [oids],
  );
  return { outbound: rows.filter((r) => r.dir === 'out'), inbound: rows.filter((r) => r.dir === 'in' && !oids.includes(r.conrelid)) };
}

/**
 * FK orphans. Outbound: each FK of the old table (or already on the new one), checked on the new table's rows.
 * Inbound: each FK pointing at the old (or new) table, checked against the new table — with the referencing
 * table's partition-key column from the plan (inboundKeyColumns) when given, since that is what the new FK will be.
 */
async function orphans(db: Db, t: TablePlan, pair: Pair): Promise<Orphans[]> {
  const fks = await fksTouching(db, [pair.source.oid, pair.target.oid]);
  const out: Orphans[] = [];
  const seen = new Set<string>();
  for (const fk of fks.outbound) {
    const sig = `out:${fk.confrelid}:${fk.cols.join(',')}`;
    if (seen.has(sig)) continue;
    seen.add(sig);
    const ref = await relByOid(db, fk.confrelid);
    if (!ref) continue;
    const notNull = fk.cols.map((c) => `n.${ident(c)} IS NOT NULL`).join(' AND ');
    const match = fk.cols.map((c, i) => `r.${ident(fk.refcols[i]!)} = n.${ident(c)}`).join(' AND ');
    const [r] = await db.read<{ n: string }>(`SELECT count(*) AS n FROM ${pair.target.q} n WHERE ${notNull} AND NOT EXISTS (SELECT 1 FROM ${ref.q} r WHERE ${match})`);
    out.push({ constraint: fk.conname, direction: 'outbound', table: ref.display, count: Number(r!.n) });
  }
  for (const fk of fks.inbound) {
    const child = await relByOid(db, fk.conrelid);
    if (!child) continue;
    const sig = `in:${fk.conrelid}:${fk.cols.join(',')}`;
    if (seen.has(sig)) continue;
    seen.add(sig);
    const keyCol = t.inboundKeyColumns[`${child.schema}.${child.name}`] ?? t.inboundKeyColumns[child.name];
    const cols = [...fk.cols];
    const refcols = [...fk.refcols];
    if (keyCol && !refcols.includes(t.key)) {
      cols.push(keyCol);
      refcols.push(t.key);
    }
    const notNull = cols.map((c) => `c.${ident(c)} IS NOT NULL`).join(' AND ');
    const match = cols.map((c, i) => `n.${ident(refcols[i]!)} = c.${ident(c)}`).join(' AND ');
    const [r] = await db.read<{ n: string }>(`SELECT count(*) AS n FROM ${child.q} c WHERE ${notNull} AND NOT EXISTS (SELECT 1 FROM ${pair.target.q} n WHERE ${match})`);
    out.push({ constraint: fk.conname + (keyCol ? ` (+ ${keyCol} → ${t.key})` : ''), direction: 'inbound', table: child.display, count: Number(r!.n) });
  }
  return out;
}

async function leafPartitions(db: Db, oid: number): Promise<{ oid: number; name: string }[]> {
  return db.read<{ oid: number; name: string }>(
    `SELECT p.relid::int AS oid, c.relname AS name FROM pg_partition_tree($1::regclass) p JOIN pg_class c ON c.oid = p.relid
      WHERE p.isleaf ORDER BY c.relname`,
    [oid],
  );
}

export interface IntegrityOptions {
  readonly log: (message: string, level?: LogLevel) => void;
  readonly signal: AbortSignal;
  readonly stepId: string | null;
  readonly onProgress?: (doneTables: number, detail: string) => void;
}

export async function checkTable(db: Db, t: TablePlan, opts: IntegrityOptions): Promise<TableIntegrity> {
  const pairOr = await resolvePair(db, t);
  const name = displayName(t.schema, t.table);
  if ('missing' in pairOr) {
    return {
      table: name, target: displayName(t.schema, t.targetName), oldRows: 0, newRows: 0, missing: 0, extra: 0, mismatched: 0,
      orphans: [], samples: [], partitions: [], chunks: 0, chunksDiffering: 0, pass: false, note: pairOr.missing,
    };
  }
  const pair = pairOr;
  const map = await columnMap(db, pair);
  const pk = await primaryKeyOf(db, pair.source.oid);
  const cap = await findCapture(db, t);
  const drain = async (label: string) => {
    if (!cap) return;
    const r = await catchUp(db, cap, { batch: 20_000, threshold: 0, signal: opts.signal, stepId: opts.stepId, maxRounds: 50 });
    opts.log(`${pair.source.display}: ${label} drain applied ${r.applied.toLocaleString('en-US')} captured changes; ${r.lag.toLocaleString('en-US')} still pending (capture lag is not an error)`);
  };
  await drain('first');
  const [est] = await db.read<{ n: number }>(`SELECT GREATEST(reltuples, 0)::float8 AS n FROM pg_class WHERE oid = $1`, [pair.source.oid]);
  const chunks = Math.max(16, Math.min(1024, Math.ceil((est?.n ?? 0) / 20_000)));
  const oldS = await chunkSums(db, pair.source.q, map.columns, pk, chunks, false);
  const newS = await chunkSums(db, pair.target.q, map.columns, pk, chunks, true);
  const differing: number[] = [];
  for (let b = 0; b < chunks; b++) {
    const o = oldS.buckets.get(b) ?? { n: 0, s1: 0n, s2: 0n };
    const n = newS.buckets.get(b) ?? { n: 0, s1: 0n, s2: 0n };
    if (o.n !== n.n || o.s1 !== n.s1 || o.s2 !== n.s2) differing.push(b);
  }
  const oldRows = [...oldS.buckets.values()].reduce((a, x) => a + x.n, 0);
  const newRows = [...newS.buckets.values()].reduce((a, x) => a + x.n, 0);
  let d = await drill(db, pair, map.columns, pk, chunks, differing, cap);
  if (cap && (d.missing || d.extra || d.mismatched)) {
    opts.log(`${pair.source.display}: ${d.missing + d.extra + d.mismatched} differing rows while writes continue: draining again and re-checking them`);
    await drain('second');
    d = await drill(db, pair, map.columns, pk, chunks, differing, cap);
  }
  const parts = await leafPartitions(db, pair.target.oid);
  const partitions = parts.map((p) => ({ name: p.name, rows: newS.parts.get(p.oid) ?? 0 }));
  const orph = await orphans(db, t, pair);
  const orphanCount = orph.reduce((a, o) => a + o.count, 0);
  const countsAgree = cap ? true : oldRows === newRows; // online: counts may differ by the pending lag; the pk-level check decides
  const pass = countsAgree && d.missing === 0 && d.extra === 0 && d.mismatched === 0 && orphanCount === 0;
  return {
    table: pair.source.display, target: pair.target.display, oldRows, newRows, missing: d.missing, extra: d.extra, mismatched: d.mismatched,
    orphans: orph, samples: d.samples, partitions, chunks, chunksDiffering: differing.length, pass,
    note: cap && oldRows !== newRows ? `online copy: counts differ by changes still in the capture log (${Math.abs(oldRows - newRows)}); phase 5 drains them under lock` : undefined,
  };
}

export async function integrityReport(db: Db, tables: readonly TablePlan[], opts: IntegrityOptions): Promise<IntegrityReport> {
  const out: TableIntegrity[] = [];
  for (const t of tables) {
    opts.onProgress?.(out.length, `${displayName(t.schema, t.table)}: hashing rows chunk by chunk`);
    out.push(await checkTable(db, t, opts));
  }
  return { at: new Date().toISOString(), pass: out.every((x) => x.pass), tables: out };
}

export function reportTables(r: IntegrityReport): ReportTable[] {
  const tables: ReportTable[] = [{
    title: `Integrity report (${r.pass ? 'PASS' : 'FAIL'}) — exact counts; content compared by row hash`,
    columns: ['table', 'new table', 'old rows', 'new rows', 'missing', 'extra', 'changed', 'FK orphans', 'result'],
    rows: r.tables.map((t) => [t.table, t.target, t.oldRows, t.newRows, t.missing, t.extra, t.mismatched, t.orphans.reduce((a, o) => a + o.count, 0), t.pass ? 'pass' : 'FAIL']),
  }];
  for (const t of r.tables) {
    if (t.partitions.length) {
      tables.push({ title: `${t.target}: rows per partition`, columns: ['partition', 'rows'], rows: t.partitions.map((p) => [p.name, p.rows]) });
    }
    if (t.samples.length) {
      tables.push({ title: `${t.table}: differing rows (up to 20 samples, by primary key)`, columns: ['kind', 'primary key'], rows: t.samples.map((s) => [s.kind, s.pk]) });
    }
    const bad = t.orphans.filter((o) => o.count > 0);
    if (bad.length) {
      tables.push({ title: `${t.table}: foreign-key orphans`, columns: ['constraint', 'direction', 'table', 'rows'], rows: bad.map((o) => [o.constraint, o.direction, o.table, o.count]) });
    }
  }
  return tables;
}

