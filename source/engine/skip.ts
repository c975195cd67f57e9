import type { Journal } from './journal.js';
import type { PhaseId } from './types.js';

/** What an operator's skip journals as the step's result (pgshift.steps.result and pgshift.step_state.result). */
export interface OperatorSkip {
  readonly skippedBy: string;
  readonly reason: string;
}

export function isOperatorSkip(result: unknown): result is OperatorSkip {
  return !!result && typeof result === 'object' && typeof (result as OperatorSkip).skippedBy === 'string' && typeof (result as OperatorSkip).reason === 'string';
}

/** The run row an operator's skip opens (everything but the phase and the mode, which the skip sets). */
export interface SkipRunInfo {
  readonly planName: string;
  readonly planPath: string;
  readonly checksum: string;
  readonly host: string;
  readonly version: string;
}

/**
 * Skips a step on the operator's word: journaled as a short run of its own (mode "wizard-skip") with the step ended
 * 'skipped', the reason as its summary and { skippedBy, reason } as its result. The wizard's phase run leaves such a
 * step out; running the step itself (enter) still runs it. Called through Engine.skipStep.
 */
export async function journalOperatorSkip(
  j: Journal, run: SkipRunInfo, step: { readonly id: string; readonly phase: PhaseId; readonly title: string }, reason: string, by: string,
): Promise<OperatorSkip> {
  const why = reason.trim();
  if (!why) throw new Error('a reason is required to skip a step');
  await j.startRun({ ...run, operator: by, mode: 'wizard-skip', phases: String(step.phase) });
  try {
    await j.stepStarted(step.id, String(step.phase), step.title);
    const data: OperatorSkip = { skippedBy: by, reason: why };
    await j.stepEnded(step.id, 'skipped', { summary: `skipped by ${by}: ${why}`, result: data, ms: 0 });
    await j.endRun('completed', `operator skipped ${step.id}: ${why}`);
    return data;
  } catch (e) {
    await j.endRun('failed', e instanceof Error ? e.message : String(e)).catch(() => {});
    throw e;
  }
}
