//! Service benchmark driver, run by `bench/run`: how fast a release `kiln` starts, how much
//! memory each role holds when idle, and what the API serves under wrk, measured the way the
//! gunicorn anchor is (spawn → first 200 on /health; RSS 2 s after ready; wrk -t1 -c50
//! --latency). Prints one JSON line per figure.
//!
//! Parts (`--parts startup,http`):
//! - startup: for each repetition, `MODE=api` on a migrated SQLite file and on a migrated
//!   PostgreSQL database with Redis, and `MODE=standalone` on a migrated SQLite file: spawn →
//!   first 200 on /health (polled every 5 ms); the PostgreSQL api and the standalone process
//!   then idle 2 s for their VmRSS. `MODE=worker` and `MODE=beat` on PostgreSQL + Redis:
//!   VmRSS 2 s after their "consuming" / "scheduling" log line.
//! - http: `MODE=api` on PostgreSQL + Redis with an owner, a dataset API key and 20 datasets;
//!   wrk on `/health`, then (after a warm-up) on `GET /v1/datasets?limit=20` with the key.
//!
//! The PostgreSQL database is fresh and dropped at the end; Redis keys live under a fresh
//! prefix and are deleted at the end. Every process is stopped by PID; everything binds to
//! 127.0.0.1.
//!
//! Usage: service_bench --kiln target/release/kiln [--parts startup,http] [--reps N]
//!        [--wrk wrk|none] [--wrk-seconds 10] [--wrk-warmup-seconds 2] [--wrk-reps N]
//!        [--datasets 20] [--pg postgres://postgres@127.0.0.1:5432] [--redis-host 127.0.0.1]
//!        [--redis-port 6379] [--redis-db 0]

#[path = "common.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

struct Args {
    kiln: PathBuf,
    parts: Vec<String>,
    reps: u32,
    wrk: Option<String>,
    wrk_seconds: u64,
    wrk_warmup_seconds: u64,
    wrk_reps: u32,
    datasets: usize,
    pg: String,
    redis_host: String,
    redis_port: u16,
    redis_db: u32,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        kiln: PathBuf::from("target/release/kiln"),
        parts: vec!["startup".into(), "http".into()],
        reps: 5,
        wrk: Some("wrk".into()),
        wrk_seconds: 10,
        wrk_warmup_seconds: 2,
        wrk_reps: 3,
        datasets: 20,
        pg: "postgres://postgres@127.0.0.1:5432".into(),
        redis_host: "127.0.0.1".into(),
        redis_port: 6379,
        redis_db: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|_| anyhow!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--kiln" => args.kiln = PathBuf::from(&value),
            "--parts" => args.parts = value.split(',').map(|p| p.trim().to_owned()).collect(),
            "--reps" => args.reps = u32::try_from(number()?)?,
            "--wrk" => args.wrk = (value != "none" && !value.is_empty()).then(|| value.clone()),
            "--wrk-seconds" => args.wrk_seconds = number()?.max(1),
            "--wrk-warmup-seconds" => args.wrk_warmup_seconds = number()?,
            "--wrk-reps" => args.wrk_reps = u32::try_from(number()?)?,
            "--datasets" => args.datasets = usize::try_from(number()?)?,
            "--pg" => args.pg = value.clone(),
            "--redis-host" => args.redis_host = value.clone(),
            "--redis-port" => args.redis_port = u16::try_from(number()?)?,
            "--redis-db" => args.redis_db = u32::try_from(number()?)?,
            other => bail!("unknown flag {other}"),
        }
    }
    if let Some(unknown) = args.parts.iter().find(|p| !matches!(p.as_str(), "startup" | "http")) {
        bail!("unknown part {unknown:?} (startup, http)");
    }
    // The processes run in directories of their own, so the binary needs an absolute path.
    args.kiln = std::fs::canonicalize(&args.kiln).with_context(|| args.kiln.display().to_string())?;
    Ok(args)
}

/// One figure, as a JSON line the table script reads.
fn emit(variant: &str, metric: &str, value: f64, unit: &str, rep: u32) {
    let row = json!({"bench": "kiln", "variant": variant, "metric": metric,
        "value": (value * 1000.0).round() / 1000.0, "unit": unit, "rep": rep});
    println!("{row}");
    eprintln!("  kiln | {variant} | {metric} = {value:.3} {unit} (rep {rep})");
}

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Resident memory of a process, MiB, from /proc.
fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A memory field of /proc/PID/status (`VmRSS:`, `RssAnon:`), MiB. RssAnon is the process's
/// own memory: RSS also counts the pages of the binary it has mapped, which every kiln
/// process on the host shares through the page cache.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Where one kiln deployment keeps its state: a directory (storage, SQLite files) and the
/// variables that point the roles at their stores.
struct Deployment {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Deployment {
    fn sqlite() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let env = vec![("DB_TYPE".to_owned(), "sqlite".to_owned())];
        Ok(Self { dir, env })
    }

    fn postgres_redis(args: &Args, database: &str, redis_prefix: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = url::Url::parse(&args.pg)?;
        let env = vec![
            ("DB_TYPE".to_owned(), "postgresql".to_owned()),
            ("DB_HOST".to_owned(), url.host_str().unwrap_or("127.0.0.1").to_owned()),
            ("DB_PORT".to_owned(), url.port().unwrap_or(5432).to_string()),
            ("DB_USERNAME".to_owned(), url.username().to_owned()),
            ("DB_PASSWORD".to_owned(), url.password().unwrap_or_default().to_owned()),
            ("DB_DATABASE".to_owned(), database.to_owned()),
            ("REDIS_HOST".to_owned(), args.redis_host.clone()),
            ("REDIS_PORT".to_owned(), args.redis_port.to_string()),
            ("REDIS_DB".to_owned(), args.redis_db.to_string()),
            ("REDIS_KEY_PREFIX".to_owned(), format!("{redis_prefix}:")),
            ("KILN_QUEUE_PREFIX".to_owned(), redis_prefix.to_owned()),
        ];
        Ok(Self { dir, env })
    }

    /// `kiln` with a clean environment: this deployment's stores, loopback only, quiet logs.
    fn command(&self, args: &Args) -> Command {
        let mut command = Command::new(&args.kiln);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KILN_DATA_DIR", self.dir.path())
            .env("SECRET_KEY", "kiln-bench-secret-key-not-for-production-use-0123456789")
            .env("DIFY_BIND_ADDRESS", "127.0.0.1")
            .env("LOG_LEVEL", "WARNING")
            .env("CELERY_WORKER_AMOUNT", "2")
            .env("KILN_SHUTDOWN_GRACE_PERIOD", "5")
            .envs(self.env.iter().cloned())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        command
    }

    /// `kiln upgrade-db`, so every timed start finds its schema in place.
    fn migrate(&self, args: &Args) -> Result<()> {
        let status = self.command(args).arg("upgrade-db").stderr(Stdio::inherit()).status()?;
        if !status.success() {
            bail!("kiln upgrade-db exited with {status}");
        }
        Ok(())
    }

    /// Starts a role serving HTTP on a free port.
    fn spawn_http(&self, args: &Args, mode: &str) -> Result<Proc> {
        let port = free_port()?;
        let child = self
            .command(args)
            .env("MODE", mode)
            .env("DIFY_PORT", port.to_string())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", args.kiln.display()))?;
        Ok(Proc { child, spawned: Instant::now(), url: format!("http://127.0.0.1:{port}"), ready: None })
    }

    /// Starts a role without HTTP; `marker` is the log line that says it is running.
    fn spawn_quiet(&self, args: &Args, mode: &str, marker: &'static str) -> Result<Proc> {
        let mut child = self
            .command(args)
            .env("MODE", mode)
            .env("LOG_LEVEL", "INFO")
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", args.kiln.display()))?;
        let spawned = Instant::now();
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("stderr not piped"))?;
        let (tx, rx) = mpsc::channel();
        // Reads to the end, so the pipe never fills; passes warnings and errors on.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains(marker) {
                    let _ = tx.send(Instant::now());
                } else if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("{line}");
                }
            }
        });
        Ok(Proc { child, spawned, url: String::new(), ready: Some(rx) })
    }
}

/// A kiln process, stopped by PID (SIGTERM, then SIGKILL after 20 s) when dropped.
struct Proc {
    child: Child,
    spawned: Instant,
    url: String,
    ready: Option<mpsc::Receiver<Instant>>,
}

impl Proc {
    /// Spawn → first 200 on /health, polled every 5 ms (60 s at most).
    async fn until_healthy(&mut self, client: &reqwest::Client) -> Result<Duration> {
        let deadline = self.spawned + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/health", self.url)).send().await
                && response.status() == 200
            {
                return Ok(self.spawned.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("kiln exited with {status} before answering /health");
            }
            if Instant::now() > deadline {
                bail!("kiln did not answer /health within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Spawn → the role's startup log line (60 s at most).
    fn until_logged(&mut self) -> Result<Duration> {
        let rx = self.ready.as_ref().ok_or_else(|| anyhow!("no log to watch"))?;
        let deadline = self.spawned + Duration::from_secs(60);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(at) => return Ok(at.duration_since(self.spawned)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("kiln closed its log before it was ready"),
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("kiln exited with {status} before it was ready");
            }
            if Instant::now() > deadline {
                bail!("kiln was not ready within 60 s");
            }
        }
    }

    fn rss(&self) -> f64 {
        rss_mib(self.child.id())
    }

    /// Emits the idle figures: RSS and its anonymous (not file-backed) part.
    fn emit_idle(&self, variant: &str, rep: u32) {
        emit(variant, "idle RSS", self.rss(), "MiB", rep);
        emit(variant, "idle anonymous RSS", status_mib(self.child.id(), "RssAnon:"), "MiB", rep);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The idle memory every serving role reaches once started, read after 2 s.
const IDLE_AFTER: Duration = Duration::from_secs(2);

async fn startup(args: &Args, pg: &Deployment, client: &reqwest::Client) -> Result<()> {
    let api_sqlite = Deployment::sqlite()?;
    api_sqlite.migrate(args)?;
    let standalone = Deployment::sqlite()?;
    standalone.migrate(args)?;
    let started = "start -> /health 200";
    for rep in 1..=args.reps {
        eprintln!("[service] startup rep {rep}");
        let mut api = api_sqlite.spawn_http(args, "api")?;
        emit("api, sqlite", started, api.until_healthy(client).await?.as_secs_f64() * 1000.0, "ms", rep);
        drop(api);

        let mut api = pg.spawn_http(args, "api")?;
        emit(
            "api, postgres+redis",
            started,
            api.until_healthy(client).await?.as_secs_f64() * 1000.0,
            "ms",
            rep,
        );
        tokio::time::sleep(IDLE_AFTER).await;
        api.emit_idle("api, postgres+redis", rep);
        drop(api);

        let mut all = standalone.spawn_http(args, "standalone")?;
        emit(
            "standalone, sqlite",
            started,
            all.until_healthy(client).await?.as_secs_f64() * 1000.0,
            "ms",
            rep,
        );
        tokio::time::sleep(IDLE_AFTER).await;
        all.emit_idle("standalone, sqlite", rep);
        drop(all);

        for (mode, marker) in [("worker", "kiln worker is consuming"), ("beat", "kiln beat is scheduling")] {
            let mut role = pg.spawn_quiet(args, mode, marker)?;
            let ready = role.until_logged()?;
            emit(
                &format!("{mode}, postgres+redis"),
                "start -> ready (log line)",
                ready.as_secs_f64() * 1000.0,
                "ms",
                rep,
            );
            tokio::time::sleep(IDLE_AFTER).await;
            role.emit_idle(&format!("{mode}, postgres+redis"), rep);
        }
    }
    Ok(())
}

/// What wrk printed, as figures.
#[derive(Debug, Default)]
struct WrkReport {
    requests_per_s: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    socket_errors: u64,
    non_2xx: u64,
}

/// "142.00us", "2.02ms", "1.20s", "1.00m" → milliseconds.
fn to_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(text: &str) -> WrkReport {
    let mut report = WrkReport::default();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            report.requests_per_s = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("50%") {
            report.p50_ms = to_ms(rest.trim());
        } else if let Some(rest) = line.strip_prefix("99%") {
            report.p99_ms = to_ms(rest.trim());
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            report.socket_errors = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1))
                .filter_map(|n| n.parse::<u64>().ok())
                .sum();
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            report.non_2xx = rest.trim().parse().unwrap_or(0);
        }
    }
    report
}

/// wrk -t1 -c50 -d{seconds}s --latency, stopped by PID if it overruns by 30 s.
fn wrk(wrk: &str, seconds: u64, headers: &[String], url: &str) -> Result<String> {
    let mut command = Command::new(wrk);
    command.args(["-t1", "-c50", &format!("-d{seconds}s"), "--latency"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let mut child = command
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {wrk}"))?;
    let deadline = Instant::now() + Duration::from_secs(seconds + 30);
    loop {
        if let Some(status) = child.try_wait()? {
            let output = child.wait_with_output()?;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            if !status.success() {
                bail!("wrk exited with {status}: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
            }
            return Ok(stdout);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("wrk did not finish within {} s", seconds + 30);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn emit_wrk(variant: &str, report: &WrkReport, rep: u32) -> Result<()> {
    let rate = report.requests_per_s.ok_or_else(|| anyhow!("wrk printed no Requests/sec"))?;
    emit(variant, "req/s", rate, "req/s", rep);
    if let Some(p50) = report.p50_ms {
        emit(variant, "p50 latency", p50, "ms", rep);
    }
    if let Some(p99) = report.p99_ms {
        emit(variant, "p99 latency", p99, "ms", rep);
    }
    emit(variant, "non-2xx responses", report.non_2xx as f64, "count", rep);
    emit(variant, "socket errors (incl. timeouts)", report.socket_errors as f64, "count", rep);
    Ok(())
}

async fn http(args: &Args, wrk_bin: &str, pg: &Deployment, client: &reqwest::Client) -> Result<()> {
    let mut api = pg.spawn_http(args, "api")?;
    api.until_healthy(client).await?;
    let key = common::api_key(client, &api.url).await.map_err(anyhow::Error::msg)?;
    for n in 1..=args.datasets {
        let response = client
            .post(format!("{}/v1/datasets", api.url))
            .bearer_auth(&key)
            .json(&json!({"name": format!("Bench dataset {n}"), "indexing_technique": "economy"}))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("creating dataset {n} answered {}", response.status());
        }
    }
    let list_url = format!("{}/v1/datasets?limit=20", api.url);
    let page: Value =
        client.get(&list_url).bearer_auth(&key).send().await?.error_for_status()?.json().await?;
    let listed = page["data"].as_array().map_or(0, Vec::len);
    if listed != args.datasets.min(20) {
        bail!("GET /v1/datasets?limit=20 listed {listed} datasets, expected {}", args.datasets.min(20));
    }

    for rep in 1..=args.wrk_reps {
        eprintln!("[service] wrk /health rep {rep}");
        let out = wrk(wrk_bin, args.wrk_seconds, &[], &format!("{}/health", api.url))?;
        emit_wrk("api GET /health", &parse_wrk(&out), rep)?;
    }
    let auth = vec![format!("Authorization: Bearer {key}")];
    if args.wrk_warmup_seconds > 0 {
        // Fills the connection pool, as the anchor's warm-up on /accounts does; not recorded.
        wrk(wrk_bin, args.wrk_warmup_seconds, &auth, &list_url)?;
    }
    for rep in 1..=args.wrk_reps {
        eprintln!("[service] wrk /v1/datasets rep {rep}");
        let out = wrk(wrk_bin, args.wrk_seconds, &auth, &list_url)?;
        emit_wrk("api GET /v1/datasets?limit=20, postgres", &parse_wrk(&out), rep)?;
    }
    emit("api, postgres+redis", "RSS after load", api.rss(), "MiB", 1);
    Ok(())
}

/// Deletes every Redis key under the bench's prefixes (bounded SCAN).
async fn clean_redis(args: &Args, prefix: &str) -> Result<u64> {
    let url = format!("redis://{}:{}/{}", args.redis_host, args.redis_port, args.redis_db);
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut deleted = 0u64;
    for pattern in [format!("{{{prefix}}}:*"), format!("{prefix}:*")] {
        let mut cursor = 0u64;
        for _ in 0..100_000 {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                deleted += redis::cmd("DEL").arg(&keys).query_async::<u64>(&mut conn).await?;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(deleted)
}

async fn run(args: &Args) -> Result<()> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let database = format!("kiln_bench_svc_{id}");
    let prefix = format!("kiln-bench-svc-{id}");
    let admin =
        sqlx::PgPool::connect(&format!("{}/postgres", args.pg)).await.context("cannot reach PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&admin).await?;
    let result = measure(args, &database, &prefix).await;
    let dropped =
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")))
            .execute(&admin)
            .await;
    admin.close().await;
    let cleaned = clean_redis(args, &prefix).await;
    if let Err(error) = &dropped {
        eprintln!("service_bench: could not drop database {database}: {error}");
    }
    match &cleaned {
        Ok(n) => eprintln!("[service] dropped {database}; deleted {n} Redis keys under {prefix}"),
        Err(error) => eprintln!("service_bench: could not delete the Redis keys under {prefix}: {error}"),
    }
    result
}

async fn measure(args: &Args, database: &str, prefix: &str) -> Result<()> {
    let pg = Deployment::postgres_redis(args, database, prefix)?;
    pg.migrate(args)?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    if args.parts.iter().any(|p| p == "startup") {
        startup(args, &pg, &client).await?;
    }
    if args.parts.iter().any(|p| p == "http") {
        match &args.wrk {
            Some(wrk_bin) => http(args, wrk_bin, &pg, &client).await?,
            None => eprintln!("[service] no wrk: the HTTP figures are not measured"),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    // reqwest is built without a crypto provider of its own; ring is the one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("service_bench: {error:#}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args).await {
        eprintln!("service_bench: {error:#}");
        std::process::exit(1);
    }
}
