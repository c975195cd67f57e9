import type pg from 'pg';
import type { Db, Tx } from '../db/session.js';
import { redact } from '../db/connection.js';
import { retryKind, sleep, withRetry } from '../db/session.js';
import { BudgetExceeded, applyUnderLock } from '../copy/catchup.js';
import { disableTriggerSql, restoreTriggerSql, type TriggerState } from '../copy/app-triggers.js';
import type { TablePlan } from '../plan/schema.js';
import type { Journal } from '../engine/journal.js';
import { dollarQuote, ident, literal, qname } from '../db/quote.js';
import { UserError } from '../engine/errors.js';
import type { StepContext } from '../engine/types.js';
import { fmtDuration } from '../format.js';
import { addFkSql, publicationSql, type DependencyRecord, type FkPlan, type ViewDep } from './deps.js';
import { fitName, md5hex } from './names.js';
import type { StructureArtifact } from '../structure/build.js';
import { Artifacts } from '../engine/artifacts.js';

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
  /** the reverse log (schema pgshift), one row per key written since the swap */
  readonly reverseLog?: string;
  /** the old table's application triggers, disabled by the swap (restored by a swap back) */
  readonly oldTriggers?: TriggerState[];
  /** the new table's application triggers, enabled by the swap as they were (disabled again by a swap back) */
  readonly newTriggers?: TriggerState[];
  /** the lock budget and what was applied under the lock */
  readonly maxLockMs?: number;
  readonly budgetMisses?: number;
}


export const reverseFunction = (t: TablePlan) => `swap_reverse_${md5hex(`${t.schema}.${t.table}`).slice(0, 12)}`;
/** The reverse-change log of a table: pgshift.rev_<table>_<hash>, one row per primary key written since the swap. */
export const reverseLogName = (t: Pick<TablePlan, 'schema' | 'table'>) =>
  `rev_${`${t.schema}_${t.table}`.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 40)}_${md5hex(`${t.schema}.${t.table}`).slice(0, 8)}`;
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

/**
 * Reverse-change log: after the swap, every key written to the new table is noted (one row per key: an upsert that
 * bumps the row's version), so a swap back carries exactly those rows. The trigger function runs as its owner
 * (SECURITY DEFINER, pinned search_path, fully qualified names): an application role without any right on schema
 * pgshift writes through it. Nobody may call it directly (REVOKE … FROM PUBLIC; a trigger's function is not checked
 * for EXECUTE when it fires).
 */
export function reverseCaptureSql(t: TablePlan, key: { column: string; type: string }[], onTable: string): { before: string[]; underLock: string[] } {
  const fn = qname('pgshift', reverseFunction(t));
  const log = reverseLogName(t);
  const logQ = qname('pgshift', log);
  const seq = literal(qname('pgshift', `${log}_ver_seq`));
  const cols = key.map((k) => ident(k.column));
  const upsert = (rec: string) =>
    `INSERT INTO ${logQ} (${cols.join(', ')}) VALUES (${cols.map((c) => `${rec}.${c}`).join(', ')}) ON CONFLICT (${cols.join(', ')}) DO UPDATE SET ver = pg_catalog.nextval(${seq}::pg_catalog.regclass);`;
  const before = [
    `CREATE TABLE IF NOT EXISTS ${logQ} (${key.map((k) => `${ident(k.column)} ${k.type} NOT NULL`).join(', ')}, ver bigserial NOT NULL, PRIMARY KEY (${cols.join(', ')}))`,
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(`
BEGIN
  IF TG_OP <> 'DELETE' THEN ${upsert('NEW')} END IF;
  IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND (${cols.map((c) => `OLD.${c}`).join(', ')}) IS DISTINCT FROM (${cols.map((c) => `NEW.${c}`).join(', ')})) THEN ${upsert('OLD')} END IF;
  RETURN NULL;
END`)}`,
    `REVOKE ALL ON FUNCTION ${fn}() FROM PUBLIC`,
  ];
  // the log and its function need no lock on the table: created before the exclusive transaction; the trigger under it
  const underLock = [
    `CREATE TRIGGER ${ident(REVERSE_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${qname(t.schema, onTable)} FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
    `ALTER TABLE ${qname(t.schema, onTable)} ENABLE ALWAYS TRIGGER ${ident(REVERSE_TRIGGER)}`,
  ];
  return { before, underLock };
}

/**
 * A cut-over transaction as it runs (the swap, the swap back): what runs before it, the tables it locks in order,
 * the step that is not plain SQL (the captured remainder's apply, the row check, the carry-back) and the statements
 * after it. The runners execute these fields and the preview is printed from them: nothing is recovered from the
 * statements' text.
 */
export interface CutoverPlan {
  /** run before the exclusive transaction, each committed on its own: they need no lock on the tables */
  readonly before: readonly string[];
  /** the tables locked ACCESS EXCLUSIVE, in the order the locks are taken (see lockOrder) */
  readonly locks: readonly string[];
  /** what runs first under the locks when it is not plain SQL, as the preview shows it (a comment) */
  readonly catchUp: string | null;
  readonly body: readonly string[];
}

export const lockSql = (relation: string) => `LOCK TABLE ${relation} IN ACCESS EXCLUSIVE MODE`;

/** Every statement of a cut-over, in the order it runs, for the preview and the confirmation. */
export function cutoverStatements(c: CutoverPlan, lockTimeoutMs: number): string[] {
  return [
    ...c.before,
    'BEGIN',
    `SET LOCAL lock_timeout = ${Math.round(lockTimeoutMs)}`,
    ...c.locks.map(lockSql),
    ...(c.catchUp ? [c.catchUp] : []),
    ...c.body,
    'COMMIT',
  ];
}

export interface SwapOutline extends CutoverPlan {
  /** cutoverStatements of this outline: what the confirmation shows */
  readonly statements: string[];
  readonly newRenames: Rename[];
  readonly oldRenames: Rename[];
  readonly reverseKey: { column: string; type: string }[] | null;
  readonly oldTriggers: TriggerState[];
  readonly newTriggers: TriggerState[];
}

/**
 * Every statement of the swap transaction, in order (the apply of the captured remainder, or the legacy row check,
 * shown as a comment where it runs). `triggers`: the old table's application triggers (disabled by the swap) and the
 * new table's as the copy found them (restored by the swap).
 */
export async function outlineSwap(
  db: Db, t: TablePlan, deps: DependencyRecord, structure: StructureArtifact | null, captured: boolean, lockTimeoutMs: number,
  triggers: { old: TriggerState[]; new: TriggerState[] } = { old: [], new: [] },
): Promise<SwapOutline> {
  const { newRenames, oldRenames } = await nameMapping(db, t, structure);
  const reverseKey = await primaryKey(db, t.schema, t.table);
  const T = qname(t.schema, t.table);
  const locks = lockOrder(qname(t.schema, t.table), qname(t.schema, t.targetName), deps.fks);
  const catchUp = captured
    ? `-- apply the captured changes still pending to ${t.schema}.${t.targetName} (a small remainder: the lock is only requested once it fits the budget), then check the change log is empty`
    : `-- no change capture (copied before pgshift captured in batch mode): check under the lock that row count and highest key agree, else refuse`;
  const s: string[] = [
    `ALTER TABLE ${T} RENAME TO ${ident(t.oldName)}`,
    `ALTER TABLE ${qname(t.schema, t.targetName)} RENAME TO ${ident(t.table)}`,
    ...oldRenames.map((r) => renameSql(t.schema, t.oldName, r)),
    ...newRenames.map((r) => renameSql(t.schema, t.table, r)),
    ...disableTriggerSql(qname(t.schema, t.oldName), triggers.old),
    ...restoreTriggerSql(T, triggers.new),
    ...viewSql(deps.views),
  ];
  for (const fk of deps.fks) {
    s.push(`ALTER TABLE ${qname(fk.schema, fk.table)} DROP CONSTRAINT ${ident(fk.name)}`);
    s.push(addFkSql(fk, t.schema, t.table));
  }
  s.push(...sequenceSql(t, deps, 'forward'), ...publicationSql(t, deps.publications, 'forward'));
  const reverse = reverseKey ? reverseCaptureSql(t, reverseKey, t.table) : { before: [], underLock: [] };
  s.push(...reverse.underLock);
  const plan: CutoverPlan = { before: reverse.before, locks, catchUp, body: s };
  return { ...plan, statements: cutoverStatements(plan, lockTimeoutMs), newRenames, oldRenames, reverseKey, oldTriggers: triggers.old, newTriggers: triggers.new };
}

/**
 * The order the swap (and the swap back) takes its locks: first the counterpart, the table no application uses
 * until this transaction commits (the new table at the swap, the old one at the swap back), then the live table,
 * then the tables whose foreign keys reference it, sorted.
 *  - Counterpart first: what may hold it is not the application but autovacuum (a copy of millions of rows makes
 *    its partitions due for an insert-triggered VACUUM, often right at the swap). Waiting for it while holding
 *    nothing costs the application nothing; waiting for it with the live table already locked makes every
 *    application query wait lock_timeout per attempt (bench:scale at 20,000,000 rows: 21 s of attempts).
 *  - The live table before the referencing tables: an application's RI check takes its locks the same way (a
 *    write to the referenced table, then the referencing one checks against it; or the referencing row first, which
 *    already holds a lock on the referenced table and is let through ahead of our request), so the two can wait for
 *    each other but never deadlock. No application session locks the counterpart, so it adds no cycle. The
 *    referencing tables are locked because their foreign keys are dropped and re-added.
 */
export function lockOrder(table: string, counterpart: string, fks: readonly FkPlan[]): string[] {
  const referencing = [...new Set(fks.map((f) => qname(f.schema, f.table)))].filter((r) => r !== table && r !== counterpart).sort();
  return [counterpart, table, ...referencing];
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

/**
 * Sessions (not pgshift's) holding locks on these relations, with how long their transaction has run. A role
 * without pg_read_all_stats sees NULL state/query/xact_start for other roles' sessions: those stay null here.
 */
export async function lockHolders(db: Db, relations: readonly string[]): Promise<{ pid: number; state: string | null; app: string | null; user: string | null; mode: string; relation: string; xactMs: number | null; query: string | null }[]> {
  return (
    await db.read<{ pid: number; state: string | null; app: string | null; usename: string | null; mode: string; rel: string; xact_ms: string | null; query: string | null }>(
      `SELECT DISTINCT ON (l.pid) l.pid, a.state, a.application_name AS app, a.usename, l.mode, l.relation::regclass::text AS rel,
              (extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start)) * 1000)::bigint AS xact_ms, left(a.query, 200) AS query
         FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.locktype = 'relation' AND l.relation = ANY (SELECT to_regclass(x) FROM unnest($1::text[]) x)
          AND l.pid <> pg_backend_pid() AND coalesce(a.application_name, '') NOT LIKE 'pgshift%'
        ORDER BY l.pid, l.mode`,
      [relations],
    )
  ).map((r) => ({ pid: r.pid, state: r.state, app: r.app, user: r.usename, mode: r.mode, relation: r.rel, xactMs: r.xact_ms === null ? null : Number(r.xact_ms), query: r.query }));
}

/** A session that blocked pgshift's lock request (pg_blocking_pids of pgshift's waiting backend), and for how long. */
export interface Blocker {
  readonly pid: number;
  readonly user: string | null;
  readonly app: string | null;
  /** null when pg_stat_activity hides it from this role (no pg_read_all_stats) */
  readonly state: string | null;
  readonly query: string | null;
  readonly xactMs: number | null;
  /** pg_stat_activity.backend_type ('client backend', 'autovacuum worker', …) */
  readonly backendType?: string | null;
  /** total time pgshift's lock requests waited behind it, over every attempt */
  blockedMs: number;
}

/** Polls pg_blocking_pids(pid) while pgshift's backend waits for its locks; adds the time waited to each blocker. */
function watchBlockers(db: Db, pid: number, tally: Map<string, Blocker>): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    let last = performance.now();
    while (!stopped) {
      await sleep(50);
      if (stopped) break;
      const rows = await db.read<{ pid: number; usename: string | null; app: string | null; state: string | null; query: string | null; xact_ms: string | null; started: string | null; btype: string | null }>(
        `SELECT b.pid, a.usename, a.application_name AS app, a.state, left(a.query, 200) AS query, a.backend_type AS btype,
                (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::bigint AS xact_ms, a.backend_start::text AS started
           FROM unnest(pg_blocking_pids($1)) AS b(pid) LEFT JOIN pg_stat_activity a ON a.pid = b.pid`,
        [pid],
      ).catch(() => []);
      const now = performance.now();
      for (const r of rows) {
        const key = `${r.pid}:${r.started ?? ''}`;
        const b = tally.get(key) ?? { pid: r.pid, user: r.usename, app: r.app, state: r.state, query: r.query, xactMs: null, blockedMs: 0, backendType: r.btype };
        b.blockedMs += now - last;
        tally.set(key, { ...b, state: r.state, query: r.query, xactMs: r.xact_ms === null ? null : Number(r.xact_ms), backendType: r.btype });
      }
      last = now;
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

export interface LockedTxOptions {
  readonly stepId: string;
  readonly lockTimeoutMs: number;
  readonly attempts: number;
  readonly signal?: AbortSignal;
  readonly log: (m: string, level?: 'info' | 'warn') => void;
  /** the tables to lock ACCESS EXCLUSIVE, in order, first (while they wait, the sessions blocking them are tallied) */
  readonly locks: readonly string[];
  /** a blocker that kept pgshift's lock requests waiting this long (over all attempts) is offered to the operator */
  readonly blockerThresholdMs: number;
  readonly offer?: (b: Blocker) => Promise<void>;
  /** a BudgetExceeded from the body: catch up again (the caller's), then retry; at most maxBudgetMisses times */
  readonly onBudgetMiss?: (e: BudgetExceeded) => Promise<void>;
  readonly maxBudgetMisses?: number;
}

/**
 * One short exclusive transaction: SET LOCAL lock_timeout, the LOCK statements, then `body` (given the time the
 * locks were granted). Retried with backoff and jitter when a lock is not granted in time, on a deadlock, or on a
 * lost connection: pgshift gives up and lets the application through, never the reverse. Returns how long the
 * locks were held (LOCK granted to COMMIT).
 */
export async function lockedTx<T>(db: Db, body: (tx: Tx, lockedAt: number) => Promise<T>, o: LockedTxOptions): Promise<{ out: T; attempts: number; lockHeldMs: number; budgetMisses: number }> {
  const tally = new Map<string, Blocker>();
  const offered = new Set<string>();
  let budgetMisses = 0;
  // attempts used before the last budget miss: a miss (rolled back under the lock, caught up, tried again) does not
  // count against the lock attempts, and the numbering goes on across it
  let before = 0;
  let current = 0;
  const attemptOnce = async (attempt: number) => {
    current = attempt;
    let lockedAt = 0;
    // statements under the lock are journaled after the transaction ends: a journal write per statement (an
    // autocommit with its WAL flush on another connection) would otherwise lengthen the time the lock is held
    const buffered: { sql: string; ms: number; rows: number | null; error?: string }[] = [];
    try {
      const out = await db.tx(async (tx0) => {
        const tx: Tx = {
          client: tx0.client,
          async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
            const q0 = performance.now();
            try {
              const r = await tx0.client.query<R>(sql, params as unknown[]);
              buffered.push({ sql, ms: performance.now() - q0, rows: r.rowCount ?? null });
              return r;
            } catch (e) {
              buffered.push({ sql, ms: performance.now() - q0, rows: null, error: redact((e as Error).message) });
              throw e;
            }
          },
        };
        // durable as soon as any later commit flushes the WAL (every application commit does): no flush wait under the lock
        await tx0.client.query('SET LOCAL synchronous_commit = off');
        const pid = (await tx0.client.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
        const t0 = performance.now();
        const watch = watchBlockers(db, pid, tally);
        try {
          for (const r of o.locks) await tx.query(lockSql(r));
        } finally {
          // not awaited: the watcher may be in its sleep or its query, and the locks are held now
          void watch.stop();
        }
        lockedAt = performance.now();
        o.log(`attempt ${attempt}: ACCESS EXCLUSIVE locks granted after ${Math.round(lockedAt - t0)} ms; every query on these tables now waits until COMMIT`);
        return body(tx, lockedAt);
      }, { stepId: o.stepId, lockTimeoutMs: o.lockTimeoutMs, attempts: 1, signal: o.signal });
      return { out, attempts: attempt, lockHeldMs: Math.round(performance.now() - lockedAt), budgetMisses };
    } finally {
      await flush(db, o.stepId, buffered);
    }
  };
  for (;;) {
    try {
      // the one retry loop (db/session.ts): lock not granted in time, deadlock, lost connection; a budget miss is not
      // retried there but here, after the caller caught up
      return await withRetry((a) => attemptOnce(before + a), {
        ...db.retryPolicy(Math.max(1, o.attempts - before)), signal: o.signal,
        retryable: (e) => (e instanceof BudgetExceeded ? null : retryKind(e)),
        onRetry: async (i) => {
          o.log(
            `${i.code === '40P01' ? 'deadlock detected by pgshift' : `lock not granted within ${o.lockTimeoutMs} ms`} (${i.error}); everything rolled back, writers released; retry ${before + i.attempt}/${o.attempts} in ${i.waitMs} ms`,
            'warn',
          );
          for (const [key, b] of tally) {
            if (b.blockedMs >= o.blockerThresholdMs && !offered.has(key) && o.offer) {
              offered.add(key);
              await o.offer(b);
            }
          }
        },
      });
    } catch (e) {
      if (!(e instanceof BudgetExceeded)) throw e;
      budgetMisses++;
      before = current - 1;
      o.log(`${e.message}: rolled back, nothing renamed, the lock released; catching up again before the next attempt (${budgetMisses}/${o.maxBudgetMisses ?? 5})`, 'warn');
      if (budgetMisses >= (o.maxBudgetMisses ?? 5) || !o.onBudgetMiss) {
        throw new UserError(
          `the changes left under the lock never fitted the ${e.budget} ms budget (${budgetMisses} attempts, last ${Math.round(e.ms)} ms for ${e.changes} changes): nothing was renamed`,
          'run it at a quieter moment, raise copy.batchRows, or raise swap.maxLockMs if a longer lock is acceptable',
          1,
        );
      }
      await o.onBudgetMiss(e);
    }
  }
}

async function flush(db: Db, stepId: string, buffered: { sql: string; ms: number; rows: number | null; error?: string }[]): Promise<void> {
  for (const b of buffered.splice(0)) await db.sink?.recordStatement({ stepId, ...b }).catch(() => {});
}

/**
 * The lock_timeout for the swap, the swap back and the drop: below the server's deadlock_timeout, so that in any
 * lock cycle with an application transaction pgshift's wait ends first (it then retries) and the application's
 * deadlock check never has to kill the application's statement.
 */
export async function cutoverLockTimeout(db: Db, planMs: number): Promise<{ ms: number; deadlockMs: number; note: string }> {
  const r = await db.read<{ ms: string }>(`SELECT setting AS ms FROM pg_settings WHERE name = 'deadlock_timeout'`).catch(() => []);
  const deadlockMs = Number(r[0]?.ms ?? 1000);
  const cap = Math.max(50, Math.floor(deadlockMs / 2));
  const ms = Math.min(planMs, cap);
  const note = ms < planMs
    ? `lock_timeout ${ms} ms for these locks (plan: ${planMs} ms), below the server's deadlock_timeout ${deadlockMs} ms: in a lock cycle pgshift gives up and retries, the application's statement never fails`
    : `lock_timeout ${ms} ms < deadlock_timeout ${deadlockMs} ms: in a lock cycle pgshift gives up and retries, the application's statement never fails`;
  return { ms, deadlockMs, note };
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
  readonly budgetMisses: number;
}

/**
 * The swap transaction: the locks (lockedTx: lock_timeout, retries, blockers tallied), then under them the captured
 * remainder applied and the log proven empty (or, without a capture, the legacy count check), then the renames. When
 * the apply under the lock overran `maxLockMs`, the transaction is rolled back (nothing renamed), the caller catches
 * up again, and it is tried again. `catchUp` runs first, right before the lock request; null when the signal stopped
 * the run during it (nothing locked or renamed).
 */
export async function runSwap(
  db: Db,
  journal: Journal,
  t: TablePlan,
  outline: SwapOutline,
  deps: DependencyRecord,
  opts: {
    captured: boolean;
    stepId: string;
    lockTimeoutMs: number;
    attempts: number;
    maxLockMs: number;
    signal?: AbortSignal;
    log: (m: string, level?: 'info' | 'warn') => void;
    drain: (tx: Tx) => Promise<number>;
    catchUp: () => Promise<void>;
    offer?: (b: Blocker) => Promise<void>;
  },
): Promise<SwapRunResult | null> {
  let drained = 0;
  let rows: number | undefined;
  if (outline.before.length) await db.ddl(outline.before, { stepId: opts.stepId, signal: opts.signal });
  // the last catch-up right before the lock request: what is captured meanwhile is applied under the lock
  await opts.catchUp();
  if (opts.signal?.aborted) return null;
  const body = outline.body;
  const r = await lockedTx(db, async (tx, lockedAt) => {
    if (opts.captured) {
      const r = await applyUnderLock(lockedAt, opts.maxLockMs, opts.drain, tx);
      drained = r.changes;
      opts.log(`${drained} captured change(s) applied under the lock in ${Math.round(r.ms)} ms; change log empty`);
    } else {
      rows = await checkBatchComplete(tx, t, outline.reverseKey);
    }
    for (const s of body) await tx.query(s);
    await journal.setArtifact(Artifacts.swap(t), {
      at: new Date().toISOString(), lockHeldMs: -1, attempts: 0, table: `${t.schema}.${t.table}`, oldName: t.oldName, targetName: t.targetName,
      oldRenames: outline.oldRenames, newRenames: outline.newRenames, fks: deps.fks, views: deps.views, sequences: deps.sequences, publications: deps.publications,
      reverseKey: outline.reverseKey, mode: opts.captured ? 'online' : 'batch', drained, rows,
      reverseLog: outline.reverseKey ? reverseLogName(t) : undefined, oldTriggers: outline.oldTriggers, newTriggers: outline.newTriggers, maxLockMs: opts.maxLockMs,
    } satisfies SwapArtifact, tx);
  }, {
    stepId: opts.stepId, lockTimeoutMs: opts.lockTimeoutMs, attempts: opts.attempts, signal: opts.signal, log: opts.log, locks: outline.locks,
    blockerThresholdMs: Math.max(1000, 2 * opts.lockTimeoutMs), offer: opts.offer, onBudgetMiss: async () => opts.catchUp(),
  });
  return { lockHeldMs: r.lockHeldMs, attempts: r.attempts, drained, rows, budgetMisses: r.budgetMisses };
}

/** Apply of the reverse log to the old table, `limit` keys in version order (null: all), in the caller's transaction. */
export async function applyReverse(
  tx: Tx, t: TablePlan, a: SwapArtifact, columns: { name: string; identityAlways: boolean }[], limit: number | null,
  /** called after the log is read, before the rows are carried (tests: an application write lands there) */
  afterRead?: () => Promise<void>,
): Promise<{ changes: number; rows: number }> {
  const k = a.reverseKey!;
  const logQ = qname('pgshift', a.reverseLog ?? reverseLogName(t));
  const T = qname(t.schema, t.table); // the new table while swapped
  const O = qname(t.schema, t.oldName);
  // beside live writers the log is read without locking it: an application transaction upserting one of these keys
  // right now is never made to wait for the whole carry-back (the rows are locked, briefly, only by the last
  // statement below). A key written again meanwhile gets a new version: it stays in the log and is carried again.
  const sel = await tx.client.query<Record<string, string>>(
    `SELECT ${k.map((x, i) => `${ident(x.column)}::text AS k${i}`).join(', ')}, ver::text AS ver FROM ${logQ} ORDER BY ver${limit === null ? '' : ' LIMIT $1'}`,
    limit === null ? [] : [limit],
  );
  if (!sel.rows.length) return { changes: 0, rows: 0 };
  await afterRead?.();
  const arrays = k.map((_, i) => sel.rows.map((r) => r[`k${i}`]!));
  const vers = sel.rows.map((r) => r.ver!);
  const keyArrays = k.map((x, i) => `$${i + 1}::text[]::${x.type}[]`).join(', ');
  const keys = `SELECT * FROM unnest(${keyArrays}) AS p(${k.map((x) => ident(x.column)).join(', ')})`;
  const match = (alias: string) => k.map((x) => `${alias}.${ident(x.column)} = p.${ident(x.column)}`).join(' AND ');
  const cols = columns.map((c) => ident(c.name)).join(', ');
  const overriding = columns.some((c) => c.identityAlways) ? ' OVERRIDING SYSTEM VALUE' : '';
  await tx.query(`DELETE FROM ${O} o USING (${keys}) p WHERE ${match('o')}`, arrays);
  const ins = await tx.query(
    `INSERT INTO ${O} (${cols})${overriding} SELECT ${cols} FROM ${T} n WHERE (${k.map((x) => `n.${ident(x.column)}`).join(', ')}) IN (SELECT ${k.map((x) => `p.${ident(x.column)}`).join(', ')} FROM (${keys}) p)`,
    arrays,
  );
  // only the versions carried: a key written again meanwhile has a new version and stays for the next batch. Last
  // statement before COMMIT, so an application upserting one of these keys waits at most for the commit; beside
  // live writers the log rows an application transaction holds right now are skipped (SKIP LOCKED: they stay and
  // are carried again), so the carry-back never waits for an application's lock and cannot deadlock with one
  const versions = `SELECT * FROM unnest(${keyArrays}, $${k.length + 1}::bigint[]) AS p(${k.map((x) => ident(x.column)).join(', ')}, ver)`;
  await tx.query(
    limit === null
      ? `DELETE FROM ${logQ} l USING (${versions}) p WHERE ${match('l')} AND l.ver = p.ver`
      : `DELETE FROM ${logQ} WHERE ctid = ANY (ARRAY(SELECT l.ctid FROM ${logQ} l JOIN (${versions}) p ON ${match('l')} AND l.ver = p.ver FOR UPDATE OF l SKIP LOCKED))`,
    [...arrays, vers],
  );
  return { changes: sel.rows.length, rows: ins.rowCount ?? 0 };
}

/** Pending keys in the reverse log (0 when it does not exist). */
export async function reversePending(db: Db, t: TablePlan, a: SwapArtifact): Promise<number> {
  const logQ = qname('pgshift', a.reverseLog ?? reverseLogName(t));
  const ex = await db.read<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [logQ]);
  if (!ex[0]!.ok) return 0;
  const r = await db.read<{ n: string }>(`SELECT count(*) AS n FROM ${logQ}`);
  return Number(r[0]!.n);
}

/** Total versions ever given out by the reverse log (its sequence): the capture rate is its growth. */
export async function reverseCaptured(db: Db, t: TablePlan, a: SwapArtifact): Promise<number> {
  const seq = qname('pgshift', `${a.reverseLog ?? reverseLogName(t)}_ver_seq`);
  const r = await db.read<{ n: string }>(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM ${seq}`).catch(() => [{ n: '0' }]);
  return Number(r[0]!.n);
}

/**
 * The swap back (rollback after the swap), in one transaction: rows written to the new table since the swap are
 * carried into the old one (from the reverse log: most of it before the lock, the remainder under it; or a full
 * resync when the table had no primary key), names go back, the old table's application triggers are restored and
 * the new table's disabled again, views are re-created against the old table, the original foreign keys come back
 * NOT VALID (validated after commit), sequence ownership returns. With a reverse log, `catchUp` stands for
 * applyReverse of the remainder, the first thing under the lock.
 */
export function swapBack(t: TablePlan, a: SwapArtifact, columns: { name: string; identityAlways: boolean }[]): CutoverPlan {
  const T = qname(t.schema, t.table); // the new table while swapped
  const O = qname(t.schema, t.oldName);
  const cols = columns.map((c) => ident(c.name)).join(', ');
  const overriding = columns.some((c) => c.identityAlways) ? ' OVERRIDING SYSTEM VALUE' : '';
  const s: string[] = [];
  let catchUp: string | null = null;
  if (a.reverseKey?.length) {
    const logQ = qname('pgshift', a.reverseLog ?? reverseLogName(t));
    catchUp = `-- carry-back: the keys still in ${logQ} (most were carried before the lock): DELETE them from ${O}, INSERT … SELECT their current rows from ${T}, DELETE those log versions`;
    s.push(`DROP TRIGGER IF EXISTS ${ident(REVERSE_TRIGGER)} ON ${T}`);
    s.push(`DROP FUNCTION IF EXISTS ${qname('pgshift', reverseFunction(t))}()`);
    s.push(`DROP TABLE IF EXISTS ${logQ}`);
  } else {
    s.push(`DELETE FROM ${O}`);
    s.push(`INSERT INTO ${O} (${cols})${overriding} SELECT ${cols} FROM ${T}`);
  }
  for (const fk of a.fks) s.push(`ALTER TABLE ${qname(fk.schema, fk.table)} DROP CONSTRAINT ${ident(fk.name)}`);
  s.push(`ALTER TABLE ${T} RENAME TO ${ident(t.targetName)}`);
  s.push(`ALTER TABLE ${O} RENAME TO ${ident(t.table)}`);
  for (const r of a.newRenames) s.push(renameSql(t.schema, t.targetName, r, true));
  for (const r of a.oldRenames) s.push(renameSql(t.schema, t.table, r, true));
  s.push(...restoreTriggerSql(qname(t.schema, t.table), a.oldTriggers ?? []));
  s.push(...disableTriggerSql(qname(t.schema, t.targetName), a.newTriggers ?? []));
  s.push(...viewSql(a.views));
  for (const fk of a.fks) {
    s.push(
      `ALTER TABLE ${qname(fk.schema, fk.table)} ADD CONSTRAINT ${ident(fk.name)} FOREIGN KEY (${fk.columns.map(ident).join(', ')}) ` +
        `REFERENCES ${qname(t.schema, t.table)} (${fk.refColumns.map(ident).join(', ')})${(fk.oldClauses ?? fk.clauses) ? ' ' + (fk.oldClauses ?? fk.clauses) : ''} NOT VALID`,
    );
  }
  s.push(...sequenceSql(t, { sequences: a.sequences } as DependencyRecord, 'back'), ...publicationSql(t, a.publications, 'back'));
  return { before: [], locks: lockOrder(T, O, a.fks), catchUp, body: s };
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
