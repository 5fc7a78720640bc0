//! The embedded job store: the same operations as the Redis store, in SQL on a SQLite file
//! of its own, so `standalone` needs no Redis. Each operation is one transaction.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Notify;

use super::{
    Ack, AckReport, Claimed, JobInfo, JobSpec, Outcome, Pushed, QueueCounts, ReapReport, Retention,
    StoreError,
};

/// Jobs in a local SQLite file; pushes wake in-process workers at once.
#[derive(Clone)]
pub struct EmbeddedStore {
    pool: SqlitePool,
    notify: Arc<Notify>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}

/// `?, ?, ...` for an IN list.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl EmbeddedStore {
    /// Opens (creating if needed) the job file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Sqlite(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durable enough for a queue: WAL with NORMAL survives a process crash.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("migrations/jobs").run(&pool).await?;
        Ok(Self { pool, notify: Arc::new(Notify::new()) })
    }

    /// Resolves when a job is pushed through this handle (or a clone of it).
    pub fn notified(&self) -> impl std::future::Future<Output = ()> + '_ {
        self.notify.notified()
    }

    pub async fn push(&self, jobs: &[JobSpec]) -> Result<Vec<Pushed>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let id = uuid::Uuid::now_v7().to_string();
            if let Some((key, ttl)) = &job.idempotency {
                let claimed: Option<String> = sqlx::query_scalar(
                    "INSERT INTO job_idempotency (key, job_id, expires_at) VALUES (?, ?, ?) \
                     ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, expires_at = excluded.expires_at \
                     WHERE job_idempotency.expires_at <= ? RETURNING job_id",
                )
                .bind(key)
                .bind(&id)
                .bind(now + ms(*ttl).max(1))
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if claimed.is_none() {
                    let existing: String =
                        sqlx::query_scalar("SELECT job_id FROM job_idempotency WHERE key = ?")
                            .bind(key)
                            .fetch_one(&mut *tx)
                            .await?;
                    out.push(Pushed::Duplicate(existing));
                    continue;
                }
            }
            sqlx::query(
                "INSERT INTO jobs (id, queue, task, payload, status, max_attempts, run_at, created_at) \
                 VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
            )
            .bind(&id)
            .bind(&job.queue)
            .bind(&job.task)
            .bind(&job.payload)
            .bind(i64::from(job.max_attempts.max(1)))
            .bind(now + ms(job.delay))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            out.push(Pushed::New(id));
        }
        tx.commit().await?;
        self.notify.notify_one();
        Ok(out)
    }

    pub async fn fetch(
        &self,
        worker: &str,
        queues: &[String],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = now_ms();
        let mut out: Vec<Claimed> = Vec::new();
        let mut tx = self.pool.begin().await?;
        for queue in queues {
            if out.len() >= max {
                break;
            }
            let rows: Vec<(String, String, String, Vec<u8>, i64, i64)> = sqlx::query_as(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, owner = ?, lease_until = ? \
                 WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND status = 'queued' AND run_at <= ? \
                               ORDER BY run_at, seq LIMIT ?) \
                 RETURNING id, queue, task, payload, attempts, max_attempts",
            )
            .bind(worker)
            .bind(now + ms(lease))
            .bind(queue)
            .bind(now)
            .bind((max - out.len()) as i64)
            .fetch_all(&mut *tx)
            .await?;
            out.extend(rows.into_iter().map(|(id, queue, task, payload, attempt, max_attempts)| Claimed {
                id,
                queue,
                task,
                payload,
                attempt: attempt as u32,
                max_attempts: max_attempts as u32,
            }));
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn ack(
        &self,
        worker: &str,
        acks: &[Ack],
        retention: Retention,
    ) -> Result<AckReport, StoreError> {
        let now = now_ms();
        let mut report = AckReport::default();
        let mut touched: Vec<String> = Vec::new();
        let mut tx = self.pool.begin().await?;
        for ack in acks {
            let (status, run_at, error, finished) = match &ack.outcome {
                Outcome::Done => ("done", None, None, Some(now)),
                Outcome::Retry { error, delay } => {
                    ("queued", Some(now + ms(*delay)), Some(error.as_str()), None)
                }
                Outcome::Dead { error } => ("dead", None, Some(error.as_str()), Some(now)),
            };
            let queue: Option<String> = sqlx::query_scalar(
                "UPDATE jobs SET status = ?, owner = NULL, lease_until = NULL, run_at = COALESCE(?, run_at), \
                 last_error = COALESCE(?, last_error), finished_at = ?, \
                 payload = CASE WHEN ? = 'done' THEN NULL ELSE payload END \
                 WHERE id = ? AND owner = ? AND attempts = ? AND status = 'running' RETURNING queue",
            )
            .bind(status)
            .bind(run_at)
            .bind(error)
            .bind(finished)
            .bind(status)
            .bind(&ack.id)
            .bind(worker)
            .bind(i64::from(ack.attempt))
            .fetch_optional(&mut *tx)
            .await?;
            match queue {
                Some(queue) => {
                    report.accepted += 1;
                    if !touched.contains(&queue) {
                        touched.push(queue);
                    }
                }
                None => report.stale += 1,
            }
        }
        for queue in &touched {
            trim_queue(&mut tx, queue, retention, now).await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    pub async fn renew(
        &self,
        worker: &str,
        claims: &[(String, u32)],
        lease: Duration,
    ) -> Result<Vec<String>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let until = now_ms() + ms(lease);
        let mut lost = Vec::new();
        let mut tx = self.pool.begin().await?;
        for (id, attempt) in claims {
            let renewed = sqlx::query(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ? AND attempts = ? AND status = 'running'",
            )
            .bind(until)
            .bind(id)
            .bind(worker)
            .bind(i64::from(*attempt))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if renewed == 0 {
                lost.push(id.clone());
            }
        }
        tx.commit().await?;
        Ok(lost)
    }

    pub async fn reap(&self, queues: &[String], limit: usize) -> Result<ReapReport, StoreError> {
        if queues.is_empty() {
            return Ok(ReapReport::default());
        }
        let now = now_ms();
        let sql = format!(
            "UPDATE jobs SET \
               status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
               last_error = CASE WHEN attempts >= max_attempts \
                 THEN 'lease expired: worker ' || COALESCE(owner, '?') || ' stopped renewing it (attempt ' || attempts || ')' \
                 ELSE last_error END, \
               finished_at = CASE WHEN attempts >= max_attempts THEN ? ELSE NULL END, \
               owner = NULL, lease_until = NULL \
             WHERE seq IN (SELECT seq FROM jobs WHERE status = 'running' AND lease_until <= ? AND queue IN ({}) LIMIT ?) \
             RETURNING status",
            placeholders(queues.len())
        );
        let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(now).bind(now);
        for queue in queues {
            query = query.bind(queue);
        }
        let statuses = query.bind(limit as i64).fetch_all(&self.pool).await?;
        let dead = statuses.iter().filter(|s| *s == "dead").count() as u64;
        Ok(ReapReport { requeued: statuses.len() as u64 - dead, dead })
    }

    pub async fn release(&self, worker: &str, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, owner = NULL, lease_until = NULL \
             WHERE owner = ? AND status = 'running' AND id IN ({})",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(worker);
        for id in ids {
            query = query.bind(id);
        }
        let released = query.execute(&self.pool).await?.rows_affected();
        self.notify.notify_one();
        Ok(released)
    }

    pub async fn retry_dead(&self, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = ?, finished_at = NULL \
             WHERE status = 'dead' AND id IN ({})",
            placeholders(ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms());
        for id in ids {
            query = query.bind(id);
        }
        let moved = query.execute(&self.pool).await?.rows_affected();
        self.notify.notify_one();
        Ok(moved)
    }

    pub async fn counts(&self, queues: &[String]) -> Result<Vec<QueueCounts>, StoreError> {
        let now = now_ms();
        let mut out = Vec::with_capacity(queues.len());
        for queue in queues {
            let (ready, delayed, running, done, dead): (i64, i64, i64, i64, i64) = sqlx::query_as(
                "SELECT \
                   COALESCE(SUM(status = 'queued' AND run_at <= ?), 0), \
                   COALESCE(SUM(status = 'queued' AND run_at > ?), 0), \
                   COALESCE(SUM(status = 'running'), 0), \
                   COALESCE(SUM(status = 'done'), 0), \
                   COALESCE(SUM(status = 'dead'), 0) \
                 FROM jobs WHERE queue = ?",
            )
            .bind(now)
            .bind(now)
            .bind(queue)
            .fetch_one(&self.pool)
            .await?;
            out.push(QueueCounts {
                queue: queue.clone(),
                ready: ready as u64,
                delayed: delayed as u64,
                running: running as u64,
                done: done as u64,
                dead: dead as u64,
            });
        }
        Ok(out)
    }

    pub async fn inspect(&self, id: &str) -> Result<Option<JobInfo>, StoreError> {
        type Row =
            (String, String, String, i64, i64, i64, Option<String>, Option<String>, Option<Vec<u8>>, i64);
        let row: Option<Row> = sqlx::query_as(
            "SELECT queue, task, status, run_at, attempts, max_attempts, owner, last_error, payload, created_at \
             FROM jobs WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(queue, task, status, run_at, attempts, max_attempts, owner, last_error, payload, created)| {
                JobInfo {
                    id: id.to_owned(),
                    queue,
                    task,
                    status: match status.as_str() {
                        "queued" if run_at > now_ms() => "delayed".to_owned(),
                        "queued" => "ready".to_owned(),
                        _ => status,
                    },
                    attempts: attempts as u32,
                    max_attempts: max_attempts as u32,
                    owner,
                    last_error,
                    payload,
                    created_at_ms: created.max(0) as u64,
                    started_at_ms: None,
                }
            },
        ))
    }

    pub async fn list(&self, queue: &str, status: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let (condition, order) = match status {
            "ready" => ("status = 'queued' AND run_at <= ?", "run_at, seq"),
            "delayed" => ("status = 'queued' AND run_at > ?", "run_at, seq"),
            "running" => ("status = 'running' AND ? IS NOT NULL", "lease_until, seq"),
            "done" | "dead" => ("status = ? ", "finished_at, seq"),
            other => return Err(StoreError::Protocol(format!("unknown job state {other:?}"))),
        };
        let sql = format!("SELECT id FROM jobs WHERE queue = ? AND {condition} ORDER BY {order} LIMIT ?");
        let query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(queue);
        let query = if matches!(status, "done" | "dead") { query.bind(status) } else { query.bind(now_ms()) };
        Ok(query.bind(limit as i64).fetch_all(&self.pool).await?)
    }

    /// Deletes every job of `queue` in `status` (ready, delayed, done or dead).
    pub async fn purge(&self, queue: &str, status: &str) -> Result<u64, StoreError> {
        let condition = match status {
            "ready" => "status = 'queued' AND run_at <= ?",
            "delayed" => "status = 'queued' AND run_at > ?",
            "done" | "dead" => "status = ? ",
            other => return Err(StoreError::Protocol(format!("cannot purge {other:?} jobs"))),
        };
        let sql = format!("DELETE FROM jobs WHERE queue = ? AND {condition}");
        let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(queue);
        let query = if matches!(status, "done" | "dead") { query.bind(status) } else { query.bind(now_ms()) };
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    /// Trims finished jobs of `queues` by age and count.
    pub async fn trim(&self, queues: &[String], retention: Retention) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Expired idempotency keys are only overwritten on reuse; sweep the rest.
        let mut deleted = sqlx::query("DELETE FROM job_idempotency WHERE expires_at <= ?")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for queue in queues {
            deleted += trim_queue(&mut tx, queue, retention, now_ms()).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Deletes a queue's done jobs past their age, then the oldest done and dead jobs beyond
/// the counts kept.
async fn trim_queue(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    queue: &str,
    retention: Retention,
    now: i64,
) -> Result<u64, StoreError> {
    let mut deleted = sqlx::query(
        "DELETE FROM jobs WHERE queue = ? AND ((status = 'done' AND finished_at < ?) OR (status = 'dead' AND finished_at < ?))",
    )
    .bind(queue)
    .bind(now - ms(retention.done_age))
    .bind(now - ms(retention.dead_age))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    for (status, keep) in [("done", retention.done_max), ("dead", retention.dead_max)] {
        deleted += sqlx::query(
            "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND status = ? \
             ORDER BY finished_at DESC, seq DESC LIMIT -1 OFFSET ?)",
        )
        .bind(queue)
        .bind(status)
        .bind(keep.min(i64::MAX as u64) as i64)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(deleted)
}
