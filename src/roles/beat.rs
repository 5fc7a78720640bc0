//! `MODE=beat`: fire the periodic tasks.
//!
//! Any number of replicas may run. With Redis they compete for a lease (`SET NX PX`, renewed
//! by compare-and-set, released on exit) and only the holder pushes; every fire is pushed
//! with the idempotency key `(entry, scheduled time)`, so even two leaders during a handover
//! enqueue each tick once. Ticks missed while no beat ran are not replayed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{RoleContext, RoleError};
use crate::beat::{self, Entry};
use crate::config::Settings;
use crate::infra::queue::{JobSpec, JobStore, Pushed};
use crate::infra::shutdown::Shutdown;

const LEADER_KEY: &str = "beat:leader";
/// How long an idempotency key outlives its tick.
const FIRE_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// `kiln beat list`: each entry, its schedule, whether it is on, and its next fire.
pub fn list(settings: &Settings) -> u8 {
    match beat::schedule(settings) {
        Ok(entries) => {
            let now = Utc::now();
            println!(
                "{:<28} {:<34} {:<10} {:<16} {:<9} next fire (UTC)",
                "entry", "task", "queue", "schedule", "enabled"
            );
            for entry in &entries {
                let next = entry.next_after(now).map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
                let enabled = match (entry.enabled, entry.toggle) {
                    (true, _) => "yes".to_owned(),
                    (false, Some(toggle)) => format!("no ({toggle}=false)"),
                    (false, None) => "no".to_owned(),
                };
                println!(
                    "{:<28} {:<34} {:<10} {:<16} {:<9} {}",
                    entry.name,
                    entry.task,
                    entry.queue,
                    entry.expression,
                    enabled,
                    if entry.enabled { next } else { "-".into() }
                );
            }
            0
        }
        Err(error) => {
            eprintln!("kiln: {error}");
            2
        }
    }
}

/// Keeps (or waits for) leadership in the background; `leading` says whether we lead now.
fn keep_leadership(
    store: JobStore,
    me: String,
    lease: Duration,
    leading: Arc<AtomicBool>,
    took_over: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let JobStore::Redis(redis) = store else {
            // The embedded store serves one host's processes; idempotent pushes suffice.
            leading.store(true, Ordering::SeqCst);
            took_over.notify_one();
            return;
        };
        let mut tick = tokio::time::interval(lease / 3);
        loop {
            tick.tick().await;
            let now_leading = match redis.elect(LEADER_KEY, &me, lease).await {
                Ok(led) => led,
                Err(error) => {
                    tracing::warn!(%error, "cannot reach Redis for the beat lease; not firing until it answers");
                    false
                }
            };
            if now_leading != leading.swap(now_leading, Ordering::SeqCst) {
                if now_leading {
                    tracing::info!(beat = %me, "this beat now leads and fires the schedule");
                    took_over.notify_one();
                } else {
                    tracing::info!(beat = %me, "another beat leads; standing by");
                }
            }
        }
    })
}

/// Enqueues one tick, retrying while the store is unreachable (the idempotency key makes a
/// retry safe) until `give_up`, so a short outage delays a tick instead of losing it.
async fn fire(store: &JobStore, entry: &Entry, at: DateTime<Utc>, give_up: DateTime<Utc>) {
    let mut spec = JobSpec::new(entry.queue, entry.task, b"{}".to_vec());
    spec.idempotency = Some((format!("beat:{}:{}", entry.name, at.to_rfc3339()), FIRE_KEY_TTL));
    let mut delay = Duration::from_millis(200);
    loop {
        match store.push(std::slice::from_ref(&spec)).await {
            Ok(pushed) => {
                match pushed.first() {
                    Some(Pushed::New(id)) => {
                        tracing::info!(entry = entry.name, task = entry.task, scheduled = %at, job = %id, "fired")
                    }
                    Some(Pushed::Duplicate(id)) => {
                        tracing::info!(entry = entry.name, scheduled = %at, job = %id, "already fired by another beat")
                    }
                    None => {}
                }
                return;
            }
            Err(error) if Utc::now() < give_up => {
                tracing::warn!(entry = entry.name, scheduled = %at, %error, "could not enqueue the tick; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                tracing::error!(entry = entry.name, scheduled = %at, %error, "could not enqueue the tick; giving up on it");
                return;
            }
        }
    }
}

/// The beat role: opens the job store and runs the schedule until SIGTERM/SIGINT.
pub async fn run(ctx: RoleContext) -> Result<(), RoleError> {
    let store = super::worker::open_store(&ctx.settings).await?;
    run_with(ctx, store, Shutdown::listen()).await
}

/// Runs the schedule on `store` until `stop`, then releases leadership.
pub async fn run_with(ctx: RoleContext, store: JobStore, stop: Shutdown) -> Result<(), RoleError> {
    let settings = ctx.settings.clone();
    let entries: Vec<Entry> =
        beat::schedule(&settings).map_err(RoleError::Worker)?.into_iter().filter(|e| e.enabled).collect();
    let me = super::worker::new_worker_id();
    let lease = Duration::from_secs(u64::from(settings.beat.lease_seconds.0));
    tracing::info!(
        role = "beat",
        version = crate::VERSION,
        config = %ctx.sources_summary,
        beat = %me,
        store = store.describe(),
        entries = %entries.iter().map(|e| e.name).collect::<Vec<_>>().join(","),
        "kiln beat is scheduling"
    );
    let leading = Arc::new(AtomicBool::new(false));
    let took_over = Arc::new(tokio::sync::Notify::new());
    let keeper = keep_leadership(store.clone(), me.clone(), lease, leading.clone(), took_over.clone());
    let mut next: Vec<Option<DateTime<Utc>>> = entries.iter().map(|e| e.next_after(Utc::now())).collect();
    // Ticks that came while another beat led. A new leader fires the recent ones (the old
    // leader may have died before firing them; idempotency drops those it did fire), so a
    // handover loses no tick.
    let mut missed: Vec<(usize, DateTime<Utc>)> = Vec::new();
    let horizon = chrono::Duration::from_std(lease * 2).unwrap_or(chrono::Duration::seconds(30));
    loop {
        let Some((index, at)) =
            next.iter().enumerate().filter_map(|(i, t)| t.map(|t| (i, t))).min_by_key(|(_, t)| *t)
        else {
            tracing::warn!("no enabled beat entries; waiting for shutdown");
            stop.clone().wait().await;
            break;
        };
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = took_over.notified() => {
                for (missed_index, missed_at) in std::mem::take(&mut missed) {
                    if Utc::now() - missed_at <= horizon {
                        fire(&store, &entries[missed_index], missed_at, at).await;
                    }
                }
                continue;
            }
            () = stop.clone().wait() => break,
        }
        if leading.load(Ordering::SeqCst) {
            let give_up = entries[index].next_after(at).unwrap_or(at + horizon);
            fire(&store, &entries[index], at, give_up).await;
        } else {
            missed.retain(|(_, t)| Utc::now() - *t <= horizon);
            missed.push((index, at));
        }
        // Schedule from now: ticks missed while paused are not replayed in bulk.
        next[index] = entries[index].next_after(at.max(Utc::now() - chrono::Duration::milliseconds(1)));
    }
    keeper.abort();
    if let JobStore::Redis(redis) = &store {
        let _ = redis.resign(LEADER_KEY, &me).await;
    }
    tracing::info!(role = "beat", "stopped");
    Ok(())
}
