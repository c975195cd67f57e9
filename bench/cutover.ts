/**
 * Cut-over benchmark: embedded PostgreSQL, demo data (200,000 petri observations), phases 2-3 stood in for by the
 * fixture (bench/lib/swap-fixture.ts), real phase 4, then the real swap step while a writer inserts continuously:
 * how long the exclusive lock was held and the longest wait any writer statement saw. Again with a blocker holding
 * ACCESS SHARE on the table for 10 s: the swap retries under lock_timeout, and writers must never wait much more
 * than lock_timeout per attempt.   npm run bench:cutover [-- --json] [-- --rows N]
 *
 * With `--load pgbench`: the cut-over of pgbench_accounts under pgbench's tpcb-like load, driven through the CLI, with
 * the swap-back, beside the same load without a migration (bench/lib/pgbench-cutover.ts; issue 9's targets).
 * With `--load pgbench --calibrate`: the same load twice with no migration, to see how often the latency target's
 * ratio exceeds 1.5 by chance (bench/lib/pgbench-calibrate.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbedded } from '../source/demo/embedded.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import { Artifacts } from '../source/engine/artifacts.js';
import { buildFixture, examplePlan, writeIntegrityReport } from '../test/fixtures/swap.js';
import { PHASE_REGISTRY } from '../phases/index.js';

const loadArg = process.argv.indexOf('--load');
if (loadArg > 0) {
  const kind = process.argv[loadArg + 1];
  if (kind !== 'pgbench') {
    console.error(`--load expects "pgbench", got "${kind ?? ''}"`);
    process.exit(2);
  }
  /** options parsed (a bad one: its message, exit 2), then the mode run; its result is the exit code */
  const runMode = async <O>(parse: (argv: readonly string[]) => O, run: (o: O) => Promise<number>): Promise<never> => {
    let o: O;
    try {
      o = parse(process.argv.slice(2));
    } catch (e) {
      console.error((e as Error).message);
      process.exit(2);
    }
    process.exit(await run(o));
  };
  if (process.argv.includes('--calibrate')) {
    const { parseCalibrateOptions, runCalibrate } = await import('./lib/pgbench-calibrate.js');
    await runMode(parseCalibrateOptions, runCalibrate);
  }
  const { parsePgbenchOptions, runPgbenchCutover } = await import('./lib/pgbench-cutover.js');
  await runMode(parsePgbenchOptions, runPgbenchCutover);
}

const json = process.argv.includes('--json');
const rowsArg = process.argv.indexOf('--rows');
const ROWS = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : 200_000;
const LOCK_TIMEOUT = 1000;

async function scenario(baseUrl: string, name: string, blockerMs: number): Promise<{ lockHeldMs: number; maxWriterWaitMs: number; attempts: number; writes: number; errors: string[] }> {
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(baseUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await createDemoDatabase(c, { rows: ROWS });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-bench-'));
  const plan = JSON.parse(fs.readFileSync(examplePlan(dir), 'utf8')) as { partition: unknown[] };
  const loaded = loadPlan(examplePlan(dir, { partition: [plan.partition[0]], locks: { timeoutMs: LOCK_TIMEOUT, attempts: 40, backoffMs: 100, maxBackoffMs: 1000 } }));
  const engine = await Engine.open({ phases: PHASE_REGISTRY, conn: resolveConnection(url), loaded, mode: 'bench', operator: 'bench', confirm: (r) => Promise.resolve({ confirmed: r.kind === 'rename', method: 'yes', by: 'bench' }) });
  for (const t of loaded.tables) await buildFixture(engine, t);
  await writeIntegrityReport(engine, loaded.tables);
  const p4 = await engine.run({ phases: [4] });
  if (p4.status !== 'completed') throw new Error(`phase 4: ${p4.message}`);
  // batch mode: the writer writes to the images table (FK follows the swap) and reads the observations
  const writer = new pg.Client({ connectionString: url });
  await writer.connect();
  const ids = (await writer.query<{ observation_id: string; created_at: Date }>(`SELECT observation_id, created_at FROM public.petri_observations ORDER BY observation_id LIMIT 500`)).rows;
  let stop = false;
  let maxWait = 0;
  let writes = 0;
  const errors: string[] = [];
  const writing = (async () => {
    for (let i = 0; !stop; i++) {
      const r = ids[i % ids.length]!;
      const t0 = performance.now();
      try {
      await writer.query(`INSERT INTO public.petri_observation_images (observation_id, observation_created_at, url) VALUES ($1, $2, 'bench')`, [r.observation_id, r.created_at]);
      await writer.query(`SELECT count(*) FROM public.petri_observations WHERE observation_id = $1`, [r.observation_id]);
      } catch (e) {
        errors.push(String((e as Error).message));
      }
      maxWait = Math.max(maxWait, performance.now() - t0);
      writes++;
      await new Promise((res) => setTimeout(res, 5));
    }
  })();
  let blocker: pg.Client | null = null;
  if (blockerMs) {
    blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM public.petri_observations');
    setTimeout(() => void blocker!.query('COMMIT'), blockerMs);
  }
  await new Promise((r) => setTimeout(r, 300));
  const o = await engine.run({ phases: [5], only: ['swap:public.petri_observations'] });
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await writing;
  if (o.status !== 'completed') throw new Error(`swap: ${o.message}`);
  const a = await engine.journal.getArtifact(Artifacts.swap(loaded.tables[0]!));
  if (!a) throw new Error('the swap left no journal record');
  await writer.end();
  await blocker?.end();
  await engine.close();
  await c.end();
  fs.rmSync(dir, { recursive: true, force: true });
  return { lockHeldMs: a.lockHeldMs, maxWriterWaitMs: Math.round(maxWait), attempts: a.attempts, writes, errors };
}

const server = await startEmbedded({});
try {
  const a = await scenario(server.url, 'bench_cutover_a', 0);
  const b = await scenario(server.url, 'bench_cutover_b', 10_000);
  const out = { lock_held_ms: a.lockHeldMs, max_writer_wait_ms: a.maxWriterWaitMs, lock_held_ms_blocker: b.lockHeldMs, max_writer_wait_ms_blocker: b.maxWriterWaitMs, writer_errors: a.errors.length + b.errors.length };
  if (json) console.log(JSON.stringify(out));
  else {
    console.log(`cut-over, ${ROWS.toLocaleString('en-US')} rows, lock_timeout ${LOCK_TIMEOUT} ms`);
    console.log(`  no blocker:  exclusive lock held ${a.lockHeldMs} ms (1 attempt: ${a.attempts}), longest writer statement pair ${a.maxWriterWaitMs} ms over ${a.writes} writes, ${a.errors.length} writer errors ${a.errors.slice(0, 2).join('; ')}`);
    console.log(`  10 s blocker: exclusive lock held ${b.lockHeldMs} ms after ${b.attempts} attempts, longest writer statement pair ${b.maxWriterWaitMs} ms over ${b.writes} writes, ${b.errors.length} writer errors ${b.errors.slice(0, 2).join('; ')}`);
  }
} finally {
  await server.stop();
}
