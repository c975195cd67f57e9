import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { Engine } from '../source/engine/engine.js';
import type { Phase } from '../source/engine/types.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import { exitFor } from '../source/engine/errors.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { tmpDir } from './fixtures/copy-helpers.js';

/** The engine runs the phases it is given (the composition root passes the registry): it imports none itself. */
describe('engine: the phase registry comes from the caller', () => {
  let db: FreshDb;
  let dir: string;
  beforeAll(async () => {
    db = await freshDatabase('engine_registry');
    dir = tmpDir('registry');
  });
  afterAll(async () => {
    await db.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('runs a registry of one phase; a phase the registry lacks fails the run, naming what it has', async () => {
    const file = path.join(dir, 'plan.json');
    fs.writeFileSync(file, JSON.stringify({ version: 1, name: 'registry test', backup: { directory: path.join(dir, 'backups') } }));
    const probe: Phase = {
      id: 1,
      name: 'Probe',
      plan() {
        return Promise.resolve([{
          id: 'probe:create', phase: 1, title: 'Create the probe table',
          preview() { return Promise.resolve(['CREATE TABLE public.probe (id int)']); },
          async run(ctx) {
            await ctx.db.ddl(['CREATE TABLE public.probe (id int)'], { stepId: ctx.stepId });
            return { status: 'done', summary: 'created' };
          },
        }]);
      },
    };
    const engine = await Engine.open({
      phases: [probe], conn: resolveConnection(db.url), loaded: loadPlan(file), mode: 'test',
      confirm: () => Promise.resolve({ confirmed: false, method: 'declined', by: 'test' }),
    });
    try {
      const ok = await engine.run({ phases: [1] });
      expect(ok.status).toBe('completed');
      expect(exitFor(ok)).toBe(0);
      expect((await db.client.query<{ ok: boolean }>(`SELECT to_regclass('public.probe') IS NOT NULL AS ok`)).rows[0]!.ok).toBe(true);
      const step = await db.client.query<{ status: string }>(`SELECT status FROM pgshift.steps WHERE step_id = 'probe:create'`);
      expect(step.rows.map((r) => r.status)).toEqual(['done']);
      const missing = await engine.run({ phases: [2] });
      expect(missing.status).toBe('failed');
      expect(missing.message).toBe('no phase module for 2 (the registry has 1)');
      expect(exitFor(missing)).toBe(1);
    } finally {
      await engine.close();
    }
  });
});
