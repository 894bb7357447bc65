//! Migrations: the two dialects' schemas agree after migration, and databases migrated by the
//! former runner (`schema_migrations`) are adopted without running anything again.

use std::collections::BTreeSet;
use std::sync::Arc;

use sqlx::Connection;

use crate::both_modes;
use crate::helpers::app::Storage;
use crate::helpers::smtp::SmtpSink;
use crate::helpers::{Mode, TestApp};

/// One normalised fact per line: tables, columns (type class, nullability), primary keys,
/// unique constraints, foreign keys, indexes (columns, uniqueness, partial or not).
type Facts = BTreeSet<String>;

/// The type class of a declared type. Intended dialect difference: SQLite's `INTEGER PRIMARY
/// KEY` (the rowid alias) is PostgreSQL's `BIGINT GENERATED … AS IDENTITY`: both "integer".
fn class(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "int" | "smallint" => "integer",
        "text" | "character varying" | "varchar" => "text",
        "boolean" | "bool" => "bool",
        "blob" | "bytea" => "bytes",
        "real" | "double precision" => "real",
        other => panic!("no type class for {other:?}: add it here"),
    }
}

async fn sqlite_facts(storage: &Storage) -> Facts {
    let mut facts = Facts::new();
    let tables = storage
        .sql_rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .await;
    for t in tables.iter().map(|r| r[0].clone()) {
        facts.insert(format!("table {t}"));
        let columns = storage
            .sql_rows(&format!(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{t}') ORDER BY cid"
            ))
            .await;
        let mut pk: Vec<(i64, String)> = Vec::new();
        for c in &columns {
            let is_pk: i64 = c[3].parse().unwrap();
            // Intended dialect difference: SQLite reports primary-key columns as nullable
            // (PostgreSQL makes them NOT NULL); every primary key here is written NOT NULL in
            // effect (rowid aliases, or never inserted without a value), so they count as such.
            let null = if c[2] == "1" || is_pk > 0 {
                "not null"
            } else {
                "null"
            };
            facts.insert(format!("column {t}.{} {} {null}", c[0], class(&c[1])));
            if is_pk > 0 {
                pk.push((is_pk, c[0].clone()));
            }
        }
        pk.sort();
        let pk: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
        if !pk.is_empty() {
            facts.insert(format!("primary key {t} ({})", pk.join(",")));
        }
        let indexes = storage
            .sql_rows(&format!(
                "SELECT name, \"unique\", origin, partial FROM pragma_index_list('{t}')"
            ))
            .await;
        for i in &indexes {
            if i[2] == "pk" {
                continue; // the primary key, compared above
            }
            let cols: Vec<String> = storage
                .sql_rows(&format!(
                    "SELECT coalesce(name, '<expression>') FROM pragma_index_info('{}') ORDER BY seqno",
                    i[0]
                ))
                .await
                .into_iter()
                .map(|r| r[0].clone())
                .collect();
            let cols = cols.join(",");
            if i[2] == "u" {
                facts.insert(format!("unique constraint {t} ({cols})"));
            } else {
                let unique = if i[1] == "1" { "unique " } else { "" };
                let partial = if i[3] == "1" { " partial" } else { "" };
                facts.insert(format!("{unique}index {} on {t} ({cols}){partial}", i[0]));
            }
        }
        let fks = storage
            .sql_rows(&format!(
                "SELECT \"table\", \"from\", coalesce(\"to\", '<primary key>') FROM pragma_foreign_key_list('{t}')"
            ))
            .await;
        for f in &fks {
            facts.insert(format!("foreign key {t}.{} -> {}.{}", f[1], f[0], f[2]));
        }
    }
    facts
}

async fn postgres_facts(storage: &Storage) -> Facts {
    let mut facts = Facts::new();
    let scope = "current_schema()";
    for r in storage
        .sql_rows(&format!(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = {scope}
             AND tablename <> '_sqlx_migrations'"
        ))
        .await
    {
        facts.insert(format!("table {}", r[0]));
    }
    for c in storage
        .sql_rows(&format!(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
             FROM information_schema.columns WHERE table_schema = {scope}
             AND table_name <> '_sqlx_migrations'"
        ))
        .await
    {
        let null = if c[3] == "YES" { "null" } else { "not null" };
        facts.insert(format!("column {}.{} {} {null}", c[0], c[1], class(&c[2])));
    }
    // Primary keys and unique constraints, with their columns in key order.
    for k in storage
        .sql_rows(&format!(
            "SELECT c.conrelid::regclass::text, c.contype::text,
                    (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord)
                     FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum)
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = {scope} AND c.contype IN ('p', 'u')
               AND c.conrelid::regclass::text <> '_sqlx_migrations'"
        ))
        .await
    {
        let kind = if k[1] == "p" {
            "primary key"
        } else {
            "unique constraint"
        };
        facts.insert(format!("{kind} {} ({})", k[0], k[2]));
    }
    for f in storage
        .sql_rows(&format!(
            "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text,
                    fa.attname::text
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(attnum, fattnum)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = k.fattnum
             WHERE n.nspname = {scope} AND c.contype = 'f'"
        ))
        .await
    {
        facts.insert(format!(
            "foreign key {}.{} -> {}.{}",
            f[0], f[1], f[2], f[3]
        ));
    }
    // Indexes that back no constraint.
    for i in storage
        .sql_rows(&format!(
            "SELECT ic.relname::text, t.relname::text, i.indisunique::text,
                    (i.indpred IS NOT NULL)::text,
                    array_to_string(ARRAY(
                        SELECT pg_get_indexdef(i.indexrelid, k, true)
                        FROM generate_series(1, i.indnkeyatts) AS k ORDER BY k), ',')
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = {scope} AND t.relname <> '_sqlx_migrations'
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
        ))
        .await
    {
        let unique = if i[2] == "true" { "unique " } else { "" };
        let partial = if i[3] == "true" { " partial" } else { "" };
        // An expression key is shown as its text by PostgreSQL and as none by SQLite.
        let cols: Vec<&str> = i[4]
            .split(',')
            .map(|c| {
                if c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                    c
                } else {
                    "<expression>"
                }
            })
            .collect();
        facts.insert(format!(
            "{unique}index {} on {} ({}){partial}",
            i[0],
            i[1],
            cols.join(",")
        ));
    }
    facts
}

/// Intended dialect differences: facts of one dialect only, each with its reason. The test
/// fails if one of them disappears too (the list cannot go stale).
const ONLY_SQLITE: &[(&str, &str)] = &[
    // 0004: SQLite has no advisory locks and no roles; the retention job's guard row lets the
    // append-only trigger allow its deletes (PostgreSQL: a transaction-local setting).
    ("table retention_guard", "retention guard"),
    (
        "column retention_guard.id integer not null",
        "retention guard",
    ),
    (
        "column retention_guard.audit_before integer not null",
        "retention guard",
    ),
    ("primary key retention_guard (id)", "retention guard"),
    // 0005: PostgreSQL drops this unique index so refreshes are HOT updates; SQLite has no
    // HOT updates and keeps it.
    (
        "unique constraint active_sessions (refresh_token_jti)",
        "HOT refreshes (PostgreSQL only)",
    ),
];
const ONLY_POSTGRES: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_dialects_migrate_to_the_same_schema() {
    let sqlite = TestApp::spawn(Mode::Embedded).await;
    let postgres = TestApp::spawn(Mode::Production).await;
    let (s, p) = (
        sqlite_facts(&sqlite.storage).await,
        postgres_facts(&postgres.storage).await,
    );
    assert!(s.len() > 50, "{s:#?}");
    let intended = |list: &[(&str, &str)], fact: &str| list.iter().any(|(f, _)| *f == fact);
    for (fact, why) in ONLY_SQLITE {
        assert!(
            s.contains(*fact) && !p.contains(*fact),
            "intended difference gone: {fact} ({why})"
        );
    }
    for (fact, why) in ONLY_POSTGRES {
        assert!(
            p.contains(*fact) && !s.contains(*fact),
            "intended difference gone: {fact} ({why})"
        );
    }
    let only_sqlite: Vec<&String> = s
        .difference(&p)
        .filter(|f| !intended(ONLY_SQLITE, f))
        .collect();
    let only_postgres: Vec<&String> = p
        .difference(&s)
        .filter(|f| !intended(ONLY_POSTGRES, f))
        .collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the dialects' schemas differ\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
}

/// The migration files the former runner knew (versions 1 to 5), in order.
fn legacy_files(dialect: &str) -> Vec<(i64, String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_owned();
            let version: i64 = name.split('_').next()?.parse().ok()?;
            (version <= 5).then(|| (version, name, std::fs::read_to_string(&p).unwrap()))
        })
        .collect()
}

/// A database as the former runner left it: the migrations applied and `schema_migrations`.
async fn migrate_the_old_way(storage: &Storage) {
    macro_rules! apply {
        ($conn:expr, $dialect:literal) => {{
            let mut conn = $conn;
            sqlx::raw_sql(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                 applied_at BIGINT NOT NULL)",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            for (version, name, sql) in legacy_files($dialect) {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO schema_migrations VALUES ({version}, '{name}', 1700000000000)"
                )))
                .execute(&mut conn)
                .await
                .unwrap();
            }
        }};
    }
    match storage.database_url() {
        Some(url) => apply!(sqlx::PgConnection::connect(&url).await.unwrap(), "postgres"),
        None => {
            std::fs::create_dir_all(&storage.data_dir).unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                storage.data_dir.join("mbpanel.db").display()
            );
            apply!(
                sqlx::SqliteConnection::connect(&url).await.unwrap(),
                "sqlite"
            )
        }
    }
}

const RECORDED: &str =
    "SELECT version, hex(checksum), success FROM _sqlx_migrations ORDER BY version";
const RECORDED_PG: &str = "SELECT version, upper(encode(checksum, 'hex')), success::int FROM _sqlx_migrations ORDER BY version";

async fn a_database_of_the_former_runner_is_adopted(mode: Mode) {
    let storage = Arc::new(Storage::new(mode).await);
    migrate_the_old_way(&storage).await;
    // Running a migration again would fail (its tables exist) and the start with it.
    let (mail, port) = SmtpSink::start_on(0).await;
    let app = TestApp::spawn_on(Arc::clone(&storage), mail, port, &[]).await;
    let recorded = if mode == Mode::Production {
        RECORDED_PG
    } else {
        RECORDED
    };
    let adopted = storage.sql_rows(recorded).await;
    // The same records, checksums included, as a database migrated from scratch.
    let fresh = TestApp::spawn(mode).await;
    let expected = fresh.storage.sql_rows(recorded).await;
    assert!(expected.len() >= 5, "{expected:?}");
    assert_eq!(adopted, expected);
    // And it works: sign-up, sign-in.
    app.signed_in(&app.verified_user().await).await;
}

both_modes!(a_database_of_the_former_runner_is_adopted);
