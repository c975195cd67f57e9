import pg from 'pg';
import type { ConnectionInfo } from './connection.js';
import { connectionError, redact } from './connection.js';
import { ident } from './quote.js';

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
  readonly onRetry?: (info: RetryInfo) => void;
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

/**
 * The one list of SQLSTATEs after which the same work, run again from the start in a new transaction, can succeed:
 * 'lock' — another session held what we needed (our lock_timeout fired, a deadlock or a serialization conflict chose
 * us); 'connection' — the backend went away (terminated, server restart). Anything else is a real error: retrying
 * it would only repeat it.
 */
export const RETRYABLE_SQLSTATES: Readonly<Record<string, { readonly name: string; readonly kind: RetryKind }>> = {
  '55P03': { name: 'lock_not_available', kind: 'lock' },
  '40P01': { name: 'deadlock_detected', kind: 'lock' },
  '40001': { name: 'serialization_failure', kind: 'lock' },
  '57P01': { name: 'admin_shutdown', kind: 'connection' },
  '57P02': { name: 'crash_shutdown', kind: 'connection' },
  '57P03': { name: 'cannot_connect_now', kind: 'connection' },
  '08000': { name: 'connection_exception', kind: 'connection' },
  '08003': { name: 'connection_does_not_exist', kind: 'connection' },
  '08006': { name: 'connection_failure', kind: 'connection' },
};
/** Socket errors of the client (node-postgres) that mean the same as a lost connection. */
const SOCKET_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE']);
const LOST_MESSAGE = /Connection terminated|terminating connection|Client has encountered a connection error|not queryable/i;

export type RetryKind = 'lock' | 'connection';

/** Why `e` is worth retrying ('lock' or 'connection'), or null when it is not. */
export function retryKind(e: unknown): RetryKind | null {
  const err = e as { code?: unknown; message?: unknown } | null | undefined;
  const code = typeof err?.code === 'string' ? err.code : '';
  const known = RETRYABLE_SQLSTATES[code];
  if (known) return known.kind;
  if (SOCKET_ERRORS.has(code)) return 'connection';
  return typeof err?.message === 'string' && LOST_MESSAGE.test(err.message) ? 'connection' : null;
}

/** A lock conflict: lock_timeout, deadlock, serialization failure. */
export function isLockTimeout(e: unknown): boolean {
  return retryKind(e) === 'lock';
}
/** The backend or the socket went away. */
export function isConnectionLoss(e: unknown): boolean {
  return retryKind(e) === 'connection';
}

export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  // full jitter on the upper half so concurrent retriers spread out
  return Math.round(exp / 2 + random() * (exp / 2));
}

export interface RetryInfo {
  /** the error's message, passwords redacted */
  readonly error: string;
  readonly code?: string;
  readonly kind: RetryKind;
  /** the attempt about to start (2 = the first retry) */
  readonly attempt: number;
  readonly attempts: number;
  readonly waitMs: number;
}

export interface RetryOptions {
  readonly attempts: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  readonly signal?: AbortSignal;
  /** told before each wait (awaited: it may ask the operator something between attempts) */
  readonly onRetry?: (info: RetryInfo) => void | Promise<void>;
  /** true: give up now (the pool is closing…) */
  readonly stop?: () => boolean;
  /** which errors to retry (default: retryKind) */
  readonly retryable?: (e: unknown) => RetryKind | null;
}

/**
 * The one retry loop: runs `fn(attempt)` until it succeeds, retrying errors of RETRYABLE_SQLSTATES (and lost
 * connections) with exponential backoff and jitter, at most `attempts` times; gives up at once on any other error, on
 * the abort signal, or when `stop()` says so. `fn` must be safe to run again from the start.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const classify = opts.retryable ?? retryKind;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      const kind = classify(e);
      if (!kind || attempt >= opts.attempts || opts.signal?.aborted || opts.stop?.()) throw e;
      const waitMs = backoffDelay(attempt, opts.backoffMs, opts.maxBackoffMs);
      const code = (e as { code?: unknown }).code;
      await opts.onRetry?.({
        error: redact(String((e as Error).message)), code: typeof code === 'string' ? code : undefined, kind,
        attempt: attempt + 1, attempts: opts.attempts, waitMs,
      });
      await sleep(waitMs, opts.signal);
    }
  }
}

export interface ReadOnlyOptions {
  /** default READ COMMITTED; REPEATABLE READ for one consistent snapshot across several reads */
  readonly isolation?: 'read committed' | 'repeatable read' | 'serializable';
  /** SET LOCAL search_path (e.g. 'pg_catalog, pg_temp' so deparsed expressions come out schema-qualified) */
  readonly searchPath?: string;
  readonly statementTimeoutMs?: number;
}

/**
 * The one read-only transaction: BEGIN … READ ONLY on the given client, the SET LOCALs asked for, `fn`, then COMMIT
 * (ROLLBACK on error). Nothing `fn` runs can write: the server refuses it.
 */
export async function readOnlyTx<T>(client: pg.ClientBase, fn: (c: pg.ClientBase) => Promise<T>, opts: ReadOnlyOptions = {}): Promise<T> {
  const isolation = opts.isolation ? ` ISOLATION LEVEL ${opts.isolation.toUpperCase()}` : '';
  await client.query(`BEGIN${isolation} READ ONLY`);
  try {
    if (opts.searchPath !== undefined) await client.query(`SELECT set_config('search_path', $1, true)`, [opts.searchPath]);
    if (opts.statementTimeoutMs !== undefined) await client.query(`SET LOCAL statement_timeout = ${Math.round(opts.statementTimeoutMs)}`);
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

/**
 * Sets settings for the rest of the caller's transaction (set_config(…, true), as SET LOCAL) and returns what puts
 * them back as they were, for the statements the transaction runs next. One round trip each way: the previous
 * values are read in a materialized CTE, so they are read before the new ones are set.
 */
export async function setLocal(client: pg.ClientBase, settings: Readonly<Record<string, string>>): Promise<() => Promise<void>> {
  const names = Object.keys(settings);
  const r = await client.query<{ prev: string[] }>(
    `WITH p AS MATERIALIZED (SELECT array_agg(current_setting(n) ORDER BY i) AS prev FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i))
     SELECT p.prev, (SELECT array_agg(set_config(n, v, true)) FROM unnest($1::text[], $2::text[]) AS s(n, v)) AS set FROM p`,
    [names, names.map((n) => settings[n]!)],
  );
  const prev = r.rows[0]!.prev;
  return async () => {
    await client.query(`SELECT set_config(n, v, true) FROM unnest($1::text[], $2::text[]) AS s(n, v)`, [names, prev]);
  };
}

/**
 * The statements of one ANALYZE that yields to the application as autovacuum does: cost-based delay (2 ms of sleep
 * every vacuum_cost_limit units of page cost, autovacuum's own default) for this transaction only. On a busy
 * machine an unthrottled ANALYZE of a partitioned parent and its partitions takes a whole core for the length of
 * its sample; measured under pgbench it was the longest application transaction of the whole run. For db.ddl, which
 * runs them in one transaction under lock_timeout.
 */
export function gentleAnalyze(qualified: string): string[] {
  return ['SET LOCAL vacuum_cost_delay = 2', `ANALYZE ${qualified}`];
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
      this.versionNum = Promise.resolve(Number(row.n));
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

  /**
   * A write to pgshift's own journal tables (runs, steps, artifacts…): autocommit, not itself journaled — the journal
   * does not journal its own bookkeeping. Never for the application's data: those go through query/tx/ddl.
   */
  async write<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]> {
    return (await this.pool.query<R>(sql, params)).rows;
  }

  /** A read that returns exactly one row (an aggregate, a setting); throws when the server returned none. */
  async readOne<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R> {
    return first(await this.read<R>(sql, params), sql);
  }

  private versionNum: Promise<number> | null = null;

  /** The server's server_version_num (150018 for 15.18), read once per Db (a failed read is tried again next time). */
  serverVersionNum(): Promise<number> {
    this.versionNum ??= this.readOne<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`).then(
      (r) => r.v,
      (e: unknown) => {
        this.versionNum = null;
        throw e;
      },
    );
    return this.versionNum;
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
    const timeout = Math.round(opts.lockTimeoutMs ?? this.locks.timeoutMs);
    return withRetry(async () => {
      const c = await this.pool.connect();
      try {
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
        if (isConnectionLoss(e)) c.release(e as Error);
        else {
          try {
            await c.query('ROLLBACK');
            c.release();
          } catch (e2) {
            c.release(e2 as Error);
          }
        }
        throw e;
      }
    }, {
      ...this.retryPolicy(opts.attempts), signal: opts.signal, onRetry: opts.onRetry, stop: () => this.closed,
    });
  }

  /** The lock policy's retry settings (attempts, backoff) for withRetry. */
  retryPolicy(attempts?: number): Pick<RetryOptions, 'attempts' | 'backoffMs' | 'maxBackoffMs'> {
    return { attempts: attempts ?? this.locks.attempts, backoffMs: this.locks.backoffMs, maxBackoffMs: this.locks.maxBackoffMs };
  }

  /** A read-only transaction on a pooled connection (see readOnlyTx). */
  async readOnly<T>(fn: (c: pg.ClientBase) => Promise<T>, opts: ReadOnlyOptions = {}): Promise<T> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    try {
      return await readOnlyTx(c, fn, opts);
    } catch (e) {
      if (isConnectionLoss(e)) broken = e as Error;
      throw e;
    } finally {
      c.release(broken);
    }
  }

  /**
   * One statement outside any transaction block (CREATE INDEX CONCURRENTLY, VACUUM), on a session of its own with SET
   * lock_timeout and any other `settings`, all RESET afterwards; journaled under `stepId`. `onNotice` hears the
   * server's notices and warnings for that statement.
   */
  async outsideTx(sql: string, o: { stepId: string; lockTimeoutMs: number; settings?: Readonly<Record<string, string>>; onNotice?: (message: string) => void }): Promise<void> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    const settings: Record<string, string> = { lock_timeout: String(Math.round(o.lockTimeoutMs)), ...o.settings };
    const notice = (n: { message?: string }) => o.onNotice?.(n.message ?? '');
    if (o.onNotice) c.on('notice', notice);
    try {
      await c.query(`SELECT set_config(n, v, false) FROM unnest($1::text[], $2::text[]) AS s(n, v)`, [Object.keys(settings), Object.values(settings)]);
      await this.journaled(c, sql, undefined, o.stepId);
    } catch (e) {
      if (isConnectionLoss(e)) broken = e as Error;
      throw e;
    } finally {
      if (o.onNotice) c.off('notice', notice);
      if (!broken) {
        try {
          await c.query(Object.keys(settings).map((n) => `RESET ${ident(n)}`).join('; '));
        } catch (e) {
          broken = e as Error;
        }
      }
      c.release(broken);
    }
  }

  /**
   * Makes this pool's idle sessions report their pending statistics now (PostgreSQL 15+: pg_stat_force_next_flush;
   * the report happens before the statement's ReadyForQuery). A session reports its counters at most once a second,
   * and an idle one only after ten: without this the last batches of a copy reach pg_stat_all_tables after the
   * ANALYZE that follows it, and count as rows changed since. Sessions busy now report at their transaction's end.
   */
  async flushStats(): Promise<void> {
    if ((await this.serverVersionNum()) < 150000) return;
    const idle: pg.PoolClient[] = [];
    try {
      for (let n = this.pool.idleCount; n > 0; n--) idle.push(await this.pool.connect());
      for (const c of idle) await c.query('SELECT pg_stat_force_next_flush()');
    } finally {
      for (const c of idle) c.release();
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

/** The first row of a result that must have one (SELECT of an aggregate or a setting); names the query when empty. */
export function first<R>(rows: readonly R[], what: string): R {
  const r = rows[0];
  if (r === undefined) throw new Error(`expected a row, got none: ${what.replace(/\s+/g, ' ').slice(0, 120)}`);
  return r;
}
