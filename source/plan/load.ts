import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { z } from 'zod';
import { PlanSchema, type Plan, type TablePlan } from './schema.js';
import { parseQualified } from '../db/quote.js';
import { UserError } from '../engine/errors.js';

export interface LoadedPlan {
  readonly plan: Plan;
  readonly path: string;
  readonly dir: string;
  readonly checksum: string;
  readonly tables: TablePlan[];
}

function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) {
    if (typeof k === 'number') out += `[${k}]`;
    else out += out ? `.${String(k)}` : String(k);
  }
  return out || 'plan';
}

const TYPE_WORDS: Record<string, string> = {
  int: 'a whole number', number: 'a number', string: 'a string', object: 'an object', array: 'an array', boolean: 'true or false',
};

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? v.toString() : `a ${typeof v}`;
}

/** One line per problem: `partition[0].interval: expected one of "1 day", …, got "monthly"`. */
export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => {
    const where = formatPath(i.path);
    const input = (i as { input?: unknown }).input;
    switch (i.code) {
      case 'invalid_value': {
        const values = (i as { values: unknown[] }).values;
        const list = values.map((v) => JSON.stringify(v)).join(', ');
        return `${where}: expected ${values.length === 1 ? list : `one of ${list}`}, got ${describe(input)}`;
      }
      case 'invalid_type':
        return `${where}: expected ${TYPE_WORDS[(i as { expected: string }).expected] ?? (i as { expected: string }).expected}, got ${describe(input)}`;
      case 'unrecognized_keys':
        return `${where}: unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => JSON.stringify(k)).join(', ')} (check the spelling; see plan.schema.json)`;
      case 'too_small':
      case 'too_big': {
        const b = i as unknown as { origin: string; minimum?: number | bigint; maximum?: number | bigint; inclusive?: boolean };
        if (b.origin === 'number') {
          const bound = i.code === 'too_small' ? `${b.inclusive ? '≥' : '>'} ${b.minimum}` : `${b.inclusive ? '≤' : '<'} ${b.maximum}`;
          return `${where}: expected a number ${bound}, got ${describe(input)}`;
        }
        return `${where}: ${i.message}${input !== undefined ? `, got ${describe(input)}` : ''}`;
      }
      default:
        return `${where}: ${i.message}${input !== undefined && i.code !== 'custom' ? `, got ${describe(input)}` : ''}`;
    }
  });
}

/**
 * The YAML parser (72 modules, ~0.035 s of CPU) is loaded only for a YAML plan: every pgshift process pays its
 * start on the database host's cores, beside the application (bench:cutover found a process start among the
 * application's longest transactions), and most plans are JSON.
 */
function parseYaml(text: string): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml.parse(text);
}

export function parsePlanText(text: string, file: string): Plan {
  let raw: unknown;
  const ext = path.extname(file).toLowerCase();
  try {
    raw = ext === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new UserError(`${file}: not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`, 'fix the syntax; nothing was changed in the database', 2);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UserError(`${file}: expected an object at the top of the plan, got ${describe(raw)}`, 'see examples/seed-plan/plan.json', 2);
  }
  const r = PlanSchema.safeParse(raw, { reportInput: true });
  if (!r.success) {
    const lines = formatIssues(r.error);
    throw new UserError(`${file}: the plan is not valid:\n  ${lines.join('\n  ')}`, 'fix the plan file; nothing was changed in the database', 2);
  }
  return r.data;
}

export function resolveTables(plan: Plan): TablePlan[] {
  const seen = new Set<string>();
  return plan.partition.map((p, i) => {
    let q;
    try {
      q = parseQualified(p.source);
    } catch (e) {
      throw new UserError(`partition[${i}].source: ${(e as Error).message}`, 'use "table" or "schema.table"', 2);
    }
    const key = `${q.schema}.${q.name}`;
    if (seen.has(key)) throw new UserError(`partition[${i}].source: ${key} is listed twice`, 'keep one entry per table', 2);
    seen.add(key);
    const targetName = p.target ?? `${q.name}_partitioned`;
    if (targetName.length > 63) throw new UserError(`partition[${i}].target: "${targetName}" is longer than 63 characters`, 'set a shorter "target"', 2);
    const oldName = `${q.name}_old`.slice(0, 63);
    return { ...p, schema: q.schema, table: q.name, targetName, oldName };
  });
}

export function loadPlan(file: string): LoadedPlan {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read the plan file ${file}: ${code === 'ENOENT' ? 'no such file' : code ?? String(e)}`, 'pass --plan with the path of a .json or .yaml plan (see examples/seed-plan/plan.json)', 2);
  }
  const plan = parsePlanText(text, file);
  const dir = path.dirname(abs);
  const tables = resolveTables(plan);
  for (const [phase, files] of Object.entries(plan.sql)) {
    files.forEach((f, i) => {
      if (!fs.existsSync(path.resolve(dir, f))) {
        throw new UserError(`sql.${phase}[${i}]: file not found: ${f} (relative to ${path.relative(process.cwd(), dir) || '.'})`, 'fix the path in the plan; nothing was changed in the database', 2);
      }
    });
  }
  const checksum = crypto.createHash('sha256').update(text).digest('hex');
  return { plan, path: abs, dir, checksum, tables };
}

export function planJsonSchema(): unknown {
  return z.toJSONSchema(PlanSchema, { io: 'input' });
}
