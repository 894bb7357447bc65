-- Strong authentication, part 2: devices a user has signed in from (new-device alerts), the
-- single-use "this wasn't me" links, passkeys, and each team's security policy.

-- A device is the pair (user agent, client IP), kept as a hash: a sign-in from a pair not seen
-- before (and without a trusted-device cookie) emails an alert.
CREATE TABLE known_devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    fingerprint   TEXT   NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    UNIQUE (user_id, fingerprint)
);

CREATE TABLE new_device_alerts (
    token_hash  TEXT   PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    fingerprint TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX new_device_alerts_user ON new_device_alerts (user_id);

-- WebAuthn credentials. `passkey` is the verified credential (public key, counter) as JSON:
-- nothing secret.
CREATE TABLE passkeys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       BIGINT NOT NULL REFERENCES users (id),
    credential_id TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL,
    passkey       TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id);

-- require_mfa: 0 or 1. enforced_from: when it was switched on (epoch ms), NULL while off.
CREATE TABLE team_security_policies (
    team_id       BIGINT NOT NULL PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    require_mfa   BIGINT NOT NULL,
    grace_days    BIGINT NOT NULL,
    enforced_from BIGINT,
    updated_at    BIGINT NOT NULL,
    updated_by    BIGINT REFERENCES users (id)
);
