//! What the operator dashboard reads: sellers, a seller's totals per day and per sellpage, and
//! every ad connection with how its seller's syncs are going (the job search is in
//! `dashboard_jobs.rs`).
//!
//! Each function is one statement whatever the range: a chart costs one query, never one per
//! point. Sums are cast to BIGINT because PostgreSQL's SUM over BIGINT is NUMERIC.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::schema::sellers;
use super::DbConn;
use crate::db_run;

/// A seller as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = sellers)]
pub struct SellerRow {
    pub id: String,
    pub name: String,
    pub status: String,
}

/// One day of a seller's campaign-level totals.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DayTotals {
    #[diesel(sql_type = Date)]
    pub stat_date: NaiveDate,
    #[diesel(sql_type = BigInt)]
    pub spend_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub revenue_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub impressions: i64,
    #[diesel(sql_type = BigInt)]
    pub clicks: i64,
    #[diesel(sql_type = BigInt)]
    pub purchases: i64,
}

/// One sellpage's totals over a range.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct SellpageTotals {
    #[diesel(sql_type = Text)]
    pub sellpage_id: String,
    /// `None` when the sellpage row is gone but its stats remain.
    #[diesel(sql_type = Nullable<Text>)]
    pub title: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub slug: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub ad_spend_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub revenue_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub impressions: i64,
    #[diesel(sql_type = BigInt)]
    pub clicks: i64,
    #[diesel(sql_type = BigInt)]
    pub purchases: i64,
    /// Days in the range with a row for this sellpage.
    #[diesel(sql_type = BigInt)]
    pub days: i64,
}

pub async fn seller(conn: &mut DbConn, seller_id: &str) -> QueryResult<Option<SellerRow>> {
    db_run!(conn, {
        sellers::table
            .find(seller_id)
            .select(SellerRow::as_select())
            .first(conn)
            .await
            .optional()
    })
}

/// Every seller, by name.
pub async fn sellers(conn: &mut DbConn) -> QueryResult<Vec<SellerRow>> {
    db_run!(conn, {
        sellers::table
            .order((sellers::name, sellers::id))
            .select(SellerRow::as_select())
            .load(conn)
            .await
    })
}

const CAMPAIGN_DAYS: &str = "\
    SELECT stat_date, \
           CAST(SUM(spend_cents) AS BIGINT) AS spend_cents, \
           CAST(SUM(revenue_cents) AS BIGINT) AS revenue_cents, \
           CAST(SUM(impressions) AS BIGINT) AS impressions, \
           CAST(SUM(clicks) AS BIGINT) AS clicks, \
           CAST(SUM(purchases) AS BIGINT) AS purchases \
    FROM ad_stats_daily \
    WHERE seller_id = $1 AND level = 'CAMPAIGN' AND stat_date BETWEEN $2 AND $3 \
    GROUP BY stat_date \
    ORDER BY stat_date";

/// The seller's campaign rows summed per day over `from..=to`, days without rows left out.
/// Campaign level only: ad sets and ads repeat the same spend one level down.
pub async fn campaign_days(
    conn: &mut DbConn,
    seller_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<DayTotals>> {
    db_run!(conn, {
        diesel::sql_query(CAMPAIGN_DAYS)
            .bind::<Text, _>(seller_id)
            .bind::<Date, _>(from)
            .bind::<Date, _>(to)
            .load(conn)
            .await
    })
}

const SELLPAGE_TOTALS: &str = "\
    SELECT s.sellpage_id, p.title, p.slug, \
           CAST(SUM(s.ad_spend_cents) AS BIGINT) AS ad_spend_cents, \
           CAST(SUM(s.revenue_cents) AS BIGINT) AS revenue_cents, \
           CAST(SUM(s.impressions) AS BIGINT) AS impressions, \
           CAST(SUM(s.clicks) AS BIGINT) AS clicks, \
           CAST(SUM(s.purchases) AS BIGINT) AS purchases, \
           CAST(COUNT(*) AS BIGINT) AS days \
    FROM sellpage_stats_daily s LEFT JOIN sellpages p ON p.id = s.sellpage_id \
    WHERE s.seller_id = $1 AND s.stat_date BETWEEN $2 AND $3 \
    GROUP BY s.sellpage_id, p.title, p.slug \
    ORDER BY ad_spend_cents DESC, s.sellpage_id";

/// The seller's sellpages with their totals over `from..=to`, biggest spend first.
pub async fn sellpage_totals(
    conn: &mut DbConn,
    seller_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<SellpageTotals>> {
    db_run!(conn, {
        diesel::sql_query(SELLPAGE_TOTALS)
            .bind::<Text, _>(seller_id)
            .bind::<Date, _>(from)
            .bind::<Date, _>(to)
            .load(conn)
            .await
    })
}

/// An ad connection as the Connections page lists it. Never its token: only whether one is
/// stored.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ConnectionRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub seller_id: String,
    /// `None` when the seller row is gone.
    #[diesel(sql_type = Nullable<Text>)]
    pub seller_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub provider: String,
    #[diesel(sql_type = Text)]
    pub external_account_id: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub status_reason: Option<String>,
    #[diesel(sql_type = Text)]
    pub timezone: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub paused_until: Option<NaiveDateTime>,
    /// 1 when a sealed token is stored, else 0.
    #[diesel(sql_type = BigInt)]
    pub has_token: i64,
    /// When the seller's newest SUCCEEDED job finished. Jobs sync a seller's ACTIVE connections
    /// together, so this is per seller.
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub last_success_at: Option<NaiveDateTime>,
    /// The error of the seller's newest FAILED job, and when it failed.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub last_error_at: Option<NaiveDateTime>,
}

// Each sub-select is one short index read per connection, whatever the job history: the newest
// SUCCEEDED from ix_sync_jobs_seller (seller_id, id, status) read backwards (nearly every record
// succeeds, so it stops at once), the newest FAILED from the partial ix_sync_jobs_seller_failed.
// 'SUCCEEDED' and 'FAILED' stay literals: a bound status would not match the partial index.
macro_rules! connections_sql {
    ($where:literal) => {
        concat!(
            "SELECT c.id, c.seller_id, s.name AS seller_name, c.provider, c.external_account_id, \
                    c.status, c.status_reason, c.timezone, c.currency, c.paused_until, \
                    CAST(CASE WHEN c.access_token_enc IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_token, \
                    (SELECT j.finished_at FROM sync_jobs j \
                     WHERE j.seller_id = c.seller_id AND j.status = 'SUCCEEDED' \
                     ORDER BY j.id DESC LIMIT 1) AS last_success_at, \
                    (SELECT j.last_error FROM sync_jobs j \
                     WHERE j.seller_id = c.seller_id AND j.status = 'FAILED' \
                     ORDER BY j.id DESC LIMIT 1) AS last_error, \
                    (SELECT j.finished_at FROM sync_jobs j \
                     WHERE j.seller_id = c.seller_id AND j.status = 'FAILED' \
                     ORDER BY j.id DESC LIMIT 1) AS last_error_at \
             FROM ad_connections c LEFT JOIN sellers s ON s.id = c.seller_id ",
            $where,
            " ORDER BY s.name, c.seller_id, c.id"
        )
    };
}
const CONNECTIONS: &str = connections_sql!("");
const CONNECTIONS_WITH_STATUS: &str = connections_sql!("WHERE c.status = $1");

/// Every ad connection (with `status`, only those in it), by seller name then id.
pub async fn connections(
    conn: &mut DbConn,
    status: Option<&str>,
) -> QueryResult<Vec<ConnectionRow>> {
    db_run!(conn, {
        match status {
            Some(status) => {
                diesel::sql_query(CONNECTIONS_WITH_STATUS)
                    .bind::<Text, _>(status)
                    .load(conn)
                    .await
            }
            None => diesel::sql_query(CONNECTIONS).load(conn).await,
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_appear_in_bind_order() {
        crate::db::assert_placeholders_in_order(super::CAMPAIGN_DAYS);
        crate::db::assert_placeholders_in_order(super::SELLPAGE_TOTALS);
        crate::db::assert_placeholders_in_order(super::CONNECTIONS_WITH_STATUS);
    }
}
