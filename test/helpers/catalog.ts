import type pg from 'pg';

/**
 * A fingerprint of everything a migration could change in the catalog of the current database: relations and
 * their kinds, columns, constraints, indexes, views, functions, triggers, policies, grants, sequences, comments,
 * inheritance. Equal fingerprints mean no DDL happened.
 */
export async function catalogFingerprint(c: pg.ClientBase): Promise<string> {
  const r = await c.query<{ h: string }>(`
    SELECT md5(string_agg(x, E'\\n' ORDER BY x)) AS h FROM (
      SELECT 'ns ' || nspname || ' ' || coalesce(nspacl::text, '') AS x FROM pg_namespace WHERE nspname NOT LIKE 'pg_temp%' AND nspname NOT LIKE 'pg_toast_temp%'
      UNION ALL SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || c.relrowsecurity || ' ' || coalesce(c.relacl::text, '') || ' ' || c.relispartition
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast%'
      UNION ALL SELECT 'att ' || a.attrelid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' || a.attnum || ' ' || a.attidentity::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      UNION ALL SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated FROM pg_constraint WHERE connamespace <> 'pg_catalog'::regnamespace
      UNION ALL SELECT 'idx ' || pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace <> 'pg_catalog'::regnamespace AND c.relnamespace <> 'pg_toast'::regnamespace
      UNION ALL SELECT 'view ' || c.oid::regclass::text || ' ' || pg_get_viewdef(c.oid) FROM pg_class c WHERE c.relkind IN ('v', 'm') AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
      UNION ALL SELECT 'fn ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) FROM pg_proc p WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
      UNION ALL SELECT 'trg ' || tgrelid::regclass::text || ' ' || pg_get_triggerdef(oid) || ' ' || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
      UNION ALL SELECT 'pol ' || polrelid::regclass::text || ' ' || polname || ' ' || coalesce(pg_get_expr(polqual, polrelid), '') || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '') FROM pg_policy
      UNION ALL SELECT 'inh ' || inhrelid::regclass::text || ' ' || inhparent::regclass::text FROM pg_inherits
      UNION ALL SELECT 'seq ' || s.seqrelid::regclass::text || ' ' || coalesce((SELECT d.refobjid::regclass::text || '.' || d.refobjsubid FROM pg_depend d WHERE d.objid = s.seqrelid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1), '') FROM pg_sequence s
      UNION ALL SELECT 'cmt ' || objoid || ' ' || objsubid || ' ' || description FROM pg_description WHERE objoid >= 16384
      -- roles are cluster-wide and other test files create theirs concurrently: only those holding a right here count
      UNION ALL SELECT 'acl ' || c.oid::regclass::text || ' ' || coalesce(c.relacl::text, '') FROM pg_class c WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) AND c.relnamespace <> 'pg_toast'::regnamespace
    ) t`);
  return r.rows[0]!.h;
}
