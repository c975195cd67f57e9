import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import type { PhaseId, Step } from '../engine/types.js';

/**
 * Steps that apply the plan's SQL files (sql.dependencies), each file in one lock-timed transaction (db.tx: SET LOCAL
 * lock_timeout, retried on 55P03), as the file's text: the statements are the operator's, shown in full in plan mode.
 * Id `sql:<group>:<file>`; the journal's step state keeps a file from running twice.
 */
export function planSqlFileSteps(group: string, files: readonly string[], planDir: string, phase: PhaseId): Step[] {
  return files.map((file): Step => {
    const abs = path.resolve(planDir, file);
    return {
      id: `sql:${group}:${file}`,
      phase,
      title: `Apply ${file}`,
      async preview() {
        return [`-- ${file}`, fs.readFileSync(abs, 'utf8').trim()];
      },
      async run(ctx) {
        const text = fs.readFileSync(abs, 'utf8');
        const sha = crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
        await ctx.db.tx(async (tx) => {
          await tx.query(text);
        }, {
          stepId: ctx.stepId, signal: ctx.signal,
          onRetry: (i) => ctx.log(`lock not granted (${i.error}); retry ${i.attempt}/${i.attempts} in ${i.waitMs} ms`, 'warn'),
        });
        return { status: 'done', summary: `applied ${file} in one transaction (sha256 ${sha}…)`, data: { file, sha256: sha } };
      },
    };
  });
}
