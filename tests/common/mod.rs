//! Helpers for integration tests: the real `kiln` binary, fresh databases on the local
//! PostgreSQL, and a TCP proxy that can slow down or cut a connection.
#![allow(dead_code)] // each test binary uses a different subset

pub mod knowledge;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const PG_HOST: &str = "127.0.0.1";
pub const PG_PORT: u16 = 5432;

/// The admin URL of the local PostgreSQL (trust auth), overridable for other machines.
pub fn pg_admin_url() -> String {
    std::env::var("KILN_TEST_PG_URL")
        .unwrap_or_else(|_| format!("postgres://postgres@{PG_HOST}:{PG_PORT}/postgres"))
}

/// A fresh PostgreSQL database, dropped when the value is dropped.
pub struct PgDatabase {
    pub name: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let name = format!("kiln_t_{}", uuid::Uuid::new_v4().simple());
        let pool = sqlx::PgPool::connect(&pg_admin_url()).await.expect("connect to local PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .expect("create database");
        pool.close().await;
        Self { name }
    }

    /// A URL for this database.
    pub fn url(&self) -> String {
        let admin = pg_admin_url();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        format!("{base}/{}", self.name)
    }

    /// A pool on this database, for assertions.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.url()).await.expect("connect to test database")
    }

    /// The `DB_*` variables that point kiln at this database through `host:port`.
    pub fn env_via(&self, host: &str, port: u16) -> Vec<(String, String)> {
        vec![
            ("DB_TYPE".into(), "postgresql".into()),
            ("DB_HOST".into(), host.into()),
            ("DB_PORT".into(), port.to_string()),
            ("DB_USERNAME".into(), "postgres".into()),
            ("DB_DATABASE".into(), self.name.clone()),
        ]
    }

    /// The `DB_*` variables for direct access.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_via(PG_HOST, PG_PORT)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee, so use a private one on its own thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&pg_admin_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// A `kiln` command with a clean environment, run in `dir`.
pub fn kiln(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_OUTPUT_FORMAT", "json")
        .env("DIFY_BIND_ADDRESS", "127.0.0.1")
        .env("DIFY_PORT", "0")
        .stdin(Stdio::null());
    command
}

/// A running `kiln` process whose standard error is collected line by line.
pub struct KilnProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl KilnProcess {
    pub fn spawn(mut command: Command) -> Self {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn kiln");
        let stderr = child.stderr.take().expect("stderr piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        Self { child, lines }
    }

    /// Every line logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().expect("log lock").join("\n")
    }

    /// Waits for a log line containing `needle`; panics with the log on timeout or exit.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines.lock().expect("log lock").iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("kiln exited ({status}) before logging {needle:?}:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "timed out waiting for {needle:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the API logs its URL, and returns it.
    pub fn wait_until_serving(&mut self) -> String {
        let line = self.wait_for_log("is serving at", Duration::from_secs(60));
        let value: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        value["url"].as_str().expect("url field").to_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status =
            Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "kiln did not exit in {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for KilnProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP forwarder to `upstream` that can delay replies or cut every connection, to make a
/// real dependency slow or unreachable without touching the shared server.
pub struct TcpProxy {
    pub addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let delay_ms = Arc::new(AtomicU64::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let (delay, stop) = (delay_ms.clone(), cut.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                if stop.load(Ordering::SeqCst) {
                    continue;
                }
                let (delay, stop) = (delay.clone(), stop.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let stop_up = stop.clone();
                    let upstream_pump = tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            match client_read.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) if !stop_up.load(Ordering::SeqCst) => {
                                    if server_write.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                                Ok(_) => return,
                            }
                        }
                    });
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let read = tokio::select! {
                            read = server_read.read(&mut buf) => read,
                            () = tokio::time::sleep(Duration::from_millis(100)), if stop.load(Ordering::SeqCst) => break,
                        };
                        match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let ms = delay.swap(0, Ordering::SeqCst);
                                if ms > 0 {
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                }
                                if stop.load(Ordering::SeqCst)
                                    || client_write.write_all(&buf[..n]).await.is_err()
                                {
                                    break;
                                }
                            }
                        }
                    }
                    upstream_pump.abort();
                });
            }
        });
        Self { addr, delay_ms, cut, task }
    }

    /// Holds back the next reply from upstream (on any connection) by `delay`, once, so a
    /// request that needs the dependency takes at least that long.
    pub fn delay_next_reply(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Drops every open connection and refuses new ones (the dependency is "down").
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A scratch working directory for one kiln process (its storage and SQLite live there).
pub fn workdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The path of a file inside a directory, as a string.
pub fn path_str(dir: &Path, name: &str) -> String {
    PathBuf::from(dir).join(name).display().to_string()
}

/// A minimal browser for the console API: keeps cookies from Set-Cookie and can send the
/// CSRF header from the csrf cookie, as Dify's web client does.
pub struct Browser {
    pub url: String,
    pub client: reqwest::Client,
    pub cookies: std::collections::BTreeMap<String, String>,
    /// Raw Set-Cookie headers of the last response.
    pub last_set_cookies: Vec<String>,
}

impl Browser {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            client: http(),
            cookies: Default::default(),
            last_set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// The csrf cookie's value, whatever its prefix.
    pub fn csrf(&self) -> Option<String> {
        self.cookies.iter().find(|(k, _)| k.ends_with("csrf_token")).map(|(_, v)| v.clone())
    }

    /// Sends a request with the cookies and, if `csrf`, the X-CSRF-Token header.
    pub async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        csrf: bool,
    ) -> (u16, serde_json::Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if !self.cookies.is_empty() {
            request = request.header("Cookie", self.cookie_header());
        }
        if csrf && let Some(token) = self.csrf() {
            request = request.header("X-CSRF-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        self.last_set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for raw in &self.last_set_cookies {
            let pair = raw.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || raw.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    pub async fn get(&mut self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None, true).await
    }

    pub async fn post(&mut self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, Some(body), true).await
    }

    /// Logs in with the password Base64-encoded, as the web client sends it.
    pub async fn login(&mut self, email: &str, password: &str) -> (u16, serde_json::Value) {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(password);
        self.post("/console/api/login", serde_json::json!({"email": email, "password": encoded})).await
    }
}

/// An HTTP client for tests. reqwest is built with rustls but no built-in crypto provider
/// (the same build kiln's S3 client uses), so the ring provider is installed first.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `GET url` with [`http`].
pub async fn get(url: String) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// A minimal SMTP server for tests: accepts every message and keeps its raw text, so a test
/// can read the mail kiln's real SMTP client delivered.
pub struct SmtpStandIn {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpStandIn {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let sink = sink.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = tokio::io::BufReader::new(read);
                    let _ = write.write_all(b"220 localhost ESMTP kiln-test\r\n").await;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        let command = line.trim_end().to_ascii_uppercase();
                        let reply: &[u8] = if command.starts_with("EHLO") {
                            b"250-localhost\r\n250 8BITMIME\r\n"
                        } else if command == "DATA" {
                            let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                            let mut data = String::new();
                            loop {
                                line.clear();
                                match tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(_) if line == ".\r\n" => break,
                                    Ok(_) => data.push_str(&line),
                                }
                            }
                            sink.lock().expect("smtp lock").push(data);
                            b"250 queued\r\n"
                        } else if command == "QUIT" {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, messages, task }
    }

    /// Waits for the `n`th message (1-based) and returns it.
    pub async fn wait_for_message(&self, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.messages.lock().expect("smtp lock").get(n - 1) {
                return message.clone();
            }
            assert!(Instant::now() < deadline, "no mail #{n} arrived within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn count(&self) -> usize {
        self.messages.lock().expect("smtp lock").len()
    }
}

impl Drop for SmtpStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A private redis-server (or sentinel) on a free port, for tests that stop, restart or fail
/// over a server without touching the shared one.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// A redis-server with these extra arguments, its files in a fresh directory.
    pub fn start(args: &[&str]) -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: workdir(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        redis.launch();
        redis
    }

    /// A sentinel whose configuration file (written into its directory, which it rewrites)
    /// holds `lines` after the port.
    pub fn sentinel(lines: &str) -> Self {
        let mut sentinel = Self { port: free_port(), dir: workdir(), args: Vec::new(), child: None };
        let config = sentinel.dir.path().join("sentinel.conf");
        std::fs::write(&config, format!("bind 127.0.0.1\nport {}\n{lines}\n", sentinel.port))
            .expect("write sentinel.conf");
        sentinel.args = vec![config.to_string_lossy().into_owned(), "--sentinel".to_owned()];
        sentinel.launch();
        sentinel
    }

    /// Starts the process (again) with the same port, directory and arguments.
    pub fn launch(&mut self) {
        let mut command = std::process::Command::new("redis-server");
        if self.args.last().map(String::as_str) == Some("--sentinel") {
            command.args(&self.args);
        } else {
            command
                .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--dir"])
                .arg(self.dir.path())
                .args(&self.args);
        }
        let child = command.stdout(std::process::Stdio::null()).spawn().expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait (Redis writes its append-only file first).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// SIGKILL and wait: the server vanishes as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
