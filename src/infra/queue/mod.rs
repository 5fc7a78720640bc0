//! kiln's job store: crash-safe queues with leases, retries and dead letters, in Redis or in
//! an embedded SQLite file, with the same semantics (one conformance suite tests both).
//!
//! Delivery is at-least-once. A claimed job carries a lease that its worker renews; when a
//! worker dies the lease expires and the job is re-delivered. A duplicate can only happen
//! after a lease was lost (store unreachable longer than the lease, or a shutdown that
//! dropped in-flight work); acks from a worker that lost its lease are rejected as stale.

pub mod backend;
pub mod embedded;
pub mod redis_store;

use std::time::Duration;

pub use embedded::EmbeddedStore;
pub use redis_store::RedisStore;

/// Dify's queue names (the union of its editions' default worker lists), each `priority_*`
/// queue listed before its plain twin so workers drain it first.
pub const DIFY_QUEUES: &[&str] = &[
    "api_token",
    "priority_dataset",
    "dataset",
    "dataset_summary",
    "priority_pipeline",
    "pipeline",
    "mail",
    "ops_trace",
    "app_deletion",
    "plugin",
    "workflow_storage",
    "conversation",
    "workflow",
    "workflow_professional",
    "workflow_team",
    "workflow_sandbox",
    "workflow_based_app_execution",
    "schedule_poller",
    "schedule_executor",
    "triggered_workflow_dispatcher",
    "trigger_refresh_executor",
    "trigger_refresh_publisher",
    "retention",
    "monitor",
];

/// Orders queue names so that each `priority_X` comes before `X`, keeping the rest in the
/// given order.
pub fn priority_order(queues: &[String]) -> Vec<String> {
    let mut ordered: Vec<String> = Vec::with_capacity(queues.len());
    for queue in queues {
        if ordered.contains(queue) {
            continue;
        }
        let priority = format!("priority_{queue}");
        if queues.contains(&priority) && !ordered.contains(&priority) {
            ordered.push(priority);
        }
        ordered.push(queue.clone());
    }
    ordered
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub queue: String,
    /// The task name, e.g. `send_reset_password_mail_task`.
    pub task: String,
    /// The encoded arguments (JSON).
    pub payload: Vec<u8>,
    pub max_attempts: u32,
    /// Run no earlier than this long from now.
    pub delay: Duration,
    /// Enqueue at most once per key while the key lives (e.g. a beat tick).
    pub idempotency: Option<(String, Duration)>,
}

impl JobSpec {
    /// A job to run now, with default attempts.
    pub fn new(queue: &str, task: &str, payload: Vec<u8>) -> Self {
        Self {
            queue: queue.to_owned(),
            task: task.to_owned(),
            payload,
            max_attempts: 3,
            delay: Duration::ZERO,
            idempotency: None,
        }
    }
}

/// What happened to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Enqueued under this id.
    New(String),
    /// The idempotency key was taken; this is the job that holds it.
    Duplicate(String),
}

impl Pushed {
    /// The job id either way.
    pub fn id(&self) -> &str {
        match self {
            Pushed::New(id) | Pushed::Duplicate(id) => id,
        }
    }
}

/// A job claimed by a worker, with its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub queue: String,
    pub task: String,
    pub payload: Vec<u8>,
    /// This delivery's attempt number, starting at 1.
    pub attempt: u32,
    pub max_attempts: u32,
}

/// How a claimed job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Run again after the delay (the caller computes the backoff).
    Retry {
        error: String,
        delay: Duration,
    },
    /// Give up; keep the job as dead with this error.
    Dead {
        error: String,
    },
}

/// The outcome of one claimed job, identified by id and attempt.
#[derive(Debug, Clone)]
pub struct Ack {
    pub id: String,
    pub attempt: u32,
    pub outcome: Outcome,
}

/// Result of a batch of acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AckReport {
    pub accepted: u64,
    /// Acks from a worker that no longer owned the job; ignored.
    pub stale: u64,
}

/// Result of reaping expired leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReapReport {
    pub requeued: u64,
    pub dead: u64,
}

/// How many jobs a queue holds in each state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub queue: String,
    pub ready: u64,
    pub delayed: u64,
    pub running: u64,
    pub done: u64,
    pub dead: u64,
}

/// A job as stored, for `kiln queue inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: String,
    pub queue: String,
    pub task: String,
    /// ready, delayed, running, done or dead.
    pub status: String,
    pub attempts: u32,
    pub max_attempts: u32,
    pub owner: Option<String>,
    pub last_error: Option<String>,
    /// Dropped once a job is done, to keep finished jobs small.
    pub payload: Option<Vec<u8>>,
    /// When it was pushed, Unix milliseconds (the store's clock).
    pub created_at_ms: u64,
    /// When its latest attempt was claimed, Unix milliseconds (Redis only: the embedded
    /// store does not keep it).
    pub started_at_ms: Option<u64>,
}

/// Limits on what finished jobs are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Done jobs older than this are deleted.
    pub done_age: Duration,
    /// At most this many done jobs per queue.
    pub done_max: u64,
    /// At most this many dead jobs per queue.
    pub dead_max: u64,
    /// Dead jobs older than this are deleted.
    pub dead_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            done_age: Duration::from_secs(24 * 3600),
            done_max: 10_000,
            dead_max: 10_000,
            dead_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Failures talking to a store. Workers retry these; they never end a worker.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("embedded job store: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("embedded job store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unexpected reply from the store: {0}")]
    Protocol(String),
    #[error("{0}")]
    Connect(String),
}

/// Either store, behind one set of operations.
#[derive(Clone)]
pub enum JobStore {
    Redis(RedisStore),
    Embedded(EmbeddedStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $body:expr) => {
        match $self {
            JobStore::Redis($store) => $body,
            JobStore::Embedded($store) => $body,
        }
    };
}

impl JobStore {
    /// The store the settings name: Redis at CELERY_BROKER_URL (else REDIS_*) when one is
    /// configured, otherwise the embedded file.
    pub async fn from_settings(settings: &crate::config::Settings) -> Result<Self, StoreError> {
        match crate::infra::redis::RedisTarget::broker(settings).map_err(StoreError::Connect)? {
            Some(target) => Ok(JobStore::Redis(RedisStore::open(target, &settings.queue.prefix).await?)),
            None => Ok(JobStore::Embedded(EmbeddedStore::open(&settings.jobs_db_path()).await?)),
        }
    }

    /// Waits until new work may be there: a push (Redis publishes one; the embedded store
    /// notifies its own process), or `idle` at most.
    pub async fn wait_for_work(&self, idle: Duration) {
        match self {
            JobStore::Embedded(store) => {
                let _ = tokio::time::timeout(idle, store.notified()).await;
            }
            JobStore::Redis(store) => store.wait_for_work(idle).await,
        }
    }

    /// Where the jobs live, for logs and messages.
    pub fn describe(&self) -> &str {
        match self {
            JobStore::Redis(store) => store.label(),
            JobStore::Embedded(_) => "embedded SQLite",
        }
    }

    /// Enqueues jobs; one round trip for the whole batch.
    pub async fn push(&self, jobs: &[JobSpec]) -> Result<Vec<Pushed>, StoreError> {
        dispatch!(self, s => s.push(jobs).await)
    }

    /// Claims up to `max` jobs from `queues` (in the order given) for `worker`.
    pub async fn fetch(
        &self,
        worker: &str,
        queues: &[String],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        dispatch!(self, s => s.fetch(worker, queues, max, lease).await)
    }

    /// Finishes claimed jobs; stale acks are counted and ignored.
    pub async fn ack(
        &self,
        worker: &str,
        acks: &[Ack],
        retention: Retention,
    ) -> Result<AckReport, StoreError> {
        dispatch!(self, s => s.ack(worker, acks, retention).await)
    }

    /// Extends the leases of claims `(id, attempt)`; returns the ids whose claim is lost.
    pub async fn renew(
        &self,
        worker: &str,
        claims: &[(String, u32)],
        lease: Duration,
    ) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.renew(worker, claims, lease).await)
    }

    /// Re-delivers jobs whose lease expired.
    pub async fn reap(&self, queues: &[String], limit: usize) -> Result<ReapReport, StoreError> {
        dispatch!(self, s => s.reap(queues, limit).await)
    }

    /// Hands back claimed jobs that were never started.
    pub async fn release(&self, worker: &str, ids: &[String]) -> Result<u64, StoreError> {
        dispatch!(self, s => s.release(worker, ids).await)
    }

    /// Per-queue counts.
    pub async fn counts(&self, queues: &[String]) -> Result<Vec<QueueCounts>, StoreError> {
        dispatch!(self, s => s.counts(queues).await)
    }

    /// One job.
    pub async fn inspect(&self, id: &str) -> Result<Option<JobInfo>, StoreError> {
        dispatch!(self, s => s.inspect(id).await)
    }

    /// Moves dead jobs back to their queues with fresh attempts.
    pub async fn retry_dead(&self, ids: &[String]) -> Result<u64, StoreError> {
        dispatch!(self, s => s.retry_dead(ids).await)
    }

    /// Trims finished jobs by age and count (acks trim as they go; this covers idle queues).
    pub async fn trim(&self, queues: &[String], retention: Retention) -> Result<u64, StoreError> {
        dispatch!(self, s => s.trim(queues, retention).await)
    }

    /// Deletes every job of a queue in one state (never running ones).
    pub async fn purge(&self, queue: &str, status: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge(queue, status).await)
    }

    /// Ids of jobs in a queue and state (ready, delayed, running, done, dead), oldest first.
    pub async fn list(&self, queue: &str, status: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.list(queue, status, limit).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_queues_come_before_their_twins() {
        let given: Vec<String> =
            ["dataset", "mail", "priority_dataset"].iter().map(|s| s.to_string()).collect();
        assert_eq!(priority_order(&given), ["priority_dataset", "dataset", "mail"]);
        let dify: Vec<String> = DIFY_QUEUES.iter().map(|s| s.to_string()).collect();
        assert_eq!(priority_order(&dify), dify, "the default list is already in priority order");
    }
}
