import type pg from 'pg';
import type { Db } from '../db/session.js';
import { UserError } from '../engine/errors.js';

/**
 * Live control of a running copy (gh-ost's throttle / pause / chunk size, through the journal instead of a socket).
 *
 * A command is a row in pgshift.control, written by `pgshift control pause|resume|batch N|throttle MS` from any
 * terminal that reaches the database, or by a key in the wizard. The copy loop reads the pending rows at its
 * batch boundaries (at most every POLL_MS, so the read costs nothing measurable) and while paused; it applies
 * them in order and marks each row applied (which run, when, what it did). The table is the journal of every
 * command: who issued it, from where, when, and what became of it.
 *
 * Commands issued before the current run started are never applied (a `pause` typed yesterday must not stop
 * today's copy): the copy marks them expired when it starts. Batch size and pause are folded from the commands
 * applied in this run, so they hold for every table copied by the run.
 */

export const CONTROL_COMMANDS = ['pause', 'resume', 'batch', 'throttle'] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

export const BATCH_LIMITS = { min: 100, max: 1_000_000 } as const;
export const THROTTLE_LIMITS = { min: 0, max: 600_000 } as const;
const POLL_MS = 250;

export const CONTROL_TABLE_SQL = `CREATE TABLE IF NOT EXISTS pgshift.control (
  id bigserial PRIMARY KEY,
  command text NOT NULL CHECK (command IN ('pause', 'resume', 'batch', 'throttle')),
  value integer,
  issued_by text NOT NULL,
  issued_from text NOT NULL,
  issued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  applied_at timestamptz,
  applied_run bigint,
  applied_step text,
  result text
)`;

type Runner = Pick<pg.ClientBase, 'query'> | Pick<pg.Pool, 'query'>;

export async function ensureControlTable(r: Runner): Promise<void> {
  await r.query(CONTROL_TABLE_SQL);
}

/** Validates `pause | resume | batch N | throttle MS` from argv words; throws a UserError (exit 2) naming what is wrong. */
export function parseControl(words: readonly string[]): { command: ControlCommand; value: number | null } {
  const [cmd, arg, ...rest] = words;
  const usage = 'pgshift control pause | resume | batch ROWS | throttle MS';
  if (!cmd) throw new UserError('pgshift control needs a command', usage, 2);
  if (!(CONTROL_COMMANDS as readonly string[]).includes(cmd)) throw new UserError(`unknown control command "${cmd}"`, usage, 2);
  const command = cmd as ControlCommand;
  if (rest.length) throw new UserError(`unexpected argument "${rest[0]}"`, usage, 2);
  if (command === 'pause' || command === 'resume') {
    if (arg !== undefined) throw new UserError(`${command} takes no value, got "${arg}"`, usage, 2);
    return { command, value: null };
  }
  const lim = command === 'batch' ? BATCH_LIMITS : THROTTLE_LIMITS;
  const what = command === 'batch' ? 'rows per batch' : 'milliseconds to rest between batches';
  if (arg === undefined) throw new UserError(`${command} needs a number (${what})`, `e.g. pgshift control ${command} ${command === 'batch' ? 5000 : 200}`, 2);
  const n = Number(arg.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < lim.min || n > lim.max) {
    throw new UserError(`${command} expects a whole number of ${what} from ${lim.min.toLocaleString('en-US')} to ${lim.max.toLocaleString('en-US')}, got "${arg}"`, usage, 2);
  }
  return { command, value: n };
}

/** Writes a command row; returns its id. The journal (schema pgshift) must exist. */
export async function sendControl(db: Db, c: { command: ControlCommand; value: number | null; by: string; from: string }): Promise<number> {
  const [j] = await db.read<{ ok: boolean }>(`SELECT to_regclass('pgshift.runs') IS NOT NULL AS ok`);
  if (!j!.ok) throw new UserError('no pgshift journal in this database (schema "pgshift"): no copy to control', 'run pgshift against this database first; check --db', 2);
  await ensureControlTable(db.pool);
  const [r] = await db.write<{ id: string }>(
    `INSERT INTO pgshift.control (command, value, issued_by, issued_from) VALUES ($1, $2, $3, $4) RETURNING id`,
    [c.command, c.value, c.by, c.from],
  );
  return Number(r!.id);
}

export interface ControlRow {
  id: number; command: ControlCommand; value: number | null; issued_by: string; issued_from: string;
  applied_at: Date | null; applied_run: number | null; result: string | null;
}

export async function controlRow(db: Db, id: number): Promise<ControlRow | null> {
  const rows = await db.read<ControlRow & { id: string; applied_run: string | null }>(`SELECT * FROM pgshift.control WHERE id = $1`, [id]);
  const r = rows[0];
  return r ? { ...r, id: Number(r.id), applied_run: r.applied_run === null ? null : Number(r.applied_run) } : null;
}

/** Is a pgshift run live on this database (its run lock held)? For the CLI's message only. */
export async function liveRun(db: Db): Promise<{ runId: number; operator: string } | null> {
  const rows = await db.read<{ run_id: string; operator: string }>(
    `SELECT run_id, operator FROM pgshift.runs WHERE ended_at IS NULL ORDER BY run_id DESC LIMIT 1`,
  );
  return rows[0] ? { runId: Number(rows[0].run_id), operator: rows[0].operator } : null;
}

export interface ControlState {
  readonly paused: boolean;
  /** who paused, how: for the progress line */
  readonly pausedBy: string | null;
  /** batch size set by a command (null: the plan's) */
  readonly batchRows: number | null;
  /** rest between batches set by a command (null: the plan's) */
  readonly pauseMs: number | null;
}

/** The copy loop's side: reads and applies commands at batch boundaries. */
export class CopyControl {
  private state: { paused: boolean; pausedBy: string | null; batchRows: number | null; pauseMs: number | null } = { paused: false, pausedBy: null, batchRows: null, pauseMs: null };
  private lastPoll = 0;
  private ok = true;
  /** batches committed so far: recorded with each applied command */
  batch = 0;
  /** a batch is in flight (a look in the background may overlap it): a pause then takes effect after it */
  inBatch = false;

  constructor(
    private readonly db: Db,
    private readonly runId: number | null,
    private readonly stepId: string,
    private readonly log: (m: string, level?: 'info' | 'warn') => void,
  ) {}

  get current(): ControlState {
    return { ...this.state };
  }

  /** Expires commands from before this run, folds batch/throttle applied earlier in this run. */
  async start(): Promise<void> {
    try {
      await ensureControlTable(this.db.pool);
      const expired = await this.db.write<{ id: string }>(
        `UPDATE pgshift.control SET applied_at = clock_timestamp(), applied_run = $1, applied_step = $2,
                result = $3
          WHERE applied_at IS NULL AND issued_at < COALESCE((SELECT started_at FROM pgshift.runs WHERE run_id = $1), '-infinity')
          RETURNING id`,
        [this.runId, this.stepId, `expired: issued before run ${this.runId} started, not applied`],
      );
      if (expired.length) this.log(`control: ${expired.length} command(s) issued before this run started were not applied (marked expired in pgshift.control)`, 'warn');
      const earlier = await this.db.read<{ command: ControlCommand; value: number | null }>(
        `SELECT command, value FROM pgshift.control WHERE applied_run = $1 AND command IN ('batch', 'throttle') AND result LIKE 'applied%' ORDER BY id`,
        [this.runId],
      );
      for (const e of earlier) {
        if (e.command === 'batch') this.state.batchRows = e.value;
        else this.state.pauseMs = e.value;
      }
    } catch (e) {
      this.ok = false;
      this.log(`control table unavailable (${(e as Error).message}): live control off for this copy`, 'warn');
    }
  }

  private inflight: Promise<void> | null = null;

  /**
   * At a batch boundary: returns the state now and, when the last look is older than POLL_MS, looks again in the
   * background (the batch does not wait for that round trip; what it finds applies from the next boundary).
   * `force` (while paused) waits for a fresh look.
   */
  async check(force = false): Promise<ControlState> {
    if (!this.ok) return this.current;
    const now = performance.now();
    if (force) {
      if (this.inflight) await this.inflight;
      this.lastPoll = now;
      await this.poll();
      return this.current;
    }
    if (!this.inflight && now - this.lastPoll >= POLL_MS) {
      this.lastPoll = now;
      this.inflight = this.poll().finally(() => {
        this.inflight = null;
      });
    }
    return this.current;
  }

  /** Waits for a look in progress (the copy's end, so no command is left half-applied). */
  async settle(): Promise<void> {
    if (this.inflight) await this.inflight;
  }

  private async poll(): Promise<void> {
    let rows: { id: string; command: ControlCommand; value: number | null; issued_by: string; issued_from: string }[];
    try {
      rows = await this.db.read(
        `SELECT id, command, value, issued_by, issued_from FROM pgshift.control WHERE applied_at IS NULL ORDER BY id`,
      );
    } catch {
      return; // a failed look must not stop the copy; the next boundary looks again
    }
    for (const r of rows) {
      const boundary = this.batch + (this.inBatch ? 1 : 0);
      const who = `${r.issued_by} (${r.issued_from})`;
      let result: string;
      switch (r.command) {
        case 'pause':
          result = this.state.paused ? 'applied: already paused' : `applied: paused after batch ${boundary}`;
          this.state.paused = true;
          this.state.pausedBy = who;
          break;
        case 'resume':
          result = this.state.paused ? `applied: resumed after batch ${boundary}` : 'applied: was not paused';
          this.state.paused = false;
          this.state.pausedBy = null;
          break;
        case 'batch':
          result = `applied: batches of ${r.value!.toLocaleString('en-US')} rows from batch ${boundary + 1}`;
          this.state.batchRows = r.value;
          break;
        case 'throttle':
          result = `applied: ${r.value} ms rest between batches from batch ${boundary + 1}`;
          this.state.pauseMs = r.value;
          break;
      }
      await this.db.write(
        `UPDATE pgshift.control SET applied_at = clock_timestamp(), applied_run = $2, applied_step = $3, result = $4 WHERE id = $1`,
        [r.id, this.runId, this.stepId, result],
      );
      this.log(`control #${r.id} from ${who}: ${r.command}${r.value === null ? '' : ` ${r.value}`} — ${result}`, r.command === 'pause' ? 'warn' : 'info');
    }
  }
}
