-- Tenant rules (lua/rules.lua, lua/rule_store.lua): each tenant may override the shipped rules
-- (rules/<kind>.lua) with its own Lua source. Every published source is a numbered version, kept
-- forever; rule_state says which version is active (NULL = the shipped default), which one to fall
-- back to when the active one fails at run time, and holds the author's unpublished draft.
CREATE TABLE rule_versions (
    tenant_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('segments', 'offers', 'triggers', 'roi', 'lead_scoring')),
    version         integer NOT NULL CHECK (version >= 1),
    source          text NOT NULL CHECK (octet_length(source) <= 262144),
    sha256          text NOT NULL,
    note            text CHECK (length(note) <= 500),
    created_by      bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    failures        bigint NOT NULL DEFAULT 0,      -- run-time failures (the call fell back)
    last_error      text,
    last_failure_at timestamptz,
    PRIMARY KEY (tenant_id, kind, version)
);

CREATE TABLE rule_state (
    tenant_id        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('segments', 'offers', 'triggers', 'roi', 'lead_scoring')),
    active_version   integer,                       -- NULL: the shipped default rule
    fallback_version integer,                       -- last good version before the active one; NULL: the default
    draft_source     text CHECK (octet_length(draft_source) <= 262144),
    draft_updated_at timestamptz,
    draft_updated_by bigint REFERENCES users (id) ON DELETE SET NULL,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind),
    FOREIGN KEY (tenant_id, kind, active_version) REFERENCES rule_versions (tenant_id, kind, version),
    FOREIGN KEY (tenant_id, kind, fallback_version) REFERENCES rule_versions (tenant_id, kind, version)
);

ALTER TABLE rule_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE rule_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rule_versions
    USING (tenant_id = pulse_current_tenant()) WITH CHECK (tenant_id = pulse_current_tenant());
CREATE POLICY tenant_isolation ON rule_state
    USING (tenant_id = pulse_current_tenant()) WITH CHECK (tenant_id = pulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON rule_versions, rule_state TO pulse_app;
