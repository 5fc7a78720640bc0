//! Account, workspace and membership records as stored.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A person who can sign in to the console.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub password: Option<String>,
    pub password_salt: Option<String>,
    pub avatar: Option<String>,
    pub interface_language: String,
    pub interface_theme: String,
    pub timezone: String,
    pub status: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub last_login_ip: Option<String>,
    pub last_active_at: DateTime<Utc>,
    pub initialized_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`Account`], for SELECT lists.
pub const ACCOUNT_COLUMNS: &str = "id, name, email, password, password_salt, avatar, interface_language, \
     interface_theme, timezone, status, last_login_at, last_login_ip, last_active_at, initialized_at, \
     created_at, updated_at";

impl Account {
    /// Whether the account may sign in at all (Dify refuses banned and closed accounts).
    pub fn is_usable(&self) -> bool {
        !matches!(self.status.as_str(), "banned" | "closed")
    }
}

/// A workspace.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub encrypt_public_key: Option<String>,
    pub plan: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`Tenant`], for SELECT lists.
pub const TENANT_COLUMNS: &str = "id, name, encrypt_public_key, plan, status, created_at, updated_at";

/// A member's role in a workspace, with Dify's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantRole {
    Owner,
    Admin,
    Editor,
    Normal,
    DatasetOperator,
}

impl TenantRole {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantRole::Owner => "owner",
            TenantRole::Admin => "admin",
            TenantRole::Editor => "editor",
            TenantRole::Normal => "normal",
            TenantRole::DatasetOperator => "dataset_operator",
        }
    }

    /// Parses a stored role; unknown values (a newer schema) are treated as the least privileged.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "owner" => TenantRole::Owner,
            "admin" => TenantRole::Admin,
            "editor" => TenantRole::Editor,
            "dataset_operator" => TenantRole::DatasetOperator,
            _ => TenantRole::Normal,
        }
    }

    /// A role that can be given to a member (every role but owner); `None` otherwise.
    pub fn assignable(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(TenantRole::Admin),
            "editor" => Some(TenantRole::Editor),
            "normal" => Some(TenantRole::Normal),
            "dataset_operator" => Some(TenantRole::DatasetOperator),
            _ => None,
        }
    }

    /// Owners and admins manage the workspace itself.
    pub fn is_privileged(self) -> bool {
        matches!(self, TenantRole::Owner | TenantRole::Admin)
    }
}

/// A workspace as seen by one of its members.
#[derive(Debug, Clone)]
pub struct Membership {
    pub tenant: Tenant,
    pub role: TenantRole,
}
