import type { Db, Tx } from '../db/session.js';
import type { TablePlan } from '../plan/schema.js';
import type { Journal } from '../engine/journal.js';
import { ident, literal, qname } from '../db/quote.js';
import { UserError } from '../engine/errors.js';
import type { StepContext } from '../engine/types.js';
import { fmtDuration } from '../format.js';
import { addFkSql, publicationSql, type DependencyRecord, type FkPlan, type ViewDep } from './deps.js';
import { fitName, md5hex } from './names.js';

/** What phase 2 records about the new table (artifact `structure:<schema.table>`); only the name mapping is used here. */
export interface StructureArtifact {
  readonly target?: string;
  readonly indexes?: readonly { newName: string; sourceName: string }[];
  readonly constraints?: readonly { newName: string; sourceName: string }[];
}

export interface Rename {
  /** index: ALTER INDEX schema.from RENAME TO to; constraint: ALTER TABLE <table> RENAME CONSTRAINT from TO to */
  readonly kind: 'index' | 'constraint';
  readonly from: string;
  readonly to: string;
}

export interface SwapArtifact {
  readonly at: string;
  readonly lockHeldMs: number;
  readonly attempts: number;
  readonly table: string;
  readonly oldName: string;
  readonly targetName: string;
  /** renames of the old table's indexes that clashed with the names the new table takes */
  readonly oldRenames: Rename[];
  /** renames of the new table's indexes/constraints to the original names */
  readonly newRenames: Rename[];
  readonly fks: FkPlan[];
  readonly views: ViewDep[];
  readonly sequences: DependencyRecord['sequences'];
  /** publications that listed the table by name (re-pointed by the swap, and back by the swap back) */
  readonly publications?: DependencyRecord['publications'];
  /** the old table's primary key: the reverse-change log keys rows by it (swap back) */
  readonly reverseKey: { column: string; type: string }[] | null;
  readonly mode: 'batch' | 'online';
  readonly drained: number;
  readonly rows?: number;
}

export const swapArtifactKey = (t: TablePlan) => `swap:${t.schema}.${t.table}`;
export const depsArtifactKey = (t: TablePlan) => `dependencies:${t.schema}.${t.table}`;
export const structureArtifactKey = (t: TablePlan) => `structure:${t.schema}.${t.table}`;

export const REVERSE_LOG = 'pgshift.swap_changes';
export const reverseFunction = (t: TablePlan) => `swap_reverse_${md5hex(`${t.schema}.${t.table}`).slice(0, 12)}`;
export const REVERSE_TRIGGER = 'pgshift_swap_reverse';

/** Refused preconditions inside the swap transaction: not retried (they are not lock timeouts). */
export class SwapRefused extends UserError {}

export async function relkind(db: Db, schema: string, name: string): Promise<string | null> {
  const r = await db.read<{ k: string }>(
    `SELECT c.relkind AS k FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
    [schema, name],
  );
  return r[0]?.k ?? null;
}

/** "Already swapped": the old name exists and the table under the original name is the partitioned one. */
/**
 * VALIDATE CONSTRAINT of a foreign key added NOT VALID: SHARE UPDATE EXCLUSIVE on the referencing table (its reads
 * and writes go on), ROW SHARE on the referenced one; lock_timeout and retries through db.ddl. Nothing to do when
 * the constraint is missing or already valid.
 */
export async function validateForeignKey(
  ctx: StepContext, f: { schema: string; table: string; name: string }, referenced: string,
): Promise<{ state: 'missing' | 'already valid' | 'validated'; ms: number }> {
  const v = await ctx.db.read<{ valid: boolean }>(
    `SELECT convalidated AS valid FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2`, [qname(f.schema, f.table), f.name],
  );
  if (!v[0]) return { state: 'missing', ms: 0 };
  if (v[0].valid) return { state: 'already valid', ms: 0 };
  ctx.log(`VALIDATE CONSTRAINT ${f.name}: scans ${f.schema}.${f.table} holding SHARE UPDATE EXCLUSIVE on it (reads and writes go on) and ROW SHARE on ${referenced}`);
  const t0 = performance.now();
  await ctx.db.ddl([`ALTER TABLE ${qname(f.schema, f.table)} VALIDATE CONSTRAINT ${ident(f.name)}`], {
    stepId: ctx.stepId, signal: ctx.signal, onRetry: (i) => ctx.log(`lock not granted (${i.error}); retry ${i.attempt}/${i.attempts}`, 'warn'),
  });
  const ms = performance.now() - t0;
  ctx.log(`validated ${f.name} in ${fmtDuration(ms)}`);
  return { state: 'validated', ms };
}

export async function isSwapped(db: Db, t: TablePlan): Promise<boolean> {
  return (await relkind(db, t.schema, t.oldName)) !== null && (await relkind(db, t.schema, t.table)) === 'p';
}

/** Indexes and constraints of a relation, by name. */
async function namesOf(db: Db, schema: string, table: string): Promise<{ indexes: Set<string>; constraints: Map<string, boolean> }> {
  const ix = await db.read<{ n: string }>(
    `SELECT ic.relname AS n FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relname = $2)`,
    [schema, table],
  );
  const co = await db.read<{ n: string; idx: boolean }>(
    `SELECT k.conname AS n, k.contype IN ('p','u','x') AS idx FROM pg_constraint k
      WHERE k.conrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = $1 AND c.relname = $2)`,
    [schema, table],
  );
  return { indexes: new Set(ix.map((r) => r.n)), constraints: new Map(co.map((r) => [r.n, r.idx])) };
}

/**
 * Which of the new table's indexes and constraints take which original name: from phase 2's artifact when present,
 * else by phase 2's naming rule (`<source name>_p`). Index-backed constraints are renamed through their index.
 */
export async function nameMapping(db: Db, t: TablePlan, structure: StructureArtifact | null, newTable = t.targetName, oldTable = t.table): Promise<{ newRenames: Rename[]; oldRenames: Rename[] }> {
  const nw = await namesOf(db, t.schema, newTable);
  const old = await namesOf(db, t.schema, oldTable);
  const pairs: { newName: string; sourceName: string }[] = [...(structure?.indexes ?? []), ...(structure?.constraints ?? [])];
  if (!pairs.length) {
    for (const n of [...old.indexes, ...old.constraints.keys()]) {
      const candidate = fitName(`${n}_p`);
      if (nw.indexes.has(candidate) || nw.constraints.has(candidate)) pairs.push({ newName: candidate, sourceName: n });
    }
  }
  const newRenames: Rename[] = [];
  const seen = new Set<string>();
  for (const p of pairs) {
    if (p.newName === p.sourceName || seen.has(p.newName)) continue;
    if (nw.indexes.has(p.newName)) newRenames.push({ kind: 'index', from: p.newName, to: p.sourceName });
    else if (nw.constraints.has(p.newName)) {
      if (nw.constraints.get(p.newName)) newRenames.push({ kind: 'index', from: p.newName, to: p.sourceName });
      else newRenames.push({ kind: 'constraint', from: p.newName, to: p.sourceName });
    } else continue;
    seen.add(p.newName);
  }
  // index names are unique per schema: the old table's indexes whose names the new table takes move aside
  const taken = new Set(newRenames.filter((r) => r.kind === 'index').map((r) => r.to));
  const oldRenames: Rename[] = [...old.indexes].filter((n) => taken.has(n)).sort().map((n) => ({ kind: 'index', from: n, to: fitName(`${n}_old`) }));
  return { newRenames, oldRenames };
}

export function renameSql(schema: string, table: string, r: Rename, reverse = false): string {
  const [from, to] = reverse ? [r.to, r.from] : [r.from, r.to];
  return r.kind === 'index'
    ? `ALTER INDEX ${qname(schema, from)} RENAME TO ${ident(to)}`
    : `ALTER TABLE ${qname(schema, table)} RENAME CONSTRAINT ${ident(from)} TO ${ident(to)}`;
}

function optionsClause(options: string[] | null): string {
  if (!options?.length) return '';
  return ` WITH (${options.map((o) => { const i = o.indexOf('='); return `${ident(o.slice(0, i))} = ${literal(o.slice(i + 1))}`; }).join(', ')})`;
}

/** Statements that re-create the recorded views: they bind to whatever table carries the original name now. */
export function viewSql(views: readonly ViewDep[]): string[] {
  const out: string[] = [];
  for (const v of [...views].sort((a, b) => a.depth - b.depth)) {
    const name = qname(v.schema, v.name);
    if (v.kind === 'v') {
      out.push(`CREATE OR REPLACE VIEW ${name}${optionsClause(v.options)} AS ${v.definition}`);
    } else {
      out.push(`DROP MATERIALIZED VIEW ${name}`);
      out.push(`CREATE MATERIALIZED VIEW ${name}${optionsClause(v.options)} AS ${v.definition} ${v.populated === false ? 'WITH NO DATA' : 'WITH DATA'}`);
      out.push(`ALTER MATERIALIZED VIEW ${name} OWNER TO ${ident(v.owner)}`);
      out.push(...v.indexes, ...v.grants);
      if (v.comment !== null) out.push(`COMMENT ON MATERIALIZED VIEW ${name} IS ${literal(v.comment)}`);
    }
  }
  return out;
}

/** The old table's primary key (columns and types), for the reverse-change log. */
export async function primaryKey(db: Db, schema: string, table: string): Promise<{ column: string; type: string }[] | null> {
  const r = await db.read<{ col: string; type: string }>(
    `SELECT a.attname AS col, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
      WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.ord`,
    [schema, table],
  );
  return r.length ? r.map((x) => ({ column: x.col, type: x.type })) : null;
}

/** Reverse-change log: after the swap, every row written to the new table is noted, so a swap back can carry it. */
export function reverseCaptureSql(t: TablePlan, key: { column: string; type: string }[], onTable: string): string[] {
  const fn = qname('pgshift', reverseFunction(t));
  const obj = (rec: string) => `jsonb_build_object(${key.map((k) => `${literal(k.column)}, ${rec}.${ident(k.column)}`).join(', ')})`;
  const rel = literal(`${t.schema}.${t.table}`);
  return [
    `CREATE TABLE IF NOT EXISTS ${REVERSE_LOG} (id bigserial PRIMARY KEY, rel text NOT NULL, pk jsonb NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    // SECURITY DEFINER with a pinned search_path: the trigger runs as the application's role, which has no rights on schema pgshift
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgshift$
BEGIN
  IF TG_OP <> 'DELETE' THEN INSERT INTO ${REVERSE_LOG} (rel, pk) VALUES (${rel}, ${obj('NEW')}); END IF;
  IF TG_OP <> 'INSERT' THEN INSERT INTO ${REVERSE_LOG} (rel, pk) VALUES (${rel}, ${obj('OLD')}); END IF;
  RETURN NULL;
END
$pgshift$`,
    `CREATE TRIGGER ${ident(REVERSE_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${qname(t.schema, onTable)} FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
  ];
}

export interface SwapOutline {
  readonly statements: string[];
  readonly newRenames: Rename[];
  readonly oldRenames: Rename[];
  readonly reverseKey: { column: string; type: string }[] | null;
}

/** Every statement of the swap transaction, in order (drain / row check shown as comments where they run). */
export async function outlineSwap(db: Db, t: TablePlan, deps: DependencyRecord, structure: StructureArtifact | null, online: boolean, lockTimeoutMs: number): Promise<SwapOutline> {
  const { newRenames, oldRenames } = await nameMapping(db, t, structure);
  const reverseKey = await primaryKey(db, t.schema, t.table);
  const T = qname(t.schema, t.table);
  const s: string[] = [
    `BEGIN`,
    `SET LOCAL lock_timeout = ${Math.round(lockTimeoutMs)}`,
    // referencing tables first: a writer inserting there takes its lock, then checks its FK on the table; locking in
    // the same order (referencing, then referenced) means it finishes or waits, never deadlocks with the swap
    ...lockReferencing(deps.fks),
    `LOCK TABLE ${T} IN ACCESS EXCLUSIVE MODE`,
    `LOCK TABLE ${qname(t.schema, t.targetName)} IN ACCESS EXCLUSIVE MODE`,
    online
      ? `-- apply every captured change still pending to ${t.schema}.${t.targetName} (drainCapture)`
      : `-- check under the lock: same row count and same max key in ${t.schema}.${t.table} and ${t.schema}.${t.targetName}, else refuse`,
    `ALTER TABLE ${T} RENAME TO ${ident(t.oldName)}`,
    `ALTER TABLE ${qname(t.schema, t.targetName)} RENAME TO ${ident(t.table)}`,
    ...oldRenames.map((r) => renameSql(t.schema, t.oldName, r)),
    ...newRenames.map((r) => renameSql(t.schema, t.table, r)),
    ...viewSql(deps.views),
  ];
  for (const fk of deps.fks) {
    s.push(`ALTER TABLE ${qname(fk.schema, fk.table)} DROP CONSTRAINT ${ident(fk.name)}`);
    s.push(addFkSql(fk, t.schema, t.table));
  }
  s.push(...sequenceSql(t, deps, 'forward'), ...publicationSql(t, deps.publications, 'forward'));
  if (reverseKey) s.push(...reverseCaptureSql(t, reverseKey, t.table));
  s.push('COMMIT');
  return { statements: s, newRenames, oldRenames, reverseKey };
}

function lockReferencing(fks: readonly FkPlan[]): string[] {
  return [...new Set(fks.map((f) => qname(f.schema, f.table)))].sort().map((r) => `LOCK TABLE ${r} IN ACCESS EXCLUSIVE MODE`);
}

/**
 * Sequences at the swap: a serial's sequence is OWNED BY the new column (else dropping the old table would drop it)
 * and set past the highest value; an identity column of the new table has its own sequence, set past the old one.
 */
export function sequenceSql(t: TablePlan, deps: DependencyRecord, direction: 'forward' | 'back'): string[] {
  const out: string[] = [];
  // after a forward swap the original name is the new table; after a swap back it is the old table again
  const T = qname(t.schema, t.table);
  const other = qname(t.schema, direction === 'forward' ? t.oldName : t.targetName);
  for (const s of deps.sequences) {
    const seq = qname(s.seqSchema, s.seqName);
    const col = ident(s.column);
    if (s.kind === 'serial') {
      if (s.ownedByOld) out.push(`ALTER SEQUENCE ${seq} OWNED BY ${T}.${col}`);
      // the column default of the table now under the original name may use another sequence: set that one too
      out.push(
        `SELECT setval(pg_get_serial_sequence(${literal(T)}, ${literal(s.column)}), GREATEST((SELECT last_value FROM ${seq})${s.scanMax ? `, (SELECT max(${col}) FROM ${T})` : ''}, 1))`,
      );
    } else {
      out.push(
        `SELECT setval(pg_get_serial_sequence(${literal(T)}, ${literal(s.column)}), GREATEST((SELECT last_value FROM ${seq}), ` +
          `(SELECT last_value FROM pg_sequences WHERE schemaname || '.' || sequencename = pg_get_serial_sequence(${literal(other)}, ${literal(s.column)}))` +
          `${s.scanMax || direction === 'back' ? `, (SELECT max(${col}) FROM ${T})` : ''}, 1))`,
      );
    }
  }
  return out;
}

/** Sessions (not pgshift's) holding locks on these relations, with how long their transaction has run. */
export async function lockHolders(db: Db, relations: readonly string[]): Promise<{ pid: number; state: string; app: string; user: string; mode: string; relation: string; xactMs: number; query: string }[]> {
  return (
    await db.read<{ pid: number; state: string; app: string; usename: string; mode: string; rel: string; xact_ms: string; query: string }>(
      `SELECT DISTINCT ON (l.pid) l.pid, a.state, a.application_name AS app, a.usename, l.mode, l.relation::regclass::text AS rel,
              (extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start)) * 1000)::bigint AS xact_ms, left(a.query, 200) AS query
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.locktype = 'relation' AND l.relation = ANY (SELECT to_regclass(x) FROM unnest($1::text[]) x)
          AND l.pid <> pg_backend_pid() AND a.application_name NOT LIKE 'pgshift%'
        ORDER BY l.pid, l.mode`,
      [relations],
    )
  ).map((r) => ({ pid: r.pid, state: r.state, app: r.app, user: r.usename, mode: r.mode, relation: r.rel, xactMs: Number(r.xact_ms), query: r.query }));
}

/** Under the lock, batch mode: the copy must still be complete (no write reached the old table after it). */
export async function checkBatchComplete(tx: Tx, t: TablePlan, key: { column: string }[] | null): Promise<number> {
  const T = qname(t.schema, t.table), N = qname(t.schema, t.targetName);
  const c = await tx.query<{ a: string; b: string }>(`SELECT (SELECT count(*) FROM ${T}) AS a, (SELECT count(*) FROM ${N}) AS b`);
  const a = Number(c.rows[0]!.a), b = Number(c.rows[0]!.b);
  if (a !== b) {
    throw new SwapRefused(
      `refused: ${t.schema}.${t.table} has ${a.toLocaleString('en-US')} rows but ${t.schema}.${t.targetName} has ${b.toLocaleString('en-US')}: writes reached the old table after the batch copy`,
      'stop the writers and run phase 3 again to copy the difference, or use copy.mode "online" (captures changes during the copy); nothing was renamed',
    );
  }
  if (key?.length) {
    const cols = key.map((k) => ident(k.column)).join(', ');
    const order = key.map((k) => `${ident(k.column)} DESC`).join(', ');
    const m = await tx.query<{ a: string | null; b: string | null }>(
      `SELECT (SELECT ROW(${cols})::text FROM ${T} ORDER BY ${order} LIMIT 1) AS a, (SELECT ROW(${cols})::text FROM ${N} ORDER BY ${order} LIMIT 1) AS b`,
    );
    if (m.rows[0]!.a !== m.rows[0]!.b) {
      throw new SwapRefused(
        `refused: the highest key differs (old ${m.rows[0]!.a}, new ${m.rows[0]!.b}): rows changed in ${t.schema}.${t.table} after the batch copy`,
        'stop the writers and run phase 3 again, or use copy.mode "online"; nothing was renamed',
      );
    }
  }
  return a;
}

export interface SwapRunResult {
  readonly lockHeldMs: number;
  readonly attempts: number;
  readonly drained: number;
  readonly rows?: number;
}

/** The swap transaction itself (db.tx: SET LOCAL lock_timeout, retried with backoff and jitter on 55P03). */
export async function runSwap(
  db: Db,
  journal: Journal,
  t: TablePlan,
  outline: SwapOutline,
  deps: DependencyRecord,
  opts: {
    online: boolean;
    stepId: string;
    lockTimeoutMs: number;
    attempts: number;
    signal?: AbortSignal;
    log: (m: string, level?: 'info' | 'warn') => void;
    drain: (tx: Tx) => Promise<number>;
  },
): Promise<SwapRunResult> {
  let attempts = 0;
  let lockedAt = 0;
  let drained = 0;
  let rows: number | undefined;
  const body = outline.statements.filter((s) => s !== 'BEGIN' && s !== 'COMMIT' && !s.startsWith('SET LOCAL') && !s.startsWith('--'));
  await db.tx(
    async (tx) => {
      attempts++;
      const t0 = performance.now();
      let i = 0;
      for (; body[i]!.startsWith('LOCK TABLE'); i++) await tx.query(body[i]!);
      lockedAt = performance.now();
      opts.log(`attempt ${attempts}: ACCESS EXCLUSIVE locks granted after ${Math.round(lockedAt - t0)} ms; every query on ${t.schema}.${t.table} now waits until COMMIT`);
      if (opts.online) {
        drained = await opts.drain(tx);
      } else {
        rows = await checkBatchComplete(tx, t, outline.reverseKey);
      }
      for (const s of body.slice(i)) await tx.query(s);
      await journal.setArtifact(swapArtifactKey(t), {
        at: new Date().toISOString(), lockHeldMs: -1, attempts, table: `${t.schema}.${t.table}`, oldName: t.oldName, targetName: t.targetName,
        oldRenames: outline.oldRenames, newRenames: outline.newRenames, fks: deps.fks, views: deps.views, sequences: deps.sequences, publications: deps.publications,
        reverseKey: outline.reverseKey, mode: opts.online ? 'online' : 'batch', drained, rows,
      } satisfies SwapArtifact, tx);
    },
    {
      stepId: opts.stepId, lockTimeoutMs: opts.lockTimeoutMs, attempts: opts.attempts, signal: opts.signal,
      onRetry: (i) => opts.log(`lock not granted within ${opts.lockTimeoutMs} ms (${i.error}); everything rolled back, writers released; retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`, 'warn'),
    },
  );
  const lockHeldMs = Math.round(performance.now() - lockedAt);
  return { lockHeldMs, attempts, drained, rows };
}

/**
 * The swap back (rollback after the swap), in one transaction: rows written to the new table since the swap are
 * carried into the old one (from the reverse-change log, or a full resync when the table had no primary key), names
 * go back, views are re-created against the old table, the original foreign keys come back NOT VALID (validated
 * after commit), sequence ownership returns.
 */
export function swapBackStatements(t: TablePlan, a: SwapArtifact, columns: { name: string; identityAlways: boolean }[]): string[] {
  const T = qname(t.schema, t.table); // the new table while swapped
  const O = qname(t.schema, t.oldName);
  const cols = columns.map((c) => ident(c.name)).join(', ');
  const overriding = columns.some((c) => c.identityAlways) ? ' OVERRIDING SYSTEM VALUE' : '';
  const s: string[] = [...lockReferencing(a.fks), `LOCK TABLE ${T} IN ACCESS EXCLUSIVE MODE`, `LOCK TABLE ${O} IN ACCESS EXCLUSIVE MODE`];
  const rel = literal(`${t.schema}.${t.table}`);
  if (a.reverseKey?.length) {
    const k = a.reverseKey;
    const changed = `(SELECT DISTINCT ${k.map((x) => `(pk->>${literal(x.column)})::${x.type} AS ${ident(x.column)}`).join(', ')} FROM ${REVERSE_LOG} WHERE rel = ${rel})`;
    const match = (alias: string) => k.map((x) => `${alias}.${ident(x.column)} = c.${ident(x.column)}`).join(' AND ');
    s.push(`DELETE FROM ${O} o USING ${changed} c WHERE ${match('o')}`);
    s.push(`INSERT INTO ${O} (${cols})${overriding} SELECT ${cols} FROM ${T} n WHERE EXISTS (SELECT 1 FROM ${changed} c WHERE ${match('n')})`);
    s.push(`DELETE FROM ${REVERSE_LOG} WHERE rel = ${rel}`);
    s.push(`DROP TRIGGER IF EXISTS ${ident(REVERSE_TRIGGER)} ON ${T}`);
    s.push(`DROP FUNCTION IF EXISTS ${qname('pgshift', reverseFunction(t))}()`);
  } else {
    s.push(`DELETE FROM ${O}`);
    s.push(`INSERT INTO ${O} (${cols})${overriding} SELECT ${cols} FROM ${T}`);
  }
  for (const fk of a.fks) s.push(`ALTER TABLE ${qname(fk.schema, fk.table)} DROP CONSTRAINT ${ident(fk.name)}`);
  s.push(`ALTER TABLE ${T} RENAME TO ${ident(t.targetName)}`);
  s.push(`ALTER TABLE ${O} RENAME TO ${ident(t.table)}`);
  for (const r of a.newRenames) s.push(renameSql(t.schema, t.targetName, r, true));
  for (const r of a.oldRenames) s.push(renameSql(t.schema, t.table, r, true));
  s.push(...viewSql(a.views));
  for (const fk of a.fks) {
    s.push(
      `ALTER TABLE ${qname(fk.schema, fk.table)} ADD CONSTRAINT ${ident(fk.name)} FOREIGN KEY (${fk.columns.map(ident).join(', ')}) ` +
        `REFERENCES ${qname(t.schema, t.table)} (${fk.refColumns.map(ident).join(', ')})${(fk.oldClauses ?? fk.clauses) ? ' ' + (fk.oldClauses ?? fk.clauses) : ''} NOT VALID`,
    );
  }
  s.push(...sequenceSql(t, { sequences: a.sequences } as DependencyRecord, 'back'), ...publicationSql(t, a.publications, 'back'));
  return s;
}

/** Columns of a table that an INSERT … SELECT can carry (no generated columns). */
export async function insertableColumns(db: Db, schema: string, table: string): Promise<{ name: string; identityAlways: boolean }[]> {
  return (
    await db.read<{ name: string; a: boolean }>(
      `SELECT a.attname AS name, a.attidentity = 'a' AS a FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum`,
      [schema, table],
    )
  ).map((r) => ({ name: r.name, identityAlways: r.a }));
}
