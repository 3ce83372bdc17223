//! The sellpage rollup: campaign-level daily rows summed per sellpage and date, beside the
//! raw append and daily fold of the parent module.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::{ratio_sql, METRICS};
use crate::db::{prepared, DbConn};
use crate::db_run;

// Clears the seller's rollup over the dates before it is rebuilt: a sellpage that lost campaigns
// (moved to another page, or to none) must lose their numbers, and one left with no campaign rows
// must lose its row, which an upsert alone never does.
const CLEAR_ROLLUP_SQL: &str =
    "DELETE FROM sellpage_stats_daily WHERE seller_id = $1 AND stat_date BETWEEN $2 AND $3";

/// The rollup's sums (`SUM` of each counter over the campaign rows) and its upsert's SET list.
fn rollup_columns() -> (String, String) {
    let sums = METRICS
        .split(", ")
        .map(|c| format!("CAST(SUM(d.{c}) AS BIGINT) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let set = METRICS
        .replace("spend_cents", "ad_spend_cents")
        .split(", ")
        .chain([
            "cpm",
            "ctr",
            "roas",
            "campaign_count",
            "updated_at",
            "currency",
        ])
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    (sums, set)
}

fn rollup_sql() -> String {
    let (sums, set) = rollup_columns();
    // A sellpage whose campaigns on a date report in several currencies has no meaningful sum:
    // that date gets no row (see `sellpage_currency_conflicts`).
    // After the DELETE a conflict comes only from a concurrent sync of the same seller and dates
    // (on PostgreSQL its rows are invisible to our DELETE): take its place instead of failing.
    format!(
        "INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date, ad_{METRICS}, cpm, ctr, roas, campaign_count, updated_at, currency) \
         SELECT seller_id, sellpage_id, stat_date, {METRICS}, {}, campaign_count, $1, currency FROM ( \
           SELECT c.seller_id AS seller_id, c.sellpage_id AS sellpage_id, d.stat_date AS stat_date, {sums}, \
                  COUNT(*) AS campaign_count, MIN(ac.currency) AS currency \
           FROM ad_stats_daily d JOIN campaigns c ON c.id = d.entity_id \
             JOIN ad_connections ac ON ac.id = c.connection_id \
           WHERE d.seller_id = $2 AND d.level = 'CAMPAIGN' AND c.seller_id = $2 \
             AND c.sellpage_id IS NOT NULL AND d.stat_date BETWEEN $3 AND $4 \
           GROUP BY c.seller_id, c.sellpage_id, d.stat_date \
           HAVING COUNT(DISTINCT ac.currency) = 1 \
         ) totals WHERE true \
         ON CONFLICT (sellpage_id, stat_date) DO UPDATE SET {set}",
        ratio_sql("spend_cents", "impressions", "clicks", "revenue_cents").join(", ")
    )
}

/// Recomputes `sellpage_stats_daily` for the seller's sellpages over the dates, from the
/// campaign-level daily rows and the campaigns' current sellpages: the seller's rows for those
/// dates are deleted, then rebuilt, so sellpages whose campaigns have no rows end with none.
/// Run it inside the caller's transaction, so readers never see the dates half rebuilt.
/// Returns the number of sellpage rows written.
pub async fn roll_up_sellpages(
    conn: &mut DbConn,
    seller_id: &str,
    date_from: NaiveDate,
    date_to: NaiveDate,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let sql = rollup_sql();
    db_run!(conn, {
        prepared(
            diesel::sql_query(CLEAR_ROLLUP_SQL)
                .bind::<Text, _>(seller_id)
                .bind::<Date, _>(date_from)
                .bind::<Date, _>(date_to),
        )
        .execute(conn)
        .await?;
        prepared(
            diesel::sql_query(&sql)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(seller_id)
                .bind::<Date, _>(date_from)
                .bind::<Date, _>(date_to),
        )
        .execute(conn)
        .await
    })
}

// The (sellpage, date) pairs the rollup leaves out: campaigns of several account currencies.
const CURRENCY_CONFLICTS_SQL: &str =
    "SELECT c.sellpage_id AS sellpage_id, d.stat_date AS stat_date \
    FROM ad_stats_daily d JOIN campaigns c ON c.id = d.entity_id \
      JOIN ad_connections ac ON ac.id = c.connection_id \
    WHERE d.seller_id = $1 AND d.level = 'CAMPAIGN' AND c.seller_id = $1 \
      AND c.sellpage_id IS NOT NULL AND d.stat_date BETWEEN $2 AND $3 \
    GROUP BY c.sellpage_id, d.stat_date HAVING COUNT(DISTINCT ac.currency) > 1 \
    ORDER BY c.sellpage_id, d.stat_date";

#[derive(QueryableByName)]
struct ConflictRow {
    #[diesel(sql_type = Text)]
    sellpage_id: String,
    #[diesel(sql_type = Date)]
    stat_date: NaiveDate,
}

/// The seller's sellpages and dates whose campaign rows come from ad accounts of more than one
/// currency: amounts in yen and dollars cannot be added, so [`roll_up_sellpages`] writes no row
/// for them. In (sellpage, date) order.
pub async fn sellpage_currency_conflicts(
    conn: &mut DbConn,
    seller_id: &str,
    date_from: NaiveDate,
    date_to: NaiveDate,
) -> QueryResult<Vec<(String, NaiveDate)>> {
    // Fixed text, run by every campaign job: prepared once per connection.
    let rows: Vec<ConflictRow> = db_run!(conn, {
        prepared(
            diesel::sql_query(CURRENCY_CONFLICTS_SQL)
                .bind::<Text, _>(seller_id)
                .bind::<Date, _>(date_from)
                .bind::<Date, _>(date_to),
        )
        .load(conn)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|r| (r.sellpage_id, r.stat_date))
        .collect())
}

// PostgreSQL: the conflicts read, the clear and the rebuild above as one statement (a campaign
// job's rollup was three round trips). The upsert writes the (sellpage, date) totals of one
// currency; the DELETE removes the seller's other rows over the dates (pages that lost their
// campaigns, dates of mixed currencies), never one the upsert writes, so the two never touch the
// same row; the SELECT answers the rows written, then the mixed-currency pairs in order.
fn rollup_reporting_pg_sql() -> String {
    let (sums, set) = rollup_columns();
    format!(
        "WITH totals AS ( \
           SELECT c.seller_id AS seller_id, c.sellpage_id AS sellpage_id, d.stat_date AS stat_date, {sums}, \
                  COUNT(*) AS campaign_count, MIN(ac.currency) AS currency, \
                  COUNT(DISTINCT ac.currency) AS currencies \
           FROM ad_stats_daily d JOIN campaigns c ON c.id = d.entity_id \
             JOIN ad_connections ac ON ac.id = c.connection_id \
           WHERE d.seller_id = $1 AND d.level = 'CAMPAIGN' AND c.seller_id = $1 \
             AND c.sellpage_id IS NOT NULL AND d.stat_date BETWEEN $2 AND $3 \
           GROUP BY c.seller_id, c.sellpage_id, d.stat_date), \
         written AS ( \
           INSERT INTO sellpage_stats_daily (seller_id, sellpage_id, stat_date, ad_{METRICS}, cpm, ctr, roas, campaign_count, updated_at, currency) \
           SELECT seller_id, sellpage_id, stat_date, {METRICS}, {}, campaign_count, $4, currency \
           FROM totals WHERE currencies = 1 \
           ON CONFLICT (sellpage_id, stat_date) DO UPDATE SET {set} \
           RETURNING 1), \
         cleared AS ( \
           DELETE FROM sellpage_stats_daily s \
           WHERE s.seller_id = $1 AND s.stat_date BETWEEN $2 AND $3 \
             AND NOT EXISTS (SELECT 1 FROM totals t WHERE t.currencies = 1 \
                             AND t.sellpage_id = s.sellpage_id AND t.stat_date = s.stat_date)) \
         SELECT CAST(NULL AS TEXT) AS sellpage_id, CAST(NULL AS DATE) AS stat_date, \
                (SELECT COUNT(*) FROM written) AS written \
         UNION ALL \
         SELECT sellpage_id, stat_date, 0 FROM totals WHERE currencies > 1 \
         ORDER BY 1 NULLS FIRST, 2",
        ratio_sql("spend_cents", "impressions", "clicks", "revenue_cents").join(", ")
    )
}

#[derive(QueryableByName)]
struct RollupRow {
    #[diesel(sql_type = Nullable<Text>)]
    sellpage_id: Option<String>,
    #[diesel(sql_type = Nullable<Date>)]
    stat_date: Option<NaiveDate>,
    #[diesel(sql_type = BigInt)]
    written: i64,
}

/// [`sellpage_currency_conflicts`] then [`roll_up_sellpages`], with the same outcome: the
/// sellpage rows written and the (sellpage, date) pairs left out for mixed currencies. One
/// statement on PostgreSQL, three on SQLite (which has no data-modifying WITH). Run it inside
/// the caller's transaction.
pub async fn roll_up_sellpages_reporting_conflicts(
    conn: &mut DbConn,
    seller_id: &str,
    date_from: NaiveDate,
    date_to: NaiveDate,
    now: NaiveDateTime,
) -> QueryResult<(usize, Vec<(String, NaiveDate)>)> {
    if let DbConn::Postgres(pg) = conn {
        let pg: &mut crate::db::PgConn = pg;
        let sql = rollup_reporting_pg_sql();
        let rows: Vec<RollupRow> = prepared(
            diesel::sql_query(&sql)
                .bind::<Text, _>(seller_id)
                .bind::<Date, _>(date_from)
                .bind::<Date, _>(date_to)
                .bind::<Timestamp, _>(now),
        )
        .load(pg)
        .await?;
        let mut written = 0;
        let mut conflicts = Vec::new();
        for row in rows {
            match (row.sellpage_id, row.stat_date) {
                (Some(sellpage), Some(date)) => conflicts.push((sellpage, date)),
                _ => written = row.written as usize,
            }
        }
        return Ok((written, conflicts));
    }
    let conflicts = sellpage_currency_conflicts(conn, seller_id, date_from, date_to).await?;
    let written = roll_up_sellpages(conn, seller_id, date_from, date_to, now).await?;
    Ok((written, conflicts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_appear_in_bind_order() {
        for sql in [
            CLEAR_ROLLUP_SQL.to_string(),
            rollup_sql(),
            CURRENCY_CONFLICTS_SQL.to_string(),
            rollup_reporting_pg_sql(),
        ] {
            crate::db::assert_placeholders_in_order(&sql);
        }
    }

    #[test]
    fn the_rollup_clears_the_sellers_dates_before_rebuilding_them() {
        assert!(
            CLEAR_ROLLUP_SQL.starts_with("DELETE FROM sellpage_stats_daily WHERE seller_id = $1")
        );
        assert!(CLEAR_ROLLUP_SQL.ends_with("stat_date BETWEEN $2 AND $3"));
        // The rebuild covers exactly the dates cleared, so no other date loses its row.
        assert!(rollup_sql().contains("d.stat_date BETWEEN $3 AND $4"));
    }

    #[test]
    fn the_one_statement_rollup_covers_the_dates_it_clears() {
        let sql = rollup_reporting_pg_sql();
        assert!(sql.contains("d.stat_date BETWEEN $2 AND $3"));
        assert!(sql.contains("WHERE s.seller_id = $1 AND s.stat_date BETWEEN $2 AND $3"));
    }
}
