import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import pg from 'pg';
import type { FreshDb } from './helpers/db.js';
import { bankDatabase, invariant, openBank, startApp, stepData, writeBankPlan, type BankDb, type Roles } from './fixtures/cutover.js';
import { first } from '../source/db/session.js';

/**
 * Everything pgshift installs on the application's table (capture trigger, truncate guard, reverse trigger) works
 * for an application role that has table grants only; pgshift itself runs as a non-superuser database owner; the
 * application's own audit trigger records the application's statements only (never the copy, replay or carry-back).
 */
describe('cut-over with a non-superuser application role and a non-superuser owner', () => {
  let bank: BankDb;
  let db: FreshDb;
  let roles: Roles;
  let owner: pg.Client;
  let dir: string;
  const BRANCHES = 4, PER = 500;

  beforeAll(async () => {
    bank = await bankDatabase('cutover_app', { branches: BRANCHES, accountsPerBranch: PER });
    ({ db, roles, owner, dir } = bank);
  });
  afterAll(async () => {
    await bank?.close();
  });

  it('copy (batch mode, captured), swap, retention, rollback swap-back and drop: 0 failed application statements, invariant holds, audit = application only', async () => {
    const su = await db.client.query<{ rolsuper: boolean }>(`SELECT rolsuper FROM pg_roles WHERE rolname IN ($1, $2)`, [roles.owner, roles.app]);
    expect(su.rows.map((r) => r.rolsuper)).toEqual([false, false]);
    const plan = writeBankPlan(path.join(dir, 'p'), { copy: { mode: 'batch', batchRows: 300 } });
    const run = await openBank(roles.ownerUrl, plan);
    const app = startApp(roles.appUrl, { accounts: BRANCHES * PER, branches: BRANCHES });
    try {
      expect((await run.engine.run({ phases: [1], only: ['snapshot:catalog'] })).status).toBe('completed');
      await app.progress(20);
      let o = await run.engine.run({ phases: [2] });
      expect(o.status, run.logs().join('\n')).toBe('completed');
      o = await run.engine.run({ phases: [3] });
      expect(o.status, run.logs().slice(-30).join('\n')).toBe('completed');
      await app.progress(30);
      o = await run.engine.run({ phases: [4] });
      expect(o.status, run.logs().slice(-30).join('\n')).toBe('completed');
      // writes between phase 4 and the swap: captured, applied in the background and under the lock
      await app.progress(40);
      o = await run.engine.run({ phases: [5] });
      expect(o.status, run.logs().slice(-30).join('\n')).toBe('completed');
      const swap = await stepData<{ lockHeldMs: number; changesUnderLock: number }>(owner, 'swap:public.accounts');
      expect(swap.lockHeldMs).toBeGreaterThanOrEqual(0);
      expect(run.logs().some((l) => /exclusive lock held \d+ ms \(LOCK to COMMIT\); \d+ change\(s\) applied under the lock/.test(l))).toBe(true);
      const k = await owner.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.accounts'::regclass`);
      expect(first(k.rows, 'pg_class row').relkind).toBe('p');
      // the retention period: the application keeps writing to the new table through the reverse trigger
      await app.progress(60);
      const rev = await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname = 'pgshift_swap_reverse'`);
      expect(rev.rows[0]!.n).toBeGreaterThan(0);
      o = await run.engine.run({ phases: ['rollback'] });
      expect(o.status, run.logs().slice(-40).join('\n')).toBe('completed');
      expect(run.logs().some((l) => /rollback:swap:public\.accounts info: exclusive lock held \d+ ms/.test(l))).toBe(true);
      await app.progress(30);
    } finally {
      await app.stop();
      await run.engine.close();
    }
    expect(app.stats.errors).toEqual([]);
    expect(app.stats.committed).toBeGreaterThan(200);
    expect(app.stats.inserted).toBeGreaterThan(5);
    expect(app.stats.deleted).toBeGreaterThan(2);
    const k = await owner.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.accounts'::regclass`);
    expect(first(k.rows, 'pg_class row').relkind).toBe('r');
    const inv = await invariant(owner);
    expect(inv.ok, JSON.stringify(inv)).toBe(true);
    // the audit trigger saw the application's row changes, each once, and nothing of pgshift's copy/replay/carry-back
    const audit = await owner.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE by_role <> $1)::int AS other FROM public.audit`, [roles.app]);
    expect(audit.rows[0]).toEqual({ n: app.stats.accountRowChanges, other: 0 });
    const trig = await owner.query<{ tgenabled: string }>(`SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'public.accounts'::regclass AND tgname = 'accounts_audit'`);
    expect(first(trig.rows, 'audit trigger').tgenabled).toBe('O');
    // nothing of pgshift's is left on the table
    const left = await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'pgshift%'`);
    expect(left.rows[0]!.n).toBe(0);
  });
});
