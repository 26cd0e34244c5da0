-- Derived per-customer results (customer_analytics, predictions) as one partition per tenant, each
-- run building a fresh partition and swapping it in (issues 5 and 6).
--
-- Measured on 1 M rows (EXPLAIN ANALYZE, 2 shared cores): the old path (COPY text into a TEMP
-- table, then INSERT ... ON CONFLICT DO UPDATE joined on external_id) spent 17 s of 78 s in the
-- per-row foreign-key trigger, wrote 3.4 GB of WAL (a new heap version, a dead tuple and two index
-- entries per row) and left customers missing from the run with stale rows. Deleting the tenant's
-- rows and inserting afresh was still 3.5 s (delete) + 13 s (insert, no foreign key) a million.
-- Filling a table nobody else can see yet with COPY and building its indexes afterwards (sorted
-- builds) was 3.3 s + 2.7 s, and removing the old rows becomes dropping a table.
--
-- So a run (pulse_derived_stage, then COPY, then pulse_derived_swap, all in the job's transaction):
--   * creates <table>_<tenant>_next, an ordinary table without indexes or Row-Level Security (COPY
--     FROM is refused on RLS tables). It is created inside the job's open transaction, so no
--     other session can see it, let alone write to it, before the swap; a CHECK pins its tenant;
--   * COPY (binary) fills it with the bigint customer ids the job read (no text join);
--   * the swap drops rows whose customer is not (or no longer) the tenant's in one anti-join (only
--     when customers were deleted since the job read its ids: derived_epochs), builds the indexes,
--     turns on RLS, then detaches and drops the tenant's old partition and attaches the new one.
--     A failed or cancelled run rolls all of it back: the previous results stay, and readers see
--     the old partition until the commit, then the new one.
-- Locks: DETACH takes ACCESS EXCLUSIVE on the shared parent (PostgreSQL 15 has no lighter way to
-- remove a partition inside a transaction), held from the swap to the commit, which follows it at
-- once: milliseconds. To never queue every tenant's readers behind a long reader, the swap asks
-- with a 100 ms lock_timeout and retries (about 10 s in all) before failing the run.
--
-- The per-row foreign key to customers(id) is gone. What it guaranteed is kept by cheaper means:
-- the ids come from the tenant's customers (read under RLS), the swap's anti-join covers customers
-- deleted since (and checks they are this tenant's), and deleting a customer deletes their derived
-- rows (a statement-level trigger with a transition table, for the API's delete and the cascade
-- from organizations alike). A per-tenant advisory lock taken by both orders a customer deletion
-- and a swap, so a run cannot re-add a deleted customer. Any transaction that read the shared
-- parent holds off every tenant's swap until it ends: jobs keep their read transactions short.
-- predictions.model_id loses its foreign key too (it would be validated on every attach and
-- lock models): models are only deleted with their organization, which deletes the predictions.

CREATE FUNCTION pulse_derived_partition(p_table text, p_tenant uuid) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT p_table || '_' || replace(p_tenant::text, '-', '') $$;

-- The tenant's partition becomes an ordinary tenant table: RLS on with the usual policy.
CREATE FUNCTION pulse_derived_protect(p_rel text) RETURNS void
    LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', p_rel);
    EXECUTE format('CREATE POLICY tenant_isolation ON public.%I USING (tenant_id = pulse_current_tenant()) '
                   'WITH CHECK (tenant_id = pulse_current_tenant())', p_rel);
    EXECUTE format('REVOKE ALL ON public.%I FROM pulse_app', p_rel);
    EXECUTE format('GRANT SELECT, UPDATE, DELETE ON public.%I TO pulse_app', p_rel);
END
$$;

DO $$
DECLARE
    t text;
    tenant uuid;
BEGIN
    FOREACH t IN ARRAY ARRAY['customer_analytics', 'predictions'] LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_0007');
        EXECUTE format('ALTER INDEX %I RENAME TO %I', t || '_pkey', t || '_0007_pkey');
    END LOOP;
END
$$;
ALTER INDEX customer_analytics_segment RENAME TO customer_analytics_0007_segment;
ALTER INDEX predictions_band RENAME TO predictions_0007_band;

CREATE TABLE customer_analytics (
    tenant_id         uuid NOT NULL,
    customer_id       bigint NOT NULL,
    run_id            uuid NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    recency_days      integer,
    frequency         integer,
    monetary          double precision,
    r                 smallint CHECK (r BETWEEN 1 AND 5),
    f                 smallint CHECK (f BETWEEN 1 AND 5),
    m                 smallint CHECK (m BETWEEN 1 AND 5),
    features          real[] NOT NULL DEFAULT '{}',
    segment           text,
    segment_score     real,
    churn_probability real CHECK (churn_probability BETWEEN 0 AND 1),
    churn_band        text CHECK (churn_band IN ('low', 'medium', 'high')),
    clv               double precision,
    behavior_score    real,
    trend             text CHECK (trend IN ('increasing', 'stable', 'declining')),
    risk_signals      jsonb NOT NULL DEFAULT '[]',
    recommendations   jsonb NOT NULL DEFAULT '[]',
    cluster_id        uuid,
    cluster           smallint,
    PRIMARY KEY (tenant_id, customer_id)
) PARTITION BY LIST (tenant_id);
CREATE INDEX customer_analytics_segment ON customer_analytics (tenant_id, segment);

CREATE TABLE predictions (
    tenant_id         uuid NOT NULL,
    customer_id       bigint NOT NULL,
    model_id          uuid,
    churn_probability real CHECK (churn_probability BETWEEN 0 AND 1),
    risk_band         text CHECK (risk_band IN ('low', 'medium', 'high')),
    clv               double precision,
    reasons           jsonb NOT NULL DEFAULT '[]',
    scored_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
) PARTITION BY LIST (tenant_id);
CREATE INDEX predictions_band ON predictions (tenant_id, risk_band, churn_probability DESC);

DO $$
DECLARE
    t text;
    tenant uuid;
BEGIN
    FOREACH t IN ARRAY ARRAY['customer_analytics', 'predictions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = pulse_current_tenant()) '
                       'WITH CHECK (tenant_id = pulse_current_tenant())', t);
        EXECUTE format('GRANT SELECT, UPDATE, DELETE ON %I TO pulse_app', t);
        FOR tenant IN EXECUTE format('SELECT DISTINCT tenant_id FROM %I', t || '_0007') LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES IN (%L)', pulse_derived_partition(t, tenant), t, tenant);
            PERFORM pulse_derived_protect(pulse_derived_partition(t, tenant));
        END LOOP;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', t, t || '_0007');
        EXECUTE format('DROP TABLE %I', t || '_0007');
    END LOOP;
END
$$;

CREATE FUNCTION pulse_derived_check(p_table text) RETURNS uuid
    LANGUAGE plpgsql STABLE
AS $$
DECLARE
    tenant uuid := pulse_current_tenant();
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'derived results: no tenant in this transaction (set pulse.tenant_id first)';
    END IF;
    IF p_table IS NULL OR p_table NOT IN ('customer_analytics', 'predictions') THEN
        RAISE EXCEPTION 'derived results: "%" is not customer_analytics or predictions', p_table;
    END IF;
    RETURN tenant;
END
$$;

-- How many times the tenant's customers were deleted from (bumped by the trigger below). A job reads
-- it before the customer ids it writes; when it is unchanged at the swap, no customer can have gone
-- in between and the anti-join is skipped (on 3.5 M rows it took 3-7 s of a 17 s swap).
CREATE TABLE derived_epochs (
    tenant_id         uuid PRIMARY KEY,
    customers_deleted bigint NOT NULL DEFAULT 0
);
ALTER TABLE derived_epochs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON derived_epochs USING (tenant_id = pulse_current_tenant())
    WITH CHECK (tenant_id = pulse_current_tenant());
REVOKE ALL ON derived_epochs FROM pulse_app;
GRANT SELECT ON derived_epochs TO pulse_app;

-- Serialises a tenant's swaps with deletions of its customers (see the trigger below).
CREATE FUNCTION pulse_derived_lock(p_tenant uuid) RETURNS void
    LANGUAGE sql
    AS $$ SELECT pg_advisory_xact_lock(hashtext('pulse_derived'), hashtext(p_tenant::text)) $$;

-- A fresh, empty staging table for the current tenant's next results, which the caller fills with
-- COPY (tenant_id defaults to the tenant). Returns its name.
CREATE FUNCTION pulse_derived_stage(p_table text) RETURNS text
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
                   stage, p_table, tenant);
    EXECUTE format('ALTER TABLE public.%I ALTER COLUMN tenant_id SET DEFAULT %L', stage, tenant);
    EXECUTE format('REVOKE ALL ON public.%I FROM pulse_app', stage);
    EXECUTE format('GRANT INSERT ON public.%I TO pulse_app', stage);
    RETURN stage;
END
$$;

-- Makes the staged rows the current tenant's results. keep_others: the tenant's current rows for
-- customers the stage does not name are carried over (a run over a list of customers); otherwise
-- the stage replaces every row. p_staged: the rows the caller put in the stage; p_epoch: the
-- tenant's derived_epochs.customers_deleted read before the customer ids (NULL: not known). Returns
-- the number of rows now stored.
-- Memory: the anti-join and two index builds over millions of rows (with the defaults they spill
-- to disk).
CREATE FUNCTION pulse_derived_swap(p_table text, p_keep_others boolean, p_staged bigint, p_epoch bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
    SET work_mem = '256MB' SET maintenance_work_mem = '512MB' SET jit = off
AS $$
DECLARE
    tenant uuid := pulse_derived_check(p_table);
    live text := pulse_derived_partition(p_table, tenant);
    stage text := live || '_next';
    n bigint := p_staged;
    k bigint;
    tries int := 0;
    caller_lock_timeout text := current_setting('lock_timeout');
BEGIN
    -- every name schema-qualified (see pulse_derived_stage); the stage must be the one that
    -- function made: a permanent table of this function's owner
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass('public.' || quote_ident(stage)) AND relpersistence = 'p'
                   AND relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)) THEN
        RAISE EXCEPTION 'derived results: nothing staged for % (call pulse_derived_stage first)', p_table;
    END IF;
    PERFORM pulse_derived_lock(tenant);
    IF p_keep_others AND to_regclass('public.' || quote_ident(live)) IS NOT NULL THEN
        EXECUTE format('INSERT INTO public.%I SELECT o.* FROM public.%I o WHERE NOT EXISTS '
                       '(SELECT 1 FROM public.%I s WHERE s.customer_id = o.customer_id)',
                       stage, live, stage);
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n + k;
    END IF;
    -- what the foreign key guaranteed, for the whole stage at once, and only this tenant's customers,
    -- when customers were deleted since the caller read its ids (the lock above orders the rest)
    IF p_epoch IS NULL OR p_epoch IS DISTINCT FROM
            coalesce((SELECT customers_deleted FROM derived_epochs WHERE tenant_id = tenant), 0) THEN
        EXECUTE format('DELETE FROM public.%I s WHERE NOT EXISTS '
                       '(SELECT 1 FROM public.customers c WHERE c.tenant_id = %L AND c.id = s.customer_id)',
                       stage, tenant);
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n - k;
    END IF;
    -- the parent's indexes, built sorted now; ATTACH adopts them instead of building its own
    EXECUTE format('ALTER TABLE public.%I ADD PRIMARY KEY (tenant_id, customer_id)', stage);
    IF p_table = 'customer_analytics' THEN
        EXECUTE format('CREATE INDEX ON public.%I (tenant_id, segment)', stage);
    ELSE
        EXECUTE format('CREATE INDEX ON public.%I (tenant_id, risk_band, churn_probability DESC)', stage);
    END IF;
    EXECUTE format('ANALYZE public.%I', stage);
    PERFORM pulse_derived_protect(stage);
    -- short lock waits, retried: a swap waiting behind a long reader must not hold up the others
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '100ms', true);
            -- the parent and this tenant's partition only: LOCK without ONLY would take every
            -- tenant's partition too, and wait behind any tenant's reader or autovacuum
            IF to_regclass('public.' || quote_ident(live)) IS NULL THEN
                EXECUTE format('LOCK TABLE ONLY public.%I IN ACCESS EXCLUSIVE MODE', p_table);
            ELSE
                EXECUTE format('LOCK TABLE ONLY public.%I, public.%I IN ACCESS EXCLUSIVE MODE', p_table, live);
            END IF;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            tries := tries + 1;
            IF tries >= 50 THEN
                RAISE EXCEPTION 'derived results: % stayed busy for 10 s (long-running readers); run the job again', p_table;
            END IF;
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', caller_lock_timeout, true);
    IF to_regclass('public.' || quote_ident(live)) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE public.%I DETACH PARTITION public.%I', p_table, live);
        EXECUTE format('DROP TABLE public.%I', live);
    END IF;
    EXECUTE format('ALTER TABLE public.%I ATTACH PARTITION public.%I FOR VALUES IN (%L)', p_table, stage, tenant);
    EXECUTE format('ALTER TABLE public.%I RENAME TO %I', stage, live);
    RETURN n;
END
$$;

-- Deleting customers deletes their derived rows (what ON DELETE CASCADE did).
CREATE FUNCTION pulse_customers_deleted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    PERFORM pulse_derived_lock(t) FROM (SELECT DISTINCT tenant_id FROM gone ORDER BY 1) d(t);
    INSERT INTO derived_epochs AS e (tenant_id, customers_deleted) SELECT DISTINCT tenant_id, 1 FROM gone
        ON CONFLICT (tenant_id) DO UPDATE SET customers_deleted = e.customers_deleted + 1;
    DELETE FROM customer_analytics a USING gone g WHERE a.tenant_id = g.tenant_id AND a.customer_id = g.id;
    DELETE FROM predictions p USING gone g WHERE p.tenant_id = g.tenant_id AND p.customer_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER customers_derived_rows AFTER DELETE ON customers REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION pulse_customers_deleted();

REVOKE ALL ON FUNCTION pulse_derived_stage(text), pulse_derived_swap(text, boolean, bigint, bigint) FROM PUBLIC;
-- the helpers run inside the functions above (as their owner); nobody else needs them (the lock
-- would let any session hold up another tenant's swaps)
REVOKE ALL ON FUNCTION pulse_derived_lock(uuid), pulse_derived_check(text), pulse_derived_protect(text),
    pulse_derived_partition(text, uuid) FROM PUBLIC;
-- rows reach these tables only through a staged swap (which checks the customers)
REVOKE INSERT ON customer_analytics, predictions FROM pulse_app;
GRANT EXECUTE ON FUNCTION pulse_derived_stage(text), pulse_derived_swap(text, boolean, bigint, bigint) TO pulse_app;
