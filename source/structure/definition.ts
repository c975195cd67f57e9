import type pg from 'pg';
import type { Db } from '../db/session.js';

/** A table's definition as the catalog holds it (what `LIKE … INCLUDING ALL` would copy, and what it would not). */
export interface ColumnDef {
  readonly num: number;
  readonly name: string;
  /** format_type: already quoted where needed, e.g. numeric(6,2), "My Type" */
  readonly type: string;
  readonly notNull: boolean;
  /** pg_get_expr of the default (with search_path = pg_catalog, so every name in it is schema-qualified) */
  readonly default: string | null;
  /** 'a' ALWAYS, 'd' BY DEFAULT, '' none */
  readonly identity: '' | 'a' | 'd';
  readonly identityOptions?: { start: string; increment: string; min: string; max: string; cache: string; cycle: boolean };
  /** 's' stored generated column */
  readonly generated: '' | 's';
  /** non-default collation: schema and name */
  readonly collation: { schema: string; name: string } | null;
  readonly comment: string | null;
  /** the sequence a serial-style nextval default uses, and whether this column owns it */
  readonly ownedSequence: string | null;
}

export interface ConstraintDef {
  readonly name: string;
  /** p primary key, u unique, c check, f foreign key, x exclusion */
  readonly type: 'p' | 'u' | 'c' | 'f' | 'x';
  readonly definition: string;
  readonly columns: string[];
  readonly includeColumns: string[];
  readonly deferrable: boolean;
  readonly deferred: boolean;
  readonly noInherit: boolean;
  readonly nullsNotDistinct: boolean;
  readonly referencesSelf: boolean;
  readonly comment: string | null;
}

export interface IndexDef {
  readonly name: string;
  readonly definition: string;
  readonly unique: boolean;
  readonly hasExpressions: boolean;
  /** the exact prefix pg_get_indexdef starts with: CREATE [UNIQUE ]INDEX <name> ON <qualified table> USING */
  readonly prefix: string;
  readonly method: string;
  readonly keyColumns: string[];
}

export interface TriggerDef {
  readonly name: string;
  readonly definition: string;
  readonly rowLevel: boolean;
  readonly enabled: string;
}

export interface PolicyDef {
  readonly name: string;
  readonly command: 'r' | 'a' | 'w' | 'd' | '*';
  readonly permissive: boolean;
  /** role names; 'PUBLIC' for public */
  readonly roles: string[];
  readonly using: string | null;
  readonly withCheck: string | null;
}

export interface GrantDef {
  readonly grantee: string; // 'PUBLIC' or a role name
  readonly privilege: string;
  readonly grantable: boolean;
  /** column-level grant */
  readonly column?: string;
}

export interface TableDef {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** quote_ident(schema).quote_ident(name): how the catalog's deparsers print it */
  readonly printedName: string;
  readonly owner: string;
  readonly relkind: string;
  readonly columns: ColumnDef[];
  readonly constraints: ConstraintDef[];
  readonly indexes: IndexDef[];
  readonly triggers: TriggerDef[];
  readonly policies: PolicyDef[];
  readonly rls: boolean;
  readonly forceRls: boolean;
  readonly grants: GrantDef[];
  readonly comment: string | null;
  /** storage and planner properties LIKE/PARTITION OF do not carry (absent when read by older code) */
  readonly props?: TableProps;
}

/** Properties of the table CREATE TABLE … PARTITION OF does not carry: each set explicitly or named as changed. */
export interface TableProps {
  readonly reloptions: string[] | null;
  /** d default, n nothing, f full, i index */
  readonly replicaIdentity: string;
  readonly replicaIndex: string | null;
  readonly columns: { name: string; statistics: number; storage: string; typeStorage: string; compression: string }[];
  /** pg_get_statisticsobjdef, its name, its own statistics target and comment */
  readonly extendedStats: { schema: string; name: string; definition: string; target: number; comment: string | null }[];
  /** every index of the table (constraint-backed ones too): storage parameters and comment */
  readonly indexes: { name: string; reloptions: string[] | null; comment: string | null }[];
  readonly triggerComments: { name: string; comment: string }[];
  readonly policyComments: { name: string; comment: string }[];
  /** CHECK constraints that are NOT VALID now */
  readonly notValidChecks: string[];
}

/**
 * Runs `fn` in a READ ONLY transaction with search_path = pg_catalog, so that every deparsed expression (defaults,
 * CHECKs, FK targets, policy quals, index and trigger definitions) comes out schema-qualified and means the same
 * thing whatever search_path the DDL later runs with.
 */
export async function withCatalogReader<T>(db: Db, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
  return db.readOnly(fn, { searchPath: 'pg_catalog, pg_temp' });
}

export async function readTableDef(db: Db, schema: string, name: string): Promise<TableDef | null> {
  return withCatalogReader(db, (c) => readTableDefWith(c, schema, name));
}

export async function readTableDefWith(c: pg.ClientBase, schema: string, name: string): Promise<TableDef | null> {
  const t = await c.query<{ oid: number; printed: string; owner: string; relkind: string; rls: boolean; force: boolean; comment: string | null }>(
    `SELECT c.oid::int AS oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS printed,
            pg_get_userbyid(c.relowner) AS owner, c.relkind::text AS relkind,
            c.relrowsecurity AS rls, c.relforcerowsecurity AS force, obj_description(c.oid, 'pg_class') AS comment
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [schema, name],
  );
  const tr = t.rows[0];
  if (!tr) return null;
  const oid = tr.oid;

  const cols = await c.query<{
    num: number; name: string; type: string; notnull: boolean; def: string | null; identity: string; generated: string;
    coll_schema: string | null; coll_name: string | null; comment: string | null; owned_seq: string | null;
    seqstart: string | null; seqincrement: string | null; seqmin: string | null; seqmax: string | null; seqcache: string | null; seqcycle: boolean | null;
  }>(
    `SELECT a.attnum::int AS num, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
            pg_get_expr(d.adbin, d.adrelid) AS def, a.attidentity::text AS identity, a.attgenerated::text AS generated,
            CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN cn.nspname END AS coll_schema,
            CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN co.collname END AS coll_name,
            col_description(a.attrelid, a.attnum) AS comment,
            pg_get_serial_sequence(quote_ident($2) || '.' || quote_ident($3), a.attname) AS owned_seq,
            s.seqstart::text, s.seqincrement::text, s.seqmin::text, s.seqmax::text, s.seqcache::text, s.seqcycle
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       LEFT JOIN pg_collation co ON co.oid = a.attcollation
       LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
       LEFT JOIN pg_depend dep ON a.attidentity <> '' AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum
                               AND dep.classid = 'pg_class'::regclass AND dep.deptype = 'i'
       LEFT JOIN pg_sequence s ON s.seqrelid = dep.objid
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oid, schema, name],
  );
  const columns: ColumnDef[] = cols.rows.map((r) => ({
    num: r.num, name: r.name, type: r.type, notNull: r.notnull, default: r.def,
    identity: (r.identity || '') as ColumnDef['identity'], generated: (r.generated || '') as ColumnDef['generated'],
    collation: r.coll_schema && r.coll_name ? { schema: r.coll_schema, name: r.coll_name } : null,
    comment: r.comment, ownedSequence: r.owned_seq,
    identityOptions: r.identity && r.seqstart !== null
      ? { start: r.seqstart, increment: r.seqincrement!, min: r.seqmin!, max: r.seqmax!, cache: r.seqcache!, cycle: !!r.seqcycle }
      : undefined,
  }));
  const colName = new Map(columns.map((x) => [x.num, x.name]));

  const cons = await c.query<{
    name: string; type: string; def: string; conkey: number[] | null; deferrable: boolean; deferred: boolean; noinherit: boolean;
    nkey: number | null; indkey: string | null; nnd: boolean | null; self: boolean; comment: string | null;
  }>(
    `SELECT con.conname AS name, con.contype::text AS type, pg_get_constraintdef(con.oid) AS def, con.conkey::int[] AS conkey,
            con.condeferrable AS deferrable, con.condeferred AS deferred, con.connoinherit AS noinherit,
            i.indnkeyatts::int AS nkey, i.indkey::text AS indkey,
            ${'(SELECT (to_jsonb(i) ->> \'indnullsnotdistinct\')::boolean)'} AS nnd,
            (con.contype = 'f' AND con.confrelid = con.conrelid) AS self,
            obj_description(con.oid, 'pg_constraint') AS comment
       FROM pg_constraint con
       LEFT JOIN pg_index i ON i.indexrelid = con.conindid AND con.contype IN ('p', 'u', 'x')
      WHERE con.conrelid = $1 AND con.contype IN ('p', 'u', 'c', 'f', 'x')
      ORDER BY CASE con.contype WHEN 'p' THEN 0 WHEN 'u' THEN 1 WHEN 'c' THEN 2 WHEN 'x' THEN 3 ELSE 4 END, con.conname`,
    [oid],
  );
  const constraints: ConstraintDef[] = cons.rows.map((r) => {
    const indkey = r.indkey ? r.indkey.split(' ').map(Number) : [];
    const include = r.nkey !== null ? indkey.slice(r.nkey).map((n) => colName.get(n) ?? String(n)) : [];
    return {
      name: r.name, type: r.type as ConstraintDef['type'], definition: r.def,
      columns: (r.conkey ?? []).map((n) => colName.get(n) ?? String(n)), includeColumns: include,
      deferrable: r.deferrable, deferred: r.deferred, noInherit: r.noinherit, nullsNotDistinct: !!r.nnd,
      referencesSelf: r.self, comment: r.comment,
    };
  });

  const idx = await c.query<{ name: string; def: string; unique: boolean; exprs: boolean; prefix: string; method: string; keycols: string[] }>(
    `SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def, i.indisunique AS unique,
            i.indexprs IS NOT NULL AS exprs, am.amname AS method,
            'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(ic.relname) || ' ON '
              || quote_ident(n.nspname) || '.' || quote_ident(tc.relname) || ' USING ' AS prefix,
            ARRAY(SELECT a.attname::text FROM unnest(i.indkey[0:i.indnkeyatts - 1]) k JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k) AS keycols
       FROM pg_index i
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_class tc ON tc.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = tc.relnamespace
       JOIN pg_am am ON am.oid = ic.relam
      WHERE i.indrelid = $1
        AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid)
      ORDER BY ic.relname`,
    [oid],
  );
  const indexes: IndexDef[] = idx.rows.map((r) => ({
    name: r.name, definition: r.def, unique: r.unique, hasExpressions: r.exprs, prefix: r.prefix, method: r.method, keyColumns: r.keycols,
  }));

  const trg = await c.query<{ name: string; def: string; row: boolean; enabled: string }>(
    `SELECT tgname AS name, pg_get_triggerdef(oid) AS def, (tgtype & 1) = 1 AS row, tgenabled::text AS enabled
       FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal AND tgname NOT LIKE 'pgshift%'
      ORDER BY tgname`,
    [oid],
  );
  const triggers: TriggerDef[] = trg.rows.map((r) => ({ name: r.name, definition: r.def, rowLevel: r.row, enabled: r.enabled }));

  const pol = await c.query<{ name: string; cmd: string; permissive: boolean; roles: string[]; qual: string | null; wc: string | null }>(
    `SELECT p.polname AS name, p.polcmd::text AS cmd, p.polpermissive AS permissive,
            ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r ORDER BY 1) AS roles,
            pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS wc
       FROM pg_policy p WHERE p.polrelid = $1 ORDER BY p.polname`,
    [oid],
  );
  const policies: PolicyDef[] = pol.rows.map((r) => ({
    name: r.name, command: r.cmd as PolicyDef['command'], permissive: r.permissive, roles: r.roles, using: r.qual, withCheck: r.wc,
  }));

  const gr = await c.query<{ grantee: string; privilege: string; grantable: boolean; col: string | null }>(
    `SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS grantee, a.privilege_type AS privilege,
            a.is_grantable AS grantable, NULL::text AS col
       FROM pg_class c, aclexplode(c.relacl) a
      WHERE c.oid = $1 AND a.grantee <> c.relowner
     UNION ALL
     SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END, a.privilege_type, a.is_grantable, att.attname::text
       FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid, aclexplode(att.attacl) a
      WHERE att.attrelid = $1 AND att.attnum > 0 AND NOT att.attisdropped AND a.grantee <> c.relowner
      ORDER BY 4 NULLS FIRST, 1, 2`,
    [oid],
  );
  const grants: GrantDef[] = gr.rows.map((r) => ({ grantee: r.grantee, privilege: r.privilege, grantable: r.grantable, column: r.col ?? undefined }));

  const [rel] = (await c.query<{ opts: string[] | null; ident: string; ridx: string | null }>(
    `SELECT c.reloptions::text[] AS opts, c.relreplident::text AS ident,
            (SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid AND i.indisreplident) AS ridx
       FROM pg_class c WHERE c.oid = $1`, [oid],
  )).rows;
  const cp = await c.query<{ name: string; st: number; storage: string; tstorage: string; compression: string }>(
    `SELECT a.attname AS name, coalesce(a.attstattarget::int, -1) AS st, a.attstorage::text AS storage, t.typstorage::text AS tstorage,
            coalesce((to_jsonb(a) ->> 'attcompression'), '') AS compression
       FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, [oid],
  );
  const xs = await c.query<{ schema: string; name: string; def: string; target: number | null; comment: string | null }>(
    `SELECT n.nspname AS schema, s.stxname AS name, pg_get_statisticsobjdef(s.oid) AS def, (to_jsonb(s) ->> 'stxstattarget')::int AS target,
            obj_description(s.oid, 'pg_statistic_ext') AS comment
       FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE s.stxrelid = $1 ORDER BY s.stxname`, [oid],
  );
  const ip = await c.query<{ name: string; opts: string[] | null; comment: string | null }>(
    `SELECT ic.relname AS name, ic.reloptions::text[] AS opts, obj_description(ic.oid, 'pg_class') AS comment
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 ORDER BY 1`, [oid],
  );
  const tc = await c.query<{ name: string; comment: string }>(
    `SELECT tgname AS name, obj_description(oid, 'pg_trigger') AS comment FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal AND obj_description(oid, 'pg_trigger') IS NOT NULL`, [oid],
  );
  const pc = await c.query<{ name: string; comment: string }>(
    `SELECT polname AS name, obj_description(oid, 'pg_policy') AS comment FROM pg_policy WHERE polrelid = $1 AND obj_description(oid, 'pg_policy') IS NOT NULL`, [oid],
  );
  const nv = await c.query<{ name: string }>(`SELECT conname AS name FROM pg_constraint WHERE conrelid = $1 AND contype = 'c' AND NOT convalidated ORDER BY 1`, [oid]);
  const props: TableProps = {
    reloptions: rel?.opts ?? null, replicaIdentity: rel?.ident ?? 'd', replicaIndex: rel?.ridx ?? null,
    columns: cp.rows.map((r) => ({ name: r.name, statistics: r.st, storage: r.storage, typeStorage: r.tstorage, compression: r.compression })),
    extendedStats: xs.rows.map((r) => ({ schema: r.schema, name: r.name, definition: r.def, target: r.target ?? -1, comment: r.comment })),
    indexes: ip.rows.map((r) => ({ name: r.name, reloptions: r.opts, comment: r.comment })),
    triggerComments: tc.rows, policyComments: pc.rows, notValidChecks: nv.rows.map((r) => r.name),
  };
  return {
    oid, schema, name, printedName: tr.printed, owner: tr.owner, relkind: tr.relkind, columns, constraints, indexes, triggers, policies,
    rls: tr.rls, forceRls: tr.force, grants, comment: tr.comment, props,
  };
}
