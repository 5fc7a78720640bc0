//! Schema migrations: embedded per backend, applied under a lock, and checked by every role.
//!
//! PostgreSQL uses a session advisory lock on a direct connection (never through a pooler);
//! SQLite uses an OS file lock beside the database file. Both log while they wait, so a
//! replica stuck behind a long migration says so instead of hanging silently.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{Connection, PgConnection, SqliteConnection};
use tracing::{info, warn};

use super::db::{Db, DbError, DbOptions, describe, ensure_parent_dir};
use crate::config::{DbType, Settings};

/// sqlx's bookkeeping table.
const TABLE: &str = "_sqlx_migrations";
/// The PostgreSQL advisory lock key: "kilnmigr" in ASCII, distinct from sqlx's own key.
pub const PG_LOCK_KEY: i64 = 0x6b69_6c6e_6d69_6772;
/// How often a waiting process repeats that it is still waiting.
const WAIT_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The migrations compiled into this binary for a backend.
pub fn migrator(db_type: DbType) -> Migrator {
    let mut migrator = match db_type {
        DbType::Postgresql => sqlx::migrate!("migrations/postgres"),
        DbType::Sqlite => sqlx::migrate!("migrations/sqlite"),
    };
    // kiln holds its own lock (with waiting logs and a timeout) around the whole run, so
    // sqlx's blocking, silent lock would only be a second, redundant one.
    migrator.set_locking(false);
    migrator
}

/// One migration, as `20261123000001 (instance)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRef {
    pub version: i64,
    pub description: String,
}

impl std::fmt::Display for MigrationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.version, self.description)
    }
}

fn list(refs: &[MigrationRef]) -> String {
    refs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Why migrating or checking the schema failed; every message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "gave up after {waited:?} waiting for the migration lock on {target}; another migrator still holds it (see its logs), or raise KILN_MIGRATION_LOCK_TIMEOUT"
    )]
    LockTimeout { target: String, waited: Duration },
    #[error("cannot use the migration lock file {path}: {source}")]
    LockFile { path: PathBuf, source: std::io::Error },
    #[error("migration {migration} failed on {target}: {source}")]
    Failed { migration: MigrationRef, target: String, source: sqlx::Error },
    #[error("migration {migration} was changed after it was applied to {target}; restore the original file")]
    Modified { migration: MigrationRef, target: String },
    #[error(
        "migration {version} is partially applied on {target}; repair it by hand and delete its row from {TABLE}"
    )]
    Dirty { version: i64, target: String },
    #[error("{target} has migration(s) {versions:?} that this kiln {version} does not know: it was migrated by a newer kiln. Run that version or newer; an older binary must not write to a newer schema", version = crate::VERSION)]
    Ahead { target: String, versions: Vec<i64> },
    #[error("the schema of {target} is behind this kiln {version}: {count} pending migration(s): {pending}. Waited {waited:?}. Run `kiln upgrade-db` (or a MODE=migration job) first, or set MIGRATION_ENABLED=true", version = crate::VERSION, count = pending.len(), pending = list(pending))]
    Behind { target: String, pending: Vec<MigrationRef>, waited: Duration },
    #[error("cannot read the migration state of {target}: {source}")]
    Query { target: String, source: sqlx::Error },
}

/// An applied migration as recorded in the database.
#[derive(Debug, Clone)]
pub struct AppliedRow {
    pub version: i64,
    pub description: String,
    pub installed_on: String,
    pub success: bool,
    pub checksum: Vec<u8>,
}

/// The binary's migrations beside the database's record of them.
#[derive(Debug, Clone)]
pub struct Status {
    pub known: Vec<(MigrationRef, Vec<u8>)>,
    pub applied: Vec<AppliedRow>,
}

/// How the database schema compares with this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    Current,
    Behind(Vec<MigrationRef>),
    Ahead(Vec<i64>),
    Dirty(i64),
    Modified(MigrationRef),
}

impl Status {
    /// Classifies the schema; "ahead" wins over everything, as it forbids writing at all.
    pub fn state(&self) -> SchemaState {
        let unknown: Vec<i64> = self
            .applied
            .iter()
            .filter(|row| !self.known.iter().any(|(m, _)| m.version == row.version))
            .map(|row| row.version)
            .collect();
        if !unknown.is_empty() {
            return SchemaState::Ahead(unknown);
        }
        if let Some(row) = self.applied.iter().find(|row| !row.success) {
            return SchemaState::Dirty(row.version);
        }
        let mut pending = Vec::new();
        for (migration, checksum) in &self.known {
            match self.applied.iter().find(|row| row.version == migration.version) {
                Some(row) if &row.checksum != checksum => return SchemaState::Modified(migration.clone()),
                Some(_) => {}
                None => pending.push(migration.clone()),
            }
        }
        if pending.is_empty() { SchemaState::Current } else { SchemaState::Behind(pending) }
    }
}

fn known(db_type: DbType) -> Vec<(MigrationRef, Vec<u8>)> {
    migrator(db_type)
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| {
            (MigrationRef { version: m.version, description: m.description.to_string() }, m.checksum.to_vec())
        })
        .collect()
}

type Row = (i64, String, String, bool, Vec<u8>);

/// Reads the migration state through the pool without changing anything.
pub async fn status(db: &Db, settings: &Settings) -> Result<Status, MigrationError> {
    let target = describe(settings);
    let query_error = |source| MigrationError::Query { target: target.clone(), source };
    let select = "SELECT version, description, CAST(installed_on AS TEXT), success, checksum \
                  FROM _sqlx_migrations ORDER BY version";
    let rows: Vec<Row> = match db {
        Db::Postgres(pool) => {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(pool)
                .await
                .map_err(query_error)?;
            if exists {
                sqlx::query_as(select).fetch_all(pool).await.map_err(query_error)?
            } else {
                Vec::new()
            }
        }
        Db::Sqlite(pool) => {
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
            )
            .fetch_one(pool)
            .await
            .map_err(query_error)?;
            if exists {
                sqlx::query_as(select).fetch_all(pool).await.map_err(query_error)?
            } else {
                Vec::new()
            }
        }
    };
    let applied = rows
        .into_iter()
        .map(|(version, description, installed_on, success, checksum)| AppliedRow {
            version,
            description,
            installed_on,
            success,
            checksum,
        })
        .collect();
    Ok(Status { known: known(settings.database.db_type), applied })
}

/// Applies every pending migration under the migration lock; returns the ones applied here.
pub async fn run(settings: &Settings) -> Result<Vec<MigrationRef>, MigrationError> {
    let target = describe(settings);
    let timeout = settings.app.migration_lock_timeout.duration();
    let migrator = migrator(settings.database.db_type);
    match DbOptions::from_settings(settings)? {
        DbOptions::Postgres(options) => {
            // A direct connection: session advisory locks do not survive transaction poolers.
            let mut conn = PgConnection::connect_with(&options)
                .await
                .map_err(|source| DbError::Connect { target: target.clone(), source })?;
            lock_postgres(&mut conn, &target, timeout).await?;
            let result = apply(&migrator, &mut conn, &target).await;
            // Closing the session releases the lock even if the explicit unlock fails.
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(PG_LOCK_KEY).execute(&mut conn).await;
            let _ = conn.close().await;
            result
        }
        DbOptions::Sqlite(options) => {
            let path = settings.sqlite_path();
            ensure_parent_dir(&path)?;
            let _lock = lock_file(&lock_path(&path), &target, timeout).await?;
            let mut conn = SqliteConnection::connect_with(&options)
                .await
                .map_err(|source| DbError::Connect { target: target.clone(), source })?;
            let result = apply(&migrator, &mut conn, &target).await;
            let _ = conn.close().await;
            result
        }
    }
}

fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".migrate.lock");
    db_path.with_file_name(name)
}

async fn lock_postgres(
    conn: &mut PgConnection,
    target: &str,
    timeout: Duration,
) -> Result<(), MigrationError> {
    let started = Instant::now();
    let mut last_log: Option<Instant> = None;
    loop {
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(PG_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await
            .map_err(|source| MigrationError::Query { target: target.to_owned(), source })?;
        if acquired {
            return Ok(());
        }
        wait_step(&mut last_log, started, timeout, target).await?;
    }
}

/// Holds an exclusive OS lock on a file next to the SQLite database until dropped.
async fn lock_file(path: &Path, target: &str, timeout: Duration) -> Result<std::fs::File, MigrationError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| MigrationError::LockFile { path: path.to_owned(), source })?;
    let started = Instant::now();
    let mut last_log: Option<Instant> = None;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                wait_step(&mut last_log, started, timeout, target).await?
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(MigrationError::LockFile { path: path.to_owned(), source });
            }
        }
    }
}

async fn wait_step(
    last_log: &mut Option<Instant>,
    started: Instant,
    timeout: Duration,
    target: &str,
) -> Result<(), MigrationError> {
    if started.elapsed() >= timeout {
        return Err(MigrationError::LockTimeout { target: target.to_owned(), waited: started.elapsed() });
    }
    if last_log.is_none_or(|at| at.elapsed() >= WAIT_LOG_INTERVAL) {
        warn!(
            target_db = target,
            waited_s = started.elapsed().as_secs(),
            "waiting for the migration lock held by another process"
        );
        *last_log = Some(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    Ok(())
}

async fn apply<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
    target: &str,
) -> Result<Vec<MigrationRef>, MigrationError> {
    let describe_version = |version: i64| MigrationRef {
        version,
        description: migrator
            .iter()
            .find(|m| m.version == version)
            .map(|m| m.description.to_string())
            .unwrap_or_default(),
    };
    conn.ensure_migrations_table(TABLE).await.map_err(|e| map_error(e, target, &describe_version))?;
    let before: Vec<i64> = conn
        .list_applied_migrations(TABLE)
        .await
        .map_err(|e| map_error(e, target, &describe_version))?
        .iter()
        .map(|m| m.version)
        .collect();
    let pending: Vec<MigrationRef> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !before.contains(&m.version))
        .map(|m| describe_version(m.version))
        .collect();
    for migration in &pending {
        info!(migration = %migration, "applying migration");
    }
    migrator.run_direct(None, conn, false).await.map_err(|e| map_error(e, target, &describe_version))?;
    Ok(pending)
}

fn map_error(
    error: MigrateError,
    target: &str,
    describe_version: &dyn Fn(i64) -> MigrationRef,
) -> MigrationError {
    let target = target.to_owned();
    match error {
        MigrateError::ExecuteMigration(source, version) => {
            MigrationError::Failed { migration: describe_version(version), target, source }
        }
        MigrateError::VersionMismatch(version) => {
            MigrationError::Modified { migration: describe_version(version), target }
        }
        MigrateError::VersionMissing(version) => MigrationError::Ahead { target, versions: vec![version] },
        MigrateError::Dirty(version) => MigrationError::Dirty { version, target },
        MigrateError::Execute(source) => MigrationError::Query { target, source },
        other => MigrationError::Query { target, source: sqlx::Error::Migrate(Box::new(other)) },
    }
}

/// Makes sure the schema matches this binary before a role starts: migrates when
/// `migrate` is true, otherwise waits (bounded) for another process to do it.
pub async fn ensure_schema(db: &Db, settings: &Settings, migrate: bool) -> Result<(), MigrationError> {
    let target = describe(settings);
    if migrate {
        // Refuse before touching anything if a newer binary migrated this database.
        if let SchemaState::Ahead(versions) = status(db, settings).await?.state() {
            return Err(MigrationError::Ahead { target, versions });
        }
        let applied = run(settings).await?;
        info!(applied = applied.len(), "database schema is up to date");
        return Ok(());
    }
    let timeout = settings.app.migration_wait_timeout.duration();
    let started = Instant::now();
    let mut last_log: Option<Instant> = None;
    loop {
        match status(db, settings).await?.state() {
            SchemaState::Current => return Ok(()),
            SchemaState::Ahead(versions) => return Err(MigrationError::Ahead { target, versions }),
            SchemaState::Dirty(version) => return Err(MigrationError::Dirty { version, target }),
            SchemaState::Modified(migration) => return Err(MigrationError::Modified { migration, target }),
            SchemaState::Behind(pending) => {
                if started.elapsed() >= timeout {
                    return Err(MigrationError::Behind { target, pending, waited: started.elapsed() });
                }
                if last_log.is_none_or(|at| at.elapsed() >= WAIT_LOG_INTERVAL) {
                    warn!(
                        pending = %list(&pending),
                        waited_s = started.elapsed().as_secs(),
                        timeout_s = timeout.as_secs(),
                        "database schema is behind; waiting for `kiln upgrade-db` / MODE=migration (or set MIGRATION_ENABLED=true)"
                    );
                    last_log = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
