//! Liveness (`/health`, Dify's shape, no dependency calls) and readiness (`/ready`).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::AppState;

/// How long each dependency gets to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /health`: the process is up. Never touches a dependency, so a slow database cannot
/// make an orchestrator kill a healthy process.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "`{pid, status: ok, version}`", body = serde_json::Value)))]
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({ "pid": std::process::id(), "status": "ok", "version": crate::VERSION }))
}

#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /ready`: 200 when every dependency answers, else 503 naming each failing one.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, description = "Every dependency answered: `{status, checks, queues?}`", body = serde_json::Value),
        (status = 503, description = "`failing` names each dependency that did not answer", body = serde_json::Value)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let mut checks = Vec::new();
    let database = match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
    };
    checks.push(check("database", database));
    for probe in state.redis.iter() {
        checks.push(check(probe.name, probe.ping(CHECK_TIMEOUT).await.err()));
    }
    let storage = match tokio::time::timeout(CHECK_TIMEOUT, state.storage.check()).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error.to_string()),
        Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
    };
    checks.push(check("storage", storage));
    let mut queues = serde_json::Map::new();
    if state.runs_worker {
        let result = match state.jobs.get() {
            None => Err("the job store has not answered yet".to_owned()),
            Some(store) => {
                match tokio::time::timeout(CHECK_TIMEOUT, store.counts(&state.settings.worker_queues())).await
                {
                    Ok(Ok(counts)) => Ok(counts),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
                }
            }
        };
        match result {
            Ok(counts) => {
                checks.push(check("jobs", None));
                for c in counts {
                    queues.insert(
                        c.queue.clone(),
                        json!({"ready": c.ready, "delayed": c.delayed, "running": c.running, "done": c.done, "dead": c.dead}),
                    );
                }
            }
            Err(error) => checks.push(check("jobs", Some(error))),
        }
    }

    let failing: Vec<&str> = checks.iter().filter(|c| c.error.is_some()).map(|c| c.name).collect();
    let status = if failing.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if failing.is_empty() { "ok" } else { "unavailable" },
        "failing": failing,
        "checks": checks,
        "queues": queues,
        "version": crate::VERSION,
    });
    (status, Json(body))
}

fn check(name: &'static str, error: Option<String>) -> Check {
    if let Some(error) = &error {
        tracing::warn!(dependency = name, %error, "readiness check failed");
    }
    Check { name, status: if error.is_some() { "error" } else { "ok" }, error }
}
