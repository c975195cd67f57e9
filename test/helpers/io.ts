import type { Io } from '../../source/cli.js';

export interface CapturedIo extends Io {
  readonly stdout: string[];
  readonly stderr: string[];
  text(): string;
}

/** An Io for running the CLI in-process: not a TTY (headless), lines captured. */
export function captureIo(env: NodeJS.ProcessEnv = {}): CapturedIo {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    isTTY: false,
    env: { ...env },
    out: (l) => stdout.push(l),
    err: (l) => stderr.push(l),
    text: () => [...stdout, ...stderr].join('\n'),
  };
}
