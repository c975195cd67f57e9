import type { Db, Tx } from '../db/session.js';
import { setLocal, sleep } from '../db/session.js';
import { UserError } from '../engine/errors.js';
import type { LogLevel, Progress } from '../engine/types.js';

/**
 * Continuous catch-up: a change log (the forward capture of phase 3, or the swap's reverse log) is applied to the
 * other table in short transactions while the operator and the other steps go on, so that when the exclusive lock
 * is finally taken only a small remainder is left to apply under it.
 *
 *  - `Replayer` is what a log offers: how many changes are pending, how many were ever captured (its sequence: the
 *    growth per second is the capture rate), and one set-based, coalescing apply batch.
 *  - `ApplyMeter` measures the apply cost per change from the batches actually run, and predicts how long the
 *    remainder would hold the lock.
 *  - `converge` applies until the predicted remainder fits the lock budget (`swap.maxLockMs`), or gives up after a
 *    timeout saying both rates and what to do: never a silent or endless wait.
 *  - `startBackground` keeps applying between steps (integrity check, phase 4, the operator's confirmation).
 */

export interface Replayer {
  /** e.g. "public.orders → public.orders_partitioned" */
  readonly label: string;
  pending(): Promise<number>;
  /** total ever captured (monotonic): its growth per second is the capture rate */
  captured(): Promise<number>;
  /** one apply batch beside live writers */
  apply(limit: number, signal?: AbortSignal): Promise<{ changes: number; ms: number }>;
}

/**
 * Apply cost, from the batches run: a fixed part per batch (round trips, commit; the cheapest batch bounds it) and
 * a part per change (the slope over the batches). Under the lock only the per-change part and a few round trips
 * count: that is what predict() returns.
 */
/** How long one background apply transaction may hold the rows it applies while writers go on (ms). */
export const APPLY_TXN_MS = 25;
/**
 * The longest it may grow to while the backlog does not shrink. Under load a small apply transaction is mostly fixed
 * cost (round trips, its commit's WAL flush): measured beside pgbench's tpcb-like load (8 clients, 2 cores) the
 * carry-back cost 2.3 ms a key at 50 keys a transaction and 0.3 ms at 4,000, so transactions sized for 25 ms kept
 * it at ~700 keys/s, the rate the application wrote them: it never caught up. The rows an apply holds are the new
 * table's before the swap and the old table's after it, which the application does not write; the log rows it takes
 * are locked only by its last statement, until its commit.
 */
export const MAX_APPLY_TXN_MS = 400;

export class ApplyMeter {
  private samples: { changes: number; ms: number }[] = [];
  /** the time an apply transaction is sized for now (see backlog) */
  txnMs = APPLY_TXN_MS;
  private lastPending: number | null = null;
  /**
   * Told the backlog before each apply: while it does not shrink, the transactions get twice as long (up to
   * MAX_APPLY_TXN_MS), fewer of them per change; once it halves, they get shorter again.
   */
  backlog(pending: number): void {
    if (this.lastPending !== null && pending > 0) {
      if (pending >= this.lastPending) this.txnMs = Math.min(MAX_APPLY_TXN_MS, this.txnMs * 2);
      else if (pending < this.lastPending / 2) this.txnMs = Math.max(APPLY_TXN_MS, this.txnMs / 2);
    }
    this.lastPending = pending;
  }
  add(changes: number, ms: number): void {
    if (changes <= 0) return;
    this.samples.push({ changes, ms });
    if (this.samples.length > 20) this.samples.shift();
  }
  get measured(): boolean {
    return this.samples.length > 0;
  }
  /** ms per change (the marginal cost) */
  get perChange(): number {
    if (!this.samples.length) return Infinity;
    const fixed = Math.min(...this.samples.map((s) => s.ms)) * 0.8;
    const c = this.samples.reduce((a, s) => a + s.changes, 0);
    const m = this.samples.reduce((a, s) => a + Math.max(0, s.ms - fixed), 0);
    const slope = m / c;
    // a single batch size (or equal costs) says nothing about the slope: fall back to the whole cost per change
    const ratio = Math.min(...this.samples.map((s) => s.ms / s.changes));
    return slope > 0.001 ? slope : ratio;
  }
  /** changes per second the replay can apply when it has a backlog */
  get capacity(): number {
    return this.measured ? 1000 / this.perChange : 0;
  }
  /**
   * Keys per apply transaction beside live writers: a batch holds its rows (and the log rows it took) until it
   * commits, so an application writing one of those keys waits for it. Sized so a transaction takes about
   * `targetMs` at the measured cost, never more than `max`; before any measurement a modest first batch.
   */
  batchFor(max: number, targetMs = this.txnMs): number {
    if (!this.measured) return Math.min(max, 100);
    return Math.max(20, Math.min(max, Math.floor(targetMs / this.perChange)));
  }
  /** predicted ms to apply n changes under the lock (plus a few round trips) */
  predict(n: number): number {
    if (n <= 0) return 0;
    return this.measured ? 5 + n * this.perChange : Infinity;
  }
}

/** A rate over a sliding window of (time, total) samples. */
export class RateWindow {
  private pts: { t: number; v: number }[] = [];
  constructor(private readonly windowMs = 5000) {}
  add(v: number, t = performance.now()): void {
    this.pts.push({ t, v });
    while (this.pts.length > 2 && t - this.pts[0]!.t > this.windowMs) this.pts.shift();
  }
  perSec(): number {
    if (this.pts.length < 2) return 0;
    const a = this.pts[0]!, b = this.pts[this.pts.length - 1]!;
    return b.t > a.t ? ((b.v - a.v) * 1000) / (b.t - a.t) : 0;
  }
}

export interface CatchUpReport {
  readonly pending: number;
  readonly capturedPerSec: number;
  readonly appliedPerSec: number;
  /** what the replay could apply per second, from the measured cost per change */
  readonly capacityPerSec: number;
  readonly predictedLockMs: number;
}

export interface Reporter {
  log(message: string, level?: LogLevel): void;
  progress?(p: Progress): void;
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');

export function describeRates(r: CatchUpReport): string {
  return `${n0(r.pending)} pending · captured ${n0(r.capturedPerSec)}/s · applied ${n0(r.appliedPerSec)}/s (replay capacity ~${n0(r.capacityPerSec)}/s)`;
}

export class BudgetExceeded extends Error {
  constructor(readonly ms: number, readonly budget: number, readonly changes: number, readonly cut = false) {
    super(cut
      ? `the apply under the lock was cut at the ${budget} ms budget (statement_timeout) after ${Math.round(ms)} ms`
      : `applying ${changes} change(s) under the lock took ${Math.round(ms)} ms, over the ${budget} ms budget`);
    this.name = 'BudgetExceeded';
  }
}

/**
 * Applies the remainder of a change log under the cut-over's lock, held since `lockedAt`: over `maxLockMs` it throws
 * BudgetExceeded, so lockedTx rolls back (the lock goes), catches up again and retries. The swap and the swap back
 * both apply their remainder through this one rule. `apply` gets `tx` with a deadline: its every statement first
 * gets a statement_timeout of what is left of the budget then (not of what was left when the apply began: four
 * statements each allowed the whole rest could hold the lock four times as long), so a statement that would hold
 * the lock past the budget (a plan gone bad, a row lock) is cut there instead of after it finished.
 */
export async function applyUnderLock(lockedAt: number, maxLockMs: number, apply: (tx: Tx) => Promise<number>, tx: Tx): Promise<{ changes: number; ms: number }> {
  const restore = await setLocal(tx.client, { statement_timeout: String(remainingMs(lockedAt, maxLockMs)) });
  let changes: number;
  try {
    changes = await apply(deadlineTx(tx, lockedAt, maxLockMs));
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === '57014' && /statement timeout/.test(err.message ?? '')) throw new BudgetExceeded(performance.now() - lockedAt, maxLockMs, -1, true);
    throw e;
  }
  await restore();
  const ms = performance.now() - lockedAt;
  if (ms > maxLockMs) throw new BudgetExceeded(ms, maxLockMs, changes);
  return { changes, ms };
}

const remainingMs = (lockedAt: number, maxLockMs: number) => Math.max(1, Math.ceil(maxLockMs - (performance.now() - lockedAt)));

/**
 * `tx` with a deadline: before each statement (through `query` or straight on `client`) the transaction's
 * statement_timeout is set to what is left until `lockedAt + maxLockMs` (one short round trip each, a fraction of a
 * millisecond against the statement it bounds).
 */
function deadlineTx(tx: Tx, lockedAt: number, maxLockMs: number): Tx {
  const arm = () => tx.client.query(`SELECT set_config('statement_timeout', $1, true)`, [String(remainingMs(lockedAt, maxLockMs))]);
  const client = new Proxy(tx.client, {
    get(target, prop) {
      if (prop === 'query') {
        return async (...args: unknown[]) => {
          await arm();
          return (target.query as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return {
    client,
    query: async (sql, params) => {
      await arm();
      return tx.query(sql, params);
    },
  };
}

/**
 * Whether the lock may be requested now: the log is empty, or the remainder is predicted within the budget and the
 * replay has reached its steady state, what arrives while one batch applies: the last apply took everything that was
 * pending and the backlog did not shrink by a fifth since. Every change left for the lock holds the application that
 * long (measured under pgbench: 156 keys took 28 ms under the swap-back's lock, predicted 13), so a remainder that is
 * merely small enough still shrinks while the batches shrink it; predictions err, and the lock is taken only at the
 * floor. An apply cut by its batch size says nothing about the floor: under pgbench the swap's first apply (100
 * changes, the size before any measurement) left 377 of 417, read as "no longer shrinking", and 395 changes were
 * applied under a lock held 27 ms.
 */
export function readyForLock(o: { pending: number; lastPending: number | null; lastTookAll: boolean; predictedMs: number; budgetMs: number }): boolean {
  if (o.pending === 0) return true;
  return o.predictedMs <= o.budgetMs && o.lastPending !== null && o.lastTookAll && o.pending >= o.lastPending * 0.8;
}

/** The budget for the apply itself under the lock: the rest of the lock time goes to the renames, views and FKs. */
export const applyBudget = (maxLockMs: number) => Math.max(5, Math.floor(maxLockMs * 0.6));

/**
 * Applies the log until the remainder is predicted to apply within `budgetMs`; returns the state then. Throws a
 * UserError after `timeoutMs` when the writes outpace the replay (with both rates and what to do).
 */
export async function converge(
  rp: Replayer,
  opts: { budgetMs: number; batch: number; timeoutMs: number; signal?: AbortSignal; reporter: Reporter; meter?: ApplyMeter; what: string },
): Promise<CatchUpReport> {
  const meter = opts.meter ?? new ApplyMeter();
  const cap = new RateWindow(), app = new RateWindow();
  let applied = 0;
  const t0 = performance.now();
  let lastLog = 0;
  let lastWarn = 0;
  let lastPending: number | null = null;
  let lastTookAll = false;
  cap.add(await rp.captured());
  app.add(0);
  for (;;) {
    const pending = await rp.pending();
    const now = performance.now();
    cap.add(await rp.captured(), now);
    app.add(applied, now);
    const rep: CatchUpReport = {
      pending, capturedPerSec: cap.perSec(), appliedPerSec: app.perSec(), capacityPerSec: meter.capacity, predictedLockMs: meter.predict(pending),
    };
    if (readyForLock({ pending, lastPending, lastTookAll, predictedMs: rep.predictedLockMs, budgetMs: opts.budgetMs })) return rep;
    lastPending = pending;
    if (opts.signal?.aborted) return rep;
    if (now - lastLog > 2000) {
      lastLog = now;
      opts.reporter.log(`catch-up ${rp.label}: ${describeRates(rep)}; the lock is taken once the rest applies in ≤ ${opts.budgetMs} ms (predicted ${Number.isFinite(rep.predictedLockMs) ? Math.round(rep.predictedLockMs) : '?'} ms)`);
    }
    opts.reporter.progress?.({ done: applied, unit: 'changes', detail: `catch-up: ${describeRates(rep)}` });
    const elapsed = now - t0;
    if (elapsed > 10_000 && rep.capturedPerSec > 0.9 * Math.max(rep.capacityPerSec, 1) && now - lastWarn > 10_000) {
      lastWarn = now;
      opts.reporter.log(
        `writes outpace the replay of ${rp.label}: captured ${n0(rep.capturedPerSec)}/s, replay capacity ~${n0(rep.capacityPerSec)}/s; ${n0(pending)} pending. ` +
          `Raise copy.batchRows (bigger apply batches), pick a quieter moment, or stop now and run ${opts.what} later; gives up after ${Math.round(opts.timeoutMs / 1000)} s`,
        'warn',
      );
    }
    if (elapsed > opts.timeoutMs) {
      throw new UserError(
        `the replay of ${rp.label} did not catch up within ${Math.round(opts.timeoutMs / 1000)} s: ${describeRates(rep)}; the rest would hold the lock ~${Number.isFinite(rep.predictedLockMs) ? Math.round(rep.predictedLockMs) : '?'} ms, over the ${opts.budgetMs} ms budget. Nothing was locked or renamed`,
        `raise copy.batchRows (bigger apply batches), run ${opts.what} at a quieter moment, or raise swap.maxLockMs if a longer lock is acceptable`,
        1,
      );
    }
    // the deadline also ends an apply that waits (a row lock held on the table, lock_timeout retries)
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), Math.max(0, opts.timeoutMs - (performance.now() - t0)));
    const stop = () => deadline.abort();
    opts.signal?.addEventListener('abort', stop, { once: true });
    try {
      meter.backlog(pending);
      const r = await rp.apply(meter.batchFor(opts.batch), deadline.signal);
      meter.add(r.changes, r.ms);
      applied += r.changes;
      lastTookAll = r.changes >= pending;
      if (r.changes === 0) await sleep(20, opts.signal);
    } catch (e) {
      if (!deadline.signal.aborted) throw e;
      // the next round reports the timeout (or the operator's stop) with both rates
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', stop);
    }
  }
}

interface Background {
  stop(): Promise<void>;
  readonly startedAt: number;
}

const running = new WeakMap<Db, Map<string, Background>>();

/**
 * Whether the background catch-up logs its line now: every `everyMs` while changes come or wait, every
 * `quietEveryMs` once it has said it is quiet (a wizard left open for the night is not a screenful of zeros).
 */
export function backgroundLogDue(o: { sinceLastMs: number; quiet: boolean; lastWasQuiet: boolean; everyMs: number; quietEveryMs: number }): boolean {
  return o.sinceLastMs > (o.quiet && o.lastWasQuiet ? o.quietEveryMs : o.everyMs);
}

/**
 * How long the background catch-up lets changes gather after an apply that took the whole backlog. Each apply costs
 * the same fixed part whatever it carries: 14 round trips (each wakes a backend) and four commits (its own and the
 * journal's record of its three statements), flushed to WAL beside the application's commits. Measured under
 * pgbench's tpcb-like load (bench:cutover, 2 cores): applying as soon as anything was pending ran 30-50 applies a
 * second of 30-60 changes each (~600 round trips and ~160 commits a second); pgshift's process used 4.0 s of CPU in
 * a 31-s run, pg_dump included, and 43 % of its busy time under the profiler went to writing on its sockets.
 * Gathered for 250 ms, the same changes go in ~4 applies a second; the lag stays below what arrives in 250 ms, and
 * the swap catches up the rest itself before its lock.
 */
export const BACKGROUND_GATHER_MS = 250;

/**
 * The pause before the next background apply: none while a backlog is left (the apply took only part of it), else
 * what is left of `gatherMs` since the apply started; 50 ms after an apply that found nothing to take.
 */
export function gatherDelay(pendingBefore: number, applied: number, elapsedMs: number, gatherMs = BACKGROUND_GATHER_MS): number {
  if (applied === 0) return 50;
  if (applied < pendingBefore) return 0;
  return Math.max(0, gatherMs - elapsedMs);
}

/**
 * Keeps applying the log in the background (one short transaction per batch) until stopBackground; a line with the
 * lag and both rates every `logEveryMs` (every `quietEveryMs`, a minute, while nothing comes). Stops by itself when
 * the pool closes or after repeated errors (logged). Starting it twice for the same key keeps the first one.
 */
export function startBackground(db: Db, key: string, rp: Replayer, opts: { batch: number; reporter: Reporter; logEveryMs?: number; quietEveryMs?: number; gatherMs?: number }): void {
  let map = running.get(db);
  if (!map) running.set(db, (map = new Map<string, Background>()));
  if (map.has(key)) return;
  const ctl = new AbortController();
  const meter = new ApplyMeter();
  const loop = (async () => {
    const cap = new RateWindow(10_000), app = new RateWindow(10_000);
    let applied = 0, errors = 0, lastLog = performance.now();
    let lastPending: number | null = null;
    let lastWasQuiet = false;
    opts.reporter.log(`background catch-up of ${rp.label} started: captured changes keep being applied until the swap`);
    while (!ctl.signal.aborted && !db.pool.ending) {
      try {
        const pending = await rp.pending();
        const now = performance.now();
        cap.add(await rp.captured(), now);
        app.add(applied, now);
        const rep = { pending, capturedPerSec: cap.perSec(), appliedPerSec: app.perSec(), capacityPerSec: meter.capacity, predictedLockMs: meter.predict(pending) };
        const quiet = pending === 0 && rep.capturedPerSec === 0 && rep.appliedPerSec === 0;
        if (backgroundLogDue({ sinceLastMs: now - lastLog, quiet, lastWasQuiet, everyMs: opts.logEveryMs ?? 5000, quietEveryMs: opts.quietEveryMs ?? 60_000 })) {
          lastLog = now;
          const growing = lastPending !== null && pending > lastPending && pending > opts.batch && rep.capturedPerSec > rep.appliedPerSec;
          const every = Math.round((opts.quietEveryMs ?? 60_000) / 1000);
          opts.reporter.log(
            growing
              ? `writes outpace the replay of ${rp.label}: ${describeRates(rep)} and growing; the swap will wait for it to catch up (and give up after swap.catchUpTimeoutSec). Raise copy.batchRows (bigger apply batches) or pick a quieter moment`
              : quiet
                ? `background catch-up ${rp.label}: up to date, no writes captured in the last 10 s${lastWasQuiet ? '' : ` (while it stays so, this line comes every ${every} s)`}`
                : `background catch-up ${rp.label}: ${describeRates(rep)}`,
            growing ? 'warn' : 'info',
          );
          lastPending = pending;
          lastWasQuiet = quiet;
        }
        if (pending > 0) {
          meter.backlog(pending);
          const t0 = performance.now();
          const r = await rp.apply(meter.batchFor(opts.batch), ctl.signal);
          meter.add(r.changes, r.ms);
          applied += r.changes;
          const wait = gatherDelay(pending, r.changes, performance.now() - t0, opts.gatherMs);
          if (wait > 0) await sleep(wait, ctl.signal);
        } else await sleep(100, ctl.signal);
        errors = 0;
      } catch (e) {
        if (ctl.signal.aborted || db.pool.ending) break;
        errors++;
        if (errors === 1 || errors % 10 === 0) opts.reporter.log(`background catch-up of ${rp.label}: ${(e as Error).message} (retrying)`, 'warn');
        if (errors >= 30) {
          opts.reporter.log(`background catch-up of ${rp.label} stopped after ${errors} errors; the swap catches up itself before locking`, 'warn');
          break;
        }
        await sleep(500, ctl.signal);
      }
    }
  })();
  const entry: Background = {
    startedAt: performance.now(),
    async stop() {
      ctl.abort();
      await loop.catch(() => {});
    },
  };
  map.set(key, entry);
  void loop.finally(() => {
    const m = running.get(db);
    if (m?.get(key) === entry) m.delete(key);
  });
}

/** Stops the background catch-up of `key` (waits for its batch in flight); true when one was running. */
export async function stopBackground(db: Db, key: string): Promise<boolean> {
  const map = running.get(db);
  const b = map?.get(key);
  if (!b) return false;
  map!.delete(key);
  await b.stop();
  return true;
}

export function backgroundRunning(db: Db, key: string): boolean {
  return running.get(db)?.has(key) ?? false;
}
