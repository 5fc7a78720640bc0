//! Queue benchmark driver, run by `bench/run`: measures kiln's Redis job store and a real
//! `kiln worker` process the way the Celery and BullMQ anchors are measured (one producer,
//! enqueue and drain one after the other, no-op jobs, concurrency 2), and prints one JSON
//! line per figure.
//!
//! Usage: queue_bench --kiln target/release/kiln [--redis URL] [--jobs N] [--rep K]
//!        [--concurrency C] [--prefetch P] [--latency-samples S]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::infra::queue::{JobSpec, JobStore, RedisStore};

const QUEUE: &str = "mail";
const PROBE: &str = "kiln.probe";

struct Args {
    kiln: PathBuf,
    redis: String,
    jobs: usize,
    rep: u32,
    concurrency: u32,
    prefetch: u32,
    latency_samples: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        kiln: PathBuf::from("target/release/kiln"),
        redis: "redis://127.0.0.1:6379/0".into(),
        jobs: 20_000,
        rep: 1,
        concurrency: 2,
        prefetch: 1,
        latency_samples: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|_| format!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--kiln" => args.kiln = PathBuf::from(&value),
            "--redis" => args.redis = value.clone(),
            "--jobs" => args.jobs = number()?,
            "--rep" => args.rep = number()? as u32,
            "--concurrency" => args.concurrency = number()? as u32,
            "--prefetch" => args.prefetch = number()? as u32,
            "--latency-samples" => args.latency_samples = number()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    // The worker runs in a directory of its own, so the binary needs an absolute path.
    args.kiln = std::fs::canonicalize(&args.kiln).map_err(|e| format!("{}: {e}", args.kiln.display()))?;
    Ok(args)
}

/// One figure, as a JSON line the table script reads.
fn emit(args: &Args, variant: &str, metric: &str, value: f64, unit: &str) {
    let row = serde_json::json!({
        "bench": "kiln", "variant": variant, "metric": metric,
        "value": (value * 1000.0).round() / 1000.0, "unit": unit, "rep": args.rep,
    });
    println!("{row}");
    eprintln!("  kiln | {variant} | {metric} = {value:.3} {unit}");
}

fn noop() -> JobSpec {
    JobSpec::new(QUEUE, PROBE, b"{}".to_vec())
}

/// A `kiln worker` on this store, as an operator would start it.
struct Worker {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Worker {
    fn spawn(args: &Args, prefix: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let child = Command::new(&args.kiln)
            .arg("worker")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KILN_DATA_DIR", dir.path())
            .env("MIGRATION_ENABLED", "true")
            .env("CELERY_BROKER_URL", &args.redis)
            .env("KILN_QUEUE_PREFIX", prefix)
            .env("CELERY_QUEUES", QUEUE)
            .env("CELERY_WORKER_AMOUNT", args.concurrency.to_string())
            .env("CELERY_PREFETCH_MULTIPLIER", args.prefetch.to_string())
            .env("LOG_LEVEL", "WARNING")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", args.kiln.display()))?;
        Ok(Self { child, _dir: dir })
    }

    /// Resident and peak resident memory, MiB, from /proc.
    fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn stop(mut self) {
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

/// Jobs not finished yet (ready, delayed or running): finished jobs are trimmed past
/// KILN_JOB_DONE_MAX, so they cannot be counted directly.
async fn outstanding(store: &JobStore) -> Result<(u64, u64), String> {
    let counts = store.counts(&[QUEUE.to_owned()]).await.map_err(|e| e.to_string())?;
    let c = &counts[0];
    Ok((c.ready + c.delayed + c.running, c.ready + c.delayed))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn run(args: &Args) -> Result<(), String> {
    let prefix = format!("kiln-bench-{}", uuid::Uuid::new_v4().simple());
    let store = JobStore::Redis(RedisStore::connect(&args.redis, &prefix).await.map_err(|e| e.to_string())?);
    let n = args.jobs;
    let variant = format!("noop c{} prefetch{}", args.concurrency, args.prefetch);

    // 1. An idle worker: memory, then push → handler start, one job at a time.
    let worker = Worker::spawn(args, &prefix)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = worker.memory();
    emit(args, &variant, "worker idle RSS", idle_rss, "MiB");
    let mut latencies = Vec::with_capacity(args.latency_samples);
    for _ in 0..args.latency_samples {
        let pushed = store.push(&[noop()]).await.map_err(|e| e.to_string())?;
        let id = pushed[0].id().to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let job = store.inspect(&id).await.map_err(|e| e.to_string())?.ok_or("probe job vanished")?;
            if let Some(started) = job.started_at_ms {
                latencies.push(started.saturating_sub(job.created_at_ms) as f64);
                break;
            }
            if Instant::now() > deadline {
                return Err("an idle worker did not take a job within 10 s".into());
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    emit(
        args,
        &variant,
        "push -> handler start, idle worker (median, 1 ms resolution)",
        median(&mut latencies),
        "ms",
    );
    worker.stop();
    store.purge(QUEUE, "done").await.map_err(|e| e.to_string())?;

    // 2. Enqueue: one job per round trip, then batches of 1,000 (no worker running).
    let started = Instant::now();
    for _ in 0..n {
        store.push(&[noop()]).await.map_err(|e| e.to_string())?;
    }
    emit(
        args,
        "push x1",
        "enqueue rate (one push per call, 1 producer)",
        n as f64 / started.elapsed().as_secs_f64(),
        "jobs/s",
    );
    store.purge(QUEUE, "ready").await.map_err(|e| e.to_string())?;
    let batch: Vec<JobSpec> = (0..1000).map(|_| noop()).collect();
    let started = Instant::now();
    for _ in 0..n.div_ceil(1000) {
        store.push(&batch).await.map_err(|e| e.to_string())?;
    }
    let pushed = n.div_ceil(1000) * 1000;
    emit(
        args,
        "push x1000",
        "enqueue rate (1,000 per call)",
        pushed as f64 / started.elapsed().as_secs_f64(),
        "jobs/s",
    );

    // 3. Drain the backlog with a fresh worker: spawn → first job taken, rate, memory.
    let spawned = Instant::now();
    let worker = Worker::spawn(args, &prefix)?;
    let deadline = spawned + Duration::from_secs(300);
    let mut first_taken = None;
    let mut peak = 0.0f64;
    loop {
        let (left, untaken) = outstanding(&store).await?;
        if first_taken.is_none() && (untaken as usize) < pushed {
            first_taken = Some(Instant::now());
        }
        peak = peak.max(worker.memory().1);
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("drain did not finish in 300 s ({left} of {pushed} left)"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let finished_at = Instant::now();
    let first = first_taken.unwrap_or(finished_at);
    emit(args, &variant, "worker spawn -> first job taken", first.duration_since(spawned).as_secs_f64(), "s");
    emit(
        args,
        &variant,
        "drain rate (first take -> all acked)",
        pushed as f64 / finished_at.duration_since(first).as_secs_f64(),
        "jobs/s",
    );
    emit(args, &variant, "worker peak RSS", peak, "MiB");
    worker.stop();
    for state in ["done", "dead", "ready"] {
        store.purge(QUEUE, state).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("queue_bench: {error}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(&args).await {
        eprintln!("queue_bench: {error}");
        std::process::exit(1);
    }
}
