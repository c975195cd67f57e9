import type pg from 'pg';
import type { Db } from '../db/session.js';
import type { TablePlan } from '../plan/schema.js';
import { ident, parseQualified, qname } from '../db/quote.js';
import { withCatalogReader } from '../structure/definition.js';
import { rootOf } from '../preflight.js';

/**
 * Phase 4's discovery: everything that binds to the source table by OID and must follow it at the swap (views,
 * materialized views, inbound foreign keys, owned sequences, identity), plus what the catalog does not track
 * (functions naming the table in their body). Recorded as artifact `dependencies:<schema.table>`.
 */

export interface ViewDep {
  readonly schema: string;
  readonly name: string;
  readonly kind: 'v' | 'm';
  /** 1 = reads the table itself; n = through n-1 other views */
  readonly depth: number;
  /** pg_get_viewdef taken with search_path = pg_catalog: every name schema-qualified, the table by its original name */
  readonly definition: string;
  readonly owner: string;
  readonly options: string[] | null;
  readonly acl: string[] | null;
  readonly comment: string | null;
  /** materialized views only: they are dropped and created again, so their grants, indexes and comment are re-applied */
  readonly grants: string[];
  readonly indexes: string[];
  /**
   * materialized views only, measured by phase 4 (EXPLAIN ANALYZE of the definition, on the table as it is then): how
   * long its query takes, i.e. the least time the swap's CREATE MATERIALIZED VIEW … WITH DATA adds under the lock;
   * null when it ran past the measuring limit.
   */
  readonly refreshMs?: number | null;
  readonly refreshRows?: number;
  /** why it could not be measured (the query failed in a READ ONLY transaction, e.g. it calls a writing function) */
  readonly measureError?: string;
  /** materialized views only: false when it was created WITH NO DATA and never refreshed (re-created the same way) */
  readonly populated?: boolean;
}

export interface FkPlan {
  /** referencing table */
  readonly schema: string;
  readonly table: string;
  readonly name: string;
  /** pg_get_constraintdef of the FK as it is now (qualified): re-created from it by a rollback after the swap */
  readonly oldDefinition: string;
  readonly columns: string[];
  readonly refColumns: string[];
  /** referencing columns of the new FK: the old ones + the column holding the partition key */
  readonly newColumns: string[];
  readonly newRefColumns: string[];
  /** MATCH / ON UPDATE / ON DELETE / DEFERRABLE clauses, kept as they were */
  readonly clauses: string;
  readonly validated: boolean;
  /** behaviour changes of the new FK, said before the swap (phase 4 warnings, the swap confirmation) */
  readonly changes?: string[];
  /** the clauses of the FK as it was (a swap back re-creates it with these; `clauses` may have gained MATCH FULL) */
  readonly oldClauses?: string;
}

export interface SeqPlan {
  readonly column: string;
  readonly seqSchema: string;
  readonly seqName: string;
  readonly kind: 'serial' | 'identity';
  /** the sequence is OWNED BY the old table's column (serial): ownership moves at the swap */
  readonly ownedByOld: boolean;
  /** max(column) is beyond the sequence (explicit ids were inserted): the swap takes max() under the lock */
  readonly scanMax: boolean;
}

export interface DependencyRecord {
  readonly at: string;
  readonly table: string;
  readonly target: string;
  readonly views: ViewDep[];
  readonly functions: string[];
  readonly fks: FkPlan[];
  readonly sequences: SeqPlan[];
  /** publications listing the table itself (not FOR ALL TABLES ones): a publication holds the table by OID */
  readonly publications?: string[];
}

type Q = (sql: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

/** Catalog reads with search_path = pg_catalog (phase 2's reader), so view definitions come out schema-qualified. */
export async function withPgCatalogPath<T>(db: Db, fn: (q: Q) => Promise<T>): Promise<T> {
  return withCatalogReader(db, (c) => fn(async (sql, params) => (await c.query(sql, params as unknown[])).rows as Record<string, unknown>[]));
}

export async function relOid(db: Db | pg.ClientBase, schema: string, name: string): Promise<number | null> {
  const sql = `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`;
  const rows = 'pool' in db ? await db.read<{ oid: number }>(sql, [schema, name]) : (await db.query<{ oid: number }>(sql, [schema, name])).rows;
  return rows[0] ? Number(rows[0].oid) : null;
}

/** Views and materialized views reading the relation, recursively, in the order to re-create them. */
export async function dependentViews(q: Q, oid: number): Promise<ViewDep[]> {
  const rows = await q(
    `WITH RECURSIVE deps(oid, depth) AS (
       SELECT DISTINCT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND r.ev_class <> $1
       UNION
       SELECT DISTINCT r.ev_class, deps.depth + 1 FROM deps
         JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = deps.oid AND d.classid = 'pg_rewrite'::regclass
         JOIN pg_rewrite r ON r.oid = d.objid
        WHERE r.ev_class <> deps.oid AND deps.depth < 50
     )
     SELECT c.oid, n.nspname AS s, c.relname AS n, c.relkind AS k, max(deps.depth) AS depth, pg_get_viewdef(c.oid, true) AS def,
            pg_get_userbyid(c.relowner) AS owner, c.reloptions::text[] AS options, c.relacl::text[] AS acl,
            obj_description(c.oid, 'pg_class') AS comment, c.relispopulated AS populated
       FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
      GROUP BY c.oid, n.nspname, c.relname, c.relkind, c.relowner, c.reloptions, c.relacl, c.relispopulated
      ORDER BY max(deps.depth), n.nspname, c.relname`,
    [oid],
  );
  const out: ViewDep[] = [];
  for (const r of rows) {
    const kind = r.k === 'm' ? 'm' : 'v';
    let grants: string[] = [];
    let indexes: string[] = [];
    if (kind === 'm') {
      const g = await q(
        `SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS priv, a.is_grantable AS g
           FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1 AND a.grantee <> c.relowner`,
        [r.oid],
      );
      grants = g.map((x) => `GRANT ${String(x.priv)} ON ${qname(String(r.s), String(r.n))} TO ${x.grantee === 'PUBLIC' ? 'PUBLIC' : ident(String(x.grantee))}${x.g ? ' WITH GRANT OPTION' : ''}`);
      const ix = await q(`SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = $1 ORDER BY indexrelid`, [r.oid]);
      indexes = ix.map((x) => String(x.def));
    }
    out.push({
      schema: String(r.s), name: String(r.n), kind, depth: Number(r.depth), definition: String(r.def).trim().replace(/;$/, ''),
      owner: String(r.owner), options: (r.options as string[] | null) ?? null, acl: (r.acl as string[] | null) ?? null,
      comment: (r.comment as string | null) ?? null, grants, indexes, ...(kind === 'm' ? { populated: r.populated !== false } : {}),
    });
  }
  return out;
}

/**
 * Times each materialized view's query now (EXPLAIN ANALYZE in a READ ONLY transaction, bounded by statement_timeout):
 * the swap drops it and creates it again WITH DATA inside its ACCESS EXCLUSIVE transaction (a materialized view is
 * bound to the table's OID and holds rows computed from it; there is no "re-point"), so that query runs under the lock.
 */
export async function measureMaterializedViews(db: Db, views: readonly ViewDep[], opts: { limitMs: number; stepId?: string | null; signal?: AbortSignal }): Promise<ViewDep[]> {
  const out: ViewDep[] = [];
  for (const v of views) {
    if (v.kind !== 'm' || v.populated === false) { out.push(v); continue; }
    try {
      const r = await db.tx(async (tx) => {
        await tx.query('SET TRANSACTION READ ONLY');
        const t0 = performance.now();
        const x = await tx.query<{ 'QUERY PLAN': [{ 'Execution Time': number; Plan: { 'Actual Rows': number } }] }>(`EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ${v.definition}`);
        const plan = x.rows[0]!['QUERY PLAN'][0];
        return { ms: Math.max(Math.round(plan['Execution Time']), Math.round(performance.now() - t0)), rows: Number(plan.Plan['Actual Rows']) };
      }, { stepId: opts.stepId ?? null, statementTimeoutMs: opts.limitMs, signal: opts.signal });
      out.push({ ...v, refreshMs: r.ms, refreshRows: r.rows });
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      if ((e as { code?: string }).code === '57014') out.push({ ...v, refreshMs: null });
      else out.push({ ...v, measureError: (e as Error).message });
    }
  }
  return out;
}

/** Functions in user schemas whose body names the table (the catalog does not track these: a warning only). */
export async function functionsNaming(db: Db, t: TablePlan): Promise<string[]> {
  const rows = await db.read<{ f: string }>(
    `SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgshift') AND p.prosrc ~* ('\\m' || $1 || '\\M')
      ORDER BY 1`,
    [t.table.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')],
  );
  return rows.map((r) => r.f);
}

/** Inbound foreign keys of the source, and how each is carried to the new table (which needs the partition key). */
export async function planInboundFks(db: Db, q: Q, t: TablePlan, oid: number, targetOid: number | null): Promise<{ fks: FkPlan[]; problems: string[] }> {
  const rows = await q(
    `SELECT n.nspname AS s, c.relname AS n, k.conrelid::int AS relid, k.conname, pg_get_constraintdef(k.oid) AS def, k.convalidated AS valid,
            k.confmatchtype AS m, k.confupdtype AS u, k.confdeltype AS d, k.condeferrable AS deferrable, k.condeferred AS deferred,
            ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY x(n, i) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n ORDER BY x.i) AS cols,
            ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY x(n, i) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n ORDER BY x.i) AS refcols
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE k.contype = 'f' AND k.confrelid = $1 AND k.conparentid = 0 AND k.conrelid <> $1
      ORDER BY n.nspname, c.relname, k.conname`,
    [oid],
  );
  const fks: FkPlan[] = [];
  const problems: string[] = [];
  const keyType = rows.length
    ? (((await q(`SELECT format_type(a.atttypid, a.atttypmod) AS t FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2`, [oid, t.key])) as { t: string }[])[0]?.t ?? '')
    : '';
  const action = (x: unknown) => ({ a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' } as Record<string, string>)[String(x)] ?? 'NO ACTION';
  for (const r of rows) {
    const schema = String(r.s), table = String(r.n);
    const cols = r.cols as string[], refcols = r.refcols as string[];
    let newColumns = [...cols];
    let newRefColumns = [...refcols];
    let matchFull = r.m === 'f';
    const changes: string[] = [];
    if (!refcols.includes(t.key)) {
      // a partition's FK: the mapping may name its partitioned parent (where the column was added)
      const root = await rootOf(db, Number(r.relid));
      const mapped = t.inboundKeyColumns[`${schema}.${table}`] ?? t.inboundKeyColumns[table] ?? t.inboundKeyColumns[`${root.schema}.${root.name}`];
      const candidate = mapped ?? t.key;
      const has = await db.read<{ ok: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped) AS ok`,
        [schema, table, candidate],
      );
      // addKeyColumns: phase 2 adds the column to the partitioned parent; the dry run plans with it
      const willAdd = t.addKeyColumns.some((x) => { try { const q2 = parseQualified(x); return (q2.schema === root.schema && q2.name === root.name) || (q2.schema === schema && q2.name === table); } catch { return false; } });
      if (!has[0]!.ok && !willAdd) {
        const refWhere = refcols.map((c, i) => `s.${ident(c)} = r.${ident(cols[i]!)}`).join(' AND ');
        problems.push(
          `${schema}.${table}.${String(r.conname)} references ${t.schema}.${t.table}(${refcols.join(', ')}), but ${schema}.${table} has no column ` +
            `${mapped ? `"${mapped}" (from inboundKeyColumns)` : `named like the partition key "${t.key}"`}: a foreign key to a partitioned table ` +
            `must reference a unique key that includes the partition key (${[...refcols, t.key].join(', ')}). ` +
            `Add a column "${candidate}" (${keyType}) to ${schema}.${table} holding the ${t.key} of the referenced row, e.g. ` +
            `ALTER TABLE ${qname(schema, table)} ADD COLUMN ${ident(candidate)} ${keyType}; ` +
            `UPDATE ${qname(schema, table)} r SET ${ident(candidate)} = s.${ident(t.key)} FROM ${qname(t.schema, t.table)} s WHERE ${refWhere}; ` +
            `${mapped ? '' : `or, if it already has such a column under another name, set partition[].inboundKeyColumns["${schema}.${table}"] to it in the plan`}`.trim(),
        );
        continue;
      }
      newColumns = [...cols, candidate];
      newRefColumns = [...refcols, t.key];
      const [nn] = !has[0]!.ok ? [{ notnull: false }] : await db.read<{ notnull: boolean }>(
        `SELECT a.attnotnull OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c' AND k.convalidated
                 AND pg_get_constraintdef(k.oid) ~ ('^CHECK \\(\\(?' || quote_ident(a.attname) || ' IS NOT NULL\\)?\\)$')) AS notnull
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3`,
        [schema, table, candidate],
      );
      const fk = `${schema}.${table}.${String(r.conname)}`;
      changes.push(`${fk}: the FK becomes (${newColumns.join(', ')}) → ${t.schema}.${t.table} (${newRefColumns.join(', ')}); updating ${t.key} of a ${t.schema}.${t.table} row that is referenced now fails ("still referenced") — before the swap it succeeded`);
      if (!matchFull && !nn!.notnull) {
        // MATCH SIMPLE skips the check when any column is NULL: a row with (${cols}) set and a NULL key column would
        // never be checked. MATCH FULL refuses exactly that row, so the FK keeps refusing what it refused before.
        matchFull = true;
        changes.push(
          `${fk}: re-created MATCH FULL (was MATCH SIMPLE) because ${candidate} is nullable — MATCH SIMPLE would skip any row whose ${candidate} is NULL, so an orphan (${cols.join(', ')}) would be accepted; ` +
            `MATCH FULL refuses a row with (${cols.join(', ')}) set and ${candidate} NULL` +
            (cols.length > 1 ? `, and also a row where only some of (${cols.join(', ')}) are NULL (MATCH SIMPLE accepted those unchecked)` : ''),
        );
      }
    }
    if (targetOid !== null) {
      const uk = await q(
        `SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
             AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum = ANY(i.indkey))
                 = (SELECT array_agg(x ORDER BY x) FROM unnest($2::text[]) x)) AS ok`,
        [targetOid, newRefColumns],
      );
      if (!uk[0]!.ok) {
        problems.push(`${t.schema}.${t.targetName} has no primary key or unique constraint on (${newRefColumns.join(', ')}) for ${schema}.${table}.${String(r.conname)} to reference`);
      }
    }
    const clausesOf = (full: boolean) => [
      full ? 'MATCH FULL' : '',
      r.u !== 'a' ? `ON UPDATE ${action(r.u)}` : '',
      r.d !== 'a' ? `ON DELETE ${action(r.d)}` : '',
      r.deferrable ? `DEFERRABLE INITIALLY ${r.deferred ? 'DEFERRED' : 'IMMEDIATE'}` : '',
    ].filter(Boolean).join(' ');
    const clauses = clausesOf(matchFull);
    if (r.u !== 'a' || r.d !== 'a') changes.push(`${schema}.${table}.${String(r.conname)}: ON UPDATE ${action(r.u)} / ON DELETE ${action(r.d)} kept`);
    fks.push({ schema, table, name: String(r.conname), oldDefinition: String(r.def), columns: cols, refColumns: refcols, newColumns, newRefColumns, clauses, oldClauses: clausesOf(r.m === 'f'), validated: !!r.valid, changes });
  }
  return { fks, problems };
}

/** Referencing rows whose partition-key column disagrees with the referenced row: the new FK would not validate. */
export async function fkMismatches(db: Db, t: TablePlan, fk: FkPlan): Promise<number> {
  if (fk.newColumns.length === fk.columns.length) return 0;
  const on = fk.newColumns.map((c, i) => `s.${ident(fk.newRefColumns[i]!)} = r.${ident(c)}`).join(' AND ');
  const notNull = fk.newColumns.map((c) => `r.${ident(c)} IS NOT NULL`).join(' AND ');
  const rows = await db.read<{ n: string }>(
    `SELECT count(*) AS n FROM ${qname(fk.schema, fk.table)} r WHERE ${notNull}
        AND NOT EXISTS (SELECT 1 FROM ${qname(t.schema, t.table)} s WHERE ${on})`,
  );
  return Number(rows[0]!.n);
}

/** Under MATCH FULL: referencing rows with every old column set but the added key column NULL (the new FK would refuse them). */
export async function fkNullKeys(db: Db, fk: FkPlan): Promise<number> {
  if (fk.newColumns.length === fk.columns.length || !/MATCH FULL/.test(fk.clauses)) return 0;
  const set = fk.columns.map((c) => `r.${ident(c)} IS NOT NULL`).join(' AND ');
  const rows = await db.read<{ n: string }>(`SELECT count(*) AS n FROM ${qname(fk.schema, fk.table)} r WHERE ${set} AND r.${ident(fk.newColumns.at(-1)!)} IS NULL`);
  return Number(rows[0]!.n);
}

/** The statement adding the new FK (NOT VALID) against `refTable` (the table under the original name after the swap). */
export function addFkSql(fk: FkPlan, refSchema: string, refTable: string): string {
  return `ALTER TABLE ${qname(fk.schema, fk.table)} ADD CONSTRAINT ${ident(fk.name)} FOREIGN KEY (${fk.newColumns.map(ident).join(', ')}) ` +
    `REFERENCES ${qname(refSchema, refTable)} (${fk.newRefColumns.map(ident).join(', ')})${fk.clauses ? ' ' + fk.clauses : ''} NOT VALID`;
}

/** Serial and identity columns of the source and their sequences. */
export async function planSequences(db: Db, t: TablePlan, oid: number): Promise<SeqPlan[]> {
  const rows = await db.read<{ col: string; seq_schema: string; seq_name: string; identity: string; owned: boolean }>(
    `SELECT a.attname AS col, a.attidentity AS identity, sn.nspname AS seq_schema, sc.relname AS seq_name,
            EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = sc.oid AND d.refobjid = $1
                     AND d.refobjsubid = a.attnum AND d.deptype = 'a') AS owned
       FROM pg_attribute a
       CROSS JOIN LATERAL (SELECT pg_get_serial_sequence($2, a.attname)::regclass AS seq) s
       JOIN pg_class sc ON sc.oid = s.seq JOIN pg_namespace sn ON sn.oid = sc.relnamespace
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oid, qname(t.schema, t.table)],
  );
  const out: SeqPlan[] = [];
  for (const r of rows) {
    const m = await db.read<{ beyond: boolean }>(
      `SELECT coalesce((SELECT max(${ident(r.col)})::numeric FROM ${qname(t.schema, t.table)}) >
               (SELECT last_value::numeric FROM ${qname(r.seq_schema, r.seq_name)}), false) AS beyond`,
    );
    out.push({
      column: r.col, seqSchema: r.seq_schema, seqName: r.seq_name, kind: r.identity ? 'identity' : 'serial', ownedByOld: r.owned, scanMax: m[0]!.beyond,
    });
  }
  return out;
}

/**
 * Privileges that differ between the source and the new table, table-level and column-level (by column name), as
 * GRANT statements for what the new table lacks and REVOKE statements for what it has beyond the source (granted
 * by phase 2 from the source as it was, then revoked there): after the swap the application must have exactly the
 * access it has now. The owners' own privileges are left out.
 */
export async function grantDiff(db: Db, t: TablePlan, targetName: string): Promise<{ grant: string[]; revoke: string[] }> {
  const rows = await db.read<{ dir: string; grantee: string; priv: string; col: string | null; g: boolean }>(
    `WITH acl AS (
       SELECT c.oid AS rel, NULL::text AS col, a.grantee, a.privilege_type AS priv, a.is_grantable AS g
         FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid IN ($1::regclass, $2::regclass) AND a.grantee <> c.relowner
       UNION ALL
       SELECT c.oid, att.attname::text, a.grantee, a.privilege_type, a.is_grantable
         FROM pg_class c JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL,
              aclexplode(att.attacl) a WHERE c.oid IN ($1::regclass, $2::regclass) AND a.grantee <> c.relowner
     ), src AS (SELECT * FROM acl WHERE rel = $1::regclass), dst AS (SELECT * FROM acl WHERE rel = $2::regclass)
     SELECT 'grant' AS dir, CASE WHEN s.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(s.grantee) END AS grantee, s.priv, s.col, s.g
       FROM src s WHERE NOT EXISTS (SELECT 1 FROM dst d WHERE d.grantee = s.grantee AND d.priv = s.priv AND d.col IS NOT DISTINCT FROM s.col AND (d.g OR NOT s.g))
     UNION ALL
     SELECT 'revoke', CASE WHEN d.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(d.grantee) END, d.priv, d.col, false
       FROM dst d WHERE NOT EXISTS (SELECT 1 FROM src s WHERE s.grantee = d.grantee AND s.priv = d.priv AND s.col IS NOT DISTINCT FROM d.col)
     ORDER BY 1, 2, 4 NULLS FIRST, 3`,
    [qname(t.schema, t.table), qname(t.schema, targetName)],
  );
  const on = (r: { priv: string; col: string | null }) => `${r.priv}${r.col === null ? '' : ` (${ident(r.col)})`} ON ${qname(t.schema, targetName)}`;
  const who = (g: string) => (g === 'PUBLIC' ? 'PUBLIC' : ident(g));
  return {
    grant: rows.filter((r) => r.dir === 'grant').map((r) => `GRANT ${on(r)} TO ${who(r.grantee)}${r.g ? ' WITH GRANT OPTION' : ''}`),
    revoke: rows.filter((r) => r.dir === 'revoke').map((r) => `REVOKE ${on(r)} FROM ${who(r.grantee)}`),
  };
}

/**
 * The swap must DROP and re-create each materialized view (there is no way to re-point one), and PostgreSQL refuses
 * that DROP while a view reads the materialized view: found now, not as an error under the swap's lock.
 */
async function readersOfMaterializedViews(q: Q, views: readonly ViewDep[]): Promise<string[]> {
  const out: string[] = [];
  for (const m of views.filter((v) => v.kind === 'm')) {
    const rows = await q(
      `SELECT DISTINCT n.nspname || '.' || c.relname AS reader
         FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = (SELECT x.oid FROM pg_class x JOIN pg_namespace xn ON xn.oid = x.relnamespace WHERE xn.nspname = $1 AND x.relname = $2)
          AND r.ev_class <> d.refobjid
        ORDER BY 1`,
      [m.schema, m.name],
    );
    for (const r of rows) {
      out.push(
        `${String(r.reader)} reads the materialized view ${m.schema}.${m.name}, which the swap must drop and create again (a materialized view holds rows of the old table and cannot be re-pointed); ` +
          `PostgreSQL refuses that DROP while ${String(r.reader)} depends on it. Drop ${String(r.reader)} before the swap and create it again afterwards, or make ${m.schema}.${m.name} a plain view`,
      );
    }
  }
  return out;
}

/** Everything phase 4 records for one table. */
export async function discoverDependencies(db: Db, t: TablePlan): Promise<{ record: DependencyRecord; problems: string[] }> {
  const oid = await relOid(db, t.schema, t.table);
  if (oid === null) throw new Error(`${t.schema}.${t.table} does not exist`);
  const targetOid = await relOid(db, t.schema, t.targetName);
  const { views, fks, problems } = await withPgCatalogPath(db, async (q) => {
    const views = await dependentViews(q, oid);
    const f = await planInboundFks(db, q, t, oid, targetOid);
    return { views, ...f, problems: [...f.problems, ...(await readersOfMaterializedViews(q, views))] };
  });
  const functions = await functionsNaming(db, t);
  const sequences = await planSequences(db, t, oid);
  const pubs = await db.read<{ p: string }>(
    `SELECT p.pubname::text AS p FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1 ORDER BY 1`, [oid],
  );
  return {
    record: {
      at: new Date().toISOString(), table: `${t.schema}.${t.table}`, target: `${t.schema}.${t.targetName}`, views, functions, fks, sequences,
      publications: pubs.map((x) => x.p),
    },
    problems,
  };
}

/**
 * Every behaviour change the swap brings, in words, for the swap's confirmation (and phase 4): the primary key and
 * unique constraints gaining the partition key, inbound FKs gaining it (partition-key updates of referenced rows
 * then fail), MATCH FULL where the added column is nullable, ON UPDATE/DELETE kept.
 */
export function behaviourChanges(
  deps: Pick<DependencyRecord, 'fks' | 'table' | 'publications'>,
  structureArtifact?: object | null,
): string[] {
  // phase 2's structure artifact (source/structure/build.ts) records these; older artifacts may lack them
  const structure = structureArtifact as { pkChange?: { from: string[]; to: string[] } | null; uniqueChanges?: { name: string; from: string[]; to: string[] }[] } | null | undefined;
  const out: string[] = [];
  const pk = structure?.pkChange;
  if (pk) {
    out.push(`behaviour change: the primary key of ${deps.table} becomes (${pk.to.join(', ')}) — (${pk.from.join(', ')}) alone is no longer unique across partitions (PostgreSQL cannot enforce it on a partitioned table; a unique index per partition does not either)`);
  }
  for (const u of structure?.uniqueChanges ?? []) {
    out.push(`behaviour change: unique ${u.name} becomes (${u.to.join(', ')}) — (${u.from.join(', ')}) alone is no longer unique across partitions`);
  }
  for (const f of deps.fks) for (const c of f.changes ?? []) out.push(`behaviour change: ${c}`);
  for (const p of deps.publications ?? []) {
    out.push(`publication ${p} is moved to the new ${deps.table} inside the swap (and back by a rollback); unless ${p} has publish_via_partition_root = true, its changes are published under the partitions' names: subscribers must have those tables`);
  }
  return out;
}

/**
 * Publications that list the table: the swap moves them to the table now under the original name (inside the swap
 * transaction), the swap back moves them back. Without publish_via_partition_root the partitioned table's changes are
 * published under its partitions' names (said before the swap).
 */
export function publicationSql(t: TablePlan, publications: readonly string[] | undefined, direction: 'forward' | 'back'): string[] {
  const away = qname(t.schema, direction === 'forward' ? t.oldName : t.targetName);
  const out: string[] = [];
  for (const p of publications ?? []) out.push(`ALTER PUBLICATION ${ident(p)} DROP TABLE ${away}`, `ALTER PUBLICATION ${ident(p)} ADD TABLE ${qname(t.schema, t.table)}`);
  return out;
}
