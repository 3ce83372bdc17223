//! `GET /dashboard/sellers/{seller_id}`: 30-day charts of spend, revenue and ROAS and the sellpage
//! breakdown. Three queries whatever the range: the seller, its campaign totals grouped by day
//! (all three charts), its sellpage totals grouped by sellpage.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, NaiveDate};
use maud::{html, Markup, PreEscaped};
use plotters::style::RGBColor;

use super::charts::{thousands, DailyChart, Unit};
use super::layout::{html_response, page};
use super::{signed_in, to_login};
use crate::db;
use crate::db::dashboard::{DayTotals, SellerRow, SellpageTotals};
use crate::domain::Ratio;
use crate::http::{ApiError, AppState};

/// Days charted, today included.
const DAYS: i64 = 30;

struct Data {
    seller: SellerRow,
    days: Vec<DayTotals>,
    sellpages: Vec<SellpageTotals>,
}

pub async fn seller_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = signed_in(&state, &req)? else {
        return Ok(to_login());
    };
    let seller_id = path.into_inner();
    // The scheduler's day, so "today" on the chart is the day today's syncs write.
    let to = state.scheduler.today(chrono::Utc::now());
    let from = to - Duration::days(DAYS - 1);
    let db = state.db.clone();
    let data = state
        .on_main_runtime(async move {
            let mut conn = db.conn().await?;
            let Some(seller) = db::dashboard::seller(&mut conn, &seller_id).await? else {
                return Ok(None);
            };
            Ok(Some(Data {
                days: db::dashboard::campaign_days(&mut conn, &seller.id, from, to).await?,
                sellpages: db::dashboard::sellpage_totals(&mut conn, &seller.id, from, to).await?,
                seller,
            }))
        })
        .await?;
    let Some(data) = data else {
        let body =
            html! { h1 { "No such seller" } p { a href="/dashboard/sellers" { "All sellers" } } };
        return Ok(html_response(
            StatusCode::NOT_FOUND,
            page("No such seller", Some(&session), body),
        ));
    };

    let series = Series::from_days(&data.days, from, to);
    let charts = [
        (
            "Spend",
            Unit::Dollars,
            &series.spend,
            RGBColor(31, 100, 200),
        ),
        (
            "Revenue",
            Unit::Dollars,
            &series.revenue,
            RGBColor(27, 127, 59),
        ),
        ("ROAS", Unit::Ratio, &series.roas, RGBColor(168, 100, 0)),
    ]
    .into_iter()
    .map(|(name, unit, values, color)| {
        let svg = DailyChart {
            name,
            unit,
            first_day: from,
            values,
            color,
        }
        .to_svg()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok((name, svg))
    })
    .collect::<Result<Vec<_>, ApiError>>()?;
    let spend: i64 = data.days.iter().map(|d| d.spend_cents).sum();
    let revenue: i64 = data.days.iter().map(|d| d.revenue_cents).sum();

    let body = html! {
        h1 { (data.seller.name) " " span class={ "status status-" (data.seller.status.to_lowercase()) } { (data.seller.status) } }
        p.muted.id { (data.seller.id) }
        section.cards {
            div.card { h3 { "Spend, 30 days" } div.big #total-spend { (dollars(spend)) } }
            div.card { h3 { "Revenue, 30 days" } div.big #total-revenue { (dollars(revenue)) } }
            div.card { h3 { "ROAS, 30 days" } div.big #total-roas { (ratio(revenue, spend)) } }
            div.card { h3 { "Range" } div { (from) " → " (to) } p.muted { "campaign level; ROAS = revenue / spend" } }
        }
        h2 { "Last 30 days" }
        section.charts {
            @for (name, svg) in &charts {
                figure.chart data-chart=(name.to_lowercase()) {
                    figcaption { (name) }
                    // plotters' output: numbers and dates we formatted, no user text.
                    (PreEscaped(svg))
                }
            }
        }
        h2 { "Sellpages, 30 days" }
        (sellpage_table(&data.sellpages))
    };
    Ok(html_response(
        StatusCode::OK,
        page(&data.seller.name, Some(&session), body),
    ))
}

/// The three charted series, one value per day of the range; a day without rows is 0.
struct Series {
    spend: Vec<f64>,
    revenue: Vec<f64>,
    roas: Vec<f64>,
}

impl Series {
    fn from_days(days: &[DayTotals], from: NaiveDate, to: NaiveDate) -> Self {
        let len = usize::try_from((to - from).num_days() + 1).unwrap_or(0);
        let mut series = Self {
            spend: vec![0.0; len],
            revenue: vec![0.0; len],
            roas: vec![0.0; len],
        };
        for day in days {
            let Ok(i) = usize::try_from((day.stat_date - from).num_days()) else {
                continue;
            };
            if i >= len {
                continue;
            }
            series.spend[i] = day.spend_cents as f64 / 100.0;
            series.revenue[i] = day.revenue_cents as f64 / 100.0;
            // From the day's totals, never an average of campaign ratios.
            series.roas[i] = Ratio::ROAS.of(day.revenue_cents, day.spend_cents);
        }
        series
    }
}

fn sellpage_table(rows: &[SellpageTotals]) -> Markup {
    html! {
        table #sellpages {
            thead {
                tr {
                    th { "sellpage" } th.num { "ad spend" } th.num { "revenue" } th.num { "ROAS" }
                    th.num { "impressions" } th.num { "clicks" } th.num { "purchases" } th.num { "days" }
                }
            }
            tbody {
                @for row in rows {
                    tr {
                        td {
                            @match &row.title { Some(title) => (title), None => span.muted { "(deleted)" } }
                            @if let Some(slug) = &row.slug { " " span.muted { "/" (slug) } }
                        }
                        td.num { (dollars(row.ad_spend_cents)) }
                        td.num { (dollars(row.revenue_cents)) }
                        td.num { (ratio(row.revenue_cents, row.ad_spend_cents)) }
                        td.num { (thousands(row.impressions)) }
                        td.num { (thousands(row.clicks)) }
                        td.num { (thousands(row.purchases)) }
                        td.num { (row.days) }
                    }
                }
                @if rows.is_empty() { tr { td.muted colspan="8" { "no sellpage stats in these 30 days" } } }
            }
        }
    }
}

/// Cents as "$1,234.56".
fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!(
        "{sign}${}.{:02}",
        thousands((cents / 100) as i64),
        cents % 100
    )
}

fn ratio(revenue_cents: i64, spend_cents: i64) -> String {
    if spend_cents == 0 {
        "—".into()
    } else {
        format!("{:.2}", Ratio::ROAS.of(revenue_cents, spend_cents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_ratios_format() {
        assert_eq!(dollars(12_345_678), "$123,456.78");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(ratio(300, 100), "3.00");
        assert_eq!(ratio(300, 0), "—");
    }

    #[test]
    fn series_fill_missing_days_with_zero() {
        let from = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let to = from + Duration::days(DAYS - 1);
        let day = |d: i64, spend, revenue| DayTotals {
            stat_date: from + Duration::days(d),
            spend_cents: spend,
            revenue_cents: revenue,
            impressions: 0,
            clicks: 0,
            purchases: 0,
        };
        let s = Series::from_days(&[day(0, 1000, 2500), day(29, 0, 0)], from, to);
        assert_eq!(s.spend.len(), 30);
        assert_eq!((s.spend[0], s.revenue[0], s.roas[0]), (10.0, 25.0, 2.5));
        assert_eq!((s.spend[1], s.roas[29]), (0.0, 0.0));
    }
}
