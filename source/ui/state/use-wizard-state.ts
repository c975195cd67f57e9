import type { ConfirmRequest, EngineEvent, LogLevel, PhaseId, ReportTable } from '../../engine/types.js';
import { PHASES } from '../../engine/types.js';
import { addSample, type ProgressView, type RateSample } from '../format-ui.js';

/** Pure state of the wizard: engine events and key actions in, state out. Rendering never changes it. */
export type StepStatus = 'pending' | 'running' | 'done' | 'already-done' | 'failed' | 'skipped' | 'stopped' | 'declined';

export interface StepView {
  readonly id: string;
  readonly phase: PhaseId;
  readonly title: string;
  readonly status: StepStatus;
  readonly summary?: string;
  readonly tables?: readonly ReportTable[];
  readonly warnings?: readonly string[];
  readonly error?: string;
  readonly hint?: string;
  readonly durationMs?: number;
  readonly progress?: ProgressView;
  /** (time, done) of the progress events: the moving window for rate and ETA */
  readonly samples?: readonly RateSample[];
  /** a copy's committed checkpoint from the journal (resume): "335,000 of 1,000,000 rows committed" */
  readonly checkpoint?: string;
  /** the last step-log line: what an indeterminate step is waiting for */
  readonly lastLog?: string;
  /** skipped by the operator (journaled with a reason): the phase run leaves it out */
  readonly operatorSkipped?: boolean;
}

export type PhaseStatus = 'idle' | 'planning' | 'ready' | 'running' | 'done' | 'failed' | 'error';
export interface PhaseView {
  readonly id: PhaseId;
  readonly name: string;
  readonly stepIds: readonly string[];
  readonly status: PhaseStatus;
  readonly error?: string;
}

export interface LogLine {
  readonly at: number;
  readonly level: LogLevel;
  readonly text: string;
}

export type Overlay = 'none' | 'help' | 'monitor' | 'preview' | 'skip' | 'quit' | 'log' | 'error';
/** which pane the arrows move: Tab cycles steps → detail → log */
export type Focus = 'steps' | 'detail' | 'log';

export interface PendingConfirm {
  readonly id: number;
  readonly request: ConfirmRequest;
}

export interface RunState {
  readonly scope: string;
  readonly phase: PhaseId;
  readonly startedAt: number;
  readonly runId?: number;
  readonly stopping: boolean;
}

export interface WizardState {
  readonly phases: readonly PhaseView[];
  readonly steps: Readonly<Record<string, StepView>>;
  readonly phaseIdx: number;
  readonly selected: number;
  readonly detailScroll: number;
  readonly focus: Focus;
  /** lines scrolled back from the newest log line (0: follows the newest) */
  readonly logScroll: number;
  /** scroll of the help screen */
  readonly helpScroll: number;
  /** "run 4 stopped in copy: 335,000 of 1,000,000 rows committed" (resume), "rollback complete" … */
  readonly banner?: { readonly text: string; readonly level: 'info' | 'warn' | 'error' | 'ok' };
  readonly log: readonly LogLine[];
  readonly logMax: number;
  readonly run: RunState | null;
  readonly lastOutcome?: { readonly status: string; readonly message?: string };
  readonly overlay: Overlay;
  readonly previews: Readonly<Record<string, { readonly statements?: readonly string[]; readonly error?: string }>>;
  readonly confirms: readonly PendingConfirm[];
  /** text typed in the skip prompt */
  readonly skipText: string;
  readonly skipError?: string;
  /** the run was stopped by quit: exit once it ends */
  readonly quitAfterRun: boolean;
}

export type WizardAction =
  | { type: 'event'; event: EngineEvent; now: number }
  | { type: 'phase-planning'; phase: PhaseId }
  | { type: 'phase-planned'; phase: PhaseId; steps: readonly { id: string; title: string }[]; states: Readonly<Record<string, { status: string; operatorSkipped?: boolean; summary?: string }>> }
  | { type: 'phase-plan-failed'; phase: PhaseId; error: string }
  | { type: 'select-phase'; phase: PhaseId }
  | { type: 'move-phase'; delta: number }
  | { type: 'move'; delta: number }
  | { type: 'scroll-detail'; delta: number; max?: number }
  | { type: 'scroll-log'; delta: number }
  | { type: 'scroll-help'; delta: number }
  | { type: 'focus'; focus?: Focus }
  | { type: 'banner'; text: string; level: 'info' | 'warn' | 'error' | 'ok' }
  | { type: 'checkpoints'; checkpoints: Readonly<Record<string, string>> }
  | { type: 'overlay'; overlay: Overlay }
  | { type: 'run-begin'; scope: string; phase: PhaseId; now: number }
  | { type: 'run-finish'; status: string; message?: string; now: number }
  | { type: 'stopping'; quit: boolean; now: number }
  | { type: 'preview-loaded'; stepId: string; statements?: readonly string[]; error?: string }
  | { type: 'confirm-push'; id: number; request: ConfirmRequest }
  | { type: 'confirm-pop'; id: number }
  | { type: 'log'; level: LogLevel; text: string; now: number }
  | { type: 'skip-input'; text: string }
  | { type: 'skip-error'; error: string }
  | { type: 'step-skipped'; stepId: string; reason: string; now: number };

export function initialWizardState(opts: { phases?: readonly PhaseId[]; logMax?: number } = {}): WizardState {
  const first = opts.phases?.[0] ?? 1;
  const idx = Math.max(0, PHASES.findIndex((p) => p.id === first));
  return {
    phases: PHASES.map((p) => ({ id: p.id, name: p.name, stepIds: [], status: 'idle' })),
    steps: {},
    phaseIdx: idx,
    selected: 0,
    detailScroll: 0,
    focus: 'steps',
    logScroll: 0,
    helpScroll: 0,
    log: [],
    logMax: opts.logMax ?? 200,
    run: null,
    overlay: 'none',
    previews: {},
    confirms: [],
    skipText: '',
    quitAfterRun: false,
  };
}

export const currentPhase = (s: WizardState): PhaseView => s.phases[s.phaseIdx]!;
export const selectedStep = (s: WizardState): StepView | undefined => {
  const id = currentPhase(s).stepIds[s.selected];
  return id ? s.steps[id] : undefined;
};
export const phaseIndex = (id: PhaseId): number => PHASES.findIndex((p) => p.id === id);

function addLog(s: WizardState, level: LogLevel, text: string, now: number): WizardState {
  const log = [...s.log, { at: now, level, text }];
  // scrolled back: keep the same lines in view while new ones arrive
  return { ...s, log: log.length > s.logMax ? log.slice(log.length - s.logMax) : log, logScroll: s.logScroll > 0 ? Math.min(s.logScroll + 1, s.logMax) : 0 };
}

function patchStep(s: WizardState, id: string, patch: Partial<StepView>, fallback?: { phase: PhaseId; title: string }): WizardState {
  const prev = s.steps[id];
  if (!prev && !fallback) return s;
  const base: StepView = prev ?? { id, phase: fallback!.phase, title: fallback!.title, status: 'pending' };
  return { ...s, steps: { ...s.steps, [id]: { ...base, ...patch } } };
}

function patchPhase(s: WizardState, id: PhaseId, patch: Partial<PhaseView>): WizardState {
  return { ...s, phases: s.phases.map((p) => (p.id === id ? { ...p, ...patch } : p)) };
}

function statusFromJournal(status: string | undefined): StepStatus {
  switch (status) {
    case 'done': case 'already-done': return 'done';
    case 'skipped': return 'skipped';
    case 'failed': return 'failed';
    default: return 'pending';
  }
}

function reduceEvent(s: WizardState, e: EngineEvent, now: number): WizardState {
  switch (e.type) {
    case 'run-started': {
      let n = s.run ? { ...s, run: { ...s.run, runId: e.runId } } : s;
      if (e.resumedFrom) {
        n = addLog(n, 'warn', `resuming: run ${e.resumedFrom.runId} stopped${e.resumedFrom.stepId ? ` in ${e.resumedFrom.stepId} (${e.resumedFrom.status})` : ''}; done steps are skipped, copies continue from their checkpoint`, now);
      }
      return addLog(n, 'info', `run ${e.runId} started: phase ${e.phases.join(', ')}`, now);
    }
    case 'phase-started': {
      const phase = s.phases.find((p) => p.id === e.phase);
      let n = s;
      const ids = [...(phase?.stepIds ?? [])];
      for (const st of e.steps) {
        if (!ids.includes(st.id)) ids.push(st.id);
        const prev = n.steps[st.id];
        n = patchStep(n, st.id, { title: st.title, status: st.done ? 'done' : prev?.status ?? 'pending' }, { phase: e.phase, title: st.title });
      }
      n = patchPhase(n, e.phase, { stepIds: ids, status: 'running', error: undefined });
      return addLog(n, 'info', `phase ${e.phase} · ${e.name}: ${e.steps.length} step${e.steps.length === 1 ? '' : 's'}`, now);
    }
    case 'phase-done': {
      const phase = s.phases.find((p) => p.id === e.phase);
      const allDone = phase?.stepIds.every((id) => ['done', 'already-done', 'skipped'].includes(s.steps[id]?.status ?? '')) ?? false;
      return patchPhase(s, e.phase, { status: allDone ? 'done' : 'ready' });
    }
    case 'step-started': {
      let n = patchStep(s, e.stepId, {
        status: 'running', error: undefined, hint: undefined, progress: undefined, samples: undefined, lastLog: undefined, summary: undefined, checkpoint: undefined,
        tables: undefined, warnings: undefined, operatorSkipped: false,
      }, { phase: e.phase, title: e.title });
      // follow the running step when its phase is on screen
      const cur = currentPhase(n);
      if (cur.id === e.phase) {
        if (!cur.stepIds.includes(e.stepId)) n = patchPhase(n, e.phase, { stepIds: [...cur.stepIds, e.stepId] });
        n = { ...n, selected: currentPhase(n).stepIds.indexOf(e.stepId), detailScroll: 0 };
      }
      return addLog(n, 'info', `▶ ${e.stepId}  ${e.title}`, now);
    }
    case 'step-progress':
      return patchStep(s, e.stepId, {
        progress: { ...e.progress, ratePerSec: e.ratePerSec, etaSec: e.etaSec },
        samples: addSample(s.steps[e.stepId]?.samples, { t: now, done: e.progress.done }),
      });
    case 'step-log':
      return addLog(patchStep(s, e.stepId, { lastLog: e.message }), e.level, `  ${e.message}`, now);
    case 'step-done': {
      // a destructive step declined (or refused) and skipped by the engine: the same word as every declined step
      const declined = e.status === 'skipped' && e.declined === true;
      let n = patchStep(s, e.stepId, {
        status: declined ? 'declined' : e.status === 'already-done' ? 'already-done' : e.status, summary: e.summary, tables: e.tables, warnings: e.warnings,
        durationMs: e.durationMs, lastLog: undefined,
      });
      for (const w of e.warnings ?? []) n = addLog(n, 'warn', `  ⚠ ${w}`, now);
      const word = e.status === 'already-done' ? 'already done' : e.status;
      return addLog(n, 'info', `${e.status === 'skipped' ? '–' : '✓'} ${e.stepId} ${word}${e.summary ? `: ${e.summary}` : ''}`, now);
    }
    case 'step-failed': {
      // declined in the modal: nothing ran; the engine's hint is for headless mode, the wizard simply asks again
      if (e.reason === 'needs-confirmation') {
        const what = e.confirm ? `${e.confirm.kind} ${e.confirm.object}` : e.stepId;
        const n = patchStep(s, e.stepId, { status: 'declined', error: `not confirmed: nothing ran (${what})`, hint: 'press enter to be asked again', durationMs: e.durationMs });
        return addLog(n, 'warn', `■ ${e.stepId}: not confirmed, nothing ran`, now);
      }
      let n = patchStep(s, e.stepId, {
        status: e.reason === 'aborted' ? 'stopped' : 'failed', error: e.error, hint: e.hint, durationMs: e.durationMs,
        ...(e.summary !== undefined ? { summary: e.summary } : {}), ...(e.tables ? { tables: e.tables } : {}), ...(e.warnings ? { warnings: e.warnings } : {}),
      });
      for (const w of e.warnings ?? []) n = addLog(n, 'warn', `  ⚠ ${w}`, now);
      const m = addLog(n, 'error', `✗ ${e.stepId}: ${e.error}`, now);
      return e.hint ? addLog(m, 'info', `  hint: ${e.hint}`, now) : m;
    }
    case 'confirm-requested':
      return addLog(s, 'warn', `? ${e.request.kind} ${e.request.object}: ${e.request.refusal ? `refused: ${e.request.refusal}` : 'waiting for the operator'}`, now);
    case 'confirm-answered': {
      const a = e.answer;
      const how = a.confirmed ? `confirmed by ${a.by} (${a.method}${a.override ? ', override' : ''})` : a.method === 'refused' ? 'refused' : `declined by ${a.by}`;
      return addLog(s, a.confirmed ? 'info' : 'warn', `  ${e.object}: ${how}`, now);
    }
    case 'run-ended': {
      const level: LogLevel = e.status === 'completed' ? 'info' : e.status === 'failed' ? 'error' : 'warn';
      let n = s;
      // a step left "running" by an aborted run is stopped
      for (const st of Object.values(s.steps)) if (st.status === 'running') n = patchStep(n, st.id, { status: 'stopped' });
      return addLog(n, level, `run ${e.runId} ${e.status}${e.message ? `: ${e.message}` : ''}`, now);
    }
  }
}

export function wizardReducer(s: WizardState, a: WizardAction): WizardState {
  switch (a.type) {
    case 'event':
      return reduceEvent(s, a.event, a.now);
    case 'phase-planning':
      return patchPhase(s, a.phase, { status: s.phases.find((p) => p.id === a.phase)?.stepIds.length ? s.phases.find((p) => p.id === a.phase)!.status : 'planning' });
    case 'phase-planned': {
      let n = s;
      for (const st of a.steps) {
        const j = a.states[st.id];
        const prev = n.steps[st.id];
        // a completed rollback resets the journal's step states: its own steps still show what they did
        const keep = prev && (prev.status === 'running' || prev.status === 'failed' || prev.status === 'stopped' || prev.status === 'declined' || prev.tables
          || (a.phase === 'rollback' && prev.status === 'done'));
        n = patchStep(n, st.id, {
          title: st.title,
          ...(keep ? {} : { status: statusFromJournal(j?.status), summary: prev?.summary ?? j?.summary }),
          operatorSkipped: !!j?.operatorSkipped && (keep ? prev.operatorSkipped : true),
        }, { phase: a.phase, title: st.title });
      }
      // a step that started while the phase was being planned stays listed
      const ids = [...a.steps.map((x) => x.id), ...(s.phases.find((p) => p.id === a.phase)?.stepIds ?? []).filter((id) => !a.steps.some((x) => x.id === id) && n.steps[id]?.status === 'running')];
      const allDone = ids.length > 0 && ids.every((id) => ['done', 'already-done', 'skipped'].includes(n.steps[id]!.status));
      const running = s.run?.phase === a.phase;
      n = patchPhase(n, a.phase, { stepIds: ids, status: running ? 'running' : allDone ? 'done' : 'ready', error: undefined });
      const cur = currentPhase(n);
      return cur.id === a.phase ? { ...n, selected: Math.min(n.selected, Math.max(0, ids.length - 1)) } : n;
    }
    case 'phase-plan-failed':
      return addLog(patchPhase(s, a.phase, { status: 'error', error: a.error }), 'error', `phase ${a.phase}: cannot plan: ${a.error}`, Date.now());
    case 'select-phase': {
      const idx = phaseIndex(a.phase);
      return idx < 0 || idx === s.phaseIdx ? s : { ...s, phaseIdx: idx, selected: 0, detailScroll: 0 };
    }
    case 'move-phase': {
      const idx = Math.max(0, Math.min(s.phases.length - 1, s.phaseIdx + a.delta));
      return idx === s.phaseIdx ? s : { ...s, phaseIdx: idx, selected: 0, detailScroll: 0 };
    }
    case 'move': {
      const n = currentPhase(s).stepIds.length;
      if (n === 0) return s;
      const sel = Math.max(0, Math.min(n - 1, s.selected + a.delta));
      return sel === s.selected ? s : { ...s, selected: sel, detailScroll: 0 };
    }
    case 'scroll-detail':
      return { ...s, detailScroll: Math.max(0, Math.min(a.max ?? Number.MAX_SAFE_INTEGER, s.detailScroll + a.delta)) };
    case 'scroll-log':
      return { ...s, logScroll: Math.max(0, Math.min(Math.max(0, s.log.length - 1), s.logScroll - a.delta)) };
    case 'scroll-help':
      return { ...s, helpScroll: Math.max(0, s.helpScroll + a.delta) };
    case 'focus': {
      const order: Focus[] = ['steps', 'detail', 'log'];
      return { ...s, focus: a.focus ?? order[(order.indexOf(s.focus) + 1) % order.length]! };
    }
    case 'banner':
      return { ...s, banner: { text: a.text, level: a.level } };
    case 'checkpoints': {
      let n = s;
      for (const [id, text] of Object.entries(a.checkpoints)) if (n.steps[id] && n.steps[id].status !== 'running') n = patchStep(n, id, { checkpoint: text });
      return n;
    }
    case 'overlay':
      return { ...s, overlay: a.overlay, ...(a.overlay === 'skip' ? { skipText: '', skipError: undefined } : {}), ...(a.overlay === 'preview' ? { detailScroll: 0 } : {}), ...(a.overlay === 'help' ? { helpScroll: 0 } : {}) };
    case 'run-begin':
      return addLog({ ...s, run: { scope: a.scope, phase: a.phase, startedAt: a.now, stopping: false }, lastOutcome: undefined, banner: undefined }, 'info', `running ${a.scope}`, a.now);
    case 'run-finish': {
      const n = { ...s, run: null, lastOutcome: { status: a.status, message: a.message } };
      return n;
    }
    case 'stopping':
      if (!s.run) return { ...s, quitAfterRun: a.quit };
      return addLog({ ...s, run: { ...s.run, stopping: true }, quitAfterRun: a.quit || s.quitAfterRun, overlay: 'none' }, 'warn',
        'stopping: the running batch finishes and commits its checkpoint, then the run ends', a.now);
    case 'preview-loaded':
      return { ...s, previews: { ...s.previews, [a.stepId]: { statements: a.statements, error: a.error } } };
    case 'confirm-push':
      return { ...s, confirms: [...s.confirms, { id: a.id, request: a.request }] };
    case 'confirm-pop':
      return { ...s, confirms: s.confirms.filter((c) => c.id !== a.id) };
    case 'log':
      return addLog(s, a.level, a.text, a.now);
    case 'skip-input':
      return { ...s, skipText: a.text, skipError: undefined };
    case 'skip-error':
      return { ...s, skipError: a.error };
    case 'step-skipped':
      return addLog({ ...patchStep(s, a.stepId, { status: 'skipped', summary: `skipped by the operator: ${a.reason}`, operatorSkipped: true }), overlay: 'none', skipText: '' },
        'warn', `– ${a.stepId} skipped by the operator: ${a.reason}`, a.now);
  }
}

/**
 * The phase to go to next: after the shown phase has completed, the first later phase that is not done (none while
 * a run is in progress, none after the last phase).
 */
export function nextPhase(s: WizardState): PhaseId | null {
  if (s.run) return null;
  const cur = currentPhase(s);
  if (cur.id === 'rollback' || cur.stepIds.length === 0) return null;
  const isDone = (p: PhaseView) => p.stepIds.length > 0 && p.stepIds.every((id) => ['done', 'already-done', 'skipped'].includes(s.steps[id]?.status ?? ''));
  if (!isDone(cur)) return null;
  for (let i = s.phaseIdx + 1; i < s.phases.length; i++) {
    const p = s.phases[i]!;
    if (p.id === 'rollback') return null;
    if (!isDone(p)) return p.id;
  }
  return null;
}

/** The status at the left of the bottom line. `now` may lag behind an event's time (the clock ticks once a second). */
export function statusText(s: WizardState, now: number, fmt: (ms: number) => string): string {
  if (s.run) return s.run.stopping ? 'stopping…' : `running ${s.run.scope} · ${fmt(Math.max(0, now - s.run.startedAt))}`;
  return s.lastOutcome ? `last run ${s.lastOutcome.status}` : 'idle';
}
