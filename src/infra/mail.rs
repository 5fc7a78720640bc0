//! Outgoing mail over SMTP (lettre, rustls), configured with Dify's SMTP_* settings.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::Settings;

/// Mail failures; sending errors are worth a retry, configuration errors are not.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid mail settings: {0}")]
    Config(String),
    #[error("cannot build the message: {0}")]
    Message(String),
    #[error("the SMTP relay refused or failed: {0}")]
    Send(String),
}

/// Sends mail through the configured relay.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// The mailer MAIL_TYPE describes, or `None` when mail is not configured.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, MailError> {
        let mail = &settings.mail;
        if mail.mail_type.is_none() {
            return Ok(None);
        }
        let from: Mailbox = mail
            .default_send_from
            .parse()
            .map_err(|e| MailError::Config(format!("MAIL_DEFAULT_SEND_FROM: {e}")))?;
        let host = mail.smtp_server.trim();
        let builder = match (mail.smtp_use_tls, mail.smtp_opportunistic_tls) {
            (true, false) => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            (true, true) => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            (false, _) => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
        }
        .map_err(|e| MailError::Config(format!("SMTP_SERVER={host:?}: {e}")))?;
        let mut builder = builder.port(mail.smtp_port.0);
        if !mail.smtp_username.is_empty() {
            builder = builder.credentials(Credentials::new(
                mail.smtp_username.clone(),
                mail.smtp_password.expose_secret().to_owned(),
            ));
        }
        Ok(Some(Self { transport: builder.build(), from }))
    }

    /// Sends one message with a plain-text and an HTML part.
    pub async fn send(&self, to: &str, subject: &str, text: String, html: String) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|e| MailError::Message(format!("recipient {to:?}: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| MailError::Message(e.to_string()))?;
        self.transport.send(message).await.map(drop).map_err(|e| MailError::Send(e.to_string()))
    }
}
