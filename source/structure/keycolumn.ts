import { createHash } from 'node:crypto';
import type { Db } from '../db/session.js';
import type { TablePlan } from '../plan/schema.js';
import { dollarQuote, ident, parseQualified, qname } from '../db/quote.js';

/**
 * A referencing table without the partition key (e.g. `payment` → `rental` by rental_id, partitioned by
 * rental_date): a foreign key to a partitioned table must include the partition key, so pgshift adds the column to
 * the referencing table (its partitioned parent when it is partitioned: PostgreSQL refuses ADD COLUMN on a
 * partition), keeps it filled for new and updated rows with a trigger that looks the value up (SECURITY DEFINER,
 * pinned search_path: it runs as the application's role), and fills existing rows in keyset batches, one transaction
 * each, resumable from a checkpoint. Phase 4 then re-creates the FK on (old columns, this column), MATCH FULL while
 * the column is nullable, so it refuses exactly what the old FK refused. The rollback removes all of it.
 */

export interface KeyColumnPlan {
  /** the referencing table (partitioned parent when partitioned) */
  readonly schema: string;
  readonly table: string;
  /** the column added, holding the referenced row's partition key */
  readonly column: string;
  readonly type: string;
  /** referencing columns → referenced columns of the old FK(s) */
  readonly fkColumns: string[];
  readonly refColumns: string[];
  /** the referencing table's row key, for the keyset fill */
  readonly rowKey: string[];
  readonly functionName: string;
  readonly triggerName: string;
  /** the column already exists (an earlier run, or the operator added it) */
  readonly exists: boolean;
}

export const keyColumnStepId = (t: TablePlan, ref: string) => `key-column:${t.schema}.${t.table}:${ref}`;
export const KEY_TRIGGER_PREFIX = 'pgshift_key_';

export interface KeyColumnArtifact {
  readonly referencing: string;
  readonly column: string;
  readonly added: boolean;
  readonly function: string;
  readonly trigger: string;
  readonly source: string;
}

function shortHash(s: string): string {
  return createHash('md5').update(s).digest('hex').slice(0, 10);
}

/** What pgshift would add for `ref` (schema.table, as written in the plan's addKeyColumns). */
export async function planKeyColumn(db: Db, t: TablePlan, ref: string): Promise<KeyColumnPlan | string> {
  const q = parseQualified(ref);
  const [rel] = await db.read<{ oid: number; relkind: string; ispart: boolean }>(
    `SELECT c.oid::int AS oid, c.relkind::text AS relkind, c.relispartition AS ispart FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [q.schema, q.name],
  );
  if (!rel) return `${ref} (addKeyColumns) does not exist`;
  if (rel.ispart) return `${ref} is a partition: name its partitioned parent in addKeyColumns (PostgreSQL refuses ADD COLUMN on a partition)`;
  const [src] = await db.read<{ oid: number; type: string | null }>(
    `SELECT c.oid::int AS oid, (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $3 AND NOT a.attisdropped) AS type
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [t.schema, t.table, t.key],
  );
  if (!src?.type) return `${t.schema}.${t.table} has no column ${t.key}`;
  // the FKs from ref (or its partitions) to the source; they must agree on their columns
  const fks = await db.read<{ cols: string[]; refcols: string[] }>(
    `SELECT ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY x(n, i) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n ORDER BY x.i) AS cols,
            ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY x(n, i) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n ORDER BY x.i) AS refcols
       FROM pg_constraint k
      WHERE k.contype = 'f' AND k.confrelid = $1 AND k.conparentid = 0
        AND (k.conrelid = $2 OR k.conrelid IN (WITH RECURSIVE d(oid) AS (SELECT inhrelid FROM pg_inherits WHERE inhparent = $2 UNION SELECT i.inhrelid FROM pg_inherits i JOIN d ON i.inhparent = d.oid) SELECT oid FROM d))`,
    [src.oid, rel.oid],
  );
  if (!fks.length) return `${ref} has no foreign key to ${t.schema}.${t.table}: nothing to add a key column for`;
  const sig = (f: { cols: string[]; refcols: string[] }) => `${f.cols.join(',')}→${f.refcols.join(',')}`;
  if (new Set(fks.map(sig)).size > 1) return `${ref} has foreign keys to ${t.schema}.${t.table} on different columns (${[...new Set(fks.map(sig))].join('; ')}): pgshift fills one key column per referencing table`;
  const column = t.inboundKeyColumns[ref] ?? t.inboundKeyColumns[`${q.schema}.${q.name}`] ?? t.key;
  const [has] = await db.read<{ ok: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND NOT attisdropped AND attnum > 0) AS ok`, [rel.oid, column]);
  const key = await db.read<{ c: string }>(
    `SELECT a.attname::text AS c FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attnum = k.n
      WHERE i.indrelid = $1 AND a.attrelid = $1 AND i.indexrelid = (
        SELECT x.indexrelid FROM pg_index x WHERE x.indrelid = $1 AND x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL
           AND NOT EXISTS (SELECT 1 FROM unnest(x.indkey::int2[]) q(n) JOIN pg_attribute qa ON qa.attrelid = x.indrelid AND qa.attnum = q.n WHERE NOT qa.attnotnull)
         ORDER BY x.indisprimary DESC, x.indnkeyatts LIMIT 1)
      ORDER BY k.o`,
    [rel.oid],
  );
  if (!key.length) return `${ref} has no primary key (nor unique index on NOT NULL columns): pgshift cannot fill ${column} in keyset batches`;
  const h = shortHash(`${q.schema}.${q.name}:${column}`);
  return {
    schema: q.schema, table: q.name, column, type: src.type, fkColumns: fks[0]!.cols, refColumns: fks[0]!.refcols, rowKey: key.map((k) => k.c),
    functionName: `fill_key_${h}`, triggerName: `${KEY_TRIGGER_PREFIX}${h}`, exists: has!.ok,
  };
}

/** ADD COLUMN (when missing), the lookup function and its trigger: in one short transaction. */
export function keyColumnDdl(t: TablePlan, k: KeyColumnPlan): string[] {
  const R = qname(k.schema, k.table);
  const S = qname(t.schema, t.table);
  const fn = qname('pgshift', k.functionName);
  const allSet = k.fkColumns.map((c) => `NEW.${ident(c)} IS NOT NULL`).join(' AND ');
  const match = k.refColumns.map((c, i) => `s.${ident(c)} = NEW.${ident(k.fkColumns[i]!)}`).join(' AND ');
  return [
    ...(k.exists ? [] : [`ALTER TABLE ${R} ADD COLUMN ${ident(k.column)} ${k.type}`]),
    // runs as the application's role: SECURITY DEFINER (pgshift's role reads the source) with a pinned search_path;
    // the source is named, so after the swap the lookup reads the partitioned table under the same name
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(`
BEGIN
  IF ${allSet} THEN
    NEW.${ident(k.column)} := (SELECT s.${ident(t.key)} FROM ${S} s WHERE ${match});
  ELSE
    NEW.${ident(k.column)} := NULL;
  END IF;
  RETURN NEW;
END`)}`,
    `DROP TRIGGER IF EXISTS ${ident(k.triggerName)} ON ${R}`,
    `CREATE TRIGGER ${ident(k.triggerName)} BEFORE INSERT OR UPDATE OF ${[...k.fkColumns, k.column].map(ident).join(', ')} ON ${R} FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
  ];
}

/** One keyset batch: fills the rows after `after` (row key values), returns the last key and how many rows it read. */
export function fillBatchSql(t: TablePlan, k: KeyColumnPlan, hasAfter: boolean, batch: number): string {
  const R = qname(k.schema, k.table);
  const S = qname(t.schema, t.table);
  const keyList = k.rowKey.map(ident).join(', ');
  const after = hasAfter ? `WHERE (${keyList}) > (${k.rowKey.map((_, i) => `$${i + 1}`).join(', ')})` : '';
  const match = k.refColumns.map((c, i) => `s.${ident(c)} = r.${ident(k.fkColumns[i]!)}`).join(' AND ');
  return `WITH b AS (SELECT ${keyList} FROM ${R} ${after} ORDER BY ${keyList} LIMIT ${batch}),
     u AS (UPDATE ${R} r SET ${ident(k.column)} = s.${ident(t.key)} FROM b, ${S} s
            WHERE ${k.rowKey.map((c) => `r.${ident(c)} = b.${ident(c)}`).join(' AND ')} AND ${match}
              AND r.${ident(k.column)} IS DISTINCT FROM s.${ident(t.key)} RETURNING 1)
   SELECT (SELECT count(*) FROM b)::int AS n, (SELECT count(*) FROM u)::int AS updated,
          (SELECT row_to_json(x) FROM (SELECT ${keyList} FROM b ORDER BY ${k.rowKey.map((c) => `${ident(c)} DESC`).join(', ')} LIMIT 1) x)::text AS last`;
}

export function describeKeyColumn(t: TablePlan, k: KeyColumnPlan): string {
  return `${k.exists ? 'fills' : 'adds'} ${k.schema}.${k.table}.${k.column} (${k.type}) holding the ${t.key} of the ${t.schema}.${t.table} row each (${k.fkColumns.join(', ')}) references, ` +
    `kept filled by trigger ${k.triggerName} (BEFORE INSERT OR UPDATE, SECURITY DEFINER, looks the value up), existing rows filled in keyset batches by (${k.rowKey.join(', ')})`;
}

