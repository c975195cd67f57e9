import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { hasTmux } from './helpers/tmux.js';

const root = path.resolve(__dirname, '..');
const built = fs.existsSync(path.join(root, 'dist/source/ui/wizard.js'));
const session = `pgshift-e2e-${process.pid}-${Date.now().toString(36)}`;

const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-t', session);
const keys = (...k: string[]) => tmux('send-keys', '-t', session, ...k);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The screen without what changes on its own (digits: clock, refresh timings, counters; spinner frames): when this
 * changes, the program printed something new — progress.
 */
const settled = (s: string) => s.replace(/\d+/g, '#').replace(/[\u2800-\u28ff]/g, '*').trimEnd();

/** Polls between screen captures: short, the wait is bounded by progress, not by this. */
const POLL_MS = 100;
/**
 * How many polls in a row the screen may stay unchanged (see settled) before a wait gives up. A wait has no wall-clock
 * budget: any new printed line (start-up messages, a step's log line, a new screen) starts the count again. 1,200 polls
 * is two minutes on an idle machine and longer on a loaded one, where each capture itself is slower.
 */
const STALL_POLLS = 1200;

async function until(check: (s: string) => boolean, what: string): Promise<string> {
  let s: string;
  let last = '';
  let still = 0;
  for (;;) {
    try {
      s = screen();
    } catch {
      s = '';
    }
    if (check(s)) {
      // Ink registers the new screen's key handler in an effect that runs just after the frame is drawn
      await sleep(POLL_MS);
      return s;
    }
    const now = settled(s);
    still = now === last ? still + 1 : 0;
    last = now;
    if (still > STALL_POLLS) throw new Error(`waiting for ${what}: nothing new on the screen in ${STALL_POLLS} polls; the screen:\n${s}`);
    await sleep(POLL_MS);
  }
}

describe('end to end in a real terminal (tmux 120×40)', () => {
  afterAll(() => {
    if (!hasTmux) return;
    try {
      tmux('kill-session', '-t', session);
    } catch {
      // already gone
    }
  });

  it.skipIf(!hasTmux || !built)('demo: phase screen, run a step, monitors, wrong confirmation input, quit', async () => {
    tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', '-c', root,
      `env -u CI NO_COLOR=1 node bin/pgshift.js demo --rows 20000; echo "PGSHIFT-EXIT=$?"; sleep 60`);
    let s = await until((x) => x.includes('Phase 1 · Preparation') && x.includes('enter run step'), 'the phase screen');
    expect(s).toMatch(/pgshift · postgres@127\.0\.0\.1:\d+\/pgshift_demo · PostgreSQL 15\.\d+ · run — · \d\d:\d\d · operator \S+ · DEMO/);
    expect(s).toMatch(/1 Preparation · .*2 Structure · .*3 Data · .*4 Dependencies · .*5 Cleanup · .*Rollback/);
    expect(s).toContain('monitors (m)'); // one line below 150 columns: the detail pane gets the width
    s = await until((x) => /refresh [\d.]+ ms/.test(x), 'the compact monitor');
    expect(s.split('\n')[0]).toMatch(/^pgshift · /); // the whole screen fits: the header is still on the top line

    // select the data volume report and run it: one key, then wait for the selection to move (the screen changes)
    for (let i = 0; i < 12 && !screen().includes('report:data-volume · '); i++) {
      const before = settled(screen());
      keys('j');
      await until((x) => settled(x) !== before || x.includes('report:data-volume · '), 'the selection to move');
    }
    await until((x) => x.includes('report:data-volume · pending'), 'the data volume step selected');
    keys('Enter');
    s = await until((x) => x.includes('report:data-volume · done') && /run \d+ completed/.test(x), 'the step to finish');
    expect(s).toMatch(/public\.petri_observations\s+\d[\d.]* [kM]B\s+20,000/);
    expect(s).not.toMatch(/· -\d/); // no negative elapsed time

    // the full-screen monitors, then back
    keys('m');
    s = await until((x) => x.includes('Activity · own connection'), 'the activity screen');
    expect(s).toMatch(/Sessions \(\d+\) · sorted by duration/);
    expect(s).toContain('Lock waits (0)');
    expect(s).toMatch(/one refresh costs [\d.]+ ms/);
    keys('Escape');
    await until((x) => x.includes('Phase 1 · Preparation'), 'back on the phase screen');

    // help, wrong input in the skip prompt
    keys('?');
    await until((x) => x.includes('Keys on the phase screen'), 'the help');
    keys('Escape');
    keys('s');
    await until((x) => x.includes('Skip report:data-volume: why?'), 'the skip prompt');
    keys('Enter');
    await until((x) => x.includes('a reason is required'), 'an empty reason refused');
    keys('Escape');
    await until((x) => !x.includes('Skip report:data-volume'), 'the prompt closed');

    // quit: asks, n stays, q + y leaves with exit 0
    keys('q');
    await until((x) => x.includes('Quit pgshift?'), 'the quit prompt');
    keys('n');
    await until((x) => !x.includes('Quit pgshift?'), 'staying');
    keys('q');
    await until((x) => x.includes('Quit pgshift?'), 'the quit prompt again');
    keys('y');
    s = await until((x) => x.includes('PGSHIFT-EXIT='), 'the process to end');
    expect(s).toContain('PGSHIFT-EXIT=0');
    expect(s).toContain('embedded PostgreSQL stopped');
  }, 1_800_000); // a backstop only: every wait above ends when the screen stops changing (STALL_POLLS)
});
