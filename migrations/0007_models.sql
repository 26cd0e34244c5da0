-- Model registry and predictions (issue: churn and lifetime-value models). Every training run is a
-- row of models: what it was trained with (params, data snapshot, feature list), how it scored
-- (metrics, and the report with curves, deciles, importance and both candidates), the PMDL
-- container bytes the scorer loads (validated on load), who and when. One active model per tenant
-- and kind (a partial unique index, so activating is "deactivate the old, activate the new" in one
-- transaction). predictions keeps the latest score per customer with its reasons.
CREATE TABLE models (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('churn', 'clv')),
    algorithm     text NOT NULL,                      -- churn_gbdt, churn_logreg, clv_gbdt, bgnbd
    version       integer NOT NULL CHECK (version >= 1),
    active        boolean NOT NULL DEFAULT false,
    params        jsonb NOT NULL DEFAULT '{}',
    data_snapshot jsonb NOT NULL DEFAULT '{}',        -- rows, positives, label source, last import
    features      text[] NOT NULL DEFAULT '{}',
    metrics       jsonb NOT NULL DEFAULT '{}',        -- the chosen model's test metrics
    report        jsonb NOT NULL DEFAULT '{}',        -- curves, deciles, importance, both candidates
    model         bytea NOT NULL,                     -- the PMDL container (src/ml/model.h)
    job_id        uuid,
    created_by    bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind, version)
);
CREATE UNIQUE INDEX models_one_active ON models (tenant_id, kind) WHERE active;
CREATE INDEX models_tenant ON models (tenant_id, kind, created_at DESC);

CREATE TABLE predictions (
    tenant_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    customer_id       bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    model_id          uuid REFERENCES models (id) ON DELETE SET NULL,
    churn_probability real CHECK (churn_probability BETWEEN 0 AND 1),
    risk_band         text CHECK (risk_band IN ('low', 'medium', 'high')),
    clv               double precision,
    reasons           jsonb NOT NULL DEFAULT '[]',    -- [{feature, value, effect, direction, text}]
    scored_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
CREATE INDEX predictions_band ON predictions (tenant_id, risk_band, churn_probability DESC);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['models', 'predictions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = pulse_current_tenant()) '
                       'WITH CHECK (tenant_id = pulse_current_tenant())', t);
    END LOOP;
END
$$;
GRANT SELECT, INSERT, UPDATE, DELETE ON models, predictions TO pulse_app;
