import type pg from 'pg';
import { MonitorLoop, monitorSnapshot, type MonitorSnapshot } from '../db/monitor.js';
import { sleep } from '../db/session.js';
import type { LogLevel } from '../engine/types.js';

export interface ThrottleOptions {
  /** slow down when a session has waited this long on a lock a pgshift session holds */
  readonly lockWaitMs: number;
  /** slow down while a (non-pgshift) query or open transaction runs longer than this */
  readonly longQuerySeconds: number;
  readonly log: (message: string, level?: LogLevel) => void;
  /** how often to look, default 1 s: one cheap query over pg_stat_activity on its own connection */
  readonly intervalMs?: number;
}

export type ThrottleLevel = 'clear' | 'slow' | 'pause';

/**
 * The copy's manners. A sampler looks at the server once a second on its own connection (application_name
 * pgshift-monitor, statement_timeout 1 s) while batches run — between batches pgshift holds no lock, so a look
 * taken only then would never see the waits a batch causes. The copy loop asks `gate()` before each batch:
 * - a session has waited longer than lockWaitMs on a lock held by a pgshift session → pause (no batch, so no
 *   lock held) until a look shows nobody waiting on us;
 * - a query or transaction has run longer than longQuerySeconds → slow: half-size batches and a 500 ms pause,
 *   so a long report or a migration of someone else's gets the I/O; resume full speed when it ends.
 * Every change of pace is logged once with the reason (pid, how long, what).
 */
export class Throttle {
  private readonly loop = new MonitorLoop();
  level: ThrottleLevel = 'clear';
  reason = '';
  samples = 0;
  costMs = 0;
  pausedMs = 0;

  constructor(private readonly config: pg.ClientConfig, private readonly opts: ThrottleOptions) {}

  async start(): Promise<void> {
    const err = await this.loop.open(this.config);
    if (err) {
      this.opts.log(`throttle monitor unavailable (${err.message}); copying without it`, 'warn');
      return;
    }
    this.loop.start(this.opts.intervalMs ?? 1000, () => this.sample(), (e) => this.opts.log(`throttle monitor stopped (${e instanceof Error ? e.message : String(e)})`, 'warn'));
  }

  /** Judges one monitor snapshot: exported for tests. */
  static judge(s: MonitorSnapshot, opts: Pick<ThrottleOptions, 'lockWaitMs'>): { level: ThrottleLevel; reason: string } {
    const ours = new Set(s.blockers.filter((b) => b.pgshift).map((b) => b.pid));
    const victim = s.waits.find((w) => !w.pgshift && w.waitMs >= opts.lockWaitMs && w.blockingPids.some((p) => ours.has(p)));
    if (victim) {
      return {
        level: 'pause',
        reason: `backend ${victim.pid} (${victim.applicationName || 'no application_name'}) has waited ${(victim.waitMs / 1000).toFixed(1)} s` +
          `${victim.mode ? ` for ${victim.mode}` : ''}${victim.relation ? ` on ${victim.relation}` : ''} behind pgshift: pausing the copy so it can go first`,
      };
    }
    const long = s.long.find((a) => !a.pgshift);
    if (long) {
      return {
        level: 'slow',
        reason: `backend ${long.pid} (${long.user}${long.applicationName ? `, ${long.applicationName}` : ''}) has been ${long.state} for ${Math.round(long.durationMs / 1000)} s: ` +
          `${long.query.replace(/\s+/g, ' ').slice(0, 80)} — halving batches and pausing 500 ms between them until it ends`,
      };
    }
    return { level: 'clear', reason: '' };
  }

  private async sample(): Promise<void> {
    if (!this.loop.client) return;
    try {
      const snap = await monitorSnapshot(this.loop.client, this.opts.longQuerySeconds);
      this.samples++;
      this.costMs += snap.costMs;
      const j = Throttle.judge(snap, this.opts);
      if (j.level !== this.level) {
        if (j.level === 'clear') this.opts.log(`throttle: clear again (${this.reason.split(':')[0]} is gone): full speed`);
        else this.opts.log(`throttle: ${j.reason}`, 'warn');
      }
      this.level = j.level;
      this.reason = j.reason;
    } catch {
      // a monitor that times out must not stop the copy
    }
  }

  /** Before each batch: waits while paused; returns the batch-size factor (1 or 0.5) and the extra pause. */
  async gate(signal: AbortSignal): Promise<{ factor: number; pauseMs: number }> {
    const t0 = performance.now();
    while (this.level === 'pause' && !signal.aborted && !this.loop.stopped) await sleep(200, signal);
    this.pausedMs += performance.now() - t0;
    return this.level === 'slow' ? { factor: 0.5, pauseMs: 500 } : { factor: 1, pauseMs: 0 };
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }
}
