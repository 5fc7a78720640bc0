//! The Redis job store: every operation is one Lua script (server time, atomic), so a batch
//! of pushes, claims or acks costs one round trip. All keys share one hash tag.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::infra::redis::{RedisConn, RedisTarget};

use super::{
    Ack, AckReport, Claimed, JobInfo, JobSpec, Outcome, Pushed, QueueCounts, ReapReport, Retention,
    StoreError,
};

/// Due delayed jobs promoted per queue per fetch, so one call stays short however large the
/// backlog (50,000 due at once drain over successive fetches).
const PROMOTE_LIMIT: usize = 1000;

struct Scripts {
    push: redis::Script,
    fetch: redis::Script,
    ack: redis::Script,
    renew: redis::Script,
    reap: redis::Script,
    release: redis::Script,
    retry_dead: redis::Script,
    purge: redis::Script,
    trim: redis::Script,
    elect: redis::Script,
    resign: redis::Script,
}

/// Jobs in Redis under `{<prefix>}:` keys.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConn,
    prefix: String,
    scripts: Arc<Scripts>,
    /// Woken by pushes (a subscription to `<prefix>wake`), so idle workers start at once.
    wake: Arc<Wake>,
}

/// The wake-up subscription, started by the first worker that waits.
struct Wake {
    target: RedisTarget,
    notify: tokio::sync::Notify,
    started: std::sync::Once,
}

fn ms(duration: Duration) -> u64 {
    duration.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Keeps a subscription to the wake channel, reconnecting after failures; every message
/// wakes the waiting workers of this process.
async fn subscribe_forever(channel: String, wake: Arc<Wake>) {
    use futures::StreamExt;
    loop {
        // Asked anew each time: with Sentinel, the primary may have moved.
        let pubsub = match wake.target.client().await {
            Ok(client) => client.get_async_pubsub().await,
            Err(error) => Err(error),
        };
        match pubsub {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    let mut messages = pubsub.on_message();
                    while messages.next().await.is_some() {
                        wake.notify.notify_one();
                    }
                }
                Err(error) => tracing::debug!(%error, "wake subscription failed"),
            },
            Err(error) => tracing::debug!(%error, "wake subscription cannot connect"),
        }
        // Until resubscribed, workers fall back to polling.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl RedisStore {
    /// Connects to a `redis[s]://` URL (tests and tools).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let target = RedisTarget::url(url, "the job store").map_err(StoreError::Connect)?;
        Self::open(target, prefix).await
    }

    /// Connects with a generous response timeout (a batch script may take longer than
    /// redis-rs's 500 ms default); the connection is re-made after failures.
    pub async fn open(target: RedisTarget, prefix: &str) -> Result<Self, StoreError> {
        let conn =
            RedisConn::connect(target.clone(), Duration::from_secs(10)).await.map_err(StoreError::Connect)?;
        let scripts = Scripts {
            push: redis::Script::new(include_str!("lua/push.lua")),
            fetch: redis::Script::new(include_str!("lua/fetch.lua")),
            ack: redis::Script::new(include_str!("lua/ack.lua")),
            renew: redis::Script::new(include_str!("lua/renew.lua")),
            reap: redis::Script::new(include_str!("lua/reap.lua")),
            release: redis::Script::new(include_str!("lua/release.lua")),
            retry_dead: redis::Script::new(include_str!("lua/retry_dead.lua")),
            purge: redis::Script::new(include_str!("lua/purge.lua")),
            trim: redis::Script::new(include_str!("lua/trim.lua")),
            elect: redis::Script::new(include_str!("lua/elect.lua")),
            resign: redis::Script::new(include_str!("lua/resign.lua")),
        };
        let wake =
            Arc::new(Wake { target, notify: tokio::sync::Notify::new(), started: std::sync::Once::new() });
        Ok(Self { conn, prefix: format!("{{{prefix}}}:"), scripts: Arc::new(scripts), wake })
    }

    /// Waits for a push of a ready job, or `idle` at most.
    pub async fn wait_for_work(&self, idle: Duration) {
        let (wake, channel) = (self.wake.clone(), self.key("wake"));
        self.wake.started.call_once(move || {
            tokio::spawn(subscribe_forever(channel, wake));
        });
        let _ = tokio::time::timeout(idle, self.wake.notify.notified()).await;
    }

    /// Where the jobs live, for messages.
    pub fn label(&self) -> &str {
        self.conn.target().label()
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    pub async fn push(&self, jobs: &[JobSpec]) -> Result<Vec<Pushed>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.push.prepare_invoke();
        invocation.arg(&self.prefix);
        for job in jobs {
            let (key, ttl) = job.idempotency.clone().unwrap_or_default();
            invocation
                .arg(uuid::Uuid::now_v7().to_string())
                .arg(&job.queue)
                .arg(&job.task)
                .arg(&job.payload)
                .arg(job.max_attempts.max(1))
                .arg(ms(job.delay))
                .arg(key)
                .arg(ms(ttl).max(1));
        }
        let reply: Vec<(i64, String)> = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(reply
            .into_iter()
            .map(|(new, id)| if new == 1 { Pushed::New(id) } else { Pushed::Duplicate(id) })
            .collect())
    }

    pub async fn fetch(
        &self,
        worker: &str,
        queues: &[String],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if queues.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.fetch.prepare_invoke();
        invocation.arg(&self.prefix).arg(worker).arg(ms(lease)).arg(max).arg(PROMOTE_LIMIT);
        for queue in queues {
            invocation.arg(queue);
        }
        let reply: Vec<(String, String, String, Vec<u8>, u32, u32)> =
            invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(reply
            .into_iter()
            .map(|(id, queue, task, payload, attempt, max_attempts)| Claimed {
                id,
                queue,
                task,
                payload,
                attempt,
                max_attempts,
            })
            .collect())
    }

    pub async fn ack(
        &self,
        worker: &str,
        acks: &[Ack],
        retention: Retention,
    ) -> Result<AckReport, StoreError> {
        if acks.is_empty() {
            return Ok(AckReport::default());
        }
        let mut invocation = self.scripts.ack.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(worker)
            .arg(ms(retention.done_age))
            .arg(retention.done_max)
            .arg(retention.dead_max)
            .arg(ms(retention.dead_age));
        for ack in acks {
            let (kind, delay, error) = match &ack.outcome {
                Outcome::Done => ("done", 0, ""),
                Outcome::Retry { error, delay } => ("retry", ms(*delay), error.as_str()),
                Outcome::Dead { error } => ("dead", 0, error.as_str()),
            };
            invocation.arg(&ack.id).arg(ack.attempt).arg(kind).arg(delay).arg(error);
        }
        let (accepted, stale): (u64, u64) = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(AckReport { accepted, stale })
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
        let mut invocation = self.scripts.renew.prepare_invoke();
        invocation.arg(&self.prefix).arg(worker).arg(ms(lease));
        for (id, attempt) in claims {
            invocation.arg(id).arg(*attempt);
        }
        Ok(invocation.invoke_async(&mut self.conn.clone()).await?)
    }

    pub async fn reap(&self, queues: &[String], limit: usize) -> Result<ReapReport, StoreError> {
        if queues.is_empty() {
            return Ok(ReapReport::default());
        }
        let mut invocation = self.scripts.reap.prepare_invoke();
        invocation.arg(&self.prefix).arg(limit).arg(queues);
        let (requeued, dead): (u64, u64) = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(ReapReport { requeued, dead })
    }

    pub async fn release(&self, worker: &str, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.scripts.release.prepare_invoke();
        invocation.arg(&self.prefix).arg(worker).arg(ids);
        Ok(invocation.invoke_async(&mut self.conn.clone()).await?)
    }

    pub async fn retry_dead(&self, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut invocation = self.scripts.retry_dead.prepare_invoke();
        invocation.arg(&self.prefix).arg(ids);
        Ok(invocation.invoke_async(&mut self.conn.clone()).await?)
    }

    pub async fn counts(&self, queues: &[String]) -> Result<Vec<QueueCounts>, StoreError> {
        let mut pipe = redis::pipe();
        for queue in queues {
            pipe.llen(self.key(&format!("q:{queue}")))
                .zcard(self.key(&format!("delayed:{queue}")))
                .zcard(self.key(&format!("running:{queue}")))
                .zcard(self.key(&format!("done:{queue}")))
                .zcard(self.key(&format!("dead:{queue}")));
        }
        let numbers: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(queues
            .iter()
            .zip(numbers.chunks(5))
            .map(|(queue, n)| QueueCounts {
                queue: queue.clone(),
                ready: n.first().copied().unwrap_or(0),
                delayed: n.get(1).copied().unwrap_or(0),
                running: n.get(2).copied().unwrap_or(0),
                done: n.get(3).copied().unwrap_or(0),
                dead: n.get(4).copied().unwrap_or(0),
            })
            .collect())
    }

    pub async fn inspect(&self, id: &str) -> Result<Option<JobInfo>, StoreError> {
        let fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.key(&format!("job:{id}")))
            .query_async(&mut self.conn.clone())
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let text = |name: &str| fields.get(name).map(|v| String::from_utf8_lossy(v).into_owned());
        let number = |name: &str| text(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Some(JobInfo {
            id: id.to_owned(),
            queue: text("queue").unwrap_or_default(),
            task: text("task").unwrap_or_default(),
            status: text("status").unwrap_or_default(),
            attempts: number("attempts"),
            max_attempts: number("max_attempts"),
            owner: text("owner").filter(|o| !o.is_empty()),
            last_error: text("last_error").filter(|e| !e.is_empty()),
            payload: fields.get("payload").cloned(),
            created_at_ms: text("created_at").and_then(|v| v.parse().ok()).unwrap_or(0),
            started_at_ms: text("started_at").and_then(|v| v.parse().ok()),
        }))
    }

    pub async fn list(&self, queue: &str, status: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let end = limit.max(1) as isize - 1;
        let mut conn = self.conn.clone();
        let ids: Vec<String> = match status {
            "ready" => {
                redis::cmd("LRANGE")
                    .arg(self.key(&format!("q:{queue}")))
                    .arg(0)
                    .arg(end)
                    .query_async(&mut conn)
                    .await?
            }
            "delayed" | "running" | "done" | "dead" => {
                redis::cmd("ZRANGE")
                    .arg(self.key(&format!("{status}:{queue}")))
                    .arg(0)
                    .arg(end)
                    .query_async(&mut conn)
                    .await?
            }
            other => return Err(StoreError::Protocol(format!("unknown job state {other:?}"))),
        };
        Ok(ids)
    }

    /// Deletes every job of `queue` in `status` (ready, delayed, done or dead), in bounded
    /// batches so Redis is never blocked for long.
    pub async fn purge(&self, queue: &str, status: &str) -> Result<u64, StoreError> {
        if !matches!(status, "ready" | "delayed" | "done" | "dead") {
            return Err(StoreError::Protocol(format!("cannot purge {status:?} jobs")));
        }
        let mut total = 0;
        loop {
            let mut invocation = self.scripts.purge.prepare_invoke();
            invocation.arg(&self.prefix).arg(queue).arg(status).arg(1000);
            let deleted: u64 = invocation.invoke_async(&mut self.conn.clone()).await?;
            total += deleted;
            if deleted == 0 {
                return Ok(total);
            }
        }
    }

    /// Trims finished jobs of `queues` by age and count.
    pub async fn trim(&self, queues: &[String], retention: Retention) -> Result<u64, StoreError> {
        let mut invocation = self.scripts.trim.prepare_invoke();
        invocation
            .arg(&self.prefix)
            .arg(ms(retention.done_age))
            .arg(retention.done_max)
            .arg(retention.dead_max)
            .arg(ms(retention.dead_age))
            .arg(queues);
        Ok(invocation.invoke_async(&mut self.conn.clone()).await?)
    }

    /// Takes or renews the lease `name` for `me` (compare-and-set); true while `me` holds it.
    pub async fn elect(&self, name: &str, me: &str, lease: Duration) -> Result<bool, StoreError> {
        let mut invocation = self.scripts.elect.prepare_invoke();
        invocation.arg(self.key(name)).arg(me).arg(ms(lease).max(1));
        let led: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(led == 1)
    }

    /// Releases the lease `name` if `me` holds it.
    pub async fn resign(&self, name: &str, me: &str) -> Result<(), StoreError> {
        let mut invocation = self.scripts.resign.prepare_invoke();
        invocation.arg(self.key(name)).arg(me);
        let _: i64 = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }
}
