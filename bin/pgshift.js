#!/usr/bin/env node
import { main, defaultIo } from '../dist/source/cli.js';

const code = await main(process.argv.slice(2), defaultIo);
process.exitCode = code;
