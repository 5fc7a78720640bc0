//! Email-code login (Dify's `/email-code-login`): a 6-digit code mailed through the `mail`
//! queue signs the person in. Off unless ENABLE_EMAIL_CODE_LOGIN=true.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::Account;
use super::recovery::{ResetMail, codes_match, queue_code_mail, six_digits};
use super::repo;
use super::service::{Accounts, AccountsError, normalize_email};
use crate::infra::queue::JobStore;

/// Dify's mail task for sign-in codes.
pub const MAIL_TASK: &str = "send_email_code_login_mail_task";
/// Dify's send limit: three codes per five minutes per email.
const SEND_LIMIT: u32 = 3;
const SEND_WINDOW: Duration = Duration::from_secs(300);
const MAX_CODE_ERRORS: u32 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CodeToken {
    account_id: Uuid,
    email: String,
    code: String,
}

fn token_key(token: &str) -> String {
    format!("email_code_login:token:{token}")
}

impl Accounts<'_> {
    /// Mails a sign-in code to a known account and returns the token to quote with it.
    pub async fn send_login_code(
        &self,
        email: &str,
        language: Option<&str>,
        ip: Option<&str>,
        jobs: Option<&JobStore>,
    ) -> Result<String, AccountsError> {
        if !self.is_setup().await? {
            return Err(AccountsError::NotSetup);
        }
        if !self.settings.auth.enable_email_code_login {
            return Err(AccountsError::EmailCodeLoginDisabled);
        }
        if self.settings.mail.mail_type.is_none() {
            return Err(AccountsError::MailNotConfigured);
        }
        let email = normalize_email(email)?;
        let jobs = jobs.ok_or(AccountsError::QueueUnavailable)?;
        self.check_ip_send_limit(ip).await?;
        if self.auth.hit(&format!("email_code_login_rate_limit:{email}"), SEND_WINDOW).await? > SEND_LIMIT {
            return Err(AccountsError::EmailCodeRateLimited);
        }
        // Registration is not open, so an unknown email is refused as Dify does.
        let account = repo::find_account_by_email(self.db, &email)
            .await?
            .ok_or_else(|| AccountsError::AccountNotFound(email.clone()))?;
        let code = six_digits()?;
        let token = Uuid::new_v4().to_string();
        let value = serde_json::to_string(&CodeToken {
            account_id: account.id,
            email: email.clone(),
            code: code.clone(),
        })
        .map_err(|e| AccountsError::Hash(e.to_string()))?;
        let ttl =
            Duration::from_secs(u64::from(self.settings.auth.email_code_login_token_expiry_minutes.0) * 60);
        self.auth.put_token(&token_key(&token), &value, ttl).await?;
        let mail = ResetMail { to: email, code, language: language.map(str::to_owned) };
        queue_code_mail(jobs, MAIL_TASK, &mail).await?;
        Ok(token)
    }

    /// Checks a sign-in code (Base64, as the web client sends it); signs the account in.
    pub async fn login_with_code(
        &self,
        email: &str,
        code_b64: &str,
        token: &str,
        ip: Option<&str>,
    ) -> Result<Account, AccountsError> {
        let email = email.trim().to_lowercase();
        let errors_key = format!("email_code_login_error_rate_limit:{email}");
        let window = self.settings.auth.login_lockout_duration.duration();
        if self.auth.hit(&errors_key, window).await? > MAX_CODE_ERRORS {
            return Err(AccountsError::EmailCodeLockedOut);
        }
        let code = base64::engine::general_purpose::STANDARD
            .decode(code_b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let json =
            self.auth.get_token(&token_key(token)).await?.ok_or(AccountsError::InvalidOrExpiredToken)?;
        let data: CodeToken =
            serde_json::from_str(&json).map_err(|_| AccountsError::InvalidOrExpiredToken)?;
        if data.email != email {
            return Err(AccountsError::InvalidEmail(email));
        }
        if !codes_match(&data.code, &code) {
            return Err(AccountsError::CodeMismatch);
        }
        self.auth.take_token(&token_key(token)).await?.ok_or(AccountsError::InvalidOrExpiredToken)?;
        self.auth.forget(&errors_key).await?;
        let account = repo::find_account(self.db, data.account_id)
            .await?
            .ok_or(AccountsError::InvalidOrExpiredToken)?;
        if !account.is_usable() {
            return Err(AccountsError::Banned);
        }
        if repo::current_membership(self.db, account.id).await?.is_none() {
            return Err(AccountsError::NoWorkspace);
        }
        self.auth.reset_login_failures(&email).await?;
        repo::record_login(self.db, account.id, ip, chrono::Utc::now()).await?;
        Ok(account)
    }
}
