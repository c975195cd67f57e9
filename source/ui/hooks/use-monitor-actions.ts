import { useCallback, useRef } from 'react';
import type { Engine } from '../../engine/engine.js';
import type { ConfirmRequest } from '../../engine/types.js';
import { backendActionSql, type BackendAction } from '../../db/monitor-actions.js';
import { BATCH_LIMITS, THROTTLE_LIMITS, sendControl } from '../../copy/control.js';
import type { MonitorSource } from '../monitor-source.js';
import { clip } from '../format-ui.js';
import type { WizardState } from '../state/use-wizard-state.js';
import type { ActivitySession } from './use-activity-view.js';
import type { OperatorAnswer } from './use-confirm-queue.js';

/** The keys that steer a running copy (keymap.ts). */
export type CopySteer = 'copy-pause' | 'copy-batch-up' | 'copy-batch-down' | 'copy-rest-up' | 'copy-rest-down';

export interface MonitorActions {
  /**
   * Cancels a backend's query or ends its session: asks first (the confirmation shows the statement), then the engine
   * journals the answer and, when confirmed, sends it. The result goes to the activity view's notice and the log.
   */
  readonly signalBackend: (action: BackendAction, pid: number) => Promise<void>;
  /** live control of a running copy: the same journaled command rows `pgshift control` writes (source/copy/control.ts) */
  readonly steerCopy: (a: CopySteer, s: WizardState) => Promise<void>;
}

export function useMonitorActions({ engine, monitor, ask, log, sessions, setNotice, copy }: {
  readonly engine: Engine;
  /** the monitor connection the signals go through; null: the monitors are off and nothing is sent */
  readonly monitor: MonitorSource | null;
  readonly ask: (request: ConfirmRequest) => Promise<OperatorAnswer>;
  readonly log: (level: 'info' | 'warn' | 'error', text: string) => void;
  /** the activity view's sessions: the confirmation describes the target */
  readonly sessions: readonly ActivitySession[];
  readonly setNotice: (notice: string | undefined) => void;
  /** the plan's copy settings: where the batch and rest knobs start */
  readonly copy: { readonly batchRows: number; readonly pauseMs: number };
}): MonitorActions {
  const signalBackend = useCallback(async (action: BackendAction, pid: number) => {
    if (!monitor) return;
    const target = sessions.find((x) => x.pid === pid);
    const statement = backendActionSql(action, pid);
    const request: ConfirmRequest = {
      stepId: 'monitor', kind: action, object: `pid ${pid}`, typed: false, statements: [statement],
      impact: [
        target ? `backend: ${clip(target.text, 160)}` : `backend pid ${pid}`,
        action === 'cancel' ? 'its running statement is cancelled; an explicit transaction it is in is aborted and rolls back' : 'its session ends: its open transaction rolls back and the client must reconnect',
        ...(target?.pgshift ? ["this is one of pgshift's own sessions: the step it serves stops (a copy resumes from its last committed checkpoint)"] : []),
      ],
      protections: ['PostgreSQL rolls back only uncommitted work: no committed row is lost', 'the answer is journaled in pgshift.confirmations'],
    };
    const answer = await ask(request);
    const r = await engine.signalBackend(action, pid, answer, (a, p) => monitor.signal(a, p));
    if (r.journalError) log('error', `could not journal the answer: ${r.journalError}`);
    if (r.status === 'declined') {
      setNotice(`${action} pid ${pid}: not confirmed, nothing sent`);
      log('info', `${action} pid ${pid}: declined by ${engine.operator}`);
      return;
    }
    const msg = r.status === 'failed' ? `${action} pid ${pid} failed: ${r.error}`
      : r.ok ? `${action} pid ${pid}: sent (${statement})` : `${action} pid ${pid}: PostgreSQL answered false (the backend is gone, or this role may not signal it)`;
    setNotice(msg);
    log(r.status === 'sent' && r.ok ? 'warn' : 'error', msg);
  }, [ask, engine, log, monitor, sessions, setNotice]);

  const knobs = useRef({ batchRows: copy.batchRows, restMs: copy.pauseMs });
  const steerCopy = useCallback(async (a: CopySteer, s: WizardState) => {
    const k = knobs.current;
    const paused = Object.values(s.steps).some((x) => (x?.progress as { state?: string } | undefined)?.state === 'paused'); // step-progress carries the copy's state
    const cmd = a === 'copy-pause' ? { command: paused ? 'resume' as const : 'pause' as const, value: null }
      : a === 'copy-batch-up' || a === 'copy-batch-down'
        ? { command: 'batch' as const, value: (k.batchRows = Math.min(BATCH_LIMITS.max, Math.max(BATCH_LIMITS.min, a === 'copy-batch-up' ? k.batchRows * 2 : Math.floor(k.batchRows / 2)))) }
        : { command: 'throttle' as const, value: (k.restMs = Math.min(THROTTLE_LIMITS.max, Math.max(0, k.restMs + (a === 'copy-rest-up' ? 100 : -100)))) };
    try {
      const id = await sendControl(engine.db, { ...cmd, by: engine.operator, from: 'wizard' });
      log('info', `control #${id}: ${cmd.command}${cmd.value === null ? '' : ` ${cmd.value}`} sent; the copy applies it at its next batch${s.run ? '' : ' (no run in progress: it waits for this run\'s next copy)'}`);
    } catch (e) {
      log('error', `control: ${e instanceof Error ? e.message : String(e)}`);
    }
  }, [engine, log]);

  return { signalBackend, steerCopy };
}
