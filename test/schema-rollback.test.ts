import { describe, it, expect, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { main } from '../source/cli.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import { diffSnapshots, takeSnapshot } from '../source/snapshot.js';
import { freshDatabase, type FreshDb, dropRoles } from './helpers/db.js';
import { captureIo } from './helpers/io.js';
import { createRentalFixture, rentalInvariant, type RentalFixture } from './fixtures/rental-schema.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { first } from '../source/db/session.js';

/**
 * The rollback completes from every state — before the copy, mid-copy, after the swap, after the drop — on a schema
 * with a partitioned referencing table whose FKs live on its partitions (test/fixtures/rental-schema.ts), and leaves
 * the catalog (snapshot and pg_dump --schema-only) as it was before the migration, with no row the application
 * wrote lost.
 */

const cleanup: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => {});
});

function schemaDump(url: string): string {
  const u = new URL(url);
  const out = execFileSync('pg_dump', ['--schema-only', '--no-comments', '--exclude-schema', 'pgshift', '--dbname', u.pathname.slice(1)], {
    env: { ...process.env, PGHOST: u.hostname, PGPORT: u.port, PGUSER: decodeURIComponent(u.username), PGPASSWORD: decodeURIComponent(u.password) },
    encoding: 'utf8',
  });
  return out.replace(/^-- (Dumped|Started|Completed).*$/gm, '').replace(/^\\(un)?restrict .*$/gm, '');
}

/** Runs the CLI headless, adding each --confirm it asks for (as an operator reading the hint would); returns the exit and output. */
async function runConfirming(argv: string[], max = 12): Promise<{ code: number; out: string; confirms: string[] }> {
  const confirms: string[] = [];
  let out = '';
  for (let i = 0; i < max; i++) {
    const io = captureIo();
    const code = await main(['--headless', ...argv, ...confirms.flatMap((x) => ['--confirm', x])], io);
    out += io.text() + '\n';
    if (code !== 3) return { code, out, confirms };
    const m = /pass --confirm (\S+)$/.exec(io.stderr.at(-1) ?? '');
    if (!m) return { code, out, confirms };
    confirms.push(m[1]!);
  }
  return { code: -1, out, confirms };
}

async function setup(label: string, opts: { retentionDays?: number; batchRows?: number; pauseMs?: number } = {}): Promise<{ db: FreshDb; fx: RentalFixture; dir: string }> {
  const db = await freshDatabase(`schema_rb_${label}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgshift-rb-${label}-`));
  const fx = await createRentalFixture(db.client, db.url, dir, { withKeyColumn: true, ...opts });
  cleanup.push(async () => {
    await db.drop();
    await dropRoles(fx.app);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { db, fx, dir };
}

/** The application (non-superuser role) writes a rental and a payment for it; returns the rental id. */
async function appWrites(fx: RentalFixture, tag: string): Promise<number> {
  const c = new pg.Client({ connectionString: fx.appUrl });
  await c.connect();
  try {
    const r = await c.query<{ rental_id: number }>(`INSERT INTO public.rental (rental_date, customer_id) VALUES ('2022-03-15 10:00+00', 7) RETURNING rental_id`);
    const id = Number(first(r.rows, 'inserted rental').rental_id);
    await c.query(`INSERT INTO public.payment (customer_id, rental_id, rental_date, amount, payment_date) VALUES (7, $1, '2022-03-15 10:00+00', 4.99, '2022-03-15 11:00+00')`, [id]);
    await c.query(`UPDATE public.rental SET return_date = '2022-03-20 10:00+00' WHERE rental_id = (SELECT min(rental_id) FROM public.rental WHERE return_date IS NULL)`);
    await c.query(`INSERT INTO public.customer (name) VALUES ($1)`, [tag]);
    return id;
  } finally {
    await c.end();
  }
}

async function rollbackAndCompare(db: FreshDb, fx: RentalFixture, before: { snap: Awaited<ReturnType<typeof takeSnapshot>>; dump: string }) {
  const rb = await runConfirming(['--rollback', '--plan', fx.plan, '--db', db.url]);
  expect(rb.code, rb.out).toBe(0);
  expect(rb.out).toMatch(/run \d+ completed/);
  expect(rb.out).not.toMatch(/cannot drop inherited constraint/);
  expect(diffSnapshots(before.snap, await takeSnapshot(db.client))).toEqual([]);
  const after = schemaDump(db.url);
  const a = new Set(before.dump.split('\n'));
  const b = new Set(after.split('\n'));
  expect({ lost: [...a].filter((l) => !b.has(l)), gained: [...b].filter((l) => !a.has(l)) }).toEqual({ lost: [], gained: [] });
  expect(after).toBe(before.dump);
  return rb;
}

describe('rollback from every state, partitioned referencing table with FKs on its partitions', () => {
  it('before the copy (after phase 2)', async () => {
    const { db, fx } = await setup('precopy');
    const before = { snap: await takeSnapshot(db.client), dump: schemaDump(db.url) };
    const inv = await rentalInvariant(db.client);
    const io = captureIo();
    expect(await main(['--headless', '--plan', fx.plan, '--db', db.url, '--until', '2'], io), io.text()).toBe(0);
    expect((await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'public.rental_partitioned'::regclass`)).rows[0]!.n).toBeGreaterThan(3);
    await rollbackAndCompare(db, fx, before);
    expect(await rentalInvariant(db.client)).toEqual(inv);
  });

  it('mid-copy (stopped after a committed batch)', async () => {
    // a rest between batches: the copy stops at a batch boundary (without one, a run of batches in one CALL may
    // copy every row before the abort is seen)
    const { db, fx } = await setup('midcopy', { batchRows: 200, pauseMs: 20 });
    const before = { snap: await takeSnapshot(db.client), dump: schemaDump(db.url) };
    const inv = await rentalInvariant(db.client);
    const io = captureIo();
    expect(await main(['--headless', '--plan', fx.plan, '--db', db.url, '--until', '2'], io), io.text()).toBe(0);
    const engine = await Engine.open({
      phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded: loadPlan(fx.plan), mode: 'test', operator: 'tester',
      confirm: (r) => Promise.resolve({ confirmed: true, method: 'typed', by: 'tester', typedText: r.object }),
    });
    const ac = new AbortController();
    engine.on((e) => {
      // stop as soon as a batch is committed (its progress is reported after the commit)
      if (e.type === 'step-progress' && e.stepId.startsWith('copy:') && e.progress.done > 0) ac.abort();
    });
    const o = await engine.run({ phases: [3], signal: ac.signal, only: ['copy:public.rental'] });
    await engine.close();
    expect(o.status, o.message).toBe('aborted');
    const copied = (await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.rental_partitioned`)).rows[0]!.n;
    expect(copied).toBeGreaterThan(0);
    expect(copied).toBeLessThan(inv.rentals);
    await appWrites(fx, 'mid-copy');
    const withApp = await rentalInvariant(db.client);
    await rollbackAndCompare(db, fx, before);
    expect(await rentalInvariant(db.client)).toEqual(withApp);
  });

  it('after the swap (the application writes in between; nothing it wrote is lost)', async () => {
    const { db, fx } = await setup('swapped');
    const before = { snap: await takeSnapshot(db.client), dump: schemaDump(db.url) };
    const run = await runConfirming(['--plan', fx.plan, '--db', db.url]);
    expect(run.code, run.out).toBe(0);
    expect(run.confirms).toEqual(['public.rental']);
    expect(first((await db.client.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.rental'::regclass`)).rows, 'pg_class row').relkind).toBe('p');
    const id = await appWrites(fx, 'after-swap');
    const withApp = await rentalInvariant(db.client);
    expect(withApp.orphans).toBe(0);
    await rollbackAndCompare(db, fx, before);
    expect(await rentalInvariant(db.client)).toEqual(withApp);
    expect((await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.payment WHERE rental_id = $1`, [id])).rows[0]!.n).toBe(1);
  });

  it('after the drop: the old table comes back from the backup (side schema, checked), refilled from the current table', async () => {
    const { db, fx } = await setup('dropped', { retentionDays: 0 });
    const before = { snap: await takeSnapshot(db.client), dump: schemaDump(db.url) };
    const run = await runConfirming(['--plan', fx.plan, '--db', db.url]);
    expect(run.code, run.out).toBe(0);
    expect(run.confirms).toEqual(['public.rental', 'public.rental_old']);
    expect((await db.client.query<{ gone: boolean }>(`SELECT to_regclass('public.rental_old') IS NULL AS gone`)).rows[0]!.gone).toBe(true);
    const id = await appWrites(fx, 'after-drop');
    const withApp = await rentalInvariant(db.client);
    const rb = await rollbackAndCompare(db, fx, before);
    expect(rb.confirms).toContain('public.rental');
    expect(rb.out).toMatch(/restored into schema pgshift_side — only this table/);
    expect(rb.out).toMatch(/file written \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    expect(rb.out).not.toMatch(/pg_restore --clean/);
    expect(await rentalInvariant(db.client)).toEqual(withApp);
    expect((await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.rental WHERE rental_id = $1`, [id])).rows[0]!.n).toBe(1);
    expect((await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'pgshift_side'`)).rows[0]!.n).toBe(0);
  });
});
