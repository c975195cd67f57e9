import { describe, it, expect } from 'vitest';
import { APPLY_TXN_MS, ApplyMeter, MAX_APPLY_TXN_MS } from '../source/copy/catchup.js';

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
