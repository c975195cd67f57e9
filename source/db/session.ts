import pg from 'pg';
import type { ConnectionInfo } from './connection.js';
import { connectionError, redact } from './connection.js';

/** Where executed statements are recorded (the journal). */
export interface StatementSink {
  recordStatement(s: { stepId: string | null; sql: string; ms: number; rows: number | null; error?: string }): Promise<void>;
}

export interface LockPolicy {
  /** SET LOCAL lock_timeout for every DDL transaction */
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_LOCKS: LockPolicy = { timeoutMs: 2000, attempts: 10, backoffMs: 250, maxBackoffMs: 5000 };

export interface TxOptions {
  readonly stepId?: string | null;
  readonly lockTimeoutMs?: number;
  readonly attempts?: number;
  /** called before each retry: what failed, which attempt is next, how long we wait */
  readonly onRetry?: (info: { error: string; code?: string; attempt: number; attempts: number; waitMs: number }) => void;
  readonly signal?: AbortSignal;
  /** extra SET LOCAL lines (already validated) e.g. statement_timeout */
  readonly statementTimeoutMs?: number;
  /**
   * SET LOCAL synchronous_commit = off: the COMMIT does not wait for the WAL flush. Only for transactions whose
   * loss in a server crash is harmless because everything they carry is lost together and redone (the copy's
   * batches: rows and their checkpoint in one transaction).
   */
  readonly asyncCommit?: boolean;
}

/** A query runner bound to one client inside a transaction; every statement is journaled. */
export interface Tx {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  readonly client: pg.PoolClient;
}

const RETRY_LOCK = new Set(['55P03', '40P01', '40001']);
const RETRY_CONN = new Set(['57P01', '57P02', '57P03', '08000', '08003', '08006', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE']);

export function isLockTimeout(e: unknown): boolean {
  return RETRY_LOCK.has((e as { code?: string })?.code ?? '');
}
export function isConnectionLoss(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  if (RETRY_CONN.has(err?.code ?? '')) return true;
  return /Connection terminated|terminating connection|Client has encountered a connection error|not queryable/i.test(err?.message ?? '');
}

export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  // full jitter on the upper half so concurrent retriers spread out
  return Math.round(exp / 2 + random() * (exp / 2));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * The database as pgshift uses it: a small pool, every statement journaled, every DDL inside a transaction that
 * starts with SET LOCAL lock_timeout (SET LOCAL survives transaction-pooling PgBouncer; a session SET does not) and
 * is retried with backoff and jitter when the lock is not available, so production never queues behind pgshift.
 */
export class Db {
  readonly pool: pg.Pool;
  sink: StatementSink | null = null;
  locks: LockPolicy = DEFAULT_LOCKS;
  private closed = false;

  constructor(readonly info: ConnectionInfo, applicationName = 'pgshift', max = 4) {
    this.pool = new pg.Pool({ ...info.config, max, application_name: applicationName, idleTimeoutMillis: 30_000 });
    // a backend terminated while idle in the pool must not crash the process
    this.pool.on('error', () => {});
    // nor one terminated while a client is checked out (pg-pool drops its idle listener on checkout): the failed
    // query rejects, and tx() reconnects and retries
    this.pool.on('connect', (client) => {
      client.on('error', () => {});
    });
  }

  /** Connects once to fail fast with a one-line cause. */
  async ping(): Promise<{ version: string; major: number; user: string; database: string }> {
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      throw connectionError(e, this.info);
    }
    try {
      const r = await c.query<{ v: string; n: string; u: string; d: string }>(
        "SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n, current_user AS u, current_database() AS d",
      );
      const row = r.rows[0]!;
      return { version: row.v, major: Math.floor(Number(row.n) / 10000), user: row.u, database: row.d };
    } finally {
      c.release();
    }
  }

  /** A read or a single autocommit statement, journaled under stepId when given. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], stepId: string | null = null): Promise<pg.QueryResult<R>> {
    return this.journaled(this.pool, sql, params, stepId);
  }

  /** Reads that are not worth journaling (catalog reads while planning, monitors). */
  async read<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]> {
    const r = await this.pool.query<R>(sql, params as unknown[]);
    return r.rows;
  }

  private async journaled<R extends pg.QueryResultRow>(
    runner: pg.Pool | pg.PoolClient,
    sql: string,
    params: unknown[] | undefined,
    stepId: string | null,
  ): Promise<pg.QueryResult<R>> {
    const t0 = performance.now();
    try {
      const r = await runner.query<R>(sql, params as unknown[]);
      if (this.sink) await this.sink.recordStatement({ stepId, sql, ms: performance.now() - t0, rows: r.rowCount ?? null });
      return r;
    } catch (e) {
      if (this.sink) {
        await this.sink
          .recordStatement({ stepId, sql, ms: performance.now() - t0, rows: null, error: redact(String((e as Error).message)) })
          .catch(() => {});
      }
      throw e;
    }
  }

  /**
   * One transaction with SET LOCAL lock_timeout, retried on lock timeout / deadlock / serialization failure and on a
   * lost connection (terminated backend), with exponential backoff and jitter. `fn` must be safe to re-run: it runs
   * again from the start in a new transaction after a rollback.
   */
  async tx<T>(fn: (tx: Tx) => Promise<T>, opts: TxOptions = {}): Promise<T> {
    const attempts = opts.attempts ?? this.locks.attempts;
    const timeout = Math.round(opts.lockTimeoutMs ?? this.locks.timeoutMs);
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient | null = null;
      try {
        client = await this.pool.connect();
        const c = client;
        // one round trip: BEGIN and the SET LOCALs travel as one simple query (constants only, no parameters)
        const begin = ['BEGIN', `SET LOCAL lock_timeout = ${timeout}`];
        if (opts.statementTimeoutMs) begin.push(`SET LOCAL statement_timeout = ${Math.round(opts.statementTimeoutMs)}`);
        if (opts.asyncCommit) begin.push('SET LOCAL synchronous_commit = off');
        await c.query(begin.join('; '));
        const tx: Tx = { client: c, query: (sql, params) => this.journaled(c, sql, params, opts.stepId ?? null) };
        const out = await fn(tx);
        await c.query('COMMIT');
        c.release();
        return out;
      } catch (e) {
        const lost = isConnectionLoss(e);
        if (client) {
          if (lost) client.release(e as Error);
          else {
            try {
              await client.query('ROLLBACK');
              client.release();
            } catch (e2) {
              client.release(e2 as Error);
            }
          }
        }
        const retryable = isLockTimeout(e) || lost;
        if (!retryable || attempt >= attempts || opts.signal?.aborted || this.closed) throw e;
        const waitMs = backoffDelay(attempt, this.locks.backoffMs, this.locks.maxBackoffMs);
        opts.onRetry?.({ error: redact((e as Error).message), code: (e as { code?: string }).code, attempt: attempt + 1, attempts, waitMs });
        await sleep(waitMs, opts.signal);
      }
    }
  }

  /** Records an external command (pg_dump, pg_restore) in the journal like a statement: text, duration, error. */
  async recordCommand(stepId: string | null, command: string, ms: number, error?: string): Promise<void> {
    if (this.sink) await this.sink.recordStatement({ stepId, sql: command, ms, rows: null, error: error ? redact(error) : undefined });
  }

  /** DDL statements in one lock-timed transaction with retries. */
  async ddl(statements: readonly string[], opts: TxOptions = {}): Promise<void> {
    await this.tx(async (tx) => {
      for (const s of statements) await tx.query(s);
    }, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => {});
  }
}
