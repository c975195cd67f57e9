import type { Phase } from '../source/engine/types.js';

export const cleanup: Phase = {
  id: 5,
  name: 'Cleanup',
  async plan() {
    return [];
  },
};
