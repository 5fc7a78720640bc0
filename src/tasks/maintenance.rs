//! Housekeeping tasks the beat schedules: they do real work on what exists now.

use std::sync::Arc;

use serde::Deserialize;

use super::{TaskContext, TaskError, TaskServices};

pub const CLEAN_AUTH: &str = "kiln.clean_expired_auth_records";
pub const TRIM_JOBS: &str = "kiln.trim_finished_jobs";
/// Dify's task name.
pub const QUEUE_MONITOR: &str = "queue_monitor_task";

/// These tasks take no arguments (an empty JSON object).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

fn transient(error: impl std::fmt::Display) -> TaskError {
    TaskError::Transient(error.to_string())
}

/// Deletes expired refresh tokens and login lockout counters from the database.
pub async fn clean_expired_auth_records(
    services: Arc<TaskServices>,
    _: NoArgs,
    _: TaskContext,
) -> Result<(), TaskError> {
    let deleted = crate::accounts::repo::delete_expired_auth_records(&services.db, chrono::Utc::now())
        .await
        .map_err(transient)?;
    tracing::info!(deleted, "deleted expired refresh tokens and login lockout counters");
    Ok(())
}

/// Trims finished jobs of every queue by age and count.
pub async fn trim_finished_jobs(
    services: Arc<TaskServices>,
    _: NoArgs,
    _: TaskContext,
) -> Result<(), TaskError> {
    let queues: Vec<String> = crate::infra::queue::DIFY_QUEUES.iter().map(|q| q.to_string()).collect();
    let deleted = services.store.trim(&queues, services.retention).await.map_err(transient)?;
    tracing::info!(deleted, "trimmed finished jobs");
    Ok(())
}

/// Dify's queue monitor: warns when the dataset queue's backlog reaches the threshold.
pub async fn queue_monitor(services: Arc<TaskServices>, _: NoArgs, _: TaskContext) -> Result<(), TaskError> {
    let counts = services.store.counts(&["dataset".to_owned()]).await.map_err(transient)?;
    let ready = counts.first().map(|c| c.ready).unwrap_or(0);
    let threshold = u64::from(services.settings.beat.queue_monitor_threshold.0);
    if ready >= threshold {
        tracing::warn!(
            queue = "dataset",
            ready,
            threshold,
            "queue backlog at or above QUEUE_MONITOR_THRESHOLD"
        );
        let recipients: Vec<&str> = services
            .settings
            .beat
            .queue_monitor_alert_emails
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        if let Some(mailer) = &services.mailer {
            let subject = format!("Alert: the dataset queue has {ready} jobs waiting");
            let text = format!(
                "The dataset queue has {ready} ready jobs (threshold {threshold}). Check that workers consume it \
                 (`kiln queue stats`)."
            );
            for to in &recipients {
                // A failed alert is logged, not retried: the next check mails again.
                if let Err(error) = mailer.send(to, &subject, text.clone(), format!("<p>{text}</p>")).await {
                    tracing::warn!(%error, to, "could not mail the queue alert");
                }
            }
        } else if !recipients.is_empty() {
            tracing::warn!("QUEUE_MONITOR_ALERT_EMAILS is set but mail is not configured (MAIL_TYPE)");
        }
    } else {
        tracing::info!(queue = "dataset", ready, threshold, "queue backlog below the threshold");
    }
    Ok(())
}
