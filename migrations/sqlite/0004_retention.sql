-- Retention (SPEC §12): audit_log stays append-only for everyone but the retention job, which
-- inserts the one retention_guard row inside its own transaction (and removes it before
-- committing); a DELETE is allowed only for entries older than the guard's cutoff. UPDATE is
-- always refused.
CREATE TABLE retention_guard (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    audit_before BIGINT  NOT NULL
);
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM retention_guard WHERE OLD.at < audit_before)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
-- The job's lookups: oldest audit entries, expired sessions, old outbox rows.
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX active_sessions_expires ON active_sessions (expires_at);
CREATE INDEX email_outbox_created ON email_outbox (created_at) WHERE status IN ('sent', 'failed');
