import os from 'node:os';
import type { Engine } from '../engine/engine.js';
import type { PhaseId } from '../engine/types.js';
import { VERSION } from '../version.js';

export interface OperatorSkip {
  readonly skippedBy: string;
  readonly reason: string;
}

export function isOperatorSkip(result: unknown): result is OperatorSkip {
  return !!result && typeof result === 'object' && typeof (result as OperatorSkip).skippedBy === 'string' && typeof (result as OperatorSkip).reason === 'string';
}

/**
 * Skips a step on the operator's word: journaled as a short run of its own (mode "wizard-skip") with the step ended
 * 'skipped', the reason as its summary and { skippedBy, reason } as its result. The wizard's phase run leaves such a
 * step out; running the step itself (enter) still runs it.
 */
export async function skipStep(engine: Engine, step: { id: string; phase: PhaseId; title: string }, reason: string): Promise<void> {
  const why = reason.trim();
  if (!why) throw new Error('a reason is required to skip a step');
  const loaded = engine.opts.loaded;
  const j = engine.journal;
  await j.startRun({
    planName: loaded.plan.name, planPath: loaded.path, checksum: loaded.checksum, operator: engine.operator,
    host: os.hostname(), mode: 'wizard-skip', phases: String(step.phase), version: VERSION,
  });
  try {
    await j.stepStarted(step.id, String(step.phase), step.title);
    const data: OperatorSkip = { skippedBy: engine.operator, reason: why };
    await j.stepEnded(step.id, 'skipped', { summary: `skipped by ${engine.operator}: ${why}`, result: data, ms: 0 });
    await j.endRun('completed', `operator skipped ${step.id}: ${why}`);
  } catch (e) {
    await j.endRun('failed', e instanceof Error ? e.message : String(e)).catch(() => {});
    throw e;
  }
}
