-- Stages made from templates, not from the shared parents.
--
-- pulse_derived_stage made a tenant's stage LIKE the partitioned parent (customer_analytics or
-- predictions), and that took an ACCESS SHARE lock on the parent held until the job committed:
-- through a scoring run's whole streaming (~40 s on 3.5 M customers) every other tenant's swap,
-- which needs ACCESS EXCLUSIVE on the parent, waited and failed after its 10 s of retries. One
-- tenant's jobs could keep the others' runs failing (found by a security review). A stage is now
-- made LIKE an empty template of the same shape, which no swap locks.
--
-- A migration that changes a derived table's columns or checks changes its template the same way:
-- the swap's ATTACH PARTITION refuses a stage whose columns differ from the parent's, loudly.

CREATE TABLE public.customer_analytics_template (LIKE public.customer_analytics INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
CREATE TABLE public.predictions_template (LIKE public.predictions INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
COMMENT ON TABLE public.customer_analytics_template IS 'Always empty: the shape of a customer_analytics stage (migration 0010).';
COMMENT ON TABLE public.predictions_template IS 'Always empty: the shape of a predictions stage (migration 0010).';
-- behind the same wall as every table with a tenant_id, though they never hold a row; the
-- application role may read them (and sees nothing), not write them
ALTER TABLE public.customer_analytics_template ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.predictions_template ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON public.customer_analytics_template USING (tenant_id = pulse_current_tenant())
    WITH CHECK (tenant_id = pulse_current_tenant());
CREATE POLICY tenant_isolation ON public.predictions_template USING (tenant_id = pulse_current_tenant())
    WITH CHECK (tenant_id = pulse_current_tenant());
REVOKE ALL ON public.customer_analytics_template, public.predictions_template FROM PUBLIC;
REVOKE ALL ON public.customer_analytics_template, public.predictions_template FROM pulse_app;
GRANT SELECT ON public.customer_analytics_template, public.predictions_template TO pulse_app;

CREATE OR REPLACE FUNCTION pulse_derived_stage(p_table text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    tenant uuid := pulse_derived_check(p_table);
    stage text := pulse_derived_partition(p_table, tenant) || '_next';
BEGIN
    -- every name schema-qualified: with pg_temp on the path, a bare name missing from public would
    -- resolve to a temporary table the caller made (and whose triggers would run as the owner)
    EXECUTE format('DROP TABLE IF EXISTS public.%I', stage); -- a leftover of a stage made outside a transaction
    EXECUTE format('CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS, CHECK (tenant_id = %L))',
                   stage, p_table || '_template', tenant);
    EXECUTE format('ALTER TABLE public.%I ALTER COLUMN tenant_id SET DEFAULT %L', stage, tenant);
    EXECUTE format('REVOKE ALL ON public.%I FROM pulse_app', stage);
    EXECUTE format('GRANT INSERT ON public.%I TO pulse_app', stage);
    RETURN stage;
END
$$;
REVOKE ALL ON FUNCTION pulse_derived_stage(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pulse_derived_stage(text) TO pulse_app;
