//! Mail tasks on the `mail` queue (Dify's task names).

use std::sync::Arc;

use super::{TaskContext, TaskError, TaskServices};
use crate::accounts::recovery::ResetMail;

/// Sends one message through the worker's mailer: no mailer is permanent (retrying cannot
/// help), a relay failure is transient.
async fn deliver(
    services: &TaskServices,
    to: &str,
    subject: &str,
    text: String,
    html: String,
) -> Result<(), TaskError> {
    let Some(mailer) = &services.mailer else {
        return Err(TaskError::Permanent("mail is not configured (MAIL_TYPE, SMTP_*) on this worker".into()));
    };
    mailer.send(to, subject, text, html).await.map_err(|e| match e {
        crate::infra::mail::MailError::Send(message) => TaskError::Transient(message),
        other => TaskError::Permanent(other.to_string()),
    })
}

/// `send_reset_password_mail_task`: the forgot-password code.
pub async fn send_reset_password_mail(
    services: Arc<TaskServices>,
    mail: ResetMail,
    ctx: TaskContext,
) -> Result<(), TaskError> {
    let chinese = mail.language.as_deref().is_some_and(|l| l.starts_with("zh"));
    let (subject, intro) = if chinese {
        ("重置您的 Dify 密码", "您的验证码是")
    } else {
        ("Reset your Dify password", "Your password reset code is")
    };
    let text = format!(
        "{intro}: {code}\n\nThe code expires in a few minutes. If you did not ask for it, ignore this mail.\n",
        code = mail.code
    );
    let html = format!(
        "<p>{intro}:</p><p style=\"font-size:24px;font-weight:bold;letter-spacing:4px\">{code}</p>\
         <p>The code expires in a few minutes. If you did not ask for it, ignore this mail.</p>",
        code = mail.code
    );
    deliver(&services, &mail.to, subject, text, html).await?;
    tracing::info!(job = %ctx.job_id, "sent a password reset code");
    Ok(())
}

/// `send_invite_member_mail_task`: the workspace invitation with its link.
pub async fn send_invite_member_mail(
    services: Arc<TaskServices>,
    mail: crate::accounts::invitations::InviteMail,
    ctx: TaskContext,
) -> Result<(), TaskError> {
    let subject = format!("Join {} on Dify", mail.workspace_name);
    let text = format!(
        "{} invited you to the workspace {}.\n\nJoin it here: {}\n",
        mail.inviter_name, mail.workspace_name, mail.url
    );
    let html = format!(
        "<p>{} invited you to the workspace <b>{}</b>.</p><p><a href=\"{}\">Join the workspace</a></p>",
        mail.inviter_name, mail.workspace_name, mail.url
    );
    deliver(&services, &mail.to, &subject, text, html).await?;
    tracing::info!(job = %ctx.job_id, "sent a workspace invitation");
    Ok(())
}

/// `send_email_code_login_mail_task`: a sign-in code.
pub async fn send_email_code_login_mail(
    services: Arc<TaskServices>,
    mail: ResetMail,
    ctx: TaskContext,
) -> Result<(), TaskError> {
    let text = format!("Your sign-in code is: {}\n\nThe code expires in a few minutes.\n", mail.code);
    let html =
        format!("<p>Your sign-in code is:</p><p style=\"font-size:24px;font-weight:bold\">{}</p>", mail.code);
    deliver(&services, &mail.to, "Sign in to Dify", text, html).await?;
    tracing::info!(job = %ctx.job_id, "sent a sign-in code");
    Ok(())
}
