//! Raw storage at scale (issue 17, item 3): on PostgreSQL `ad_stats_raw` is partitioned by UTC
//! day of `fetched_at`, the service creates the days ahead, and retention drops whole days; on
//! SQLite the row is smaller and retention keeps deleting in batches. Migration 000014 keeps
//! every existing row on both.

use std::path::Path;
use std::time::{Duration, Instant};

use ads_stats::config::Aggregation;
use ads_stats::db::models::NewRawStat;
use ads_stats::db::retention::{self, raw_partition_name, PartitionWork};
use ads_stats::db::{now_utc, writes, DbConn};
use ads_stats::db_run;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::sql_types::{BigInt, Date, Double, Nullable, Text, Timestamp};
use diesel::QueryableByName;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use crate::helpers::{app, migrated_db, test_settings, Backend, TestDb};
use crate::on_both_backends;

on_both_backends!(
    the_upgrade_keeps_every_raw_row,
    retention_drops_whole_days_and_keeps_today,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inserts_across_midnight_land_in_their_days_partitions() {
        super::inserts_across_midnight_land_in_their_days_partitions().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_row_without_its_days_partition_is_kept_and_moved_in_later() {
        super::a_row_without_its_days_partition_is_kept_and_moved_in_later().await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_service_creates_the_days_ahead() {
        super::the_service_creates_the_days_ahead().await
    }
}

async fn batch(conn: &mut DbConn, sql: &str) {
    db_run!(conn, { conn.batch_execute(sql).await }).expect(sql);
}

fn at(day: NaiveDate, h: u32, m: u32, s: u32) -> NaiveDateTime {
    day.and_hms_opt(h, m, s).expect("a valid time")
}

fn raw_row(entity: &str, job: i64, fetched_at: NaiveDateTime) -> NewRawStat {
    NewRawStat {
        seller_id: "s".into(),
        level: "CAMPAIGN".into(),
        entity_id: entity.into(),
        stat_date: fetched_at.date(),
        spend_cents: 100,
        impressions: 1000,
        clicks: 10,
        content_views: 5,
        add_to_cart: 2,
        checkouts: 1,
        purchases: 1,
        revenue_cents: 300,
        cpm: 1.0,
        ctr: 1.0,
        roas: 3.0,
        provider: "mock".into(),
        job_record_id: Some(job),
        fetched_at,
    }
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Placed {
    #[diesel(sql_type = Text)]
    partition: String,
    #[diesel(sql_type = Text)]
    entity_id: String,
}

/// Which partition holds each raw row (PostgreSQL).
async fn placement(conn: &mut DbConn) -> Vec<Placed> {
    let mut rows: Vec<Placed> = db_run!(conn, {
        diesel::sql_query(
            "SELECT CAST(CAST(tableoid AS regclass) AS TEXT) AS partition, entity_id \
             FROM ad_stats_raw",
        )
        .load(conn)
        .await
    })
    .expect("placement");
    rows.sort();
    rows
}

fn placed(partition: &str, entity: &str) -> Placed {
    Placed {
        partition: partition.into(),
        entity_id: entity.into(),
    }
}

async fn inserts_across_midnight_land_in_their_days_partitions() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    // A midnight of our choosing, away from today's partitions.
    let day = NaiveDate::from_ymd_opt(2026, 3, 28).unwrap();
    let next = day.succ_opt().unwrap();
    let created = retention::ensure_raw_partitions(&mut conn, day, 2)
        .await
        .unwrap();
    assert_eq!(created, vec![day, next]);

    // One batch a second before midnight, one a second after, through the service's write path.
    for (entity, job, fetched_at) in [
        ("before-midnight", 1, at(day, 23, 59, 59)),
        ("after-midnight", 2, at(next, 0, 0, 1)),
    ] {
        let rows = vec![raw_row(entity, job, fetched_at)];
        let (raw, daily) = conn
            .transaction(async |conn: &mut DbConn| {
                writes::append_and_fold(conn, Aggregation::Sum, &rows, now_utc()).await
            })
            .await
            .unwrap();
        assert_eq!((raw, daily), (1, 1));
    }
    assert_eq!(
        placement(&mut conn).await,
        vec![
            placed(&raw_partition_name(day), "before-midnight"),
            placed(&raw_partition_name(next), "after-midnight"),
        ]
    );
    // Read back whole, from either side of midnight.
    let before = writes::raw_rows(&mut conn, "CAMPAIGN", "before-midnight", day)
        .await
        .unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].fetched_at, at(day, 23, 59, 59));
    assert_eq!(before[0].job_record_id, Some(1));
}

async fn a_row_without_its_days_partition_is_kept_and_moved_in_later() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
    // No partition for the day: the DEFAULT partition takes the row, the sync does not fail.
    writes::insert_raw(&mut conn, &[raw_row("early", 1, at(day, 12, 0, 0))])
        .await
        .unwrap();
    assert_eq!(
        placement(&mut conn).await,
        vec![placed("ad_stats_raw_default", "early")]
    );
    // Creating the day's partition moves the row into it.
    let created = retention::ensure_raw_partitions(&mut conn, day, 1)
        .await
        .unwrap();
    assert_eq!(created, vec![day]);
    assert_eq!(
        placement(&mut conn).await,
        vec![placed(&raw_partition_name(day), "early")]
    );
    // A second call finds it there and creates nothing.
    assert!(retention::ensure_raw_partitions(&mut conn, day, 1)
        .await
        .unwrap()
        .is_empty());
}

async fn the_service_creates_the_days_ahead() {
    let today = now_utc().date();
    let ahead: Vec<NaiveDate> = today
        .iter_days()
        .take(1 + retention::RAW_PARTITION_DAYS_AHEAD as usize)
        .collect();
    let first = app(Backend::Postgres).spawn().await;
    let test_db = first.shutdown().await;
    // Take the days ahead away, as if the migration had run days ago and the service had been
    // stopped since.
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    for day in &ahead[1..] {
        let sql = format!("DROP TABLE {}", raw_partition_name(*day));
        batch(&mut conn, &sql).await;
    }
    let days = retention::raw_partition_days(&mut conn).await.unwrap();
    assert!(!days.contains(&ahead[1]), "{days:?}");
    drop(conn);

    // At start-up the service creates today's partition and the next days'.
    let second = app(Backend::Postgres).on_database(test_db).spawn().await;
    let started = Instant::now();
    loop {
        let mut conn = second.conn().await;
        let days = retention::raw_partition_days(&mut conn).await.unwrap();
        if ahead.iter().all(|d| days.contains(d)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "partitions {days:?}, expected {ahead:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.shutdown().await;
}

async fn retention_drops_whole_days_and_keeps_today(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    let now = now_utc();
    let cut_off = now - chrono::Duration::days(35);
    let old_day = (now - chrono::Duration::days(40)).date();
    let edge_day = cut_off.date();
    retention::ensure_raw_partitions(&mut conn, old_day, 1)
        .await
        .unwrap();
    retention::ensure_raw_partitions(&mut conn, edge_day, 1)
        .await
        .unwrap();
    let mut rows: Vec<NewRawStat> = (0..5)
        .map(|i| raw_row(&format!("old-{i}"), 1, at(old_day, 10, 0, 0)))
        .collect();
    // The day the cut-off falls in: a row before the cut-off, one after it.
    rows.push(raw_row(
        "edge-before",
        2,
        cut_off - chrono::Duration::seconds(1),
    ));
    rows.push(raw_row(
        "edge-after",
        2,
        cut_off + chrono::Duration::seconds(1),
    ));
    rows.push(raw_row("today", 3, now));
    writes::insert_raw(&mut conn, &rows).await.unwrap();
    assert_eq!(retention::raw_rows_total(&mut conn).await.unwrap(), 8);

    let work = retention::maintain_raw_partitions(&mut conn, now, cut_off)
        .await
        .unwrap();
    let pruned = retention::prune_raw(&mut conn, cut_off, 1000, 10)
        .await
        .unwrap();
    let left = entities(&mut conn).await;
    match backend {
        Backend::Postgres => {
            // The old day goes whole, in one statement; the day of the cut-off waits until all
            // of it is past (rows live at most a day longer than the retention); today stays.
            assert_eq!(work.dropped, vec![old_day]);
            assert_eq!(pruned.deleted, 0, "no row deleted one by one");
            assert_eq!(left, ["edge-after", "edge-before", "today"]);
            let days = retention::raw_partition_days(&mut conn).await.unwrap();
            assert!(!days.contains(&old_day), "{days:?}");
            assert!(days.contains(&edge_day) && days.contains(&now.date()));
        }
        Backend::Sqlite => {
            // No partitions: batched deletes to the second.
            assert_eq!(work, PartitionWork::default());
            assert_eq!(pruned.deleted, 6);
            assert_eq!(left, ["edge-after", "today"]);
        }
    }
}

#[derive(QueryableByName)]
struct Entity {
    #[diesel(sql_type = Text)]
    entity_id: String,
}

async fn entities(conn: &mut DbConn) -> Vec<String> {
    let rows: Vec<Entity> = db_run!(conn, {
        diesel::sql_query("SELECT entity_id FROM ad_stats_raw ORDER BY entity_id")
            .load(conn)
            .await
    })
    .unwrap();
    rows.into_iter().map(|r| r.entity_id).collect()
}

/// One raw row as both versions of the table hold it (the job as its id text before, as its
/// record's job id through `job_record_id` after).
#[derive(QueryableByName, Debug, PartialEq, PartialOrd)]
struct Kept {
    #[diesel(sql_type = Text)]
    seller_id: String,
    #[diesel(sql_type = Text)]
    level: String,
    #[diesel(sql_type = Text)]
    entity_id: String,
    #[diesel(sql_type = Date)]
    stat_date: NaiveDate,
    #[diesel(sql_type = BigInt)]
    spend_cents: i64,
    #[diesel(sql_type = BigInt)]
    impressions: i64,
    #[diesel(sql_type = BigInt)]
    purchases: i64,
    #[diesel(sql_type = BigInt)]
    revenue_cents: i64,
    #[diesel(sql_type = Double)]
    cpm: f64,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Nullable<Text>)]
    job_id: Option<String>,
    #[diesel(sql_type = Timestamp)]
    fetched_at: NaiveDateTime,
}

const KEPT_COLUMNS: &str = "r.seller_id, r.level, r.entity_id, r.stat_date, r.spend_cents, \
    CAST(r.impressions AS BIGINT) AS impressions, CAST(r.purchases AS BIGINT) AS purchases, \
    r.revenue_cents, r.cpm, r.provider";

async fn kept(conn: &mut DbConn, job_id: &str) -> Vec<Kept> {
    let sql = format!(
        "SELECT {KEPT_COLUMNS}, {job_id} AS job_id, r.fetched_at FROM ad_stats_raw r {} \
         ORDER BY r.fetched_at, r.entity_id",
        if job_id == "r.job_id" {
            ""
        } else {
            "LEFT JOIN sync_jobs j ON j.id = r.job_record_id"
        }
    );
    db_run!(conn, { diesel::sql_query(&sql).load(conn).await }).expect("raw rows")
}

/// Applies this backend's migrations before 000014 by hand, recording them as diesel does, so
/// that `run_migrations` then applies 000014 (and whatever follows) to a table with rows.
async fn migrate_before_000014(conn: &mut DbConn, backend: Backend) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(match backend {
        Backend::Postgres => "migrations/postgres",
        Backend::Sqlite => "migrations/sqlite",
    });
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("up.sql").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.as_str() < "2026-12-06-000014")
        .collect();
    names.sort();
    let mut script = String::from(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n",
    );
    for name in &names {
        script.push_str(&std::fs::read_to_string(dir.join(name).join("up.sql")).unwrap());
        let version = name.split('_').next().unwrap().replace('-', "");
        script.push_str(&format!(
            ";\nINSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');\n"
        ));
    }
    batch(conn, &script).await;
}

async fn the_upgrade_keeps_every_raw_row(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let settings = test_settings(&test_db.url, |_| {});
    let db = ads_stats::db::Db::connect(&settings.database).expect("pool");
    let mut conn = db.conn().await.unwrap();
    migrate_before_000014(&mut conn, backend).await;

    // Rows of two runs of one job id (its records created before each), of a job whose records
    // are pruned, and one from long ago (past the partitions the upgrade creates, on PostgreSQL).
    let now = now_utc();
    let ts = |days: i64, minutes: i64| {
        (now - chrono::Duration::days(days) + chrono::Duration::minutes(minutes))
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string()
    };
    let mut script = String::new();
    for (id, created) in [(7, ts(2, 0)), (9, ts(1, 0))] {
        script.push_str(&format!(
            "INSERT INTO sync_jobs (id, job_id, seller_id, level, date_from, date_to, triggered_by, \
             status, max_attempts, run_at, created_at) VALUES ({id}, 'sync__s__2026-12-01__2026-12-01__AD', \
             's', 'AD', '2026-12-01', '2026-12-01', 'SCHEDULE', 'SUCCEEDED', 3, '{created}', '{created}');\n"
        ));
    }
    let rows = [
        ("sync__s__2026-12-01__2026-12-01__AD", ts(2, 1), "e1"),
        ("sync__s__2026-12-01__2026-12-01__AD", ts(2, 1), "e2"),
        ("sync__s__2026-12-01__2026-12-01__AD", ts(1, 1), "e1"),
        ("sync__s__pruned", ts(3, 0), "e3"),
        ("sync__s__long_ago", ts(100, 0), "e4"),
    ];
    for (i, (job, fetched_at, entity)) in rows.iter().enumerate() {
        script.push_str(&format!(
            "INSERT INTO ad_stats_raw (seller_id, level, entity_id, stat_date, spend_cents, impressions, \
             clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, \
             provider, job_id, fetched_at) VALUES ('s', 'AD', '{entity}', '2026-12-01', {}, {}, 10, 5, 2, 1, \
             {i}, 9876543210, 8.5, 2.0, 1.25, 'mock', '{job}', '{fetched_at}');\n",
            100 + i,
            1000 + i
        ));
    }
    batch(&mut conn, &script).await;
    let before = kept(&mut conn, "r.job_id").await;
    assert_eq!(before.len(), rows.len());
    drop(conn);

    let applied = db.run_migrations(&settings.database_url()).await.unwrap();
    assert!(applied >= 1, "000014 applied");
    let mut conn = db.conn().await.unwrap();
    let after = kept(&mut conn, "j.job_id").await;
    // Every row, every value; the job through its record where the record is still there.
    let expected: Vec<Kept> = before
        .into_iter()
        .map(|k| Kept {
            job_id: k.job_id.filter(|j| j.ends_with("__AD")),
            ..k
        })
        .collect();
    assert_eq!(after, expected);
    // Each run's rows point at the record created before them.
    let c = &mut conn;
    let records: Vec<Record> = db_run!(c, {
        diesel::sql_query(
            "SELECT entity_id, job_record_id FROM ad_stats_raw ORDER BY fetched_at, entity_id",
        )
        .load(c)
        .await
    })
    .unwrap();
    let records: Vec<(String, Option<i64>)> = records
        .into_iter()
        .map(|r| (r.entity_id, r.job_record_id))
        .collect();
    assert_eq!(
        records,
        [
            ("e4".to_string(), None),
            ("e3".to_string(), None),
            ("e1".to_string(), Some(7)),
            ("e2".to_string(), Some(7)),
            ("e1".to_string(), Some(9)),
        ]
    );
    if matches!(backend, Backend::Postgres) {
        // The upgrade made the day partitions; the row from long ago waits in the DEFAULT one.
        let days = retention::raw_partition_days(&mut conn).await.unwrap();
        let first = (now - chrono::Duration::days(3)).date();
        for day in first.iter_days().take(7) {
            assert!(days.contains(&day), "{day} missing from {days:?}");
        }
        let placed = placement(&mut conn).await;
        assert!(
            placed.contains(&self::placed("ad_stats_raw_default", "e4")),
            "{placed:?}"
        );
    }
}

#[derive(QueryableByName)]
struct Record {
    #[diesel(sql_type = Text)]
    entity_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    job_record_id: Option<i64>,
}
