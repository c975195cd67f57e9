import React, { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';
import { Box, Text, useInput } from 'ink';
import type { Engine, RunOutcome } from '../engine/engine.js';
import type { ConnectionInfo } from '../db/connection.js';
import { redact } from '../db/connection.js';
import type { ConfirmAnswer, ConfirmFn, ConfirmRequest, PhaseId, Step } from '../engine/types.js';
import { exitFor } from '../cli.js';
import { backendActionSql, type BackendAction } from '../db/monitor-actions.js';
import { fmtDuration } from '../format.js';
import { COLOR, ThemeContext, type Palette } from './theme.js';
import { useTerminalSize, type Size } from './hooks/use-terminal-size.js';
import { useNow } from './hooks/use-now.js';
import { useMonitor } from './hooks/use-monitor.js';
import { useConfirm } from './hooks/use-confirm.js';
import type { MonitorSource } from './monitor-source.js';
import { monitorLines } from './monitor-lines.js';
import {
  currentPhase, initialWizardState, selectedStep, statusText, wizardReducer, type WizardState,
} from './state/use-wizard-state.js';
import { MAIN_KEYS, MONITOR_KEYS, hintLine, resolveKey } from './keymap.js';
import { Header } from './components/header.js';
import { PhaseRail } from './components/phase-rail.js';
import { StepList } from './components/step-list.js';
import { DetailPane, detailLines } from './components/detail-pane.js';
import { LogView } from './components/log-view.js';
import { ConfirmModal } from './components/confirm-modal.js';
import { CompactMonitor, FullMonitor } from './components/monitor-panel.js';
import { HelpScreen, PreviewScreen, QuitPrompt, SkipPrompt } from './components/screens.js';
import { clip } from './format-ui.js';
import { isOperatorSkip, skipStep } from './skip.js';
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
function ConfirmHost({ item, width, height, onAnswer }: {
  readonly item: { id: number; request: ConfirmRequest }; readonly width: number; readonly height: number;
  readonly onAnswer: (id: number, a: Omit<ConfirmAnswer, 'by'>, interrupt: boolean) => void;
}) {
  const cb = useCallback((a: Omit<ConfirmAnswer, 'by'>, interrupt: boolean) => onAnswer(item.id, a, interrupt), [item.id, onAnswer]);
  const state = useConfirm(item.request, cb);
  return <ConfirmModal request={item.request} state={state} width={width} height={height} />;
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
  const [monSel, setMonSel] = useState(0);
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

  // plans a phase: its steps and their journal state
  const planPhase = useCallback(async (phase: PhaseId) => {
    dispatch({ type: 'phase-planning', phase });
    try {
      const [p] = await engine.plan([phase]);
      const states = await engine.journal.stepStates();
      const st: Record<string, { status: string; operatorSkipped?: boolean; summary?: string }> = {};
      for (const s of p!.steps) {
        stepsRef.current.set(s.id, s);
        const j = states.get(s.id);
        if (j) st[s.id] = { status: j.status, operatorSkipped: j.status === 'skipped' && isOperatorSkip(j.result), summary: isOperatorSkip(j.result) ? `skipped by ${j.result.skippedBy}: ${j.result.reason}` : undefined };
      }
      dispatch({ type: 'phase-planned', phase, steps: p!.steps.map((s) => ({ id: s.id, title: s.title })), states: st });
    } catch (e) {
      dispatch({ type: 'phase-plan-failed', phase, error: redact(e instanceof Error ? e.message : String(e)) });
    }
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
    step.preview(engine.planContext()).then(
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
  const poll = useMonitor(monitor, plan.monitor.refreshMs, plan.monitor.longQuerySeconds);
  const monView = monitor ? { snapshot: poll.value, error: poll.error } : { snapshot: null, error: 'off' };
  const monitorPids = useMemo(() => {
    if (!poll.value) return [] as { pid: number; text: string; pgshift: boolean }[];
    const seen = new Set<number>();
    const out: { pid: number; text: string; pgshift: boolean }[] = [];
    for (const l of monitorLines(poll.value, 200, plan.monitor.longQuerySeconds)) {
      if (l.pid !== undefined && !seen.has(l.pid)) {
        seen.add(l.pid);
        out.push({ pid: l.pid, text: l.text.trim(), pgshift: !!l.pgshift });
      }
    }
    return out;
  }, [poll.value, plan.monitor.longQuerySeconds]);
  const selectedPid = monitorPids.length ? monitorPids[Math.min(monSel, monitorPids.length - 1)]!.pid : null;

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
    const journalAnswer = answer.confirmed ? 'confirmed' : 'declined';
    await engine.journal.recordConfirmation({
      stepId: 'monitor', kind: action, object: request.object, statements: request.statements, answer: journalAnswer,
      method: answer.method, by: engine.operator,
    }).catch((e) => log('error', `could not journal the answer: ${e instanceof Error ? e.message : String(e)}`));
    if (!answer.confirmed) {
      setMonNotice(`${action} pid ${pid}: not confirmed, nothing sent`);
      log('info', `${action} pid ${pid}: declined by ${engine.operator}`);
      return;
    }
    try {
      const ok = await monitor.signal(action, pid);
      const msg = ok ? `${action} pid ${pid}: sent (${statement})` : `${action} pid ${pid}: PostgreSQL answered false (the backend is gone, or this role may not signal it)`;
      setMonNotice(msg);
      log(ok ? 'warn' : 'error', msg);
    } catch (e) {
      const msg = `${action} pid ${pid} failed: ${redact(e instanceof Error ? e.message : String(e))}`;
      setMonNotice(msg);
      log('error', msg);
    }
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
      await skipStep(engine, { id: step.id, phase: step.phase, title: step.title }, reason);
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
  useInput((input, key) => {
    const s = stateRef.current;
    if (key.ctrl && input === 'c') {
      interrupt();
      return;
    }
    switch (s.overlay) {
      case 'quit':
        if (input === 'y' || input === 'Y') stop(true);
        else if (input === 'n' || input === 'N' || key.escape) dispatch({ type: 'overlay', overlay: 'none' });
        return;
      case 'skip':
        if (key.escape) dispatch({ type: 'overlay', overlay: 'none' });
        else if (key.return) void doSkip();
        else if (key.backspace || key.delete) dispatch({ type: 'skip-input', text: s.skipText.slice(0, -1) });
        else if (input && !key.ctrl && !key.meta) {
          // a pasted "reason\r" arrives in one chunk: type the text before the newline, then submit
          const nl = input.search(/[\r\n]/);
          const text = (s.skipText + (nl >= 0 ? input.slice(0, nl) : input).replace(/[\u0000-\u001f\u007f]/g, '')).slice(0, 300);
          dispatch({ type: 'skip-input', text });
          if (nl >= 0) void doSkip(text);
        }
        return;
      case 'help':
        if (key.escape || input === '?' || input === 'q') dispatch({ type: 'overlay', overlay: 'none' });
        return;
      case 'preview':
        if (key.escape || input === 'p' || input === 'q') dispatch({ type: 'overlay', overlay: 'none' });
        else if (key.upArrow || input === 'k') dispatch({ type: 'scroll-detail', delta: -1 });
        else if (key.downArrow || input === 'j') dispatch({ type: 'scroll-detail', delta: 1 });
        else if (key.pageUp) dispatch({ type: 'scroll-detail', delta: -10 });
        else if (key.pageDown || input === ' ') dispatch({ type: 'scroll-detail', delta: 10 });
        return;
      case 'monitor': {
        const a = resolveKey(MONITOR_KEYS, input, key);
        if (a === 'close') dispatch({ type: 'overlay', overlay: 'none' });
        else if (a === 'help') dispatch({ type: 'overlay', overlay: 'help' });
        else if (a === 'up') setMonSel((i) => Math.max(0, Math.min(i, monitorPids.length - 1) - 1));
        else if (a === 'down') setMonSel((i) => Math.min(Math.max(0, monitorPids.length - 1), i + 1));
        else if ((a === 'cancel-backend' || a === 'terminate-backend')) {
          if (selectedPid === null) setMonNotice('no backend selected: nothing waits, runs long or idles in a transaction');
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
      case 'up': dispatch({ type: 'move', delta: -1 }); break;
      case 'down': dispatch({ type: 'move', delta: 1 }); break;
      case 'prev-phase': dispatch({ type: 'move-phase', delta: -1 }); break;
      case 'next-phase': dispatch({ type: 'move-phase', delta: 1 }); break;
      case 'page-up': dispatch({ type: 'scroll-detail', delta: -5 }); break;
      case 'page-down': dispatch({ type: 'scroll-detail', delta: 5 }); break;
      case 'phase-1': case 'phase-2': case 'phase-3': case 'phase-4': case 'phase-5':
        dispatch({ type: 'select-phase', phase: Number(a.slice(-1)) as PhaseId }); break;
      case 'rollback':
        dispatch({ type: 'select-phase', phase: 'rollback' });
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
      case 'preview': if (step) dispatch({ type: 'overlay', overlay: 'preview' }); break;
      case 'skip':
        if (!step) break;
        if (s.run) log('warn', 'cannot skip while a run is in progress');
        else dispatch({ type: 'overlay', overlay: 'skip' });
        break;
      case 'monitors': dispatch({ type: 'overlay', overlay: 'monitor' }); setMonNotice(undefined); break;
      case 'help': dispatch({ type: 'overlay', overlay: 'help' }); break;
      case 'quit': dispatch({ type: 'overlay', overlay: 'quit' }); break;
      case 'interrupt': interrupt(); break;
      case 'copy-pause': case 'copy-batch-up': case 'copy-batch-down': case 'copy-rest-up': case 'copy-rest-down':
        void steerCopy(a, s);
        break;
      default: break;
    }
  }, { isActive: !confirmOpen });

  // ── layout ──────────────────────────────────────────────────────────────────────────────
  const W = Math.max(40, size.columns);
  const H = Math.max(12, size.rows) - 1; // one spare line: Ink redraws the whole screen when output fills it
  const bodyH = H - 3;
  const wide = W >= 100;
  const stripH = wide ? 0 : 2;
  const logH = bodyH >= 30 ? 8 : bodyH >= 18 ? 5 : 4;
  const mainH = Math.max(3, bodyH - logH - stripH);
  const monW = wide ? Math.min(44, Math.floor(W * 0.3)) : 0;
  const listW = Math.min(46, Math.max(26, Math.floor((W - monW) * 0.42)));
  const detailW = W - monW - listW - (wide ? 2 : 1);
  const phaseSteps = cur.stepIds.map((id) => state.steps[id]!).filter(Boolean);
  const statusWord = statusText(state, Math.max(now, Date.now()), fmtDuration);
  const listTitle = `${cur.id === 'rollback' ? 'Rollback' : `Phase ${cur.id} · ${cur.name}`}${cur.status === 'planning' ? ' (planning…)' : ''}${runnable(cur.id) ? '' : ' (not in this session)'}`;

  let body: React.ReactNode;
  const top = state.confirms[0];
  if (top) {
    body = <ConfirmHost key={top.id} item={top} width={W} height={bodyH} onAnswer={onAnswer} />;
  } else if (state.overlay === 'help') {
    body = <HelpScreen width={W} height={bodyH} />;
  } else if (state.overlay === 'monitor') {
    body = <FullMonitor view={monView} width={W} height={bodyH} longQuerySeconds={plan.monitor.longQuerySeconds} selectedPid={selectedPid} refreshMs={plan.monitor.refreshMs} notice={monNotice} />;
  } else if (state.overlay === 'preview') {
    body = <PreviewScreen title={`Preview · ${sel?.id ?? ''} · ${sel?.title ?? ''}`} lines={detailLines(sel, sel ? state.previews[sel.id] : undefined, W)} scroll={state.detailScroll} width={W} height={bodyH} />;
  } else {
    const prompt = state.overlay === 'skip' && sel
      ? <SkipPrompt stepId={sel.id} text={state.skipText} error={state.skipError} width={W} />
      : state.overlay === 'quit' ? <QuitPrompt running={!!state.run} width={W} /> : null;
    body = (
      <Box flexDirection="column" width={W} height={bodyH}>
        <Box flexDirection="row" height={mainH} width={W}>
          <StepList steps={phaseSteps} selected={state.selected} height={mainH} width={listW} title={listTitle} />
          <Box width={1} />
          <DetailPane step={sel} preview={sel ? state.previews[sel.id] : undefined} height={mainH} width={detailW} scroll={state.detailScroll} />
          {wide ? <Box width={1} /> : null}
          {wide ? <CompactMonitor view={monView} width={monW} height={mainH} longQuerySeconds={plan.monitor.longQuerySeconds} /> : null}
        </Box>
        {cur.error ? <Text color={palette.error} wrap="truncate-end">{clip(`cannot plan this phase: ${cur.error}`, W)}</Text> : null}
        {!wide ? <StripMonitor view={monView} width={W} longQuerySeconds={plan.monitor.longQuerySeconds} /> : null}
        {prompt ? <Box height={Math.max(logH, 5)} width={W} alignItems="flex-start">{prompt}</Box> : <LogView log={state.log} height={logH - (cur.error ? 1 : 0)} width={W} />}
      </Box>
    );
  }
  const hints = confirmOpen
    ? 'confirmation: read the statements (↑/↓ scroll) · esc cancels'
    : state.overlay === 'monitor' ? hintLine(MONITOR_KEYS)
      : state.overlay === 'none' ? (W >= 100 ? `${hintLine(MAIN_KEYS)} · ←/→ phase` : 'enter step · a phase · p preview · s skip · m monitors · r rollback · ? help · q quit')
        : '';

  return (
    <ThemeContext.Provider value={palette}>
      <Box flexDirection="column" width={W} height={H} overflow="hidden">
        <Header database={props.conn.display} serverVersion={engine.serverVersion} runId={state.run?.runId ?? engine.journal.runId ?? undefined} elapsedMs={Math.max(now, Date.now()) - startedAt} operator={engine.operator} demo={props.demo} width={W} />
        <PhaseRail phases={state.phases} steps={state.steps} current={state.phaseIdx} width={W} />
        {body}
        <Box width={W} height={1}>
          <Text color={palette.dim} wrap="truncate-end">{clip(`${statusWord}${hints ? ' │ ' : ''}${hints}`, W)}</Text>
        </Box>
      </Box>
    </ThemeContext.Provider>
  );
}

function StripMonitor({ view, width, longQuerySeconds }: { readonly view: { snapshot: import('../db/monitor.js').MonitorSnapshot | null; error: string | null }; readonly width: number; readonly longQuerySeconds: number }) {
  return <CompactMonitor view={view} width={width} height={2} longQuerySeconds={longQuerySeconds} strip />;
}

