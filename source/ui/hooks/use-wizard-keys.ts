import type { MutableRefObject } from 'react';
import { useInput, type Key } from 'ink';
import type { PhaseId } from '../../engine/types.js';
import {
  FILTER_EDIT_KEYS, HELP_KEYS, LOG_VIEW_KEYS, MAIN_KEYS, MONITOR_KEYS, PREVIEW_KEYS, QUIT_PROMPT_KEYS, SKIP_PROMPT_KEYS,
  dispatchKey, isControlChar, splitChunk, type Binding, type KeyHandlers, type MainAction, type MonitorAction, type ScrollViewAction,
} from '../keymap.js';
import { currentPhase, nextPhase, selectedStep, type Overlay, type WizardAction, type WizardState } from '../state/use-wizard-state.js';
import { fullLogLines, logErrorText } from '../components/log-view.js';
import type { ActivityView } from './use-activity-view.js';
import type { MonitorActions } from './use-monitor-actions.js';
import type { RunControl } from './use-run-control.js';

/** What the layout drew last: the width, the body's height, how far a full-screen view may scroll. */
export interface ViewMetrics {
  readonly width: number;
  readonly bodyH: number;
  readonly overlayMax: number;
}

/** A screen's key handler: its bindings (keymap.ts) and what each of their actions does. */
const screen = <A extends string>(keys: readonly Binding<A>[], on: KeyHandlers<A>, onUnknown?: (text: string) => void) =>
  (input: string, key: Key) => dispatchKey(keys, on, input, key, onUnknown);

/**
 * The wizard's keys (not the confirmation's: the modal has its own hook). A key resolves to an action through the
 * screen's bindings in keymap.ts, and the action to its function in that screen's table below.
 */
export function useWizardKeys({ stateRef, act, log, run, activity, monitorActions, view, active }: {
  readonly stateRef: MutableRefObject<WizardState>;
  readonly act: (a: WizardAction) => void;
  readonly log: (level: 'info' | 'warn' | 'error', text: string) => void;
  readonly run: RunControl;
  readonly activity: ActivityView;
  readonly monitorActions: MonitorActions;
  readonly view: MutableRefObject<ViewMetrics>;
  /** false while a confirmation is open */
  readonly active: boolean;
}): void {
  const close = () => act({ type: 'overlay', overlay: 'none' });
  const scrollDetail = (delta: number) => act({ type: 'scroll-detail', delta, max: view.current.overlayMax });
  // a page of a full-screen view: its visible lines (the body less its title and footer) less one kept for context
  const page = () => Math.max(5, view.current.bodyH - 4);
  const scrollView = (scroll: (delta: number) => void): KeyHandlers<ScrollViewAction> => ({
    close, up: () => scroll(-1), down: () => scroll(1), 'page-up': () => scroll(-page()), 'page-down': () => scroll(page()), end: () => scroll(1_000_000),
  });

  /** the phase screen's actions, on the state the key sees */
  const main = (s: WizardState): KeyHandlers<MainAction> => {
    const phase = currentPhase(s);
    const step = selectedStep(s);
    const selectPhase = (p: PhaseId) => act({ type: 'select-phase', phase: p });
    const notInSession = () => log('warn', `phase ${phase.id} is not part of this session (see --phase / --until)`);
    const steer = (a: 'copy-pause' | 'copy-batch-up' | 'copy-batch-down' | 'copy-rest-up' | 'copy-rest-down') => () => void monitorActions.steerCopy(a, s);
    return {
      up: () => act(s.focus === 'detail' ? { type: 'scroll-detail', delta: -1 } : s.focus === 'log' ? { type: 'scroll-log', delta: -1 } : { type: 'move', delta: -1 }),
      down: () => act(s.focus === 'detail' ? { type: 'scroll-detail', delta: 1 } : s.focus === 'log' ? { type: 'scroll-log', delta: 1 } : { type: 'move', delta: 1 }),
      'prev-phase': () => act({ type: 'move-phase', delta: -1 }),
      'next-phase': () => act({ type: 'move-phase', delta: 1 }),
      'page-up': () => act(s.focus === 'log' ? { type: 'scroll-log', delta: -5 } : { type: 'scroll-detail', delta: -5 }),
      'page-down': () => act(s.focus === 'log' ? { type: 'scroll-log', delta: 5 } : { type: 'scroll-detail', delta: 5 }),
      focus: () => act({ type: 'focus' }),
      log: () => {
        act({ type: 'overlay', overlay: 'log' });
        act({ type: 'scroll-detail', delta: 1_000_000, max: Math.max(0, fullLogLines(s.log, view.current.width).length - view.current.bodyH + 2) });
      },
      error: () => (logErrorText(s) ? act({ type: 'overlay', overlay: 'error' }) : log('info', 'no error to show: no step has failed in this session')),
      next: () => {
        const nx = nextPhase(s);
        if (nx !== null) selectPhase(nx);
      },
      'phase-1': () => selectPhase(1), 'phase-2': () => selectPhase(2), 'phase-3': () => selectPhase(3), 'phase-4': () => selectPhase(4), 'phase-5': () => selectPhase(5),
      rollback: () => {
        selectPhase('rollback');
        log('warn', 'Rollback phase: nothing runs until you press a (or enter on a step); every destructive step asks first');
      },
      'run-step': () => {
        if (!step) return;
        if (!run.runnable(phase.id)) notInSession();
        else run.startRun(phase.id, [step.id], `step ${step.id}`);
      },
      'run-phase': () => {
        if (!run.runnable(phase.id)) return notInSession();
        const skipped = phase.stepIds.filter((id) => s.steps[id]?.operatorSkipped);
        const only = skipped.length ? phase.stepIds.filter((id) => !skipped.includes(id)) : undefined;
        if (skipped.length) log('info', `leaving out ${skipped.length} step(s) you skipped: ${skipped.join(', ')}`);
        run.startRun(phase.id, only, `phase ${phase.id} · ${phase.name}`);
      },
      preview: () => step && act({ type: 'overlay', overlay: 'preview' }),
      skip: () => {
        if (!step) return;
        if (s.run) log('warn', 'cannot skip while a run is in progress');
        else act({ type: 'overlay', overlay: 'skip' });
      },
      monitors: () => {
        act({ type: 'overlay', overlay: 'monitor' });
        activity.setNotice(undefined);
      },
      help: () => act({ type: 'overlay', overlay: 'help' }),
      quit: () => act({ type: 'overlay', overlay: 'quit' }),
      interrupt: run.interrupt,
      'copy-pause': steer('copy-pause'), 'copy-batch-up': steer('copy-batch-up'), 'copy-batch-down': steer('copy-batch-down'),
      'copy-rest-up': steer('copy-rest-up'), 'copy-rest-down': steer('copy-rest-down'),
    };
  };

  const signal = (a: 'cancel' | 'terminate') => () => {
    if (activity.selectedPid === null) activity.setNotice('no backend selected: no session matches');
    else void monitorActions.signalBackend(a, activity.selectedPid);
  };
  const monitor = screen<MonitorAction>(MONITOR_KEYS, {
    close, help: () => act({ type: 'overlay', overlay: 'help' }),
    up: () => activity.move(-1), down: () => activity.move(1), 'page-up': () => activity.move(-10), 'page-down': () => activity.move(10),
    sort: activity.cycleSort, filter: activity.editFilter, pause: activity.togglePause, slower: activity.slower, faster: activity.faster,
    'cancel-backend': signal('cancel'), 'terminate-backend': signal('terminate'),
  }, activity.setNotice);
  // typing the filter: text, backspace; enter keeps it, esc clears it
  const filter = screen(FILTER_EDIT_KEYS, { clear: activity.clearFilter, keep: activity.keepFilter, backspace: activity.backspaceFilter, type: activity.typeFilter });

  /** each screen: the key → its action → its function */
  const screens: Record<Overlay, (input: string, key: Key, s: WizardState) => void> = {
    quit: screen(QUIT_PROMPT_KEYS, { quit: () => run.stop(true), stay: close }),
    skip: (i, k, s) => dispatchKey(SKIP_PROMPT_KEYS, {
      cancel: close, submit: () => void run.skip(), backspace: () => act({ type: 'skip-input', text: s.skipText.slice(0, -1) }),
    }, i, k),
    help: screen(HELP_KEYS, scrollView((delta) => act({ type: 'scroll-help', delta }))),
    log: screen(LOG_VIEW_KEYS, scrollView(scrollDetail)),
    error: screen(LOG_VIEW_KEYS, scrollView(scrollDetail)),
    preview: screen(PREVIEW_KEYS, scrollView(scrollDetail)),
    monitor: (i, k) => (activity.isEditingFilter() ? filter : monitor)(i, k),
    none: (i, k, s) => dispatchKey(MAIN_KEYS, main(s), i, k, (text) => log('info', text)),
  };

  const onKey = (input: string, key: Key) => {
    if (key.ctrl && input === 'c') return run.interrupt();
    const s = stateRef.current;
    screens[s.overlay](input, key, s);
  };

  useInput((input, key) => {
    const s = stateRef.current;
    if (s.overlay === 'skip' && input && !key.ctrl && !key.meta && !key.escape) {
      // the reason prompt: a chunk is typed text with its backspaces, and a newline submits (a paste of "reason\r")
      let text = s.skipText;
      for (const c of input) {
        if (c === '\r' || c === '\n') {
          act({ type: 'skip-input', text });
          void run.skip(text);
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
  }, { isActive: active });
}
