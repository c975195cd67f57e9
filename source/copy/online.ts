import type { Tx, Db } from '../db/session.js';
import type { TablePlan } from '../plan/schema.js';
import { dollarQuote, ident, qname } from '../db/quote.js';
import { setLocal, sleep } from '../db/session.js';
import { stopBackground, type Replayer } from './catchup.js';
import { columnMap, columnsOf, listOf, primaryKeyOf, queryableOf, relByName, relByOid, rowsOf, type ColumnMap, type Pair, type Reader, type Rel } from './meta.js';
import { forgetArtifact, readArtifact, type Journal } from '../engine/journal.js';
import { Artifacts, type ArtifactKey } from '../engine/artifacts.js';
import { md5hex } from '../structure/names.js';

/**
 * Online copy: change capture on the source table, replayed onto the new table.
 *
 * The scheme (pg-osc's, reduced to what a same-database copy needs):
 *  1. install — in ONE committed transaction, before the copy's first batch: a change log table
 *     pgshift.log_<table>, a SECURITY DEFINER trigger function that writes the primary key of every changed row
 *     into it, and an AFTER INSERT OR UPDATE OR DELETE row trigger on the source (UPDATE logs the old pk and, when
 *     the pk changed, the new one too). A BEFORE TRUNCATE trigger refuses TRUNCATE on the source while the
 *     capture is on: a truncate fires no row trigger, so it would silently bypass the log.
 *  2. copy — the batch copy (keyset, bounded by the max key at its start) runs after the install has committed.
 *  3. replay — in log order, a batch of logged pks at a time: delete those pks from the new table (by the pk
 *     columns only: the partition key may have changed, so the row may sit in another partition), re-insert the
 *     current row from the source if it still exists (the source is the truth), delete the log entries.
 *  4. drain — phase 5, inside the swap transaction after it has locked the source: replay everything left.
 *
 * Why no change is lost and no row is resurrected:
 *  - Every change that commits after the install is in the log, in the same transaction as the change (an AFTER
 *    row trigger writes in the writer's transaction): no change can commit without its log row, nor the reverse.
 *    Every change committed before the install is visible to every copy batch (each batch starts later). So
 *    nothing falls between the trigger and the copy (pg-osc #58).
 *  - A batch copies a row as of the batch's snapshot. Any change to that row after the snapshot committed after
 *    the install, so its pk is in the log; the replay makes the new row equal the source row (or absent) as of
 *    the replay's snapshot. A row inserted after the copy's upper bound, or behind the copy's cursor, is in the log
 *    too: the copy never has to chase new rows (pgroll #583).
 *  - The replay only starts once the batch copy has finished, so a replayed row can never be copied again by a
 *    later batch (which would be a duplicate key).
 *  - A replay batch runs at REPEATABLE READ: picking the log entries, deleting and re-inserting the rows and
 *    deleting the log entries all see one snapshot. A log entry committed after that snapshot is neither applied
 *    nor deleted; it stays for the next batch. (Picking "ids ≤ max" in READ COMMITTED would not be safe: sequence
 *    order is not commit order, a smaller id can commit after the pick and be deleted unapplied.) Within the
 *    snapshot, the new table is made equal to the source for every pk whose log entries are deleted.
 *  - Replaying a pk twice is harmless (delete + re-insert the current row): a replay killed half-way rolls back
 *    whole and is simply done again.
 *  - The drain runs after the swap has locked the source: no writer can commit a change any more, so after it
 *    the log is empty and the new table equals the source.
 */

export const CAPTURE_TRIGGER = 'pgshift_capture';
export const TRUNCATE_TRIGGER = 'pgshift_capture_no_truncate';
const TRUNCATE_GUARD_FN = 'capture_truncate_guard';
/** the log table's own columns; a pk column with one of these names is refused */
const SEQ = 'pgshift_capture_id';

export interface CaptureNames {
  readonly log: string;
  readonly fn: string;
  readonly artifact: ArtifactKey<CaptureArtifact>;
}

/** Deterministic object names in schema pgshift for a plan entry. */
export function captureNames(t: Pick<TablePlan, 'schema' | 'table'>): CaptureNames {
  const base = `${t.schema}_${t.table}`.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 40);
  const h = md5hex(`${t.schema}.${t.table}`).slice(0, 8);
  return { log: `log_${base}_${h}`, fn: `capture_${base}_${h}`, artifact: Artifacts.capture(t) };
}

/** The capture installed on a table (artifact `capture:<schema.table>`). */
export interface CaptureArtifact {
  log: string;
  fn: string;
  sourceOid: number;
  targetOid: number;
  pk: string[];
  installedAt: string;
  /**
   * The oldest transaction still running when the capture was installed (pg_snapshot_xmin of the install's snapshot,
   * as text; absent for captures installed by earlier versions). A row version written by an older transaction was
   * committed before the capture existed; only newer ones can be a logged row's second version (the page walk).
   */
  xmin?: string;
}

/** The capture of a table as it is now: its log, and source and target found by OID (the swap renames them). */
export interface Capture {
  readonly names: CaptureNames;
  readonly logQ: string;
  readonly source: Rel;
  readonly target: Rel;
  readonly pk: string[];
  /** CaptureArtifact.xmin */
  readonly xmin: string | null;
}

/** Statements that install the capture (for preview and for the install itself). */
export function installStatements(pair: Pair, pk: readonly { name: string; type: string }[], names: CaptureNames): string[] {
  const logQ = qname('pgshift', names.log);
  const fnQ = qname('pgshift', names.fn);
  const cols = pk.map((c) => ident(c.name));
  const body = `
BEGIN
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO ${logQ} (${cols.join(', ')}) VALUES (${cols.map((c) => `OLD.${c}`).join(', ')});
  END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ${logQ} (${cols.join(', ')}) VALUES (${cols.map((c) => `NEW.${c}`).join(', ')});
  ELSIF TG_OP = 'UPDATE' THEN
    IF (${cols.map((c) => `NEW.${c}`).join(', ')}) IS DISTINCT FROM (${cols.map((c) => `OLD.${c}`).join(', ')}) THEN
      INSERT INTO ${logQ} (${cols.join(', ')}) VALUES (${cols.map((c) => `NEW.${c}`).join(', ')});
    END IF;
  END IF;
  RETURN NULL;
END`;
  const guardBody = `
BEGIN
  RAISE EXCEPTION 'pgshift: %.% is being migrated (its changes are captured for the new table); TRUNCATE would bypass the change capture', TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING HINT = 'finish or roll back the migration first (pgshift removes this trigger)';
END`;
  return [
    `CREATE TABLE IF NOT EXISTS ${logQ} (${ident(SEQ)} bigserial PRIMARY KEY, ${pk.map((c) => `${ident(c.name)} ${c.type} NOT NULL`).join(', ')}, captured_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    // the page walk looks up the keys of recently written rows here, one probe each, whatever the log's size
    `CREATE INDEX IF NOT EXISTS ${ident(`${names.log}_key`)} ON ${logQ} (${cols.join(', ')})`,
    `CREATE OR REPLACE FUNCTION ${fnQ}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(body)}`,
    `CREATE OR REPLACE FUNCTION ${qname('pgshift', TRUNCATE_GUARD_FN)}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS ${dollarQuote(guardBody)}`,
    // only triggers call them (a trigger's function is not checked for EXECUTE when it fires)
    `REVOKE ALL ON FUNCTION ${fnQ}() FROM PUBLIC`,
    `REVOKE ALL ON FUNCTION ${qname('pgshift', TRUNCATE_GUARD_FN)}() FROM PUBLIC`,
    `CREATE TRIGGER ${ident(CAPTURE_TRIGGER)} AFTER INSERT OR UPDATE OR DELETE ON ${pair.source.q} FOR EACH ROW EXECUTE FUNCTION ${fnQ}()`,
    // fires in every session, also one with session_replication_role = replica (a replication apply, a restore)
    `ALTER TABLE ${pair.source.q} ENABLE ALWAYS TRIGGER ${ident(CAPTURE_TRIGGER)}`,
    `CREATE TRIGGER ${ident(TRUNCATE_TRIGGER)} BEFORE TRUNCATE ON ${pair.source.q} FOR EACH STATEMENT EXECUTE FUNCTION ${qname('pgshift', TRUNCATE_GUARD_FN)}()`,
  ];
}

async function triggerOn(r: Reader, relOid: number, name: string): Promise<boolean> {
  const rows = await rowsOf<{ ok: boolean }>(r, `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2) AS ok`, [relOid, name]);
  return rows[0]!.ok;
}

/**
 * Installs the capture in one transaction (lock_timeout + retries: CREATE TRIGGER takes SHARE ROW EXCLUSIVE on the
 * source, briefly). Idempotent: does nothing when the trigger is already there. Returns whether it installed.
 */
export async function installCapture(db: Db, journal: Journal, t: TablePlan, pair: Pair, stepId: string, onRetry?: (m: string) => void): Promise<boolean> {
  const names = captureNames(t);
  const pkNames = await primaryKeyOf(db, pair.source.oid);
  if (!pkNames.length) throw new Error(`${pair.source.display} has no primary key: an online copy cannot identify changed rows`);
  if (pkNames.some((c) => c === SEQ || c === 'captured_at')) throw new Error(`${pair.source.display} has a primary-key column named ${SEQ} or captured_at, which the change log uses`);
  const cols = await columnsOf(db, pair.source.oid);
  const pk = pkNames.map((n) => ({ name: n, type: cols.find((c) => c.name === n)!.type }));
  const stmts = installStatements(pair, pk, names);
  let installed = false;
  await db.tx(async (tx) => {
    installed = false;
    if (await triggerOn(tx, pair.source.oid, CAPTURE_TRIGGER)) return;
    const guard = await triggerOn(tx, pair.source.oid, TRUNCATE_TRIGGER);
    // one round trip (and one journal entry) for the whole install: the sooner the first batch starts
    await tx.query([`CREATE SCHEMA IF NOT EXISTS pgshift`, ...stmts.filter((s) => !(guard && s.includes(ident(TRUNCATE_TRIGGER))))].join(';\n'));
    const [snap] = (await tx.client.query<{ xmin: string }>(`SELECT txid_snapshot_xmin(txid_current_snapshot())::text AS xmin`)).rows;
    const art: CaptureArtifact = { log: names.log, fn: names.fn, sourceOid: pair.source.oid, targetOid: pair.target.oid, pk: pkNames, installedAt: new Date().toISOString(), xmin: snap!.xmin };
    await journal.setArtifact(names.artifact, art, tx);
    installed = true;
  }, { stepId, onRetry: onRetry ? (i) => onRetry(`installing the capture trigger: ${i.error}; retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`) : undefined });
  return installed;
}

/** The capture of t, or null when none is installed (batch mode, or removed). */
export async function findCapture(r: Reader, t: TablePlan): Promise<Capture | null> {
  const names = captureNames(t);
  const logRel = await relByName(r, 'pgshift', names.log);
  if (!logRel) return null;
  const art = await readArtifact(queryableOf(r), names.artifact);
  // source: the table carrying our trigger (found whatever its name is now); target: by OID from the install
  const src = await rowsOf<{ tgrelid: number }>(
    r,
    `SELECT tgrelid::int AS tgrelid FROM pg_trigger WHERE tgname = $1 AND tgfoid = to_regprocedure($2)`,
    [CAPTURE_TRIGGER, `${qname('pgshift', names.fn)}()`],
  );
  const source = src[0] ? await relByOid(r, src[0].tgrelid) : art ? await relByOid(r, art.sourceOid) : null;
  let target = art ? await relByOid(r, art.targetOid) : null;
  if (!target) target = await relByName(r, t.schema, t.targetName);
  if (!source || !target) return null;
  const pk = art?.pk ?? (await primaryKeyOf(r, source.oid));
  return { names, logQ: logRel.q, source, target, pk, xmin: art?.xmin ?? null };
}

/** Pending (not yet replayed) changes. */
export async function captureLag(r: Reader, cap: Capture): Promise<number> {
  const [x] = await rowsOf<{ n: string }>(r, `SELECT count(*) AS n FROM ${cap.logQ}`);
  return Number(x!.n);
}

/**
 * Applies logged changes inside `tx`: `limit` log entries in log order (null: all). The caller chooses the
 * isolation: REPEATABLE READ for a replay running beside writers, the swap's own transaction (source locked) for
 * the drain. Set-based and coalesced: however many changes a key has in the batch, its row is deleted once and
 * re-inserted once from the source. `map` (the column mapping) may be passed in to spare its catalog reads (under
 * the swap lock). Returns the number of log entries applied and of rows re-inserted.
 */
export async function applyChanges(tx: Tx, cap: Capture, limit: number | null, map?: ColumnMap): Promise<{ changes: number; rows: number }> {
  const [range] = (
    await tx.client.query<{ hi: string | null; n: string }>(
      limit === null
        ? `SELECT max(${ident(SEQ)}) AS hi, count(*) AS n FROM ${cap.logQ}`
        : `SELECT max(id) AS hi, count(*) AS n FROM (SELECT ${ident(SEQ)} AS id FROM ${cap.logQ} ORDER BY ${ident(SEQ)} LIMIT $1) s`,
      limit === null ? [] : [limit],
    )
  ).rows;
  if (!range || range.hi === null || Number(range.n) === 0) return { changes: 0, rows: 0 };
  const m = map ?? (await columnMap(tx, { source: cap.source, target: cap.target, swapped: false }));
  // The planner sizes the keys from the log's statistics, which describe whatever the log held when autovacuum last
  // analyzed it: after a replay emptied a log of 5,000 changes, 300 keys were planned as 5,000, as a hash join over a
  // sequential scan of every partition (826 ms against 112 ms by index on 2,000,000 rows; under the swap's lock,
  // a cost that grows with the table). pgshift knows the exact count: up to NESTED_LOOP_MAX keys, one index probe
  // per key (nested loop) is always the right plan and its cost follows the keys, not the table. Sequential scans
  // are ruled out too: a partition that was empty when last analyzed would be scanned whole once per key.
  const restore = Number(range.n) <= NESTED_LOOP_MAX
    ? await setLocal(tx.client, { enable_hashjoin: 'off', enable_mergejoin: 'off', enable_seqscan: 'off' })
    : null;
  const pkList = listOf(cap.pk);
  const eq = cap.pk.map((c) => `t.${ident(c)} = k.${ident(c)}`).join(' AND ');
  const keys = `SELECT DISTINCT ${pkList} FROM ${cap.logQ} WHERE ${ident(SEQ)} <= $1`;
  await tx.query(`DELETE FROM ${cap.target.q} t USING (${keys}) k WHERE ${eq}`, [range.hi]);
  const ins = await tx.query(
    `INSERT INTO ${cap.target.q} (${listOf(m.columns)})${m.overriding ? ' OVERRIDING SYSTEM VALUE' : ''}
     SELECT ${listOf(m.columns, 's.')} FROM ${cap.source.q} s WHERE (${listOf(cap.pk, 's.')}) IN (${keys.replace('DISTINCT ', '')})`,
    [range.hi],
  );
  await tx.query(`DELETE FROM ${cap.logQ} WHERE ${ident(SEQ)} <= $1`, [range.hi]);
  // as they were, for whatever the caller's transaction runs next
  await restore?.();
  return { changes: Number(range.n), rows: ins.rowCount ?? 0 };
}

/** Up to this many changes an apply plans its joins as index probes (see applyChanges). */
export const NESTED_LOOP_MAX = 2000;

/** Applies of one log run one at a time in this process (the background catch-up, the integrity drain, the swap's). */
const applying = new WeakMap<Db, Map<string, Promise<unknown>>>();
async function serialized<T>(db: Db, key: string, fn: () => Promise<T>): Promise<T> {
  let m = applying.get(db);
  if (!m) applying.set(db, (m = new Map<string, Promise<unknown>>()));
  const prev = m.get(key) ?? Promise.resolve();
  const next = prev.catch(() => {}).then(fn);
  m.set(key, next);
  try {
    return await next;
  } finally {
    if (m.get(key) === next) m.delete(key);
  }
}

/**
 * One replay batch beside live writers: a short REPEATABLE READ transaction (see above why not READ COMMITTED).
 * Two applies of the same log at once would only make each other fail with serialization errors: in this process
 * they take turns.
 */
export async function applyBatch(
  db: Db, cap: Capture, limit: number, opts: { stepId: string | null; signal?: AbortSignal; onRetry?: (m: string) => void; map?: ColumnMap },
): Promise<{ changes: number; rows: number; ms: number }> {
  return serialized(db, cap.logQ, () => applyBatchNow(db, cap, limit, opts));
}

async function applyBatchNow(
  db: Db, cap: Capture, limit: number, opts: { stepId: string | null; signal?: AbortSignal; onRetry?: (m: string) => void; map?: ColumnMap },
): Promise<{ changes: number; rows: number; ms: number }> {
  const t0 = performance.now();
  const r = await db.tx(async (tx) => {
    await tx.client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    return applyChanges(tx, cap, limit, opts.map);
  }, { stepId: opts.stepId, signal: opts.signal, onRetry: opts.onRetry ? (i) => opts.onRetry!(`${i.error}; retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`) : undefined });
  return { ...r, ms: performance.now() - t0 };
}

/**
 * Replays the log beside live writers until at most `threshold` changes are pending (or the signal stops it).
 * Each batch is one short REPEATABLE READ transaction.
 */
export async function catchUp(
  db: Db,
  cap: Capture,
  opts: {
    batch: number; threshold: number; signal: AbortSignal; stepId: string | null;
    onBatch?: (info: { applied: number; lag: number; changes: number; ms: number }) => void;
    onRetry?: (m: string) => void;
    maxRounds?: number;
  },
): Promise<{ applied: number; lag: number; rounds: number }> {
  let applied = 0;
  let rounds = 0;
  let lag = await captureLag(db, cap);
  while (lag > opts.threshold && !opts.signal.aborted && rounds < (opts.maxRounds ?? Infinity)) {
    const r = await applyBatch(db, cap, opts.batch, { stepId: opts.stepId, signal: opts.signal, onRetry: opts.onRetry });
    applied += r.changes;
    rounds++;
    lag = await captureLag(db, cap);
    opts.onBatch?.({ applied, lag, changes: r.changes, ms: r.ms });
    if (r.changes === 0) await sleep(50, opts.signal);
  }
  return { applied, lag, rounds };
}

/**
 * CONTRACT (phase 5 calls it): inside the swap transaction, after the swap has locked the source table against
 * writes, apply every captured change still pending to the new table; returns how many changes it applied.
 * No-op (0) when no capture is installed. Then proves the log empty (no writer can commit to the locked source):
 * the exact, cheap check the swap relies on instead of counting the table.
 */
export async function drainCapture(tx: Tx, t: TablePlan, _journal: Journal, map?: ColumnMap): Promise<number> {
  const cap = await findCapture(tx, t);
  if (!cap) return 0;
  return drainKnown(tx, cap, map);
}

/** drainCapture for a capture already found (no catalog reads under the lock when `map` is given too). */
export async function drainKnown(tx: Tx, cap: Capture, map?: ColumnMap): Promise<number> {
  const on = await tx.client.query<{ e: string | null }>(`SELECT (SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2) AS e`, [cap.source.oid, CAPTURE_TRIGGER]);
  if (on.rows[0]!.e !== 'A' && on.rows[0]!.e !== 'O') {
    throw new Error(
      `the capture trigger ${CAPTURE_TRIGGER} on ${cap.source.display} is ${on.rows[0]!.e === null ? 'gone' : 'disabled'}: writes since may be missing from the new table; refusing to swap (run phase 3 again: its integrity check re-syncs what differs)`,
    );
  }
  const r = await applyChanges(tx, cap, null, map);
  const left = await tx.client.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${cap.logQ}) AS any`);
  if (left.rows[0]!.any) throw new Error(`captured changes of ${cap.source.display} are still pending after the drain under the lock: refusing to swap`);
  return r.changes;
}

/** How many changes were ever captured (the log's sequence): its growth per second is the capture rate. */
export async function capturedTotal(r: Reader, cap: Capture): Promise<number> {
  const seq = await rowsOf<{ s: string | null }>(r, `SELECT pg_get_serial_sequence($1, $2) AS s`, [cap.logQ, SEQ]);
  if (!seq[0]?.s) return 0;
  const v = await rowsOf<{ n: string }>(r, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM ${seq[0].s}`);
  return Number(v[0]?.n ?? 0);
}

/**
 * Re-sync after a failed integrity report: the key of every row that differs between the source and the new table
 * (missing, extra, or different content) is added to the change log, so the next apply makes the new table equal
 * to the source for it. Two full scans (hash joins), run only when asked. Returns the number of keys queued.
 */
export async function queueDiffering(db: Db, cap: Capture, stepId: string | null): Promise<number> {
  const map = await columnMap(db, { source: cap.source, target: cap.target, swapped: false });
  const pk = listOf(cap.pk);
  const eq = cap.pk.map((c) => `n.${ident(c)} = s.${ident(c)}`).join(' AND ');
  const r = await db.query(
    `INSERT INTO ${cap.logQ} (${pk})
     SELECT ${listOf(cap.pk, 's.')} FROM ${cap.source.q} s
      WHERE NOT EXISTS (SELECT 1 FROM ${cap.target.q} n WHERE ${eq} AND ROW(${listOf(map.columns, 'n.')})::text = ROW(${listOf(map.columns, 's.')})::text)
     UNION
     SELECT ${listOf(cap.pk, 'n.')} FROM ${cap.target.q} n WHERE NOT EXISTS (SELECT 1 FROM ${cap.source.q} s WHERE ${eq})`,
    [], stepId,
  );
  return r.rowCount ?? 0;
}

/** The capture as a Replayer (continuous catch-up, convergence before the swap lock). */
export function captureReplayer(db: Db, cap: Capture, stepId: string | null, onRetry?: (m: string) => void): Replayer {
  let map: ColumnMap | undefined;
  return {
    label: `${cap.source.display} → ${cap.target.display}`,
    pending: () => captureLag(db, cap),
    captured: () => capturedTotal(db, cap),
    async apply(limit, signal) {
      map ??= await columnMap(db, { source: cap.source, target: cap.target, swapped: false });
      const r = await applyBatch(db, cap, limit, { stepId, signal, onRetry, map });
      return { changes: r.changes, ms: r.ms };
    },
  };
}

/** Statements removeCapture runs (for previews and confirmations). */
export function removeStatements(t: TablePlan, sourceQ: string | null): string[] {
  const names = captureNames(t);
  return [
    ...(sourceQ
      ? [`DROP TRIGGER IF EXISTS ${ident(CAPTURE_TRIGGER)} ON ${sourceQ}`, `DROP TRIGGER IF EXISTS ${ident(TRUNCATE_TRIGGER)} ON ${sourceQ}`]
      : []),
    `DROP FUNCTION IF EXISTS ${qname('pgshift', names.fn)}()`,
    `DROP TABLE IF EXISTS ${qname('pgshift', names.log)}`,
  ];
}

/** CONTRACT: drop the capture trigger, function and change log of a table (after the swap or on rollback). */
export async function removeCapture(db: Db, t: TablePlan, stepId: string | null): Promise<void> {
  const names = captureNames(t);
  await stopBackground(db, names.artifact.key);
  const cap = await findCapture(db, t);
  let sourceQ = cap?.source.q ?? null;
  if (!sourceQ) {
    // the trigger's table, whatever it is called now
    const rows = await db.read<{ oid: number }>(
      `SELECT tgrelid::int AS oid FROM pg_trigger WHERE tgname = $1 AND tgfoid = to_regprocedure($2)`,
      [CAPTURE_TRIGGER, `${qname('pgshift', names.fn)}()`],
    );
    if (rows[0]) sourceQ = (await relByOid(db, rows[0].oid))?.q ?? null;
  }
  await db.ddl(removeStatements(t, sourceQ), { stepId });
  await forgetArtifact(db, names.artifact).catch(() => {});
}

/** CONTRACT: whether the capture of t is on (its trigger exists on some table). */
export async function captureInstalled(db: Db, t: TablePlan): Promise<boolean> {
  const names = captureNames(t);
  const rows = await db.read<{ ok: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = $1 AND tgfoid = to_regprocedure($2)) AS ok`,
    [CAPTURE_TRIGGER, `${qname('pgshift', names.fn)}()`],
  );
  return rows[0]!.ok;
}
