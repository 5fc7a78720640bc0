//! The roles the binary can play. Each only wires shared services together.

pub mod api;
pub mod beat;
pub mod migrate;
pub mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::accounts::tokens::AuthStore;
use crate::config::{Settings, Source};
use crate::http::SharedState;
use crate::infra::db::{Db, DbError, describe};
use crate::infra::migrations::{self, MigrationError};
use crate::infra::redis::{RedisConn, RedisProbe, RedisTarget};
use crate::infra::storage::{Storage, StorageError};

/// A role that runs until stopped (as opposed to an admin command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process on the configured stores; always migrates first.
    Standalone,
    /// The HTTP API.
    Api,
    /// Apply migrations, then exit.
    Migration,
    /// Consume the job queues.
    Worker,
    /// Fire the periodic tasks.
    Beat,
}

impl Role {
    /// The name used in logs and the banner.
    pub fn name(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Api => "api",
            Role::Migration => "migration",
            Role::Worker => "worker",
            Role::Beat => "beat",
        }
    }
}

/// What a role needs beyond the settings: where key values came from, for messages.
#[derive(Debug, Clone)]
pub struct RoleContext {
    pub settings: Arc<Settings>,
    pub port_source: Source,
    pub bind_source: Source,
    pub sources_summary: String,
}

/// Why a role could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("Redis: {0}")]
    Redis(String),
    #[error(
        "cannot listen on {addr}: {reason}. Change DIFY_PORT (set at {port_source}) or DIFY_BIND_ADDRESS (set at {bind_source})"
    )]
    Bind { addr: String, reason: String, port_source: Source, bind_source: Source },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
    #[error("worker: {0}")]
    Worker(String),
}

/// Connects to the database, retrying while it is unreachable (a container starting
/// next to its database) for up to `KILN_MIGRATION_WAIT_TIMEOUT`.
pub async fn connect_db(settings: &Settings) -> Result<Db, RoleError> {
    let timeout = settings.app.migration_wait_timeout.duration();
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match Db::connect(settings).await {
            Ok(db) => return Ok(db),
            Err(DbError::Connect { target, source }) if started.elapsed() < timeout => {
                attempt += 1;
                if attempt == 1 || attempt.is_multiple_of(10) {
                    tracing::warn!(database = %target, error = %source, waited_s = started.elapsed().as_secs(), "database not reachable yet; retrying");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Opens every shared service a serving role needs and checks the schema.
pub async fn prepare(settings: Arc<Settings>, migrate: bool) -> Result<SharedState, RoleError> {
    let db = connect_db(&settings).await?;
    migrations::ensure_schema(&db, &settings, migrate).await?;
    let storage = Storage::open(&settings)?;
    let secret_key = match &settings.app.secret_key {
        Some(key) => key.clone(),
        None => storage.load_or_create_secret_key().await?,
    };
    let redis = RedisProbe::from_settings(&settings).map_err(RoleError::Redis)?;
    let auth = auth_store(&settings, &db).await?;
    tracing::debug!(database = %describe(&settings), storage = storage.root(), "services ready");
    Ok(SharedState {
        settings,
        db,
        redis: Arc::new(redis),
        storage,
        secret_key: Arc::new(secret_key),
        auth,
        jobs: Arc::default(),
        runs_worker: false,
        api_keys: Arc::default(),
    })
}

/// Where console tokens and login counters live: Redis (Dify's keys) when REDIS_HOST is
/// set, so Dify-style deployments share them across replicas; otherwise the database.
pub async fn auth_store(settings: &Settings, db: &Db) -> Result<AuthStore, RoleError> {
    let Some(target) = RedisTarget::shared(settings).map_err(RoleError::Redis)? else {
        return Ok(AuthStore::Db(db.clone()));
    };
    let conn = RedisConn::connect(target, Duration::from_secs(5)).await.map_err(RoleError::Redis)?;
    Ok(AuthStore::Redis { conn, prefix: settings.redis.key_prefix.clone() })
}
