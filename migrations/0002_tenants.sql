-- Tenants (organizations), their users, sessions, API keys, audit log and first resource
-- (customers), behind Row-Level Security.
--
-- Isolation has two walls. The application takes the tenant only from the verified identity and
-- scopes every query to it; and the server's request connections act as the role pulse_app,
-- which owns no table, so the policies below apply to every row it reads or writes. The tenant
-- a query runs for is pulse.tenant_id, set by the server for that query's transaction only
-- (db.set_tenant): without it, pulse_app sees no tenant rows at all.
--
-- A few steps must cross tenants before a tenant is known (login by e-mail, refresh by token,
-- API key lookup, registration). They are SECURITY DEFINER functions below, each doing exactly
-- one narrow thing, owned by the role that runs the migrations.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pulse_app') THEN
        CREATE ROLE pulse_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS;
    END IF;
END
$$;
-- the login role of the server must be allowed to act as pulse_app
GRANT pulse_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO pulse_app;

CREATE FUNCTION pulse_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('pulse.tenant_id', true), '')::uuid $$;

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    business_id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), -- public id, used by the widget
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    industry    text NOT NULL CHECK (industry IN ('ecommerce', 'telecom', 'banking')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email               text NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role                text NOT NULL CHECK (role IN ('owner', 'analyst', 'viewer')),
    password_hash       text, -- NULL while an invited user has not chosen a password
    password_changed_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- one account per e-mail address across Pulse: a login names no tenant
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_tenant ON users (tenant_id);

-- Refresh tokens are stored as SHA-256 digests. A family is one login's chain of rotations:
-- presenting a rotated token again revokes the whole family (token theft).
CREATE TABLE refresh_tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  uuid NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix       text NOT NULL, -- the first characters, shown in lists
    key_hash     bytea NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('owner', 'analyst', 'viewer')),
    created_by   bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Security events. tenant_id is NULL for events no tenant owns (a failed login for an unknown
-- e-mail); those are for operators, not shown to any tenant.
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  uuid REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    bigint,
    event      text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}',
    ip         inet,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_time ON audit_log (tenant_id, created_at DESC);

CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id text CHECK (length(external_id) <= 200),
    email       text CHECK (length(email) <= 254),
    name        text CHECK (length(name) <= 200),
    attributes  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, external_id)
);
CREATE INDEX customers_tenant_id ON customers (tenant_id, id);

-- Row-Level Security: a row is visible and writable only for its own tenant.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
    USING (id = pulse_current_tenant()) WITH CHECK (id = pulse_current_tenant());
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'refresh_tokens', 'api_keys', 'audit_log', 'customers'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = pulse_current_tenant()) '
                       'WITH CHECK (tenant_id = pulse_current_tenant())', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, users, refresh_tokens, api_keys, audit_log, customers
    TO pulse_app;
GRANT SELECT ON schema_migrations, app_settings TO pulse_app;
-- tables created later by the migrating role are reachable by pulse_app, still behind their policies
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pulse_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO pulse_app;

-- The crossings (SECURITY DEFINER: they run as the migrating role, which RLS does not bind).

-- Registration: the organization and its owner, together or not at all.
CREATE FUNCTION pulse_register(p_org_name text, p_industry text, p_email text, p_name text, p_password_hash text)
    RETURNS TABLE (tenant_id uuid, business_id uuid, user_id bigint)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    org organizations;
BEGIN
    INSERT INTO organizations (name, industry) VALUES (p_org_name, p_industry) RETURNING * INTO org;
    RETURN QUERY
        INSERT INTO users (tenant_id, email, name, role, password_hash, password_changed_at)
        VALUES (org.id, lower(p_email), p_name, 'owner', p_password_hash, now())
        RETURNING org.id, org.business_id, users.id;
END
$$;

-- Login: the account behind an e-mail address, whatever its tenant.
CREATE FUNCTION pulse_login_lookup(p_email text)
    RETURNS TABLE (user_id bigint, tenant_id uuid, role text, password_hash text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$ SELECT id, tenant_id, role, password_hash FROM users WHERE email = lower(p_email) $$;

-- Refresh: the token row behind a digest, with its user's current role.
CREATE FUNCTION pulse_refresh_lookup(p_token_hash bytea)
    RETURNS TABLE (id uuid, tenant_id uuid, user_id bigint, family_id uuid, expires_at timestamptz,
                   rotated_at timestamptz, revoked_at timestamptz, role text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT r.id, r.tenant_id, r.user_id, r.family_id, r.expires_at, r.rotated_at, r.revoked_at, u.role
    FROM refresh_tokens r JOIN users u ON u.id = r.user_id
    WHERE r.token_hash = p_token_hash
$$;

-- API keys: the key behind a digest (live ones only), marking its use.
CREATE FUNCTION pulse_api_key_lookup(p_key_hash bytea)
    RETURNS TABLE (id uuid, tenant_id uuid, role text)
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    UPDATE api_keys SET last_used_at = now()
    WHERE key_hash = p_key_hash AND revoked_at IS NULL
    RETURNING id, tenant_id, role
$$;

-- Audit events that belong to no tenant (or happen before one is known).
CREATE FUNCTION pulse_audit_untenanted(p_event text, p_detail jsonb, p_ip inet)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp
AS $$ INSERT INTO audit_log (tenant_id, event, detail, ip) VALUES (NULL, p_event, p_detail, p_ip) $$;

REVOKE ALL ON FUNCTION pulse_register(text, text, text, text, text), pulse_login_lookup(text),
    pulse_refresh_lookup(bytea), pulse_api_key_lookup(bytea), pulse_audit_untenanted(text, jsonb, inet) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pulse_register(text, text, text, text, text), pulse_login_lookup(text),
    pulse_refresh_lookup(bytea), pulse_api_key_lookup(bytea), pulse_audit_untenanted(text, jsonb, inet) TO pulse_app;
