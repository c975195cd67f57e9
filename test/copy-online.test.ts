import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import path from 'node:path';
import fs from 'node:fs';
import pg from 'pg';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Db, first } from '../source/db/session.js';
import { resolveConnection } from '../source/db/connection.js';
import { Journal } from '../source/engine/journal.js';
import { loadPlan } from '../source/plan/load.js';
import { captureInstalled, captureLag, drainCapture, findCapture, removeCapture } from '../source/copy/online.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { PETRI_COLS, PETRI_ENTRY, contentHash, createPetriTarget, openEngine, tmpDir, writePlan } from './fixtures/copy-helpers.js';

const ROWS = 20_000;

/**
 * A concurrent writer on its own connection: inserts (some beyond the copy's upper bound), updates of values,
 * updates that move a row to another partition (created_at changes month), primary-key updates, deletes.
 */
function startWriter(url: string) {
  const c = new pg.Client({ connectionString: url, application_name: 'app-writer' });
  let stop = false;
  const counts = { insert: 0, update: 0, move: 0, pk: 0, delete: 0, errors: 0 };
  const errors: string[] = [];
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const done = (async () => {
    await c.connect();
    let i = 0;
    while (!stop) {
      i++;
      const op = rnd();
      try {
        if (op < 0.3) {
          const ts = rnd() < 0.2 ? `'2025-11-30 23:59:59+00'::timestamptz - interval '1 second' * ${Math.floor(rnd() * 1000)}` : `'2024-01-01'::timestamptz + interval '1 hour' * ${Math.floor(rnd() * 16000)}`;
          const r = await c.query(
            `INSERT INTO public.petri_observations (program_id, site_id, petri_code, growth_index, created_at)
             SELECT program_id, site_id, 'W-' || $1, 12.5, ${ts} FROM public.sites ORDER BY site_code OFFSET $2 LIMIT 1`,
            [i, Math.floor(rnd() * 200)],
          );
          counts.insert += r.rowCount ?? 0;
        } else if (op < 0.55) {
          await c.query(`UPDATE public.petri_observations SET growth_index = growth_index + 1, notes = 'edited ' || $1
                          WHERE observation_id = (SELECT observation_id FROM public.petri_observations TABLESAMPLE SYSTEM (1) LIMIT 1)`, [i]);
          counts.update++;
        } else if (op < 0.75) {
          // move to another month: another partition of the new table (rows without images: an image keeps the
          // observation's created_at, and the integrity report rightly counts a moved row with images as an orphan)
          const r = await c.query(`UPDATE public.petri_observations SET created_at = created_at + interval '40 days'
                          WHERE observation_id = (SELECT p.observation_id FROM public.petri_observations p TABLESAMPLE SYSTEM (1) WHERE p.created_at < '2025-10-01'
                             AND NOT EXISTS (SELECT 1 FROM public.petri_observation_images i WHERE i.observation_id = p.observation_id) LIMIT 1)`);
          counts.move += r.rowCount ?? 0;
        } else if (op < 0.8) {
          // a key no image references (the images' FK has no ON UPDATE action: the application's own rule refuses it)
          const r = await c.query(`UPDATE public.petri_observations SET observation_id = gen_random_uuid()
                          WHERE observation_id = (SELECT p.observation_id FROM public.petri_observations p TABLESAMPLE SYSTEM (1)
                            WHERE NOT EXISTS (SELECT 1 FROM public.petri_observation_images i WHERE i.observation_id = p.observation_id) LIMIT 1)`);
          counts.pk += r.rowCount ?? 0;
        } else {
          const r = await c.query(`DELETE FROM public.petri_observations WHERE observation_id = (SELECT observation_id FROM public.petri_observations TABLESAMPLE SYSTEM (1) LIMIT 1)`);
          counts.delete += r.rowCount ?? 0;
        }
      } catch (e) {
        counts.errors++;
        if (errors.length < 5) errors.push(`${(e as { code?: string }).code ?? '?'}: ${(e as Error).message}`);
      }
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await c.end();
  })();
  return {
    counts,
    errors,
    async stop() {
      stop = true;
      await done;
    },
  };
}

describe('phase 3 online copy: change capture and replay beside a live writer', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('copy_online');
    dir = tmpDir('copy-online');
    await createDemoDatabase(db.client, { rows: ROWS });
    await createPetriTarget(db.client);
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('inserts, updates (also across partitions and of the pk) and deletes during and after the copy all reach the new table', async () => {
    const file = writePlan(path.join(dir, 'a'), { partition: [PETRI_ENTRY], copy: { mode: 'online', batchRows: 500, pauseMs: 15 } });
    const writer = startWriter(db.url);
    await new Promise((r) => setTimeout(r, 200)); // changes before the capture exists: the copy sees them
    const o = await openEngine(db.url, file);
    try {
      const out = await o.engine.run({ phases: [3], only: ['copy:public.petri_observations'] });
      expect(out.status, o.logs().join('\n')).toBe('completed');
      // keep writing after the copy: these wait in the log
      await new Promise((r) => setTimeout(r, 500));
      // the integrity report beside the live writer: lag is not an error
      const rep = await o.engine.run({ phases: [3], only: ['verify:integrity'] });
      const art = await db.client.query<{ value: unknown }>(`SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`);
      expect(rep.status, JSON.stringify(art.rows[0]?.value, null, 1)).toBe('completed');
    } finally {
      await writer.stop();
      await o.engine.close();
    }
    const c = writer.counts;
    // not one application statement failed beside the copy, its capture and its replay
    expect(writer.errors).toEqual([]);
    expect(c.errors).toBe(0);
    expect(c.insert).toBeGreaterThan(50);
    expect(c.move).toBeGreaterThan(20);
    expect(c.pk).toBeGreaterThan(3);
    expect(c.delete).toBeGreaterThan(20);
    const logs = o.logs().join('\n');
    expect(logs).toMatch(/change capture installed and committed BEFORE the first batch/);
    expect(logs).toMatch(/replaying the change log: [\d,]+ changes captured during the copy/);
    // the capture was committed before the first batch ran
    const order = await db.client.query<{ trig: string | null; batch: string | null }>(
      `SELECT min(id) FILTER (WHERE sql LIKE '%CREATE TRIGGER "pgshift_capture" %') AS trig, min(id) FILTER (WHERE sql LIKE '-- batch:%') AS batch FROM pgshift.statements`,
    );
    expect(Number(order.rows[0]!.trig)).toBeLessThan(Number(order.rows[0]!.batch));

    // phase 5's swap: lock the source, drain the rest inside that transaction
    const plan = loadPlan(file);
    const t = plan.tables[0]!;
    const pdb = new Db(resolveConnection(db.url), 'pgshift-test');
    try {
      const journal = await Journal.open(pdb, { create: false });
      expect(await captureInstalled(pdb, t)).toBe(true);
      const cap = await findCapture(pdb, t);
      // the background catch-up may have applied all the writer's changes before it stopped: three more, made now
      // (the capture outlives the engine), so the drain under the lock surely has work
      await db.client.query(`UPDATE public.petri_observations SET growth_index = growth_index + 1 WHERE observation_id IN (SELECT observation_id FROM public.petri_observations ORDER BY observation_id LIMIT 3)`);
      const pending = await captureLag(pdb, cap!);
      expect(pending).toBeGreaterThanOrEqual(3);
      const applied = await pdb.tx(async (tx) => {
        await tx.query(`LOCK TABLE public.petri_observations IN EXCLUSIVE MODE`);
        return drainCapture(tx, t, journal);
      });
      expect(applied).toBe(pending);
      expect(await captureLag(pdb, cap!)).toBe(0);
      const a = await contentHash(db.client, 'public.petri_observations', PETRI_COLS, 'observation_id');
      const b = await contentHash(db.client, 'public.petri_observations_partitioned', PETRI_COLS, 'observation_id');
      expect(a.n).toBe(ROWS + c.insert - c.delete);
      expect(b).toEqual(a);
      // TRUNCATE would bypass the capture: refused while it is on
      await expect(db.client.query(`TRUNCATE public.petri_observations CASCADE`)).rejects.toThrow(/is being migrated \(its changes are captured for the new table\); TRUNCATE would bypass the change capture/);
      await removeCapture(pdb, t, null);
      expect(await captureInstalled(pdb, t)).toBe(false);
      const left = await db.client.query(
        `SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgshift_capture%')::int AS trig,
                (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'pgshift' AND proname LIKE 'capture\\_public%')::int AS fn,
                (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgshift' AND relname LIKE 'log\\_public%')::int AS log`,
      );
      expect(left.rows[0]).toEqual({ trig: 0, fn: 0, log: 0 });
      expect(await pdb.tx((tx) => drainCapture(tx, t, journal))).toBe(0); // no capture: a no-op
    } finally {
      await pdb.close();
    }
    const rep = await db.client.query<{ value: { pass: boolean } }>(`SELECT value FROM pgshift.artifacts WHERE key = 'integrity-report'`);
    expect(first(rep.rows, 'integrity report').value.pass).toBe(true);
  });
});
