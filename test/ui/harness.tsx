import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { render } from 'ink-testing-library';
import { Engine } from '../../source/engine/engine.js';
import { resolveConnection, type ConnectionInfo } from '../../source/db/connection.js';
import { loadPlan } from '../../source/plan/load.js';
import type { ConfirmFn, PhaseId } from '../../source/engine/types.js';
import { App, type AppProps } from '../../source/ui/app.js';
import { MONO } from '../../source/ui/theme.js';
import type { MonitorSource } from '../../source/ui/monitor-source.js';
import { PHASE_REGISTRY } from '../../phases/index.js';

const ESC = String.fromCharCode(0x1b);
const BEL = String.fromCharCode(0x07);
/** CSI sequences (colours, cursor moves) and OSC sequences (window title…) */
const CSI = new RegExp(`${ESC}\\[[0-9;?]*[A-Za-z]`, 'g');
const OSC = new RegExp(`${ESC}\\][^${BEL}]*${BEL}`, 'g');
export const strip = (s: string | undefined): string => (s ?? '').replace(CSI, '').replace(OSC, '');
export const tick = (ms = 15) => new Promise<void>((r) => setTimeout(r, ms));

/** the screen to show when a wait times out */
export let lastScreen: () => string = () => '';
export function showOnTimeout(fn: () => string): void {
  lastScreen = fn;
}

export async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; the screen:\n${lastScreen()}`);
    await tick(20);
  }
  // a screen that just appeared registers its key handler in an effect after the frame: give it time (busy CI)
  await tick(60);
}

/** Writes keys one by one, a tick before and after each (Ink drops a key written before it listens). */
export async function press(stdin: { write(s: string): void }, ...keys: string[]): Promise<void> {
  for (const k of keys) {
    await tick();
    stdin.write(k);
    await tick();
  }
}

export const KEY = { pageDown: '\u001b[6~', pageUp: '\u001b[5~', enter: '\r', esc: '\u001b', up: '\u001b[A', down: '\u001b[B', left: '\u001b[D', right: '\u001b[C', backspace: '\u007f', ctrlC: '\u0003' };

/** Gives ink-testing-library's stdout a size and announces it, like a terminal resize. */
export function setSize(stdout: NodeJS.EventEmitter, columns: number, rows: number): void {
  Object.defineProperty(stdout, 'columns', { value: columns, configurable: true });
  Object.defineProperty(stdout, 'rows', { value: rows, configurable: true });
  stdout.emit('resize');
}

/** Moves the selection to the step with this id (phase contents belong to other modules: never count positions). */
export async function selectStep(m: { ui: { stdin: { write(s: string): void } }; frame(): string }, id: string): Promise<void> {
  const selected = () => m.frame().split('\n').find((l) => l.startsWith('›')) ?? '';
  await press(m.ui.stdin, ...Array<string>(30).fill('k'));
  // the first step selected before moving down (a loaded machine draws late: never press ahead of the screen)
  const t0 = Date.now();
  let last = '';
  while (Date.now() - t0 < 3000) {
    const now = selected();
    if (now === last && now) break;
    last = now;
    await tick(100);
  }
  for (let i = 0; i < 40 && !m.frame().includes(`${id} · `); i++) {
    const before = selected();
    await press(m.ui.stdin, 'j');
    const t1 = Date.now();
    while (selected() === before && Date.now() - t1 < 2000) await tick(20);
    if (selected() === before) break; // the last step
  }
  await waitFor(() => m.frame().includes(`${id} · `), `step ${id} selected`);
}

/** Waits until the journal has a finished run newer than `after`; returns it. */
export async function waitRun(client: pg.ClientBase, after: number, timeoutMs = 30_000): Promise<{ run_id: number; status: string; mode: string }> {
  const t0 = Date.now();
  for (;;) {
    const r = await client.query<{ run_id: number; status: string; mode: string }>(`SELECT run_id::int, status, mode FROM pgshift.runs WHERE run_id > $1 AND ended_at IS NOT NULL AND mode <> 'wizard-skip' ORDER BY run_id DESC LIMIT 1`, [after]);
    const run = r.rows[0];
    if (run) return run;
    if (Date.now() - t0 > timeoutMs) throw new Error(`no run after ${after} ended; the screen:\n${lastScreen()}`);
    await tick(50);
  }
}

export async function maxRun(client: pg.ClientBase): Promise<number> {
  const r = await client.query<{ n: number }>(`SELECT coalesce(max(run_id), 0)::int AS n FROM pgshift.runs`);
  return r.rows[0]!.n;
}

export function writePlan(dir: string, extra: object = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'plan.json');
  fs.writeFileSync(file, JSON.stringify({ version: 1, name: 'ui test', backup: { directory: path.join(dir, 'backups') }, ...extra }));
  return file;
}

export interface Mounted {
  readonly engine: Engine;
  readonly conn: ConnectionInfo;
  readonly ui: ReturnType<typeof render>;
  readonly exits: number[];
  confirm: ConfirmFn | null;
  frame(): string;
  close(): Promise<void>;
}

/** A real engine on a real database, and the wizard on ink-testing-library. */
export async function mountApp(url: string, opts: { phases?: PhaseId[]; monitor?: MonitorSource | null; plan?: object; size?: { columns: number; rows: number } } = {}): Promise<Mounted> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-ui-'));
  const loaded = loadPlan(writePlan(dir, opts.plan));
  const conn = resolveConnection(url);
  const m: { confirm: ConfirmFn | null } = { confirm: null };
  const engine = await Engine.open({
    phases: PHASE_REGISTRY,
    conn, loaded, operator: 'tester', mode: 'test',
    confirm: (r) => (m.confirm ? m.confirm(r) : Promise.resolve({ confirmed: false, method: 'declined', by: 'tester' })),
  });
  const exits: number[] = [];
  const props: AppProps = {
    engine, conn, phases: opts.phases ?? [1, 2, 3, 4, 5], demo: false, monitor: opts.monitor ?? null,
    setConfirm: (fn) => {
      m.confirm = fn;
    },
    onExit: (c) => exits.push(c),
    palette: MONO,
  };
  const ui = render(<App {...props} />);
  showOnTimeout(() => strip(ui.lastFrame()));
  if (opts.size) setSize(ui.stdout, opts.size.columns, opts.size.rows);
  const mounted: Mounted = {
    engine, conn, ui, exits,
    get confirm() {
      return m.confirm;
    },
    set confirm(v) {
      m.confirm = v;
    },
    frame: () => strip(ui.lastFrame()),
    async close() {
      ui.unmount();
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return mounted;
}
