//! The beat with the real binary: the schedule listing, two replicas firing each tick once
//! (through a leader handover), and housekeeping tasks doing their work in standalone.

mod common;

use std::time::{Duration, Instant};

use common::{KilnProcess, kiln, workdir};
use kiln::infra::queue::{JobStore, RedisStore};

const REDIS: &str = "redis://127.0.0.1:6379/0";

#[test]
fn beat_list_shows_each_entry_with_its_next_fire() {
    let dir = workdir();
    let output = kiln(dir.path()).args(["beat", "list"]).output().expect("run");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let trim = stdout.lines().find(|l| l.starts_with("trim_finished_jobs")).expect("trim row");
    assert!(trim.contains("*/10 * * * *") && trim.contains("yes") && trim.contains("T"), "{stdout}");
    let monitor = stdout.lines().find(|l| l.starts_with("datasets-queue-monitor")).expect("monitor row");
    assert!(monitor.contains("no (ENABLE_DATASETS_QUEUE_MONITOR=false)"), "{stdout}");

    let bad = kiln(dir.path())
        .args(["beat", "list"])
        .env("KILN_BEAT_TRIM_JOBS_CRON", "every tuesday")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("KILN_BEAT_TRIM_JOBS_CRON=\"every tuesday\""));
}

fn beat(dir: &std::path::Path, env: &[(String, String)]) -> KilnProcess {
    let mut command = kiln(dir);
    command.arg("beat").envs(env.iter().cloned());
    let mut process = KilnProcess::spawn(command);
    process.wait_for_log("kiln beat is scheduling", Duration::from_secs(30));
    process
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_beats_fire_each_tick_once_even_across_a_handover() {
    let prefix = format!("kiln-bt-{}", uuid::Uuid::new_v4().simple());
    let env: Vec<(String, String)> = [
        ("CELERY_BROKER_URL", REDIS),
        ("KILN_QUEUE_PREFIX", prefix.as_str()),
        ("KILN_BEAT_TRIM_JOBS_CRON", "* * * * * *"),
        ("KILN_BEAT_CLEAN_AUTH_CRON", "0 0 1 1 *"),
        ("KILN_BEAT_LEASE_SECONDS", "3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dir = workdir();
    let first = beat(dir.path(), &env);
    let second = beat(dir.path(), &env);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Kill whichever leads, without warning; the other must take over and lose no tick.
    let (mut leader, mut other) =
        if first.log().contains("now leads") { (first, second) } else { (second, first) };
    let kill =
        std::process::Command::new("kill").args(["-KILL", &leader.pid().to_string()]).status().expect("kill");
    assert!(kill.success());
    leader.wait_exit(Duration::from_secs(10));
    let before = count(&other.log(), "\"fired\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&other.log(), "\"fired\"") < before + 2 {
        assert!(Instant::now() < deadline, "the standby did not take over:\n{}", other.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    other.terminate();
    assert!(other.wait_exit(Duration::from_secs(10)).success());

    let store = JobStore::Redis(RedisStore::connect(REDIS, &prefix).await.expect("connect"));
    let ready = store.list("retention", "ready", 1000).await.expect("list");
    let fired = count(&leader.log(), "\"fired\"") + count(&other.log(), "\"fired\"");
    assert!(fired >= 4, "a tick a second for several seconds: {fired}");
    assert_eq!(ready.len(), fired, "every fire enqueued exactly one job, none twice");
    // One job per scheduled second: the idempotency keys are distinct ticks.
    let mut seconds: Vec<String> = Vec::new();
    for log in [leader.log(), other.log()] {
        for line in log.lines().filter(|l| l.contains("\"fired\"")) {
            let value: serde_json::Value = serde_json::from_str(line).expect("json");
            seconds.push(value["scheduled"].as_str().expect("scheduled").to_owned());
        }
    }
    let total = seconds.len();
    seconds.sort();
    seconds.dedup();
    assert_eq!(seconds.len(), total, "no tick fired twice");
    // And none skipped: from the first tick to the last, every second is there.
    let times: Vec<chrono::DateTime<chrono::Utc>> = seconds
        .iter()
        .map(|s| {
            chrono::DateTime::parse_from_str(&s.replace(" UTC", " +0000"), "%Y-%m-%d %H:%M:%S %z")
                .expect("time")
                .into()
        })
        .collect();
    for pair in times.windows(2) {
        assert_eq!(
            (pair[1] - pair[0]).num_seconds(),
            1,
            "a tick was lost between {} and {}",
            pair[0],
            pair[1]
        );
    }

    let client = redis::Client::open(REDIS).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{{{prefix}}}:*")).query_async(&mut conn).await.expect("KEYS");
    assert!(!keys.iter().any(|k| k.ends_with("beat:leader")), "leadership released on exit: {keys:?}");
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await.expect("DEL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_runs_the_beat_and_the_worker_housekeeping() {
    let dir = workdir();
    // First start migrates; then plant an expired lockout counter.
    assert!(kiln(dir.path()).arg("upgrade-db").status().expect("migrate").success());
    let url = format!("sqlite://{}", dir.path().join("storage/kiln.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    sqlx::query(
        "INSERT INTO auth_login_failures (email, failures, expires_at) VALUES ('old@example.com', 3, $1)",
    )
    .bind(chrono::Utc::now() - chrono::Duration::hours(1))
    .execute(&pool)
    .await
    .expect("insert");
    let mut command = kiln(dir.path());
    command.env("KILN_BEAT_CLEAN_AUTH_CRON", "* * * * * *");
    let mut server = KilnProcess::spawn(command);
    server.wait_until_serving();
    server.wait_for_log("deleted expired refresh tokens and login lockout counters", Duration::from_secs(30));
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM auth_login_failures").fetch_one(&pool).await.expect("count");
    assert_eq!(left, 0);
    pool.close().await;
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success(), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_monitor_mails_when_the_dataset_backlog_is_high() {
    let smtp = common::SmtpStandIn::start().await;
    let dir = workdir();
    assert!(kiln(dir.path()).arg("upgrade-db").status().expect("migrate").success());
    // A backlog on `dataset`, which this standalone's worker does not consume.
    let store = JobStore::Embedded(
        kiln::infra::queue::EmbeddedStore::open(&dir.path().join("storage/jobs.db")).await.expect("open"),
    );
    let specs: Vec<_> =
        (0..3).map(|_| kiln::infra::queue::JobSpec::new("dataset", "kiln.probe", b"{}".to_vec())).collect();
    store.push(&specs).await.expect("push");
    let mut command = kiln(dir.path());
    command
        .env("CELERY_QUEUES", "monitor")
        .env("ENABLE_DATASETS_QUEUE_MONITOR", "true")
        .env("KILN_BEAT_QUEUE_MONITOR_CRON", "* * * * * *")
        .env("QUEUE_MONITOR_THRESHOLD", "2")
        .env("QUEUE_MONITOR_ALERT_EMAILS", "ops@example.com, oncall@example.com")
        .env("MAIL_TYPE", "smtp")
        .env("SMTP_SERVER", "127.0.0.1")
        .env("SMTP_PORT", smtp.port.to_string())
        .env("MAIL_DEFAULT_SEND_FROM", "kiln@example.com");
    let mut server = KilnProcess::spawn(command);
    server.wait_until_serving();
    server.wait_for_log("queue backlog at or above QUEUE_MONITOR_THRESHOLD", Duration::from_secs(30));
    let first = smtp.wait_for_message(1, Duration::from_secs(30)).await;
    assert!(first.contains("the dataset queue has 3 jobs waiting"), "{first}");
    let second = smtp.wait_for_message(2, Duration::from_secs(10)).await;
    let recipients = format!("{first}{second}");
    assert!(recipients.contains("ops@example.com") && recipients.contains("oncall@example.com"));
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());
}
