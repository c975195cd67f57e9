/** Name helpers shared with phase 2 (its `<source name>_p` rule must match what the swap looks for). */
export { fitName, md5hex } from '../structure/names.js';
