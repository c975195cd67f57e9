import { describe, it, expect, vi, afterEach } from 'vitest';
import { Text } from 'ink';
import { render } from 'ink-testing-library';
import { wizardReducer, initialWizardState, selectedStep, currentPhase, statusText, type WizardState } from '../../source/ui/state/use-wizard-state.js';
import { confirmReducer, initialConfirmState } from '../../source/ui/state/use-confirm-state.js';
import type { ConfirmRequest, EngineEvent } from '../../source/engine/types.js';
import { usePoll } from '../../source/ui/hooks/use-poll.js';
import { MAIN_KEYS, MONITOR_KEYS, resolveKey, hintLine } from '../../source/ui/keymap.js';
import { bar, progressText, tableLines, clip } from '../../source/ui/format-ui.js';
import { ProgressBar } from '../../source/ui/components/progress-bar.js';
import { strip, tick } from './harness.js';
import type { Key } from 'ink';

const ev = (s: WizardState, ...events: EngineEvent[]) => events.reduce((acc, event) => wizardReducer(acc, { type: 'event', event, now: 0 }), s);

describe('wizard reducer (no rendering)', () => {
  const planned = wizardReducer(initialWizardState({ phases: [3] }), {
    type: 'phase-planned', phase: 3, steps: [{ id: 'copy:a', title: 'Copy a' }, { id: 'copy:b', title: 'Copy b' }, { id: 'verify', title: 'Verify' }],
    states: { 'copy:a': { status: 'done' }, verify: { status: 'skipped', operatorSkipped: true, summary: 'skipped by x: y' } },
  });

  it('starts on the first session phase; planning sets the steps from the journal', () => {
    expect(currentPhase(planned).id).toBe(3);
    expect(planned.steps['copy:a']!.status).toBe('done');
    expect(planned.steps['copy:b']!.status).toBe('pending');
    expect(planned.steps.verify).toMatchObject({ status: 'skipped', operatorSkipped: true });
  });

  it('follows a run: running → progress → done, failed with its hint, log bounded', () => {
    let s = wizardReducer(planned, { type: 'run-begin', scope: 'phase 3', phase: 3, now: 0 });
    s = ev(s,
      { type: 'run-started', runId: 7, phases: [3] },
      { type: 'step-started', stepId: 'copy:b', phase: 3, title: 'Copy b' },
    );
    expect(s.run?.runId).toBe(7);
    expect(selectedStep(s)?.id).toBe('copy:b'); // the selection follows the running step
    s = ev(s, { type: 'step-progress', stepId: 'copy:b', progress: { done: 500, total: 2000, unit: 'rows' }, ratePerSec: 250, etaSec: 6 });
    expect(s.steps['copy:b']!.progress).toEqual({ done: 500, total: 2000, unit: 'rows', ratePerSec: 250, etaSec: 6 });
    s = ev(s, { type: 'step-log', stepId: 'copy:b', level: 'info', message: 'waiting for lock on public.b' });
    expect(s.steps['copy:b']!.lastLog).toBe('waiting for lock on public.b');
    s = ev(s, { type: 'step-done', stepId: 'copy:b', status: 'done', summary: '2,000 rows', tables: [{ title: 'T', columns: ['a'], rows: [[1]] }], durationMs: 12 });
    expect(s.steps['copy:b']).toMatchObject({ status: 'done', summary: '2,000 rows', durationMs: 12 });
    s = ev(s, { type: 'step-failed', stepId: 'verify', reason: 'failed', error: 'row counts differ', hint: 'run phase 3 again', durationMs: 3 });
    expect(s.steps.verify).toMatchObject({ status: 'failed', error: 'row counts differ', hint: 'run phase 3 again' });
    expect(s.log.map((l) => l.text)).toContain('  hint: run phase 3 again');
    let big = s;
    for (let i = 0; i < 500; i++) big = wizardReducer(big, { type: 'log', level: 'info', text: `x${i}`, now: 0 });
    expect(big.log.length).toBe(200);
    expect(big.log.at(-1)!.text).toBe('x499');
  });

  it('a declined confirmation is "declined" (nothing ran), not a failure, and stays so after re-planning (found in tmux)', () => {
    let s = wizardReducer(planned, { type: 'run-begin', scope: 'step copy:b', phase: 3, now: 0 });
    s = ev(s,
      { type: 'step-started', stepId: 'copy:b', phase: 3, title: 'Copy b' },
      { type: 'step-failed', stepId: 'copy:b', reason: 'needs-confirmation', confirm: { kind: 'rename', object: 'public.b' }, error: 'copy:b needs confirmation: rename public.b', hint: 'to allow it in headless mode, pass --confirm public.b', durationMs: 5 },
    );
    expect(s.steps['copy:b']).toMatchObject({ status: 'declined', error: 'not confirmed: nothing ran (rename public.b)', hint: 'press enter to be asked again' });
    s = wizardReducer(wizardReducer(s, { type: 'run-finish', status: 'needs-confirmation', now: 0 }), {
      type: 'phase-planned', phase: 3, steps: [{ id: 'copy:a', title: 'Copy a' }, { id: 'copy:b', title: 'Copy b' }], states: {},
    });
    expect(s.steps['copy:b']!.status).toBe('declined');
  });

  it('a stopped run leaves no step "running"', () => {
    let s = wizardReducer(planned, { type: 'run-begin', scope: 'phase 3', phase: 3, now: 0 });
    s = ev(s, { type: 'step-started', stepId: 'copy:b', phase: 3, title: 'Copy b' });
    s = wizardReducer(s, { type: 'stopping', quit: true, now: 0 });
    expect(s.run?.stopping).toBe(true);
    expect(s.quitAfterRun).toBe(true);
    s = ev(s, { type: 'run-ended', runId: 1, status: 'aborted', message: 'stopped by the operator' });
    expect(s.steps['copy:b']!.status).toBe('stopped');
  });

  it('the status never shows a negative time (found in tmux: "running … · -832 ms")', () => {
    const s = wizardReducer(planned, { type: 'run-begin', scope: 'step copy:b', phase: 3, now: 10_000 });
    expect(statusText(s, 9_168, (ms) => `${ms} ms`)).toBe('running step copy:b · 0 ms');
    expect(statusText(s, 12_000, (ms) => `${ms} ms`)).toBe('running step copy:b · 2000 ms');
    expect(statusText(wizardReducer(s, { type: 'stopping', quit: false, now: 0 }), 0, String)).toBe('stopping…');
    expect(statusText(planned, 0, String)).toBe('idle');
  });

  it('selection and phase moves stay in range', () => {
    let s = wizardReducer(planned, { type: 'move', delta: -5 });
    expect(s.selected).toBe(0);
    s = wizardReducer(s, { type: 'move', delta: 10 });
    expect(s.selected).toBe(2);
    s = wizardReducer(s, { type: 'move-phase', delta: 10 });
    expect(currentPhase(s).id).toBe('rollback');
    s = wizardReducer(s, { type: 'select-phase', phase: 1 });
    expect(currentPhase(s).id).toBe(1);
    expect(s.selected).toBe(0);
  });
});

describe('confirm reducer (no rendering)', () => {
  const req: ConfirmRequest = { stepId: 's', kind: 'drop', object: 'public.t_old', typed: true, statements: ['DROP TABLE public.t_old'], impact: [], protections: [] };
  const type = (s: ReturnType<typeof initialConfirmState>, text: string) => confirmReducer(s, { type: 'char', input: text });
  it('typed: exact match only; case and spaces count', () => {
    let s = initialConfirmState(req);
    for (const wrong of ['PUBLIC.T_OLD', 'public.t_old ', 't_old', '']) {
      s = confirmReducer(type(s, wrong), { type: 'submit' });
      expect(s.answer).toBeNull();
      expect(s.mismatch).toBe(wrong);
    }
    s = confirmReducer(type(s, 'public.t_old'), { type: 'submit' });
    expect(s.answer).toEqual({ confirmed: true, method: 'typed', typedText: 'public.t_old' });
    // answered is final
    expect(confirmReducer(s, { type: 'escape' })).toBe(s);
  });
  it('control characters are never typed', () => {
    const s = type(initialConfirmState(req), 'public\u0007.t_old\u001b');
    expect(s.text).toBe('public.t_old');
  });
  it('yes mode ignores other letters and enter; refusal cannot be confirmed', () => {
    let s = initialConfirmState({ ...req, typed: false });
    s = confirmReducer(confirmReducer(type(s, 'x'), { type: 'submit' }), { type: 'backspace' });
    expect(s.answer).toBeNull();
    expect(type(s, 'Y').answer).toEqual({ confirmed: true, method: 'yes' });
    let r = initialConfirmState({ ...req, refusal: 'backup not verified' });
    r = confirmReducer(type(r, 'public.t_old'), { type: 'submit' });
    expect(r.answer).toEqual({ confirmed: false, method: 'refused' });
  });
});

describe('keymap', () => {
  const k = (p: Partial<Key>): Key => ({ upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false, return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false, super: false, hyper: false, capsLock: false, numLock: false, ...p });
  it('every binding resolves to one action and the hints name them', () => {
    expect(resolveKey(MAIN_KEYS, '', k({ return: true }))).toBe('run-step');
    expect(resolveKey(MAIN_KEYS, 'c', k({ ctrl: true }))).toBe('interrupt');
    expect(resolveKey(MAIN_KEYS, 'j', k({}))).toBe('down');
    expect(resolveKey(MAIN_KEYS, 'x', k({}))).toBeNull();
    expect(resolveKey(MONITOR_KEYS, 't', k({}))).toBe('terminate-backend');
    expect(resolveKey(MONITOR_KEYS, '', k({ escape: true }))).toBe('close');
    expect(hintLine(MAIN_KEYS)).toBe('enter run step · a run phase · p preview · s skip · m monitors · r rollback · ? help · q quit · tab focus · L log · e error');
    const labels = MAIN_KEYS.map((b) => b.label);
    expect(new Set(labels).size).toBe(labels.length);
  });
});

describe('progress', () => {
  it('bar, text and table fitting', () => {
    expect(bar(0.5, 10)).toBe('█████░░░░░');
    expect(bar(2, 4)).toBe('████');
    expect(progressText({ done: 12000, total: 20000, ratePerSec: 8100, etaSec: 1 })).toBe('12,000 / 20,000 rows (60.0%) · 8,100 rows/s · ETA 1.0 s');
    expect(progressText({ done: 5, unit: 'partitions' })).toBe('5 partitions');
    const lines = tableLines({ title: 'T', columns: ['name', 'value'], rows: [['x'.repeat(100), 1]] }, 40);
    expect(lines.every((l) => l.length <= 40)).toBe(true);
    expect(clip('a\nb', 10)).toBe('a b');
  });
  it('renders a bar with rows/s and ETA, or a spinner with what it waits for', async () => {
    const a = render(<ProgressBar progress={{ done: 500, total: 2000, ratePerSec: 250, etaSec: 6 }} width={60} />);
    await tick();
    expect(strip(a.lastFrame())).toContain('500 / 2,000 rows (25.0%) · 250 rows/s · ETA 6.0 s');
    expect(strip(a.lastFrame())).toMatch(/█+░+/);
    a.unmount();
    const b = render(<ProgressBar waitingFor="waiting for ACCESS EXCLUSIVE on public.t (attempt 2 of 10)" width={80} />);
    await tick();
    expect(strip(b.lastFrame())).toMatch(/^. waiting for ACCESS EXCLUSIVE on public.t \(attempt 2 of 10\)/);
    b.unmount();
  });
});

describe('usePoll (fake timers)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  it('polls now, then every interval after each call settles, and stops on unmount', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] }); // never setImmediate (Ink's input)
    let calls = 0;
    let fail = false;
    const fn = () => {
      calls++;
      if (fail) return Promise.reject(new Error('statement timeout'));
      return Promise.resolve(calls);
    };
    const Probe = () => {
      const p = usePoll(fn, 1000);
      return <Text>{`value=${p.value} error=${p.error} polls=${p.polls}`}</Text>;
    };
    const ui = render(<Probe />);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    expect(strip(ui.lastFrame())).toBe('value=1 error=null polls=1');
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toBe(2);
    fail = true;
    await vi.advanceTimersByTimeAsync(1000); // t = 2000: third call fails
    await vi.advanceTimersByTimeAsync(50); // Ink's render throttle runs on (fake) timers too
    expect(calls).toBe(3);
    expect(strip(ui.lastFrame())).toBe('value=2 error=statement timeout polls=3'); // keeps the last value, shows the error
    fail = false;
    await vi.advanceTimersByTimeAsync(950); // t = 3000
    await vi.advanceTimersByTimeAsync(50);
    expect(strip(ui.lastFrame())).toBe('value=4 error=null polls=4');
    expect(calls).toBe(4);
    ui.unmount();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toBe(4);
  });
  it('never overlaps a slow call', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] }); // never setImmediate (Ink's input)
    let inFlight = 0;
    let maxInFlight = 0;
    let calls = 0;
    const fn = () => new Promise<number>((r) => {
      inFlight++;
      calls++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        r(1);
      }, 2500);
    });
    const Probe = () => {
      usePoll(fn, 1000);
      return <Text>x</Text>;
    };
    const ui = render(<Probe />);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(maxInFlight).toBe(1);
    expect(calls).toBe(3); // 0 → 2.5 s, 3.5 → 6 s, 7 → 9.5 s
    ui.unmount();
  });
});

describe('resume and guidance (reducer)', () => {
  it('a declined destructive step reads "declined" whether the engine skipped it or stopped on it; next → after a done phase', async () => {
    const { nextPhase } = await import('../../source/ui/state/use-wizard-state.js');
    let s = wizardReducer(initialWizardState({ phases: [1, 2] }), {
      type: 'phase-planned', phase: 1, steps: [{ id: 'a', title: 'A' }, { id: 'b', title: 'B' }], states: { a: { status: 'done' } },
    });
    expect(nextPhase(s)).toBeNull(); // phase 1 not done yet
    s = wizardReducer(s, { type: 'phase-planned', phase: 1, steps: [{ id: 'a', title: 'A' }, { id: 'b', title: 'B' }], states: { a: { status: 'done' }, b: { status: 'done' } } });
    expect(nextPhase(s)).toBe(2);
    const d = ev(s,
      { type: 'step-done', stepId: 'b', status: 'skipped', declined: true, summary: 'not done: the retention period runs until 2026-12-07', durationMs: 1 },
    );
    expect(d.steps.b!.status).toBe('declined');
    const f = ev(s, { type: 'step-failed', stepId: 'a', reason: 'needs-confirmation', confirm: { kind: 'rename', object: 'public.t' }, error: 'a needs confirmation: rename public.t', durationMs: 1 });
    expect(f.steps.a!.status).toBe('declined');
    // the reducer reads the typed reason, never the wording: a failure whose text happens to say "needs confirmation:" is a failure
    const h = ev(s, { type: 'step-failed', stepId: 'a', reason: 'failed', error: 'the table needs confirmation: of its owner', durationMs: 1 });
    expect(h.steps.a).toMatchObject({ status: 'failed', error: 'the table needs confirmation: of its owner' });
    // and a skipped step is declined only when the engine says so, whatever its summary
    const k = ev(s, { type: 'step-done', stepId: 'b', status: 'skipped', summary: 'not done: nothing to drop', durationMs: 1 });
    expect(k.steps.b!.status).toBe('skipped');
    // the engine's own wording (found in tmux: a declined RENAME showed ✗ failed)
    const g = ev(s, { type: 'step-failed', stepId: 'a', reason: 'needs-confirmation', confirm: { kind: 'rename', object: 'public.petri_observations' }, error: 'needs confirmation: rename public.petri_observations', hint: 'to allow it in headless mode, pass --confirm public.petri_observations', durationMs: 1 });
    expect(g.steps.a).toMatchObject({ status: 'declined', error: 'not confirmed: nothing ran (rename public.petri_observations)', hint: 'press enter to be asked again' });
  });
});
