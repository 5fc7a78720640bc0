//! Forgot password, Dify's three steps: mail a 6-digit code, check it (which yields a reset
//! token), set the new password. Tokens and limits live where refresh tokens do (Redis under
//! Dify's keys, else the database), and the mail goes out through the `mail` queue.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::password;
use super::repo;
use super::service::{Accounts, AccountsError, normalize_email};
use crate::infra::queue::{JobSpec, JobStore};

/// Dify's mail task for reset codes.
pub const MAIL_TASK: &str = "send_reset_password_mail_task";
/// Wrong codes after which the email is locked for FORGOT_PASSWORD_LOCKOUT_DURATION.
const MAX_CODE_ERRORS: u32 = 5;
/// One reset mail per email per minute.
const SEND_WINDOW: Duration = Duration::from_secs(60);

/// What a reset token holds (Dify's TokenManager JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResetToken {
    account_id: Option<Uuid>,
    email: String,
    token_type: String,
    code: String,
    phase: String,
}

/// The mail task's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetMail {
    pub to: String,
    pub code: String,
    #[serde(default)]
    pub language: Option<String>,
}

fn token_key(token: &str) -> String {
    format!("reset_password:token:{token}")
}

/// A random 6-digit code, as Dify mails them.
pub(super) fn six_digits() -> Result<String, AccountsError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| AccountsError::Hash(e.to_string()))?;
    Ok(format!("{:06}", u32::from_le_bytes(bytes) % 1_000_000))
}

/// Compares a stored code with a typed one without an early exit.
pub(super) fn codes_match(stored: &str, given: &str) -> bool {
    let given = given.trim();
    stored.len() == given.len()
        && stored.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// How long an IP that asked for too many code mails is refused (Dify's freeze).
const IP_FREEZE: Duration = Duration::from_secs(3600);

impl Accounts<'_> {
    /// Dify's per-IP send limit on code mails: more than EMAIL_SEND_IP_LIMIT_PER_MINUTE in a
    /// minute freezes the IP for an hour. Counted before anything is sent, so parallel
    /// requests cannot slip past it.
    pub(super) async fn check_ip_send_limit(&self, ip: Option<&str>) -> Result<(), AccountsError> {
        let Some(ip) = ip else {
            return Ok(());
        };
        let freeze_key = format!("email_send_ip_limit_freeze:{ip}");
        if self.auth.get_token(&freeze_key).await?.is_some() {
            return Err(AccountsError::EmailSendIpLimited);
        }
        let limit = self.settings.mail.email_send_ip_limit_per_minute.0;
        if self.auth.hit(&format!("email_send_ip_limit_minute:{ip}"), SEND_WINDOW).await? > limit {
            tracing::warn!(ip, limit, "too many code mails from one IP; refusing it for an hour");
            self.auth.put_token(&freeze_key, "1", IP_FREEZE).await?;
            return Err(AccountsError::EmailSendIpLimited);
        }
        Ok(())
    }
}

/// Queues a code mail (reset or sign-in) on the `mail` queue.
pub(super) async fn queue_code_mail(
    jobs: &JobStore,
    task: &str,
    mail: &ResetMail,
) -> Result<(), AccountsError> {
    let payload = serde_json::to_vec(mail).map_err(|e| AccountsError::Hash(e.to_string()))?;
    jobs.push(&[JobSpec::new("mail", task, payload)])
        .await
        .map(drop)
        .map_err(|_| AccountsError::QueueUnavailable)
}

impl Accounts<'_> {
    fn reset_ttl(&self) -> Duration {
        Duration::from_secs(u64::from(self.settings.mail.reset_password_token_expiry_minutes.0) * 60)
    }

    async fn store_token(&self, value: &ResetToken) -> Result<String, AccountsError> {
        let token = Uuid::new_v4().to_string();
        let json = serde_json::to_string(value).map_err(|e| AccountsError::Hash(e.to_string()))?;
        self.auth.put_token(&token_key(&token), &json, self.reset_ttl()).await?;
        Ok(token)
    }

    async fn read_token(&self, token: &str) -> Result<ResetToken, AccountsError> {
        let json =
            self.auth.get_token(&token_key(token)).await?.ok_or(AccountsError::InvalidOrExpiredToken)?;
        serde_json::from_str(&json).map_err(|_| AccountsError::InvalidOrExpiredToken)
    }

    /// Step 1: mails a code (when the account exists) and returns the token to quote with it.
    /// Unknown emails get a token too, so the answer does not reveal who has an account.
    pub async fn forgot_password(
        &self,
        email: &str,
        language: Option<&str>,
        ip: Option<&str>,
        jobs: Option<&JobStore>,
    ) -> Result<String, AccountsError> {
        if !self.is_setup().await? {
            return Err(AccountsError::NotSetup);
        }
        if self.settings.mail.mail_type.is_none() {
            return Err(AccountsError::MailNotConfigured);
        }
        let email = normalize_email(email)?;
        let jobs = jobs.ok_or(AccountsError::QueueUnavailable)?;
        self.check_ip_send_limit(ip).await?;
        if self.auth.hit(&format!("reset_password_rate_limit:{email}"), SEND_WINDOW).await? > 1 {
            return Err(AccountsError::ResetRateLimited);
        }
        let account = repo::find_account_by_email(self.db, &email).await?;
        let code = six_digits()?;
        let token = self
            .store_token(&ResetToken {
                account_id: account.as_ref().map(|a| a.id),
                email: email.clone(),
                token_type: "reset_password".into(),
                code: code.clone(),
                phase: "code".into(),
            })
            .await?;
        if account.is_some() {
            let mail = ResetMail { to: email, code, language: language.map(str::to_owned) };
            queue_code_mail(jobs, MAIL_TASK, &mail).await?;
        }
        Ok(token)
    }

    /// Step 2: checks the code; a match revokes the token and returns a reset token.
    pub async fn check_reset_code(
        &self,
        email: &str,
        code: &str,
        token: &str,
    ) -> Result<(String, String), AccountsError> {
        let email = email.trim().to_lowercase();
        let errors_key = format!("forgot_password_error_rate_limit:{email}");
        // Count the attempt before comparing, so parallel guesses cannot slip past the limit;
        // a correct code clears the count.
        let window = self.settings.mail.forgot_password_lockout_duration.duration();
        if self.auth.hit(&errors_key, window).await? > MAX_CODE_ERRORS {
            return Err(AccountsError::ResetLockedOut);
        }
        let data = self.read_token(token).await?;
        if data.phase != "code" {
            return Err(AccountsError::InvalidOrExpiredToken);
        }
        if data.email != email {
            return Err(AccountsError::InvalidEmail(email));
        }
        if !codes_match(&data.code, code) || data.account_id.is_none() {
            return Err(AccountsError::CodeMismatch);
        }
        // Only one caller can take the token, so a code is good once.
        self.auth.take_token(&token_key(token)).await?.ok_or(AccountsError::InvalidOrExpiredToken)?;
        self.auth.forget(&errors_key).await?;
        let reset = self.store_token(&ResetToken { phase: "reset".into(), ..data }).await?;
        Ok((email, reset))
    }

    /// Step 3: sets the new password with a reset token (used once).
    pub async fn reset_with_token(
        &self,
        token: &str,
        new_password: &str,
        confirm: &str,
    ) -> Result<(), AccountsError> {
        if new_password != confirm {
            return Err(AccountsError::PasswordMismatch);
        }
        password::validate_policy(new_password)?;
        let data = self.read_token(token).await?;
        if data.phase != "reset" {
            return Err(AccountsError::InvalidOrExpiredToken);
        }
        self.auth.take_token(&token_key(token)).await?.ok_or(AccountsError::InvalidOrExpiredToken)?;
        let account_id = data.account_id.ok_or(AccountsError::InvalidOrExpiredToken)?;
        let account =
            repo::find_account(self.db, account_id).await?.ok_or(AccountsError::InvalidOrExpiredToken)?;
        self.reset_password(&account.email, new_password, confirm).await
    }
}
