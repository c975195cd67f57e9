import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import pg from 'pg';
import { freshDatabase, type FreshDb } from './helpers/db.js';
import { openEngine, tmpDir, writePlan, type Opened } from './fixtures/copy-helpers.js';
import { tick } from './ui/harness.js';

/** What the wizard asks the engine for instead of writing the journal itself: skip, signal a backend, where a run stopped. */
describe('engine: the front ends ask it to skip, signal a backend, say where the last run stopped', () => {
  let db: FreshDb;
  let o: Opened;
  const extra: pg.Client[] = [];
  const dir = tmpDir('front-end');
  beforeAll(async () => {
    db = await freshDatabase('engine_front_end');
    o = await openEngine(db.url, writePlan(dir, {}), { backup: false });
  });
  afterAll(async () => {
    await o?.engine.close();
    // a terminated client may never finish end(): do not wait on it for long
    for (const c of extra) await Promise.race([c.end().catch(() => {}), tick(500)]);
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function connect(app: string): Promise<{ c: pg.Client; pid: number }> {
    const c = new pg.Client({ connectionString: db.url, application_name: app });
    c.on('error', () => {});
    await c.connect();
    extra.push(c);
    return { c, pid: (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid };
  }
  const confirmations = async () => (await db.client.query<Record<string, unknown>>(
    `SELECT step_id, kind, object, statements, answer, method, confirmed_by FROM pgshift.confirmations WHERE step_id = 'monitor' ORDER BY id`,
  )).rows;

  it('lastRunPosition: null before the first run', async () => {
    expect(await o.engine.lastRunPosition()).toBeNull();
  });

  it('skipStep journals a run of its own (wizard-skip) with the step skipped, its reason and who; stepStates reads it back', async () => {
    const skip = await o.engine.skipStep({ id: 'report:fk-dependencies', phase: 1, title: 'Foreign-key dependencies' }, '  reviewed in CHG-7  ');
    expect(skip).toEqual({ skippedBy: 'tester', reason: 'reviewed in CHG-7' });
    const runs = await db.client.query(`SELECT run_id::int, operator, mode, phases, status, message, ended_at IS NOT NULL AS ended FROM pgshift.runs`);
    expect(runs.rows).toEqual([{ run_id: 1, operator: 'tester', mode: 'wizard-skip', phases: '1', status: 'completed', message: 'operator skipped report:fk-dependencies: reviewed in CHG-7', ended: true }]);
    const steps = await db.client.query(`SELECT run_id::int, step_id, phase, title, status, summary, result FROM pgshift.steps`);
    expect(steps.rows).toEqual([{
      run_id: 1, step_id: 'report:fk-dependencies', phase: '1', title: 'Foreign-key dependencies', status: 'skipped',
      summary: 'skipped by tester: reviewed in CHG-7', result: { skippedBy: 'tester', reason: 'reviewed in CHG-7' },
    }]);
    const state = await db.client.query(`SELECT step_id, status, run_id::int, result FROM pgshift.step_state`);
    expect(state.rows).toEqual([{ step_id: 'report:fk-dependencies', status: 'skipped', run_id: 1, result: { skippedBy: 'tester', reason: 'reviewed in CHG-7' } }]);
    expect((await o.engine.stepStates()).get('report:fk-dependencies')).toEqual({ status: 'skipped', runId: 1, operatorSkip: { skippedBy: 'tester', reason: 'reviewed in CHG-7' } });
    // the position of that last run: completed, in the skipped step of phase 1
    expect(await o.engine.lastRunPosition()).toEqual({ runId: 1, status: 'completed', open: false, step: { stepId: 'report:fk-dependencies', phase: 1, status: 'skipped' } });

    // another operator's name, when given; an empty reason writes nothing
    await o.engine.skipStep({ id: 'verify', phase: 'rollback', title: 'Verify' }, 'done by hand', 'alice');
    expect((await db.client.query(`SELECT operator, summary FROM pgshift.runs JOIN pgshift.steps USING (run_id) WHERE run_id = 2`)).rows)
      .toEqual([{ operator: 'alice', summary: 'skipped by alice: done by hand' }]);
    await expect(o.engine.skipStep({ id: 'x', phase: 1, title: 'X' }, '   ')).rejects.toThrow(/a reason is required/);
    expect((await db.client.query(`SELECT count(*)::int AS n FROM pgshift.runs`)).rows[0]).toEqual({ n: 2 });
    expect((await o.engine.stepStates()).get('verify')?.operatorSkip).toEqual({ skippedBy: 'alice', reason: 'done by hand' });
  });

  it('lastRunPosition: a run that never ended is open, in the step it started last', async () => {
    // a killed run, as the journal keeps it: started, a step running, never ended
    await db.client.query(`INSERT INTO pgshift.runs (run_id, operator, host, mode, phases) VALUES (10, 'bob', 'h', 'wizard', '3')`);
    await db.client.query(`INSERT INTO pgshift.steps (run_id, step_id, phase, title, status, started_at) VALUES (10, 'snapshot:catalog', '3', 'Snapshot', 'done', now() - interval '1 minute'), (10, 'copy:public.t', '3', 'Copy', 'running', now())`);
    expect(await o.engine.lastRunPosition()).toEqual({ runId: 10, status: 'running', open: true, step: { stepId: 'copy:public.t', phase: 3, status: 'running' } });
    // a run with no step yet, and a phase the wizard does not know
    await db.client.query(`INSERT INTO pgshift.runs (run_id, operator, host, mode, phases, ended_at, status) VALUES (11, 'bob', 'h', 'wizard', '3', now(), 'failed')`);
    expect(await o.engine.lastRunPosition()).toEqual({ runId: 11, status: 'failed', open: false, step: null });
    await db.client.query(`INSERT INTO pgshift.steps (run_id, step_id, phase, title, status) VALUES (11, 'x', 'other', 'X', 'failed')`);
    expect((await o.engine.lastRunPosition())?.step).toEqual({ stepId: 'x', phase: null, status: 'failed' });
  });

  it("copyCheckpoint: a copy's committed rows and the table's estimate; null without a checkpoint", async () => {
    await db.client.query(`CREATE TABLE public.t (id int)`);
    await db.client.query(`INSERT INTO public.t SELECT generate_series(1, 1000)`);
    await db.client.query(`ANALYZE public.t`);
    expect(await o.engine.copyCheckpoint('copy:public.t')).toBeNull();
    await db.client.query(`INSERT INTO pgshift.checkpoints (step_id, run_id, position, rows_done) VALUES ('copy:public.t', 10, '{}', 335)`);
    expect(await o.engine.copyCheckpoint('copy:public.t')).toEqual({ rowsDone: 335, estimatedRows: 1000 });
    await db.client.query(`INSERT INTO pgshift.checkpoints (step_id, run_id, position, rows_done) VALUES ('copy:public.gone', 10, '{}', 5)`);
    expect(await o.engine.copyCheckpoint('copy:public.gone')).toEqual({ rowsDone: 5, estimatedRows: 0 });
  });

  it('signalBackend journals the answer; declined sends nothing, confirmed cancels the query on a connection of its own', async () => {
    const { c: sleeper, pid } = await connect('app-sleeper');
    const sleeping = sleeper.query('SELECT pg_sleep(30)').then(() => null, (e: { code?: string }) => e);
    await tick(300);
    const declined = await o.engine.signalBackend('cancel', pid, { confirmed: false, method: 'declined' });
    expect(declined).toEqual({ status: 'declined', statement: `SELECT pg_cancel_backend(${pid})`, journalError: undefined });
    await tick(300);
    const still = await db.client.query<{ state: string }>(`SELECT state FROM pg_stat_activity WHERE pid = $1`, [pid]);
    expect(still.rows[0]?.state).toBe('active');

    const sent = await o.engine.signalBackend('cancel', pid, { confirmed: true, method: 'yes' });
    expect(sent).toEqual({ status: 'sent', ok: true, statement: `SELECT pg_cancel_backend(${pid})`, journalError: undefined });
    expect((await sleeping)?.code).toBe('57014'); // query_canceled
    expect(await confirmations()).toEqual([
      { step_id: 'monitor', kind: 'cancel', object: `pid ${pid}`, statements: [`SELECT pg_cancel_backend(${pid})`], answer: 'declined', method: 'declined', confirmed_by: 'tester' },
      { step_id: 'monitor', kind: 'cancel', object: `pid ${pid}`, statements: [`SELECT pg_cancel_backend(${pid})`], answer: 'confirmed', method: 'yes', confirmed_by: 'tester' },
    ]);
    // its own connection is gone again
    const own = await db.client.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pgshift-signal'`);
    expect(own.rows[0]).toEqual({ n: 0 });
  });

  it('signalBackend terminates through the sender given (the monitor connection), and reports a failed send', async () => {
    const { pid } = await connect('app-idle');
    const calls: [string, number][] = [];
    const via = new pg.Client({ connectionString: db.url });
    await via.connect();
    try {
      const sent = await o.engine.signalBackend('terminate', pid, { confirmed: true, method: 'yes' }, async (a, p) => {
        calls.push([a, p]);
        return (await via.query<{ ok: boolean }>(`SELECT pg_terminate_backend($1::int) AS ok`, [p])).rows[0]!.ok;
      });
      expect(sent).toEqual({ status: 'sent', ok: true, statement: `SELECT pg_terminate_backend(${pid})`, journalError: undefined });
      expect(calls).toEqual([['terminate', pid]]);
      // the backend is gone: PostgreSQL answers false (and warns), which is not a failure
      const gone = await o.engine.signalBackend('terminate', pid, { confirmed: true, method: 'yes' });
      expect(gone).toMatchObject({ status: 'sent', ok: false });
      const failed = await o.engine.signalBackend('cancel', pid, { confirmed: true, method: 'yes' }, () => Promise.reject(new Error('connection lost')));
      expect(failed).toEqual({ status: 'failed', error: 'connection lost', statement: `SELECT pg_cancel_backend(${pid})`, journalError: undefined });
    } finally {
      await via.end();
    }
    const rows = await confirmations();
    expect(rows.slice(-3).map((r) => [r.kind, r.answer, r.object])).toEqual([['terminate', 'confirmed', `pid ${pid}`], ['terminate', 'confirmed', `pid ${pid}`], ['cancel', 'confirmed', `pid ${pid}`]]);
    await expect(o.engine.signalBackend('cancel', -1, { confirmed: true, method: 'yes' })).rejects.toThrow(/not a backend pid/);
  });
});
