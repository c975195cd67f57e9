import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { startEmbedded } from '../../source/demo/embedded.js';
import { PlanSchema } from '../../source/plan/schema.js';
import { APP_ROLE, Load, WaitSampler, checkInvariant, createAppRole, longest, maxLatencyIn, numberFlag, settleBeforeLoad, tpcbScript, warmWalPool, type Invariant, type LoadResult } from './pgbench.js';
import { walMark, walSince } from './wal.js';
import { lockReport, rates, runPgshift, type CliEvent, type CliRun, type LockReport } from './pgshift-cli.js';

/**
 * `npm run bench:cutover -- --load pgbench [--json]` — issue 9's "Done when":
 *  - a fresh embedded PostgreSQL 15, `pgbench -i -s 10`, an application role that is not a superuser;
 *  - pgbench's tpcb-like transaction as a custom script, 8 clients, runs while pgshift (the real CLI, headless,
 *    --confirm flags) partitions pgbench_accounts online by LIST(bid) through phases 1..5: the swap happens DURING
 *    the load; after `--writes-after-swap` application transactions, `pgshift --rollback` swaps back, still during
 *    the load; after `--tail` more transactions the bench stops the load;
 *  - pgbench's invariant is checked after the swap, after the swap-back (both under load, one snapshot) and at rest;
 *  - the same pgbench, same duration, with no migration (the baseline), in the same run;
 *  - each of the two loads starts from the same state: pgbench's tables vacuumed and analyzed, a CHECKPOINT, and
 *    the same pool of recycled WAL segments (warmWalPool, `--wal-pool-mb`, default 2048; 0 leaves the fresh cluster's).
 */

export interface PgbenchCutoverOptions {
  readonly json: boolean;
  readonly scale: number;
  readonly clients: number;
  readonly threads: number;
  /** hard bound of the migration load (pgbench -T) and of each pgshift run */
  readonly maxSeconds: number;
  /** baseline duration; default: as long as the migration load ran */
  readonly idleSeconds: number | null;
  readonly writesAfterSwap: number;
  readonly tail: number;
  readonly lockTimeoutMs: number;
  readonly maxLockMs: number;
  /** WAL written once before both loads and kept as a recycled pool (0: none, as a fresh cluster) */
  readonly walPoolMb: number;
  /** the application's account lookups by aid alone (pgbench's own statements), not by aid and bid */
  readonly aidOnly: boolean;
  readonly keep: boolean;
}

export function parsePgbenchOptions(argv: readonly string[]): PgbenchCutoverOptions {
  const val = (flag: string, def: number) => numberFlag(argv, flag, def);
  return {
    json: argv.includes('--json'),
    scale: val('--scale', 10),
    clients: val('--clients', 8),
    threads: val('--threads', 2),
    maxSeconds: val('--max-seconds', 600),
    idleSeconds: argv.includes('--idle-seconds') ? val('--idle-seconds', 60) : null,
    writesAfterSwap: val('--writes-after-swap', 10_000),
    tail: val('--tail', 3_000),
    lockTimeoutMs: val('--lock-timeout', 100),
    maxLockMs: val('--max-lock-ms', 100),
    walPoolMb: numberFlag(argv, '--wal-pool-mb', 2048, true, true),
    aidOnly: argv.includes('--aid-only'),
    keep: argv.includes('--keep'),
  };
}

const TABLE = 'public.pgbench_accounts';
const TARGET = 'pgbench_accounts_partitioned';
const SWAP_STEP = `swap:${TABLE}`;
const SWAPBACK_STEP = `rollback:swap:${TABLE}`;

const say = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

/** The plan: pgbench_accounts by LIST(bid), one partition per branch, online copy; swap.maxLockMs when the plan format knows it. */
function writePlan(dir: string, o: PgbenchCutoverOptions): { file: string; swapBudget: boolean } {
  const plan: Record<string, unknown> = {
    version: 1,
    name: 'pgbench_accounts by branch (bench)',
    partition: [{
      source: TABLE, target: TARGET, strategy: 'list', key: 'bid',
      values: { query: 'SELECT bid FROM public.pgbench_branches ORDER BY bid' }, defaultPartition: true,
    }],
    copy: { mode: 'online', batchRows: 10_000, pauseMs: 0 },
    // the application's account lookup: phase 3 says whether it touches one partition of the new table or all
    pruning: { queries: [{ name: 'account lookup', table: TABLE, sql: `SELECT abalance FROM ${TABLE} WHERE aid = 1${o.aidOnly ? '' : ' AND bid = 1'}` }] },
    retention: { days: 7 },
    backup: { directory: path.join(dir, 'backups'), format: 'custom', verify: 'list', required: true },
    locks: { timeoutMs: o.lockTimeoutMs, attempts: 100, backoffMs: 100, maxBackoffMs: 1000 },
  };
  const withBudget = { ...plan, swap: { maxLockMs: o.maxLockMs } };
  const swapBudget = PlanSchema.safeParse(withBudget).success;
  const file = path.join(dir, 'plan.json');
  fs.writeFileSync(file, JSON.stringify(swapBudget ? withBudget : plan, null, 2));
  return { file, swapBudget };
}

async function historyInserts(c: pg.ClientBase): Promise<number> {
  const r = await c.query<{ n: string }>(`SELECT coalesce(n_tup_ins, 0) AS n FROM pg_stat_user_tables WHERE relid = 'public.pgbench_history'::regclass`);
  return Number(r.rows[0]?.n ?? 0);
}

/** Waits until the application committed `n` more transactions (or its load ended, or the deadline passed). */
async function waitForWrites(c: pg.ClientBase, load: Load, n: number, deadline: number): Promise<number> {
  const from = await historyInserts(c);
  let now = from;
  while (load.running && Date.now() < deadline) {
    now = await historyInserts(c);
    if (now - from >= n) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return now - from;
}

function fmtN(n: number | null | undefined, unit = ''): string {
  return n === null || n === undefined ? 'null' : `${n.toLocaleString('en-US')}${unit}`;
}

function echo(e: CliEvent): void {
  if (e.type === 'step-done' && e.status !== 'already-done') say(`  pgshift ✓ ${e.stepId} ${e.status}${e.summary ? `: ${e.summary.slice(0, 200)}` : ''}`);
  else if (e.type === 'step-failed') say(`  pgshift ✗ ${e.stepId} ${e.error}`);
  else if (e.type === 'run-ended') say(`  pgshift run ${e.status}${e.message ? `: ${e.message}` : ''}`);
  else if (e.type === 'step-log' && e.level !== 'info') say(`  pgshift ${e.level} ${e.stepId}: ${String(e.message).slice(0, 200)}`);
}

export async function runPgbenchCutover(o: PgbenchCutoverOptions): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-bench-pgbench-'));
  const server = await startEmbedded({});
  const cleanups: (() => void)[] = [];
  const admin = new pg.Client({ connectionString: server.url });
  // a connection ended by the server's shutdown (Ctrl+C) is not a crash
  admin.on('error', () => {});
  let exit = 1;
  // Ctrl+C: children (pgbench, pgshift) killed, the server stopped, nothing left running
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    say('interrupted: stopping pgbench, pgshift and the server');
    for (const f of [...cleanups].reverse()) f();
    void server.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await admin.connect();
    const dbName = 'bench_pgbench';
    await admin.query(`CREATE DATABASE ${dbName}`);
    const u = new URL(server.url);
    u.pathname = `/${dbName}`;
    const url = u.toString();
    say(`pgbench -i -s ${o.scale} on a fresh embedded PostgreSQL 15 (port ${server.port}); logs in ${dir}`);
    const init = spawnSync('pgbench', ['-i', '-s', String(o.scale), '-q', '-h', '127.0.0.1', '-p', String(server.port), '-U', 'postgres', dbName], {
      env: { ...process.env, PGPASSWORD: server.password }, encoding: 'utf8',
    });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    const c = new pg.Client({ connectionString: url, application_name: 'bench-observer' });
    c.on('error', () => {});
    await c.connect();
    cleanups.push(() => void c.end().catch(() => {}));
    const appPassword = crypto.randomBytes(12).toString('hex');
    await createAppRole(c, dbName, appPassword);
    const rows = o.scale * 100_000;
    const script = path.join(dir, 'tpcb-like.sql');
    fs.writeFileSync(script, tpcbScript(o.scale, !o.aidOnly));
    const { file: planFile, swapBudget } = writePlan(dir, o);
    const loadOpts = { dir, script, host: '127.0.0.1', port: server.port, database: dbName, password: appPassword, clients: o.clients, threads: o.threads };
    const ic = new pg.Client({ connectionString: url, application_name: 'bench-invariant' });
    ic.on('error', () => {});
    await ic.connect();
    cleanups.push(() => void ic.end().catch(() => {}));
    const wc = new pg.Client({ connectionString: url, application_name: 'bench-wait-sampler' });
    wc.on('error', () => {});
    await wc.connect();
    cleanups.push(() => void wc.end().catch(() => {}));
    const invariants: (Invariant & { startedAt: number })[] = [];
    const inv = async (at: string) => {
      const startedAt = Date.now();
      const r = { ...(await checkInvariant(ic, rows, at)), startedAt };
      invariants.push(r);
      say(`  invariant ${at}: ${r.ok ? 'holds' : 'BROKEN'} (accounts ${r.accounts}, tellers ${r.tellers}, branches ${r.branches}, history ${r.history}; ${r.rows} rows, ${r.accountsOff} accounts off; ${r.ms} ms)`);
      return r;
    };
    await inv('start');

    // ── the migration under load
    say(`load: pgbench -f tpcb-like, ${o.clients} clients as ${APP_ROLE} (not a superuser), at most ${o.maxSeconds} s`);
    // both loads start from the same state (settleBeforeLoad): A/A runs without it (--calibrate --no-settle) put one
    // load's longest transaction at 1.9× and 3.8× the other's in two pairs of four, with no migration at all
    if (o.walPoolMb > 0) {
      const w = await warmWalPool(c, o.walPoolMb);
      say(`WAL pool: ${o.walPoolMb} MB written and recycled before both loads (${w.segments} segments, ${w.seconds} s)`);
    }
    await settleBeforeLoad(c);
    const walMig0 = await walMark(c);
    const load = new Load({ ...loadOpts, name: 'migration', seconds: o.maxSeconds });
    cleanups.push(() => load.kill());
    const migWaits = new WaitSampler(wc, dbName);
    migWaits.start();
    const deadline = load.startedAt + o.maxSeconds * 1000;
    await waitForWrites(c, load, 500, deadline);
    say(`pgshift --until 5 --confirm ${TABLE} (online copy, swap${swapBudget ? `, swap.maxLockMs ${o.maxLockMs}` : '; this plan format has no swap.maxLockMs'}, lock_timeout ${o.lockTimeoutMs} ms)`);
    const pending: { swap?: Promise<Invariant>; back?: Promise<Invariant> } = {};
    const fwd = runPgshift({
      args: ['--plan', planFile, '--until', '5', '--confirm', TABLE], databaseUrl: url, logFile: path.join(dir, 'pgshift-forward.jsonl'),
      timeoutMs: Math.max(10_000, deadline - Date.now()),
      onEvent: (e) => {
        echo(e);
        if (e.type === 'step-done' && e.stepId === SWAP_STEP && e.status === 'done') pending.swap = inv('after the swap');
      },
    });
    cleanups.push(() => fwd.kill());
    const forward = await fwd.done;
    const swapInvariant = pending.swap ? await pending.swap : null;
    const swap = lockReport(forward.events, SWAP_STEP);
    const swapDuringLoad = swap.doneAt !== null && (swap.lockedAt ?? swap.doneAt) < (load.exitedAt ?? Infinity);
    const rate = rates(forward.events, swap.lockedAt ?? swap.doneAt);

    let back: CliRun | null = null;
    let swapBack: LockReport | null = null;
    let backInvariant: Invariant | null = null;
    let swapBackDuringLoad = false;
    let backRate: ReturnType<typeof rates> | null = null;
    if (swap.doneAt !== null) {
      const w = await waitForWrites(c, load, o.writesAfterSwap, deadline);
      say(`${w.toLocaleString('en-US')} application transactions after the swap; pgshift --rollback`);
      const rb = runPgshift({
        args: ['--plan', planFile, '--rollback', '--confirm', TABLE, '--confirm', `public.${TARGET}`, '--confirm', 'created-objects'],
        databaseUrl: url, logFile: path.join(dir, 'pgshift-rollback.jsonl'), timeoutMs: Math.max(10_000, deadline - Date.now()),
        onEvent: (e) => {
          echo(e);
          if (e.type === 'step-done' && e.stepId === SWAPBACK_STEP && e.status === 'done') pending.back = inv('after the swap-back');
        },
      });
      cleanups.push(() => rb.kill());
      back = await rb.done;
      backInvariant = pending.back ? await pending.back : null;
      swapBack = lockReport(back.events, SWAPBACK_STEP);
      backRate = rates(back.events, swapBack.lockedAt ?? swapBack.doneAt);
      swapBackDuringLoad = swapBack.doneAt !== null && (swapBack.lockedAt ?? swapBack.doneAt) < (load.exitedAt ?? Infinity);
      await waitForWrites(c, load, o.tail, deadline);
    }
    say(load.running ? 'stopping the load (terminating the application role\'s sessions)' : 'the load ended on its own');
    const mig = await load.stop(c);
    const walMig = await walSince(c, walMig0);
    await migWaits.stop();
    const atRest = await inv('at rest, after the migration load');

    // ── the baseline: the same pgbench, no migration
    const idleSeconds = Math.max(20, Math.round(o.idleSeconds ?? (mig.seconds || 60)));
    say(`baseline: the same pgbench for ${idleSeconds} s, no migration`);
    await settleBeforeLoad(c);
    const walIdle0 = await walMark(c);
    const idleLoad = new Load({ ...loadOpts, name: 'baseline', seconds: idleSeconds });
    cleanups.push(() => idleLoad.kill());
    const idleWaits = new WaitSampler(wc, dbName);
    idleWaits.start();
    // the checks made under the migration load (a full scan each) are made at the same offsets of the baseline
    const mirrored = invariants.filter((i) => i.startedAt > load.startedAt && i.startedAt < (load.exitedAt ?? Infinity) && i.at !== 'at rest, after the migration load');
    for (const m of mirrored) {
      const at = idleLoad.startedAt + (m.startedAt - load.startedAt);
      while (idleLoad.running && Date.now() < at) await new Promise((r) => setTimeout(r, Math.min(250, at - Date.now())));
      if (idleLoad.running) await inv(`baseline, at the offset of "${m.at}"`);
    }
    const idle = await idleLoad.done;
    const walIdle = await walSince(c, walIdle0);
    await idleWaits.stop();
    const idleInvariant = await inv('after the baseline');

    // ── figures and targets
    const window = (r: LockReport | null) => (r?.doneAt ? [r.lockedAt ?? r.doneAt - (r.lockHeldMs ?? 0), r.doneAt] as const : null);
    const sw = window(swap), bw = swapBack ? window(swapBack) : null;
    const appFailed = mig.failed + mig.aborted;
    // what the application waited on during its longest transaction (sampled), in both runs
    const worst = longest(mig.txs), worstIdle = longest(idle.txs);
    const waitsAt = (w: WaitSampler, t: { start: number; end: number } | null) => (t ? w.waitsIn(t.start, t.end) : {});
    // where the longest application transactions happened: per pgshift step (and the load outside any step)
    const byStep: Record<string, number | null> = {};
    const stepWindows: [number, number][] = [];
    for (const run of [forward, back]) {
      if (!run) continue;
      const started = new Map<string, number>();
      for (const e of run.events) {
        if (e.type === 'step-started' && e.stepId) started.set(e.stepId, Date.parse(e.ts));
        if ((e.type === 'step-done' || e.type === 'step-failed') && e.stepId && started.has(e.stepId)) {
          const w: [number, number] = [started.get(e.stepId)!, Date.parse(e.ts)];
          stepWindows.push(w);
          byStep[e.stepId] = maxLatencyIn(mig.txs, w[0], w[1]);
          started.delete(e.stepId);
        }
      }
    }
    let outside = 0;
    for (const t of mig.txs) if (!stepWindows.some(([a, b]) => t.end >= a && t.start <= b)) outside = Math.max(outside, t.end - t.start);
    byStep['(no pgshift step running)'] = Math.round(outside * 10) / 10;
    const invariantOk = !!swapInvariant?.ok && !!backInvariant?.ok && atRest.ok && idleInvariant.ok && invariants.every((i) => i.ok);
    const out = {
      tps: mig.tps,
      tps_idle: idle.tps,
      lock_held_ms: swap.lockHeldMs,
      changes_under_lock: swap.changesUnderLock,
      swapback_lock_held_ms: swapBack?.lockHeldMs ?? null,
      app_max_latency_ms: mig.transactions ? mig.maxLatencyMs : null,
      app_max_latency_idle_ms: idle.transactions ? idle.maxLatencyMs : null,
      app_failed: appFailed,
      invariant_ok: invariantOk,
      replay_rate: rate.replay,
      capture_rate: rate.capture,
      // context
      applied_rate: rate.applied,
      swapback_capture_rate: backRate?.capture ?? null,
      swapback_replay_rate: backRate?.replay ?? null,
      swapback_changes_under_lock: swapBack?.changesUnderLock ?? null,
      app_p99_latency_ms: mig.transactions ? mig.p99LatencyMs : null,
      app_p99_latency_idle_ms: idle.transactions ? idle.p99LatencyMs : null,
      app_max_latency_swap_ms: sw ? maxLatencyIn(mig.txs, sw[0], sw[1]) : null,
      app_max_latency_swapback_ms: bw ? maxLatencyIn(mig.txs, bw[0], bw[1]) : null,
      app_max_latency_by_step: byStep,
      app_max_latency_at: worst ? new Date(worst.start).toISOString() : null,
      app_max_latency_waits: waitsAt(migWaits, worst),
      app_max_latency_idle_waits: waitsAt(idleWaits, worstIdle),
      // checkpoints begun during each load (timed or requested): after one, every first write of a page logs the whole page
      checkpoints_during_load: walMig.checkpoints,
      checkpoints_during_idle: walIdle.checkpoints,
      // WAL written during each load, and segment files created (not recycled): each creation stalls every commit
      wal_mb_during_load: walMig.mb,
      wal_mb_during_idle: walIdle.mb,
      wal_segments_created_during_load: walMig.segmentsCreated,
      wal_segments_created_during_idle: walIdle.segmentsCreated,
      wal_pool_mb: o.walPoolMb,
      app_blocked_by_pgshift: migWaits.blockedBy(/^pgshift/),
      swap_during_load: swapDuringLoad,
      swapback_during_load: swapBackDuringLoad,
      app_transactions: mig.transactions,
      app_transactions_idle: idle.transactions,
      app_failed_transactions: mig.failed,
      app_aborted_clients: mig.aborted,
      app_transactions_after_stop: mig.afterStop,
      app_errors: mig.errors,
      load_seconds: mig.seconds,
      idle_seconds: idle.seconds,
      pgshift_exit: forward.code,
      pgshift_rollback_exit: back?.code ?? null,
      pgshift_seconds: Math.round((forward.endedAt - forward.startedAt) / 1000),
      pgshift_rollback_seconds: back ? Math.round((back.endedAt - back.startedAt) / 1000) : null,
      swap_summary: swap.summary,
      // the application's account lookup (its WHERE), and what phase 3's pruning check said of it on the new table
      app_lookup: o.aidOnly ? 'aid' : 'aid, bid',
      pruning: forward.events.find((e) => e.type === 'step-done' && e.stepId === 'verify:pruning')?.summary ?? null,
      swapback_summary: swapBack?.summary ?? null,
      swap_budget_in_plan: swapBudget,
      invariants,
      scale: o.scale,
      clients: o.clients,
      logs: dir,
    };
    const missed: string[] = [];
    if (forward.code !== 0) missed.push(`pgshift (phases 1-5) exited ${forward.code}`);
    if (back && back.code !== 0) missed.push(`pgshift --rollback exited ${back.code}`);
    if (!swapDuringLoad) missed.push('the swap did not happen during the load');
    if (!swapBackDuringLoad) missed.push('the swap-back did not happen during the load');
    if (!swapInvariant?.ok) missed.push(`invariant after the swap ${swapInvariant ? 'broken' : 'not checked (no swap)'}`);
    if (!backInvariant?.ok) missed.push(`invariant after the swap-back ${backInvariant ? 'broken' : 'not checked (no swap-back)'}`);
    if (!atRest.ok || !idleInvariant.ok) missed.push('invariant broken at rest');
    if (appFailed !== 0) missed.push(`${appFailed} failed or aborted application transaction(s): ${mig.errors.slice(0, 3).join(' | ')}`);
    if (out.lock_held_ms === null || out.lock_held_ms > 100) missed.push(`lock_held_ms ${fmtN(out.lock_held_ms)} > 100`);
    if (out.swapback_lock_held_ms === null || out.swapback_lock_held_ms > 100) missed.push(`swapback_lock_held_ms ${fmtN(out.swapback_lock_held_ms)} > 100`);
    if (out.app_max_latency_ms === null || out.app_max_latency_idle_ms === null || out.app_max_latency_ms > 1.5 * out.app_max_latency_idle_ms) {
      missed.push(`app_max_latency_ms ${fmtN(out.app_max_latency_ms)} > 1.5 × app_max_latency_idle_ms ${fmtN(out.app_max_latency_idle_ms)}`);
    }
    if (out.changes_under_lock === null) missed.push('changes_under_lock not reported by pgshift');
    if (out.replay_rate === null) missed.push('replay_rate not reported by pgshift');
    if (out.capture_rate === null) missed.push('capture_rate not reported by pgshift');
    exit = missed.length ? 1 : 0;
    if (o.json) console.log(JSON.stringify({ ...out, pass: !missed.length, missed }));
    else {
      console.log(`cut-over under pgbench (tpcb-like, scale ${o.scale}, ${o.clients} clients as ${APP_ROLE}); baseline: the same load, no migration`);
      console.log(`  tps ${fmtN(out.tps)} (idle ${fmtN(out.tps_idle)})   app_max_latency_ms ${fmtN(out.app_max_latency_ms)} (idle ${fmtN(out.app_max_latency_idle_ms)}; p99 ${fmtN(out.app_p99_latency_ms)}, idle ${fmtN(out.app_p99_latency_idle_ms)}; during the swap lock ${fmtN(out.app_max_latency_swap_ms)}, the swap-back lock ${fmtN(out.app_max_latency_swapback_ms)})`);
      console.log(`  longest application transaction by pgshift step: ${Object.entries(byStep).filter(([, v]) => v !== null).sort((a, b) => b[1]! - a[1]!).slice(0, 5).map(([k, v]) => `${k} ${v} ms`).join(', ')}`);
      const w = (x: Record<string, number>) => Object.entries(x).slice(0, 4).map(([k, n]) => `${k} ×${n}`).join(', ') || 'no sample';
      console.log(`  the application waited on (session samples during its longest transaction): ${w(out.app_max_latency_waits)}; idle: ${w(out.app_max_latency_idle_waits)}`);
      console.log(`  blocked by a pgshift session: longest stretch ~${out.app_blocked_by_pgshift.longestMs} ms (200 ms samples), ${out.app_blocked_by_pgshift.sessionSamples} session-samples in all`);
      console.log(`  lock_held_ms ${fmtN(out.lock_held_ms)}   changes_under_lock ${fmtN(out.changes_under_lock)}   swapback_lock_held_ms ${fmtN(out.swapback_lock_held_ms)} (changes under it ${fmtN(out.swapback_changes_under_lock)})`);
      console.log(`  replay_rate ${fmtN(out.replay_rate, '/s')}   capture_rate ${fmtN(out.capture_rate, '/s')}   (applied ${fmtN(out.applied_rate, '/s')}; swap-back: replay ${fmtN(out.swapback_replay_rate, '/s')}, capture ${fmtN(out.swapback_capture_rate, '/s')})`);
      console.log(`  app_failed ${appFailed} (${mig.failed} failed transactions, ${mig.aborted} aborted clients)   invariant_ok ${invariantOk}`);
      console.log(`  WAL: ${fmtN(out.wal_mb_during_load)} MB written during the migration load (${out.wal_segments_created_during_load} segment(s) created), ${fmtN(out.wal_mb_during_idle)} MB during the baseline (${out.wal_segments_created_during_idle} created); pool warmed ${o.walPoolMb} MB; checkpoints ${walMig.checkpoints} / ${walIdle.checkpoints}`);
      console.log(`  the application looks accounts up by ${out.app_lookup}; phase 3's pruning check: ${out.pruning ?? 'not run'}`);
      console.log(`  pgshift: phases 1-5 exit ${forward.code} in ${out.pgshift_seconds} s, rollback exit ${fmtN(out.pgshift_rollback_exit)} in ${fmtN(out.pgshift_rollback_seconds)} s; load ${mig.seconds} s, baseline ${idle.seconds} s`);
      for (const m of missed) console.log(`  ✗ ${m}`);
      console.log(missed.length ? `MISSED ${missed.length} target(s); logs in ${dir}` : 'all targets met');
    }
    return exit;
  } catch (e) {
    // after Ctrl+C the flow fails on closed connections: the signal handler finishes the cleanup and exits 130
    if (interrupted) await new Promise(() => {});
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const f of cleanups.reverse()) f();
    await admin.end().catch(() => {});
    await server.stop();
    fs.rmSync(path.join(dir, 'backups'), { recursive: true, force: true });
    if (!o.keep && exit === 0) fs.rmSync(dir, { recursive: true, force: true });
  }
}

export type { LoadResult };
