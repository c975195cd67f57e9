import { describe, it, expect } from 'vitest';
import { headlessReporter } from '../source/headless.js';

describe('headless progress lines carry the copy state', () => {
  it('prints THROTTLED / WAITING FOR LOCK / PAUSED with the reason at once, then back to running', () => {
    const lines: string[] = [];
    const r = headlessReporter((l) => lines.push(l));
    const p = (done: number, state?: 'running' | 'throttled' | 'waiting-lock' | 'paused', reason?: string) =>
      r({ type: 'step-progress', stepId: 'copy:t', progress: { done, total: 1000, unit: 'rows', state, reason }, ratePerSec: 100, etaSec: 5 });
    p(100, 'running');
    p(110, 'throttled', "writers' p99 3.1 ms > 2 × idle");
    p(110, 'waiting-lock', 'pid 42 holds ACCESS EXCLUSIVE on public.t');
    p(110, 'paused', 'pgshift control pause');
    p(120, 'running');
    p(130, 'running'); // same state within 2 s: not printed
    expect(lines).toEqual([
      '  … 100 / 1,000 rows (10.0%), 100 rows/s, ETA 5.0 s',
      "  … THROTTLED (writers' p99 3.1 ms > 2 × idle) · 110 / 1,000 rows (11.0%), 100 rows/s, ETA 5.0 s",
      '  … WAITING FOR LOCK (pid 42 holds ACCESS EXCLUSIVE on public.t) · 110 / 1,000 rows (11.0%), 100 rows/s, ETA 5.0 s',
      '  … PAUSED (pgshift control pause) · 110 / 1,000 rows (11.0%), 100 rows/s, ETA 5.0 s',
      '  … 120 / 1,000 rows (12.0%), 100 rows/s, ETA 5.0 s',
    ]);
  });
});
