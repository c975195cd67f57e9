/**
 * What a plan SQL file will do to the database, read from PostgreSQL's own parse tree (libpg-query: the server's
 * parser compiled to WebAssembly), not from a hand-written lexer.
 *
 * For every statement: its line, the tables it touches and the lock each one takes, whether it rewrites a table, and
 * findings modelled on squawk's rules (ACCESS EXCLUSIVE rewrites, an index built without CONCURRENTLY, NOT NULL set
 * without a validated CHECK, constraints added without NOT VALID, renames and drops that break running clients).
 * pgshift runs the whole file in one transaction, so every lock is held until the file commits: the summary names,
 * per table, the strongest lock the file takes.
 *
 * What pgshift refuses to run is reported as problems with their line: psql meta-commands (the server does not know
 * them), top-level transaction control (pgshift wraps the file in its own transaction), statements that cannot run in
 * a transaction block (CREATE INDEX CONCURRENTLY, VACUUM, …), and SQL the parser rejects.
 */

/** PostgreSQL's table lock modes, weakest first (the order of their conflicts). */
export const LOCK_MODES = [
  'ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE',
] as const;
export type LockMode = (typeof LOCK_MODES)[number];

/** What a lock mode blocks, in the words an operator needs. */
export function lockEffect(mode: LockMode): string {
  switch (mode) {
    case 'ACCESS EXCLUSIVE': return 'blocks reads and writes';
    case 'EXCLUSIVE': return 'blocks writes, reads go on';
    case 'SHARE ROW EXCLUSIVE':
    case 'SHARE': return 'blocks writes, reads go on';
    case 'SHARE UPDATE EXCLUSIVE': return 'reads and writes go on (blocks DDL and VACUUM)';
    default: return 'reads and writes go on';
  }
}

const stronger = (a: LockMode, b: LockMode): LockMode => (LOCK_MODES.indexOf(a) >= LOCK_MODES.indexOf(b) ? a : b);

export interface TableLock {
  /** as written in the file: schema.table or table */
  readonly table: string;
  readonly lock: LockMode;
  /** created earlier in the same file: nothing else uses it yet, its locks block nobody */
  readonly createdInFile: boolean;
}

export interface Finding {
  /** squawk's rule name where one exists */
  readonly rule: string;
  readonly message: string;
}

export interface StatementAnalysis {
  /** 1-based line of the statement's first token */
  readonly line: number;
  /** the statement's first line, trimmed (at most 120 characters) */
  readonly text: string;
  /** e.g. ALTER TABLE, CREATE INDEX, CREATE POLICY */
  readonly kind: string;
  readonly tables: readonly TableLock[];
  /** rewrites a table that existed before the file (every row written again under ACCESS EXCLUSIVE) */
  readonly rewrites: boolean;
  readonly findings: readonly Finding[];
}

export interface SqlFileProblem { readonly line: number; readonly text: string; readonly reason: string }

export interface SqlFileAnalysis {
  readonly statements: readonly StatementAnalysis[];
  /** what pgshift refuses to run (empty: the file can run) */
  readonly problems: readonly SqlFileProblem[];
  /** per table that existed before the file, the strongest lock the file takes (held until the file commits) */
  readonly locks: readonly TableLock[];
}

// ---------------------------------------------------------------------------------------------------------------
// The parse tree, read loosely: libpg-query returns JSON where every node is { NodeType: { …fields } }.

type J = { readonly [k: string]: unknown };
const obj = (x: unknown): J | undefined => (x !== null && typeof x === 'object' && !Array.isArray(x) ? (x as J) : undefined);
const arr = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);
const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
/** { Tag: body } → [Tag, body] */
function unwrap(node: unknown): [string, J] | undefined {
  const o = obj(node);
  if (!o) return undefined;
  const [k] = Object.keys(o);
  const body = k === undefined ? undefined : obj(o[k]);
  return k !== undefined && body ? [k, body] : undefined;
}
const field = (node: unknown, tag: string): J | undefined => {
  const u = unwrap(node);
  return u && u[0] === tag ? u[1] : undefined;
};

function rangeVarName(rv: unknown): string | undefined {
  const r = obj(rv);
  const rel = str(r?.relname);
  if (!rel) return undefined;
  const schema = str(r?.schemaname);
  return schema ? `${schema}.${rel}` : rel;
}

/** Every RangeVar below a node (tables and views a query reads), in order of appearance. */
function rangeVars(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) {
    for (const x of node) rangeVars(x, out);
    return out;
  }
  const o = obj(node);
  if (!o) return out;
  for (const [k, v] of Object.entries(o)) {
    if (k === 'RangeVar') {
      const n = rangeVarName(v);
      if (n && !out.includes(n)) out.push(n);
    } else if (k === 'withClause') {
      // CTE names are not tables; their bodies still read tables
      rangeVars(v, out);
    } else if (typeof v === 'object') rangeVars(v, out);
  }
  return out;
}

/** Names of the objects a DropStmt/CommentStmt/RenameStmt names as a list of String nodes: schema.name */
function dottedName(node: unknown): string | undefined {
  const list = field(node, 'List');
  const items = list ? arr(list.items) : [node];
  const parts = items.map((i) => str(field(i, 'String')?.sval)).filter((s): s is string => !!s);
  return parts.length ? parts.join('.') : undefined;
}

// ---------------------------------------------------------------------------------------------------------------

let loaded: Promise<void> | null = null;
let parser: typeof import('libpg-query') | null = null;
/**
 * Loads the WebAssembly parser once (about 0.2 s), on first use only: importing it costs ~60 ms of a core, which every
 * pgshift process paid at start (a rollback, a `pgshift status`) though only plan SQL files need it. On a host shared
 * with the database, a process start's CPU was where the application's longest transaction fell (bench:cutover).
 */
export function loadParser(): Promise<void> {
  loaded ??= import('libpg-query').then(async (m) => {
    await m.loadModule();
    parser = m;
  });
  return loaded;
}

interface ParsedStatement { readonly stmt: unknown; readonly line: number; readonly text: string }

function lineAt(text: string, charOffset: number): number {
  let n = 1;
  for (let i = 0; i < charOffset && i < text.length; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** Skips blanks and leading comments (outside any literal: a statement's text starts right after the previous ';'). */
function firstTokenOffset(s: string): number {
  let i = 0;
  for (;;) {
    while (i < s.length && /\s/.test(s[i]!)) i++;
    if (s.startsWith('--', i)) {
      const e = s.indexOf('\n', i);
      i = e < 0 ? s.length : e + 1;
    } else if (s.startsWith('/*', i)) {
      let depth = 1;
      i += 2;
      while (i < s.length && depth > 0) {
        if (s.startsWith('/*', i)) { depth++; i += 2; } else if (s.startsWith('*/', i)) { depth--; i += 2; } else i++;
      }
    } else return i;
  }
}

const META = 'psql meta-command: pgshift sends the file to the server, which does not understand psql commands';

/**
 * Parses the file. A backslash the parser stops at is a psql meta-command: it is reported with its line, blanked
 * (to the end of its line, as psql reads it) and the file parsed again, so every meta-command is named at once.
 */
function parseFile(text: string): { statements: ParsedStatement[]; problems: SqlFileProblem[] } {
  const problems: SqlFileProblem[] = [];
  const lines = text.split('\n');
  let current = text;
  for (let guard = 0; guard < 10_000; guard++) {
    let tree: unknown;
    try {
      tree = parser!.parseSync(current);
    } catch (e) {
      const pos = (e as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition;
      const line = pos === undefined ? 1 : lineAt(current, pos);
      if (pos !== undefined && current[pos] === '\\') {
        problems.push({ line, text: (lines[line - 1] ?? '').trim(), reason: META });
        const end = current.indexOf('\n', pos);
        const stop = end < 0 ? current.length : end;
        current = current.slice(0, pos) + ' '.repeat(stop - pos) + current.slice(stop);
        continue;
      }
      problems.push({ line, text: (lines[line - 1] ?? '').trim(), reason: `the PostgreSQL parser rejects it: ${(e as Error).message}` });
      return { statements: [], problems };
    }
    // statement locations are byte offsets into the UTF-8 text
    const bytes = Buffer.from(current, 'utf8');
    const statements: ParsedStatement[] = [];
    for (const raw of arr(obj(tree)?.stmts)) {
      const s = obj(raw);
      const loc = typeof s?.stmt_location === 'number' ? s.stmt_location : 0;
      const len = typeof s?.stmt_len === 'number' && s.stmt_len > 0 ? s.stmt_len : bytes.length - loc;
      const before = bytes.subarray(0, loc).toString('utf8');
      const body = bytes.subarray(loc, loc + len).toString('utf8');
      const skip = firstTokenOffset(body);
      const start = before.length + skip;
      const line = lineAt(current, start);
      const first = body.slice(skip).split('\n')[0]!.trim();
      statements.push({ stmt: s?.stmt, line, text: first.length > 120 ? `${first.slice(0, 117)}…` : first });
    }
    return { statements, problems };
  }
  return { statements: [], problems };
}

// ---------------------------------------------------------------------------------------------------------------
// Lock levels and findings, per statement

const NO_TX = (what: string) => `${what} cannot run inside a transaction block`;
const TX_CONTROL = (what: string) => `transaction control (${what}) at the top level: pgshift runs the whole file in one transaction itself`;

const TX_KINDS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'BEGIN', TRANS_STMT_START: 'START TRANSACTION', TRANS_STMT_COMMIT: 'COMMIT', TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_PREPARE: 'PREPARE TRANSACTION', TRANS_STMT_COMMIT_PREPARED: 'COMMIT PREPARED', TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK PREPARED',
};

/** Defaults that PostgreSQL 11+ stores once instead of rewriting the table: constants, casts of constants, now(). */
function isNonVolatileDefault(expr: unknown): boolean {
  const u = unwrap(expr);
  if (!u) return true;
  const [tag, body] = u;
  if (tag === 'A_Const' || tag === 'SQLValueFunction') return true;
  if (tag === 'TypeCast') return isNonVolatileDefault(body.arg);
  if (tag === 'FuncCall') {
    const name = arr(body.funcname).map((n) => str(field(n, 'String')?.sval)).join('.');
    return ['now', 'pg_catalog.now', 'statement_timestamp', 'transaction_timestamp', 'current_user'].includes(name) && arr(body.args).length === 0;
  }
  return false;
}

const SERIAL = new Set(['serial', 'serial4', 'bigserial', 'serial8', 'smallserial', 'serial2']);

/** A CHECK (col IS NOT NULL) constraint: which column, if any. */
function notNullCheckColumn(constraint: J): string | undefined {
  if (str(constraint.contype) !== 'CONSTR_CHECK') return undefined;
  const nt = field(constraint.raw_expr, 'NullTest');
  if (!nt || str(nt.nulltesttype) !== 'IS_NOT_NULL') return undefined;
  const ref = field(nt.arg, 'ColumnRef');
  const names = arr(ref?.fields).map((f) => str(field(f, 'String')?.sval));
  return names.length === 1 ? names[0] : undefined;
}

class FileState {
  /** tables created earlier in the file */
  readonly created = new Set<string>();
  /** "table.column" with a validated CHECK (column IS NOT NULL) added earlier in the file */
  readonly validatedNotNull = new Set<string>();
  /** NOT VALID CHECK (column IS NOT NULL) constraints added earlier: constraint name → table.column */
  readonly pendingNotNull = new Map<string, string>();
}

interface Builder {
  kind: string;
  tables: Map<string, LockMode>;
  rewrites: boolean;
  findings: Finding[];
  problems: string[];
}

function lockOn(b: Builder, table: string | undefined, mode: LockMode): void {
  if (!table) return;
  const had = b.tables.get(table);
  b.tables.set(table, had ? stronger(had, mode) : mode);
}

function reads(b: Builder, node: unknown, except: readonly (string | undefined)[] = []): void {
  for (const t of rangeVars(node)) if (!except.includes(t)) lockOn(b, t, 'ACCESS SHARE');
}

function analyzeAlterTable(b: Builder, s: J, st: FileState): void {
  const objtype = str(s.objtype);
  const table = rangeVarName(s.relation);
  b.kind = objtype === 'OBJECT_INDEX' ? 'ALTER INDEX' : objtype === 'OBJECT_VIEW' ? 'ALTER VIEW' : objtype === 'OBJECT_MATVIEW' ? 'ALTER MATERIALIZED VIEW' : 'ALTER TABLE';
  const isNew = !!table && st.created.has(table);
  const warn = (rule: string, message: string) => {
    if (!isNew) b.findings.push({ rule, message });
  };
  for (const c of arr(s.cmds)) {
    const cmd = field(c, 'AlterTableCmd');
    if (!cmd) continue;
    const sub = str(cmd.subtype) ?? '';
    const col = str(cmd.name);
    const def = obj(cmd.def);
    switch (sub) {
      case 'AT_AddColumn': {
        lockOn(b, table, 'ACCESS EXCLUSIVE');
        const cd = field(def, 'ColumnDef');
        const cons = arr(cd?.constraints).map((x) => field(x, 'Constraint')).filter((x): x is J => !!x);
        const dflt = cons.find((x) => str(x.contype) === 'CONSTR_DEFAULT');
        const typ = arr(obj(cd?.typeName)?.names).map((n) => str(field(n, 'String')?.sval)).at(-1) ?? '';
        const notNull = cons.some((x) => str(x.contype) === 'CONSTR_NOTNULL');
        if (SERIAL.has(typ) || cons.some((x) => str(x.contype) === 'CONSTR_IDENTITY' || str(x.contype) === 'CONSTR_GENERATED')) {
          if (!isNew) b.rewrites = true;
          warn('adding-serial-primary-key-field', `column ${str(cd?.colname)} (${typ || 'identity/generated'}): every row gets a value, the table ${table} is rewritten under ACCESS EXCLUSIVE`);
        } else if (dflt && !isNonVolatileDefault(dflt.raw_expr)) {
          if (!isNew) b.rewrites = true;
          warn('adding-field-with-default', `column ${str(cd?.colname)} with a volatile DEFAULT: the table ${table} is rewritten under ACCESS EXCLUSIVE (a constant default is not)`);
        }
        if (notNull && !dflt) warn('adding-not-nullable-field', `column ${str(cd?.colname)} NOT NULL without a DEFAULT fails on a table that has rows`);
        for (const x of cons) if (str(x.contype) === 'CONSTR_FOREIGN') lockOn(b, rangeVarName(x.pktable), 'SHARE ROW EXCLUSIVE');
        break;
      }
      case 'AT_AlterColumnType':
        lockOn(b, table, 'ACCESS EXCLUSIVE');
        if (!isNew) b.rewrites = true;
        warn('changing-column-type', `changing the type of ${col} rewrites ${table} and its indexes under ACCESS EXCLUSIVE (unless the types are binary coercible, e.g. widening a varchar)`);
        break;
      case 'AT_SetNotNull': {
        lockOn(b, table, 'ACCESS EXCLUSIVE');
        const key = `${table}.${col}`;
        if (!st.validatedNotNull.has(key)) {
          warn('setting-not-nullable-field', `SET NOT NULL on ${col} scans all of ${table} under ACCESS EXCLUSIVE: add CHECK (${col} IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL uses it and does not scan`);
        }
        break;
      }
      case 'AT_AddConstraint': {
        const con = field(def, 'Constraint');
        const type = str(con?.contype);
        const notValid = !!con?.skip_validation;
        if (type === 'CONSTR_FOREIGN') {
          lockOn(b, table, 'SHARE ROW EXCLUSIVE');
          lockOn(b, rangeVarName(con?.pktable), 'SHARE ROW EXCLUSIVE');
          if (!notValid) warn('adding-foreign-key-constraint', `foreign key ${str(con?.conname) ?? ''} scans ${table} while holding SHARE ROW EXCLUSIVE on it and on ${rangeVarName(con?.pktable)} (writes to both blocked): add it NOT VALID, then VALIDATE CONSTRAINT`);
        } else if (type === 'CONSTR_CHECK') {
          lockOn(b, table, 'ACCESS EXCLUSIVE');
          const c2 = con ? notNullCheckColumn(con) : undefined;
          if (c2 && !notValid) st.validatedNotNull.add(`${table}.${c2}`);
          if (c2 && notValid && con?.conname) st.pendingNotNull.set(`${table}:${str(con.conname)}`, `${table}.${c2}`);
          if (!notValid) warn('constraint-missing-not-valid', `CHECK ${str(con?.conname) ?? ''} scans all of ${table} under ACCESS EXCLUSIVE: add it NOT VALID, then VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE)`);
        } else if (type === 'CONSTR_PRIMARY' || type === 'CONSTR_UNIQUE' || type === 'CONSTR_EXCLUSION') {
          lockOn(b, table, 'ACCESS EXCLUSIVE');
          if (!str(con?.indexname)) {
            warn(type === 'CONSTR_PRIMARY' ? 'adding-primary-key-constraint' : 'disallowed-unique-constraint',
              `${type === 'CONSTR_PRIMARY' ? 'PRIMARY KEY' : type === 'CONSTR_UNIQUE' ? 'UNIQUE' : 'EXCLUDE'} builds its index on ${table} under ACCESS EXCLUSIVE: build a unique index CONCURRENTLY first, then ADD … USING INDEX`);
          }
        } else lockOn(b, table, 'ACCESS EXCLUSIVE');
        break;
      }
      case 'AT_ValidateConstraint': {
        lockOn(b, table, 'SHARE UPDATE EXCLUSIVE');
        const pending = st.pendingNotNull.get(`${table}:${col}`);
        if (pending) st.validatedNotNull.add(pending);
        break;
      }
      case 'AT_AttachPartition':
        lockOn(b, table, 'SHARE UPDATE EXCLUSIVE');
        lockOn(b, rangeVarName(field(def, 'PartitionCmd')?.name), 'ACCESS EXCLUSIVE');
        break;
      case 'AT_DetachPartition': {
        const pc = field(def, 'PartitionCmd');
        if (pc?.concurrent) b.problems.push(NO_TX('DETACH PARTITION … CONCURRENTLY'));
        lockOn(b, table, pc?.concurrent ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE');
        lockOn(b, rangeVarName(pc?.name), 'ACCESS EXCLUSIVE');
        break;
      }
      case 'AT_SetStatistics': case 'AT_SetOptions': case 'AT_ResetOptions': case 'AT_ClusterOn': case 'AT_DropCluster':
      case 'AT_SetRelOptions': case 'AT_ResetRelOptions': case 'AT_ReplaceRelOptions':
        lockOn(b, table, 'SHARE UPDATE EXCLUSIVE');
        break;
      case 'AT_EnableTrig': case 'AT_EnableAlwaysTrig': case 'AT_EnableReplicaTrig': case 'AT_DisableTrig':
      case 'AT_EnableTrigAll': case 'AT_DisableTrigAll': case 'AT_EnableTrigUser': case 'AT_DisableTrigUser':
        lockOn(b, table, 'SHARE ROW EXCLUSIVE');
        break;
      case 'AT_SetTableSpace': case 'AT_SetLogged': case 'AT_SetUnLogged': case 'AT_SetAccessMethod':
        lockOn(b, table, 'ACCESS EXCLUSIVE');
        if (!isNew) b.rewrites = true;
        warn('table-rewrite', `${sub.replace(/^AT_/, '')} rewrites ${table} under ACCESS EXCLUSIVE`);
        break;
      case 'AT_DropColumn':
        lockOn(b, table, 'ACCESS EXCLUSIVE');
        warn('ban-drop-column', `dropping column ${col} of ${table}: running clients that select it fail, and its data is gone`);
        break;
      default:
        lockOn(b, table, 'ACCESS EXCLUSIVE');
    }
  }
}

function analyzeStatement(stmt: unknown, st: FileState): Builder {
  const b: Builder = { kind: '', tables: new Map(), rewrites: false, findings: [], problems: [] };
  const u = unwrap(stmt);
  if (!u) return b;
  const [tag, s] = u;
  b.kind = tag.replace(/Stmt$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
  switch (tag) {
    case 'TransactionStmt': {
      const kind = TX_KINDS[str(s.kind) ?? ''];
      if (kind) b.problems.push(TX_CONTROL(kind));
      b.kind = kind ?? (str(s.kind) ?? '').replace(/^TRANS_STMT_/, '').replace(/_/g, ' ');
      break;
    }
    case 'VacuumStmt':
      b.kind = s.is_vacuumcmd ? 'VACUUM' : 'ANALYZE';
      if (s.is_vacuumcmd) b.problems.push(NO_TX('VACUUM'));
      for (const r of arr(s.rels)) lockOn(b, rangeVarName(field(r, 'VacuumRelation')?.relation), 'SHARE UPDATE EXCLUSIVE');
      break;
    case 'CreatedbStmt': b.kind = 'CREATE DATABASE'; b.problems.push(NO_TX('CREATE DATABASE')); break;
    case 'DropdbStmt': b.kind = 'DROP DATABASE'; b.problems.push(NO_TX('DROP DATABASE')); break;
    case 'AlterSystemStmt': b.kind = 'ALTER SYSTEM'; b.problems.push(NO_TX('ALTER SYSTEM')); break;
    case 'CreateTableSpaceStmt': b.kind = 'CREATE TABLESPACE'; b.problems.push(NO_TX('CREATE TABLESPACE')); break;
    case 'DropTableSpaceStmt': b.kind = 'DROP TABLESPACE'; b.problems.push(NO_TX('DROP TABLESPACE')); break;
    case 'IndexStmt': {
      const table = rangeVarName(s.relation);
      b.kind = `CREATE ${s.unique ? 'UNIQUE ' : ''}INDEX${s.concurrent ? ' CONCURRENTLY' : ''}`;
      if (s.concurrent) {
        b.problems.push(NO_TX(b.kind));
        lockOn(b, table, 'SHARE UPDATE EXCLUSIVE');
      } else {
        lockOn(b, table, 'SHARE');
        if (table && !st.created.has(table)) {
          b.findings.push({
            rule: 'require-concurrent-index-creation',
            message: `CREATE INDEX without CONCURRENTLY blocks writes to ${table} while the index builds (and until the file commits); CONCURRENTLY cannot run in the file's transaction: build it outside pgshift, or let phase 3 build it on the new table`,
          });
        }
      }
      break;
    }
    case 'ReindexStmt': {
      const concurrently = arr(s.params).some((p) => str(field(p, 'DefElem')?.defname) === 'concurrently');
      b.kind = `REINDEX${concurrently ? ' CONCURRENTLY' : ''}`;
      if (concurrently) b.problems.push(NO_TX('REINDEX CONCURRENTLY'));
      lockOn(b, rangeVarName(s.relation), concurrently ? 'SHARE UPDATE EXCLUSIVE' : 'SHARE');
      break;
    }
    case 'CreateStmt': {
      const table = rangeVarName(s.relation);
      b.kind = 'CREATE TABLE';
      if (table) st.created.add(table);
      const parent = arr(s.inhRelations).map((r) => rangeVarName(field(r, 'RangeVar'))).find((x) => !!x);
      if (s.partbound && parent) {
        b.kind = 'CREATE TABLE … PARTITION OF';
        lockOn(b, parent, 'ACCESS EXCLUSIVE');
        if (!st.created.has(parent)) b.findings.push({ rule: 'partition-of-locks-parent', message: `CREATE TABLE … PARTITION OF takes ACCESS EXCLUSIVE on ${parent}: on a live table create the table standalone and ATTACH PARTITION (SHARE UPDATE EXCLUSIVE)` });
      } else if (parent) lockOn(b, parent, 'SHARE UPDATE EXCLUSIVE');
      for (const e of arr(s.tableElts)) {
        const like = field(e, 'TableLikeClause');
        if (like) lockOn(b, rangeVarName(like.relation), 'ACCESS SHARE');
        const cd = field(e, 'ColumnDef');
        for (const c of [...arr(cd?.constraints), e]) {
          const con = field(c, 'Constraint');
          if (con && str(con.contype) === 'CONSTR_FOREIGN') lockOn(b, rangeVarName(con.pktable), 'SHARE ROW EXCLUSIVE');
        }
      }
      for (const c of arr(s.constraints)) {
        const con = field(c, 'Constraint');
        if (con && str(con.contype) === 'CONSTR_FOREIGN') lockOn(b, rangeVarName(con.pktable), 'SHARE ROW EXCLUSIVE');
      }
      if (table) b.tables.set(table, 'ACCESS EXCLUSIVE');
      break;
    }
    case 'CreateTableAsStmt': {
      const into = obj(s.into);
      const table = rangeVarName(into?.rel);
      b.kind = str(s.objtype) === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS';
      reads(b, s.query);
      if (table) {
        st.created.add(table);
        b.tables.set(table, 'ACCESS EXCLUSIVE');
      }
      break;
    }
    case 'ViewStmt': {
      const view = rangeVarName(s.view);
      b.kind = s.replace ? 'CREATE OR REPLACE VIEW' : 'CREATE VIEW';
      reads(b, s.query, [view]);
      if (view) {
        if (s.replace && !st.created.has(view)) lockOn(b, view, 'ACCESS EXCLUSIVE');
        else {
          st.created.add(view);
          b.tables.set(view, 'ACCESS EXCLUSIVE');
        }
      }
      break;
    }
    case 'RefreshMatViewStmt':
      b.kind = `REFRESH MATERIALIZED VIEW${s.concurrent ? ' CONCURRENTLY' : ''}`;
      lockOn(b, rangeVarName(s.relation), s.concurrent ? 'EXCLUSIVE' : 'ACCESS EXCLUSIVE');
      break;
    case 'AlterTableStmt':
      analyzeAlterTable(b, s, st);
      break;
    case 'RenameStmt': {
      const type = str(s.renameType) ?? '';
      const table = rangeVarName(s.relation);
      b.kind = `ALTER … RENAME (${type.replace(/^OBJECT_/, '').toLowerCase()})`;
      lockOn(b, table, 'ACCESS EXCLUSIVE');
      if (table && !st.created.has(table)) {
        if (type === 'OBJECT_TABLE') b.findings.push({ rule: 'renaming-table', message: `renaming ${table} to ${str(s.newname)} breaks every running client that names it` });
        if (type === 'OBJECT_COLUMN') b.findings.push({ rule: 'renaming-column', message: `renaming column ${str(s.subname)} of ${table} breaks every running client that names it` });
      }
      break;
    }
    case 'DropStmt': {
      const type = str(s.removeType) ?? '';
      b.kind = `DROP ${type.replace(/^OBJECT_/, '').replace(/_/g, ' ')}${s.concurrent ? ' CONCURRENTLY' : ''}`;
      if (s.concurrent) b.problems.push(NO_TX(b.kind));
      const names = arr(s.objects).map(dottedName).filter((n): n is string => !!n);
      if (['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_INDEX', 'OBJECT_FOREIGN_TABLE'].includes(type)) {
        for (const n of names) lockOn(b, n, s.concurrent ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE');
        if (type === 'OBJECT_TABLE') {
          for (const n of names) if (!st.created.has(n)) b.findings.push({ rule: 'ban-drop-table', message: `DROP TABLE ${n}: its rows are gone; pgshift's own drops are confirmed and come after a verified backup, this one is not` });
        }
      } else if (['OBJECT_TRIGGER', 'OBJECT_POLICY', 'OBJECT_RULE'].includes(type)) {
        // DROP TRIGGER t ON table: the last name is the object, the rest the table
        for (const n of names) lockOn(b, n.split('.').slice(0, -1).join('.') || undefined, 'ACCESS EXCLUSIVE');
      }
      break;
    }
    case 'TruncateStmt':
      for (const r of arr(s.relations)) {
        const t = rangeVarName(field(r, 'RangeVar'));
        lockOn(b, t, 'ACCESS EXCLUSIVE');
        if (t && !st.created.has(t)) b.findings.push({ rule: 'ban-truncate', message: `TRUNCATE ${t}: every row is gone` });
      }
      break;
    case 'LockStmt': {
      const modes: Record<number, LockMode> = { 1: 'ACCESS SHARE', 2: 'ROW SHARE', 3: 'ROW EXCLUSIVE', 4: 'SHARE UPDATE EXCLUSIVE', 5: 'SHARE', 6: 'SHARE ROW EXCLUSIVE', 7: 'EXCLUSIVE', 8: 'ACCESS EXCLUSIVE' };
      const mode = modes[typeof s.mode === 'number' ? s.mode : 8] ?? 'ACCESS EXCLUSIVE';
      for (const r of arr(s.relations)) lockOn(b, rangeVarName(field(r, 'RangeVar')), mode);
      break;
    }
    case 'CreateTrigStmt':
      lockOn(b, rangeVarName(s.relation), 'SHARE ROW EXCLUSIVE');
      break;
    case 'CreatePolicyStmt':
    case 'AlterPolicyStmt':
      lockOn(b, rangeVarName(s.table), 'ACCESS EXCLUSIVE');
      reads(b, [s.qual, s.with_check], [rangeVarName(s.table)]);
      break;
    case 'CommentStmt': {
      const type = str(s.objtype) ?? '';
      b.kind = `COMMENT ON ${type.replace(/^OBJECT_/, '').replace(/_/g, ' ')}`;
      const name = dottedName(s.object);
      if (name && ['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_INDEX'].includes(type)) lockOn(b, name, 'SHARE UPDATE EXCLUSIVE');
      else if (name && type === 'OBJECT_COLUMN') lockOn(b, name.split('.').slice(0, -1).join('.'), 'SHARE UPDATE EXCLUSIVE');
      break;
    }
    case 'InsertStmt': case 'UpdateStmt': case 'DeleteStmt': case 'MergeStmt': {
      const target = rangeVarName(s.relation);
      lockOn(b, target, 'ROW EXCLUSIVE');
      reads(b, s, [target]);
      break;
    }
    case 'SelectStmt':
      reads(b, s);
      break;
    case 'ClusterStmt':
      lockOn(b, rangeVarName(s.relation), 'ACCESS EXCLUSIVE');
      if (rangeVarName(s.relation)) b.rewrites = true;
      break;
    case 'DoStmt':
      b.findings.push({ rule: 'anonymous-code-block', message: 'a DO block runs code pgshift cannot read: the tables it touches and the locks it takes are not named here' });
      break;
    case 'GrantStmt':
      b.kind = s.is_grant ? 'GRANT' : 'REVOKE';
      break;
    default:
      break;
  }
  return b;
}

/** Reads a plan SQL file through PostgreSQL's parser: statements, their tables and locks, findings, refusals. */
export async function analyzeSql(text: string): Promise<SqlFileAnalysis> {
  await loadParser();
  const { statements: parsed, problems } = parseFile(text);
  const st = new FileState();
  const statements: StatementAnalysis[] = [];
  const strongest = new Map<string, LockMode>();
  for (const p of parsed) {
    const b = analyzeStatement(p.stmt, st);
    for (const reason of b.problems) problems.push({ line: p.line, text: p.text, reason });
    const tables = [...b.tables].map(([table, lock]): TableLock => ({ table, lock, createdInFile: st.created.has(table) }));
    for (const t of tables) {
      if (t.createdInFile) continue;
      const had = strongest.get(t.table);
      strongest.set(t.table, had ? stronger(had, t.lock) : t.lock);
    }
    statements.push({ line: p.line, text: p.text, kind: b.kind, tables, rewrites: b.rewrites, findings: b.findings });
  }
  problems.sort((a, b) => a.line - b.line);
  const locks = [...strongest].map(([table, lock]) => ({ table, lock, createdInFile: false }))
    .sort((a, b) => LOCK_MODES.indexOf(b.lock) - LOCK_MODES.indexOf(a.lock) || a.table.localeCompare(b.table));
  return { statements, problems, locks };
}

/**
 * The analysis as lines for the plan preview and the step's log (SQL comments, so a preview stays valid SQL):
 * one line per table an existing-table lock falls on, one per finding, one per refusal.
 */
export function describeSqlAnalysis(a: SqlFileAnalysis): string[] {
  const out: string[] = [];
  const created = new Set(a.statements.flatMap((s) => s.tables.filter((t) => t.createdInFile).map((t) => t.table)));
  out.push(`-- ${a.statements.length} statement(s)${created.size ? `; ${created.size} new object(s) created by the file (their locks block nobody)` : ''}`);
  if (a.locks.length) {
    out.push('-- locks on existing tables, held until the file commits:');
    for (const l of a.locks) {
      const lines = a.statements.filter((s) => s.tables.some((t) => t.table === l.table && t.lock === l.lock && !t.createdInFile)).map((s) => s.line);
      out.push(`--   ${l.table}: ${l.lock} (${lockEffect(l.lock)}) — line ${lines.join(', ')}`);
    }
  } else {
    out.push('-- takes no lock on an existing table');
  }
  const rewrites = a.statements.filter((s) => s.rewrites);
  for (const s of rewrites) out.push(`-- line ${s.line}: REWRITES ${s.tables.find((t) => t.lock === 'ACCESS EXCLUSIVE')?.table ?? 'a table'} (${s.kind})`);
  for (const s of a.statements) for (const f of s.findings) out.push(`-- line ${s.line}: ${f.rule}: ${f.message}`);
  for (const p of a.problems) out.push(`-- line ${p.line}: REFUSED: ${p.text} — ${p.reason}`);
  return out;
}
