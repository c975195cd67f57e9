import { useCallback, useEffect, useRef, type Dispatch, type MutableRefObject } from 'react';
import type { Engine } from '../../engine/engine.js';
import { redact } from '../../db/connection.js';
import type { PhaseId, Step } from '../../engine/types.js';
import { currentPhase, selectedStep, type WizardAction, type WizardState } from '../state/use-wizard-state.js';

export interface PhasePlans {
  /**
   * Plans a phase: its steps and their journal state. quiet: a background plan of another phase that cannot be
   * planned yet (phase 3 before phase 2 ran) leaves that phase as it was.
   */
  readonly planPhase: (phase: PhaseId, quiet?: boolean) => Promise<void>;
  /** after a run: the catalog changed, so every phase planned so far is planned again (later phases depend on it) */
  readonly replan: () => void;
}

/** "12,345" */
const n0 = (n: number) => Math.round(n).toLocaleString('en-US');

/** "335,000 of ~1,000,000 rows committed" for a copy step's checkpoint, the total from the catalog's estimate. */
function checkpointText(cp: { rowsDone: number; estimatedRows: number }): string {
  const { rowsDone, estimatedRows: est } = cp;
  return `${n0(rowsDone)}${est > 0 ? ` of ~${n0(Math.max(est, rowsDone))}` : ''} rows committed`;
}

/** The last run, if it did not complete: "run 4 stopped in copy:public.t (interrupted): 335,000 of ~1,000,000 rows committed". */
async function lastStop(engine: Engine): Promise<{ text: string; level: 'warn' | 'error' | 'ok'; phase: PhaseId | null } | null> {
  const last = await engine.lastRunPosition();
  if (!last) return null;
  const { open, step } = last;
  if (!open && last.status === 'completed') return null;
  const phase = step?.phase ?? null;
  let detail = '';
  if (step?.stepId.startsWith('copy:')) {
    const cp = await engine.copyCheckpoint(step.stepId);
    if (cp) detail = `: ${checkpointText(cp)}`;
  }
  const how = open ? 'was killed (it never ended)' : `ended ${last.status}`;
  const where = step ? ` in ${step.stepId}${phase !== null ? ` (phase ${phase === 'rollback' ? 'Rollback' : phase})` : ''}` : '';
  return { text: `run ${last.runId} ${how}${where}${detail} — run the phase again (a) to resume; done steps are not repeated`, level: last.status === 'failed' ? 'error' : 'warn', phase };
}

/**
 * The phases' steps as the engine plans them, with their journal state and copy checkpoints; where the last run
 * stopped (a banner, and that phase shown first); the SQL preview of the selected step.
 */
export function usePhasePlans({ engine, phases, state, stateRef, dispatch }: {
  readonly engine: Engine;
  /** the phases of this session: read once, when the engine is new */
  readonly phases: readonly PhaseId[];
  readonly state: WizardState;
  readonly stateRef: MutableRefObject<WizardState>;
  readonly dispatch: Dispatch<WizardAction>;
}): PhasePlans {
  const stepsRef = useRef(new Map<string, Step>());
  const phasesRef = useRef(phases);
  phasesRef.current = phases;

  const planPhase = useCallback(async (phase: PhaseId, quiet = false) => {
    if (!quiet) dispatch({ type: 'phase-planning', phase });
    try {
      const [p] = await engine.plan([phase]);
      const states = await engine.stepStates();
      const st: Record<string, { status: string; operatorSkipped?: boolean; summary?: string }> = {};
      for (const s of p!.steps) {
        stepsRef.current.set(s.id, s);
        const j = states.get(s.id);
        if (j) st[s.id] = { status: j.status, operatorSkipped: j.status === 'skipped' && !!j.operatorSkip, summary: j.operatorSkip ? `skipped by ${j.operatorSkip.skippedBy}: ${j.operatorSkip.reason}` : undefined };
      }
      dispatch({ type: 'phase-planned', phase, steps: p!.steps.map((s) => ({ id: s.id, title: s.title })), states: st });
      // a copy stopped mid-way: its committed checkpoint, shown on the pending step
      const cps: Record<string, string> = {};
      for (const s of p!.steps) {
        if (!s.id.startsWith('copy:') || st[s.id]?.status === 'done') continue;
        const cp = await engine.copyCheckpoint(s.id);
        if (cp && cp.rowsDone > 0) cps[s.id] = checkpointText(cp);
      }
      if (Object.keys(cps).length) dispatch({ type: 'checkpoints', checkpoints: cps });
    } catch (e) {
      if (!quiet) dispatch({ type: 'phase-plan-failed', phase, error: redact(e instanceof Error ? e.message : String(e)) });
    }
  }, [engine, dispatch]);

  const replan = useCallback(() => {
    stepsRef.current.clear();
    for (const p of stateRef.current.phases) if (p.status !== 'idle') void planPhase(p.id);
  }, [planPhase, stateRef]);

  // on start: where did the last run stop? open there, with a banner; plan the other phases so the rail is true
  useEffect(() => {
    let alive = true;
    void (async () => {
      const stop = await lastStop(engine).catch(() => null);
      if (!alive) return;
      const session = phasesRef.current;
      if (stop) {
        dispatch({ type: 'banner', text: stop.text, level: stop.level });
        if (stop.phase !== null && session.includes(stop.phase)) dispatch({ type: 'select-phase', phase: stop.phase });
      }
      for (const p of session) {
        if (!alive) return;
        if (p !== currentPhase(stateRef.current).id) await planPhase(p, true);
      }
    })();
    return () => {
      alive = false;
    };
  }, [engine, dispatch, planPhase, stateRef]);

  const cur = currentPhase(state);
  useEffect(() => {
    if (cur.status === 'idle') void planPhase(cur.id);
  }, [cur.id, cur.status, planPhase]);

  // SQL preview of the selected step (cached)
  const sel = selectedStep(state);
  useEffect(() => {
    if (!sel || state.previews[sel.id]) return;
    const step = stepsRef.current.get(sel.id);
    if (!step) return;
    let alive = true;
    Promise.resolve(step.preview(engine.planContext())).then(
      (statements) => alive && dispatch({ type: 'preview-loaded', stepId: sel.id, statements: statements.map(redact) }),
      (e) => alive && dispatch({ type: 'preview-loaded', stepId: sel.id, error: redact(e instanceof Error ? e.message : String(e)) }),
    );
    return () => {
      alive = false;
    };
  }, [sel?.id, state.previews, engine, sel, dispatch]);

  return { planPhase, replan };
}
