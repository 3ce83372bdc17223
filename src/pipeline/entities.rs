//! Which entities get stats, the daily budget each is assumed to spend, the connection (ad
//! account) each runs under and the provider's own id for it.

use std::collections::HashMap;

use crate::db::catalog::{self, DeliveringAd, DeliveringAdset, DeliveringCampaign};
use crate::db::DbConn;
use crate::domain::{AdAccount, EntityBudget, Level};

/// The delivering entities of one level with their effective daily budgets, ordered by id.
pub async fn delivering_entities(
    conn: &mut DbConn,
    seller_id: &str,
    level: Level,
) -> diesel::QueryResult<Vec<EntityBudget>> {
    let tree = catalog::delivering_tree(conn, seller_id, depth(level)).await?;
    Ok(budgets(level, &tree))
}

/// [`delivering_entities`] and the seller's ACTIVE ad accounts, read together (one round trip on
/// PostgreSQL): what a sync starts with.
pub async fn delivering_entities_and_accounts(
    conn: &mut DbConn,
    seller_id: &str,
    level: Level,
) -> diesel::QueryResult<(Vec<EntityBudget>, Vec<AdAccount>)> {
    let (tree, accounts) =
        catalog::delivering_tree_and_accounts(conn, seller_id, depth(level)).await?;
    Ok((budgets(level, &tree), accounts))
}

/// How deep a level's catalogue read goes (1: campaigns; 2: and ad sets; 3: and ads).
fn depth(level: Level) -> u8 {
    match level {
        Level::Campaign => 1,
        Level::Adset => 2,
        Level::Ad => 3,
    }
}

fn budgets(level: Level, tree: &catalog::DeliveringTree) -> Vec<EntityBudget> {
    match level {
        Level::Campaign => campaign_budgets(&tree.campaigns),
        Level::Adset => adset_budgets(&tree.campaigns, &tree.adsets),
        Level::Ad => ad_budgets(&tree.campaigns, &tree.adsets, &tree.ads),
    }
}

/// The seller's entities of one level that carry a provider id but are not among `delivering`
/// (paused, archived… themselves or through a parent), with no budget: for a provider that
/// reports every status, their rows are written where the provider has them.
pub async fn other_known_entities(
    conn: &mut DbConn,
    seller_id: &str,
    level: Level,
    delivering: &[EntityBudget],
) -> diesel::QueryResult<Vec<EntityBudget>> {
    let ours: std::collections::HashSet<&str> =
        delivering.iter().map(|e| e.entity_id.as_str()).collect();
    Ok(
        catalog::entities_with_external_id(conn, seller_id, depth(level))
            .await?
            .into_iter()
            .filter(|e| !ours.contains(e.id.as_str()))
            .map(|e| EntityBudget {
                entity_id: e.id,
                daily_budget_cents: 0,
                connection_id: e.connection_id,
                external_id: Some(e.external_id),
            })
            .collect(),
    )
}

/// A campaign spends its own budget.
pub fn campaign_budgets(campaigns: &[DeliveringCampaign]) -> Vec<EntityBudget> {
    campaigns
        .iter()
        .map(|c| EntityBudget {
            entity_id: c.id.clone(),
            daily_budget_cents: c.daily_budget_cents,
            connection_id: c.connection_id.clone(),
            external_id: c.external_id.clone(),
        })
        .collect()
}

/// An ad set spends its own budget; without one, an even share (integer division) of its
/// campaign's budget among the campaign's delivering ad sets.
pub fn adset_budgets(
    campaigns: &[DeliveringCampaign],
    adsets: &[DeliveringAdset],
) -> Vec<EntityBudget> {
    let campaign_of: HashMap<&str, &DeliveringCampaign> =
        campaigns.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut siblings: HashMap<&str, i64> = HashMap::new();
    for a in adsets {
        *siblings.entry(a.campaign_id.as_str()).or_default() += 1;
    }
    adsets
        .iter()
        .filter_map(|a| {
            let campaign = *campaign_of.get(a.campaign_id.as_str())?;
            let budget = match a.daily_budget_cents {
                Some(own) => own,
                None => campaign.daily_budget_cents / siblings[a.campaign_id.as_str()],
            };
            Some(EntityBudget {
                entity_id: a.id.clone(),
                daily_budget_cents: budget,
                connection_id: campaign.connection_id.clone(),
                external_id: a.external_id.clone(),
            })
        })
        .collect()
}

/// An ad spends an even share (integer division) of its ad set's effective budget among the ad
/// set's delivering ads.
pub fn ad_budgets(
    campaigns: &[DeliveringCampaign],
    adsets: &[DeliveringAdset],
    ads: &[DeliveringAd],
) -> Vec<EntityBudget> {
    let adset_budget: HashMap<String, EntityBudget> = adset_budgets(campaigns, adsets)
        .into_iter()
        .map(|e| (e.entity_id.clone(), e))
        .collect();
    let mut siblings: HashMap<&str, i64> = HashMap::new();
    for ad in ads {
        *siblings.entry(ad.adset_id.as_str()).or_default() += 1;
    }
    ads.iter()
        .filter_map(|ad| {
            let parent = adset_budget.get(&ad.adset_id)?;
            Some(EntityBudget {
                entity_id: ad.id.clone(),
                daily_budget_cents: parent.daily_budget_cents / siblings[ad.adset_id.as_str()],
                connection_id: parent.connection_id.clone(),
                external_id: ad.external_id.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(id: &str, budget: i64) -> DeliveringCampaign {
        DeliveringCampaign {
            id: id.into(),
            daily_budget_cents: budget,
            connection_id: "conn".into(),
            external_id: None,
        }
    }

    fn adset(id: &str, campaign: &str, budget: Option<i64>) -> DeliveringAdset {
        DeliveringAdset {
            id: id.into(),
            campaign_id: campaign.into(),
            daily_budget_cents: budget,
            external_id: None,
        }
    }

    fn ad(id: &str, adset: &str) -> DeliveringAd {
        DeliveringAd {
            id: id.into(),
            adset_id: adset.into(),
            external_id: None,
        }
    }

    fn budgets(v: Vec<EntityBudget>) -> Vec<(String, i64)> {
        v.into_iter()
            .map(|e| (e.entity_id, e.daily_budget_cents))
            .collect()
    }

    #[test]
    fn adsets_use_their_own_budget_or_an_even_share() {
        let campaigns = [campaign("c1", 10_000), campaign("c2", 999)];
        let adsets = [
            adset("a1", "c1", None),
            adset("a2", "c1", Some(2_500)),
            adset("a3", "c1", None),
            adset("b1", "c2", None),
            adset("b2", "c2", None),
        ];
        assert_eq!(
            budgets(adset_budgets(&campaigns, &adsets)),
            vec![
                ("a1".into(), 3_333),
                ("a2".into(), 2_500),
                ("a3".into(), 3_333),
                ("b1".into(), 499),
                ("b2".into(), 499),
            ]
        );
    }

    #[test]
    fn ads_share_their_adsets_effective_budget() {
        let campaigns = [campaign("c1", 9_000)];
        let adsets = [adset("a1", "c1", None), adset("a2", "c1", Some(1_000))];
        let ads = [ad("x1", "a1"), ad("x2", "a1"), ad("x3", "a2")];
        assert_eq!(
            budgets(ad_budgets(&campaigns, &adsets, &ads)),
            vec![
                ("x1".into(), 2_250),
                ("x2".into(), 2_250),
                ("x3".into(), 1_000)
            ]
        );
    }
}
