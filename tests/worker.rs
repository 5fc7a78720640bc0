//! The real worker binary on Redis and on the embedded store: results, retries, dead
//! letters, SIGKILL (nothing lost) and SIGTERM (in-flight finished, the rest handed back).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{KilnProcess, RedisServer, kiln, workdir};
use kiln::infra::queue::{EmbeddedStore, JobSpec, JobStore, RedisStore};
use serde_json::json;

const REDIS: &str = "redis://127.0.0.1:6379/0";

/// A Redis job store under a fresh prefix, and the env that points a worker at it.
async fn redis_queue() -> (JobStore, Vec<(String, String)>, String) {
    let prefix = format!("kiln-wt-{}", uuid::Uuid::new_v4().simple());
    let store = JobStore::Redis(RedisStore::connect(REDIS, &prefix).await.expect("connect to local Redis"));
    let env = vec![
        ("CELERY_BROKER_URL".to_owned(), REDIS.to_string()),
        ("KILN_QUEUE_PREFIX".to_owned(), prefix.clone()),
        ("CELERY_QUEUES".to_owned(), "mail,dataset,priority_dataset".to_owned()),
    ];
    (store, env, prefix)
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(REDIS).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{{{prefix}}}:*")).query_async(&mut conn).await.expect("KEYS");
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await.expect("DEL");
    }
}

fn probe(queue: &str, args: serde_json::Value) -> JobSpec {
    JobSpec::new(queue, "kiln.probe", serde_json::to_vec(&args).expect("json"))
}

fn worker(dir: &std::path::Path, env: &[(String, String)], extra: &[(&str, &str)]) -> KilnProcess {
    let mut command = kiln(dir);
    // The worker checks the metadata database too; here it is the default SQLite file.
    command
        .arg("worker")
        .env("MIGRATION_ENABLED", "true")
        .envs(env.iter().cloned())
        .envs(extra.iter().copied());
    let mut process = KilnProcess::spawn(command);
    process.wait_for_log("kiln worker is consuming", Duration::from_secs(60));
    process
}

async fn wait_for_counts(store: &JobStore, queue: &str, done: u64, dead: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        // A restarted Redis answers LOADING for a moment: that is not the worker's doing.
        let c = match store.counts(&[queue.to_owned()]).await {
            Ok(mut counts) => counts.remove(0),
            Err(error) => {
                assert!(Instant::now() < deadline, "the store never answered: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if c.done >= done && c.dead >= dead && c.running == 0 {
            assert_eq!((c.done, c.dead), (done, dead), "{c:?}");
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for done={done} dead={dead}: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn results_retries_and_dead_letters(store: JobStore, env: Vec<(String, String)>) {
    let dir = workdir();
    let mut specs: Vec<JobSpec> = (0..100).map(|_| probe("mail", json!({}))).collect();
    specs.push(probe("mail", json!({"succeed_on_attempt": 2})));
    let mut panicking = probe("mail", json!({"panic": true}));
    panicking.max_attempts = 5;
    specs.push(panicking);
    specs.push(probe("mail", json!({"no_such_field": 1})));
    specs.push(JobSpec::new("mail", "no_such_task", b"{}".to_vec()));
    let ids: Vec<String> =
        store.push(&specs).await.expect("push").iter().map(|p| p.id().to_owned()).collect();

    let mut process = worker(dir.path(), &env, &[("CELERY_WORKER_AMOUNT", "4")]);
    wait_for_counts(&store, "mail", 101, 3, Duration::from_secs(60)).await;

    let retried = store.inspect(&ids[100]).await.expect("inspect").expect("kept");
    assert_eq!(
        (retried.status.as_str(), retried.attempts),
        ("done", 2),
        "retried once with backoff, then done"
    );
    let panicked = store.inspect(&ids[101]).await.expect("inspect").expect("kept");
    assert_eq!((panicked.status.as_str(), panicked.attempts), ("dead", 1), "a panic is dead at once");
    assert!(panicked.last_error.as_deref().is_some_and(|e| e.contains("panic")), "{panicked:?}");
    let undecodable = store.inspect(&ids[102]).await.expect("inspect").expect("kept");
    assert_eq!(undecodable.status, "dead");
    assert!(
        undecodable.last_error.as_deref().is_some_and(|e| e.contains("do not decode")),
        "{undecodable:?}"
    );
    let unknown = store.inspect(&ids[103]).await.expect("inspect").expect("kept");
    assert!(unknown.last_error.as_deref().is_some_and(|e| e.contains("unknown task")), "{unknown:?}");

    // The worker survived all of that and still takes work.
    store.push(&[probe("mail", json!({}))]).await.expect("push");
    wait_for_counts(&store, "mail", 102, 3, Duration::from_secs(30)).await;
    process.terminate();
    let status = process.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", process.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_worker_results_retries_and_dead_letters() {
    let (store, env, prefix) = redis_queue().await;
    results_retries_and_dead_letters(store, env).await;
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_worker_results_retries_and_dead_letters() {
    let dir = workdir();
    let path = dir.path().join("jobs.db");
    let store = JobStore::Embedded(EmbeddedStore::open(&path).await.expect("open"));
    let env = vec![
        ("KILN_JOBS_DB".to_owned(), path.display().to_string()),
        ("CELERY_QUEUES".to_owned(), "mail".to_owned()),
    ];
    results_retries_and_dead_letters(store, env).await;
}

/// Counts "probe job finished" log lines per job id.
fn executions(logs: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for log in logs {
        for line in log.lines().filter(|l| l.contains("probe job finished")) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(job) = value["job"].as_str()
            {
                *counts.entry(job.to_owned()).or_insert(0) += 1;
            }
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_loses_no_job() {
    const TOTAL: usize = 10_000;
    let (store, env, prefix) = redis_queue().await;
    let specs: Vec<JobSpec> =
        (0..TOTAL).map(|_| probe("dataset", json!({"log": true, "sleep_ms": 1}))).collect();
    for chunk in specs.chunks(1000) {
        store.push(chunk).await.expect("push");
    }
    let dir = workdir();
    let lease = [("KILN_JOB_LEASE_SECONDS", "2"), ("CELERY_WORKER_AMOUNT", "8")];
    let mut first = worker(dir.path(), &env, &lease);
    // Let it get well into the batch, then kill it without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = store.counts(&["dataset".to_owned()]).await.expect("counts").remove(0);
        if c.done >= 2_000 {
            break;
        }
        assert!(Instant::now() < deadline, "first worker too slow: {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kill =
        std::process::Command::new("kill").args(["-KILL", &first.pid().to_string()]).status().expect("kill");
    assert!(kill.success());
    first.wait_exit(Duration::from_secs(10));
    let held = store.counts(&["dataset".to_owned()]).await.expect("counts").remove(0).running;
    assert!(held > 0, "the killed worker held leases");

    let mut second = worker(dir.path(), &env, &lease);
    wait_for_counts(&store, "dataset", TOTAL as u64, 0, Duration::from_secs(120)).await;
    second.terminate();
    assert!(second.wait_exit(Duration::from_secs(30)).success());

    let runs = executions(&[first.log(), second.log()]);
    assert_eq!(runs.len(), TOTAL, "every job completed at least once");
    let duplicates = runs.values().filter(|n| **n > 1).count() as u64;
    assert!(duplicates <= held, "duplicates ({duplicates}) only among the {held} jobs the dead worker held");
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_jobs_and_hands_back_the_rest() {
    let (store, env, prefix) = redis_queue().await;
    let specs: Vec<JobSpec> =
        (0..20).map(|_| probe("mail", json!({"sleep_ms": 1500, "log": true}))).collect();
    store.push(&specs).await.expect("push");
    let dir = workdir();
    let prefetch = [("CELERY_WORKER_AMOUNT", "2"), ("CELERY_PREFETCH_MULTIPLIER", "10")];
    let mut process = worker(dir.path(), &env, &prefetch);
    // Both slots busy, the other 18 claimed but not started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.counts(&["mail".to_owned()]).await.expect("counts").remove(0).running < 20 {
        assert!(Instant::now() < deadline, "worker did not claim the batch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.terminate();
    let status = process.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", process.log());
    let c = store.counts(&["mail".to_owned()]).await.expect("counts").remove(0);
    assert_eq!((c.done, c.running, c.ready), (2, 0, 18), "in-flight finished, unstarted handed back: {c:?}");
    // The handed-back jobs were never started, so their next run is attempt 1.
    let next =
        store.fetch("inspector", &["mail".to_owned()], 1, Duration::from_secs(5)).await.expect("fetch");
    assert_eq!(next[0].attempt, 1);
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_still_running_when_the_grace_period_ends_are_handed_back_at_once() {
    let (store, env, prefix) = redis_queue().await;
    let pushed = store.push(&[probe("mail", json!({"sleep_ms": 60_000}))]).await.expect("push");
    let id = pushed[0].id().to_owned();
    let dir = workdir();
    let mut process = worker(dir.path(), &env, &[("KILN_SHUTDOWN_GRACE_PERIOD", "1")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.inspect(&id).await.expect("inspect").expect("job").status != "running" {
        assert!(Instant::now() < deadline, "worker did not start the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process.terminate();
    let status = process.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{}", process.log());
    assert!(process.log().contains("grace period"), "{}", process.log());
    // Ready again now, not after its 30 s lease; the interrupted attempt counts.
    let job = store.inspect(&id).await.expect("inspect").expect("job");
    assert_eq!((job.status.as_str(), job.attempts, job.owner), ("ready", 1, None), "{:?}", job.last_error);
    cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_ready_with_queue_counts_on_its_health_port() {
    let (store, mut env, prefix) = redis_queue().await;
    let port = common::free_port().to_string();
    env.push(("KILN_WORKER_HEALTH_PORT".to_owned(), port.clone()));
    env.push(("DIFY_BIND_ADDRESS".to_owned(), "127.0.0.1".to_owned()));
    let dir = workdir();
    let mut process = worker(dir.path(), &env, &[]);
    let specs: Vec<JobSpec> = (0..3).map(|_| probe("mail", json!({"succeed_on_attempt": 9}))).collect();
    store.push(&specs).await.expect("push");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let body: serde_json::Value =
            common::get(format!("{url}/ready")).await.expect("ready").json().await.expect("json");
        let mail = &body["queues"]["mail"];
        if mail["delayed"].as_u64().unwrap_or(0) + mail["dead"].as_u64().unwrap_or(0) == 3 {
            break body;
        }
        assert!(Instant::now() < deadline, "counts never showed the retried jobs: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "ok", "{body}");
    assert!(body["queues"]["dataset"].is_object(), "every consumed queue is reported: {body}");
    assert_eq!(common::get(format!("{url}/health")).await.expect("health").status(), 200);
    // `kiln healthcheck` in the worker's container probes the worker's port.
    let status = kiln(dir.path())
        .envs(env.iter().cloned())
        .env("MODE", "worker")
        .args(["healthcheck", "--ready"])
        .status()
        .expect("run healthcheck");
    assert!(status.success());
    process.terminate();
    assert!(process.wait_exit(Duration::from_secs(30)).success(), "{}", process.log());
    cleanup(&prefix).await;
}

#[test]
fn an_unknown_queue_fails_at_start_with_the_valid_list() {
    let dir = workdir();
    let output = kiln(dir.path()).args(["worker", "--queues", "mail,datasets"]).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CELERY_WORKER_QUEUES=\"mail,datasets\" (from --queues)"), "{stderr}");
    assert!(stderr.contains("unknown queue(s): datasets") && stderr.contains("priority_dataset"), "{stderr}");
}

fn run(command: &mut std::process::Command) -> (i32, String, String) {
    let output = command.output().expect("run kiln");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_admin_commands_look_into_and_repair_the_store() {
    let dir = workdir();
    let path = dir.path().join("jobs.db");
    let store = JobStore::Embedded(EmbeddedStore::open(&path).await.expect("open"));
    let env = [("KILN_JOBS_DB", path.display().to_string()), ("CELERY_QUEUES", "mail".to_owned())];
    let admin = |args: &[&str]| {
        let mut command = kiln(dir.path());
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).args(args);
        run(&mut command)
    };
    // No worker yet: the probe times out with a clear message.
    let (code, _, stderr) = admin(&["queue", "probe", "--queue", "mail", "--timeout", "1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is a worker consuming mail?"), "{stderr}");

    let mut failing = probe("mail", json!({"panic": true}));
    failing.max_attempts = 1;
    let dead_id = store.push(&[failing]).await.expect("push").remove(0).id().to_owned();
    let mut worker =
        worker(dir.path(), &env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<Vec<_>>(), &[]);
    let (code, stdout, _) = admin(&["queue", "probe", "--queue", "mail"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("done in"), "{stdout}");

    let (code, stdout, _) = admin(&["queue", "stats"]);
    assert_eq!(code, 0);
    let mail = stdout.lines().find(|l| l.starts_with("mail ")).expect("mail row");
    let numbers: Vec<&str> = mail.split_whitespace().collect();
    assert_eq!(numbers, ["mail", "0", "0", "0", "2", "1"], "ready delayed running done dead: {stdout}");

    let (code, stdout, _) = admin(&["queue", "list", "mail", "--state", "dead"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(&dead_id) && stdout.contains("panic"), "{stdout}");
    let (code, stdout, _) = admin(&["queue", "inspect", &dead_id]);
    assert_eq!(code, 0);
    assert!(stdout.contains("status:       dead") && stdout.contains("\"panic\":true"), "{stdout}");

    // Retry puts it back; it panics again and is dead again (attempts start over).
    let (code, stdout, _) = admin(&["queue", "retry", &dead_id]);
    assert_eq!(
        (code, stdout.trim()),
        (0, format!("job {dead_id} queued again with fresh attempts").as_str())
    );
    wait_for_counts(&store, "mail", 2, 1, Duration::from_secs(30)).await;
    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(30)).success());

    let (code, _, stderr) = admin(&["queue", "purge", "mail", "--state", "dead"]);
    assert_eq!(code, 2, "no --yes off a terminal");
    assert!(stderr.contains("--yes"), "{stderr}");
    let (code, stdout, _) = admin(&["queue", "purge", "mail", "--state", "dead", "--yes"]);
    assert_eq!((code, stdout.trim()), (0, "deleted 1 dead job(s) from mail"));
    let (code, _, stderr) = admin(&["queue", "list", "nope"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown queue \"nope\""), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_a_redis_restart_and_loses_nothing() {
    let mut redis = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = JobStore::Redis(RedisStore::connect(&redis.url(), "kiln").await.expect("connect"));
    let specs: Vec<JobSpec> = (0..300).map(|_| probe("mail", json!({"sleep_ms": 5}))).collect();
    store.push(&specs).await.expect("push");
    let dir = workdir();
    let env =
        vec![("CELERY_BROKER_URL".to_owned(), redis.url()), ("CELERY_QUEUES".to_owned(), "mail".to_owned())];
    let mut process =
        worker(dir.path(), &env, &[("CELERY_WORKER_AMOUNT", "2"), ("KILN_JOB_LEASE_SECONDS", "3")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.counts(&["mail".to_owned()]).await.expect("counts").remove(0).done < 50 {
        assert!(Instant::now() < deadline, "worker too slow");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.stop();
    process.wait_for_log("job store call failed; retrying", Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.launch();
    let store = JobStore::Redis(RedisStore::connect(&redis.url(), "kiln").await.expect("reconnect"));
    wait_for_counts(&store, "mail", 300, 0, Duration::from_secs(60)).await;
    process.wait_for_log("job store reachable again", Duration::from_secs(10));
    process.terminate();
    assert!(process.wait_exit(Duration::from_secs(30)).success(), "{}", process.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_longer_than_its_lease_runs_once_while_its_worker_lives() {
    let (store, env, prefix) = redis_queue().await;
    let id =
        store.push(&[probe("mail", json!({"sleep_ms": 3500, "log": true}))]).await.expect("push").remove(0);
    let dir = workdir();
    let lease = [("KILN_JOB_LEASE_SECONDS", "1")];
    // Two workers: if the lease lapsed, the second would pick the job up again.
    let mut first = worker(dir.path(), &env, &lease);
    let mut second = worker(dir.path(), &env, &lease);
    wait_for_counts(&store, "mail", 1, 0, Duration::from_secs(30)).await;
    first.terminate();
    second.terminate();
    assert!(first.wait_exit(Duration::from_secs(30)).success());
    assert!(second.wait_exit(Duration::from_secs(30)).success());
    let runs = executions(&[first.log(), second.log()]);
    assert_eq!(runs.get(id.id()), Some(&1), "{runs:?}");
    assert_eq!(store.inspect(id.id()).await.expect("inspect").expect("kept").attempts, 1);
    cleanup(&prefix).await;
}
