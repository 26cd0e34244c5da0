-- 0001_foundation: the first migration. Deployment-wide settings that are not secrets and not
-- tenant data (tenants, users and roles arrive in later migrations). No extensions, no roles:
-- it must run on any PostgreSQL 15 database the configured user owns.
CREATE TABLE app_settings (
    key text PRIMARY KEY CHECK (key <> ''),
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE app_settings IS 'Deployment-wide settings (key -> JSON value); never secrets, never tenant data.';
