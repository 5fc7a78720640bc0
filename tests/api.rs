//! The real binary serving HTTP against real PostgreSQL, SQLite and Redis.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{KilnProcess, PgDatabase, TcpProxy, kiln, workdir};

const START: Duration = Duration::from_secs(60);

fn pg_upstream() -> SocketAddr {
    format!("{}:{}", common::PG_HOST, common::PG_PORT).parse().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_json_errors_on_postgres() {
    let db = PgDatabase::create().await;
    let dir = workdir();
    let mut command = kiln(dir.path());
    command.arg("api").envs(db.env()).env("MIGRATION_ENABLED", "true").env("KILN_MAX_REQUEST_BODY_MB", "1");
    let mut server = KilnProcess::spawn(command);
    let url = server.wait_until_serving();
    let client = common::http();

    let health = client.get(format!("{url}/health")).send().await.expect("GET /health");
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health.headers()["x-env"], "PRODUCTION");
    assert!(health.headers().contains_key("x-request-id"));
    let body: serde_json::Value = health.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["pid"], server.pid());
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));

    let ready = client.get(format!("{url}/ready")).send().await.expect("GET /ready");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["checks"][0]["name"], "database");
    assert_eq!(body["checks"][0]["status"], "ok");

    let missing = client.get(format!("{url}/no/such/route")).send().await.expect("GET 404");
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.expect("json 404");
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["status"], 404);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let wrong_method = client.post(format!("{url}/health")).send().await.expect("POST /health");
    assert_eq!(wrong_method.status(), 405);
    let body: serde_json::Value = wrong_method.json().await.expect("json 405");
    assert_eq!(body["code"], "method_not_allowed");

    // The server answers 413 from the declared length, before reading the body, so send
    // only the head (a client streaming the body would see the connection close mid-way).
    let (status, body) = raw_request(&url, "POST /v1/datasets HTTP/1.1\r\nContent-Length: 2097152\r\n").await;
    assert_eq!(status, 413);
    let body: serde_json::Value = serde_json::from_str(&body).expect("json 413");
    assert_eq!(body["code"], "request_entity_too_large");
    assert_eq!(body["status"], 413);

    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success(), "{}", server.log());
}

/// Sends a request head as written (plus Host and Connection: close) and returns the
/// status and body.
async fn raw_request(url: &str, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("{head}Host: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// An api process on a fresh PostgreSQL database reached through a [`TcpProxy`], so a test
/// can slow the database down or cut it off.
struct ProxiedApi {
    server: KilnProcess,
    proxy: TcpProxy,
    url: String,
    _dir: tempfile::TempDir,
    _db: PgDatabase,
}

async fn api_behind_proxy(extra: &[(&str, &str)]) -> ProxiedApi {
    let db = PgDatabase::create().await;
    let proxy = TcpProxy::start(pg_upstream()).await;
    let dir = workdir();
    let mut command = kiln(dir.path());
    command
        .arg("api")
        .envs(db.env_via("127.0.0.1", proxy.addr.port()))
        .env("MIGRATION_ENABLED", "true")
        .envs(extra.iter().copied());
    let mut server = KilnProcess::spawn(command);
    let url = server.wait_until_serving();
    ProxiedApi { server, proxy, url, _dir: dir, _db: db }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_naming_the_database_when_postgres_is_unreachable() {
    let ProxiedApi { proxy, url, .. } = &api_behind_proxy(&[("SQLALCHEMY_POOL_TIMEOUT", "2")]).await;
    let client = common::http();
    assert_eq!(client.get(format!("{url}/ready")).send().await.expect("ready").status(), 200);

    proxy.cut();
    let ready = client.get(format!("{url}/ready")).send().await.expect("ready after cut");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["failing"], serde_json::json!(["database"]), "{body}");
    assert_eq!(body["checks"][0]["status"], "error");
    assert!(body["checks"][0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    // Liveness stays green: a database outage is not a reason to restart the process.
    assert_eq!(client.get(format!("{url}/health")).send().await.expect("health").status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    // One pooled connection, so the delayed reply is the one /ready waits for.
    let mut api = api_behind_proxy(&[("SQLALCHEMY_POOL_SIZE", "1")]).await;
    let url = api.url.clone();
    let client = common::http();
    assert_eq!(client.get(format!("{url}/ready")).send().await.expect("ready").status(), 200);

    // Make the database answer slowly, so /ready is in flight when SIGTERM arrives.
    api.proxy.delay_next_reply(Duration::from_millis(1500));
    let slow = tokio::spawn({
        let client = client.clone();
        let url = url.clone();
        async move {
            let started = std::time::Instant::now();
            let response = client.get(format!("{url}/ready")).send().await;
            (response, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.server.terminate();
    api.server.wait_for_log("finishing in-flight requests", Duration::from_secs(10));

    let (response, took) = slow.await.expect("join");
    assert_eq!(response.expect("in-flight request completed").status(), 200);
    assert!(took >= Duration::from_millis(1200), "the request was still running at SIGTERM ({took:?})");
    let status = api.server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit {status}:\n{}", api.server.log());
    // Once stopped, the port no longer accepts requests.
    assert!(client.get(format!("{url}/health")).send().await.is_err());
}

#[test]
fn unknown_mode_exits_2_and_lists_the_valid_ones() {
    let dir = workdir();
    let output = kiln(dir.path()).env("MODE", "wokrer").output().expect("run kiln");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MODE=\"wokrer\" (from environment)"), "{stderr}");
    assert!(stderr.contains("standalone, api, migration, worker, beat, job"), "{stderr}");
}

#[test]
fn a_port_in_use_names_the_variable_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = workdir();
    let output = kiln(dir.path()).arg("api").env("DIFY_PORT", port.to_string()).output().expect("run kiln");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains("DIFY_PORT (set at environment)"), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_with_no_config_serves_on_sqlite_and_keeps_its_secret_key() {
    let dir = workdir();
    let mut server = KilnProcess::spawn(kiln(dir.path()));
    let url = server.wait_until_serving();
    let banner = server.wait_for_log("is serving at", START);
    assert!(banner.contains("\"role\":\"standalone\""), "{banner}");
    assert!(banner.contains("SQLite file storage/kiln.db"), "{banner}");
    let ready = common::get(format!("{url}/ready")).await.expect("ready");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    // Standalone runs a worker: /ready reports its job store and the queue counts.
    assert!(
        body["checks"].as_array().expect("checks").iter().any(|c| c["name"] == "jobs" && c["status"] == "ok"),
        "{body}"
    );
    assert_eq!(body["queues"]["mail"]["ready"], 0, "{body}");
    assert!(dir.path().join("storage/kiln.db").is_file());
    assert!(dir.path().join("storage/jobs.db").is_file(), "the embedded job store");
    let key_path = dir.path().join("storage/.dify_secret_key");
    let first_key = std::fs::read_to_string(&key_path).expect("generated secret key");
    assert_eq!(first_key.trim().len(), 64, "token_urlsafe(48) shape");
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());

    // A second start (a restart, or a replica on the same storage) reuses the key.
    let mut again = KilnProcess::spawn(kiln(dir.path()));
    again.wait_until_serving();
    assert_eq!(std::fs::read_to_string(&key_path).expect("key"), first_key);
    again.terminate();
    assert!(again.wait_exit(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_command_probes_health_and_ready() {
    let dir = workdir();
    let mut server = KilnProcess::spawn(kiln(dir.path()));
    let url = server.wait_until_serving();
    let port = url.rsplit(':').next().expect("port").to_owned();
    for args in [vec!["healthcheck"], vec!["healthcheck", "--ready"]] {
        let status = kiln(dir.path()).args(&args).env("DIFY_PORT", &port).status().expect("run healthcheck");
        assert!(status.success(), "{args:?}");
    }
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());
    let output =
        kiln(dir.path()).arg("healthcheck").env("DIFY_PORT", &port).output().expect("run healthcheck");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot connect"));
}

#[test]
fn config_check_exits_non_zero_with_every_problem() {
    let dir = workdir();
    let ok = kiln(dir.path()).args(["config", "check"]).output().expect("run");
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("configuration OK"));

    std::fs::write(dir.path().join(".env"), "LOG_LEVEL=INFO\nDB_TYPE=mongodb\nSECERT_KEY=x\n")
        .expect("write .env");
    let bad = kiln(dir.path())
        .args(["config", "check"])
        .env("DB_PORT", "abc")
        .env("DB_PASSWORD", "hunter2")
        .env("CELERY_BROKER_URL", "amqp://guest:hunter2@rabbit//")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.contains("3 problem(s)"), "{stdout}");
    assert!(stdout.contains("DB_PORT=\"abc\" (from environment)"), "{stdout}");
    assert!(stdout.contains("DB_TYPE=\"mongodb\" (from .env:2)"), "{stdout}");
    assert!(stdout.contains("CELERY_BROKER_URL="), "{stdout}");
    assert!(stdout.contains("did you mean SECRET_KEY?"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "secret leaked: {stdout}");

    // A role refuses to start on the same configuration, with the same report.
    let role = kiln(dir.path()).arg("api").env("DB_PORT", "abc").output().expect("run");
    assert_eq!(role.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&role.stderr).contains("DB_PORT=\"abc\" (from environment)"));
}

#[test]
fn config_show_masks_secrets_and_names_sources() {
    let dir = workdir();
    let output = kiln(dir.path())
        .args(["config", "show", "--port", "7001"])
        .env("DB_PASSWORD", "hunter2")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("DIFY_PORT") && l.contains("\"7001\"") && l.contains("[--port]")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("DB_PASSWORD") && l.contains("\"***\"") && l.contains("[environment]")),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("DB_TYPE") && l.contains("[default]")), "{stdout}");
    assert!(!stdout.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_checks_redis_when_configured() {
    let dir = workdir();
    let mut command = kiln(dir.path());
    command.env("REDIS_HOST", "127.0.0.1").env("REDIS_PORT", "6379");
    let mut server = KilnProcess::spawn(command);
    let url = server.wait_until_serving();
    let body: serde_json::Value =
        common::get(format!("{url}/ready")).await.expect("ready").json().await.expect("json");
    assert_eq!(body["status"], "ok", "{body}");
    assert!(
        body["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["name"] == "redis" && c["status"] == "ok")
    );
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(30)).success());

    // Nothing listens on the broker's port: /ready names it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut command = kiln(dir.path());
    command.env("CELERY_BROKER_URL", format!("redis://127.0.0.1:{port}/1"));
    let mut server = KilnProcess::spawn(command);
    let url = server.wait_until_serving();
    let response = common::get(format!("{url}/ready")).await.expect("ready");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    // Standalone runs its worker on that broker, so the job store is reported as well.
    assert_eq!(body["failing"], serde_json::json!(["broker", "jobs"]), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_a_json_408() {
    let ProxiedApi { proxy, url, .. } = &api_behind_proxy(&[("GUNICORN_TIMEOUT", "1")]).await;
    proxy.delay_next_reply(Duration::from_millis(2000));
    let response = common::get(format!("{url}/ready")).await.expect("ready");
    assert_eq!(response.status(), 408);
    let body: serde_json::Value = response.json().await.expect("json 408");
    assert_eq!(body["code"], "request_timeout");
    assert_eq!(body["status"], 408);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_follows_the_configured_origins() {
    let dir = workdir();
    let log_file = dir.path().join("logs/server.log");
    let mut command = kiln(dir.path());
    command
        .env("CONSOLE_WEB_URL", "https://console.example.com")
        .env("WEB_API_CORS_ALLOW_ORIGINS", "https://app.example.com")
        .env("LOG_FILE", &log_file);
    let mut server = KilnProcess::spawn(command);
    let url = server.wait_until_serving();
    let client = common::http();
    let preflight = |path: &str, origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{url}{path}"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };

    // Console: CONSOLE_CORS_ALLOW_ORIGINS is empty, so CONSOLE_WEB_URL's origin, with credentials.
    let allowed = preflight("/console/api/login", "https://console.example.com").await.expect("preflight");
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://console.example.com");
    assert_eq!(allowed.headers()["access-control-allow-credentials"], "true");
    let denied = preflight("/console/api/login", "https://evil.example.com").await.expect("preflight");
    assert!(!denied.headers().contains_key("access-control-allow-origin"));

    let web = preflight("/api/messages", "https://app.example.com").await.expect("preflight");
    assert_eq!(web.headers()["access-control-allow-origin"], "https://app.example.com");
    let service = preflight("/v1/datasets", "https://anything.example.org").await.expect("preflight");
    assert_eq!(service.headers()["access-control-allow-origin"], "*");

    // LOG_FILE receives the same lines as standard error.
    let logged = std::fs::read_to_string(&log_file).expect("log file written");
    assert!(logged.contains("is serving at"), "{logged}");
}
