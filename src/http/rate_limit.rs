//! A per-key request limit: a GCRA bucket per key from `governor`, so a burst up to the limit
//! passes and then one request per interval. Two users: manual syncs per seller
//! (`rate_limit.manual_syncs_per_minute`; the scheduler never passes through here) and dashboard
//! logins per client address.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys tracked before buckets that have refilled are dropped, so memory stays bounded.
const PRUNE_ABOVE: usize = 10_000;

/// The per-key buckets (sellers for manual syncs, client addresses for logins), kept in memory
/// for this process.
pub struct KeyedRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: std::sync::atomic::AtomicU64,
}

impl KeyedRateLimiter {
    /// `None` when `per_minute` is 0: the limit is off.
    pub fn per_minute(per_minute: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            checks: Default::default(),
        })
    }

    /// `Err(wait)` when the seller is over the limit, with how long until one more is allowed.
    pub fn check(&self, seller_id: &str) -> Result<(), Duration> {
        // Pruning walks every bucket: do it now and then, not on every request.
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks.is_multiple_of(1024) && self.limiter.len() > PRUNE_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&seller_id.to_string())
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_up_to_the_limit_passes_per_seller_then_waits() {
        let limiter = KeyedRateLimiter::per_minute(3).expect("on");
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limiter.check("b").is_ok(), "sellers have their own budget");
    }

    #[test]
    fn zero_turns_it_off() {
        assert!(KeyedRateLimiter::per_minute(0).is_none());
    }
}
