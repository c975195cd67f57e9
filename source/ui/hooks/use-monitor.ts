import { useCallback } from 'react';
import type { MonitorSnapshot } from '../../db/monitor.js';
import type { MonitorSource } from '../monitor-source.js';
import { usePoll, type PollState } from './use-poll.js';

/** Live monitor snapshots, refreshed every refreshMs on the monitor's own connection. */
export function useMonitor(source: MonitorSource | null, refreshMs: number, longQuerySeconds: number, paused = false): PollState<MonitorSnapshot> {
  const fn = useCallback(() => {
    if (!source) return Promise.reject(new Error('monitors are off'));
    return source.snapshot(longQuerySeconds);
  }, [source, longQuerySeconds]);
  return usePoll(fn, refreshMs, source !== null && !paused);
}
