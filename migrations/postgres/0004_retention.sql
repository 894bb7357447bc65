-- Retention (SPEC §12): audit_log stays append-only for everyone but the retention job, which
-- may delete entries older than the cutoff it announces in its own transaction with
-- set_config('mbpanel.audit_purge_before', '<epoch ms>', true). UPDATE and TRUNCATE are
-- always refused.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    purge_before TEXT := current_setting('mbpanel.audit_purge_before', true);
BEGIN
    IF TG_OP = 'DELETE' AND purge_before IS NOT NULL AND purge_before <> ''
       AND OLD.at < purge_before::BIGINT THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END; $$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
-- The job's lookups: oldest audit entries, expired sessions, old outbox rows.
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX active_sessions_expires ON active_sessions (expires_at);
CREATE INDEX email_outbox_created ON email_outbox (created_at) WHERE status IN ('sent', 'failed');
