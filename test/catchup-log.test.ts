import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Db } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { backgroundLogDue, gatherDelay, startBackground, stopBackground, type Replayer } from '../source/copy/catchup.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';

/**
 * Found in the tmux walkthrough: while the wizard waited for the operator after phase 3, the background catch-up
 * logged "0 pending · captured 0/s · applied 0/s (replay capacity ~0/s)" every 2.5 s per table (313 log lines after
 * 5 minutes). Quiet now: one line saying so, then one a minute; any change is reported at the normal pace.
 */
describe('the background catch-up line', () => {
  it('is due at the normal pace while changes come, at the quiet pace once it said it is quiet', () => {
    const o = { everyMs: 5000, quietEveryMs: 60_000 };
    expect(backgroundLogDue({ ...o, sinceLastMs: 6000, quiet: true, lastWasQuiet: false })).toBe(true);
    expect(backgroundLogDue({ ...o, sinceLastMs: 6000, quiet: true, lastWasQuiet: true })).toBe(false);
    expect(backgroundLogDue({ ...o, sinceLastMs: 61_000, quiet: true, lastWasQuiet: true })).toBe(true);
    expect(backgroundLogDue({ ...o, sinceLastMs: 6000, quiet: false, lastWasQuiet: true })).toBe(true);
    expect(backgroundLogDue({ ...o, sinceLastMs: 4000, quiet: false, lastWasQuiet: false })).toBe(false);
  });

  it('gathers changes after an apply that took the whole backlog, goes on at once while a backlog is left', () => {
    expect(gatherDelay(40, 40, 30, 250)).toBe(220); // caught up: what is left of 250 ms since the apply began
    expect(gatherDelay(40, 45, 300, 250)).toBe(0); // the apply alone took longer than the gathering time
    expect(gatherDelay(5000, 1000, 30, 250)).toBe(0); // behind: the next apply at once
    expect(gatherDelay(40, 0, 5, 250)).toBe(50); // found nothing to take (another apply took it)
  });

  let fresh: FreshDb;
  let db: Db;
  beforeAll(async () => {
    fresh = await freshDatabase('catchup_log');
    db = new Db(resolveConnection(fresh.url), 'pgshift-test');
    await fresh.client.query(`CREATE TABLE change_log (id bigserial PRIMARY KEY)`);
  });
  afterAll(async () => {
    await db.close();
    await fresh.drop();
  });

  it('on a real change log: one quiet line while nothing comes, the rates as soon as changes come and are applied', async () => {
    let polls = 0;
    const rp: Replayer = {
      label: 'change_log',
      async pending() {
        polls++;
        return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM change_log`, [], null)).rows[0]!.n);
      },
      async captured() {
        // the log's sequence: every change ever captured, applied or not
        return Number((await db.query<{ n: string }>(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM change_log_id_seq`, [], null)).rows[0]!.n);
      },
      async apply(limit) {
        const t = performance.now();
        const r = await db.query(`DELETE FROM change_log WHERE id IN (SELECT id FROM change_log ORDER BY id LIMIT $1)`, [limit], null);
        return { changes: r.rowCount ?? 0, ms: performance.now() - t };
      },
    };
    const lines: string[] = [];
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; !ok(); i++) {
        if (i > 1500) throw new Error(`timed out waiting for ${what}; lines:\n${lines.join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    startBackground(db, 'test:change_log', rp, { batch: 100, reporter: { log: (m) => lines.push(m) }, logEveryMs: 10, quietEveryMs: 1e9 });
    try {
      const quiet = () => lines.filter((l) => l.includes('up to date, no writes captured'));
      await until('the first quiet line', () => quiet().length === 1);
      expect(quiet()[0]).toBe('background catch-up change_log: up to date, no writes captured in the last 10 s (while it stays so, this line comes every 1000000 s)');
      const at = polls;
      await until('15 more polls of the log', () => polls >= at + 15);
      expect(quiet()).toHaveLength(1); // 15 polls, each past logEveryMs: no repeat
      await fresh.client.query(`INSERT INTO change_log SELECT FROM generate_series(1, 5)`);
      await until('a line with the rates', () => lines.some((l) => /background catch-up change_log: \d+ pending · captured [1-9]\d*\/s/.test(l)));
      await until('the log applied', () => lines.some((l) => /0 pending · captured [1-9]\d*\/s · applied [1-9]\d*\/s/.test(l)));
      expect(Number((await fresh.client.query<{ n: string }>(`SELECT count(*) AS n FROM change_log`)).rows[0]!.n)).toBe(0);
    } finally {
      expect(await stopBackground(db, 'test:change_log')).toBe(true);
    }
  });

  it('under a steady trickle of changes, applies come no closer than the gathering time once caught up, and nothing is left behind', async () => {
    await fresh.client.query(`CREATE TABLE trickle_log (id bigserial PRIMARY KEY)`);
    const applies: { start: number; end: number; pending: number; took: number }[] = [];
    let lastPending = 0;
    const rp: Replayer = {
      label: 'trickle_log',
      async pending() {
        lastPending = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM trickle_log`, [], null)).rows[0]!.n);
        return lastPending;
      },
      async captured() {
        return Number((await db.query<{ n: string }>(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM trickle_log_id_seq`, [], null)).rows[0]!.n);
      },
      async apply(limit) {
        const start = performance.now();
        const r = await db.query(`DELETE FROM trickle_log WHERE id IN (SELECT id FROM trickle_log ORDER BY id LIMIT $1)`, [limit], null);
        applies.push({ start, end: performance.now(), pending: lastPending, took: r.rowCount ?? 0 });
        return { changes: r.rowCount ?? 0, ms: performance.now() - start };
      },
    };
    const gatherMs = 300;
    startBackground(db, 'test:trickle_log', rp, { batch: 10_000, reporter: { log: () => {} }, gatherMs });
    try {
      // one change per statement, each its own commit, until 12 applies have run
      let inserted = 0;
      while (applies.length < 12) {
        await fresh.client.query(`INSERT INTO trickle_log DEFAULT VALUES`);
        inserted++;
        if (inserted > 200_000) throw new Error(`only ${applies.length} applies after ${inserted} inserts`);
      }
      const caughtUp = applies.slice(0, -1).map((a, i) => ({ a, next: applies[i + 1]! })).filter(({ a }) => a.took >= a.pending && a.took > 0);
      expect(caughtUp.length).toBeGreaterThan(5);
      for (const { a, next } of caughtUp) expect(next.start - a.start).toBeGreaterThanOrEqual(gatherMs - 1);
      // the changes did gather: more than one per apply on average
      expect(applies.reduce((n, a) => n + a.took, 0) / applies.length).toBeGreaterThan(1);
      // and every change is applied in the end
      for (let i = 0; Number((await fresh.client.query<{ n: string }>(`SELECT count(*) AS n FROM trickle_log`)).rows[0]!.n) > 0; i++) {
        if (i > 1500) throw new Error('the trickle log was never emptied');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      expect(await stopBackground(db, 'test:trickle_log')).toBe(true);
    }
  });
});
