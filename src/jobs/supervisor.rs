//! Keeps the background tasks (dispatcher, sweeper, scheduler) running: a task that stops
//! unexpectedly, by returning or by panicking, is logged at error level and started again with
//! backoff, and [`TaskHealth`] reports it as down until it runs again, so `/health` can say so.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// First wait before a restart; it doubles for each quick failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between restarts. Kept well below `jobs.rescue_after`'s default so a sweeper
/// that keeps failing still beats the heartbeat most of the time.
const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// A task that ran this long before stopping is restarted after the first backoff again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Whether one task is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    /// Stopped unexpectedly and waiting to be started again.
    Restarting,
    /// Stopped as asked (shutdown) or never started (the scheduler when disabled).
    Stopped,
}

impl TaskState {
    /// The word `/health` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "running",
            TaskState::Restarting => "restarting",
            TaskState::Stopped => "stopped",
        }
    }
}

/// The state of every supervised task, by name; cheap to clone and shared with `/health`.
#[derive(Clone, Default)]
pub struct TaskHealth {
    states: Arc<Mutex<BTreeMap<&'static str, TaskState>>>,
    restarts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl TaskHealth {
    /// Every task's state right now, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, TaskState> {
        self.states.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// True when a task that should run is not running.
    pub fn degraded(&self) -> bool {
        self.snapshot()
            .values()
            .any(|s| *s == TaskState::Restarting)
    }

    /// How often the task was started again after stopping unexpectedly.
    pub fn restarts(&self, task: &str) -> u64 {
        self.restarts
            .lock()
            .ok()
            .and_then(|r| r.get(task).copied())
            .unwrap_or(0)
    }

    pub(crate) fn set(&self, task: &'static str, state: TaskState) {
        if let Ok(mut states) = self.states.lock() {
            states.insert(task, state);
        }
    }

    fn count_restart(&self, task: &'static str) {
        if let Ok(mut restarts) = self.restarts.lock() {
            *restarts.entry(task).or_default() += 1;
        }
    }
}

/// Test hook: make a named task panic at its next turn, as a bug would.
#[derive(Default)]
pub struct TaskFaults {
    armed: Mutex<HashSet<&'static str>>,
    notify: Notify,
}

impl TaskFaults {
    pub fn crash(&self, task: &'static str) {
        if let Ok(mut armed) = self.armed.lock() {
            armed.insert(task);
        }
        self.notify.notify_waiters();
    }

    /// Resolves when `task` has been told to crash (and disarms it); pending forever otherwise.
    pub(crate) async fn armed(&self, task: &'static str) {
        loop {
            let notified = self.notify.notified();
            if self.armed.lock().is_ok_and(|mut armed| armed.remove(task)) {
                return;
            }
            notified.await;
        }
    }
}

/// Runs `start()` as task `name` until `stop` is cancelled, starting it again whenever it ends
/// on its own. Each run is its own tokio task, so a panic is caught at its join handle.
pub(crate) fn supervise<F, Fut>(
    name: &'static str,
    health: TaskHealth,
    stop: CancellationToken,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut backoff = FIRST_BACKOFF;
        loop {
            health.set(name, TaskState::Running);
            let started = Instant::now();
            let ended = tokio::spawn(start()).await;
            if stop.is_cancelled() {
                break;
            }
            health.set(name, TaskState::Restarting);
            match ended {
                Ok(()) => tracing::error!(task = name, "background task stopped unexpectedly"),
                Err(e) if e.is_panic() => {
                    let panic = e.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(task = name, panic = %message, "background task panicked")
                }
                Err(e) => tracing::error!(task = name, error = %e, "background task was cancelled"),
            }
            if started.elapsed() >= HEALTHY_RUN {
                backoff = FIRST_BACKOFF;
            }
            tracing::warn!(
                task = name,
                retry_in_ms = backoff.as_millis() as u64,
                "restarting background task"
            );
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            health.count_restart(name);
        }
        health.set(name, TaskState::Stopped);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_reported_meanwhile() {
        let health = TaskHealth::default();
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let stopper = stop.clone();
        let task = supervise("t", health.clone(), stop.clone(), move || {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            let stopper = stopper.clone();
            async move {
                if run == 0 {
                    panic!("first run fails");
                }
                stopper.cancelled().await;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "never restarted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(health.snapshot()["t"], TaskState::Running);
        assert_eq!(health.restarts("t"), 1);
        assert!(!health.degraded());
        stop.cancel();
        task.await.unwrap();
        assert_eq!(health.snapshot()["t"], TaskState::Stopped);
    }

    #[tokio::test]
    async fn faults_fire_once_for_the_named_task() {
        let faults = Arc::new(TaskFaults::default());
        let waiting = {
            let faults = faults.clone();
            tokio::spawn(async move { faults.armed("a").await })
        };
        faults.crash("b");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        faults.crash("a");
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("fires")
            .unwrap();
    }
}
