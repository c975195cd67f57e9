import type { ArtifactKey } from './artifacts.js';
import type { Plan, TablePlan } from '../plan/schema.js';
import type { Db } from '../db/session.js';
import type { Journal } from './journal.js';

export type PhaseId = 1 | 2 | 3 | 4 | 5 | 'rollback';
export const PHASES: readonly { id: PhaseId; name: string }[] = [
  { id: 1, name: 'Preparation' },
  { id: 2, name: 'Structure' },
  { id: 3, name: 'Data' },
  { id: 4, name: 'Dependencies' },
  { id: 5, name: 'Cleanup' },
  { id: 'rollback', name: 'Rollback' },
];

export type ConfirmKind = 'rename' | 'drop' | 'truncate' | 'restore' | 'rollback' | 'cancel' | 'terminate' | 'override';

/** What the operator must see (and, for drop/restore, type) before a destructive statement runs. */
export interface ConfirmRequest {
  readonly stepId: string;
  readonly kind: ConfirmKind;
  /** The object's name: what must be typed (typed: true) and what `--confirm` must name in headless mode. */
  readonly object: string;
  /** The name must be typed exactly (DROP, restore); otherwise a yes is enough. */
  readonly typed: boolean;
  /** every statement that will run, in full */
  readonly statements: readonly string[];
  /** rows, size, dependents, what becomes unreachable */
  readonly impact: readonly string[];
  /** backup file and when verified, integrity report status */
  readonly protections: readonly string[];
  /** When set, the action is refused outright (precondition failed) and no answer can confirm it. */
  readonly refusal?: string;
  /** the extra headless flag that lifts the refusal, e.g. --force-retention (still journaled) */
  readonly overrideFlag?: string;
  /**
   * What a "no" means: 'stop' (default) ends the run before the step; 'skip' ends only this step as skipped and the
   * run goes on (e.g. an early drop the operator did not force: the old table is simply kept).
   */
  readonly onDecline?: 'stop' | 'skip';
}

export interface ConfirmAnswer {
  readonly confirmed: boolean;
  /** how: typed the name in the wizard, --confirm flag, auto-confirmed by the demo, or declined */
  readonly method: 'typed' | 'yes' | 'flag' | 'demo-auto' | 'declined' | 'refused';
  readonly by: string;
  readonly typedText?: string;
  readonly override?: boolean;
}

export type ConfirmFn = (req: ConfirmRequest) => Promise<ConfirmAnswer>;

/** A table of results (volume report, FK list, integrity report…) that every front end can render. */
export interface ReportTable {
  readonly title: string;
  readonly columns: readonly string[];
  readonly rows: readonly (readonly (string | number | boolean | null)[])[];
}

/** What any step outcome may carry: a summary, report tables, data for the journal, warnings. */
interface StepReport {
  readonly summary?: string;
  readonly tables?: readonly ReportTable[];
  /** JSON-able data stored with the step in the journal (e.g. the backup path, the report) */
  readonly data?: unknown;
  readonly warnings?: readonly string[];
}

/** The step did its work, found it done, or had nothing to do. */
export interface StepDone extends StepReport {
  readonly status: 'done' | 'already-done' | 'skipped';
  /** a failure is a StepFailed: a 'done' carrying one does not compile */
  readonly failed?: never;
}

/** The step found a problem that must stop the run (preflight fail, integrity fail, a precondition). */
export interface StepFailed extends StepReport {
  readonly status: 'failed';
  /** the short form shown on screen */
  readonly failed: string;
  /** the full text of the failure for the journal (pgshift status) when `failed` is the short form */
  readonly failedDetail?: string;
  /** what to do about the failure (shown once, after it) */
  readonly hint?: string;
  /** the failure was found before anything was changed in the database: exit 2 (bad input) */
  readonly nothingChanged?: boolean;
}

export type StepResult = StepDone | StepFailed;

/** Why a step did not complete: the wizard and the headless output read this, never the message's wording. */
export type FailureReason =
  /** the step ran and returned a failure (a check, a precondition) */
  | 'failed'
  /** the step threw */
  | 'error'
  /** a destructive step the operator did not confirm (headless: no --confirm naming it) */
  | 'needs-confirmation'
  /** a destructive step refused by its precondition (and not overridden) */
  | 'refused'
  /** the operator stopped the run while the step ran */
  | 'aborted';

export interface Progress {
  readonly done: number;
  readonly total?: number;
  readonly unit?: string;
  readonly detail?: string;
  /** the copy's state for the progress line: running, throttled (reason), waiting for a lock (holder), paused */
  readonly state?: 'running' | 'throttled' | 'waiting-lock' | 'paused';
  /** why it is throttled / waiting / paused: e.g. "writers' p99 3.1 ms > 2 × idle", "pid 4242 holds ACCESS EXCLUSIVE on public.t" */
  readonly reason?: string;
}

export type LogLevel = 'info' | 'warn' | 'error';

/** What a phase module gets to turn the plan into steps: read the catalog, never change it. */
export interface PlanContext {
  readonly db: Db;
  readonly plan: Plan;
  /** directory of the plan file, SQL file paths are relative to it */
  readonly planDir: string;
  readonly journal: Journal;
  /** the server's major version (15, 17…) */
  readonly serverMajor: number;
  /** true while building a dry run (pgshift plan) */
  readonly dryRun: boolean;
  readonly tables: readonly TablePlan[];
  /** the steps of the migration's phases (1–5) as planned now: the rollback composes their undo footprints */
  readonly forwardSteps: () => Promise<readonly Step[]>;
}

/** What a step gets while it runs. */
export interface StepContext extends PlanContext {
  readonly runId: number;
  readonly stepId: string;
  readonly operator: string;
  readonly signal: AbortSignal;
  // function properties, not methods: steps pass them on unbound (to the copy, the finish, the catch-up)
  readonly log: (message: string, level?: LogLevel) => void;
  readonly progress: (p: Progress) => void;
  /** ask the operator mid-step (e.g. cancel a blocking backend); answer is journaled */
  readonly confirm: (req: Omit<ConfirmRequest, 'stepId'>) => Promise<ConfirmAnswer>;
  /** headless flags that lift refusals, e.g. force-retention */
  readonly overrides: ReadonlySet<string>;
  /** demo mode: throwaway database */
  readonly demo: boolean;
}

export interface Step {
  /** deterministic: "copy:public.petri_observations" — the resume and journal key */
  readonly id: string;
  readonly phase: PhaseId;
  readonly title: string;
  /** re-run on every run even when the journal says done (reports) */
  readonly rerunnable?: boolean;
  /**
   * The step's journal footprint, declared beside the work it does (as pgroll keeps an operation's start and
   * rollback together): the tables (`schema.table`, by their pre-migration names) whose new table carries its work,
   * and the artifacts it writes. When the rollback removes a table's new table, it forgets every step that names
   * the table — state, checkpoint, artifacts — without knowing the steps' ids or keys.
   */
  readonly undo?: StepUndo;
  /** Returns the confirmation needed before run(), or null when nothing destructive remains to do. */
  destructive?(ctx: StepContext): Promise<Omit<ConfirmRequest, 'stepId'> | null>;
  /** the SQL statements and commands it will run, for plan mode and the confirmation prompt */
  preview(ctx: PlanContext): string[] | Promise<string[]>;
  /** idempotent: detects "already done" from the catalog and returns status 'already-done' */
  run(ctx: StepContext): Promise<StepResult>;
}

export interface StepUndo {
  readonly tables: readonly string[];
  readonly artifacts: readonly ArtifactKey<unknown>[];
}

export interface Phase {
  readonly id: PhaseId;
  readonly name: string;
  plan(ctx: PlanContext): Step[] | Promise<Step[]>;
}

export type EngineEvent =
  | { type: 'run-started'; runId: number; phases: PhaseId[]; resumedFrom?: { runId: number; stepId: string | null; status: string } }
  | { type: 'phase-started'; phase: PhaseId; name: string; steps: { id: string; title: string; done: boolean }[] }
  | { type: 'phase-done'; phase: PhaseId }
  | { type: 'step-started'; stepId: string; phase: PhaseId; title: string }
  | { type: 'step-progress'; stepId: string; progress: Progress; ratePerSec?: number; etaSec?: number }
  | { type: 'step-log'; stepId: string; level: LogLevel; message: string }
  | { type: 'step-done'; stepId: string; status: StepDone['status']; /** skipped because the operator declined it or its refusal held (onDecline: skip) */ declined?: boolean; summary?: string; tables?: readonly ReportTable[]; warnings?: readonly string[]; /** what the step stored in the journal with its state (rows copied, lock held…) */ data?: unknown; durationMs: number; resumed?: boolean }
  | { type: 'step-failed'; stepId: string; reason: FailureReason; /** what was not confirmed (needs-confirmation, refused) */ confirm?: { kind: string; object: string }; error: string; hint?: string; summary?: string; tables?: readonly ReportTable[]; warnings?: readonly string[]; durationMs: number }
  | { type: 'confirm-requested'; request: ConfirmRequest }
  | { type: 'confirm-answered'; stepId: string; object: string; answer: ConfirmAnswer }
  | { type: 'run-ended'; runId: number; status: 'completed' | 'stopped' | 'failed' | 'needs-confirmation' | 'aborted'; message?: string };

export type Listener = (e: EngineEvent) => void;
