import type { RunOutcome } from './engine.js';

/** An error caused by the user's input or environment: printed as one line plus a hint, never a stack. */
export class UserError extends Error {
  constructor(message: string, readonly hint?: string, readonly exitCode: number = 1) {
    super(message);
    this.name = 'UserError';
  }
}

/** The run stopped before a destructive step because nobody confirmed it (headless without --confirm). */
export class ConfirmationNeeded extends UserError {
  constructor(message: string, hint: string) {
    super(message, hint, 3);
    this.name = 'ConfirmationNeeded';
  }
}

/** The operator (or Ctrl+C) stopped the run; checkpoints are committed. */
export class Aborted extends Error {
  constructor(message = 'stopped by the operator') {
    super(message);
    this.name = 'Aborted';
  }
}

export const EXIT = { ok: 0, failed: 1, badInput: 2, needsConfirmation: 3, aborted: 130 } as const;

/** The process exit code of a run's outcome. */
export function exitFor(o: Pick<RunOutcome, 'status' | 'exitCode'>): number {
  if (o.status === 'failed' && o.exitCode !== undefined) return o.exitCode;
  switch (o.status) {
    case 'completed': return EXIT.ok;
    case 'needs-confirmation': case 'stopped': return EXIT.needsConfirmation;
    case 'aborted': return EXIT.aborted;
    default: return EXIT.failed;
  }
}
