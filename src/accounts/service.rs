//! What accounts and workspaces can do, independent of whether HTTP, an admin command or a
//! test asks: setup, login, token rotation, password and email resets, key pairs.

use std::time::Duration;

use chrono::Utc;
use secrecy::ExposeSecret;
use uuid::Uuid;

use super::keys::{self, KeyError};
use super::model::{Account, Membership, TenantRole};
use super::password::{self, Verification};
use super::repo::{self, NewAccount, NewTenant, RepoError};
use super::tokens::{AuthStore, Passport, TokenError, new_refresh_token};
use crate::config::Settings;
use crate::infra::db::Db;
use crate::infra::storage::Storage;

/// Failed logins after which the email is locked for LOGIN_LOCKOUT_DURATION.
pub const LOGIN_MAX_FAILURES: u32 = 5;
/// The schema version written to `dify_setups` by first-run setup.
pub const SETUP_VERSION: &str = crate::VERSION;

/// Everything that can go wrong, in the words an operator or a client should see.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("Account not found for email: {0}")]
    AccountNotFound(String),
    #[error("Invalid email: {0}")]
    InvalidEmail(String),
    #[error("An account with the email {0} already exists.")]
    EmailTaken(String),
    #[error("{0}")]
    Policy(#[from] password::PolicyError),
    #[error("Passwords do not match.")]
    PasswordMismatch,
    #[error("New emails do not match.")]
    EmailMismatch,
    #[error("{0}")]
    InvalidParam(String),
    #[error("Setup has already been completed.")]
    AlreadySetup,
    #[error("Setup has not been completed: create the first account with POST /console/api/setup.")]
    NotSetup,
    #[error("Init validation has not been completed: POST /console/api/init with INIT_PASSWORD first.")]
    NotInitValidated,
    #[error("Init password is invalid.")]
    InitValidateFailed,
    #[error("Invalid email or password.")]
    InvalidCredentials,
    #[error("Too many incorrect password attempts. Please try again later.")]
    LockedOut,
    #[error("Account is banned.")]
    Banned,
    #[error("Workspace not found, please contact system admin to invite you to join in a workspace.")]
    NoWorkspace,
    #[error("Invalid or expired token.")]
    InvalidToken,
    #[error("Only the workspace owner or an admin can do this.")]
    Forbidden,
    #[error("Email code login is disabled (ENABLE_EMAIL_CODE_LOGIN).")]
    EmailCodeLoginDisabled,
    #[error("Too many sign-in codes; please wait before asking again.")]
    EmailCodeRateLimited,
    #[error("Too many incorrect sign-in codes. Please try again later.")]
    EmailCodeLockedOut,
    #[error("The invitation is invalid, expired or already used.")]
    AlreadyActivated,
    #[error("Cannot operate on yourself.")]
    CannotOperateSelf,
    #[error("Member not found.")]
    MemberNotFound,
    #[error("Invalid role")]
    InvalidRole,
    #[error(
        "Mail is not configured (MAIL_TYPE, SMTP_*): ask an administrator to reset your password with `kiln reset-password`."
    )]
    MailNotConfigured,
    #[error("The job queue is not reachable yet; try again shortly.")]
    QueueUnavailable,
    #[error("Too many password reset emails; please wait a minute before asking again.")]
    ResetRateLimited,
    #[error("Too many emails have been sent from this IP address recently.")]
    EmailSendIpLimited,
    #[error("Too many incorrect verification codes. Please try again later.")]
    ResetLockedOut,
    #[error("The verification code is incorrect.")]
    CodeMismatch,
    #[error("The token is invalid or has expired.")]
    InvalidOrExpiredToken,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Repo(RepoError),
    #[error(transparent)]
    Token(TokenError),
}

impl From<RepoError> for AccountsError {
    fn from(error: RepoError) -> Self {
        AccountsError::Repo(error)
    }
}

impl From<TokenError> for AccountsError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid => AccountsError::InvalidToken,
            other => AccountsError::Token(other),
        }
    }
}

/// The shared services account operations need.
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    pub db: &'a Db,
    pub storage: &'a Storage,
    pub auth: &'a AuthStore,
    pub settings: &'a Settings,
}

/// Tokens handed to a browser after login or refresh.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub csrf_token: String,
}

/// Lower-cases and checks an email the way Dify's `email` validator roughly does.
pub fn normalize_email(raw: &str) -> Result<String, AccountsError> {
    let email = raw.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if valid { Ok(email) } else { Err(AccountsError::InvalidEmail(raw.trim().to_owned())) }
}

/// Hashes a password off the async threads (for other account flows).
pub async fn hash_password_for(plain: &str) -> Result<String, AccountsError> {
    hash_password(plain).await
}

async fn hash_password(plain: &str) -> Result<String, AccountsError> {
    let plain = plain.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&plain))
        .await
        .map_err(|e| AccountsError::Hash(e.to_string()))?
        .map_err(|e| AccountsError::Hash(e.to_string()))
}

async fn verify_password(plain: &str, account: &Account) -> Verification {
    let (plain, hash, salt) = (plain.to_owned(), account.password.clone(), account.password_salt.clone());
    let Some(hash) = hash else { return Verification::Invalid };
    tokio::task::spawn_blocking(move || password::verify(&plain, &hash, salt.as_deref()))
        .await
        .unwrap_or(Verification::Invalid)
}

fn duplicate_email(error: RepoError, email: &str) -> AccountsError {
    match error {
        // A setup that raced another one and lost.
        RepoError::Duplicate(what) if what.contains("dify_setups") => AccountsError::AlreadySetup,
        RepoError::Duplicate(_) => AccountsError::EmailTaken(email.to_owned()),
        other => AccountsError::Repo(other),
    }
}

/// A fixed argon2id hash to verify against when the email is unknown.
static DUMMY_HASH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

async fn spend_a_verification(plain: &str) {
    let plain = plain.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(hash) = DUMMY_HASH.get_or_init(|| password::hash("kiln-dummy-password-1").ok()) {
            let _ = password::verify(&plain, hash, None);
        }
    })
    .await;
}

/// Compares secrets without an early exit, so timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Accounts<'_> {
    fn passport(&self, secret: &secrecy::SecretString) -> Passport {
        Passport::new(secret)
    }

    /// When first-run setup happened, if it has.
    pub async fn setup_at(&self) -> Result<Option<chrono::DateTime<Utc>>, AccountsError> {
        Ok(repo::setup_at(self.db).await?)
    }

    /// Whether the installation has been set up (a setup row or any workspace).
    pub async fn is_setup(&self) -> Result<bool, AccountsError> {
        Ok(repo::setup_at(self.db).await?.is_some() || repo::tenant_count(self.db).await? > 0)
    }

    /// Checks the INIT_PASSWORD step.
    pub async fn validate_init(&self, given: &str) -> Result<(), AccountsError> {
        if self.is_setup().await? {
            return Err(AccountsError::AlreadySetup);
        }
        match &self.settings.auth.init_password {
            Some(expected) if !constant_time_eq(expected.expose_secret().as_bytes(), given.as_bytes()) => {
                Err(AccountsError::InitValidateFailed)
            }
            _ => Ok(()),
        }
    }

    /// Creates the owner account, its workspace `"{name}'s Workspace"` with an RSA key pair,
    /// and the setup row, all or nothing.
    pub async fn setup(
        &self,
        email: &str,
        name: &str,
        password: &str,
        language: Option<&str>,
    ) -> Result<Account, AccountsError> {
        if self.is_setup().await? {
            return Err(AccountsError::AlreadySetup);
        }
        let email = normalize_email(email)?;
        let name = validate_name(name)?;
        password::validate_policy(password)?;
        let (account, _) = self.create_owner(&email, &name, password, language, Some(SETUP_VERSION)).await?;
        Ok(account)
    }

    async fn create_owner(
        &self,
        email: &str,
        name: &str,
        password: &str,
        language: Option<&str>,
        setup_version: Option<&str>,
    ) -> Result<(Account, Uuid), AccountsError> {
        let tenant_id = Uuid::new_v4();
        let public_pem = keys::create_tenant_key_pair(self.storage, &tenant_id).await?;
        let account = NewAccount {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            email: email.to_owned(),
            password_hash: hash_password(password).await?,
            interface_language: language.filter(|l| !l.trim().is_empty()).unwrap_or("en-US").to_owned(),
        };
        let tenant =
            NewTenant { id: tenant_id, name: format!("{name}'s Workspace"), encrypt_public_key: public_pem };
        if let Err(error) = repo::create_owner(self.db, &account, &tenant, setup_version, Utc::now()).await {
            // Nothing was committed, so the private key written above belongs to no workspace.
            let path = keys::private_key_path(&tenant_id);
            let _ = self.storage.operator().delete(&path).await;
            if let Some((dir, _)) = path.rsplit_once('/') {
                let _ = self.storage.operator().delete(&format!("{dir}/")).await;
            }
            return Err(duplicate_email(error, email));
        }
        let stored = repo::find_account(self.db, account.id)
            .await?
            .ok_or(AccountsError::AccountNotFound(email.to_owned()))?;
        Ok((stored, tenant_id))
    }

    /// Checks credentials with lockout; upgrades a Dify PBKDF2 hash to argon2id on success.
    ///
    /// Every attempt is counted before the password is checked and the count is cleared on
    /// success, so parallel guesses cannot slip past the limit while they are being verified.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<Account, AccountsError> {
        if !self.is_setup().await? {
            return Err(AccountsError::NotSetup);
        }
        let email = email.trim().to_lowercase();
        if email.len() > 320 {
            return Err(AccountsError::InvalidCredentials);
        }
        let window = self.settings.auth.login_lockout_duration.duration();
        if self.auth.record_login_failure(&email, window).await? > LOGIN_MAX_FAILURES {
            return Err(AccountsError::LockedOut);
        }
        let account = repo::find_account_by_email(self.db, &email).await?;
        let verification = match &account {
            Some(account) => verify_password(password, account).await,
            None => {
                // Spend the same time as a real check, so timing does not reveal which
                // emails have accounts.
                spend_a_verification(password).await;
                Verification::Invalid
            }
        };
        let (account, needs_upgrade) = match (account, verification) {
            (Some(account), Verification::Valid { needs_upgrade }) => (account, needs_upgrade),
            _ => return Err(AccountsError::InvalidCredentials),
        };
        if !account.is_usable() {
            return Err(AccountsError::Banned);
        }
        if needs_upgrade {
            repo::set_password(self.db, account.id, &hash_password(password).await?, None).await?;
            tracing::info!(account = %account.id, "upgraded a Dify PBKDF2 password hash to argon2id");
        }
        if repo::current_membership(self.db, account.id).await?.is_none() {
            return Err(AccountsError::NoWorkspace);
        }
        self.auth.reset_login_failures(&email).await?;
        repo::record_login(self.db, account.id, ip, Utc::now()).await?;
        Ok(account)
    }

    /// Issues the access, refresh and CSRF tokens for an account (revoking its old refresh token).
    pub async fn issue_session(
        &self,
        account_id: Uuid,
        secret: &secrecy::SecretString,
    ) -> Result<Session, AccountsError> {
        let passport = self.passport(secret);
        let access_lifetime =
            Duration::from_secs(u64::from(self.settings.auth.access_token_expire_minutes.0) * 60);
        let refresh_token = new_refresh_token()?;
        self.auth
            .put_refresh(&refresh_token, account_id, self.settings.auth.refresh_token_expire_days.duration())
            .await?;
        Ok(Session {
            access_token: passport.access_token(account_id, access_lifetime)?,
            refresh_token,
            csrf_token: passport.csrf_token(account_id, access_lifetime)?,
        })
    }

    /// Rotates a refresh token: the old one stops working, a new session is issued.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        secret: &secrecy::SecretString,
    ) -> Result<Session, AccountsError> {
        let account_id = self.auth.take_refresh(refresh_token).await?.ok_or(AccountsError::InvalidToken)?;
        let account = repo::find_account(self.db, account_id).await?.ok_or(AccountsError::InvalidToken)?;
        if !account.is_usable() {
            return Err(AccountsError::Banned);
        }
        self.issue_session(account_id, secret).await
    }

    /// The account and current workspace behind a valid access token.
    pub async fn authenticate(&self, account_id: Uuid) -> Result<(Account, Membership), AccountsError> {
        let account = repo::find_account(self.db, account_id).await?.ok_or(AccountsError::InvalidToken)?;
        if !account.is_usable() {
            return Err(AccountsError::Banned);
        }
        let membership =
            repo::current_membership(self.db, account_id).await?.ok_or(AccountsError::NoWorkspace)?;
        let now = Utc::now();
        if now - account.last_active_at > chrono::Duration::minutes(10) {
            repo::touch_active(self.db, account_id, now).await?;
        }
        Ok((account, membership))
    }

    /// `kiln reset-password`: policy, confirmation, new hash, lockout cleared, sessions revoked.
    pub async fn reset_password(
        &self,
        email: &str,
        new_password: &str,
        confirm: &str,
    ) -> Result<(), AccountsError> {
        if new_password.trim() != confirm.trim() {
            return Err(AccountsError::PasswordMismatch);
        }
        let account = repo::find_account_by_email(self.db, email)
            .await?
            .ok_or_else(|| AccountsError::AccountNotFound(email.trim().to_owned()))?;
        password::validate_policy(new_password)?;
        repo::set_password(self.db, account.id, &hash_password(new_password).await?, None).await?;
        self.auth.reset_login_failures(&account.email).await?;
        self.auth.revoke_account(account.id).await?;
        Ok(())
    }

    /// `kiln reset-email`: the new address is stored lower-cased and must be free.
    pub async fn reset_email(
        &self,
        email: &str,
        new_email: &str,
        confirm: &str,
    ) -> Result<String, AccountsError> {
        if new_email.trim() != confirm.trim() {
            return Err(AccountsError::EmailMismatch);
        }
        let account = repo::find_account_by_email(self.db, email)
            .await?
            .ok_or_else(|| AccountsError::AccountNotFound(email.trim().to_owned()))?;
        let new_email = normalize_email(new_email)?;
        repo::set_email(self.db, account.id, &new_email).await.map_err(|e| duplicate_email(e, &new_email))?;
        Ok(new_email)
    }

    /// `kiln create-tenant`: a new account (name = local part) owning a new workspace, with a
    /// generated password that meets the policy. Returns the account and the password.
    pub async fn create_tenant(
        &self,
        email: &str,
        name: Option<&str>,
        language: Option<&str>,
    ) -> Result<(Account, String), AccountsError> {
        if email.trim().is_empty() {
            return Err(AccountsError::InvalidParam("Email is required.".into()));
        }
        let email = normalize_email(email)
            .map_err(|_| AccountsError::InvalidParam("Invalid email address.".into()))?;
        let account_name = email.split('@').next().unwrap_or_default().to_owned();
        let password = generate_password()?;
        let language = language.filter(|l| SUPPORTED_LANGUAGES.contains(l)).or(Some("en-US"));
        let (account, tenant_id) =
            self.create_owner(&email, &account_name, &password, language, None).await?;
        if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
            repo::rename_tenant(self.db, tenant_id, name).await?;
        }
        Ok((account, password))
    }

    /// `kiln reset-encrypt-key-pair`: new RSA pair for every workspace; returns their ids.
    pub async fn reset_key_pairs(&self) -> Result<Vec<Uuid>, AccountsError> {
        let mut reset = Vec::new();
        for tenant in repo::all_tenants(self.db).await? {
            let public_pem = keys::create_tenant_key_pair(self.storage, &tenant.id).await?;
            repo::set_tenant_public_key(self.db, tenant.id, &public_pem).await?;
            reset.push(tenant.id);
        }
        Ok(reset)
    }

    /// Renames the member's current workspace (owners and admins only).
    pub async fn rename_workspace(&self, membership: &Membership, name: &str) -> Result<(), AccountsError> {
        if !membership.role.is_privileged() {
            return Err(AccountsError::Forbidden);
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 {
            return Err(AccountsError::InvalidParam("name must be 1 to 255 characters.".into()));
        }
        Ok(repo::rename_tenant(self.db, membership.tenant.id, name).await?)
    }
}

impl Accounts<'_> {
    /// The members of the actor's current workspace.
    pub async fn members(&self, membership: &Membership) -> Result<Vec<repo::MemberRow>, AccountsError> {
        Ok(repo::list_members(self.db, membership.tenant.id).await?)
    }

    async fn check_member_change(
        &self,
        actor: &Account,
        membership: &Membership,
        target: Uuid,
    ) -> Result<(), AccountsError> {
        if !membership.role.is_privileged() {
            return Err(AccountsError::Forbidden);
        }
        if target == actor.id {
            return Err(AccountsError::CannotOperateSelf);
        }
        match repo::member_role(self.db, membership.tenant.id, target).await? {
            None => Err(AccountsError::MemberNotFound),
            Some(TenantRole::Owner) => Err(AccountsError::Forbidden),
            // Admins manage editors and below; only the owner changes other admins.
            Some(TenantRole::Admin) if membership.role != TenantRole::Owner => Err(AccountsError::Forbidden),
            Some(_) => Ok(()),
        }
    }

    /// Removes a member from the actor's current workspace.
    pub async fn remove_member(
        &self,
        actor: &Account,
        membership: &Membership,
        target: Uuid,
    ) -> Result<(), AccountsError> {
        self.check_member_change(actor, membership, target).await?;
        repo::remove_member(self.db, membership.tenant.id, target).await?;
        self.auth.revoke_account(target).await?;
        Ok(())
    }

    /// Changes a member's role (never to or from owner).
    pub async fn update_member_role(
        &self,
        actor: &Account,
        membership: &Membership,
        target: Uuid,
        role: &str,
    ) -> Result<(), AccountsError> {
        let role = TenantRole::assignable(role).ok_or(AccountsError::InvalidRole)?;
        self.check_member_change(actor, membership, target).await?;
        repo::set_member_role(self.db, membership.tenant.id, target, role).await?;
        Ok(())
    }
}

/// Languages Dify's console offers; anything else falls back to en-US, as Dify does.
pub const SUPPORTED_LANGUAGES: &[&str] = &[
    "en-US", "zh-Hans", "zh-Hant", "pt-BR", "es-ES", "fr-FR", "de-DE", "ja-JP", "ko-KR", "ru-RU", "it-IT",
    "uk-UA", "vi-VN", "pl-PL", "ro-RO", "hi-IN", "tr-TR", "fa-IR", "sl-SI", "th-TH", "id-ID", "ar-TN",
];

fn validate_name(raw: &str) -> Result<String, AccountsError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 30 {
        return Err(AccountsError::InvalidParam("name must be 1 to 30 characters.".into()));
    }
    Ok(name.to_owned())
}

/// A random password that passes the policy, like Dify's `secrets.token_urlsafe(16)` loop.
fn generate_password() -> Result<String, AccountsError> {
    use base64::Engine;
    for _ in 0..100 {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| AccountsError::Hash(e.to_string()))?;
        let candidate = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if password::validate_policy(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(AccountsError::Hash("could not generate a password that meets the policy".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Admin@Example.COM ").unwrap(), "admin@example.com");
        for bad in ["", "admin", "admin@", "@example.com", "admin@example", "a b@example.com", "a@b@c.com"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn generated_passwords_meet_the_policy() {
        for _ in 0..20 {
            assert!(password::validate_policy(&generate_password().unwrap()).is_ok());
        }
    }
}
