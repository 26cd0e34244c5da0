-- Analytics per customer (issue: features, segments, behaviour, clusters). One row per customer in
-- customer_analytics, rewritten by each computation: the core RFM figures and scores as typed
-- columns (filtered, sorted and grouped on), every other feature in a compact real[] whose names
-- and descriptions live once per run in analytics_runs.feature_names / feature_info (the feature set
-- depends on the tenant's industry declarations, so it cannot be a fixed set of columns, and one
-- array keeps the row narrow: ~40 features cost 160 bytes instead of 40 columns' headers and nulls).
CREATE TABLE analytics_runs (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    job_id        uuid,
    as_of         date NOT NULL,                      -- recency is counted from this day
    customers     integer NOT NULL DEFAULT 0,
    transactions  bigint NOT NULL DEFAULT 0,
    events        bigint NOT NULL DEFAULT 0,
    feature_names text[] NOT NULL,
    feature_info  jsonb NOT NULL DEFAULT '[]',        -- [{name, description, unit}]
    snapshot      jsonb NOT NULL DEFAULT '{}',        -- what the input was: last import, row counts
    segments_rule integer,                            -- rule version used (0 = shipped default)
    timings       jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analytics_runs_tenant ON analytics_runs (tenant_id, created_at DESC);

CREATE TABLE customer_analytics (
    tenant_id         uuid NOT NULL,
    customer_id       bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    run_id            uuid NOT NULL,
    computed_at       timestamptz NOT NULL DEFAULT now(),
    recency_days      integer,
    frequency         integer,                        -- distinct purchase days
    monetary          double precision,               -- net of returns
    r                 smallint CHECK (r BETWEEN 1 AND 5),
    f                 smallint CHECK (f BETWEEN 1 AND 5),
    m                 smallint CHECK (m BETWEEN 1 AND 5),
    features          real[] NOT NULL DEFAULT '{}',   -- in the order of analytics_runs.feature_names
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
);
CREATE INDEX customer_analytics_segment ON customer_analytics (tenant_id, segment);

CREATE TABLE clusterings (
    id          uuid PRIMARY KEY,                     -- the job's id
    tenant_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    method      text NOT NULL CHECK (method IN ('kmeans', 'gmm', 'ward')),
    k_requested integer,                              -- NULL: chosen automatically
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'cancelled')),
    result      jsonb,                                -- k, sizes, centroids, personas, quality figures
    created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX clusterings_tenant ON clusterings (tenant_id, created_at DESC);

ALTER TABLE jobs DROP CONSTRAINT jobs_kind_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_kind_check CHECK (kind IN ('import', 'segment', 'cluster', 'train', 'score'));

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['analytics_runs', 'customer_analytics', 'clusterings'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = pulse_current_tenant()) '
                       'WITH CHECK (tenant_id = pulse_current_tenant())', t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON analytics_runs, customer_analytics, clusterings TO pulse_app;
