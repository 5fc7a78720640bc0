//! `MODE=migration` / `kiln upgrade-db`: apply pending migrations under the lock, then exit.

use crate::config::Settings;
use crate::infra::db::describe;
use crate::infra::migrations;

use super::RoleError;

/// Applies every pending migration; safe to run from many replicas at once.
pub async fn run(settings: &Settings) -> Result<(), RoleError> {
    let target = describe(settings);
    tracing::info!(database = %target, "starting database migration");
    let applied = migrations::run(settings).await?;
    if applied.is_empty() {
        tracing::info!(database = %target, "database schema already up to date; nothing to apply");
    } else {
        tracing::info!(database = %target, applied = applied.len(), "database migration successful");
    }
    Ok(())
}
