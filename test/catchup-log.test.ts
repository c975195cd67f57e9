import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Db } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { backgroundLogDue, startBackground, stopBackground, type Replayer } from '../source/copy/catchup.js';
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
});
