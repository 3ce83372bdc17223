//! `stats.lookback_days`: the first tick of each connection's local day (here at
//! `stats.lookback_hour` 0) also queues one job per level over the N days before it, once per
//! connection and day (two ticks, or two racing instances, never double it), and under `latest`
//! a re-synced day holds the fresh snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ads_stats::config::Aggregation;
use ads_stats::db::models::JobRecord;
use ads_stats::db::{writes, DbConn};
use ads_stats::db_run;
use ads_stats::providers::{FetchRequest, MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use diesel::sql_types::{Date, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::helpers::{app, merge, seller_catalog, Backend, TestApp};
use crate::on_both_backends;
use crate::timezones::set_timezone;

on_both_backends!(
    lookback_is_queued_once_per_connection_and_local_day,
    racing_ticks_queue_one_lookback,
    a_tick_that_fails_to_record_its_jobs_leaves_the_lookback_due,
    with_latest_a_resynced_day_holds_the_fresh_snapshot,
    no_lookback_when_it_is_off,
);

fn day(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

fn at(m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, mi, 0).unwrap()
}

fn lookback_jobs(jobs: &[JobRecord]) -> Vec<&JobRecord> {
    jobs.iter().filter(|j| j.date_from != j.date_to).collect()
}

/// (seller, from, to) → levels, of every lookback job record.
async fn lookback_sets(app: &TestApp) -> BTreeMap<(String, NaiveDate, NaiveDate), usize> {
    let mut out = BTreeMap::new();
    for j in lookback_jobs(&app.jobs().await) {
        assert_eq!(
            j.job_id,
            format!(
                "sync__{}__{}__{}__{}",
                j.seller_id, j.date_from, j.date_to, j.level
            )
        );
        *out.entry((j.seller_id.clone(), j.date_from, j.date_to))
            .or_default() += 1;
    }
    out
}

#[derive(QueryableByName)]
struct Marker {
    #[diesel(sql_type = Nullable<Date>)]
    lookback_queued_on: Option<NaiveDate>,
}

pub(crate) async fn marker(conn: &mut DbConn, connection: &str) -> Option<NaiveDate> {
    let rows: Vec<Marker> = db_run!(conn, {
        diesel::sql_query("SELECT lookback_queued_on FROM ad_connections WHERE id = $1")
            .bind::<Text, _>(connection)
            .load(conn)
            .await
    })
    .unwrap();
    rows.into_iter().next().unwrap().lookback_queued_on
}

async fn spawn_two_zones(backend: Backend) -> TestApp {
    let app = app(backend)
        .with_catalog(merge(seller_catalog("akl"), seller_catalog("lax")))
        .with_settings(|s| {
            s.stats.aggregation = Aggregation::Latest;
            s.stats.lookback_days = Some(3);
            // At the first tick of each local day, as these expectations were written for:
            // `meta_lookback.rs` covers the default hour.
            s.stats.lookback_hour = 0;
        })
        .spawn()
        .await;
    let mut conn = app.conn().await;
    set_timezone(&mut conn, "akl-conn", "Pacific/Auckland").await;
    set_timezone(&mut conn, "lax-conn", "America/Los_Angeles").await;
    app
}

async fn lookback_is_queued_once_per_connection_and_local_day(backend: Backend) {
    let app = spawn_two_zones(backend).await;
    let scheduler = app.app().scheduler();
    let set = |s: &str, from, to| ((s.to_string(), from, to), 3usize);

    // 10:00 UTC on the 28th: 23:00 in Auckland, 02:00 in Los Angeles, both on the 28th. Never
    // queued before: both get the 25th to the 27th.
    let s = scheduler.tick(at(11, 28, 10, 0)).await.unwrap();
    assert_eq!(s.lookback, 6, "{s:?}");
    assert_eq!(s.enqueued, 12, "today's 6 and the lookback's 6: {s:?}");
    // The same local day again: nothing.
    let s = scheduler.tick(at(11, 28, 10, 55)).await.unwrap();
    assert_eq!(s.lookback, 0, "{s:?}");
    assert_eq!(
        lookback_sets(&app).await,
        BTreeMap::from([
            set("akl", day(11, 25), day(11, 27)),
            set("lax", day(11, 25), day(11, 27))
        ])
    );

    // 11:00 UTC: midnight in Auckland (its 29th), still the 28th in Los Angeles.
    let s = scheduler.tick(at(11, 28, 11, 0)).await.unwrap();
    assert_eq!(s.lookback, 3, "{s:?}");
    let s = scheduler.tick(at(11, 28, 11, 5)).await.unwrap();
    assert_eq!(s.lookback, 0, "{s:?}");
    let mut conn = app.conn().await;
    assert_eq!(marker(&mut conn, "akl-conn").await, Some(day(11, 29)));
    assert_eq!(marker(&mut conn, "lax-conn").await, Some(day(11, 28)));
    drop(conn);

    // 07:59 UTC on the 29th is still the 28th in Los Angeles; 08:00 is its midnight.
    let s = scheduler.tick(at(11, 29, 7, 59)).await.unwrap();
    assert_eq!(s.lookback, 0, "{s:?}");
    let s = scheduler.tick(at(11, 29, 8, 0)).await.unwrap();
    assert_eq!(s.lookback, 3, "{s:?}");
    let s = scheduler.tick(at(11, 29, 8, 5)).await.unwrap();
    assert_eq!(s.lookback, 0, "{s:?}");

    assert_eq!(
        lookback_sets(&app).await,
        BTreeMap::from([
            set("akl", day(11, 25), day(11, 27)),
            set("akl", day(11, 26), day(11, 28)),
            set("lax", day(11, 25), day(11, 27)),
            set("lax", day(11, 26), day(11, 28)),
        ])
    );
    let jobs = app.jobs().await;
    assert!(jobs.iter().all(|j| j.triggered_by == "SCHEDULE"));
    assert_eq!(
        lookback_jobs(&jobs).len(),
        12,
        "one record per set and level"
    );
    app.shutdown().await;
}

async fn racing_ticks_queue_one_lookback(backend: Backend) {
    let app = spawn_two_zones(backend).await;
    let scheduler = app.app().scheduler();
    // Two ticks at once (two instances, or a redo of a tick thought abandoned): both read the
    // markers empty, only one transaction may claim each connection's day.
    let now = at(11, 28, 10, 0);
    let (a, b) = tokio::join!(scheduler.tick(now), scheduler.tick(now));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.lookback + b.lookback, 6, "{a:?} {b:?}");
    assert_eq!(lookback_jobs(&app.jobs().await).len(), 6);
    app.shutdown().await;
}

async fn execute(conn: &mut DbConn, sql: &str) {
    db_run!(conn, { diesel::sql_query(sql).execute(conn).await }).expect(sql);
}

async fn a_tick_that_fails_to_record_its_jobs_leaves_the_lookback_due(backend: Backend) {
    let app = spawn_two_zones(backend).await;
    let mut conn = app.conn().await;
    // Every job INSERT fails, after the tick has claimed the lookback in the same transaction.
    match backend {
        Backend::Sqlite => {
            execute(
                &mut conn,
                "CREATE TRIGGER no_jobs BEFORE INSERT ON sync_jobs \
                 BEGIN SELECT RAISE(ABORT, 'injected'); END",
            )
            .await
        }
        Backend::Postgres => {
            execute(
                &mut conn,
                "CREATE FUNCTION no_jobs() RETURNS trigger AS $$ \
                 BEGIN RAISE EXCEPTION 'injected'; END $$ LANGUAGE plpgsql",
            )
            .await;
            execute(
                &mut conn,
                "CREATE TRIGGER no_jobs BEFORE INSERT ON sync_jobs \
                 FOR EACH ROW EXECUTE FUNCTION no_jobs()",
            )
            .await
        }
    }
    let now = at(11, 28, 10, 0);
    assert!(app.app().scheduler().tick(now).await.is_err());
    // Rolled back with the jobs: the day is not taken as done.
    assert_eq!(marker(&mut conn, "akl-conn").await, None);
    assert_eq!(marker(&mut conn, "lax-conn").await, None);
    let drop_trigger = match backend {
        Backend::Sqlite => "DROP TRIGGER no_jobs",
        Backend::Postgres => "DROP TRIGGER no_jobs ON sync_jobs",
    };
    execute(&mut conn, drop_trigger).await;
    let s = app.app().scheduler().tick(now).await.unwrap();
    assert_eq!(s.lookback, 6, "{s:?}");
    assert_eq!(marker(&mut conn, "akl-conn").await, Some(day(11, 28)));
    drop(conn);
    app.shutdown().await;
}

async fn no_lookback_when_it_is_off(backend: Backend) {
    let app = app(backend).with_catalog(seller_catalog("s")).spawn().await;
    assert_eq!(
        app.settings.lookback_days(),
        0,
        "off by default for the mock"
    );
    let s = app.app().scheduler().tick(at(11, 28, 10, 0)).await.unwrap();
    assert_eq!((s.enqueued, s.lookback), (3, 0));
    let mut conn = app.conn().await;
    assert_eq!(marker(&mut conn, "s-conn").await, None);
    app.shutdown().await;
}

/// The mock's numbers times the number of fetches so far: each snapshot of a day differs from
/// the one before, as a provider's day-to-date totals do while late conversions arrive.
struct GrowingProvider {
    round: AtomicI64,
}

#[async_trait::async_trait]
impl StatProvider for GrowingProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        let k = AtomicI64::load(&self.round, Ordering::SeqCst);
        let mut rows = MockProvider.fetch(request).await?;
        for r in &mut rows {
            let m = &mut r.metrics;
            for counter in [
                &mut m.spend_cents,
                &mut m.impressions,
                &mut m.clicks,
                &mut m.content_views,
                &mut m.add_to_cart,
                &mut m.checkouts,
                &mut m.purchases,
                &mut m.revenue_cents,
            ] {
                *counter *= k;
            }
        }
        Ok(rows)
    }
}

async fn with_latest_a_resynced_day_holds_the_fresh_snapshot(backend: Backend) {
    let provider = Arc::new(GrowingProvider {
        round: AtomicI64::new(1),
    });
    let app = app(backend)
        .with_catalog(seller_catalog("s"))
        .with_provider(provider.clone())
        .with_settings(|s| {
            s.stats.aggregation = Aggregation::Latest;
            s.stats.lookback_days = Some(2);
            s.stats.lookback_hour = 0;
        })
        .spawn()
        .await;
    let scheduler = app.app().scheduler();
    // UTC connection. The 10th: today's jobs for the 10th, a lookback of the 8th and 9th.
    scheduler.tick(at(11, 10, 12, 0)).await.unwrap();
    app.wait_until_idle(Duration::from_secs(30)).await;
    // The 11th, with fresher numbers: today is the 11th, the lookback re-syncs the 9th and 10th.
    provider.round.store(3, Ordering::SeqCst);
    let s = scheduler.tick(at(11, 11, 0, 5)).await.unwrap();
    assert_eq!(s.lookback, 3);
    app.wait_until_idle(Duration::from_secs(30)).await;
    assert!(app.jobs().await.iter().all(|j| j.status == "SUCCEEDED"));

    let mut conn = app.conn().await;
    for (entity, level) in [("s-cmp-1", "CAMPAIGN"), ("s-ad-3", "AD")] {
        let raws = writes::raw_rows(&mut conn, level, entity, day(11, 10))
            .await
            .unwrap();
        assert_eq!(raws.len(), 2, "synced on the 10th, re-synced on the 11th");
        let (first, fresh) = (&raws[0], &raws[1]);
        assert_eq!(fresh.spend_cents, first.spend_cents * 3);
        let daily = writes::daily_row(&mut conn, level, entity, day(11, 10))
            .await
            .unwrap()
            .expect("a daily row");
        // The fresh snapshot, not the sum of the two.
        assert_eq!(
            (
                daily.spend_cents,
                daily.impressions,
                daily.clicks,
                daily.purchases,
                daily.revenue_cents
            ),
            (
                fresh.spend_cents,
                fresh.impressions,
                fresh.clicks,
                fresh.purchases,
                fresh.revenue_cents
            ),
            "{entity}"
        );
        // `raw_count` counts every raw row folded into the day, replaced or not.
        assert_eq!(daily.raw_count, 2);
    }
    // A day the lookback did not reach again keeps its single snapshot.
    let raws = writes::raw_rows(&mut conn, "CAMPAIGN", "s-cmp-1", day(11, 8))
        .await
        .unwrap();
    assert_eq!(raws.len(), 1);
    drop(conn);
    app.shutdown().await;
}
