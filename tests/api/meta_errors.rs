//! Meta's errors as it reports them: a missing permission makes the connection REVOKED with the
//! reason (until `set-token`), code 4 pauses every Meta connection through the database (so on
//! every instance), `is_transient: true` is retried, and `X-App-Usage` / `X-FB-Ads-Insights-Throttle`
//! count against `meta.usage_threshold` like the other two usage headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ads_stats::config::Secret;
use ads_stats::crypto::TokenSealer;
use ads_stats::db::catalog::{self, HierarchyTable};
use ads_stats::db::schema::{ad_connections, sync_jobs};
use ads_stats::db::{self, connections, Db};
use ads_stats::db_run;
use ads_stats::domain::Level;
use ads_stats::jobs::Trigger;
use ads_stats::pipeline::SyncRequest;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::helpers::{merge, seller_catalog, Backend};
use crate::meta::{
    enqueue, graph_error, meta_app, meta_app_with, raw, row, FakeGraph, Reply, CONNECTION, KEY,
    TOKEN,
};
use crate::on_both_backends;

on_both_backends!(
    permission_errors_revoke_the_connection_until_a_new_token,
    the_app_limit_pauses_every_meta_connection,
    an_error_meta_calls_transient_is_retried,
    app_usage_and_insights_throttle_headers_pause_the_account,
);

/// (status, status_reason, paused_until) of a connection.
async fn connection(db: &Db, id: &str) -> (String, Option<String>, Option<NaiveDateTime>) {
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    db_run!(conn, {
        ad_connections::table
            .find(id)
            .select((
                ad_connections::status,
                ad_connections::status_reason,
                ad_connections::paused_until,
            ))
            .first(conn)
            .await
            .unwrap()
    })
}

/// What `set-token` stores, through the same database call.
async fn store_token(db: &Db, id: &str) -> (String, String) {
    let sealed = TokenSealer::new(&KEY)
        .seal(id, &Secret::new(TOKEN))
        .unwrap();
    let mut conn = db.conn().await.unwrap();
    connections::store_token(&mut conn, id, &sealed)
        .await
        .unwrap()
        .expect("connection exists")
}

/// Takes every pause back to the past and makes waiting jobs due, as the passing of time would.
async fn end_pauses(db: &Db) {
    let mut conn = db.conn().await.unwrap();
    let conn = &mut conn;
    let past = db::now_utc() - chrono::Duration::seconds(1);
    db_run!(conn, {
        diesel::update(ad_connections::table)
            .set(ad_connections::paused_until.eq(Some(past)))
            .execute(conn)
            .await
            .unwrap();
        diesel::update(sync_jobs::table.filter(sync_jobs::status.eq("QUEUED")))
            .set(sync_jobs::run_at.eq(past))
            .execute(conn)
            .await
            .unwrap();
    });
}

fn one_row() -> Reply {
    Reply::json(
        200,
        serde_json::json!({"data": [row(("campaign_id", "120001"), "2026-11-20", "1.00", "10", "1")]}),
    )
}

/// Codes 200 ("requires ads_read"), 10 and 100/33 ("cannot be loaded due to missing
/// permissions"): each fails the job at once, makes the connection REVOKED with the reason, and
/// later jobs ask nothing; a new token makes it ACTIVE again with no reason.
async fn permission_errors_revoke_the_connection_until_a_new_token(backend: Backend) {
    let error = Arc::new(Mutex::new((200, 0)));
    let graph = {
        let error = error.clone();
        FakeGraph::start(move |_, _, _| {
            let (code, sub) = *error.lock().unwrap();
            Reply::json(
                400,
                graph_error(
                    code,
                    sub,
                    &format!("(#{code}) Requires ads_read permission"),
                ),
            )
        })
        .await
    };
    let app = meta_app(backend, &graph).await;
    for (n, (code, sub)) in [(200, 0), (10, 0), (100, 33)].into_iter().enumerate() {
        *error.lock().unwrap() = (code, sub);
        let day = format!("2026-11-{:02}", 10 + n);
        enqueue(&app, Level::Campaign, &day, &day).await;
        app.wait_until_idle(Duration::from_secs(10)).await;
        let jobs = app.jobs().await;
        let job = jobs.iter().find(|j| j.job_id.contains(&day)).unwrap();
        assert_eq!((job.status.as_str(), job.attempts), ("FAILED", 1), "{code}");
        assert_eq!(
            job.last_error.as_deref(),
            Some("the ad account's access token lacks a permission on the account; grant it and connect the account again")
        );
        let (status, reason, _) = connection(&app.db, CONNECTION).await;
        assert_eq!(status, "REVOKED", "{code}");
        let reason = reason.expect("reason kept");
        assert!(
            reason.starts_with("permission error") && reason.contains(&format!("code {code}")),
            "{reason}"
        );
        assert!(!reason.contains(TOKEN));
        assert_eq!(graph.requests(), n + 1);

        // Its jobs stop: nothing is asked while REVOKED.
        enqueue(&app, Level::Adset, &day, &day).await;
        app.wait_until_idle(Duration::from_secs(10)).await;
        assert_eq!(
            graph.requests(),
            n + 1,
            "{code}: a REVOKED connection is not asked"
        );

        assert_eq!(
            store_token(&app.db, CONNECTION).await,
            ("REVOKED".to_string(), "ACTIVE".to_string())
        );
        assert_eq!(connection(&app.db, CONNECTION).await.1, None);
    }
    drop(app.shutdown().await);
}

/// Code 4 met by one seller's account pauses every Meta connection (the other seller's too) in
/// the database, where every instance reads it: the other seller's job waits without a request
/// and without using an attempt. After the pause both run.
async fn the_app_limit_pauses_every_meta_connection(backend: Backend) {
    let graph = FakeGraph::start(|n, _, _| {
        if n == 0 {
            Reply::json(
                400,
                graph_error(4, 1504022, "(#4) Application request limit reached"),
            )
        } else {
            one_row()
        }
    })
    .await;
    let app = meta_app_with(backend, &graph, {
        let mut both = merge(seller_catalog("s1"), seller_catalog("s2"));
        for (n, c) in both.connections.iter_mut().enumerate() {
            c.external_account_id = format!("act_{}", 1001 + n);
        }
        both
    })
    .await;
    {
        let mut conn = app.conn().await;
        catalog::set_external_id(
            &mut conn,
            HierarchyTable::Campaigns,
            "s2-cmp-1",
            Some("920001"),
        )
        .await
        .unwrap();
        let sealed = TokenSealer::new(&KEY)
            .seal("s2-conn", &Secret::new(TOKEN))
            .unwrap();
        connections::set_sealed_token(&mut conn, "s2-conn", &sealed)
            .await
            .unwrap();
    }
    let started = db::now_utc();
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_for_jobs(Duration::from_secs(10), |j| {
        j[0].status == "QUEUED" && j[0].last_error.is_some()
    })
    .await;
    for id in ["s1-conn", "s2-conn"] {
        let (status, _, paused) = connection(&app.db, id).await;
        assert_eq!(status, "ACTIVE");
        let ahead = (paused.expect("paused") - started).num_seconds();
        assert!((55..=65).contains(&ahead), "{id}: {ahead}s");
    }
    let s2 = SyncRequest::one_day("s2", Level::Campaign, "2026-11-20".parse().unwrap());
    app.app()
        .queue()
        .enqueue(&[s2], Trigger::Manual)
        .await
        .unwrap();
    let jobs = app
        .wait_for_jobs(Duration::from_secs(10), |j| {
            j.iter()
                .any(|j| j.job_id.contains("__s2__") && j.last_error.is_some())
        })
        .await;
    let s2_job = jobs.iter().find(|j| j.job_id.contains("__s2__")).unwrap();
    assert_eq!((s2_job.status.as_str(), s2_job.attempts), ("QUEUED", 0));
    assert_eq!(
        graph.requests(),
        1,
        "the other seller's account was not asked"
    );

    end_pauses(&app.db).await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert!(
        jobs.iter()
            .all(|j| j.status == "SUCCEEDED" && j.attempts == 1),
        "{jobs:#?}"
    );
    assert_eq!(graph.requests(), 3);
    drop(app.shutdown().await);
}

/// A code Meta does not list as temporary, but with `is_transient: true`: the attempt is retried
/// and the second one writes the row.
async fn an_error_meta_calls_transient_is_retried(backend: Backend) {
    let graph = FakeGraph::start(|n, _, _| {
        if n == 0 {
            let mut body = graph_error(100, 0, "An unexpected error has occurred.");
            body["error"]["is_transient"] = true.into();
            Reply::json(400, body)
        } else {
            one_row()
        }
    })
    .await;
    let app = meta_app(backend, &graph).await;
    enqueue(&app, Level::Campaign, "2026-11-20", "2026-11-20").await;
    app.wait_until_idle(Duration::from_secs(20)).await;
    let jobs = app.jobs().await;
    assert_eq!(
        (jobs[0].status.as_str(), jobs[0].attempts),
        ("SUCCEEDED", 2),
        "{jobs:#?}"
    );
    assert_eq!(
        raw(&app, "CAMPAIGN", "s1-cmp-1", "2026-11-20").await[0].spend_cents,
        100
    );
    drop(app.shutdown().await);
}

/// `X-App-Usage` at 80% (threshold 75%) on the only page, then `X-FB-Ads-Insights-Throttle` with
/// the app at 96%: each time the rows are kept and the account pauses for its next job.
async fn app_usage_and_insights_throttle_headers_pause_the_account(backend: Backend) {
    let graph = FakeGraph::start(|n, _, _| {
        if n == 0 {
            one_row().header(
                "X-App-Usage",
                serde_json::json!({"call_count": 80, "total_cputime": 5, "total_time": 5}),
            )
        } else {
            one_row().header(
                "X-FB-Ads-Insights-Throttle",
                serde_json::json!({"app_id_util_pct": 96, "acc_id_util_pct": 3,
                    "ads_api_access_tier": "standard_access"}),
            )
        }
    })
    .await;
    let app = meta_app(backend, &graph).await;
    for level in [Level::Campaign, Level::Adset] {
        end_pauses(&app.db).await;
        let started = db::now_utc();
        enqueue(&app, level, "2026-11-20", "2026-11-20").await;
        app.wait_until_idle(Duration::from_secs(10)).await;
        let jobs = app.jobs().await;
        assert!(
            jobs.iter().all(|j| j.status == "SUCCEEDED"),
            "{level}: {jobs:#?}"
        );
        let paused = connection(&app.db, CONNECTION).await.2.expect("paused");
        let ahead = (paused - started).num_seconds();
        assert!((55..=65).contains(&ahead), "{level}: {ahead}s");
    }
    assert_eq!(graph.requests(), 2);
    drop(app.shutdown().await);
}
