import type { Phase } from '../source/engine/types.js';

export const data: Phase = {
  id: 3,
  name: 'Data',
  async plan() {
    return [];
  },
};
