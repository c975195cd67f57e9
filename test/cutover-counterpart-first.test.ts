import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import pg from 'pg';
import type { FreshDb } from './helpers/db.js';
import { bankDatabase, invariant, openBank, startApp, writeBankPlan, type BankDb, type Roles } from './fixtures/cutover.js';

/**
 * Found by bench:scale at 20,000,000 rows: right after a big copy, autovacuum vacuums the new table's partitions
 * (insert-triggered VACUUM holds SHARE UPDATE EXCLUSIVE), and the swap's lock requests wait for it, retrying under
 * lock_timeout. The swap locked the live table first: every attempt held it ACCESS EXCLUSIVE while it waited for the
 * new one, so every application query waited lock_timeout per attempt. Now the table no application uses yet is
 * locked first. Here a session holds the new table in autovacuum's lock mode while the swap retries, and an
 * application that waits at most 100 ms for any lock (lock_timeout) keeps writing the live table: none of its
 * statements may fail, and the swap goes through once the "vacuum" ends.
 */
describe('the swap waits for the new table before it locks the live one', () => {
  let bank: BankDb;
  let db: FreshDb;
  let roles: Roles;
  let dir: string;
  const BRANCHES = 2, PER = 300;

  beforeAll(async () => {
    bank = await bankDatabase('cutover_counterpart', { branches: BRANCHES, accountsPerBranch: PER, createdBy: 'superuser' });
    ({ db, roles, dir } = bank);
  });
  afterAll(async () => {
    await bank?.close();
  });

  it('an autovacuum-like lock on the new table: the application is never held, the swap retries and completes', async () => {
    const plan = writeBankPlan(path.join(dir, 'p'), { copy: { mode: 'online', batchRows: 200 }, locks: { timeoutMs: 400, attempts: 60, backoffMs: 20, maxBackoffMs: 60 } });
    const run = await openBank(db.url, plan);
    const app = startApp(roles.appUrl, { accounts: BRANCHES * PER, branches: BRANCHES, seed: 7, name: 'bank-impatient', lockTimeoutMs: 100 });
    const vacuum = new pg.Client({ connectionString: db.url, application_name: 'autovacuum-alike' });
    await vacuum.connect();
    const ok = async (o: Promise<{ status: string; message?: string }>) => {
      const r = await o;
      expect(r.status, `${r.message}\n${run.logs().slice(-30).join('\n')}`).toBe('completed');
    };
    // progress, not time: the swap's refused attempts, as it logs them
    const retries = async (n: number) => {
      for (const until = Date.now() + 120_000; run.logs().filter((l) => /lock not granted within \d+ ms/.test(l)).length < n;) {
        if (Date.now() > until) throw new Error(`the swap made fewer than ${n} attempts:\n${run.logs().slice(-20).join('\n')}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    try {
      for (const p of [2, 3, 4] as const) await ok(run.engine.run({ phases: [p] }));
      await app.progress(20);
      // what an autovacuum of the new table holds (SHARE UPDATE EXCLUSIVE), until we end it
      await vacuum.query('BEGIN');
      await vacuum.query('LOCK TABLE public.accounts_partitioned IN SHARE UPDATE EXCLUSIVE MODE');
      const swap = run.engine.run({ phases: [5], only: ['swap:public.accounts'] });
      // three attempts refused, then two more while the application keeps committing
      await retries(3);
      const during = app.stats.committed;
      await app.progress(30);
      await retries(5);
      expect(app.stats.committed).toBeGreaterThan(during);
      await vacuum.query('COMMIT');
      await ok(swap);
      await app.progress(20);
    } finally {
      await vacuum.end().catch(() => {});
      await app.stop();
      await run.engine.close();
    }
    // not one application statement waited out its 100 ms lock_timeout behind pgshift
    expect(app.stats.errors).toEqual([]);
    const k = await db.client.query<{ k: string }>(`SELECT relkind AS k FROM pg_class WHERE oid = 'public.accounts'::regclass`);
    expect(k.rows[0]!.k).toBe('p');
    const inv = await invariant(db.client);
    expect(inv.ok, JSON.stringify(inv)).toBe(true);
    // the operator saw the order and why
    const rename = run.requests.find((r) => r.kind === 'rename' && r.object === 'public.accounts')!;
    expect(rename.impact.join('\n')).toContain('locks ACCESS EXCLUSIVE, in this order: "public"."accounts_partitioned", "public"."accounts"');
    expect(rename.impact.join('\n')).toContain('"public"."accounts_partitioned" first, which no application uses yet: waiting for it (an autovacuum of its new partitions, say) holds nothing the application needs');
  });
});
