import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { main } from '../source/cli.js';
import { Throttle } from '../source/copy/throttle.js';
import type { MonitorSnapshot } from '../source/db/monitor.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { first } from '../source/db/session.js';
import { captureIo } from './helpers/io.js';
import {
  GASIFIER_COLS, GASIFIER_ENTRY, PETRI_COLS, PETRI_ENTRY, contentHash, createGasifierTarget, createPetriTarget, openEngine, tmpDir, writePlan,
} from './fixtures/copy-helpers.js';

const ROWS = 20_000;

describe('phase 3 batch copy (real PostgreSQL, demo data)', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('copy_batch');
    dir = tmpDir('copy-batch');
    await createDemoDatabase(db.client, { rows: ROWS });
    await createPetriTarget(db.client);
    await createGasifierTarget(db.client);
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('copies both tables by keyset (copy.order = key), one transaction per batch, content identical, parents analyzed', async () => {
    const file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY, GASIFIER_ENTRY], copy: { batchRows: 3000, order: 'key' } });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.petri_observations', 'copy:public.gasifier_observations'] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
    const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
    const b = await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id');
    expect(a.n).toBe(ROWS);
    expect(b).toEqual(a);
    const g1 = await contentHash(db.client, 'public.gasifier_observations', GASIFIER_COLS, 'observation_id');
    const g2 = await contentHash(db.client, 'public.gasifier_observations_partitioned', GASIFIER_COLS, 'observation_id');
    expect(g1.n).toBe(ROWS / 2);
    expect(g2).toEqual(g1);
    const logs = o.logs().join('\n');
    // the operator is told why not the seed's loop, which order is walked, and that ANALYZE ran
    expect(logs).toContain("not the seed's loop");
    expect(logs).toMatch(/copy order: no index on \(created_at, observation_id\); index petri_observations_created_at_idx on created_at serves the keyset with a small incremental sort of ties/);
    expect(logs).toMatch(/copy order: no index on \(program_id, observation_id\); index gasifier_observations_program_id_created_at_idx on program_id serves the keyset .*~500 rows per program_id value/);
    expect(logs).toContain('ANALYZE public.petri_observations_partitioned: autovacuum never analyzes a partitioned parent');
    // each batch committed its checkpoint: ceil(20000 / 3000) = 7 batches of rows
    const cp = await db.client.query<{ step_id: string; rows_done: string; position: { done: boolean; batches: number } }>(`SELECT step_id, rows_done, position FROM pgshift.checkpoints ORDER BY step_id`);
    expect(cp.rows.map((r) => [r.step_id, Number(r.rows_done), r.position.done, r.position.batches])).toEqual([
      ['copy:public.gasifier_observations', ROWS / 2, true, 4],
      ['copy:public.petri_observations', ROWS, true, 7],
    ]);
    const batches = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.statements WHERE step_id = 'copy:public.petri_observations' AND sql LIKE '-- batch:%'`);
    expect(batches.rows[0]!.n).toBe(7); // 7 with rows, the last one up to the upper bound (no empty batch to find the end)
    const st = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = 'petri_observations_partitioned'`);
    expect(st.rows[0]!.n).toBeGreaterThan(0);
    // not the seed's LIMIT/OFFSET paging: the only OFFSET is the batch's end, read from the cursor on (a keyset
    // lower bound), never from the start of the table
    const off = await db.client.query<{ n: number; keyset: number }>(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE sql LIKE '-- batch:%' AND sql ~ 'WHERE "created_at" > \\$1 AND "created_at" <= \\$2 ORDER BY "created_at" OFFSET \\$3 - 1 LIMIT 1')::int AS keyset
         FROM pgshift.statements WHERE step_id = 'copy:public.petri_observations' AND sql ILIKE '%OFFSET%'
          AND sql NOT LIKE 'CREATE OR REPLACE FUNCTION "pgshift"."copy_batch_%'`,
    );
    expect(off.rows[0]).toEqual({ n: 7, keyset: 7 });

    // a second run: the journal says done; a rerun of the step itself finds the finished checkpoint
    const again = await openEngine(db.url, file);
    try {
      const out = await again.engine.run({ phases: [3], only: ['copy:public.petri_observations'] });
      expect(out.status).toBe('completed');
      expect(again.events.some((e) => e.type === 'step-done' && e.status === 'already-done')).toBe(true);
    } finally {
      await again.engine.close();
    }
    expect((await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id')).n).toBe(ROWS);
  });

  it('refuses to copy into a non-empty target that has no checkpoint (never inserts twice)', async () => {
    await db.client.query(`CREATE TABLE public.dup_src (id int PRIMARY KEY, at timestamptz NOT NULL, v text)`);
    await db.client.query(`INSERT INTO public.dup_src SELECT g, '2024-01-01'::timestamptz + g * interval '1 hour', 'v' || g FROM generate_series(1, 500) g`);
    await db.client.query(`CREATE TABLE public.dup_src_partitioned (id int, at timestamptz NOT NULL, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.client.query(`CREATE TABLE public.dup_src_partitioned_all PARTITION OF public.dup_src_partitioned DEFAULT`);
    await db.client.query(`INSERT INTO public.dup_src_partitioned SELECT * FROM public.dup_src WHERE id <= 10`);
    const file = writePlan(path.join(dir, 'dup'), { partition: [{ source: 'public.dup_src', strategy: 'range', key: 'at', interval: '1 month' }], pruning: { queries: [] } });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.dup_src'] });
      expect(out.status).toBe('failed');
      expect(out.message).toContain('public.dup_src_partitioned already holds rows but this copy has no checkpoint: copying would insert rows twice');
      expect(out.hint).toContain('TRUNCATE public.dup_src_partitioned');
    } finally {
      await o.engine.close();
    }
    const n = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.dup_src_partitioned`);
    expect(n.rows[0]!.n).toBe(10);
  });

  it('copies a table whose names need quoting, by column name, with generated and GENERATED ALWAYS identity columns', async () => {
    await db.client.query(`CREATE SCHEMA "Sales ""EU"""`);
    await db.client.query(`CREATE TABLE "Sales ""EU"""."Order Lines" (
        "Line ID" bigint PRIMARY KEY, "Created At" timestamptz NOT NULL, "qty;drop" int NOT NULL, price numeric(10,2),
        total numeric GENERATED ALWAYS AS ("qty;drop" * price) STORED, "Note" text)`);
    await db.client.query(`INSERT INTO "Sales ""EU"""."Order Lines" ("Line ID", "Created At", "qty;drop", price, "Note")
        SELECT g, '2024-01-01'::timestamptz + g * interval '37 minutes', g % 7, g / 3.0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'it''s "'||g||'"' END
          FROM generate_series(1, 3000) g`);
    await db.client.query(`CREATE INDEX ON "Sales ""EU"""."Order Lines" ("Created At")`);
    await db.client.query(`ANALYZE "Sales ""EU"""."Order Lines"`);
    // the new table: other column order, identity GENERATED ALWAYS on the id, the generated column too
    await db.client.query(`CREATE TABLE "Sales ""EU"""."Order Lines v2" (
        "Note" text, total numeric GENERATED ALWAYS AS ("qty;drop" * price) STORED, price numeric(10,2),
        "Line ID" bigint GENERATED ALWAYS AS IDENTITY, "qty;drop" int NOT NULL, "Created At" timestamptz NOT NULL,
        PRIMARY KEY ("Line ID", "Created At")) PARTITION BY RANGE ("Created At")`);
    await db.client.query(`CREATE TABLE "Sales ""EU"""."OL 2024" PARTITION OF "Sales ""EU"""."Order Lines v2" FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
    await db.client.query(`CREATE TABLE "Sales ""EU"""."OL rest" PARTITION OF "Sales ""EU"""."Order Lines v2" DEFAULT`);
    const file = writePlan(path.join(dir, 'odd'), {
      partition: [{ source: '"Sales ""EU"""."Order Lines"', target: 'Order Lines v2', strategy: 'range', key: 'Created At', interval: '1 year' }],
      copy: { batchRows: 250 },
    });
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:Sales "EU".Order Lines', 'verify:integrity'] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await o.engine.close();
    }
    const cols = ['"Line ID"', '"Created At"', '"qty;drop"', 'price', 'total', '"Note"'];
    const a = await contentHash(db.client, '"Sales ""EU"""."Order Lines"', cols, '"Line ID"');
    const b = await contentHash(db.client, '"Sales ""EU"""."Order Lines v2"', cols, '"Line ID"');
    expect(a.n).toBe(3000);
    expect(b).toEqual(a);
    expect(o.logs().join('\n')).toContain('OVERRIDING SYSTEM VALUE');
    expect(o.logs().join('\n')).toContain('column total is generated in');
  });

  it('bounds the copy by the largest key at its start, tells the operator, and refuses rows no partition accepts', async () => {
    await db.client.query(`CREATE TABLE public.bounded (id int PRIMARY KEY, at timestamptz NOT NULL)`);
    await db.client.query(`CREATE INDEX ON public.bounded (at)`);
    await db.client.query(`INSERT INTO public.bounded SELECT g, '2024-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 2000) g`);
    await db.client.query(`ANALYZE public.bounded`);
    await db.client.query(`CREATE TABLE public.bounded_partitioned (id int, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
    await db.client.query(`CREATE TABLE public.bounded_p1 PARTITION OF public.bounded_partitioned FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')`);
    const file = writePlan(path.join(dir, 'bounded'), { partition: [{ source: 'public.bounded', strategy: 'range', key: 'at', interval: '1 month', defaultPartition: false }], copy: { batchRows: 100, pauseMs: 20, order: 'key' } });
    const o = await openEngine(db.url, file);
    // while the copy runs, the application keeps inserting rows with later keys: the copy must not chase them
    let inserted = 0;
    let app: NodeJS.Timeout | undefined;
    o.engine.on((e) => {
      if (e.type === 'step-progress' && !app) {
        app = setInterval(() => {
          void db.client.query(`INSERT INTO public.bounded VALUES (100000 + $1, '2024-01-20'::timestamptz + $1 * interval '1 second')`, [++inserted]).catch(() => {});
        }, 10);
      }
    });
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.bounded'] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      clearInterval(app);
      await o.engine.close();
    }
    expect(inserted).toBeGreaterThan(10);
    expect(o.logs().join('\n')).toContain('upper bound fixed at the start: (at, id) ≤ (2024-01-02 09:20:00+00, 2000); later rows are not chased');
    // the batches stopped at the bound; the rows inserted meanwhile came through the change capture (batch mode captures too)
    const n = await db.client.query<{ n: number; m: number; later: number }>(`SELECT count(*) FILTER (WHERE id <= 2000)::int AS n, max(id) FILTER (WHERE id <= 2000)::int AS m, count(*) FILTER (WHERE id > 100000)::int AS later FROM public.bounded_partitioned`);
    expect(n.rows[0]).toMatchObject({ n: 2000, m: 2000 });
    // every later row the application committed is either applied already (background catch-up) or waits in the log
    const art = await db.client.query<{ log: string }>(`SELECT value->>'log' AS log FROM pgshift.artifacts WHERE key = 'capture:public.bounded'`);
    const pending = await db.client.query<{ n: number }>(`SELECT count(DISTINCT id)::int AS n FROM pgshift."${first(art.rows, 'capture artifact').log}" WHERE id > 100000 AND id NOT IN (SELECT id FROM public.bounded_partitioned)`);
    const committed = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.bounded WHERE id > 100000`);
    expect(committed.rows[0]!.n).toBeGreaterThan(0);
    expect(n.rows[0]!.later + pending.rows[0]!.n).toBe(committed.rows[0]!.n);
    // a row outside every partition (and no DEFAULT): a clear refusal, not a raw error; nothing half-copied
    await db.client.query(`TRUNCATE public.bounded_partitioned; DELETE FROM pgshift.checkpoints WHERE step_id = 'copy:public.bounded'; DELETE FROM pgshift.step_state WHERE step_id = 'copy:public.bounded'`);
    await db.client.query(`INSERT INTO public.bounded VALUES (0, '2023-12-31 23:00+00')`);
    const o2 = await openEngine(db.url, file);
    try {
      const out = await o2.engine.run({ phases: [3], only: ['copy:public.bounded'] });
      expect(out.status).toBe('failed');
      expect(out.message).toContain('public.bounded has rows no partition of public.bounded_partitioned accepts');
      expect(out.hint).toContain('create the missing partition or a DEFAULT partition');
    } finally {
      await o2.engine.close();
    }
  });

  it('stops cleanly on abort (checkpoint = rows in the target) and resumes without duplicate or gap', async () => {
    await db.client.query(`TRUNCATE public.petri_observations_partitioned`);
    await db.client.query(`DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state`);
    const file = writePlan(path.join(dir, 'abort'), { partition: [PETRI_ENTRY], copy: { batchRows: 500, pauseMs: 5 } });
    const ac = new AbortController();
    const o = await openEngine(db.url, file);
    o.engine.on((e) => {
      if (e.type === 'step-progress' && e.progress.done >= 4000) ac.abort();
    });
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.petri_observations'], signal: ac.signal });
      expect(out.status).toBe('aborted');
    } finally {
      await o.engine.close();
    }
    const cp = await db.client.query<{ rows_done: string }>(`SELECT rows_done FROM pgshift.checkpoints WHERE step_id = 'copy:public.petri_observations'`);
    const n = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations_partitioned`);
    expect(Number(first(cp.rows, 'checkpoint').rows_done)).toBe(n.rows[0]!.n);
    expect(n.rows[0]!.n).toBeGreaterThanOrEqual(4000);
    expect(n.rows[0]!.n).toBeLessThan(ROWS);
    const again = await openEngine(db.url, file);
    try {
      const out = await again.engine.run({ phases: [3], only: ['copy:public.petri_observations'] });
      expect(out.status).toBe('completed');
      expect(again.logs().join('\n')).toMatch(/resuming from the checkpoint: [\d,]+ rows/);
    } finally {
      await again.engine.close();
    }
    const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
    const b = await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id');
    expect(b).toEqual(a);
  });

  it('survives terminated backends: logs "connection lost, reconnecting…" and finishes with identical content', async () => {
    await db.client.query(`TRUNCATE public.petri_observations_partitioned`);
    await db.client.query(`DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state`);
    const file = writePlan(path.join(dir, 'kill-backend'), { partition: [PETRI_ENTRY], copy: { batchRows: 2000 } });
    const o = await openEngine(db.url, file);
    // hold the copy's batch on a lock so it is surely mid-transaction, then terminate its backend: twice
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    let kills = 0;
    const killTwice = async () => {
      for (let round = 0; round < 2; round++) {
        await locker.query(`BEGIN; LOCK TABLE public.petri_observations_partitioned IN SHARE MODE`);
        for (let i = 0; i < 200; i++) {
          const r = await db.client.query<{ ok: boolean }>(
            `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'pgshift' AND wait_event_type = 'Lock' AND query LIKE '%pgshift%copy_%'`,
          );
          if (r.rows.some((x) => x.ok)) {
            kills++;
            break;
          }
          await new Promise((res) => setTimeout(res, 20));
        }
        await locker.query('COMMIT');
        await new Promise((res) => setTimeout(res, 30));
      }
    };
    try {
      const killing = killTwice();
      const out = await o.engine.run({ phases: [3], only: ['copy:public.petri_observations'] });
      await killing;
      expect(out.status, o.logs().join('\n')).toBe('completed');
    } finally {
      await locker.end();
      await o.engine.close();
    }
    expect(kills).toBe(2);
    expect(o.logs().join('\n')).toContain('connection lost, reconnecting…');
    const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
    const b = await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id');
    expect(b).toEqual(a);
  });

  it('throttles while another session runs a long transaction, and says why', async () => {
    await db.client.query(`TRUNCATE public.gasifier_observations_partitioned`);
    await db.client.query(`DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state`);
    const file = writePlan(path.join(dir, 'throttle'), {
      partition: [GASIFIER_ENTRY], copy: { batchRows: 2000, pauseMs: 0, throttle: { lockWaitMs: 500, longQuerySeconds: 1 } },
    });
    const other = new pg.Client({ connectionString: db.url, application_name: 'nightly-report' });
    await other.connect();
    await other.query(`BEGIN; SELECT count(*) FROM public.sites`);
    await new Promise((r) => setTimeout(r, 1200));
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.gasifier_observations'] });
      expect(out.status).toBe('completed');
    } finally {
      await o.engine.close();
      await other.query('ROLLBACK');
      await other.end();
    }
    expect(o.logs().join('\n')).toMatch(/warn: throttle: backend \d+ \(postgres, nightly-report\) has been idle in transaction for \d+ s: .* halving batches/);
  });

  it('judges lock waits behind pgshift as a pause, and ignores waits on others', () => {
    const base: MonitorSnapshot = { at: new Date(), waits: [], long: [], blockers: [], costMs: 1 };
    const blocker = { pid: 10, state: 'active', durationMs: 50, query: 'WITH ins AS (…)', applicationName: 'pgshift', user: 'postgres', waitEvent: null, pgshift: true };
    const wait = { pid: 20, blockingPids: [10], mode: 'AccessExclusiveLock', relation: 'public.petri_observations', waitMs: 1500, query: 'ALTER TABLE …', applicationName: 'app', pgshift: false };
    expect(Throttle.judge({ ...base, waits: [wait], blockers: [blocker] }, { lockWaitMs: 1000 })).toEqual({
      level: 'pause',
      reason: 'backend 20 (app) has waited 1.5 s for AccessExclusiveLock on public.petri_observations behind pgshift: pausing the copy so it can go first',
    });
    expect(Throttle.judge({ ...base, waits: [{ ...wait, waitMs: 200 }], blockers: [blocker] }, { lockWaitMs: 1000 }).level).toBe('clear');
    expect(Throttle.judge({ ...base, waits: [wait], blockers: [{ ...blocker, pgshift: false, applicationName: 'psql' }] }, { lockWaitMs: 1000 }).level).toBe('clear');
  });

  it('refuses without a verified backup (exit 3, journaled) and copies with --skip-backup --confirm backup', async () => {
    const fresh = await freshDatabase('copy_nobackup');
    try {
      await fresh.client.query(`CREATE TABLE public.small (id int PRIMARY KEY, at timestamptz NOT NULL)`);
      await fresh.client.query(`INSERT INTO public.small SELECT g, '2024-01-01'::timestamptz + g * interval '1 day' FROM generate_series(1, 300) g`);
      await fresh.client.query(`CREATE TABLE public.small_partitioned (id int, at timestamptz NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
      await fresh.client.query(`CREATE TABLE public.small_p PARTITION OF public.small_partitioned DEFAULT`);
      const file = writePlan(path.join(dir, 'nobackup'), { partition: [{ source: 'public.small', strategy: 'range', key: 'at', interval: '1 month' }] });
      const io = captureIo();
      const code = await main(['--headless', '--phase', '3', '--plan', file, '--db', fresh.url], io);
      expect(code).toBe(3);
      expect(io.text()).toContain('REFUSED: no verified backup');
      expect(io.text()).toContain('hint: to override (journaled), pass --skip-backup --confirm backup');
      let n = await fresh.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.small_partitioned`);
      expect(n.rows[0]!.n).toBe(0);
      // the override alone is not enough: it must name the object too
      const io1 = captureIo();
      expect(await main(['--headless', '--phase', '3', '--plan', file, '--db', fresh.url, '--skip-backup'], io1)).toBe(3);
      expect(io1.stderr.at(-1)).toBe('hint: to allow it in headless mode, pass --confirm backup');
      const io2 = captureIo();
      const code2 = await main(['--headless', '--phase', '3', '--plan', file, '--db', fresh.url, '--skip-backup', '--confirm', 'backup'], io2);
      expect(code2, io2.text()).toBe(0);
      expect(io2.text()).toContain('copying WITHOUT a verified backup');
      n = await fresh.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.small_partitioned`);
      expect(n.rows[0]!.n).toBe(300);
      const conf = await fresh.client.query<{ kind: string; object: string; answer: string; method: string; reason: string | null }>(`SELECT kind, object, answer, method, reason FROM pgshift.confirmations ORDER BY id`);
      expect(conf.rows.map((r) => [r.kind, r.object, r.answer])).toEqual([
        ['override', 'backup', 'refused'],
        ['override', 'backup', 'declined'],
        ['override', 'backup', 'confirmed'],
      ]);
      expect(conf.rows[2]?.method).toBe('flag');
      expect(conf.rows[0]?.reason).toContain('no verified backup');
    } finally {
      await fresh.drop();
    }
  });

  it('walks whole groups of ties by key; resumes a checkpoint of an earlier version (a whole row, mid-group) by rows, without duplicate or gap', async () => {
    await db.client.query(`TRUNCATE public.petri_observations_partitioned`);
    await db.client.query(`DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state`);
    // ties: five more rows sharing the created_at of the 5,000th row
    const [mid] = (await db.client.query<{ at: string }>(`SELECT created_at::text AS at FROM public.petri_observations ORDER BY created_at, observation_id OFFSET 4999 LIMIT 1`)).rows;
    await db.client.query(
      `INSERT INTO public.petri_observations (observation_id, program_id, site_id, petri_code, growth_index, created_at, updated_at)
       SELECT gen_random_uuid(), program_id, site_id, 'TIE-' || g, 1, created_at, updated_at
         FROM public.petri_observations CROSS JOIN generate_series(1, 5) g WHERE created_at = $1::timestamptz LIMIT 5`,
      [mid!.at],
    );
    try {
      // a fresh copy walks by created_at with its index alone: its cursor is a created_at, each group of ties whole
      const file = writePlan(path.join(dir, 'ties'), { partition: [PETRI_ENTRY], copy: { batchRows: 1000, order: 'key' } });
      const o = await openEngine(db.url, file);
      try {
        expect((await o.engine.run({ phases: [3], only: ['copy:public.petri_observations'] })).status, o.logs().join('\n')).toBe('completed');
      } finally {
        await o.engine.close();
      }
      const [cp] = (await db.client.query<{ position: { bound: string; last: string[] } }>(`SELECT position FROM pgshift.checkpoints WHERE step_id = 'copy:public.petri_observations'`)).rows;
      expect(cp!.position.bound).toBe('key');
      expect(cp!.position.last).toHaveLength(1);
      const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
      expect(await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id')).toEqual(a);

      // the checkpoint an earlier version left, its cursor inside the group of ties: the rows up to it are copied
      await db.client.query(`TRUNCATE public.petri_observations_partitioned`);
      await db.client.query(`DELETE FROM pgshift.checkpoints; DELETE FROM pgshift.step_state`);
      const [last] = (await db.client.query<{ at: string; id: string }>(
        `SELECT created_at::text AS at, observation_id::text AS id FROM public.petri_observations WHERE created_at = $1::timestamptz ORDER BY observation_id OFFSET 2 LIMIT 1`, [mid!.at],
      )).rows;
      const [upper] = (await db.client.query<{ at: string; id: string }>(
        `SELECT created_at::text AS at, observation_id::text AS id FROM public.petri_observations ORDER BY created_at DESC, observation_id DESC LIMIT 1`,
      )).rows;
      const copied = await db.client.query(
        `INSERT INTO public.petri_observations_partitioned (${PETRI_COLS.join(', ')}) SELECT ${PETRI_COLS.join(', ')} FROM public.petri_observations
          WHERE (created_at, observation_id) <= ($1::timestamptz, $2::uuid)`,
        [last!.at, last!.id],
      );
      const position = { v: 1, order: ['created_at', 'observation_id'], upper: [upper!.at, upper!.id], last: [last!.at, last!.id], done: false, batches: 5 };
      await db.client.query(`INSERT INTO pgshift.checkpoints (step_id, position, rows_done) VALUES ('copy:public.petri_observations', $1, $2)`, [position, copied.rowCount]);
      const again = await openEngine(db.url, writePlan(path.join(dir, 'ties-resume'), { partition: [PETRI_ENTRY], copy: { batchRows: 1000, order: 'key' } }));
      try {
        expect((await again.engine.run({ phases: [3], only: ['copy:public.petri_observations'] })).status, again.logs().join('\n')).toBe('completed');
        expect(again.logs().join('\n')).toContain(`resuming from the checkpoint: ${copied.rowCount!.toLocaleString('en-US')} rows in 5 batches already committed, cursor (${last!.at}, ${last!.id})`);
      } finally {
        await again.engine.close();
      }
      const [cp2] = (await db.client.query<{ position: { bound?: string; last: string[] }; rows_done: string }>(`SELECT position, rows_done FROM pgshift.checkpoints WHERE step_id = 'copy:public.petri_observations'`)).rows;
      expect(cp2!.position.bound).toBeUndefined();
      expect(cp2!.position.last).toHaveLength(2);
      expect(Number(cp2!.rows_done)).toBe(a.n);
      expect(await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id')).toEqual(a);
    } finally {
      await db.client.query(`DELETE FROM public.petri_observations WHERE petri_code LIKE 'TIE-%'`);
    }
  });
});
