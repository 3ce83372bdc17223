//! `GET /api/ads-manager/stats`: the caller's daily rows at one level, a page at a time.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::csv::{self, CsvRow};
use super::{params, Page};
use crate::db::reads::{self, DailyPage, DailyRow};
use crate::http::seller_gate::ActiveSeller;
use crate::http::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DailyQuery {
    /// CAMPAIGN, ADSET or AD.
    #[param(required = true, value_type = super::params::LevelName, example = "CAMPAIGN")]
    level: Option<String>,
    /// First day, YYYY-MM-DD.
    #[param(required = true, example = "2026-11-01", format = Date)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD; the range covers at most 366 days, both ends included.
    #[param(required = true, example = "2026-11-28", format = Date)]
    to: Option<String>,
    /// Only this entity's rows.
    entity_id: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// One entity's numbers for one day.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsRow {
    #[schema(example = "CAMPAIGN")]
    pub level: String,
    pub entity_id: String,
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// ISO 4217 code of the entity's ad account; amounts are hundredths of its unit (JPY 1234 is
    /// `123400`), whatever its minor unit.
    #[schema(example = "USD")]
    pub currency: String,
    pub spend_cents: i64,
    pub impressions: i64,
    pub clicks: i64,
    pub content_views: i64,
    pub add_to_cart: i64,
    pub checkouts: i64,
    pub purchases: i64,
    pub revenue_cents: i64,
    pub cpm: f64,
    pub ctr: f64,
    pub roas: f64,
    pub raw_count: i64,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<DailyRow> for StatsRow {
    fn from(row: DailyRow) -> Self {
        let d = row.stat;
        Self {
            level: d.level,
            entity_id: d.entity_id,
            date: d.stat_date,
            currency: row.currency,
            spend_cents: d.spend_cents,
            impressions: d.impressions,
            clicks: d.clicks,
            content_views: d.content_views,
            add_to_cart: d.add_to_cart,
            checkouts: d.checkouts,
            purchases: d.purchases,
            revenue_cents: d.revenue_cents,
            cpm: d.cpm,
            ctr: d.ctr,
            roas: d.roas,
            raw_count: d.raw_count,
            updated_at: d.updated_at.and_utc(),
        }
    }
}

impl CsvRow for StatsRow {
    const HEADER: &'static [&'static str] = &[
        "level",
        "entityId",
        "date",
        "spendCents",
        "impressions",
        "clicks",
        "contentViews",
        "addToCart",
        "checkouts",
        "purchases",
        "revenueCents",
        "cpm",
        "ctr",
        "roas",
        "rawCount",
        "updatedAt",
        "currency",
    ];

    fn fields(&self) -> Vec<csv::Cell> {
        vec![
            csv::Cell::text(self.level.clone()),
            csv::Cell::text(self.entity_id.clone()),
            csv::Cell::number(self.date),
            csv::Cell::number(self.spend_cents),
            csv::Cell::number(self.impressions),
            csv::Cell::number(self.clicks),
            csv::Cell::number(self.content_views),
            csv::Cell::number(self.add_to_cart),
            csv::Cell::number(self.checkouts),
            csv::Cell::number(self.purchases),
            csv::Cell::number(self.revenue_cents),
            csv::float(self.cpm),
            csv::float(self.ctr),
            csv::float(self.roas),
            csv::Cell::number(self.raw_count),
            csv::Cell::Number(timestamp(self.updated_at)),
            csv::Cell::text(self.currency.clone()),
        ]
    }
}

/// The same text serde gives the JSON.
pub(super) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The caller's daily rows at one level, ordered by date then entity.
#[utoipa::path(
    get,
    path = "/api/ads-manager/stats",
    tag = "stats",
    params(DailyQuery),
    responses(
        (status = 200, description = "One page of daily rows: JSON, or CSV with `Accept: text/csv`",
            content((Page<StatsRow> = "application/json"), (String = "text/csv")),
            headers(("X-Next-Cursor" = String, description = "CSV only: the next page's cursor, absent on the last page"))),
        (status = 400, description = "`invalid_date`, `invalid_range`, `invalid_level`, `invalid_limit`, `invalid_cursor` or `invalid_query`", body = crate::http::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::http::ErrorBody),
        (status = 403, description = "`forbidden`: the seller does not exist or is suspended", body = crate::http::ErrorBody),
        (status = 503, description = "`database_busy` or `database_unavailable`", body = crate::http::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn daily_stats(
    req: HttpRequest,
    state: web::Data<AppState>,
    ActiveSeller(seller_id): ActiveSeller,
    query: web::Query<DailyQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let (from, to) = params::range(q.from.as_deref(), q.to.as_deref())?;
    let level = params::level(q.level.as_deref())?;
    let limit = params::limit(q.limit.as_deref())?;
    let after = params::cursor(q.cursor.as_deref())?;
    params::id_filter("entityId", q.entity_id.as_deref())?;
    let db = state.db.clone();
    let rows = state
        .on_main_runtime(async move {
            let page = DailyPage {
                seller_id: &seller_id,
                level: level.as_str(),
                from,
                to,
                entity_id: q.entity_id.as_deref(),
                after,
                // One more than asked tells whether another page follows.
                limit: limit + 1,
            };
            let mut conn = db.conn().await?;
            Ok(reads::daily_page(&mut conn, &page).await?)
        })
        .await?;
    Ok(super::page_answer::<_, StatsRow>(&req, rows, limit, |r| {
        (r.stat.stat_date, r.stat.entity_id.as_str())
    }))
}
