import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import pg from 'pg';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { contentHash, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

/**
 * The default copy walks the source's pages (TID range scans). Rows that move between pages while it runs — an
 * UPDATE whose new version lands in a page the walk has not reached, or in one it has passed — must be neither
 * doubled nor lost. A ledger of our own (not the demo's), written by an application role that is not a superuser;
 * the proof is an invariant (every account's balance, and their sum) plus the content hash, not only counts.
 */
const ROWS = 20_000;
const STEP = 'copy:public.ledger';
const COLS = ['id', 'branch', 'balance', 'pad'];
const ENTRY = { source: 'public.ledger', strategy: 'list', key: 'branch', values: { query: 'SELECT generate_series(1, 4)' } };

describe('phase 3 copy by pages (copy.order = physical, the default)', () => {
  let db: FreshDb;
  let dir: string;
  let app: pg.Client;
  let appUrl: string;
  beforeAll(async () => {
    db = await freshDatabase('copy_pages');
    dir = tmpDir('copy-pages');
    // full pages (fillfactor 100, no autovacuum): an UPDATE's new version goes wherever the free space map says
    await db.client.query(`CREATE TABLE public.ledger (id bigint PRIMARY KEY, branch int NOT NULL, balance bigint NOT NULL, pad text NOT NULL)
      WITH (fillfactor = 100, autovacuum_enabled = false)`);
    await db.client.query(`INSERT INTO public.ledger SELECT g, 1 + g % 4, 0, repeat('x', 80) FROM generate_series(1, ${ROWS}) g ORDER BY g`);
    await db.client.query(`VACUUM ANALYZE public.ledger`);
    await db.client.query(`CREATE TABLE public.ledger_partitioned (LIKE public.ledger, PRIMARY KEY (id, branch)) PARTITION BY LIST (branch)`);
    for (let b = 1; b <= 4; b++) await db.client.query(`CREATE TABLE public.ledger_partitioned_b${b} PARTITION OF public.ledger_partitioned FOR VALUES IN (${b})`);
    await db.client.query(`DO $$ BEGIN CREATE ROLE pages_app LOGIN PASSWORD 'app'; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    await db.client.query(`GRANT USAGE ON SCHEMA public TO pages_app; GRANT SELECT, INSERT, UPDATE, DELETE ON public.ledger TO pages_app`);
    const u = new URL(db.url);
    u.username = 'pages_app';
    u.password = 'app';
    appUrl = u.toString();
    app = new pg.Client({ connectionString: appUrl });
    await app.connect();
  });
  afterAll(async () => {
    await app?.end();
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** the heap page of each id, in one query (one client runs one query at a time) */
  const pagesOf = async (ids: readonly number[]) => {
    const r = await db.client.query<{ p: string }>(
      `SELECT (l.ctid::text::point)[0]::bigint AS p FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, i) JOIN public.ledger l ON l.id = u.id ORDER BY u.i`,
      [ids],
    );
    expect(r.rows).toHaveLength(ids.length);
    return r.rows.map((x) => Number(x.p));
  };
  const checkpoint = async () => {
    const r = await db.client.query<{ n: string; position: { walk?: string; last: string[] | null; upper: string[]; done: boolean; relfilenode: number } }>(
      `SELECT rows_done AS n, position FROM pgshift.checkpoints WHERE step_id = $1`, [STEP]);
    return r.rows[0] ? { n: Number(r.rows[0].n), position: r.rows[0].position } : null;
  };
  /** runs the copy until its first batch has committed, then stops it at that checkpoint */
  const copyOneBatch = async (name: string) => {
    const ac = new AbortController();
    const o = await openEngine(db.url, writePlan(path.join(dir, name), { partition: [ENTRY], copy: { batchRows: 2000, pauseMs: 60_000 } }));
    o.engine.on((e) => {
      if (e.type === 'step-progress' && e.progress.done > 0) ac.abort();
    });
    try {
      const out = await o.engine.run({ phases: [3], only: [STEP], signal: ac.signal });
      expect(out.status, o.logs().join('\n')).toBe('aborted');
    } finally {
      await o.engine.close();
    }
    return o.logs().join('\n');
  };
  const finish = async (name: string) => {
    const o = await openEngine(db.url, writePlan(path.join(dir, name), { partition: [ENTRY], copy: { batchRows: 2000 } }));
    try {
      // the copy, then the integrity check: it first applies the change log (as the swap would), then compares row by row
      const out = await o.engine.run({ phases: [3], only: [STEP, 'verify:integrity'] });
      return { out, logs: o.logs().join('\n') };
    } finally {
      await o.engine.close();
    }
  };

  it('walks pages; rows the application moves across the walk (into pages ahead of it and behind it) are neither doubled nor lost', async () => {
    const logs = await copyOneBatch('moves-1');
    expect(logs).toContain("copy order: the source's pages in physical order");
    expect(logs).toMatch(/upper bound fixed at the start: the source's first [\d,]+ pages/);
    const cp = (await checkpoint())!;
    expect(cp.position.walk).toBe('pages');
    const walked = Number(cp.position.last![0]);
    const upper = Number(cp.position.upper[0]);
    expect(walked).toBeGreaterThan(0);
    expect(walked).toBeLessThan(upper / 2);
    const [{ n: inTarget }] = (await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.ledger_partitioned`)).rows as [{ n: number }];
    expect(inTarget).toBe(cp.n);

    // rows already copied (page 0, full: no HOT update) updated after free space was made ahead of the walk (20 rows
    // deleted from the table's second-to-last page): their new versions land there, in pages the walk has not reached
    const idsOn = async (page: number) =>
      (await db.client.query<{ id: string }>(`SELECT id FROM public.ledger WHERE (ctid::text::point)[0] = $1 ORDER BY id LIMIT 20`, [page])).rows.map((r) => Number(r.id));
    await app.query(`DELETE FROM public.ledger WHERE id = ANY($1::bigint[])`, [await idsOn(upper - 2)]);
    await db.client.query(`VACUUM (INDEX_CLEANUP ON) public.ledger`);
    const copiedIds = await idsOn(0);
    await app.query(`UPDATE public.ledger SET balance = balance + 7 WHERE id = ANY($1::bigint[])`, [copiedIds]);
    // rows not copied yet (the middle of the table) updated after free space was made behind the walk (page 1): their
    // new versions land in pages the walk has passed; one of them moves to another branch (another partition)
    await app.query(`DELETE FROM public.ledger WHERE id = ANY($1::bigint[])`, [await idsOn(1)]);
    await db.client.query(`VACUUM (INDEX_CLEANUP ON) public.ledger`);
    const laterIds = await idsOn(Math.floor(upper / 2));
    // a second application session: a backend first tries the page it last wrote to; this one goes by the free space map
    const app2 = new pg.Client({ connectionString: appUrl });
    await app2.connect();
    await app2.query(`UPDATE public.ledger SET balance = balance - 5, branch = CASE WHEN id = $2 THEN 1 + (branch % 4) ELSE branch END WHERE id = ANY($1::bigint[])`, [laterIds, laterIds[0]]);
    await app2.end();
    const movedAhead = (await pagesOf(copiedIds)).filter((p) => p >= walked).length;
    const movedBehind = (await pagesOf(laterIds)).filter((p) => p < walked).length;
    // the fixture does what it says: copied rows now sit ahead of the walk, uncopied ones behind it
    expect(movedAhead).toBe(20);
    expect(movedBehind).toBeGreaterThan(0);
    // and an insert during the pause
    await app.query(`INSERT INTO public.ledger VALUES (${ROWS + 1}, 2, 11, 'new')`);

    const { out, logs: l2 } = await finish('moves-2');
    expect(out.status, l2).toBe('completed');
    expect(l2).toMatch(/resuming from the checkpoint: [\d,]+ rows in 1 batches already committed, cursor \(\d+\)/);
    const a = await contentHash(db.client, 'public.ledger', COLS, 'id');
    const b = await contentHash(db.client, 'public.ledger_partitioned', COLS, 'id');
    expect(a.n).toBe(ROWS - 40 + 1);
    expect(b).toEqual(a);
    // the invariant: every account's balance is the same, and the books balance (7 × 20 − 5 × 20 + 11 = 51)
    const inv = await db.client.query<{ s_old: string; s_new: string; dup: number; diff: number }>(`SELECT
        (SELECT sum(balance) FROM public.ledger)::text AS s_old, (SELECT sum(balance) FROM public.ledger_partitioned)::text AS s_new,
        (SELECT count(*) FROM (SELECT id FROM public.ledger_partitioned GROUP BY id HAVING count(*) > 1) d)::int AS dup,
        (SELECT count(*) FROM public.ledger o FULL JOIN public.ledger_partitioned n USING (id) WHERE o.balance IS DISTINCT FROM n.balance OR o.branch IS DISTINCT FROM n.branch)::int AS diff`);
    expect(inv.rows[0]).toEqual({ s_old: '51', s_new: '51', dup: 0, diff: 0 });
    const journal = await db.client.query<{ n: number; ctid: number; offset: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE sql LIKE '%s.ctid >= $1::tid AND s.ctid < $2::tid%')::int AS ctid, count(*) FILTER (WHERE sql ILIKE '%OFFSET%')::int AS offset
         FROM pgshift.statements WHERE step_id = $1 AND sql LIKE '-- batch:%'`, [STEP]);
    expect(journal.rows[0]!.n).toBeGreaterThanOrEqual(2);
    expect(journal.rows[0]).toMatchObject({ ctid: journal.rows[0]!.n, offset: 0 });
    // the log is looked up only for row versions written since the capture's install (older than its oldest running
    // transaction: committed before it), one probe each on the log's key index
    const lookups = await db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pgshift.statements WHERE step_id = $1 AND sql LIKE '-- batch:%' AND sql LIKE '%(age(s.xmin) > $3 OR NOT EXISTS (SELECT 1 FROM %'`, [STEP]);
    expect(lookups.rows[0]!.n).toBe(journal.rows[0]!.n);
    const art = await db.client.query<{ xmin: string; log: string }>(`SELECT value->>'xmin' AS xmin, value->>'log' AS log FROM pgshift.artifacts WHERE key = 'capture:public.ledger'`);
    expect(Number(art.rows[0]!.xmin)).toBeGreaterThan(0);
    const idx = await db.client.query<{ def: string }>(`SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index WHERE indrelid = ('pgshift.' || quote_ident($1))::regclass AND NOT indisprimary`, [art.rows[0]!.log]);
    expect(idx.rows.map((r) => r.def)).toEqual([expect.stringMatching(/USING btree \(id\)$/)]);
  });

  /**
   * A copy stopped after its first batch, then `damage` done between two runs: the next run is refused with `message`
   * and the hint to start over, nothing changes (checkpoint, target); emptied as told, the copy starts over and
   * matches. Returns the logs of that last run.
   */
  const refusedThenStartsOver = async (name: string, damage: () => Promise<void>, message: RegExp): Promise<string> => {
    await db.client.query(`TRUNCATE public.ledger_partitioned`);
    await db.client.query(`DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state`);
    await copyOneBatch(`${name}-1`);
    const before = (await checkpoint())!;
    expect(before.position.walk).toBe('pages');
    await damage();
    const { out } = await finish(`${name}-2`);
    expect(out.status).toBe('failed');
    expect(out.message).toMatch(message);
    expect(out.hint).toContain('empty public.ledger_partitioned (TRUNCATE public.ledger_partitioned) and run phase 3 again');
    expect(await checkpoint()).toEqual(before);
    const [{ n }] = (await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.ledger_partitioned`)).rows as [{ n: number }];
    expect(n).toBe(before.n);
    await db.client.query(`TRUNCATE public.ledger_partitioned`);
    const again = await finish(`${name}-3`);
    expect(again.out.status, again.logs).toBe('completed');
    expect(await contentHash(db.client, 'public.ledger_partitioned', COLS, 'id')).toEqual(await contentHash(db.client, 'public.ledger', COLS, 'id'));
    return again.logs;
  };

  it('refuses to go on walking pages once the change capture is gone (a row moved meanwhile would be lost), and changes nothing', async () => {
    // removed by hand between two runs: the trigger and its log
    const logs = await refusedThenStartsOver('nocapture', async () => {
      const [{ log }] = (await db.client.query<{ log: string }>(`SELECT value->>'log' AS log FROM pgshift.artifacts WHERE key = 'capture:public.ledger'`)).rows as [{ log: string }];
      await db.client.query(`DROP TRIGGER pgshift_capture ON public.ledger; DROP TABLE pgshift."${log}"`);
    }, /the copy of public\.ledger walks its pages and needs the change capture, which is no longer installed/);
    // the copy started over with a new capture
    expect(logs).toContain('change capture installed and committed BEFORE the first batch');
  });

  it('walks keys, not pages, when the source is itself partitioned (it has no pages of its own), and copies every row', async () => {
    await db.client.query(`CREATE TABLE public.parted (id bigint NOT NULL, k int NOT NULL, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k)`);
    await db.client.query(`CREATE TABLE public.parted_a PARTITION OF public.parted FOR VALUES IN (1); CREATE TABLE public.parted_b PARTITION OF public.parted FOR VALUES IN (2)`);
    await db.client.query(`INSERT INTO public.parted SELECT g, 1 + g % 2, md5(g::text) FROM generate_series(1, 3000) g`);
    await db.client.query(`ANALYZE public.parted`);
    await db.client.query(`CREATE TABLE public.parted_partitioned (LIKE public.parted) PARTITION BY LIST (k)`);
    await db.client.query(`ALTER TABLE public.parted_partitioned ADD PRIMARY KEY (id, k)`);
    await db.client.query(`CREATE TABLE public.parted_partitioned_1 PARTITION OF public.parted_partitioned FOR VALUES IN (1); CREATE TABLE public.parted_partitioned_2 PARTITION OF public.parted_partitioned FOR VALUES IN (2)`);
    const o = await openEngine(db.url, writePlan(path.join(dir, 'parted'), {
      partition: [{ source: 'public.parted', strategy: 'list', key: 'k', values: { query: 'SELECT 1 UNION ALL SELECT 2' } }], copy: { batchRows: 500 },
    }));
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.parted'] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
      expect(o.logs().join('\n')).toContain('public.parted is not a plain table (relkind p): the copy walks the key order, not pages');
    } finally {
      await o.engine.close();
    }
    const cols = ['id', 'k', 'v'];
    const a = await contentHash(db.client, 'public.parted', cols, 'id');
    expect(a.n).toBe(3000);
    expect(await contentHash(db.client, 'public.parted_partitioned', cols, 'id')).toEqual(a);
  });

  it('stops with a clear message when the source is rewritten mid-copy (VACUUM FULL moves every row), and changes nothing', async () => {
    // the copy starts over: a new walk over the new file
    await refusedThenStartsOver('rewrite', async () => {
      await db.client.query(`VACUUM FULL public.ledger`);
    }, /public\.ledger was rewritten since its copy started \(VACUUM FULL, CLUSTER or a table rewrite\)/);
  });
});
