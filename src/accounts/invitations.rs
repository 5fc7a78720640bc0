//! Workspace invitations (Dify's invite-email, activate/check and activate): invited people
//! get a pending account, a membership with the chosen role, and an activation link, mailed
//! through the `mail` queue when mail is configured and always returned to the inviter.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{Account, Membership, TenantRole};
use super::password;
use super::repo;
use super::service::{Accounts, AccountsError, normalize_email};
use crate::infra::queue::{JobSpec, JobStore};

/// Dify's mail task for invitations.
pub const MAIL_TASK: &str = "send_invite_member_mail_task";

/// What an invitation token holds (Dify's `member_invite:token:{t}` JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invitation {
    account_id: Uuid,
    email: String,
    workspace_id: Uuid,
}

/// The invitation mail's arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteMail {
    pub to: String,
    pub inviter_name: String,
    pub workspace_name: String,
    pub url: String,
    #[serde(default)]
    pub language: Option<String>,
}

/// One line of the invite-email reply.
#[derive(Debug, Clone, Serialize)]
pub struct InvitationResult {
    pub status: &'static str,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn token_key(token: &str) -> String {
    format!("member_invite:token:{token}")
}

/// Details an invited person chooses when activating.
pub struct Activation<'a> {
    pub workspace_id: Option<Uuid>,
    pub email: Option<&'a str>,
    pub token: &'a str,
    pub name: &'a str,
    pub language: &'a str,
    pub timezone: &'a str,
    /// kiln also lets the person set the password here, completing the flow in one step.
    pub password: Option<&'a str>,
}

impl Accounts<'_> {
    fn console_web_url(&self) -> String {
        self.settings
            .server
            .console_web_url
            .as_ref()
            .map(|u| u.0.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_default()
    }

    /// Invites each email to the actor's workspace with `role`.
    pub async fn invite(
        &self,
        actor: &Account,
        membership: &Membership,
        emails: &[String],
        role: &str,
        language: Option<&str>,
        jobs: Option<&JobStore>,
    ) -> Result<Vec<InvitationResult>, AccountsError> {
        if !membership.role.is_privileged() {
            return Err(AccountsError::Forbidden);
        }
        let role = TenantRole::assignable(role).ok_or(AccountsError::InvalidRole)?;
        let ttl = Duration::from_secs(u64::from(self.settings.auth.invite_expiry_hours.0) * 3600);
        let web = self.console_web_url();
        let mut results = Vec::with_capacity(emails.len());
        for raw in emails {
            let Ok(email) = normalize_email(raw) else {
                results.push(InvitationResult {
                    status: "failed",
                    email: raw.clone(),
                    url: None,
                    message: Some("Invalid email".into()),
                });
                continue;
            };
            let existing = repo::find_account_by_email(self.db, &email).await?;
            if let Some(account) = &existing
                && repo::member_role(self.db, membership.tenant.id, account.id).await?.is_some()
            {
                results.push(InvitationResult {
                    status: "success",
                    email,
                    url: Some(format!("{web}/signin")),
                    message: None,
                });
                continue;
            }
            let account_id = match &existing {
                Some(account) => account.id,
                None => {
                    let id = Uuid::new_v4();
                    repo::create_pending_account(
                        self.db,
                        id,
                        &email,
                        language.unwrap_or("en-US"),
                        chrono::Utc::now(),
                    )
                    .await?;
                    id
                }
            };
            repo::add_member(self.db, membership.tenant.id, account_id, role, actor.id).await?;
            let url = if existing.as_ref().is_some_and(|a| a.status != "pending") {
                format!("{web}/signin")
            } else {
                let token = Uuid::new_v4().to_string();
                let value = serde_json::to_string(&Invitation {
                    account_id,
                    email: email.clone(),
                    workspace_id: membership.tenant.id,
                })
                .map_err(|e| AccountsError::Hash(e.to_string()))?;
                self.auth.put_token(&token_key(&token), &value, ttl).await?;
                let encoded: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
                format!("{web}/activate?email={encoded}&token={token}")
            };
            if self.settings.mail.mail_type.is_some()
                && let Some(jobs) = jobs
            {
                let mail = InviteMail {
                    to: email.clone(),
                    inviter_name: actor.name.clone(),
                    workspace_name: membership.tenant.name.clone(),
                    url: url.clone(),
                    language: language.map(str::to_owned),
                };
                let payload = serde_json::to_vec(&mail).map_err(|e| AccountsError::Hash(e.to_string()))?;
                if jobs.push(&[JobSpec::new("mail", MAIL_TASK, payload)]).await.is_err() {
                    tracing::warn!(email = %email, "could not queue the invitation mail; the link is in the reply");
                }
            }
            results.push(InvitationResult { status: "success", email, url: Some(url), message: None });
        }
        Ok(results)
    }

    async fn invitation(
        &self,
        token: &str,
        workspace_id: Option<Uuid>,
        email: Option<&str>,
    ) -> Result<Option<Invitation>, AccountsError> {
        let Some(json) = self.auth.get_token(&token_key(token)).await? else { return Ok(None) };
        let Ok(invitation) = serde_json::from_str::<Invitation>(&json) else { return Ok(None) };
        let email_ok = email.is_none_or(|e| e.trim().eq_ignore_ascii_case(&invitation.email));
        let workspace_ok = workspace_id.is_none_or(|w| w == invitation.workspace_id);
        Ok((email_ok && workspace_ok).then_some(invitation))
    }

    /// `GET /activate/check`: the workspace name for a valid invitation.
    pub async fn check_invitation(
        &self,
        token: &str,
        workspace_id: Option<Uuid>,
        email: Option<&str>,
    ) -> Result<Option<(String, Uuid, String)>, AccountsError> {
        let Some(invitation) = self.invitation(token, workspace_id, email).await? else { return Ok(None) };
        let tenant = repo::find_tenant(self.db, invitation.workspace_id).await?;
        let member = repo::member_role(self.db, invitation.workspace_id, invitation.account_id).await?;
        Ok(match (tenant, member) {
            (Some(tenant), Some(_)) if tenant.status == "normal" => {
                Some((tenant.name, tenant.id, invitation.email))
            }
            _ => None,
        })
    }

    /// `POST /activate`: completes the invited account; the token works once.
    pub async fn activate(&self, activation: Activation<'_>) -> Result<(), AccountsError> {
        let name = activation.name.trim();
        if name.is_empty() || name.chars().count() > 30 {
            return Err(AccountsError::InvalidParam("name must be 1 to 30 characters.".into()));
        }
        let hash = match activation.password {
            Some(password) => {
                password::validate_policy(password)?;
                Some(super::service::hash_password_for(password).await?)
            }
            None => None,
        };
        let invitation = self
            .invitation(activation.token, activation.workspace_id, activation.email)
            .await?
            .ok_or(AccountsError::AlreadyActivated)?;
        self.auth.take_token(&token_key(activation.token)).await?.ok_or(AccountsError::AlreadyActivated)?;
        repo::activate_account(
            self.db,
            invitation.account_id,
            name,
            activation.language,
            activation.timezone,
            hash.as_deref(),
        )
        .await?;
        Ok(())
    }
}
