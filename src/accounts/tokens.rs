//! Console tokens: signed access and CSRF tokens (HS256 with SECRET_KEY, Dify's claims), and
//! opaque refresh tokens with login-failure counters kept in Redis (Dify's key names) or,
//! without Redis, in the database.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redis::AsyncCommands;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::repo::{self, RepoError};
use crate::infra::db::Db;

/// Failures of the token layer.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid or expired token")]
    Invalid,
    #[error("cannot sign a token: {0}")]
    Sign(jsonwebtoken::errors::Error),
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot generate random bytes: {0}")]
    Random(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct AccessClaims {
    user_id: String,
    exp: i64,
    iss: String,
    sub: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct SubjectClaims {
    sub: String,
    exp: i64,
}

/// Signs and verifies Dify-shaped JWTs with SECRET_KEY.
#[derive(Clone)]
pub struct Passport {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Passport {
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        Self { encoding: EncodingKey::from_secret(bytes), decoding: DecodingKey::from_secret(bytes) }
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(TokenError::Sign)
    }

    fn validation() -> Validation {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_owned()].into();
        validation
    }

    /// An access token for `account_id`, valid for `lifetime`.
    pub fn access_token(&self, account_id: Uuid, lifetime: Duration) -> Result<String, TokenError> {
        self.sign(&AccessClaims {
            user_id: account_id.to_string(),
            exp: Utc::now().timestamp() + lifetime.as_secs() as i64,
            iss: "SELF_HOSTED".into(),
            sub: "Console API Passport".into(),
        })
    }

    /// The account an access token was issued to.
    pub fn verify_access(&self, token: &str) -> Result<Uuid, TokenError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &Self::validation())
            .map_err(|_| TokenError::Invalid)?;
        if data.claims.sub != "Console API Passport" {
            return Err(TokenError::Invalid);
        }
        data.claims.user_id.parse().map_err(|_| TokenError::Invalid)
    }

    /// A CSRF token bound to the account (Dify: `{"exp", "sub": account_id}`).
    pub fn csrf_token(&self, account_id: Uuid, lifetime: Duration) -> Result<String, TokenError> {
        self.subject_token(&account_id.to_string(), lifetime)
    }

    /// A short-lived signed token for an arbitrary subject (also used for the init step).
    pub fn subject_token(&self, subject: &str, lifetime: Duration) -> Result<String, TokenError> {
        self.sign(&SubjectClaims {
            sub: subject.to_owned(),
            exp: Utc::now().timestamp() + lifetime.as_secs() as i64,
        })
    }

    /// The subject of a valid, unexpired subject token.
    pub fn verify_subject(&self, token: &str) -> Result<String, TokenError> {
        jsonwebtoken::decode::<SubjectClaims>(token, &self.decoding, &Self::validation())
            .map(|data| data.claims.sub)
            .map_err(|_| TokenError::Invalid)
    }
}

/// A new opaque refresh token: 64 random bytes as hex, like Dify's `secrets.token_hex(64)`.
pub fn new_refresh_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Where refresh tokens and login failure counters live.
#[derive(Clone)]
pub enum AuthStore {
    /// Dify's keys: `refresh_token:{t}`, `account_refresh_token:{id}`, `login_error_rate_limit:{email}`,
    /// each after REDIS_KEY_PREFIX (empty by default, as in Dify).
    Redis { conn: crate::infra::redis::RedisConn, prefix: String },
    /// Tables `auth_refresh_tokens` (hashed) and `auth_login_failures`, with expiry columns.
    Db(Db),
}

impl AuthStore {
    /// Saves the account's refresh token, revoking the previous one (one per account).
    pub async fn put_refresh(&self, token: &str, account_id: Uuid, ttl: Duration) -> Result<(), TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let account_key = format!("{prefix}account_refresh_token:{account_id}");
                let previous: Option<String> = conn.get(&account_key).await?;
                let mut pipe = redis::pipe();
                if let Some(previous) = previous {
                    pipe.del(format!("{prefix}refresh_token:{previous}"));
                }
                pipe.set_ex(format!("{prefix}refresh_token:{token}"), account_id.to_string(), ttl.as_secs())
                    .set_ex(&account_key, token, ttl.as_secs());
                pipe.query_async::<()>(&mut conn).await?;
            }
            AuthStore::Db(db) => {
                let expires =
                    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
                repo::put_refresh_token(db, &digest(token), account_id, expires).await?;
            }
        }
        Ok(())
    }

    /// Consumes a refresh token: returns its account and makes it unusable (rotation).
    pub async fn take_refresh(&self, token: &str) -> Result<Option<Uuid>, TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let account: Option<String> = conn.get_del(format!("{prefix}refresh_token:{token}")).await?;
                let Some(account) = account.and_then(|a| a.parse::<Uuid>().ok()) else { return Ok(None) };
                let _: () = conn.del(format!("{prefix}account_refresh_token:{account}")).await?;
                Ok(Some(account))
            }
            AuthStore::Db(db) => Ok(repo::take_refresh_token(db, &digest(token), Utc::now()).await?),
        }
    }

    /// Revokes the account's refresh token (logout, password reset).
    pub async fn revoke_account(&self, account_id: Uuid) -> Result<(), TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let account_key = format!("{prefix}account_refresh_token:{account_id}");
                let token: Option<String> = conn.get_del(&account_key).await?;
                if let Some(token) = token {
                    let _: () = conn.del(format!("{prefix}refresh_token:{token}")).await?;
                }
            }
            AuthStore::Db(db) => repo::delete_refresh_tokens_of(db, account_id).await?,
        }
        Ok(())
    }

    /// Failed logins recorded for the email within the lockout window.
    pub async fn login_failures(&self, email: &str) -> Result<u32, TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let count: Option<u32> =
                    conn.clone().get(format!("{prefix}login_error_rate_limit:{email}")).await?;
                Ok(count.unwrap_or(0))
            }
            AuthStore::Db(db) => Ok(repo::login_failures(db, email, Utc::now()).await?),
        }
    }

    /// Counts one more failure and restarts the window, as Dify's SETEX does.
    pub async fn record_login_failure(&self, email: &str, window: Duration) -> Result<u32, TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let key = format!("{prefix}login_error_rate_limit:{email}");
                let (count,): (u32,) = redis::pipe()
                    .incr(&key, 1)
                    .ignore()
                    .expire(&key, window.as_secs() as i64)
                    .ignore()
                    .get(&key)
                    .query_async(&mut conn)
                    .await?;
                Ok(count)
            }
            AuthStore::Db(db) => {
                let now = Utc::now();
                let expires = now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(1));
                Ok(repo::record_login_failure(db, email, expires, now).await?)
            }
        }
    }

    /// Clears the counter (successful login, `kiln reset-password`).
    pub async fn reset_login_failures(&self, email: &str) -> Result<(), TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let _: () = conn.clone().del(format!("{prefix}login_error_rate_limit:{email}")).await?;
            }
            AuthStore::Db(db) => repo::reset_login_failures(db, email).await?,
        }
        Ok(())
    }

    /// Stores a one-time token (`{kind}:token:{id}` in Dify's Redis layout) for `ttl`.
    pub async fn put_token(&self, key: &str, value: &str, ttl: Duration) -> Result<(), TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let _: () =
                    conn.clone().set_ex(format!("{prefix}{key}"), value, ttl.as_secs().max(1)).await?;
            }
            AuthStore::Db(db) => {
                let expires =
                    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(5));
                repo::kv_put(db, key, value, expires).await?;
            }
        }
        Ok(())
    }

    /// Reads a one-time token without consuming it.
    pub async fn get_token(&self, key: &str) -> Result<Option<String>, TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => Ok(conn.clone().get(format!("{prefix}{key}")).await?),
            AuthStore::Db(db) => Ok(repo::kv_get(db, key, Utc::now()).await?),
        }
    }

    /// Consumes a one-time token: only one caller ever gets its value.
    pub async fn take_token(&self, key: &str) -> Result<Option<String>, TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => Ok(conn.clone().get_del(format!("{prefix}{key}")).await?),
            AuthStore::Db(db) => Ok(repo::kv_take(db, key, Utc::now()).await?),
        }
    }

    /// Counts a hit on a rate limit whose window starts with the first hit; returns the count.
    pub async fn hit(&self, key: &str, window: Duration) -> Result<u32, TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let key = format!("{prefix}{key}");
                // The window starts at the first hit (SET NX EX works on any Redis version).
                let (count,): (u32,) = redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(0)
                    .arg("EX")
                    .arg(window.as_secs().max(1))
                    .arg("NX")
                    .ignore()
                    .incr(&key, 1)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(count)
            }
            AuthStore::Db(db) => {
                let now = Utc::now();
                let expires =
                    now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(1));
                Ok(repo::kv_incr(db, key, expires, now).await?)
            }
        }
    }

    /// Reads a rate-limit counter.
    pub async fn count(&self, key: &str) -> Result<u32, TokenError> {
        Ok(self.get_token(key).await?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Clears a counter or token.
    pub async fn forget(&self, key: &str) -> Result<(), TokenError> {
        match self {
            AuthStore::Redis { conn, prefix } => {
                let _: () = conn.clone().del(format!("{prefix}{key}")).await?;
            }
            AuthStore::Db(db) => repo::kv_delete(db, key).await?,
        }
        Ok(())
    }
}
