import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import pg from 'pg';
import { Db, RETRYABLE_SQLSTATES, readOnlyTx, retryKind, withRetry, type RetryInfo } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { APP_PASSWORD, APP_ROLE } from './app-role.js';

/** The one retry helper, the one list of retryable SQLSTATEs and the read-only transaction, on a real server. */
describe('db/session: retries and read-only transactions', () => {
  let fresh: FreshDb;
  let db: Db;
  let appUrl: string;
  beforeAll(async () => {
    fresh = await freshDatabase('session');
    // the application's role: not a superuser, created once before any test (test/app-role.ts)
    const role = APP_ROLE;
    await fresh.client.query(`CREATE TABLE public.accounts (id int PRIMARY KEY, balance bigint NOT NULL)`);
    await fresh.client.query(`INSERT INTO public.accounts SELECT g, 100 FROM generate_series(1, 10) g`);
    await fresh.client.query(`GRANT SELECT, INSERT, UPDATE ON public.accounts TO ${role}`);
    const u = new URL(fresh.url);
    u.username = role;
    u.password = APP_PASSWORD;
    appUrl = u.toString();
    db = new Db(resolveConnection(fresh.url), 'pgshift-test');
    db.locks = { timeoutMs: 100, attempts: 5, backoffMs: 10, maxBackoffMs: 40 };
  });
  afterAll(async () => {
    await db?.close();
    await fresh?.drop();
  });

  it('lists lock_not_available, deadlock and serialization failure as lock conflicts, lost backends as connection losses, nothing else', () => {
    expect(Object.entries(RETRYABLE_SQLSTATES).filter(([, v]) => v.kind === 'lock').map(([k]) => k).sort()).toEqual(['40001', '40P01', '55P03']);
    expect(retryKind({ code: '57P01' })).toBe('connection');
    expect(retryKind({ code: 'ECONNRESET' })).toBe('connection');
    expect(retryKind(new Error('Connection terminated unexpectedly'))).toBe('connection');
    expect(retryKind({ code: '23505' })).toBeNull();
    expect(retryKind(null)).toBeNull();
  });

  it('Db.tx retries a real lock timeout while the application holds the row, and commits once it lets go', async () => {
    const app = new pg.Client({ connectionString: appUrl });
    await app.connect();
    try {
      await app.query('BEGIN');
      await app.query('UPDATE public.accounts SET balance = balance - 10 WHERE id = 1');
      await app.query('UPDATE public.accounts SET balance = balance + 10 WHERE id = 2');
      const retries: RetryInfo[] = [];
      await db.tx(async (tx) => {
        await tx.query('ALTER TABLE public.accounts ADD COLUMN IF NOT EXISTS note text');
      }, {
        onRetry: (r) => {
          retries.push(r);
          // the application commits after pgshift's first lock timeout: progress, not a timer
          if (retries.length === 1) void app.query('COMMIT');
        },
      });
      expect(retries.length).toBeGreaterThanOrEqual(1);
      expect(retries[0]).toMatchObject({ code: '55P03', kind: 'lock', attempt: 2, attempts: 5 });
      const r = await fresh.client.query<{ total: number; n: number }>(`SELECT sum(balance)::int AS total, count(*)::int AS n FROM public.accounts`);
      // the application's transfer committed whole: the invariant holds
      expect(r.rows[0]).toEqual({ total: 1000, n: 10 });
      const col = await fresh.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'note'`);
      expect(col.rows[0]!.n).toBe(1);
    } finally {
      await app.end();
    }
  });

  it('withRetry gives up after the last attempt on a lock conflict, at once on any other error', async () => {
    let calls = 0;
    const seen: number[] = [];
    await expect(withRetry(() => {
      calls++;
      return Promise.reject(Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }));
    }, { attempts: 3, backoffMs: 1, maxBackoffMs: 2, onRetry: (r) => { seen.push(r.attempt); } })).rejects.toMatchObject({ code: '55P03' });
    expect(calls).toBe(3);
    expect(seen).toEqual([2, 3]);
    calls = 0;
    await expect(withRetry(async () => {
      calls++;
      return (await fresh.client.query<{ id: number }>('SELECT * FROM public.no_such_table')).rows;
    }, { attempts: 5, backoffMs: 1, maxBackoffMs: 2 })).rejects.toMatchObject({ code: '42P01' });
    expect(calls).toBe(1);
    const ctl = new AbortController();
    ctl.abort();
    calls = 0;
    await expect(withRetry(() => {
      calls++;
      return Promise.reject(Object.assign(new Error('deadlock detected'), { code: '40P01' }));
    }, { attempts: 5, backoffMs: 1, maxBackoffMs: 2, signal: ctl.signal })).rejects.toMatchObject({ code: '40P01' });
    expect(calls).toBe(1);
  });

  it('a read-only transaction reads one snapshot and the server refuses any write in it', async () => {
    const r = await db.readOnly(async (c) => (await c.query<{ ro: string; iso: string; sp: string }>(`SELECT current_setting('transaction_read_only') AS ro, current_setting('transaction_isolation') AS iso, current_setting('search_path') AS sp`)).rows[0], {
      isolation: 'repeatable read', searchPath: 'pg_catalog, pg_temp',
    });
    expect(r).toEqual({ ro: 'on', iso: 'repeatable read', sp: 'pg_catalog, pg_temp' });
    await expect(db.readOnly((c) => c.query('UPDATE public.accounts SET balance = 0'))).rejects.toMatchObject({ code: '25006' });
    const app = new pg.Client({ connectionString: appUrl });
    await app.connect();
    try {
      await expect(readOnlyTx(app, (c) => c.query(`INSERT INTO public.accounts VALUES (99, 1)`))).rejects.toMatchObject({ code: '25006' });
      // the client is usable again: the failed transaction was rolled back
      expect((await app.query<{ total: number }>(`SELECT sum(balance)::int AS total FROM public.accounts`)).rows[0]!.total).toBe(1000);
    } finally {
      await app.end();
    }
  });
});
