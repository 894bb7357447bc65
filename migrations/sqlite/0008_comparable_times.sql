-- PostgreSQL only: operators comparing the BIGINT epoch-millisecond columns with now(), and
-- the `readable` views (see migrations/postgres/0008_comparable_times.sql). SQLite has no
-- now(); its operators compare with `strftime('%s','now') * 1000` or
-- `unixepoch('subsec') * 1000`. Kept so both dialects have the same versions.
SELECT 1;
