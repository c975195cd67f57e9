/**
 * Copy benchmark, all in one run on one embedded PostgreSQL with the demo data:
 *  (a) ceiling: one INSERT … SELECT of everything into a fresh partitioned target (what a single statement costs);
 *  (b) the seed's LIMIT/OFFSET loop at the same batch size, capped by time and extrapolated (each batch re-reads
 *      every earlier row, so batch time grows linearly: fitted, then summed over all batches);
 *  (c) pgshift's batch copy (the real phase-3 step through the engine, the default walk: the source's pages) at ~10,000-row batches;
 *  (d) pgshift's online copy while a writer (insert/update/move/delete, in a process of its own) runs, with the
 *      writer's p50/p99 latency against the same writer on the idle database just before; then the drain (as phase 5
 *      does it, under lock) and a content-hash check. Three times by default: the figures are the medians.
 *   npm run bench:copy -- --rows 2000000 [--json] [--batch 10000] [--offset-cap 120] [--writer-seconds 10] [--repeat 3] [--online-repeat 3] [--online-only]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startEmbedded } from '../source/demo/embedded.js';
import { createDemoDatabase } from '../source/demo/schema.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { loadPlan } from '../source/plan/load.js';
import { Db } from '../source/db/session.js';
import { Journal } from '../source/engine/journal.js';
import { drainCapture, removeCapture } from '../source/copy/online.js';
import { integrityReport } from '../source/copy/integrity.js';
import { PETRI_COLUMNS, contentHash, createPetriTarget, percentile } from './lib/copy-target.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { runBench } from './lib/main.js';
import { standInBackup } from '../test/fixtures/artifacts.js';
import { Artifacts } from '../source/engine/artifacts.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(String(process.argv[i + 1]).replace(/_/g, ''));
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} expects a positive number`);
  return v;
}
const json = process.argv.includes('--json');
const ROWS = arg('rows', 2_000_000);
const BATCH = arg('batch', 10_000);
const OFFSET_CAP_S = arg('offset-cap', 30);
/** only the online copy beside its writer (and two ceilings): for work on the online pace */
const ONLINE_ONLY = process.argv.includes('--online-only');
const SKIP_OFFSET = ONLINE_ONLY || process.argv.includes('--no-offset');
const WRITER_S = arg('writer-seconds', 10);
const REPEAT = Math.max(1, Math.round(arg('repeat', 3)));
/** how many times (d) runs: its figures are the medians */
const ONLINE_REPEAT = Math.max(1, Math.round(arg('online-repeat', 3)));
const median = (xs: readonly number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
};
const say = (s: string) => {
  if (!json) console.log(s);
  else process.stderr.write(s + '\n');
};
const secs = (ms: number) => ms / 1000;
const rate = (rows: number, s: number) => `${Math.round(rows / s).toLocaleString('en-US')} rows/s`;

interface WriterStats { ops: number; errors: number; p50: number; p99: number; max: number; lat: number[]; at: number[] }

/**
 * The application writer (bench/lib/writer.ts) in a process of its own, as an application is: in this process its
 * latencies would include pgshift's own JavaScript (the engine runs here), up to ~1 ms at p99 of event-loop delay.
 */
function startWriter(url: string) {
  const child = spawn(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'lib', 'writer.js'), url], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', resolve);
  });
  return {
    async stop(): Promise<WriterStats> {
      child.stdin.end('stop\n');
      const code = await exited;
      if (code !== 0) throw new Error(`the bench writer exited ${code}: ${out}`);
      return JSON.parse(out.trim().split('\n').at(-1)!) as WriterStats;
    },
  };
}

function writePlan(dir: string, target: string, mode: 'batch' | 'online'): string {
  const file = path.join(dir, `plan-${target}.json`);
  fs.writeFileSync(file, JSON.stringify({
    version: 1, name: `copy bench ${mode}`,
    partition: [{ source: 'public.petri_observations', target, strategy: 'range', key: 'created_at', interval: '1 month' }],
    copy: { mode, batchRows: BATCH, pauseMs: 0 },
    pruning: { queries: [] },
    backup: { directory: path.join(dir, 'backups') },
  }));
  return file;
}

/**
 * pgshift's own target, as phase 2 makes it (its structure step on the bench's plan): the partitions, and the
 * primary key left for the copy step to add after its last batch. The ceiling's target (createPetriTarget) has the
 * key from the start, as a hand-made table would; both end with the same key, and the copy's figure includes the key.
 */
async function pgshiftStructure(url: string, c: pg.Client, dir: string, target: string, mode: 'batch' | 'online'): Promise<void> {
  await c.query(`DELETE FROM pgshift.step_state WHERE step_id LIKE 'structure:%' OR step_id LIKE 'copy:%'`).catch(() => {});
  await c.query(`DELETE FROM pgshift.checkpoints WHERE step_id LIKE 'copy:%'`).catch(() => {});
  const engine = await Engine.open({
    phases: PHASE_REGISTRY,
    conn: resolveConnection(url), loaded: loadPlan(writePlan(dir, target, mode)), mode: 'bench', operator: 'bench',
    confirm: () => Promise.resolve({ confirmed: true, method: 'yes', by: 'bench' }),
  });
  try {
    await engine.journal.setArtifact(Artifacts.backup, standInBackup('bench, throwaway database'));
    const out = await engine.run({ phases: [2], only: ['structure:public.petri_observations'] });
    if (out.status !== 'completed') throw new Error(`pgshift phase 2 (${target}) ${out.status}: ${out.message}`);
  } finally {
    await engine.close();
  }
}

/** What pgshift was doing from when (epoch ms): its copy step's stages, from its own log lines. */
type Mark = { at: number; stage: string };
const STAGES: [RegExp, string][] = [[/^batch copy/, 'batches'], [/^adding /, 'key build'], [/^ANALYZE /, 'ANALYZE'], [/^replaying /, 'replay']];

async function pgshiftCopy(url: string, c: pg.Client, dir: string, target: string, mode: 'batch' | 'online'): Promise<{ copyMs: number; keysMs: number; stepMs: number; analyzeMs: number; summary: string; inBatchesMs: number; batchCount: number; marks: Mark[]; pace: string[] }> {
  await c.query(`DELETE FROM pgshift.step_state WHERE step_id LIKE 'copy:%'`).catch(() => {});
  await c.query(`DELETE FROM pgshift.checkpoints WHERE step_id LIKE 'copy:%'`).catch(() => {});
  const engine = await Engine.open({
    phases: PHASE_REGISTRY,
    conn: resolveConnection(url), loaded: loadPlan(writePlan(dir, target, mode)), mode: 'bench', operator: 'bench',
    confirm: () => Promise.resolve({ confirmed: true, method: 'yes', by: 'bench' }),
  });
  await engine.journal.setArtifact(Artifacts.backup, standInBackup('bench, throwaway database'));
  let summary = '';
  let data: { ms?: number; keysMs?: number };
  let stepMs = 0;
  const marks: Mark[] = [];
  const pace: string[] = [];
  engine.on((e) => {
    if (e.type === 'step-log') {
      const st = STAGES.find(([re]) => re.test(e.message));
      if (st && marks.at(-1)?.stage !== st[1]) marks.push({ at: Date.now(), stage: st[1] });
      if (/^pace/.test(e.message)) pace.push(e.message);
    }
    if (e.type === 'step-done' && e.stepId.startsWith('copy:')) {
      marks.push({ at: Date.now(), stage: 'after the step' });
      summary = e.summary ?? '';
      stepMs = e.durationMs;
    }
    if (e.type === 'step-failed') say(`  ✗ ${e.stepId}: ${e.error}`);
  });
  let runId: number | undefined;
  try {
    const out = await engine.run({ phases: [3], only: ['copy:public.petri_observations'] });
    if (out.status !== 'completed') throw new Error(`pgshift copy (${mode}) ${out.status}: ${out.message}`);
    runId = out.runId;
    const r = await c.query<{ result: { ms?: number; keysMs?: number } | null }>(`SELECT result FROM pgshift.step_state WHERE step_id = 'copy:public.petri_observations'`);
    data = r.rows[0]?.result ?? {};
  } finally {
    await engine.close();
  }
  // the step's ANALYZE of the new parent is journaled with its duration: the copy's figures leave it out (batch and online alike)
  const an = await c.query<{ ms: string | null }>(
    `SELECT duration_ms AS ms FROM pgshift.statements WHERE step_id = 'copy:public.petri_observations' AND sql LIKE 'ANALYZE %' ORDER BY id DESC LIMIT 1`,
  );
  // each batch journals its own duration (inside its statement): the copy's time in the batches' statements, the rest
  // is between them (commits, the run procedure's loop, the round trips and the checks between runs). This run's
  // batches only: the bench copies the same table several times into one journal
  const inb = await c.query<{ ms: string | null; n: number }>(
    `SELECT sum(duration_ms)::text AS ms, count(*)::int AS n FROM pgshift.statements WHERE step_id = 'copy:public.petri_observations' AND sql LIKE '-- batch:%' AND run_id = $1`,
    [runId],
  );
  // the copy's figure: its batches and the key it adds after them (the ceiling's target had the key all along)
  return { copyMs: (data.ms ?? stepMs) + (data.keysMs ?? 0), keysMs: data.keysMs ?? 0, stepMs, analyzeMs: Number(an.rows[0]?.ms ?? 0), summary, inBatchesMs: Number(inb.rows[0]?.ms ?? 0), batchCount: inb.rows[0]?.n ?? 0, marks, pace };
}

interface OnlineRun { onlineMs: number; idle: WriterStats; busy: WriterStats; drained: number; equal: boolean }

/** One (d): the writer alone, then pgshift's online copy (structure, copy step) beside it, the drain, the content check. */
async function onlineCopy(url: string, c: pg.Client, dir: string, ceilingMs: number, k: number): Promise<OnlineRun> {
  let w = startWriter(url);
  await new Promise((r) => setTimeout(r, WRITER_S * 1000));
  const idle = await w.stop();
  say(`(d${k}) writer alone: ${idle.ops} ops in ${WRITER_S} s, p50 ${idle.p50.toFixed(2)} ms, p99 ${idle.p99.toFixed(2)} ms`);
  await pgshiftStructure(url, c, dir, 'petri_online', 'online');
  w = startWriter(url);
  await new Promise((r) => setTimeout(r, 500));
  const online = await pgshiftCopy(url, c, dir, 'petri_online', 'online');
  const busy = await w.stop();
  const onlineMs = online.stepMs - online.analyzeMs;
  say(`    pgshift online copy (copy + replay, the step less its ANALYZE of ${secs(online.analyzeMs).toFixed(1)} s): ${secs(onlineMs).toFixed(1)} s with the writer (${busy.ops} ops, ${busy.errors} errors) = ${(onlineMs / ceilingMs).toFixed(2)}× (a): ${online.summary}`);
  for (const line of online.pace) say(`    ${line}`);
  say(`    writer during the copy: p50 ${busy.p50.toFixed(2)} ms, p99 ${busy.p99.toFixed(2)} ms = ${(busy.p99 / idle.p99).toFixed(2)}× idle p99`);
  // where the slow writes were: p99 and ops per stage of the copy step (from its log lines)
  const stages = online.marks.map((m, i) => {
    const end = online.marks[i + 1]?.at ?? Infinity;
    const xs = busy.lat.filter((_, j) => busy.at[j]! >= m.at && busy.at[j]! < end);
    return `${m.stage} ${xs.length} ops p99 ${percentile(xs, 99).toFixed(2)} ms`;
  });
  say(`    by stage: ${stages.join(' · ')}`);
  // the swap's drain: lock the source, apply what is left, compare content
  const db = new Db(resolveConnection(url), 'pgshift-bench');
  const loaded = loadPlan(path.join(dir, 'plan-petri_online.json'));
  try {
    const journal = await Journal.open(db, { create: false });
    const t1 = performance.now();
    const drained = await db.tx(async (tx) => {
      await tx.query(`LOCK TABLE public.petri_observations IN EXCLUSIVE MODE`);
      return drainCapture(tx, loaded.tables[0]!, journal);
    });
    const drainMs = performance.now() - t1;
    const s = await contentHash(c, 'public.petri_observations');
    const n = await contentHash(c, 'public.petri_online');
    const equal = s.h === n.h && s.n === n.n;
    say(`    drain under lock: ${drained} changes in ${drainMs.toFixed(0)} ms; content hash ${equal ? 'equal' : 'DIFFERS'} (${s.n.toLocaleString('en-US')} rows)`);
    await removeCapture(db, loaded.tables[0]!, null);
    await c.query(`DROP TABLE public.petri_online`);
    return { onlineMs, idle, busy, drained, equal };
  } finally {
    await db.close();
  }
}

async function main(): Promise<void> {
  say(`copy benchmark: ${ROWS.toLocaleString('en-US')} petri observations, batches of ${BATCH.toLocaleString('en-US')}`);
  const server = await startEmbedded({});
  try {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query('CREATE DATABASE copybench');
    await admin.end();
    const u = new URL(server.url);
    u.pathname = '/copybench';
    const url = u.toString();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const demo = await createDemoDatabase(c, { rows: ROWS });
    say(`demo data ready in ${secs(demo.ms).toFixed(1)} s`);
    // a table in production has been vacuumed since its rows were written: its pages are all-visible, and index-only
    // scans (the batch's read of where it ends) need no heap visit. A VACUUM right after the load may not mark them
    // (seen: 0 of 56,767 pages), so one xid is used up before each VACUUM and it is tried again a few times until
    // the pages are marked; the bench says how many are
    let vm = { v: 0, p: 1 };
    for (let i = 0; i < 5 && vm.v < 0.95 * vm.p; i++) {
      if (i) await new Promise((r) => setTimeout(r, 1000));
      await c.query(`SELECT txid_current()`);
      await c.query(`VACUUM ANALYZE public.petri_observations`);
      vm = (await c.query<{ v: number; p: number }>(`SELECT relallvisible AS v, relpages AS p FROM pg_class WHERE oid = 'public.petri_observations'::regclass`)).rows[0]!;
    }
    say(`source vacuumed: ${vm.v.toLocaleString('en-US')} of ${vm.p.toLocaleString('en-US')} pages all-visible`);
    // warm the cache the same way for everyone: the table and its created_at index
    await c.query(`SELECT count(*), sum(length(notes)) FROM public.petri_observations`);
    await c.query(`SELECT count(*) FROM (SELECT created_at FROM public.petri_observations ORDER BY created_at) s`);
    const cols = PETRI_COLUMNS.join(', ');
    // between measured runs: the server writes its dirty buffers (CHECKPOINT) and the OS its dirty pages (sync), so
    // no run pays for the writes of the one before it
    const settle = async () => {
      await c.query(`CHECKPOINT`);
      spawnSync('sync');
    };
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-copybench-'));

    // (a) the ceiling: one INSERT … SELECT, measured before and after (c) and averaged (a shared machine drifts)
    const ceiling = async (label: string) => {
      await createPetriTarget(c, 'petri_ceiling');
      const t = performance.now();
      await c.query(`INSERT INTO public.petri_ceiling (${cols}) SELECT ${cols} FROM public.petri_observations`);
      const ms = performance.now() - t;
      say(`(a) one INSERT … SELECT${label}: ${secs(ms).toFixed(1)} s (${rate(ROWS, secs(ms))})`);
      await c.query(`DROP TABLE public.petri_ceiling`);
      await settle();
      return ms;
    };
    // one discarded run first: the first large write into a fresh server also creates its WAL segments (later runs
    // recycle them) and extends the files for the first time; every measured run, pgshift's and the ceiling's,
    // then starts from the same state
    await ceiling(' (warm-up, not counted)');
    const ceiling1 = await ceiling('');

    // (c) pgshift batch copy through the real step, REPEAT times, each followed by the ceiling again: one 2,000,000-row
    // run of either varies by ±10 % on a shared 2-core machine, more than the gap measured; each copy is compared
    // with the two ceilings around it, and the median of those ratios is the bench's figure. (e) the integrity check
    // (both tables hashed, differing chunks drilled, FK orphans, as phase 3 runs it) of the first copy.
    let hA: { n: number; h: string } | null = null;
    const ceilings = [ceiling1];
    const batchRuns: number[] = [];
    let batch: Awaited<ReturnType<typeof pgshiftCopy>> | null = null;
    let integrityMs = 0;
    for (let k = 0; k < (ONLINE_ONLY ? 0 : REPEAT); k++) {
      await pgshiftStructure(url, c, dir, 'petri_batch', 'batch');
      const run = await pgshiftCopy(url, c, dir, 'petri_batch', 'batch');
      hA ??= await contentHash(c, 'public.petri_observations');
      const hB = await contentHash(c, 'public.petri_batch');
      if (hA.h !== hB.h || hA.n !== hB.n) throw new Error(`batch copy ${k + 1}: content differs from the source`);
      batchRuns.push(run.copyMs);
      say(`(c) pgshift batch copy, run ${k + 1}: ${secs(run.copyMs).toFixed(1)} s with the primary key it adds after the last batch (${rate(ROWS, secs(run.copyMs))}); step with ANALYZE ${secs(run.stepMs).toFixed(1)} s; content hash equal`);
      say(`    of which in the ${run.batchCount} batch statements ${secs(run.inBatchesMs).toFixed(1)} s (${(run.inBatchesMs / Math.max(1, run.batchCount)).toFixed(1)} ms each), between them ${secs(run.copyMs - run.keysMs - run.inBatchesMs).toFixed(1)} s, the key ${secs(run.keysMs).toFixed(1)} s`);
      if (!batch) {
        batch = run;
        const db = new Db(resolveConnection(url), 'pgshift-bench');
        try {
          const loaded = loadPlan(path.join(dir, 'plan-petri_batch.json'));
          const t1 = performance.now();
          const rep = await integrityReport(db, loaded.tables, { log: () => {}, signal: new AbortController().signal, stepId: null });
          integrityMs = performance.now() - t1;
          if (!rep.pass) throw new Error(`integrity report of the batch copy failed: ${JSON.stringify(rep.tables[0])}`);
          say(`(e) integrity report of (c): ${secs(integrityMs).toFixed(1)} s = ${(integrityMs / run.copyMs).toFixed(2)}× (c); ${rep.tables[0]!.oldRows.toLocaleString('en-US')} = ${rep.tables[0]!.newRows.toLocaleString('en-US')} rows, PASS`);
        } finally {
          await db.close();
        }
      }
      await c.query(`DROP TABLE public.petri_batch`);
      await settle();
      ceilings.push(await ceiling(` again, after run ${k + 1} of (c)`));
    }
    if (ONLINE_ONLY) ceilings.push(await ceiling(' again'));
    else if (!batch) throw new Error('no batch copy ran');
    const batchRatios = batchRuns.map((b, k) => b / ((ceilings[k]! + ceilings[k + 1]!) / 2));
    const batchRatio = median(batchRatios);
    const batchMs = median(batchRuns);
    const ceilingMs = ceilings.reduce((a, x) => a + x, 0) / ceilings.length;
    if (!ONLINE_ONLY) say(`    ceiling: mean ${secs(ceilingMs).toFixed(1)} s over ${ceilings.length} runs; batch copy against the ceilings around it: ${batchRatios.map((r) => `${r.toFixed(2)}×`).join(', ')}; median ${batchRatio.toFixed(2)}×`);
    // (b) the seed's LIMIT/OFFSET loop, capped by time
    await createPetriTarget(c, 'petri_offset');
    const batches = Math.ceil(ROWS / BATCH);
    const times: number[] = [];
    const t0 = performance.now();
    for (let i = 0; !SKIP_OFFSET && i < batches && performance.now() - t0 < OFFSET_CAP_S * 1000; i++) {
      const b0 = performance.now();
      await c.query(`INSERT INTO public.petri_offset SELECT * FROM public.petri_observations ORDER BY created_at LIMIT $1 OFFSET $2`, [BATCH, i * BATCH]);
      times.push(performance.now() - b0);
    }
    let offsetMs = times.reduce((a, x) => a + x, 0);
    const extrapolated = !SKIP_OFFSET && times.length < batches;
    if (extrapolated) {
      // least squares t_i = a + b·i over the measured batches, summed over all of them
      const n = times.length;
      const mx = (n - 1) / 2;
      const my = offsetMs / n;
      let sxy = 0;
      let sxx = 0;
      times.forEach((y, x) => {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) ** 2;
      });
      const b = sxx > 0 ? sxy / sxx : 0;
      const a = my - b * mx;
      offsetMs = 0;
      for (let i = 0; i < batches; i++) offsetMs += i < n ? times[i]! : Math.max(a + b * i, times[n - 1]!);
    }
    if (!SKIP_OFFSET) say(`(b) seed LIMIT/OFFSET loop: ${extrapolated ? `stopped after ${OFFSET_CAP_S} s at ${times.length}/${batches} batches, extrapolated (linear fit of batch time) to ` : ''}${secs(offsetMs).toFixed(1)} s = ${(offsetMs / ceilingMs).toFixed(1)}× (a)`);
    await c.query(`DROP TABLE public.petri_offset`);
    await settle();

    // (d) online copy beside a writer, against the same writer on the idle database just before it. A writer's p99
    // over 10 s is the ~30th slowest of ~3,000 operations: one run of it varies by ±20 % on a shared 2-core machine,
    // so (d) runs ONLINE_REPEAT times and the median of each run's ratios is the figure, as for (c)
    const onlineRuns: OnlineRun[] = [];
    for (let k = 0; k < ONLINE_REPEAT; k++) {
      onlineRuns.push(await onlineCopy(url, c, dir, ceilingMs, k + 1));
      await settle();
    }
    // the median run by each figure (an odd count is the default; with an even one, the lower middle)
    const pick = (f: (r: OnlineRun) => number): { value: number; run: OnlineRun } => {
      const run = [...onlineRuns].sort((a, b) => f(a) - f(b))[Math.floor((onlineRuns.length - 1) / 2)]!;
      return { value: f(run), run };
    };
    const onlineMed = pick((r) => r.onlineMs);
    const p99Med = pick((r) => r.busy.p99 / r.idle.p99);
    const onlineMs = onlineMed.value;
    const { idle, busy } = p99Med.run;
    const drained = Math.max(...onlineRuns.map((r) => r.drained));
    const equal = onlineRuns.every((r) => r.equal);
    if (onlineRuns.length > 1) {
      say(`    online copy against the ceiling: ${onlineRuns.map((r) => `${(r.onlineMs / ceilingMs).toFixed(2)}×`).join(', ')}; median ${(onlineMs / ceilingMs).toFixed(2)}×`);
      say(`    writer p99 against its idle p99 just before: ${onlineRuns.map((r) => `${(r.busy.p99 / r.idle.p99).toFixed(2)}×`).join(', ')}; median ${(busy.p99 / idle.p99).toFixed(2)}×`);
    }
    await c.end();
    fs.rmSync(dir, { recursive: true, force: true });
    const result = {
      rows: ROWS, batch_rows: BATCH,
      ceiling_s: +secs(ceilingMs).toFixed(2), ceiling_runs_s: ceilings.map((x) => +secs(x).toFixed(2)),
      batch_runs_s: batchRuns.map((x) => +secs(x).toFixed(2)), batch_ratios: batchRatios.map((x) => +x.toFixed(3)),
      offset_s: +secs(offsetMs).toFixed(2), offset_extrapolated: extrapolated, offset_batches_measured: times.length, offset_batches_total: batches,
      batch_s: batch ? +secs(batchMs).toFixed(2) : null, batch_key_s: batch ? +secs(batch.keysMs).toFixed(2) : null, batch_step_s: batch ? +secs(batch.stepMs).toFixed(2) : null,
      online_s: +secs(onlineMs).toFixed(2), online_runs_s: onlineRuns.map((r) => +secs(r.onlineMs).toFixed(2)),
      writer_p99_ratios: onlineRuns.map((r) => +(r.busy.p99 / r.idle.p99).toFixed(3)),
      writer_p50_idle_ms: +idle.p50.toFixed(2), writer_p99_idle_ms: +idle.p99.toFixed(2),
      writer_p50_online_ms: +busy.p50.toFixed(2), writer_p99_online_ms: +busy.p99.toFixed(2),
      writer_ops_idle: idle.ops, writer_ops_online: busy.ops, writer_errors_online: busy.errors,
      drained_under_lock: drained, online_content_equal: equal,
      ratio_offset: SKIP_OFFSET ? null : +(offsetMs / ceilingMs).toFixed(2), ratio_batch: batch ? +batchRatio.toFixed(3) : null, ratio_online: +(onlineMs / ceilingMs).toFixed(2),
      ratio_writer_p99: +(busy.p99 / idle.p99).toFixed(2),
      integrity_s: batch ? +secs(integrityMs).toFixed(2) : null, ratio_integrity: batch ? +(integrityMs / batch.copyMs).toFixed(2) : null,
      targets: {
        ...(batch ? { batch_le_1_10: batchRatio <= 1.1 } : {}),
        online_le_1_5: onlineMs / ceilingMs <= 1.5,
        writer_p99_le_2x: busy.p99 / idle.p99 <= 2,
        online_content_equal: equal,
        ...(batch ? { integrity_le_1_5: integrityMs / batch.copyMs <= 1.5 } : {}),
      },
    };
    if (json) console.log(JSON.stringify(result));
    else {
      say('');
      say(`ratios to (a): offset ${result.ratio_offset}×, batch ${result.ratio_batch}× (target ≤ 1.10), online ${result.ratio_online}× (target ≤ 1.5); writer p99 ${result.ratio_writer_p99}× idle (target ≤ 2); integrity ${result.ratio_integrity}× the batch copy (target ≤ 1.5)`);
    }
    const missed = Object.entries(result.targets).filter(([, ok]) => !ok).map(([k]) => k);
    if (missed.length) {
      process.stderr.write(`bench:copy MISSED ${missed.join(', ')}\n`);
      process.exitCode = 1;
    }
  } finally {
    await server.stop();
  }
}

runBench(main);
