import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (where package.json named pgshift is), from source/ or dist/source/. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = path.join(dir, 'package.json');
    if (fs.existsSync(p)) {
      try {
        if ((JSON.parse(fs.readFileSync(p, 'utf8')) as { name?: string }).name === 'pgshift') return dir;
      } catch {
        /* keep looking */
      }
    }
    dir = path.dirname(dir);
  }
  throw new Error('cannot find the pgshift package root');
}

export function examplePlanPath(): string {
  return path.join(packageRoot(), 'examples', 'seed-plan', 'plan.json');
}
