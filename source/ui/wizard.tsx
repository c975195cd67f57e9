import type { Engine } from '../engine/engine.js';
import type { ConnectionInfo } from '../db/connection.js';
import type { ConfirmFn, PhaseId } from '../engine/types.js';
import { headlessReporter } from '../headless.js';
import { exitFor } from '../cli.js';

export interface WizardOptions {
  readonly engine: Engine;
  readonly phases: PhaseId[];
  readonly conn: ConnectionInfo;
  readonly demo: boolean;
  /** the wizard installs its own confirm function (typed prompts) */
  readonly setConfirm: (fn: ConfirmFn) => void;
}

/** Placeholder until the Ink screens land: prints the run as lines. */
export async function runWizard(o: WizardOptions): Promise<number> {
  o.engine.on(headlessReporter((l) => process.stdout.write(l + '\n')));
  const outcome = await o.engine.run({ phases: o.phases });
  return exitFor(outcome);
}
