//! Knowledge benchmark driver, run by `bench/run`: a real `kiln` (standalone: API, worker
//! and beat in one process) on SQLite or PostgreSQL; 1,000 documents of ~10 KB through the
//! economy pipeline (create-by-text → indexed), then retrieval over the ~10,000 segments
//! they make. Prints one JSON line per figure.
//!
//! Usage: knowledge_bench --kiln target/release/kiln [--backend sqlite|postgres]
//!        [--documents N] [--queries N] [--rep K] [--pg postgres://postgres@127.0.0.1:5432]

#[path = "common.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

struct Args {
    kiln: PathBuf,
    backend: String,
    documents: usize,
    queries: usize,
    rep: u32,
    pg: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        kiln: PathBuf::from("target/release/kiln"),
        backend: "sqlite".into(),
        documents: 1000,
        queries: 2000,
        rep: 1,
        pg: "postgres://postgres@127.0.0.1:5432".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|_| format!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--kiln" => args.kiln = PathBuf::from(&value),
            "--backend" => args.backend = value.clone(),
            "--documents" => args.documents = number()?,
            "--queries" => args.queries = number()?,
            "--rep" => args.rep = number()? as u32,
            "--pg" => args.pg = value.clone(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    args.kiln = std::fs::canonicalize(&args.kiln).map_err(|e| format!("{}: {e}", args.kiln.display()))?;
    Ok(args)
}

fn emit(args: &Args, metric: &str, value: f64, unit: &str) {
    let variant = format!("economy, {}", args.backend);
    let row = json!({"bench": "kiln", "variant": variant, "metric": metric,
        "value": (value * 1000.0).round() / 1000.0, "unit": unit, "rep": args.rep});
    println!("{row}");
    eprintln!("  kiln | {variant} | {metric} = {value:.3} {unit}");
}

/// The server, stopped by PID when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(args: &Args, db_env: &[(String, String)]) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let child = Command::new(&args.kiln)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DIFY_BIND_ADDRESS", "127.0.0.1")
        .env("DIFY_PORT", port.to_string())
        .env("LOG_LEVEL", "WARNING")
        .env("CELERY_WORKER_AMOUNT", "2")
        .envs(db_env.iter().cloned())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.kiln.display()))?;
    let server = Server { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("{}/health", server.url)).send().await
            && response.status() == 200
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            return Err("kiln did not answer /health within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ~10 KB of text in ten paragraphs of distinct words.
fn document(n: usize) -> String {
    (0..10)
        .map(|p| {
            let words: Vec<String> =
                (0..150).map(|w| format!("w{}x{}", (n * 31 + p * 7 + w) % 5000, (w * 13 + p) % 97)).collect();
            format!("Document {n} part {p}. {}\n\n", words.join(" "))
        })
        .collect()
}

async fn run(args: &Args) -> Result<(), String> {
    let mut db_env = Vec::new();
    let mut pg_database = None;
    if args.backend == "postgres" {
        let name = format!("kiln_bench_{}", uuid::Uuid::new_v4().simple());
        let admin =
            sqlx::PgPool::connect(&format!("{}/postgres", args.pg)).await.map_err(|e| e.to_string())?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .map_err(|e| e.to_string())?;
        let url = url::Url::parse(&args.pg).map_err(|e| e.to_string())?;
        db_env = vec![
            ("DB_TYPE".to_owned(), "postgresql".to_owned()),
            ("DB_HOST".to_owned(), url.host_str().unwrap_or("127.0.0.1").to_owned()),
            ("DB_PORT".to_owned(), url.port().unwrap_or(5432).to_string()),
            ("DB_USERNAME".to_owned(), url.username().to_owned()),
            ("DB_PASSWORD".to_owned(), url.password().unwrap_or_default().to_owned()),
            ("DB_DATABASE".to_owned(), name.clone()),
        ];
        pg_database = Some((admin, name));
    }
    let result = measure(args, &db_env).await;
    if let Some((admin, name)) = pg_database {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&admin)
            .await;
    }
    result
}

async fn measure(args: &Args, db_env: &[(String, String)]) -> Result<(), String> {
    let server = start(args, db_env).await?;
    let client = reqwest::Client::new();
    let key = common::api_key(&client, &server.url).await?;
    let v1 = |path: &str| format!("{}/v1{path}", server.url);
    let dataset: Value = client
        .post(v1("/datasets"))
        .bearer_auth(&key)
        .json(&json!({"name": "Bench", "indexing_technique": "economy"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let ds = dataset["id"].as_str().ok_or_else(|| format!("no dataset: {dataset}"))?.to_owned();
    let rule = json!({"mode": "custom", "rules": {"pre_processing_rules": [{"id": "remove_extra_spaces", "enabled": true}],
        "segmentation": {"separator": "\n\n", "max_tokens": 1000, "chunk_overlap": 0}}});

    // Indexing: every document pushed (8 at a time), timed until all are available.
    let started = Instant::now();
    let create = v1(&format!("/datasets/{ds}/document/create-by-text"));
    let mut pending = futures::stream::iter(0..args.documents)
        .map(|n| {
            let body = json!({"name": format!("doc-{n}"), "text": document(n), "process_rule": rule});
            let request = client.post(&create).bearer_auth(&key).json(&body).send();
            async move { request.await.map(|r| r.status().as_u16()) }
        })
        .buffer_unordered(8);
    while let Some(status) = pending.next().await {
        let status = status.map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("create-by-text answered {status}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let detail: Value = client
            .get(v1(&format!("/datasets/{ds}")))
            .bearer_auth(&key)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if detail["total_available_documents"].as_u64() == Some(args.documents as u64) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("indexing did not finish in 900 s: {detail}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    emit(
        args,
        "economy indexing, ~10 KB documents",
        args.documents as f64 / started.elapsed().as_secs_f64(),
        "docs/s",
    );

    // Retrieval: keyword queries, 8 in flight.
    let retrieve = v1(&format!("/datasets/{ds}/retrieve"));
    let started = Instant::now();
    let mut latencies: Vec<f64> = futures::stream::iter(0..args.queries)
        .map(|n| {
            let query = format!("w{}x{} w{}x{}", (n * 17) % 5000, n % 97, (n * 29) % 5000, (n * 3) % 97);
            let request = client.post(&retrieve).bearer_auth(&key).json(&json!({"query": query})).send();
            async move {
                let sent = Instant::now();
                let ok = request.await.map(|r| r.status() == 200).unwrap_or(false);
                (ok, sent.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(8)
        .filter_map(|(ok, ms)| async move { ok.then_some(ms) })
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    if latencies.len() != args.queries {
        return Err(format!("{} of {} retrievals failed", args.queries - latencies.len(), args.queries));
    }
    latencies.sort_by(f64::total_cmp);
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    emit(args, "retrieve, keyword, 8 concurrent", args.queries as f64 / elapsed, "req/s");
    emit(args, "retrieve p50", p(0.50), "ms");
    emit(args, "retrieve p99", p(0.99), "ms");
    Ok(())
}

#[tokio::main]
async fn main() {
    // reqwest is built without a crypto provider of its own; ring is the one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("knowledge_bench: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args).await {
        eprintln!("knowledge_bench: {error}");
        std::process::exit(1);
    }
}
