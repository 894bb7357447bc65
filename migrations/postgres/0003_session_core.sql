-- Session core v2: SQL holds everything a refresh needs, so losing Redis logs nobody out.
-- The refresh jti replaced by the last rotation, when, and the access jti minted with it:
-- a racing tab that repeats the old token within the grace window gets the same tokens.
ALTER TABLE active_sessions ADD COLUMN previous_refresh_jti TEXT;
ALTER TABLE active_sessions ADD COLUMN rotated_at BIGINT;
ALTER TABLE active_sessions ADD COLUMN next_access_jti TEXT;
-- Sessions of one user in one team (ended when the membership ends).
CREATE INDEX active_sessions_user_team ON active_sessions (user_id, team_id) WHERE revoked_at IS NULL;
