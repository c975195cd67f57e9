import type { Phase } from '../source/engine/types.js';

export const rollback: Phase = {
  id: 'rollback',
  name: 'Rollback',
  async plan() {
    return [];
  },
};
