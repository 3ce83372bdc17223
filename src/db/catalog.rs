//! Reads (and, for seeding, writes) the ad hierarchy: sellers, connections, sellpages, campaigns,
//! ad sets and ads.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Integer, Nullable, Text};
use diesel_async::RunQueryDsl;

use super::models::{NewAd, NewAdConnection, NewAdset, NewCampaign, NewSeller, NewSellpage};
use super::schema::{ad_connections, ads, adsets, campaigns, sellers, sellpages};
use super::DbConn;
use crate::db_run;
use crate::domain::AdAccount;

/// A campaign that delivers: it, its connection and its seller are all ACTIVE.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveringCampaign {
    pub id: String,
    pub daily_budget_cents: i64,
    /// The ad account it runs under.
    pub connection_id: String,
    pub external_id: Option<String>,
}

/// An ACTIVE ad set under a delivering campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveringAdset {
    pub id: String,
    pub campaign_id: String,
    pub daily_budget_cents: Option<i64>,
    pub external_id: Option<String>,
}

/// An ACTIVE ad under a delivering ad set.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveringAd {
    pub id: String,
    pub adset_id: String,
    pub external_id: Option<String>,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

const DELIVERING_CAMPAIGNS: &str = "\
    SELECT c.id, c.daily_budget_cents, c.connection_id, c.external_id \
    FROM campaigns c \
    JOIN sellers s ON s.id = c.seller_id \
    JOIN ad_connections ac ON ac.id = c.connection_id \
    WHERE c.seller_id = $1 AND c.status = 'ACTIVE' AND s.status = 'ACTIVE' AND ac.status = 'ACTIVE'";

/// A seller's delivering hierarchy, down to the level a sync needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveringTree {
    pub campaigns: Vec<DeliveringCampaign>,
    pub adsets: Vec<DeliveringAdset>,
    pub ads: Vec<DeliveringAd>,
}

/// One row of [`delivering_tree`]'s query: a campaign (1), ad set (2) or ad (3).
#[derive(QueryableByName)]
struct TreeRow {
    #[diesel(sql_type = Integer)]
    depth: i32,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Nullable<Text>)]
    parent_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    daily_budget_cents: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    connection_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    external_id: Option<String>,
}

/// The query for [`delivering_tree`] at `depth` (1: campaigns; 2: and ad sets; 3: and ads).
fn delivering_tree_sql(depth: u8) -> String {
    // The delivering campaigns are found once (a CTE used more than once is computed once).
    let mut sql = format!(
        "WITH dc AS ({DELIVERING_CAMPAIGNS}) \
         SELECT 1 AS depth, c.id AS id, CAST(NULL AS TEXT) AS parent_id, \
                c.daily_budget_cents AS daily_budget_cents, c.connection_id AS connection_id, \
                c.external_id AS external_id \
         FROM dc c"
    );
    // CROSS JOIN fixes SQLite's join order to campaigns, then ad sets, then ads (each by index);
    // left to itself, without table statistics, it scanned every ad to skip a sort. PostgreSQL
    // reads it as an inner join and plans it freely.
    if depth >= 2 {
        sql.push_str(
            " UNION ALL SELECT 2, a.id, a.campaign_id, a.daily_budget_cents, NULL, a.external_id \
              FROM dc CROSS JOIN adsets a WHERE a.campaign_id = dc.id AND a.status = 'ACTIVE'",
        );
    }
    if depth >= 3 {
        sql.push_str(
            " UNION ALL SELECT 3, d.id, d.adset_id, NULL, NULL, d.external_id \
              FROM dc CROSS JOIN adsets a CROSS JOIN ads d \
              WHERE a.campaign_id = dc.id AND d.adset_id = a.id \
                AND a.status = 'ACTIVE' AND d.status = 'ACTIVE'",
        );
    }
    sql.push_str(" ORDER BY depth, id");
    sql
}

/// The seller's delivering campaigns and, with `depth` 2 or 3, their ACTIVE ad sets and those
/// ad sets' ACTIVE ads, each ordered by id, in one prepared statement (a job runs it once).
pub async fn delivering_tree(
    conn: &mut DbConn,
    seller_id: &str,
    depth: u8,
) -> QueryResult<DeliveringTree> {
    let sql = delivering_tree_sql(depth);
    let rows: Vec<TreeRow> = db_run!(conn, {
        crate::db::prepared(diesel::sql_query(&sql).bind::<Text, _>(seller_id))
            .load(conn)
            .await
    })?;
    Ok(assemble_tree(rows))
}

/// The rows of [`delivering_tree_sql`] as a tree.
fn assemble_tree(rows: Vec<TreeRow>) -> DeliveringTree {
    let mut tree = DeliveringTree::default();
    for row in rows {
        let parent = row.parent_id.unwrap_or_default();
        match row.depth {
            1 => tree.campaigns.push(DeliveringCampaign {
                id: row.id,
                daily_budget_cents: row.daily_budget_cents.unwrap_or_default(),
                connection_id: row.connection_id.unwrap_or_default(),
                external_id: row.external_id,
            }),
            2 => tree.adsets.push(DeliveringAdset {
                id: row.id,
                campaign_id: parent,
                daily_budget_cents: row.daily_budget_cents,
                external_id: row.external_id,
            }),
            _ => tree.ads.push(DeliveringAd {
                id: row.id,
                adset_id: parent,
                external_id: row.external_id,
            }),
        }
    }
    tree
}

/// [`delivering_tree`] and the seller's ACTIVE connections
/// ([`active_accounts`](super::connections::active_accounts)), the two reads a sync starts with:
/// on PostgreSQL pipelined on one connection (one round trip), on SQLite one after the other.
pub async fn delivering_tree_and_accounts(
    conn: &mut DbConn,
    seller_id: &str,
    depth: u8,
) -> QueryResult<(DeliveringTree, Vec<AdAccount>)> {
    if let DbConn::Postgres(pg) = conn {
        let pg: &crate::db::PgConn = pg;
        let sql = delivering_tree_sql(depth);
        let tree = async {
            let mut shared = pg;
            let rows: Vec<TreeRow> =
                crate::db::prepared(diesel::sql_query(&sql).bind::<Text, _>(seller_id))
                    .load(&mut shared)
                    .await?;
            Ok(assemble_tree(rows))
        };
        let accounts = super::connections::active_accounts_shared(pg, seller_id);
        return futures_util::try_join!(tree, accounts);
    }
    let tree = delivering_tree(conn, seller_id, depth).await?;
    let accounts = super::connections::active_accounts(conn, seller_id).await?;
    Ok((tree, accounts))
}

/// One of a seller's entities of one level whatever its status, with its campaign's connection.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct KnownEntity {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub connection_id: String,
    #[diesel(sql_type = Text)]
    pub external_id: String,
}

/// The query for [`entities_with_external_id`] at `level` (1: campaigns; 2: ad sets; 3: ads).
fn known_entities_sql(depth: u8) -> &'static str {
    match depth {
        1 => {
            "SELECT c.id AS id, c.connection_id AS connection_id, c.external_id AS external_id \
             FROM campaigns c JOIN sellers s ON s.id = c.seller_id \
             WHERE c.seller_id = $1 AND s.status = 'ACTIVE' AND c.external_id IS NOT NULL \
             ORDER BY c.id"
        }
        2 => {
            "SELECT a.id AS id, c.connection_id AS connection_id, a.external_id AS external_id \
             FROM adsets a JOIN campaigns c ON c.id = a.campaign_id \
             JOIN sellers s ON s.id = a.seller_id \
             WHERE a.seller_id = $1 AND s.status = 'ACTIVE' AND a.external_id IS NOT NULL \
             ORDER BY a.id"
        }
        _ => {
            "SELECT d.id AS id, c.connection_id AS connection_id, d.external_id AS external_id \
             FROM ads d JOIN adsets a ON a.id = d.adset_id JOIN campaigns c ON c.id = a.campaign_id \
             JOIN sellers s ON s.id = d.seller_id \
             WHERE d.seller_id = $1 AND s.status = 'ACTIVE' AND d.external_id IS NOT NULL \
             ORDER BY d.id"
        }
    }
}

/// The seller's campaigns (`depth` 1), ad sets (2) or ads (3) that carry a provider id, of any
/// status (their own or their parents'; the seller must be ACTIVE), ordered by id: a provider that reports what every
/// object really did (Meta) has its rows for paused and archived ones written too.
pub async fn entities_with_external_id(
    conn: &mut DbConn,
    seller_id: &str,
    depth: u8,
) -> QueryResult<Vec<KnownEntity>> {
    let sql = known_entities_sql(depth);
    db_run!(conn, {
        crate::db::prepared(diesel::sql_query(sql).bind::<Text, _>(seller_id))
            .load(conn)
            .await
    })
}

/// An ACTIVE ad connection of a seller the scheduler syncs: whose clock dates the seller's jobs,
/// which provider serves it, and when its daily lookback was last queued.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct ScheduledConnection {
    #[diesel(sql_type = Text)]
    pub seller_id: String,
    #[diesel(sql_type = Text)]
    pub connection_id: String,
    /// `ad_connections.provider` as stored (`META` for Meta ad accounts).
    #[diesel(sql_type = Text)]
    pub provider: String,
    /// IANA name as stored; the caller decides what an unknown one means.
    #[diesel(sql_type = Text)]
    pub timezone: String,
    #[diesel(sql_type = Nullable<Date>)]
    pub lookback_queued_on: Option<NaiveDate>,
}

/// Every ACTIVE connection of every seller the scheduler syncs ([`ELIGIBLE`]), in one
/// query, so a tick costs the same few statements at 10 sellers or 10,000.
///
/// With `recent_since` (a provider that reports every status, Meta), a seller without a
/// delivering campaign is synced too while one of its campaigns on an ACTIVE `META` connection
/// has a provider id and a daily row dated `recent_since` or later: a campaign paused this
/// morning still spent yesterday, and late conversions keep changing its last days. The caller
/// passes the earliest date its scheduled jobs can reach, so such a seller drops out once no
/// scheduled job could change its numbers any more.
pub async fn scheduled_connections(
    conn: &mut DbConn,
    recent_since: Option<NaiveDate>,
) -> QueryResult<Vec<ScheduledConnection>> {
    let eligible = match recent_since {
        None => format!("({ELIGIBLE})"),
        Some(_) => format!("(({ELIGIBLE}) OR ({RECENTLY_DELIVERED}))"),
    };
    let sql = format!(
        "SELECT s.id AS seller_id, sac.id AS connection_id, sac.provider AS provider, \
                sac.timezone AS timezone, sac.lookback_queued_on AS lookback_queued_on \
         FROM sellers s JOIN ad_connections sac ON sac.seller_id = s.id \
         WHERE sac.status = 'ACTIVE' AND {eligible} ORDER BY s.id, sac.id"
    );
    db_run!(conn, {
        match recent_since {
            None => diesel::sql_query(&sql).load(conn).await,
            Some(since) => {
                diesel::sql_query(&sql)
                    .bind::<Date, _>(since)
                    .load(conn)
                    .await
            }
        }
    })
}

/// A seller (`s`) whose Meta campaigns, whatever their status now, have a daily row from `$1` on:
/// the index `(seller_id, level, stat_date, entity_id)` answers it per seller.
const RECENTLY_DELIVERED: &str = "s.status = 'ACTIVE' \
    AND EXISTS (SELECT 1 FROM campaigns c JOIN ad_connections cc ON cc.id = c.connection_id \
                JOIN ad_stats_daily d ON d.seller_id = c.seller_id AND d.level = 'CAMPAIGN' \
                     AND d.entity_id = c.id \
                WHERE c.seller_id = s.id AND c.external_id IS NOT NULL \
                  AND cc.status = 'ACTIVE' AND UPPER(cc.provider) = 'META' \
                  AND d.stat_date >= $1)";

/// The distinct time zones of one seller's ACTIVE connections (a manual sync's "today").
pub async fn seller_timezones(conn: &mut DbConn, seller_id: &str) -> QueryResult<Vec<String>> {
    db_run!(conn, {
        ad_connections::table
            .filter(ad_connections::seller_id.eq(seller_id))
            .filter(ad_connections::status.eq("ACTIVE"))
            .select(ad_connections::timezone)
            .distinct()
            .order(ad_connections::timezone)
            .load::<String>(conn)
            .await
    })
}

/// Ids per UPDATE: well below SQLite's bound-parameter limit.
const LOOKBACK_IDS_PER_STATEMENT: usize = 1000;

/// Marks the lookback of `local_date` queued on those of the connections not yet marked for it
/// (or a later day), and returns their ids. Run it in the transaction that enqueues the lookback
/// jobs: the marker and the jobs commit together, and a second tick, or another instance
/// racing on the same rows (PostgreSQL re-checks the condition after the first commits), gets
/// back no id and queues nothing.
pub async fn claim_lookback(
    conn: &mut DbConn,
    local_date: NaiveDate,
    connection_ids: &[String],
) -> QueryResult<Vec<String>> {
    use ad_connections::dsl as ac;
    let mut claimed = Vec::new();
    for ids in connection_ids.chunks(LOOKBACK_IDS_PER_STATEMENT) {
        let mut rows: Vec<String> = db_run!(conn, {
            diesel::update(
                ac::ad_connections.filter(ac::id.eq_any(ids)).filter(
                    ac::lookback_queued_on
                        .is_null()
                        .or(ac::lookback_queued_on.lt(local_date)),
                ),
            )
            .set(ac::lookback_queued_on.eq(local_date))
            .returning(ac::id)
            .get_results(conn)
            .await
        })?;
        claimed.append(&mut rows);
    }
    Ok(claimed)
}

/// Whether one seller has anything to sync (the scheduler's rule, [`ELIGIBLE`]).
pub async fn is_eligible(conn: &mut DbConn, seller_id: &str) -> QueryResult<bool> {
    let sql = format!("SELECT s.id FROM sellers s WHERE s.id = $1 AND {ELIGIBLE}");
    db_run!(conn, {
        let rows: Vec<IdRow> =
            crate::db::prepared(diesel::sql_query(&sql).bind::<Text, _>(seller_id))
                .load(conn)
                .await?;
        Ok(rows.iter().any(|row| row.id == seller_id))
    })
}

/// What a manual sync needs to know about its seller, read in one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SellerForSync {
    /// `ACTIVE`, `SUSPENDED`, or `None` when there is no such seller.
    pub status: Option<String>,
    /// It has something to sync (the scheduler's rule, [`ELIGIBLE`]).
    pub eligible: bool,
    /// The distinct time zones of its ACTIVE connections, sorted.
    pub timezones: Vec<String>,
}

#[derive(QueryableByName)]
struct SellerForSyncRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    eligible: i32,
    #[diesel(sql_type = Nullable<Text>)]
    timezone: Option<String>,
}

/// [`seller_status`], [`is_eligible`] and [`seller_timezones`] in one prepared statement: one row
/// per ACTIVE connection (one with no zone when there is none), none for an unknown seller.
pub async fn seller_for_sync(conn: &mut DbConn, seller_id: &str) -> QueryResult<SellerForSync> {
    let sql = format!(
        "SELECT s.status AS status, CASE WHEN {ELIGIBLE} THEN 1 ELSE 0 END AS eligible, \
                ac.timezone AS timezone \
         FROM sellers s LEFT JOIN ad_connections ac ON ac.seller_id = s.id AND ac.status = 'ACTIVE' \
         WHERE s.id = $1"
    );
    let rows: Vec<SellerForSyncRow> = db_run!(conn, {
        crate::db::prepared(diesel::sql_query(&sql).bind::<Text, _>(seller_id))
            .load(conn)
            .await
    })?;
    let Some(first) = <[SellerForSyncRow]>::first(&rows) else {
        return Ok(SellerForSync::default());
    };
    let mut seller = SellerForSync {
        status: Some(first.status.clone()),
        eligible: first.eligible == 1,
        timezones: rows.iter().filter_map(|r| r.timezone.clone()).collect(),
    };
    seller.timezones.sort();
    seller.timezones.dedup();
    Ok(seller)
}

/// Sellers (`s`) the scheduler syncs: ACTIVE, with an ACTIVE connection and a delivering
/// campaign.
pub(super) const ELIGIBLE: &str = "s.status = 'ACTIVE' \
    AND EXISTS (SELECT 1 FROM ad_connections ac WHERE ac.seller_id = s.id AND ac.status = 'ACTIVE') \
    AND EXISTS (SELECT 1 FROM campaigns c JOIN ad_connections cc ON cc.id = c.connection_id \
                WHERE c.seller_id = s.id AND c.status = 'ACTIVE' AND cc.status = 'ACTIVE')";

/// The seller's status (`ACTIVE`, `SUSPENDED`), or `None` when there is no such seller.
pub async fn seller_status(conn: &mut DbConn, seller_id: &str) -> QueryResult<Option<String>> {
    db_run!(conn, {
        sellers::table
            .find(seller_id)
            .select(sellers::status)
            .first::<String>(conn)
            .await
            .optional()
    })
}

/// The hierarchy to insert at once, for the demo and for tests; rows that exist are left alone.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub sellers: Vec<NewSeller>,
    pub connections: Vec<NewAdConnection>,
    pub sellpages: Vec<NewSellpage>,
    pub campaigns: Vec<NewCampaign>,
    pub adsets: Vec<NewAdset>,
    pub ads: Vec<NewAd>,
}

/// Inserts every row of `catalog` that is not there yet, parents first, in one transaction.
pub async fn insert_catalog(conn: &mut DbConn, catalog: &Catalog) -> QueryResult<usize> {
    conn.transaction(async |conn: &mut DbConn| {
        let mut inserted = 0;
        db_run!(conn, {
            for row in &catalog.sellers {
                inserted += diesel::insert_into(sellers::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for row in &catalog.connections {
                inserted += diesel::insert_into(ad_connections::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for row in &catalog.sellpages {
                inserted += diesel::insert_into(sellpages::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for row in &catalog.campaigns {
                inserted += diesel::insert_into(campaigns::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for row in &catalog.adsets {
                inserted += diesel::insert_into(adsets::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            for row in &catalog.ads {
                inserted += diesel::insert_into(ads::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
        });
        Ok(inserted)
    })
    .await
}

/// Sets the status column of one row of a hierarchy table (tests and tools).
pub async fn set_status(
    conn: &mut DbConn,
    table: HierarchyTable,
    id: &str,
    status: &str,
) -> QueryResult<usize> {
    db_run!(conn, {
        match table {
            HierarchyTable::Sellers => {
                diesel::update(sellers::table.find(id))
                    .set(sellers::status.eq(status))
                    .execute(conn)
                    .await
            }
            HierarchyTable::AdConnections => {
                diesel::update(ad_connections::table.find(id))
                    .set(ad_connections::status.eq(status))
                    .execute(conn)
                    .await
            }
            HierarchyTable::Campaigns => {
                diesel::update(campaigns::table.find(id))
                    .set(campaigns::status.eq(status))
                    .execute(conn)
                    .await
            }
            HierarchyTable::Adsets => {
                diesel::update(adsets::table.find(id))
                    .set(adsets::status.eq(status))
                    .execute(conn)
                    .await
            }
            HierarchyTable::Ads => {
                diesel::update(ads::table.find(id))
                    .set(ads::status.eq(status))
                    .execute(conn)
                    .await
            }
        }
    })
}

/// Records the provider's own id (Meta's campaign/ad set/ad id) on one of our campaigns, ad sets
/// or ads; the number of rows changed.
pub async fn set_external_id(
    conn: &mut DbConn,
    table: HierarchyTable,
    id: &str,
    external_id: Option<&str>,
) -> QueryResult<usize> {
    db_run!(conn, {
        match table {
            HierarchyTable::Campaigns => {
                diesel::update(campaigns::table.find(id))
                    .set(campaigns::external_id.eq(external_id))
                    .execute(conn)
                    .await
            }
            HierarchyTable::Adsets => {
                diesel::update(adsets::table.find(id))
                    .set(adsets::external_id.eq(external_id))
                    .execute(conn)
                    .await
            }
            HierarchyTable::Ads => {
                diesel::update(ads::table.find(id))
                    .set(ads::external_id.eq(external_id))
                    .execute(conn)
                    .await
            }
            HierarchyTable::Sellers | HierarchyTable::AdConnections => Ok(0),
        }
    })
}

#[derive(Debug, Clone, Copy)]
pub enum HierarchyTable {
    Sellers,
    AdConnections,
    Campaigns,
    Adsets,
    Ads,
}
