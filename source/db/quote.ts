/**
 * The one place identifiers are quoted. Every table, column, index, role or schema name that reaches SQL text
 * goes through `ident` / `qname`; values go as query parameters. `literal` exists only for the few spots where
 * PostgreSQL takes no parameters (DDL: partition bounds, defaults, COMMENT text) and quotes exactly like libpq.
 */
export function ident(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new Error(`empty SQL identifier`);
  if (name.includes('\0')) throw new Error(`SQL identifier contains a NUL byte: ${JSON.stringify(name)}`);
  return '"' + name.replace(/"/g, '""') + '"';
}

/** schema-qualified name, both parts quoted */
export function qname(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

/** A quoted SQL literal (E'' form when backslashes are present), for DDL where parameters are impossible. */
export function literal(value: string | number | boolean | null): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value.includes('\0')) throw new Error('SQL literal contains a NUL byte');
  const hasBackslash = value.includes('\\');
  const body = value.replace(/'/g, "''").replace(/\\/g, '\\\\');
  return (hasBackslash ? " E'" : "'") + body + "'";
}

/**
 * A function body as a dollar-quoted literal: `$pgshift$…$pgshift$`, the tag lengthened (`$pgshift_$`, …) until the
 * body does not contain it, so quoted identifiers inside the body can never close the quote.
 */
export function dollarQuote(body: string): string {
  let tag = '$pgshift$';
  while (body.includes(tag)) tag = tag.replace(/\$$/, '_$');
  return `${tag}${body}\n${tag}`;
}

/** Splits "schema.table" (either part may be quoted) into its parts; a bare name gets `defaultSchema`. */
export function parseQualified(name: string, defaultSchema = 'public'): { schema: string; name: string } {
  const parts: string[] = [];
  let i = 0;
  const s = name.trim();
  while (i < s.length) {
    if (s[i] === '"') {
      let j = i + 1;
      let out = '';
      for (;;) {
        if (j >= s.length) throw new Error(`unterminated quoted identifier in ${JSON.stringify(name)}`);
        if (s[j] === '"') {
          if (s[j + 1] === '"') { out += '"'; j += 2; continue; }
          break;
        }
        out += s[j++];
      }
      parts.push(out);
      i = j + 1;
    } else {
      let j = i;
      while (j < s.length && s[j] !== '.') j++;
      parts.push(s.slice(i, j));
      i = j;
    }
    if (i < s.length) {
      if (s[i] !== '.') throw new Error(`unexpected character after identifier in ${JSON.stringify(name)}`);
      i++;
    }
  }
  if (parts.length === 1 && parts[0]) return { schema: defaultSchema, name: parts[0] };
  if (parts.length === 2 && parts[0] && parts[1]) return { schema: parts[0], name: parts[1] };
  throw new Error(`expected "table" or "schema.table", got ${JSON.stringify(name)}`);
}

/** A display form, schema.table, quoting only where needed. */
export function displayName(schema: string, name: string): string {
  const q = (x: string) => (/^[a-z_][a-z0-9_$]*$/.test(x) ? x : ident(x));
  return `${q(schema)}.${q(name)}`;
}
