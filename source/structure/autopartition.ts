import { ident, literal, qname } from '../db/quote.js';
import { fitName, md5hex } from './names.js';

/**
 * Automatic LIST partitions (seed 003: "automatic partition creation for new programs").
 *
 * PostgreSQL never creates a partition on demand, and a BEFORE ROW trigger on the partitioned table cannot either:
 * a row is routed to its partition before any row trigger runs, so an observation for an unknown program lands in
 * the DEFAULT partition (or fails without one). The partition is therefore created where new values are born: an
 * AFTER INSERT trigger on the table of programs (pilot_programs).
 *
 * The function gets the parent's OID (not its name: the swap renames the parent, an OID survives it), the base name
 * of the partitions (the source table's name, which the parent carries after the swap) and the column of the
 * programs table holding the value. It is SECURITY DEFINER (owned by the migration role, which owns the parent: the
 * application's role inserting the program could not create partitions), runs with search_path = pg_catalog and a
 * short lock_timeout: CREATE TABLE … PARTITION OF takes ACCESS EXCLUSIVE on the parent, and the program's insert must
 * never queue behind a long query on the observations. When the lock cannot be had in time, the program is still
 * inserted, a WARNING says why, and the new value's rows go to the DEFAULT partition until phase 2 runs again.
 *
 * Rows of the new value already in the DEFAULT partition (creating a partition whose bound covers DEFAULT rows fails)
 * are moved first, in the same transaction: copied to a temporary table, deleted from DEFAULT, then re-inserted
 * through the parent once the partition exists. When a foreign key references the parent, deleting those rows could
 * fire ON DELETE actions on the referencing rows: then nothing is moved, the partition is not created, and a WARNING
 * says so — rows are never lost.
 *
 * The new partition is given the parent's owner and its siblings' storage parameters, as phase 2's partitions have.
 *
 * The partition name is `<base>_p_<value>` computed exactly like names.ts (listPartitionName): keep both in step.
 */
export const AUTO_FUNCTION = 'pgshift_auto_partition';

export function autoTriggerName(targetSchema: string, target: string): string {
  return fitName(`pgshift_autopart_${md5hex(`${targetSchema}.${target}`).slice(0, 12)}`);
}

export function autoPartitionFunctionSql(schema: string, lockTimeoutMs: number): string {
  const fn = qname(schema, AUTO_FUNCTION);
  return `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = ${literal(`${Math.max(50, Math.round(lockTimeoutMs))}ms`)}
AS $pgshift$
DECLARE
  parent   oid := TG_ARGV[0]::oid;
  base     text := TG_ARGV[1];
  col      text := TG_ARGV[2];
  v        text := to_jsonb(NEW) ->> TG_ARGV[2];
  nsp      text;
  keycol   text;
  def      oid;
  san      text;
  pname    text;
  cols     text;
  moved    bigint := 0;
  own      text;
  opts     text[];
BEGIN
  IF v IS NULL THEN RETURN NULL; END IF;
  SELECT n.nspname, a.attname, pt.partdefid INTO nsp, keycol, def
    FROM pg_partitioned_table pt
    JOIN pg_class c ON c.oid = pt.partrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
   WHERE pt.partrelid = parent AND pt.partstrat = 'l';
  IF nsp IS NULL THEN
    RAISE WARNING 'pgshift auto partition: table with OID % is gone or not LIST-partitioned; no partition for %', parent, v;
    RETURN NULL;
  END IF;
  -- the same name as names.ts listPartitionName()
  IF v ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    san := replace(lower(v), '-', '');
  ELSE
    san := btrim(regexp_replace(lower(v), '[^a-z0-9]+', '_', 'g'), '_');
    IF san IS DISTINCT FROM v THEN
      san := CASE WHEN san = '' THEN '' ELSE san || '_' END || left(md5(v), 6);
    END IF;
  END IF;
  pname := base || '_p_' || san;
  IF octet_length(pname) > 63 THEN
    san := left(md5(pname), 8);
    WHILE octet_length(pname) > 54 LOOP pname := left(pname, length(pname) - 1); END LOOP;
    pname := pname || '_' || san;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = parent AND c.relname = pname) THEN
    RETURN NULL;
  END IF;
  BEGIN
    IF def IS NOT NULL AND def <> 0 THEN
      EXECUTE format('SELECT count(*) FROM %s WHERE %I = %L', def::regclass, keycol, v) INTO moved;
    END IF;
    IF moved > 0 THEN
      IF EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND confrelid = parent) THEN
        RAISE WARNING 'pgshift auto partition: % row(s) of % = % sit in the DEFAULT partition and foreign keys reference %; moving them could fire ON DELETE actions, so no partition was created (rows stay in DEFAULT)',
          moved, keycol, v, parent::regclass;
        RETURN NULL;
      END IF;
      SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
        FROM pg_attribute WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
      EXECUTE format('CREATE TEMP TABLE pgshift_auto_move ON COMMIT DROP AS SELECT * FROM %s WHERE %I = %L', def::regclass, keycol, v);
      EXECUTE format('DELETE FROM %s WHERE %I = %L', def::regclass, keycol, v);
    END IF;
    EXECUTE format('CREATE TABLE %I.%I PARTITION OF %s FOR VALUES IN (%L)', nsp, pname, parent::regclass, v);
    -- like its siblings: the parent's owner (whose next ALTER TABLE must not fail on a partition it does not own) and
    -- the storage parameters phase 2 gave the partitions (the DEFAULT partition's, else another's)
    SELECT pg_get_userbyid(relowner) INTO own FROM pg_class WHERE oid = parent;
    EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', nsp, pname, own);
    SELECT c.reloptions INTO opts FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = parent AND c.relname <> pname ORDER BY (c.oid = def) DESC, c.relname LIMIT 1;
    IF opts IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %I.%I SET (%s)', nsp, pname, array_to_string(opts, ', '));
    END IF;
    IF moved > 0 THEN
      EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM pg_temp.pgshift_auto_move', parent::regclass, cols, cols);
      DROP TABLE pg_temp.pgshift_auto_move;
    END IF;
    RAISE NOTICE 'pgshift auto partition: created %.% for % = % (% row(s) moved from DEFAULT)', nsp, pname, keycol, v, moved;
  EXCEPTION
    WHEN lock_not_available THEN
      RAISE WARNING 'pgshift auto partition: could not lock % in time to create its partition for %; rows go to the DEFAULT partition until pgshift phase 2 runs again', parent::regclass, v;
    WHEN duplicate_table THEN
      RAISE WARNING 'pgshift auto partition: a table named %.% already exists and is not a partition of %; rows of % go to the DEFAULT partition', nsp, pname, parent::regclass, v;
    WHEN invalid_object_definition THEN
      -- another partition already covers this value ("would overlap"): nothing to do
      NULL;
  END;
  RETURN NULL;
END
$pgshift$`;
}

export interface AutoTriggerInfo {
  readonly table: string;
  readonly schema: string;
  readonly trigger: string;
  readonly function: string;
  readonly column: string;
  readonly parentOid: number;
  readonly base: string;
}

export function autoPartitionTriggerSql(a: { table: { schema: string; name: string }; trigger: string; fnSchema: string; parentOid: number; base: string; column: string }): string {
  return `CREATE TRIGGER ${ident(a.trigger)} AFTER INSERT ON ${qname(a.table.schema, a.table.name)} FOR EACH ROW EXECUTE FUNCTION ${qname(a.fnSchema, AUTO_FUNCTION)}(${literal(String(a.parentOid))}, ${literal(a.base)}, ${literal(a.column)})`;
}
