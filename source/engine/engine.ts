import os from 'node:os';
import pg from 'pg';
import type { ConnectionInfo } from '../db/connection.js';
import { redact } from '../db/connection.js';
import { Db } from '../db/session.js';
import type { LoadedPlan } from '../plan/load.js';
import { Journal } from './journal.js';
import { phaseModule, type PhaseRegistry } from './phases.js';
import { UserError } from './errors.js';
import { VERSION } from '../version.js';
import { qname } from '../db/quote.js';
import { backendActionSql, signalBackend as sendBackendSignal, type BackendAction } from '../db/monitor-actions.js';
import { isOperatorSkip, journalOperatorSkip, type OperatorSkip } from './skip.js';
import type {
  ConfirmAnswer, ConfirmFn, ConfirmRequest, EngineEvent, Listener, PhaseId, PlanContext, Progress, Step, StepContext,
} from './types.js';
import { PHASES } from './types.js';

/** advisory lock key that marks "a pgshift run is active on this database" */
export const RUN_LOCK_KEY = 0x70677368; // 'pgsh'

export interface EngineOptions {
  /** the phase modules to run (phases/index.ts: PHASE_REGISTRY): given by the caller, the engine imports none */
  readonly phases: PhaseRegistry;
  readonly conn: ConnectionInfo;
  readonly loaded: LoadedPlan;
  readonly confirm: ConfirmFn;
  readonly operator?: string;
  /** wizard | headless | demo | plan | test — written to the journal */
  readonly mode: string;
  /** headless flags that lift refusals (force-retention, skip-backup…) */
  readonly overrides?: ReadonlySet<string>;
  readonly demo?: boolean;
  /** plan mode: no journal created, no lock, nothing written */
  readonly dryRun?: boolean;
}

export interface PlannedPhase {
  readonly id: PhaseId;
  readonly name: string;
  readonly steps: Step[];
}

export interface RunOutcome {
  readonly status: 'completed' | 'stopped' | 'failed' | 'needs-confirmation' | 'aborted';
  readonly message?: string;
  readonly hint?: string;
  readonly runId: number;
  /** the process exit code when it is not the status' usual one (2: refused before anything was changed) */
  readonly exitCode?: number;
}

export function operatorName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

/** Exponential moving average of rows/s for progress lines. */
class RateMeter {
  private last: { t: number; done: number } | null = null;
  rate = 0;
  sample(done: number): number {
    const t = performance.now();
    if (this.last && t > this.last.t) {
      const inst = ((done - this.last.done) * 1000) / (t - this.last.t);
      this.rate = this.rate === 0 ? inst : this.rate * 0.7 + inst * 0.3;
    }
    this.last = { t, done };
    return this.rate;
  }
}

/**
 * The one engine behind the wizard, headless mode, plan mode and the tests: turns the plan into steps through the
 * phase modules, journals every step and statement, asks before anything destructive, reports through events.
 */
export class Engine {
  private listeners: Listener[] = [];
  private lockClient: pg.Client | null = null;
  readonly operator: string;
  serverMajor = 0;
  serverVersion = '';

  private constructor(
    readonly opts: EngineOptions,
    readonly db: Db,
    readonly journal: Journal,
  ) {
    this.operator = opts.operator ?? operatorName();
  }

  static async open(opts: EngineOptions): Promise<Engine> {
    const db = new Db(opts.conn, opts.dryRun ? 'pgshift-plan' : 'pgshift');
    db.locks = opts.loaded.plan.locks;
    try {
      const info = await db.ping();
      const journal = await Journal.open(db, { create: !opts.dryRun });
      const engine = new Engine(opts, db, journal);
      engine.serverMajor = info.major;
      engine.serverVersion = info.version;
      if (!opts.dryRun) {
        await engine.acquireRunLock();
        db.sink = journal;
      }
      return engine;
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  on(l: Listener): () => void {
    this.listeners.push(l);
    return () => {
      this.listeners = this.listeners.filter((x) => x !== l);
    };
  }

  private emit(e: EngineEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** One active run per database: a session-level advisory lock held on a dedicated connection. */
  private async acquireRunLock(): Promise<void> {
    const name = `pgshift run by ${this.operator}@${os.hostname()} pid ${process.pid}`.slice(0, 63);
    const c = new pg.Client({ ...this.opts.conn.config, application_name: name });
    c.on('error', () => {});
    await c.connect();
    const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [RUN_LOCK_KEY]);
    if (!r.rows[0]!.ok) {
      const h = await c.query<{ pid: number; application_name: string; client_addr: string | null; backend_start: Date; usename: string }>(
        `SELECT a.pid, a.application_name, a.client_addr::text AS client_addr, a.backend_start, a.usename
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [RUN_LOCK_KEY],
      );
      await c.end().catch(() => {});
      const holder = h.rows[0];
      const who = holder
        ? `"${holder.application_name}" (backend pid ${holder.pid}, user ${holder.usename}${holder.client_addr ? `, from ${holder.client_addr}` : ''}, since ${holder.backend_start.toISOString()})`
        : 'another session';
      throw new UserError(
        `another pgshift run is active on this database: ${who}`,
        'wait for it to finish, or stop it; only one pgshift may run against a database at a time',
        1,
      );
    }
    this.lockClient = c;
  }

  planContext(): PlanContext {
    return {
      db: this.db,
      plan: this.opts.loaded.plan,
      planDir: this.opts.loaded.dir,
      journal: this.journal,
      serverMajor: this.serverMajor,
      dryRun: !!this.opts.dryRun,
      tables: this.opts.loaded.tables,
      forwardSteps: async () => (await this.plan(ALL_PHASES.filter((p) => this.opts.phases.some((m) => m.id === p)))).flatMap((p) => p.steps),
    };
  }

  /** Turns the plan into the ordered steps of the given phases. */
  async plan(phases: readonly PhaseId[]): Promise<PlannedPhase[]> {
    const ctx = this.planContext();
    const out: PlannedPhase[] = [];
    for (const id of phases) {
      const mod = phaseModule(this.opts.phases, id);
      const steps = await mod.plan(ctx);
      const ids = new Set<string>();
      for (const s of steps) {
        if (ids.has(s.id)) throw new Error(`phase ${String(id)} produced the step id ${s.id} twice`);
        ids.add(s.id);
      }
      out.push({ id, name: mod.name, steps });
    }
    return out;
  }

  /** Every statement each step would run, phase by phase; changes nothing. */
  async preview(phases: readonly PhaseId[]): Promise<{ phase: PlannedPhase; steps: { step: Step; statements: string[] }[] }[]> {
    const planned = await this.plan(phases);
    const ctx = this.planContext();
    const out = [];
    for (const phase of planned) {
      const steps = [];
      for (const step of phase.steps) steps.push({ step, statements: await step.preview(ctx) });
      out.push({ phase, steps });
    }
    return out;
  }

  private async ask(req: ConfirmRequest): Promise<ConfirmAnswer> {
    this.emit({ type: 'confirm-requested', request: req });
    let answer: ConfirmAnswer;
    if (req.refusal && !(req.overrideFlag && this.opts.overrides?.has(req.overrideFlag.replace(/^--/, '')))) {
      // the front end still sees the request (to show why), but no answer can confirm it
      answer = await this.opts.confirm(req);
      if (answer.confirmed && !answer.override) answer = { confirmed: false, method: 'refused', by: answer.by };
    } else {
      answer = await this.opts.confirm(req);
    }
    await this.journal.recordConfirmation({
      stepId: req.stepId, kind: req.kind, object: req.object, statements: req.statements,
      answer: answer.confirmed ? 'confirmed' : answer.method === 'refused' ? 'refused' : 'declined',
      method: answer.method, by: answer.by, typedText: answer.typedText, reason: req.refusal,
    });
    this.emit({ type: 'confirm-answered', stepId: req.stepId, object: req.object, answer });
    return answer;
  }

  /** Runs the phases in order; resumes after a killed run; stops before any unconfirmed destructive step. */
  async run(opts: { phases: readonly PhaseId[]; only?: readonly string[]; signal?: AbortSignal }): Promise<RunOutcome> {
    if (this.opts.dryRun) throw new Error('engine opened for a dry run cannot run');
    const signal = opts.signal ?? new AbortController().signal;
    const loaded = this.opts.loaded;
    const interrupted = await this.journal.interruptedRun();
    const runId = await this.journal.startRun({
      planName: loaded.plan.name, planPath: loaded.path, checksum: loaded.checksum, operator: this.operator,
      host: os.hostname(), mode: this.opts.mode, phases: opts.phases.join(','), version: VERSION,
    });
    await this.journal.closeInterrupted();
    this.emit({
      type: 'run-started', runId, phases: [...opts.phases],
      resumedFrom: interrupted ? { runId: interrupted.runId, stepId: interrupted.stepId, status: interrupted.status } : undefined,
    });
    let outcome: RunOutcome;
    try {
      outcome = await this.runPhases(runId, opts.phases, opts.only, signal);
    } catch (e) {
      const msg = redact(e instanceof Error ? e.message : String(e));
      outcome = { status: 'failed', message: msg, hint: e instanceof UserError ? e.hint : undefined, runId };
    }
    await this.journal.endRun(outcome.status, outcome.message).catch(() => {});
    this.emit({ type: 'run-ended', runId, status: outcome.status, message: outcome.message });
    return outcome;
  }

  private async runPhases(runId: number, phases: readonly PhaseId[], only: readonly string[] | undefined, signal: AbortSignal): Promise<RunOutcome> {
    for (const phaseId of phases) {
      if (signal.aborted) return { status: 'aborted', message: 'stopped by the operator', runId };
      // plan each phase only when it starts: it reads the catalog as the earlier phases left it
      const [phase] = await this.plan([phaseId]);
      const states = await this.journal.stepStates();
      const steps = only ? phase!.steps.filter((s) => only.includes(s.id)) : phase!.steps;
      this.emit({
        type: 'phase-started', phase: phaseId, name: phase!.name,
        steps: steps.map((s) => ({ id: s.id, title: s.title, done: states.get(s.id)?.status === 'done' && !s.rerunnable })),
      });
      for (const step of steps) {
        if (signal.aborted) return { status: 'aborted', message: 'stopped by the operator', runId };
        const prior = states.get(step.id);
        if (prior?.status === 'done' && !step.rerunnable) {
          await this.journal.stepSkippedAsDone(step.id, String(step.phase), step.title, prior.runId);
          this.emit({ type: 'step-done', stepId: step.id, status: 'already-done', summary: `done in run ${prior.runId}`, data: prior.result ?? undefined, durationMs: 0, resumed: true });
          continue;
        }
        const r = await this.runStep(runId, step, signal);
        if (r) return r;
      }
      this.emit({ type: 'phase-done', phase: phaseId });
    }
    return { status: 'completed', runId };
  }

  /** Runs one step; returns an outcome when the run must stop. */
  private async runStep(runId: number, step: Step, signal: AbortSignal): Promise<RunOutcome | null> {
    const t0 = performance.now();
    const meter = new RateMeter();
    const ctx: StepContext = {
      ...this.planContext(),
      runId, stepId: step.id, operator: this.operator, signal, demo: !!this.opts.demo,
      overrides: this.opts.overrides ?? new Set(),
      log: (message, level = 'info') => this.emit({ type: 'step-log', stepId: step.id, level, message: redact(message) }),
      progress: (p: Progress) => {
        const rate = meter.sample(p.done);
        const eta = p.total && rate > 0 ? Math.max(0, (p.total - p.done) / rate) : undefined;
        this.emit({ type: 'step-progress', stepId: step.id, progress: p, ratePerSec: rate || undefined, etaSec: eta });
      },
      confirm: (req) => this.ask({ ...req, stepId: step.id }),
    };
    this.emit({ type: 'step-started', stepId: step.id, phase: step.phase, title: step.title });
    await this.journal.stepStarted(step.id, String(step.phase), step.title);
    try {
      if (step.destructive) {
        const req = await step.destructive(ctx);
        if (req) {
          const answer = await ctx.confirm(req);
          if (!answer.confirmed && req.onDecline === 'skip' && answer.method === 'refused') {
            const ms = performance.now() - t0;
            const summary = `not done: ${req.refusal ?? `${req.kind} ${req.object} not confirmed`}`;
            await this.journal.stepEnded(step.id, 'skipped', { summary, ms });
            this.emit({ type: 'step-done', stepId: step.id, status: 'skipped', declined: true, summary, durationMs: ms });
            return null;
          }
          if (!answer.confirmed) {
            const ms = performance.now() - t0;
            const refused = answer.method === 'refused';
            const message = refused ? `refused: ${req.refusal}` : `needs confirmation: ${req.kind} ${req.object}`;
            await this.journal.stepEnded(step.id, refused ? 'refused' : 'not-confirmed', { error: message, ms });
            this.emit({ type: 'step-failed', stepId: step.id, reason: refused ? 'refused' : 'needs-confirmation', confirm: { kind: req.kind, object: req.object }, error: message, hint: this.confirmHint(req, refused), durationMs: ms });
            return { status: refused ? 'stopped' : 'needs-confirmation', message: `${step.id} ${message}`, hint: this.confirmHint(req, refused), runId };
          }
        }
      }
      const res = await step.run(ctx);
      const ms = performance.now() - t0;
      if (res.status === 'failed') {
        await this.journal.stepEnded(step.id, 'failed', { error: res.failedDetail ?? res.failed, summary: res.summary, result: res.data, ms });
        this.emit({ type: 'step-failed', stepId: step.id, reason: 'failed', error: res.failed, hint: res.hint, summary: res.summary, tables: res.tables, warnings: res.warnings, durationMs: ms });
        return { status: 'failed', message: `${step.id}: ${res.failed}`, hint: res.hint, runId, exitCode: res.nothingChanged ? 2 : undefined };
      }
      if (signal.aborted && res.status !== 'done' && res.status !== 'already-done') {
        await this.journal.stepEnded(step.id, 'stopped', { summary: res.summary, ms });
        return { status: 'aborted', message: `stopped by the operator during ${step.id}`, runId };
      }
      await this.journal.stepEnded(step.id, res.status, { summary: res.summary, result: res.data, ms });
      this.emit({ type: 'step-done', stepId: step.id, status: res.status, summary: res.summary, tables: res.tables, warnings: res.warnings, data: res.data, durationMs: ms });
      return null;
    } catch (e) {
      const ms = performance.now() - t0;
      const message = redact(e instanceof Error ? e.message : String(e));
      const hint = e instanceof UserError ? e.hint : undefined;
      const aborted = signal.aborted;
      await this.journal.stepEnded(step.id, aborted ? 'stopped' : 'failed', { error: message, ms }).catch(() => {});
      this.emit({ type: 'step-failed', stepId: step.id, reason: aborted ? 'aborted' : 'error', error: message, hint, durationMs: ms });
      return { status: aborted ? 'aborted' : 'failed', message: `${step.id}: ${message}`, hint, runId };
    }
  }

  private confirmHint(req: Omit<ConfirmRequest, 'stepId'>, refused: boolean): string {
    if (refused) return req.overrideFlag ? `to override (journaled), pass ${req.overrideFlag} --confirm ${req.object}` : 'fix the precondition, then run again';
    return `to allow it in headless mode, pass --confirm ${req.object}`;
  }

  async close(): Promise<void> {
    if (this.lockClient) {
      await this.lockClient.end().catch(() => {});
      this.lockClient = null;
    }
    await this.db.close();
  }

  // ── asked by the front ends (the wizard): they do not write the journal or query pgshift.* themselves ──

  /**
   * Skips a step on the operator's word, journaled as a short run of its own (mode "wizard-skip"): the step ends
   * 'skipped' with the reason as its summary and { skippedBy, reason } as its result (see skip.ts).
   */
  async skipStep(step: { readonly id: string; readonly phase: PhaseId; readonly title: string }, reason: string, by: string = this.operator): Promise<OperatorSkip> {
    const loaded = this.opts.loaded;
    return journalOperatorSkip(this.journal, {
      planName: loaded.plan.name, planPath: loaded.path, checksum: loaded.checksum, host: os.hostname(), version: VERSION,
    }, step, reason, by);
  }

  /**
   * Cancels a backend's query (pg_cancel_backend) or ends its session (pg_terminate_backend) on the operator's answer:
   * the answer is journaled in pgshift.confirmations (step "monitor") first, and only a confirmed answer sends the
   * signal — through `send` (the wizard's monitor connection) or else a connection of its own, so a busy pool never
   * delays it. A journal failure does not hold back a confirmed signal: it is returned as journalError.
   */
  async signalBackend(action: BackendAction, pid: number, answer: Omit<ConfirmAnswer, 'by'>, send?: BackendSender): Promise<BackendSignalOutcome> {
    const statement = backendActionSql(action, pid);
    const journalError = await this.journal.recordConfirmation({
      stepId: 'monitor', kind: action, object: `pid ${pid}`, statements: [statement], answer: answer.confirmed ? 'confirmed' : 'declined',
      method: answer.method, by: this.operator,
    }).then(() => undefined, (e: unknown) => redact(e instanceof Error ? e.message : String(e)));
    if (!answer.confirmed) return { status: 'declined', statement, journalError };
    try {
      const ok = await (send ?? ((a, p) => this.signalOnOwnConnection(a, p)))(action, pid);
      return { status: 'sent', ok, statement, journalError };
    } catch (e) {
      return { status: 'failed', error: redact(e instanceof Error ? e.message : String(e)), statement, journalError };
    }
  }

  private async signalOnOwnConnection(action: BackendAction, pid: number): Promise<boolean> {
    const c = new pg.Client({ ...this.opts.conn.config, application_name: 'pgshift-signal' });
    c.on('error', () => {});
    await c.connect();
    try {
      return await sendBackendSignal(c, action, pid);
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** Where the last run (of any mode) stopped: its status and the step it was in last; null before the first run. */
  async lastRunPosition(): Promise<RunPosition | null> {
    const [last] = await this.journal.runs(1);
    if (!last) return null;
    const step = await this.journal.lastStepOf(Number(last.run_id)).catch(() => null);
    const phase: PhaseId | null = step?.phase === 'rollback' ? 'rollback' : step && /^[1-5]$/.test(step.phase) ? (Number(step.phase) as PhaseId) : null;
    return {
      runId: Number(last.run_id), status: last.status, open: last.ended_at === null,
      step: step ? { stepId: step.stepId, phase, status: step.status } : null,
    };
  }

  /** Each journaled step's last state (pgshift.step_state), with the operator's skip when that is how it ended. */
  async stepStates(): Promise<Map<string, StepJournalState>> {
    const out = new Map<string, StepJournalState>();
    for (const [id, j] of await this.journal.stepStates()) {
      out.set(id, { status: j.status, runId: j.runId, operatorSkip: isOperatorSkip(j.result) ? { skippedBy: j.result.skippedBy, reason: j.result.reason } : null });
    }
    return out;
  }

  /**
   * A copy step's committed checkpoint (copy:schema.table) and the table's row estimate from the catalog (0 when
   * unknown); null when it has none or it cannot be read.
   */
  async copyCheckpoint(stepId: string): Promise<{ rowsDone: number; estimatedRows: number } | null> {
    const cp = await this.journal.getCheckpoint(stepId).catch(() => null);
    if (!cp) return null;
    // the plan's table of that step, quoted (a name may need quotes, a schema may hold a dot); else the id's text
    const t = this.opts.loaded.tables.find((x) => stepId === `copy:${x.schema}.${x.table}`);
    const estimatedRows = await this.db.read<{ n: string | null }>(
      `SELECT greatest(c.reltuples, 0)::bigint::text AS n FROM pg_class c WHERE c.oid = to_regclass($1)`, [t ? qname(t.schema, t.table) : stepId.replace(/^copy:/, '')],
    ).then((r) => Number(r[0]?.n ?? 0)).catch(() => 0);
    return { rowsDone: cp.rowsDone, estimatedRows };
  }
}

export const ALL_PHASES: PhaseId[] = PHASES.filter((p) => p.id !== 'rollback').map((p) => p.id);

/** Sends pg_cancel_backend / pg_terminate_backend; true when PostgreSQL answered true. */
export type BackendSender = (action: BackendAction, pid: number) => Promise<boolean>;

/** What Engine.signalBackend did: declined (nothing sent), sent (ok: PostgreSQL's answer), or the send failed. */
export type BackendSignalOutcome = {
  /** the statement shown in the confirmation and journaled */
  readonly statement: string;
  /** the answer could not be journaled (redacted) */
  readonly journalError?: string;
} & (
  | { readonly status: 'declined' }
  | { readonly status: 'sent'; readonly ok: boolean }
  | { readonly status: 'failed'; readonly error: string }
);

/** Where a run stopped (Engine.lastRunPosition). */
export interface RunPosition {
  readonly runId: number;
  /** its status in pgshift.runs: completed, failed, aborted… ('running' when it never ended) */
  readonly status: string;
  /** it never ended: the process was killed */
  readonly open: boolean;
  /** the step it started last; phase null when the journal's phase is not one of the wizard's */
  readonly step: { readonly stepId: string; readonly phase: PhaseId | null; readonly status: string } | null;
}

/** A step's journaled state (Engine.stepStates). */
export interface StepJournalState {
  readonly status: string;
  readonly runId: number;
  /** set when the operator skipped it (Engine.skipStep) */
  readonly operatorSkip: OperatorSkip | null;
}
