import React, { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';
import { Box, Text, useInput } from 'ink';
import type { Engine, RunOutcome } from '../engine/engine.js';
import type { ConnectionInfo } from '../db/connection.js';
import { redact } from '../db/connection.js';
import type { ConfirmAnswer, ConfirmFn, ConfirmRequest, PhaseId, Step } from '../engine/types.js';
import { exitFor } from '../engine/errors.js';
import { backendActionSql, type BackendAction } from '../db/monitor-actions.js';
import { fmtDuration } from '../format.js';
import { COLOR, ThemeContext, type Palette } from './theme.js';
import { useTerminalSize, type Size } from './hooks/use-terminal-size.js';
import { useNow } from './hooks/use-now.js';
import { useMonitor } from './hooks/use-monitor.js';
import { useConfirm } from './hooks/use-confirm.js';
import type { MonitorSource } from './monitor-source.js';
import { monitorLines, SESSION_SORTS, type SessionSort } from './monitor-lines.js';
import {
  currentPhase, initialWizardState, nextPhase, selectedStep, statusText, wizardReducer, type WizardState,
} from './state/use-wizard-state.js';
import { MAIN_KEYS, MONITOR_KEYS, fitHints, hintParts, isControlChar, resolveKey, splitChunk, stripControl } from './keymap.js';
import { Header } from './components/header.js';
import { PhaseRail } from './components/phase-rail.js';
import { StepList } from './components/step-list.js';
import { DetailPane, detailLines } from './components/detail-pane.js';
import { LogView, FullLog, fullLogLines, logErrorText } from './components/log-view.js';
import { ConfirmModal } from './components/confirm-modal.js';
import { CompactMonitor, FullMonitor } from './components/monitor-panel.js';
import { HelpScreen, PreviewScreen, QuitPrompt, SkipPrompt, TextScreen, quitPromptHeight } from './components/screens.js';
import { clip } from './format-ui.js';
import type { Key } from 'ink';
import { BATCH_LIMITS, THROTTLE_LIMITS, sendControl } from '../copy/control.js';

export interface AppProps {
  readonly engine: Engine;
  readonly conn: ConnectionInfo;
  /** the phases this session may run (from --phase / --until / --rollback); the first one is shown first */
  readonly phases: readonly PhaseId[];
  readonly demo: boolean;
  /** installs the wizard's confirm function in the engine */
  readonly setConfirm: (fn: ConfirmFn) => void;
  /** the monitors' connection; null turns the monitors off */
  readonly monitor: MonitorSource | null;
  /** called once, with the exit code, when the operator has quit (and any run has ended) */
  readonly onExit: (code: number) => void;
  /** a second Ctrl+C while stopping: leave now */
  readonly onForceExit?: () => void;
  /** filled by the App: lets the caller stop the run and quit on a signal (SIGTERM, SIGHUP) */
  readonly control?: { current: { quit(): void } | null };
  /** @default the terminal's size */
  readonly size?: Partial<Size>;
  /** @default COLOR (MONO when NO_COLOR is set) */
  readonly palette?: Palette;
}

interface Pending {
  readonly resolve: (a: Omit<ConfirmAnswer, 'by'>) => void;
}

/** Wraps the modal so its reducer starts fresh for every request. */
function ConfirmHost({ item, width, height, onAnswer, live }: {
  readonly item: { id: number; request: ConfirmRequest }; readonly width: number; readonly height: number;
  readonly live?: { text: string; gone: boolean };
  readonly onAnswer: (id: number, a: Omit<ConfirmAnswer, 'by'>, interrupt: boolean) => void;
}) {
  const cb = useCallback((a: Omit<ConfirmAnswer, 'by'>, interrupt: boolean) => onAnswer(item.id, a, interrupt), [item.id, onAnswer]);
  const state = useConfirm(item.request, cb);
  return <ConfirmModal request={item.request} state={state} width={width} height={height} live={live} />;
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

export function App(props: AppProps) {
  const { engine, monitor } = props;
  const plan = engine.opts.loaded.plan;
  const palette = props.palette ?? COLOR;
  const size = useTerminalSize(props.size);
  const now = useNow(1000);
  const [startedAt] = useState(() => Date.now());
  const [state, dispatch] = useReducer(wizardReducer, { phases: props.phases }, initialWizardState);
  const stateRef = useRef<WizardState>(state);
  stateRef.current = state;

  const stepsRef = useRef(new Map<string, Step>());
  const pending = useRef(new Map<number, Pending>());
  const seq = useRef(0);
  const runRef = useRef<{ ac: AbortController; promise: Promise<RunOutcome> } | null>(null);
  const lastCode = useRef(0);
  const quitRef = useRef(false);
  const exited = useRef(false);
  // the activity view: selection kept by pid, sort, filter, refresh interval, pause
  const [monPid, setMonPid] = useState<number | null>(null);
  const [monSort, setMonSort] = useState<SessionSort>('duration');
  const [monFilter, setMonFilter] = useState('');
  const [monFilterEditing, setMonFilterEditing] = useState(false);
  const [monRefreshMs, setMonRefreshMs] = useState<number>(plan.monitor.refreshMs);
  const [monPaused, setMonPaused] = useState(false);
  const viewRef = useRef({ width: 80, bodyH: 20, overlayMax: 0 });
  const monFilterRef = useRef('');
  const monFilterEditingRef = useRef(false);
  const [monNotice, setMonNotice] = useState<string | undefined>(undefined);

  const log = useCallback((level: 'info' | 'warn' | 'error', text: string) => dispatch({ type: 'log', level, text: redact(text), now: Date.now() }), []);
  const exit = useCallback((code: number) => {
    if (exited.current) return;
    exited.current = true;
    props.onExit(code);
  }, [props]);

  // engine events → state
  useEffect(() => engine.on((event) => dispatch({ type: 'event', event, now: Date.now() })), [engine]);

  // the confirmation queue: the engine (and the monitors) ask, the modal answers
  const ask = useCallback((request: ConfirmRequest) => new Promise<Omit<ConfirmAnswer, 'by'>>((resolve) => {
    const id = ++seq.current;
    pending.current.set(id, { resolve });
    dispatch({ type: 'confirm-push', id, request });
  }), []);
  useEffect(() => {
    props.setConfirm(async (req) => ({ ...(await ask(req)), by: engine.operator }));
    const open = pending.current;
    return () => {
      for (const p of open.values()) p.resolve({ confirmed: false, method: 'declined' });
      open.clear();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ask, engine]);

  // plans a phase: its steps and their journal state (quiet: a background plan of another phase that cannot be
  // planned yet, e.g. phase 3 before phase 2 ran, leaves that phase as it was)
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
  }, [engine]);

  // the demo: how to reach its database from another terminal (the password was printed before the wizard opened)
  useEffect(() => {
    if (!props.demo) return;
    const c = props.conn.config;
    log('info', `demo database from another terminal: psql -h ${c.host ?? '127.0.0.1'} -p ${c.port ?? 5432} -U ${c.user ?? 'postgres'} ${c.database ?? ''} (its PGPASSWORD export was printed before the wizard opened)`);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // on start: where did the last run stop? open there, with a banner; plan the other phases so the rail is true
  useEffect(() => {
    let alive = true;
    void (async () => {
      const stop = await lastStop(engine).catch(() => null);
      if (!alive) return;
      if (stop) {
        dispatch({ type: 'banner', text: stop.text, level: stop.level });
        if (stop.phase !== null && props.phases.includes(stop.phase)) dispatch({ type: 'select-phase', phase: stop.phase });
      }
      for (const p of props.phases) {
        if (!alive) return;
        if (p !== currentPhase(stateRef.current).id) await planPhase(p, true);
      }
    })();
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [engine]);

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
  }, [sel?.id, state.previews, engine, sel]);

  const runnable = (phase: PhaseId) => phase === 'rollback' || props.phases.includes(phase);

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
      stepsRef.current.clear();
      // the catalog changed: plan the phases again (steps of later phases depend on it)
      for (const p of stateRef.current.phases) if (p.status !== 'idle') void planPhase(p.id);
      if (quitRef.current) exit(lastCode.current);
    });
  }, [engine, exit, log, planPhase]);

  const stop = useCallback((quit: boolean) => {
    quitRef.current = quitRef.current || quit;
    if (runRef.current) {
      dispatch({ type: 'stopping', quit, now: Date.now() });
      runRef.current.ac.abort();
    } else if (quit) exit(lastCode.current);
  }, [exit]);

  useEffect(() => {
    if (!props.control) return;
    props.control.current = { quit: () => stop(true) };
    return () => {
      if (props.control) props.control.current = null;
    };
  }, [props.control, stop]);

  const interrupt = useCallback(() => {
    const s = stateRef.current;
    if (s.run?.stopping || (quitRef.current && runRef.current)) {
      props.onForceExit?.();
      return;
    }
    if (s.overlay === 'quit') stop(true);
    else dispatch({ type: 'overlay', overlay: 'quit' });
  }, [props, stop]);

  const onAnswer = useCallback((id: number, a: Omit<ConfirmAnswer, 'by'>, isInterrupt: boolean) => {
    const p = pending.current.get(id);
    pending.current.delete(id);
    dispatch({ type: 'confirm-pop', id });
    p?.resolve(a);
    if (isInterrupt) interrupt();
  }, [interrupt]);

  // the monitors
  const poll = useMonitor(monitor, monRefreshMs, plan.monitor.longQuerySeconds, monPaused);
  const monView = monitor ? { snapshot: poll.value, error: poll.error } : { snapshot: null, error: 'off' };
  const monitorPids = useMemo(() => {
    if (!poll.value) return [] as { pid: number; text: string; pgshift: boolean }[];
    const seen = new Set<number>();
    const out: { pid: number; text: string; pgshift: boolean }[] = [];
    for (const l of monitorLines(poll.value, 200, plan.monitor.longQuerySeconds, { sort: monSort, filter: monFilter })) {
      if (l.pid !== undefined && !seen.has(l.pid)) {
        seen.add(l.pid);
        out.push({ pid: l.pid, text: l.text.trim(), pgshift: !!l.pgshift });
      }
    }
    return out;
  }, [poll.value, plan.monitor.longQuerySeconds, monSort, monFilter]);
  const selectedPid = monPid !== null && monitorPids.some((x) => x.pid === monPid) ? monPid : monitorPids[0]?.pid ?? null;
  const moveSel = (delta: number) => {
    if (!monitorPids.length) return;
    const i = Math.max(0, monitorPids.findIndex((x) => x.pid === selectedPid));
    setMonPid(monitorPids[Math.max(0, Math.min(monitorPids.length - 1, i + delta))]!.pid);
  };
  /** the live line of a cancel / terminate dialog: what the backend does now, or that it has ended */
  const liveFor = (r: ConfirmRequest): { text: string; gone: boolean } | undefined => {
    if (r.stepId !== 'monitor' || !poll.value?.sessions) return undefined;
    const pid = Number(/pid (\d+)/.exec(r.object)?.[1]);
    const a = poll.value.sessions.find((x) => x.pid === pid);
    const at = poll.value.at.toTimeString().slice(0, 8);
    if (!a) return { text: `now (${at}): pid ${pid} has ended — nothing left to ${r.kind}; esc closes`, gone: true };
    const blocks = poll.value.waits.filter((w) => w.blockingPids.includes(pid)).length;
    return { text: `now (${at}): pid ${pid} ${a.hidden ? 'hidden (no pg_read_all_stats)' : `${a.state || '—'} ${fmtDuration(a.durationMs)}${a.waitEvent ? ` · waits ${a.waitEvent}` : ''}`}${blocks ? ` · blocks ${blocks} session(s)` : ''}${a.hidden ? '' : ` · ${a.query.replace(/\s+/g, ' ').slice(0, 200)}`}`, gone: false };
  };

  const signalBackend = useCallback(async (action: BackendAction, pid: number) => {
    if (!monitor) return;
    const target = monitorPids.find((x) => x.pid === pid);
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
      setMonNotice(`${action} pid ${pid}: not confirmed, nothing sent`);
      log('info', `${action} pid ${pid}: declined by ${engine.operator}`);
      return;
    }
    const msg = r.status === 'failed' ? `${action} pid ${pid} failed: ${r.error}`
      : r.ok ? `${action} pid ${pid}: sent (${statement})` : `${action} pid ${pid}: PostgreSQL answered false (the backend is gone, or this role may not signal it)`;
    setMonNotice(msg);
    log(r.status === 'sent' && r.ok ? 'warn' : 'error', msg);
  }, [ask, engine, log, monitor, monitorPids]);

  const doSkip = useCallback(async (text?: string) => {
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
  }, [engine]);

  const confirmOpen = state.confirms.length > 0;

  // live control of a running copy: the same journaled command rows `pgshift control` writes (source/copy/control.ts)
  const copyKnobs = useRef({ batchRows: plan.copy.batchRows, restMs: plan.copy.pauseMs });
  const steerCopy = useCallback(async (a: 'copy-pause' | 'copy-batch-up' | 'copy-batch-down' | 'copy-rest-up' | 'copy-rest-down', s: WizardState) => {
    const k = copyKnobs.current;
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

  // keys: phase screen, monitor screen, prompts (the confirmation modal has its own hook)
  const act = (a: Parameters<typeof wizardReducer>[1]) => {
    dispatch(a);
    // several keys in one chunk: the next key sees this one's effect before React renders
    stateRef.current = wizardReducer(stateRef.current, a);
  };
  const onKey = (input: string, key: Key) => {
    const s = stateRef.current;
    if (key.ctrl && input === 'c') {
      interrupt();
      return;
    }
    switch (s.overlay) {
      case 'quit':
        if (input === 'y' || input === 'Y') stop(true);
        else if (input === 'n' || input === 'N' || key.escape) act({ type: 'overlay', overlay: 'none' });
        return;
      case 'skip':
        if (key.escape) act({ type: 'overlay', overlay: 'none' });
        else if (key.return) void doSkip();
        else if (key.backspace || key.delete) act({ type: 'skip-input', text: s.skipText.slice(0, -1) });
        return;
      case 'help':
        if (key.escape || input === '?' || input === 'q') act({ type: 'overlay', overlay: 'none' });
        else if (key.upArrow || input === 'k') act({ type: 'scroll-help', delta: -1 });
        else if (key.downArrow || input === 'j') act({ type: 'scroll-help', delta: 1 });
        else if (key.pageUp) act({ type: 'scroll-help', delta: -10 });
        else if (key.pageDown || input === ' ') act({ type: 'scroll-help', delta: 10 });
        return;
      case 'log':
      case 'error':
        if (key.escape || input === 'q' || input === 'L' || input === 'e') act({ type: 'overlay', overlay: 'none' });
        else if (key.upArrow || input === 'k') act({ type: 'scroll-detail', delta: -1, max: viewRef.current.overlayMax });
        else if (key.downArrow || input === 'j') act({ type: 'scroll-detail', delta: 1, max: viewRef.current.overlayMax });
        else if (key.pageUp) act({ type: 'scroll-detail', delta: -10, max: viewRef.current.overlayMax });
        else if (key.pageDown || input === ' ') act({ type: 'scroll-detail', delta: 10, max: viewRef.current.overlayMax });
        else if (input === 'G' || key.end) act({ type: 'scroll-detail', delta: 1_000_000, max: viewRef.current.overlayMax });
        return;
      case 'preview':
        if (key.escape || input === 'p' || input === 'q') act({ type: 'overlay', overlay: 'none' });
        else if (key.upArrow || input === 'k') act({ type: 'scroll-detail', delta: -1, max: viewRef.current.overlayMax });
        else if (key.downArrow || input === 'j') act({ type: 'scroll-detail', delta: 1, max: viewRef.current.overlayMax });
        else if (key.pageUp) act({ type: 'scroll-detail', delta: -10, max: viewRef.current.overlayMax });
        else if (key.pageDown || input === ' ') act({ type: 'scroll-detail', delta: 10, max: viewRef.current.overlayMax });
        return;
      case 'monitor': {
        if (monFilterEditingRef.current) {
          // typing the filter: text, backspace, enter keeps it, esc clears it
          if (key.escape) {
            setMonFilter('');
            monFilterRef.current = '';
            setMonFilterEditing(false);
            monFilterEditingRef.current = false;
          } else if (key.return) {
            setMonFilterEditing(false);
            monFilterEditingRef.current = false;
          } else if (key.backspace || key.delete) {
            monFilterRef.current = monFilterRef.current.slice(0, -1);
            setMonFilter(monFilterRef.current);
          } else if (input && !key.ctrl && !key.meta) {
            monFilterRef.current = (monFilterRef.current + stripControl(input)).slice(0, 80);
            setMonFilter(monFilterRef.current);
          }
          return;
        }
        const a = resolveKey(MONITOR_KEYS, input, key);
        if (a === 'close') act({ type: 'overlay', overlay: 'none' });
        else if (a === 'help') act({ type: 'overlay', overlay: 'help' });
        else if (a === 'up') moveSel(-1);
        else if (a === 'down') moveSel(1);
        else if (a === 'page-up') moveSel(-10);
        else if (a === 'page-down') moveSel(10);
        else if (a === 'sort') setMonSort((x) => SESSION_SORTS[(SESSION_SORTS.indexOf(x) + 1) % SESSION_SORTS.length]!);
        else if (a === 'filter') {
          setMonFilterEditing(true);
          monFilterEditingRef.current = true;
        } else if (a === 'pause') setMonPaused((p) => !p);
        else if (a === 'slower') setMonRefreshMs((ms) => Math.min(30_000, ms * 2));
        else if (a === 'faster') setMonRefreshMs((ms) => Math.max(250, Math.round(ms / 2)));
        else if ((a === 'cancel-backend' || a === 'terminate-backend')) {
          if (selectedPid === null) setMonNotice('no backend selected: no session matches');
          else void signalBackend(a === 'cancel-backend' ? 'cancel' : 'terminate', selectedPid);
        }
        return;
      }
      case 'none': break;
    }
    const a = resolveKey(MAIN_KEYS, input, key);
    const phase = currentPhase(s);
    const step = selectedStep(s);
    switch (a) {
      case 'up':
        if (s.focus === 'detail') act({ type: 'scroll-detail', delta: -1 });
        else if (s.focus === 'log') act({ type: 'scroll-log', delta: -1 });
        else act({ type: 'move', delta: -1 });
        break;
      case 'down':
        if (s.focus === 'detail') act({ type: 'scroll-detail', delta: 1 });
        else if (s.focus === 'log') act({ type: 'scroll-log', delta: 1 });
        else act({ type: 'move', delta: 1 });
        break;
      case 'prev-phase': act({ type: 'move-phase', delta: -1 }); break;
      case 'next-phase': act({ type: 'move-phase', delta: 1 }); break;
      case 'page-up': act(s.focus === 'log' ? { type: 'scroll-log', delta: -5 } : { type: 'scroll-detail', delta: -5 }); break;
      case 'page-down': act(s.focus === 'log' ? { type: 'scroll-log', delta: 5 } : { type: 'scroll-detail', delta: 5 }); break;
      case 'focus': act({ type: 'focus' }); break;
      case 'log': act({ type: 'overlay', overlay: 'log' }); act({ type: 'scroll-detail', delta: 1_000_000, max: Math.max(0, fullLogLines(s.log, viewRef.current.width).length - viewRef.current.bodyH + 2) }); break;
      case 'error':
        if (!logErrorText(s)) log('info', 'no error to show: no step has failed in this session');
        else act({ type: 'overlay', overlay: 'error' });
        break;
      case 'next': {
        const nx = nextPhase(s);
        if (nx !== null) act({ type: 'select-phase', phase: nx });
        break;
      }
      case 'phase-1': case 'phase-2': case 'phase-3': case 'phase-4': case 'phase-5':
        act({ type: 'select-phase', phase: Number(a.slice(-1)) as PhaseId }); break;
      case 'rollback':
        act({ type: 'select-phase', phase: 'rollback' });
        log('warn', 'Rollback phase: nothing runs until you press a (or enter on a step); every destructive step asks first');
        break;
      case 'run-step':
        if (!step) break;
        if (!runnable(phase.id)) log('warn', `phase ${phase.id} is not part of this session (see --phase / --until)`);
        else startRun(phase.id, [step.id], `step ${step.id}`);
        break;
      case 'run-phase': {
        if (!runnable(phase.id)) {
          log('warn', `phase ${phase.id} is not part of this session (see --phase / --until)`);
          break;
        }
        const skipped = phase.stepIds.filter((id) => s.steps[id]?.operatorSkipped);
        const only = skipped.length ? phase.stepIds.filter((id) => !skipped.includes(id)) : undefined;
        if (skipped.length) log('info', `leaving out ${skipped.length} step(s) you skipped: ${skipped.join(', ')}`);
        startRun(phase.id, only, `phase ${phase.id} · ${phase.name}`);
        break;
      }
      case 'preview': if (step) act({ type: 'overlay', overlay: 'preview' }); break;
      case 'skip':
        if (!step) break;
        if (s.run) log('warn', 'cannot skip while a run is in progress');
        else act({ type: 'overlay', overlay: 'skip' });
        break;
      case 'monitors': act({ type: 'overlay', overlay: 'monitor' }); setMonNotice(undefined); break;
      case 'help': act({ type: 'overlay', overlay: 'help' }); break;
      case 'quit': act({ type: 'overlay', overlay: 'quit' }); break;
      case 'interrupt': interrupt(); break;
      case 'copy-pause': case 'copy-batch-up': case 'copy-batch-down': case 'copy-rest-up': case 'copy-rest-down':
        void steerCopy(a, s);
        break;
      default: break;
    }
  };
  useInput((input, key) => {
    const s = stateRef.current;
    if (s.overlay === 'skip' && input && !key.ctrl && !key.meta && !key.escape) {
      // the reason prompt: a chunk is typed text with its backspaces, and a newline submits (a paste of "reason\r")
      let text = s.skipText;
      for (const c of input) {
        if (c === '\r' || c === '\n') {
          act({ type: 'skip-input', text });
          void doSkip(text);
          return;
        }
        if (c === '\u007f' || c === '\b') text = text.slice(0, -1);
        else if (!isControlChar(c)) text = (text + c).slice(0, 300);
      }
      act({ type: 'skip-input', text });
      return;
    }
    if (key.meta && !key.ctrl && !key.escape && input.length === 1) {
      // escape and a key typed quickly arrive as one chunk ("\x1bs" reads as alt+s): escape, then the key
      onKey('', { ...key, meta: false, escape: true });
      onKey(input, { ...key, meta: false });
      return;
    }
    for (const [i, k] of splitChunk(input, key)) onKey(i, k);
  }, { isActive: !confirmOpen });

  // ── layout ──────────────────────────────────────────────────────────────────────────────
  // The detail pane gets the width: the monitors take a column only on very wide terminals, else one line.
  const W = Math.max(40, size.columns);
  const H = Math.max(12, size.rows) - 1; // one spare line: Ink redraws the whole screen when output fills it
  const bannerH = state.banner ? 1 : 0;
  const bodyH = H - 3 - bannerH;
  const monCol = W >= 150;
  const stripH = monCol ? 0 : 1;
  const logH = bodyH >= 30 ? 9 : bodyH >= 18 ? 6 : 4;
  const monW = monCol ? Math.min(48, Math.floor(W * 0.28)) : 0;
  const listW = Math.min(40, Math.max(24, Math.floor((W - monW) * 0.3)));
  const detailW = W - monW - listW - (monCol ? 2 : 1);
  const phaseSteps = cur.stepIds.map((id) => state.steps[id]!).filter(Boolean);
  const tNow = Math.max(now, Date.now());
  const statusWord = statusText(state, tNow, fmtDuration);
  const listTitle = `${cur.id === 'rollback' ? 'Rollback' : `Phase ${cur.id} · ${cur.name}`}${cur.status === 'planning' ? ' (planning…)' : ''}${runnable(cur.id) ? '' : ' (not in this session)'}`;
  const nx = nextPhase(state);
  const quitH = state.overlay === 'quit' ? quitPromptHeight(!!state.run, W) : 0;
  const promptH = state.overlay === 'skip' ? 5 : quitH;
  const bottomH = promptH ? Math.max(logH, promptH) : logH;
  const mainH = Math.max(3, bodyH - bottomH - stripH - (cur.error ? 1 : 0) - (nx !== null && !state.run ? 1 : 0));

  let body: React.ReactNode;
  let overlayLines = 0;
  const top = state.confirms[0];
  if (top) {
    body = <ConfirmHost key={top.id} item={top} width={W} height={bodyH} onAnswer={onAnswer} live={liveFor(top.request)} />;
  } else if (state.overlay === 'help') {
    body = <HelpScreen width={W} height={bodyH} scroll={state.helpScroll} />;
  } else if (state.overlay === 'monitor') {
    body = <FullMonitor view={monView} width={W} height={bodyH} longQuerySeconds={plan.monitor.longQuerySeconds} selectedPid={selectedPid} refreshMs={monRefreshMs} notice={monNotice} sort={monSort} filter={monFilter} filterEditing={monFilterEditing} paused={monPaused} />;
  } else if (state.overlay === 'preview') {
    const lines = detailLines(sel, sel ? state.previews[sel.id] : undefined, W);
    overlayLines = lines.length;
    body = <PreviewScreen title={`Preview · ${sel?.id ?? ''} · ${sel?.title ?? ''}`} lines={lines} scroll={state.detailScroll} width={W} height={bodyH} />;
  } else if (state.overlay === 'log') {
    overlayLines = fullLogLines(state.log, W).length;
    body = <FullLog log={state.log} width={W} height={bodyH} scroll={state.detailScroll} />;
  } else if (state.overlay === 'error') {
    const text = logErrorText(state) ?? 'no error';
    const lines = text.split('\n');
    overlayLines = lines.length + 5;
    body = <TextScreen title="Error · full text (esc closes)" text={text} width={W} height={bodyH} scroll={state.detailScroll} />;
  } else {
    const prompt = state.overlay === 'skip' && sel
      ? <SkipPrompt stepId={sel.id} text={state.skipText} error={state.skipError} width={W} />
      : state.overlay === 'quit' ? <QuitPrompt running={!!state.run} width={W} /> : null;
    body = (
      <Box flexDirection="column" width={W} height={bodyH}>
        <Box flexDirection="row" height={mainH} width={W}>
          <StepList steps={phaseSteps} selected={state.selected} height={mainH} width={listW} title={listTitle} focused={state.focus === 'steps'} />
          <Box width={1} />
          <DetailPane step={sel} preview={sel ? state.previews[sel.id] : undefined} height={mainH} width={detailW} scroll={state.detailScroll} now={tNow} focused={state.focus === 'detail'} />
          {monCol ? <Box width={1} /> : null}
          {monCol ? <CompactMonitor view={monView} width={monW} height={mainH} longQuerySeconds={plan.monitor.longQuerySeconds} /> : null}
        </Box>
        {cur.error ? <Text color={palette.error} wrap="truncate-end">{clip(`cannot plan this phase: ${cur.error} (e: full text)`, W)}</Text> : null}
        {nx !== null && !state.run ? <Text color={palette.ok} bold wrap="truncate-end">{clip(`next → ${nx === 'rollback' ? 'Rollback' : `phase ${nx} · ${state.phases.find((p) => p.id === nx)?.name ?? ''}`}: press n to go there, then a to run it`, W)}</Text> : null}
        {!monCol ? <StripMonitor view={monView} width={W} longQuerySeconds={plan.monitor.longQuerySeconds} /> : null}
        {prompt ? <Box height={bottomH} width={W} alignItems="flex-start">{prompt}</Box> : <LogView log={state.log} height={bottomH} width={W} scroll={state.logScroll} focused={state.focus === 'log'} />}
      </Box>
    );
  }
  viewRef.current = { width: W, bodyH, overlayMax: Math.max(0, overlayLines - (bodyH - 2)) };
  const mainHints = hintParts(MAIN_KEYS);
  const hintW = Math.max(20, W - statusWord.length - 3);
  const hints = confirmOpen
    ? fitHints(['confirmation: read the statements', '↑/↓ scroll', 'esc cancels'], hintW, ['esc cancels'])
    : state.overlay === 'monitor' ? fitHints(hintParts(MONITOR_KEYS), hintW, ['esc/m back'])
      : state.overlay === 'none' ? fitHints([...mainHints, '←/→ phase'], hintW, ['? help', 'q quit'])
        : state.overlay === 'log' || state.overlay === 'error' || state.overlay === 'preview' ? fitHints(['↑/↓ pgup/pgdn scroll', 'esc closes'], hintW, ['esc closes'])
          : state.overlay === 'help' ? fitHints(['↑/↓ pgup/pgdn scroll', 'esc or ? closes'], hintW, ['esc or ? closes']) : '';

  return (
    <ThemeContext.Provider value={palette}>
      <Box flexDirection="column" width={W} height={H} overflow="hidden">
        <Header database={props.conn.display} serverVersion={engine.serverVersion} runId={state.run?.runId ?? engine.journal.runId ?? undefined} elapsedMs={Math.max(now, Date.now()) - startedAt} operator={engine.operator} demo={props.demo} width={W} />
        <PhaseRail phases={state.phases} steps={state.steps} current={state.phaseIdx} width={W} />
        {state.banner ? <Text bold color={state.banner.level === 'error' ? palette.error : state.banner.level === 'warn' ? palette.warn : state.banner.level === 'ok' ? palette.ok : palette.accent} wrap="truncate-end">{clip(state.banner.text, W)}</Text> : null}
        {body}
        <Box width={W} height={1}>
          <Text color={palette.dim} wrap="truncate-end">{clip(`${statusWord}${hints ? ' │ ' : ''}${hints}`, W)}</Text>
        </Box>
      </Box>
    </ThemeContext.Provider>
  );
}

function StripMonitor({ view, width, longQuerySeconds }: { readonly view: { snapshot: import('../db/monitor.js').MonitorSnapshot | null; error: string | null }; readonly width: number; readonly longQuerySeconds: number }) {
  return <CompactMonitor view={view} width={width} height={1} longQuerySeconds={longQuerySeconds} strip />;
}

