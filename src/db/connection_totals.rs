//! What `ads-stats meta check` puts beside Meta's numbers: one connection's campaign-level daily
//! rows of one day, summed, with the currency they are in and the Meta ids of its campaigns (to
//! tell apart Meta's rows of campaigns we do not know, which a sync never writes).

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Text};
use diesel_async::RunQueryDsl;

use super::schema::{ad_connections, campaigns};
use super::DbConn;
use crate::db_run;

/// The sums of a connection's campaign rows in `ad_stats_daily` on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct StoredDay {
    /// Campaign rows found (0: nothing stored for the day).
    #[diesel(sql_type = BigInt)]
    pub campaign_rows: i64,
    #[diesel(sql_type = BigInt)]
    pub spend_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub impressions: i64,
    #[diesel(sql_type = BigInt)]
    pub purchases: i64,
    #[diesel(sql_type = BigInt)]
    pub revenue_cents: i64,
}

// Campaign rows only: ad-set and ad rows are the same money again. COALESCE: a day without rows
// sums to NULL. The casts: SUM over BIGINT is NUMERIC on PostgreSQL.
const CAMPAIGN_DAY_SQL: &str = "SELECT CAST(COUNT(*) AS BIGINT) AS campaign_rows, \
    CAST(COALESCE(SUM(d.spend_cents), 0) AS BIGINT) AS spend_cents, \
    CAST(COALESCE(SUM(d.impressions), 0) AS BIGINT) AS impressions, \
    CAST(COALESCE(SUM(d.purchases), 0) AS BIGINT) AS purchases, \
    CAST(COALESCE(SUM(d.revenue_cents), 0) AS BIGINT) AS revenue_cents \
    FROM ad_stats_daily d JOIN campaigns c ON c.id = d.entity_id AND c.seller_id = d.seller_id \
    WHERE c.connection_id = $1 AND d.level = 'CAMPAIGN' AND d.stat_date = $2";

/// The connection's campaign rows of `date`, summed.
pub async fn campaign_day(
    conn: &mut DbConn,
    connection_id: &str,
    date: NaiveDate,
) -> QueryResult<StoredDay> {
    db_run!(conn, {
        diesel::sql_query(CAMPAIGN_DAY_SQL)
            .bind::<Text, _>(connection_id)
            .bind::<Date, _>(date)
            .get_result(conn)
            .await
    })
}

/// The currency the connection's amounts are stored in (ISO 4217), or `None` when there is no
/// such connection.
pub async fn currency(conn: &mut DbConn, connection_id: &str) -> QueryResult<Option<String>> {
    db_run!(conn, {
        ad_connections::table
            .find(connection_id)
            .select(ad_connections::currency)
            .first::<String>(conn)
            .await
            .optional()
    })
}

/// The Meta ids recorded on the connection's campaigns (trimmed, as the provider matches them).
pub async fn campaign_external_ids(
    conn: &mut DbConn,
    connection_id: &str,
) -> QueryResult<Vec<String>> {
    let ids: Vec<Option<String>> = db_run!(conn, {
        campaigns::table
            .filter(campaigns::connection_id.eq(connection_id))
            .select(campaigns::external_id)
            .load(conn)
            .await
    })?;
    Ok(ids
        .into_iter()
        .flatten()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
        .collect())
}
