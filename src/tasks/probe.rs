//! `kiln.probe`: a diagnostic task for checking a deployment end to end (push one, see it
//! run, retry or die) and for measuring the worker itself. It touches no data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{TaskContext, TaskError};

/// The task name.
pub const NAME: &str = "kiln.probe";

/// What the probe should do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeArgs {
    /// Take this long.
    pub sleep_ms: u64,
    /// Fail (retryably) on every attempt before this one.
    pub succeed_on_attempt: u32,
    /// Panic instead of returning.
    pub panic: bool,
    /// Log each completion at info level (for tests that count executions).
    pub log: bool,
}

/// Runs the probe.
pub async fn run(args: ProbeArgs, ctx: TaskContext) -> Result<(), TaskError> {
    if args.sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(args.sleep_ms)).await;
    }
    if args.panic {
        panic!("kiln.probe asked to panic (job {})", ctx.job_id);
    }
    if ctx.attempt < args.succeed_on_attempt {
        return Err(TaskError::Transient(format!(
            "kiln.probe failing attempt {} of {} on purpose",
            ctx.attempt, ctx.max_attempts
        )));
    }
    if args.log {
        tracing::info!(job = %ctx.job_id, attempt = ctx.attempt, "probe job finished");
    }
    Ok(())
}
