//! A small, realistic data set for trying the service: three sellers (two that sync, one
//! suspended), their connections, sellpages, campaigns, ad sets and ads. Fixed ids make seeding
//! idempotent.

use crate::db::catalog::Catalog;
use crate::db::models::{NewAd, NewAdConnection, NewAdset, NewCampaign, NewSeller, NewSellpage};

/// The seller whose token the demo prints.
pub const DEMO_SELLER: &str = "5b1f8e3a-2c47-4d9a-8e61-0f3b7c9d2a14";

pub fn catalog() -> Catalog {
    let mut c = Catalog::default();
    let sellers = [
        (DEMO_SELLER, "Northwind Outdoor", "ACTIVE"),
        (
            "9c2d4e6f-8a1b-4c3d-9e5f-7a6b8c0d1e2f",
            "Lumen Home Goods",
            "ACTIVE",
        ),
        (
            "3e7a9c1b-5d2f-4a8e-b6c4-1f0e2d3c4b5a",
            "Old Harbor Tea (suspended)",
            "SUSPENDED",
        ),
    ];
    for (i, (id, name, status)) in sellers.into_iter().enumerate() {
        let n = i + 1;
        c.sellers.push(NewSeller {
            id: id.into(),
            name: name.into(),
            status: status.into(),
        });
        let connection = format!("demo-conn-{n}");
        c.connections.push(NewAdConnection {
            id: connection.clone(),
            seller_id: id.into(),
            provider: "META".into(),
            external_account_id: format!("act_10{n}4455667"),
            status: "ACTIVE".into(),
        });
        let pages = [
            ("summer-sale", "Summer sale"),
            ("bestsellers", "Bestsellers"),
        ];
        for (p, (slug, title)) in pages.into_iter().enumerate() {
            c.sellpages.push(NewSellpage {
                id: format!("demo-page-{n}-{}", p + 1),
                seller_id: id.into(),
                slug: slug.into(),
                title: title.into(),
            });
        }
        // Three campaigns: two on sellpages, one paused.
        let campaigns = [
            (1, Some(1), "ACTIVE", 5_000),
            (2, Some(2), "ACTIVE", 12_000),
            (3, Some(1), "PAUSED", 3_000),
        ];
        for (k, page, status, budget) in campaigns {
            let campaign = format!("demo-cmp-{n}-{k}");
            c.campaigns.push(NewCampaign {
                id: campaign.clone(),
                seller_id: id.into(),
                connection_id: connection.clone(),
                sellpage_id: page.map(|p| format!("demo-page-{n}-{p}")),
                name: format!("Campaign {k}"),
                status: status.into(),
                daily_budget_cents: budget,
            });
            // Two ad sets: one sharing the campaign budget, one with its own.
            for (s, own_budget) in [(1, None), (2, Some(2_000))] {
                let adset = format!("demo-adset-{n}-{k}-{s}");
                c.adsets.push(NewAdset {
                    id: adset.clone(),
                    seller_id: id.into(),
                    campaign_id: campaign.clone(),
                    name: format!("Ad set {k}.{s}"),
                    status: "ACTIVE".into(),
                    daily_budget_cents: own_budget,
                });
                for a in 1..=2 {
                    c.ads.push(NewAd {
                        id: format!("demo-ad-{n}-{k}-{s}-{a}"),
                        seller_id: id.into(),
                        adset_id: adset.clone(),
                        name: format!("Ad {k}.{s}.{a}"),
                        status: "ACTIVE".into(),
                    });
                }
            }
        }
    }
    c
}

/// Turns the dashboard on for the demo with user `admin` and a fresh random password, unless
/// credentials are configured already. Returns the login to print, `None` when the configured
/// one is kept (its password is not known here, only its hash).
pub fn dashboard_login(
    settings: &mut crate::config::Settings,
) -> Result<Option<(String, String)>, String> {
    if settings.dashboard.admin().is_some() {
        return Ok(None);
    }
    // 76 random bits from the OS generator: 20 hex digits of a v4 UUID, one of them the fixed
    // version digit. Short enough to type.
    let password = uuid::Uuid::new_v4().simple().to_string()[..20].to_string();
    let phc = crate::password::hash(&password)?;
    settings.dashboard.admin_user = "admin".into();
    settings.dashboard.admin_password_hash = crate::config::Secret::new(phc);
    settings.dashboard.admin_password_sha256 = crate::config::Secret::new("");
    Ok(Some(("admin".into(), password)))
}
