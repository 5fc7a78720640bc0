//! SQL for accounts and workspaces, written once for PostgreSQL and SQLite (see `on_db!`).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::model::{ACCOUNT_COLUMNS, Account, Membership, TENANT_COLUMNS, Tenant, TenantRole};
use crate::infra::db::{Db, unique_violation};
use crate::on_db;

/// Storage-level failures; a unique violation is told apart so callers can say what clashed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("duplicate value for {0}")]
    Duplicate(String),
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for RepoError {
    fn from(error: sqlx::Error) -> Self {
        match unique_violation(&error) {
            Some(constraint) => RepoError::Duplicate(constraint),
            None => RepoError::Db(error),
        }
    }
}

/// A new account's fields.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub interface_language: String,
}

/// A new workspace's fields.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: Uuid,
    pub name: String,
    pub encrypt_public_key: String,
}

/// An account with the workspaces it belongs to, for `kiln list-accounts`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountSummary {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub status: String,
    pub workspaces: i64,
    pub last_login_at: Option<DateTime<Utc>>,
}

/// A workspace with its owner, for `kiln list-tenants`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantSummary {
    pub id: Uuid,
    pub name: String,
    pub owner_email: Option<String>,
    pub members: i64,
    pub created_at: DateTime<Utc>,
}

pub async fn find_account_by_email(db: &Db, email: &str) -> Result<Option<Account>, RepoError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = $1");
    let email = email.trim().to_lowercase();
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql)).bind(email).fetch_optional(pool).await?),
    )
}

pub async fn find_account(db: &Db, id: Uuid) -> Result<Option<Account>, RepoError> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?),
    )
}

/// When first-run setup completed, if it has.
pub async fn setup_at(db: &Db) -> Result<Option<DateTime<Utc>>, RepoError> {
    let sql = "SELECT setup_at FROM dify_setups ORDER BY setup_at LIMIT 1";
    Ok(on_db!(db, pool => sqlx::query_scalar::<_, DateTime<Utc>>(sql).fetch_optional(pool).await?))
}

pub async fn tenant_count(db: &Db) -> Result<i64, RepoError> {
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tenants").fetch_one(pool).await?),
    )
}

/// Creates the account, its workspace (owner, current) and, for first-run setup, the setup
/// row, in one transaction: either all exist afterwards or none do.
pub async fn create_owner(
    db: &Db,
    account: &NewAccount,
    tenant: &NewTenant,
    setup_version: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (id, name, email, password, interface_language, status, last_active_at, \
             initialized_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'active', $6, $6, $6, $6)",
        )
        .bind(account.id)
        .bind(&account.name)
        .bind(account.email.trim().to_lowercase())
        .bind(&account.password_hash)
        .bind(&account.interface_language)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tenants (id, name, encrypt_public_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(tenant.id)
        .bind(&tenant.name)
        .bind(&tenant.encrypt_public_key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tenant_account_joins (id, tenant_id, account_id, role, current, created_at, updated_at) \
             VALUES ($1, $2, $3, 'owner', TRUE, $4, $4)",
        )
        .bind(Uuid::new_v4())
        .bind(tenant.id)
        .bind(account.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(version) = setup_version {
            sqlx::query("INSERT INTO dify_setups (version, setup_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Replaces the password hash (and clears or sets Dify's salt column).
pub async fn set_password(db: &Db, id: Uuid, hash: &str, salt: Option<&str>) -> Result<u64, RepoError> {
    let sql = "UPDATE accounts SET password = $1, password_salt = $2, updated_at = $3 WHERE id = $4";
    let now = Utc::now();
    Ok(
        on_db!(db, pool => sqlx::query(sql).bind(hash).bind(salt).bind(now).bind(id).execute(pool).await?.rows_affected()),
    )
}

pub async fn set_email(db: &Db, id: Uuid, email: &str) -> Result<u64, RepoError> {
    let sql = "UPDATE accounts SET email = $1, updated_at = $2 WHERE id = $3";
    let (email, now) = (email.trim().to_lowercase(), Utc::now());
    Ok(
        on_db!(db, pool => sqlx::query(sql).bind(email).bind(now).bind(id).execute(pool).await?.rows_affected()),
    )
}

/// Records a successful login; a pending account becomes active, as in Dify.
pub async fn record_login(db: &Db, id: Uuid, ip: Option<&str>, now: DateTime<Utc>) -> Result<(), RepoError> {
    let sql = "UPDATE accounts SET last_login_at = $1, last_login_ip = $2, last_active_at = $1, \
               status = CASE WHEN status = 'pending' THEN 'active' ELSE status END, updated_at = $1 WHERE id = $3";
    on_db!(db, pool => sqlx::query(sql).bind(now).bind(ip).bind(id).execute(pool).await.map(drop)?);
    Ok(())
}

pub async fn touch_active(db: &Db, id: Uuid, now: DateTime<Utc>) -> Result<(), RepoError> {
    let sql = "UPDATE accounts SET last_active_at = $1 WHERE id = $2";
    on_db!(db, pool => sqlx::query(sql).bind(now).bind(id).execute(pool).await.map(drop)?);
    Ok(())
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    id: Uuid,
    name: String,
    encrypt_public_key: Option<String>,
    plan: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    role: String,
    current: bool,
}

/// The account's current workspace; if none is marked current, the oldest one becomes it.
pub async fn current_membership(db: &Db, account_id: Uuid) -> Result<Option<Membership>, RepoError> {
    let sql = "SELECT t.id, t.name, t.encrypt_public_key, t.plan, t.status, t.created_at, t.updated_at, \
               j.role, j.current FROM tenant_account_joins j JOIN tenants t ON t.id = j.tenant_id \
               WHERE j.account_id = $1 ORDER BY j.current DESC, j.created_at ASC LIMIT 1";
    let row = on_db!(db, pool => sqlx::query_as::<_, MembershipRow>(sql).bind(account_id).fetch_optional(pool).await?);
    let Some(row) = row else { return Ok(None) };
    if !row.current {
        let mark = "UPDATE tenant_account_joins SET current = (tenant_id = $1) WHERE account_id = $2";
        on_db!(db, pool => sqlx::query(mark).bind(row.id).bind(account_id).execute(pool).await.map(drop)?);
    }
    Ok(Some(Membership {
        tenant: Tenant {
            id: row.id,
            name: row.name,
            encrypt_public_key: row.encrypt_public_key,
            plan: row.plan,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
        },
        role: TenantRole::parse(&row.role),
    }))
}

pub async fn rename_tenant(db: &Db, tenant_id: Uuid, name: &str) -> Result<(), RepoError> {
    let sql = "UPDATE tenants SET name = $1, updated_at = $2 WHERE id = $3";
    let now = Utc::now();
    on_db!(db, pool => sqlx::query(sql).bind(name).bind(now).bind(tenant_id).execute(pool).await.map(drop)?);
    Ok(())
}

pub async fn all_tenants(db: &Db) -> Result<Vec<Tenant>, RepoError> {
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY created_at");
    Ok(on_db!(db, pool => sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?))
}

pub async fn set_tenant_public_key(db: &Db, tenant_id: Uuid, public_pem: &str) -> Result<(), RepoError> {
    let sql = "UPDATE tenants SET encrypt_public_key = $1, updated_at = $2 WHERE id = $3";
    let now = Utc::now();
    on_db!(db, pool => sqlx::query(sql).bind(public_pem).bind(now).bind(tenant_id).execute(pool).await.map(drop)?);
    Ok(())
}

pub async fn list_accounts(db: &Db) -> Result<Vec<AccountSummary>, RepoError> {
    let sql = "SELECT a.id, a.email, a.name, a.status, \
               (SELECT count(*) FROM tenant_account_joins j WHERE j.account_id = a.id) AS workspaces, \
               a.last_login_at FROM accounts a ORDER BY a.created_at";
    Ok(on_db!(db, pool => sqlx::query_as::<_, AccountSummary>(sql).fetch_all(pool).await?))
}

pub async fn list_tenants(db: &Db) -> Result<Vec<TenantSummary>, RepoError> {
    let sql = "SELECT t.id, t.name, \
               (SELECT a.email FROM tenant_account_joins j JOIN accounts a ON a.id = j.account_id \
                WHERE j.tenant_id = t.id AND j.role = 'owner' LIMIT 1) AS owner_email, \
               (SELECT count(*) FROM tenant_account_joins j WHERE j.tenant_id = t.id) AS members, \
               t.created_at FROM tenants t ORDER BY t.created_at";
    Ok(on_db!(db, pool => sqlx::query_as::<_, TenantSummary>(sql).fetch_all(pool).await?))
}

// --- refresh tokens and login failures when no Redis is configured ---

/// Stores the account's only refresh token (by hash), replacing any previous one in one
/// statement, so two logins at once cannot both insert.
pub async fn put_refresh_token(
    db: &Db,
    hash: &str,
    account_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), RepoError> {
    let sql = "INSERT INTO auth_refresh_tokens (token_hash, account_id, expires_at) VALUES ($1, $2, $3) \
               ON CONFLICT (account_id) DO UPDATE SET token_hash = excluded.token_hash, expires_at = excluded.expires_at";
    on_db!(db, pool => sqlx::query(sql).bind(hash).bind(account_id).bind(expires_at).execute(pool).await.map(drop)?);
    Ok(())
}

/// Removes the token and returns its account if it existed and had not expired.
pub async fn take_refresh_token(db: &Db, hash: &str, now: DateTime<Utc>) -> Result<Option<Uuid>, RepoError> {
    let sql = "DELETE FROM auth_refresh_tokens WHERE token_hash = $1 RETURNING account_id, expires_at";
    let row = on_db!(db, pool => sqlx::query_as::<_, (Uuid, DateTime<Utc>)>(sql).bind(hash).fetch_optional(pool).await?);
    Ok(row.filter(|(_, expires)| *expires > now).map(|(id, _)| id))
}

pub async fn delete_refresh_tokens_of(db: &Db, account_id: Uuid) -> Result<(), RepoError> {
    let sql = "DELETE FROM auth_refresh_tokens WHERE account_id = $1";
    on_db!(db, pool => sqlx::query(sql).bind(account_id).execute(pool).await.map(drop)?);
    Ok(())
}

pub async fn login_failures(db: &Db, email: &str, now: DateTime<Utc>) -> Result<u32, RepoError> {
    let sql = "SELECT failures FROM auth_login_failures WHERE email = $1 AND expires_at > $2";
    let count = on_db!(db, pool => sqlx::query_scalar::<_, i32>(sql).bind(email).bind(now).fetch_optional(pool).await?);
    Ok(count.map(|c| c.max(0) as u32).unwrap_or(0))
}

/// Adds one failure; like Dify's SETEX, every failure restarts the lockout window.
pub async fn record_login_failure(
    db: &Db,
    email: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u32, RepoError> {
    let sql = "INSERT INTO auth_login_failures (email, failures, expires_at) VALUES ($1, 1, $2) \
               ON CONFLICT (email) DO UPDATE SET \
               failures = CASE WHEN auth_login_failures.expires_at > $3 THEN auth_login_failures.failures + 1 ELSE 1 END, \
               expires_at = $2 RETURNING failures";
    let count = on_db!(db, pool => sqlx::query_scalar::<_, i32>(sql).bind(email).bind(expires_at).bind(now).fetch_one(pool).await?);
    Ok(count.max(0) as u32)
}

pub async fn reset_login_failures(db: &Db, email: &str) -> Result<(), RepoError> {
    let sql = "DELETE FROM auth_login_failures WHERE email = $1";
    on_db!(db, pool => sqlx::query(sql).bind(email).execute(pool).await.map(drop)?);
    Ok(())
}

/// Deletes expired refresh tokens and login failure counters; returns how many rows went.
pub async fn delete_expired_auth_records(db: &Db, now: DateTime<Utc>) -> Result<u64, RepoError> {
    let tokens = "DELETE FROM auth_refresh_tokens WHERE expires_at <= $1";
    let failures = "DELETE FROM auth_login_failures WHERE expires_at <= $1";
    let kv = "DELETE FROM auth_kv WHERE expires_at <= $1";
    let deleted = on_db!(db, pool => {
        let a = sqlx::query(tokens).bind(now).execute(pool).await?.rows_affected();
        let b = sqlx::query(failures).bind(now).execute(pool).await?.rows_affected();
        let c = sqlx::query(kv).bind(now).execute(pool).await?.rows_affected();
        a + b + c
    });
    Ok(deleted)
}

// --- one-time tokens and counters (auth_kv) when no Redis is configured ---

/// Stores `value` under `key` until `expires_at`, replacing what was there.
pub async fn kv_put(db: &Db, key: &str, value: &str, expires_at: DateTime<Utc>) -> Result<(), RepoError> {
    let sql = "INSERT INTO auth_kv (key, value, expires_at) VALUES ($1, $2, $3) \
               ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
    on_db!(db, pool => sqlx::query(sql).bind(key).bind(value).bind(expires_at).execute(pool).await.map(drop)?);
    Ok(())
}

/// The live value under `key`.
pub async fn kv_get(db: &Db, key: &str, now: DateTime<Utc>) -> Result<Option<String>, RepoError> {
    let sql = "SELECT value FROM auth_kv WHERE key = $1 AND expires_at > $2";
    Ok(
        on_db!(db, pool => sqlx::query_scalar::<_, String>(sql).bind(key).bind(now).fetch_optional(pool).await?),
    )
}

/// Deletes `key` and returns its live value, atomically.
pub async fn kv_take(db: &Db, key: &str, now: DateTime<Utc>) -> Result<Option<String>, RepoError> {
    let sql = "DELETE FROM auth_kv WHERE key = $1 RETURNING value, expires_at";
    let row = on_db!(db, pool => sqlx::query_as::<_, (String, DateTime<Utc>)>(sql).bind(key).fetch_optional(pool).await?);
    Ok(row.filter(|(_, expires)| *expires > now).map(|(value, _)| value))
}

/// Adds one to the counter under `key` (restarting it if expired) and returns the count.
pub async fn kv_incr(
    db: &Db,
    key: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u32, RepoError> {
    let sql = "INSERT INTO auth_kv (key, value, expires_at) VALUES ($1, '1', $2) \
               ON CONFLICT (key) DO UPDATE SET \
               value = CASE WHEN auth_kv.expires_at > $3 THEN CAST(CAST(auth_kv.value AS INTEGER) + 1 AS TEXT) ELSE '1' END, \
               expires_at = CASE WHEN auth_kv.expires_at > $3 THEN auth_kv.expires_at ELSE $2 END \
               RETURNING value";
    let value = on_db!(db, pool => sqlx::query_scalar::<_, String>(sql).bind(key).bind(expires_at).bind(now).fetch_one(pool).await?);
    Ok(value.parse().unwrap_or(u32::MAX))
}

pub async fn kv_delete(db: &Db, key: &str) -> Result<(), RepoError> {
    on_db!(db, pool => sqlx::query("DELETE FROM auth_kv WHERE key = $1").bind(key).execute(pool).await.map(drop)?);
    Ok(())
}

/// A workspace member as the members list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub id: Uuid,
    pub name: String,
    pub avatar: Option<String>,
    pub email: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_active_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub role: String,
    pub status: String,
}

pub async fn list_members(db: &Db, tenant_id: Uuid) -> Result<Vec<MemberRow>, RepoError> {
    let sql = "SELECT a.id, a.name, a.avatar, a.email, a.last_login_at, a.last_active_at, a.created_at, j.role, a.status \
               FROM tenant_account_joins j JOIN accounts a ON a.id = j.account_id WHERE j.tenant_id = $1 \
               ORDER BY j.created_at";
    Ok(on_db!(db, pool => sqlx::query_as::<_, MemberRow>(sql).bind(tenant_id).fetch_all(pool).await?))
}

/// The member's role in the workspace, if they belong to it.
pub async fn member_role(
    db: &Db,
    tenant_id: Uuid,
    account_id: Uuid,
) -> Result<Option<TenantRole>, RepoError> {
    let sql = "SELECT role FROM tenant_account_joins WHERE tenant_id = $1 AND account_id = $2";
    let role = on_db!(db, pool => sqlx::query_scalar::<_, String>(sql).bind(tenant_id).bind(account_id).fetch_optional(pool).await?);
    Ok(role.map(|r| TenantRole::parse(&r)))
}

pub async fn remove_member(db: &Db, tenant_id: Uuid, account_id: Uuid) -> Result<u64, RepoError> {
    let sql = "DELETE FROM tenant_account_joins WHERE tenant_id = $1 AND account_id = $2 AND role <> 'owner'";
    Ok(
        on_db!(db, pool => sqlx::query(sql).bind(tenant_id).bind(account_id).execute(pool).await?.rows_affected()),
    )
}

pub async fn set_member_role(
    db: &Db,
    tenant_id: Uuid,
    account_id: Uuid,
    role: TenantRole,
) -> Result<u64, RepoError> {
    let sql = "UPDATE tenant_account_joins SET role = $1, updated_at = $2 \
               WHERE tenant_id = $3 AND account_id = $4 AND role <> 'owner'";
    let now = Utc::now();
    Ok(
        on_db!(db, pool => sqlx::query(sql).bind(role.as_str()).bind(now).bind(tenant_id).bind(account_id).execute(pool).await?.rows_affected()),
    )
}

/// Creates an invited account: pending, no password, named after the email's local part.
pub async fn create_pending_account(
    db: &Db,
    id: Uuid,
    email: &str,
    language: &str,
    now: DateTime<Utc>,
) -> Result<(), RepoError> {
    let name = email.split('@').next().unwrap_or(email);
    let sql = "INSERT INTO accounts (id, name, email, interface_language, status, last_active_at, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, 'pending', $5, $5, $5)";
    on_db!(db, pool => sqlx::query(sql).bind(id).bind(name).bind(email).bind(language).bind(now).execute(pool).await.map(drop)?);
    Ok(())
}

/// Adds an account to a workspace with a role.
pub async fn add_member(
    db: &Db,
    tenant_id: Uuid,
    account_id: Uuid,
    role: TenantRole,
    invited_by: Uuid,
) -> Result<(), RepoError> {
    let sql = "INSERT INTO tenant_account_joins (id, tenant_id, account_id, role, current, invited_by, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, FALSE, $5, $6, $6) ON CONFLICT (tenant_id, account_id) DO NOTHING";
    let now = Utc::now();
    on_db!(db, pool => sqlx::query(sql).bind(Uuid::new_v4()).bind(tenant_id).bind(account_id).bind(role.as_str()).bind(invited_by).bind(now).execute(pool).await.map(drop)?);
    Ok(())
}

/// Activates an invited account with the details it chose.
pub async fn activate_account(
    db: &Db,
    id: Uuid,
    name: &str,
    language: &str,
    timezone: &str,
    password_hash: Option<&str>,
) -> Result<(), RepoError> {
    let sql = "UPDATE accounts SET name = $1, interface_language = $2, timezone = $3, interface_theme = 'light', \
               status = 'active', initialized_at = $4, updated_at = $4, password = COALESCE($5, password), \
               password_salt = CASE WHEN $5 IS NULL THEN password_salt ELSE NULL END WHERE id = $6";
    let now = Utc::now();
    on_db!(db, pool => sqlx::query(sql).bind(name).bind(language).bind(timezone).bind(now).bind(password_hash).bind(id).execute(pool).await.map(drop)?);
    Ok(())
}

pub async fn find_tenant(db: &Db, id: Uuid) -> Result<Option<Tenant>, RepoError> {
    let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
    Ok(
        on_db!(db, pool => sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?),
    )
}
