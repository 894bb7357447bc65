-- PostgreSQL's 0005 drops the UNIQUE index on active_sessions.refresh_token_jti and sets a
-- fillfactor so that refreshes are HOT updates. SQLite has no HOT and rewrites the row's index
-- entries either way; dropping an inline UNIQUE would mean rebuilding the table, for nothing.
-- Kept as a version marker so that both dialects list the same migrations.
SELECT 1;
