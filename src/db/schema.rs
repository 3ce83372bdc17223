//! Table definitions shared by both backends: only types that PostgreSQL and SQLite both carry
//! (`Timestamp` holds UTC; PostgreSQL stores it as `timestamptz` in a session pinned to UTC).

diesel::table! {
    sellers (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ad_connections (id) {
        id -> Text,
        seller_id -> Text,
        provider -> Text,
        external_account_id -> Text,
        status -> Text,
        created_at -> Timestamp,
        access_token_enc -> Nullable<Text>,
        timezone -> Text,
        paused_until -> Nullable<Timestamp>,
        lookback_queued_on -> Nullable<Date>,
        currency -> Text,
        status_reason -> Nullable<Text>,
        account_read_due_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sellpages (id) {
        id -> Text,
        seller_id -> Text,
        slug -> Text,
        title -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    campaigns (id) {
        id -> Text,
        seller_id -> Text,
        connection_id -> Text,
        sellpage_id -> Nullable<Text>,
        name -> Text,
        status -> Text,
        daily_budget_cents -> BigInt,
        created_at -> Timestamp,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    adsets (id) {
        id -> Text,
        seller_id -> Text,
        campaign_id -> Text,
        name -> Text,
        status -> Text,
        daily_budget_cents -> Nullable<BigInt>,
        created_at -> Timestamp,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    ads (id) {
        id -> Text,
        seller_id -> Text,
        adset_id -> Text,
        name -> Text,
        status -> Text,
        created_at -> Timestamp,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// No single-column key: the rows have no id on PostgreSQL (nothing reads one; SQLite keeps
    /// its rowid as `id`, unknown here). Partitioned by day of `fetched_at` on PostgreSQL, where
    /// the six counters are 4-byte `integer`s: read them through `CAST(… AS BIGINT)`, as
    /// `writes::raw_rows` does, never through this DSL (see migration 000014).
    ad_stats_raw (seller_id, level, entity_id, stat_date, fetched_at) {
        seller_id -> Text,
        level -> Text,
        entity_id -> Text,
        stat_date -> Date,
        spend_cents -> BigInt,
        impressions -> BigInt,
        clicks -> BigInt,
        content_views -> BigInt,
        add_to_cart -> BigInt,
        checkouts -> BigInt,
        purchases -> BigInt,
        revenue_cents -> BigInt,
        cpm -> Double,
        ctr -> Double,
        roas -> Double,
        provider -> Text,
        job_record_id -> Nullable<BigInt>,
        fetched_at -> Timestamp,
    }
}

diesel::table! {
    ad_stats_daily (id) {
        id -> BigInt,
        seller_id -> Text,
        level -> Text,
        entity_id -> Text,
        stat_date -> Date,
        spend_cents -> BigInt,
        impressions -> BigInt,
        clicks -> BigInt,
        content_views -> BigInt,
        add_to_cart -> BigInt,
        checkouts -> BigInt,
        purchases -> BigInt,
        revenue_cents -> BigInt,
        cpm -> Double,
        ctr -> Double,
        roas -> Double,
        raw_count -> BigInt,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sellpage_stats_daily (id) {
        id -> BigInt,
        seller_id -> Text,
        sellpage_id -> Text,
        stat_date -> Date,
        ad_spend_cents -> BigInt,
        impressions -> BigInt,
        clicks -> BigInt,
        content_views -> BigInt,
        add_to_cart -> BigInt,
        checkouts -> BigInt,
        purchases -> BigInt,
        revenue_cents -> BigInt,
        cpm -> Double,
        ctr -> Double,
        roas -> Double,
        campaign_count -> BigInt,
        updated_at -> Timestamp,
        currency -> Text,
    }
}

diesel::table! {
    sync_jobs (id) {
        id -> BigInt,
        job_id -> Text,
        seller_id -> Text,
        level -> Text,
        date_from -> Date,
        date_to -> Date,
        triggered_by -> Text,
        status -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        last_error -> Nullable<Text>,
        run_at -> Timestamp,
        locked_by -> Nullable<Text>,
        heartbeat_at -> Nullable<Timestamp>,
        entities -> Nullable<BigInt>,
        raw_rows -> Nullable<BigInt>,
        daily_rows -> Nullable<BigInt>,
        sellpage_rows -> Nullable<BigInt>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        priority -> SmallInt,
        report_run_id -> Nullable<Text>,
        trace_parent -> Nullable<Text>,
    }
}

diesel::table! {
    scheduler_ticks (mark) {
        mark -> Timestamp,
        instance -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        heartbeat_at -> Timestamp,
        sellers -> Nullable<BigInt>,
        enqueued -> Nullable<BigInt>,
        deduplicated -> Nullable<BigInt>,
    }
}

diesel::joinable!(ad_connections -> sellers (seller_id));
diesel::joinable!(sellpages -> sellers (seller_id));
diesel::joinable!(campaigns -> sellers (seller_id));
diesel::joinable!(campaigns -> ad_connections (connection_id));
diesel::joinable!(campaigns -> sellpages (sellpage_id));
diesel::joinable!(adsets -> campaigns (campaign_id));
diesel::joinable!(ads -> adsets (adset_id));

diesel::allow_tables_to_appear_in_same_query!(
    sellers,
    ad_connections,
    sellpages,
    campaigns,
    adsets,
    ads,
    ad_stats_raw,
    ad_stats_daily,
    sellpage_stats_daily,
    sync_jobs,
    scheduler_ticks,
);
