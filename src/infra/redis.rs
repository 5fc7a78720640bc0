//! Redis connections built from Dify's `REDIS_*` variables or `CELERY_BROKER_URL`.

use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::Mutex;

use crate::config::Settings;

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

/// A Redis endpoint checked by `/ready`; connects lazily and reconnects on its own.
pub struct RedisProbe {
    /// `redis` (REDIS_*) or `broker` (CELERY_BROKER_URL), for the readiness report.
    pub name: &'static str,
    client: redis::Client,
    connection: Mutex<Option<redis::aio::ConnectionManager>>,
}

impl RedisProbe {
    /// The probes for every configured Redis.
    pub fn from_settings(settings: &Settings) -> Result<Vec<RedisProbe>, String> {
        let mut probes = Vec::new();
        if let Some(url) = url_from_settings(settings) {
            probes.push(Self::new("redis", &url).map_err(|e| format!("REDIS_HOST/REDIS_*: {e}"))?);
        }
        if let Some(broker) = &settings.redis.broker_url {
            probes.push(Self::new("broker", broker.expose()).map_err(|e| format!("CELERY_BROKER_URL: {e}"))?);
        }
        Ok(probes)
    }

    fn new(name: &'static str, url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self { name, client: redis::Client::open(url)?, connection: Mutex::new(None) })
    }

    /// PING with a deadline.
    pub async fn ping(&self, timeout: Duration) -> Result<(), String> {
        let attempt = async {
            let mut guard = self.connection.lock().await;
            if guard.is_none() {
                // No silent retry loop: a wrong password or host must surface as that error
                // in /ready, not as a timeout; the next check simply tries again.
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                *guard = Some(
                    redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            let Some(connection) = guard.as_mut() else {
                return Err("no connection".to_owned());
            };
            redis::cmd("PING").query_async::<String>(connection).await.map(drop).map_err(|e| e.to_string())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    }
}
