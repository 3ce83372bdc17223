//! `GET /api/ads-manager/stats/summary`: the caller's totals per entity over a range, and the
//! grand total per currency (one `total` only when every entity reports in one currency: yen and
//! dollars are never added). Ratios are recomputed from the sums, never averaged.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::csv::{self, CsvRow};
use super::params;
use crate::db::reads::{self, EntityTotals};
use crate::domain::{ratios, Level};
use crate::http::seller_gate::ActiveSeller;
use crate::http::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// CAMPAIGN, ADSET or AD.
    #[param(required = true, value_type = super::params::LevelName, example = "CAMPAIGN")]
    level: Option<String>,
    /// First day, YYYY-MM-DD.
    #[param(required = true, example = "2026-11-01", format = Date)]
    from: Option<String>,
    /// Last day, YYYY-MM-DD; the range covers at most 366 days, both ends included.
    #[param(required = true, example = "2026-11-28", format = Date)]
    to: Option<String>,
}

/// One entity's sums over the range (or, as a total, the sums of every entity of one currency;
/// `entityId` is then absent).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryRow {
    pub level: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    /// ISO 4217 code of the amounts (hundredths of its unit); absent only on the zero `total` of
    /// a range without rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "USD")]
    pub currency: Option<String>,
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
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SummaryBody {
    pub rows: Vec<SummaryRow>,
    /// Every row's sums when all rows share one currency (zeros without rows); `null` when they
    /// span several: see `totalsByCurrency`.
    pub total: Option<SummaryRow>,
    /// One total per currency, in currency order (empty without rows).
    pub totals_by_currency: Vec<SummaryRow>,
}

impl SummaryRow {
    fn new(level: Level, entity_id: Option<String>, t: &EntityTotals) -> Self {
        let (cpm, ctr, roas) = ratios(t.spend_cents, t.impressions, t.clicks, t.revenue_cents);
        Self {
            level: level.as_str().to_string(),
            entity_id,
            currency: (!t.currency.is_empty()).then(|| t.currency.clone()),
            spend_cents: t.spend_cents,
            impressions: t.impressions,
            clicks: t.clicks,
            content_views: t.content_views,
            add_to_cart: t.add_to_cart,
            checkouts: t.checkouts,
            purchases: t.purchases,
            revenue_cents: t.revenue_cents,
            cpm,
            ctr,
            roas,
            raw_count: t.raw_count,
        }
    }
}

/// The sums of the entity sums in each currency, in currency order.
fn totals_by_currency(rows: &[EntityTotals]) -> Vec<EntityTotals> {
    let mut by: std::collections::BTreeMap<&str, Vec<&EntityTotals>> = Default::default();
    for r in rows {
        by.entry(r.currency.as_str()).or_default().push(r);
    }
    by.into_iter()
        .map(|(currency, rows)| EntityTotals {
            currency: currency.to_string(),
            ..grand_total(rows)
        })
        .collect()
}

/// The sums of every entity's sums (whatever their currency: callers group by currency first).
fn grand_total(rows: Vec<&EntityTotals>) -> EntityTotals {
    rows.into_iter().fold(
        EntityTotals {
            entity_id: String::new(),
            currency: String::new(),
            spend_cents: 0,
            impressions: 0,
            clicks: 0,
            content_views: 0,
            add_to_cart: 0,
            checkouts: 0,
            purchases: 0,
            revenue_cents: 0,
            raw_count: 0,
        },
        |mut sum, r| {
            sum.spend_cents += r.spend_cents;
            sum.impressions += r.impressions;
            sum.clicks += r.clicks;
            sum.content_views += r.content_views;
            sum.add_to_cart += r.add_to_cart;
            sum.checkouts += r.checkouts;
            sum.purchases += r.purchases;
            sum.revenue_cents += r.revenue_cents;
            sum.raw_count += r.raw_count;
            sum
        },
    )
}

impl CsvRow for SummaryRow {
    const HEADER: &'static [&'static str] = &[
        "level",
        "entityId",
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
        "currency",
    ];

    fn fields(&self) -> Vec<csv::Cell> {
        vec![
            csv::Cell::text(self.level.clone()),
            csv::Cell::text(self.entity_id.clone().unwrap_or_default()),
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
            csv::Cell::text(self.currency.clone().unwrap_or_default()),
        ]
    }
}

/// The caller's totals per entity at one level over a range, in entity order, and the grand
/// total. CSV carries the per-entity rows only.
#[utoipa::path(
    get,
    path = "/api/ads-manager/stats/summary",
    tag = "stats",
    params(SummaryQuery),
    responses(
        (status = 200, description = "Totals per entity and overall: JSON, or the per-entity rows as CSV with `Accept: text/csv`",
            content((SummaryBody = "application/json"), (String = "text/csv"))),
        (status = 400, description = "`invalid_date`, `invalid_range`, `invalid_level` or `invalid_query`", body = crate::http::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::http::ErrorBody),
        (status = 403, description = "`forbidden`: the seller does not exist or is suspended", body = crate::http::ErrorBody),
        (status = 503, description = "`database_busy` or `database_unavailable`", body = crate::http::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stats_summary(
    req: HttpRequest,
    state: web::Data<AppState>,
    ActiveSeller(seller_id): ActiveSeller,
    query: web::Query<SummaryQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let (from, to) = params::range(q.from.as_deref(), q.to.as_deref())?;
    let level = params::level(q.level.as_deref())?;
    let db = state.db.clone();
    let totals = state
        .on_main_runtime(async move {
            let mut conn = db.conn().await?;
            Ok(reads::entity_totals(&mut conn, &seller_id, level.as_str(), from, to).await?)
        })
        .await?;
    let totals_by_currency: Vec<SummaryRow> = totals_by_currency(&totals)
        .iter()
        .map(|t| SummaryRow::new(level, None, t))
        .collect();
    let total = match totals_by_currency.as_slice() {
        [] => Some(SummaryRow::new(level, None, &grand_total(Vec::new()))),
        [one] => Some(one.clone()),
        _ => None,
    };
    let rows: Vec<SummaryRow> = totals
        .iter()
        .map(|t| SummaryRow::new(level, Some(t.entity_id.clone()), t))
        .collect();
    if csv::wants_csv(&req) {
        return Ok(csv::response(&rows, None));
    }
    Ok(csv::json(&SummaryBody {
        rows,
        total,
        totals_by_currency,
    }))
}
