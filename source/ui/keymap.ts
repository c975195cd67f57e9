import type { Key } from 'ink';

/**
 * Every key binding of the wizard, in one place: the screens' hint lines and the help screen are generated from
 * these tables, and the key hooks resolve input through `resolveKey`, so a binding changes here or nowhere.
 */
export type MainAction =
  | 'up' | 'down' | 'prev-phase' | 'next-phase' | 'run-step' | 'run-phase' | 'preview' | 'skip' | 'monitors'
  | 'rollback' | 'help' | 'quit' | 'interrupt' | 'phase-1' | 'phase-2' | 'phase-3' | 'phase-4' | 'phase-5'
  | 'page-up' | 'page-down' | 'copy-pause' | 'copy-batch-up' | 'copy-batch-down' | 'copy-rest-up' | 'copy-rest-down';

export type MonitorAction = 'up' | 'down' | 'cancel-backend' | 'terminate-backend' | 'close' | 'interrupt' | 'help';

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
  { action: 'next-phase', label: '→/l', help: 'next phase', match: (i, k) => k.rightArrow || ch('l')(i, k) || (k.tab && !k.shift) },
  { action: 'page-up', label: 'pgup', help: 'scroll the detail pane up', match: (_i, k) => k.pageUp },
  { action: 'page-down', label: 'pgdn', help: 'scroll the detail pane down', match: (_i, k) => k.pageDown },
  { action: 'run-step', label: 'enter', help: 'run the selected step (asks before anything destructive)', match: (_i, k) => k.return, hint: true },
  { action: 'run-phase', label: 'a', help: 'run every remaining step of this phase', match: ch('a'), hint: true },
  { action: 'preview', label: 'p', help: 'full-screen SQL preview of the selected step', match: ch('p'), hint: true },
  { action: 'skip', label: 's', help: 'skip the selected step (a reason is typed and journaled)', match: ch('s'), hint: true },
  { action: 'monitors', label: 'm', help: 'live monitors full screen: lock waits, long queries, idle in transaction', match: ch('m'), hint: true },
  { action: 'rollback', label: 'r', help: 'go to the Rollback phase (nothing runs until you start it, and it asks first)', match: ch('r'), hint: true },
  { action: 'help', label: '?', help: 'this help', match: ch('?'), hint: true },
  { action: 'quit', label: 'q', help: 'quit (asks; a running batch finishes and commits its checkpoint first)', match: ch('q'), hint: true },
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
  { action: 'help', label: '?', help: 'help', match: ch('?') },
  { action: 'close', label: 'esc/m', help: 'back to the phase screen', match: (i, k) => k.escape || ch('m')(i, k) || ch('q')(i, k), hint: true },
];

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

export function hintLine<A extends string>(bindings: readonly Binding<A>[]): string {
  return bindings.filter((b) => b.hint).map((b) => `${b.label} ${shortHelp[b.action as string] ?? b.action}`).join(' · ');
}

const shortHelp: Record<string, string> = {
  'run-step': 'run step', 'run-phase': 'run phase', preview: 'preview', skip: 'skip', monitors: 'monitors', rollback: 'rollback',
  help: 'help', quit: 'quit', up: 'select', 'cancel-backend': 'cancel query', 'terminate-backend': 'terminate', close: 'back',
};
