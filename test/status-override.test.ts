import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { main } from '../source/cli.js';
import { Db } from '../source/db/session.js';
import { Journal } from '../source/engine/journal.js';
import { resolveConnection } from '../source/db/connection.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { captureIo } from './helpers/io.js';

/** An override (a refused step confirmed anyway, e.g. an early drop with --force-retention) reads as OVERRIDE in status. */
describe('pgshift status shows overrides', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('status_override');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('marks the override and says what it overrode; a plain confirmation stays "confirmed"', async () => {
    const d = new Db(resolveConnection(db.url), 'pgshift-test', 2);
    try {
      const j = await Journal.open(d, { create: true });
      await j.startRun({ planName: 'p', planPath: 'p.json', checksum: 'x', operator: 'alice', host: 'h', mode: 'headless', phases: '5', version: 't' });
      await j.recordConfirmation({ stepId: 'swap:public.t', kind: 'rename', object: 'public.t', statements: ['ALTER TABLE …'], answer: 'confirmed', method: 'flag', by: 'alice' });
      await j.recordConfirmation({
        stepId: 'drop:public.t_old', kind: 'drop', object: 'public.t_old', statements: ['DROP TABLE "public"."t_old"'], answer: 'confirmed', method: 'typed', by: 'alice',
        reason: 'the retention period runs until 2026-12-07 23:58 UTC (7 days after the swap)',
      });
      await j.endRun('completed');
    } finally {
      await d.close();
    }
    const io = captureIo();
    expect(await main(['status', '--db', db.url], io)).toBe(0);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/drop\s+public\.t_old\s+OVERRIDE\s+typed\s+alice/);
    expect(text).toMatch(/rename\s+public\.t\s+confirmed\s+flag\s+alice/);
    expect(text).toContain('override: run 1 drop public.t_old by alice despite: the retention period runs until 2026-12-07 23:58 UTC (7 days after the swap)');
  });
});
