//! Migrations under concurrency and schema checks, with the real binary.

mod common;

use std::time::Duration;

use common::{KilnProcess, PgDatabase, kiln, workdir};

/// How many migrations this build ships (one file per migration, same list per backend).
fn migration_count(backend: &str) -> i64 {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    std::fs::read_dir(dir)
        .expect("migrations dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql")))
        .count() as i64
}

#[test]
fn both_backends_ship_the_same_migration_versions() {
    let versions = |backend: &str| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| {
                e.expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .split('_')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(versions("postgres"), versions("sqlite"));
    assert!(migration_count("postgres") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_migrators_at_once_on_postgres_apply_everything_once() {
    let db = PgDatabase::create().await;
    let dir = workdir();
    let mut processes: Vec<KilnProcess> = (0..4)
        .map(|_| {
            let mut command = kiln(dir.path());
            command.envs(db.env()).env("MODE", "migration");
            KilnProcess::spawn(command)
        })
        .collect();
    for process in &mut processes {
        let status = process.wait_exit(Duration::from_secs(60));
        assert!(status.success(), "migrator failed ({status}):\n{}", process.log());
    }
    let pool = db.pool().await;
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .expect("query");
    assert_eq!(applied.len() as i64, migration_count("postgres"));
    assert!(applied.iter().all(|(_, success)| *success));
    let instances: i64 =
        sqlx::query_scalar("SELECT count(*) FROM kiln_instance").fetch_one(&pool).await.expect("count");
    assert_eq!(instances, 1, "the first migration ran exactly once");
    let logs: String = processes.iter().map(KilnProcess::log).collect();
    assert_eq!(logs.matches("applying migration").count() as i64, migration_count("postgres"), "{logs}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrators_at_once_on_one_sqlite_file() {
    let dir = workdir();
    let mut processes: Vec<KilnProcess> = (0..2)
        .map(|_| {
            let mut command = kiln(dir.path());
            command.arg("upgrade-db");
            KilnProcess::spawn(command)
        })
        .collect();
    for process in &mut processes {
        let status = process.wait_exit(Duration::from_secs(60));
        assert!(status.success(), "migrator failed ({status}):\n{}", process.log());
    }
    let url = format!("sqlite://{}", dir.path().join("storage/kiln.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open sqlite");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(applied, migration_count("sqlite"));
    let instances: i64 =
        sqlx::query_scalar("SELECT count(*) FROM kiln_instance").fetch_one(&pool).await.expect("count");
    assert_eq!(instances, 1);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_on_an_unmigrated_database_waits_then_names_the_fix() {
    let db = PgDatabase::create().await;
    let dir = workdir();
    let mut command = kiln(dir.path());
    command.arg("api").envs(db.env()).env("KILN_MIGRATION_WAIT_TIMEOUT", "2");
    let mut process = KilnProcess::spawn(command);
    process.wait_for_log("database schema is behind", Duration::from_secs(30));
    let status = process.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", process.log());
    let log = process.log();
    assert!(log.contains("kiln upgrade-db") && log.contains("MIGRATION_ENABLED=true"), "{log}");
    assert!(log.contains("pending migration(s): 20261123000001 (instance)"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_role_starts_once_another_process_migrates() {
    let db = PgDatabase::create().await;
    let dir = workdir();
    let mut command = kiln(dir.path());
    command.arg("api").envs(db.env()).env("KILN_MIGRATION_WAIT_TIMEOUT", "60");
    let mut api = KilnProcess::spawn(command);
    api.wait_for_log("database schema is behind", Duration::from_secs(30));
    let status = kiln(dir.path()).arg("upgrade-db").envs(db.env()).status().expect("run upgrade-db");
    assert!(status.success());
    let url = api.wait_until_serving();
    assert_eq!(common::get(format!("{url}/ready")).await.expect("ready").status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_binary_is_refused() {
    let db = PgDatabase::create().await;
    let dir = workdir();
    let status = kiln(dir.path()).arg("migration").envs(db.env()).status().expect("migrate");
    assert!(status.success());
    let pool = db.pool().await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (29991231000000, 'from the future', TRUE, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .expect("insert future migration");
    pool.close().await;

    for migration_enabled in ["false", "true"] {
        let output = kiln(dir.path())
            .arg("api")
            .envs(db.env())
            .env("MIGRATION_ENABLED", migration_enabled)
            .output()
            .expect("run api");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("29991231000000") && stderr.contains("does not know"), "{stderr}");
    }
    let status = kiln(dir.path()).args(["migrate", "status"]).envs(db.env()).output().expect("status");
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stdout).contains("unknown  29991231000000 (from the future)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_is_named() {
    let db = PgDatabase::create().await;
    let pool = db.pool().await;
    // A table in the way makes the first migration fail.
    sqlx::query("CREATE TABLE kiln_instance (x INT)").execute(&pool).await.expect("create blocker");
    pool.close().await;
    let dir = workdir();
    let output = kiln(dir.path()).arg("migration").envs(db.env()).output().expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("migration 20261123000001 (instance) failed"), "{stderr}");
}

#[test]
fn migrate_status_reports_pending_then_current() {
    let dir = workdir();
    let pending = kiln(dir.path()).args(["migrate", "status"]).output().expect("status");
    assert_eq!(pending.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&pending.stdout).contains("pending  20261123000001 (instance)"));
    assert!(kiln(dir.path()).arg("upgrade-db").status().expect("migrate").success());
    let current = kiln(dir.path()).args(["migrate", "status"]).output().expect("status");
    assert_eq!(current.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&current.stdout).contains("schema is up to date"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrator_logs_while_another_holds_the_postgres_lock() {
    use sqlx::Connection;
    let db = PgDatabase::create().await;
    let mut holder = sqlx::PgConnection::connect(&db.url()).await.expect("connect");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(kiln::infra::migrations::PG_LOCK_KEY)
        .execute(&mut holder)
        .await
        .expect("take the lock");
    let dir = workdir();
    let mut command = kiln(dir.path());
    command.arg("upgrade-db").envs(db.env()).env("KILN_MIGRATION_LOCK_TIMEOUT", "60");
    let mut migrator = KilnProcess::spawn(command);
    migrator.wait_for_log("waiting for the migration lock", Duration::from_secs(30));
    // Still blocked: nothing applied while the other holder lives.
    let pool = db.pool().await;
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&pool)
        .await
        .expect("query");
    assert!(table.is_none(), "migrated while the lock was held");
    holder.close().await.expect("release by closing the session");
    let status = migrator.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", migrator.log());
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.expect("count");
    assert_eq!(applied, migration_count("postgres"));
    pool.close().await;
}

#[test]
fn a_sqlite_migrator_gives_up_after_the_lock_timeout_and_says_why() {
    let dir = workdir();
    std::fs::create_dir_all(dir.path().join("storage")).expect("storage dir");
    let lock = std::fs::File::create(dir.path().join("storage/kiln.db.migrate.lock")).expect("lock file");
    lock.lock().expect("hold the lock");
    let output = kiln(dir.path())
        .arg("upgrade-db")
        .env("KILN_MIGRATION_LOCK_TIMEOUT", "1")
        .output()
        .expect("run upgrade-db");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("waiting for the migration lock"), "{stderr}");
    assert!(stderr.contains("KILN_MIGRATION_LOCK_TIMEOUT"), "{stderr}");
    lock.unlock().expect("release");
    assert!(kiln(dir.path()).arg("upgrade-db").status().expect("run").success());
}
