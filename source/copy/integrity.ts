import type pg from 'pg';
import { first, sleep, type Db } from '../db/session.js';
import type { TablePlan } from '../plan/schema.js';
import type { LogLevel, ReportTable } from '../engine/types.js';
import { ident, displayName, qname } from '../db/quote.js';
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

/**
 * How rows are hashed. The scan hashes each column by VALUE (hash_record_extended, PostgreSQL 14+) when value
 * equality and text equality are the same thing for its type and the column has that same type on both sides
 * (integers, uuid, boolean, text/varchar with a deterministic collation, dates and timestamps, bytea, jsonb,
 * numeric with a fixed scale); every other column is hashed through its text, as before. Turning a timestamptz or
 * uuid into text costs far more than hashing it: the scan is ~2× faster on the demo's tables. The drill (differing
 * buckets only) still compares md5 of the whole row's text.
 */
export interface HashPlan { readonly byValue: string[]; readonly byText: string[]; readonly pkByValue: boolean }

const VALUE_SAFE = /^(uuid|bigint|integer|smallint|boolean|text|date|bytea|jsonb|timestamp(\(\d\))? with(out)? time zone|character varying(\(\d+\))?|numeric\(\d+,\d+\))$/;

export async function hashPlan(db: Db, pair: Pair, cols: readonly string[], pk: readonly string[]): Promise<HashPlan> {
  if ((await db.serverVersionNum()) < 140000) return { byValue: [], byText: [...cols], pkByValue: false };
  const types = await db.read<{ rel: number; name: string; type: string; nondet: boolean }>(
    `SELECT a.attrelid::int AS rel, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            COALESCE(NOT co.collisdeterministic, false) AS nondet
       FROM pg_attribute a LEFT JOIN pg_collation co ON co.oid = a.attcollation
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`,
    [[pair.source.oid, pair.target.oid]],
  );
  const of = (rel: number, name: string) => types.find((t) => t.rel === rel && t.name === name);
  const safe = (c: string) => {
    const s = of(pair.source.oid, c);
    const t = of(pair.target.oid, c);
    return !!s && !!t && s.type === t.type && !s.nondet && !t.nondet && VALUE_SAFE.test(s.type);
  };
  return { byValue: cols.filter(safe), byText: cols.filter((c) => !safe(c)), pkByValue: pk.every(safe) };
}

function hashExprs(cols: readonly string[], pk: readonly string[], chunks: number, plan: HashPlan, alias = 'x') {
  const row = `md5(ROW(${cols.map((c) => `${alias}.${ident(c)}`).join(', ')})::text)`;
  const pkRow = `ROW(${pk.map((c) => `${alias}.${ident(c)}`).join(', ')})`;
  const pkText = `${pkRow}::text`;
  return {
    row,
    pkText,
    bucket: plan.pkByValue
      ? `((hash_record_extended(${pkRow}, 0) & 2147483647) % ${chunks})::int`
      : `((hashtext(${pkText}) & 2147483647) % ${chunks})`,
  };
}

/**
 * The scan's per-row hash: 64 bits (hash_record_extended of the value-safe columns, xor hashtextextended of the
 * others' text), summed per bucket as two 32-bit halves (sum(int) accumulates in int8, no numeric). A row whose
 * content differs changes its bucket's sums except with probability ~2^-63; the drill then compares the rows.
 */
function scanExprs(cols: readonly string[], pk: readonly string[], chunks: number, plan: HashPlan) {
  const list = (cs: readonly string[]) => cs.map((c) => `x.${ident(c)}`).join(', ');
  const parts: string[] = [];
  if (plan.byValue.length) parts.push(`hash_record_extended(ROW(${list(plan.byValue)}), 0)`);
  if (plan.byText.length) parts.push(`hashtextextended(ROW(${list(plan.byText)})::text, 0)`);
  return { h: parts.join(' # '), bucket: hashExprs(cols, pk, chunks, plan).bucket };
}

/** TID range scans need PostgreSQL 14+; older servers scan each relation in one statement. */
const BLOCKS_PER_RANGE = 4096; // 32 MB of heap per statement: progress every few hundred thousand rows
/**
 * Live tables (online mode): short ranges with a rest after each as long as the range took. A scan that holds a
 * core for seconds on a small machine lets the application's run queue build up behind it, and behind a transaction
 * that waits for a CPU while it holds a hot row lock (pgbench's branches) the others queue too. Measured under
 * pgbench on two cores (the longest application transaction while the check ran; 2 × 1,000,000 rows):
 *  - 512-block ranges, rests half as long, three runs: 95 / 79 / 45 ms (idle maxima 38 / 35 / 45 ms);
 *  - 128 blocks, equal rests, twelve runs: 37-95 ms, once 152 ms (median 54 ms); the check took 20-29 s;
 *  - 64 blocks, rests twice as long, six runs: 37-76 ms (median 70 ms); the check took 25-28 s: no better, longer.
 * The application's own load sets the check's pace more than the rests do. Short alternation, as vacuum's cost-based
 * delay does, gives the CPU back before a queue forms.
 */
export const LIVE_PACE = { blocks: 128, rest: 1 } as const;

interface Leaf { oid: number; q: string; name: string; blocks: number }

async function leavesOf(c: pg.ClientBase, oid: number): Promise<Leaf[]> {
  const r = await c.query<{ oid: number; nsp: string; rel: string; blocks: string }>(
    `SELECT p.relid::int AS oid, n.nspname AS nsp, c.relname AS rel, (pg_relation_size(p.relid) / current_setting('block_size')::int)::bigint AS blocks
       FROM pg_partition_tree($1::regclass) p JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE p.isleaf ORDER BY c.relname`,
    [oid],
  );
  if (!r.rows.length) {
    // a plain table: pg_partition_tree lists nothing, the table is its own (only) leaf
    const x = await c.query<{ oid: number; nsp: string; rel: string; blocks: string }>(
      `SELECT c.oid::int AS oid, n.nspname AS nsp, c.relname AS rel, (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS blocks
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`,
      [oid],
    );
    r.rows.push(...x.rows);
  }
  return r.rows.map((x) => ({ oid: x.oid, q: `${ident(x.nsp)}.${ident(x.rel)}`, name: x.rel, blocks: Number(x.blocks) }));
}

export interface HashProgress { readonly rows: number; readonly blocks: number }

/**
 * One table's bucket sums, scanned leaf by leaf in block ranges (a TID range scan reads just those blocks), every
 * statement inside one REPEATABLE READ transaction on `c` (so all ranges see one snapshot; the caller imports the
 * same snapshot on both sides). `onRange` reports rows hashed and blocks read after each range.
 */
async function scanSums(
  c: pg.ClientBase, leaves: readonly Leaf[], cols: string[], pk: string[], chunks: number, plan: HashPlan, tidRange: boolean,
  onRange: (p: HashProgress) => void, signal: AbortSignal, live = false,
): Promise<{ buckets: Map<number, Agg>; parts: Map<number, number> }> {
  const per = live ? LIVE_PACE.blocks : BLOCKS_PER_RANGE;
  const e = scanExprs(cols, pk, chunks, plan);
  const buckets = new Map<number, Agg>();
  const parts = new Map<number, number>();
  for (const leaf of leaves) {
    const ranges: [number, number | null][] = [];
    if (!tidRange || leaf.blocks <= per) ranges.push([0, null]);
    else for (let b = 0; b < leaf.blocks; b += per) ranges.push([b, b + per >= leaf.blocks ? null : b + per]);
    let leafRows = 0;
    for (const [from, to] of ranges) {
      if (signal.aborted) throw new Error('integrity check interrupted');
      const where = ranges.length === 1 ? '' : `WHERE x.ctid >= '(${from},0)'::tid${to === null ? '' : ` AND x.ctid < '(${to},0)'::tid`}`;
      const r0 = performance.now();
      const r = await c.query<{ b: number; n: number; s1: string; s2: string }>(
        `SELECT b, count(*)::int AS n, sum((h >> 32)::int)::text AS s1, sum((h & 2147483647)::int)::text AS s2
           FROM (SELECT ${e.bucket} AS b, ${e.h} AS h FROM ${leaf.q} x ${where}) r GROUP BY b`,
      );
      let n = 0;
      for (const row of r.rows) {
        const a = buckets.get(Number(row.b)) ?? { n: 0, s1: 0n, s2: 0n };
        a.n += Number(row.n);
        a.s1 += BigInt(row.s1);
        a.s2 += BigInt(row.s2);
        buckets.set(Number(row.b), a);
        n += Number(row.n);
      }
      leafRows += n;
      onRange({ rows: n, blocks: (to ?? Math.max(leaf.blocks, from)) - from });
      if (live) await sleep(LIVE_PACE.rest * (performance.now() - r0), signal);
    }
    parts.set(leaf.oid, leafRows);
  }
  return { buckets, parts };
}

/**
 * Both tables' bucket sums at once: two connections, one exported snapshot (old and new compared as of the same
 * instant), each scanning its table in block ranges; rows hashed / blocks read reported as they go.
 */
async function chunkSumsBoth(
  db: Db, pair: Pair, cols: string[], pk: string[], chunks: number, plan: HashPlan, signal: AbortSignal,
  onProgress: (p: { rows: number; blocks: number; totalBlocks: number }) => void, sequential = false,
): Promise<{ old: { buckets: Map<number, Agg> }; new: { buckets: Map<number, Agg>; parts: Map<number, number> }; newLeaves: Leaf[] }> {
  const a = await db.pool.connect();
  let b: pg.PoolClient | null = null;
  try {
    b = await db.pool.connect();
    await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { snap } = first((await a.query<{ snap: string }>('SELECT pg_export_snapshot() AS snap')).rows, 'pg_export_snapshot()');
    await b.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await b.query(`SET TRANSACTION SNAPSHOT '${snap.replace(/'/g, "''")}'`);
    const tidRange = (await db.serverVersionNum()) >= 140000;
    const oldLeaves = await leavesOf(a, pair.source.oid);
    const newLeaves = await leavesOf(b, pair.target.oid);
    const totalBlocks = [...oldLeaves, ...newLeaves].reduce((s, l) => s + l.blocks, 0);
    let rows = 0;
    let blocks = 0;
    const tick = (p: HashProgress) => {
      rows += p.rows;
      blocks += p.blocks;
      onProgress({ rows, blocks, totalBlocks });
    };
    // live table: one scan after the other (still the same snapshot), so the check takes one core, not both
    const [o, n] = sequential
      ? [await scanSums(a, oldLeaves, cols, pk, chunks, plan, tidRange, tick, signal, true), await scanSums(b, newLeaves, cols, pk, chunks, plan, tidRange, tick, signal, true)]
      : await Promise.all([
        scanSums(a, oldLeaves, cols, pk, chunks, plan, tidRange, tick, signal),
        scanSums(b, newLeaves, cols, pk, chunks, plan, tidRange, tick, signal),
      ]);
    return { old: o, new: n, newLeaves };
  } finally {
    await a.query('ROLLBACK').catch(() => {});
    a.release();
    if (b) {
      await b.query('ROLLBACK').catch(() => {});
      b.release();
    }
  }
}

/** Full join on the pk inside the given buckets: exact counts of missing/extra/changed, and samples. */
async function drill(db: Db, pair: Pair, cols: string[], pk: string[], chunks: number, plan: HashPlan, buckets: number[], cap: Capture | null): Promise<{ missing: number; extra: number; mismatched: number; samples: Sample[]; pks: string[] }> {
  if (!buckets.length) return { missing: 0, extra: 0, mismatched: 0, samples: [], pks: [] };
  const h = hashExprs(cols, pk, chunks, plan);
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

export interface IntegrityOptions {
  readonly log: (message: string, level?: LogLevel) => void;
  readonly signal: AbortSignal;
  readonly stepId: string | null;
  readonly onProgress?: (doneTables: number, detail: string) => void;
  /** rows hashed so far over all tables (both sides), of an estimated total, and what is being read */
  readonly onRows?: (p: { done: number; total: number; detail: string }) => void;
  /** the tables are live (online copy): the two sides are hashed one after the other, leaving a core to the application */
  readonly live?: boolean;
}

export async function checkTable(db: Db, t: TablePlan, opts: IntegrityOptions & { onTableRows?: (done: number, total: number, detail: string) => void }): Promise<TableIntegrity> {
  const pairOr = await resolvePair(db, t);
  const name = displayName(t.schema, t.table);
  if ('missing' in pairOr) {
    // swapped and the old table dropped: the swap required a passing report, and there is nothing left to compare
    return {
      table: name, target: displayName(t.schema, t.targetName), oldRows: 0, newRows: 0, missing: 0, extra: 0, mismatched: 0,
      orphans: [], samples: [], partitions: [], chunks: 0, chunksDiffering: 0, pass: pairOr.retired === true,
      note: pairOr.retired ? `${pairOr.missing}: verified before the swap, nothing left to compare` : pairOr.missing,
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
  const plan = await hashPlan(db, pair, map.columns, pk);
  const sums = await chunkSumsBoth(db, pair, map.columns, pk, chunks, plan, opts.signal, (p) => {
    // blocks read / total blocks is exact; rows are estimated from it for the total
    const total = p.blocks > 0 ? Math.max(p.rows, Math.round((p.rows * p.totalBlocks) / p.blocks)) : p.rows;
    opts.onTableRows?.(p.rows, total, `${pair.source.display} ↔ ${pair.target.display}: ${p.blocks.toLocaleString('en-US')} / ${p.totalBlocks.toLocaleString('en-US')} blocks hashed`);
  }, opts.live);
  const oldS = sums.old;
  const newS = sums.new;
  const differing: number[] = [];
  for (let b = 0; b < chunks; b++) {
    const o = oldS.buckets.get(b) ?? { n: 0, s1: 0n, s2: 0n };
    const n = newS.buckets.get(b) ?? { n: 0, s1: 0n, s2: 0n };
    if (o.n !== n.n || o.s1 !== n.s1 || o.s2 !== n.s2) differing.push(b);
  }
  const oldRows = [...oldS.buckets.values()].reduce((a, x) => a + x.n, 0);
  const newRows = [...newS.buckets.values()].reduce((a, x) => a + x.n, 0);
  let d = await drill(db, pair, map.columns, pk, chunks, plan, differing, cap);
  if (cap && (d.missing || d.extra || d.mismatched)) {
    opts.log(`${pair.source.display}: ${d.missing + d.extra + d.mismatched} differing rows while writes continue: draining again and re-checking them`);
    await drain('second');
    d = await drill(db, pair, map.columns, pk, chunks, plan, differing, cap);
  }
  const partitions = pair.target.kind === 'p' ? sums.newLeaves.map((p) => ({ name: p.name, rows: newS.parts.get(p.oid) ?? 0 })) : [];
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
  // the total: every table's estimated rows, both sides; each table's figure is replaced by its measured one as it goes
  const est = new Map<string, number>();
  for (const t of tables) {
    const [r] = await db.read<{ n: number }>(
      `SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::float8 AS n FROM pg_class c WHERE c.oid IN (to_regclass($1), to_regclass($2))`,
      [qname(t.schema, t.table), qname(t.schema, t.targetName)],
    );
    est.set(displayName(t.schema, t.table), Math.round(r?.n ?? 0));
  }
  let before = 0;
  for (const t of tables) {
    const name = displayName(t.schema, t.table);
    opts.onProgress?.(out.length, `${name}: hashing rows, both tables at once`);
    let last = 0;
    const r = await checkTable(db, t, {
      ...opts,
      onTableRows: (done, total, detail) => {
        est.set(name, total);
        last = done;
        const all = [...est.values()].reduce((a, x) => a + x, 0);
        opts.onRows?.({ done: before + done, total: Math.max(all, before + done), detail });
      },
    });
    before += last;
    est.set(name, last);
    out.push(r);
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

