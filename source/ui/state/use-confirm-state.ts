import type { ConfirmAnswer, ConfirmRequest } from '../../engine/types.js';
import { MODAL_KEYS, stripControl } from '../keymap.js';

/**
 * The confirmation modal as a pure reducer. Three shapes:
 *  - typed: the object's name must be typed exactly, enter checks it; a wrong word never confirms ("does not match")
 *  - yes:   `y` confirms, `n` declines
 *  - refused: no answer confirms; with an override flag, typing "<name> OVERRIDE" confirms with override: true
 * Esc always declines (or, for a refusal, answers refused).
 */
export type ConfirmMode = 'typed' | 'yes' | 'refused' | 'override';

export interface ConfirmState {
  readonly mode: ConfirmMode;
  readonly expected: string | null;
  readonly text: string;
  /** the last wrong attempt, shown as "does not match" */
  readonly mismatch: string | null;
  readonly scroll: number;
  readonly answer: Omit<ConfirmAnswer, 'by'> | null;
}

export type ConfirmAction =
  | { type: 'char'; input: string }
  | { type: 'backspace' }
  | { type: 'submit' }
  | { type: 'escape' }
  | { type: 'scroll'; delta: number };

export function confirmMode(r: Pick<ConfirmRequest, 'typed' | 'refusal' | 'overrideFlag'>): ConfirmMode {
  if (r.refusal) return r.overrideFlag ? 'override' : 'refused';
  return r.typed ? 'typed' : 'yes';
}

export function expectedText(r: Pick<ConfirmRequest, 'typed' | 'refusal' | 'overrideFlag' | 'object'>): string | null {
  const m = confirmMode(r);
  if (m === 'typed') return r.object;
  if (m === 'override') return `${r.object} ${MODAL_KEYS.overrideWord}`;
  return null;
}

export function initialConfirmState(r: ConfirmRequest): ConfirmState {
  return { mode: confirmMode(r), expected: expectedText(r), text: '', mismatch: null, scroll: 0, answer: null };
}

export function confirmReducer(s: ConfirmState, a: ConfirmAction): ConfirmState {
  if (s.answer) return s; // answered: nothing changes it any more
  switch (a.type) {
    case 'scroll':
      return { ...s, scroll: Math.max(0, s.scroll + a.delta) };
    case 'escape':
      return { ...s, answer: { confirmed: false, method: s.mode === 'refused' || s.mode === 'override' ? 'refused' : 'declined' } };
    case 'char': {
      if (s.mode === 'yes') {
        if (a.input === MODAL_KEYS.confirmYes || a.input === MODAL_KEYS.confirmYes.toUpperCase()) return { ...s, answer: { confirmed: true, method: 'yes' } };
        if (a.input === MODAL_KEYS.confirmNo || a.input === MODAL_KEYS.confirmNo.toUpperCase()) return { ...s, answer: { confirmed: false, method: 'declined' } };
        return s;
      }
      if (s.mode === 'refused') return s;
      // typing: printable characters only (a paste arrives as one string)
      const clean = stripControl(a.input, true);
      if (!clean) return s;
      return { ...s, text: (s.text + clean).slice(0, 200), mismatch: null };
    }
    case 'backspace':
      if (s.mode === 'yes' || s.mode === 'refused') return s;
      return { ...s, text: s.text.slice(0, -1), mismatch: null };
    case 'submit': {
      if (s.mode === 'refused') return { ...s, answer: { confirmed: false, method: 'refused' } };
      if (s.mode === 'yes') return s; // enter alone never confirms: press y
      if (s.text === s.expected) {
        return { ...s, answer: s.mode === 'override' ? { confirmed: true, method: 'typed', typedText: s.text, override: true } : { confirmed: true, method: 'typed', typedText: s.text } };
      }
      return { ...s, mismatch: s.text, text: '' };
    }
  }
}
