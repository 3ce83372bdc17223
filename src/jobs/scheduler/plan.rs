//! What one tick asks for: the current job of each seller and zone (today, or yesterday..today
//! for a Meta connection) and the due lookbacks, worked out from the connections read before the
//! enqueue transaction; the lookbacks are claimed inside it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Timelike, Utc};

use super::zones::local_now;
use crate::db::{self, catalog::ScheduledConnection};
use crate::domain::Level;
use crate::jobs::queue::EnqueueError;
use crate::pipeline::SyncRequest;

/// The settings a tick plans with.
pub(super) struct PlanRules {
    pub(super) lookback_days: u32,
    pub(super) lookback_hour: u32,
    /// `provider = "meta"`: `META` connections start their jobs at their local yesterday.
    pub(super) meta: bool,
}

/// What one tick asks for, worked out from the connections read before its transaction.
pub(super) struct TickPlan {
    pub(super) sellers: usize,
    /// (seller, from, to) of the current jobs: today, or yesterday..today for a Meta
    /// connection; one job per level each.
    pub(super) current: BTreeSet<(String, NaiveDate, NaiveDate)>,
    /// Connections whose lookback is due, by their local today, with their seller.
    lookback_due: BTreeMap<NaiveDate, Vec<(String, String)>>,
    lookback_days: u32,
}

impl TickPlan {
    pub(super) fn new(
        connections: &[ScheduledConnection],
        now: DateTime<Utc>,
        rules: &PlanRules,
    ) -> Self {
        let mut current = BTreeSet::new();
        let mut lookback_due: BTreeMap<NaiveDate, Vec<(String, String)>> = BTreeMap::new();
        let mut sellers = BTreeSet::new();
        for c in connections {
            let local = connection_now(now, c);
            let date = local.date();
            sellers.insert(c.seller_id.as_str());
            // Meta finishes a day's numbers hours after its midnight (and attributes late
            // conversions to it): its connections' jobs keep yesterday in their range until the
            // local day moves on, under one job id per local day (deduplicated like today's).
            let settles_late = rules.meta && c.provider.eq_ignore_ascii_case("META");
            let from = if settles_late {
                date.pred_opt().unwrap_or(date)
            } else {
                date
            };
            current.insert((c.seller_id.clone(), from, date));
            // The marker is compared, not trusted: a day already done, or a later one (the zone
            // was moved west), queues nothing. Before `lookback_hour` the day is not due yet.
            if rules.lookback_days > 0
                && local.hour() >= rules.lookback_hour
                && c.lookback_queued_on.is_none_or(|d| d < date)
            {
                lookback_due
                    .entry(date)
                    .or_default()
                    .push((c.connection_id.clone(), c.seller_id.clone()));
            }
        }
        // A seller with a Meta and another connection in one zone: yesterday..today covers
        // today, one job set is enough.
        let covered: Vec<(String, NaiveDate, NaiveDate)> = current
            .iter()
            .filter(|(seller, from, to)| {
                from == to
                    && current
                        .iter()
                        .any(|(s, f, t)| s == seller && f < from && t == to)
            })
            .cloned()
            .collect();
        for c in covered {
            current.remove(&c);
        }
        Self {
            sellers: sellers.len(),
            current,
            lookback_due,
            lookback_days: rules.lookback_days,
        }
    }

    /// Inside the enqueue transaction: claims the due lookbacks (only connections this
    /// transaction marks get one) and returns the current requests plus the lookback ones, and
    /// how many of them are lookback jobs.
    pub(super) async fn requests(
        &self,
        conn: &mut db::DbConn,
    ) -> Result<(Vec<SyncRequest>, usize), EnqueueError> {
        let mut requests: Vec<SyncRequest> = self
            .current
            .iter()
            .flat_map(|(seller, from, to)| {
                Level::ALL.map(|level| SyncRequest {
                    seller_id: seller.clone(),
                    level,
                    date_from: *from,
                    date_to: *to,
                })
            })
            .collect();
        let mut ranges = BTreeSet::new();
        for (date, due) in &self.lookback_due {
            let ids: Vec<String> = due.iter().map(|(id, _)| id.clone()).collect();
            let claimed: BTreeSet<String> = db::catalog::claim_lookback(conn, *date, &ids)
                .await?
                .into_iter()
                .collect();
            let (Some(from), Some(to)) = (
                date.checked_sub_days(Days::new(u64::from(self.lookback_days))),
                date.pred_opt(),
            ) else {
                continue;
            };
            for (id, seller) in due {
                if claimed.contains(id) {
                    // Connections of one seller in the same zone share one job set.
                    ranges.insert((seller.clone(), from, to));
                }
            }
        }
        let lookback = ranges.len() * Level::ALL.len();
        for (seller, from, to) in ranges {
            requests.extend(Level::ALL.map(|level| SyncRequest {
                seller_id: seller.clone(),
                level,
                date_from: from,
                date_to: to,
            }));
        }
        Ok((requests, lookback))
    }
}

fn connection_now(now: DateTime<Utc>, c: &ScheduledConnection) -> NaiveDateTime {
    local_now(now, &c.timezone, &c.connection_id)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn connection(seller: &str, provider: &str, zone: &str) -> ScheduledConnection {
        ScheduledConnection {
            seller_id: seller.into(),
            connection_id: format!("{seller}-{provider}-{zone}"),
            provider: provider.into(),
            timezone: zone.into(),
            lookback_queued_on: None,
        }
    }

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, day).unwrap()
    }

    fn rules(meta: bool, lookback_days: u32, lookback_hour: u32) -> PlanRules {
        PlanRules {
            lookback_days,
            lookback_hour,
            meta,
        }
    }

    #[test]
    fn meta_connections_start_at_their_local_yesterday() {
        // 20:00 UTC on the 28th: the 29th in Tokyo, the 28th in Los Angeles.
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 20, 0, 0).unwrap();
        let connections = [
            connection("a", "META", "Asia/Tokyo"),
            connection("b", "META", "America/Los_Angeles"),
            connection("c", "OTHER", "Asia/Tokyo"),
        ];
        let plan = TickPlan::new(&connections, now, &rules(true, 0, 4));
        let current: Vec<_> = plan.current.into_iter().collect();
        assert_eq!(
            current,
            vec![
                ("a".into(), d(11, 28), d(11, 29)),
                ("b".into(), d(11, 27), d(11, 28)),
                ("c".into(), d(11, 29), d(11, 29)),
            ]
        );
        // Under the mock every connection keeps today.
        let plan = TickPlan::new(&connections, now, &rules(false, 0, 4));
        assert!(plan.current.iter().all(|(_, from, to)| from == to));
    }

    #[test]
    fn a_seller_with_meta_and_another_connection_in_one_zone_gets_one_job_set() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 20, 0, 0).unwrap();
        let connections = [
            connection("a", "META", "UTC"),
            connection("a", "OTHER", "UTC"),
            connection("a", "OTHER", "Asia/Tokyo"),
        ];
        let plan = TickPlan::new(&connections, now, &rules(true, 0, 4));
        let current: Vec<_> = plan.current.into_iter().collect();
        assert_eq!(
            current,
            vec![
                ("a".into(), d(11, 27), d(11, 28)),
                ("a".into(), d(11, 29), d(11, 29)),
            ]
        );
    }

    #[test]
    fn the_lookback_is_due_from_the_hour_in_the_connection_zone() {
        let due = |h: u32, mi: u32, hour: u32| {
            let now = Utc.with_ymd_and_hms(2026, 11, 28, h, mi, 0).unwrap();
            let connections = [connection("a", "META", "Asia/Tokyo")];
            let plan = TickPlan::new(&connections, now, &rules(true, 28, hour));
            plan.lookback_due.keys().copied().collect::<Vec<_>>()
        };
        // 18:59 UTC is 03:59 on the 29th in Tokyo; 19:00 is 04:00.
        assert_eq!(due(18, 59, 4), vec![]);
        assert_eq!(due(19, 0, 4), vec![d(11, 29)]);
        assert_eq!(due(14, 59, 0), vec![d(11, 28)], "hour 0: from midnight on");
        assert_eq!(due(15, 0, 0), vec![d(11, 29)]);
        assert_eq!(due(14, 0, 23), vec![d(11, 28)], "23:00 in Tokyo");
        assert_eq!(due(13, 59, 23), vec![]);
    }
}
