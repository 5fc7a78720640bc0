//! Redis connections built from Dify's `REDIS_*` variables, Sentinel, or `CELERY_BROKER_URL`.
//!
//! Every Redis user in kiln goes through [`RedisTarget`] (where the server is: one address, or
//! the primary the sentinels name) and [`RedisConn`] (one shared multiplexed connection that
//! is dropped when it breaks and re-made on next use, asking the sentinels again, so a
//! failover or a restarted server is followed without restarting kiln).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, RedisError, RedisFuture, RedisResult, Value};
use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use crate::config::Settings;
use crate::config::value::sentinel_broker;

/// Time allowed to open a connection to a Redis server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between Sentinel lookups that found no primary.
const LOOKUP_RETRY: Duration = Duration::from_millis(200);

/// Builds `redis[s]://[user[:password]@]host:port/db` from `REDIS_*`.
pub fn url_from_settings(settings: &Settings) -> Option<String> {
    let redis = &settings.redis;
    if redis.host.trim().is_empty() {
        return None;
    }
    let scheme = if redis.use_ssl { "rediss" } else { "redis" };
    let mut url = url::Url::parse(&format!("{scheme}://localhost/")).ok()?;
    url.set_host(Some(redis.host.trim())).ok()?;
    url.set_port(Some(redis.port.0)).ok()?;
    url.set_username(&redis.username).ok()?;
    let password = redis.password.expose_secret();
    if !password.is_empty() {
        url.set_password(Some(password)).ok()?;
    }
    url.set_path(&redis.db.to_string());
    Some(url.to_string())
}

/// Where a Redis server is: one fixed address, or whichever server the sentinels currently
/// name as the primary of a service.
#[derive(Clone)]
pub enum RedisTarget {
    Direct { client: Arc<Client>, label: Arc<str> },
    Sentinel(Arc<SentinelTarget>),
}

/// A primary found through Redis Sentinel.
pub struct SentinelTarget {
    client: Mutex<SentinelClient>,
    label: String,
    db: i64,
    lookup_timeout: Duration,
}

/// What a Sentinel lookup needs, from either REDIS_* or the Celery broker settings.
struct SentinelSpec<'a> {
    sentinels: &'a [(String, u16)],
    service: &'a str,
    username: &'a str,
    password: &'a str,
    db: u32,
    tls: bool,
    sentinel_username: &'a str,
    sentinel_password: &'a str,
    socket_timeout: Duration,
    keys: &'a str,
}

impl RedisTarget {
    /// The shared Redis (tokens, counters, beat's lease): the primary REDIS_SENTINELS name
    /// when REDIS_USE_SENTINEL is on, else REDIS_HOST; `None` when neither is set.
    pub fn shared(settings: &Settings) -> Result<Option<Self>, String> {
        let redis = &settings.redis;
        if redis.use_sentinel {
            return Self::sentinel(&SentinelSpec {
                sentinels: &redis.sentinels.0,
                service: redis.sentinel_service_name.trim(),
                username: &redis.username,
                password: redis.password.expose_secret(),
                db: redis.db,
                tls: redis.use_ssl,
                sentinel_username: &redis.sentinel_username,
                sentinel_password: redis.sentinel_password.expose_secret(),
                socket_timeout: redis.sentinel_socket_timeout.duration(),
                keys: "REDIS_SENTINELS, REDIS_SENTINEL_SERVICE_NAME",
            })
            .map(Some);
        }
        let Some(url) = url_from_settings(settings) else {
            return Ok(None);
        };
        let label = format!("Redis at {}:{} (REDIS_HOST, REDIS_PORT)", redis.host.trim(), redis.port.0);
        let client = Client::open(url).map_err(|e| format!("{label}: {e}"))?;
        Ok(Some(RedisTarget::Direct { client: Arc::new(client), label: label.into() }))
    }

    /// The job broker: CELERY_BROKER_URL (through its sentinels with CELERY_USE_SENTINEL),
    /// else the shared Redis.
    pub fn broker(settings: &Settings) -> Result<Option<Self>, String> {
        let redis = &settings.redis;
        let Some(url) = &redis.broker_url else {
            return Self::shared(settings);
        };
        let url = url.expose();
        if url.starts_with("sentinel://") {
            let broker = sentinel_broker(url).map_err(|e| format!("CELERY_BROKER_URL: {e}"))?;
            return Self::sentinel(&SentinelSpec {
                sentinels: &broker.sentinels,
                service: redis.celery_sentinel_master_name.trim(),
                username: &broker.username,
                password: &broker.password,
                db: broker.db,
                tls: false,
                sentinel_username: "",
                sentinel_password: redis.celery_sentinel_password.expose_secret(),
                socket_timeout: redis.celery_sentinel_socket_timeout.duration(),
                keys: "CELERY_BROKER_URL, CELERY_SENTINEL_MASTER_NAME",
            })
            .map(Some);
        }
        Self::url(url, "the broker (CELERY_BROKER_URL)").map(Some)
    }

    /// A fixed address from a `redis[s]://` URL.
    pub fn url(url: &str, label: &str) -> Result<Self, String> {
        let client = Client::open(url).map_err(|e| format!("{label}: {e}"))?;
        let addr = &client.get_connection_info().addr();
        let label = format!("{label} at {}", display_addr(addr));
        Ok(RedisTarget::Direct { client: Arc::new(client), label: label.into() })
    }

    fn sentinel(spec: &SentinelSpec<'_>) -> Result<Self, String> {
        let names: Vec<String> = spec.sentinels.iter().map(|(host, port)| format!("{host}:{port}")).collect();
        let label =
            format!("Redis primary {:?} via sentinels {} ({})", spec.service, names.join(","), spec.keys);
        let addrs = spec.sentinels.iter().map(|(host, port)| ConnectionAddr::Tcp(host.clone(), *port));
        let mut builder = SentinelClientBuilder::new(addrs, spec.service, SentinelServerType::Master)
            .map_err(|e| format!("{label}: {e}"))?
            .set_client_to_redis_db(i64::from(spec.db));
        if !spec.username.is_empty() {
            builder = builder.set_client_to_redis_username(spec.username);
        }
        if !spec.password.is_empty() {
            builder = builder.set_client_to_redis_password(spec.password);
        }
        if spec.tls {
            builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        }
        if !spec.sentinel_username.is_empty() {
            builder = builder.set_client_to_sentinel_username(spec.sentinel_username);
        }
        if !spec.sentinel_password.is_empty() {
            builder = builder.set_client_to_sentinel_password(spec.sentinel_password);
        }
        let client = builder.build().map_err(|e| format!("{label}: {e}"))?;
        Ok(RedisTarget::Sentinel(Arc::new(SentinelTarget {
            client: Mutex::new(client),
            label,
            db: i64::from(spec.db),
            // The sentinels are asked in parallel; the primary's role is then checked over a
            // fresh connection, which gets the usual connect allowance.
            lookup_timeout: spec.socket_timeout + CONNECT_TIMEOUT,
        })))
    }

    /// Where this is, for logs and error messages (never a password).
    pub fn label(&self) -> &str {
        match self {
            RedisTarget::Direct { label, .. } => label,
            RedisTarget::Sentinel(sentinel) => &sentinel.label,
        }
    }

    /// The database number commands run against.
    pub fn db(&self) -> i64 {
        match self {
            RedisTarget::Direct { client, .. } => client.get_connection_info().redis_settings().db(),
            RedisTarget::Sentinel(sentinel) => sentinel.db,
        }
    }

    /// A client for the server to talk to now; with Sentinel, the current primary (checked
    /// to say it is one).
    pub async fn client(&self) -> RedisResult<Client> {
        match self {
            RedisTarget::Direct { client, .. } => Ok(Client::clone(client)),
            RedisTarget::Sentinel(sentinel) => {
                // During a failover the sentinels briefly name no valid primary: ask again
                // until the deadline rather than fail the caller at once.
                let deadline = tokio::time::Instant::now() + sentinel.lookup_timeout;
                loop {
                    let lookup = async { sentinel.client.lock().await.async_get_client().await };
                    let error = match tokio::time::timeout_at(deadline, lookup).await {
                        Ok(Ok(client)) => return Ok(client),
                        Ok(Err(error)) => error,
                        Err(_) => RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("the sentinels named no primary within {:?}", sentinel.lookup_timeout),
                        )),
                    };
                    if tokio::time::Instant::now() + LOOKUP_RETRY >= deadline {
                        return Err(error);
                    }
                    tokio::time::sleep(LOOKUP_RETRY).await;
                }
            }
        }
    }
}

fn display_addr(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

/// A shared connection to a [`RedisTarget`]: cheap to clone, multiplexed, and re-made on the
/// next command after it breaks (the failing command still returns its error, as with
/// redis-rs's ConnectionManager, so callers keep their own retry policy).
#[derive(Clone)]
pub struct RedisConn {
    shared: Arc<ConnShared>,
}

struct ConnShared {
    target: RedisTarget,
    config: AsyncConnectionConfig,
    slot: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    db: i64,
}

impl RedisConn {
    /// A connection made on first use.
    pub fn lazy(target: RedisTarget, response_timeout: Duration) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout));
        let db = target.db();
        Self {
            shared: Arc::new(ConnShared {
                target,
                config,
                slot: Mutex::new(None),
                generation: AtomicU64::new(0),
                db,
            }),
        }
    }

    /// Connects now, so a wrong address or password fails at start, naming the target.
    pub async fn connect(target: RedisTarget, response_timeout: Duration) -> Result<Self, String> {
        let conn = Self::lazy(target, response_timeout);
        conn.current().await.map_err(|e| format!("cannot connect to {}: {e}", conn.target().label()))?;
        Ok(conn)
    }

    /// Where this connects to.
    pub fn target(&self) -> &RedisTarget {
        &self.shared.target
    }

    async fn current(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        let mut slot = self.shared.slot.lock().await;
        if let Some((generation, conn)) = slot.as_ref() {
            return Ok((*generation, conn.clone()));
        }
        let client = self.shared.target.client().await?;
        let conn = client.get_multiplexed_async_connection_with_config(&self.shared.config).await?;
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *slot = Some((generation, conn.clone()));
        Ok((generation, conn))
    }

    /// Drops the connection a command failed on when the failure means the connection (or
    /// the server's role) is gone, unless another caller already replaced it.
    async fn after_error(&self, generation: u64, error: &RedisError) {
        let broken = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
            || error.is_timeout()
            || error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if !broken {
            return;
        }
        let mut slot = self.shared.slot.lock().await;
        if slot.as_ref().is_some_and(|(current, _)| *current == generation) {
            tracing::debug!(target = self.shared.target.label(), %error, "dropping a broken Redis connection");
            *slot = None;
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.current().await?;
            let result = conn.req_packed_command(cmd).await;
            if let Err(error) = &result {
                self.after_error(generation, error).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.current().await?;
            let result = conn.req_packed_commands(cmd, offset, count).await;
            if let Err(error) = &result {
                self.after_error(generation, error).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}

/// A Redis endpoint checked by `/ready`; connects lazily and reconnects on its own.
pub struct RedisProbe {
    /// `redis` (REDIS_*) or `broker` (CELERY_BROKER_URL), for the readiness report.
    pub name: &'static str,
    conn: RedisConn,
}

impl RedisProbe {
    /// The probes for every configured Redis.
    pub fn from_settings(settings: &Settings) -> Result<Vec<RedisProbe>, String> {
        let mut probes = Vec::new();
        if let Some(target) = RedisTarget::shared(settings)? {
            probes.push(Self { name: "redis", conn: RedisConn::lazy(target, CONNECT_TIMEOUT) });
        }
        if settings.redis.broker_url.is_some()
            && let Some(target) = RedisTarget::broker(settings)?
        {
            probes.push(Self { name: "broker", conn: RedisConn::lazy(target, CONNECT_TIMEOUT) });
        }
        Ok(probes)
    }

    /// PING with a deadline. A wrong password or host surfaces as that error, not as a
    /// timeout: there is no retry loop here, the next check simply tries again.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let attempt = async { redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop) };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}
