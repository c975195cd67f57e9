import { execFileSync } from 'node:child_process';

/** Whether tmux is on this machine: the terminal tests drive the wizard through it. */
export const hasTmux = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
