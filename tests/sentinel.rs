//! Redis Sentinel: kiln finds the primary through the sentinels (Dify's REDIS_USE_SENTINEL
//! variables, and Celery's sentinel:// broker URL) and follows a failover without a restart.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Browser, KilnProcess, RedisServer, kiln, workdir};
use serde_json::json;

const PRIMARY_PASSWORD: &str = "primary-pw";
const SENTINEL_PASSWORD: &str = "sentinel-pw";
const SERVICE: &str = "kilnprimary";

/// A primary, one replica and one sentinel watching them, all with passwords.
struct SentinelSet {
    primary: RedisServer,
    replica: RedisServer,
    sentinel: RedisServer,
}

impl SentinelSet {
    async fn start() -> Self {
        let auth = ["--requirepass", PRIMARY_PASSWORD, "--masterauth", PRIMARY_PASSWORD];
        let primary = RedisServer::start(&auth);
        let primary_port = primary.port.to_string();
        let mut replica_args = auth.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &primary_port]);
        let replica = RedisServer::start(&replica_args);
        let sentinel = RedisServer::sentinel(&format!(
            "requirepass {SENTINEL_PASSWORD}\n\
             sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n\
             sentinel auth-pass {SERVICE} {PRIMARY_PASSWORD}\n\
             sentinel down-after-milliseconds {SERVICE} 500\n\
             sentinel failover-timeout {SERVICE} 3000"
        ));
        let set = Self { primary, replica, sentinel };
        // A failover needs the sentinel to know the replica, and the replica to be in sync.
        let deadline = Instant::now() + Duration::from_secs(30);
        while set.sentinel_query(&["SENTINEL", "REPLICAS", SERVICE]).await.as_deref().unwrap_or("[]") == "[]"
            || !set.replica_synced().await
        {
            assert!(Instant::now() < deadline, "the sentinel never saw a synced replica");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        set
    }

    async fn sentinel_query(&self, args: &[&str]) -> Option<String> {
        let url = format!("redis://:{SENTINEL_PASSWORD}@127.0.0.1:{}/", self.sentinel.port);
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let value: redis::Value = redis::cmd(args[0]).arg(&args[1..]).query_async(&mut conn).await.ok()?;
        Some(format!("{value:?}").replace("Array(", "[").replace(')', "]"))
    }

    async fn replica_synced(&self) -> bool {
        let url = format!("redis://:{PRIMARY_PASSWORD}@127.0.0.1:{}/0", self.replica.port);
        let Ok(client) = redis::Client::open(url) else { return false };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return false };
        let info: String =
            redis::cmd("INFO").arg("replication").query_async(&mut conn).await.unwrap_or_default();
        info.contains("master_link_status:up")
    }

    /// The port the sentinel names as the primary now.
    async fn primary_port(&self) -> Option<u16> {
        let url = format!("redis://:{SENTINEL_PASSWORD}@127.0.0.1:{}/", self.sentinel.port);
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(SERVICE)
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(port)
    }

    /// Kills the primary and waits until the sentinel has promoted the replica.
    async fn fail_over(&mut self) {
        self.primary.kill();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.primary_port().await != Some(self.replica.port) {
            assert!(Instant::now() < deadline, "the sentinel did not promote the replica");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Dify's variables for the shared Redis through this sentinel.
    fn env(&self) -> Vec<(String, String)> {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        [
            ("REDIS_USE_SENTINEL", "true".to_owned()),
            ("REDIS_SENTINELS", format!("127.0.0.1:{}", self.sentinel.port)),
            ("REDIS_SENTINEL_SERVICE_NAME", SERVICE.to_owned()),
            ("REDIS_SENTINEL_PASSWORD", SENTINEL_PASSWORD.to_owned()),
            ("REDIS_PASSWORD", PRIMARY_PASSWORD.to_owned()),
            ("REDIS_KEY_PREFIX", format!("kiln-test-{unique}:")),
            ("KILN_QUEUE_PREFIX", format!("kiln-test-{unique}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn probe(dir: &std::path::Path, env: &[(String, String)]) -> (i32, String) {
    let mut command: Command = kiln(dir);
    command.envs(env.iter().cloned()).args(["queue", "probe", "--queue", "mail", "--timeout", "60"]);
    let output = command.output().expect("run kiln queue probe");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_finds_the_primary_through_sentinel_and_follows_a_failover() {
    let mut set = SentinelSet::start().await;
    let env = set.env();
    let dir = workdir();
    let mut command = kiln(dir.path());
    command.envs(env.iter().cloned());
    let mut server = KilnProcess::spawn(command);
    let url = server.wait_until_serving();
    let log = server.wait_for_log("kiln worker is consuming", Duration::from_secs(30));
    assert!(log.contains(&format!("via sentinels 127.0.0.1:{}", set.sentinel.port)), "{log}");

    // Queue (a probe job through the in-process worker) and console tokens both live on the
    // primary the sentinel names.
    let (code, text) = probe(dir.path(), &env);
    assert_eq!(code, 0, "{text}");
    let mut browser = Browser::new(&url);
    let setup = json!({"email": "owner@example.com", "name": "Owner", "password": "s3cretpass"});
    assert_eq!(browser.post("/console/api/setup", setup).await.0, 201);
    assert_eq!(browser.login("owner@example.com", "s3cretpass").await.0, 200);
    let tokens = redis::Client::open(format!("redis://:{PRIMARY_PASSWORD}@127.0.0.1:{}/0", set.primary.port))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the primary");
    let mut tokens = tokens;
    let prefix = &env.iter().find(|(k, _)| k == "REDIS_KEY_PREFIX").expect("prefix").1;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut tokens).await.expect("keys");
    assert!(keys.iter().any(|k| k.contains("refresh_token")), "no token keys on the primary: {keys:?}");

    set.fail_over().await;

    // The same process now writes to the promoted replica: a new sign-in stores its tokens
    // and a new probe job is taken by the worker, with no restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = browser.login("owner@example.com", "s3cretpass").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "no sign-in after the failover: {status} {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (code, text) = probe(dir.path(), &env);
    assert_eq!(code, 0, "{text}\n{}", server.log());
    let ready = common::get(format!("{url}/ready")).await.expect("ready");
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_jobs_through_a_celery_sentinel_broker_url() {
    let mut set = SentinelSet::start().await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    // Celery's form: the primary's password in each sentinel:// part, the database at the end.
    let broker = format!(
        "sentinel://:{PRIMARY_PASSWORD}@127.0.0.1:{port};sentinel://:{PRIMARY_PASSWORD}@127.0.0.1:{port}/2",
        port = set.sentinel.port
    );
    let env: Vec<(String, String)> = [
        ("CELERY_BROKER_URL", broker),
        ("CELERY_USE_SENTINEL", "true".to_owned()),
        ("CELERY_SENTINEL_MASTER_NAME", SERVICE.to_owned()),
        ("CELERY_SENTINEL_PASSWORD", SENTINEL_PASSWORD.to_owned()),
        ("KILN_QUEUE_PREFIX", format!("kiln-test-{unique}")),
        ("CELERY_QUEUES", "mail".to_owned()),
        ("MIGRATION_ENABLED", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let dir = workdir();
    let mut command = kiln(dir.path());
    command.arg("worker").envs(env.iter().cloned());
    let mut worker = KilnProcess::spawn(command);
    worker.wait_for_log("kiln worker is consuming", Duration::from_secs(60));

    let (code, text) = probe(dir.path(), &env);
    assert_eq!(code, 0, "{text}");
    // The jobs are in database 2 of the primary, as the URL says.
    let mut primary =
        redis::Client::open(format!("redis://:{PRIMARY_PASSWORD}@127.0.0.1:{}/2", set.primary.port))
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{kiln-test-{unique}}}:*"))
        .query_async(&mut primary)
        .await
        .expect("keys");
    assert!(!keys.is_empty(), "no queue keys in database 2 of the primary");

    set.fail_over().await;
    let (code, text) = probe(dir.path(), &env);
    assert_eq!(code, 0, "{text}\n{}", worker.log());
}
