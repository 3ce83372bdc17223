//! The migrations create the contract: tables, named unique constraints, status checks.

use ads_stats::db::DbConn;
use ads_stats::db_run;
use chrono::NaiveDateTime;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::helpers::{migrated_db, test_settings, Backend, TestDb};
use crate::on_both_backends;

on_both_backends!(
    migrations_create_every_table_and_are_idempotent,
    duplicate_daily_rows_are_refused_by_the_named_constraints,
    status_checks_reject_bad_statuses,
    timestamps_round_trip_as_utc,
);

/// Every table of the schema.
pub(crate) const TABLES: [&str; 11] = [
    "sellers",
    "ad_connections",
    "sellpages",
    "campaigns",
    "adsets",
    "ads",
    "ad_stats_raw",
    "ad_stats_daily",
    "sellpage_stats_daily",
    "sync_jobs",
    "scheduler_ticks",
];

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn names(conn: &mut DbConn, backend: Backend, kind: &str) -> Vec<String> {
    let sql = match (backend, kind) {
        (Backend::Postgres, "table") => {
            "SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = current_schema()"
        }
        (Backend::Postgres, _) => {
            "SELECT conname::text AS name FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = current_schema()"
        }
        (Backend::Sqlite, "table") => "SELECT name FROM sqlite_master WHERE type = 'table'",
        (Backend::Sqlite, _) => "SELECT name FROM sqlite_master WHERE type = 'index'",
    };
    let rows: Vec<Name> =
        db_run!(conn, { diesel::sql_query(sql).load(conn).await }).expect("catalog query");
    rows.into_iter().map(|r| r.name).collect()
}

async fn execute(conn: &mut DbConn, sql: &str) -> Result<usize, diesel::result::Error> {
    db_run!(conn, { diesel::sql_query(sql).execute(conn).await })
}

async fn migrations_create_every_table_and_are_idempotent(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let tables = names(&mut conn, backend, "table").await;
    for table in TABLES {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing; have {tables:?}"
        );
    }
    let settings = test_settings(&test_db.url, |_| {});
    let again = db.run_migrations(&settings.database_url()).await.unwrap();
    assert_eq!(again, 0, "a second run applies nothing");
}

async fn duplicate_daily_rows_are_refused_by_the_named_constraints(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let constraints = names(&mut conn, backend, "constraint").await;
    for name in ["uq_ad_stats_daily", "uq_sellpage_stats_daily"] {
        assert!(
            constraints.iter().any(|c| c == name),
            "{name} missing; have {constraints:?}"
        );
    }
    let daily = "INSERT INTO ad_stats_daily (seller_id, level, entity_id, stat_date, spend_cents, impressions, \
        clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, raw_count) \
        VALUES ('s', 'CAMPAIGN', 'c1', '2026-11-28', 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)";
    execute(&mut conn, daily).await.expect("first daily row");
    let err = execute(&mut conn, daily)
        .await
        .expect_err("duplicate refused");
    assert!(
        matches!(
            err,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            )
        ),
        "{err:?}"
    );
    let page = "INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date, ad_spend_cents, impressions, \
        clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, campaign_count) \
        VALUES ('s', 'p1', '2026-11-28', 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)";
    execute(&mut conn, page).await.expect("first sellpage row");
    let err = execute(&mut conn, page)
        .await
        .expect_err("duplicate refused");
    assert!(
        matches!(
            err,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            )
        ),
        "{err:?}"
    );
}

async fn status_checks_reject_bad_statuses(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    execute(
        &mut conn,
        "INSERT INTO sellers (id, name, status) VALUES ('s1', 'ok', 'ACTIVE')",
    )
    .await
    .expect("a good status is accepted");
    let refused = [
        "INSERT INTO sellers (id, name, status) VALUES ('s2', 'x', 'active')",
        "INSERT INTO sellers (id, name, status) VALUES ('s3', 'x', 'BANNED')",
        "INSERT INTO ad_connections (id, seller_id, external_account_id, status) VALUES ('c1', 's1', 'a', 'PAUSED')",
        "INSERT INTO ad_stats_raw (seller_id, level, entity_id, stat_date, spend_cents, impressions, clicks, \
         content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, provider) \
         VALUES ('s1', 'KEYWORD', 'e', '2026-11-28', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'mock')",
    ];
    for sql in refused {
        let err = execute(&mut conn, sql).await.expect_err(sql);
        assert!(
            matches!(
                err,
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::CheckViolation,
                    _
                )
            ),
            "{sql}: {err:?}"
        );
    }
    execute(
        &mut conn,
        "INSERT INTO ad_connections (id, seller_id, external_account_id) VALUES ('c1', 's1', 'a')",
    )
    .await
    .expect("connection defaults to ACTIVE, provider META");
    let err = execute(
        &mut conn,
        "INSERT INTO campaigns (id, seller_id, connection_id, name, status, daily_budget_cents) \
         VALUES ('k1', 's1', 'c1', 'n', 'ACTIVE', -5)",
    )
    .await
    .expect_err("negative budget refused");
    assert!(
        matches!(
            err,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::CheckViolation,
                _
            )
        ),
        "{err:?}"
    );
    let err = execute(
        &mut conn,
        "INSERT INTO campaigns (id, seller_id, connection_id, name, status, daily_budget_cents) \
         VALUES ('k2', 's1', 'missing-connection', 'n', 'ACTIVE', 5)",
    )
    .await
    .expect_err("foreign keys are enforced");
    assert!(
        matches!(
            err,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _
            )
        ),
        "{err:?}"
    );
}

#[derive(QueryableByName)]
struct Stamp {
    #[diesel(sql_type = Timestamp)]
    created_at: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

async fn timestamps_round_trip_as_utc(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut owned = db.conn().await.unwrap();
    let conn = &mut owned;
    let written = chrono::NaiveDate::from_ymd_opt(2026, 3, 29)
        .unwrap()
        .and_hms_micro_opt(1, 30, 15, 123_456)
        .unwrap();
    db_run!(conn, {
        diesel::sql_query(
            "INSERT INTO sellers (id, name, status, created_at) VALUES ('s1', 'n', 'ACTIVE', $1)",
        )
        .bind::<Timestamp, _>(written)
        .execute(conn)
        .await
    })
    .unwrap();
    let rows: Vec<Stamp> = db_run!(conn, {
        diesel::sql_query("SELECT created_at, COUNT(*) AS n FROM sellers GROUP BY created_at")
            .load(conn)
            .await
    })
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].created_at, written);
    assert_eq!(rows[0].n, 1);
    if backend == Backend::Postgres {
        #[derive(QueryableByName)]
        struct Epoch {
            #[diesel(sql_type = BigInt)]
            epoch: i64,
        }
        let e: Vec<Epoch> = db_run!(conn, {
            diesel::sql_query(
                "SELECT CAST(EXTRACT(EPOCH FROM created_at) AS BIGINT) AS epoch FROM sellers",
            )
            .load(conn)
            .await
        })
        .unwrap();
        assert_eq!(
            e[0].epoch,
            written.and_utc().timestamp(),
            "stored as the UTC instant"
        );
    }
}
