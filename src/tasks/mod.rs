//! The tasks workers run, by name, with typed arguments.
//!
//! A job carries a task name and JSON arguments. The registry decodes the arguments into the
//! task's own type before calling it, so a payload that does not decode, or a task name this
//! build does not know, is dead-lettered with the reason instead of reaching a handler.
//! Handlers must be idempotent: delivery is at-least-once.

pub mod mail;
pub mod maintenance;
pub mod probe;

use std::collections::HashMap;
use std::sync::Arc;

use apalis_core::error::{AbortError, BoxDynError};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;

use crate::infra::queue::backend::Job;

/// How a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Worth another attempt (a timeout, a dependency that was down).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help (bad input, a missing record); the job is dead at once.
    #[error("{0}")]
    Permanent(String),
}

/// What a running task knows about its job.
#[derive(Debug, Clone)]
pub struct TaskContext {
    pub job_id: String,
    pub queue: String,
    pub attempt: u32,
    pub max_attempts: u32,
}

type Handler = Arc<dyn Fn(Vec<u8>, TaskContext) -> BoxFuture<'static, Result<(), TaskError>> + Send + Sync>;

/// Task names to handlers.
#[derive(Clone, Default)]
pub struct TaskRegistry {
    handlers: HashMap<&'static str, Handler>,
}

impl TaskRegistry {
    /// Registers `handler` for `name`; its arguments are decoded from the job's JSON.
    pub fn register<A, F, Fut>(&mut self, name: &'static str, handler: F)
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(A, TaskContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handlers.insert(
            name,
            Arc::new(move |payload: Vec<u8>, ctx: TaskContext| {
                let handler = handler.clone();
                async move {
                    let args: A = serde_json::from_slice(&payload).map_err(|e| {
                        TaskError::Permanent(format!("the arguments do not decode for task {name}: {e}"))
                    })?;
                    handler(args, ctx).await
                }
                .boxed()
            }),
        );
    }

    /// The registered task names.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.handlers.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Runs a job: unknown tasks and permanent failures are aborts (dead), transient
    /// failures are errors (retried with backoff).
    pub async fn run(&self, job: Job) -> Result<(), BoxDynError> {
        let Some(handler) = self.handlers.get(job.task.as_str()) else {
            return Err(Box::new(AbortError::new(format!(
                "unknown task {:?}; this kiln knows: {}",
                job.task,
                self.names().join(", ")
            ))));
        };
        let ctx = TaskContext {
            job_id: job.id,
            queue: job.queue,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
        };
        match handler(job.payload, ctx).await {
            Ok(()) => Ok(()),
            Err(TaskError::Transient(message)) => Err(message.into()),
            Err(TaskError::Permanent(message)) => Err(Box::new(AbortError::new(message))),
        }
    }
}

/// The shared services tasks use.
pub struct TaskServices {
    pub db: crate::infra::db::Db,
    pub store: crate::infra::queue::JobStore,
    pub settings: Arc<crate::config::Settings>,
    pub retention: crate::infra::queue::Retention,
    /// `None` when MAIL_TYPE is not set.
    pub mailer: Option<crate::infra::mail::Mailer>,
    /// Uploaded files (documents to index).
    pub storage: crate::infra::storage::Storage,
}

/// Every task this build runs.
pub fn registry(services: Arc<TaskServices>) -> TaskRegistry {
    let mut registry = TaskRegistry::default();
    registry.register(probe::NAME, probe::run);
    let with = |services: &Arc<TaskServices>| services.clone();
    let s = with(&services);
    registry.register(maintenance::CLEAN_AUTH, move |args, ctx| {
        maintenance::clean_expired_auth_records(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(maintenance::TRIM_JOBS, move |args, ctx| {
        maintenance::trim_finished_jobs(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(crate::accounts::recovery::MAIL_TASK, move |args, ctx| {
        mail::send_reset_password_mail(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(crate::accounts::invitations::MAIL_TASK, move |args, ctx| {
        mail::send_invite_member_mail(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(crate::accounts::email_login::MAIL_TASK, move |args, ctx| {
        mail::send_email_code_login_mail(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(crate::datasets::indexing::TASK, move |args, ctx| {
        crate::datasets::indexing::index_document(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(crate::datasets::cleanup::TASK, move |args, ctx| {
        crate::datasets::cleanup::clean_dataset(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(crate::datasets::unused::TASK, move |args, ctx| {
        crate::datasets::unused::clean_unused_datasets(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(crate::datasets::orphans::SWEEP_TASK, move |args, ctx| {
        crate::datasets::orphans::sweep_orphans(s.clone(), args, ctx)
    });
    let s = with(&services);
    registry.register(maintenance::QUEUE_MONITOR, move |args, ctx| {
        maintenance::queue_monitor(s.clone(), args, ctx)
    });
    registry
}
