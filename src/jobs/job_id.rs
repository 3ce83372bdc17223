//! The id of a sync job. Naming jobs is the job system's business: the pipeline only knows the
//! request it serves, and the id is what deduplicates enqueues and what callers poll.

use crate::pipeline::SyncRequest;

/// The job id of a sync request (`request.job_id()` with this trait in scope).
pub trait SyncJobId {
    /// `sync__{sellerId}__{dateFrom}__{dateTo}__{level}`, the id the replaced system used.
    fn job_id(&self) -> String;
}

impl SyncJobId for SyncRequest {
    fn job_id(&self) -> String {
        format!(
            "sync__{}__{}__{}__{}",
            self.seller_id,
            self.date_from.format("%Y-%m-%d"),
            self.date_to.format("%Y-%m-%d"),
            self.level
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::Level;

    #[test]
    fn a_sync_job_id_names_seller_dates_and_level() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let request = SyncRequest {
            seller_id: "s1".into(),
            level: Level::Adset,
            date_from: day(27),
            date_to: day(28),
        };
        assert_eq!(request.job_id(), "sync__s1__2026-11-27__2026-11-28__ADSET");
    }
}
