import React from 'react';
import { Box, Text } from 'ink';
import { useTheme } from '../theme.js';
import type { ConfirmRequest } from '../../engine/types.js';
import type { ConfirmState } from '../state/use-confirm-state.js';
import { clip, wrap } from '../format-ui.js';
import { Lines, type Line } from './lines.js';
import { MODAL_KEYS } from '../keymap.js';

export function confirmBodyLines(r: ConfirmRequest, width: number): Line[] {
  const out: Line[] = [];
  // a hanging indent: the first line at the full width, the rest of the text wrapped once at the indented width
  // (wrapping each full-width line again at the narrower width left one-word lines: "waits at most" / "500 ms")
  const push = (text: string, level?: Line['level']) => {
    const indent = /^\s*(• )?/.exec(text)![0].length;
    const pad = ' '.repeat(indent);
    const narrow = Math.max(10, width - indent);
    text.split('\n').forEach((raw, i) => {
      const para = raw.replace(/\t/g, '  ').replace(/\r/g, '');
      let rest = para;
      if (i === 0) {
        const first = wrap(para, Math.max(10, width))[0] ?? '';
        out.push({ text: first, level });
        rest = para.slice(first.length).replace(/^ +/, '');
        if (!rest) return;
      }
      for (const w of wrap(rest, narrow)) out.push({ text: pad + w, level });
    });
  };
  if (r.refusal) push(`REFUSED: ${r.refusal}`, 'error');
  // impact and protections first: they fit on the first screen even when the statement list is long
  out.push({ text: 'Impact:', level: 'title' });
  if (!r.impact.length) out.push({ text: '  (none stated)', level: 'dim' });
  for (const s of r.impact) push(`  • ${s}`, 'warn');
  out.push({ text: 'What protects you:', level: 'title' });
  if (!r.protections.length) out.push({ text: '  NOTHING: no backup or integrity check covers this', level: 'error' });
  for (const s of r.protections) push(`  • ${s}`, 'ok');
  out.push({ text: `Statements (${r.statements.length}) — exactly what will run:`, level: 'title' });
  for (const s of r.statements) push(`  ${s}`);
  return out;
}

/** The confirmation before a destructive statement (or a backend cancel / terminate). Render only. */
export function ConfirmModal({ request, state, width, height, live }: {
  readonly request: ConfirmRequest; readonly state: ConfirmState; readonly width: number; readonly height: number;
  /** a line that follows the live state (the backend a cancel / terminate is about, refreshed by the monitors) */
  readonly live?: { readonly text: string; readonly gone: boolean };
}) {
  const t = useTheme();
  const inner = Math.max(20, width - 4);
  const body = confirmBodyLines(request, inner);
  const input = state.mode === 'typed' || state.mode === 'override';
  const bodyH = Math.max(3, height - (input ? 6 : 4) - (live ? 1 : 0));
  const start = Math.min(state.scroll, Math.max(0, body.length - bodyH));
  const shown = body.slice(start, start + bodyH);
  const more = body.length - (start + bodyH);
  if (more > 0) shown[shown.length - 1] = { text: `… ${more + 1} more lines: ↓ to read them all`, level: 'dim' };
  let prompt: React.ReactNode;
  switch (state.mode) {
    case 'typed':
      prompt = <Text wrap="truncate-end">Type <Text bold>{request.object}</Text> and press enter to confirm · esc cancels</Text>;
      break;
    case 'yes':
      prompt = <Text wrap="truncate-end">Press <Text bold>{MODAL_KEYS.confirmYes}</Text> to confirm · <Text bold>{MODAL_KEYS.confirmNo}</Text> or esc cancels</Text>;
      break;
    case 'refused':
      prompt = <Text color={t.error} wrap="truncate-end">This cannot be confirmed. Fix the precondition, then run again · esc closes</Text>;
      break;
    case 'override':
      prompt = <Text color={t.warn} wrap="truncate-end">To override (journaled, like {request.overrideFlag}), type <Text bold>{`${request.object} ${MODAL_KEYS.overrideWord}`}</Text> · esc keeps the refusal</Text>;
      break;
  }
  return (
    <Box flexDirection="column" width={width} height={height} borderStyle="double" borderColor={request.refusal ? t.error : t.danger} paddingX={1} overflow="hidden">
      <Text bold color={request.refusal ? t.error : t.danger} wrap="truncate-end">
        {clip(`${request.refusal ? 'REFUSED' : 'CONFIRM'}: ${request.kind.toUpperCase()} ${request.object}${request.stepId ? `  (step ${request.stepId})` : ''}`, inner)}
      </Text>
      {live ? <Text color={live.gone ? t.ok : t.warn} bold wrap="truncate-end">{clip(live.text, inner)}</Text> : null}
      <Lines lines={shown} height={bodyH} width={inner} />
      {prompt}
      {input ? (
        <Text wrap="truncate-end">{'> '}{state.text}<Text inverse> </Text></Text>
      ) : null}
      {input ? (state.mismatch !== null ? (
        <Text color={t.error} wrap="truncate-end">{clip(`"${state.mismatch}" does not match: nothing was confirmed, type ${state.expected} exactly`, inner)}</Text>
      ) : <Text> </Text>) : null}
    </Box>
  );
}
