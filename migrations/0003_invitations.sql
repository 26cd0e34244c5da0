-- Invitations: an owner invites a user by e-mail; the invited user (created without a password)
-- chooses one with the invitation token, shown once to the owner. Only the token's SHA-256 digest
-- is stored, with an expiry; an invitation is used at most once.
CREATE TABLE invitations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz
);
CREATE INDEX invitations_tenant ON invitations (tenant_id);
CREATE INDEX invitations_user ON invitations (user_id);

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (tenant_id = pulse_current_tenant()) WITH CHECK (tenant_id = pulse_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON invitations TO pulse_app;

-- The crossings for accepting an invitation (no tenant is known yet: the token is the credential).

-- Whether a digest names a live invitation (unused, unexpired, its user still without a
-- password): checked before the slow password hash is computed.
CREATE FUNCTION pulse_invitation_lookup(p_token_hash bytea)
    RETURNS TABLE (user_id bigint, tenant_id uuid, email text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
    SELECT u.id, u.tenant_id, u.email
    FROM invitations i JOIN users u ON u.id = i.user_id
    WHERE i.token_hash = p_token_hash AND i.accepted_at IS NULL AND i.expires_at > now()
      AND u.password_hash IS NULL
$$;

-- Uses the invitation and sets its user's password (an encoded argon2id hash), or does nothing
-- when the invitation is not live any more (used concurrently, expired): no row then.
CREATE FUNCTION pulse_invitation_accept(p_token_hash bytea, p_password_hash text)
    RETURNS TABLE (user_id bigint, tenant_id uuid, role text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
DECLARE
    inv invitations;
BEGIN
    UPDATE invitations i SET accepted_at = now()
    WHERE i.token_hash = p_token_hash AND i.accepted_at IS NULL AND i.expires_at > now()
    RETURNING * INTO inv;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY
        UPDATE users u SET password_hash = p_password_hash, password_changed_at = now(), updated_at = now()
        WHERE u.id = inv.user_id AND u.password_hash IS NULL
        RETURNING u.id, u.tenant_id, u.role;
END
$$;

REVOKE ALL ON FUNCTION pulse_invitation_lookup(bytea), pulse_invitation_accept(bytea, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pulse_invitation_lookup(bytea), pulse_invitation_accept(bytea, text) TO pulse_app;
