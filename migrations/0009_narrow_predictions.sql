-- Narrow predictions (issue 6: scoring 3.5 M customers into PostgreSQL within 15 s).
--
-- 1. The reasons are kept as data and worded when read. predictions.reasons (jsonb, a rendered
--    sentence each: ~850 bytes a customer, 3 GB on 3.5 M) becomes reason_codes: bytea in the layout
--    of src/ml/reason_codes.h (per reason the feature's index in the model, the value the model saw
--    and its effect, plus the values the sentences compare with; ~70 bytes). A bytea rather than
--    parallel smallint[]/real[] arrays: binary COPY takes it as one length and the bytes, where
--    each array is a header plus a length word per element that the server checks and copies one
--    by one, and the arrays would take three times the room. The API renders the codes with the
--    model the row names (model_id), so the answers keep their shape
--    ({feature, value, effect, direction, text}).
--    Existing rows keep their scores and lose their reasons (reason_codes NULL: shown as no
--    reasons): they are derived data, and the next scoring run writes them again.
--
-- 2. The scoring job no longer rewrites customer_analytics with the new churn probability and band
--    (49 s on 3.5 M customers). customer_analytics.churn_probability and churn_band stay: the
--    segmentation fills them (an uploaded churn-score file, or the current prediction carried
--    over) and combines them with RFM. Whoever shows a customer's churn joins predictions on
--    (tenant_id, customer_id) and takes pulse_churn_current(): the fresher of the two, so a new
--    scoring run shows at once without segmenting again, and an uploaded score file shows until
--    the next scoring run.
--    The band index (tenant_id, risk_band, churn_probability DESC) becomes (churn_probability DESC,
--    customer_id): the order GET /api/v1/ml/predictions pages in (a band is a range of
--    probabilities, so its filter reads the same index), and a sort of two numbers instead of a
--    uuid, a text and a number: 2.9 s instead of 8 s of the swap on 3.5 M rows. The partition
--    key already picks the tenant.

ALTER TABLE predictions DROP COLUMN reasons;
ALTER TABLE predictions ADD COLUMN reason_codes bytea;

-- The churn value a customer shows: the prediction's (p_value, written at p_at) or the one stored
-- with the analytics (a_value, at a_at), whichever was written last; either one when the other is
-- missing. Call it with both probabilities or both bands. A plain SQL expression, inlined by the
-- planner (no call per row).
CREATE FUNCTION pulse_churn_current(p_value anyelement, p_at timestamptz, a_value anyelement, a_at timestamptz)
    RETURNS anyelement
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN a_value IS NULL OR p_at >= a_at THEN p_value ELSE a_value END $$;
GRANT EXECUTE ON FUNCTION pulse_churn_current(anyelement, timestamptz, anyelement, timestamptz) TO pulse_app;

DROP INDEX predictions_band;
CREATE INDEX predictions_rank ON predictions (churn_probability DESC, customer_id);

-- pulse_derived_swap as in 0008, building the index above on the stage.
-- Makes the staged rows the current tenant's results. keep_others: the tenant's current rows for
-- customers the stage does not name are carried over (a run over a list of customers); otherwise
-- the stage replaces every row. p_staged: the rows the caller put in the stage; p_epoch: the
-- tenant's derived_epochs.customers_deleted read before the customer ids (NULL: not known). Returns
-- the number of rows now stored.
-- Memory: the anti-join and two index builds over millions of rows (with the defaults they spill
-- to disk).
CREATE OR REPLACE FUNCTION pulse_derived_swap(p_table text, p_keep_others boolean, p_staged bigint, p_epoch bigint) RETURNS bigint
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
        EXECUTE format('CREATE INDEX ON public.%I (churn_probability DESC, customer_id)', stage);
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

-- Puts the staged rows into the current tenant's results in place, replacing those of the same
-- customers: for a run over a few customers, where the swap would copy every other row of the
-- partition and build its indexes again (15 s for 1,000 customers of 3.5 M). The same checks as
-- the swap (the stage is the owner's, the customers still exist when some were deleted since
-- p_epoch); with no partition yet it is the swap. Returns the number of rows staged and kept.
CREATE FUNCTION pulse_derived_merge(p_table text, p_staged bigint, p_epoch bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    tenant uuid := pulse_derived_check(p_table);
    live text := pulse_derived_partition(p_table, tenant);
    stage text := live || '_next';
    n bigint := p_staged;
    k bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass('public.' || quote_ident(stage)) AND relpersistence = 'p'
                   AND relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)) THEN
        RAISE EXCEPTION 'derived results: nothing staged for % (call pulse_derived_stage first)', p_table;
    END IF;
    IF to_regclass('public.' || quote_ident(live)) IS NULL THEN
        RETURN pulse_derived_swap(p_table, true, p_staged, p_epoch);
    END IF;
    PERFORM pulse_derived_lock(tenant);
    IF p_epoch IS NULL OR p_epoch IS DISTINCT FROM
            coalesce((SELECT customers_deleted FROM derived_epochs WHERE tenant_id = tenant), 0) THEN
        EXECUTE format('DELETE FROM public.%I s WHERE NOT EXISTS '
                       '(SELECT 1 FROM public.customers c WHERE c.tenant_id = %L AND c.id = s.customer_id)',
                       stage, tenant);
        GET DIAGNOSTICS k = ROW_COUNT;
        n := n - k;
    END IF;
    EXECUTE format('DELETE FROM public.%I o USING public.%I s WHERE o.customer_id = s.customer_id', live, stage);
    -- through the parent: the stage has its columns in its order (LIKE), whatever the partition's
    EXECUTE format('INSERT INTO public.%I SELECT * FROM public.%I', p_table, stage);
    EXECUTE format('DROP TABLE public.%I', stage);
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION pulse_derived_merge(text, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pulse_derived_merge(text, bigint, bigint) TO pulse_app;
