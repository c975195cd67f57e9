import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import pg from 'pg';
import { nextRest, Pacer, PACE_DEFAULTS } from '../source/copy/pace.js';
import { resolveConnection } from '../source/db/connection.js';
import { freshDatabase, type FreshDb } from './helpers/db.js';

describe('online copy pacing: a feedback loop on the writers\' commit latency', () => {
  it('rests more when commits slow beyond 3 × idle (a median: the writer p99 target is 2 × its idle p99), less when they recover, never below 0 nor above the cap', () => {
    // idle 1 ms: 3.5 ms (median) is too slow → from no rest to 0.25, then doubling to the cap
    expect(nextRest(0, 3.5, 1)).toBe(0.25);
    expect(nextRest(0.25, 3.5, 1)).toBe(0.5);
    expect(nextRest(2, 9, 1)).toBe(PACE_DEFAULTS.maxRest);
    expect(nextRest(PACE_DEFAULTS.maxRest, 9, 1)).toBe(PACE_DEFAULTS.maxRest);
    // between relax (1.5 ×) and limit (3 ×): hold
    expect(nextRest(0.5, 2.5, 1)).toBe(0.5);
    // near idle: give back one step at a time, down to no rest
    expect(nextRest(0.5, 1.1, 1)).toBe(0.4);
    expect(nextRest(0.05, 1.0, 1)).toBe(0);
    // a very fast idle commit (0.1 ms) is judged against the 0.5 ms floor, not against noise
    expect(nextRest(0, 0.8, 0.1)).toBe(0);
  });

  describe('against a real server', () => {
    let db: FreshDb;
    beforeAll(async () => {
      db = await freshDatabase('copy_speed_pace');
    });
    afterAll(async () => {
      await db.drop();
    });

    it('measures the idle commit latency with a canary on its own connection and paces by it', async () => {
      const logs: string[] = [];
      const p = new Pacer(resolveConnection(db.url).config, { log: (m) => logs.push(m), initialRest: 0.5, probeMs: 20 });
      await p.start();
      try {
        expect(p.idleMs).toBeGreaterThan(0);
        expect(logs[0]).toMatch(/^pace: writers' commit latency at rest \d+\.\d\d ms \(canary\); the copy slows when it exceeds 3 × that$/);
        // the canary commits for real: each probe takes an xid (visible in the server's counter)
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        try {
          const x0 = Number((await c.query<{ x: string }>(`SELECT txid_current() AS x`)).rows[0]!.x);
          const probes = p.probes;
          while (p.probes < probes + 3) await new Promise((r) => setTimeout(r, 5));
          const x1 = Number((await c.query<{ x: string }>(`SELECT txid_current() AS x`)).rows[0]!.x);
          expect(x1 - x0).toBeGreaterThanOrEqual(3);
        } finally {
          await c.end();
        }
        // the rest follows the factor: rest × the batch's duration
        const d = p.decide(200);
        expect(d.restMs).toBe(Math.round(p.rest * 200));
        expect(p.rest).toBeGreaterThanOrEqual(0);
        expect(p.rest).toBeLessThanOrEqual(PACE_DEFAULTS.maxRest);
      } finally {
        await p.stop();
      }
    });
  });
});
