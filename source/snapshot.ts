import type pg from 'pg';
import { Db, readOnlyTx } from './db/session.js';

/**
 * A normalized description of the catalog (by name, never by OID), taken before the migration and compared after a
 * rollback: tables (kind, partitioning), columns, constraints, indexes, views, triggers, policies, sequences, grants,
 * RLS flags, comments and functions. Definitions come from pg_get_*def with search_path = pg_catalog, so every name
 * in them is schema-qualified and the text does not depend on the session.
 */
export interface CatalogSnapshot {
  readonly at: string;
  readonly schemas: string[];
  /** key "kind schema.name" → normalized description */
  readonly objects: Record<string, Record<string, unknown>>;
}

export const SNAPSHOT_EXCLUDED_SCHEMAS = ['pg_catalog', 'information_schema', 'pgshift', 'pg_toast'];

type Q = <R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<R[]>;

/** A catalog row whose name columns `K` are text (never null: they come from inner joins); the rest as read. */
type Named<K extends string> = Record<K, string> & { acl?: string[] | null } & Record<string, unknown>;

const sortAcl = (acl: string[] | string | null | undefined): string[] | null => (Array.isArray(acl) ? [...acl].map(String).sort() : acl === null || acl === undefined ? null : String(acl).replace(/^\{|\}$/g, '').split(',').sort());

async function collect(q: Q, schemas: string[] | null): Promise<CatalogSnapshot> {
  const schemaRows = await q(
    `SELECT nspname FROM pg_namespace
      WHERE nspname <> ALL($1::text[]) AND nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
        AND ($2::text[] IS NULL OR nspname = ANY($2::text[]))
      ORDER BY 1`,
    [SNAPSHOT_EXCLUDED_SCHEMAS, schemas],
  );
  const nsp = schemaRows.map((r) => String(r.nspname));
  const objects: Record<string, Record<string, unknown>> = {};
  const put = (key: string, v: Record<string, unknown>) => {
    objects[key] = v;
  };

  // relations: tables, partitioned tables, views, materialized views, sequences, foreign tables (not indexes)
  const rels = await q<Named<'s' | 'n'>>(
    `SELECT n.nspname AS s, c.relname AS n, c.relkind AS k, pg_get_userbyid(c.relowner) AS owner, c.relacl::text[] AS acl,
            c.relrowsecurity AS rls, c.relforcerowsecurity AS force_rls, c.reloptions::text[] AS options,
            obj_description(c.oid, 'pg_class') AS comment,
            CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partkey,
            CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
            (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
               JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition) AS parent,
            CASE WHEN c.relkind IN ('v','m') THEN pg_get_viewdef(c.oid, true) END AS viewdef, c.relispopulated AS populated
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r','p','v','m','S','f')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`,
    [nsp],
  );
  for (const r of rels) {
    const kind = { r: 'table', p: 'table', v: 'view', m: 'materialized view', S: 'sequence', f: 'foreign table' }[String(r.k)] ?? 'relation';
    put(`${kind} ${r.s}.${r.n}`, {
      relkind: r.k, owner: r.owner, acl: sortAcl(r.acl), rls: r.rls, forceRls: r.force_rls, options: r.options ?? null,
      comment: r.comment ?? null, partitionKey: r.partkey ?? null, partitionOf: r.parent ?? null, bound: r.bound ?? null,
      definition: r.viewdef ?? null, ...(r.k === 'm' ? { populated: r.populated } : {}),
    });
  }

  const cols = await q<Named<'s' | 'n' | 'col'>>(
    `SELECT n.nspname AS s, c.relname AS n, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS type,
            pg_get_expr(ad.adbin, ad.adrelid) AS def, a.attnotnull AS notnull, a.attidentity AS identity, a.attgenerated AS generated,
            col_description(c.oid, a.attnum) AS comment, a.attacl::text[] AS acl,
            row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS pos
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r','p','v','m','f') AND a.attnum > 0 AND NOT a.attisdropped`,
    [nsp],
  );
  for (const r of cols) {
    put(`column ${r.s}.${r.n}.${r.col}`, {
      position: Number(r.pos), type: r.type, default: r.def ?? null, notNull: r.notnull, identity: r.identity || null,
      generated: r.generated || null, comment: r.comment ?? null, acl: sortAcl(r.acl),
    });
  }

  const cons = await q<Named<'s' | 'n' | 'conname'>>(
    `SELECT n.nspname AS s, c.relname AS n, k.conname, k.contype, pg_get_constraintdef(k.oid) AS def, k.convalidated AS valid,
            obj_description(k.oid, 'pg_constraint') AS comment, k.conparentid <> 0 AS inherited
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1::text[])`,
    [nsp],
  );
  for (const r of cons) {
    // inherited: a partition's copy of its parent's constraint (PostgreSQL drops it with the parent's, never alone);
    // an FK to a partitioned table also has one row per referenced partition under the same name: the parent's wins
    const key = `${r.contype === 'f' ? 'foreign key' : 'constraint'} ${r.s}.${r.n}.${r.conname}`;
    if (r.inherited && objects[key]) continue;
    put(`${r.contype === 'f' ? 'foreign key' : 'constraint'} ${r.s}.${r.n}.${r.conname}`, { type: r.contype, definition: r.def, validated: r.valid, comment: r.comment ?? null, ...(r.inherited ? { inherited: true } : {}) });
  }

  const idx = await q<Named<'s' | 'n' | 'tbl'>>(
    `SELECT n.nspname AS s, ic.relname AS n, tc.relname AS tbl, pg_get_indexdef(i.indexrelid) AS def, ic.relispartition AS inherited
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = ic.relnamespace
      WHERE n.nspname = ANY($1::text[])`,
    [nsp],
  );
  for (const r of idx) put(`index ${r.s}.${r.n}`, { table: `${r.s}.${r.tbl}`, definition: r.def, ...(r.inherited ? { inherited: true } : {}) });

  const trg = await q<Named<'s' | 'n' | 'tgname'>>(
    `SELECT n.nspname AS s, c.relname AS n, t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled AS enabled,
            EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_trigger'::regclass AND d.objid = t.oid AND d.deptype = 'P') AS inherited
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1::text[]) AND NOT t.tgisinternal`,
    [nsp],
  );
  for (const r of trg) put(`trigger ${r.s}.${r.n}.${r.tgname}`, { definition: r.def, enabled: r.enabled, ...(r.inherited ? { inherited: true } : {}) });

  const pol = await q<Named<'s' | 'n' | 'polname'>>(
    `SELECT n.nspname AS s, c.relname AS n, p.polname, p.polcmd AS cmd, p.polpermissive AS permissive,
            ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r ORDER BY 1) AS roles,
            pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS check
       FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1::text[])`,
    [nsp],
  );
  for (const r of pol) put(`policy ${r.s}.${r.n}.${r.polname}`, { cmd: r.cmd, permissive: r.permissive, roles: r.roles, using: r.qual ?? null, check: r.check ?? null });

  const seqOwners = await q<Named<'s' | 'n' | 'owned_by'>>(
    `SELECT n.nspname AS s, c.relname AS n, tn.nspname || '.' || t.relname || '.' || a.attname AS owned_by, d.deptype
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a','i')
       JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
       JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
      WHERE c.relkind = 'S' AND n.nspname = ANY($1::text[])`,
    [nsp],
  );
  for (const r of seqOwners) {
    const o = objects[`sequence ${r.s}.${r.n}`];
    if (o) o.ownedBy = `${r.owned_by}${r.deptype === 'i' ? ' (identity)' : ''}`;
  }

  const funcs = await q<Named<'s' | 'n' | 'args'>>(
    `SELECT n.nspname AS s, p.proname AS n, pg_get_function_identity_arguments(p.oid) AS args, md5(pg_get_functiondef(p.oid)) AS hash,
            p.proacl::text[] AS acl, pg_get_userbyid(p.proowner) AS owner
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = ANY($1::text[]) AND p.prokind IN ('f','p')
        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`,
    [nsp],
  );
  for (const r of funcs) put(`function ${r.s}.${r.n}(${r.args})`, { definitionMd5: r.hash, owner: r.owner, acl: sortAcl(r.acl) });

  return { at: new Date().toISOString(), schemas: nsp, objects };
}

/** Runs `fn` on one connection inside a read-only REPEATABLE READ transaction with search_path = pg_catalog. */
async function withCatalogTx<T>(source: Db | pg.ClientBase, fn: (q: Q) => Promise<T>): Promise<T> {
  const run = (client: pg.ClientBase) => fn(async <R extends pg.QueryResultRow>(sql: string, params?: unknown[]) => (await client.query<R>(sql, params)).rows);
  const opts = { isolation: 'repeatable read', searchPath: 'pg_catalog' } as const;
  return source instanceof Db ? source.readOnly(run, opts) : readOnlyTx(source, run, opts);
}

/** The catalog of the given schemas (default: every user schema except pgshift's own). */
export async function takeSnapshot(source: Db | pg.ClientBase, opts: { schemas?: readonly string[] } = {}): Promise<CatalogSnapshot> {
  return withCatalogTx(source, (q) => collect(q, opts.schemas ? [...opts.schemas] : null));
}

const show = (v: unknown): string => (v === null || v === undefined ? '∅' : typeof v === 'string' ? v : JSON.stringify(v));

/** Human-readable differences from `a` (before) to `b` (after); [] when the catalogs match. */
export function diffSnapshots(a: CatalogSnapshot, b: CatalogSnapshot): string[] {
  const out: string[] = [];
  const keys = [...new Set([...Object.keys(a.objects), ...Object.keys(b.objects)])].sort();
  for (const k of keys) {
    const x = a.objects[k];
    const y = b.objects[k];
    if (x && !y) out.push(`missing: ${k} (existed before)`);
    else if (!x && y) out.push(`extra: ${k} (did not exist before)`);
    else if (x && y) {
      for (const f of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
        const vx = JSON.stringify(x[f] ?? null);
        const vy = JSON.stringify(y[f] ?? null);
        if (vx !== vy) out.push(`changed: ${k} ${f}: ${show(x[f])} → ${show(y[f])}`);
      }
    }
  }
  return out;
}

/** Objects present in `after` and not in `before`, grouped by kind (for the rollback of what the migration created). */
export function createdObjects(before: CatalogSnapshot, after: CatalogSnapshot): { kind: string; name: string; info: Record<string, unknown> }[] {
  return Object.keys(after.objects)
    .filter((k) => !(k in before.objects))
    .map((k) => {
      const kind = KINDS.find((x) => k.startsWith(x + ' '))!;
      return { kind, name: k.slice(kind.length + 1), info: after.objects[k]! };
    });
}

const KINDS = ['materialized view', 'foreign table', 'foreign key', 'table', 'view', 'sequence', 'relation', 'column', 'constraint', 'index', 'trigger', 'policy', 'function'];

/** Row count and an order-independent content hash of a table (md5 over the sorted md5 of each row's text). */
export async function tableFingerprint(source: Db | pg.ClientBase, schema: string, table: string): Promise<{ rows: number; hash: string }> {
  const { qname } = await import('./db/quote.js');
  const sql = `SELECT count(*)::bigint AS rows, md5(coalesce(string_agg(h, '' ORDER BY h), '')) AS hash
                 FROM (SELECT md5(t::text) AS h FROM ${qname(schema, table)} t) x`;
  const isDb = (source as Db).pool !== undefined;
  const rows = isDb ? await (source as Db).read<{ rows: string; hash: string }>(sql) : (await (source as pg.ClientBase).query<{ rows: string; hash: string }>(sql)).rows;
  return { rows: Number(rows[0]!.rows), hash: rows[0]!.hash };
}
