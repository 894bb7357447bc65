-- Second factors (SPEC §13). One row per user with a TOTP enrolment: the secret sealed with
-- AES-256-GCM (bound to the user id), a pending secret until the first code confirms it, and
-- the last time step used (a code is accepted once: replays are refused atomically).
CREATE TABLE user_mfa (
    user_id             BIGINT NOT NULL PRIMARY KEY REFERENCES users (id),
    totp_secret_sealed  TEXT,
    totp_confirmed_at   BIGINT,
    totp_last_step      BIGINT,
    totp_pending_sealed TEXT,
    totp_pending_at     BIGINT,
    updated_at          BIGINT NOT NULL
);
-- Recovery codes, stored as HMAC-SHA-256 of the high-entropy code; single use.
CREATE TABLE mfa_recovery_codes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    code_hash  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    UNIQUE (user_id, code_hash)
);
-- Step-up: when the session's user last proved who they are (sign-in or reauth). NULL means
-- at the session's creation (`created_at`). No index: refreshes stay HOT updates.
ALTER TABLE active_sessions ADD COLUMN authenticated_at BIGINT;
