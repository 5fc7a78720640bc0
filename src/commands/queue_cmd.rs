//! `kiln queue stats | list | inspect | retry | purge`: look into and repair the job store.

use std::io::{BufRead, IsTerminal, Write};

use crate::config::Settings;
use crate::infra::queue::{DIFY_QUEUES, JobStore};

use super::admin::EXIT_USAGE;

/// What `kiln queue` was asked to do.
#[derive(Debug, Clone)]
pub enum QueueAction {
    Stats,
    List {
        queue: String,
        state: String,
        limit: usize,
    },
    Inspect {
        id: String,
    },
    Retry {
        id: Option<String>,
        all_dead: bool,
        queue: Option<String>,
    },
    Purge {
        queue: String,
        state: String,
        yes: bool,
    },
    /// Push a `kiln.probe` job and wait for a worker to finish it.
    Probe {
        queue: String,
        timeout: std::time::Duration,
    },
}

const STATES: &[&str] = &["ready", "delayed", "running", "done", "dead"];

fn usage(message: String) -> u8 {
    eprintln!("{message}");
    EXIT_USAGE
}

fn check_queue(queue: &str) -> Result<(), String> {
    if DIFY_QUEUES.contains(&queue) {
        Ok(())
    } else {
        Err(format!("unknown queue {queue:?}; valid queues: {}", DIFY_QUEUES.join(", ")))
    }
}

fn check_state(state: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&state) {
        Ok(())
    } else {
        Err(format!("unknown state {state:?}; valid states: {}", allowed.join(", ")))
    }
}

/// Runs the action; 0 on success, 1 on a store failure, 2 on bad arguments.
pub async fn run(settings: &Settings, action: QueueAction) -> u8 {
    let checked = match &action {
        QueueAction::List { queue, state, .. } => check_queue(queue).and_then(|_| check_state(state, STATES)),
        QueueAction::Purge { queue, state, .. } => {
            check_queue(queue).and_then(|_| check_state(state, &["ready", "delayed", "done", "dead"]))
        }
        QueueAction::Retry { id: None, all_dead: false, .. } => Err("give a job id or --all-dead".to_owned()),
        QueueAction::Retry { queue: Some(queue), .. } => check_queue(queue),
        QueueAction::Probe { queue, .. } => check_queue(queue),
        _ => Ok(()),
    };
    if let Err(message) = checked {
        return usage(message);
    }
    if let QueueAction::Purge { queue, state, yes: false } = &action {
        if !std::io::stdin().is_terminal() {
            return usage("refusing to purge without confirmation: pass --yes".into());
        }
        print!("Delete every {state} job of queue {queue}? This cannot be undone. [y/N]: ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("Aborted.");
            return 1;
        }
    }
    let store = match JobStore::from_settings(settings).await {
        Ok(store) => store,
        Err(error) => {
            eprintln!("cannot open the job store: {error}");
            return 1;
        }
    };
    match execute(settings, &store, action).await {
        Ok(output) => {
            println!("{output}");
            0
        }
        Err(error) => {
            eprintln!("{error}");
            1
        }
    }
}

async fn execute(settings: &Settings, store: &JobStore, action: QueueAction) -> Result<String, String> {
    let err = |e: crate::infra::queue::StoreError| e.to_string();
    match action {
        QueueAction::Stats => {
            let counts = store.counts(&settings.worker_queues()).await.map_err(err)?;
            let mut out = format!(
                "job store: {}\n{:<30} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                store.describe(),
                "queue",
                "ready",
                "delayed",
                "running",
                "done",
                "dead"
            );
            for c in counts {
                out.push_str(&format!(
                    "{:<30} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
                    c.queue, c.ready, c.delayed, c.running, c.done, c.dead
                ));
            }
            Ok(out.trim_end().to_owned())
        }
        QueueAction::List { queue, state, limit } => {
            let ids = store.list(&queue, &state, limit).await.map_err(err)?;
            let mut out = String::new();
            for id in &ids {
                match store.inspect(id).await.map_err(err)? {
                    Some(job) => out.push_str(&format!(
                        "{}  {}  attempts {}/{}{}\n",
                        job.id,
                        job.task,
                        job.attempts,
                        job.max_attempts,
                        job.last_error.map(|e| format!("  last error: {e}")).unwrap_or_default()
                    )),
                    None => out.push_str(&format!("{id}  (gone)\n")),
                }
            }
            out.push_str(&format!("{} {state} job(s) shown in {queue}", ids.len()));
            Ok(out)
        }
        QueueAction::Inspect { id } => {
            let job = store.inspect(&id).await.map_err(err)?.ok_or_else(|| format!("no job {id}"))?;
            Ok(format!(
                "id:           {}\nqueue:        {}\ntask:         {}\nstatus:       {}\nattempts:     {}/{}\nowner:        {}\nlast error:   {}\npayload:      {}",
                job.id,
                job.queue,
                job.task,
                job.status,
                job.attempts,
                job.max_attempts,
                job.owner.unwrap_or_else(|| "-".into()),
                job.last_error.unwrap_or_else(|| "-".into()),
                job.payload
                    .map(|p| String::from_utf8_lossy(&p).into_owned())
                    .unwrap_or_else(|| "(dropped after completion)".into()),
            ))
        }
        QueueAction::Retry { id: Some(id), all_dead: false, .. } => {
            match store.retry_dead(std::slice::from_ref(&id)).await.map_err(err)? {
                0 => Err(format!("job {id} is not dead (or does not exist); nothing retried")),
                _ => Ok(format!("job {id} queued again with fresh attempts")),
            }
        }
        QueueAction::Retry { queue, .. } => {
            let queues = match queue {
                Some(queue) => vec![queue],
                None => settings.worker_queues(),
            };
            // Take the dead ids once: jobs that die again while this runs stay dead.
            let mut total = 0;
            for queue in queues {
                let ids = store.list(&queue, "dead", 1_000_000).await.map_err(err)?;
                for chunk in ids.chunks(1000) {
                    total += store.retry_dead(chunk).await.map_err(err)?;
                }
            }
            Ok(format!("{total} dead job(s) queued again with fresh attempts"))
        }
        QueueAction::Purge { queue, state, .. } => {
            let deleted = store.purge(&queue, &state).await.map_err(err)?;
            Ok(format!("deleted {deleted} {state} job(s) from {queue}"))
        }
        QueueAction::Probe { queue, timeout } => {
            let spec = crate::infra::queue::JobSpec::new(&queue, crate::tasks::probe::NAME, b"{}".to_vec());
            let started = std::time::Instant::now();
            let id = store.push(&[spec]).await.map_err(err)?.remove(0).id().to_owned();
            loop {
                let job = store.inspect(&id).await.map_err(err)?;
                match job.as_ref().map(|j| j.status.as_str()) {
                    Some("done") => {
                        return Ok(format!(
                            "probe job {id} on {queue} done in {} ms",
                            started.elapsed().as_millis()
                        ));
                    }
                    Some("dead") => {
                        let error = job.and_then(|j| j.last_error).unwrap_or_default();
                        return Err(format!("probe job {id} on {queue} died: {error}"));
                    }
                    None => return Err(format!("probe job {id} vanished (purged?)")),
                    _ => {}
                }
                if started.elapsed() > timeout {
                    return Err(format!(
                        "no worker finished probe job {id} on {queue} within {timeout:?}: is a worker consuming {queue}?"
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}
