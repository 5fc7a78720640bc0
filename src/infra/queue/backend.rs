//! apalis' worker runtime on kiln's job store.
//!
//! [`StoreBackend`] is an apalis `Backend` (Kind = Ephemeral): it claims jobs in batches,
//! hands them to the worker as [`Job`] tasks, and keeps every claimed job's lease alive from
//! a task of its own, independent of fetching and of handler CPU. The [`AckLayer`] it returns
//! from `middleware()` turns each handler result into an ack (done, retry with exponential
//! backoff, or dead with the error; a panic is dead, never a dead worker), and acks are
//! written in batches. Store errors are retried inside the backend and never end the worker.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use apalis_core::backend::{Backend, BackendConfig, finalize::Ephemeral};
use apalis_core::error::{AbortError, BoxDynError, RetryAfterError};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures::future::BoxFuture;
use futures::{FutureExt, Sink};
use tokio::sync::{mpsc, oneshot};
use tower::{Layer, Service};

use super::{Ack, Claimed, JobSpec, JobStore, Outcome, Retention, StoreError};

/// A job as a handler sees it: the task name, its queue and the encoded arguments.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub queue: String,
    pub task: String,
    pub payload: Vec<u8>,
    pub attempt: u32,
    pub max_attempts: u32,
}

/// How the backend behaves.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// Unique per process start: the lease owner.
    pub worker_id: String,
    /// Queues in priority order.
    pub queues: Vec<String>,
    /// Jobs claimed per fetch.
    pub batch: usize,
    pub lease: Duration,
    /// Longest wait before looking again when the queues are empty.
    pub idle_poll: Duration,
    /// First retry delay; doubled per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    pub retention: Retention,
    pub default_max_attempts: u32,
}

/// Carried in each task's data so the ack layer knows which claim it finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LeaseKey {
    attempt: u32,
    max_attempts: u32,
}

#[derive(Debug, Clone)]
struct ClaimRef(String, LeaseKey);

enum AckMessage {
    Ack(Ack),
    Flush(oneshot::Sender<()>),
}

enum FetchState {
    Idle,
    Fetching(BoxFuture<'static, Vec<Claimed>>),
    Waiting(BoxFuture<'static, ()>),
}

/// Claims this worker holds (buffered or running): id → attempt.
pub type Owned = Arc<Mutex<HashMap<String, u32>>>;

/// An apalis backend over a [`JobStore`].
pub struct StoreBackend {
    store: JobStore,
    settings: BackendSettings,
    buffer: VecDeque<Task<Job>>,
    fetch: FetchState,
    ack_tx: mpsc::UnboundedSender<AckMessage>,
    ack_rx: Option<mpsc::UnboundedReceiver<AckMessage>>,
    background: Vec<tokio::task::JoinHandle<()>>,
    owned: Owned,
    closing: Option<BoxFuture<'static, ()>>,
    pending: Vec<JobSpec>,
    pushing: Option<BoxFuture<'static, Result<(), StoreError>>>,
}

// No field is pin-projected, so moving the backend is always fine (apalis requires Unpin).
impl Unpin for StoreBackend {}

/// Retries a store call until it succeeds, logging each failure: a store that is down must
/// not end the worker (apalis drops in-flight work when a backend returns an error).
async fn retrying<T, F, Fut>(what: &'static str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        match call().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(operation = what, failures, "job store reachable again");
                }
                return value;
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(operation = what, %error, retry_in_ms = delay.as_millis() as u64, "job store call failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl StoreBackend {
    pub fn new(store: JobStore, settings: BackendSettings) -> Self {
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        Self {
            store,
            settings,
            buffer: VecDeque::new(),
            fetch: FetchState::Idle,
            ack_tx,
            ack_rx: Some(ack_rx),
            background: Vec::new(),
            owned: Owned::default(),
            closing: None,
            pending: Vec::new(),
            pushing: None,
        }
    }

    /// Records claims in `owned`, shared with the caller, so a role can see which jobs were
    /// still running when it stopped waiting for them.
    pub fn sharing_claims(mut self, owned: Owned) -> Self {
        self.owned = owned;
        self
    }

    /// Starts the acker and the lease keeper, once, when the worker first polls.
    fn start_background(&mut self) {
        let Some(mut rx) = self.ack_rx.take() else { return };
        let (store, owned) = (self.store.clone(), self.owned.clone());
        let (worker, retention) = (self.settings.worker_id.clone(), self.settings.retention);
        self.background.push(tokio::spawn(async move {
            let mut batch: Vec<Ack> = Vec::new();
            let mut flushes = Vec::new();
            while let Some(first) = rx.recv().await {
                let mut next = Some(first);
                while let Some(message) =
                    next.take().or_else(|| if batch.len() < 512 { rx.try_recv().ok() } else { None })
                {
                    match message {
                        AckMessage::Ack(ack) => batch.push(ack),
                        AckMessage::Flush(done) => flushes.push(done),
                    }
                }
                if !batch.is_empty() {
                    let acks = std::mem::take(&mut batch);
                    let report = retrying("ack", || store.ack(&worker, &acks, retention)).await;
                    if report.stale > 0 {
                        tracing::warn!(
                            stale = report.stale,
                            "acks rejected: those jobs' leases were lost and they were re-delivered"
                        );
                    }
                    if let Ok(mut owned) = owned.lock() {
                        for ack in &acks {
                            // Only the claim this ack finishes; a newer claim of the same job
                            // (after a lost lease) keeps being renewed.
                            if owned.get(&ack.id) == Some(&ack.attempt) {
                                owned.remove(&ack.id);
                            }
                        }
                    }
                }
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }));
        let (store, owned) = (self.store.clone(), self.owned.clone());
        let (worker, lease, queues) =
            (self.settings.worker_id.clone(), self.settings.lease, self.settings.queues.clone());
        self.background.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            let mut reap_tick = 0u32;
            loop {
                tick.tick().await;
                let claims: Vec<(String, u32)> = owned
                    .lock()
                    .map(|o| o.iter().map(|(id, a)| (id.clone(), *a)).collect())
                    .unwrap_or_default();
                if !claims.is_empty() {
                    match store.renew(&worker, &claims, lease).await {
                        Ok(lost) if !lost.is_empty() => {
                            tracing::warn!(
                                lost = lost.len(),
                                "lost the lease of running jobs; they may run twice"
                            );
                            if let Ok(mut owned) = owned.lock() {
                                for (id, attempt) in claims.iter().filter(|(id, _)| lost.contains(id)) {
                                    if owned.get(id) == Some(attempt) {
                                        owned.remove(id);
                                    }
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "could not renew job leases; retrying"),
                    }
                }
                // Every worker also re-delivers the jobs of workers that died.
                reap_tick += 1;
                if reap_tick.is_multiple_of(3) {
                    match store.reap(&queues, 1000).await {
                        Ok(report) if report.requeued + report.dead > 0 => tracing::info!(
                            requeued = report.requeued,
                            dead = report.dead,
                            "re-delivered jobs whose worker stopped renewing their lease"
                        ),
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "could not reap expired leases; retrying"),
                    }
                }
            }
        }));
    }

    fn task_of(claimed: Claimed) -> Task<Job> {
        let key = LeaseKey { attempt: claimed.attempt, max_attempts: claimed.max_attempts };
        let id = claimed.id.clone();
        let job = Job {
            id: claimed.id,
            queue: claimed.queue,
            task: claimed.task,
            payload: claimed.payload,
            attempt: claimed.attempt,
            max_attempts: claimed.max_attempts,
        };
        TaskBuilder::new(job)
            .task_id(TaskId::from_string(&id))
            // apalis adds one when the task starts, so the handler sees the stored attempt.
            .attempt(claimed.attempt.saturating_sub(1) as usize)
            .max_attempts(claimed.max_attempts as usize)
            .data(ClaimRef(id, key))
            .build()
    }
}

impl Drop for StoreBackend {
    fn drop(&mut self) {
        // A worker that died is dropped without poll_close: stop renewing its leases so the
        // reaper hands its jobs to a live worker.
        for task in &self.background {
            task.abort();
        }
    }
}

impl Backend for StoreBackend {
    type Task = Task<Job>;
    type Error = StoreError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.start_background();
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if let Some(task) = self.buffer.pop_front() {
                return Poll::Ready(Some(Ok(task)));
            }
            match &mut self.fetch {
                FetchState::Idle => {
                    let (store, settings) = (self.store.clone(), self.settings.clone());
                    self.fetch = FetchState::Fetching(
                        async move {
                            retrying("fetch", || {
                                store.fetch(
                                    &settings.worker_id,
                                    &settings.queues,
                                    settings.batch,
                                    settings.lease,
                                )
                            })
                            .await
                        }
                        .boxed(),
                    );
                }
                FetchState::Waiting(wait) => {
                    ready!(wait.poll_unpin(cx));
                    self.fetch = FetchState::Idle;
                }
                FetchState::Fetching(fetching) => {
                    let claimed = ready!(fetching.poll_unpin(cx));
                    if claimed.is_empty() {
                        let (store, idle) = (self.store.clone(), self.settings.idle_poll);
                        self.fetch =
                            FetchState::Waiting(async move { store.wait_for_work(idle).await }.boxed());
                        continue;
                    }
                    self.fetch = FetchState::Idle;
                    if let Ok(mut owned) = self.owned.lock() {
                        owned.extend(claimed.iter().map(|c| (c.id.clone(), c.attempt)));
                    }
                    self.buffer.extend(claimed.into_iter().map(Self::task_of));
                }
            }
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, worker: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        if self.closing.is_none() {
            let fetching = match std::mem::replace(&mut self.fetch, FetchState::Idle) {
                FetchState::Fetching(fetching) => Some(fetching),
                _ => None,
            };
            let mut unstarted: Vec<String> = self
                .buffer
                .drain(..)
                .filter_map(|task| task.data().get::<ClaimRef>().map(|c| c.0.clone()))
                .collect();
            let (flushed_tx, flushed_rx) = oneshot::channel();
            let acker_running =
                self.ack_rx.is_none() && self.ack_tx.send(AckMessage::Flush(flushed_tx)).is_ok();
            let background = std::mem::take(&mut self.background);
            let (store, owned, worker_id) =
                (self.store.clone(), self.owned.clone(), self.settings.worker_id.clone());
            tracing::info!(
                worker = worker.name(),
                unstarted = unstarted.len(),
                "worker stopping: handing back unstarted jobs"
            );
            self.closing = Some(
                async move {
                    if let Some(fetching) = fetching {
                        unstarted.extend(fetching.await.into_iter().map(|c| c.id));
                    }
                    if !unstarted.is_empty() {
                        match store.release(&worker_id, &unstarted).await {
                            Ok(released) => tracing::info!(released, "handed back unstarted jobs"),
                            Err(error) => tracing::warn!(%error, "could not hand back unstarted jobs; their leases will expire and they will be re-delivered"),
                        }
                    }
                    if let Ok(mut owned) = owned.lock() {
                        for id in &unstarted {
                            owned.remove(id);
                        }
                    }
                    if acker_running {
                        let _ = flushed_rx.await;
                    }
                    for task in background {
                        task.abort();
                    }
                }
                .boxed(),
            );
        }
        if let Some(closing) = self.closing.as_mut() {
            ready!(closing.poll_unpin(cx));
        }
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for StoreBackend {
    type Args = Job;
    type Id = String;
    type Kind = Ephemeral;
    type Config = BackendSettings;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.settings
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        AckLayer {
            tx: self.ack_tx.clone(),
            backoff_base: self.settings.backoff_base,
            backoff_max: self.settings.backoff_max,
        }
    }
}

/// Producers push [`Job`]s through apalis' `TaskSink` (push, push_bulk), batched.
impl Sink<Task<Job>> for StoreBackend {
    type Error = StoreError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.pending.len() >= 1000 {
            return self.poll_flush(cx);
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, item: Task<Job>) -> Result<(), Self::Error> {
        let max_attempts =
            item.max_attempts().map(|m| m as u32).unwrap_or(self.settings.default_max_attempts);
        let job = item.args;
        let mut spec = JobSpec::new(&job.queue, &job.task, job.payload);
        spec.max_attempts = max_attempts;
        self.pending.push(spec);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if let Some(pushing) = self.pushing.as_mut() {
                let result = ready!(pushing.poll_unpin(cx));
                self.pushing = None;
                result?;
            }
            if self.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let (batch, store) = (std::mem::take(&mut self.pending), self.store.clone());
            self.pushing = Some(async move { store.push(&batch).await.map(drop) }.boxed());
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}

/// Turns handler results into acks.
#[derive(Clone)]
pub struct AckLayer {
    tx: mpsc::UnboundedSender<AckMessage>,
    backoff_base: Duration,
    backoff_max: Duration,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AckService { inner, layer: self.clone() }
    }
}

/// The service [`AckLayer`] wraps handlers in.
#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    layer: AckLayer,
}

/// A handler panicked; its job is dead, the worker carries on.
#[derive(Debug, thiserror::Error)]
#[error("handler panicked: {0}")]
pub struct PanicError(String);

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Exponential backoff: base × 2^(attempt-1), capped.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20))).min(max)
}

impl<S> Service<Task<Job>> for AckService<S>
where
    S: Service<Task<Job>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Job>) -> Self::Future {
        let claim = task.data().get::<ClaimRef>().cloned();
        let layer = self.layer.clone();
        // The synchronous part of a handler may panic too.
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(task)));
        async move {
            let result = match call {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            let (outcome, reply): (Outcome, Result<S::Response, BoxDynError>) = match result {
                Ok(Ok(response)) => (Outcome::Done, Ok(response)),
                Ok(Err(error)) => {
                    let error: BoxDynError = error.into();
                    let (attempt, max) =
                        claim.as_ref().map(|c| (c.1.attempt, c.1.max_attempts)).unwrap_or((1, 1));
                    let outcome = if error.downcast_ref::<AbortError>().is_some() || attempt >= max {
                        Outcome::Dead { error: error.to_string() }
                    } else if let Some(retry) = error.downcast_ref::<RetryAfterError>() {
                        Outcome::Retry { error: error.to_string(), delay: retry.get_duration() }
                    } else {
                        Outcome::Retry {
                            error: error.to_string(),
                            delay: backoff(layer.backoff_base, layer.backoff_max, attempt),
                        }
                    };
                    (outcome, Err(error))
                }
                Err(panic) => {
                    let message = panic_message(panic.as_ref());
                    tracing::error!(%message, "job handler panicked; the job is dead, the worker carries on");
                    (
                        Outcome::Dead { error: format!("panic: {message}") },
                        Err(Box::new(PanicError(message)) as BoxDynError),
                    )
                }
            };
            if let Some(ClaimRef(id, key)) = claim {
                let _ = layer.tx.send(AckMessage::Ack(Ack { id, attempt: key.attempt, outcome }));
            }
            reply
        }
        .boxed()
    }
}
