//! Enqueueing: write the record (deduplicated by the database), then hand its id to the workers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::db::jobs::RecordedJob;
use crate::db::models::NewJobRecord;
use crate::db::{self, Db, DbError};
use crate::pipeline::SyncRequest;

use super::{Priority, SyncJobId};

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
    /// The seller's manual jobs QUEUED or RUNNING would pass `jobs.max_active_per_seller`;
    /// nothing was recorded.
    #[error("{active} manual sync jobs of this seller are queued or running (at most {limit})")]
    TooManyActiveJobs { active: i64, limit: usize },
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
    /// `jobs.max_active_per_seller`: 0 is no limit.
    max_active_per_seller: usize,
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
            max_active_per_seller: 0,
        };
        (queue, receiver)
    }

    /// Caps a seller's active manual jobs (`jobs.max_active_per_seller`; 0 is no limit).
    pub(crate) fn with_max_active_per_seller(mut self, limit: usize) -> Self {
        self.max_active_per_seller = limit;
        self
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// [`JobQueue::enqueue_as`] with the trigger's default class ([`Priority::default_for`]).
    pub async fn enqueue(
        &self,
        requests: &[SyncRequest],
        trigger: Trigger,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        self.enqueue_as(requests, trigger, Priority::default_for(trigger))
            .await
    }

    /// Records the jobs in class `priority` and hands the new ones to the workers, all or none:
    /// when the channel has no room for every one of them, nothing is recorded and
    /// [`EnqueueError::AtCapacity`] is returned (a manual sync then answers 503). Manual jobs
    /// past `jobs.max_active_per_seller` are refused with [`EnqueueError::TooManyActiveJobs`],
    /// nothing recorded either; a manual enqueue that finds its jobs already QUEUED in a later
    /// class raises them to `priority`.
    pub async fn enqueue_as(
        &self,
        requests: &[SyncRequest],
        trigger: Trigger,
        priority: Priority,
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
        let enqueued = self.record(requests, trigger, priority).await?;
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
        let enqueued = self
            .record(requests, trigger, Priority::default_for(trigger))
            .await?;
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
                let priority = Priority::default_for(trigger);
                let enqueued =
                    Self::record_each(conn, &requests, trigger, priority, max_attempts, now)
                        .await?;
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
        priority: Priority,
    ) -> Result<Vec<Enqueued>, EnqueueError> {
        let mut conn = self.db.conn().await?;
        let now = db::now_utc();
        let limit = self.max_active_per_seller;
        // One transaction for the lot: a tick's (or a manual sync's) jobs are recorded together
        // or not at all, at the cost of one commit (one fsync on SQLite) instead of one per job.
        conn.transaction(async |conn: &mut db::DbConn| {
            if trigger == Trigger::Manual && limit > 0 {
                Self::admit(conn, requests, limit).await?;
            }
            let enqueued =
                Self::record_each(conn, requests, trigger, priority, self.max_attempts, now)
                    .await?;
            if trigger == Trigger::Manual {
                let known: Vec<&str> = enqueued
                    .iter()
                    .filter(|e| !e.created)
                    .map(|e| e.record.job_id.as_str())
                    .collect();
                if !known.is_empty() {
                    db::job_admission::raise_priority(conn, &known, priority.as_i16()).await?;
                }
            }
            Ok(enqueued)
        })
        .await
    }

    /// Inside the enqueue transaction: refuses the lot when a seller's active manual jobs plus
    /// the new ones would pass `limit`. Jobs already active add nothing (they deduplicate), so a
    /// repeat of a sync still running is never refused. Each seller's check and the insert that
    /// follows hold the seller's lock until commit, so racing requests cannot both pass.
    async fn admit(
        conn: &mut db::DbConn,
        requests: &[SyncRequest],
        limit: usize,
    ) -> Result<(), EnqueueError> {
        use std::collections::BTreeMap;
        let mut by_seller: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for request in requests {
            let ids = by_seller.entry(request.seller_id.as_str()).or_default();
            let id = request.job_id();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        // Sellers in a fixed order: multi-seller enqueues may wait for each other, never deadlock.
        for (seller, ids) in by_seller {
            db::job_admission::lock_seller(conn, seller).await?;
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let already = db::job_admission::active_job_ids(conn, &ids).await?.len();
            let new = ids.len().saturating_sub(already);
            if new == 0 {
                continue;
            }
            let active = db::job_admission::active_manual_count(conn, seller).await?;
            if usize::try_from(active)
                .unwrap_or(usize::MAX)
                .saturating_add(new)
                > limit
            {
                return Err(EnqueueError::TooManyActiveJobs { active, limit });
            }
        }
        Ok(())
    }

    async fn record_each(
        conn: &mut db::DbConn,
        requests: &[SyncRequest],
        trigger: Trigger,
        priority: Priority,
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
                priority: priority.as_i16(),
            })
            .collect();
        // A manual sync's jobs continue the trace of the request that asked for them.
        let parent =
            (trigger == Trigger::Manual).then(crate::telemetry::traces::current_traceparent);
        Ok(
            db::jobs::enqueue_many_traced(conn, &jobs, parent.flatten().as_deref())
                .await?
                .into_iter()
                .map(|(record, created)| Enqueued { record, created })
                .collect(),
        )
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
