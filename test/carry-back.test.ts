import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import pg from 'pg';
import { bankDatabase, openBank, writeBankPlan, type BankDb, type Roles } from './fixtures/cutover.js';
import { loadPlan } from '../source/plan/load.js';
import { Db } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { Artifacts } from '../source/engine/artifacts.js';
import { applyReverse, insertableColumns } from '../source/swap/swap.js';
import { qname } from '../source/db/quote.js';

/**
 * The carry-back (rows written to the new table after the swap, carried to the old one during retention) runs
 * beside the application: an application transaction writing a key the carry-back is carrying right now must not
 * wait for it (the reverse log is read without a lock; its rows are locked only by the last statement, SKIP LOCKED),
 * and the key written meanwhile stays in the log with its new version, to be carried again: nothing is lost.
 */
describe('carry-back beside the application', () => {
  let bank: BankDb;
  let roles: Roles;
  let owner: pg.Client;
  let dir: string;

  beforeAll(async () => {
    bank = await bankDatabase('carry_back', { branches: 2, accountsPerBranch: 200 });
    ({ roles, owner, dir } = bank);
  });
  afterAll(async () => {
    await bank?.close();
  });

  it('an application write of a key being carried does not wait for the carry-back, and its new version is carried next', async () => {
    const planFile = writeBankPlan(path.join(dir, 'p'));
    const run = await openBank(roles.ownerUrl, planFile);
    try {
      expect((await run.engine.run({ phases: [1], only: ['snapshot:catalog'] })).status).toBe('completed');
      for (const phase of [2, 3, 4, 5] as const) {
        const o = await run.engine.run({ phases: [phase] });
        expect(o.status, run.logs().slice(-20).join('\n')).toBe('completed');
      }
    } finally {
      await run.engine.close();
    }
    const app = new pg.Client({ connectionString: roles.appUrl, application_name: 'bank-app' });
    await app.connect();
    const pgs = new Db(resolveConnection(roles.ownerUrl), 'pgshift-test');
    try {
      // after the swap the application writes 20 accounts: 20 keys in the reverse log
      for (let aid = 1; aid <= 20; aid++) await app.query(`UPDATE public.accounts SET abalance = abalance + 7 WHERE aid = $1`, [aid]);
      const t = loadPlan(planFile).tables[0]!;
      const { Journal } = await import('../source/engine/journal.js');
      const journal = await Journal.open(pgs, { create: false });
      const a = (await journal.getArtifact(Artifacts.swap(t)))!;
      expect(a.reverseKey).toBeTruthy();
      const logQ = qname('pgshift', a.reverseLog!);
      const cols = await insertableColumns(pgs, t.schema, t.oldName);
      const inLog = async (aid: number) => Number((await owner.query<{ n: string }>(`SELECT count(*) AS n FROM ${logQ} WHERE aid = $1`, [aid])).rows[0]!.n);
      expect(await inLog(1)).toBe(1);

      // the application writes account 1 while the carry-back holds its transaction open, after reading the log:
      // it must not wait (lock_timeout 300 ms on the application's side would fail it)
      let appWrote = false;
      const first = await pgs.tx((tx) => applyReverse(tx, t, a, cols, 100, async () => {
        await app.query(`SET lock_timeout = '300ms'`);
        await app.query(`UPDATE public.accounts SET abalance = abalance + 1000 WHERE aid = 1`);
        appWrote = true;
      }));
      expect(appWrote).toBe(true);
      expect(first.changes).toBe(20);
      // the 19 others are carried and gone from the log; account 1 stays with its new version
      expect(Number((await owner.query<{ n: string }>(`SELECT count(*) AS n FROM ${logQ}`)).rows[0]!.n)).toBe(1);
      expect(await inLog(1)).toBe(1);
      const second = await pgs.tx((tx) => applyReverse(tx, t, a, cols, 100));
      expect(second.changes).toBe(1);
      expect(await inLog(1)).toBe(0);
      // the old table holds exactly what the application wrote, the write made during the carry-back included
      const diff = await owner.query<{ n: string }>(
        `SELECT count(*) AS n FROM public.accounts n FULL JOIN ${qname('public', t.oldName)} o USING (aid) WHERE n.abalance IS DISTINCT FROM o.abalance OR n.bid IS DISTINCT FROM o.bid`,
      );
      expect(Number(diff.rows[0]!.n)).toBe(0);
    } finally {
      await app.end();
      await pgs.close();
    }
  });
});
