//! `MODE=worker`: consume the configured queues with apalis workers on kiln's job store.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::WorkerBuilderExt;
use apalis_core::error::BoxDynError;
use apalis_core::monitor::Monitor;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;

use super::{RoleContext, RoleError};
use crate::config::Settings;
use crate::infra::db::Db;
use crate::infra::queue::backend::{BackendSettings, Job, Owned, StoreBackend};
use crate::infra::queue::{JobStore, Retention};
use crate::infra::shutdown;
use crate::tasks::{self, TaskRegistry, TaskServices};

/// A lease owner name unique to this process start: host, pid and a random suffix.
pub fn new_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "kiln".into());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &suffix[..8])
}

/// The backend settings the configuration implies.
pub fn backend_settings(settings: &Settings, worker_id: String) -> BackendSettings {
    let q = &settings.queue;
    let concurrency = settings.worker_concurrency();
    BackendSettings {
        worker_id,
        queues: settings.worker_queues(),
        // Celery's meaning: each process reserves concurrency × prefetch multiplier jobs, so
        // long jobs spread over replicas; raise CELERY_PREFETCH_MULTIPLIER for short jobs.
        batch: (concurrency * q.prefetch_multiplier.0).clamp(1, 1000) as usize,
        lease: Duration::from_secs(u64::from(q.lease_seconds.0)),
        idle_poll: Duration::from_millis(200),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(600),
        retention: Retention {
            done_age: q.done_retention.duration(),
            done_max: u64::from(q.done_max.0),
            dead_max: u64::from(q.dead_max.0),
            dead_age: q.dead_retention.duration(),
        },
        default_max_attempts: q.max_attempts.0,
    }
}

async fn handle(job: Job, registry: Data<Arc<TaskRegistry>>) -> Result<(), BoxDynError> {
    registry.run(job).await
}

/// Runs workers until SIGTERM/SIGINT: stops fetching, lets in-flight jobs finish within the
/// grace period, hands back the unstarted ones, and exits.
pub async fn run(
    ctx: RoleContext,
    db: Db,
    store: JobStore,
    shutdown: shutdown::Shutdown,
) -> Result<(), RoleError> {
    let settings = ctx.settings.clone();
    let worker_id = new_worker_id();
    let backend = backend_settings(&settings, worker_id.clone());
    let concurrency = settings.worker_concurrency() as usize;
    let mailer =
        crate::infra::mail::Mailer::from_settings(&settings).map_err(|e| RoleError::Worker(e.to_string()))?;
    let storage =
        crate::infra::storage::Storage::open(&settings).map_err(|e| RoleError::Worker(e.to_string()))?;
    let services = TaskServices {
        storage,
        db,
        store: store.clone(),
        settings: settings.clone(),
        retention: backend.retention,
        mailer,
    };
    let registry = Arc::new(tasks::registry(Arc::new(services)));
    tracing::info!(
        role = "worker",
        version = crate::VERSION,
        config = %ctx.sources_summary,
        worker = %worker_id,
        store = store.describe(),
        concurrency,
        queues = %backend.queues.join(","),
        tasks = %registry.names().join(","),
        "kiln worker is consuming"
    );
    let grace = settings.server.shutdown_grace_period.duration();
    let claims = Owned::default();
    let (worker_claims, final_store, final_id, final_queues) =
        (claims.clone(), store.clone(), worker_id.clone(), backend.queues.clone());
    let monitor = Monitor::new()
        .register(move |restarts| {
            if restarts > 0 {
                tracing::warn!(restarts, "worker restarted after an error");
            }
            WorkerBuilder::new(worker_id.as_str())
                .backend(
                    StoreBackend::new(store.clone(), backend.clone()).sharing_claims(worker_claims.clone()),
                )
                .data(registry.clone())
                .concurrency(concurrency)
                .build(handle)
        })
        .should_restart(|_, error| {
            tracing::error!(%error, "worker stopped with an error; restarting it");
            true
        })
        .shutdown_timeout(grace);
    monitor
        .run_with_signal(async {
            shutdown.wait().await;
            Ok(())
        })
        .await
        .map_err(|e| RoleError::Worker(e.to_string()))?;
    hand_back_interrupted(&final_store, &final_id, &final_queues, &claims, grace).await;
    tracing::info!(role = "worker", "stopped");
    Ok(())
}

/// Jobs still running when the grace period ran out are cut off as the process exits: end
/// their leases now and re-deliver them, as after a crash (the attempt counts), instead of
/// leaving them until their leases expire.
async fn hand_back_interrupted(
    store: &JobStore,
    worker: &str,
    queues: &[String],
    claims: &Owned,
    grace: Duration,
) {
    let running: Vec<(String, u32)> = match claims.lock() {
        Ok(claims) => claims.iter().map(|(id, attempt)| (id.clone(), *attempt)).collect(),
        Err(_) => return,
    };
    if running.is_empty() {
        return;
    }
    tracing::warn!(
        jobs = running.len(),
        grace_s = grace.as_secs(),
        "shutdown grace period (KILN_SHUTDOWN_GRACE_PERIOD) ran out with jobs still running; handing them back"
    );
    let ended = store.renew(worker, &running, Duration::ZERO).await;
    match ended {
        Ok(_) => match store.reap(queues, running.len().max(1000)).await {
            Ok(report) => tracing::info!(
                requeued = report.requeued,
                dead = report.dead,
                "re-delivered interrupted jobs"
            ),
            Err(error) => {
                tracing::warn!(%error, "could not re-deliver interrupted jobs; another worker's reaper will")
            }
        },
        Err(error) => {
            tracing::warn!(%error, "could not end the leases of interrupted jobs; they expire on their own")
        }
    }
}

/// Opens the job store the settings name, retrying while it is unreachable for up to
/// KILN_MIGRATION_WAIT_TIMEOUT (a worker starting next to its Redis).
pub async fn open_store(settings: &Settings) -> Result<JobStore, RoleError> {
    let timeout = settings.app.migration_wait_timeout.duration();
    let started = std::time::Instant::now();
    loop {
        match JobStore::from_settings(settings).await {
            Ok(store) => return Ok(store),
            Err(error) if started.elapsed() < timeout => {
                tracing::warn!(%error, "job store not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(RoleError::Worker(format!("cannot open the job store: {error}"))),
        }
    }
}

/// Opens the job store, retrying for as long as it takes (the standalone API keeps serving
/// meanwhile, and its /ready names the store that is down).
pub async fn open_store_until_reachable(settings: &Settings) -> JobStore {
    let mut attempt = 0u32;
    loop {
        match JobStore::from_settings(settings).await {
            Ok(store) => return store,
            Err(error) => {
                attempt += 1;
                if attempt == 1 || attempt.is_multiple_of(30) {
                    tracing::warn!(%error, "job store not reachable; the worker starts once it is");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The worker role: database (checked or migrated), job store, then the workers; with
/// KILN_WORKER_HEALTH_PORT, also `/health` and `/ready` (queue counts included).
pub async fn start(ctx: RoleContext) -> Result<(), RoleError> {
    let stop = shutdown::Shutdown::listen();
    let Some(port) = ctx.settings.queue.worker_health_port else {
        let db = super::connect_db(&ctx.settings).await?;
        crate::infra::migrations::ensure_schema(&db, &ctx.settings, ctx.settings.app.migration_enabled)
            .await?;
        let store = open_store(&ctx.settings).await?;
        let result = run(ctx, db.clone(), store, stop).await;
        db.close().await;
        return result;
    };
    let addr = std::net::SocketAddr::new(ctx.settings.server.bind_address, port.0);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
        RoleError::Worker(format!(
            "cannot listen on {addr}: {error}. Change KILN_WORKER_HEALTH_PORT or DIFY_BIND_ADDRESS"
        ))
    })?;
    let mut shared = super::prepare(ctx.settings.clone(), ctx.settings.app.migration_enabled).await?;
    let store = open_store(&ctx.settings).await?;
    shared.runs_worker = true;
    let state = crate::http::AppState::new(shared);
    let _ = state.jobs.set(store.clone());
    let db = state.db.clone();
    let grace = ctx.settings.server.shutdown_grace_period.duration();
    tracing::info!(listen = %addr, "worker health listener: /health and /ready");
    let health = tokio::spawn(crate::http::serve(
        listener,
        crate::http::health_router(state),
        stop.clone().wait(),
        grace,
    ));
    let result = run(ctx, db.clone(), store, stop).await;
    if let Ok(Err(error)) = health.await {
        tracing::warn!(%error, "worker health listener failed");
    }
    db.close().await;
    result
}
