/**
 * Scale benchmark: does pgshift's cost per row stay flat as the table grows, and does pgshift's own memory stay
 * flat (no per-row state in Node)? Embedded PostgreSQL; for each size (1,000,000 as the baseline, then --rows), a
 * fresh database with one table generated server-side (generate_series: nothing travels through Node), then the
 * real phases: 2 (partitioned table, monthly RANGE on created_at), 3 (batch copy, the primary key and the deferred index built after
 * it, the integrity report), 4, and 5's swap. Each database is dropped before the next size: disk stays at one
 * size's worth (about 3× the table).
 *
 *   npm run bench:scale -- --rows 20000000 [--json] [--sizes 1000000,5000000,20000000] [--base-repeat 3]
 *
 * Prints per million rows: copy, index build, integrity; the swap's exclusive-lock time; pgshift's peak RSS. Exits
 * non-zero when the per-row cost at the largest size is more than 15 % above the baseline's, or peak RSS grows by
 * more than 25 %. Beside pgshift's copy, each size also times the hardware's own cost per row at that size: one
 * `INSERT … SELECT` of the whole source into a plain table (dropped again), before pgshift runs; a CHECKPOINT
 * before each. A table that no longer fits in shared_buffers costs more per row to write for any writer (its dirty
 * pages are written out while the copy runs); the ceiling shows how much of a rise is that, and `copy_vs_ceiling`
 * per size is pgshift's own share. The targets stay on pgshift's absolute cost per row.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbedded } from '../source/demo/embedded.js';
import { Engine } from '../source/engine/engine.js';
import { resolveConnection } from '../source/db/connection.js';
import { first } from '../source/db/session.js';
import { loadPlan } from '../source/plan/load.js';
import { PHASE_REGISTRY } from '../phases/index.js';
import { runBench } from './lib/main.js';
import { walMark, walSince, type WalMark, type WalSince } from './lib/wal.js';
import { standInBackup } from '../test/fixtures/artifacts.js';
import { Artifacts } from '../source/engine/artifacts.js';

function num(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(String(process.argv[i + 1]).replace(/_/g, ''));
  if (!Number.isInteger(v) || v < 10_000) throw new Error(`--${name} expects a whole number ≥ 10,000`);
  return v;
}
const json = process.argv.includes('--json');
const ROWS = num('rows', 20_000_000);
const BASE = num('base', 1_000_000);
const sizesArg = process.argv.indexOf('--sizes');
const SIZES = sizesArg > 0
  ? String(process.argv[sizesArg + 1]).split(',').map((x) => Number(x.replace(/_/g, '')))
  : [...new Set([Math.min(BASE, ROWS), ROWS])];
if (SIZES.some((x) => !Number.isInteger(x) || x < 10_000)) throw new Error('--sizes expects whole numbers ≥ 10,000, comma-separated');
const baseRepeatArg = process.argv.indexOf('--base-repeat');
/** the smallest size runs this many times and its medians are the baseline: one 1,000,000-row copy takes ~1 s and varied 0.80–1.16 s per run */
const BASE_REPEAT = baseRepeatArg > 0 ? Number(process.argv[baseRepeatArg + 1]) : 3;
if (!Number.isInteger(BASE_REPEAT) || BASE_REPEAT < 1 || BASE_REPEAT > 9) throw new Error('--base-repeat expects a whole number from 1 to 9');
const say = (s: string) => (json ? process.stderr.write(s + '\n') : console.log(s));
const M = 1_000_000;

interface SizeResult {
  rows: number;
  generate_s: number;
  copy_s: number; index_s: number; integrity_s: number; swap_step_s: number; swap_lock_ms: number;
  copy_s_per_m: number; index_s_per_m: number; integrity_s_per_m: number;
  ceiling_s: number; ceiling_s_per_m: number; copy_vs_ceiling: number;
  rss_peak_mb: number; rss_start_mb: number;
  table_mb: number;
  /** WAL written (MB) and checkpoints begun during the ceiling's INSERT … SELECT and during pgshift's copy step */
  ceiling_wal_mb: number; copy_wal_mb: number; ceiling_checkpoints: number; copy_checkpoints: number;
}

async function oneSize(serverUrl: string, rows: number): Promise<SizeResult> {
  const name = `scale_${rows}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-scale-'));
  try {
    // server-side generation: ids in created_at order (as an append-mostly table is), two years of readings
    let t0 = performance.now();
    await c.query(`CREATE TABLE public.readings (
      id bigint PRIMARY KEY, device_id integer NOT NULL, created_at timestamptz NOT NULL,
      reading numeric(8,2), status text NOT NULL, note text)`);
    const chunk = 2_000_000;
    for (let from = 1; from <= rows; from += chunk) {
      const to = Math.min(rows, from + chunk - 1);
      await c.query(
        `INSERT INTO public.readings
         SELECT g, (g * 7919) % 5000, timestamptz '2024-01-01' + (g::float8 / $1) * interval '730 days',
                round((random() * 1000)::numeric, 2), (ARRAY['ok','warn','fail'])[1 + g % 3], CASE WHEN g % 10 = 0 THEN 'checked ' || g END
           FROM generate_series($2::bigint, $3::bigint) g`,
        [rows, from, to],
      );
    }
    await c.query(`CREATE INDEX readings_created_at_idx ON public.readings (created_at)`);
    await c.query(`CREATE INDEX readings_device_idx ON public.readings (device_id)`);
    await c.query(`VACUUM ANALYZE public.readings`);
    const generateS = (performance.now() - t0) / 1000;
    const { mb } = first((await c.query<{ mb: number }>(`SELECT (pg_total_relation_size('public.readings') / 1048576)::int AS mb`)).rows, 'relation size');
    say(`${rows.toLocaleString('en-US')} rows generated server-side in ${generateS.toFixed(1)} s (${mb} MB with indexes)`);
    // the hardware's cost per row at this size: one INSERT … SELECT into a plain table without indexes (as pgshift's
    // partitions are during the copy), then dropped. A CHECKPOINT before each of the two (this one and pgshift's
    // copy), so that neither writes out the other's dirty pages, nor the generation's (one run without them: the
    // copy of 20,000,000 rows took 23.1 s against 17.4 s after a checkpoint)
    await c.query(`CHECKPOINT`);
    await c.query(`CREATE TABLE public.ceiling (LIKE public.readings)`);
    // a checkpoint begun during one of the two makes it write full pages and compete with the checkpointer: the
    // figures say when that happened (max_wal_size decides it, not the tool)
    const ceilingMark = await walMark(c);
    t0 = performance.now();
    await c.query(`INSERT INTO public.ceiling SELECT * FROM public.readings`);
    const ceilingS = (performance.now() - t0) / 1000;
    const ceilingWal = await walSince(c, ceilingMark);
    await c.query(`DROP TABLE public.ceiling`);
    await c.query(`CHECKPOINT`);
    say(`  one INSERT … SELECT of the whole table (the ceiling at this size): ${ceilingS.toFixed(1)} s`);

    const file = path.join(dir, 'plan.json');
    fs.writeFileSync(file, JSON.stringify({
      version: 1, name: `scale ${rows}`,
      partition: [{ source: 'public.readings', strategy: 'range', key: 'created_at', interval: '1 month', defaultPartition: true }],
      copy: { mode: 'batch', batchRows: 10_000, pauseMs: 0 },
      pruning: { queries: [] },
      backup: { directory: path.join(dir, 'backups') },
    }));
    global.gc?.();
    const rssStart = process.memoryUsage().rss;
    let rssPeak = rssStart;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }, 200);
    const engine = await Engine.open({
      phases: PHASE_REGISTRY, conn: resolveConnection(url), loaded: loadPlan(file), mode: 'bench', operator: 'bench',
      confirm: (r) => {
        // a blocker offered during the swap (declined here: the swap waits with retries): who it was
        if (r.kind === 'cancel' || r.kind === 'terminate') say(`  swap blocked by ${r.object}: ${r.impact?.[0] ?? ''}`);
        return Promise.resolve({ confirmed: r.kind === 'rename', method: 'yes', by: 'bench' });
      },
    });
    const stepMs = new Map<string, number>();
    // the WAL mark when the copy step starts, and what was written by the time it is done
    const copy: { mark?: Promise<WalMark>; wal?: Promise<WalSince> } = {};
    engine.on((e) => {
      if (e.type === 'step-started' && e.stepId === 'copy:public.readings') copy.mark = walMark(c);
      if (e.type === 'step-done' && e.stepId === 'copy:public.readings' && copy.mark) copy.wal = copy.mark.then((m) => walSince(c, m));
      if (e.type === 'step-done') stepMs.set(e.stepId, e.durationMs);
      if (e.type === 'step-failed') say(`  ✗ ${e.stepId}: ${e.error}`);
      // the swap's own account of its lock attempts (retries, blockers): a swap step much longer than its lock says why
      if (e.type === 'step-log' && e.stepId === 'swap:public.readings' && e.level !== 'info') say(`  swap: ${e.message.slice(0, 300)}`);
    });
    try {
      await engine.journal.setArtifact(Artifacts.backup, standInBackup('bench, throwaway database'));
      t0 = performance.now();
      for (const phases of [[2], [3], [4]] as const) {
        const out = await engine.run({ phases: [...phases] });
        if (out.status !== 'completed') throw new Error(`phase ${phases[0]}: ${out.status}: ${out.message}`);
      }
      const out = await engine.run({ phases: [5], only: ['swap:public.readings'] });
      if (out.status !== 'completed') throw new Error(`swap: ${out.status}: ${out.message}`);
    } finally {
      clearInterval(sampler);
      await engine.close();
    }
    const cw = (await copy.wal) ?? { mb: -1, checkpoints: -1 };
    const res = await c.query<{ step_id: string; result: { ms?: number; lockHeldMs?: number; keysMs?: number } | null }>(`SELECT step_id, result FROM pgshift.step_state`);
    const data = new Map(res.rows.map((r) => [r.step_id, r.result ?? {}]));
    const copyS = (data.get('copy:public.readings')?.ms ?? stepMs.get('copy:public.readings') ?? 0) / 1000;
    // the index builds: the primary key the copy step adds after its last batch, and the finish step's indexes
    const indexS = ((data.get('copy:public.readings')?.keysMs ?? 0) + (stepMs.get('finish:public.readings') ?? 0)) / 1000;
    const integrityS = (stepMs.get('verify:integrity') ?? 0) / 1000;
    const swapS = (stepMs.get('swap:public.readings') ?? 0) / 1000;
    const lockMs = data.get('swap:public.readings')?.lockHeldMs ?? -1;
    const per = (s: number) => +(s / (rows / M)).toFixed(3);
    const r: SizeResult = {
      rows, generate_s: +generateS.toFixed(1),
      copy_s: +copyS.toFixed(2), index_s: +indexS.toFixed(2), integrity_s: +integrityS.toFixed(2), swap_step_s: +swapS.toFixed(2), swap_lock_ms: lockMs,
      copy_s_per_m: per(copyS), index_s_per_m: per(indexS), integrity_s_per_m: per(integrityS),
      ceiling_s: +ceilingS.toFixed(2), ceiling_s_per_m: per(ceilingS), copy_vs_ceiling: ceilingS > 0 ? +(copyS / ceilingS).toFixed(3) : 0,
      rss_peak_mb: Math.round(rssPeak / 1048576), rss_start_mb: Math.round(rssStart / 1048576), table_mb: mb,
      ceiling_wal_mb: ceilingWal.mb, copy_wal_mb: cw.mb, ceiling_checkpoints: ceilingWal.checkpoints, copy_checkpoints: cw.checkpoints,
    };
    say(`  per million rows: copy ${r.copy_s_per_m} s (${r.copy_vs_ceiling}× the ceiling's ${r.ceiling_s_per_m} s), index build ${r.index_s_per_m} s, integrity ${r.integrity_s_per_m} s; swap lock ${lockMs} ms (step ${r.swap_step_s} s); pgshift RSS peak ${r.rss_peak_mb} MB (start ${r.rss_start_mb} MB); WAL ${r.ceiling_wal_mb} MB and ${r.ceiling_checkpoints} checkpoint(s) during the ceiling, ${r.copy_wal_mb} MB and ${r.copy_checkpoints} during the copy step`);
    return r;
  } finally {
    await c.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Each figure's median over the runs of one size (each metric on its own). */
function medianResult(runs: readonly SizeResult[]): SizeResult {
  const med = (k: keyof SizeResult) => {
    const xs = runs.map((r) => r[k]).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!;
  };
  const out = { ...runs[0]! };
  for (const k of Object.keys(out) as (keyof SizeResult)[]) out[k] = med(k);
  return out;
}

async function main(): Promise<void> {
  say(`scale benchmark: sizes ${SIZES.map((s) => s.toLocaleString('en-US')).join(', ')} rows`);
  const server = await startEmbedded({});
  const results: SizeResult[] = [];
  let baseRuns: SizeResult[] = [];
  try {
    for (const [i, s] of SIZES.entries()) {
      if (i > 0 || BASE_REPEAT === 1 || SIZES.length < 2) {
        results.push(await oneSize(server.url, s));
        continue;
      }
      const runs: SizeResult[] = [];
      for (let k = 0; k < BASE_REPEAT; k++) runs.push(await oneSize(server.url, s));
      baseRuns = runs;
      results.push(medianResult(runs));
      say(`  baseline: medians of ${BASE_REPEAT} runs: copy ${results[0]!.copy_s_per_m} s (runs ${runs.map((r) => r.copy_s_per_m).join(', ')}), index build ${results[0]!.index_s_per_m} s, integrity ${results[0]!.integrity_s_per_m} s, ceiling ${results[0]!.ceiling_s_per_m} s per million rows`);
    }
  } finally {
    await server.stop();
  }
  const base = results[0]!;
  const top = results[results.length - 1]!;
  const ratio = (k: 'copy_s_per_m' | 'index_s_per_m' | 'integrity_s_per_m' | 'ceiling_s_per_m') => (base[k] > 0 ? +(top[k] / base[k]).toFixed(3) : 0);
  const out = {
    sizes: results,
    base_runs: baseRuns,
    ratio_copy_per_row: ratio('copy_s_per_m'), ratio_ceiling_per_row: ratio('ceiling_s_per_m'), ratio_index_per_row: ratio('index_s_per_m'), ratio_integrity_per_row: ratio('integrity_s_per_m'),
    // pgshift's own share: its copy against the ceiling at the largest size, over the same at the baseline
    ratio_copy_vs_ceiling: base.copy_vs_ceiling > 0 ? +(top.copy_vs_ceiling / base.copy_vs_ceiling).toFixed(3) : 0,
    ratio_rss_peak: +(top.rss_peak_mb / base.rss_peak_mb).toFixed(3),
    swap_lock_ms: results.map((r) => r.swap_lock_ms),
    targets: {
      copy_flat_15pct: ratio('copy_s_per_m') <= 1.15,
      index_flat_15pct: ratio('index_s_per_m') <= 1.15,
      integrity_flat_15pct: ratio('integrity_s_per_m') <= 1.15,
      rss_flat_25pct: top.rss_peak_mb / base.rss_peak_mb <= 1.25,
    },
  };
  if (json) console.log(JSON.stringify(out));
  else {
    say('');
    say(`per-row cost, ${top.rows.toLocaleString('en-US')} vs ${base.rows.toLocaleString('en-US')} rows: copy ${out.ratio_copy_per_row}×, index ${out.ratio_index_per_row}×, integrity ${out.ratio_integrity_per_row}× (target ≤ 1.15); the ceiling's own ${out.ratio_ceiling_per_row}×, so pgshift's copy against the ceiling ${out.ratio_copy_vs_ceiling}×; pgshift peak RSS ${out.ratio_rss_peak}× (target ≤ 1.25); swap lock ${out.swap_lock_ms.join(' → ')} ms`);
  }
  const missed = Object.entries(out.targets).filter(([, ok]) => !ok).map(([k]) => k);
  if (results.length < 2) say('only one size: nothing to compare (pass --rows larger than --base, or --sizes a,b)');
  if (missed.length && results.length >= 2) {
    process.stderr.write(`bench:scale MISSED ${missed.join(', ')}\n`);
    process.exitCode = 1;
  }
}

runBench(main);
