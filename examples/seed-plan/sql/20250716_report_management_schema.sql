-- Report management: folders (nested), folder permissions, saved reports, data snapshots, version history.
-- Runs once, in one transaction. Needs public.pilot_programs, public.set_updated_at() and the roles
-- anon / authenticated / service_role.

CREATE TABLE public.report_folders (
  folder_id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  parent_folder_id uuid REFERENCES public.report_folders (folder_id) ON DELETE CASCADE,
  program_id       uuid REFERENCES public.pilot_programs (program_id) ON DELETE SET NULL,
  name             text NOT NULL,
  description      text,
  color            text,
  is_archived      boolean NOT NULL DEFAULT false,
  created_by       uuid,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT report_folders_not_own_parent CHECK (parent_folder_id IS DISTINCT FROM folder_id)
);
CREATE UNIQUE INDEX report_folders_parent_name_key
  ON public.report_folders (coalesce(parent_folder_id, '00000000-0000-0000-0000-000000000000'::uuid), lower(name));
CREATE INDEX report_folders_program_id_idx ON public.report_folders (program_id);
CREATE INDEX report_folders_created_by_idx ON public.report_folders (created_by);

CREATE TABLE public.report_folder_permissions (
  permission_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  folder_id        uuid NOT NULL REFERENCES public.report_folders (folder_id) ON DELETE CASCADE,
  user_id          uuid NOT NULL,
  permission_level text NOT NULL DEFAULT 'viewer' CHECK (permission_level IN ('viewer', 'editor', 'admin')),
  granted_by       uuid,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT report_folder_permissions_folder_user_key UNIQUE (folder_id, user_id)
);
CREATE INDEX report_folder_permissions_user_id_idx ON public.report_folder_permissions (user_id);

CREATE TABLE public.saved_reports (
  report_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  folder_id     uuid REFERENCES public.report_folders (folder_id) ON DELETE SET NULL,
  program_id    uuid REFERENCES public.pilot_programs (program_id) ON DELETE CASCADE,
  name          text NOT NULL,
  description   text,
  report_type   text NOT NULL DEFAULT 'table'
                CHECK (report_type IN ('table', 'line', 'bar', 'heatmap', 'scatter', 'summary')),
  data_source   text NOT NULL DEFAULT 'petri_observations'
                CHECK (data_source IN ('petri_observations', 'gasifier_observations', 'combined')),
  configuration jsonb NOT NULL DEFAULT '{}'::jsonb,
  is_public     boolean NOT NULL DEFAULT false,
  is_template   boolean NOT NULL DEFAULT false,
  created_by    uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saved_reports_folder_id_idx ON public.saved_reports (folder_id);
CREATE INDEX saved_reports_program_id_idx ON public.saved_reports (program_id);
CREATE INDEX saved_reports_created_by_idx ON public.saved_reports (created_by);

CREATE TABLE public.report_data_snapshots (
  snapshot_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  report_id     uuid NOT NULL REFERENCES public.saved_reports (report_id) ON DELETE CASCADE,
  snapshot_name text,
  parameters    jsonb NOT NULL DEFAULT '{}'::jsonb,
  data          jsonb NOT NULL,
  row_count     integer CHECK (row_count >= 0),
  created_by    uuid,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_data_snapshots_report_id_created_at_idx
  ON public.report_data_snapshots (report_id, created_at DESC);

CREATE TABLE public.report_version_history (
  version_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  report_id      uuid NOT NULL REFERENCES public.saved_reports (report_id) ON DELETE CASCADE,
  version_number integer NOT NULL CHECK (version_number > 0),
  configuration  jsonb NOT NULL,
  change_summary text,
  created_by     uuid,
  created_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT report_version_history_report_version_key UNIQUE (report_id, version_number)
);

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.report_folders
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.report_folder_permissions
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.saved_reports
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

-- Row level security. The caller's id is the JWT subject PostgREST puts in request.jwt.claim.sub.
ALTER TABLE public.report_folders ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.report_folder_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.saved_reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.report_data_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.report_version_history ENABLE ROW LEVEL SECURITY;

CREATE POLICY report_folders_select ON public.report_folders
  FOR SELECT TO authenticated
  USING (
    created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
    OR EXISTS (
      SELECT 1 FROM public.report_folder_permissions fp
      WHERE fp.folder_id = report_folders.folder_id
        AND fp.user_id = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid)
  );
CREATE POLICY report_folders_insert ON public.report_folders
  FOR INSERT TO authenticated
  WITH CHECK (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);
CREATE POLICY report_folders_modify ON public.report_folders
  FOR UPDATE TO authenticated
  USING (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid)
  WITH CHECK (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);
CREATE POLICY report_folders_delete ON public.report_folders
  FOR DELETE TO authenticated
  USING (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE POLICY report_folder_permissions_select ON public.report_folder_permissions
  FOR SELECT TO authenticated
  USING (
    user_id = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
    OR granted_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
  );
-- Only the granter manages a permission row. (A policy here that looked up report_folders would recurse:
-- report_folders's own SELECT policy reads this table.)
CREATE POLICY report_folder_permissions_manage ON public.report_folder_permissions
  FOR ALL TO authenticated
  USING (granted_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid)
  WITH CHECK (granted_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE POLICY saved_reports_select ON public.saved_reports
  FOR SELECT TO authenticated
  USING (
    is_public
    OR created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
    OR EXISTS (
      SELECT 1 FROM public.report_folder_permissions fp
      WHERE fp.folder_id = saved_reports.folder_id
        AND fp.user_id = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid)
  );
CREATE POLICY saved_reports_insert ON public.saved_reports
  FOR INSERT TO authenticated
  WITH CHECK (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);
CREATE POLICY saved_reports_update ON public.saved_reports
  FOR UPDATE TO authenticated
  USING (
    created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
    OR EXISTS (
      SELECT 1 FROM public.report_folder_permissions fp
      WHERE fp.folder_id = saved_reports.folder_id
        AND fp.user_id = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
        AND fp.permission_level IN ('editor', 'admin'))
  );
CREATE POLICY saved_reports_delete ON public.saved_reports
  FOR DELETE TO authenticated
  USING (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE POLICY report_data_snapshots_select ON public.report_data_snapshots
  FOR SELECT TO authenticated
  USING (EXISTS (SELECT 1 FROM public.saved_reports r WHERE r.report_id = report_data_snapshots.report_id));
CREATE POLICY report_data_snapshots_insert ON public.report_data_snapshots
  FOR INSERT TO authenticated
  WITH CHECK (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE POLICY report_version_history_select ON public.report_version_history
  FOR SELECT TO authenticated
  USING (EXISTS (SELECT 1 FROM public.saved_reports r WHERE r.report_id = report_version_history.report_id));
CREATE POLICY report_version_history_insert ON public.report_version_history
  FOR INSERT TO authenticated
  WITH CHECK (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE POLICY report_folders_service ON public.report_folders
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY report_folder_permissions_service ON public.report_folder_permissions
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY saved_reports_service ON public.saved_reports
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY report_data_snapshots_service ON public.report_data_snapshots
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY report_version_history_service ON public.report_version_history
  FOR ALL TO service_role USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON public.report_folders, public.report_folder_permissions,
  public.saved_reports TO authenticated;
GRANT SELECT, INSERT ON public.report_data_snapshots, public.report_version_history TO authenticated;
GRANT ALL ON public.report_folders, public.report_folder_permissions, public.saved_reports,
  public.report_data_snapshots, public.report_version_history TO service_role;

COMMENT ON TABLE public.report_folders IS 'Folders of saved reports; nested through parent_folder_id.';
COMMENT ON TABLE public.saved_reports IS 'Report definitions built in the report builder.';
COMMENT ON TABLE public.report_data_snapshots IS 'Frozen results of a report run, kept for comparison.';
COMMENT ON TABLE public.report_version_history IS 'Every saved configuration of a report, numbered from 1.';
