import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { freshDatabase, type FreshDb } from '../helpers/db.js';
import { KEY, mountApp, press, setSize, waitFor, type Mounted } from './harness.js';
import type { EngineEvent } from '../../source/engine/types.js';
import { tableLines, wrap, windowRate, addSample } from '../../source/ui/format-ui.js';
import { splitChunk, fitHints } from '../../source/ui/keymap.js';

/**
 * Every screen at 80×24 and 120×40: the key figures are on screen whole (never cut by "…"), the frame fits.
 * The engine is real (a real database); copy progress, integrity and partition tables are fed through its
 * event stream, as a running copy sends them, so each figure can be checked at both sizes.
 */
const SIZES = [{ columns: 80, rows: 24 }, { columns: 120, rows: 40 }] as const;

const BOUNDS = "FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')";
const LONG_ERROR = 'CREATE INDEX CONCURRENTLY petri_observations_partitioned_created_at_idx ON public.petri_observations_partitioned (created_at): lock not available (lock_timeout 2000 ms, attempt 10 of 10); 8 invalid leftover(s) from earlier attempts were dropped first — THE-END-OF-THE-ERROR';

function emit(m: Mounted, e: EngineEvent): void {
  (m.engine as unknown as { emit(e: EngineEvent): void }).emit(e);
}

/** the screen fits: no line wider than the terminal, no more lines than rows - 1 */
function fits(frame: string, size: { columns: number; rows: number }): void {
  const lines = frame.split('\n');
  expect(lines.length).toBeLessThanOrEqual(size.rows - 1);
  expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(size.columns);
}

/** a figure is on one line of the frame, whole */
function whole(frame: string, figure: string | RegExp): void {
  const lines = frame.split('\n');
  const ok = lines.some((l) => (typeof figure === 'string' ? l.includes(figure) : figure.test(l)));
  if (!ok) throw new Error(`not on screen whole: ${String(figure)}\n${frame}`);
}

describe.each(SIZES)('every screen at $columns×$rows', (size) => {
  let db: FreshDb;
  let m: Mounted;
  beforeAll(async () => {
    db = await freshDatabase(`ui_layout_${size.columns}`);
    await db.client.query(`CREATE TABLE public.orders (id bigint PRIMARY KEY, placed_at timestamptz NOT NULL)`);
    m = await mountApp(db.url, { phases: [1, 2, 3], size });
    await waitFor(() => m.frame().includes('Preflight'), 'phase 1 steps');
  });
  afterAll(async () => {
    await m?.close();
    await db?.drop();
  });

  it('phase screen: the key bar keeps "? help · q quit" and fits', () => {
    const f = m.frame();
    fits(f, size);
    whole(f, '? help · q quit');
    whole(f, 'monitors (m)'); // the monitor summary collapses to one line below 150 columns
    expect(f).not.toMatch(/\? help · q qu…/);
  });

  it('copy progress: rows done / total · rate · ETA whole, then THROTTLED / WAITING FOR LOCK / PAUSED with the reason', async () => {
    await press(m.ui.stdin, '3');
    await waitFor(() => m.frame().includes('Phase 3 · Data') && !m.frame().includes('planning'), 'phase 3 planned');
    emit(m, { type: 'step-started', stepId: 'copy:public.orders', phase: 3, title: 'Copy public.orders → orders_partitioned' });
    emit(m, { type: 'step-progress', stepId: 'copy:public.orders', progress: { done: 325_000, total: 1_000_000, unit: 'rows', detail: 'partition orders_p2024_01 · batch 33', state: 'running' }, ratePerSec: 8541, etaSec: 94 });
    emit(m, { type: 'step-progress', stepId: 'copy:public.orders', progress: { done: 335_000, total: 1_000_000, unit: 'rows', detail: 'partition orders_p2024_01 · batch 34', state: 'running' }, ratePerSec: 8541, etaSec: 94 });
    await waitFor(() => m.frame().includes('335,000 / 1,000,000 rows (33.5%)'), 'the progress line');
    let f = m.frame();
    fits(f, size);
    whole(f, '335,000 / 1,000,000 rows (33.5%)');
    whole(f, /\b[\d,]+ rows\/s\b/);
    whole(f, /ETA (\d+ ms|\d+(\.\d)? s|\d+ min \d+ s|\d+ h \d+ min|—)/);
    whole(f, 'partition orders_p2024_01');
    expect(f).not.toMatch(/rows\/s…|ETA…|rows…/);

    emit(m, { type: 'step-progress', stepId: 'copy:public.orders', progress: { done: 335_000, total: 1_000_000, unit: 'rows', state: 'throttled', reason: "writers' p99 3.1 ms > 2 × idle" } });
    await waitFor(() => m.frame().includes('THROTTLED'), 'THROTTLED');
    whole(m.frame(), "THROTTLED (writers' p99 3.1 ms > 2 × idle)");
    emit(m, { type: 'step-progress', stepId: 'copy:public.orders', progress: { done: 335_000, total: 1_000_000, unit: 'rows', state: 'waiting-lock', reason: 'pid 4242 holds ACCESS EXCLUSIVE on public.orders' } });
    await waitFor(() => m.frame().includes('WAITING FOR LOCK'), 'WAITING FOR LOCK');
    whole(m.frame(), /WAITING FOR LOCK \(pid 4242 holds ACCESS/);
    expect(m.frame()).toContain('public.orders)');
    emit(m, { type: 'step-progress', stepId: 'copy:public.orders', progress: { done: 335_000, total: 1_000_000, unit: 'rows', state: 'paused', reason: 'pgshift control pause by alice' } });
    await waitFor(() => m.frame().includes('PAUSED'), 'PAUSED');
    f = m.frame();
    whole(f, 'PAUSED (pgshift control pause by alice)');
    fits(f, size);
  });

  it('integrity counts and partition bounds whole in the detail pane', async () => {
    emit(m, {
      type: 'step-done', stepId: 'copy:public.orders', status: 'done', summary: '1,000,000 rows copied', durationMs: 1000,
      tables: [
        { title: 'Integrity', columns: ['table', 'new table', 'old rows', 'new rows', 'missing', 'extra', 'changed', 'FK orphans', 'result'], rows: [['public.orders', 'public.orders_partitioned', 1_000_000, 999_998, 2, 0, 0, 0, 'FAIL']] },
        { title: 'Partitions (rows are estimates)', columns: ['parent', 'partition', 'bounds', 'size', 'rows (est.)'], rows: [['public.orders_partitioned', 'orders_p2024_01', BOUNDS, '16 kB', 1_234_567]] },
      ],
    });
    await waitFor(() => m.frame().includes('1,000,000'), 'the integrity table');
    let f = m.frame();
    fits(f, size);
    whole(f, '1,000,000');
    whole(f, '999,998');
    // the bounds may wrap between words but every literal stays whole
    await press(m.ui.stdin, 'p');
    await waitFor(() => m.frame().includes('Preview ·'), 'the full-screen preview');
    for (let i = 0; i < 10 && !m.frame().includes("('2024-02-01 00:00:00+00')"); i++) await press(m.ui.stdin, KEY.down);
    f = m.frame();
    whole(f, "('2024-01-01 00:00:00+00')");
    whole(f, "('2024-02-01 00:00:00+00')");
    whole(f, '1,234,567');
    fits(f, size);
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes('Preview ·'), 'the preview to close');
  });

  it('the log: a long error whole in the full-screen log (L) and behind e; Tab moves the focus to the log', async () => {
    // a message with a newline reads as one sentence in the pane (found in tmux: "not the" / "seed's loop")
    emit(m, { type: 'step-log', stepId: 'copy:public.orders', level: 'info', message: 'batch copy — not the\nseed loop' });
    await waitFor(() => m.frame().includes('batch copy — not the seed loop'), 'the joined log line');
    emit(m, { type: 'step-failed', stepId: 'copy:public.orders', reason: 'error', error: LONG_ERROR, hint: 'end the session holding the lock, then run phase 3 again', durationMs: 5 });
    await waitFor(() => m.frame().includes('lock not available') || m.frame().includes('CREATE INDEX CONCURRENTLY'), 'the error in the log');
    await press(m.ui.stdin, 'L');
    await waitFor(() => m.frame().includes('Log ·'), 'the full-screen log');
    let f = m.frame();
    fits(f, size);
    expect(f.replace(/\n\s+/g, ' ')).toContain('THE-END-OF-THE-ERROR');
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes('Log ·'), 'the log to close');
    await press(m.ui.stdin, 'e');
    await waitFor(() => m.frame().includes('Error · full text'), 'the error screen');
    f = m.frame();
    fits(f, size);
    expect(f.replace(/\n/g, ' ')).toContain('THE-END-OF-THE-ERROR');
    expect(f).toContain('hint: end the session holding the lock');
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes('Error · full text'), 'the error screen to close');
    await press(m.ui.stdin, '\t', '\t');
    await waitFor(() => m.frame().includes('log (focus'), 'the log focused');
    await press(m.ui.stdin, KEY.up, KEY.up);
    await waitFor(() => /newer below/.test(m.frame()), 'the log scrolled back');
    await press(m.ui.stdin, '\t');
    await waitFor(() => !m.frame().includes('log (focus'), 'the focus back on the steps');
  });

  it('escape and a key in one chunk ("\\x1bs", read as alt+s) close the help, then act (found in the tmux e2e test)', async () => {
    await press(m.ui.stdin, '?');
    await waitFor(() => m.frame().includes('Keys on the phase screen'), 'the help');
    await press(m.ui.stdin, '\u001bs');
    await waitFor(() => m.frame().includes(': why?'), 'the skip prompt after the help closed');
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes(': why?'), 'the prompt to close');
  });

  it('help scrolls to its last line; the quit dialog sentence is whole', async () => {
    await press(m.ui.stdin, '?');
    await waitFor(() => m.frame().includes('Keys on the phase screen'), 'the help');
    fits(m.frame(), size);
    for (let i = 0; i < 8 && !m.frame().includes('esc or ? closes this help'); i++) await press(m.ui.stdin, KEY.pageDown);
    whole(m.frame(), 'esc or ? closes this help');
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes('Keys on the phase screen'), 'the help to close');
    await press(m.ui.stdin, 'q');
    await waitFor(() => m.frame().includes('Quit pgshift?'), 'the quit prompt');
    const f = m.frame();
    fits(f, size);
    expect(f.replace(/[│\s]+/g, ' ')).toContain('Nothing is running. The journal keeps every step; run again to continue.');
    await press(m.ui.stdin, 'n');
    await waitFor(() => !m.frame().includes('Quit pgshift?'), 'the prompt to close');
  });

  it('keys in one chunk are each handled: "jjj" moves three steps, "kkk" back', async () => {
    await press(m.ui.stdin, '1');
    await waitFor(() => m.frame().includes('Phase 1 · Preparation'), 'phase 1');
    await press(m.ui.stdin, ...Array<string>(10).fill('k'));
    const sel = () => m.frame().split('\n').find((l) => l.includes('›'))!;
    const first = sel();
    await press(m.ui.stdin, 'jjj');
    await waitFor(() => sel() !== first, 'the selection to move');
    const steps = m.frame().split('\n').filter((l) => /^[ ›][·✓✗–■⠀-⣿]/.test(l));
    expect(steps.findIndex((l) => l.startsWith('›'))).toBe(3);
    await press(m.ui.stdin, 'kkk');
    await waitFor(() => sel() === first, 'back to the first step');
  });

  it('skip prompt: text followed by backspace in one chunk keeps the deletion', async () => {
    await press(m.ui.stdin, 's');
    await waitFor(() => m.frame().includes(': why?'), 'the skip prompt');
    await press(m.ui.stdin, 'abc\u007f\u007fz');
    await waitFor(() => m.frame().includes('> az'), 'typed "az"');
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes(': why?'), 'the prompt to close');
  });

  it('at 60×18 the phase rail stays on one line (found: garbled tab bar)', async () => {
    setSize(m.ui.stdout, 60, 18);
    await waitFor(() => m.frame().split('\n').length <= 17 && Math.max(...m.frame().split('\n').map((l) => l.length)) <= 60, 'the 60×18 layout');
    const rail = m.frame().split('\n')[1]!;
    expect(rail).toMatch(/^. 1 \S+ . 2 \S+ . 3 \S+ . 4 \S+ . 5 \S+/);
    setSize(m.ui.stdout, size.columns, size.rows);
    await waitFor(() => m.frame().includes('? help · q quit'), 'back to the size');
  });

  it('a resize to the other size re-fits', async () => {
    const other = SIZES.find((s) => s.columns !== size.columns)!;
    setSize(m.ui.stdout, other.columns, other.rows);
    await waitFor(() => m.frame().split('\n').length <= other.rows - 1 && m.frame().includes('? help · q quit'), 'the re-fit');
    fits(m.frame(), other);
    setSize(m.ui.stdout, size.columns, size.rows);
  });
});

describe('fitting helpers', () => {
  it('tables never cut numbers or bounds: the least important column is cut first, else rows become records', () => {
    const t = { title: 'P', columns: ['parent', 'partition', 'bounds', 'size', 'rows (est.)'], rows: [['public.orders_partitioned', 'orders_p2024_01', BOUNDS, '16 kB', 1_234_567]] };
    for (const w of [55, 83, 120]) {
      const lines = tableLines(t, w);
      expect(lines.every((l) => l.length <= w)).toBe(true);
      const all = lines.join('\n');
      expect(all).toContain('1,234,567');
      expect(all).toContain("('2024-01-01 00:00:00+00')");
      expect(all).toContain('orders_p2024_01');
    }
    expect(tableLines(t, 83).join('\n')).toMatch(/publi?c?…/); // parent: cut first
  });
  it('wrap breaks at spaces, never inside a quoted literal', () => {
    expect(wrap("FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')", 32)).toEqual(["FROM ('2024-01-01 00:00:00+00')", "TO ('2024-02-01 00:00:00+00')"]);
    expect(wrap('aaa bbb ccc', 7)).toEqual(['aaa bbb', 'ccc']);
    // an apostrophe is not a quote: the line still breaks after it (found in tmux, the help at 80 columns)
    expect(wrap("terminate the selected backend's session (pg_terminate_backend, asks first)", 40)).toEqual(["terminate the selected backend's session", '(pg_terminate_backend, asks first)']);
  });
  it('the rate over a moving window falls to 0 when nothing moves; the ETA is then unknown', () => {
    let s = addSample(undefined, { t: 0, done: 0 });
    s = addSample(s, { t: 1000, done: 10_000 });
    s = addSample(s, { t: 2000, done: 20_000 });
    expect(windowRate(s, 2000, 100_000).ratePerSec).toBeCloseTo(10_000);
    expect(windowRate(s, 2000, 100_000).etaSec).toBeCloseTo(8);
    const stuck = windowRate(s, 12_000, 100_000);
    expect(stuck.ratePerSec!).toBeLessThan(2000); // 10 s without progress: the rate has fallen
    expect(windowRate(s, 30_000, 100_000).ratePerSec).toBeLessThan(1000);
    expect(windowRate(s, 30_000, 100_000).etaSec).toBeUndefined();
  });
  it('chunks split into keys; hints are left out whole, never cut', () => {
    expect(splitChunk('kkk', { ctrl: false, meta: false } as never).map(([i]) => i)).toEqual(['k', 'k', 'k']);
    const [a, b] = splitChunk('x\r', { ctrl: false, meta: false } as never);
    expect(a![0]).toBe('x');
    expect(b![1].return).toBe(true);
    expect(fitHints(['enter run step', 'a run phase', '? help', 'q quit'], 24, ['? help', 'q quit'])).toBe('a run phase · ? help · q quit'.length <= 24 ? 'a run phase · ? help · q quit' : '? help · q quit');
  });
});
