//! Enqueueing: write the record (deduplicated by the database), then hand its id to the workers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::db::jobs::RecordedJob;
use crate::db::models::NewJobRecord;
use crate::db::{self, Db, DbError};
use crate::pipeline::SyncRequest;

/// What started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Trigger {
    #[serde(rename = "SCHEDULE")]
    Schedule,
    #[serde(rename = "MANUAL")]
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "SCHEDULE",
            Trigger::Manual => "MANUAL",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The channel has no room for the jobs asked for; nothing was recorded.
    #[error("the job queue is at capacity")]
    AtCapacity,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for EnqueueError {
    fn from(e: diesel::result::Error) -> Self {
        EnqueueError::Db(DbError::from(e))
    }
}

/// The outcome of one enqueue: the record, and whether it was created (`false`: deduplicated).
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub record: RecordedJob,
    pub created: bool,
}

/// The sending side of the job channel; cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    db: Db,
    sender: mpsc::Sender<i64>,
    /// Ids sent on the channel and not yet claimed, so the sweeper does not send them twice.
    in_channel: Arc<Mutex<HashSet<i64>>>,
    max_attempts: i32,
    capacity: usize,
}

impl JobQueue {
    pub(crate) fn new(db: Db, capacity: usize, max_attempts: u32) -> (Self, mpsc::Receiver<i64>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let queue = Self {
            db,
            sender,
            in_channel: Arc::default(),
            max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX),
            capacity,
        };
        (queue, receiver)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records the jobs and hands the new ones to the workers, all or none: when the channel has
    /// no room for every one of them, nothing is recorded and [`EnqueueError::AtCapacity`] is
    /// returned (a manual sync then answers 503).
    pub async fn enqueue(
        &self,
        requests: &[SyncRequest],
        trigger: Trigger,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        let permits = match self.sender.try_reserve_many(requests.len()) {
            Ok(permits) => permits,
            // A repeat of jobs that are all still active needs no room: answer with them.
            Err(_) => {
                return self
                    .all_active(requests)
                    .await?
                    .ok_or(EnqueueError::AtCapacity)
            }
        };
        let enqueued = self.record(requests, trigger).await?;
        for (permit, job) in permits.zip(enqueued.iter()) {
            if job.created {
                self.mark_in_channel(job.record.id);
                permit.send(job.record.id);
            }
        }
        Ok(enqueued)
    }

    /// Records the jobs and offers the new ones to the workers without waiting: when the channel
    /// is full they stay QUEUED and the sweeper delivers them later. Used by the scheduler, whose
    /// ticks must never pile up behind a busy queue.
    pub async fn enqueue_nowait(
        &self,
        requests: &[SyncRequest],
        trigger: Trigger,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        let enqueued = self.record(requests, trigger).await?;
        for job in enqueued.iter().filter(|j| j.created) {
            self.offer(job.record.id);
        }
        Ok(enqueued)
    }

    /// Like [`JobQueue::enqueue_nowait`], with the requests decided by `plan` inside the
    /// transaction that records them: whatever `plan` writes (the scheduler's lookback markers)
    /// commits with the jobs or not at all. `plan` also returns a value for the caller.
    pub async fn enqueue_nowait_planned<T, F>(
        &self,
        trigger: Trigger,
        plan: F,
    ) -> Result<(Vec<Enqueued>, T), EnqueueError>
    where
        F: AsyncFnOnce(&mut db::DbConn) -> Result<(Vec<SyncRequest>, T), EnqueueError>,
    {
        let mut conn = self.db.conn().await?;
        let now = db::now_utc();
        let max_attempts = self.max_attempts;
        let (enqueued, value) = conn
            .transaction(async |conn: &mut db::DbConn| {
                let (requests, value) = plan(conn).await?;
                let enqueued =
                    Self::record_each(conn, &requests, trigger, max_attempts, now).await?;
                Ok::<_, EnqueueError>((enqueued, value))
            })
            .await?;
        drop(conn);
        for job in enqueued.iter().filter(|j| j.created) {
            self.offer(job.record.id);
        }
        Ok((enqueued, value))
    }

    /// Runs a FAILED record again (the operator's Retry): back to QUEUED with its attempts reset,
    /// unless a record with the same job id is already active (dedup), then offered to the
    /// workers like a scheduled job; when the channel is full the sweeper delivers it.
    pub async fn retry_failed(&self, record_id: i64) -> Result<db::jobs::Requeue, DbError> {
        let outcome = {
            let mut conn = self.db.conn().await?;
            db::jobs::requeue_failed(&mut conn, record_id, db::now_utc()).await?
        };
        if let db::jobs::Requeue::Requeued(record) = &outcome {
            self.offer(record.id);
        }
        Ok(outcome)
    }

    async fn all_active(&self, requests: &[SyncRequest]) -> Result<Option<Vec<Enqueued>>, DbError> {
        let mut conn = self.db.conn().await?;
        let mut out = Vec::with_capacity(requests.len());
        for request in requests {
            match db::jobs::active(&mut conn, &request.job_id()).await? {
                Some(record) => out.push(Enqueued {
                    record: record.into(),
                    created: false,
                }),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    async fn record(
        &self,
        requests: &[SyncRequest],
        trigger: Trigger,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        let mut conn = self.db.conn().await?;
        let now = db::now_utc();
        // One transaction for the lot: a tick's (or a manual sync's) jobs are recorded together
        // or not at all, at the cost of one commit (one fsync on SQLite) instead of one per job.
        conn.transaction(async |conn: &mut db::DbConn| {
            Self::record_each(conn, requests, trigger, self.max_attempts, now).await
        })
        .await
    }

    async fn record_each(
        conn: &mut db::DbConn,
        requests: &[SyncRequest],
        trigger: Trigger,
        max_attempts: i32,
        now: chrono::NaiveDateTime,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        let jobs: Vec<NewJobRecord> = requests
            .iter()
            .map(|request| NewJobRecord {
                job_id: request.job_id(),
                seller_id: request.seller_id.clone(),
                level: request.level.as_str().to_string(),
                date_from: request.date_from,
                date_to: request.date_to,
                triggered_by: trigger.as_str().to_string(),
                status: db::jobs::QUEUED.to_string(),
                attempts: 0,
                max_attempts,
                run_at: now,
                created_at: now,
                updated_at: now,
            })
            .collect();
        Ok(db::jobs::enqueue_many(conn, &jobs)
            .await?
            .into_iter()
            .map(|(record, created)| Enqueued { record, created })
            .collect())
    }

    /// Sends an id if the channel has room and it is not already there; `false` otherwise.
    pub(crate) fn offer(&self, record_id: i64) -> bool {
        if !self.mark_in_channel(record_id) {
            return false;
        }
        if self.sender.try_send(record_id).is_err() {
            self.claimed(record_id);
            return false;
        }
        true
    }

    pub(crate) fn free_slots(&self) -> usize {
        self.sender.capacity()
    }

    /// No id waits in the channel or in the dispatcher's hand: this process has nothing queued
    /// of its own to run next.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_channel
            .lock()
            .map(|set| set.is_empty())
            .unwrap_or(false)
    }

    fn mark_in_channel(&self, record_id: i64) -> bool {
        self.in_channel
            .lock()
            .map(|mut set| set.insert(record_id))
            .unwrap_or(false)
    }

    /// A worker has taken the id off the channel.
    pub(crate) fn claimed(&self, record_id: i64) {
        if let Ok(mut set) = self.in_channel.lock() {
            set.remove(&record_id);
        }
    }
}
