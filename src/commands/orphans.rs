//! `kiln clear-orphaned-file-records` and `kiln remove-orphaned-files-on-storage`: Dify's
//! storage clean-up commands, with `--dry-run` and a progress bar on a terminal.

use std::sync::Arc;

use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};

use super::admin::{AdminError, confirm, failed, with_context};
use crate::config::Settings;
use crate::datasets::orphans;

/// A bar on standard error when it is a terminal (indicatif draws nothing otherwise).
fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn listing(items: &[String]) -> String {
    let mut out: String = items.iter().take(20).map(|i| format!("  {i}\n")).collect();
    if items.len() > 20 {
        out.push_str(&format!("  … and {} more\n", items.len() - 20));
    }
    out
}

/// Deletes `upload_files` rows no document uses (older than `min_age`).
pub async fn clear_orphaned_file_records(
    settings: Arc<Settings>,
    force: bool,
    dry_run: bool,
    min_age: chrono::Duration,
) -> u8 {
    with_context(settings, |ctx| async move {
        let records = orphans::orphaned_records(&ctx.db, Utc::now() - min_age).await.map_err(failed)?;
        if records.is_empty() {
            return Ok("No orphaned file records found.".to_owned());
        }
        let names: Vec<String> = records.iter().map(|r| format!("{} {}", r.id, r.storage_key)).collect();
        let found = format!("Found {} orphaned file record(s):\n{}", records.len(), listing(&names));
        if dry_run {
            return Ok(format!("{found}Dry run: nothing was deleted."));
        }
        print!("{found}");
        confirm(force, "Delete these records?", "refusing to delete file records", "--force")?;
        let bar = progress(records.len(), "deleting records");
        for record in &records {
            orphans::delete_record(&ctx.db, record.id).await.map_err(failed)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(format!(
            "Deleted {} orphaned file record(s). Their stored objects are now orphans too: \
             run `kiln remove-orphaned-files-on-storage` to delete them.",
            records.len()
        ))
    })
    .await
}

/// Deletes stored objects under `upload_files/` that no record names (older than `min_age`).
pub async fn remove_orphaned_files_on_storage(
    settings: Arc<Settings>,
    force: bool,
    dry_run: bool,
    min_age: chrono::Duration,
) -> u8 {
    with_context(settings, |ctx| async move {
        let objects = orphans::orphaned_objects(&ctx.db, &ctx.storage, Utc::now() - min_age)
            .await
            .map_err(AdminError::Failed)?;
        if objects.is_empty() {
            return Ok("No orphaned files found on storage.".to_owned());
        }
        let found = format!("Found {} orphaned file(s) on storage:\n{}", objects.len(), listing(&objects));
        if dry_run {
            return Ok(format!("{found}Dry run: nothing was deleted."));
        }
        print!("{found}");
        confirm(force, "Delete these files?", "refusing to delete files", "--force")?;
        let bar = progress(objects.len(), "deleting files");
        for key in &objects {
            ctx.storage.operator().delete(key).await.map_err(|e| failed(format!("deleting {key}: {e}")))?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(format!("Deleted {} orphaned file(s) from storage.", objects.len()))
    })
    .await
}
