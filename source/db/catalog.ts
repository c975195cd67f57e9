import type { Db } from './session.js';
import { qname } from './quote.js';

/** Catalog reads shared by the phases. Read-only; never journaled. */

export async function tableExists(db: Db, schema: string, name: string): Promise<boolean> {
  const r = await db.read<{ ok: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')) AS ok`,
    [schema, name],
  );
  return r[0]!.ok;
}

/** Whether the named trigger exists on schema.table. */
export async function triggerExists(db: Db, schema: string, table: string, trigger: string): Promise<boolean> {
  const r = await db.read<{ ok: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2) AS ok`,
    [qname(schema, table), trigger],
  );
  return r[0]!.ok;
}

export interface VolumeRow { schema: string; table: string; bytes: number; size: string; rows: number }

/** The seed's data-volume query, with names passed as parameters and pgshift's own schema left out. */
export async function dataVolume(db: Db): Promise<VolumeRow[]> {
  const rows = await db.read<{ schemaname: string; relname: string; bytes: string; size: string; n_live_tup: string }>(
    `SELECT schemaname, relname, pg_total_relation_size(relid) AS bytes,
            pg_size_pretty(pg_total_relation_size(relid)) AS size, n_live_tup
       FROM pg_stat_user_tables
      WHERE schemaname <> 'pgshift'
      ORDER BY pg_total_relation_size(relid) DESC, schemaname, relname`,
  );
  return rows.map((r) => ({ schema: r.schemaname, table: r.relname, bytes: Number(r.bytes), size: r.size, rows: Number(r.n_live_tup) }));
}

export interface FkRow { constraint: string; table: string; referenced: string; definition: string; validated: boolean }

/** The seed's FK-dependency query. */
export async function foreignKeys(db: Db): Promise<FkRow[]> {
  const rows = await db.read<{ conname: string; tbl: string; ref: string; def: string; convalidated: boolean }>(
    `SELECT c.conname, c.conrelid::regclass::text AS tbl, c.confrelid::regclass::text AS ref,
            pg_get_constraintdef(c.oid) AS def, c.convalidated
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
      WHERE c.contype = 'f' AND n.nspname <> 'pgshift' AND c.conparentid = 0
      ORDER BY c.conrelid::regclass::text, c.conname`,
  );
  return rows.map((r) => ({ constraint: r.conname, table: r.tbl, referenced: r.ref, definition: r.def, validated: r.convalidated }));
}
