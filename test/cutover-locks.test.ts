import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import pg from 'pg';
import { Db, first } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { BudgetExceeded } from '../source/copy/catchup.js';
import { cutoverLockTimeout, lockedTx, type Blocker } from '../source/swap/swap.js';
import { blockerOffer } from '../phases/5-cleanup.js';
import type { FreshDb } from './helpers/db.js';
import { bankDatabase, type BankDb, type Roles } from './fixtures/cutover.js';

/**
 * The cut-over's lock transaction (lockedTx), run as a non-superuser owner without pg_read_all_stats: only a
 * session that really blocks its lock request (pg_blocking_pids) for longer than the threshold is offered, with
 * what this role may see of it (state and query hidden); short idle-in-transaction sessions never are; an apply
 * that overruns the lock budget is rolled back, caught up and retried, and gives up with a message after N misses.
 */
describe('lockedTx: blockers, budget, lock_timeout below deadlock_timeout', () => {
  let bank: BankDb;
  let db: FreshDb;
  let roles: Roles;
  let pdb: Db;

  beforeAll(async () => {
    bank = await bankDatabase('cutover_locks', { branches: 2, accountsPerBranch: 50 });
    ({ db, roles } = bank);
    pdb = new Db(resolveConnection(roles.ownerUrl), 'pgshift-test');
    pdb.locks = { timeoutMs: 200, attempts: 40, backoffMs: 20, maxBackoffMs: 100 };
  });
  afterAll(async () => {
    await pdb?.close();
    await bank?.close();
  });

  it('offers only the session that keeps blocking the lock, past the threshold; never a short idle-in-transaction one', async () => {
    const blocker = new pg.Client({ connectionString: roles.appUrl, application_name: 'long-reader' });
    const other = new pg.Client({ connectionString: roles.appUrl, application_name: 'idle-elsewhere' });
    await blocker.connect();
    await other.connect();
    const bpid = (await blocker.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p;
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM public.accounts'); // ACCESS SHARE until it ends
    await other.query('BEGIN');
    await other.query('SELECT count(*) FROM public.branches'); // idle in transaction, on another table
    const offered: Blocker[] = [];
    const logs: string[] = [];
    let released = false;
    const r = await lockedTx(pdb, () => Promise.resolve('swapped'), {
      stepId: 'test', lockTimeoutMs: 200, attempts: 40, log: (m) => logs.push(m),
      locks: ['public.accounts'], blockerThresholdMs: 600,
      offer: async (b) => {
        offered.push({ ...b });
        // the operator's answer: the session ends (here by itself, as if it had been terminated)
        await blocker.query('COMMIT');
        released = true;
      },
    });
    await other.query('COMMIT');
    await blocker.end();
    await other.end();
    expect(r.out).toBe('swapped');
    expect(released).toBe(true);
    expect(offered.map((b) => b.pid)).toEqual([bpid]);
    // a non-superuser without pg_read_all_stats does not see another role's state or query: offered anyway, as such
    expect(offered[0]!.state).toBeNull();
    expect(offered[0]!.user).toBe(roles.app);
    // backend_type is hidden as well (PostgreSQL 15): blockerOffer recognises an autovacuum worker only where the role
    // may see it (pg_read_all_stats or a superuser); here the session is offered with what is visible
    expect(offered[0]!.backendType).toBeNull();
    expect(offered[0]!.blockedMs).toBeGreaterThanOrEqual(600);
    expect(r.attempts).toBeGreaterThan(2);
    expect(logs.some((l) => /lock not granted within 200 ms/.test(l))).toBe(true);
  });

  it('an apply over the budget rolls back, catches up and retries; after maxBudgetMisses it gives up saying why', async () => {
    let calls = 0, caughtUp = 0;
    const logs: string[] = [];
    const r = await lockedTx(pdb, async (tx) => {
      calls++;
      await tx.query(`UPDATE public.branches SET filler = 'attempt ' || $1::text WHERE bid = 1`, [calls]);
      if (calls === 1) throw new BudgetExceeded(150, 100, 42);
      return calls;
    }, {
      stepId: 'test', lockTimeoutMs: 200, attempts: 5, log: (m) => logs.push(m), locks: ['public.branches'],
      blockerThresholdMs: 1000, onBudgetMiss: () => { caughtUp++; return Promise.resolve(); }, maxBudgetMisses: 3,
    });
    expect(r.out).toBe(2);
    expect(r.budgetMisses).toBe(1);
    expect(caughtUp).toBe(1);
    expect(logs.some((l) => /applying 42 change\(s\) under the lock took 150 ms, over the 100 ms budget: rolled back, nothing renamed/.test(l))).toBe(true);
    const f = await db.client.query<{ filler: string }>(`SELECT filler FROM public.branches WHERE bid = 1`);
    expect(first(f.rows, 'branch 1').filler).toBe('attempt 2'); // the first attempt's write was rolled back with it
    await expect(lockedTx(pdb, () => Promise.reject(new BudgetExceeded(300, 100, 7)), {
      stepId: 'test', lockTimeoutMs: 200, attempts: 5, log: () => {}, locks: ['public.branches'],
      blockerThresholdMs: 1000, onBudgetMiss: async () => {}, maxBudgetMisses: 3,
    })).rejects.toThrow(/never fitted the 100 ms budget \(3 attempts, last 300 ms for 7 changes\): nothing was renamed/);
  });

  it('lock_timeout for the cut-over stays below deadlock_timeout, and says so', async () => {
    const a = await cutoverLockTimeout(pdb, 2000);
    expect(a.deadlockMs).toBe(1000);
    expect(a.ms).toBeLessThan(a.deadlockMs);
    expect(a.note).toMatch(/lock_timeout 500 ms for these locks \(plan: 2000 ms\), below the server's deadlock_timeout 1000 ms/);
    const b = await cutoverLockTimeout(pdb, 300);
    expect(b.ms).toBe(300);
  });

  it('names an autovacuum worker as such (cancel, harmless, why PostgreSQL did not cancel it); never offers an anti-wraparound one', () => {
    const base: Blocker = { pid: 4242, user: null, app: '', state: 'active', query: null, xactMs: 900, blockedMs: 2400, backendType: 'autovacuum worker' };
    const av = blockerOffer({ ...base, query: 'autovacuum: VACUUM ANALYZE public.readings_p2024_05' });
    expect(av).toEqual({
      kind: 'cancel', fn: 'pg_cancel_backend',
      impact: [
        'an autovacuum worker (VACUUM ANALYZE public.readings_p2024_05) has blocked the swap\'s lock request for 2.4 s so far',
        expect.stringContaining('PostgreSQL itself cancels an autovacuum that blocks a lock request for deadlock_timeout'),
        'cancelling it is harmless: its work so far is kept and autovacuum runs on this table again later',
      ],
    });
    // known by its backend_type alone (no query shown): still an autovacuum, cancelled
    const bare = blockerOffer({ ...base, query: null });
    expect('kind' in bare && bare.kind).toBe('cancel');
    expect('impact' in bare && bare.impact[0]).toBe('an autovacuum worker (no query shown) has blocked the swap\'s lock request for 2.4 s so far');
    const wrap = blockerOffer({ ...base, query: 'autovacuum: VACUUM public.readings_p2024_05 (to prevent wraparound)' });
    expect('leave' in wrap && wrap.leave).toMatch(/^pid 4242 is an anti-wraparound autovacuum \(VACUUM public\.readings_p2024_05 \(to prevent wraparound\)\): not offered for cancel/);
    // an application's session: as before (idle in transaction → terminate, with its role, state and query)
    const app = blockerOffer({ ...base, backendType: 'client backend', user: 'app', app: 'web', state: 'idle in transaction', query: 'UPDATE t SET v = 1' });
    expect(app).toMatchObject({ kind: 'terminate', fn: 'pg_terminate_backend' });
    expect('impact' in app && app.impact[0]).toBe('app (web), idle in transaction, has blocked the swap\'s lock request for 2.4 s so far, in a transaction open for 900 ms: UPDATE t SET v = 1');
  });
});
