import { describe, it, expect } from 'vitest';
import path from 'node:path';
import { spawn, execFile, spawnSync } from 'node:child_process';

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'bin/pgshift.js');

describe('pgshift demo: off a terminal, and the psql line', () => {
  it('off a TTY without --headless it refuses (exit 2, says how), starts nothing', async () => {
    const r = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [cli, 'demo', '--rows', '1000'], { env: { ...process.env, CI: 'true' } }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
      });
    });
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^pgshift: pgshift demo opens the wizard, but this is not a terminal/m);
    expect(r.out).toMatch(/^hint: .*pass --headless/m);
    expect(r.out).not.toContain('starting an embedded PostgreSQL');
  }, 120_000);

  it('prints a psql command line (password as a separate export) that connects to the running demo', async () => {
    const child = spawn(process.execPath, [cli, 'demo', '--headless', '--rows', '3000', '--until', '1'], { cwd: root, env: { ...process.env, CI: 'true' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    // the line appears once the server is up, before the data is filled: connect right then
    const t0 = Date.now();
    while (!/psql -h \S+ -p \d+ -U \S+ \S+/.test(out)) {
      if (Date.now() - t0 > 120_000) throw new Error(`no psql line:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const pw = /^ {2}export PGPASSWORD='([^']+)'$/m.exec(out)?.[1];
    const [, host, port, user, dbname] = /^ {2}psql -h (\S+) -p (\d+) -U (\S+) (\S+)$/m.exec(out)!;
    expect(pw).toMatch(/^[0-9a-f]{8,}$/);
    const q = spawnSync('psql', ['-h', host!, '-p', port!, '-U', user!, dbname!, '-Atc', 'SELECT current_database()'], { env: { ...process.env, PGPASSWORD: pw }, encoding: 'utf8' });
    expect(q.stderr).toBe('');
    expect(q.stdout.trim()).toBe('pgshift_demo');
    expect(await exited).toBe(0);
    // the password is printed only on its export line; no URL carries it
    expect(out.split(pw!).length - 1).toBe(1);
  }, 240_000);
});
