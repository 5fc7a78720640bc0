//! The metadata database: PostgreSQL or SQLite behind one handle.

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::config::{DbType, Settings};

/// Errors talking to the database, with the target named (never the password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot reach {target}: {source}")]
    Connect { target: String, source: sqlx::Error },
    #[error("cannot create the SQLite directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("invalid connection settings for {target}: {source}")]
    Options { target: String, source: sqlx::Error },
    #[error("query failed on {target}: {source}")]
    Query { target: String, source: sqlx::Error },
}

/// Connection options for either backend, derived from the settings.
#[derive(Debug, Clone)]
pub enum DbOptions {
    Postgres(PgConnectOptions),
    Sqlite(SqliteConnectOptions),
}

impl DbOptions {
    /// Builds options from `DB_*` / `KILN_SQLITE_PATH`.
    pub fn from_settings(settings: &Settings) -> Result<Self, DbError> {
        let db = &settings.database;
        match db.db_type {
            DbType::Postgresql => {
                let mut url = url::Url::parse("postgres://localhost/").map_err(|e| DbError::Options {
                    target: "PostgreSQL".into(),
                    source: sqlx::Error::Configuration(e.into()),
                })?;
                // Setting parts on a URL that has a host cannot fail, so the results are ignored.
                let _ = url.set_host(Some(&db.host));
                let _ = url.set_port(Some(db.port.0));
                let _ = url.set_username(&db.username);
                let password = db.password.expose_secret();
                if !password.is_empty() {
                    let _ = url.set_password(Some(password));
                }
                url.set_path(&db.database);
                let extras = db.extras.trim().trim_start_matches('?');
                if !extras.is_empty() {
                    url.set_query(Some(extras));
                }
                let options = PgConnectOptions::from_str(url.as_str())
                    .map_err(|source| DbError::Options { target: describe_pg(settings), source })?
                    .application_name("kiln");
                Ok(Self::Postgres(options))
            }
            DbType::Sqlite => {
                let path = settings.sqlite_path();
                Ok(Self::Sqlite(
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true),
                ))
            }
        }
    }
}

/// Names the database for messages: `PostgreSQL at host:port/db` or `SQLite file path`.
pub fn describe(settings: &Settings) -> String {
    match settings.database.db_type {
        DbType::Postgresql => describe_pg(settings),
        DbType::Sqlite => format!("SQLite file {}", settings.sqlite_path().display()),
    }
}

fn describe_pg(settings: &Settings) -> String {
    let db = &settings.database;
    format!("PostgreSQL at {}:{}/{} (DB_HOST, DB_PORT, DB_DATABASE)", db.host, db.port.0, db.database)
}

/// A pool on whichever backend is configured.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Db {
    /// Opens a pool and checks one connection.
    pub async fn connect(settings: &Settings) -> Result<Self, DbError> {
        let target = describe(settings);
        let db = &settings.database;
        match DbOptions::from_settings(settings)? {
            DbOptions::Postgres(options) => {
                let pool = PgPoolOptions::new()
                    .max_connections(db.pool_size.0)
                    .max_lifetime(Some(db.pool_recycle.duration()))
                    .acquire_timeout(db.pool_timeout.duration())
                    .test_before_acquire(db.pool_pre_ping)
                    .connect_with(options)
                    .await
                    .map_err(|source| DbError::Connect { target, source })?;
                Ok(Self::Postgres(pool))
            }
            DbOptions::Sqlite(options) => {
                ensure_parent_dir(&settings.sqlite_path())?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(db.pool_size.0.min(8))
                    .acquire_timeout(db.pool_timeout.duration())
                    // A connection to a local file cannot drop: a ping would only cost time.
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .map_err(|source| DbError::Connect { target, source })?;
                Ok(Self::Sqlite(pool))
            }
        }
    }

    /// Runs a trivial query, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        match self {
            Db::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
            Db::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop),
        }
    }

    /// Closes every connection, waiting for checked-out ones to return.
    pub async fn close(&self) {
        match self {
            Db::Postgres(pool) => pool.close().await,
            Db::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Creates the directory that will hold the SQLite file.
pub fn ensure_parent_dir(path: &std::path::Path) -> Result<(), DbError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent)
            .map_err(|source| DbError::CreateDir { path: parent.display().to_string(), source }),
        _ => Ok(()),
    }
}

/// Runs the same sqlx code on whichever pool `db` holds: `$body` is compiled once per
/// backend with `$pool` bound to that backend's concrete pool, so SQL written with `$n`
/// placeholders and portable syntax needs writing only once.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::infra::db::Db::Postgres($pool) => $body,
            $crate::infra::db::Db::Sqlite($pool) => $body,
        }
    };
}

/// `LIMIT … OFFSET …` of a 1-based page, written into the statement. Bound as parameters
/// they keep PostgreSQL from settling on a generic plan (an unknown LIMIT never wins), so it
/// plans the statement afresh on every execution: that halved the list endpoints' throughput.
/// Both are numbers, so writing them in is safe.
pub fn page_clause(page: u32, limit: u32) -> String {
    let offset = u64::from(page.saturating_sub(1)) * u64::from(limit);
    format!("LIMIT {limit} OFFSET {offset}")
}

/// `count` numbered placeholders from `$first` (`$3, $4, $5`), for IN lists written once for
/// both backends.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The name of the unique constraint or index a write violated, if that is why it failed.
pub fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let db_error = error.as_database_error()?;
    if !db_error.is_unique_violation() {
        return None;
    }
    // PostgreSQL names the constraint; SQLite only says "UNIQUE constraint failed: table.column".
    Some(db_error.constraint().map(str::to_owned).unwrap_or_else(|| db_error.message().to_owned()))
}
