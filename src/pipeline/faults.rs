//! Fault injection for tests of the all-or-nothing guarantee. Nothing arms these in production.

use std::sync::atomic::{AtomicU32, Ordering};

/// Places inside a sync's transaction where a failure can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// After the raw rows are inserted (on PostgreSQL, in the statement that also folds them),
    /// before the sellpage rollup.
    AfterRawInsert,
    /// After every stats write, before the job's completion mark.
    BeforeCompletion,
}

/// How many more times each point fails; all zero unless a test arms them.
#[derive(Debug, Default)]
pub struct Faults {
    after_raw_insert: AtomicU32,
    before_completion: AtomicU32,
}

impl Faults {
    pub fn arm(&self, point: FaultPoint, times: u32) {
        self.counter(point).store(times, Ordering::SeqCst);
    }

    /// `true` (and one fewer armed failure) when `point` should fail now.
    pub(crate) fn trip(&self, point: FaultPoint) -> bool {
        self.counter(point)
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn counter(&self, point: FaultPoint) -> &AtomicU32 {
        match point {
            FaultPoint::AfterRawInsert => &self.after_raw_insert,
            FaultPoint::BeforeCompletion => &self.before_completion,
        }
    }
}
