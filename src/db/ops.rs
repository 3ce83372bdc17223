//! What an operator watches besides the queue, read at scrape time in a statement or two: ad
//! connections by provider and status, connections paused by a provider's usage limits, each
//! time zone's oldest "latest successful sync of today", and whether the schedule is behind.
//!
//! It runs in the `/health` probe beside the queue counts (one probe at a time, shared for a
//! second), so a flood of scrapes still costs a few small queries a second. Everything comes from
//! the database, never from this process's memory, so every instance reports the same numbers.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use super::DbConn;
use crate::db_run;

// One row per fact, told apart by `kind`:
// - `connections`: a (provider, status) pair and its count;
// - `paused`: ACTIVE connections paused by usage limits now;
// - `zone`: a time zone of the connections the scheduler syncs (ACTIVE, of an eligible seller);
// - `behind`: scheduled jobs created before the latest ticked cron mark (a newer mark passed
//   while they waited) that still run, or still wait for a worker although due. A job waiting
//   on purpose (a retry's back-off, a provider's usage pause: `run_at` ahead) is no sign of too
//   little capacity and is left out, or every long Meta pause would read as a late schedule;
// - `now`: the database's clock, that every age here is measured on.
// PostgreSQL reads its own clock; SQLite's `$1` is this process's (SQLite has none of its own).
fn facts_sql(now: &str) -> String {
    format!(
        "SELECT 'connections' AS kind, provider AS a, status AS b, COUNT(*) AS n, \
                CAST(NULL AS {ts}) AS at \
           FROM ad_connections GROUP BY provider, status \
         UNION ALL \
         SELECT 'paused', '', '', COUNT(*), CAST(NULL AS {ts}) FROM ad_connections \
          WHERE status = 'ACTIVE' AND paused_until > {now} \
         UNION ALL \
         SELECT 'zone', sac.timezone, '', 0, CAST(NULL AS {ts}) \
           FROM sellers s JOIN ad_connections sac ON sac.seller_id = s.id \
          WHERE sac.status = 'ACTIVE' AND {eligible} GROUP BY sac.timezone \
         UNION ALL \
         SELECT 'behind', '', '', COUNT(*), CAST(NULL AS {ts}) FROM sync_jobs \
          WHERE (status = 'RUNNING' OR (status = 'QUEUED' AND run_at <= {now})) \
            AND triggered_by = 'SCHEDULE' \
            AND created_at < (SELECT MAX(mark) FROM scheduler_ticks) \
         UNION ALL \
         SELECT 'now', '', '', 0, {now}",
        ts = if now == "$1" {
            "TIMESTAMP"
        } else {
            "TIMESTAMPTZ"
        },
        eligible = super::catalog::ELIGIBLE,
    )
}

// Per time zone, for the local date `$1`: every (connection, level) the scheduler syncs today,
// how many have no SUCCEEDED job of that date yet (`n`), and the oldest of the others' latest
// success (`at`). "Today's sync" of a seller and level is the job the scheduler queues every tick,
// `sync__{seller}__{date}__{date}__{level}` (a manual sync of today has the same id): its latest
// SUCCEEDED record is one backward step on the (job_id, id) index, so the cost grows with the
// connections, never with the jobs kept. Jobs run per seller, so a connection's sync is its
// seller's.
//
// `(status = 'SUCCEEDED') IS TRUE` rather than `status = …`: the same rows, but no index on
// `status` can serve it, so each lookup walks the few records of one job id backwards
// (`ix_sync_jobs_job_id`). With the plain test and statistics older than a tick (autovacuum not
// yet run), PostgreSQL ANDed in the whole SUCCEEDED range of `ix_sync_jobs_status_run_at` for
// every (seller, level): over 30 s at 10,000 sellers instead of 1 s, past the probe's limit.
fn freshness_sql() -> String {
    format!(
        "SELECT 'fresh' AS kind, u.timezone AS a, '' AS b, \
                SUM(CASE WHEN u.last IS NULL THEN 1 ELSE 0 END) AS n, MIN(u.last) AS at \
           FROM (SELECT sac.timezone AS timezone, \
                        (SELECT j.finished_at FROM sync_jobs j \
                          WHERE j.job_id = 'sync__' || s.id || '__' || $1 || '__' || $1 || '__' || l.level \
                            AND (j.status = 'SUCCEEDED') IS TRUE ORDER BY j.id DESC LIMIT 1) AS last \
                   FROM sellers s JOIN ad_connections sac ON sac.seller_id = s.id \
                  CROSS JOIN (SELECT 'CAMPAIGN' AS level UNION ALL SELECT 'ADSET' \
                              UNION ALL SELECT 'AD') l \
                  WHERE sac.status = 'ACTIVE' AND {eligible}) u \
          GROUP BY u.timezone",
        eligible = super::catalog::ELIGIBLE,
    )
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    at: Option<NaiveDateTime>,
}

/// Connections of one time zone, as far as freshness goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFreshness {
    /// The IANA name stored on the connections.
    pub timezone: String,
    /// (connection, level) pairs of the zone with no successful sync of their local today.
    pub never_synced: i64,
    /// The oldest of the others' latest successful sync of today (UTC).
    pub oldest_latest_success: Option<NaiveDateTime>,
}

/// What [`snapshot`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsSnapshot {
    /// (provider, status, count) for every pair that has connections.
    pub connections: Vec<(String, String, i64)>,
    /// ACTIVE connections whose `paused_until` is ahead of the database's clock.
    pub paused: i64,
    pub zones: Vec<ZoneFreshness>,
    /// Scheduled jobs of an earlier cron mark still RUNNING, or QUEUED and due, after a newer
    /// mark ticked.
    pub behind_jobs: i64,
    /// The database's clock when it answered (UTC).
    pub now: NaiveDateTime,
}

impl OpsSnapshot {
    /// True when a newer cron mark was ticked while scheduled jobs of an earlier one still run
    /// or wait for a worker: the workers did not finish a tick before the next mark, and those
    /// sellers were left out of (deduplicated at) the newer tick.
    pub fn schedule_behind(&self) -> bool {
        self.behind_jobs > 0
    }

    /// Seconds since the oldest "latest successful sync of today" among ACTIVE connections,
    /// "today" being each connection's local day. A connection with no successful sync yet today
    /// counts from the start of its local day (its stats are as old as the day). 0 without any
    /// ACTIVE connection: nothing is stale.
    pub fn freshness_seconds(&self) -> f64 {
        let now = self.now.and_utc();
        let oldest = self
            .zones
            .iter()
            .map(|zone| {
                let day_start = local_day_start(now, &zone.timezone);
                match zone.oldest_latest_success {
                    // One connection without a sync today: the zone is as old as its day.
                    _ if zone.never_synced > 0 => day_start,
                    Some(at) => at.and_utc().max(day_start),
                    None => day_start,
                }
            })
            .min();
        oldest.map_or(0.0, |at| {
            ((now - at).num_milliseconds() as f64 / 1000.0).max(0.0)
        })
    }
}

/// The zone named `zone`, UTC for an unknown name (as the scheduler reads it).
fn zone(name: &str) -> chrono_tz::Tz {
    name.trim().parse().unwrap_or(chrono_tz::UTC)
}

/// The local date at `now` in the zone named `name`.
fn local_date(now: DateTime<Utc>, name: &str) -> NaiveDate {
    now.with_timezone(&zone(name)).date_naive()
}

/// The start of the local day at `now` in the zone named `name`.
fn local_day_start(now: DateTime<Utc>, name: &str) -> DateTime<Utc> {
    let tz = zone(name);
    let today = now.with_timezone(&tz).date_naive();
    // Midnight may not exist (a zone that skips it for summer time): the day starts at the first
    // instant that does; an hour later is enough for every zone there is.
    today
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| {
            midnight.and_local_timezone(tz).earliest().or_else(|| {
                (midnight + chrono::Duration::hours(1))
                    .and_local_timezone(tz)
                    .earliest()
            })
        })
        .map_or(now, |start| start.with_timezone(&Utc))
}

/// Reads the [`OpsSnapshot`]: one statement, then one per distinct local date among the zones
/// synced (one or two; three for a few hours a day with zones at both ends of the world).
pub async fn snapshot(conn: &mut DbConn) -> diesel::QueryResult<OpsSnapshot> {
    let rows: Vec<Row> = db_run!(conn, postgres {
        diesel::sql_query(facts_sql("CURRENT_TIMESTAMP")).load(conn).await
    }, sqlite {
        diesel::sql_query(facts_sql("$1"))
            .bind::<Timestamp, _>(super::now_utc())
            .load(conn)
            .await
    })?;
    let mut snapshot = OpsSnapshot::default();
    let mut zones = Vec::new();
    for row in rows {
        match row.kind.as_str() {
            "connections" => snapshot.connections.push((row.a, row.b, row.n)),
            "paused" => snapshot.paused = row.n,
            "zone" => zones.push(row.a),
            "behind" => snapshot.behind_jobs = row.n,
            "now" => snapshot.now = row.at.unwrap_or_else(super::now_utc),
            _ => {}
        }
    }
    let now = snapshot.now.and_utc();
    let mut dates: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
    for zone in zones {
        dates.entry(local_date(now, &zone)).or_default().push(zone);
    }
    let sql = freshness_sql();
    for (date, zones) in dates {
        let day = date.format("%Y-%m-%d").to_string();
        let rows: Vec<Row> = db_run!(conn, {
            diesel::sql_query(&sql)
                .bind::<Text, _>(&day)
                .load(conn)
                .await
        })?;
        snapshot.zones.extend(
            rows.into_iter()
                .filter(|row| zones.contains(&row.a))
                .map(|row| ZoneFreshness {
                    timezone: row.a,
                    never_synced: row.n,
                    oldest_latest_success: row.at,
                }),
        );
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn zone(tz: &str, never: i64, oldest: Option<&str>) -> ZoneFreshness {
        ZoneFreshness {
            timezone: tz.into(),
            never_synced: never,
            oldest_latest_success: oldest.map(at),
        }
    }

    fn snapshot(now: &str, zones: Vec<ZoneFreshness>) -> OpsSnapshot {
        OpsSnapshot {
            zones,
            now: at(now),
            ..OpsSnapshot::default()
        }
    }

    #[test]
    fn freshness_is_the_oldest_latest_success_of_today() {
        let s = snapshot(
            "2026-12-06 12:00:00",
            vec![
                zone("UTC", 0, Some("2026-12-06 11:55:00")),
                zone("Europe/Paris", 0, Some("2026-12-06 11:40:00")),
            ],
        );
        assert_eq!(s.freshness_seconds(), 1200.0);
    }

    #[test]
    fn no_sync_today_counts_from_the_local_day_start() {
        // 12:00 UTC is 21:00 in Tokyo; its day began at 15:00 UTC the day before.
        let s = snapshot(
            "2026-12-06 12:00:00",
            vec![
                zone("UTC", 0, Some("2026-12-06 11:55:00")),
                zone("Asia/Tokyo", 1, None),
            ],
        );
        assert_eq!(s.freshness_seconds(), 21.0 * 3600.0);
        // A latest success from yesterday (local) is no sync of today either.
        let s = snapshot(
            "2026-12-06 01:00:00",
            vec![zone("UTC", 0, Some("2026-12-05 23:50:00"))],
        );
        assert_eq!(s.freshness_seconds(), 3600.0);
    }

    #[test]
    fn nothing_active_is_nothing_stale() {
        assert_eq!(
            snapshot("2026-12-06 12:00:00", vec![]).freshness_seconds(),
            0.0
        );
    }
}
