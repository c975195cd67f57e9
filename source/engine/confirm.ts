import type { ConfirmAnswer, ConfirmFn, ConfirmRequest } from './types.js';

/**
 * Headless answers: a destructive step runs only when `--confirm OBJECT` names its object exactly; a refused one
 * (failed precondition) needs its override flag as well. The demo (a throwaway database) auto-confirms, journaled as such.
 */
export function flagConfirmer(opts: { confirms: ReadonlySet<string>; overrides: ReadonlySet<string>; operator: string; demo?: boolean }): ConfirmFn {
  const decide = (req: ConfirmRequest): ConfirmAnswer => {
    const named = opts.confirms.has(req.object);
    if (req.refusal) {
      const flag = req.overrideFlag?.replace(/^--/, '');
      if (flag && opts.overrides.has(flag)) {
        if (named || opts.demo) return { confirmed: true, method: opts.demo && !named ? 'demo-auto' : 'flag', by: opts.operator, override: true };
        // the override was asked for but the object not named: stop and say which --confirm to pass
        return { confirmed: false, method: 'declined', by: opts.operator };
      }
      return { confirmed: false, method: 'refused', by: opts.operator };
    }
    if (named) return { confirmed: true, method: 'flag', by: opts.operator };
    if (opts.demo) return { confirmed: true, method: 'demo-auto', by: opts.operator };
    return { confirmed: false, method: 'declined', by: opts.operator };
  };
  return (req) => Promise.resolve(decide(req));
}
