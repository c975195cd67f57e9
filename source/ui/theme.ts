import { createContext, useContext } from 'react';

/** Colors by role. With NO_COLOR set (any non-empty value, https://no-color.org) every role is undefined: no color. */
export interface Palette {
  readonly accent?: string;
  readonly ok?: string;
  readonly warn?: string;
  readonly error?: string;
  readonly dim?: string;
  readonly running?: string;
  readonly danger?: string;
  readonly border?: string;
  readonly noColor: boolean;
}

export const COLOR: Palette = {
  accent: 'cyan', ok: 'green', warn: 'yellow', error: 'red', dim: 'gray', running: 'blue', danger: 'redBright', border: 'gray', noColor: false,
};
export const MONO: Palette = { noColor: true };

export function noColorFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '';
}

export const ThemeContext = createContext<Palette>(COLOR);
export const useTheme = (): Palette => useContext(ThemeContext);
