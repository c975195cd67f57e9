-- Dashboards: a dashboard holds widgets, a widget may show a saved report; dashboards are shared through
-- dashboard_permissions. Runs once, in one transaction, AFTER 20250716_report_management_schema.sql
-- (dashboard_widgets references saved_reports).

CREATE TABLE public.dashboards (
  dashboard_id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  program_id               uuid REFERENCES public.pilot_programs (program_id) ON DELETE CASCADE,
  name                     text NOT NULL,
  description              text,
  layout                   jsonb NOT NULL DEFAULT '[]'::jsonb,
  is_public                boolean NOT NULL DEFAULT false,
  is_default               boolean NOT NULL DEFAULT false,
  refresh_interval_seconds integer CHECK (refresh_interval_seconds IS NULL OR refresh_interval_seconds >= 10),
  created_by               uuid,
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dashboards_program_id_idx ON public.dashboards (program_id);
CREATE INDEX dashboards_created_by_idx ON public.dashboards (created_by);
CREATE UNIQUE INDEX dashboards_one_default_per_program
  ON public.dashboards (program_id) WHERE is_default;

CREATE TABLE public.dashboard_widgets (
  widget_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dashboard_id  uuid NOT NULL REFERENCES public.dashboards (dashboard_id) ON DELETE CASCADE,
  report_id     uuid REFERENCES public.saved_reports (report_id) ON DELETE SET NULL,
  widget_type   text NOT NULL
                CHECK (widget_type IN ('report', 'metric', 'chart', 'table', 'text', 'map')),
  title         text,
  position      jsonb NOT NULL DEFAULT '{"x": 0, "y": 0, "w": 4, "h": 3}'::jsonb,
  configuration jsonb NOT NULL DEFAULT '{}'::jsonb,
  sort_order    integer NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT dashboard_widgets_report_needs_report CHECK (widget_type <> 'report' OR report_id IS NOT NULL)
);
CREATE INDEX dashboard_widgets_dashboard_id_idx ON public.dashboard_widgets (dashboard_id, sort_order);
CREATE INDEX dashboard_widgets_report_id_idx ON public.dashboard_widgets (report_id);

CREATE TABLE public.dashboard_permissions (
  permission_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  dashboard_id     uuid NOT NULL REFERENCES public.dashboards (dashboard_id) ON DELETE CASCADE,
  user_id          uuid NOT NULL,
  permission_level text NOT NULL DEFAULT 'viewer' CHECK (permission_level IN ('viewer', 'editor', 'admin')),
  granted_by       uuid,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT dashboard_permissions_dashboard_user_key UNIQUE (dashboard_id, user_id)
);
CREATE INDEX dashboard_permissions_user_id_idx ON public.dashboard_permissions (user_id);

CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.dashboards
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.dashboard_widgets
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();
CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.dashboard_permissions
  FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

ALTER TABLE public.dashboards ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.dashboard_widgets ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.dashboard_permissions ENABLE ROW LEVEL SECURITY;

CREATE POLICY dashboards_select ON public.dashboards
  FOR SELECT TO authenticated
  USING (
    is_public
    OR created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
    OR EXISTS (
      SELECT 1 FROM public.dashboard_permissions dp
      WHERE dp.dashboard_id = dashboards.dashboard_id
        AND dp.user_id = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid)
  );
CREATE POLICY dashboards_insert ON public.dashboards
  FOR INSERT TO authenticated
  WITH CHECK (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);
CREATE POLICY dashboards_update ON public.dashboards
  FOR UPDATE TO authenticated
  USING (
    created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
    OR EXISTS (
      SELECT 1 FROM public.dashboard_permissions dp
      WHERE dp.dashboard_id = dashboards.dashboard_id
        AND dp.user_id = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
        AND dp.permission_level IN ('editor', 'admin'))
  );
CREATE POLICY dashboards_delete ON public.dashboards
  FOR DELETE TO authenticated
  USING (created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE POLICY dashboard_widgets_select ON public.dashboard_widgets
  FOR SELECT TO authenticated
  USING (EXISTS (SELECT 1 FROM public.dashboards d WHERE d.dashboard_id = dashboard_widgets.dashboard_id));
CREATE POLICY dashboard_widgets_manage ON public.dashboard_widgets
  FOR ALL TO authenticated
  USING (EXISTS (
    SELECT 1 FROM public.dashboards d
    WHERE d.dashboard_id = dashboard_widgets.dashboard_id
      AND d.created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid))
  WITH CHECK (EXISTS (
    SELECT 1 FROM public.dashboards d
    WHERE d.dashboard_id = dashboard_widgets.dashboard_id
      AND d.created_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid));

CREATE POLICY dashboard_permissions_select ON public.dashboard_permissions
  FOR SELECT TO authenticated
  USING (
    user_id = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
    OR granted_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid
  );
-- Only the granter manages a permission row. (A policy here that looked up dashboards would recurse:
-- dashboards's own SELECT policy reads this table.)
CREATE POLICY dashboard_permissions_manage ON public.dashboard_permissions
  FOR ALL TO authenticated
  USING (granted_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid)
  WITH CHECK (granted_by = nullif(current_setting('request.jwt.claim.sub', true), '')::uuid);

CREATE POLICY dashboards_service ON public.dashboards
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY dashboard_widgets_service ON public.dashboard_widgets
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY dashboard_permissions_service ON public.dashboard_permissions
  FOR ALL TO service_role USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON public.dashboards, public.dashboard_widgets, public.dashboard_permissions
  TO authenticated;
GRANT ALL ON public.dashboards, public.dashboard_widgets, public.dashboard_permissions TO service_role;

COMMENT ON TABLE public.dashboards IS 'User dashboards; layout holds the grid of widget ids.';
COMMENT ON TABLE public.dashboard_widgets IS 'Widgets of a dashboard; a report widget shows a saved report.';
