import type { Db, Tx } from '../db/session.js';
import { sleep } from '../db/session.js';
import type { Journal } from '../engine/journal.js';
import type { LogLevel, Progress } from '../engine/types.js';
import { UserError } from '../engine/errors.js';
import { ident } from '../db/quote.js';
import { estimateRows, listOf, rowOf, paramsFrom, type ColumnMap, type CopyOrder, type Pair } from './meta.js';
import { Throttle } from './throttle.js';

/**
 * The batch copy. Not the seed's loop: its `LIMIT … OFFSET` inside one DO block is one transaction (nothing
 * commits until the end, pg_sleep releases nothing) and each batch re-reads every earlier row (quadratic).
 * Here each batch is one short transaction through db.tx (SET LOCAL lock_timeout, retried with backoff on lock
 * timeouts and lost connections):
 *
 *   SELECT position FROM pgshift.checkpoints WHERE step_id = … FOR UPDATE        -- the cursor, from the database
 *   WITH ins AS (INSERT INTO new (cols) SELECT cols FROM old
 *                 WHERE (key, pk) > ($cursor) AND (key, pk) <= ($upper) ORDER BY key, pk LIMIT n
 *                RETURNING key, pk, tableoid)
 *   SELECT count, last (key, pk), partition of the last row                       -- rows never travel through Node
 *   INSERT … INTO pgshift.checkpoints …                                           -- same transaction as the rows
 *
 * The cursor is read from the checkpoint inside the batch's own transaction, so a retry after a lost connection
 * (where the COMMIT may or may not have reached the server) continues from what is really committed: no
 * duplicate, no gap. A SIGKILL mid-batch leaves the batch uncommitted (the server rolls it back); the resumed run
 * starts from the last committed checkpoint. The upper bound is the largest (key, pk) at the copy's start: rows
 * written later are the change capture's business (online mode); a copy chasing new inserts might never end.
 */

export interface Position {
  readonly v: 1;
  readonly order: string[];
  readonly upper: string[] | null;
  readonly last: string[] | null;
  readonly done: boolean;
  readonly batches: number;
  readonly lastPartition?: string | null;
}

export interface BatchCopyOptions {
  readonly stepId: string;
  readonly batchRows: number;
  readonly pauseMs: number;
  readonly throttle: { readonly lockWaitMs: number; readonly longQuerySeconds: number } | null;
  readonly signal: AbortSignal;
  /**
   * Online mode: after each batch, also rest `yieldFactor` × the batch's duration (1 = a 50% duty cycle). A copy
   * running flat out fills the WAL and the disk queue, and every application commit waits behind that flush: in
   * the benchmark the writer's p99 rose ~8× with no rest and ~1.5× at a 50% duty cycle.
   */
  readonly yieldFactor?: number;
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

export function batchStatement(pair: Pair, map: ColumnMap, order: CopyOrder, first: boolean): string {
  const o = order.columns;
  const n = o.length;
  const lower = first ? '' : `${rowOf(o)} > (${paramsFrom(1, n)}) AND `;
  const upperAt = first ? 1 : n + 1;
  const limitAt = upperAt + n;
  return `WITH ins AS (
  INSERT INTO ${pair.target.q} (${listOf(map.columns)})${map.overriding ? ' OVERRIDING SYSTEM VALUE' : ''}
  SELECT ${listOf(map.columns)} FROM ${pair.source.q}
   WHERE ${lower}${rowOf(o)} <= (${paramsFrom(upperAt, n)})
   ORDER BY ${listOf(o)} LIMIT $${limitAt}
  RETURNING ${listOf(o)}, tableoid
)
SELECT c.n, l.* FROM (SELECT count(*)::int AS n FROM ins) c
LEFT JOIN LATERAL (
  SELECT ${o.map((c, i) => `${ident(c)}::text AS p${i}`).join(', ')}, (SELECT relname FROM pg_class WHERE oid = ins.tableoid) AS part
    FROM ins ORDER BY ${o.map((c) => `${ident(c)} DESC`).join(', ')} LIMIT 1
) l ON true`;
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

export async function targetIsEmpty(db: Db, pair: Pair): Promise<boolean> {
  const [r] = await db.read<{ e: boolean }>(`SELECT NOT EXISTS (SELECT 1 FROM ${pair.target.q}) AS e`);
  return r!.e;
}

/**
 * Copies old → new by keyset batches from the checkpoint on. Throws UserError on a non-empty target without
 * checkpoint (never double-insert). Returns when done, or stopped by the signal with a clean checkpoint.
 */
export async function batchCopy(db: Db, journal: Journal, pair: Pair, map: ColumnMap, order: CopyOrder, opts: BatchCopyOptions): Promise<BatchCopyResult> {
  const t0 = performance.now();
  const { stepId } = opts;
  const onRetry = (what: string) => (i: { error: string; code?: string; attempt: number; attempts: number; waitMs: number }) => {
    const lost = !['55P03', '40P01', '40001'].includes(i.code ?? '');
    opts.log(
      lost
        ? `connection lost, reconnecting… (${what}: ${i.error}; attempt ${i.attempt}/${i.attempts} in ${i.waitMs} ms; the batch rolled back or committed whole, the cursor is re-read from the checkpoint)`
        : `${what}: lock not available (${i.error}); retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`,
      'warn',
    );
  };

  let cp = await journal.getCheckpoint<Position>(stepId);
  const empty = await targetIsEmpty(db, pair);
  if (cp && cp.rowsDone > 0 && empty && !cp.position.done) {
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
  if (cp && cp.position.order.join('\u0000') !== order.columns.join('\u0000')) {
    throw new UserError(
      `the checkpoint of ${stepId} walks (${cp.position.order.join(', ')}) but the table is now walked by (${order.columns.join(', ')})`,
      'the table changed since the copy started (primary key or indexes); empty the target and run phase 3 again',
      1,
    );
  }
  if (cp?.position.done) {
    return { rows: cp.rowsDone, batches: cp.position.batches, ms: 0, stopped: false, already: true, resumedFrom: cp.rowsDone, pausedMs: 0 };
  }
  if (!cp) {
    const up = (await db.read<Record<string, string>>(upperStatement(pair, order)))[0];
    const upper = up ? order.columns.map((_, i) => up[`p${i}`]!) : null;
    const position: Position = { v: 1, order: order.columns, upper, last: null, done: upper === null, batches: 0 };
    await db.tx((tx) => journal.setCheckpoint(tx, stepId, position, 0), { stepId, onRetry: onRetry('checkpoint') });
    cp = { position, rowsDone: 0 };
    opts.log(upper ? `upper bound fixed at the start: (${order.columns.join(', ')}) ≤ (${upper.join(', ')}); later rows are not chased` : `${pair.source.display} is empty: nothing to copy`);
  } else {
    opts.log(`resuming from the checkpoint: ${cp.rowsDone.toLocaleString('en-US')} rows in ${cp.position.batches} batches already committed, cursor (${(cp.position.last ?? []).join(', ')})`);
  }
  const resumedFrom = cp.rowsDone;
  const total = await estimateRows(db, pair.source.oid);
  const firstSql = batchStatement(pair, map, order, true);
  const nextSql = batchStatement(pair, map, order, false);

  const throttle = opts.throttle ? new Throttle(db.info.config, { ...opts.throttle, log: opts.log }) : null;
  await throttle?.start();
  let rowsDone = cp.rowsDone;
  let batches = cp.position.batches;
  let done = cp.position.done;
  let lastPart: string | null = cp.position.lastPartition ?? null;
  try {
    opts.progress({ done: rowsDone, total, unit: 'rows', detail: lastPart ? `partition ${lastPart} · batch ${batches}` : 'starting' });
    while (!done) {
      if (opts.signal.aborted) break;
      const gate = throttle ? await throttle.gate(opts.signal) : { factor: 1, pauseMs: 0 };
      if (opts.signal.aborted) break;
      const limit = Math.max(100, Math.floor(opts.batchRows * gate.factor));
      const b0 = performance.now();
      const r = await db.tx(async (tx) => {
        const c = await readCheckpoint(tx, stepId);
        if (!c) throw new Error(`the checkpoint of ${stepId} disappeared during the copy`);
        const pos = c.position;
        if (pos.done) return { pos, rowsDone: c.rowsDone, n: 0 };
        const params = pos.last ? [...pos.last, ...pos.upper!, limit] : [...pos.upper!, limit];
        const res = await tx.query<Record<string, string | number | null>>(pos.last ? nextSql : firstSql, params);
        const row = res.rows[0]!;
        const n = Number(row.n);
        const next: Position = n === 0
          ? { ...pos, done: true }
          : { ...pos, last: order.columns.map((_, i) => String(row[`p${i}`])), batches: pos.batches + 1, lastPartition: (row.part as string | null) ?? null };
        await journal.setCheckpoint(tx, stepId, next, c.rowsDone + n);
        return { pos: next, rowsDone: c.rowsDone + n, n };
      }, { stepId, signal: opts.signal, onRetry: onRetry(`batch ${batches + 1}`) }).catch((e: { code?: string; message?: string }) => {
        if (e?.code === '23514' && /no partition of relation/.test(e.message ?? '')) {
          throw new UserError(
            `${pair.source.display} has rows no partition of ${pair.target.display} accepts: ${e.message}`,
            'create the missing partition or a DEFAULT partition (phase 2), then run phase 3 again: the copy resumes from its checkpoint',
            1,
          );
        }
        throw e;
      });
      rowsDone = r.rowsDone;
      batches = r.pos.batches;
      done = r.pos.done;
      lastPart = r.pos.lastPartition ?? lastPart;
      opts.progress({
        done: rowsDone, total: done ? rowsDone : total && total > rowsDone ? total : undefined, unit: 'rows',
        detail: done ? `all ${batches} batches committed` : `partition ${lastPart ?? '?'} · batch ${batches}`,
      });
      const pause = opts.pauseMs + gate.pauseMs + Math.round((opts.yieldFactor ?? 0) * (performance.now() - b0));
      if (!done && pause > 0) await sleep(pause, opts.signal);
    }
  } finally {
    await throttle?.stop();
  }
  return {
    rows: rowsDone, batches, ms: performance.now() - t0, stopped: !done, already: false, resumedFrom,
    pausedMs: throttle?.pausedMs ?? 0,
  };
}
