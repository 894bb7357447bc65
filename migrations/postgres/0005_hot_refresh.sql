-- Cheap refreshes: a refresh rewrites the session's jti columns and times. With no index on
-- any column a refresh changes, and room left on each page, PostgreSQL does it as a HOT
-- update (no index writes, dead versions pruned in place). Sessions are looked up by id; the
-- jti is random (128 bits) and compared within the row, so it needs no UNIQUE index; the
-- guide's `WHERE refresh_token_jti = '<jti>'` diagnostic still works (a scan).
ALTER TABLE active_sessions DROP CONSTRAINT IF EXISTS active_sessions_refresh_token_jti_key;
ALTER TABLE active_sessions SET (fillfactor = 80);
