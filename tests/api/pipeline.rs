//! The three-tier pipeline against a real database: raw rows, daily folding, sellpage rollup,
//! eligibility, budgets and all-or-nothing writes.

use std::sync::Arc;

use ads_stats::config::Aggregation;
use ads_stats::db::catalog::{self, insert_catalog, HierarchyTable};
use ads_stats::db::schema::campaigns;
use ads_stats::db::{writes, Db, DbConn};
use ads_stats::db_run;
use ads_stats::domain::{ratios, Level};
use ads_stats::pipeline::entities::delivering_entities;
use ads_stats::pipeline::{FaultPoint, Pipeline, SyncRequest};
use ads_stats::providers::mock::mock_metrics;
use ads_stats::providers::{FetchRequest, MockProvider, ProviderError, ProviderStat, StatProvider};
use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::helpers::{
    add_seller, merge, migrated_db, scheduled_sellers, seller_catalog, Backend, TestDb,
};
use crate::on_both_backends;

on_both_backends!(
    raw_rows_carry_every_field,
    raw_table_is_append_only,
    daily_rows_sum_raw_rows_and_recompute_ratios,
    latest_mode_keeps_the_latest_snapshot,
    first_sync_ratios_come_from_the_totals,
    sellpages_roll_up_their_campaigns,
    a_campaign_moved_to_another_sellpage_counts_there_only,
    a_campaign_losing_its_sellpage_leaves_the_rollup,
    the_last_campaign_leaving_a_sellpage_takes_its_row,
    eligible_sellers_are_active_connected_and_delivering,
    effective_budgets_follow_the_hierarchy,
    a_failure_after_the_raw_insert_leaves_nothing,
    a_date_range_writes_every_day,
);

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
}

async fn seeded(backend: Backend, sellers: &[&str]) -> (TestDb, Db) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut conn = db.conn().await.unwrap();
    for s in sellers {
        insert_catalog(&mut conn, &seller_catalog(s)).await.unwrap();
    }
    (test_db, db)
}

fn pipeline(db: &Db, aggregation: Aggregation) -> Pipeline {
    Pipeline::new(db.clone(), Arc::new(MockProvider), aggregation)
}

async fn raw_rows_carry_every_field(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let request = SyncRequest::one_day("s1", Level::Campaign, day());
    let before = ads_stats::db::now_utc();
    let summary = pipeline(&db, Aggregation::Sum).run(&request).await.unwrap();
    assert_eq!((summary.entities, summary.raw_rows), (4, 4));
    let mut conn = db.conn().await.unwrap();
    let rows = writes::raw_rows(&mut conn, "CAMPAIGN", "s1-cmp-1", day())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let expected = mock_metrics("s1", "s1-cmp-1", day(), 5_000);
    assert_eq!(row.seller_id, "s1");
    assert_eq!(row.level, "CAMPAIGN");
    assert_eq!(row.stat_date, day());
    assert_eq!(
        (
            row.spend_cents,
            row.impressions,
            row.clicks,
            row.content_views
        ),
        (
            expected.spend_cents,
            expected.impressions,
            expected.clicks,
            expected.content_views
        )
    );
    assert_eq!(
        (
            row.add_to_cart,
            row.checkouts,
            row.purchases,
            row.revenue_cents
        ),
        (
            expected.add_to_cart,
            expected.checkouts,
            expected.purchases,
            expected.revenue_cents
        )
    );
    assert_eq!(
        (row.cpm, row.ctr, row.roas),
        (expected.cpm, expected.ctr, expected.roas)
    );
    assert_eq!(row.provider, "mock");
    // A raw row refers to the run's job record (`sync_jobs.id`); this run has none (it runs
    // outside the job runtime, as `ads-stats sync` does).
    assert_eq!(row.job_record_id, None);
    assert!(row.fetched_at >= before);
    assert!(row.impressions >= row.clicks && row.clicks >= row.content_views);
    assert!(row.content_views >= row.add_to_cart && row.add_to_cart >= row.checkouts);
    assert!(row.checkouts >= row.purchases);
    assert!(
        (4_250..=5_750).contains(&row.spend_cents),
        "within 15% of 5000: {}",
        row.spend_cents
    );
}

async fn raw_table_is_append_only(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let p = pipeline(&db, Aggregation::Sum);
    let request = SyncRequest::one_day("s1", Level::Ad, day());
    p.run(&request).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let first = writes::raw_rows(&mut conn, "AD", "s1-ad-1", day())
        .await
        .unwrap();
    drop(conn);
    p.run(&request).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let both = writes::raw_rows(&mut conn, "AD", "s1-ad-1", day())
        .await
        .unwrap();
    assert_eq!(both.len(), 2, "two syncs, two raw rows");
    assert_eq!(both[0], first[0], "the first row is untouched");
    // Raw rows have no id any more: a sync's batch is told apart by its fetch time.
    assert_ne!(both[0].fetched_at, both[1].fetched_at);
    assert_eq!(
        both[1].spend_cents, first[0].spend_cents,
        "the mock is deterministic"
    );
}

async fn daily_rows_sum_raw_rows_and_recompute_ratios(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let p = pipeline(&db, Aggregation::Sum);
    let request = SyncRequest::one_day("s1", Level::Campaign, day());
    let summary = p.run(&request).await.unwrap();
    assert_eq!(summary.daily_rows, 4);
    let mut conn = db.conn().await.unwrap();
    let raw = writes::raw_rows(&mut conn, "CAMPAIGN", "s1-cmp-2", day())
        .await
        .unwrap();
    let daily = writes::daily_row(&mut conn, "CAMPAIGN", "s1-cmp-2", day())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(daily.raw_count, 1);
    assert_eq!(daily.spend_cents, raw[0].spend_cents);
    assert_eq!(
        (daily.cpm, daily.ctr, daily.roas),
        ratios(
            daily.spend_cents,
            daily.impressions,
            daily.clicks,
            daily.revenue_cents
        )
    );
    drop(conn);

    p.run(&request).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let raw = writes::raw_rows(&mut conn, "CAMPAIGN", "s1-cmp-2", day())
        .await
        .unwrap();
    let daily = writes::daily_row(&mut conn, "CAMPAIGN", "s1-cmp-2", day())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(daily.raw_count, 2);
    let sum = |f: fn(&ads_stats::db::models::RawStat) -> i64| raw.iter().map(f).sum::<i64>();
    assert_eq!(daily.spend_cents, sum(|r| r.spend_cents));
    assert_eq!(daily.impressions, sum(|r| r.impressions));
    assert_eq!(daily.clicks, sum(|r| r.clicks));
    assert_eq!(daily.purchases, sum(|r| r.purchases));
    assert_eq!(daily.revenue_cents, sum(|r| r.revenue_cents));
    assert_eq!(
        daily.spend_cents,
        2 * raw[0].spend_cents,
        "by design, two syncs double the day"
    );
    let (cpm, ctr, roas) = ratios(
        daily.spend_cents,
        daily.impressions,
        daily.clicks,
        daily.revenue_cents,
    );
    assert_eq!(
        (daily.cpm, daily.ctr, daily.roas),
        (cpm, ctr, roas),
        "ratios from totals"
    );
}

async fn latest_mode_keeps_the_latest_snapshot(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let p = pipeline(&db, Aggregation::Latest);
    let request = SyncRequest::one_day("s1", Level::Campaign, day());
    p.run(&request).await.unwrap();
    p.run(&request).await.unwrap();
    let mut conn = db.conn().await.unwrap();
    let raw = writes::raw_rows(&mut conn, "CAMPAIGN", "s1-cmp-1", day())
        .await
        .unwrap();
    let daily = writes::daily_row(&mut conn, "CAMPAIGN", "s1-cmp-1", day())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(daily.raw_count, 2);
    assert_eq!(
        daily.spend_cents, raw[1].spend_cents,
        "unchanged by the second sync"
    );
    assert_eq!(daily.revenue_cents, raw[1].revenue_cents);
    assert_eq!(daily.cpm, raw[1].cpm);
}

/// The mock's readings with ratios that contradict their own totals, as a provider that rounds
/// (or errs) would send.
struct SkewedRatios;

const SKEWED: f64 = 999.0;

#[async_trait::async_trait]
impl StatProvider for SkewedRatios {
    fn name(&self) -> &'static str {
        "skewed"
    }

    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        let mut stats = MockProvider.fetch(request).await?;
        for s in &mut stats {
            s.metrics.cpm = SKEWED;
            s.metrics.ctr = SKEWED;
            s.metrics.roas = SKEWED;
        }
        Ok(stats)
    }
}

async fn first_sync_ratios_come_from_the_totals(backend: Backend) {
    for aggregation in [Aggregation::Sum, Aggregation::Latest] {
        let (_t, db) = seeded(backend, &["s1"]).await;
        let p = Pipeline::new(db.clone(), Arc::new(SkewedRatios), aggregation);
        let request = SyncRequest::one_day("s1", Level::Campaign, day());
        for sync in 1..=2 {
            p.run(&request).await.unwrap();
            let mut conn = db.conn().await.unwrap();
            let raw = writes::raw_rows(&mut conn, "CAMPAIGN", "s1-cmp-1", day())
                .await
                .unwrap();
            assert_eq!(
                (raw[0].cpm, raw[0].ctr, raw[0].roas),
                (SKEWED, SKEWED, SKEWED),
                "raw rows keep what the provider said"
            );
            for k in 1..=4 {
                let entity = format!("s1-cmp-{k}");
                let daily = writes::daily_row(&mut conn, "CAMPAIGN", &entity, day())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(daily.raw_count, sync);
                assert!(daily.impressions > 0 && daily.spend_cents > 0, "{daily:?}");
                assert_eq!(
                    (daily.cpm, daily.ctr, daily.roas),
                    ratios(
                        daily.spend_cents,
                        daily.impressions,
                        daily.clicks,
                        daily.revenue_cents
                    ),
                    "{aggregation:?}, sync {sync}, {entity}"
                );
            }
        }
    }
}

async fn sellpages_roll_up_their_campaigns(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1", "s2"]).await;
    let mut conn = db.conn().await.unwrap();
    // Page 2's only campaign stops delivering: page 2 gets no row.
    catalog::set_status(&mut conn, HierarchyTable::Campaigns, "s1-cmp-3", "PAUSED")
        .await
        .unwrap();
    drop(conn);
    let p = pipeline(&db, Aggregation::Sum);
    let summary = p
        .run(&SyncRequest::one_day("s1", Level::Campaign, day()))
        .await
        .unwrap();
    assert_eq!(summary.sellpage_rows, 1);
    p.run(&SyncRequest::one_day("s2", Level::Campaign, day()))
        .await
        .unwrap();

    let mut conn = db.conn().await.unwrap();
    let c1 = writes::daily_row(&mut conn, "CAMPAIGN", "s1-cmp-1", day())
        .await
        .unwrap()
        .unwrap();
    let c2 = writes::daily_row(&mut conn, "CAMPAIGN", "s1-cmp-2", day())
        .await
        .unwrap()
        .unwrap();
    let page = writes::sellpage_row(&mut conn, "s1-page-1", day())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.seller_id, "s1");
    assert_eq!(page.ad_spend_cents, c1.spend_cents + c2.spend_cents);
    assert_eq!(page.impressions, c1.impressions + c2.impressions);
    assert_eq!(page.revenue_cents, c1.revenue_cents + c2.revenue_cents);
    assert_eq!(page.campaign_count, 2);
    let (cpm, ctr, roas) = ratios(
        page.ad_spend_cents,
        page.impressions,
        page.clicks,
        page.revenue_cents,
    );
    assert_eq!((page.cpm, page.ctr, page.roas), (cpm, ctr, roas));
    assert!(writes::sellpage_row(&mut conn, "s1-page-2", day())
        .await
        .unwrap()
        .is_none());
    assert!(writes::sellpage_row(&mut conn, "s2-page-1", day())
        .await
        .unwrap()
        .is_some());
    drop(conn);

    // A second sync: the sellpage follows the (doubled) daily rows.
    p.run(&SyncRequest::one_day("s1", Level::Campaign, day()))
        .await
        .unwrap();
    let mut conn = db.conn().await.unwrap();
    let again = writes::sellpage_row(&mut conn, "s1-page-1", day())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.ad_spend_cents, 2 * page.ad_spend_cents);
    assert_eq!(again.campaign_count, 2);
}

async fn eligible_sellers_are_active_connected_and_delivering(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = migrated_db(&test_db).await;
    let mut everyone = seller_catalog("active");
    everyone = merge(everyone, seller_catalog("suspended"));
    everyone = merge(everyone, seller_catalog("revoked"));
    everyone = merge(everyone, seller_catalog("paused-only"));
    add_seller(&mut everyone, "empty", "ACTIVE", "ACTIVE");
    let mut conn = db.conn().await.unwrap();
    insert_catalog(&mut conn, &everyone).await.unwrap();
    catalog::set_status(&mut conn, HierarchyTable::Sellers, "suspended", "SUSPENDED")
        .await
        .unwrap();
    catalog::set_status(
        &mut conn,
        HierarchyTable::AdConnections,
        "revoked-conn",
        "REVOKED",
    )
    .await
    .unwrap();
    for k in 1..=4 {
        catalog::set_status(
            &mut conn,
            HierarchyTable::Campaigns,
            &format!("paused-only-cmp-{k}"),
            "PAUSED",
        )
        .await
        .unwrap();
    }
    assert_eq!(
        scheduled_sellers(&mut conn).await,
        vec!["active".to_string()]
    );
    assert!(catalog::is_eligible(&mut conn, "active").await.unwrap());
    for s in ["suspended", "revoked", "paused-only", "empty", "unknown"] {
        assert!(!catalog::is_eligible(&mut conn, s).await.unwrap(), "{s}");
    }
    // The manual sync's one-statement read agrees with the rule and with the status and zones.
    for s in [
        "active",
        "suspended",
        "revoked",
        "paused-only",
        "empty",
        "unknown",
    ] {
        let facts = catalog::seller_for_sync(&mut conn, s).await.unwrap();
        assert_eq!(
            facts.eligible,
            catalog::is_eligible(&mut conn, s).await.unwrap(),
            "{s}"
        );
        assert_eq!(
            facts.status,
            catalog::seller_status(&mut conn, s).await.unwrap(),
            "{s}"
        );
        assert_eq!(
            facts.timezones,
            catalog::seller_timezones(&mut conn, s).await.unwrap(),
            "{s}"
        );
    }
    assert_eq!(
        catalog::seller_for_sync(&mut conn, "unknown")
            .await
            .unwrap(),
        catalog::SellerForSync::default()
    );
}

async fn effective_budgets_follow_the_hierarchy(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let mut conn = db.conn().await.unwrap();
    let budgets = |v: Vec<ads_stats::domain::EntityBudget>| {
        v.into_iter()
            .map(|e| (e.entity_id, e.daily_budget_cents))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        budgets(
            delivering_entities(&mut conn, "s1", Level::Adset)
                .await
                .unwrap()
        ),
        vec![("s1-adset-1".into(), 2_500), ("s1-adset-2".into(), 1_200)],
        "adset-1 shares cmp-1's 5000 with its sibling; adset-2 has its own"
    );
    assert_eq!(
        budgets(
            delivering_entities(&mut conn, "s1", Level::Ad)
                .await
                .unwrap()
        ),
        vec![
            ("s1-ad-1".into(), 1_250),
            ("s1-ad-2".into(), 1_250),
            ("s1-ad-3".into(), 1_200)
        ]
    );
    // A paused ad set stops delivering; its sibling then takes the whole campaign budget.
    catalog::set_status(&mut conn, HierarchyTable::Adsets, "s1-adset-2", "PAUSED")
        .await
        .unwrap();
    catalog::set_status(&mut conn, HierarchyTable::Ads, "s1-ad-2", "ARCHIVED")
        .await
        .unwrap();
    assert_eq!(
        budgets(
            delivering_entities(&mut conn, "s1", Level::Adset)
                .await
                .unwrap()
        ),
        vec![("s1-adset-1".into(), 5_000)]
    );
    assert_eq!(
        budgets(
            delivering_entities(&mut conn, "s1", Level::Ad)
                .await
                .unwrap()
        ),
        vec![("s1-ad-1".into(), 5_000)]
    );
    // A revoked connection stops everything below it.
    catalog::set_status(
        &mut conn,
        HierarchyTable::AdConnections,
        "s1-conn",
        "REVOKED",
    )
    .await
    .unwrap();
    assert!(delivering_entities(&mut conn, "s1", Level::Campaign)
        .await
        .unwrap()
        .is_empty());
    assert!(delivering_entities(&mut conn, "s1", Level::Ad)
        .await
        .unwrap()
        .is_empty());
}

async fn a_failure_after_the_raw_insert_leaves_nothing(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let p = pipeline(&db, Aggregation::Sum);
    let request = SyncRequest::one_day("s1", Level::Campaign, day());
    for point in [FaultPoint::AfterRawInsert, FaultPoint::BeforeCompletion] {
        p.faults().arm(point, 1);
        let err = p.run(&request).await.expect_err("injected failure");
        assert!(err.to_string().contains("injected"), "{err}");
        let mut conn = db.conn().await.unwrap();
        assert_eq!(
            writes::tier_counts(&mut conn, "s1").await.unwrap(),
            (0, 0, 0),
            "{point:?}"
        );
    }
    // The connection that saw the rollback is healthy, and the next sync writes everything once.
    let summary = p.run(&request).await.unwrap();
    assert_eq!(
        (summary.raw_rows, summary.daily_rows, summary.sellpage_rows),
        (4, 4, 2)
    );
    let mut conn = db.conn().await.unwrap();
    assert_eq!(
        writes::tier_counts(&mut conn, "s1").await.unwrap(),
        (4, 4, 2)
    );
}

async fn a_date_range_writes_every_day(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let from = NaiveDate::from_ymd_opt(2026, 2, 27).unwrap();
    let to = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let request = SyncRequest {
        seller_id: "s1".into(),
        level: Level::Campaign,
        date_from: from,
        date_to: to,
    };
    let summary = pipeline(&db, Aggregation::Sum).run(&request).await.unwrap();
    assert_eq!(summary.raw_rows, 4 * 4, "4 campaigns × 4 days");
    assert_eq!(summary.daily_rows, 16);
    assert_eq!(summary.sellpage_rows, 2 * 4);
    let mut conn = db.conn().await.unwrap();
    for d in from.iter_days().take(4) {
        let raw = writes::raw_rows(&mut conn, "CAMPAIGN", "s1-cmp-3", d)
            .await
            .unwrap();
        assert_eq!(
            raw[0].spend_cents,
            mock_metrics("s1", "s1-cmp-3", d, 2_500).spend_cents
        );
    }
}

async fn set_sellpage(conn: &mut DbConn, campaign: &str, sellpage: Option<&str>) {
    let updated = db_run!(conn, {
        diesel::update(campaigns::table.find(campaign))
            .set(campaigns::sellpage_id.eq(sellpage))
            .execute(conn)
            .await
    })
    .unwrap();
    assert_eq!(updated, 1, "{campaign}");
}

/// The sellpage's row on `date` counts exactly `members`, with the sums of their daily rows.
async fn assert_page_holds(conn: &mut DbConn, page: &str, date: NaiveDate, members: &[&str]) {
    let row = writes::sellpage_row(conn, page, date)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{page} has no row on {date}"));
    let (mut spend, mut impressions, mut revenue) = (0, 0, 0);
    for campaign in members {
        let daily = writes::daily_row(conn, "CAMPAIGN", campaign, date)
            .await
            .unwrap()
            .unwrap();
        spend += daily.spend_cents;
        impressions += daily.impressions;
        revenue += daily.revenue_cents;
    }
    assert_eq!(
        (
            row.campaign_count,
            row.ad_spend_cents,
            row.impressions,
            row.revenue_cents
        ),
        (members.len() as i64, spend, impressions, revenue),
        "{page} on {date} should hold {members:?}"
    );
}

async fn sync_campaigns(p: &Pipeline, seller: &str, from: NaiveDate, to: NaiveDate) {
    p.run(&SyncRequest {
        seller_id: seller.into(),
        level: Level::Campaign,
        date_from: from,
        date_to: to,
    })
    .await
    .unwrap();
}

async fn a_campaign_moved_to_another_sellpage_counts_there_only(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1", "s2"]).await;
    let p = pipeline(&db, Aggregation::Sum);
    sync_campaigns(&p, "s1", day(), day()).await;
    sync_campaigns(&p, "s2", day(), day()).await;
    let mut conn = db.conn().await.unwrap();
    assert_page_holds(&mut conn, "s1-page-1", day(), &["s1-cmp-1", "s1-cmp-2"]).await;
    assert_page_holds(&mut conn, "s1-page-2", day(), &["s1-cmp-3"]).await;
    let other_seller = writes::sellpage_row(&mut conn, "s2-page-1", day())
        .await
        .unwrap()
        .unwrap();

    set_sellpage(&mut conn, "s1-cmp-2", Some("s1-page-2")).await;
    drop(conn);
    sync_campaigns(&p, "s1", day(), day()).await;
    let mut conn = db.conn().await.unwrap();
    assert_page_holds(&mut conn, "s1-page-1", day(), &["s1-cmp-1"]).await;
    assert_page_holds(&mut conn, "s1-page-2", day(), &["s1-cmp-2", "s1-cmp-3"]).await;
    assert_eq!(
        writes::sellpage_row(&mut conn, "s2-page-1", day())
            .await
            .unwrap()
            .unwrap(),
        other_seller,
        "another seller's rollup is not rebuilt"
    );
}

async fn a_campaign_losing_its_sellpage_leaves_the_rollup(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let p = pipeline(&db, Aggregation::Sum);
    sync_campaigns(&p, "s1", day(), day()).await;
    let mut conn = db.conn().await.unwrap();
    assert_page_holds(&mut conn, "s1-page-2", day(), &["s1-cmp-3"]).await;

    set_sellpage(&mut conn, "s1-cmp-1", None).await;
    set_sellpage(&mut conn, "s1-cmp-3", None).await;
    drop(conn);
    let summary = p
        .run(&SyncRequest::one_day("s1", Level::Campaign, day()))
        .await
        .unwrap();
    assert_eq!(summary.sellpage_rows, 1);
    let mut conn = db.conn().await.unwrap();
    assert_page_holds(&mut conn, "s1-page-1", day(), &["s1-cmp-2"]).await;
    assert!(
        writes::sellpage_row(&mut conn, "s1-page-2", day())
            .await
            .unwrap()
            .is_none(),
        "page-2 has no campaign left"
    );
    assert_eq!(writes::tier_counts(&mut conn, "s1").await.unwrap().2, 1);
}

async fn the_last_campaign_leaving_a_sellpage_takes_its_row(backend: Backend) {
    let (_t, db) = seeded(backend, &["s1"]).await;
    let p = pipeline(&db, Aggregation::Sum);
    let before = day().pred_opt().unwrap();
    sync_campaigns(&p, "s1", before, day()).await;
    let mut conn = db.conn().await.unwrap();
    set_sellpage(&mut conn, "s1-cmp-3", Some("s1-page-1")).await;
    drop(conn);

    // Only `day()` is synced again, so only `day()` follows the move.
    sync_campaigns(&p, "s1", day(), day()).await;
    let mut conn = db.conn().await.unwrap();
    assert!(
        writes::sellpage_row(&mut conn, "s1-page-2", day())
            .await
            .unwrap()
            .is_none(),
        "page-2 lost its only campaign"
    );
    assert_page_holds(
        &mut conn,
        "s1-page-1",
        day(),
        &["s1-cmp-1", "s1-cmp-2", "s1-cmp-3"],
    )
    .await;
    assert_page_holds(&mut conn, "s1-page-2", before, &["s1-cmp-3"]).await;
    assert_page_holds(&mut conn, "s1-page-1", before, &["s1-cmp-1", "s1-cmp-2"]).await;
}
