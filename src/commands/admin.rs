//! Account and workspace admin commands: `reset-password`, `reset-email`, `create-tenant`,
//! `reset-encrypt-key-pair`, `list-accounts`, `list-tenants`.
//!
//! Dify's messages, but real exit codes: 0 success, 1 failure (not found, policy, mismatch),
//! 2 usage (a missing option with no terminal to ask on). A missing option on a terminal is
//! prompted for, passwords without echo.

use std::io::{BufRead, IsTerminal, Write};

use crate::accounts::repo;
use crate::accounts::service::Accounts;
use crate::accounts::tokens::AuthStore;
use crate::config::Settings;
use crate::infra::db::{Db, describe};
use crate::infra::migrations::{self, SchemaState};
use crate::infra::storage::Storage;

/// Exit code for usage errors.
pub const EXIT_USAGE: u8 = 2;

/// Why an admin command stopped before doing its work.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl AdminError {
    fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) => EXIT_USAGE,
            AdminError::Failed(_) => 1,
        }
    }
}

/// The services an admin command uses, opened against a schema that matches this binary.
pub struct AdminContext {
    pub db: Db,
    pub storage: Storage,
    pub auth: AuthStore,
    pub settings: std::sync::Arc<Settings>,
}

impl AdminContext {
    pub async fn open(settings: std::sync::Arc<Settings>) -> Result<Self, AdminError> {
        let failed = |e: &dyn std::fmt::Display| AdminError::Failed(e.to_string());
        let db = Db::connect(&settings).await.map_err(|e| failed(&e))?;
        let status = migrations::status(&db, &settings).await.map_err(|e| failed(&e))?;
        let target = describe(&settings);
        let problem = match status.state() {
            SchemaState::Current => None,
            SchemaState::Behind(pending) => {
                Some(format!("{} pending migration(s); run `kiln upgrade-db` first", pending.len()))
            }
            SchemaState::Ahead(versions) => Some(format!(
                "it was migrated by a newer kiln (unknown migrations {versions:?}); use that version"
            )),
            SchemaState::Dirty(version) => {
                Some(format!("migration {version} is partially applied; repair it first"))
            }
            SchemaState::Modified(migration) => {
                Some(format!("migration {migration} was changed after it was applied"))
            }
        };
        if let Some(problem) = problem {
            return Err(AdminError::Failed(format!(
                "the schema of {target} does not match this kiln: {problem}"
            )));
        }
        let storage = Storage::open(&settings).map_err(|e| failed(&e))?;
        let auth = crate::roles::auth_store(&settings, &db).await.map_err(|e| failed(&e))?;
        Ok(Self { db, storage, auth, settings })
    }

    fn accounts(&self) -> Accounts<'_> {
        Accounts { db: &self.db, storage: &self.storage, auth: &self.auth, settings: &self.settings }
    }
}

/// An option's value, else a prompt on a terminal, else a usage error naming the flag.
fn value_or_prompt(
    value: Option<String>,
    flag: &str,
    label: &str,
    hidden: bool,
) -> Result<String, AdminError> {
    if let Some(value) = value {
        return Ok(value);
    }
    if !std::io::stdin().is_terminal() {
        return Err(AdminError::Usage(format!(
            "missing {flag} (no terminal to prompt on; pass {flag} VALUE)"
        )));
    }
    let answer = if hidden {
        rpassword::prompt_password(format!("{label}: "))
            .map_err(|e| AdminError::Usage(format!("cannot read {flag}: {e}")))?
    } else {
        print!("{label}: ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| AdminError::Usage(format!("cannot read {flag}: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    Ok(answer)
}

pub(crate) fn finish(result: Result<String, AdminError>) -> u8 {
    match result {
        Ok(message) => {
            println!("{message}");
            0
        }
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
    }
}

pub(crate) async fn with_context<F, Fut>(settings: std::sync::Arc<Settings>, run: F) -> u8
where
    F: FnOnce(AdminContext) -> Fut,
    Fut: std::future::Future<Output = Result<String, AdminError>>,
{
    let result = match AdminContext::open(settings).await {
        Ok(ctx) => {
            let db = ctx.db.clone();
            let result = run(ctx).await;
            db.close().await;
            result
        }
        Err(error) => Err(error),
    };
    finish(result)
}

pub(crate) fn failed(error: impl std::fmt::Display) -> AdminError {
    AdminError::Failed(error.to_string())
}

/// One option to read: its value if given, the flag, the prompt label, hidden input or not.
type Field<'a> = (Option<String>, &'a str, &'a str, bool);

/// Reads every field in order, stopping at the first that cannot be had.
fn read_all<const N: usize>(fields: [Field<'_>; N]) -> Result<[String; N], AdminError> {
    let mut values: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, (value, flag, label, hidden)) in values.iter_mut().zip(fields) {
        *slot = value_or_prompt(value, flag, label, hidden)?;
    }
    Ok(values)
}

/// `kiln reset-password`.
pub async fn reset_password(
    settings: std::sync::Arc<Settings>,
    email: Option<String>,
    new_password: Option<String>,
    confirm: Option<String>,
) -> u8 {
    let [email, new_password, confirm] = match read_all([
        (email, "--email", "Email", false),
        (new_password, "--new-password", "New password", true),
        (confirm, "--password-confirm", "Confirm new password", true),
    ]) {
        Ok(values) => values,
        Err(error) => return finish(Err(error)),
    };
    with_context(settings, |ctx| async move {
        ctx.accounts().reset_password(&email, &new_password, &confirm).await.map_err(failed)?;
        Ok("Password reset successfully.".to_owned())
    })
    .await
}

/// `kiln reset-email`.
pub async fn reset_email(
    settings: std::sync::Arc<Settings>,
    email: Option<String>,
    new_email: Option<String>,
    confirm: Option<String>,
) -> u8 {
    let [email, new_email, confirm] = match read_all([
        (email, "--email", "Current email", false),
        (new_email, "--new-email", "New email", false),
        (confirm, "--email-confirm", "Confirm new email", false),
    ]) {
        Ok(values) => values,
        Err(error) => return finish(Err(error)),
    };
    with_context(settings, |ctx| async move {
        ctx.accounts().reset_email(&email, &new_email, &confirm).await.map_err(failed)?;
        Ok("Email updated successfully.".to_owned())
    })
    .await
}

/// `kiln create-tenant`: prints the generated password once.
pub async fn create_tenant(
    settings: std::sync::Arc<Settings>,
    email: Option<String>,
    name: Option<String>,
    language: Option<String>,
) -> u8 {
    let email = match value_or_prompt(email, "--email", "Email", false) {
        Ok(email) => email,
        Err(error) => return finish(Err(error)),
    };
    with_context(settings, |ctx| async move {
        let (account, password) = ctx
            .accounts()
            .create_tenant(&email, name.as_deref(), language.as_deref())
            .await
            .map_err(failed)?;
        Ok(format!("Account and tenant created.\nAccount: {}\nPassword: {password}", account.email))
    })
    .await
}

/// `kiln reset-encrypt-key-pair`: asks first unless `--yes`.
/// Asks `question` on a terminal unless `yes`; without a terminal, a usage error telling to
/// pass `flag`.
pub(crate) fn confirm(yes: bool, question: &str, refusal: &str, flag: &str) -> Result<(), AdminError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(AdminError::Usage(format!("{refusal} without confirmation: pass {flag}")));
    }
    print!("{question} [y/N]: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(AdminError::Failed("Aborted.".into()))
    }
}

pub async fn reset_encrypt_key_pair(settings: std::sync::Arc<Settings>, yes: bool) -> u8 {
    let question = "Are you sure you want to reset encrypt key pair? This operation cannot be rolled back!";
    if let Err(error) = confirm(yes, question, "refusing to reset every workspace's key pair", "--yes") {
        return finish(Err(error));
    }
    with_context(settings, |ctx| async move {
        let reset = ctx.accounts().reset_key_pairs().await.map_err(failed)?;
        if reset.is_empty() {
            return Ok("No workspaces found; nothing to reset.".to_owned());
        }
        let mut out = String::new();
        for tenant in &reset {
            out.push_str(&format!("Congratulations! The asymmetric key pair of workspace {tenant} has been reset.\n"));
        }
        out.push_str(&format!(
            "Invalidated: the previous private keys of these {} workspace(s) (overwritten in storage under privkeys/). \
             Any secret encrypted with them can no longer be decrypted and must be entered again; \
             this kiln version stores no such secrets yet.",
            reset.len()
        ));
        Ok(out)
    })
    .await
}

/// `kiln list-accounts`.
pub async fn list_accounts(settings: std::sync::Arc<Settings>) -> u8 {
    with_context(settings, |ctx| async move {
        let accounts = repo::list_accounts(&ctx.db).await.map_err(failed)?;
        let mut out = format!(
            "{:<36}  {:<32}  {:<20}  {:<8}  {:>10}  last login\n",
            "id", "email", "name", "status", "workspaces"
        );
        for a in &accounts {
            let last = a.last_login_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
            out.push_str(&format!(
                "{:<36}  {:<32}  {:<20}  {:<8}  {:>10}  {last}\n",
                a.id, a.email, a.name, a.status, a.workspaces
            ));
        }
        out.push_str(&format!("{} account(s)", accounts.len()));
        Ok(out)
    })
    .await
}

/// `kiln list-tenants`.
pub async fn list_tenants(settings: std::sync::Arc<Settings>) -> u8 {
    with_context(settings, |ctx| async move {
        let tenants = repo::list_tenants(&ctx.db).await.map_err(failed)?;
        let mut out = format!("{:<36}  {:<30}  {:<32}  {:>7}  created\n", "id", "name", "owner", "members");
        for t in &tenants {
            out.push_str(&format!(
                "{:<36}  {:<30}  {:<32}  {:>7}  {}\n",
                t.id,
                t.name,
                t.owner_email.as_deref().unwrap_or("-"),
                t.members,
                t.created_at.to_rfc3339()
            ));
        }
        out.push_str(&format!("{} workspace(s)", tenants.len()));
        Ok(out)
    })
    .await
}
