import type { Db, RetryInfo, Tx } from '../db/session.js';
import { backoffDelay, isConnectionLoss, isLockTimeout, retryKind, sleep } from '../db/session.js';
import type { Journal } from '../engine/journal.js';
import type { LogLevel, Progress } from '../engine/types.js';
import { UserError } from '../engine/errors.js';
import { md5hex } from '../structure/names.js';
import { dollarQuote, ident, literal, qname } from '../db/quote.js';
import { columnsOf, estimateRows, listOf, rowOf, paramsFrom, type ColumnMap, type CopyOrder, type Pair } from './meta.js';
import { Throttle } from './throttle.js';
import { Pacer } from './pace.js';
import { CopyControl } from './control.js';

/**
 * The batch copy. Not the seed's loop: its `LIMIT … OFFSET` inside one DO block is one transaction (nothing
 * commits until the end, pg_sleep releases nothing) and each batch re-reads every earlier row (quadratic).
 * Here each batch is one short transaction through db.tx (SET LOCAL lock_timeout, retried with backoff on lock
 * timeouts and lost connections) carrying ONE call of the step's batch function (batchFunctionDdl) that
 *   - reads where the batch ends (the n-th next row or key value, from the index) and inserts the range:
 *     INSERT INTO new SELECT … FROM old WHERE (key, pk) > ($cursor) AND (key, pk) <= ($end) (rows never travel
 *     through Node);
 *   - moves the checkpoint to the batch's end, guarded by the rows_done the loop expects (a stale cursor moves
 *     nothing: the loop rolls the batch back and re-reads the checkpoint FOR UPDATE);
 *   - journals the insert in pgshift.statements with its own duration and row count.
 * So the checkpoint is committed with its rows, and a batch costs one round trip that matters, no separate
 * journal commit. The transaction runs with synchronous_commit off: its commit does not wait for the WAL flush.
 * That is safe for a copy: the rows and the checkpoint are in one transaction, so a server crash that loses the
 * last commits loses both together, and the resumed run redoes those batches from the older checkpoint (the source
 * still holds every row). Nothing the application committed depends on it.
 *
 * The cursor is kept in Node between batches; after a retry (lost connection: the COMMIT may or may not have
 * reached the server) it is re-read from the checkpoint inside the retried transaction, FOR UPDATE, so the copy
 * continues from what is really committed: no duplicate, no gap. A SIGKILL mid-batch leaves the batch uncommitted
 * (the server rolls it back); the resumed run starts from the last committed checkpoint. The upper bound is the
 * largest (key, pk) at the copy's start: rows written later are the change capture's business (online mode); a
 * copy chasing new inserts might never end.
 *
 * Between batches the loop looks at the live controls (control.ts: pause, resume, batch size, rest; from
 * `pgshift control` or the wizard), the throttle (throttle.ts: lock waits and long queries, sampled on a timer, not
 * per batch) and, online, the pacer (pace.ts: the writers' commit latency), and reports its state on the progress
 * line: running, throttled (why), waiting for a lock (holder), paused (by whom).
 */

export interface Position {
  readonly v: 1;
  readonly order: string[];
  readonly upper: string[] | null;
  readonly last: string[] | null;
  readonly done: boolean;
  readonly batches: number;
  readonly lastPartition?: string | null;
  /** how batches find their end (batchSql); absent in checkpoints of earlier versions: 'rows' */
  readonly bound?: CopyOrder['bound'];
  /**
   * 'pages': the copy walks the source's pages in physical order (pageBatchSql); `upper` and `last` then hold one
   * page number each (the first page not walked), and `relfilenode` the source's file at the start (a rewrite moves
   * every row: the walk cannot go on). Absent: the keyset walk.
   */
  readonly walk?: 'pages';
  readonly relfilenode?: number;
}

export interface BatchCopyOptions {
  readonly stepId: string;
  readonly batchRows: number;
  readonly pauseMs: number;
  readonly throttle: { readonly lockWaitMs: number; readonly longQuerySeconds: number } | null;
  readonly signal: AbortSignal;
  /**
   * Online mode (> 0): the copy paces itself on the writers' measured commit latency (pace.ts), starting at a rest
   * of `yieldFactor` × each batch's duration. A copy running flat out fills the WAL and the disk queue, and every
   * application commit waits behind that flush; a fixed duty cycle is either too slow or too rough, so the rest
   * follows what a canary commit measures. 0 / absent (batch mode): no rest beyond pauseMs.
   */
  readonly yieldFactor?: number;
  /** live control through pgshift.control (default on) */
  readonly control?: boolean;
  /** runs of batches in one CALL when nothing happens between batches (default on) */
  readonly runs?: boolean;
  /**
   * A fresh copy walks the source's pages (pageBatchSql) when this names the change capture's log (the walk skips
   * the keys in it: the replay writes them); absent: the keyset walk. A checkpoint's own walk always wins.
   */
  readonly pages?: PageWalkLog;
  readonly log: (message: string, level?: LogLevel) => void;
  readonly progress: (p: Progress) => void;
}

export interface BatchCopyResult {
  readonly rows: number;
  readonly batches: number;
  readonly ms: number;
  readonly stopped: boolean;
  /** the checkpoint said the copy had already finished */
  readonly already: boolean;
  readonly resumedFrom: number;
  readonly pausedMs: number;
}

/**
 * One batch, found before it is written. A batch first reads where it ends — the n-th next row of the walk, from the
 * index alone (`bound: 'rows'`: the index holds every order column), or the partition key of the n-th next row
 * (`bound: 'key'`: the index holds the key only; the batch then takes that key value's whole group of ties) — and
 * then inserts the range (cursor, end] with a plain INSERT … SELECT: no ORDER BY, no LIMIT, no RETURNING. Measured on
 * 2,000,000 rows: collecting the inserted keys through RETURNING to find the next cursor cost 8–22 % over inserting
 * the same ranges with their ends known, which cost what the single INSERT … SELECT costs.
 * The batch is over when no n-th row is left (its end is then the copy's upper bound), never because a batch
 * inserted nothing: rows deleted between the two reads would otherwise end the copy early.
 */
export interface BatchSql {
  readonly boundFirst: string;
  readonly boundNext: string;
  /** the parameter of boundNext that holds the batch size (for the preview) */
  readonly limitParam: number;
  readonly insertFirst: string;
  readonly insertNext: string;
  /** the partition the batch's last row went to (the progress line's "partition …") */
  readonly probe: string;
}

export function batchSql(pair: Pair, map: ColumnMap, order: CopyOrder, bound: CopyOrder['bound']): BatchSql {
  const o = order.columns;
  const key = order.key;
  const n = o.length;
  const src = pair.source.q;
  const tgt = pair.target.q;
  const insert = `INSERT INTO ${tgt} (${listOf(map.columns)})${map.overriding ? ' OVERRIDING SYSTEM VALUE' : ''}\n  SELECT ${listOf(map.columns)} FROM ${src}\n   WHERE `;
  if (bound === 'rows') {
    return {
      boundFirst: `SELECT ${listOf(o)} FROM ${src} WHERE ${rowOf(o)} <= (${paramsFrom(1, n)}) ORDER BY ${listOf(o)} OFFSET $${n + 1} - 1 LIMIT 1`,
      boundNext: `SELECT ${listOf(o)} FROM ${src} WHERE ${rowOf(o)} > (${paramsFrom(1, n)}) AND ${rowOf(o)} <= (${paramsFrom(n + 1, n)}) ORDER BY ${listOf(o)} OFFSET $${2 * n + 1} - 1 LIMIT 1`,
      limitParam: 2 * n + 1,
      insertFirst: `${insert}${rowOf(o)} <= (${paramsFrom(1, n)})`,
      insertNext: `${insert}${rowOf(o)} > (${paramsFrom(1, n)}) AND ${rowOf(o)} <= (${paramsFrom(n + 1, n)})`,
      // the partition key too, read from the source's row when the walk does not hold it: the probe then looks in one partition
      probe: `SELECT t.tableoid FROM ${tgt} t WHERE ${rowOf(o, 't.')} = (${paramsFrom(1, n)})${o.includes(key) ? '' : ` AND t.${ident(key)} = (SELECT s.${ident(key)} FROM ${src} s WHERE ${rowOf(o, 's.')} = (${paramsFrom(1, n)}))`} LIMIT 1`,
    };
  }
  const k = ident(o[0]!);
  return {
    boundFirst: `SELECT ${k} FROM ${src} WHERE ${k} <= $1 ORDER BY ${k} OFFSET $2 - 1 LIMIT 1`,
    boundNext: `SELECT ${k} FROM ${src} WHERE ${k} > $1 AND ${k} <= $2 ORDER BY ${k} OFFSET $3 - 1 LIMIT 1`,
    limitParam: 3,
    insertFirst: `${insert}${k} <= $1 AND ${rowOf(o)} <= (${paramsFrom(2, n)})`,
    insertNext: `${insert}${k} > $1 AND ${k} <= $2 AND ${rowOf(o)} <= (${paramsFrom(3, n)})`,
    // the key as a parameter: planned for its value, the probe looks in one partition only
    probe: `SELECT t.tableoid FROM ${tgt} t WHERE t.${k} = $1 AND ${rowOf(o, 't.')} = (SELECT ${listOf(o, 's.')} FROM ${src} s WHERE s.${k} = $1 AND ${rowOf(o, 's.')} <= (${paramsFrom(2, n)}) LIMIT 1) LIMIT 1`,
  };
}

export function batchFunctionName(stepId: string): string {
  return `copy_batch_${md5hex(stepId).slice(0, 12)}`;
}

/**
 * The batch as one plpgsql function (no COMMIT: the caller's transaction holds it): reads the batch's end, inserts
 * the range, moves the checkpoint (guarded by the rows_done the caller expects: r_moved = 0 when a retried batch had
 * committed, and the caller rolls back) and journals the insert in pgshift.statements with its own duration, all in
 * the caller's transaction. Each statement runs by EXECUTE … USING: planned for its values every time, never a
 * generic plan. Parameters: cursor (c0… NULL for the first batch; 'key' uses c0 only), upper (u0…), lim, step,
 * expected rows_done, run. Returns the rows inserted, the new cursor as text, the last row's partition, whether the
 * checkpoint moved and whether the copy is done.
 */
export function batchFunctionDdl(name: string, sql: BatchSql, bound: CopyOrder['bound'], types: readonly string[]): string {
  const n = types.length;
  const idx = [...Array(n).keys()];
  const cs = idx.map((i) => `c${i}`);
  const us = idx.map((i) => `u${i}`);
  const bs = bound === 'rows' ? idx.map((i) => `b${i}`) : ['b0'];
  const body = `
DECLARE
  v_t0 timestamptz := clock_timestamp(); v_oid oid;
  ${bs.map((b, i) => `${b} ${types[i]!};`).join(' ')}
BEGIN
  IF c0 IS NULL THEN
    EXECUTE ${literal(sql.boundFirst)} INTO ${bs.join(', ')} USING ${bound === 'rows' ? us.join(', ') : 'u0'}, lim;
  ELSE
    EXECUTE ${literal(sql.boundNext)} INTO ${bs.join(', ')} USING ${bound === 'rows' ? [...cs, ...us].join(', ') : 'c0, u0'}, lim;
  END IF;
  r_done := b0 IS NULL;
  IF r_done THEN
    ${bs.map((b, i) => `${b} := u${i};`).join(' ')}
  END IF;
  IF c0 IS NULL THEN
    EXECUTE ${literal(sql.insertFirst)} USING ${bound === 'rows' ? bs.join(', ') : ['b0', ...us].join(', ')};
  ELSE
    EXECUTE ${literal(sql.insertNext)} USING ${bound === 'rows' ? [...cs, ...bs].join(', ') : ['c0', 'b0', ...us].join(', ')};
  END IF;
  GET DIAGNOSTICS r_n = ROW_COUNT;
  r_last := ARRAY[${bs.map((b) => `${b}::text`).join(', ')}];
  IF r_n > 0 THEN
    EXECUTE ${literal(sql.probe)} INTO v_oid USING ${bound === 'rows' ? bs.join(', ') : ['b0', ...us].join(', ')};
    r_part := (SELECT relname::text FROM pg_class WHERE oid = v_oid);
  END IF;
  UPDATE pgshift.checkpoints k
     SET position = k.position || jsonb_build_object('last', to_jsonb(r_last), 'batches', (k.position->>'batches')::int + CASE WHEN r_n > 0 THEN 1 ELSE 0 END,
                                                     'lastPartition', COALESCE(r_part, k.position->>'lastPartition'), 'done', r_done),
         rows_done = k.rows_done + r_n, run_id = run, updated_at = now()
   WHERE k.step_id = step AND k.rows_done = expected;
  GET DIAGNOSTICS r_moved = ROW_COUNT;
  INSERT INTO pgshift.statements (run_id, step_id, sql, duration_ms, rows)
  VALUES (run, step, ${literal(`${BATCH_SQL_MARK} its end by ${sql.boundNext}\n${sql.insertNext}`)}, round((extract(epoch FROM clock_timestamp() - v_t0) * 1000)::numeric, 3), r_n);
  RETURN NEXT;
END`;
  const args = [...idx.map((i) => `c${i} ${types[i]!}`), ...idx.map((i) => `u${i} ${types[i]!}`), 'lim integer', 'step text', 'expected bigint', 'run bigint'];
  return `CREATE OR REPLACE FUNCTION ${qname('pgshift', name)}(${args.join(', ')})
  RETURNS TABLE (r_n integer, r_last text[], r_part text, r_moved integer, r_done boolean) LANGUAGE plpgsql AS ${dollarQuote(body)}`;
}

/** What the journal's batch rows start with (pgshift.statements.sql): `sql LIKE '-- batch:%'` counts the batches. */
export const BATCH_SQL_MARK = '-- batch:';

/** The change capture's log as the page walk needs it: the keys it holds are left to the replay. */
export interface PageWalkLog {
  readonly logQ: string;
  readonly pk: readonly string[];
  /** CaptureArtifact.xmin: only row versions of transactions from this one on are looked up in the log */
  readonly xmin: string | null;
}

/**
 * The page walk (PostgreSQL 14+, with the change capture on): each batch inserts the rows of a range of the source's
 * pages, read by a TID range scan — the sequential read a single INSERT … SELECT makes, with no index, no bound to
 * look up and no sort. Measured on 2,000,000 rows (10,000-row batches, each its own transaction): 1.02–1.04× the
 * single statement, where the keyset walk cost 1.14–1.17× (its index reads, and the batch's end looked up first).
 * On a table whose primary key is a random uuid the keyset walk reads the heap in random order; pages never do.
 *
 * Rows move between pages when they are updated (or deleted and inserted), so a row could be met twice, or not at
 * all. Neither loses or doubles a row, because the capture (installed and committed before the copy starts) logs
 * the key of every row written since, and the replay (after the copy) makes the new table equal to the source for
 * every logged key. What is left is the double insert: a row copied from page 10, updated into page 5,000 before
 * the walk gets there, would be inserted again (a duplicate key, or a second copy in another partition). So each
 * batch skips the keys already in the log. Only row versions written since the capture was installed can be such a
 * second version, so only those are looked up — `age(s.xmin) > $3` (older than the oldest transaction running at the
 * install, CaptureArtifact.xmin) skips the lookup for every other row — one index probe each on the log's key
 * index. Checking every row instead (a hash anti-join on the whole log) cost +0–2 % with an empty log, +8 % with
 * 20,000 entries, and 5× (86 against 17 ms a batch) with 1,000,000: a long copy under heavy writes. A row version the batch sees in its pages was either written before the capture (then its
 * key is in the log only if a later write happened, and that write's version is the replay's business) or after it
 * (then its key is in the log, committed before the batch's snapshot saw it): a key the batch inserts is not in the
 * log as of the batch, so no later batch can meet another visible version of it unless a write committed between
 * the two, which logged the key, which the later batch then skips.
 * The upper bound is the source's size in pages after the capture was installed: pages added later hold only rows
 * written since, all logged. A rewrite of the source (VACUUM FULL, CLUSTER, pg_repack) gives every row a new place;
 * the walk notices (relfilenode) and stops with a message instead of going on.
 */
export function pageBatchSql(pair: Pair, map: ColumnMap, log: PageWalkLog): string {
  const logged = `NOT EXISTS (SELECT 1 FROM ${log.logQ} l WHERE ${rowOf(log.pk, 'l.')} = ${rowOf(log.pk, 's.')})`;
  return `INSERT INTO ${pair.target.q} (${listOf(map.columns)})${map.overriding ? ' OVERRIDING SYSTEM VALUE' : ''}
  SELECT ${listOf(map.columns, 's.')} FROM ${pair.source.q} s
   WHERE s.ctid >= $1::tid AND s.ctid < $2::tid
     AND ${log.xmin === null ? logged : `(age(s.xmin) > $3 OR ${logged})`}`;
}

/** The page walk's upper bound and file: read after the capture's install has committed. */
export function pagesStatement(pair: Pair): string {
  return `SELECT (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint AS pages, c.relfilenode::bigint AS relfilenode,
       c.relpages::float8 AS relpages, c.reltuples::float8 AS reltuples FROM pg_class c WHERE c.oid = ${pair.source.oid}`;
}

/**
 * The page walk's batch function, the same contract as batchFunctionDdl's (c0 = the first page of the batch, NULL
 * for the first batch; u0 = the upper bound; lim = pages in the batch): checks the source was not rewritten,
 * inserts the range, moves the checkpoint (guarded by rows_done), journals the insert.
 */
export function pageFunctionDdl(name: string, insertSql: string, pair: Pair, relfilenode: number, xmin: string | null): string {
  // $3 of the insert: the age, now, of the oldest transaction running at the capture's install; a row version older
  // than that was committed before the capture existed (see CaptureArtifact.xmin)
  const age = xmin === null ? '' : `, age(((${literal(xmin)}::bigint % 4294967296)::text)::xid)`;
  const body = `
DECLARE
  v_t0 timestamptz := clock_timestamp(); v_from bigint := COALESCE(c0, 0); v_to bigint;
BEGIN
  IF (SELECT c.relfilenode::bigint FROM pg_class c WHERE c.oid = ${pair.source.oid}) IS DISTINCT FROM ${relfilenode} THEN
    RAISE EXCEPTION 'pgshift: % was rewritten since its copy started (VACUUM FULL, CLUSTER or a table rewrite): its rows moved, so the % pages already copied no longer say which rows are', ${literal(pair.source.display)}, v_from
      USING ERRCODE = 'PGS02';
  END IF;
  v_to := LEAST(v_from + lim, u0);
  EXECUTE ${literal(insertSql)} USING format('(%s,0)', v_from)::tid, format('(%s,0)', v_to)::tid${age};
  GET DIAGNOSTICS r_n = ROW_COUNT;
  r_done := v_to >= u0;
  r_last := ARRAY[v_to::text];
  UPDATE pgshift.checkpoints k
     SET position = k.position || jsonb_build_object('last', to_jsonb(r_last), 'batches', (k.position->>'batches')::int + CASE WHEN r_n > 0 THEN 1 ELSE 0 END, 'done', r_done),
         rows_done = k.rows_done + r_n, run_id = run, updated_at = now()
   WHERE k.step_id = step AND k.rows_done = expected;
  GET DIAGNOSTICS r_moved = ROW_COUNT;
  INSERT INTO pgshift.statements (run_id, step_id, sql, duration_ms, rows)
  VALUES (run, step, ${literal(`${BATCH_SQL_MARK} pages [$1, $2) of the source, from `)} || v_from || ' to ' || v_to || E'\n' || ${literal(insertSql)}, round((extract(epoch FROM clock_timestamp() - v_t0) * 1000)::numeric, 3), r_n);
  RETURN NEXT;
END`;
  return `CREATE OR REPLACE FUNCTION ${qname('pgshift', name)}(c0 bigint, u0 bigint, lim integer, step text, expected bigint, run bigint)
  RETURNS TABLE (r_n integer, r_last text[], r_part text, r_moved integer, r_done boolean) LANGUAGE plpgsql AS ${dollarQuote(body)}`;
}

/**
 * Runs of batches: when nothing has to happen between batches (no rest, no pacing, no throttle), one CALL runs
 * batches for up to RUN_MS (at most RUN_BATCHES), each batch its own transaction (the procedure COMMITs after
 * each: rows, checkpoint and journal row together), each with SET LOCAL lock_timeout and synchronous_commit off
 * (set_config(…, true) at the start of every transaction). The batch is the same function as between runs. On a
 * busy machine every round trip waits its turn for a CPU twice (client and server); a run saves two round trips a
 * batch. Between runs the loop looks at the controls, the throttle and the signal as it does between batches, so a
 * pause or a stop waits at most one run. The function and the procedure live in schema pgshift, named after the
 * step, and are dropped when the copy ends.
 */
export const RUN_MS = 250;
export const RUN_BATCHES = 50;

export function runProcedureName(stepId: string): string {
  return `copy_run_${md5hex(stepId).slice(0, 12)}`;
}

export function runProcedureDdl(name: string, fn: string, types: readonly string[]): string {
  const n = types.length;
  const idx = [...Array(n).keys()];
  const cs = idx.map((i) => `pgshift_c${i}`);
  const us = idx.map((i) => `pgshift_u${i}`);
  const body = `
DECLARE
  v_n int; v_moved int; v_part text; v_done boolean; v_last text[]; v_t0 timestamptz := clock_timestamp(); v_k int := 0;
BEGIN
  done := false;
  LOOP
    PERFORM set_config('lock_timeout', lock_ms::text, true), set_config('synchronous_commit', 'off', true);
    SELECT f.r_n, f.r_last, f.r_part, f.r_moved, f.r_done INTO v_n, v_last, v_part, v_moved, v_done
      FROM ${qname('pgshift', fn)}(${[...cs, ...us].join(', ')}, lim, step, expected, run) f;
    IF v_moved IS DISTINCT FROM 1 THEN
      RAISE EXCEPTION 'pgshift: the checkpoint moved under this batch' USING ERRCODE = 'PGS01';
    END IF;
    expected := expected + v_n;
    IF v_n > 0 THEN batches := batches + 1; END IF;
    last_part := COALESCE(v_part, last_part);
    last_text := v_last;
    ${idx.map((i) => `pgshift_c${i} := v_last[${i + 1}]::${types[i]!};`).join('\n    ')}
    COMMIT;
    IF v_done THEN
      done := true;
      RETURN;
    END IF;
    v_k := v_k + 1;
    EXIT WHEN v_k >= max_batches OR clock_timestamp() - v_t0 >= max_ms * interval '1 millisecond';
  END LOOP;
END`;
  const args = [
    ...idx.map((i) => `INOUT pgshift_c${i} ${types[i]!}`), ...idx.map((i) => `pgshift_u${i} ${types[i]!}`),
    'lim integer', 'step text', 'INOUT expected bigint', 'run bigint',
    'max_batches integer', 'max_ms integer', 'lock_ms integer', 'INOUT batches integer', 'INOUT last_part text', 'INOUT done boolean',
    'INOUT last_text text[]',
  ];
  return `CREATE OR REPLACE PROCEDURE ${qname('pgshift', name)}(${args.join(', ')}) LANGUAGE plpgsql AS ${dollarQuote(body)}`;
}

export function upperStatement(pair: Pair, order: CopyOrder): string {
  const o = order.columns;
  return `SELECT ${o.map((c, i) => `${ident(c)}::text AS p${i}`).join(', ')} FROM ${pair.source.q} ORDER BY ${o.map((c) => `${ident(c)} DESC`).join(', ')} LIMIT 1`;
}

async function readCheckpoint(tx: Tx, stepId: string): Promise<{ position: Position; rowsDone: number } | null> {
  const r = await tx.client.query<{ position: Position; rows_done: string }>(
    `SELECT position, rows_done FROM pgshift.checkpoints WHERE step_id = $1 FOR UPDATE`,
    [stepId],
  );
  return r.rows[0] ? { position: r.rows[0].position, rowsDone: Number(r.rows[0].rows_done) } : null;
}

/**
 * A checkpoint whose rows are gone from the target (emptied, as pgshift's hints say to do, or re-created): the copy
 * starts over, fresh — not the continuation of the old one. A finished one too: its rows are not in the target any
 * more (a key that could not be added, say), so "already copied" would be false.
 */
export function emptiedCheckpoint(cp: { position: Position; rowsDone: number }, targetEmpty: boolean): boolean {
  return cp.rowsDone > 0 && targetEmpty;
}

export async function targetIsEmpty(db: Db, pair: Pair): Promise<boolean> {
  const [r] = await db.read<{ e: boolean }>(`SELECT NOT EXISTS (SELECT 1 FROM ${pair.target.q}) AS e`);
  return r!.e;
}

/**
 * Copies old → new by keyset batches from the checkpoint on. Throws UserError on a non-empty target without
 * checkpoint (never double-insert). Returns when done, or stopped by the signal with a clean checkpoint.
 */
class StaleCheckpoint extends Error {
  constructor() {
    super('the checkpoint moved under this batch (a retried batch had committed): re-reading it');
  }
}

/** Who holds a lock the copy's tables are waiting for: for the WAITING FOR LOCK line. */
async function lockHolders(db: Db, oids: number[]): Promise<string> {
  try {
    const rows = await db.read<{ pid: number; mode: string; rel: string; app: string }>(
      `SELECT l.pid, l.mode, n.nspname || '.' || c.relname AS rel, COALESCE(a.application_name, '') AS app
         FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.granted AND l.locktype = 'relation' AND l.relation = ANY($1::oid[]) AND l.pid <> pg_backend_pid()
          AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
        ORDER BY l.pid LIMIT 3`,
      [oids],
    );
    if (!rows.length) return 'a lock on the copied tables (holder not visible: it may have ended, or pg_read_all_stats is missing)';
    return rows.map((r) => `pid ${r.pid}${r.app ? ` (${r.app})` : ''} holds ${r.mode.replace(/Lock$/, '')} on ${r.rel}`).join('; ');
  } catch {
    return 'a lock on the copied tables';
  }
}

export async function batchCopy(db: Db, journal: Journal, pair: Pair, map: ColumnMap, order: CopyOrder, opts: BatchCopyOptions): Promise<BatchCopyResult> {
  const t0 = performance.now();
  const { stepId } = opts;
  const onRetry = (what: string) => (i: RetryInfo) => {
    const lost = i.kind === 'connection';
    opts.log(
      lost
        ? `connection lost, reconnecting… (${what}: ${i.error}; attempt ${i.attempt}/${i.attempts} in ${i.waitMs} ms; the batch rolled back or committed whole, the cursor is re-read from the checkpoint)`
        : `${what}: lock not available (${i.error}); retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`,
      'warn',
    );
  };

  let cp = await journal.getCheckpoint<Position>(stepId);
  const empty = await targetIsEmpty(db, pair);
  const startOver = `empty ${pair.target.display} (TRUNCATE ${pair.target.display}) and run phase 3 again: the copy starts over`;
  if (cp && emptiedCheckpoint(cp, empty)) {
    opts.log(`the checkpoint says ${cp.rowsDone.toLocaleString('en-US')} rows were copied but ${pair.target.display} is empty (re-created?): starting over`, 'warn');
    cp = null;
  }
  if (!cp && !empty) {
    throw new UserError(
      `${pair.target.display} already holds rows but this copy has no checkpoint: copying would insert rows twice`,
      `check what is in ${pair.target.display}; if it is a leftover of an earlier attempt, empty it (TRUNCATE ${pair.target.display}) and run phase 3 again`,
      1,
    );
  }
  if (cp && cp.position.walk !== 'pages' && cp.position.order.join('\u0000') !== order.columns.join('\u0000')) {
    throw new UserError(
      `the checkpoint of ${stepId} walks (${cp.position.order.join(', ')}) but the table is now walked by (${order.columns.join(', ')})`,
      'the table changed since the copy started (primary key or indexes); empty the target and run phase 3 again',
      1,
    );
  }
  if (cp?.position.done) {
    return { rows: cp.rowsDone, batches: cp.position.batches, ms: 0, stopped: false, already: true, resumedFrom: cp.rowsDone, pausedMs: 0 };
  }
  if (cp?.position.walk === 'pages' && !opts.pages) {
    throw new UserError(`the copy of ${pair.source.display} walks its pages and needs the change capture, which is no longer installed`, `${startOver} with a new capture`, 1);
  }
  // the source's size, file and rows per page, read once for a page walk (fresh: its upper bound and file; resumed:
  // the batch function checks the file against the checkpoint's before every batch)
  const pageWalk = cp ? cp.position.walk === 'pages' : !!opts.pages;
  const [src] = pageWalk ? await db.read<{ pages: string; relfilenode: string; relpages: number; reltuples: number }>(pagesStatement(pair)) : [];
  if (!cp && opts.pages) {
    const pages = Number(src!.pages);
    const position: Position = { v: 1, order: ['ctid'], upper: [String(pages)], last: null, done: pages === 0, batches: 0, walk: 'pages', relfilenode: Number(src!.relfilenode) };
    await db.tx((tx) => journal.setCheckpoint(tx, stepId, position, 0), { stepId, onRetry: onRetry('checkpoint') });
    cp = { position, rowsDone: 0 };
    opts.log(`upper bound fixed at the start: the source's first ${pages.toLocaleString('en-US')} pages (its size after the change capture was installed); rows written later are in the change log, not chased`);
  } else if (!cp) {
    const up = (await db.read<Record<string, string>>(upperStatement(pair, order)))[0];
    const upper = up ? order.columns.map((_, i) => up[`p${i}`]!) : null;
    const position: Position = { v: 1, order: order.columns, upper, last: null, done: upper === null, batches: 0, bound: order.bound };
    await db.tx((tx) => journal.setCheckpoint(tx, stepId, position, 0), { stepId, onRetry: onRetry('checkpoint') });
    cp = { position, rowsDone: 0 };
    opts.log(upper ? `upper bound fixed at the start: (${order.columns.join(', ')}) ≤ (${upper.join(', ')}); later rows are not chased` : `${pair.source.display} is empty: nothing to copy`);
  } else {
    opts.log(`resuming from the checkpoint: ${cp.rowsDone.toLocaleString('en-US')} rows in ${cp.position.batches} batches already committed, cursor (${(cp.position.last ?? []).join(', ')})`);
  }
  const resumedFrom = cp.rowsDone;
  const total = await estimateRows(db, pair.source.oid);
  // a checkpoint of an earlier version holds a whole row as its cursor: it goes on by rows, whatever the index
  const bound = cp.position.bound ?? 'rows';
  const cols = await columnsOf(db, pair.source.oid);
  const types = pageWalk ? ['bigint'] : order.columns.map((c) => cols.find((x) => x.name === c)!.type);
  const fnName = batchFunctionName(stepId);
  const fn = qname('pgshift', fnName);
  await db.ddl([
    pageWalk
      ? pageFunctionDdl(fnName, pageBatchSql(pair, map, opts.pages!), pair, cp.position.relfilenode!, opts.pages!.xmin)
      : batchFunctionDdl(fnName, batchSql(pair, map, order, bound), bound, types),
  ], { stepId });
  /**
   * rows per page, for the page walk's batch size in pages: the catalog's estimate (or a count of the first 64
   * pages), then what the walk measured — never below a quarter of the estimate, so a run of empty pages (bloat)
   * cannot make the next batch swallow the table in one transaction
   */
  let perPage = 0;
  let perPageFloor = 0;
  if (pageWalk) {
    perPage = src!.relpages > 0 && src!.reltuples > 0 ? src!.reltuples / src!.relpages : 0;
    if (!perPage) {
      const [sample] = await db.read<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${pair.source.q} WHERE ctid < '(64,0)'::tid`);
      perPage = Math.max(1, sample!.n / 64);
    }
    perPageFloor = perPage / 4;
  }
  const walkedFrom = pageWalk ? Number(cp.position.last?.[0] ?? 0) : 0;
  /** the batch's size as the function takes it: rows, or pages for the page walk */
  const batchLimit = (rows: number, p: Position): number => {
    if (!pageWalk) return rows;
    const walked = Number(p.last?.[0] ?? 0) - walkedFrom;
    const copied = rowsDone - resumedFrom;
    if (walked >= 16 && copied > 0) perPage = Math.max(perPageFloor, copied / walked);
    return Math.max(1, Math.min(1_000_000, Math.round(rows / Math.max(0.01, perPage))));
  };
  let runProc: string | null = null;
  if (opts.runs !== false && (await db.serverVersionNum()) >= 110000) {
    const name = runProcedureName(stepId);
    try {
      await db.ddl([runProcedureDdl(name, fnName, types)], { stepId });
      runProc = qname('pgshift', name);
    } catch (e) {
      opts.log(`runs of batches unavailable (${(e as Error).message}): one round trip per batch`, 'warn');
    }
  }
  /** the cursor as the function's c0… parameters: NULLs before the first batch, the key alone in 'key' mode */
  const cursorParams = (p: Position) => types.map((_, i) => p.last?.[i] ?? null);
  let runFailures = 0;
  const callRun = async (p: Position, before: number, limit: number): Promise<{ pos: Position; rowsDone: number; n: number }> => {
    const client = await db.pool.connect();
    try {
      const params = [
        ...cursorParams(p), ...p.upper!, limit, stepId, before, runId, RUN_BATCHES, RUN_MS, Math.round(db.locks.timeoutMs), p.batches, p.lastPartition ?? null, false, p.last ?? null,
      ];
      const res = await client.query<{ expected: string; batches: number; last_part: string | null; done: boolean; last_text: string[] | null }>(
        `CALL ${runProc}(${params.map((_, i) => `$${i + 1}`).join(', ')})`, params,
      );
      client.release();
      const row = res.rows[0]!;
      const rowsAfter = Number(row.expected);
      return {
        pos: { ...p, last: row.last_text ?? p.last, batches: row.batches, lastPartition: row.last_part ?? p.lastPartition ?? null, done: row.done },
        rowsDone: rowsAfter, n: rowsAfter - before,
      };
    } catch (e) {
      client.release(isConnectionLoss(e) ? (e as Error) : undefined);
      throw e;
    }
  };
  const runId = journal.runId;

  const throttle = opts.throttle ? new Throttle(db.info.config, { ...opts.throttle, log: opts.log }) : null;
  const online = (opts.yieldFactor ?? 0) > 0;
  const pacer = online ? new Pacer(db.info.config, { log: opts.log, initialRest: opts.yieldFactor }) : null;
  const control = opts.control === false ? null : new CopyControl(db, runId, stepId, opts.log);
  await Promise.all([throttle?.start(), pacer?.start(), control?.start()]);
  let pos: Position = cp.position;
  let rowsDone = cp.rowsDone;
  let batches = cp.position.batches;
  let done = cp.position.done;
  let lastPart: string | null = cp.position.lastPartition ?? null;
  let stale = 0;
  let waitingLock: string | null = null;
  let pausedMs = 0;
  const where = () =>
    pageWalk ? `page ${Number(pos.last?.[0] ?? 0).toLocaleString('en-US')} of ${Number(pos.upper?.[0] ?? 0).toLocaleString('en-US')} · batch ${batches}`
    : lastPart ? `partition ${lastPart} · batch ${batches}` : `batch ${batches}`;
  const report = (state: Progress['state'], reason?: string, detail?: string) =>
    opts.progress({
      done: rowsDone, total: done ? rowsDone : total && total > rowsDone ? total : undefined, unit: 'rows',
      detail: detail ?? (done ? `all ${batches} batches committed` : where()), state, reason,
    });
  const retry = (i: RetryInfo) => {
    onRetry(`batch ${batches + 1}`)(i);
    stale = Math.max(stale, 1); // the cursor is re-read from the checkpoint (FOR UPDATE) in the retried transaction
    if (i.kind === 'lock') {
      void lockHolders(db, [pair.source.oid, pair.target.oid]).then((h) => {
        waitingLock = `${h} · retry ${i.attempt}/${i.attempts}`;
        report('waiting-lock', waitingLock);
      });
    }
  };
  try {
    report('running', undefined, lastPart ? where() : 'starting');
    while (!done) {
      if (opts.signal.aborted) break;
      let ctl = control ? await control.check() : null;
      if (ctl?.paused) {
        const p0 = performance.now();
        report('paused', `paused by ${ctl.pausedBy ?? 'the operator'}: no batch runs, no lock held; resume with \`pgshift control resume\` (or P in the wizard)`);
        while (ctl.paused && !opts.signal.aborted) {
          await sleep(200, opts.signal);
          ctl = await control!.check(true);
        }
        pausedMs += performance.now() - p0;
        if (opts.signal.aborted) break;
        report('running');
      }
      const gate = throttle ? await throttle.gate(opts.signal) : { factor: 1, pauseMs: 0 };
      if (opts.signal.aborted) break;
      const rows = ctl?.batchRows ?? opts.batchRows;
      const limit = batchLimit(Math.max(100, Math.floor(rows * gate.factor)), pos);
      const b0 = performance.now();
      let r: { pos: Position; rowsDone: number; n: number };
      if (control) control.inBatch = true;
      if (pacer) pacer.busy = true;
      const useRun = !!runProc && !stale && !pacer && (ctl?.pauseMs ?? opts.pauseMs) === 0 && gate.pauseMs === 0 && (!throttle || throttle.level === 'clear');
      try {
        if (useRun) {
          r = await callRun(pos, rowsDone, limit);
          runFailures = 0;
        } else
        // the checkpoint commits with the rows in this transaction: a lost commit loses both, so the copy's own
        // commits need not wait for the WAL flush (asyncCommit: synchronous_commit off for this transaction only)
        r = await db.tx(async (tx) => {
          let p = pos;
          let before = rowsDone;
          if (stale) {
            const c = await readCheckpoint(tx, stepId);
            if (!c) throw new Error(`the checkpoint of ${stepId} disappeared during the copy`);
            p = c.position;
            before = c.rowsDone;
          }
          if (p.done) return { pos: p, rowsDone: before, n: 0 };
          const params = [...cursorParams(p), ...p.upper!, limit, stepId, before, runId];
          const res = await tx.client.query<{ r_n: number; r_last: string[]; r_part: string | null; r_moved: number; r_done: boolean }>(
            `SELECT r_n, r_last, r_part, r_moved, r_done FROM ${fn}(${params.map((_, i) => `$${i + 1}`).join(', ')})`, params,
          );
          const row = res.rows[0]!;
          if (row.r_moved !== 1) throw new StaleCheckpoint();
          const n = row.r_n;
          const next: Position = { ...p, last: row.r_last, batches: p.batches + (n > 0 ? 1 : 0), lastPartition: row.r_part ?? p.lastPartition ?? null, done: row.r_done };
          return { pos: next, rowsDone: before + n, n };
        }, { stepId, signal: opts.signal, onRetry: retry, asyncCommit: true });
      } catch (e) {
        if (control) control.inBatch = false;
        if (pacer) pacer.busy = false;
        const err = e as { code?: string; message?: string };
        if (useRun && (isLockTimeout(e) || isConnectionLoss(e) || err?.code === 'PGS01' || err?.code === '23505')) {
          // the batches the run committed stay; the one in flight rolled back: re-read the checkpoint and go on
          runFailures++;
          if (runFailures >= db.locks.attempts || opts.signal.aborted) throw e;
          const waitMs = err?.code === 'PGS01' ? 0 : backoffDelay(runFailures, db.locks.backoffMs, db.locks.maxBackoffMs);
          if (err?.code !== 'PGS01') retry({ error: err?.message ?? String(e), code: err?.code, kind: retryKind(e) ?? 'lock', attempt: runFailures + 1, attempts: db.locks.attempts, waitMs });
          stale = Math.max(stale, 1);
          if (waitMs) await sleep(waitMs, opts.signal);
          continue;
        }
        if (e instanceof StaleCheckpoint && stale < 3) {
          opts.log(e.message, 'warn');
          stale++;
          continue;
        }
        if (err?.code === 'PGS02') throw new UserError((err.message ?? '').replace(/^pgshift: /, ''), startOver, 1);
        if (err?.code === '23514' && /no partition of relation/.test(err.message ?? '')) {
          throw new UserError(
            `${pair.source.display} has rows no partition of ${pair.target.display} accepts: ${err.message}`,
            'create the missing partition or a DEFAULT partition (phase 2), then run phase 3 again: the copy resumes from its checkpoint',
            1,
          );
        }
        throw e;
      }
      if (control) control.inBatch = false;
      if (pacer) pacer.busy = false;
      stale = 0;
      pos = r.pos;
      rowsDone = r.rowsDone;
      batches = r.pos.batches;
      done = r.pos.done;
      lastPart = r.pos.lastPartition ?? lastPart;
      if (control) control.batch = batches;
      const batchMs = performance.now() - b0;
      const pace = pacer?.decide(batchMs) ?? null;
      const extra = ctl?.pauseMs ?? opts.pauseMs;
      const pause = extra + gate.pauseMs + (pace?.restMs ?? 0);
      if (waitingLock) waitingLock = null;
      if (throttle && throttle.level !== 'clear') report('throttled', throttle.reason);
      else if (pace?.throttled) report('throttled', pace.reason);
      else if (ctl?.pauseMs) report('throttled', `${ctl.pauseMs} ms rest between batches, set with pgshift control throttle`);
      else report('running');
      if (!done && pause > 0) {
        // rest in slices, looking at the controls: a pause or a new rest applies now, not after a long rest
        const r0 = performance.now();
        let until = pause;
        while (!opts.signal.aborted && performance.now() - r0 < until) {
          await sleep(Math.min(250, until - (performance.now() - r0)), opts.signal);
          if (!control) continue;
          const c2 = await control.check();
          if (c2.paused) break;
          until = (c2.pauseMs ?? opts.pauseMs) + gate.pauseMs + (pace?.restMs ?? 0);
        }
      }
    }
  } finally {
    await Promise.all([throttle?.stop(), pacer?.stop(), control?.settle()]);
    if (runProc) await db.ddl([`DROP PROCEDURE IF EXISTS ${runProc}`], { stepId }).catch(() => {});
    await db.ddl([`DROP FUNCTION IF EXISTS ${fn}`], { stepId }).catch(() => {});
  }
  return {
    rows: rowsDone, batches, ms: performance.now() - t0, stopped: !done, already: false, resumedFrom,
    pausedMs: (throttle?.pausedMs ?? 0) + pausedMs,
  };
}
