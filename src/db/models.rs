//! Rows as Rust values. Insert structs leave `created_at` to the column default.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{
    ad_connections, ad_stats_daily, ad_stats_raw, ads, adsets, campaigns, sellers,
    sellpage_stats_daily, sellpages, sync_jobs,
};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = sellers)]
pub struct NewSeller {
    pub id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ad_connections)]
pub struct NewAdConnection {
    pub id: String,
    pub seller_id: String,
    pub provider: String,
    pub external_account_id: String,
    pub status: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sellpages)]
pub struct NewSellpage {
    pub id: String,
    pub seller_id: String,
    pub slug: String,
    pub title: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = campaigns)]
pub struct NewCampaign {
    pub id: String,
    pub seller_id: String,
    pub connection_id: String,
    pub sellpage_id: Option<String>,
    pub name: String,
    pub status: String,
    pub daily_budget_cents: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = adsets)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewAdset {
    pub id: String,
    pub seller_id: String,
    pub campaign_id: String,
    pub name: String,
    pub status: String,
    pub daily_budget_cents: Option<i64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ads)]
pub struct NewAd {
    pub id: String,
    pub seller_id: String,
    pub adset_id: String,
    pub name: String,
    pub status: String,
}

/// One provider reading for one entity and day, as appended to `ad_stats_raw`.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = ad_stats_raw)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewRawStat {
    pub seller_id: String,
    pub level: String,
    pub entity_id: String,
    pub stat_date: NaiveDate,
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
    pub provider: String,
    /// The run that fetched it (`sync_jobs.id`); none for a sync run outside the job runtime
    /// (`ads-stats sync`).
    pub job_record_id: Option<i64>,
    pub fetched_at: NaiveDateTime,
}

/// A raw row as read back (`writes::raw_rows`).
#[derive(Debug, Clone, PartialEq, QueryableByName, Serialize)]
#[diesel(table_name = ad_stats_raw)]
pub struct RawStat {
    pub seller_id: String,
    pub level: String,
    pub entity_id: String,
    pub stat_date: NaiveDate,
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
    pub provider: String,
    pub job_record_id: Option<i64>,
    pub fetched_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, QueryableByName, Serialize)]
#[diesel(table_name = ad_stats_daily)]
pub struct DailyStat {
    pub id: i64,
    pub seller_id: String,
    pub level: String,
    pub entity_id: String,
    pub stat_date: NaiveDate,
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
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, QueryableByName, Serialize)]
#[diesel(table_name = sellpage_stats_daily)]
pub struct SellpageStat {
    pub id: i64,
    pub seller_id: String,
    pub sellpage_id: String,
    pub stat_date: NaiveDate,
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
    pub updated_at: NaiveDateTime,
    /// ISO 4217 code of the account currency every campaign of the row shares.
    pub currency: String,
}

/// A job record: the durable truth about one sync job run.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = sync_jobs)]
pub struct JobRecord {
    pub id: i64,
    pub job_id: String,
    pub seller_id: String,
    pub level: String,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    pub triggered_by: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub run_at: NaiveDateTime,
    pub locked_by: Option<String>,
    pub heartbeat_at: Option<NaiveDateTime>,
    pub entities: Option<i64>,
    pub raw_rows: Option<i64>,
    pub daily_rows: Option<i64>,
    pub sellpage_rows: Option<i64>,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    /// The claim class (see the jobs module's `Priority`): claims take the lowest first.
    pub priority: i16,
    /// The W3C `traceparent` of the request that created the job, when traces are exported: the
    /// job's span continues that trace. Never shown by the API.
    pub trace_parent: Option<String>,
    /// What the provider keeps about reports it started for this job (Meta's async runs), read
    /// with the claim so an attempt resumes them without another read. Never shown by the API.
    pub report_run_id: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sync_jobs)]
pub struct NewJobRecord {
    pub job_id: String,
    pub seller_id: String,
    pub level: String,
    pub date_from: NaiveDate,
    pub date_to: NaiveDate,
    pub triggered_by: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The claim class (see the jobs module's `Priority`).
    pub priority: i16,
}
