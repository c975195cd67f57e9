import type { Phase } from '../source/engine/types.js';

export const dependencies: Phase = {
  id: 4,
  name: 'Dependencies',
  async plan() {
    return [];
  },
};
