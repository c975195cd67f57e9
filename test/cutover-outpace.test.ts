import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import pg from 'pg';
import type { FreshDb } from './helpers/db.js';
import { bankDatabase, invariant, openBank, startApp, writeBankPlan, type BankDb, type Roles } from './fixtures/cutover.js';
import { first } from '../source/db/session.js';

/**
 * When the replay cannot keep up (here: a session holds a row lock on the new table, so no apply can commit while
 * the application keeps writing), the swap never waits silently nor forever: after swap.catchUpTimeoutSec it stops
 * with both rates and what to do, nothing locked or renamed; once the replay can go on, the swap succeeds.
 */
describe('cut-over when the replay cannot keep up', () => {
  let bank: BankDb;
  let db: FreshDb;
  let roles: Roles;
  let dir: string;
  const BRANCHES = 2, PER = 500;

  beforeAll(async () => {
    // the bank's tables belong to the superuser here (the owner role runs pgshift)
    bank = await bankDatabase('cutover_outpace', { branches: BRANCHES, accountsPerBranch: PER, createdBy: 'superuser' });
    ({ db, roles, dir } = bank);
  });
  afterAll(async () => {
    await bank?.close();
  });

  it('gives up after catchUpTimeoutSec with captured/s and applied/s, renames nothing; succeeds once the replay can go on', async () => {
    const plan = writeBankPlan(path.join(dir, 'p'), {
      copy: { mode: 'online', batchRows: 200 }, swap: { maxLockMs: 100, catchUpTimeoutSec: 3 },
      locks: { timeoutMs: 300, attempts: 30, backoffMs: 50, maxBackoffMs: 200 },
    });
    const prep = await openBank(db.url, plan);
    try {
      for (const p of [2, 3, 4] as const) expect((await prep.engine.run({ phases: [p] })).status, prep.logs().slice(-20).join('\n')).toBe('completed');
    } finally {
      await prep.engine.close();
    }
    const holder = new pg.Client({ connectionString: db.url, application_name: 'row-lock-holder' });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM public.accounts_partitioned WHERE aid = 1 FOR UPDATE');
    await db.client.query('UPDATE public.accounts SET abalance = abalance + 0 WHERE aid = 1');
    const app = startApp(roles.appUrl, { accounts: BRANCHES * PER, branches: BRANCHES, seed: 5 });
    const run = await openBank(db.url, plan);
    try {
      await app.progress(10);
      const t0 = performance.now();
      const o = await run.engine.run({ phases: [5], only: ['swap:public.accounts'] });
      const took = performance.now() - t0;
      expect(o.status).toBe('failed');
      expect(o.message).toMatch(/the replay of public\.accounts → public\.accounts_partitioned did not catch up within 3 s: [\d,]+ pending · captured [\d,]+\/s · applied 0\/s/);
      expect(o.message).toMatch(/Nothing was locked or renamed/);
      expect(o.hint).toMatch(/raise copy\.batchRows \(bigger apply batches\), run phase 5 at a quieter moment, or raise swap\.maxLockMs/);
      expect(took).toBeLessThan(30_000);
      const k = await db.client.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.accounts'::regclass`);
      expect(first(k.rows, 'pg_class row').relkind).toBe('r');
      // the replay can go on again: the swap catches up and succeeds
      await holder.query('COMMIT');
      await app.progress(10);
      const o2 = await run.engine.run({ phases: [5], only: ['swap:public.accounts'] });
      expect(o2.status, run.logs().slice(-20).join('\n')).toBe('completed');
      // the last catch-up runs right before the lock request, after everything else the swap prepares (its reverse
      // log created): what is captured between the two is what the lock has to apply
      const st = (await db.client.query<{ sql: string }>(
        `SELECT sql FROM pgshift.statements WHERE step_id = 'swap:public.accounts' AND error IS NULL
            AND run_id = (SELECT max(run_id) FROM pgshift.statements WHERE step_id = 'swap:public.accounts') ORDER BY id`,
      )).rows.map((r) => r.sql);
      const created = st.findIndex((x) => x.startsWith('CREATE TABLE IF NOT EXISTS'));
      const locked = st.findIndex((x) => x.startsWith('LOCK TABLE'));
      const applies = st.map((x, i) => (x.startsWith('DELETE FROM "public"."accounts_partitioned"') ? i : -1)).filter((i) => i >= 0);
      expect(created, st.join('\n')).toBeGreaterThanOrEqual(0);
      expect(applies.filter((i) => i > created && i < locked).length, st.join('\n')).toBeGreaterThan(0);
      expect(applies.filter((i) => i < created), st.join('\n')).toEqual([]);
      await app.progress(10);
    } finally {
      await app.stop();
      await holder.end();
      await run.engine.close();
    }
    expect(app.stats.errors).toEqual([]);
    const k = await db.client.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.accounts'::regclass`);
    expect(first(k.rows, 'pg_class row').relkind).toBe('p');
    const inv = await invariant(db.client);
    expect(inv.ok, JSON.stringify(inv)).toBe(true);
  });
});
