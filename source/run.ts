import type { ConnectionInfo } from './db/connection.js';
import { Engine } from './engine/engine.js';
import { flagConfirmer } from './engine/confirm.js';
import { EXIT, exitFor } from './engine/errors.js';
import type { ConfirmFn, PhaseId } from './engine/types.js';
import type { LoadedPlan } from './plan/load.js';
import { headlessReporter } from './headless.js';
import { VERSION } from './version.js';
import { PHASE_REGISTRY } from '../phases/index.js';

/**
 * The composition root of a run: the engine with pgshift's phase registry, a confirmer, and the front end (the
 * wizard on a TTY, headless lines otherwise). The CLI (cli.ts) and the demo (demo/run.ts) call it.
 */

export interface Io {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  /** a line printed as is (not redacted): only the demo's own throwaway password goes through here */
  readonly raw?: (line: string) => void;
  readonly isTTY: boolean;
  readonly env: NodeJS.ProcessEnv;
}

export interface RunSetup {
  readonly conn: ConnectionInfo;
  readonly loaded: LoadedPlan;
  readonly phases: PhaseId[];
  readonly headless: boolean;
  readonly json: boolean;
  readonly confirms: Set<string>;
  readonly overrides: Set<string>;
  readonly demo: boolean;
  readonly operator: string;
}

/** Runs the engine headless or in the wizard; returns the exit code. */
export async function runEngine(setup: RunSetup, io: Io): Promise<number> {
  const wizard = !setup.headless && io.isTTY;
  let confirm: ConfirmFn = flagConfirmer({ confirms: setup.confirms, overrides: setup.overrides, operator: setup.operator, demo: setup.demo });
  // in the wizard an early drop is offered behind its refusal: the operator types the name and OVERRIDE
  const overrides = wizard ? new Set([...setup.overrides, 'force-retention']) : setup.overrides;
  const engine = await Engine.open({
    phases: PHASE_REGISTRY, conn: setup.conn, loaded: setup.loaded, confirm: (r) => confirm(r), operator: setup.operator,
    mode: setup.demo ? (wizard ? 'demo-wizard' : 'demo-headless') : wizard ? 'wizard' : 'headless',
    overrides, demo: setup.demo,
  });
  try {
    if (wizard) {
      const { runWizard } = await import('./ui/wizard.js');
      return await runWizard({ engine, phases: setup.phases, conn: setup.conn, demo: setup.demo, setConfirm: (fn) => { confirm = fn; } });
    }
    const ac = new AbortController();
    let interrupts = 0;
    const onSig = () => {
      interrupts++;
      if (interrupts === 1) {
        io.err('interrupt: finishing the current batch and committing its checkpoint (Ctrl+C again to force)');
        ac.abort();
      } else process.exit(EXIT.aborted);
    };
    process.on('SIGINT', onSig);
    process.on('SIGTERM', onSig);
    const report = headlessReporter(io.out, { json: setup.json });
    if (!setup.json) io.out(`pgshift ${VERSION} · ${setup.conn.display} · PostgreSQL ${engine.serverVersion} · operator ${setup.operator}${setup.demo ? ' · demo (destructive steps auto-confirmed)' : ''}`);
    engine.on(report);
    const outcome = await engine.run({ phases: setup.phases, signal: ac.signal });
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
    if (outcome.status !== 'completed' && outcome.hint && !setup.json) io.err(`hint: ${outcome.hint}`);
    return exitFor(outcome);
  } finally {
    await engine.close();
  }
}

