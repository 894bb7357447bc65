-- mbpanel-auth schema, SQLite dialect. Times are epoch milliseconds (BIGINT) so that
-- comparisons and ordering are exact on both SQLite and PostgreSQL.

CREATE TABLE users (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    email             TEXT    NOT NULL UNIQUE,
    name              TEXT    NOT NULL,
    password_hash     TEXT    NOT NULL,
    email_verified_at BIGINT,
    deleted_at        BIGINT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);

CREATE TABLE teams (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    name                     TEXT    NOT NULL,
    owner_user_id            BIGINT  NOT NULL REFERENCES users (id),
    vz_email                 TEXT,
    vz_password_encrypted    TEXT,
    vz_session_key_encrypted TEXT,
    session_key_expires_at   BIGINT,
    created_at               BIGINT  NOT NULL
);
CREATE INDEX teams_owner ON teams (owner_user_id);

CREATE TABLE permissions (
    slug        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);

-- Built-in roles have team_id NULL and are shared by every team; custom roles belong to one.
CREATE TABLE roles (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    team_id     BIGINT  REFERENCES teams (id) ON DELETE CASCADE,
    builtin     BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL
);
CREATE UNIQUE INDEX roles_builtin_name ON roles (name) WHERE team_id IS NULL;
CREATE UNIQUE INDEX roles_team_name ON roles (team_id, name) WHERE team_id IS NOT NULL;

CREATE TABLE role_permissions (
    role_id         BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission_slug TEXT   NOT NULL REFERENCES permissions (slug),
    PRIMARY KEY (role_id, permission_slug)
);

CREATE TABLE team_members (
    user_id    BIGINT NOT NULL REFERENCES users (id),
    team_id    BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    role_id    BIGINT NOT NULL REFERENCES roles (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX team_members_team ON team_members (team_id);

CREATE TABLE active_sessions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id            BIGINT NOT NULL REFERENCES users (id),
    team_id            BIGINT NOT NULL REFERENCES teams (id),
    refresh_token_jti  TEXT   NOT NULL UNIQUE,
    refresh_generation BIGINT NOT NULL DEFAULT 1,
    device_id          TEXT,
    ip_address         TEXT,
    user_agent         TEXT,
    created_at         BIGINT NOT NULL,
    last_seen_at       BIGINT NOT NULL,
    expires_at         BIGINT NOT NULL,
    revoked_at         BIGINT,
    revoked_reason     TEXT
);
CREATE INDEX active_sessions_user_live ON active_sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX active_sessions_revoked ON active_sessions (revoked_at, expires_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE email_verification_tokens (
    token      TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX email_verification_tokens_user ON email_verification_tokens (user_id);

CREATE TABLE password_reset_tokens (
    token_hash TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_reset_tokens_user ON password_reset_tokens (user_id);

CREATE TABLE team_invites (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    team_id             BIGINT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    email               TEXT   NOT NULL,
    role_id             BIGINT NOT NULL REFERENCES roles (id),
    token_hash          TEXT   NOT NULL UNIQUE,
    invited_by_user_id  BIGINT NOT NULL REFERENCES users (id),
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    accepted_at         BIGINT,
    accepted_by_user_id BIGINT REFERENCES users (id),
    revoked_at          BIGINT
);
CREATE INDEX team_invites_team ON team_invites (team_id);

CREATE TABLE trusted_devices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    device_hash  TEXT   NOT NULL,
    user_agent   TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    UNIQUE (user_id, device_hash)
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            BIGINT NOT NULL,
    event         TEXT   NOT NULL,
    actor_user_id BIGINT,
    user_id       BIGINT,
    team_id       BIGINT,
    ip_address    TEXT,
    user_agent    TEXT,
    details       TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_team ON audit_log (team_id, id);
CREATE INDEX audit_log_user ON audit_log (user_id, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE email_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    to_address      TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    payload         TEXT   NOT NULL,
    status          TEXT   NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX email_outbox_due ON email_outbox (status, next_attempt_at);
