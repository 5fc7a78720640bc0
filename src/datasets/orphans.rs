//! Finding what uploads leave behind: `upload_files` rows no document uses, and stored
//! objects under `upload_files/` no row knows. Callers skip anything younger than a grace
//! period (an hour by default), so an upload between storing its file and recording its
//! document is never taken for an orphan.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use uuid::Uuid;

use super::documents_repo::{self as repo, UploadFile};
use crate::accounts::repo::RepoError;
use crate::infra::db::Db;
use crate::infra::storage::Storage;
use crate::on_db;

/// `upload_files` rows that no document references, older than `before`.
pub async fn orphaned_records(db: &Db, before: DateTime<Utc>) -> Result<Vec<UploadFile>, RepoError> {
    let sql = "SELECT id, tenant_id, storage_key, name, size, extension, mime_type, created_by, created_at \
               FROM upload_files f WHERE f.created_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.upload_file_id = f.id) ORDER BY f.created_at";
    Ok(on_db!(db, pool => sqlx::query_as::<_, UploadFile>(sql).bind(before).fetch_all(pool).await?))
}

/// Deletes a record (its stored object is left for `remove-orphaned-files-on-storage`,
/// as in Dify).
pub async fn delete_record(db: &Db, id: Uuid) -> Result<(), RepoError> {
    repo::delete_upload_file(db, id).await
}

/// Objects under `upload_files/` that no `upload_files` row names, last modified before
/// `before` (objects without a modification time are left alone).
pub async fn orphaned_objects(
    db: &Db,
    storage: &Storage,
    before: DateTime<Utc>,
) -> Result<Vec<String>, String> {
    let sql = "SELECT storage_key FROM upload_files";
    let known: std::collections::HashSet<String> =
        on_db!(db, pool => sqlx::query_scalar::<_, String>(sql).fetch_all(pool).await)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
    let mut lister = storage
        .operator()
        .lister_with("upload_files/")
        .recursive(true)
        .await
        .map_err(|e| format!("listing upload_files/: {e}"))?;
    let mut orphans = Vec::new();
    while let Some(entry) = lister.try_next().await.map_err(|e| format!("listing upload_files/: {e}"))? {
        let path = entry.path().to_owned();
        if path.ends_with('/') || known.contains(&path) {
            continue;
        }
        let modified = match entry.metadata().last_modified() {
            Some(time) => Some(time),
            None => storage.operator().stat(&path).await.ok().and_then(|m| m.last_modified()),
        };
        let old = modified.is_some_and(|time| {
            DateTime::<Utc>::from_timestamp(time.into_inner().as_second(), 0).is_some_and(|t| t < before)
        });
        if old {
            orphans.push(path);
        }
    }
    Ok(orphans)
}

/// The beat task that sweeps orphans, on the `dataset` queue.
pub const SWEEP_TASK: &str = "clean_orphaned_files_task";

/// What one sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub records: usize,
    pub objects: usize,
}

/// Removes orphaned records with their stored objects, then stored objects no record names,
/// all older than `before`. A failure stops the sweep; the next run carries on.
pub async fn sweep(db: &Db, storage: &Storage, before: DateTime<Utc>) -> Result<Swept, String> {
    let mut swept = Swept::default();
    let records = orphaned_records(db, before).await.map_err(|e| e.to_string())?;
    let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
    swept.records = super::cleanup::remove_files(db, storage, &ids).await?;
    for key in orphaned_objects(db, storage, before).await? {
        storage.operator().delete(&key).await.map_err(|error| format!("deleting {key}: {error}"))?;
        swept.objects += 1;
    }
    Ok(swept)
}

/// The beat task: sweeps what is older than KILN_ORPHAN_SWEEP_MIN_AGE_HOURS.
pub async fn sweep_orphans(
    services: std::sync::Arc<crate::tasks::TaskServices>,
    _: crate::tasks::maintenance::NoArgs,
    ctx: crate::tasks::TaskContext,
) -> Result<(), crate::tasks::TaskError> {
    let hours = i64::from(services.settings.beat.orphan_sweep_min_age_hours.0);
    let before = Utc::now() - chrono::Duration::hours(hours);
    let swept =
        sweep(&services.db, &services.storage, before).await.map_err(crate::tasks::TaskError::Transient)?;
    tracing::info!(records = swept.records, objects = swept.objects, job = %ctx.job_id, "swept orphaned upload files");
    Ok(())
}
