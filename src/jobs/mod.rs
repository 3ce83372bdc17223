//! The job system: durable records in `sync_jobs`, an in-process channel of record ids feeding at
//! most `jobs.max_in_flight` claimed jobs (of which `jobs.max_provider_requests` wait on the
//! provider and `jobs.concurrency` write at once), and the
//! cron scheduler that enqueues a sync per eligible seller.
//!
//! The database row is the truth: a job is recorded before it is acknowledged, the channel only
//! carries ids, and anything the channel loses (full, restart) is found again by the sweeper.

mod job_id;
mod priority;
mod queue;
mod run_keeper;
mod runtime;
pub mod scheduler;
mod supervisor;

use std::time::Duration;

pub use job_id::SyncJobId;
pub use priority::Priority;
pub use queue::{EnqueueError, Enqueued, JobQueue, Trigger};
pub use runtime::{JobRuntime, RuntimeSettings, DISPATCHER, SWEEPER};
pub use scheduler::{Scheduler, SchedulerStatus, TickSummary, SCHEDULER};
pub(crate) use supervisor::supervise;
pub use supervisor::{TaskFaults, TaskHealth, TaskState};

/// Delay before retry number `attempt` (1 = first retry): `base · 2^(attempt-1)`, at most an hour.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

/// Up to a quarter more than `delay`, different per record and attempt, so that jobs failing
/// together (a provider outage) do not all retry in the same instant. Derived, not random, so a
/// job's schedule is reproducible.
pub fn with_jitter(delay: Duration, record_id: i64, attempt: u32) -> Duration {
    let mixed = (record_id as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(attempt.wrapping_mul(7))
        ^ u64::from(attempt);
    delay + delay.mul_f64((mixed % 1000) as f64 / 4000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(base, 1), Duration::from_secs(10));
        assert_eq!(backoff(base, 2), Duration::from_secs(20));
        assert_eq!(backoff(base, 3), Duration::from_secs(40));
        assert_eq!(backoff(base, 30), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_adds_at_most_a_quarter_and_spreads_jobs() {
        let base = Duration::from_secs(100);
        let delays: Vec<Duration> = (1..=50).map(|id| with_jitter(base, id, 1)).collect();
        assert!(delays
            .iter()
            .all(|d| *d >= base && *d <= base.mul_f64(1.25)));
        let mut distinct = delays.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 40, "jobs retry at different moments");
        assert_eq!(with_jitter(base, 7, 2), with_jitter(base, 7, 2));
    }
}
