import React, { useCallback, useEffect, useRef, useState } from 'react';
import { Box, Text } from 'ink';
import type { Engine } from '../engine/engine.js';
import type { ConnectionInfo } from '../db/connection.js';
import { redact } from '../db/connection.js';
import type { ConfirmAnswer, ConfirmFn, ConfirmRequest, PhaseId } from '../engine/types.js';
import { fmtDuration } from '../format.js';
import { COLOR, ThemeContext, type Palette } from './theme.js';
import { useTerminalSize, type Size } from './hooks/use-terminal-size.js';
import { useNow } from './hooks/use-now.js';
import { useConfirm } from './hooks/use-confirm.js';
import { useWizardStore } from './hooks/use-wizard-store.js';
import { useConfirmQueue } from './hooks/use-confirm-queue.js';
import { usePhasePlans } from './hooks/use-phase-plans.js';
import { useRunControl } from './hooks/use-run-control.js';
import { useActivityView, type MonitorView } from './hooks/use-activity-view.js';
import { useMonitorActions } from './hooks/use-monitor-actions.js';
import { useWizardKeys, type ViewMetrics } from './hooks/use-wizard-keys.js';
import type { MonitorSource } from './monitor-source.js';
import { currentPhase, nextPhase, selectedStep, statusText } from './state/use-wizard-state.js';
import { MAIN_KEYS, MONITOR_KEYS, fitHints, hintParts } from './keymap.js';
import { Header } from './components/header.js';
import { PhaseRail } from './components/phase-rail.js';
import { StepList } from './components/step-list.js';
import { DetailPane, detailLines } from './components/detail-pane.js';
import { LogView, FullLog, fullLogLines, logErrorText } from './components/log-view.js';
import { ConfirmModal } from './components/confirm-modal.js';
import { CompactMonitor, FullMonitor } from './components/monitor-panel.js';
import { HelpScreen, PreviewScreen, QuitPrompt, SkipPrompt, TextScreen, quitPromptHeight } from './components/screens.js';
import { clip } from './format-ui.js';

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

export function App(props: AppProps) {
  const { engine, monitor, onExit, onForceExit, control } = props;
  const plan = engine.opts.loaded.plan;
  const palette = props.palette ?? COLOR;
  const size = useTerminalSize(props.size);
  const now = useNow(1000);
  const [startedAt] = useState(() => Date.now());
  const { state, stateRef, dispatch, act } = useWizardStore(props.phases);
  const viewRef = useRef<ViewMetrics>({ width: 80, bodyH: 20, overlayMax: 0 });

  const log = useCallback((level: 'info' | 'warn' | 'error', text: string) => dispatch({ type: 'log', level, text: redact(text), now: Date.now() }), [dispatch]);

  // engine events → state
  useEffect(() => engine.on((event) => dispatch({ type: 'event', event, now: Date.now() })), [engine, dispatch]);

  const confirms = useConfirmQueue({ engine, setConfirm: props.setConfirm, dispatch });

  // the demo: how to reach its database from another terminal (the password was printed before the wizard opened)
  const { demo, conn } = props;
  useEffect(() => {
    if (!demo) return;
    const c = conn.config;
    log('info', `demo database from another terminal: psql -h ${c.host ?? '127.0.0.1'} -p ${c.port ?? 5432} -U ${c.user ?? 'postgres'} ${c.database ?? ''} (its PGPASSWORD export was printed before the wizard opened)`);
  }, [demo, conn, log]);

  const plans = usePhasePlans({ engine, phases: props.phases, state, stateRef, dispatch });
  const run = useRunControl({ engine, phases: props.phases, stateRef, dispatch, log, replan: plans.replan, onExit, onForceExit, control });
  const { answer } = confirms;
  const { interrupt } = run;
  const onAnswer = useCallback((id: number, a: Omit<ConfirmAnswer, 'by'>, isInterrupt: boolean) => {
    answer(id, a);
    if (isInterrupt) interrupt();
  }, [answer, interrupt]);

  const activity = useActivityView({ monitor, refreshMs: plan.monitor.refreshMs, longQuerySeconds: plan.monitor.longQuerySeconds });
  const monitorActions = useMonitorActions({ engine, monitor, ask: confirms.ask, log, sessions: activity.sessions, setNotice: activity.setNotice, copy: plan.copy });

  const confirmOpen = state.confirms.length > 0;
  useWizardKeys({ stateRef, act, log, run, activity, monitorActions, view: viewRef, active: !confirmOpen });

  const cur = currentPhase(state);
  const sel = selectedStep(state);
  const monView = activity.view;

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
  const listTitle = `${cur.id === 'rollback' ? 'Rollback' : `Phase ${cur.id} · ${cur.name}`}${cur.status === 'planning' ? ' (planning…)' : ''}${run.runnable(cur.id) ? '' : ' (not in this session)'}`;
  const nx = nextPhase(state);
  const quitH = state.overlay === 'quit' ? quitPromptHeight(!!state.run, W) : 0;
  const promptH = state.overlay === 'skip' ? 5 : quitH;
  const bottomH = promptH ? Math.max(logH, promptH) : logH;
  const mainH = Math.max(3, bodyH - bottomH - stripH - (cur.error ? 1 : 0) - (nx !== null && !state.run ? 1 : 0));

  let body: React.ReactNode;
  let overlayLines = 0;
  const top = state.confirms[0];
  if (top) {
    body = <ConfirmHost key={top.id} item={top} width={W} height={bodyH} onAnswer={onAnswer} live={activity.liveFor(top.request)} />;
  } else if (state.overlay === 'help') {
    body = <HelpScreen width={W} height={bodyH} scroll={state.helpScroll} />;
  } else if (state.overlay === 'monitor') {
    body = <FullMonitor view={monView} width={W} height={bodyH} longQuerySeconds={plan.monitor.longQuerySeconds} selectedPid={activity.selectedPid} refreshMs={activity.refreshMs} notice={activity.notice} sort={activity.sort} filter={activity.filter} filterEditing={activity.filterEditing} paused={activity.paused} />;
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

function StripMonitor({ view, width, longQuerySeconds }: { readonly view: MonitorView; readonly width: number; readonly longQuerySeconds: number }) {
  return <CompactMonitor view={view} width={width} height={1} longQuerySeconds={longQuerySeconds} strip />;
}

