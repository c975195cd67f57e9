import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { main } from '../source/cli.js';
import { diffSnapshots, takeSnapshot, type CatalogSnapshot } from '../source/snapshot.js';
import { freshDatabase, type FreshDb, dropRoles } from './helpers/db.js';
import { captureIo } from './helpers/io.js';
import { createRentalFixture, rentalInvariant, type RentalFixture } from './fixtures/rental-schema.js';
import { first } from '../source/db/session.js';

/**
 * The "done when" of issue 10 on the rental fixture: `payment` (partitioned, FKs on its partitions) has no
 * rental_date at the start; with "addKeyColumns": ["public.payment"] the full run exits 0, the FK still refuses an
 * orphan after the swap (MATCH FULL), the application's insert that does not set the new column succeeds, and after
 * the drop the rollback exits 0 with pg_dump --schema-only equal to the one from before the migration.
 */
describe('a referencing table without the partition key: pgshift adds, fills and keeps the key column', () => {
  let db: FreshDb;
  let dir: string;
  let fx: RentalFixture;
  let snap0: CatalogSnapshot;
  let dump0: string;

  const schemaDump = () => {
    const u = new URL(db.url);
    return execFileSync('pg_dump', ['--schema-only', '--exclude-schema', 'pgshift', '--dbname', db.name], {
      env: { ...process.env, PGHOST: u.hostname, PGPORT: u.port, PGUSER: decodeURIComponent(u.username), PGPASSWORD: decodeURIComponent(u.password) }, encoding: 'utf8',
    }).replace(/^-- (Dumped|Started|Completed).*$/gm, '').replace(/^\\(un)?restrict .*$/gm, '');
  };
  const asApp = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: fx.appUrl });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };

  beforeAll(async () => {
    db = await freshDatabase('schema_keycol');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-keycol-'));
    fx = await createRentalFixture(db.client, db.url, dir, { withKeyColumn: false, retentionDays: 0, batchRows: 300, plan: { addKeyColumns: ['public.payment'] } });
    snap0 = await takeSnapshot(db.client);
    dump0 = schemaDump();
  });
  afterAll(async () => {
    await db?.drop();
    await dropRoles(fx.app);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('without the option, pgshift plan refuses naming the partitioned parent and the option (exit 2)', async () => {
    const p = JSON.parse(fs.readFileSync(fx.plan, 'utf8')) as { partition: [{ addKeyColumns?: unknown[] }] };
    p.partition[0].addKeyColumns = [];
    const file = path.join(dir, 'no-option.json');
    fs.writeFileSync(file, JSON.stringify(p));
    const io = captureIo();
    expect(await main(['plan', '--plan', file, '--db', db.url], io), io.text()).toBe(2);
    const problems = io.stderr.filter((l) => l.startsWith('  ✗ '));
    expect(problems).toHaveLength(1); // one line for the three partitions' FKs, not one per partition
    expect(problems[0]).toMatch(/inbound FK from public\.payment: 3 FKs \(payment_p2022_01_rental_id_fkey, payment_p2022_02_rental_id_fkey, …\)/);
    expect(problems[0]).toMatch(/"addKeyColumns": \["public\.payment"\] .*on the partitioned parent public\.payment: PostgreSQL refuses ADD COLUMN on a partition/);
    expect(problems[0]!.length).toBeLessThan(700);
  });

  it('the full run with addKeyColumns exits 0; the FK keeps refusing orphans; the application inserts without the new column', async () => {
    const before = await rentalInvariant(db.client);
    const dry = captureIo();
    expect(await main(['plan', '--plan', fx.plan, '--db', db.url], dry), dry.text()).toBe(0);
    expect(dry.text()).toMatch(/adds public\.payment\.rental_date \(timestamp with time zone\) holding the rental_date of the public\.rental row each \(rental_id\) references/);
    const io = captureIo();
    const code = await main(['--headless', '--plan', fx.plan, '--db', db.url, '--confirm', 'public.rental', '--confirm', 'public.rental_old'], io);
    const out = io.text();
    expect(code, out).toBe(0);
    expect(out).toMatch(/✓ key-column:public\.rental:public\.payment {2}done: public\.payment\.rental_date added and filled: \d[\d,]* rows read, 1,500 set/);
    expect(out).toMatch(/behaviour change: .*re-created MATCH FULL \(was MATCH SIMPLE\) because rental_date is nullable/);
    expect(out).toMatch(/behaviour change: .*updating rental_date of a public\.rental row that is referenced now fails/);
    // said in the dry run and in the swap's confirmation, before the swap
    expect(dry.text()).toMatch(/-- behaviour change: public\.payment_p2022_01\.payment_p2022_01_rental_id_fkey: re-created MATCH FULL/);
    expect(out).toMatch(/impact: behaviour change: the primary key of public\.rental becomes \(rental_id, rental_date\) — \(rental_id\) alone is no longer unique/);
    expect(out).toMatch(/impact: behaviour change: public\.payment_p2022_03\.payment_p2022_03_rental_id_fkey: ON UPDATE NO ACTION \/ ON DELETE SET NULL kept/);
    expect(await rentalInvariant(db.client)).toEqual(before);
    // the materialized view created WITH NO DATA was re-created at the swap, still unpopulated (nothing ran under the lock)
    const mv = await db.client.query<{ p: boolean }>(`SELECT relispopulated AS p FROM pg_class WHERE oid = 'public.rental_by_month'::regclass`);
    expect(first(mv.rows, 'pg_class row').p).toBe(false);
    expect(out).toMatch(/materialized view public\.rental_by_month was never populated \(WITH NO DATA\): the swap re-creates it WITH NO DATA/);
    // every payment with a rental carries its rental's date
    const wrong = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM payment p JOIN rental r USING (rental_id) WHERE p.rental_date IS DISTINCT FROM r.rental_date`);
    expect(wrong.rows[0]!.n).toBe(0);
    const fks = await db.client.query<{ t: string; def: string; v: boolean }>(
      `SELECT conrelid::regclass::text AS t, pg_get_constraintdef(oid) AS def, convalidated AS v FROM pg_constraint
        WHERE contype = 'f' AND confrelid = 'public.rental'::regclass AND conparentid = 0 ORDER BY 1`,
    );
    expect(fks.rows.map((r) => r.t)).toEqual(['payment_p2022_01', 'payment_p2022_02', 'payment_p2022_03']);
    for (const r of fks.rows) {
      expect(r.def).toBe('FOREIGN KEY (rental_id, rental_date) REFERENCES rental(rental_id, rental_date) MATCH FULL ON DELETE SET NULL');
      expect(r.v).toBe(true);
    }
    await asApp(async (c) => {
      // an orphan (unknown rental_id, no rental_date) is refused, as before the migration
      await expect(c.query(`INSERT INTO payment (customer_id, rental_id, amount, payment_date) VALUES (1, 999999, 1.00, '2022-02-02 10:00+00')`)).rejects.toThrow(/violates foreign key constraint/);
      // the application's insert that knows nothing of rental_date succeeds: the trigger fills it
      const r = await c.query<{ rental_id: number }>(`INSERT INTO rental (rental_date, customer_id) VALUES ('2022-03-10 09:00+00', 3) RETURNING rental_id`);
      const p = await c.query<{ rental_date: Date }>(`INSERT INTO payment (customer_id, rental_id, amount, payment_date) VALUES (3, $1, 2.99, '2022-03-10 10:00+00') RETURNING rental_date`, [first(r.rows, 'inserted rental').rental_id]);
      expect(new Date(first(p.rows, 'inserted payment').rental_date).toISOString()).toBe('2022-03-10T09:00:00.000Z');
      // a payment without a rental still works
      await c.query(`INSERT INTO payment (customer_id, rental_id, amount, payment_date) VALUES (3, NULL, 0.99, '2022-03-11 10:00+00')`);
      // the behaviour change that was announced: the partition key of a referenced rental cannot change any more
      await expect(c.query(`UPDATE rental SET rental_date = rental_date + interval '40 days' WHERE rental_id = $1`, [first(r.rows, 'inserted rental').rental_id])).rejects.toThrow(/foreign key|partition/);
    });
  });

  it('after the drop the rollback exits 0: pg_dump --schema-only and the catalog equal those from before, the application rows kept', async () => {
    expect((await db.client.query<{ gone: boolean }>(`SELECT to_regclass('public.rental_old') IS NULL AS gone`)).rows[0]!.gone).toBe(true);
    const withApp = await rentalInvariant(db.client);
    let confirms: string[] = [];
    let out = '';
    let code = -1;
    for (let i = 0; i < 10; i++) {
      const io = captureIo();
      code = await main(['--headless', '--rollback', '--plan', fx.plan, '--db', db.url, ...confirms.flatMap((x) => ['--confirm', x])], io);
      out += io.text() + '\n';
      const m = code === 3 ? /pass --confirm (\S+)$/.exec(io.stderr.at(-1) ?? '') : null;
      if (!m) break;
      confirms = [...confirms, m[1]!];
    }
    expect(code, out).toBe(0);
    expect(out).toMatch(/ALTER TABLE "public"\."payment" DROP COLUMN "rental_date"/);
    expect(diffSnapshots(snap0, await takeSnapshot(db.client))).toEqual([]);
    expect(schemaDump()).toBe(dump0);
    expect(await rentalInvariant(db.client)).toEqual(withApp);
    const left = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgshift' AND p.proname LIKE 'fill_key_%'`);
    expect(left.rows[0]!.n).toBe(0);
  });
});
