import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ConfirmAnswer, ConfirmRequest } from '../../source/engine/types.js';
import { freshDatabase, type FreshDb } from '../helpers/db.js';
import { KEY, mountApp, press, tick, waitFor, type Mounted } from './harness.js';
import { confirmBodyLines } from '../../source/ui/components/confirm-modal.js';

const DROP: ConfirmRequest = {
  stepId: 'cleanup:public.petri_observations_old', kind: 'drop', object: 'public.petri_observations_old', typed: true,
  statements: ['DROP TABLE public.petri_observations_old'],
  impact: ['20,000 rows, 6.5 MB become unreachable', 'no view or foreign key depends on it'],
  protections: ['backup /tmp/b/pre.dump, verified 12:01 (pg_restore --list)', 'integrity report: OK (row counts and chunk hashes match)'],
};
const RENAME: ConfirmRequest = {
  stepId: 'swap:public.petri_observations', kind: 'rename', object: 'public.petri_observations', typed: false,
  statements: ['ALTER TABLE public.petri_observations RENAME TO petri_observations_old', 'ALTER TABLE public.petri_observations_partitioned RENAME TO petri_observations'],
  impact: ['ACCESS EXCLUSIVE on both tables for the rename (lock_timeout 2 s, retried)'],
  protections: ['rollback renames them back'],
};

describe('wizard confirmations (ink-testing-library, real engine)', () => {
  let db: FreshDb;
  let m: Mounted;
  beforeAll(async () => {
    db = await freshDatabase('ui_confirm');
    m = await mountApp(db.url, { size: { columns: 100, rows: 30 } });
    await waitFor(() => m.confirm !== null && m.frame().includes('Phase 1'), 'the wizard');
  });
  afterAll(async () => {
    await m?.close();
    await db?.drop();
  });

  /** asks the installed confirm function, as the engine does */
  function ask(req: ConfirmRequest) {
    let answer: ConfirmAnswer | null = null;
    const p = m.confirm!(req).then((a) => (answer = a));
    return { p, get answer() { return answer; } };
  }

  it('typed: the right name confirms, and the modal shows statements, impact and protections', async () => {
    const q = ask(DROP);
    await waitFor(() => m.frame().includes('CONFIRM: DROP public.petri_observations_old'), 'the modal');
    const f = m.frame();
    expect(f).toContain('DROP TABLE public.petri_observations_old');
    expect(f).toContain('20,000 rows, 6.5 MB become unreachable');
    expect(f).toContain('backup /tmp/b/pre.dump, verified 12:01');
    expect(f).toContain('integrity report: OK');
    expect(f).toContain('Type public.petri_observations_old and press enter');
    await press(m.ui.stdin, 'public.petri_observations_old', KEY.enter);
    await q.p;
    expect(q.answer).toEqual({ confirmed: true, method: 'typed', typedText: 'public.petri_observations_old', by: 'tester' });
    await waitFor(() => !m.frame().includes('CONFIRM:'), 'the modal to close');
  });

  it('a long statement list does not push impact and protections off the first screen (found in tmux on the swap)', async () => {
    const long: ConfirmRequest = { ...RENAME, statements: Array.from({ length: 60 }, (_, i) => `ALTER INDEX public.idx_${i} RENAME TO idx_${i}_old`) };
    const q = ask(long);
    await waitFor(() => m.frame().includes('CONFIRM: RENAME public.petri_observations'), 'the modal');
    const f = m.frame();
    expect(f).toContain('ACCESS EXCLUSIVE on both tables for the rename');
    expect(f).toContain('rollback renames them back');
    expect(f).toContain('Statements (60)');
    expect(f).toMatch(/more lines: ↓ to read them all/);
    await press(m.ui.stdin, KEY.esc);
    await q.p;
    expect(q.answer).toMatchObject({ confirmed: false, method: 'declined' });
    await waitFor(() => !m.frame().includes('CONFIRM:'), 'the modal to close');
  });

  it('typed: the name and enter arriving in one chunk (a paste, or fast typing through tmux) confirm; found in tmux', async () => {
    const q = ask(DROP);
    await waitFor(() => m.frame().includes('CONFIRM: DROP public.petri_observations_old'), 'the modal');
    await tick(60);
    m.ui.stdin.write('public.petri_observations_old\r');
    await q.p;
    expect(q.answer).toMatchObject({ confirmed: true, method: 'typed', typedText: 'public.petri_observations_old' });
    await waitFor(() => !m.frame().includes('CONFIRM:'), 'the modal to close');
    // and a wrong word in one chunk is a mismatch, never a confirmation
    const q2 = ask(DROP);
    await waitFor(() => m.frame().includes('CONFIRM: DROP'), 'the modal');
    await tick(60);
    m.ui.stdin.write('public.petri_observations\r');
    await waitFor(() => m.frame().includes('does not match'), 'the mismatch');
    expect(q2.answer).toBeNull();
    await press(m.ui.stdin, KEY.esc);
    await q2.p;
    expect(q2.answer).toMatchObject({ confirmed: false });
    await waitFor(() => !m.frame().includes('CONFIRM:'), 'the modal to close');
  });

  it('typed: a typo corrected with backspace inside one chunk confirms the corrected name (laggy link)', async () => {
    const q = ask(DROP);
    await waitFor(() => m.frame().includes('CONFIRM: DROP public.petri_observations_old'), 'the modal');
    await tick(60);
    m.ui.stdin.write('public.petri_observations_oldx\u007f\r');
    await q.p;
    expect(q.answer).toMatchObject({ confirmed: true, method: 'typed', typedText: 'public.petri_observations_old' });
    await waitFor(() => !m.frame().includes('CONFIRM:'), 'the modal to close');
  });

  it('typed: a wrong word never confirms ("does not match"); esc then declines', async () => {
    const q = ask(DROP);
    await waitFor(() => m.frame().includes('CONFIRM: DROP'), 'the modal');
    await press(m.ui.stdin, 'public.petri_observations', KEY.enter);
    await waitFor(() => m.frame().includes('does not match'), 'the mismatch');
    expect(m.frame()).toContain('"public.petri_observations" does not match');
    expect(q.answer).toBeNull();
    // y is just a letter here, and enter on an empty field is another mismatch
    await press(m.ui.stdin, 'y', KEY.enter);
    await tick(50);
    expect(q.answer).toBeNull();
    // a typo corrected with backspace still has to match exactly
    await press(m.ui.stdin, 'public.petri_observations_olx', KEY.backspace, KEY.backspace, KEY.enter);
    await tick(50);
    expect(q.answer).toBeNull();
    await press(m.ui.stdin, KEY.esc);
    await q.p;
    expect(q.answer).toEqual({ confirmed: false, method: 'declined', by: 'tester' });
  });

  it('yes: y confirms, enter alone does not; esc declines', async () => {
    const q = ask(RENAME);
    await waitFor(() => m.frame().includes('CONFIRM: RENAME public.petri_observations'), 'the modal');
    expect(m.frame()).toContain('ALTER TABLE public.petri_observations_partitioned RENAME TO petri_observations');
    expect(m.frame()).toContain('Press y to confirm');
    await press(m.ui.stdin, KEY.enter, 'x');
    await tick(50);
    expect(q.answer).toBeNull();
    await press(m.ui.stdin, 'y');
    await q.p;
    expect(q.answer).toMatchObject({ confirmed: true, method: 'yes' });

    const q2 = ask(RENAME);
    await waitFor(() => m.frame().includes('CONFIRM: RENAME'), 'the modal');
    await press(m.ui.stdin, KEY.esc);
    await q2.p;
    expect(q2.answer).toMatchObject({ confirmed: false, method: 'declined' });
  });

  it('refused precondition: shown with its reason, nothing confirms it', async () => {
    const q = ask({ ...DROP, refusal: 'the retention period (7 days) ends 2025-12-08 14:00' });
    await waitFor(() => m.frame().includes('REFUSED: DROP public.petri_observations_old'), 'the refusal');
    expect(m.frame()).toContain('REFUSED: the retention period (7 days) ends 2025-12-08 14:00');
    expect(m.frame()).toContain('This cannot be confirmed');
    await press(m.ui.stdin, 'public.petri_observations_old', 'y');
    await tick(50);
    expect(q.answer).toBeNull();
    await press(m.ui.stdin, KEY.enter);
    await q.p;
    expect(q.answer).toMatchObject({ confirmed: false, method: 'refused' });
  });

  it('refused with an override flag: the name plus OVERRIDE lifts it (override: true); the name alone does not', async () => {
    const q = ask({ ...DROP, refusal: 'retention period not over', overrideFlag: '--force-retention' });
    await waitFor(() => m.frame().includes('REFUSED: DROP'), 'the refusal');
    expect(m.frame()).toContain('type public.petri_observations_old OVERRIDE');
    await press(m.ui.stdin, 'public.petri_observations_old', KEY.enter);
    await waitFor(() => m.frame().includes('does not match'), 'the mismatch');
    expect(q.answer).toBeNull();
    await press(m.ui.stdin, 'public.petri_observations_old OVERRIDE', KEY.enter);
    await q.p;
    expect(q.answer).toEqual({ confirmed: true, method: 'typed', typedText: 'public.petri_observations_old OVERRIDE', override: true, by: 'tester' });

    const q2 = ask({ ...DROP, refusal: 'retention period not over', overrideFlag: '--force-retention' });
    await waitFor(() => m.frame().includes('REFUSED: DROP'), 'the refusal');
    await press(m.ui.stdin, KEY.esc);
    await q2.p;
    expect(q2.answer).toMatchObject({ confirmed: false, method: 'refused' });
  });

  it('long statement lists scroll, and requests queue one at a time', async () => {
    const many = { ...RENAME, statements: Array.from({ length: 40 }, (_, i) => `ALTER INDEX public.idx_${i} RENAME TO idx_${i}_old`) };
    const q1 = ask(many);
    const q2 = ask({ ...RENAME, object: 'second' });
    await waitFor(() => m.frame().includes('CONFIRM: RENAME public.petri_observations'), 'the first modal');
    expect(m.frame()).toMatch(/more lines: ↓ to read them all/);
    expect(m.frame()).not.toContain('idx_39 ');
    await press(m.ui.stdin, ...Array<string>(40).fill(KEY.down));
    await waitFor(() => m.frame().includes('idx_39_old'), 'the last statement');
    await press(m.ui.stdin, 'y');
    await q1.p;
    await waitFor(() => m.frame().includes('CONFIRM: RENAME second'), 'the second modal');
    await press(m.ui.stdin, 'n');
    await q2.p;
    expect(q2.answer).toMatchObject({ confirmed: false, method: 'declined' });
  });
});

describe('confirmation text wrapping (confirmBodyLines)', () => {
  it('wraps each item once with a hanging indent: no line breaks before a word that fit on it (seen: "waits at most" / "500 ms")', () => {
    const width = 116;
    const req: ConfirmRequest = {
      ...RENAME,
      impact: [
        'locks ACCESS EXCLUSIVE, in this order: "public"."petri_observations", "public"."petri_observations_partitioned", "public"."petri_observation_images" — every query on them waits while the lock is held (each attempt waits at most 500 ms for the lock, up to 10 attempts)',
        'behaviour change: the primary key of public.petri_observations becomes (observation_id, created_at) — (observation_id) alone is no longer unique across partitions (PostgreSQL cannot enforce it on a partitioned table; a unique index per partition does not either)',
      ],
      statements: ['CREATE VIEW public.v AS\n  SELECT observation_id, created_at, program_id, site_id, petri_code, growth_index, fungicide_used, outdoor_temperature, outdoor_humidity FROM public.petri_observations'],
    };
    const lines = confirmBodyLines(req, width).map((l) => l.text);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(width);
    // every word of every item is there, in order
    const words = (s: string) => s.split(/\s+/).filter(Boolean);
    const text = lines.join(' ');
    for (const item of [...req.impact, ...req.statements]) expect(words(text).join(' ')).toContain(words(item).join(' '));
    // greedy: a continuation line's first word would not have fitted on the line before it
    for (let i = 1; i < lines.length; i++) {
      const cont = /^ {4}\S/.test(lines[i]!) && !/^ {2}• /.test(lines[i]!) && /^ {2}• |^ {4}/.test(lines[i - 1]!);
      if (!cont) continue;
      const first = lines[i]!.trimStart().split(' ')[0]!;
      expect(lines[i - 1]!.length + 1 + first.length, `${lines[i - 1]}\n${lines[i]}`).toBeGreaterThan(width);
    }
  });
});
