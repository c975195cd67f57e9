-- Petri observations with their program and site names, for the observation list screens.
-- Written against the public table name, so it can be run again after the table swap.

CREATE OR REPLACE VIEW public.petri_observations_with_names AS
SELECT o.*,
       p.name AS program_name,
       s.name AS site_name
FROM public.petri_observations o
JOIN public.pilot_programs p ON p.program_id = o.program_id
JOIN public.sites s ON s.site_id = o.site_id;

COMMENT ON VIEW public.petri_observations_with_names IS 'petri_observations joined with program and site names.';

GRANT SELECT ON public.petri_observations_with_names TO authenticated, service_role;
