import type { Phase } from '../source/engine/types.js';

export const structure: Phase = {
  id: 2,
  name: 'Structure',
  async plan() {
    return [];
  },
};
