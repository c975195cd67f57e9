import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import type { FreshDb } from './helpers/db.js';
import { bankDatabase, invariant, openBank, startApp, writeBankPlan, type BankDb, type Roles } from './fixtures/cutover.js';

/**
 * RI in both directions inside one application transaction — accounts (the migrated table) references branches,
 * history references accounts — from three concurrent application sessions, through the swap, the rollback's swap
 * back and drop, a second migration, its swap and the DROP of the old table (which also locks branches, the target
 * of its foreign key). pgshift takes its locks in an order that cannot deadlock with the RI checks, and its
 * lock_timeout is below deadlock_timeout: no application statement fails.
 */
describe('cut-over beside RI-checking writers: 0 failed application statements', () => {
  let bank: BankDb;
  let db: FreshDb;
  let roles: Roles;
  let dir: string;
  const BRANCHES = 3, PER = 400;

  beforeAll(async () => {
    // the bank's tables belong to the superuser here (the owner role runs pgshift)
    bank = await bankDatabase('cutover_ri', { branches: BRANCHES, accountsPerBranch: PER, createdBy: 'superuser' });
    ({ db, roles, dir } = bank);
  });
  afterAll(async () => {
    await bank?.close();
  });

  it('swap, swap back, drop of the new table, second swap, drop of the old table', async () => {
    const plan = writeBankPlan(path.join(dir, 'p'), { copy: { mode: 'online', batchRows: 300 }, locks: { timeoutMs: 2000, attempts: 40, backoffMs: 50, maxBackoffMs: 300 } });
    const run = await openBank(db.url, plan, ['force-retention']);
    const apps = [1, 2, 3].map((seed) => startApp(roles.appUrl, { accounts: BRANCHES * PER, branches: BRANCHES, seed, name: `bank-${seed}` }));
    const progress = (n: number) => Promise.all(apps.map((a) => a.progress(n)));
    const ok = async (o: Promise<{ status: string; message?: string }>) => {
      const r = await o;
      expect(r.status, `${r.message}\n${run.logs().slice(-30).join('\n')}`).toBe('completed');
    };
    try {
      await ok(run.engine.run({ phases: [1], only: ['snapshot:catalog'] }));
      await ok(run.engine.run({ phases: [2] }));
      await ok(run.engine.run({ phases: [3] }));
      await ok(run.engine.run({ phases: [4] }));
      await progress(20);
      await ok(run.engine.run({ phases: [5], only: ['swap:public.accounts', 'validate-fks:public.accounts'] }));
      await progress(20);
      await ok(run.engine.run({ phases: ['rollback'] }));
      await progress(20);
      // a second migration, carried to the end: the old table is dropped (ACCESS EXCLUSIVE on branches too)
      await ok(run.engine.run({ phases: [1], only: ['snapshot:catalog'] }));
      for (const p of [2, 3, 4] as const) await ok(run.engine.run({ phases: [p] }));
      await progress(20);
      await ok(run.engine.run({ phases: [5] }));
      await progress(20);
    } finally {
      for (const a of apps) await a.stop();
      await run.engine.close();
    }
    const errors = apps.flatMap((a) => a.stats.errors);
    expect(errors).toEqual([]);
    expect(apps.every((a) => a.stats.committed > 100)).toBe(true);
    const gone = await db.client.query(`SELECT to_regclass('public.accounts_old') AS old, (SELECT relkind FROM pg_class WHERE oid = 'public.accounts'::regclass) AS k`);
    expect(gone.rows[0]).toEqual({ old: null, k: 'p' });
    const inv = await invariant(db.client);
    expect(inv.ok, JSON.stringify(inv)).toBe(true);
    // short idle-in-transaction application sessions are never offered for cancel/terminate: only real blockers
    expect(run.requests.filter((r) => r.kind === 'cancel' || r.kind === 'terminate')).toEqual([]);
    const logs = run.logs();
    // what the operator was told
    expect(logs.some((l) => /lock_timeout \d+ ms for these locks \(plan: 2000 ms\), below the server's deadlock_timeout 1000 ms/.test(l))).toBe(true);
    const drop = run.requests.find((r) => r.kind === 'drop' && r.object === 'public.accounts_old')!;
    expect(drop.impact.join('\n')).toMatch(/locks ACCESS EXCLUSIVE for a moment \(catalog only\) on public\.branches, public\.accounts_old/);
    // two short transactions: the reverse trigger off the live table, then the drop, its FK target locked first
    const dropTx = drop.statements.slice(drop.statements.lastIndexOf('BEGIN'));
    expect(dropTx).toEqual([
      'BEGIN', expect.stringMatching(/^SET LOCAL lock_timeout = \d+$/),
      'LOCK TABLE "public"."branches" IN ACCESS EXCLUSIVE MODE', 'LOCK TABLE "public"."accounts_old" IN ACCESS EXCLUSIVE MODE',
      'DROP TABLE "public"."accounts_old"', 'COMMIT',
    ]);
    expect(drop.statements.filter((x) => x === 'BEGIN')).toHaveLength(2);
    const dropNew = run.requests.find((r) => r.kind === 'rollback' && r.object === 'public.accounts_partitioned')!;
    expect(dropNew.impact.join('\n')).toMatch(/DROP TABLE locks ACCESS EXCLUSIVE for a moment \(catalog only\) on public\.branches, public\.accounts_partitioned \(in that order\) — public\.branches: the targets of its foreign keys/);
    const swap = run.requests.find((r) => r.kind === 'rename' && r.object === 'public.accounts')!;
    expect(swap.statements.filter((s) => s.startsWith('LOCK TABLE'))).toEqual([
      'LOCK TABLE "public"."accounts_partitioned" IN ACCESS EXCLUSIVE MODE',
      'LOCK TABLE "public"."accounts" IN ACCESS EXCLUSIVE MODE',
      'LOCK TABLE "public"."history" IN ACCESS EXCLUSIVE MODE',
    ]);
    // the confirmation shows the statements in the order they run: the reverse log and its function before the
    // exclusive transaction (they need no lock), the trigger on the table under it
    const begin = swap.statements.indexOf('BEGIN');
    const at = (re: RegExp) => swap.statements.findIndex((x) => re.test(x));
    expect(at(/^CREATE TABLE IF NOT EXISTS "pgshift"\./)).toBeGreaterThanOrEqual(0);
    expect(at(/^CREATE TABLE IF NOT EXISTS "pgshift"\./)).toBeLessThan(begin);
    expect(at(/^CREATE OR REPLACE FUNCTION "pgshift"\./)).toBeLessThan(begin);
    expect(at(/^CREATE TRIGGER "pgshift_swap_reverse"/)).toBeGreaterThan(at(/^LOCK TABLE "public"."history"/));
    expect(swap.statements.at(-1)).toBe('COMMIT');
    // the swap back's confirmation too: its locks in the same order (the table no application uses first), the
    // carry-back first under them
    const back = run.requests.find((r) => r.kind === 'rollback' && r.object === 'public.accounts')!;
    const locks = back.statements.filter((x) => x.startsWith('LOCK TABLE'));
    expect(locks).toEqual(['LOCK TABLE "public"."accounts_old" IN ACCESS EXCLUSIVE MODE', 'LOCK TABLE "public"."accounts" IN ACCESS EXCLUSIVE MODE', 'LOCK TABLE "public"."history" IN ACCESS EXCLUSIVE MODE']);
    expect(back.statements[back.statements.indexOf(locks.at(-1)!) + 1]).toMatch(/^-- carry-back: /);
  });
});
