import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BUNDLE_EXTERNAL } from '../source/bundle.js';
import { VERSION } from '../source/version.js';

const root = path.resolve(__dirname, '..');
const dir = path.join(root, 'dist', 'bundle');

/** The bundle bin/pgshift.js runs (built by the global setup, as by `npm run build`). */
describe('the bundled CLI', () => {
  it('loads nothing from dist/source or node_modules but the packages left outside on purpose', () => {
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.js'));
    expect(files).toContain('cli.js');
    const allowed = (spec: string) =>
      spec.startsWith('./') || spec.startsWith('node:') ||
      BUNDLE_EXTERNAL.some((e) => (e.endsWith('/*') ? spec.startsWith(e.slice(0, -1)) : spec === e));
    const specs = new Set<string>();
    for (const f of files) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g)) specs.add(m[1]!);
    }
    const outside = [...specs].filter((s) => !allowed(s));
    expect(outside).toEqual([]);
    // zod and pg, the two largest, are inside: no import of them is left
    expect([...specs].filter((s) => /^(zod|pg)(\/|$)/.test(s))).toEqual([]);
  });

  it('bin/pgshift.js runs it: --version and a bad flag', () => {
    expect(execFileSync(process.execPath, [path.join(root, 'bin', 'pgshift.js'), '--version'], { encoding: 'utf8' }).trim()).toBe(VERSION);
    let err: { status?: number; stderr?: string } = {};
    try {
      execFileSync(process.execPath, [path.join(root, 'bin', 'pgshift.js'), '--no-such-flag'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      err = e as { status?: number; stderr?: string };
    }
    expect(err.status).toBe(2);
    expect(err.stderr).toMatch(/no-such-flag/);
  });
});
