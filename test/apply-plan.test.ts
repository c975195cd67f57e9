import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Db } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { applyChanges, captureNames, NESTED_LOOP_MAX, type Capture } from '../source/copy/online.js';
import { relByName } from '../source/copy/meta.js';
import { BudgetExceeded, applyUnderLock } from '../source/copy/catchup.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';

const ROWS = 100_000;

/**
 * Found measuring bench:copy: the drain under the lock took 1.4–1.8 s in three runs of six (106–176 ms in the
 * others) for ~200–330 changes. The log's statistics were those of when autovacuum last analyzed it, full: the
 * planner sized the keys as thousands and joined them by a sequential scan of every partition of the new table, a
 * cost that grows with the table, under the swap's lock. Reproduced here on a small scale (a partitioned target,
 * a log analyzed with 5,000 keys then holding 300), and checked on the catalog's own counters of the apply's
 * transaction (pg_stat_xact_user_tables): no sequential scan of the source or of any partition.
 */
describe('applying captured changes: plans that follow the keys, not the table', () => {
  let fresh: FreshDb;
  let db: Db;
  let cap: Capture;
  const logQ = `"pgshift"."log_apply_plan"`;

  beforeAll(async () => {
    fresh = await freshDatabase('apply_plan');
    db = new Db(resolveConnection(fresh.url), 'pgshift-test');
    const c = fresh.client;
    await c.query(`CREATE SCHEMA pgshift`);
    await c.query(`CREATE TABLE public.src (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), created_at timestamptz NOT NULL, v int NOT NULL, pad text)`);
    await c.query(`INSERT INTO public.src (created_at, v, pad) SELECT '2024-01-01'::timestamptz + g * interval '10 minutes', g, repeat('x', 80) FROM generate_series(1, $1) g`, [ROWS]);
    await c.query(`CREATE TABLE public.tgt (id uuid NOT NULL, created_at timestamptz NOT NULL, v int NOT NULL, pad text) PARTITION BY RANGE (created_at)`);
    for (let m = 0; m < 24; m++) {
      const from = new Date(Date.UTC(2024, m, 1)).toISOString();
      const to = new Date(Date.UTC(2024, m + 1, 1)).toISOString();
      await c.query(`CREATE TABLE public.tgt_${m} PARTITION OF public.tgt FOR VALUES FROM ('${from}') TO ('${to}')`);
    }
    await c.query(`INSERT INTO public.tgt SELECT * FROM public.src`);
    await c.query(`ALTER TABLE public.tgt ADD PRIMARY KEY (id, created_at)`);
    await c.query(`CREATE TABLE ${logQ} (pgshift_capture_id bigserial PRIMARY KEY, id uuid NOT NULL)`);
    await c.query(`CREATE INDEX ON ${logQ} (id)`);
    // the log as autovacuum last saw it: 5,000 keys; then replayed (emptied) and 300 new changes
    await c.query(`INSERT INTO ${logQ} (id) SELECT id FROM public.src ORDER BY v LIMIT 5000`);
    await c.query(`ANALYZE public.src, public.tgt, ${logQ}`);
    await c.query(`DELETE FROM ${logQ}`);
    await c.query(`UPDATE public.src SET v = -v WHERE v % 333 = 0`);
    await c.query(`INSERT INTO ${logQ} (id) SELECT id FROM public.src WHERE v < 0`);
    const source = (await relByName(db, 'public', 'src'))!;
    const target = (await relByName(db, 'public', 'tgt'))!;
    cap = { names: captureNames({ schema: 'public', table: 'src' }), logQ, source, target, pk: ['id'], xmin: null };
  });
  afterAll(async () => {
    await db.close();
    await fresh.drop();
  });

  it('the fixture sets the trap: planned on the log\'s statistics, the delete scans partitions sequentially', async () => {
    const n = Number((await fresh.client.query<{ n: string }>(`SELECT count(*) AS n FROM ${logQ}`)).rows[0]!.n);
    expect(n).toBe(Math.floor(ROWS / 333));
    expect(n).toBeLessThanOrEqual(NESTED_LOOP_MAX);
    const plan = await fresh.client.query<{ 'QUERY PLAN': unknown }>(
      `EXPLAIN (FORMAT JSON) DELETE FROM public.tgt t USING (SELECT DISTINCT id FROM ${logQ} WHERE pgshift_capture_id <= 1000000000) k WHERE t.id = k.id`,
    );
    expect(JSON.stringify(plan.rows[0]!['QUERY PLAN'])).toMatch(/"Node Type":"Seq Scan","Parent Relationship":"[^"]*","Parallel Aware":false,"Async Capable":false,"Relation Name":"tgt_\d+"/);
  });

  it('applyChanges probes by index (no sequential scan of the source or a partition), applies every change, restores the settings', async () => {
    const out = await db.tx(async (tx) => {
      const r = await applyChanges(tx, cap, null);
      const scans = await tx.client.query<{ seq: string; idx: string }>(
        `SELECT coalesce(sum(seq_scan), 0)::text AS seq, coalesce(sum(idx_scan), 0)::text AS idx FROM pg_stat_xact_user_tables
          WHERE relid = 'public.src'::regclass OR relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'public.tgt'::regclass)`,
      );
      const settings = await tx.client.query<{ h: string; m: string; s: string }>(`SELECT current_setting('enable_hashjoin') AS h, current_setting('enable_mergejoin') AS m, current_setting('enable_seqscan') AS s`);
      return { r, scans: scans.rows[0]!, settings: settings.rows[0]! };
    }, { stepId: null });
    expect(out.r).toEqual({ changes: Math.floor(ROWS / 333), rows: Math.floor(ROWS / 333) });
    expect(out.scans.seq).toBe('0');
    expect(Number(out.scans.idx)).toBeGreaterThan(0);
    expect(out.settings).toEqual({ h: 'on', m: 'on', s: 'on' });
    // the invariant: the new table equals the source, row for row
    const diff = await fresh.client.query<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT id, created_at, v, pad FROM public.src EXCEPT ALL SELECT id, created_at, v, pad FROM public.tgt
                                  UNION ALL (SELECT id, created_at, v, pad FROM public.tgt EXCEPT ALL SELECT id, created_at, v, pad FROM public.src)) d`,
    );
    expect(diff.rows[0]!.n).toBe('0');
    expect((await fresh.client.query(`SELECT 1 FROM ${logQ}`)).rowCount).toBe(0);
  });

  it('under the lock a statement that would outlast the budget is cut there (statement_timeout), and the setting comes back after a normal apply', async () => {
    const cut = await db.tx(async (tx) => {
      const t0 = performance.now();
      return applyUnderLock(t0, 50, async () => {
        await tx.client.query(`SELECT pg_sleep(5)`);
        return 1;
      }, tx).then(() => null, (e: unknown) => e);
    }, { stepId: null }).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(BudgetExceeded);
    expect((cut as BudgetExceeded).cut).toBe(true);
    expect((cut as BudgetExceeded).message).toMatch(/^the apply under the lock was cut at the 50 ms budget \(statement_timeout\) after \d+ ms$/);
    const after = await db.tx(async (tx) => {
      await tx.client.query(`SET LOCAL statement_timeout = '7s'`);
      const r = await applyUnderLock(performance.now(), 5000, () => Promise.resolve(0), tx);
      return { r, v: (await tx.client.query<{ v: string }>(`SELECT current_setting('statement_timeout') AS v`)).rows[0]!.v };
    }, { stepId: null });
    expect(after.r.changes).toBe(0);
    expect(after.v).toBe('7s');
  });

  it('the budget bounds the whole apply, not each statement: the later statements get only what is left of it', async () => {
    // three statements of 200 ms under a 300 ms budget: each alone fits, together they do not. With the timeout set
    // once for the whole apply, all three would finish (600 ms under the lock) before the budget was noticed.
    const ran: string[] = [];
    const cut = await db.tx(async (tx) => {
      const t0 = performance.now();
      return applyUnderLock(t0, 300, async (bounded) => {
        for (let i = 0; i < 3; i++) {
          await (i % 2 ? bounded.query(`SELECT pg_sleep(0.2)`) : bounded.client.query(`SELECT pg_sleep(0.2)`));
          ran.push(`statement ${i + 1}`);
        }
        return 3;
      }, tx).then(() => null, (e: unknown) => e);
    }, { stepId: null }).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(BudgetExceeded);
    expect((cut as BudgetExceeded).cut).toBe(true);
    expect(ran).toEqual(['statement 1']);
    expect((cut as BudgetExceeded).ms).toBeLessThan(600);
  });
});
