//! `GET /api/ads-manager/sellpages/stats`: the caller's sellpage rows, a page at a time.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::csv::{self, CsvRow};
use super::daily::timestamp;
use super::{params, Page};
use crate::db::models::SellpageStat;
use crate::db::reads::{self, SellpagePage};
use crate::http::seller_gate::ActiveSeller;
use crate::http::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct SellpageQuery {
    /// First day, YYYY-MM-DD.
    #[param(required = true, example = "2026-11-01", format = Date)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD; the range covers at most 366 days, both ends included.
    #[param(required = true, example = "2026-11-28", format = Date)]
    to: Option<String>,
    /// Only this sellpage's rows.
    sellpage_id: Option<String>,
    /// Rows per page, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// One sellpage's numbers for one day: the sums of its campaigns' daily rows.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SellpageRow {
    pub sellpage_id: String,
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// ISO 4217 code every campaign of the row shares (a date whose campaigns span several
    /// currencies has no row); amounts are hundredths of its unit.
    #[schema(example = "USD")]
    pub currency: String,
    pub ad_spend_cents: i64,
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
    pub campaign_count: i64,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<SellpageStat> for SellpageRow {
    fn from(s: SellpageStat) -> Self {
        Self {
            sellpage_id: s.sellpage_id,
            date: s.stat_date,
            currency: s.currency,
            ad_spend_cents: s.ad_spend_cents,
            impressions: s.impressions,
            clicks: s.clicks,
            content_views: s.content_views,
            add_to_cart: s.add_to_cart,
            checkouts: s.checkouts,
            purchases: s.purchases,
            revenue_cents: s.revenue_cents,
            cpm: s.cpm,
            ctr: s.ctr,
            roas: s.roas,
            campaign_count: s.campaign_count,
            updated_at: s.updated_at.and_utc(),
        }
    }
}

impl CsvRow for SellpageRow {
    const HEADER: &'static [&'static str] = &[
        "sellpageId",
        "date",
        "adSpendCents",
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
        "campaignCount",
        "updatedAt",
        "currency",
    ];

    fn fields(&self) -> Vec<csv::Cell> {
        vec![
            csv::Cell::text(self.sellpage_id.clone()),
            csv::Cell::number(self.date),
            csv::Cell::number(self.ad_spend_cents),
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
            csv::Cell::number(self.campaign_count),
            csv::Cell::Number(timestamp(self.updated_at)),
            csv::Cell::text(self.currency.clone()),
        ]
    }
}

/// The caller's sellpage rows, ordered by date then sellpage.
#[utoipa::path(
    get,
    path = "/api/ads-manager/sellpages/stats",
    tag = "stats",
    params(SellpageQuery),
    responses(
        (status = 200, description = "One page of sellpage rows: JSON, or CSV with `Accept: text/csv`",
            content((Page<SellpageRow> = "application/json"), (String = "text/csv")),
            headers(("X-Next-Cursor" = String, description = "CSV only: the next page's cursor, absent on the last page"))),
        (status = 400, description = "`invalid_date`, `invalid_range`, `invalid_limit`, `invalid_cursor` or `invalid_query`", body = crate::http::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::http::ErrorBody),
        (status = 403, description = "`forbidden`: the seller does not exist or is suspended", body = crate::http::ErrorBody),
        (status = 503, description = "`database_busy` or `database_unavailable`", body = crate::http::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn sellpage_stats(
    req: HttpRequest,
    state: web::Data<AppState>,
    ActiveSeller(seller_id): ActiveSeller,
    query: web::Query<SellpageQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let (from, to) = params::range(q.from.as_deref(), q.to.as_deref())?;
    let limit = params::limit(q.limit.as_deref())?;
    let after = params::cursor(q.cursor.as_deref())?;
    params::id_filter("sellpageId", q.sellpage_id.as_deref())?;
    let db = state.db.clone();
    let rows = state
        .on_main_runtime(async move {
            let page = SellpagePage {
                seller_id: &seller_id,
                from,
                to,
                sellpage_id: q.sellpage_id.as_deref(),
                after,
                limit: limit + 1,
            };
            let mut conn = db.conn().await?;
            Ok(reads::sellpage_page(&mut conn, &page).await?)
        })
        .await?;
    Ok(super::page_answer::<_, SellpageRow>(
        &req,
        rows,
        limit,
        |r| (r.stat_date, r.sellpage_id.as_str()),
    ))
}
