import type pg from 'pg';
import type { Db, Tx } from '../db/session.js';
import type { Queryable } from '../engine/journal.js';
import type { TablePlan } from '../plan/schema.js';
import { ident, qname, displayName } from '../db/quote.js';
import { UserError } from '../engine/errors.js';

/**
 * Catalog facts the copy, the capture, the integrity report and the pruning check share: which relation is the
 * source and which the target (before and after the swap), the columns to copy by name, the primary key, and the
 * order the copy walks the source in. Read-only, never journaled.
 */

/** Either the pool (Db) or a transaction's client: catalog reads work on both. */
export type Reader = Db | Tx | pg.ClientBase;

/** The connection under a Reader, for the helpers that take a plain query runner. */
export function queryableOf(r: Reader): Queryable {
  if ('read' in r && typeof r.read === 'function') return r.pool;
  if ('client' in r && r.client) return r.client;
  return r as pg.ClientBase;
}

export async function rowsOf<R extends pg.QueryResultRow>(r: Reader, sql: string, params: unknown[] = []): Promise<R[]> {
  return (await queryableOf(r).query<R>(sql, params)).rows;
}

export interface Rel {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** 'r' plain table, 'p' partitioned */
  readonly kind: string;
  /** quoted schema.name */
  readonly q: string;
  /** display form */
  readonly display: string;
}

export async function relByName(r: Reader, schema: string, name: string): Promise<Rel | null> {
  const rows = await rowsOf<{ oid: number; relkind: string }>(
    r,
    `SELECT c.oid::int AS oid, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')`,
    [schema, name],
  );
  const x = rows[0];
  return x ? { oid: x.oid, schema, name, kind: x.relkind, q: qname(schema, name), display: displayName(schema, name) } : null;
}

export async function relByOid(r: Reader, oid: number): Promise<Rel | null> {
  const rows = await rowsOf<{ nspname: string; relname: string; relkind: string }>(
    r,
    `SELECT n.nspname, c.relname, c.relkind::text AS relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`,
    [oid],
  );
  const x = rows[0];
  return x ? { oid, schema: x.nspname, name: x.relname, kind: x.relkind, q: qname(x.nspname, x.relname), display: displayName(x.nspname, x.relname) } : null;
}

export interface Pair {
  readonly source: Rel;
  readonly target: Rel;
  /** phase 5 already swapped the names: the source is now <table>_old and the target carries the table's name */
  readonly swapped: boolean;
}

/**
 * Finds the old (source) and new (partitioned target) table of a plan entry, by name, before or after the swap.
 * Returns a reason when they cannot be found (phase 2 not run yet, rolled back…).
 */
/**
 * The old/new pair of a planned table, before or after the swap. `retired`: swapped, and the old table already
 * dropped (phase 5): nothing is left to copy or compare.
 */
export async function resolvePair(r: Reader, t: TablePlan): Promise<Pair | { missing: string; retired?: true }> {
  const src = await relByName(r, t.schema, t.table);
  const tgt = await relByName(r, t.schema, t.targetName);
  if (src && tgt && tgt.kind === 'p') return { source: src, target: tgt, swapped: false };
  if (src && src.kind === 'p' && !tgt) {
    const old = await relByName(r, t.schema, t.oldName);
    if (old) return { source: old, target: src, swapped: true };
    return { missing: `${displayName(t.schema, t.table)} is the partitioned table already and ${displayName(t.schema, t.oldName)} was dropped`, retired: true };
  }
  if (!src) return { missing: `the source table ${displayName(t.schema, t.table)} does not exist` };
  if (!tgt) return { missing: `the target table ${displayName(t.schema, t.targetName)} does not exist yet (phase 2 creates it)` };
  return { missing: `${displayName(t.schema, t.targetName)} is not a partitioned table` };
}

export interface Column {
  readonly name: string;
  readonly type: string;
  readonly notNull: boolean;
  /** 's' = GENERATED ALWAYS AS (…) STORED */
  readonly generated: boolean;
  /** 'a' GENERATED ALWAYS AS IDENTITY, 'd' BY DEFAULT, '' none */
  readonly identity: string;
  readonly hasDefault: boolean;
}

export async function columnsOf(r: Reader, oid: number): Promise<Column[]> {
  const rows = await rowsOf<{ attname: string; type: string; attnotnull: boolean; attgenerated: string; attidentity: string; atthasdef: boolean }>(
    r,
    `SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull, attgenerated::text AS attgenerated,
            attidentity::text AS attidentity, atthasdef
       FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [oid],
  );
  return rows.map((x) => ({
    name: x.attname, type: x.type, notNull: x.attnotnull, generated: x.attgenerated === 's', identity: x.attidentity, hasDefault: x.atthasdef,
  }));
}

export async function primaryKeyOf(r: Reader, oid: number): Promise<string[]> {
  const rows = await rowsOf<{ attname: string }>(
    r,
    `SELECT a.attname FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
       JOIN pg_attribute a ON a.attrelid = $1 AND a.attnum = k.attnum
      WHERE i.indexrelid = (
              -- the primary key, else a unique index on NOT NULL plain columns without WHERE (preflight's row key)
              SELECT x.indexrelid FROM pg_index x JOIN pg_class xc ON xc.oid = x.indexrelid
               WHERE x.indrelid = $1 AND x.indisunique AND x.indisvalid AND x.indpred IS NULL AND x.indexprs IS NULL
                 AND NOT EXISTS (SELECT 1 FROM unnest(x.indkey::int2[]) q(n) JOIN pg_attribute qa ON qa.attrelid = x.indrelid AND qa.attnum = q.n WHERE NOT qa.attnotnull)
               ORDER BY x.indisprimary DESC, x.indnkeyatts, xc.relname LIMIT 1)
      ORDER BY k.n`,
    [oid],
  );
  return rows.map((x) => x.attname);
}

export interface ColumnMap {
  /** columns copied, by name, in the source's order */
  readonly columns: string[];
  /** the target has GENERATED ALWAYS identity columns among them: INSERT needs OVERRIDING SYSTEM VALUE */
  readonly overriding: boolean;
  /** target columns left to their default (not in the source, or generated in the target) */
  readonly skipped: string[];
  readonly notes: string[];
  readonly sourceCols: Column[];
}

/**
 * Columns are matched by NAME (the new table's column order may differ). Generated columns of the target are
 * skipped (PostgreSQL computes them); a source column the target lacks is an error (its data would be lost).
 */
export async function columnMap(r: Reader, pair: Pair): Promise<ColumnMap> {
  const src = await columnsOf(r, pair.source.oid);
  const tgt = await columnsOf(r, pair.target.oid);
  const byName = new Map(tgt.map((c) => [c.name, c]));
  const columns: string[] = [];
  const notes: string[] = [];
  let overriding = false;
  const lost: string[] = [];
  for (const c of src) {
    const t = byName.get(c.name);
    if (!t) {
      if (c.generated) continue;
      lost.push(c.name);
      continue;
    }
    if (t.generated) {
      notes.push(`column ${c.name} is generated in ${pair.target.display}: not copied, PostgreSQL computes it`);
      continue;
    }
    if (t.identity === 'a') overriding = true;
    columns.push(c.name);
  }
  if (lost.length) {
    throw new UserError(
      `${pair.target.display} lacks column${lost.length > 1 ? 's' : ''} ${lost.join(', ')} of ${pair.source.display}: copying would lose that data`,
      'add the column(s) to the new table (phase 2), then run phase 3 again',
      1,
    );
  }
  const skipped = tgt.filter((c) => !columns.includes(c.name)).map((c) => c.name);
  if (overriding) notes.push(`${pair.target.display} has GENERATED ALWAYS identity columns: the copy inserts with OVERRIDING SYSTEM VALUE so the old ids are kept`);
  return { columns, overriding, skipped, notes, sourceCols: src };
}

export interface CopyOrder {
  /** the columns the copy walks the source by (keyset), in order */
  readonly columns: string[];
  readonly mode: 'key+pk' | 'pk';
  readonly pk: string[];
  /** the index that serves the order, when there is one */
  readonly index: string | null;
  /**
   * How a batch finds its last row before inserting (batch.ts): 'rows' when the index holds every order column (the
   * n-th next row, read from the index alone), 'key' when it holds the partition key only (the key of the n-th next
   * row; the batch takes that key value's whole group of ties, which chooseOrder keeps small).
   */
  readonly bound: 'rows' | 'key';
  /** the partition key (in `columns` unless the walk is the primary key alone) */
  readonly key: string;
  /** why this order: for the log */
  readonly reason: string;
}

interface IndexRow { name: string; cols: (string | null)[]; pred: boolean; valid: boolean }

async function indexesOf(r: Reader, oid: number): Promise<IndexRow[]> {
  const rows = await rowsOf<{ name: string; cols: (string | null)[]; pred: boolean; valid: boolean }>(
    r,
    `SELECT ic.relname AS name,
            ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n)
                   LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) AS cols,
            i.indpred IS NOT NULL OR i.indexprs IS NOT NULL AS pred, i.indisvalid AND i.indisready AS valid
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
      WHERE i.indrelid = $1 AND am.amname = 'btree'`,
    [oid],
  );
  return rows;
}

/**
 * The order the batch copy walks the source in. Keyset pagination on (partition key, primary key) when an index
 * serves it: reading in key order fills one partition after another and reads the heap roughly in insertion
 * order. When only an index on the key alone exists and few rows share a key value, the same order is served by
 * that index plus a small incremental sort of ties. Otherwise (no index led by the key, a key with few distinct
 * values such as a LIST key, or NULL keys, which a row comparison would skip) the copy walks the primary key:
 * always indexed, never NULL, still keyset. We do not build an index on the production table for the copy: a
 * CREATE INDEX CONCURRENTLY there costs a full scan, disk, and waits on every open transaction.
 */
export async function chooseOrder(r: Reader, pair: Pair, key: string, batchRows: number): Promise<CopyOrder> {
  const pk = await primaryKeyOf(r, pair.source.oid);
  if (!pk.length) {
    throw new UserError(
      `${pair.source.display} has no primary key: pgshift cannot copy it by keyset nor tell rows apart for the integrity report`,
      'add a primary key (or a unique NOT NULL key promoted to primary key) first',
      1,
    );
  }
  const cols = await columnsOf(r, pair.source.oid);
  const keyCol = cols.find((c) => c.name === key);
  if (!keyCol) throw new UserError(`${pair.source.display} has no column ${key} (the partition key in the plan)`, 'fix "key" in the plan', 2);
  const orderCols = [key, ...pk.filter((c) => c !== key)];
  const pkOrder = (reason: string, index: string | null): CopyOrder => ({ columns: pk, mode: 'pk', pk, index, reason, bound: 'rows', key });
  const pkIndex = (await indexesOf(r, pair.source.oid)).find((i) => i.valid && !i.pred && i.cols.slice(0, pk.length).join('\u0000') === pk.join('\u0000'));
  if (!keyCol.notNull) {
    const [n] = await rowsOf<{ has: boolean }>(r, `SELECT EXISTS (SELECT 1 FROM ${pair.source.q} WHERE ${ident(key)} IS NULL) AS has`);
    if (n!.has) return pkOrder(`${key} holds NULLs (a keyset comparison would skip those rows): walking the primary key (${pk.join(', ')}) instead`, pkIndex?.name ?? null);
  }
  if (pk[0] === key) return { columns: pk, mode: 'key+pk', pk, index: pkIndex?.name ?? null, bound: 'rows', key, reason: `the primary key starts with ${key}: walking it` };
  const idx = (await indexesOf(r, pair.source.oid)).filter((i) => i.valid && !i.pred);
  const exact = idx.find((i) => orderCols.every((c, n) => i.cols[n] === c));
  if (exact) return { columns: orderCols, mode: 'key+pk', pk, index: exact.name, bound: 'rows', key, reason: `index ${exact.name} serves the keyset (${orderCols.join(', ')})` };
  const lead = idx.find((i) => i.cols[0] === key);
  if (lead) {
    const [st] = await rowsOf<{ reltuples: number; n_distinct: number | null }>(
      r,
      `SELECT c.reltuples::float8 AS reltuples,
              (SELECT s.n_distinct::float8 FROM pg_stats s WHERE s.schemaname = $2 AND s.tablename = $3 AND s.attname = $4 LIMIT 1) AS n_distinct
         FROM pg_class c WHERE c.oid = $1`,
      [pair.source.oid, pair.source.schema, pair.source.name, key],
    );
    const rows = Math.max(1, st!.reltuples);
    const nd = st!.n_distinct === null ? null : st!.n_distinct < 0 ? -st!.n_distinct * rows : st!.n_distinct;
    const perValue = nd === null ? null : rows / Math.max(1, nd);
    if (perValue !== null && perValue <= batchRows / 4) {
      return {
        columns: orderCols, mode: 'key+pk', pk, index: lead.name, bound: 'key', key,
        reason: `no index on (${orderCols.join(', ')}); index ${lead.name} on ${key} serves the keyset with a small incremental sort of ties (~${Math.ceil(perValue)} rows per ${key} value)`,
      };
    }
    return pkOrder(
      `${key} has few distinct values (~${perValue === null ? '?' : Math.round(perValue)} rows each, not analyzed or too many ties for index ${lead.name}): walking the primary key (${pk.join(', ')}) instead`,
      pkIndex?.name ?? null,
    );
  }
  return pkOrder(`no index starts with ${key}: walking the primary key (${pk.join(', ')}) instead of building an index on the live table`, pkIndex?.name ?? null);
}

/** `(a, b)` quoted, for row comparisons and ORDER BY */
export function rowOf(cols: readonly string[], prefix = ''): string {
  return `(${cols.map((c) => prefix + ident(c)).join(', ')})`;
}

export function listOf(cols: readonly string[], prefix = ''): string {
  return cols.map((c) => prefix + ident(c)).join(', ');
}

/** `$n, $n+1, …` */
export function paramsFrom(start: number, n: number): string {
  return Array.from({ length: n }, (_, i) => `$${start + i}`).join(', ');
}

/** Estimated rows from pg_class (progress only; verification counts). */
export async function estimateRows(r: Reader, oid: number): Promise<number | undefined> {
  const [x] = await rowsOf<{ n: number }>(
    r,
    `SELECT CASE WHEN c.reltuples >= 0 THEN c.reltuples::float8 ELSE COALESCE(s.n_live_tup, 0)::float8 END AS n
       FROM pg_class c LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = $1`,
    [oid],
  );
  return x ? Math.round(x.n) : undefined;
}

