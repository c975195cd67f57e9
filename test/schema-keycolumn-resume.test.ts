import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import type { EngineEvent } from '../source/engine/types.js';
import { freshDatabase, type FreshDb, dropRoles } from './helpers/db.js';
import { createRentalFixture, type RentalFixture } from './fixtures/rental-schema.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { first } from '../source/db/session.js';

/** The key column's fill is resumable: stopped after a committed batch, the next run continues from its checkpoint. */
describe('addKeyColumns: the keyset fill stops and resumes from its checkpoint', () => {
  let db: FreshDb;
  let dir: string;
  let fx: RentalFixture;
  beforeAll(async () => {
    db = await freshDatabase('schema_keycol_resume');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-keycol-resume-'));
    fx = await createRentalFixture(db.client, db.url, dir, { withKeyColumn: false, batchRows: 100, plan: { addKeyColumns: ['public.payment'] } });
  });
  afterAll(async () => {
    await db?.drop();
    await dropRoles(fx.app);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const open = () => Engine.open({
    phases: PHASE_REGISTRY, conn: resolveConnection(db.url), loaded: loadPlan(fx.plan), mode: 'test', operator: 'tester',
    confirm: (r) => Promise.resolve({ confirmed: true, method: 'typed', by: 'tester', typedText: r.object }),
  });
  const stepId = 'key-column:public.rental:public.payment';

  it('stopped after the first committed batch, then resumed: every payment filled once, the application writing in between', async () => {
    let engine = await open();
    const ac = new AbortController();
    engine.on((e) => { if (e.type === 'step-progress' && e.stepId === stepId && e.progress.done > 0) ac.abort(); });
    await engine.run({ phases: [2], signal: ac.signal });
    await engine.close();
    const cp = await db.client.query<{ n: number; position: { done: boolean } }>(`SELECT rows_done::int AS n, position FROM pgshift.checkpoints WHERE step_id = $1`, [stepId]);
    expect(first(cp.rows, 'checkpoint').n).toBeGreaterThan(0);
    expect(first(cp.rows, 'checkpoint').n).toBeLessThan(1500);
    expect(first(cp.rows, 'checkpoint').position.done).toBe(false);
    const filled = (await db.client.query<{ n: number }>(`SELECT count(rental_date)::int AS n FROM public.payment`)).rows[0]!.n;
    expect(filled).toBe(first(cp.rows, 'checkpoint').n); // every row read so far has a rental, so every row read was filled

    // the application inserts a payment meanwhile (as its own role): the trigger fills it
    const c = new pg.Client({ connectionString: fx.appUrl });
    await c.connect();
    const r = await c.query<{ rental_date: Date | null }>(`INSERT INTO public.payment (customer_id, rental_id, amount, payment_date) VALUES (2, 10, 1.5, '2022-03-30 10:00+00') RETURNING rental_date`);
    await c.end();
    expect(first(r.rows, 'inserted payment').rental_date).not.toBeNull();

    engine = await open();
    const events: EngineEvent[] = [];
    engine.on((e) => events.push(e));
    const o = await engine.run({ phases: [2] });
    await engine.close();
    expect(o.status, o.message).toBe('completed');
    const logs = events.filter((e) => e.type === 'step-log' && e.stepId === stepId).map((e) => (e as { message: string }).message);
    expect(logs).toContainEqual(expect.stringMatching(/^resuming the fill of public\.payment\.rental_date after \d+ rows$/));
    const wrong = await db.client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.payment p LEFT JOIN public.rental r USING (rental_id) WHERE p.rental_date IS DISTINCT FROM r.rental_date`,
    );
    expect(wrong.rows[0]!.n).toBe(0);
    const done = await db.client.query<{ n: number; position: { done: boolean } }>(`SELECT rows_done::int AS n, position FROM pgshift.checkpoints WHERE step_id = $1`, [stepId]);
    expect(first(done.rows, 'checkpoint').position.done).toBe(true);
    expect(first(done.rows, 'checkpoint').n).toBe(1501);
  });
});
