import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Global setup, before any test file starts: builds dist/ once (the CLI the child-process tests run,
 * bin/pgshift.js → dist/bundle/cli.js, bundled from dist/source). Incremental, so an unchanged tree costs a few
 * seconds. No test builds dist/ itself: a build while other workers run the CLI from it would swap files under them.
 */
export default function buildDist(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const tsc = path.join(root, 'node_modules/typescript/bin/tsc');
  // one node script run to its end; on failure its output, said as what failed
  const node = (args: string[], what: string) => {
    try {
      execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      const out = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
      throw new Error(`${what} for the tests failed:\n${out}`, { cause: e });
    }
  };
  const run = (extra: string[]) => node([tsc, '-p', path.join(root, 'tsconfig.json'), ...extra], 'building dist/ (tsc -p tsconfig.json)');
  run(['--incremental', '--tsBuildInfoFile', path.join(root, 'dist/.tsbuildinfo')]);
  // the build info may outlive a deleted output file: then build everything once more
  if (!fs.existsSync(path.join(root, 'dist/source/cli.js')) || !fs.existsSync(path.join(root, 'dist/source/ui/wizard.js'))) run([]);
  // bin/pgshift.js runs the bundle of what tsc just wrote (source/bundle.ts), as `npm run build` does
  node([path.join(root, 'dist/source/bundle.js')], 'bundling dist/ (node dist/source/bundle.js)');
}
