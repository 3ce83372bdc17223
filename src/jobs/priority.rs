//! The claim class of a job, stored on its record (`sync_jobs.priority`). Workers claim the lowest
//! class first, then the earliest `run_at`, then the lowest id, so one seller's backfill cannot
//! hold up the scheduled syncs of every other seller, nor a sync somebody is waiting for.

use chrono::NaiveDate;

use super::Trigger;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// A manual sync whose dates touch the seller's local today or yesterday: a person waits.
    Interactive = 1,
    /// The scheduler's jobs (today's syncs and lookbacks).
    Scheduled = 2,
    /// A manual sync of older dates.
    Backfill = 3,
}

impl Priority {
    pub fn as_i16(self) -> i16 {
        self as i16
    }

    /// The class of a manual sync up to `date_to`, given the seller's local todays (one per
    /// distinct zone of its connections): interactive when it reaches yesterday in any of them.
    /// Without a zone, UTC's today is used, as for the sync itself.
    pub fn of_manual_sync(date_to: NaiveDate, local_todays: &[NaiveDate]) -> Self {
        let Some(earliest_today) = local_todays.iter().min() else {
            return Priority::Interactive;
        };
        let yesterday = earliest_today.pred_opt().unwrap_or(*earliest_today);
        if date_to >= yesterday {
            Priority::Interactive
        } else {
            Priority::Backfill
        }
    }

    /// The class when nothing more is known than what started the job: the scheduler's jobs are
    /// [`Priority::Scheduled`], a manual one is taken to have a person waiting.
    pub fn default_for(trigger: Trigger) -> Self {
        match trigger {
            Trigger::Schedule => Priority::Scheduled,
            Trigger::Manual => Priority::Interactive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    #[test]
    fn today_yesterday_and_tomorrow_are_interactive_older_days_backfill() {
        let todays = [d(28)];
        assert_eq!(
            Priority::of_manual_sync(d(29), &todays),
            Priority::Interactive
        );
        assert_eq!(
            Priority::of_manual_sync(d(28), &todays),
            Priority::Interactive
        );
        assert_eq!(
            Priority::of_manual_sync(d(27), &todays),
            Priority::Interactive
        );
        assert_eq!(Priority::of_manual_sync(d(26), &todays), Priority::Backfill);
    }

    #[test]
    fn yesterday_in_any_zone_counts() {
        // Auckland is on the 29th, Los Angeles still on the 28th: the 27th is yesterday there.
        let todays = [d(28), d(29)];
        assert_eq!(
            Priority::of_manual_sync(d(27), &todays),
            Priority::Interactive
        );
        assert_eq!(Priority::of_manual_sync(d(26), &todays), Priority::Backfill);
    }

    #[test]
    fn classes_sort_in_claim_order() {
        assert!(Priority::Interactive < Priority::Scheduled);
        assert!(Priority::Scheduled < Priority::Backfill);
        assert_eq!(Priority::Scheduled.as_i16(), 2, "the column's default");
    }
}
