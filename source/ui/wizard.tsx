import { render } from 'ink';
import type { Engine } from '../engine/engine.js';
import type { ConnectionInfo } from '../db/connection.js';
import type { ConfirmFn, PhaseId } from '../engine/types.js';
import { EXIT } from '../engine/errors.js';
import { App } from './app.js';
import { pgMonitorSource } from './monitor-source.js';
import { COLOR, MONO, noColorFromEnv } from './theme.js';

export interface WizardOptions {
  readonly engine: Engine;
  readonly phases: PhaseId[];
  readonly conn: ConnectionInfo;
  readonly demo: boolean;
  /** the wizard installs its own confirm function (typed prompts) */
  readonly setConfirm: (fn: ConfirmFn) => void;
}

/**
 * The Ink wizard (only on a TTY: source/cli.ts uses the headless reporter otherwise). Resolves with the exit code
 * once the operator has quit and any run has ended with its checkpoint committed.
 */
export async function runWizard(o: WizardOptions): Promise<number> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) throw new Error('the wizard needs a terminal (use --headless)');
  const monitor = pgMonitorSource(o.conn.config);
  let code: number = EXIT.ok;
  let resolveExit!: () => void;
  const exited = new Promise<void>((r) => {
    resolveExit = r;
  });
  // signals outside Ink's raw mode (kill -TERM, a closed terminal): stop like q does (the batch commits first)
  const control: { current: { quit(): void } | null } = { current: null };
  const instance = render(
    <App
      engine={o.engine} conn={o.conn} phases={o.phases} demo={o.demo} setConfirm={o.setConfirm} monitor={monitor}
      palette={noColorFromEnv() ? MONO : COLOR}
      onExit={(c) => {
        code = c;
        resolveExit();
      }}
      onForceExit={() => {
        // a second Ctrl+C while stopping: leave now (the journal marks the run interrupted; resume continues it)
        instance.unmount();
        process.exit(EXIT.aborted);
      }}
      control={control}
    />,
    { exitOnCtrlC: false, patchConsole: true },
  );
  const onSignal = () => {
    if (control.current) control.current.quit();
    else resolveExit();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  try {
    await exited;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    instance.unmount();
    await instance.waitUntilExit().catch(() => {});
    await monitor.close();
  }
  return code;
}
