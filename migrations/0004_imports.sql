-- Ingestion: the job queue, one row per upload (with its data-quality report), and the records
-- uploads fill: transactions (e-commerce), events (telecom, banking) and customer attributes.
--
-- Jobs are a queue in a table: a worker claims the oldest queued job with FOR UPDATE SKIP LOCKED
-- (pulse_job_claim, which crosses tenants and so is SECURITY DEFINER), writes its progress to the
-- row and beats a heartbeat; a job whose worker died (no heartbeat for a while) is queued again or
-- failed by the next claim, never left running.
--
-- Records carry row_key, a 128-bit hash of the record's mapped fields written by the importer:
-- the natural key. The same file uploaded twice, or two overlapping files, add each record once
-- (INSERT ... ON CONFLICT DO NOTHING on (tenant_id, row_key)). Customers are keyed by their
-- external id; transactions and events name the customer by it (customer_ref), and every
-- customer they name exists in customers after the upload.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('import')),
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    params           jsonb NOT NULL DEFAULT '{}',
    phase            text,                              -- what the job is doing now, in words
    progress         real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    bytes_total      bigint,
    bytes_done       bigint NOT NULL DEFAULT 0,
    rows_read        bigint NOT NULL DEFAULT 0,
    rows_accepted    bigint NOT NULL DEFAULT 0,
    rows_rejected    bigint NOT NULL DEFAULT 0,
    rows_per_second  real,
    eta_seconds      real,
    result           jsonb,
    error_code       text,
    error            text,
    attempts         integer NOT NULL DEFAULT 0,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_by       bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    heartbeat_at     timestamptz
);
CREATE INDEX jobs_queued ON jobs (created_at) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (heartbeat_at) WHERE state = 'running';
CREATE INDEX jobs_tenant ON jobs (tenant_id, created_at DESC);

CREATE TABLE imports (
    id             uuid PRIMARY KEY,                    -- the job's id
    tenant_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('transactions', 'events', 'customers')),
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    file_name      text CHECK (length(file_name) <= 255),
    file_size      bigint,
    content_hash   text,                                -- SHA-256 of the file, hex
    plan           jsonb NOT NULL DEFAULT '{}',         -- dialect, sheet, mapping, date formats, threshold
    report         jsonb,                               -- the data-quality report
    rows_read      bigint NOT NULL DEFAULT 0,
    rows_accepted  bigint NOT NULL DEFAULT 0,
    rows_rejected  bigint NOT NULL DEFAULT 0,
    rows_duplicate bigint NOT NULL DEFAULT 0,           -- exact duplicates inside the file (dropped)
    rows_existing  bigint NOT NULL DEFAULT 0,           -- already stored by an earlier upload (merged)
    created_by     bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX imports_tenant ON imports (tenant_id, created_at DESC);
CREATE INDEX imports_done_hash ON imports (tenant_id, content_hash, kind) WHERE state = 'done';

-- No foreign keys on the record tables: a per-row check would cost bulk loads a third of their
-- speed, and only the importer writes them, inside the upload's transaction.
CREATE TABLE transactions (
    tenant_id        uuid NOT NULL,
    row_key          uuid NOT NULL,
    customer_ref     text NOT NULL CHECK (length(customer_ref) <= 200),
    occurred_at      timestamptz NOT NULL,
    amount           numeric(16, 4) NOT NULL,           -- negative for returns and cancellations
    quantity         double precision,
    unit_price       numeric(16, 4),
    invoice_no       text,
    product          text,
    product_category text,
    description      text,
    country          text,
    is_return        boolean NOT NULL DEFAULT false,
    import_id        uuid NOT NULL,
    PRIMARY KEY (tenant_id, row_key)
);

CREATE TABLE events (
    tenant_id      uuid NOT NULL,
    row_key        uuid NOT NULL,
    customer_ref   text NOT NULL CHECK (length(customer_ref) <= 200),
    occurred_at    timestamptz NOT NULL,
    event_type     text NOT NULL,
    revenue_impact numeric(16, 4),
    quantity       double precision,
    balance        numeric(16, 4),
    channel        text,
    import_id      uuid NOT NULL,
    PRIMARY KEY (tenant_id, row_key)
);

-- Customer attribute files: attributes merge into the customer's object; the label, when the
-- file has one, is kept apart for training.
ALTER TABLE customers ADD COLUMN churned boolean;
ALTER TABLE customers ADD COLUMN import_id uuid;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['jobs', 'imports', 'transactions', 'events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = pulse_current_tenant()) '
                       'WITH CHECK (tenant_id = pulse_current_tenant())', t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs, imports, transactions, events TO pulse_app;

-- The queue's crossing: the oldest queued job of any tenant, now running, for this worker.
-- Jobs whose worker stopped beating (stale_after) are first queued again, or failed after
-- max_attempts, so a crash never leaves a job "running".
CREATE FUNCTION pulse_job_claim(p_stale_after interval, p_max_attempts integer)
    RETURNS TABLE (id uuid, tenant_id uuid, kind text, params jsonb, attempts integer)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    UPDATE jobs j
       SET state = CASE WHEN j.attempts >= p_max_attempts THEN 'failed' ELSE 'queued' END,
           error_code = CASE WHEN j.attempts >= p_max_attempts THEN 'worker_lost' ELSE j.error_code END,
           error = CASE WHEN j.attempts >= p_max_attempts
                        THEN format('the worker running this job stopped %s times; giving up', j.attempts)
                        ELSE j.error END,
           finished_at = CASE WHEN j.attempts >= p_max_attempts THEN now() ELSE NULL END,
           phase = CASE WHEN j.attempts >= p_max_attempts THEN 'failed' ELSE 'queued again after a worker stopped' END
     WHERE j.state = 'running' AND j.heartbeat_at < now() - p_stale_after;
    UPDATE imports i SET state = 'failed', finished_at = now()
      FROM jobs j
     WHERE j.id = i.id AND j.state = 'failed' AND i.state = 'pending';
    RETURN QUERY
    UPDATE jobs j
       SET state = 'running', attempts = j.attempts + 1, started_at = now(), heartbeat_at = now(),
           phase = 'starting'
     WHERE j.id = (SELECT q.id FROM jobs q WHERE q.state = 'queued' AND NOT q.cancel_requested
                    ORDER BY q.created_at FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING j.id, j.tenant_id, j.kind, j.params, j.attempts;
END
$$;
REVOKE ALL ON FUNCTION pulse_job_claim(interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pulse_job_claim(interval, integer) TO pulse_app;
