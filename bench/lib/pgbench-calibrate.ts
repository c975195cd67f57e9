import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { startEmbedded } from '../../source/demo/embedded.js';
import { createAppRole, Load, longest, numberFlag, settleBeforeLoad, tpcbScript, warmWalPool } from './pgbench.js';

/**
 * `npm run bench:cutover -- --load pgbench --calibrate [--pairs K] [--seconds S] [--json]` — how noisy is the latency
 * target itself? The cut-over bench compares the longest application transaction of one load (the migration's)
 * with the longest of another (the baseline's) and calls 1.5× a miss. Here both loads are the same pgbench with no
 * migration at all (an A/A test): K pairs of S-second loads, back to back on one fresh server, scale and clients as
 * the cut-over bench. Each pair gives two ordered ratios (first/second, second/first); the share of ratios over 1.5
 * is how often the target would be missed by a migration that costs the application nothing. Information for
 * reading the cut-over bench, not a target: exits 0 unless a load failed. Each load starts from the same state
 * (settleBeforeLoad), as both loads of the cut-over bench do; `--no-settle` leaves that out. Like the cut-over bench,
 * the server first gets a pool of recycled WAL segments (warmWalPool, `--wal-pool-mb`, default 2048; 0: none).
 */

export interface CalibrateOptions {
  readonly json: boolean;
  readonly scale: number;
  readonly clients: number;
  readonly threads: number;
  readonly pairs: number;
  readonly seconds: number;
  /** each load starts from the same state: VACUUM ANALYZE of pgbench's tables and a CHECKPOINT before it */
  readonly settle: boolean;
  readonly walPoolMb: number;
}

export function parseCalibrateOptions(argv: readonly string[]): CalibrateOptions {
  const val = (flag: string, def: number) => numberFlag(argv, flag, def, true);
  return { json: argv.includes('--json'), scale: val('--scale', 10), clients: val('--clients', 8), threads: val('--threads', 2), pairs: val('--pairs', 3), seconds: val('--seconds', 100), settle: !argv.includes('--no-settle'), walPoolMb: numberFlag(argv, '--wal-pool-mb', 2048, true, true) };
}

const say = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

export async function runCalibrate(o: CalibrateOptions): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-bench-calibrate-'));
  const server = await startEmbedded({});
  const admin = new pg.Client({ connectionString: server.url });
  admin.on('error', () => {});
  const loads: Load[] = [];
  const onSignal = () => {
    for (const l of loads) l.kill();
    void server.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await admin.connect();
    const dbName = 'bench_calibrate';
    await admin.query(`CREATE DATABASE ${dbName}`);
    say(`pgbench -i -s ${o.scale}; ${o.pairs} pair(s) of ${o.seconds}-second loads, ${o.clients} clients, no migration`);
    const init = spawnSync('pgbench', ['-i', '-s', String(o.scale), '-q', '-h', '127.0.0.1', '-p', String(server.port), '-U', 'postgres', dbName], {
      env: { ...process.env, PGPASSWORD: server.password }, encoding: 'utf8',
    });
    if (init.status !== 0) throw new Error(`pgbench -i failed: ${init.stderr}`);
    const u = new URL(server.url);
    u.pathname = `/${dbName}`;
    const c = new pg.Client({ connectionString: u.toString() });
    c.on('error', () => {});
    await c.connect();
    const password = crypto.randomBytes(12).toString('hex');
    await createAppRole(c, dbName, password);
    if (o.walPoolMb > 0) {
      const w = await warmWalPool(c, o.walPoolMb);
      say(`WAL pool: ${o.walPoolMb} MB written and recycled before the loads (${w.segments} segments, ${w.seconds} s)`);
    }
    const script = path.join(dir, 'tpcb-like.sql');
    fs.writeFileSync(script, tpcbScript(o.scale));
    const base = { dir, script, host: '127.0.0.1', port: server.port, database: dbName, password, clients: o.clients, threads: o.threads, seconds: o.seconds };
    const pairs: { first: number; second: number; tps: [number, number]; p99: [number, number]; at: [number | null, number | null] }[] = [];
    let failed = 0;
    for (let i = 0; i < o.pairs; i++) {
      const r = [];
      for (const name of [`pair${i + 1}-first`, `pair${i + 1}-second`]) {
        if (o.settle) await settleBeforeLoad(c);
        const l = new Load({ ...base, name });
        loads.push(l);
        const x = await l.done;
        failed += x.failed + x.aborted;
        r.push(x);
      }
      const [a, b] = r as [Awaited<Load['done']>, Awaited<Load['done']>];
      // where in its load each longest transaction ended (seconds after the load's first transaction)
      const at = (x: typeof a) => {
        const w = longest(x.txs);
        return w && x.txs.length ? Math.round((w.end - x.txs[0]!.end) / 100) / 10 : null;
      };
      pairs.push({ first: a.maxLatencyMs, second: b.maxLatencyMs, tps: [a.tps, b.tps], p99: [a.p99LatencyMs, b.p99LatencyMs], at: [at(a), at(b)] });
      say(`  pair ${i + 1}: longest transaction ${a.maxLatencyMs} ms (at ${at(a)} s) then ${b.maxLatencyMs} ms (at ${at(b)} s), ratio ${(a.maxLatencyMs / b.maxLatencyMs).toFixed(2)}; p99 ${a.p99LatencyMs} / ${b.p99LatencyMs} ms; ${a.tps} / ${b.tps} tps`);
    }
    await c.end();
    const ratios = pairs.flatMap((p) => [p.first / p.second, p.second / p.first]);
    const over = ratios.filter((r) => r > 1.5).length;
    const out = {
      pairs, seconds: o.seconds, scale: o.scale, clients: o.clients, settle: o.settle,
      ratios: ratios.map((r) => Math.round(r * 100) / 100),
      ratios_over_1_5: over, ratios_total: ratios.length, app_failed: failed,
    };
    if (o.json) console.log(JSON.stringify(out));
    else {
      console.log(`A/A: ${o.pairs} pair(s) of the same ${o.seconds}-second pgbench load (tpcb-like, scale ${o.scale}, ${o.clients} clients), no migration`);
      for (const [i, p] of pairs.entries()) console.log(`  pair ${i + 1}: longest ${p.first} / ${p.second} ms, p99 ${p.p99[0]} / ${p.p99[1]} ms, ${p.tps[0]} / ${p.tps[1]} tps`);
      console.log(`  longest-transaction ratios over 1.5 (the cut-over bench's latency target): ${over} of ${ratios.length}`);
    }
    return failed ? 1 : 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const l of loads) l.kill();
    await admin.end().catch(() => {});
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
