import type { Db, Tx } from '../db/session.js';
import { ident, literal, qname, parseQualified } from '../db/quote.js';
import { autoPartitionsOf, type TablePlan } from '../plan/schema.js';
import type { TableDef } from './definition.js';
import { integerRangePartitions, keyKind, listPartitions, rangeMismatch, rangePartitions, type PartitionSpec } from './bounds.js';
import type { DeferredObjects, StructureDdl } from './ddl.js';
import { autoPartitionFunctionSql, autoPartitionTriggerSql, autoTriggerName, AUTO_FUNCTION, type AutoTriggerInfo } from './autopartition.js';

export interface StructureArtifact {
  readonly source: string;
  readonly schema: string;
  readonly target: string;
  readonly strategy: 'range' | 'list';
  readonly key: string;
  readonly partitions: { name: string; bound: string }[];
  readonly indexes: StructureDdl['indexes'];
  readonly constraints: StructureDdl['constraints'];
  readonly pkChange: StructureDdl['pkChange'];
  readonly uniqueChanges: StructureDdl['uniqueChanges'];
  readonly triggers: string[];
  readonly policies: string[];
  readonly autoPartitionTrigger?: AutoTriggerInfo;
  /**
   * Non-unique indexes and outbound FKs phase 2 did not build: phase 3's `finish:<schema.table>` builds them after the
   * copy (absent in artifacts written before this existed: then everything was built by phase 2).
   */
  readonly deferred?: DeferredObjects;
  readonly createdAt: string;
  readonly updatedAt?: string;
}


export interface TargetState {
  readonly oid: number;
  readonly strategy: string;
  readonly keyColumns: string[];
  readonly partitions: { name: string; bound: string; isDefault: boolean }[];
}

/** The target as the catalog has it (null when absent); a non-partitioned table of that name has strategy ''. */
export async function targetState(db: Db, schema: string, name: string): Promise<TargetState | null> {
  const rows = await db.read<{ oid: number; strat: string | null; keys: string[] | null }>(
    `SELECT c.oid::int AS oid, pt.partstrat::text AS strat,
            ARRAY(SELECT a.attname::text FROM unnest(pt.partattrs::int2[]) k JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k) AS keys
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
      WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  const r = rows[0];
  if (!r) return null;
  const parts = await db.read<{ name: string; bound: string }>(
    `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
       FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1 ORDER BY c.relname`,
    [r.oid],
  );
  return {
    oid: r.oid, strategy: r.strat === 'r' ? 'range' : r.strat === 'l' ? 'list' : r.strat ?? '', keyColumns: r.keys ?? [],
    partitions: parts.map((p) => ({ name: p.name, bound: p.bound, isDefault: p.bound === 'DEFAULT' })),
  };
}

export interface PartitionPlanning {
  readonly partitions: PartitionSpec[];
  readonly notes: string[];
}

/** The partitions the plan asks for, from the data as it is now. */
export async function planPartitions(db: Db, t: TablePlan, def: TableDef): Promise<PartitionPlanning> {
  const keyCol = def.columns.find((c) => c.name === t.key);
  if (!keyCol) throw new Error(`${t.schema}.${t.table} has no column ${JSON.stringify(t.key)} (the partition key)`);
  const src = qname(t.schema, t.table);
  const k = ident(t.key);
  const notes: string[] = [];
  if (t.strategy === 'range') {
    const kind = keyKind(keyCol.type);
    const mismatch = rangeMismatch(keyCol.type, t.interval);
    if (mismatch) throw new Error(`${t.schema}.${t.table}.${t.key}: ${mismatch.cause}; ${mismatch.hint}`);
    if (typeof t.interval === 'number') {
      // integer ranges: floor of the real min and max (min()/max() use an index on the key when there is one)
      const r = await db.readOne<{ lo: string | null; hi: string | null; nulls: boolean }>(
        `SELECT floor(min(${k})::numeric)::text AS lo, floor(max(${k})::numeric)::text AS hi,
                EXISTS (SELECT 1 FROM ${src} WHERE ${k} IS NULL) AS nulls
           FROM ${src}`,
      );
      const partitions = integerRangePartitions({
        base: t.table, width: t.interval, min: r.lo, max: r.hi, premake: t.premake, defaultPartition: t.defaultPartition,
      });
      const real = partitions.filter((p) => !p.isDefault);
      notes.push(`data spans ${r.lo ?? '—'} .. ${r.hi ?? '—'}; ${real.length} partitions of ${t.interval.toLocaleString('en-US')} ids from ${real[0]?.from} through ${real.at(-1)?.to} (exclusive), including ${t.premake} ahead of max(${t.key})`);
      if (t.start) notes.push(`"start" (${t.start}) is a date and is ignored for an integer key: partitions start at the data's minimum`);
      if (r.nulls) notes.push(`${t.key} has NULLs: ${t.defaultPartition ? 'they go to the DEFAULT partition' : 'no partition accepts them: the copy would fail'}`);
      return { partitions, notes };
    }
    if (kind !== 'timestamptz' && kind !== 'timestamp' && kind !== 'date') throw new Error(`${t.schema}.${t.table}.${t.key} is ${keyCol.type}: range partitioning by a calendar interval needs a date or timestamp key`);
    // UTC calendar dates of min and max: min()/max() use an index on the key when there is one, else scan the table
    const conv = kind === 'timestamptz' ? `AT TIME ZONE 'UTC'` : '';
    const r = await db.readOne<{ lo: string | null; hi: string | null; today: string; nulls: boolean }>(
      `SELECT to_char(min(${k}) ${conv}, 'YYYY-MM-DD') AS lo, to_char(max(${k}) ${conv}, 'YYYY-MM-DD') AS hi,
              to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS today,
              EXISTS (SELECT 1 FROM ${src} WHERE ${k} IS NULL) AS nulls
         FROM ${src}`,
    );
    const partitions = rangePartitions({
      base: t.table, interval: t.interval, kind, min: r.lo, max: r.hi, today: r.today, start: t.start,
      premake: t.premake, defaultPartition: t.defaultPartition,
    });
    notes.push(`data spans ${r.lo ?? '—'} .. ${r.hi ?? '—'} (UTC); ${partitions.filter((p) => !p.isDefault).length} partitions of ${t.interval} through ${partitions.filter((p) => !p.isDefault).at(-1)?.to}, including ${t.premake} beyond max(${t.key}, today)`);
    if (t.start && r.lo && r.lo < t.start) {
      notes.push(`${t.key} values before the plan's start ${t.start} ${t.defaultPartition ? 'will go to the DEFAULT partition' : 'have no partition: the copy would fail (enable defaultPartition or move start earlier)'}`);
    }
    if (r.nulls) notes.push(`${t.key} has NULLs: ${t.defaultPartition ? 'they go to the DEFAULT partition' : 'no partition accepts them: the copy would fail'}`);
    return { partitions, notes };
  }
  const rows = await db.read<{ v: string | null }>(`SELECT q.v::text AS v FROM (${t.values.query}) AS q(v)`);
  const partitions = listPartitions(t.table, rows.map((r) => r.v), t.defaultPartition);
  notes.push(`${partitions.filter((p) => !p.isDefault).length} list partitions, one per value of: ${t.values.query}`);
  return { partitions, notes };
}

/**
 * Creates a partition; when the DEFAULT partition already holds rows of its bound (PostgreSQL refuses to create a
 * partition covering rows that sit in DEFAULT), moves them first, in the same transaction. Refuses when foreign keys
 * reference the parent (the DELETE from DEFAULT could fire their ON DELETE actions).
 */
export async function createPartition(tx: Tx, schema: string, parent: string, p: PartitionSpec, keyCol: string): Promise<number> {
  const parentQ = qname(schema, parent);
  const [def] = (await tx.query<{ def: string | null; fks: boolean; cols: string | null }>(
    `SELECT (SELECT quote_ident(dn.nspname) || '.' || quote_ident(dc.relname) FROM pg_class dc JOIN pg_namespace dn ON dn.oid = dc.relnamespace
              WHERE dc.oid = NULLIF(pt.partdefid, 0)) AS def,
            EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = pt.partrelid) AS fks,
            (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
              WHERE attrelid = pt.partrelid AND attnum > 0 AND NOT attisdropped AND attgenerated = '') AS cols
       FROM pg_partitioned_table pt WHERE pt.partrelid = $1::regclass`,
    [parentQ],
  )).rows;
  let moved = 0;
  if (def?.def && !p.isDefault && p.where) {
    const where = p.where(ident(keyCol));
    const [{ n }] = (await tx.query<{ n: string }>(`SELECT count(*) AS n FROM ${def.def} WHERE ${where}`)).rows as [{ n: string }];
    moved = Number(n);
    if (moved > 0) {
      if (def.fks) {
        throw new Error(`${moved} row(s) for partition ${p.name} sit in the DEFAULT partition and foreign keys reference ${schema}.${parent}: moving them could fire ON DELETE actions; move them by hand (or drop the FKs first), then run again`);
      }
      await tx.query(`CREATE TEMP TABLE pgshift_move ON COMMIT DROP AS SELECT * FROM ${def.def} WHERE ${where}`);
      await tx.query(`DELETE FROM ${def.def} WHERE ${where}`);
    }
  }
  await tx.query(`CREATE TABLE ${qname(schema, p.name)} PARTITION OF ${parentQ} ${p.bound}`);
  // like its siblings: the parent's owner, and the storage parameters / replica identity of an existing partition
  const [like] = (await tx.query<{ owner: string; me: string; opts: string[] | null; ri: string }>(
    `SELECT pg_get_userbyid(c.relowner)::text AS owner, current_user::text AS me,
            (SELECT s.reloptions::text[] FROM pg_inherits i JOIN pg_class s ON s.oid = i.inhrelid WHERE i.inhparent = c.oid AND s.relname <> $2 ORDER BY s.relname LIMIT 1) AS opts,
            (SELECT s.relreplident::text FROM pg_inherits i JOIN pg_class s ON s.oid = i.inhrelid WHERE i.inhparent = c.oid AND s.relname <> $2 ORDER BY s.relname LIMIT 1) AS ri
       FROM pg_class c WHERE c.oid = $1::regclass`,
    [parentQ, p.name],
  )).rows;
  if (like?.opts?.length) await tx.query(`ALTER TABLE ${qname(schema, p.name)} SET (${like.opts.map((o) => { const i = o.indexOf('='); return `${o.slice(0, i)} = ${literal(o.slice(i + 1))}`; }).join(', ')})`);
  if (like?.ri === 'f') await tx.query(`ALTER TABLE ${qname(schema, p.name)} REPLICA IDENTITY FULL`);
  if (like && like.owner !== like.me) await tx.query(`ALTER TABLE ${qname(schema, p.name)} OWNER TO ${ident(like.owner)}`);
  if (moved > 0) {
    await tx.query(`INSERT INTO ${parentQ} (${def!.cols}) OVERRIDING SYSTEM VALUE SELECT ${def!.cols} FROM pg_temp.pgshift_move`);
    await tx.query(`DROP TABLE pg_temp.pgshift_move`);
  }
  return moved;
}

export interface AutoPlan { readonly table: { schema: string; name: string }; readonly column: string; readonly trigger: string; readonly fnSchema: string }

export function autoPlan(t: TablePlan): AutoPlan | null {
  const ap = autoPartitionsOf(t);
  if (!ap) return null;
  const q = parseQualified(ap.table);
  return { table: { schema: q.schema, name: q.name }, column: ap.column, trigger: autoTriggerName(t.schema, t.targetName), fnSchema: t.schema };
}

/** Installs (or refreshes) the auto-partition function and trigger; returns what it installed. */
export async function installAutoPartition(tx: Tx, t: TablePlan, lockTimeoutMs: number): Promise<AutoTriggerInfo | undefined> {
  const a = autoPlan(t);
  if (!a) return undefined;
  const [{ oid }] = (await tx.query<{ oid: number }>(`SELECT $1::regclass::oid::int AS oid`, [qname(t.schema, t.targetName)])).rows as [{ oid: number }];
  await tx.query(autoPartitionFunctionSql(a.fnSchema, lockTimeoutMs));
  // a trigger function is only checked for EXECUTE when a trigger is created: nobody else may attach this
  // SECURITY DEFINER function to a table of theirs
  await tx.query(`REVOKE ALL ON FUNCTION ${qname(a.fnSchema, AUTO_FUNCTION)}() FROM PUBLIC`);
  const exists = (await tx.query(
    `SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = $2`, [qname(a.table.schema, a.table.name), a.trigger],
  )).rowCount;
  if (!exists) {
    await tx.query(autoPartitionTriggerSql({ table: a.table, trigger: a.trigger, fnSchema: a.fnSchema, parentOid: oid, base: t.table, column: a.column }));
  }
  return { table: `${a.table.schema}.${a.table.name}`, schema: a.table.schema, trigger: a.trigger, function: `${a.fnSchema}.${AUTO_FUNCTION}`, column: a.column, parentOid: oid, base: t.table };
}

export function autoPartitionPreview(t: TablePlan, lockTimeoutMs: number): string[] {
  const a = autoPlan(t);
  if (!a) return [];
  return [
    autoPartitionFunctionSql(a.fnSchema, lockTimeoutMs),
    autoPartitionTriggerSql({ table: a.table, trigger: a.trigger, fnSchema: a.fnSchema, parentOid: 0, base: t.table, column: a.column }).replace(`'0'`, `'<oid of ${t.schema}.${t.targetName}>'`),
  ];
}

/**
 * Inside the transaction that created the auto-partition trigger (which holds SHARE ROW EXCLUSIVE on the programs
 * table, so no program can be inserted meanwhile): values born between the first read of `values.query` and the
 * trigger get their partitions too. Every later value fires the trigger.
 */
export async function catchUpListPartitions(tx: Tx, t: TablePlan, known: ReadonlySet<string>): Promise<PartitionSpec[]> {
  if (t.strategy !== 'list' || !t.autoPartitions) return [];
  const rows = (await tx.query<{ v: string | null }>(`SELECT q.v::text AS v FROM (${t.values.query}) AS q(v)`)).rows;
  const extra = listPartitions(t.table, rows.map((r) => r.v), false).filter((p) => !known.has(p.name));
  for (const p of extra) await createPartition(tx, t.schema, t.targetName, p, t.key);
  return extra;
}
