import type pg from 'pg';
import { MonitorLoop } from '../db/monitor.js';
import { sleep } from '../db/session.js';
import type { LogLevel } from '../engine/types.js';

/**
 * The online copy's pace: a feedback loop on what the application's writers feel, instead of a fixed duty cycle.
 *
 * What a copy running flat out costs a writer is mostly its commit: every application COMMIT waits for the WAL
 * to be flushed up to its commit record, behind the copy's WAL, and for a CPU on a small machine. pgshift measures
 * exactly that with a canary on its own connection: `BEGIN; SELECT txid_current(); COMMIT` every PROBE_MS (an xid
 * is assigned, so the COMMIT writes a commit record and waits for its flush, with synchronous_commit on, like any
 * writer's). The idle latency is measured before the first batch; then, after each batch, the copy rests
 * `rest × the batch's duration`:
 *  - the canary's latency while batches run (median of the last probes) above `limit ×` its latency while the copy
 *    rests (or, before any rest, at idle) → rest doubles (from 0.25, up to MAX_REST): the writers go first;
 *  - below `relax ×` that → rest shrinks by a step (additive decrease): the copy takes back the room it can.
 * Comparing with the latency during the copy's own rests, not only with the idle figure, keeps a machine that got
 * busier for other reasons from being blamed on the copy.
 * Lock waits behind the copy are the Throttle's business (it pauses the copy outright); the two compose.
 * Every change of state is logged once with its reason, and the reason goes on the progress line.
 */

const PROBE_SQL = 'BEGIN; SELECT txid_current(); COMMIT';
export const PACE_DEFAULTS = { probeMs: 100, window: 5, limit: 3, relax: 1.5, maxRest: 1.5, step: 0.1, floorMs: 0.5 } as const;

export interface PaceOptions {
  readonly log: (message: string, level?: LogLevel) => void;
  /** initial rest factor (rest = factor × batch duration) */
  readonly initialRest?: number;
  readonly probeMs?: number;
  /** slow down when the canary's latency exceeds limit × idle */
  readonly limit?: number;
}

export interface PaceDecision {
  readonly restMs: number;
  readonly throttled: boolean;
  readonly reason: string;
}

/** The pure controller: fed latency windows, returns the next rest factor. Exported for tests. */
export function nextRest(rest: number, recentMs: number, idleMs: number, o: { limit: number; relax: number; maxRest: number; step: number; floorMs: number } = PACE_DEFAULTS): number {
  const base = Math.max(idleMs, o.floorMs);
  if (recentMs > o.limit * base) return Math.min(o.maxRest, rest <= 0 ? 0.25 : rest * 2);
  if (recentMs < o.relax * base) return Math.max(0, +(rest - o.step).toFixed(3));
  return rest;
}

function median(xs: readonly number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export class Pacer {
  private readonly loop = new MonitorLoop();
  private recent: number[] = [];
  /** probes taken while the copy rests: the writers' latency without the copy, as the machine is now */
  private resting: number[] = [];
  /** a batch is in flight (set by the copy loop): probes then measure the copy's effect */
  busy = false;
  idleMs = 0;
  rest: number;
  reason = '';
  probes = 0;
  private lastLogged = '';

  constructor(private readonly config: pg.ClientConfig, private readonly opts: PaceOptions) {
    this.rest = opts.initialRest ?? 0.5;
  }

  private get limit(): number {
    return this.opts.limit ?? PACE_DEFAULTS.limit;
  }

  private async probe(): Promise<number | null> {
    if (!this.loop.client) return null;
    try {
      const t0 = performance.now();
      await this.loop.client.query(PROBE_SQL);
      this.probes++;
      return performance.now() - t0;
    } catch {
      return null; // a failed probe must not stop the copy
    }
  }

  /** Opens the canary's connection and measures the idle commit latency (before the first batch). */
  async start(): Promise<void> {
    const err = await this.loop.open(this.config);
    if (err) {
      this.opts.log(`pace canary unavailable (${err.message}): resting ${this.rest} × each batch's duration, fixed`, 'warn');
      return;
    }
    const idle: number[] = [];
    for (let i = 0; i < 9; i++) {
      const ms = await this.probe();
      if (ms !== null) idle.push(ms);
      await sleep(20);
    }
    this.idleMs = median(idle);
    this.opts.log(`pace: writers' commit latency at rest ${this.idleMs.toFixed(2)} ms (canary); the copy slows when it exceeds ${this.limit} × that`);
    const tick = async () => {
      const during = this.busy;
      const ms = await this.probe();
      if (ms !== null && during && this.busy) {
        this.recent.push(ms);
        if (this.recent.length > PACE_DEFAULTS.window) this.recent.shift();
        if (this.recent.length >= PACE_DEFAULTS.window) this.adjust();
      } else if (ms !== null && !during && !this.busy) {
        this.resting.push(ms);
        if (this.resting.length > PACE_DEFAULTS.window) this.resting.shift();
      }
    };
    this.loop.start(this.opts.probeMs ?? PACE_DEFAULTS.probeMs, tick, (e) => this.opts.log(`pace canary stopped (${e instanceof Error ? e.message : String(e)})`, 'warn'));
  }

  /**
   * The reference the copy is judged against: the latency measured while the copy rests, when there are such
   * probes (a machine that got busier for other reasons raises both, and the copy is not blamed for it), else the
   * latency measured before the first batch.
   */
  get baselineMs(): number {
    return this.resting.length >= 3 ? Math.max(this.idleMs, median(this.resting)) : this.idleMs;
  }

  private adjust(): void {
    const m = median(this.recent);
    const before = this.rest;
    const base = this.baselineMs;
    this.rest = nextRest(this.rest, m, base, { ...PACE_DEFAULTS, limit: this.limit });
    if (this.rest > before) {
      this.reason = `writers' commit latency ${m.toFixed(1)} ms during batches > ${this.limit} × ${base.toFixed(1)} ms without them: resting ${this.rest.toFixed(2)} × each batch`;
      this.recent = []; // judge the new pace on fresh probes
    } else if (this.rest === 0) this.reason = '';
    else if (this.rest < before) this.reason = `writers' commit latency back to ${m.toFixed(1)} ms (${base.toFixed(1)} ms without the copy): resting ${this.rest.toFixed(2)} × each batch`;
    const key = this.rest > before ? 'up' : this.rest === 0 ? 'clear' : '';
    if (key && key !== this.lastLogged) {
      this.lastLogged = key;
      this.opts.log(key === 'up' ? `pace: ${this.reason}` : `pace: writers' commit latency ${m.toFixed(1)} ms is near idle: full speed`, key === 'up' ? 'warn' : 'info');
    }
  }

  /** After a batch that took `batchMs`: how long to rest, and why. */
  decide(batchMs: number): PaceDecision {
    const restMs = Math.round(this.rest * batchMs);
    return { restMs, throttled: this.rest > 0 && this.reason !== '', reason: this.reason };
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }
}
