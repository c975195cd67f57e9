import { useEffect, useReducer, useRef } from 'react';
import { useInput } from 'ink';
import type { ConfirmAnswer, ConfirmRequest } from '../../engine/types.js';
import { confirmReducer, initialConfirmState, type ConfirmState } from '../state/use-confirm-state.js';

/** Keys → confirmation actions; calls onAnswer once, when the reducer has an answer. */
export function useConfirm(request: ConfirmRequest, onAnswer: (a: Omit<ConfirmAnswer, 'by'>, interrupt: boolean) => void, isActive = true): ConfirmState {
  const [state, dispatch] = useReducer(confirmReducer, request, initialConfirmState);
  const interrupted = useRef(false);
  const answered = useRef(false);
  useInput((input, key) => {
    if (key.ctrl && input === 'c') {
      interrupted.current = true;
      dispatch({ type: 'escape' });
      return;
    }
    if (key.escape) dispatch({ type: 'escape' });
    else if (key.return) dispatch({ type: 'submit' });
    else if (key.backspace || key.delete) dispatch({ type: 'backspace' });
    else if (key.upArrow) dispatch({ type: 'scroll', delta: -1 });
    else if (key.downArrow) dispatch({ type: 'scroll', delta: 1 });
    else if (key.pageUp) dispatch({ type: 'scroll', delta: -10 });
    else if (key.pageDown) dispatch({ type: 'scroll', delta: 10 });
    else if (input && !key.ctrl && !key.meta && !key.tab) {
      // a paste (or fast typing over ssh/tmux) arrives as one chunk: "name\r" types the name, then submits
      // "name\x7f" (text then backspace in one chunk) deletes, "name\r" submits: each key in its order
      let text = '';
      const flush = () => {
        if (text) dispatch({ type: 'char', input: text });
        text = '';
      };
      for (const c of input.replace(/\r\n/g, '\r')) {
        if (c === '\r' || c === '\n') {
          flush();
          dispatch({ type: 'submit' });
        } else if (c === '\u007f' || c === '\b') {
          flush();
          dispatch({ type: 'backspace' });
        } else text += c;
      }
      flush();
    }
  }, { isActive });
  useEffect(() => {
    if (state.answer && !answered.current) {
      answered.current = true;
      onAnswer(state.answer, interrupted.current);
    }
  }, [state.answer, onAnswer]);
  return state;
}
