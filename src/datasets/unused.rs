//! Dify's `clean_unused_datasets_task`: datasets that got no new document and no query for
//! PLAN_SANDBOX_CLEAN_DAY_SETTING days have their documents disabled, so they leave
//! retrieval until someone enables them again (their text and index are kept).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::accounts::repo::RepoError;
use crate::infra::db::Db;
use crate::on_db;
use crate::tasks::maintenance::NoArgs;
use crate::tasks::{TaskContext, TaskError, TaskServices};

/// The task name, on the `dataset` queue.
pub const TASK: &str = "clean_unused_datasets_task";

/// Records a retrieval, for the clean-up to see the dataset is used.
pub async fn record_query(db: &Db, dataset: Uuid, content: &str, by: Uuid) -> Result<(), RepoError> {
    let sql = "INSERT INTO dataset_queries (id, dataset_id, content, source, created_by, created_at) \
               VALUES ($1, $2, $3, 'hit_testing', $4, $5)";
    on_db!(db, pool => sqlx::query(sql)
        .bind(Uuid::new_v4()).bind(dataset).bind(content).bind(by).bind(Utc::now())
        .execute(pool).await.map(drop)?);
    Ok(())
}

/// Disables the enabled documents of every dataset created before `cutoff` that has had no
/// document created or updated and no query since; returns (datasets, documents) touched.
pub async fn disable_unused(
    db: &Db,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(u64, u64), RepoError> {
    let unused = "SELECT d.id FROM datasets d WHERE d.created_at < $1 \
                  AND NOT EXISTS (SELECT 1 FROM documents x WHERE x.dataset_id = d.id AND x.updated_at >= $1) \
                  AND NOT EXISTS (SELECT 1 FROM dataset_queries q WHERE q.dataset_id = d.id AND q.created_at >= $1) \
                  AND EXISTS (SELECT 1 FROM documents x WHERE x.dataset_id = d.id AND x.enabled)";
    let ids: Vec<Uuid> = on_db!(db, pool => sqlx::query_scalar(unused).bind(cutoff).fetch_all(pool).await?);
    let mut documents = 0;
    for id in &ids {
        // updated_at is left alone: disabling is not a use.
        let sql = "UPDATE documents SET enabled = FALSE, disabled_at = $1 WHERE dataset_id = $2 AND enabled";
        documents +=
            on_db!(db, pool => sqlx::query(sql).bind(now).bind(id).execute(pool).await?.rows_affected());
    }
    Ok((ids.len() as u64, documents))
}

/// The beat task.
pub async fn clean_unused_datasets(
    services: Arc<TaskServices>,
    _: NoArgs,
    ctx: TaskContext,
) -> Result<(), TaskError> {
    let now = Utc::now();
    let cutoff = now - Duration::days(i64::from(services.settings.beat.unused_dataset_days));
    let (datasets, documents) =
        disable_unused(&services.db, cutoff, now).await.map_err(|e| TaskError::Transient(e.to_string()))?;
    tracing::info!(datasets, documents, job = %ctx.job_id, "disabled the documents of unused datasets");
    Ok(())
}
