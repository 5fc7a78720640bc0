//! One conformance suite for both job stores: the Redis store (real Redis, a fresh key prefix
//! per test) and the embedded SQLite store (a fresh file per test).

use std::collections::HashSet;
use std::time::Duration;

use kiln::infra::queue::{
    Ack, EmbeddedStore, JobSpec, JobStore, Outcome, Pushed, RedisStore, Retention, priority_order,
};

const LEASE: Duration = Duration::from_secs(30);

/// A store plus whatever must outlive it (the SQLite file's directory).
struct Fixture {
    store: JobStore,
    _dir: Option<tempfile::TempDir>,
    /// The Redis key prefix to delete afterwards.
    redis_prefix: Option<String>,
}

impl Fixture {
    /// Deletes the test's Redis keys (the embedded store's file goes with its directory).
    async fn cleanup(&self) {
        let Some(prefix) = &self.redis_prefix else { return };
        let client = redis::Client::open("redis://127.0.0.1:6379/0").expect("client");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{{{prefix}}}:*")).query_async(&mut conn).await.expect("KEYS");
        for chunk in keys.chunks(1000) {
            let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await.expect("DEL");
        }
    }
}

async fn redis() -> Fixture {
    let prefix = format!("kiln-test-{}", uuid::Uuid::new_v4().simple());
    let store =
        RedisStore::connect("redis://127.0.0.1:6379/0", &prefix).await.expect("connect to local Redis");
    Fixture { store: JobStore::Redis(store), _dir: None, redis_prefix: Some(prefix) }
}

async fn embedded() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("jobs.db")).await.expect("open embedded store");
    Fixture { store: JobStore::Embedded(store), _dir: Some(dir), redis_prefix: None }
}

fn job(queue: &str, n: usize) -> JobSpec {
    JobSpec::new(queue, "test_task", format!("{{\"n\":{n}}}").into_bytes())
}

fn queues(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn done(claimed: &kiln::infra::queue::Claimed) -> Ack {
    Ack { id: claimed.id.clone(), attempt: claimed.attempt, outcome: Outcome::Done }
}

async fn counts(store: &JobStore, queue: &str) -> kiln::infra::queue::QueueCounts {
    store.counts(&queues(&[queue])).await.expect("counts").remove(0)
}

async fn push_fetch_ack(store: JobStore) {
    let pushed = store.push(&[job("mail", 1), job("mail", 2), job("mail", 3)]).await.expect("push");
    assert!(pushed.iter().all(|p| matches!(p, Pushed::New(_))));
    assert_eq!(counts(&store, "mail").await.ready, 3);
    let claimed = store.fetch("w1", &queues(&["mail"]), 10, LEASE).await.expect("fetch");
    assert_eq!(
        claimed.iter().map(|c| c.payload.clone()).collect::<Vec<_>>(),
        [b"{\"n\":1}".to_vec(), b"{\"n\":2}".to_vec(), b"{\"n\":3}".to_vec()],
        "FIFO"
    );
    assert!(claimed.iter().all(|c| c.attempt == 1 && c.max_attempts == 3 && c.task == "test_task"));
    assert_eq!(
        claimed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        pushed.iter().map(Pushed::id).collect::<Vec<_>>()
    );
    let c = counts(&store, "mail").await;
    assert_eq!((c.ready, c.running), (0, 3));
    let acks: Vec<Ack> = claimed.iter().map(done).collect();
    let report = store.ack("w1", &acks, Retention::default()).await.expect("ack");
    assert_eq!((report.accepted, report.stale), (3, 0));
    let c = counts(&store, "mail").await;
    assert_eq!((c.ready, c.running, c.done, c.dead), (0, 0, 3, 0));
    let info = store.inspect(&claimed[0].id).await.expect("inspect").expect("kept while retained");
    assert_eq!((info.status.as_str(), info.attempts, info.payload), ("done", 1, None));
    assert!(store.fetch("w1", &queues(&["mail"]), 10, LEASE).await.expect("fetch").is_empty());
}

async fn priority_queues_first(store: JobStore) {
    store.push(&[job("dataset", 1)]).await.expect("push");
    store.push(&[job("priority_dataset", 2)]).await.expect("push");
    let order = priority_order(&queues(&["dataset", "priority_dataset"]));
    let first = store.fetch("w1", &order, 1, LEASE).await.expect("fetch");
    assert_eq!(first[0].queue, "priority_dataset");
    let second = store.fetch("w1", &order, 1, LEASE).await.expect("fetch");
    assert_eq!(second[0].queue, "dataset");
}

async fn delayed_jobs_wait(store: JobStore) {
    let mut spec = job("mail", 1);
    spec.delay = Duration::from_millis(1000);
    store.push(&[spec]).await.expect("push");
    assert!(store.fetch("w1", &queues(&["mail"]), 10, LEASE).await.expect("fetch").is_empty());
    assert_eq!(counts(&store, "mail").await.delayed, 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(store.fetch("w1", &queues(&["mail"]), 10, LEASE).await.expect("fetch").len(), 1);
}

async fn retries_then_dead_with_last_error(store: JobStore) {
    let mut spec = job("mail", 1);
    spec.max_attempts = 2;
    store.push(&[spec]).await.expect("push");
    let first = store.fetch("w1", &queues(&["mail"]), 1, LEASE).await.expect("fetch").remove(0);
    let retry = Outcome::Retry { error: "smtp timeout".into(), delay: Duration::ZERO };
    let report = store
        .ack("w1", &[Ack { id: first.id.clone(), attempt: 1, outcome: retry }], Retention::default())
        .await;
    assert_eq!(report.expect("ack").accepted, 1);
    let second = store.fetch("w1", &queues(&["mail"]), 1, LEASE).await.expect("fetch").remove(0);
    assert_eq!((second.id.as_str(), second.attempt), (first.id.as_str(), 2));
    let dead = Outcome::Dead { error: "smtp refused: 550".into() };
    store
        .ack("w1", &[Ack { id: second.id.clone(), attempt: 2, outcome: dead }], Retention::default())
        .await
        .expect("ack");
    let c = counts(&store, "mail").await;
    assert_eq!((c.ready, c.delayed, c.running, c.dead), (0, 0, 0, 1));
    let info = store.inspect(&first.id).await.expect("inspect").expect("dead job kept");
    assert_eq!(info.status, "dead");
    assert_eq!(info.last_error.as_deref(), Some("smtp refused: 550"));
    assert!(info.payload.is_some(), "a dead job keeps its payload for retry");

    // An operator retries it: back to ready with fresh attempts.
    assert_eq!(store.retry_dead(std::slice::from_ref(&first.id)).await.expect("retry"), 1);
    let again = store.fetch("w1", &queues(&["mail"]), 1, LEASE).await.expect("fetch").remove(0);
    assert_eq!((again.id, again.attempt), (first.id, 1));
}

async fn a_dead_workers_jobs_are_redelivered_and_its_acks_rejected(store: JobStore) {
    store.push(&[job("mail", 1)]).await.expect("push");
    let q = queues(&["mail"]);
    let lost = store.fetch("dead-worker", &q, 1, Duration::from_millis(1000)).await.expect("fetch").remove(0);
    assert_eq!(store.reap(&q, 100).await.expect("reap").requeued, 0, "lease still valid");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reaped = store.reap(&q, 100).await.expect("reap");
    assert_eq!((reaped.requeued, reaped.dead), (1, 0));
    let redelivered = store.fetch("live-worker", &q, 1, LEASE).await.expect("fetch").remove(0);
    assert_eq!((redelivered.id.as_str(), redelivered.attempt), (lost.id.as_str(), 2));
    // The old owner wakes up and acks: rejected, the job stays with the new owner.
    let stale = store.ack("dead-worker", &[done(&lost)], Retention::default()).await.expect("ack");
    assert_eq!((stale.accepted, stale.stale), (0, 1));
    assert_eq!(counts(&store, "mail").await.running, 1);
    let not_owned =
        store.renew("dead-worker", &[(lost.id.clone(), lost.attempt)], LEASE).await.expect("renew");
    assert_eq!(not_owned, vec![lost.id.clone()]);
    let ok = store.ack("live-worker", &[done(&redelivered)], Retention::default()).await.expect("ack");
    assert_eq!(ok.accepted, 1);
}

async fn a_reclaimed_job_is_renewed_only_for_its_new_attempt(store: JobStore) {
    store.push(&[job("mail", 1)]).await.expect("push");
    let q = queues(&["mail"]);
    let first = store.fetch("w1", &q, 1, Duration::from_millis(1000)).await.expect("fetch").remove(0);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(store.reap(&q, 100).await.expect("reap").requeued, 1);
    let second = store.fetch("w1", &q, 1, LEASE).await.expect("fetch").remove(0);
    assert_eq!((second.id.as_str(), second.attempt), (first.id.as_str(), 2));
    let lost = store.renew("w1", &[(first.id.clone(), 1)], LEASE).await.expect("renew");
    assert_eq!(lost, vec![first.id.clone()], "the old claim is gone");
    let kept = store.renew("w1", &[(second.id.clone(), 2)], LEASE).await.expect("renew");
    assert!(kept.is_empty());
}

async fn renewed_leases_are_not_reaped(store: JobStore) {
    store.push(&[job("mail", 1)]).await.expect("push");
    let q = queues(&["mail"]);
    let claimed = store.fetch("w1", &q, 1, Duration::from_millis(1000)).await.expect("fetch").remove(0);
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lost = store
            .renew("w1", &[(claimed.id.clone(), claimed.attempt)], Duration::from_millis(1000))
            .await
            .expect("renew");
        assert!(lost.is_empty());
    }
    assert_eq!(
        store.reap(&q, 100).await.expect("reap").requeued,
        0,
        "a job longer than its lease is not duplicated"
    );
    assert_eq!(
        store.renew("someone-else", &[(claimed.id.clone(), claimed.attempt)], LEASE).await.expect("renew"),
        [claimed.id]
    );
}

async fn expired_lease_on_the_last_attempt_is_dead(store: JobStore) {
    let mut spec = job("mail", 1);
    spec.max_attempts = 1;
    store.push(&[spec]).await.expect("push");
    let q = queues(&["mail"]);
    let claimed = store.fetch("w1", &q, 1, Duration::from_millis(1000)).await.expect("fetch").remove(0);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(store.reap(&q, 100).await.expect("reap").dead, 1);
    let info = store.inspect(&claimed.id).await.expect("inspect").expect("kept");
    assert_eq!(info.status, "dead");
    assert!(info.last_error.is_some_and(|e| e.contains("lease expired") && e.contains("w1")));
}

async fn released_jobs_go_back_in_order_with_their_attempt(store: JobStore) {
    store.push(&[job("mail", 1), job("mail", 2), job("mail", 3)]).await.expect("push");
    let q = queues(&["mail"]);
    let claimed = store.fetch("w1", &q, 3, LEASE).await.expect("fetch");
    let unstarted: Vec<String> = claimed[1..].iter().map(|c| c.id.clone()).collect();
    assert_eq!(store.release("w1", &unstarted).await.expect("release"), 2);
    assert_eq!(store.release("w2", &[claimed[0].id.clone()]).await.expect("release"), 0, "not w2's job");
    let again = store.fetch("w2", &q, 3, LEASE).await.expect("fetch");
    assert_eq!(again.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), unstarted);
    assert!(again.iter().all(|c| c.attempt == 1), "a released job was never started");
}

async fn idempotency_keys_enqueue_once(store: JobStore) {
    let mut spec = job("retention", 1);
    spec.idempotency = Some(("clean_unused_datasets_task@2026-11-23T03:00".into(), Duration::from_secs(60)));
    let first = store.push(std::slice::from_ref(&spec)).await.expect("push").remove(0);
    let second = store.push(&[spec]).await.expect("push").remove(0);
    assert!(matches!(first, Pushed::New(_)));
    assert_eq!(second, Pushed::Duplicate(first.id().to_owned()));
    assert_eq!(counts(&store, "retention").await.ready, 1);
}

async fn finished_jobs_are_trimmed(store: JobStore) {
    let specs: Vec<JobSpec> = (0..10).map(|n| job("mail", n)).collect();
    store.push(&specs).await.expect("push");
    let claimed = store.fetch("w1", &queues(&["mail"]), 10, LEASE).await.expect("fetch");
    let retention = Retention { done_max: 4, ..Retention::default() };
    store.ack("w1", &claimed.iter().map(done).collect::<Vec<_>>(), retention).await.expect("ack");
    assert_eq!(counts(&store, "mail").await.done, 4);
    assert!(store.inspect(&claimed[0].id).await.expect("inspect").is_none(), "oldest trimmed");

    // Dead jobs go by age too, on the periodic trim.
    store.push(&[job("mail", 1), job("mail", 2)]).await.expect("push");
    let claimed = store.fetch("w1", &queues(&["mail"]), 2, LEASE).await.expect("fetch");
    let dead: Vec<Ack> = claimed
        .iter()
        .map(|c| Ack { id: c.id.clone(), attempt: c.attempt, outcome: Outcome::Dead { error: "x".into() } })
        .collect();
    store.ack("w1", &dead, Retention::default()).await.expect("ack");
    assert_eq!(counts(&store, "mail").await.dead, 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let young = Retention { dead_age: Duration::from_millis(5), ..Retention::default() };
    assert!(store.trim(&queues(&["mail"]), young).await.expect("trim") >= 2);
    assert_eq!(counts(&store, "mail").await.dead, 0);
}

async fn fifty_thousand_due_at_once_drain(store: JobStore) {
    const TOTAL: usize = 50_000;
    for batch in 0..TOTAL / 1000 {
        let specs: Vec<JobSpec> = (0..1000)
            .map(|n| {
                let mut spec = job("dataset", batch * 1000 + n);
                spec.delay = Duration::from_millis(1);
                spec
            })
            .collect();
        store.push(&specs).await.expect("push");
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let q = queues(&["dataset"]);
    let mut seen = HashSet::new();
    loop {
        let claimed = store.fetch("w1", &q, 500, LEASE).await.expect("fetch");
        if claimed.is_empty() {
            break;
        }
        store
            .ack("w1", &claimed.iter().map(done).collect::<Vec<_>>(), Retention::default())
            .await
            .expect("ack");
        for c in claimed {
            assert!(seen.insert(c.id), "a job was delivered twice");
        }
    }
    assert_eq!(seen.len(), TOTAL);
}

async fn concurrent_fetchers_never_share_a_job(store: JobStore) {
    let specs: Vec<JobSpec> = (0..2000).map(|n| job("mail", n)).collect();
    store.push(&specs).await.expect("push");
    let q = queues(&["mail"]);
    let fetcher = |worker: &'static str| {
        let (store, q) = (store.clone(), q.clone());
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.fetch(worker, &q, 50, LEASE).await.expect("fetch");
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.id));
            }
        })
    };
    let (a, b) = (fetcher("w1"), fetcher("w2"));
    let (a, b) = (a.await.expect("join"), b.await.expect("join"));
    let all: HashSet<String> = a.iter().chain(&b).cloned().collect();
    assert_eq!((all.len(), a.len() + b.len()), (2000, 2000));
}

macro_rules! conformance {
    ($module:ident, $fixture:ident) => {
        mod $module {
            use super::*;
            conformance!(@tests $fixture:
                push_fetch_ack, priority_queues_first, delayed_jobs_wait, retries_then_dead_with_last_error,
                a_dead_workers_jobs_are_redelivered_and_its_acks_rejected, renewed_leases_are_not_reaped, a_reclaimed_job_is_renewed_only_for_its_new_attempt,
                expired_lease_on_the_last_attempt_is_dead, released_jobs_go_back_in_order_with_their_attempt,
                idempotency_keys_enqueue_once, finished_jobs_are_trimmed, fifty_thousand_due_at_once_drain,
                concurrent_fetchers_never_share_a_job);
        }
    };
    (@tests $fixture:ident: $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let fixture = $fixture().await;
                super::$test(fixture.store.clone()).await;
                fixture.cleanup().await;
            }
        )*
    };
}

conformance!(redis_store, redis);
conformance!(embedded_store, embedded);
