import { useEffect, useRef, useState } from 'react';

export interface PollState<T> {
  readonly value: T | null;
  readonly error: string | null;
  /** Date.now() of the last successful result */
  readonly at: number | null;
  readonly polls: number;
}

/**
 * Calls `fn` now and then `intervalMs` after each call settles (never two at once, so a slow server is never
 * piled on). Stops on unmount or when disabled. Uses setTimeout and Date only, so tests drive it with fake timers.
 */
export function usePoll<T>(fn: () => Promise<T>, intervalMs: number, enabled = true): PollState<T> {
  const [state, setState] = useState<PollState<T>>({ value: null, error: null, at: null, polls: 0 });
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    if (!enabled) return;
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const tick = async () => {
      timer = null;
      try {
        const value = await fnRef.current();
        if (!alive) return;
        setState((s) => ({ value, error: null, at: Date.now(), polls: s.polls + 1 }));
      } catch (e) {
        if (!alive) return;
        setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e), polls: s.polls + 1 }));
      }
      if (alive) timer = setTimeout(() => void tick(), intervalMs);
    };
    void tick();
    return () => {
      alive = false;
      if (timer) clearTimeout(timer);
    };
  }, [intervalMs, enabled]);
  return state;
}
