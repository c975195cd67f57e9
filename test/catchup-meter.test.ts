import { describe, it, expect } from 'vitest';
import { APPLY_TXN_MS, ApplyMeter, MAX_APPLY_TXN_MS, converge, readyForLock, type Replayer } from '../source/copy/catchup.js';

describe('ApplyMeter: apply transactions sized from the measured cost and the backlog', () => {
  it('while the backlog does not shrink the transactions grow (to MAX_APPLY_TXN_MS); once it halves they shrink back', () => {
    const m = new ApplyMeter();
    m.add(50, 35);
    m.add(100, 60);
    const perChange = m.perChange;
    expect(perChange).toBeGreaterThan(0);
    const small = m.batchFor(10_000);
    expect(small).toBe(Math.floor(APPLY_TXN_MS / perChange));
    const sizes: number[] = [];
    for (const pending of [5_000, 5_200, 5_300, 5_300, 5_400, 5_500, 5_600]) {
      m.backlog(pending);
      sizes.push(m.batchFor(10_000));
    }
    // first reading: no trend yet; then doubling while the backlog holds or grows, capped
    expect(sizes[0]).toBe(small);
    expect(sizes[1]).toBe(Math.floor((2 * APPLY_TXN_MS) / perChange));
    expect(m.txnMs).toBe(MAX_APPLY_TXN_MS);
    expect(sizes.at(-1)).toBe(Math.floor(MAX_APPLY_TXN_MS / perChange));
    // never above the plan's batch size
    expect(m.batchFor(300)).toBe(300);
    // caught up: halving backlogs shorten the transactions again, down to APPLY_TXN_MS
    for (const pending of [2_000, 900, 400, 150, 60, 20]) m.backlog(pending);
    expect(m.txnMs).toBe(APPLY_TXN_MS);
    // an empty log says nothing about the trend
    m.backlog(0);
    expect(m.txnMs).toBe(APPLY_TXN_MS);
  });
});

describe('converge: the lock is requested at the steady state, not after an apply cut by its batch size', () => {
  it('readyForLock: empty log; within budget, the last apply took all and the backlog held', () => {
    const base = { predictedMs: 20, budgetMs: 60 };
    expect(readyForLock({ ...base, pending: 0, lastPending: null, lastTookAll: false })).toBe(true);
    expect(readyForLock({ ...base, pending: 60, lastPending: 60, lastTookAll: true })).toBe(true);
    expect(readyForLock({ ...base, pending: 377, lastPending: 417, lastTookAll: false })).toBe(false); // cut by the batch size
    expect(readyForLock({ ...base, pending: 60, lastPending: 187, lastTookAll: true })).toBe(false); // still shrinking
    expect(readyForLock({ ...base, pending: 60, lastPending: null, lastTookAll: false })).toBe(false); // no apply yet
    expect(readyForLock({ ...base, predictedMs: 80, pending: 60, lastPending: 60, lastTookAll: true })).toBe(false); // over budget
  });

  it('a backlog of 417 with 60 changes arriving per apply: the lock is requested with the 60 of the steady state left', async () => {
    // an in-memory log: each apply takes up to `limit` and 60 more arrive meanwhile; cost 5 ms + 0.05 ms a change
    let pending = 417, captured = 417;
    const applies: number[] = [];
    const rp: Replayer = {
      label: 'memory',
      pending: () => Promise.resolve(pending),
      captured: () => Promise.resolve(captured),
      apply: (limit) => {
        const took = Math.min(limit, pending);
        pending += 60 - took;
        captured += 60;
        applies.push(took);
        return Promise.resolve({ changes: took, ms: 5 + took * 0.05 });
      },
    };
    const rep = await converge(rp, { budgetMs: 60, batch: 10_000, timeoutMs: 10_000, reporter: { log: () => {} }, what: 'the test' });
    expect(applies[0]).toBe(100); // before any measurement a modest first batch: it leaves 377
    expect(rep.pending).toBe(60);
    expect(applies.length).toBeGreaterThan(2);
  });
});
