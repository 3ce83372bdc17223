//! What the stats read API (and the dashboard) read: a seller's daily rows a page at a time, their
//! sums per entity, and sellpage rows a page at a time. Every query is one range scan of an index
//! made for it (migration `read_indexes`); pages are keyset pages, so page 1,000 costs what page 1
//! does.
//!
//! The SQL uses `$n` placeholders in order of first appearance (see `db/writes.rs` for why).

use chrono::NaiveDate;
use diesel::sql_types::{BigInt, Date, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::models::{DailyStat, SellpageStat};
use super::DbConn;
use crate::db_run;

/// Where a page starts: after this (date, id) pair in (date, id) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub date: NaiveDate,
    pub id: String,
}

/// One page of a seller's daily rows at one level.
#[derive(Debug, Clone)]
pub struct DailyPage<'a> {
    pub seller_id: &'a str,
    pub level: &'a str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub entity_id: Option<&'a str>,
    pub after: Option<After>,
    pub limit: i64,
}

/// One page of a seller's sellpage rows.
#[derive(Debug, Clone)]
pub struct SellpagePage<'a> {
    pub seller_id: &'a str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub sellpage_id: Option<&'a str>,
    pub after: Option<After>,
    pub limit: i64,
}

/// Numbers `$n` placeholders in the order clauses are added, and keeps the binds in that order.
struct Clauses {
    sql: String,
    next: usize,
}

impl Clauses {
    fn new(head: &str) -> Self {
        Self {
            sql: head.to_string(),
            next: 1,
        }
    }

    /// Appends `text` with each `?` replaced by the next placeholder.
    fn push(&mut self, text: &str) {
        for part in text.split_inclusive('?') {
            match part.strip_suffix('?') {
                Some(before) => {
                    self.sql.push_str(before);
                    self.sql.push_str(&format!("${}", self.next));
                    self.next += 1;
                }
                None => self.sql.push_str(part),
            }
        }
    }
}

const DAILY_COLUMNS: &str =
    "id, seller_id, level, entity_id, stat_date, spend_cents, impressions, \
    clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, ctr, roas, \
    raw_count, updated_at";

/// The account currency of the entity `entity` (a column) at `level`: its campaign's connection's
/// (`USD` for an entity no longer in the catalogue). A primary-key lookup per row.
fn currency_sql(level: &str, entity: &str) -> String {
    let (from, id) = match level {
        "AD" => (
            "ads a JOIN adsets s ON s.id = a.adset_id JOIN campaigns c ON c.id = s.campaign_id",
            "a.id",
        ),
        "ADSET" => ("adsets a JOIN campaigns c ON c.id = a.campaign_id", "a.id"),
        _ => ("campaigns c", "c.id"),
    };
    format!(
        "COALESCE((SELECT ac.currency FROM {from} JOIN ad_connections ac ON ac.id = c.connection_id \
         WHERE {id} = {entity}), 'USD')"
    )
}

/// A daily row and the currency of its amounts.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct DailyRow {
    #[diesel(embed)]
    pub stat: DailyStat,
    /// ISO 4217 code of the entity's ad account: amounts are hundredths of its unit.
    #[diesel(sql_type = Text)]
    pub currency: String,
}

/// The SQL of one daily page; the binds follow in the order the optional parts are present.
fn daily_sql(page: &DailyPage) -> String {
    let mut q = Clauses::new(&format!(
        "SELECT {DAILY_COLUMNS}, {} AS currency FROM ad_stats_daily ",
        currency_sql(page.level, "ad_stats_daily.entity_id")
    ));
    q.push("WHERE seller_id = ? AND level = ? AND stat_date BETWEEN ? AND ?");
    if page.entity_id.is_some() {
        q.push(" AND entity_id = ?");
    }
    if page.after.is_some() {
        q.push(" AND (stat_date > ? OR (stat_date = ? AND entity_id > ?))");
    }
    q.push(" ORDER BY stat_date, entity_id LIMIT ?");
    q.sql
}

/// Up to `limit` daily rows of the seller at the level, in (date, entity) order.
pub async fn daily_page(
    conn: &mut DbConn,
    page: &DailyPage<'_>,
) -> diesel::QueryResult<Vec<DailyRow>> {
    let sql = daily_sql(page);
    db_run!(conn, {
        let query = diesel::sql_query(&sql)
            .into_boxed()
            .bind::<Text, _>(page.seller_id)
            .bind::<Text, _>(page.level)
            .bind::<Date, _>(page.from)
            .bind::<Date, _>(page.to);
        let query = match page.entity_id {
            Some(entity) => query.bind::<Text, _>(entity),
            None => query,
        };
        let query = match &page.after {
            Some(after) => query
                .bind::<Date, _>(after.date)
                .bind::<Date, _>(after.date)
                .bind::<Text, _>(after.id.clone()),
            None => query,
        };
        query.bind::<BigInt, _>(page.limit).load(conn).await
    })
}

const SELLPAGE_COLUMNS: &str = "id, seller_id, sellpage_id, stat_date, ad_spend_cents, \
    impressions, clicks, content_views, add_to_cart, checkouts, purchases, revenue_cents, cpm, \
    ctr, roas, campaign_count, updated_at, currency";

fn sellpage_sql(page: &SellpagePage) -> String {
    let mut q = Clauses::new(&format!(
        "SELECT {SELLPAGE_COLUMNS} FROM sellpage_stats_daily "
    ));
    q.push("WHERE seller_id = ? AND stat_date BETWEEN ? AND ?");
    if page.sellpage_id.is_some() {
        q.push(" AND sellpage_id = ?");
    }
    if page.after.is_some() {
        q.push(" AND (stat_date > ? OR (stat_date = ? AND sellpage_id > ?))");
    }
    q.push(" ORDER BY stat_date, sellpage_id LIMIT ?");
    q.sql
}

/// Up to `limit` sellpage rows of the seller, in (date, sellpage) order.
pub async fn sellpage_page(
    conn: &mut DbConn,
    page: &SellpagePage<'_>,
) -> diesel::QueryResult<Vec<SellpageStat>> {
    let sql = sellpage_sql(page);
    db_run!(conn, {
        let query = diesel::sql_query(&sql)
            .into_boxed()
            .bind::<Text, _>(page.seller_id)
            .bind::<Date, _>(page.from)
            .bind::<Date, _>(page.to);
        let query = match page.sellpage_id {
            Some(id) => query.bind::<Text, _>(id),
            None => query,
        };
        let query = match &page.after {
            Some(after) => query
                .bind::<Date, _>(after.date)
                .bind::<Date, _>(after.date)
                .bind::<Text, _>(after.id.clone()),
            None => query,
        };
        query.bind::<BigInt, _>(page.limit).load(conn).await
    })
}

/// One entity's summed numbers over a date range. Ratios are not summed: callers derive them from
/// these totals.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct EntityTotals {
    #[diesel(sql_type = Text)]
    pub entity_id: String,
    #[diesel(sql_type = BigInt)]
    pub spend_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub impressions: i64,
    #[diesel(sql_type = BigInt)]
    pub clicks: i64,
    #[diesel(sql_type = BigInt)]
    pub content_views: i64,
    #[diesel(sql_type = BigInt)]
    pub add_to_cart: i64,
    #[diesel(sql_type = BigInt)]
    pub checkouts: i64,
    #[diesel(sql_type = BigInt)]
    pub purchases: i64,
    #[diesel(sql_type = BigInt)]
    pub revenue_cents: i64,
    #[diesel(sql_type = BigInt)]
    pub raw_count: i64,
    /// ISO 4217 code of the entity's ad account.
    #[diesel(sql_type = Text)]
    pub currency: String,
}

/// [`ENTITY_TOTALS_SQL`] with each entity's currency.
fn entity_totals_sql(level: &str) -> String {
    format!(
        "SELECT t.*, {} AS currency FROM ({ENTITY_TOTALS_SQL}) t ORDER BY t.entity_id",
        currency_sql(level, "t.entity_id")
    )
}

const ENTITY_TOTALS_SQL: &str = "SELECT entity_id, \
    CAST(SUM(spend_cents) AS BIGINT) AS spend_cents, CAST(SUM(impressions) AS BIGINT) AS impressions, \
    CAST(SUM(clicks) AS BIGINT) AS clicks, CAST(SUM(content_views) AS BIGINT) AS content_views, \
    CAST(SUM(add_to_cart) AS BIGINT) AS add_to_cart, CAST(SUM(checkouts) AS BIGINT) AS checkouts, \
    CAST(SUM(purchases) AS BIGINT) AS purchases, CAST(SUM(revenue_cents) AS BIGINT) AS revenue_cents, \
    CAST(SUM(raw_count) AS BIGINT) AS raw_count \
    FROM ad_stats_daily WHERE seller_id = $1 AND level = $2 AND stat_date BETWEEN $3 AND $4 \
    GROUP BY entity_id";

/// The seller's totals per entity at the level over the dates, in entity order.
pub async fn entity_totals(
    conn: &mut DbConn,
    seller_id: &str,
    level: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> diesel::QueryResult<Vec<EntityTotals>> {
    let sql = entity_totals_sql(level);
    db_run!(conn, {
        diesel::sql_query(&sql)
            .bind::<Text, _>(seller_id)
            .bind::<Text, _>(level)
            .bind::<Date, _>(from)
            .bind::<Date, _>(to)
            .load(conn)
            .await
    })
}

/// The SQL of each read with its binds written out, for `EXPLAIN` in the index test.
pub fn explainable(seller_id: &str, from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let fill = |sql: String, values: &[String]| {
        // Highest number first, so $1 does not eat the front of $10.
        values
            .iter()
            .enumerate()
            .rev()
            .fold(sql, |sql, (i, v)| sql.replace(&format!("${}", i + 1), v))
    };
    let (seller, from, to) = (
        quote(seller_id),
        quote(&from.to_string()),
        quote(&to.to_string()),
    );
    let after = After {
        date: NaiveDate::MIN,
        id: String::new(),
    };
    let daily = DailyPage {
        seller_id,
        level: "AD",
        from: NaiveDate::MIN,
        to: NaiveDate::MIN,
        entity_id: None,
        after: Some(after.clone()),
        limit: 100,
    };
    let pages = SellpagePage {
        seller_id,
        from: NaiveDate::MIN,
        to: NaiveDate::MIN,
        sellpage_id: None,
        after: Some(after),
        limit: 100,
    };
    let first = quote("0001-01-01");
    vec![
        fill(
            daily_sql(&daily),
            &[
                seller.clone(),
                quote("AD"),
                from.clone(),
                to.clone(),
                from.clone(),
                from.clone(),
                quote(""),
                "100".into(),
            ],
        ),
        fill(
            entity_totals_sql("AD"),
            &[seller.clone(), quote("AD"), from.clone(), to.clone()],
        ),
        fill(
            sellpage_sql(&pages),
            &[
                seller.clone(),
                from.clone(),
                to.clone(),
                first.clone(),
                first,
                quote(""),
                "100".into(),
            ],
        ),
        // First pages filtered to one entity or sellpage.
        fill(
            daily_sql(&DailyPage {
                entity_id: Some(""),
                after: None,
                ..daily.clone()
            }),
            &[
                seller.clone(),
                quote("AD"),
                from.clone(),
                to.clone(),
                quote(&format!("{seller_id}-AD-1")),
                "100".into(),
            ],
        ),
        fill(
            sellpage_sql(&SellpagePage {
                sellpage_id: Some(""),
                after: None,
                ..pages.clone()
            }),
            &[
                seller,
                from,
                to,
                quote(&format!("{seller_id}-page-1")),
                "100".into(),
            ],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    #[test]
    fn placeholders_appear_in_bind_order_whatever_the_options() {
        for entity in [None, Some("e")] {
            for after in [
                None,
                Some(After {
                    date: day(2),
                    id: "x".into(),
                }),
            ] {
                let page = DailyPage {
                    seller_id: "s",
                    level: "AD",
                    from: day(1),
                    to: day(3),
                    entity_id: entity,
                    after: after.clone(),
                    limit: 10,
                };
                let sql = daily_sql(&page);
                crate::db::assert_placeholders_in_order(&sql);
                let expected = 5 + usize::from(entity.is_some()) + 3 * usize::from(after.is_some());
                assert!(
                    sql.contains(&format!("${expected}"))
                        && !sql.contains(&format!("${}", expected + 1)),
                    "{sql}"
                );
                let pages = SellpagePage {
                    seller_id: "s",
                    from: day(1),
                    to: day(3),
                    sellpage_id: entity,
                    after,
                    limit: 10,
                };
                crate::db::assert_placeholders_in_order(&sellpage_sql(&pages));
            }
        }
        crate::db::assert_placeholders_in_order(&entity_totals_sql("AD"));
    }

    #[test]
    fn explainable_sql_has_no_placeholders_left() {
        for sql in explainable("o'brien", day(1), day(30)) {
            assert!(!sql.contains('$'), "{sql}");
            assert!(sql.contains("'o''brien'"), "{sql}");
        }
    }
}
