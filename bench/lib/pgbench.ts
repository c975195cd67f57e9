import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type pg from 'pg';
import { ident, qname } from '../../source/db/quote.js';
import { walMark, walSince } from './wal.js';

/**
 * pgbench as the application: the tpcb-like transaction as a custom script (the builtin one refuses a
 * LIST-partitioned pgbench_accounts), run by a non-superuser role, its per-transaction log (-l) read back for
 * latency and failures, its stderr for aborted clients. Every run is bounded by -T; stop() ends it early by
 * terminating the role's sessions (pgbench then prints its summary and flushes its logs, which SIGINT would not).
 */

export const APP_ROLE = 'bench_app';

/** A positive number given as `flag N` on the command line (`def` when absent); `whole`: an integer too; `zero`: 0 allowed. */
export function numberFlag(argv: readonly string[], flag: string, def: number, whole = false, zero = false): number {
  const i = argv.indexOf(flag);
  if (i < 0) return def;
  const n = Number(argv[i + 1]);
  const low = zero ? n < 0 : n <= 0;
  if (whole ? !Number.isInteger(n) || low : !Number.isFinite(n) || low) {
    throw new Error(`${flag} expects a ${zero ? 'non-negative' : 'positive'} ${whole ? 'whole number' : 'number'}, got "${argv[i + 1] ?? ''}"`);
  }
  return n;
}

/**
 * pgbench's builtin tpcb-like transaction, with the scale written in (a custom script has no :scale).
 * `partitionKey` (the default): the account is looked up by aid AND its branch, `(aid - 1) / 100000 + 1` — the bid
 * `pgbench -i` gives it — as an application does once the table is partitioned by bid, so the lookup touches one
 * partition. Without it (pgbench's own statements, by aid alone) every lookup on the partitioned table probes all
 * its partitions: on this machine 2,200 tps against 3,000–3,100 with the key (scratch PG 15, scale 10, 8 clients,
 * 11 partitions), the plan's cost and not the cut-over's, which the pruning check of phase 3 reports.
 */
export function tpcbScript(scale: number, partitionKey = true): string {
  const account = partitionKey ? 'aid = :aid AND bid = :abid' : 'aid = :aid';
  return [
    `\\set aid random(1, ${100_000 * scale})`,
    `\\set bid random(1, ${scale})`,
    `\\set tid random(1, ${10 * scale})`,
    `\\set delta random(-5000, 5000)`,
    ...(partitionKey ? ['\\set abid (:aid - 1) / 100000 + 1'] : []),
    'BEGIN;',
    `UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE ${account};`,
    `SELECT abalance FROM pgbench_accounts WHERE ${account};`,
    'UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;',
    'UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;',
    'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);',
    'END;',
    '',
  ].join('\n');
}

/** The application role: LOGIN, not a superuser, nothing but what the tpcb-like transaction needs. */
export async function createAppRole(c: pg.ClientBase, db: string, password: string): Promise<void> {
  await c.query(`CREATE ROLE ${ident(APP_ROLE)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password.replace(/'/g, "''")}'`);
  await c.query(`GRANT CONNECT ON DATABASE ${ident(db)} TO ${ident(APP_ROLE)}`);
  await c.query(`GRANT USAGE ON SCHEMA public TO ${ident(APP_ROLE)}`);
  for (const t of ['pgbench_accounts', 'pgbench_tellers', 'pgbench_branches']) await c.query(`GRANT SELECT, UPDATE ON ${qname('public', t)} TO ${ident(APP_ROLE)}`);
  await c.query(`GRANT INSERT ON public.pgbench_history TO ${ident(APP_ROLE)}`);
}

export interface Invariant {
  readonly at: string;
  readonly ok: boolean;
  readonly accounts: string;
  readonly tellers: string;
  readonly branches: string;
  readonly history: string;
  readonly rows: number;
  readonly distinctAids: number;
  /** accounts whose balance differs from the sum of their history deltas (an update lost or applied twice) */
  readonly accountsOff: number;
  readonly ms: number;
}

/**
 * pgbench's invariant in one REPEATABLE READ snapshot (valid under load: each transaction moves the same delta in
 * all four tables): sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta), plus, stricter, every account's
 * balance equals the sum of its history and every account is there exactly once.
 */
export async function checkInvariant(c: pg.ClientBase, expectedRows: number, at: string): Promise<Invariant> {
  const t0 = performance.now();
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const s = (await c.query<{ a: string; t: string; b: string; h: string; n: string; d: string }>(
      `SELECT (SELECT coalesce(sum(abalance), 0) FROM public.pgbench_accounts)::text AS a,
              (SELECT coalesce(sum(tbalance), 0) FROM public.pgbench_tellers)::text AS t,
              (SELECT coalesce(sum(bbalance), 0) FROM public.pgbench_branches)::text AS b,
              (SELECT coalesce(sum(delta), 0) FROM public.pgbench_history)::text AS h,
              (SELECT count(*) FROM public.pgbench_accounts) AS n,
              (SELECT count(DISTINCT aid) FROM public.pgbench_accounts) AS d`,
    )).rows[0]!;
    const off = (await c.query<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT aid, sum(delta) AS s FROM public.pgbench_history GROUP BY aid) h
         FULL JOIN public.pgbench_accounts a USING (aid)
        WHERE a.aid IS NULL OR coalesce(h.s, 0) <> a.abalance`,
    )).rows[0]!;
    await c.query('COMMIT');
    const rows = Number(s.n), distinctAids = Number(s.d), accountsOff = Number(off.n);
    return {
      at, ok: s.a === s.t && s.t === s.b && s.b === s.h && rows === expectedRows && distinctAids === rows && accountsOff === 0,
      accounts: s.a, tellers: s.t, branches: s.b, history: s.h, rows, distinctAids, accountsOff, ms: Math.round(performance.now() - t0),
    };
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

export interface LoadResult {
  /** successful transactions (per-transaction log) */
  readonly transactions: number;
  /** transactions pgbench logged as failed (serialization, deadlock) */
  readonly failed: number;
  /** clients aborted by an error before the bench stopped the load (each is at least one failed statement) */
  readonly aborted: number;
  readonly errors: readonly string[];
  readonly tps: number;
  readonly maxLatencyMs: number;
  readonly p99LatencyMs: number;
  readonly seconds: number;
  readonly exitCode: number | null;
  /** the load ended by its -T bound (not stopped by the bench) */
  readonly endedByBound: boolean;
  /** successful transactions that ended after stop() began terminating the sessions: not measured */
  readonly afterStop: number;
  /** start and end (epoch ms) of each successful transaction */
  readonly txs: readonly { readonly start: number; readonly end: number }[];
}

export interface LoadOptions {
  readonly dir: string;
  readonly name: string;
  readonly script: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly password: string;
  readonly clients: number;
  readonly threads: number;
  readonly seconds: number;
}

/** A running pgbench; stop() (terminate the role's sessions) or its -T bound ends it; done resolves with the figures. */
export class Load {
  readonly startedAt = Date.now();
  private readonly child: ChildProcess;
  private stopRequestedAt = 0;
  private stdout = '';
  private readonly stderrLines: { at: number; line: string }[] = [];
  readonly done: Promise<LoadResult>;
  private exited = false;
  /** epoch ms when pgbench exited (null while it runs) */
  exitedAt: number | null = null;

  constructor(private readonly o: LoadOptions) {
    const prefix = path.join(o.dir, o.name);
    const args = [
      '-n', '-f', o.script, '-c', String(o.clients), '-j', String(o.threads), '-T', String(o.seconds),
      '-l', '--log-prefix', prefix, '--max-tries', '1',
      '-h', o.host, '-p', String(o.port), '-U', APP_ROLE, o.database,
    ];
    this.child = spawn('pgbench', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PGPASSWORD: o.password, PGAPPNAME: `bench-${o.name}` } });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => { this.stdout += d; });
    let partial = '';
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const parts = (partial + d).split('\n');
      partial = parts.pop()!;
      for (const line of parts) this.stderrLines.push({ at: Date.now(), line });
    });
    this.done = new Promise<{ code: number | null }>((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('exit', (code) => { this.exited = true; this.exitedAt = Date.now(); resolve({ code }); });
    }).then(({ code }) => {
      fs.writeFileSync(`${prefix}.stdout`, this.stdout);
      fs.writeFileSync(`${prefix}.stderr`, this.stderrLines.map((l) => l.line).join('\n'));
      return this.result(code);
    });
  }

  get running(): boolean {
    return !this.exited;
  }

  /** Ends the load: the role's sessions are terminated; aborts after this are the bench's, not failures. */
  async stop(admin: pg.ClientBase): Promise<LoadResult> {
    if (this.exited) return this.done;
    this.stopRequestedAt = Date.now();
    const kill = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    for (let i = 0; i < 50 && !this.exited; i++) {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND datname = $2`, [APP_ROLE, this.o.database]);
      await Promise.race([this.done, new Promise((r) => setTimeout(r, 200))]);
    }
    const r = await this.done;
    clearTimeout(kill);
    return r;
  }

  /** Kills pgbench if it still runs (the bench failed): no stray process. */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private result(code: number | null): LoadResult {
    const prefix = path.basename(path.join(this.o.dir, this.o.name));
    const files = fs.readdirSync(this.o.dir).filter((f) => f.startsWith(`${prefix}.`) && /^\d+(\.\d+)?$/.test(f.slice(prefix.length + 1)));
    const txs: { start: number; end: number }[] = [];
    let failed = 0;
    let maxUs = 0;
    // stop() terminates the role's sessions: a transaction still running then is the bench's doing, not the
    // migration's (the baseline ends by its -T bound, without that), so only those ended before it are measured
    const stopAt = this.stopRequestedAt || Infinity;
    let afterStop = 0;
    for (const f of files) {
      for (const line of fs.readFileSync(path.join(this.o.dir, f), 'utf8').split('\n')) {
        if (!line) continue;
        // client_id transaction_no time script_no time_epoch time_us [schedule_lag] [retries]
        const x = line.split(' ');
        const end = Number(x[4]) * 1000 + Number(x[5]) / 1000;
        if (!/^\d+$/.test(x[2]!)) {
          if (x[2] !== 'skipped') failed++;
          continue;
        }
        const us = Number(x[2]);
        if (end > stopAt) {
          afterStop++;
          continue;
        }
        maxUs = Math.max(maxUs, us);
        txs.push({ start: end - us / 1000, end });
      }
    }
    const abortLines = this.stderrLines.filter((l) => /client \d+ (?:script \d+ )?aborted/.test(l.line));
    const errors = this.stderrLines.filter((l) => l.at < stopAt && /aborted|ERROR|FATAL/.test(l.line)).map((l) => l.line.replace(/^pgbench: error: /, ""));
    txs.sort((a, b) => a.end - b.end);
    const first = txs[0]?.end ?? 0, last = txs.at(-1)?.end ?? 0;
    const seconds = last > first ? (last - first) / 1000 : 0;
    return {
      transactions: txs.length,
      failed: Math.max(failed, Number(/number of failed transactions: (\d+)/.exec(this.stdout)?.[1] ?? 0)),
      aborted: abortLines.filter((l) => l.at < stopAt).length,
      errors: [...new Set(errors)].slice(0, 10),
      tps: seconds ? Math.round(txs.length / seconds) : 0,
      maxLatencyMs: Math.round(maxUs / 100) / 10,
      p99LatencyMs: p99(txs.map((t) => t.end - t.start)),
      seconds: Math.round(seconds),
      exitCode: code,
      endedByBound: !this.stopRequestedAt,
      afterStop,
      txs,
    };
  }
}

function p99(xs: number[]): number {
  if (!xs.length) return 0;
  xs.sort((a, b) => a - b);
  return Math.round(xs[Math.min(xs.length - 1, Math.ceil(0.99 * xs.length) - 1)]! * 10) / 10;
}

/** The longest transaction that overlapped [from, to] (epoch ms), in ms. */
export function maxLatencyIn(txs: LoadResult['txs'], from: number, to: number): number | null {
  let m = -1;
  for (const t of txs) if (t.end >= from && t.start <= to) m = Math.max(m, t.end - t.start);
  return m < 0 ? null : Math.round(m * 10) / 10;
}

/**
 * What the application's sessions wait on, sampled every `everyMs` from pg_stat_activity on its own connection:
 * wait_event_type:wait_event, and for a lock wait the application_name of the sessions blocking it
 * (pg_blocking_pids), so a latency peak can be told apart: pgshift's lock, the application's own row locks, or I/O.
 */
export class WaitSampler {
  readonly samples: { at: number; waits: Record<string, number> }[] = [];
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(private readonly c: pg.ClientBase, private readonly database: string, private readonly everyMs = 200) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const t0 = Date.now();
        try {
          const r = await this.c.query<{ k: string; n: string }>(
            `SELECT coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU/running')
                    || coalesce(' ← ' || (SELECT string_agg(DISTINCT coalesce(nullif(b.application_name, ''), 'pid ' || b.pid), ', ')
                                          FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(a.pid))), '') AS k, count(*) AS n
               FROM pg_stat_activity a
              WHERE a.usename = $1 AND a.datname = $2 AND a.state = 'active'
              GROUP BY 1`,
            [APP_ROLE, this.database],
          );
          this.samples.push({ at: t0, waits: Object.fromEntries(r.rows.map((x) => [x.k, Number(x.n)])) });
        } catch {
          if (this.stopped) break;
        }
        await new Promise((res) => setTimeout(res, Math.max(0, this.everyMs - (Date.now() - t0))));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /**
   * The longest stretch of consecutive samples in which some application session waited on a lock held by a session
   * whose application_name matches `who` (e.g. /^pgshift/), in ms (sample resolution), and how many session-samples
   * waited on it in all.
   */
  blockedBy(who: RegExp): { longestMs: number; sessionSamples: number } {
    let run = 0, best = 0, total = 0, start = 0;
    for (const s of this.samples) {
      const n = Object.entries(s.waits).filter(([k]) => { const b = k.split(' ← ')[1]; return !!b && b.split(', ').some((x) => who.test(x)); }).reduce((a, [, v]) => a + v, 0);
      total += n;
      if (n > 0) {
        if (!run) start = s.at;
        run++;
        best = Math.max(best, s.at - start + this.everyMs);
      } else run = 0;
    }
    return { longestMs: best, sessionSamples: total };
  }

  /** Session-samples per wait between from and to (epoch ms), most frequent first. */
  waitsIn(from: number, to: number): Record<string, number> {
    const sum: Record<string, number> = {};
    for (const s of this.samples) {
      if (s.at < from || s.at > to) continue;
      for (const [k, n] of Object.entries(s.waits)) sum[k] = (sum[k] ?? 0) + n;
    }
    return Object.fromEntries(Object.entries(sum).sort((a, b) => b[1] - a[1]));
  }
}

/**
 * A fresh cluster has a handful of WAL segments; a server that has run this load for a checkpoint cycle has a pool of
 * recycled ones (checkpoint_timeout 5 min at pgbench's ~7 MB/s: ~2 GB). Without a pool, every 16 MB of WAL written by
 * anyone creates a segment: zero-filled and fsynced under WALWriteLock, while every commit waits (IO:WALInitSync).
 * The first load then pays for segments the second reuses: measured 2026-12-02, the migration load's longest
 * transaction fell on IO:WALInitSync / LWLock:WALWrite while its baseline, run after it, created none. So the bench
 * writes `mb` of WAL once, before either load, and keeps the pool: min_wal_size at least that large, then a
 * CHECKPOINT recycles those segments for both loads alike.
 */
export async function warmWalPool(c: pg.ClientBase, mb: number): Promise<{ segments: number; seconds: number }> {
  const t0 = performance.now();
  await c.query(`ALTER SYSTEM SET min_wal_size = '${Math.ceil(mb)}MB'`);
  await c.query('SELECT pg_reload_conf()');
  await c.query('CREATE TABLE bench_wal_filler (g int, pad text)');
  const start = await walMark(c);
  for (;;) {
    await c.query(`INSERT INTO bench_wal_filler SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g`);
    if ((await walSince(c, start)).mb >= mb) break;
  }
  await c.query('DROP TABLE bench_wal_filler');
  await c.query('CHECKPOINT');
  return { segments: (await walMark(c)).segments, seconds: Math.round((performance.now() - t0) / 100) / 10 };
}

/** The longest transaction (start, end, ms). */
/**
 * Brings the database to the same state before each measured load: pgbench's tables vacuumed and analyzed (no
 * autovacuum left due from the previous load's dead rows, to fall inside one load and not the other) and a
 * CHECKPOINT (no checkpoint spreading its writes, and full-page images after it, into one load only).
 */
export async function settleBeforeLoad(c: pg.ClientBase): Promise<void> {
  await c.query('VACUUM (ANALYZE) public.pgbench_accounts, public.pgbench_tellers, public.pgbench_branches, public.pgbench_history');
  await c.query('CHECKPOINT');
}

export function longest(txs: LoadResult['txs']): { start: number; end: number; ms: number } | null {
  let best: { start: number; end: number } | null = null;
  for (const t of txs) if (!best || t.end - t.start > best.end - best.start) best = t;
  return best ? { ...best, ms: Math.round((best.end - best.start) * 10) / 10 } : null;
}
