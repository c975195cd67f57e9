import { useCallback, useEffect, useRef, type Dispatch } from 'react';
import type { Engine } from '../../engine/engine.js';
import type { ConfirmAnswer, ConfirmFn, ConfirmRequest } from '../../engine/types.js';
import type { WizardAction } from '../state/use-wizard-state.js';

export type OperatorAnswer = Omit<ConfirmAnswer, 'by'>;

export interface ConfirmQueue {
  /** queues a confirmation (the modal shows the oldest); resolves with the operator's answer */
  readonly ask: (request: ConfirmRequest) => Promise<OperatorAnswer>;
  /** the modal's answer to request `id`: it leaves the queue and its ask resolves */
  readonly answer: (id: number, a: OperatorAnswer) => void;
}

/**
 * The confirmation queue: the engine (through the confirm function installed with setConfirm) and the monitors ask,
 * the modal answers. Unmounting declines whatever is still open.
 */
export function useConfirmQueue({ engine, setConfirm, dispatch }: {
  readonly engine: Engine;
  readonly setConfirm: (fn: ConfirmFn) => void;
  readonly dispatch: Dispatch<WizardAction>;
}): ConfirmQueue {
  const pending = useRef(new Map<number, (a: OperatorAnswer) => void>());
  const seq = useRef(0);
  // installed once per engine: a new setConfirm from the caller is used from then on, it does not reinstall
  const install = useRef(setConfirm);
  install.current = setConfirm;

  const ask = useCallback((request: ConfirmRequest) => new Promise<OperatorAnswer>((resolve) => {
    const id = ++seq.current;
    pending.current.set(id, resolve);
    dispatch({ type: 'confirm-push', id, request });
  }), [dispatch]);

  useEffect(() => {
    install.current(async (req) => ({ ...(await ask(req)), by: engine.operator }));
    const open = pending.current;
    return () => {
      for (const resolve of open.values()) resolve({ confirmed: false, method: 'declined' });
      open.clear();
    };
  }, [ask, engine]);

  const answer = useCallback((id: number, a: OperatorAnswer) => {
    const resolve = pending.current.get(id);
    pending.current.delete(id);
    dispatch({ type: 'confirm-pop', id });
    resolve?.(a);
  }, [dispatch]);

  return { ask, answer };
}
