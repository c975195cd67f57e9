import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { render } from 'ink-testing-library';
import { Text } from 'ink';
import { freshDatabase, type FreshDb } from '../helpers/db.js';
import { KEY, maxRun, mountApp, press, selectStep, setSize, strip, tick, waitFor, waitRun, type Mounted } from './harness.js';
import { ThemeContext, COLOR, MONO, noColorFromEnv, useTheme } from '../../source/ui/theme.js';

describe('wizard screens (ink-testing-library, real engine on a real database)', () => {
  let db: FreshDb;
  let m: Mounted;
  beforeAll(async () => {
    db = await freshDatabase('ui_app');
    await db.client.query(`CREATE TABLE public.orders (id bigint PRIMARY KEY, placed_at timestamptz NOT NULL)`);
    await db.client.query(`INSERT INTO public.orders SELECT g, now() - g * interval '1 hour' FROM generate_series(1, 3000) g`);
    await db.client.query(`CREATE TABLE public.order_lines (id bigint PRIMARY KEY, order_id bigint REFERENCES public.orders)`);
    m = await mountApp(db.url, { phases: [1, 2], size: { columns: 120, rows: 40 } });
    await waitFor(() => m.frame().includes('Data volume'), 'phase 1 steps');
  });
  afterAll(async () => {
    await m?.close();
    await db?.drop();
  });

  it('shows the header (no password), the phase rail and the phase 1 steps with the SQL preview', async () => {
    const f = m.frame();
    expect(m.conn.secret).toBeTruthy();
    expect(f).not.toContain(m.conn.secret!);
    expect(f).toContain(m.conn.display);
    expect(f).toMatch(/PostgreSQL 1\d\.\d+/);
    expect(f).toContain('operator tester');
    expect(f).toMatch(/1 Preparation · .*2 Structure · .*3 Data · .*4 Dependencies · .*5 Cleanup · .*Rollback/);
    expect(f).toContain('Data volume');
    expect(f).toContain('Foreign-key dependencies');
    await selectStep(m, 'report:data-volume');
    await waitFor(() => m.frame().includes('pg_stat_user_tables'), 'the SQL preview');
    expect(m.frame()).toContain('Data volume: size and live rows per table'); // the full title in the detail pane
    expect(m.frame()).toContain('enter run step');
  });

  it('enter runs the selected step: state, summary and its report table', async () => {
    await selectStep(m, 'report:data-volume');
    const before = await maxRun(db.client);
    await press(m.ui.stdin, KEY.enter);
    const run = await waitRun(db.client, before);
    expect(run.status).toBe('completed');
    await waitFor(() => /✓ Data volume/.test(m.frame()) && m.frame().includes(`run ${run.run_id} completed`), 'the step to finish');
    const f = m.frame();
    expect(f).toContain('report:data-volume · done');
    expect(f).toMatch(/public\.orders\s+\d+ kB/);
    expect(f).toMatch(/· Foreign-key dependencies/); // not run: only the selected step ran
    const steps = await db.client.query(`SELECT step_id, status FROM pgshift.steps WHERE run_id = $1`, [run.run_id]);
    expect(steps.rows).toEqual([{ step_id: 'report:data-volume', status: 'done' }]);
  });

  it('s skips the selected step with a typed reason, journaled; an empty reason is refused', async () => {
    await selectStep(m, 'report:fk-dependencies');
    expect(m.frame()).toContain('report:fk-dependencies · pending');
    await press(m.ui.stdin, 's');
    await waitFor(() => m.frame().includes('Skip report:fk-dependencies: why?'), 'the skip prompt');
    await press(m.ui.stdin, KEY.enter);
    await waitFor(() => m.frame().includes('a reason is required'), 'the refusal of an empty reason');
    await press(m.ui.stdin, 'FK list already reviewed in CHG-1234', KEY.enter);
    await waitFor(() => m.frame().includes('– Foreign-key dependencies'), 'the skipped state');
    const r = await db.client.query(`SELECT s.status, s.summary, s.result, r.mode FROM pgshift.steps s JOIN pgshift.runs r USING (run_id) WHERE s.step_id = 'report:fk-dependencies'`);
    expect(r.rows).toEqual([{ status: 'skipped', summary: 'skipped by tester: FK list already reviewed in CHG-1234', result: { skippedBy: 'tester', reason: 'FK list already reviewed in CHG-1234' }, mode: 'wizard-skip' }]);
  });

  it('a runs the phase, leaving out the step the operator skipped', async () => {
    const before = await maxRun(db.client);
    await press(m.ui.stdin, 'a');
    await waitFor(() => m.frame().includes('leaving out 1 step(s) you skipped: report:fk-dependencies'), 'the note');
    const run = await waitRun(db.client, before);
    await waitFor(() => m.frame().includes(`run ${run.run_id} `), 'the run to end on screen');
    const last = await db.client.query<{ step_id: string }>(`SELECT step_id FROM pgshift.steps WHERE run_id = $1 ORDER BY started_at`, [run.run_id]);
    expect(last.rows.map((x) => x.step_id)).not.toContain('report:fk-dependencies');
    expect(last.rows.map((x) => x.step_id)).toContain('snapshot:catalog');
  });

  it('p opens the full preview, ? the help, esc closes them; arrows move between phases', async () => {
    await selectStep(m, 'report:data-volume');
    await press(m.ui.stdin, 'p');
    await waitFor(() => m.frame().includes('Preview · report:data-volume'), 'the preview');
    expect(m.frame()).toMatch(/lines 1-\d+ of \d+/);
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes('Preview ·'), 'the preview to close');
    await press(m.ui.stdin, '?');
    await waitFor(() => m.frame().includes('Keys on the phase screen'), 'the help');
    expect(m.frame()).toContain('pg_cancel_backend');
    await press(m.ui.stdin, KEY.esc, KEY.right);
    await waitFor(() => m.frame().includes('Phase 2 · Structure'), 'phase 2');
    await press(m.ui.stdin, '4');
    await waitFor(() => m.frame().includes('Phase 4 · Dependen'), 'phase 4');
    await press(m.ui.stdin, 'a');
    await waitFor(() => m.frame().includes('phase 4 is not part of this session'), 'the refusal to run phase 4');
    await press(m.ui.stdin, 'r');
    await waitFor(() => m.frame().includes('Rollback phase: nothing runs until you press a'), 'the rollback view');
    expect(m.frame()).toMatch(/^│?.*Rollback/m);
    await press(m.ui.stdin, '1');
  });

  it('pgdn and pgup in a full-screen view move a screenful, keeping one line for context (they moved 10 of 33 lines)', async () => {
    await press(m.ui.stdin, '?');
    await waitFor(() => /help lines 1-\d+ of \d+/.test(m.frame()), 'the help, longer than the screen');
    const range = () => {
      const r = /help lines (\d+)-(\d+) of (\d+)/.exec(m.frame());
      return r ? { from: Number(r[1]), to: Number(r[2]), of: Number(r[3]) } : null;
    };
    const first = range()!;
    expect(first.to).toBeGreaterThan(20); // a 40-row terminal shows a screenful, not a few lines
    await press(m.ui.stdin, KEY.pageDown);
    await waitFor(() => range()?.from !== 1, 'the next page');
    // a page is the lines shown less one (the last line shown stays, on top), unless the end comes first
    const shown = first.to;
    const from = Math.min(shown, first.of - shown + 1);
    expect(from).toBeGreaterThan(11); // farther than the 10 lines a page used to be
    expect(range()).toEqual({ from, to: from + shown - 1, of: first.of });
    await press(m.ui.stdin, KEY.pageUp);
    await waitFor(() => range()?.from === 1, 'the first page again');
    await press(m.ui.stdin, KEY.esc);
    await waitFor(() => !m.frame().includes('help lines'), 'the help to close');
  });

  it('fits 80×24 and re-renders on resize', async () => {
    setSize(m.ui.stdout, 80, 24);
    await waitFor(() => m.frame().split('\n').length <= 23 && /\? help · q quit/.test(m.frame()), 'the narrow layout');
    let lines = m.frame().split('\n');
    expect(lines.length).toBeLessThanOrEqual(23);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(80);
    expect(m.frame()).toContain('monitors (m)');
    setSize(m.ui.stdout, 160, 45);
    await waitFor(() => m.frame().includes('Monitors (m)'), 'the wide layout (a monitor column from 150 columns)');
    lines = m.frame().split('\n');
    expect(lines.length).toBeLessThanOrEqual(44);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(160);
    expect(lines.length).toBeGreaterThan(30);
  });

  it('q asks, n stays, y quits with the last exit code', async () => {
    await press(m.ui.stdin, 'q');
    await waitFor(() => m.frame().includes('Quit pgshift?'), 'the quit prompt');
    await press(m.ui.stdin, 'n');
    await waitFor(() => !m.frame().includes('Quit pgshift?'), 'the prompt to close');
    expect(m.exits).toEqual([]);
    await press(m.ui.stdin, KEY.ctrlC);
    await waitFor(() => m.frame().includes('Quit pgshift?'), 'ctrl+c asks too');
    await press(m.ui.stdin, 'y');
    await waitFor(() => m.exits.length > 0, 'the exit');
    expect(m.exits).toEqual([0]);
  });
});

describe('NO_COLOR', () => {
  it('is read from the environment (any non-empty value)', () => {
    expect(noColorFromEnv({ NO_COLOR: '1' })).toBe(true);
    expect(noColorFromEnv({ NO_COLOR: '' })).toBe(false);
    expect(noColorFromEnv({})).toBe(false);
  });
  it('the MONO palette gives components no color at all', async () => {
    const Probe = () => {
      const t = useTheme();
      return <Text color={t.error}>{`error=${String(t.error)} ok=${String(t.ok)} accent=${String(t.accent)}`}</Text>;
    };
    const mono = render(<ThemeContext.Provider value={MONO}><Probe /></ThemeContext.Provider>);
    await tick();
    expect(strip(mono.lastFrame())).toBe('error=undefined ok=undefined accent=undefined');
    mono.unmount();
    const color = render(<ThemeContext.Provider value={COLOR}><Probe /></ThemeContext.Provider>);
    await tick();
    expect(strip(color.lastFrame())).toBe('error=red ok=green accent=cyan');
    color.unmount();
  });
});
