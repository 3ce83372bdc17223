//! A deterministic provider. Other systems reproduce its numbers, so every step follows the
//! published recipe exactly (see README, "Metric definitions").

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use super::{FetchRequest, ProviderError, ProviderStat, StatProvider};
use crate::domain::Metrics;

#[derive(Debug, Clone, Copy, Default)]
pub struct MockProvider;

/// First four bytes, big-endian, of SHA-256 over `"{seller}:{entity}:{YYYY-MM-DD}"`.
pub fn seed(seller_id: &str, entity_id: &str, date: NaiveDate) -> u32 {
    let digest = Sha256::digest(format!(
        "{seller_id}:{entity_id}:{}",
        date.format("%Y-%m-%d")
    ));
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The mulberry32 generator, on u32 with wrapping arithmetic; draws lie in [0, 1).
pub struct Mulberry32 {
    state: u32,
}

impl Mulberry32 {
    pub fn new(seed: u32) -> Self {
        Self { state: seed }
    }

    pub fn next_f64(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x6D2B_79F5);
        let mut t = self.state;
        t = (t ^ (t >> 15)).wrapping_mul(t | 1);
        t ^= t.wrapping_add((t ^ (t >> 7)).wrapping_mul(t | 61));
        (t ^ (t >> 14)) as f64 / 4_294_967_296.0
    }
}

/// The reading for one entity and day with the given daily budget.
pub fn mock_metrics(
    seller_id: &str,
    entity_id: &str,
    date: NaiveDate,
    budget_cents: i64,
) -> Metrics {
    let mut rng = Mulberry32::new(seed(seller_id, entity_id, date));
    let r1 = rng.next_f64();
    let r2 = rng.next_f64();
    // f64::round rounds half away from zero, as the recipe says.
    let spend_cents = (budget_cents as f64 * (0.85 + r1 * 0.30)).round() as i64;
    let impressions = spend_cents * 1000 / 850;
    let clicks = impressions * 2 / 100;
    let content_views = clicks * 70 / 100;
    let add_to_cart = content_views * 12 / 100;
    let checkouts = add_to_cart * 50 / 100;
    let purchases = checkouts * 40 / 100;
    let aov_cents = ((35.0 + r2 * 115.0) * 100.0).round() as i64;
    let revenue_cents = purchases * aov_cents;
    Metrics::from_totals(
        spend_cents,
        impressions,
        clicks,
        content_views,
        add_to_cart,
        checkouts,
        purchases,
        revenue_cents,
    )
}

#[async_trait::async_trait]
impl StatProvider for MockProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    /// Day by day, each day's entities in the order asked (the order raw rows are written in).
    async fn fetch(&self, request: &FetchRequest<'_>) -> Result<Vec<ProviderStat>, ProviderError> {
        // Nothing awaited below: the span covers the whole (synchronous) fetch.
        let _span = super::spans::fetch_span("mock").entered();
        Ok(request
            .dates()
            .flat_map(|date| {
                request.entities.iter().map(move |e| ProviderStat {
                    date,
                    entity_id: e.entity_id.clone(),
                    metrics: mock_metrics(
                        request.seller_id,
                        &e.entity_id,
                        date,
                        e.daily_budget_cents,
                    ),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn mulberry32_matches_the_published_vector() {
        let mut rng = Mulberry32::new(0);
        assert_eq!(rng.next_f64(), 0.26642920868471265);
        assert_eq!(rng.next_f64(), 0.0003297457005828619);
        assert_eq!(rng.next_f64(), 0.2232720274478197);
    }

    #[test]
    fn first_check_vector() {
        let date = day("2026-11-28");
        assert_eq!(seed("seller-1", "campaign-1", date), 4239357182);
        let m = mock_metrics("seller-1", "campaign-1", date, 5000);
        assert_eq!(
            (m.spend_cents, m.impressions, m.clicks, m.content_views),
            (5122, 6025, 120, 84)
        );
        assert_eq!((m.add_to_cart, m.checkouts, m.purchases), (10, 5, 2));
        assert_eq!(m.revenue_cents, 15136);
        assert_eq!(m.revenue_cents / m.purchases, 7568);
    }

    #[test]
    fn second_check_vector() {
        let seller = "7f3c2a9e-1b4d-4c8e-9a6f-2d5e8b1c0a37";
        let date = day("2026-01-31");
        assert_eq!(seed(seller, "cmp_01", date), 180524858);
        let m = mock_metrics(seller, "cmp_01", date, 250000);
        assert_eq!(
            (m.spend_cents, m.impressions, m.clicks, m.content_views),
            (253797, 298584, 5971, 4179)
        );
        assert_eq!((m.add_to_cart, m.checkouts, m.purchases), (501, 250, 100));
        assert_eq!(m.revenue_cents, 661900);
        assert_eq!(m.revenue_cents / m.purchases, 6619);
    }

    #[test]
    fn deterministic_and_entity_sensitive() {
        let date = day("2026-03-01");
        let a = mock_metrics("s", "c1", date, 10_000);
        assert_eq!(a, mock_metrics("s", "c1", date, 10_000));
        assert_ne!(a, mock_metrics("s", "c2", date, 10_000));
        assert_ne!(a, mock_metrics("s", "c1", day("2026-03-02"), 10_000));
    }

    #[test]
    fn funnel_never_grows_and_spend_stays_within_15_percent() {
        let date = day("2026-05-05");
        for i in 0..500 {
            let budget = 1_000 + i * 997;
            let m = mock_metrics("seller", &format!("e{i}"), date, budget);
            assert!(m.spend_cents as f64 >= (budget as f64 * 0.85).floor());
            assert!(m.spend_cents as f64 <= (budget as f64 * 1.15).ceil());
            assert!(m.impressions >= m.clicks);
            assert!(m.clicks >= m.content_views);
            assert!(m.content_views >= m.add_to_cart);
            assert!(m.add_to_cart >= m.checkouts);
            assert!(m.checkouts >= m.purchases);
            let aov = if m.purchases > 0 {
                m.revenue_cents / m.purchases
            } else {
                3500
            };
            assert!((3500..=15000).contains(&aov));
        }
    }

    #[test]
    fn zero_budget_gives_zero_ratios() {
        let m = mock_metrics("s", "e", day("2026-01-01"), 0);
        assert_eq!(m.spend_cents, 0);
        assert_eq!((m.cpm, m.ctr, m.roas), (0.0, 0.0, 0.0));
    }
}
