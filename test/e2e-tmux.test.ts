import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..');
const hasTmux = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const built = fs.existsSync(path.join(root, 'dist/source/ui/wizard.js'));
const session = `pgshift-e2e-${process.pid}-${Date.now().toString(36)}`;

const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-t', session);
const keys = (...k: string[]) => tmux('send-keys', '-t', session, ...k);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: (s: string) => boolean, what: string, timeoutMs = 60_000): Promise<string> {
  const t0 = Date.now();
  let s = '';
  for (;;) {
    try {
      s = screen();
    } catch {
      s = '';
    }
    if (check(s)) {
      await sleep(150); // the new screen's key handler is registered just after it is drawn
      return s;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; the screen:\n${s}`);
    await sleep(150);
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
    let s = await until((x) => x.includes('Phase 1 · Preparation') && x.includes('enter run step'), 'the phase screen', 120_000);
    expect(s).toMatch(/pgshift · postgres@127\.0\.0\.1:\d+\/pgshift_demo · PostgreSQL 15\.\d+ · run — · \d\d:\d\d · operator \S+ · DEMO/);
    expect(s).toMatch(/1 Preparation · .*2 Structure · .*3 Data · .*4 Dependencies · .*5 Cleanup · .*Rollback/);
    expect(s).toContain('monitors (m)'); // one line below 150 columns: the detail pane gets the width
    s = await until((x) => /refresh [\d.]+ ms/.test(x), 'the compact monitor');
    expect(s.split('\n')[0]).toMatch(/^pgshift · /); // the whole screen fits: the header is still on the top line

    // select the data volume report and run it
    const selected = () => screen().split('\n').find((l) => l.startsWith('›')) ?? '';
    for (let i = 0; i < 12 && !screen().includes('report:data-volume · '); i++) {
      const before = selected();
      keys('j');
      // never press ahead of the screen (a loaded machine draws late)
      for (let t = 0; t < 40 && selected() === before; t++) await sleep(50);
    }
    s = await until((x) => x.includes('report:data-volume · pending'), 'the data volume step selected');
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
    s = await until((x) => x.includes('PGSHIFT-EXIT='), 'the process to end', 30_000);
    expect(s).toContain('PGSHIFT-EXIT=0');
    expect(s).toContain('embedded PostgreSQL stopped');
  }, 280_000);
});
