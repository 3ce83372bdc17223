//! The job system: durable records in `sync_jobs`, an in-process channel of record ids feeding at
//! most `jobs.concurrency` workers, and the cron scheduler that enqueues a sync per eligible seller.
//!
//! The database row is the truth: a job is recorded before it is acknowledged, the channel only
//! carries ids, and anything the channel loses (full, restart) is found again by the sweeper.

mod queue;
mod runtime;
pub mod scheduler;

use std::time::Duration;

pub use queue::{EnqueueError, Enqueued, JobQueue, Trigger};
pub use runtime::{JobRuntime, RuntimeSettings};
pub use scheduler::{Scheduler, SchedulerStatus, TickSummary};

/// Delay before retry number `attempt` (1 = first retry): `base · 2^(attempt-1)`, at most an hour.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
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
}
