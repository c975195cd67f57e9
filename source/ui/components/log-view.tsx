import React from 'react';
import type { LogLine } from '../state/use-wizard-state.js';
import { clip } from '../format-ui.js';
import { Lines } from './lines.js';

/** The most recent events, newest last, as many as fit. */
export function LogView({ log, height, width }: { readonly log: readonly LogLine[]; readonly height: number; readonly width: number }) {
  const body = Math.max(0, height - 1);
  const shown = log.slice(Math.max(0, log.length - body));
  const lines = [
    { text: clip(`─ log ${'─'.repeat(Math.max(0, width - 6))}`, width), level: 'dim' as const },
    ...shown.map((l) => ({ text: clip(`${new Date(l.at).toTimeString().slice(0, 8)} ${l.text}`, width), level: l.level === 'info' ? undefined : l.level })),
  ];
  return <Lines lines={lines} height={height} width={width} />;
}
