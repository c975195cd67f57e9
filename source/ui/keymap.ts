import type { Key } from 'ink';

/**
 * Every key binding of the wizard, in one place: the screens' hint lines and the help screen are generated from
 * these tables, and the key hooks resolve input through `resolveKey`, so a binding changes here or nowhere.
 */
export type MainAction =
  | 'up' | 'down' | 'prev-phase' | 'next-phase' | 'run-step' | 'run-phase' | 'preview' | 'skip' | 'monitors'
  | 'rollback' | 'help' | 'quit' | 'interrupt' | 'phase-1' | 'phase-2' | 'phase-3' | 'phase-4' | 'phase-5'
  | 'page-up' | 'page-down' | 'focus' | 'log' | 'error' | 'next'
  | 'copy-pause' | 'copy-batch-up' | 'copy-batch-down' | 'copy-rest-up' | 'copy-rest-down';

export type MonitorAction = 'up' | 'down' | 'cancel-backend' | 'terminate-backend' | 'close' | 'interrupt' | 'help' | 'sort' | 'filter' | 'pause' | 'slower' | 'faster' | 'page-up' | 'page-down';

export interface Binding<A extends string> {
  readonly action: A;
  /** what the hint line shows */
  readonly label: string;
  /** what it does, for the help screen */
  readonly help: string;
  readonly match: (input: string, key: Key) => boolean;
  /** shown in the short hint line at the bottom */
  readonly hint?: boolean;
}

const ch = (c: string) => (input: string, key: Key) => input === c && !key.ctrl && !key.meta;
const ctrlC = (input: string, key: Key) => key.ctrl && input === 'c';

export const MAIN_KEYS: readonly Binding<MainAction>[] = [
  { action: 'interrupt', label: 'ctrl+c', help: 'stop: the running batch finishes and commits its checkpoint, then quit (asks)', match: ctrlC },
  { action: 'up', label: '↑/k', help: 'select the previous step', match: (i, k) => k.upArrow || ch('k')(i, k) },
  { action: 'down', label: '↓/j', help: 'select the next step', match: (i, k) => k.downArrow || ch('j')(i, k) },
  { action: 'prev-phase', label: '←/h', help: 'previous phase', match: (i, k) => k.leftArrow || ch('h')(i, k) },
  { action: 'next-phase', label: '→/l', help: 'next phase', match: (i, k) => k.rightArrow || ch('l')(i, k) },
  { action: 'page-up', label: 'pgup', help: 'scroll the focused pane up (the detail pane when the steps have the focus)', match: (_i, k) => k.pageUp },
  { action: 'page-down', label: 'pgdn', help: 'scroll the focused pane down', match: (_i, k) => k.pageDown },
  { action: 'next', label: 'n', help: 'go to the next phase to run (after a phase completes)', match: ch('n') },
  { action: 'run-step', label: 'enter', help: 'run the selected step (asks before anything destructive)', match: (_i, k) => k.return, hint: true },
  { action: 'run-phase', label: 'a', help: 'run every remaining step of this phase', match: ch('a'), hint: true },
  { action: 'preview', label: 'p', help: 'full-screen SQL preview of the selected step', match: ch('p'), hint: true },
  { action: 'skip', label: 's', help: 'skip the selected step (a reason is typed and journaled)', match: ch('s'), hint: true },
  { action: 'monitors', label: 'm', help: 'the activity view, full screen: every session, lock waits, long queries, idle in transaction, locks per table', match: ch('m'), hint: true },
  { action: 'rollback', label: 'r', help: 'go to the Rollback phase (nothing runs until you start it, and it asks first)', match: ch('r'), hint: true },
  { action: 'help', label: '?', help: 'this help', match: ch('?'), hint: true },
  { action: 'quit', label: 'q', help: 'quit (asks; a running batch finishes and commits its checkpoint first)', match: ch('q'), hint: true },
  { action: 'focus', label: 'tab', help: 'move the focus: steps → detail → log (↑/↓ and pgup/pgdn then scroll that pane)', match: (_i, k) => k.tab, hint: true },
  { action: 'log', label: 'L', help: 'the whole log, full screen, every line whole (scrolls)', match: ch('L'), hint: true },
  { action: 'error', label: 'e', help: "the full text of the selected step's error (or the last error of the log)", match: ch('e'), hint: true },
  { action: 'copy-pause', label: 'P', help: 'pause / resume the running copy (after its batch commits; journaled in pgshift.control, like `pgshift control`)', match: ch('P') },
  { action: 'copy-batch-up', label: '+', help: 'running copy: double the rows per batch (journaled)', match: ch('+') },
  { action: 'copy-batch-down', label: '-', help: 'running copy: halve the rows per batch (journaled)', match: ch('-') },
  { action: 'copy-rest-up', label: ']', help: 'running copy: rest 100 ms more between batches (journaled)', match: ch(']') },
  { action: 'copy-rest-down', label: '[', help: 'running copy: rest 100 ms less between batches (journaled)', match: ch('[') },
  { action: 'phase-1', label: '1', help: 'phase 1 Preparation', match: ch('1') },
  { action: 'phase-2', label: '2', help: 'phase 2 Structure', match: ch('2') },
  { action: 'phase-3', label: '3', help: 'phase 3 Data', match: ch('3') },
  { action: 'phase-4', label: '4', help: 'phase 4 Dependencies', match: ch('4') },
  { action: 'phase-5', label: '5', help: 'phase 5 Cleanup', match: ch('5') },
];

export const MONITOR_KEYS: readonly Binding<MonitorAction>[] = [
  { action: 'interrupt', label: 'ctrl+c', help: 'stop and quit (asks)', match: ctrlC },
  { action: 'up', label: '↑/k', help: 'select the previous backend', match: (i, k) => k.upArrow || ch('k')(i, k), hint: true },
  { action: 'down', label: '↓/j', help: 'select the next backend', match: (i, k) => k.downArrow || ch('j')(i, k) },
  { action: 'cancel-backend', label: 'c', help: "cancel the selected backend's query (pg_cancel_backend, asks first)", match: ch('c'), hint: true },
  { action: 'terminate-backend', label: 't', help: "terminate the selected backend's session (pg_terminate_backend, asks first)", match: ch('t'), hint: true },
  { action: 'page-up', label: 'pgup', help: 'scroll up a page', match: (_i, k) => k.pageUp },
  { action: 'page-down', label: 'pgdn', help: 'scroll down a page', match: (_i, k) => k.pageDown },
  { action: 'sort', label: 'o', help: 'sort the sessions: duration → pid → state → user → wait', match: ch('o'), hint: true },
  { action: 'filter', label: '/', help: 'filter the sessions (pid, user, application, state, wait, query); enter keeps it, esc clears it', match: ch('/'), hint: true },
  { action: 'pause', label: 'space', help: 'pause / resume the refresh (the screen keeps the last snapshot)', match: (i) => i === ' ', hint: true },
  { action: 'faster', label: '-', help: 'refresh more often', match: ch('-') },
  { action: 'slower', label: '+/-', help: '+ refreshes less often (doubles the interval, up to 30 s); - more often (halves it, down to 250 ms)', match: (i, k) => ch('+')(i, k) || ch('=')(i, k), hint: true },
  { action: 'help', label: '?', help: 'help', match: ch('?') },
  { action: 'close', label: 'esc/m', help: 'back to the phase screen', match: (i, k) => k.escape || ch('m')(i, k) || ch('q')(i, k), hint: true },
];

/** `input` is exactly c (whatever the modifiers: the prompts and full-screen views take a typed letter as it comes). */
const is = (...cs: string[]) => (input: string) => cs.includes(input);

export type QuitPromptAction = 'quit' | 'stay';

/** The quit prompt (q, ctrl+c): y quits, n or esc stays. */
export const QUIT_PROMPT_KEYS: readonly Binding<QuitPromptAction>[] = [
  { action: 'quit', label: 'y', help: 'quit (a running batch finishes and commits its checkpoint first)', match: is('y', 'Y') },
  { action: 'stay', label: 'n/esc', help: 'stay', match: (i, k) => is('n', 'N')(i) || k.escape },
];

export type SkipPromptAction = 'cancel' | 'submit' | 'backspace';

/** The skip prompt's keys (typed text is the reason). */
export const SKIP_PROMPT_KEYS: readonly Binding<SkipPromptAction>[] = [
  { action: 'cancel', label: 'esc', help: 'do not skip', match: (_i, k) => k.escape },
  { action: 'submit', label: 'enter', help: 'skip the step with the reason typed (journaled with your name)', match: (_i, k) => k.return },
  { action: 'backspace', label: 'backspace', help: 'delete the last character', match: (_i, k) => k.backspace || k.delete },
];

export type ScrollViewAction = 'close' | 'up' | 'down' | 'page-up' | 'page-down' | 'end';

const scrollKeys = (close: Binding<ScrollViewAction>['match'], closeLabel: string): Binding<ScrollViewAction>[] => [
  { action: 'close', label: closeLabel, help: 'close', match: close },
  { action: 'up', label: '↑/k', help: 'scroll up a line', match: (i, k) => k.upArrow || i === 'k' },
  { action: 'down', label: '↓/j', help: 'scroll down a line', match: (i, k) => k.downArrow || i === 'j' },
  { action: 'page-up', label: 'pgup', help: 'scroll up a page', match: (_i, k) => k.pageUp },
  { action: 'page-down', label: 'pgdn/space', help: 'scroll down a page', match: (i, k) => k.pageDown || i === ' ' },
];

/** The help screen. */
export const HELP_KEYS: readonly Binding<ScrollViewAction>[] = scrollKeys((i, k) => k.escape || is('?', 'q')(i), 'esc/?');

/** The full-screen SQL preview. */
export const PREVIEW_KEYS: readonly Binding<ScrollViewAction>[] = scrollKeys((i, k) => k.escape || is('p', 'q')(i), 'esc/p');

/** The whole log (L) and the full error text (e). */
export const LOG_VIEW_KEYS: readonly Binding<ScrollViewAction>[] = [
  ...scrollKeys((i, k) => k.escape || is('q', 'L', 'e')(i), 'esc'),
  { action: 'end', label: 'G/end', help: 'to the end', match: (i, k) => i === 'G' || k.end },
];

export type FilterEditAction = 'clear' | 'keep' | 'backspace' | 'type';

/** Typing the activity view's filter: esc clears it, enter keeps it. */
export const FILTER_EDIT_KEYS: readonly Binding<FilterEditAction>[] = [
  { action: 'clear', label: 'esc', help: 'clear the filter', match: (_i, k) => k.escape },
  { action: 'keep', label: 'enter', help: 'keep the filter', match: (_i, k) => k.return },
  { action: 'backspace', label: 'backspace', help: 'delete the last character', match: (_i, k) => k.backspace || k.delete },
  { action: 'type', label: 'text', help: 'the filter text', match: (i, k) => !!i && !k.ctrl && !k.meta },
];

/** What each action of a screen does; an action without a handler does nothing. The typed input is passed on. */
export type KeyHandlers<A extends string> = { readonly [K in A]?: (input: string) => void };

/**
 * Runs the action `key` resolves to on this screen (the first binding that matches). A typed character no binding
 * takes (unknownKey) goes to `onUnknown` with the line to show, when the screen says so of such keys.
 */
export function dispatchKey<A extends string>(bindings: readonly Binding<A>[], handlers: KeyHandlers<A>, input: string, key: Key, onUnknown?: (text: string) => void): void {
  const a = resolveKey(bindings, input, key);
  if (a !== null) handlers[a]?.(input);
  else if (onUnknown && unknownKey(input, key)) onUnknown(unknownKeyText(input));
}

/** Keys inside a confirmation, a prompt, the preview or the help screen (fixed words, shown in those screens). */
export const MODAL_KEYS = {
  confirmYes: 'y',
  confirmNo: 'n',
  overrideWord: 'OVERRIDE',
} as const;

export function resolveKey<A extends string>(bindings: readonly Binding<A>[], input: string, key: Key): A | null {
  for (const b of bindings) if (b.match(input, key)) return b.action;
  return null;
}

/** A typed character no binding of the screen takes (not an arrow, a modifier or a control character). */
function unknownKey(input: string, key: Key): boolean {
  return input.length === 1 && !key.ctrl && !key.meta && !isControlChar(input, true);
}

/** What the screen says of such a key: which key it was and where the keys are listed. */
function unknownKeyText(input: string): string {
  return `"${input}" does nothing here: press ? for the keys of this screen`;
}

export function hintLine<A extends string>(bindings: readonly Binding<A>[]): string {
  return hintParts(bindings).join(' · ');
}

export function hintParts<A extends string>(bindings: readonly Binding<A>[]): string[] {
  return bindings.filter((b) => b.hint).map((b) => `${b.label} ${shortHelp[b.action as string] ?? b.action}`);
}

/**
 * The hints that fit the width, in their order; `keep` (e.g. "? help", "q quit") are always in. Never cut
 * inside a hint: a hint that does not fit is left out (the help screen lists every key).
 */
export function fitHints(parts: readonly string[], width: number, keep: readonly string[] = []): string {
  const sep = ' · ';
  const len = (xs: string[]) => xs.join(sep).length;
  const chosen = new Set(keep.filter((k) => parts.includes(k)));
  for (const p of parts) {
    if (chosen.has(p)) continue;
    const trial = parts.filter((x) => chosen.has(x) || x === p);
    if (len(trial) <= width) chosen.add(p);
  }
  return parts.filter((x) => chosen.has(x)).join(sep);
}

/** A C0 control character (U+0000–U+001F), or DEL (U+007F) too when `del`: `c` is one character. */
export function isControlChar(c: string, del = false): boolean {
  const n = c.charCodeAt(0);
  return n <= 0x1f || (del && n === 0x7f);
}

/** `s` without its control characters (see isControlChar): what typed text keeps. */
export function stripControl(s: string, del = false): string {
  let out = '';
  for (const c of s) if (!isControlChar(c, del)) out += c;
  return out;
}

const BLANK: Key = {
  upArrow: false, downArrow: false, leftArrow: false, rightArrow: false, pageDown: false, pageUp: false, home: false, end: false,
  return: false, escape: false, ctrl: false, shift: false, tab: false, backspace: false, delete: false, meta: false,
  super: false, hyper: false, capsLock: false, numLock: false,
};

/**
 * Keys that arrive in one chunk (a laggy ssh link, tmux send-keys, a paste): "kkk" is three k, "ab\x7f" is a, b
 * and backspace, "x\r" is x then enter. Escape sequences and ctrl keys are passed through whole.
 */
export function splitChunk(input: string, key: Key): [string, Key][] {
  if (input.length <= 1 || key.ctrl || key.meta || input.includes('\u001b')) return [[input, key]];
  return [...input].map((c): [string, Key] => {
    if (c === '\r' || c === '\n') return ['', { ...BLANK, return: true }];
    if (c === '\u007f' || c === '\b') return ['', { ...BLANK, backspace: true }];
    if (c === '\t') return ['', { ...BLANK, tab: true }];
    return [c, { ...BLANK, shift: /[A-Z]/.test(c) }];
  });
}

const shortHelp: Record<string, string> = {
  'run-step': 'run step', 'run-phase': 'run phase', preview: 'preview', skip: 'skip', monitors: 'monitors', rollback: 'rollback',
  help: 'help', quit: 'quit', up: 'select', focus: 'focus', log: 'log', error: 'error', sort: 'sort', filter: 'filter', pause: 'pause', faster: 'refresh', 'cancel-backend': 'cancel query', 'terminate-backend': 'terminate', close: 'back', slower: 'refresh interval',
};
