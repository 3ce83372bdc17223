//! The two bounds a job is claimed under: one of `jobs.max_in_flight` slots from its claim to
//! its outcome, and one of `jobs.max_provider_requests` only while it waits on the provider.
//!
//! A job is claimed only when both are free, so the most urgent due job is the next to ask the
//! provider (claim order holds), and the requests waiting on a provider stay bounded. Once its
//! readings are in, a job gives the provider slot back and keeps its in-flight slot while it
//! waits to be written: the jobs queued that way are what lets group commit write many of them
//! in one transaction.

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// The semaphores of both bounds, shared by the dispatcher, the sweeper and shutdown.
#[derive(Clone)]
pub(super) struct Slots {
    in_flight: Arc<Semaphore>,
    fetching: Arc<Semaphore>,
    size: usize,
    /// Signalled when a job gives its provider slot back, so the sweeper refills it (its
    /// spawner signals the in-flight slot's return; a slot the sweeper took and did not use goes
    /// back silently, or the sweeper would wake itself).
    freed: Arc<Notify>,
}

/// What a claimed job holds: dropped at its outcome.
pub(super) struct Slot {
    _in_flight: OwnedSemaphorePermit,
    fetching: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Slot {
    /// The provider answered (or gave up): the provider slot goes to the next job.
    pub(super) fn fetched(&mut self) {
        if self.fetching.take().is_some() {
            self.freed.notify_one();
        }
    }
}

impl Slots {
    /// `provider_requests` at most `in_flight` (see `JobSettings::provider_requests`); `freed`
    /// is signalled whenever a job gives its provider slot back.
    pub(super) fn new(in_flight: usize, provider_requests: usize, freed: Arc<Notify>) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(in_flight)),
            fetching: Arc::new(Semaphore::new(provider_requests)),
            size: in_flight,
            freed,
        }
    }

    fn slot(&self, in_flight: OwnedSemaphorePermit, fetching: OwnedSemaphorePermit) -> Slot {
        Slot {
            _in_flight: in_flight,
            fetching: Some(fetching),
            freed: self.freed.clone(),
        }
    }

    /// Both slots at once, or none: for the sweeper, which claims only for slots it holds.
    pub(super) fn try_acquire(&self) -> Option<Slot> {
        let in_flight = self.in_flight.clone().try_acquire_owned().ok()?;
        let fetching = self.fetching.clone().try_acquire_owned().ok()?;
        Some(self.slot(in_flight, fetching))
    }

    /// Waits for both; always in this order (in flight, then provider), and a provider slot is
    /// only ever given back before the in-flight one, so the waits cannot deadlock.
    pub(super) async fn acquire(&self) -> Slot {
        // The semaphores are never closed.
        let in_flight = self.in_flight.clone().acquire_owned().await;
        let fetching = self.fetching.clone().acquire_owned().await;
        self.slot(
            in_flight.expect("in-flight slots are never closed"),
            fetching.expect("provider slots are never closed"),
        )
    }

    /// Jobs that could be claimed right now.
    pub(super) fn free(&self) -> usize {
        self.in_flight
            .available_permits()
            .min(self.fetching.available_permits())
    }

    /// Jobs claimed and not yet at their outcome.
    pub(super) fn taken(&self) -> usize {
        self.size - self.in_flight.available_permits()
    }

    /// Waits until every claimed job has reached its outcome.
    pub(super) async fn drained(&self) {
        let all = u32::try_from(self.size).unwrap_or(u32::MAX);
        // Held until the end of shutdown: nothing is claimed after this.
        if let Ok(all) = self.in_flight.acquire_many(all).await {
            all.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_gives_its_provider_slot_back_and_keeps_its_in_flight_slot() {
        let slots = Slots::new(3, 1, Arc::default());
        let mut first = slots.try_acquire().expect("both free");
        assert!(
            slots.try_acquire().is_none(),
            "the only provider slot is taken"
        );
        assert_eq!(slots.free(), 0);
        first.fetched();
        assert_eq!(slots.free(), 1, "the provider slot is free again");
        let second = slots
            .try_acquire()
            .expect("a provider slot and an in-flight slot");
        assert_eq!(slots.taken(), 2);
        drop(second);
        drop(first);
        assert_eq!(slots.taken(), 0);
    }

    #[tokio::test]
    async fn provider_slots_never_exceed_in_flight_slots() {
        let slots = Slots::new(2, 10, Arc::default());
        let _a = slots.try_acquire().unwrap();
        let _b = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        assert_eq!(slots.free(), 0);
    }

    #[tokio::test]
    async fn drained_waits_for_the_last_job() {
        let slots = Slots::new(2, 2, Arc::default());
        let held = slots.acquire().await;
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a job is still claimed");
        drop(held);
        waiting.await.unwrap();
        assert_eq!(slots.free(), 0, "nothing is claimed after the drain");
    }
}
