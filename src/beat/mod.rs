//! The beat schedule: periodic tasks, their cron expressions and toggles, and the next fire
//! times. Firing (leadership, idempotent pushes) is the beat role's job.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

use crate::config::Settings;
use crate::tasks;

/// One periodic task.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Stable name, part of each fire's idempotency key.
    pub name: &'static str,
    pub task: &'static str,
    pub queue: &'static str,
    /// The expression as configured.
    pub expression: String,
    pub cron: Cron,
    pub enabled: bool,
    /// The setting that turns it on or off, if any.
    pub toggle: Option<&'static str>,
}

impl Entry {
    /// The first fire strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// Parses a 5- or 6-field (with seconds) cron expression.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    CronParser::builder().seconds(Seconds::Optional).build().parse(expression).map_err(|e| e.to_string())
}

/// The schedule the settings describe. Only tasks whose domain exists are scheduled; the
/// rest of Dify's entries arrive with their features.
pub fn schedule(settings: &Settings) -> Result<Vec<Entry>, String> {
    let beat = &settings.beat;
    let monitor_every = beat.queue_monitor_interval.0;
    let monitor_cron = if !beat.queue_monitor_cron.trim().is_empty() {
        beat.queue_monitor_cron.clone()
    } else if monitor_every < 60 {
        format!("*/{monitor_every} * * * *")
    } else {
        "0 * * * *".to_owned()
    };
    let daily = format!("0 3 */{} * *", beat.scheduler_days.0);
    let (unused_cron, unused_key) = if beat.clean_unused_datasets_cron.trim().is_empty() {
        (daily, "CELERY_BEAT_SCHEDULER_TIME")
    } else {
        (beat.clean_unused_datasets_cron.clone(), "KILN_BEAT_CLEAN_UNUSED_DATASETS_CRON")
    };
    let entry = |name, task, queue, expression: String, toggle: Option<(&'static str, bool)>, key: &str| {
        let cron = parse_cron(&expression).map_err(|e| format!("{key}={expression:?}: {e}"))?;
        Ok::<Entry, String>(Entry {
            name,
            task,
            queue,
            expression,
            cron,
            enabled: toggle.is_none_or(|(_, on)| on),
            toggle: toggle.map(|(key, _)| key),
        })
    };
    Ok(vec![
        entry(
            "clean_expired_auth_records",
            tasks::maintenance::CLEAN_AUTH,
            "retention",
            beat.clean_auth_cron.clone(),
            None,
            "KILN_BEAT_CLEAN_AUTH_CRON",
        )?,
        entry(
            "trim_finished_jobs",
            tasks::maintenance::TRIM_JOBS,
            "retention",
            beat.trim_jobs_cron.clone(),
            None,
            "KILN_BEAT_TRIM_JOBS_CRON",
        )?,
        entry(
            "clean_unused_datasets_task",
            crate::datasets::unused::TASK,
            "dataset",
            unused_cron,
            Some(("ENABLE_CLEAN_UNUSED_DATASETS_TASK", beat.clean_unused_datasets_enabled)),
            unused_key,
        )?,
        entry(
            "clean_orphaned_files_task",
            crate::datasets::orphans::SWEEP_TASK,
            "dataset",
            beat.orphan_sweep_cron.clone(),
            Some(("KILN_BEAT_ORPHAN_SWEEP_ENABLED", beat.orphan_sweep_enabled)),
            "KILN_BEAT_ORPHAN_SWEEP_CRON",
        )?,
        entry(
            "datasets-queue-monitor",
            tasks::maintenance::QUEUE_MONITOR,
            "monitor",
            monitor_cron,
            Some(("ENABLE_DATASETS_QUEUE_MONITOR", beat.queue_monitor_enabled)),
            if beat.queue_monitor_cron.trim().is_empty() {
                "QUEUE_MONITOR_INTERVAL"
            } else {
                "KILN_BEAT_QUEUE_MONITOR_CRON"
            },
        )?,
    ])
}
