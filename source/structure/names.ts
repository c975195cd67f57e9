import crypto from 'node:crypto';

/** PostgreSQL truncates identifiers to NAMEDATALEN-1 = 63 bytes (not characters). */
export const MAX_IDENT_BYTES = 63;

export function md5hex(s: string): string {
  return crypto.createHash('md5').update(s, 'utf8').digest('hex');
}

/** Cuts `s` to at most `bytes` UTF-8 bytes without splitting a character. */
export function cutBytes(s: string, bytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= bytes) return s;
  let out = '';
  let n = 0;
  for (const ch of s) {
    const b = Buffer.byteLength(ch, 'utf8');
    if (n + b > bytes) break;
    out += ch;
    n += b;
  }
  return out;
}

/**
 * A name that fits in 63 bytes: unchanged when it fits, else cut and suffixed with `_` + 8 hex digits of md5 of the
 * full name, so two long names that share a prefix stay distinct. The auto-partition trigger function (PL/pgSQL,
 * source/structure/autopartition.ts) computes exactly the same thing: keep both in step.
 */
export function fitName(name: string): string {
  if (Buffer.byteLength(name, 'utf8') <= MAX_IDENT_BYTES) return name;
  return `${cutBytes(name, MAX_IDENT_BYTES - 9)}_${md5hex(name).slice(0, 8)}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The part of a LIST partition name that stands for a value: a uuid becomes its 32 hex digits; anything else is
 * lower-cased with every run of other characters turned into `_`. When that loses information (upper case, spaces,
 * punctuation), 6 hex digits of md5 of the raw value are appended so that 'A' and 'a' never share a partition name.
 * Mirrored in PL/pgSQL by the auto-partition function.
 */
export function sanitizeValue(value: string): string {
  if (UUID_RE.test(value)) return value.toLowerCase().replace(/-/g, '');
  let s = value.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  if (s !== value) s = `${s ? s + '_' : ''}${md5hex(value).slice(0, 6)}`;
  return s;
}

/** `<base>_p_<sanitized value>`, fitted to 63 bytes. */
export function listPartitionName(base: string, value: string): string {
  return fitName(`${base}_p_${sanitizeValue(value)}`);
}

export function defaultPartitionName(base: string): string {
  return fitName(`${base}_default`);
}

/**
 * Name of an index or constraint on the new table: `<source name>_p` (fitted). The new table lives next to the source
 * in the same schema, and index names (and so PK/unique constraint names) are unique per schema; the swap renames
 * these back to the source's names from the artifact's mapping.
 */
export function newObjectName(sourceName: string): string {
  return fitName(`${sourceName}_p`);
}
