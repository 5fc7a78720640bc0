//! The command line: roles and admin commands in one clap tree, resolved together with
//! `MODE` into what this process does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::commands::{config_cmd, healthcheck, migrate_status};
use crate::config::{self, LoadOptions, Loaded, Mode, Settings, Source};
use crate::roles::{self, Role, RoleContext};

/// kiln: one binary that runs a Dify-style backend.
///
/// With no subcommand, MODE picks the role (standalone when unset).
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None)]
pub struct Cli {
    /// Also read this dotenv file (repeatable; later files win; ./.env is read first when present).
    #[arg(long = "env-file", value_name = "PATH", global = true)]
    pub env_files: Vec<PathBuf>,
    /// Directory of *.toml files with non-secret settings.
    #[arg(long, value_name = "DIR", global = true, default_value = "config")]
    pub config_dir: PathBuf,
    /// Override any setting (repeatable), e.g. --set LOG_LEVEL=DEBUG.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true, value_parser = parse_assignment)]
    pub set: Vec<(String, String)>,
    /// Port of the HTTP API (DIFY_PORT).
    #[arg(long, value_name = "PORT", global = true)]
    pub port: Option<String>,
    /// Address the HTTP API binds to (DIFY_BIND_ADDRESS).
    #[arg(long, value_name = "ADDR", global = true)]
    pub bind: Option<String>,
    /// Log level (LOG_LEVEL).
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

fn parse_assignment(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{raw:?} is not KEY=VALUE")),
    }
}

/// What to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run everything in one process on the configured stores (MODE=standalone).
    Standalone,
    /// Run the HTTP API (MODE=api).
    Api,
    /// Apply pending migrations and exit (MODE=migration).
    Migration,
    /// Consume the job queues (MODE=worker).
    Worker {
        /// Queues to consume, comma-separated (overrides CELERY_QUEUES).
        #[arg(long, value_name = "QUEUES")]
        queues: Option<String>,
        /// Jobs run at once (overrides CELERY_WORKER_AMOUNT).
        #[arg(long, value_name = "N")]
        concurrency: Option<String>,
    },
    /// Fire the periodic tasks (MODE=beat); `kiln beat list` shows the schedule.
    Beat {
        #[command(subcommand)]
        command: Option<BeatCommand>,
    },
    /// Apply pending migrations and exit (Dify's `flask upgrade-db`).
    UpgradeDb,
    /// Inspect database migrations.
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// Check, show or document the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Set a new password for an account (clears its login lockout).
    ResetPassword {
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        new_password: Option<String>,
        #[arg(long)]
        password_confirm: Option<String>,
    },
    /// Change an account's email address.
    ResetEmail {
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        new_email: Option<String>,
        #[arg(long)]
        email_confirm: Option<String>,
    },
    /// Create an account that owns a new workspace; prints its generated password once.
    CreateTenant {
        #[arg(long)]
        email: Option<String>,
        /// Workspace name (default: "{account name}'s Workspace").
        #[arg(long)]
        name: Option<String>,
        /// Interface language, e.g. en-US (unknown values fall back to en-US).
        #[arg(long)]
        language: Option<String>,
    },
    /// Generate a new RSA key pair for every workspace.
    ResetEncryptKeyPair {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Delete upload records no document uses (older than an hour).
    ClearOrphanedFileRecords {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Leave alone anything younger than this many minutes (an upload in progress).
        #[arg(long, default_value_t = 60)]
        min_age_minutes: u32,
    },
    /// Delete stored upload files no record names (older than an hour).
    RemoveOrphanedFilesOnStorage {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Leave alone anything younger than this many minutes (an upload in progress).
        #[arg(long, default_value_t = 60)]
        min_age_minutes: u32,
    },
    /// List accounts and how many workspaces each belongs to.
    ListAccounts,
    /// List workspaces with their owner and member count.
    ListTenants,
    /// Look into and repair the job queues.
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Probe the local API (for Docker HEALTHCHECK): exit 0 when healthy.
    Healthcheck {
        /// Probe /ready (dependencies) instead of /health (process only).
        #[arg(long)]
        ready: bool,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

/// `kiln migrate ...`
#[derive(Debug, Clone, Subcommand)]
pub enum MigrateCommand {
    /// List applied and pending migrations; exit 0 only when the schema is current.
    Status,
}

/// `kiln beat ...`
#[derive(Debug, Clone, Subcommand)]
pub enum BeatCommand {
    /// Each periodic task: schedule, enabled or not, next fire time.
    List,
}

/// `kiln queue ...`
#[derive(Debug, Clone, Subcommand)]
pub enum QueueCommand {
    /// Jobs per queue: ready, delayed, running, done, dead.
    Stats,
    /// Jobs of one queue in one state, oldest first.
    List {
        queue: String,
        /// ready, delayed, running, done or dead.
        #[arg(long, default_value = "ready")]
        state: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One job: status, attempts, owner, last error, payload.
    Inspect { id: String },
    /// Queue a dead job again (or every dead job with --all-dead), with fresh attempts.
    Retry {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all_dead: bool,
        /// With --all-dead: only this queue.
        #[arg(long, requires = "all_dead")]
        queue: Option<String>,
    },
    /// Push a kiln.probe job and wait until a worker finishes it (end-to-end check).
    Probe {
        #[arg(long, default_value = "mail")]
        queue: String,
        /// Seconds to wait.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Delete every job of a queue in one state (never running ones).
    Purge {
        queue: String,
        /// ready, delayed, done or dead.
        #[arg(long, default_value = "ready")]
        state: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `kiln config ...`
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// Validate every setting; exit 0 when valid, 2 with every problem listed otherwise.
    Check,
    /// Print each effective value, masked when secret, with where it came from.
    Show,
    /// Print the documented .env.example (or write it with --output).
    Example {
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

impl Cli {
    /// Command-line overrides as `(KEY, value, flag)`.
    fn flags(&self) -> Vec<(String, String, String)> {
        let mut flags = Vec::new();
        for (key, value, flag) in [
            ("DIFY_PORT", &self.port, "--port"),
            ("DIFY_BIND_ADDRESS", &self.bind, "--bind"),
            ("LOG_LEVEL", &self.log_level, "--log-level"),
        ] {
            if let Some(value) = value {
                flags.push((key.to_owned(), value.clone(), flag.to_owned()));
            }
        }
        if let Some(Command::Worker { queues, concurrency }) = &self.command {
            if let Some(queues) = queues {
                flags.push(("CELERY_WORKER_QUEUES".into(), queues.clone(), "--queues".into()));
            }
            if let Some(concurrency) = concurrency {
                flags.push(("CELERY_WORKER_CONCURRENCY".into(), concurrency.clone(), "--concurrency".into()));
            }
        }
        flags.extend(self.set.iter().map(|(k, v)| (k.clone(), v.clone(), format!("--set {k}"))));
        flags
    }
}

/// What the process will do once the command line and `MODE` are combined.
enum Action {
    Role(Role),
    UsageForJob,
    MigrateStatus,
    Healthcheck { ready: bool, timeout: Duration },
    Admin(Command),
    Queue(QueueCommand),
    BeatList,
}

fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// Parses the command line, loads the configuration and runs the chosen role or command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Config { command: ConfigCommand::Example { output } }) = &cli.command {
        return exit(config_cmd::example(output.as_deref()));
    }
    let options = LoadOptions::standard(Some(cli.config_dir.clone()), &cli.env_files, cli.flags());
    let loaded = config::load(&options);

    let action = match &cli.command {
        Some(Command::Config { command: ConfigCommand::Check }) => return exit(config_cmd::check(&loaded)),
        Some(Command::Config { command: ConfigCommand::Show }) => return exit(config_cmd::show(&loaded)),
        Some(Command::Config { command: ConfigCommand::Example { .. } }) => return exit(0),
        Some(Command::Standalone) => Action::Role(Role::Standalone),
        Some(Command::Api) => Action::Role(Role::Api),
        Some(Command::Worker { .. }) => Action::Role(Role::Worker),
        Some(Command::Beat { command: None }) => Action::Role(Role::Beat),
        Some(Command::Beat { command: Some(BeatCommand::List) }) => Action::BeatList,
        Some(Command::Migration | Command::UpgradeDb) => Action::Role(Role::Migration),
        Some(Command::Migrate { command: MigrateCommand::Status }) => Action::MigrateStatus,
        Some(Command::Queue { command }) => Action::Queue(command.clone()),
        Some(Command::Healthcheck { ready, timeout }) => {
            Action::Healthcheck { ready: *ready, timeout: Duration::from_secs(*timeout) }
        }
        Some(
            command @ (Command::ResetPassword { .. }
            | Command::ResetEmail { .. }
            | Command::CreateTenant { .. }
            | Command::ResetEncryptKeyPair { .. }
            | Command::ClearOrphanedFileRecords { .. }
            | Command::RemoveOrphanedFilesOnStorage { .. }
            | Command::ListAccounts
            | Command::ListTenants),
        ) => Action::Admin(command.clone()),
        None => match mode_of(&loaded) {
            Ok(Mode::Standalone) => Action::Role(Role::Standalone),
            Ok(Mode::Api) => Action::Role(Role::Api),
            Ok(Mode::Migration) => Action::Role(Role::Migration),
            Ok(Mode::Worker) => Action::Role(Role::Worker),
            Ok(Mode::Beat) => Action::Role(Role::Beat),
            Ok(Mode::Job) => Action::UsageForJob,
            Err(message) => {
                eprintln!("kiln: {message}");
                return exit(config_cmd::EXIT_CONFIG);
            }
        },
    };
    if let Action::UsageForJob = action {
        eprintln!(
            "kiln: MODE=job runs the admin command given as arguments, e.g.\n  \
             MODE=job kiln upgrade-db\n  MODE=job kiln reset-password --email EMAIL --new-password PW --password-confirm PW\n  \
             MODE=job kiln create-tenant --email EMAIL\n  MODE=job kiln list-accounts\n\
             Run `kiln --help` for every command."
        );
        return exit(1);
    }
    let Some(settings) = loaded.settings.as_ref().filter(|_| loaded.is_ok()) else {
        let count = loaded.issues.len() + loaded.file_errors.len();
        if let Action::Healthcheck { .. } = action {
            // Docker reserves health-check exit code 2; any failure is "unhealthy" (1).
            eprintln!(
                "kiln healthcheck: invalid configuration: {count} problem(s)\n{}",
                loaded.error_report().trim_end()
            );
            return exit(1);
        }
        eprintln!("kiln: invalid configuration: {count} problem(s)\n{}", loaded.error_report().trim_end());
        eprintln!("Run `kiln config check` for details, or `kiln config example` for every setting.");
        return exit(config_cmd::EXIT_CONFIG);
    };
    if let Err(error) = crate::infra::telemetry::init(settings) {
        eprintln!("kiln: cannot set up logging: {error}");
        return exit(config_cmd::EXIT_CONFIG);
    }
    for warning in &loaded.warnings {
        tracing::warn!("config: {warning}");
    }
    for entry in &loaded.ignored {
        tracing::debug!(key = %entry.key, source = %entry.source, "config: Dify setting not used by kiln; ignored");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kiln: cannot start the async runtime: {error}");
            return exit(1);
        }
    };
    let settings = Arc::new(settings.clone());
    let code = runtime.block_on(async move {
        match action {
            Action::Role(role) => run_role(role, settings, &loaded).await,
            Action::MigrateStatus => migrate_status::run(&settings).await,
            Action::Healthcheck { ready, timeout } => healthcheck::run(&settings, ready, timeout).await,
            Action::Admin(command) => run_admin(command, settings).await,
            Action::Queue(command) => run_queue(command, &settings).await,
            Action::BeatList => roles::beat::list(&settings),
            Action::UsageForJob => 1,
        }
    });
    exit(code)
}

async fn run_queue(command: QueueCommand, settings: &Settings) -> u8 {
    use crate::commands::queue_cmd::{self, QueueAction};
    let action = match command {
        QueueCommand::Stats => QueueAction::Stats,
        QueueCommand::List { queue, state, limit } => QueueAction::List { queue, state, limit },
        QueueCommand::Inspect { id } => QueueAction::Inspect { id },
        QueueCommand::Retry { id, all_dead, queue } => QueueAction::Retry { id, all_dead, queue },
        QueueCommand::Purge { queue, state, yes } => QueueAction::Purge { queue, state, yes },
        QueueCommand::Probe { queue, timeout } => {
            QueueAction::Probe { queue, timeout: std::time::Duration::from_secs(timeout) }
        }
    };
    queue_cmd::run(settings, action).await
}

async fn run_admin(command: Command, settings: Arc<Settings>) -> u8 {
    use crate::commands::admin;
    match command {
        Command::ResetPassword { email, new_password, password_confirm } => {
            admin::reset_password(settings, email, new_password, password_confirm).await
        }
        Command::ResetEmail { email, new_email, email_confirm } => {
            admin::reset_email(settings, email, new_email, email_confirm).await
        }
        Command::CreateTenant { email, name, language } => {
            admin::create_tenant(settings, email, name, language).await
        }
        Command::ResetEncryptKeyPair { yes } => admin::reset_encrypt_key_pair(settings, yes).await,
        Command::ListTenants => admin::list_tenants(settings).await,
        Command::ClearOrphanedFileRecords { force, dry_run, min_age_minutes } => {
            let min_age = chrono::Duration::minutes(i64::from(min_age_minutes));
            crate::commands::orphans::clear_orphaned_file_records(settings, force, dry_run, min_age).await
        }
        Command::RemoveOrphanedFilesOnStorage { force, dry_run, min_age_minutes } => {
            let min_age = chrono::Duration::minutes(i64::from(min_age_minutes));
            crate::commands::orphans::remove_orphaned_files_on_storage(settings, force, dry_run, min_age)
                .await
        }
        _ => admin::list_accounts(settings).await,
    }
}

/// The MODE value, or a message listing the valid ones.
fn mode_of(loaded: &Loaded) -> Result<Mode, String> {
    let entry = loaded.resolved.get("MODE");
    let raw = entry.map(|e| e.value.as_str()).unwrap_or("");
    if raw.trim().is_empty() {
        return Ok(Mode::Standalone);
    }
    raw.parse::<Mode>().map_err(|_| {
        let source = entry.map(|e| e.source.to_string()).unwrap_or_default();
        format!(
            "MODE={raw:?} (from {source}) is not a role kiln knows; valid values: {}",
            Mode::VALUES.join(", ")
        )
    })
}

async fn run_role(role: Role, settings: Arc<Settings>, loaded: &Loaded) -> u8 {
    let source_of = |key: &str| loaded.resolved.get(key).map(|e| e.source.clone()).unwrap_or(Source::Default);
    let ctx = RoleContext {
        settings: settings.clone(),
        port_source: source_of("DIFY_PORT"),
        bind_source: source_of("DIFY_BIND_ADDRESS"),
        sources_summary: loaded.sources_summary(),
    };
    let result = match role {
        Role::Migration => {
            tracing::info!(role = role.name(), version = crate::VERSION, config = %ctx.sources_summary, "kiln starting");
            roles::migrate::run(&settings).await
        }
        Role::Api | Role::Standalone => roles::api::run(ctx, role).await,
        Role::Worker => roles::worker::start(ctx).await,
        Role::Beat => roles::beat::run(ctx).await,
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            tracing::error!(role = role.name(), "{error}");
            1
        }
    }
}
