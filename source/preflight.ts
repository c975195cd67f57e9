import path from 'node:path';
import type { Db } from './db/session.js';
import { autoPartitionsOf, type Plan, type TablePlan } from './plan/schema.js';
import { ident as quoteI, parseQualified, qname } from './db/quote.js';
import { keyKind, rangeMismatch } from './structure/bounds.js';
import { freeBytes, toolVersion, type ToolVersion } from './backup.js';
import { fmtBytes } from './format.js';

export type CheckStatus = 'pass' | 'warn' | 'fail';
/** One preflight check; a failure carries a short cause (detail) and one hint (what to do). */
export interface Check { readonly check: string; readonly status: CheckStatus; readonly detail: string; readonly hint?: string }

export interface PreflightInput {
  readonly db: Db;
  readonly plan: Plan;
  readonly planDir: string;
  readonly tables: readonly TablePlan[];
  readonly serverMajor: number;
  /** environment used to find pg_dump/pg_restore (PATH) */
  readonly env?: NodeJS.ProcessEnv;
  /** --skip-backup: backup tool and disk problems only warn */
  readonly skipBackup?: boolean;
}

const pass = (check: string, detail: string): Check => ({ check, status: 'pass', detail });
const warn = (check: string, detail: string): Check => ({ check, status: 'warn', detail });
const fail = (check: string, detail: string, hint?: string): Check => (hint ? { check, status: 'fail', detail, hint } : { check, status: 'fail', detail });

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Server version against what the plan needs. */
export function versionChecks(major: number, tables: readonly TablePlan[], hasInboundFks: boolean, hasRowTriggers: boolean): Check[] {
  const out: Check[] = [];
  out.push(major >= 10
    ? pass('server version: declarative partitioning', `PostgreSQL ${major} (needs 10+)`)
    : fail('server version: declarative partitioning', `PostgreSQL ${major}: declarative partitioning needs 10+`));
  const wantsDefault = tables.some((t) => t.defaultPartition);
  if (wantsDefault) {
    out.push(major >= 11
      ? pass('server version: DEFAULT partitions', `PostgreSQL ${major} (needs 11+; also for primary keys on partitioned tables)`)
      : fail('server version: DEFAULT partitions', `PostgreSQL ${major}: DEFAULT partitions and primary keys on partitioned tables need 11+`));
  }
  if (hasInboundFks) {
    out.push(major >= 12
      ? pass('server version: FKs referencing a partitioned table', `PostgreSQL ${major} (needs 12+)`)
      : fail('server version: FKs referencing a partitioned table', `PostgreSQL ${major}: foreign keys that reference a partitioned table need 12+, and tables here are referenced`));
  }
  if (hasRowTriggers && major < 13) {
    out.push(warn('server version: row triggers', `PostgreSQL ${major}: BEFORE ROW triggers on a partitioned table need 13+; they will be left out and must be created per partition`));
  }
  return out;
}

/** The pg_dump/pg_restore check: found, and a major ≥ the server's (an older pg_dump refuses a newer server). */
export function toolCheck(tool: 'pg_dump' | 'pg_restore', v: ToolVersion | null, serverMajor: number): Check {
  const pkg = `postgresql-client-${serverMajor}`;
  if (!v) return fail(`${tool} found`, `${tool} is not on PATH`, `install ${pkg} (Debian/Ubuntu) or the PostgreSQL ${serverMajor} client tools, or put them first on PATH`);
  if (v.major < serverMajor) {
    return fail(`${tool} version`, `${tool} ${v.version} is older than the server (PostgreSQL ${serverMajor}): it refuses to dump a newer server`, `install ${pkg} and put its bin directory first on PATH`);
  }
  return pass(`${tool} version`, `${tool} ${v.version} (server ${serverMajor})`);
}

interface TableFacts {
  exists: boolean; oid: number; owner: string; canOwn: boolean; relkind: string;
  keyType: string | null; keyNotNull: boolean; keyNulls: boolean | null;
  /** how keyNulls is known: an index led by the key (exact), ANALYZE's sample (pg_stats), or not at all */
  keyNullsFrom: 'index' | 'statistics' | null;
  /** what identifies a row: the primary key, else a unique index on NOT NULL columns (no expressions, no WHERE) */
  rowKey: { kind: 'primary key' | 'unique index'; name: string; cols: string[] } | null;
  uniques: { name: string; type: string; cols: string[] }[];
  /** root: the partitioned parent when the referencing table is a partition (columns can only be added there) */
  inbound: { name: string; table: string; schema: string; rel: string; root: string; cols: string[]; hasCol: string | null; col: string }[];
  views: string[]; triggers: string[]; rowTriggers: number; policies: number; rls: boolean; grants: string[]; publications: string[];
  identity: string[]; ownedSeqs: string[]; rowsEst: number; bytes: number;
  /** CHECK constraints that are NOT VALID, with the number of rows violating them (the copy would be refused for those) */
  notValid: { name: string; violating: number }[];
}

async function tableFacts(db: Db, t: TablePlan): Promise<TableFacts | null> {
  const [r] = await db.read<{ oid: number; owner: string; can_own: boolean; relkind: string; rls: boolean; est: string; bytes: string }>(
    `SELECT c.oid::int AS oid, pg_get_userbyid(c.relowner)::text AS owner, pg_has_role(c.relowner, 'USAGE') AS can_own, c.relkind::text AS relkind,
            c.relrowsecurity AS rls, greatest(c.reltuples, 0)::bigint AS est, pg_total_relation_size(c.oid) AS bytes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [t.schema, t.table],
  );
  if (!r) return null;
  const oid = r.oid;
  const [k] = await db.read<{ type: string; notnull: boolean }>(
    `SELECT format_type(atttypid, atttypmod) AS type, attnotnull AS notnull FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped`,
    [oid, t.key],
  );
  const uniques = await db.read<{ name: string; type: string; cols: string[] }>(
    `SELECT conname AS name, contype::text AS type, ARRAY(SELECT attname::text FROM unnest(conkey) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = u.k ORDER BY u.o) AS cols
       FROM pg_constraint WHERE conrelid = $1 AND contype IN ('p', 'u') ORDER BY contype, conname`,
    [oid],
  );
  const rowKey = await rowKeyOf(db, oid);
  const inbound = await db.read<{ name: string; schema: string; table: string; rel: string; cols: string[]; relid: number }>(
    `SELECT con.conname AS name, con.conrelid::int AS relid, n.nspname::text AS schema, c.relname::text AS table, con.conrelid::regclass::text AS rel,
            ARRAY(SELECT attname::text FROM unnest(con.conkey) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = u.k ORDER BY u.o) AS cols
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE con.contype = 'f' AND con.confrelid = $1 AND con.conparentid = 0 ORDER BY 4, 1`,
    [oid],
  );
  const inb: TableFacts['inbound'] = [];
  for (const f of inbound) {
    const root = await rootOf(db, f.relid);
    const mapped = Object.entries(t.inboundKeyColumns).find(([k2]) => {
      try {
        const q = parseQualified(k2);
        return (q.schema === f.schema && q.name === f.table) || (q.schema === root.schema && q.name === root.name);
      } catch {
        return false;
      }
    })?.[1];
    const col = mapped ?? t.key;
    const [has] = await db.read<{ ok: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped) AS ok`,
      [f.relid, col],
    );
    inb.push({ name: f.name, schema: f.schema, table: f.table, rel: f.rel, root: `${root.schema}.${root.name}`, cols: f.cols, hasCol: has!.ok ? col : null, col });
  }
  const views = await db.read<{ v: string; kind: string }>(
    `SELECT DISTINCT v.oid::regclass::text AS v, v.relkind::text AS kind
       FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
      WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1 AND v.oid <> $1 ORDER BY 1`,
    [oid],
  );
  const trg = await db.read<{ name: string; row: boolean }>(
    `SELECT tgname::text AS name, (tgtype & 1) = 1 AS row FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY 1`, [oid],
  );
  const [pol] = await db.read<{ n: string }>(`SELECT count(*) AS n FROM pg_policy WHERE polrelid = $1`, [oid]);
  const grants = await db.read<{ g: string }>(
    `SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS g
       FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1 AND a.grantee <> c.relowner ORDER BY 1`, [oid],
  );
  const pubs = await db.read<{ p: string }>(
    `SELECT pubname::text AS p FROM pg_publication WHERE puballtables
     UNION SELECT p.pubname::text FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1 ORDER BY 1`, [oid],
  );
  const ident = await db.read<{ c: string; identity: string; seq: string | null }>(
    `SELECT attname::text AS c, attidentity::text AS identity, pg_get_serial_sequence(quote_ident($2) || '.' || quote_ident($3), attname) AS seq
       FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [oid, t.schema, t.table],
  );
  const nv = await db.read<{ name: string; def: string }>(`SELECT conname::text AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = $1 AND contype = 'c' AND NOT convalidated ORDER BY 1`, [oid]);
  const notValid: TableFacts['notValid'] = [];
  for (const c of nv) {
    const expr = c.def.replace(/^CHECK\s*/, '').replace(/\s+NOT VALID$/, '');
    const [{ n }] = await db.read<{ n: string }>(`SELECT count(*) AS n FROM ${quoteQ(t)} WHERE ${expr} IS FALSE`) as [{ n: string }];
    notValid.push({ name: c.name, violating: Number(n) });
  }
  // whether a nullable key holds NULLs: exact through a btree index led by the key (IS NULL is an index search), else
  // from ANALYZE's sample. Preflight never reads a whole table: on a live table of 1,000,000 rows that scan was where
  // the application's longest transaction fell (bench:cutover under pgbench), and on 1 TB it would take hours
  let keyNulls: boolean | null = null;
  let keyNullsFrom: TableFacts['keyNullsFrom'] = null;
  if (k && !k.notnull) {
    const [ix] = await db.read<{ ok: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                       WHERE i.indrelid = $1 AND a.attname = $2 AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL) AS ok`,
      [oid, t.key],
    );
    if (ix?.ok) {
      const [n] = await db.read<{ n: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${quoteQ(t)} WHERE ${quoteI(t.key)} IS NULL) AS n`);
      keyNulls = n!.n;
      keyNullsFrom = 'index';
    } else {
      const [st] = await db.read<{ f: number }>(`SELECT null_frac AS f FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3 AND NOT inherited`, [t.schema, t.table, t.key]);
      if (st) {
        keyNulls = st.f > 0;
        keyNullsFrom = 'statistics';
      }
    }
  }
  return {
    exists: true, oid, owner: r.owner, canOwn: r.can_own, relkind: r.relkind, keyType: k?.type ?? null, keyNotNull: !!k?.notnull, keyNulls, keyNullsFrom, rowKey,
    uniques, inbound: inb, views: views.map((v) => `${v.kind === 'm' ? 'materialized view' : v.kind === 'v' ? 'view' : 'rule on'} ${v.v}`),
    triggers: trg.map((x) => x.name), rowTriggers: trg.filter((x) => x.row).length, policies: Number(pol!.n), rls: r.rls,
    grants: grants.map((g) => g.g), publications: pubs.map((p) => p.p),
    identity: ident.filter((i) => i.identity).map((i) => `${i.c} (identity ${i.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'})`),
    ownedSeqs: ident.filter((i) => !i.identity && i.seq).map((i) => `${i.seq} (owned by ${i.c})`),
    rowsEst: Number(r.est), bytes: Number(r.bytes), notValid,
  };
}

const quoteQ = (t: TablePlan) => qname(t.schema, t.table);

/** The topmost partitioned ancestor of a table (itself when it is no partition), as regclass text. */
export async function rootOf(db: Db, relid: number): Promise<{ schema: string; name: string }> {
  const [r] = await db.read<{ schema: string; name: string }>(
    `WITH RECURSIVE up(oid, depth) AS (SELECT $1::oid, 0 UNION ALL SELECT i.inhparent, up.depth + 1 FROM up JOIN pg_inherits i ON i.inhrelid = up.oid JOIN pg_class c ON c.oid = up.oid WHERE c.relispartition)
     SELECT n.nspname::text AS schema, c.relname::text AS name FROM up JOIN pg_class c ON c.oid = up.oid JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY up.depth DESC LIMIT 1`,
    [relid],
  );
  return r!;
}

/** The primary key, else the narrowest valid unique index on NOT NULL plain columns without WHERE: what identifies a row. */
export async function rowKeyOf(db: Db, oid: number): Promise<TableFacts['rowKey']> {
  const [r] = await db.read<{ name: string; primary: boolean; cols: string[] }>(
    `SELECT ic.relname::text AS name, i.indisprimary AS primary,
            ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS cols
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
        AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) k(n) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n WHERE NOT a.attnotnull)
      ORDER BY i.indisprimary DESC, i.indnkeyatts, ic.relname LIMIT 1`,
    [oid],
  );
  return r ? { kind: r.primary ? 'primary key' : 'unique index', name: r.name, cols: r.cols } : null;
}

function fitsStrategy(t: TablePlan, type: string): { ok: boolean; detail: string; hint?: string } {
  if (t.strategy === 'list') return { ok: true, detail: `${type}, LIST accepts any type` };
  const m = rangeMismatch(type, t.interval);
  if (m) return { ok: false, detail: m.cause, hint: m.hint };
  return { ok: true, detail: `${type} fits RANGE by ${typeof t.interval === 'number' ? `${t.interval.toLocaleString('en-US')} ids` : t.interval}${keyKind(type) === 'numeric' ? ' (numeric: bounds are whole numbers)' : ''}` };
}

/** Every check of phase 1's preflight; changes nothing. */
export async function runPreflight(p: PreflightInput): Promise<Check[]> {
  const { db } = p;
  const checks: Check[] = [];
  const facts = new Map<string, TableFacts | null>();
  for (const t of p.tables) facts.set(`${t.schema}.${t.table}`, await tableFacts(db, t));
  const hasInbound = [...facts.values()].some((f) => f && f.inbound.length > 0);
  const hasRowTriggers = [...facts.values()].some((f) => f && f.rowTriggers > 0);
  checks.push(...versionChecks(p.serverMajor, p.tables, hasInbound, hasRowTriggers));

  // privileges
  const [me] = await db.read<{ u: string; su: boolean; db: string; size: string }>(
    `SELECT current_user::text AS u, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su, current_database()::text AS db, pg_database_size(current_database()) AS size`,
  );
  const schemas = [...new Set(p.tables.map((t) => t.schema))];
  for (const s of schemas) {
    const [r] = await db.read<{ ok: boolean | null }>(`SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) THEN has_schema_privilege($1, 'CREATE') END AS ok`, [s]);
    checks.push(r!.ok ? pass(`CREATE on schema ${s}`, `${me!.u} may create tables in ${s}`) : r!.ok === null ? fail(`CREATE on schema ${s}`, `schema ${s} does not exist`) : fail(`CREATE on schema ${s}`, `${me!.u} lacks CREATE on schema ${s}: GRANT CREATE ON SCHEMA ${s} TO ${me!.u}`));
  }

  // automatic partitions: a trigger on the table where values are born
  for (const t of p.tables) {
    const ap = autoPartitionsOf(t);
    if (!ap) continue;
    const q = parseQualified(ap.table);
    const [r] = await db.read<{ ok: boolean | null; col: boolean | null }>(
      `SELECT CASE WHEN to_regclass($1) IS NOT NULL THEN has_table_privilege(to_regclass($1), 'TRIGGER') END AS ok,
              EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped) AS col`,
      [qname(q.schema, q.name), ap.column],
    );
    const check = `automatic partitions: ${q.schema}.${q.name}`;
    if (r!.ok === null) checks.push(fail(check, `${q.schema}.${q.name} does not exist`));
    else if (!r!.col) checks.push(fail(check, `${q.schema}.${q.name} has no column ${ap.column}`));
    else if (!r!.ok) checks.push(fail(check, `${me!.u} lacks TRIGGER on ${q.schema}.${q.name}: the AFTER INSERT trigger that creates partitions cannot be added`));
    else checks.push(pass(check, `an AFTER INSERT trigger on ${q.schema}.${q.name} will create the partition of each new ${ap.column} (takes SHARE ROW EXCLUSIVE on it for a moment)`));
  }

  // tools
  const env = p.env ?? process.env;
  const dump = await toolVersion('pg_dump', env);
  const restore = await toolVersion('pg_restore', env);
  const backupChecks = [toolCheck('pg_dump', dump, p.serverMajor), toolCheck('pg_restore', restore, p.serverMajor)];

  // disk
  const dir = path.resolve(p.planDir, p.plan.backup.directory);
  const dbBytes = Number(me!.size);
  try {
    const { free, at } = await freeBytes(dir);
    const detail = `${fmtBytes(free)} free at ${at}, database ${fmtBytes(dbBytes)} (pg_database_size; a ${p.plan.backup.format} dump is compressed, usually several times smaller)`;
    backupChecks.push(free >= dbBytes ? pass('free disk for the backup', detail) : free >= dbBytes / 4 ? warn('free disk for the backup', `${detail}: may not be enough`) : fail('free disk for the backup', `${detail}: not enough`));
  } catch (e) {
    backupChecks.push(fail('free disk for the backup', `cannot stat ${dir}: ${(e as Error).message}`));
  }
  // --skip-backup: the operator has a backup of their own (Supabase's daily one, a snapshot): what pgshift would need
  // for its own backup can only warn then; phase 3 still asks for the override by name
  checks.push(...(p.skipBackup ? backupChecks.map((c) => (c.status === 'fail' ? warn(c.check, `${c.detail} (--skip-backup: pgshift takes no backup)`) : c)) : backupChecks));

  // per table
  for (const t of p.tables) checks.push(...tableChecks(t, facts.get(`${t.schema}.${t.table}`) ?? null, me!));
  checks.push(...await (await import('./preflight-privileges.js')).privilegeChecks(p.db));
  return checks;
}

/**
 * The checks of one table. Failures are short (cause) with one hint each; the same function serves preflight and
 * `pgshift plan`'s refusal (blockingChecks), so both say the same thing.
 */
function tableChecks(t: TablePlan, f: TableFacts | null, me: { u: string; su: boolean }): Check[] {
  const name = `${t.schema}.${t.table}`;
  const checks: Check[] = [];
  if (!f) return [fail(`${name}: exists`, `table ${name} does not exist`, 'check "source" in the plan (schema.table)')];
  if (f.relkind === 'p') return [warn(`${name}: exists`, `${name} is already partitioned: nothing to build (already migrated?)`)];
  checks.push(pass(`${name}: exists`, `${plural(f.rowsEst, 'row')} (estimate), ${fmtBytes(f.bytes)} with indexes and TOAST`));
  checks.push(me.su || f.canOwn
    ? pass(`${name}: ownership`, me.su ? `${me.u} is superuser` : `${me.u} ${f.owner === me.u ? 'owns it' : `is a member of its owner ${f.owner}`}`)
    : fail(`${name}: ownership`, `owned by ${f.owner}, not by ${me.u} nor a role it belongs to`, `run pgshift as ${f.owner} (renaming and swapping need ownership), or GRANT ${f.owner} TO ${me.u}`));
  if (!f.rowKey) {
    checks.push(fail(`${name}: row key`, `${name} has no primary key and no unique index on NOT NULL columns: pgshift cannot copy it by keyset nor verify it row by row`,
      `add one before the migration — ALTER TABLE ${name} ADD PRIMARY KEY (columns that are unique), or ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY (rewrites the table) — or take ${name} out of the plan`));
  } else if (f.rowKey.kind === 'unique index') {
    checks.push(pass(`${name}: row key`, `no primary key: the unique index ${f.rowKey.name} on NOT NULL (${f.rowKey.cols.join(', ')}) identifies rows for the copy and its verification`));
  } else {
    checks.push(pass(`${name}: row key`, `primary key (${f.rowKey.cols.join(', ')})`));
  }
  if (!f.keyType) {
    checks.push(fail(`${name}: key ${t.key}`, `${name} has no column ${t.key}`, `fix "key" in the plan: one of the columns of ${name}`));
    return checks;
  }
  const fit = fitsStrategy(t, f.keyType);
  checks.push(fit.ok ? pass(`${name}: key ${t.key} type`, fit.detail) : fail(`${name}: key ${t.key} type`, fit.detail, fit.hint));
  if (!f.keyNotNull) {
    const where = t.defaultPartition ? 'the DEFAULT partition' : 'nowhere: with no DEFAULT partition the copy of such rows fails';
    const nulls = f.keyNullsFrom === 'index'
      ? (f.keyNulls ? ' and holds NULLs' : ' (no NULL in it: looked up through its index)')
      : f.keyNullsFrom === 'statistics'
        ? (f.keyNulls ? ' and holds NULLs (ANALYZE\'s sample found some)' : ' (ANALYZE\'s sample found no NULL; not read in full: no index leads with it)')
        : ' (whether it holds NULLs is not known: no index leads with it and the table has no statistics; preflight does not read a whole table)';
    checks.push(warn(`${name}: key ${t.key} NOT NULL`, `${t.key} is nullable${nulls}: rows with a NULL key go to ${where}; it becomes NOT NULL anyway because the primary key will include it`));
  } else {
    checks.push(pass(`${name}: key ${t.key} NOT NULL`, `${t.key} is NOT NULL`));
  }
  for (const u of f.uniques) {
    const what = u.type === 'p' ? 'PK' : `UNIQUE ${u.name}`;
    if (!u.cols.includes(t.key)) {
      checks.push(warn(`${name}: ${what}`, `behaviour change: ${what} (${u.cols.join(', ')}) becomes (${[...u.cols, t.key].join(', ')}) — PostgreSQL requires every unique constraint on a partitioned table to include the partition key; (${u.cols.join(', ')}) alone is no longer unique across partitions (a unique index per partition does not enforce it either)`));
    } else {
      checks.push(pass(`${name}: ${what}`, `(${u.cols.join(', ')}) includes ${t.key}`));
    }
  }
  // inbound FKs: one line per referencing table (its partitioned parent when the FK lives on partitions)
  const byRoot = new Map<string, TableFacts['inbound']>();
  for (const fk of f.inbound) byRoot.set(fk.root, [...(byRoot.get(fk.root) ?? []), fk]);
  for (const [root, fks] of byRoot) {
    const fk = fks[0]!;
    const names = fks.length === 1 ? fk.name : `${fks.length} FKs (${fks.slice(0, 2).map((x) => x.name).join(', ')}${fks.length > 2 ? ', …' : ''})`;
    const check = `${name}: inbound FK from ${root}`;
    if (fk.hasCol) {
      checks.push(pass(check, `${names} (${fk.cols.join(', ')}) → ${name}: will become (${[...fk.cols, fk.hasCol].join(', ')}) → (…, ${t.key}); ${root}.${fk.hasCol} holds the key`));
      checks.push(warn(`${check}: behaviour change`, `updating ${t.key} of a referenced ${name} row that ${root} references now fails (the FK includes ${t.key}); the FK is re-created MATCH FULL when ${fk.hasCol} is nullable, so a row with a NULL ${fk.hasCol} and a set (${fk.cols.join(', ')}) is refused as before`));
    } else if (t.addKeyColumns.some((r) => { try { const q = parseQualified(r); return `${q.schema}.${q.name}` === root; } catch { return false; } })) {
      checks.push(pass(check, `${names} (${fk.cols.join(', ')}) → ${name}: pgshift adds ${fk.col} to ${root} (addKeyColumns), fills it in keyset batches and keeps it filled by a trigger; the FK becomes (${[...fk.cols, fk.col].join(', ')}) MATCH FULL`));
      checks.push(warn(`${check}: behaviour change`, `${root} gains column ${fk.col}; updating ${t.key} of a referenced ${name} row now fails (the FK includes ${t.key}); MATCH FULL keeps refusing an orphan (${fk.cols.join(', ')}) as before`));
    } else {
      checks.push(fail(check, `${names} (${fk.cols.join(', ')}) → ${name}: the FK to the partitioned table must include ${t.key}; ${root} has no column ${fk.col}`,
        `let pgshift add, fill and keep it filled: "addKeyColumns": ["${root}"] in this partition entry${fks.some((x) => x.rel !== root && `public.${x.rel}` !== root) ? ` (on the partitioned parent ${root}: PostgreSQL refuses ADD COLUMN on a partition)` : ''}; or, when ${root} holds the key under another name, "inboundKeyColumns": { "${root}": "<column>" }`));
    }
  }
  for (const c of f.notValid) {
    checks.push(c.violating
      ? fail(`${name}: CHECK ${c.name}`, `CHECK ${c.name} is NOT VALID and ${c.violating} row(s) violate it: the new table enforces it on the rows the copy inserts`, `fix those rows (SELECT … WHERE NOT (<check>)), or drop the constraint, before the migration`)
      : pass(`${name}: CHECK ${c.name}`, `NOT VALID, no row violates it: kept NOT VALID on the new table`));
  }
  if (f.views.length) checks.push(warn(`${name}: dependent views`, `${f.views.join(', ')}: they follow the table's OID through a rename; phase 4/5 recreate them against the new table`));
  else checks.push(pass(`${name}: dependent views`, 'none'));
  checks.push(pass(`${name}: triggers`, f.triggers.length ? `${f.triggers.join(', ')}: recreated on the new table` : 'none'));
  checks.push(pass(`${name}: RLS`, `${f.rls ? 'enabled' : 'disabled'}, ${plural(f.policies, 'policy', 'policies')}: recreated on the new table (LIKE would not)`));
  checks.push(pass(`${name}: grants`, f.grants.length ? `to ${f.grants.join(', ')}: re-granted on the new table` : 'none besides the owner'));
  if (f.publications.length) {
    checks.push(warn(`${name}: publications`, `in ${f.publications.join(', ')}: a publication holds the table by OID; the swap moves it to the new table (and a rollback back); without publish_via_partition_root its changes are published under the partitions' names`));
  }
  if (f.identity.length || f.ownedSeqs.length) {
    checks.push(pass(`${name}: sequences`, [...f.identity.map((i) => `${i}: the new table gets its own sequence, set past max at the swap`), ...f.ownedSeqs.map((s) => `${s}: kept as the default, ownership moves at the swap`)].join('; ')));
  }
  return checks;
}

/** What `pgshift plan` refuses before printing anything: the tables' failing checks (no database change, no tools). */
export async function blockingChecks(db: Db, tables: readonly TablePlan[]): Promise<Check[]> {
  const [me] = await db.read<{ u: string; su: boolean }>(`SELECT current_user::text AS u, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su`);
  const out: Check[] = [];
  for (const t of tables) out.push(...tableChecks(t, await tableFacts(db, t), me!).filter((c) => c.status === 'fail'));
  return out;
}

/** One line per problem: "check: cause — hint". */
export function problemLine(c: Check): string {
  return `${c.check}: ${c.detail}${c.hint ? ` — ${c.hint}` : ''}`;
}

export function summarize(checks: readonly Check[]): string {
  const n = (s: CheckStatus) => checks.filter((c) => c.status === s).length;
  return `${n('pass')} pass, ${n('warn')} warn, ${n('fail')} fail`;
}
