-- Gasifier observations with their program and site names, for the observation list screens.
-- Written against the public table name, so it can be run again after the table swap.

CREATE OR REPLACE VIEW public.gasifier_observations_with_names AS
SELECT o.*,
       p.name AS program_name,
       s.name AS site_name
FROM public.gasifier_observations o
JOIN public.pilot_programs p ON p.program_id = o.program_id
JOIN public.sites s ON s.site_id = o.site_id;

COMMENT ON VIEW public.gasifier_observations_with_names IS 'gasifier_observations joined with program and site names.';

GRANT SELECT ON public.gasifier_observations_with_names TO authenticated, service_role;
