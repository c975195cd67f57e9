import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import pg from 'pg';
import type { FreshDb } from './helpers/db.js';
import { bankDatabase, invariant, openBank, stepData, writeBankPlan, type BankDb, type Roles } from './fixtures/cutover.js';
import { first as firstRow } from '../source/db/session.js';

const BRANCHES = 4, PER = 500;

/** pgbench's tpcb-like transaction as the application role: UPDATEs only (no row count or max key changes). */
async function tpcb(url: string, n: number, seed: number): Promise<{ errors: string[]; delta: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const errors: string[] = [];
  let delta = 0;
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = 0; i < n; i++) {
    const aid = 1 + Math.floor(rnd() * BRANCHES * PER);
    const d = Math.floor(rnd() * 10_000) - 5000;
    try {
      await c.query('BEGIN');
      const u = await c.query<{ bid: number }>(`UPDATE public.accounts SET abalance = abalance + $1 WHERE aid = $2 RETURNING bid`, [d, aid]);
      await c.query(`UPDATE public.branches SET bbalance = bbalance + $1 WHERE bid = $2`, [d, u.rows[0]!.bid]);
      await c.query(`INSERT INTO public.history (aid, bid, delta) VALUES ($1, $2, $3)`, [aid, u.rows[0]!.bid, d]);
      await c.query('COMMIT');
      delta += d;
    } catch (e) {
      errors.push((e as Error).message);
      await c.query('ROLLBACK').catch(() => {});
    }
  }
  await c.end();
  return { errors, delta };
}

async function sameContent(c: pg.ClientBase, a: string, b: string): Promise<{ a: string; b: string }> {
  const h = async (t: string) =>
    (await c.query<{ h: string }>(`SELECT count(*) || ':' || md5(coalesce(string_agg(md5(ROW(aid, bid, abalance, filler)::text), '' ORDER BY aid), '')) AS h FROM ${t}`)).rows[0]!.h;
  return { a: await h(a), b: await h(b) };
}

describe('batch mode: updates between the copy and the swap are captured and applied, never lost', () => {
  let bank: BankDb;
  let db: FreshDb;
  let roles: Roles;
  let dir: string;
  beforeAll(async () => {
    bank = await bankDatabase('cutover_batch', { branches: BRANCHES, accountsPerBranch: PER });
    ({ db, roles, dir } = bank);
  });
  afterAll(async () => {
    await bank?.close();
  });

  it('phases 1–4 on a quiet table, then 300 tpcb UPDATE transactions, then phase 5 alone: the pgbench invariant holds on the new table', async () => {
    const plan = writeBankPlan(path.join(dir, 'a'), { copy: { mode: 'batch', batchRows: 400 } });
    const first = await openBank(roles.ownerUrl, plan);
    try {
      for (const p of [1, 2, 3, 4] as const) {
        const o = await first.engine.run(p === 1 ? { phases: [1], only: ['snapshot:catalog'] } : { phases: [p] });
        expect(o.status, first.logs().slice(-20).join('\n')).toBe('completed');
      }
    } finally {
      await first.engine.close();
    }
    // a separate run (no background catch-up alive): everything written now waits in the change log
    const before = await invariant(db.client);
    expect(before.ok).toBe(true);
    const w = await tpcb(roles.appUrl, 300, 7);
    expect(w.errors).toEqual([]);
    const pending = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.${firstRow((await db.client.query<{ relname: string }>(`SELECT relname FROM pg_class WHERE relname LIKE 'log\\_public\\_accounts\\_%'`)).rows, 'capture log').relname}`);
    expect(pending.rows[0]!.n).toBe(300);
    const second = await openBank(roles.ownerUrl, plan);
    try {
      const o = await second.engine.run({ phases: [5] });
      expect(o.status, second.logs().slice(-20).join('\n')).toBe('completed');
    } finally {
      await second.engine.close();
    }
    const k = await db.client.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.accounts'::regclass`);
    expect(firstRow(k.rows, 'pg_class row').relkind).toBe('p');
    const after = await invariant(db.client);
    expect(after.ok, JSON.stringify(after)).toBe(true);
    expect(after.h - before.h).toBe(w.delta);
    const same = await sameContent(db.client, 'public.accounts', 'public.accounts_old');
    expect(same.a).toBe(same.b);
    const swap = await stepData<{ lockHeldMs: number; changesUnderLock: number }>(db.client, 'swap:public.accounts');
    // most of the 300 were applied before the lock (the swap catches up first), the rest under it
    expect(swap.changesUnderLock).toBeLessThan(300);
    expect(second.logs().some((l) => /caught up: \d+ pending · captured/.test(l))).toBe(true);
  });
});

describe('phase 3 after an integrity FAIL re-syncs and passes, without a rollback', () => {
  let bank: BankDb;
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    bank = await bankDatabase('cutover_resync', { branches: BRANCHES, accountsPerBranch: PER, createdBy: 'superuser' });
    ({ db, dir } = bank);
  });
  afterAll(async () => {
    await bank?.close();
  });

  it('a FAIL (rows changed, missing and extra in the new table), then phase 3 again: re-synced, PASS, content identical', async () => {
    const plan = writeBankPlan(path.join(dir, 'b'), { copy: { mode: 'batch', batchRows: 500 } });
    const run = await openBank(db.url, plan);
    try {
      expect((await run.engine.run({ phases: [2] })).status).toBe('completed');
      expect((await run.engine.run({ phases: [3] })).status).toBe('completed');
      // something wrote to the new table behind pgshift's back
      await db.client.query(`UPDATE public.accounts_partitioned SET abalance = abalance + 1 WHERE aid <= 5`);
      await db.client.query(`DELETE FROM public.accounts_partitioned WHERE aid IN (10, 11)`);
      await db.client.query(`INSERT INTO public.accounts_partitioned (aid, bid, abalance) VALUES (99999, 1, 7)`);
      let o = await run.engine.run({ phases: [3], only: ['verify:integrity'] });
      expect(o.status).toBe('failed');
      expect(o.message).toMatch(/FAIL: public\.accounts: 2 missing, 1 extra, 5 changed/);
      o = await run.engine.run({ phases: [3] });
      expect(o.status, run.logs().slice(-20).join('\n')).toBe('completed');
      expect(run.logs().some((l) => /failed the last integrity report \(2 missing, 1 extra, 5 changed\): re-syncing/.test(l))).toBe(true);
      expect(run.logs().some((l) => /8 differing row\(s\) queued/.test(l))).toBe(true);
    } finally {
      await run.engine.close();
    }
    const rep = await db.client.query<{ value: { pass: boolean } }>(`SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`);
    expect(firstRow(rep.rows, 'integrity report').value.pass).toBe(true);
    const same = await sameContent(db.client, 'public.accounts', 'public.accounts_partitioned');
    expect(same.a).toBe(same.b);
  });
});
