//! Removing what a deleted dataset leaves behind: its stored files. The rows (documents,
//! segments, keyword index) go with the dataset in the same statement (foreign keys); the
//! files are deleted by a `dataset` queue task, so a slow or failing storage never holds up
//! the API and is retried.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::documents_repo as repo;
use crate::infra::db::Db;
use crate::infra::storage::Storage;
use crate::tasks::{TaskContext, TaskError, TaskServices};

/// The task name, on the `dataset` queue.
pub const TASK: &str = "clean_dataset_task";

/// The task's arguments: the upload records whose files are to go.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanArgs {
    pub dataset_id: Uuid,
    pub upload_file_ids: Vec<Uuid>,
}

/// Deletes the stored files and their records (idempotent: gone files are skipped).
pub async fn remove_files(db: &Db, storage: &Storage, ids: &[Uuid]) -> Result<usize, String> {
    let mut removed = 0;
    for id in ids {
        let Some(file) = repo::find_upload_file(db, *id).await.map_err(|e| e.to_string())? else {
            continue;
        };
        // opendal's delete of a missing object succeeds, so a re-run after a crash goes on.
        storage
            .operator()
            .delete(&file.storage_key)
            .await
            .map_err(|error| format!("deleting {}: {error}", file.storage_key))?;
        repo::delete_upload_file(db, *id).await.map_err(|e| e.to_string())?;
        removed += 1;
    }
    Ok(removed)
}

/// The queue task.
pub async fn clean_dataset(
    services: Arc<TaskServices>,
    args: CleanArgs,
    ctx: TaskContext,
) -> Result<(), TaskError> {
    let removed = remove_files(&services.db, &services.storage, &args.upload_file_ids)
        .await
        .map_err(TaskError::Transient)?;
    tracing::info!(dataset = %args.dataset_id, files = removed, job = %ctx.job_id, "deleted dataset's stored files");
    Ok(())
}
