import { useCallback, useEffect, useRef, type Dispatch, type MutableRefObject } from 'react';
import type { Engine, RunOutcome } from '../../engine/engine.js';
import { redact } from '../../db/connection.js';
import type { PhaseId } from '../../engine/types.js';
import { exitFor } from '../../engine/errors.js';
import { selectedStep, type WizardAction, type WizardState } from '../state/use-wizard-state.js';

export interface RunControl {
  /** whether this session may run the phase (the Rollback phase always) */
  readonly runnable: (phase: PhaseId) => boolean;
  /** runs a phase, or only some of its steps; scope names it in the banner ("phase 3 · Data", "step copy:…") */
  readonly startRun: (phase: PhaseId, only: string[] | undefined, scope: string) => void;
  /** stops the run (its batch finishes and commits its checkpoint); quit: then exits with the last run's code */
  readonly stop: (quit: boolean) => void;
  /** ctrl+c: asks whether to quit (or quits when asked already); while stopping, leaves at once */
  readonly interrupt: () => void;
  /** skips the selected step with the reason typed (text, else the prompt's): journaled by the engine */
  readonly skip: (text?: string) => Promise<void>;
}

/** Runs, stops, quits and skips: the engine's run, the exit code, the quit prompt's answer. */
export function useRunControl({ engine, phases, stateRef, dispatch, log, replan, onExit, onForceExit, control }: {
  readonly engine: Engine;
  /** the phases this session may run */
  readonly phases: readonly PhaseId[];
  readonly stateRef: MutableRefObject<WizardState>;
  readonly dispatch: Dispatch<WizardAction>;
  readonly log: (level: 'info' | 'warn' | 'error', text: string) => void;
  /** called when a run has ended (the catalog changed) */
  readonly replan: () => void;
  readonly onExit: (code: number) => void;
  readonly onForceExit?: () => void;
  /** filled here: lets the caller stop the run and quit on a signal (SIGTERM, SIGHUP) */
  readonly control?: { current: { quit(): void } | null };
}): RunControl {
  const runRef = useRef<{ ac: AbortController; promise: Promise<RunOutcome> } | null>(null);
  const lastCode = useRef(0);
  const quitRef = useRef(false);
  const exited = useRef(false);

  const exit = useCallback((code: number) => {
    if (exited.current) return;
    exited.current = true;
    onExit(code);
  }, [onExit]);

  const runnable = useCallback((phase: PhaseId) => phase === 'rollback' || phases.includes(phase), [phases]);

  const startRun = useCallback((phase: PhaseId, only: string[] | undefined, scope: string) => {
    if (runRef.current) {
      log('warn', 'a run is in progress: wait for it, or press q to stop it');
      return;
    }
    const ac = new AbortController();
    dispatch({ type: 'run-begin', scope, phase, now: Date.now() });
    const promise = engine.run({ phases: [phase], only, signal: ac.signal });
    runRef.current = { ac, promise };
    promise.then(
      (o) => {
        lastCode.current = exitFor(o);
        dispatch({ type: 'run-finish', status: o.status, message: o.message, now: Date.now() });
        if (phase === 'rollback') {
          dispatch(o.status === 'completed'
            ? { type: 'banner', level: 'ok', text: 'ROLLBACK COMPLETE: the original tables are back in place; pgshift status shows every step of it' }
            : { type: 'banner', level: 'error', text: `ROLLBACK NOT COMPLETE (${o.status}): ${o.message ?? 'see the log (L)'} — run it again (r, then a) to continue it` });
        } else if (o.status === 'completed') dispatch({ type: 'banner', level: 'ok', text: `${scope}: completed` });
        else if (o.status === 'needs-confirmation') dispatch({ type: 'banner', level: 'warn', text: `${scope}: declined — nothing ran from that step on; a (or enter on the step) asks again` });
        else dispatch({ type: 'banner', level: o.status === 'failed' ? 'error' : 'warn', text: `${scope}: ${o.status}${o.message ? ` — ${o.message}` : ''} (e: full error)` });
        if (o.status !== 'completed' && o.status !== 'needs-confirmation' && o.hint) log('warn', `hint: ${o.hint}`);
      },
      (e) => {
        lastCode.current = 1;
        dispatch({ type: 'run-finish', status: 'failed', message: String(e), now: Date.now() });
        log('error', `run failed: ${e instanceof Error ? e.message : String(e)}`);
      },
    ).finally(() => {
      runRef.current = null;
      replan();
      if (quitRef.current) exit(lastCode.current);
    });
  }, [engine, exit, log, replan, dispatch]);

  const stop = useCallback((quit: boolean) => {
    quitRef.current = quitRef.current || quit;
    if (runRef.current) {
      dispatch({ type: 'stopping', quit, now: Date.now() });
      runRef.current.ac.abort();
    } else if (quit) exit(lastCode.current);
  }, [exit, dispatch]);

  useEffect(() => {
    if (!control) return;
    control.current = { quit: () => stop(true) };
    return () => {
      control.current = null;
    };
  }, [control, stop]);

  const interrupt = useCallback(() => {
    const s = stateRef.current;
    if (s.run?.stopping || (quitRef.current && runRef.current)) {
      onForceExit?.();
      return;
    }
    if (s.overlay === 'quit') stop(true);
    else dispatch({ type: 'overlay', overlay: 'quit' });
  }, [onForceExit, stop, stateRef, dispatch]);

  const skip = useCallback(async (text?: string) => {
    const s = stateRef.current;
    const step = selectedStep(s);
    const reason = (text ?? s.skipText).trim();
    if (!step) return;
    if (!reason) {
      dispatch({ type: 'skip-error', error: 'a reason is required: it goes into the journal with your name' });
      return;
    }
    try {
      await engine.skipStep({ id: step.id, phase: step.phase, title: step.title }, reason);
      dispatch({ type: 'step-skipped', stepId: step.id, reason, now: Date.now() });
    } catch (e) {
      dispatch({ type: 'skip-error', error: `could not journal the skip: ${redact(e instanceof Error ? e.message : String(e))}` });
    }
  }, [engine, stateRef, dispatch]);

  return { runnable, startRun, stop, interrupt, skip };
}
