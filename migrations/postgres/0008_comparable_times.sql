-- Times are stored as BIGINT epoch milliseconds in both dialects (SQLite has no timestamp
-- type that compares correctly). For the operators' psql sessions on PostgreSQL:
--
-- 1. `expires_at > now()` (and <, <=, =, <>, >=, either side) compares a millisecond column
--    with a timestamptz directly, through operators on (bigint, timestamptz). The service's
--    own queries bind BIGINT parameters and never resolve to them.
-- 2. The schema `readable` holds one view per table with every `*_at` millisecond column
--    shown as timestamptz: `SELECT * FROM readable.active_sessions`, or
--    `SET search_path = readable, public;` before the guide's queries verbatim.
--    `SELECT mbpanel_readable_views();` rebuilds the views; every later migration that changes
--    a table ends with it (a test checks the views match the tables).

CREATE OR REPLACE FUNCTION mbpanel_ms_to_timestamptz(ms BIGINT) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_timestamp(ms / 1000.0) $$;

CREATE OR REPLACE FUNCTION mbpanel_ms_lt(a BIGINT, b timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT mbpanel_ms_to_timestamptz(a) < b $$;
CREATE OR REPLACE FUNCTION mbpanel_ms_le(a BIGINT, b timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT mbpanel_ms_to_timestamptz(a) <= b $$;
CREATE OR REPLACE FUNCTION mbpanel_ms_eq(a BIGINT, b timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT mbpanel_ms_to_timestamptz(a) = b $$;
CREATE OR REPLACE FUNCTION mbpanel_ms_ne(a BIGINT, b timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT mbpanel_ms_to_timestamptz(a) <> b $$;
CREATE OR REPLACE FUNCTION mbpanel_ms_ge(a BIGINT, b timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT mbpanel_ms_to_timestamptz(a) >= b $$;
CREATE OR REPLACE FUNCTION mbpanel_ms_gt(a BIGINT, b timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT mbpanel_ms_to_timestamptz(a) > b $$;

CREATE OR REPLACE FUNCTION mbpanel_ts_lt(a timestamptz, b BIGINT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT a < mbpanel_ms_to_timestamptz(b) $$;
CREATE OR REPLACE FUNCTION mbpanel_ts_le(a timestamptz, b BIGINT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT a <= mbpanel_ms_to_timestamptz(b) $$;
CREATE OR REPLACE FUNCTION mbpanel_ts_eq(a timestamptz, b BIGINT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT a = mbpanel_ms_to_timestamptz(b) $$;
CREATE OR REPLACE FUNCTION mbpanel_ts_ne(a timestamptz, b BIGINT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT a <> mbpanel_ms_to_timestamptz(b) $$;
CREATE OR REPLACE FUNCTION mbpanel_ts_ge(a timestamptz, b BIGINT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT a >= mbpanel_ms_to_timestamptz(b) $$;
CREATE OR REPLACE FUNCTION mbpanel_ts_gt(a timestamptz, b BIGINT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT a > mbpanel_ms_to_timestamptz(b) $$;

CREATE OPERATOR < (LEFTARG = BIGINT, RIGHTARG = timestamptz, FUNCTION = mbpanel_ms_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = BIGINT, RIGHTARG = timestamptz, FUNCTION = mbpanel_ms_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = BIGINT, RIGHTARG = timestamptz, FUNCTION = mbpanel_ms_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = BIGINT, RIGHTARG = timestamptz, FUNCTION = mbpanel_ms_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = BIGINT, RIGHTARG = timestamptz, FUNCTION = mbpanel_ms_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = BIGINT, RIGHTARG = timestamptz, FUNCTION = mbpanel_ms_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

CREATE OPERATOR < (LEFTARG = timestamptz, RIGHTARG = BIGINT, FUNCTION = mbpanel_ts_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = timestamptz, RIGHTARG = BIGINT, FUNCTION = mbpanel_ts_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = timestamptz, RIGHTARG = BIGINT, FUNCTION = mbpanel_ts_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = timestamptz, RIGHTARG = BIGINT, FUNCTION = mbpanel_ts_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = timestamptz, RIGHTARG = BIGINT, FUNCTION = mbpanel_ts_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = timestamptz, RIGHTARG = BIGINT, FUNCTION = mbpanel_ts_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

CREATE SCHEMA IF NOT EXISTS readable;

CREATE OR REPLACE FUNCTION mbpanel_readable_views() RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    t record;
    columns text;
    made integer := 0;
BEGIN
    FOR t IN
        SELECT c.relname AS name
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
          AND c.relname NOT IN ('schema_migrations', '_sqlx_migrations')
        ORDER BY c.relname
    LOOP
        SELECT string_agg(
                 CASE WHEN a.atttypid = 'bigint'::regtype AND a.attname LIKE '%\_at'
                      THEN format('mbpanel_ms_to_timestamptz(%I) AS %I', a.attname, a.attname)
                      ELSE format('%I', a.attname)
                 END, ', ' ORDER BY a.attnum)
          INTO columns
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = format('%I.%I', current_schema(), t.name)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped;
        EXECUTE format('DROP VIEW IF EXISTS readable.%I', t.name);
        EXECUTE format('CREATE VIEW readable.%I AS SELECT %s FROM %I.%I',
                       t.name, columns, current_schema(), t.name);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;

SELECT mbpanel_readable_views();
