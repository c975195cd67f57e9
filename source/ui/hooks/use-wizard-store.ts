import { useCallback, useReducer, useRef, type Dispatch, type MutableRefObject } from 'react';
import type { PhaseId } from '../../engine/types.js';
import { initialWizardState, wizardReducer, type WizardAction, type WizardState } from '../state/use-wizard-state.js';

export interface WizardStore {
  /** the state of this render */
  readonly state: WizardState;
  /** the newest state, for callbacks and keys between renders */
  readonly stateRef: MutableRefObject<WizardState>;
  readonly dispatch: Dispatch<WizardAction>;
  /** dispatch, and apply it to stateRef at once: the next key of the same chunk sees its effect before React renders */
  readonly act: (a: WizardAction) => void;
}

/** The wizard's state (state/use-wizard-state.ts) and a ref that is never behind it. */
export function useWizardStore(phases: readonly PhaseId[]): WizardStore {
  const [state, dispatch] = useReducer(wizardReducer, { phases }, initialWizardState);
  const stateRef = useRef<WizardState>(state);
  stateRef.current = state;
  const act = useCallback((a: WizardAction) => {
    dispatch(a);
    stateRef.current = wizardReducer(stateRef.current, a);
  }, []);
  return { state, stateRef, dispatch, act };
}
