//! The typed settings, one struct per section.
//!
//! Each field is declared once with its variable name, default and doc comment; the
//! `section!` macro turns that into the struct, the key registry used for validation and
//! `kiln config show`, and the documentation written to `.env.example`.

use std::net::IpAddr;
use std::path::PathBuf;

use secrecy::SecretString;

use super::value::{
    ConfigValue, Days, FractionalSeconds, HostPortList, HttpUrl, NameList, Origins, Port, PositiveCount,
    RedisUrl, Seconds, config_enum,
};
use super::{ConfigIssue, Resolved};

/// Static description of one setting.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// The variable name, e.g. `DB_PORT`.
    pub name: &'static str,
    /// The default as written in `.env.example`.
    pub default: &'static str,
    /// The field's doc comment.
    pub doc: &'static str,
    /// Whether the value must be masked.
    pub secret: bool,
    /// What the type accepts, for messages.
    pub expected: fn() -> String,
    /// The section title in `.env.example`.
    pub section: &'static str,
}

macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident ($title:literal) {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $key:literal => $default:literal;
            )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            $( $(#[doc = $doc])* #[doc = concat!("\n\nVariable: `", $key, "`, default `", $default, "`.")] pub $field: $ty, )*
        }

        impl $name {
            /// The keys of this section, in declaration order.
            pub fn keys() -> Vec<KeySpec> {
                vec![$(KeySpec {
                    name: $key,
                    default: $default,
                    doc: concat!($($doc, "\n"),*),
                    secret: <$ty as ConfigValue>::SECRET,
                    expected: <$ty as ConfigValue>::expected,
                    section: $title,
                }),*]
            }

            /// Parses every field, recording each failure; `None` if any failed.
            pub(super) fn parse(resolved: &Resolved, issues: &mut Vec<ConfigIssue>) -> Option<Self> {
                $( let $field = resolved.parse::<$ty>($key, issues); )*
                Some(Self { $( $field: $field?, )* })
            }
        }
    };
}

config_enum! {
    /// The role the binary plays when no subcommand is given.
    pub enum Mode {
        /// API (and, later, worker and beat) in one process on the embedded stores.
        Standalone = "standalone",
        /// The HTTP API.
        Api = "api",
        /// Apply pending migrations and exit.
        Migration = "migration",
        /// Consume the job queues (CELERY_QUEUES) with CELERY_WORKER_AMOUNT concurrency.
        Worker = "worker",
        /// Fire the periodic tasks (any number of replicas; one fire per tick).
        Beat = "beat",
        /// Run the admin command given as arguments (Dify's `MODE=job`).
        Job = "job",
    }
}

config_enum! {
    /// Log verbosity, with Dify's level names.
    pub enum LogLevel {
        Trace = "trace",
        Debug = "debug",
        Info = "info",
        Warning = "warning" | "warn",
        Error = "error",
        Critical = "critical" | "fatal",
    }
}

config_enum! {
    /// Log line format.
    pub enum LogFormat {
        Text = "text",
        Json = "json",
    }
}

config_enum! {
    /// The metadata database.
    pub enum DbType {
        /// An embedded SQLite file (kiln-only value; the default).
        Sqlite = "sqlite",
        /// PostgreSQL, as Dify's default.
        Postgresql = "postgresql" | "postgres",
    }
}

config_enum! {
    /// How mail is sent.
    pub enum MailType {
        /// An SMTP relay (SMTP_*).
        Smtp = "smtp",
    }
}

config_enum! {
    /// File storage back end.
    pub enum StorageType {
        /// OpenDAL, configured through `OPENDAL_SCHEME` and `OPENDAL_<SCHEME>_*`.
        Opendal = "opendal",
        /// Dify's native S3 storage, configured through `S3_*`.
        S3 = "s3",
        /// Dify's deprecated local storage, an alias for OpenDAL's fs scheme.
        Local = "local",
    }
}

config_enum! {
    /// OpenDAL service used when `STORAGE_TYPE=opendal`.
    pub enum OpendalScheme {
        /// The local file system under `OPENDAL_FS_ROOT`.
        Fs = "fs",
        /// Amazon S3 or any S3-compatible store, through `OPENDAL_S3_*`.
        S3 = "s3",
    }
}

section! {
    /// Which role runs, its secret, and schema handling.
    pub struct AppSettings("Application") {
        /// Role to run when no subcommand is given: standalone (everything in one process),
        /// api, worker, beat, migration (apply migrations and exit) or job (run the admin
        /// command given as arguments). Empty means standalone.
        mode: Option<Mode> = "MODE" => "";
        /// Signs sessions and tokens. Leave empty to have one generated on first start and kept
        /// in storage as .dify_secret_key, so replicas sharing storage agree.
        /// Generate one with `openssl rand -base64 42`.
        secret_key: Option<SecretString> = "SECRET_KEY" => "";
        /// Deployment label sent in the X-Env response header (PRODUCTION or TESTING).
        deploy_env: String = "DEPLOY_ENV" => "PRODUCTION";
        /// Apply pending database migrations (under a lock) before any role starts.
        migration_enabled: bool = "MIGRATION_ENABLED" => "false";
        /// Seconds a role waits for another process to bring the schema up to date before it
        /// exits with the command to run.
        migration_wait_timeout: Seconds = "KILN_MIGRATION_WAIT_TIMEOUT" => "120";
        /// Seconds a migrator waits for the migration lock held by another process.
        migration_lock_timeout: Seconds = "KILN_MIGRATION_LOCK_TIMEOUT" => "600";
        /// Directory for kiln's own files, such as the embedded SQLite database.
        data_dir: PathBuf = "KILN_DATA_DIR" => "storage";
    }
}

section! {
    /// Logging.
    pub struct LogSettings("Logging") {
        /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL (RUST_LOG, when set, overrides it).
        level: LogLevel = "LOG_LEVEL" => "INFO";
        /// Log line format: text or json.
        format: LogFormat = "LOG_OUTPUT_FORMAT" => "text";
        /// Also append logs to this file (empty: standard error only).
        file: Option<PathBuf> = "LOG_FILE" => "";
    }
}

section! {
    /// The HTTP server.
    pub struct ServerSettings("HTTP server") {
        /// Address the HTTP API binds to.
        bind_address: IpAddr = "DIFY_BIND_ADDRESS" => "0.0.0.0";
        /// Port the HTTP API listens on.
        port: Port = "DIFY_PORT" => "5001";
        /// Seconds a request may take before it is answered with 408 (Dify's gunicorn timeout).
        request_timeout: Seconds = "GUNICORN_TIMEOUT" => "200";
        /// Seconds in-flight requests get to finish after SIGTERM before the process exits.
        shutdown_grace_period: Seconds = "KILN_SHUTDOWN_GRACE_PERIOD" => "25";
        /// Largest accepted request body, in megabytes.
        max_body_mb: PositiveCount = "KILN_MAX_REQUEST_BODY_MB" => "100";
        /// Public URL of the console API, e.g. https://api.console.example.com (empty: same domain).
        console_api_url: Option<HttpUrl> = "CONSOLE_API_URL" => "";
        /// Public URL of the console web front end (also the default console CORS origin).
        console_web_url: Option<HttpUrl> = "CONSOLE_WEB_URL" => "";
        /// Public base URL of the Service API shown to users (empty: same domain).
        service_api_url: Option<HttpUrl> = "SERVICE_API_URL" => "";
        /// Prefix of file preview and download URLs (empty: CONSOLE_API_URL).
        files_url: Option<HttpUrl> = "FILES_URL" => "";
        /// Seconds a signed file URL (document download) stays valid.
        files_access_timeout: PositiveCount = "FILES_ACCESS_TIMEOUT" => "300";
        /// Origins allowed to call /console/api with credentials, comma-separated, or *
        /// (empty: the origin of CONSOLE_WEB_URL).
        console_cors_allow_origins: Origins = "CONSOLE_CORS_ALLOW_ORIGINS" => "";
        /// Origins allowed to call the web app API (/api), comma-separated, or *.
        web_api_cors_allow_origins: Origins = "WEB_API_CORS_ALLOW_ORIGINS" => "*";
    }
}

section! {
    /// Console sign-in: first-run setup, tokens, cookies and lockout.
    pub struct AuthSettings("Console authentication") {
        /// Password asked by /console/api/init before first-run setup (at most 30 characters;
        /// empty: no init step).
        init_password: Option<SecretString> = "INIT_PASSWORD" => "";
        /// Minutes an access token (and its CSRF token and cookies) stays valid.
        access_token_expire_minutes: PositiveCount = "ACCESS_TOKEN_EXPIRE_MINUTES" => "60";
        /// Days a refresh token stays valid.
        refresh_token_expire_days: Days = "REFRESH_TOKEN_EXPIRE_DAYS" => "30";
        /// Seconds an email stays locked after 5 failed logins.
        login_lockout_duration: Seconds = "LOGIN_LOCKOUT_DURATION" => "86400";
        /// Let people sign in with a code mailed to them (needs MAIL_TYPE).
        enable_email_code_login: bool = "ENABLE_EMAIL_CODE_LOGIN" => "false";
        /// Minutes a sign-in code stays valid.
        email_code_login_token_expiry_minutes: PositiveCount = "EMAIL_CODE_LOGIN_TOKEN_EXPIRY_MINUTES" => "5";
        /// Hours a workspace invitation stays valid.
        invite_expiry_hours: PositiveCount = "INVITE_EXPIRY_HOURS" => "72";
        /// Domain for the console cookies when console and API are on different subdomains,
        /// e.g. example.com (empty: host-only cookies).
        cookie_domain: String = "COOKIE_DOMAIN" => "";
    }
}

section! {
    /// The metadata database.
    pub struct DatabaseSettings("Database") {
        /// Database type: sqlite (embedded file, kiln's default) or postgresql.
        db_type: DbType = "DB_TYPE" => "sqlite";
        /// PostgreSQL host.
        host: String = "DB_HOST" => "localhost";
        /// PostgreSQL port.
        port: Port = "DB_PORT" => "5432";
        /// PostgreSQL user.
        username: String = "DB_USERNAME" => "postgres";
        /// PostgreSQL password.
        password: SecretString = "DB_PASSWORD" => "";
        /// PostgreSQL database name.
        database: String = "DB_DATABASE" => "dify";
        /// Extra connection parameters as a query string, e.g. sslmode=require.
        extras: String = "DB_EXTRAS" => "";
        /// Most connections one process keeps open.
        pool_size: PositiveCount = "SQLALCHEMY_POOL_SIZE" => "30";
        /// Seconds after which a pooled connection is replaced.
        pool_recycle: Seconds = "SQLALCHEMY_POOL_RECYCLE" => "3600";
        /// Seconds to wait for a free pooled connection before failing.
        pool_timeout: Seconds = "SQLALCHEMY_POOL_TIMEOUT" => "30";
        /// Check each pooled connection with a round trip before handing it out. Off, as in
        /// Dify: a dead connection then fails one query instead of costing every query a ping.
        pool_pre_ping: bool = "SQLALCHEMY_POOL_PRE_PING" => "false";
        /// SQLite database file (empty: kiln.db inside KILN_DATA_DIR).
        sqlite_path: Option<PathBuf> = "KILN_SQLITE_PATH" => "";
    }
}

section! {
    /// Redis, used by the queue and for shared state when configured.
    pub struct RedisSettings("Redis") {
        /// Redis host (empty: no Redis; standalone keeps everything embedded).
        host: String = "REDIS_HOST" => "";
        /// Redis port.
        port: Port = "REDIS_PORT" => "6379";
        /// Redis ACL user name (empty: the default user).
        username: String = "REDIS_USERNAME" => "";
        /// Redis password.
        password: SecretString = "REDIS_PASSWORD" => "";
        /// Redis database number.
        db: u32 = "REDIS_DB" => "0";
        /// Connect to Redis over TLS.
        use_ssl: bool = "REDIS_USE_SSL" => "false";
        /// Prefix for kiln's shared Redis keys (Dify's newest name; empty: Dify's bare keys).
        key_prefix: String = "REDIS_KEY_PREFIX" => "";
        /// Find the Redis primary through Sentinel (REDIS_SENTINELS) instead of REDIS_HOST.
        use_sentinel: bool = "REDIS_USE_SENTINEL" => "false";
        /// Sentinel addresses, comma-separated host:port.
        sentinels: HostPortList = "REDIS_SENTINELS" => "";
        /// The primary's name as the sentinels know it (their `sentinel monitor` name).
        sentinel_service_name: String = "REDIS_SENTINEL_SERVICE_NAME" => "";
        /// ACL user for the sentinels themselves (empty: the default user).
        sentinel_username: String = "REDIS_SENTINEL_USERNAME" => "";
        /// Password for the sentinels themselves (REDIS_PASSWORD is the primary's).
        sentinel_password: SecretString = "REDIS_SENTINEL_PASSWORD" => "";
        /// Seconds each sentinel gets to answer when kiln looks up the primary.
        sentinel_socket_timeout: FractionalSeconds = "REDIS_SENTINEL_SOCKET_TIMEOUT" => "0.1";
        /// Use Redis Cluster (not supported: must stay false).
        use_clusters: bool = "REDIS_USE_CLUSTERS" => "false";
        /// Redis URL of the job broker, e.g. redis://:password@redis:6379/1 (empty: built from REDIS_*);
        /// with CELERY_USE_SENTINEL, sentinel://:password@sentinel-1:26379;sentinel://…/1.
        broker_url: Option<RedisUrl> = "CELERY_BROKER_URL" => "";
        /// The broker URL lists sentinels (sentinel://) that name the broker's primary.
        celery_use_sentinel: bool = "CELERY_USE_SENTINEL" => "false";
        /// The broker primary's name as the sentinels know it.
        celery_sentinel_master_name: String = "CELERY_SENTINEL_MASTER_NAME" => "";
        /// Password for the broker's sentinels (the URL's password is the primary's).
        celery_sentinel_password: SecretString = "CELERY_SENTINEL_PASSWORD" => "";
        /// Seconds each broker sentinel gets to answer.
        celery_sentinel_socket_timeout: FractionalSeconds = "CELERY_SENTINEL_SOCKET_TIMEOUT" => "0.1";
    }
}

section! {
    /// The job queue: worker concurrency, queues, leases and retention.
    pub struct QueueSettings("Queue and worker") {
        /// Queues a worker consumes, comma-separated (empty: every Dify queue).
        queues: NameList = "CELERY_QUEUES" => "";
        /// Overrides CELERY_QUEUES, as in Dify's entrypoint.
        worker_queues: NameList = "CELERY_WORKER_QUEUES" => "";
        /// Jobs a worker runs at once.
        worker_amount: PositiveCount = "CELERY_WORKER_AMOUNT" => "1";
        /// Overrides CELERY_WORKER_AMOUNT, as in Dify's entrypoint.
        worker_concurrency: Option<PositiveCount> = "CELERY_WORKER_CONCURRENCY" => "";
        /// Celery's pool class; kiln runs jobs as async tasks, so this is recognised and ignored.
        worker_class: String = "CELERY_WORKER_CLASS" => "";
        /// Celery autoscaling; with CELERY_MAX_WORKERS it sets kiln's (fixed) concurrency.
        auto_scale: bool = "CELERY_AUTO_SCALE" => "false";
        /// Upper bound of autoscaling (the concurrency used when CELERY_AUTO_SCALE=true).
        max_workers: Option<PositiveCount> = "CELERY_MAX_WORKERS" => "";
        /// Lower bound of autoscaling; recognised and ignored (kiln's concurrency is fixed).
        min_workers: Option<PositiveCount> = "CELERY_MIN_WORKERS" => "";
        /// Jobs a worker claims ahead per unit of concurrency (Celery's prefetch multiplier);
        /// raise it for many short jobs (throughput), keep 1 for long ones (fair spread).
        prefetch_multiplier: PositiveCount = "CELERY_PREFETCH_MULTIPLIER" => "1";
        /// Key prefix (a Redis hash tag) of kiln's queue keys.
        prefix: String = "KILN_QUEUE_PREFIX" => "kiln";
        /// Port on which MODE=worker serves /health and /ready (with queue counts) on
        /// DIFY_BIND_ADDRESS, for orchestrator health checks (empty: none).
        worker_health_port: Option<Port> = "KILN_WORKER_HEALTH_PORT" => "";
        /// The embedded job store file when no Redis is configured (empty: jobs.db in KILN_DATA_DIR).
        jobs_db: Option<PathBuf> = "KILN_JOBS_DB" => "";
        /// Seconds a claimed job's lease lasts; workers renew it every third of that.
        lease_seconds: PositiveCount = "KILN_JOB_LEASE_SECONDS" => "30";
        /// Attempts a job gets before it is dead (unless its task says otherwise).
        max_attempts: PositiveCount = "KILN_JOB_MAX_ATTEMPTS" => "3";
        /// Seconds finished jobs are kept.
        done_retention: Seconds = "KILN_JOB_DONE_RETENTION" => "86400";
        /// Finished jobs kept per queue.
        done_max: PositiveCount = "KILN_JOB_DONE_MAX" => "10000";
        /// Dead jobs kept per queue.
        dead_max: PositiveCount = "KILN_JOB_DEAD_MAX" => "10000";
        /// Seconds dead jobs are kept for inspection and retry.
        dead_retention: Seconds = "KILN_JOB_DEAD_RETENTION" => "604800";
    }
}

section! {
    /// Outgoing mail (password resets): Dify's MAIL_* and SMTP_* settings.
    pub struct MailSettings("Mail") {
        /// How mail is sent: smtp (empty: no mail; flows that need it say so).
        mail_type: Option<MailType> = "MAIL_TYPE" => "";
        /// Sender address, e.g. Dify <no-reply@example.com>.
        default_send_from: String = "MAIL_DEFAULT_SEND_FROM" => "";
        /// SMTP relay host.
        smtp_server: String = "SMTP_SERVER" => "";
        /// SMTP relay port.
        smtp_port: Port = "SMTP_PORT" => "465";
        /// SMTP user (empty: no authentication).
        smtp_username: String = "SMTP_USERNAME" => "";
        /// SMTP password.
        smtp_password: SecretString = "SMTP_PASSWORD" => "";
        /// Use TLS: implicit TLS, or STARTTLS with SMTP_OPPORTUNISTIC_TLS=true.
        smtp_use_tls: bool = "SMTP_USE_TLS" => "false";
        /// With SMTP_USE_TLS, upgrade a plain connection with STARTTLS.
        smtp_opportunistic_tls: bool = "SMTP_OPPORTUNISTIC_TLS" => "false";
        /// Minutes a password-reset code stays valid.
        reset_password_token_expiry_minutes: PositiveCount = "RESET_PASSWORD_TOKEN_EXPIRY_MINUTES" => "5";
        /// Seconds an email stays locked after 5 wrong reset codes.
        forgot_password_lockout_duration: Seconds = "FORGOT_PASSWORD_LOCKOUT_DURATION" => "86400";
        /// Code mails (reset, sign-in) one client IP may ask for per minute; past it, the IP
        /// is refused for an hour.
        email_send_ip_limit_per_minute: PositiveCount = "EMAIL_SEND_IP_LIMIT_PER_MINUTE" => "50";
    }
}

section! {
    /// The beat scheduler: which periodic tasks fire and when (cron, 5 or 6 fields, UTC).
    pub struct BeatSettings("Beat") {
        /// When expired refresh tokens and login lockout counters are deleted from the
        /// database (kiln's; with Redis they expire by themselves).
        clean_auth_cron: String = "KILN_BEAT_CLEAN_AUTH_CRON" => "17 * * * *";
        /// When finished jobs of idle queues are trimmed (acks trim busy queues as they go).
        trim_jobs_cron: String = "KILN_BEAT_TRIM_JOBS_CRON" => "*/10 * * * *";
        /// Watch the dataset queue's backlog (Dify's datasets-queue-monitor).
        queue_monitor_enabled: bool = "ENABLE_DATASETS_QUEUE_MONITOR" => "false";
        /// Minutes between queue monitor checks.
        queue_monitor_interval: PositiveCount = "QUEUE_MONITOR_INTERVAL" => "30";
        /// A cron expression for the queue monitor instead of QUEUE_MONITOR_INTERVAL.
        queue_monitor_cron: String = "KILN_BEAT_QUEUE_MONITOR_CRON" => "";
        /// Ready jobs in the dataset queue at which the monitor warns.
        queue_monitor_threshold: PositiveCount = "QUEUE_MONITOR_THRESHOLD" => "200";
        /// Comma-separated addresses the queue monitor mails when the threshold is reached.
        queue_monitor_alert_emails: String = "QUEUE_MONITOR_ALERT_EMAILS" => "";
        /// Seconds a beat replica's leadership lease lasts; it is renewed every third of that.
        lease_seconds: PositiveCount = "KILN_BEAT_LEASE_SECONDS" => "15";
        /// Disable the documents of datasets nobody used lately (Dify's clean_unused_datasets_task).
        clean_unused_datasets_enabled: bool = "ENABLE_CLEAN_UNUSED_DATASETS_TASK" => "false";
        /// Days between runs of Dify's daily clean-up tasks (they run at 03:00 UTC every N days).
        scheduler_days: PositiveCount = "CELERY_BEAT_SCHEDULER_TIME" => "1";
        /// Days without a new document or a query after which a dataset counts as unused.
        unused_dataset_days: u32 = "PLAN_SANDBOX_CLEAN_DAY_SETTING" => "30";
        /// A cron expression for the unused-datasets clean-up instead of CELERY_BEAT_SCHEDULER_TIME.
        clean_unused_datasets_cron: String = "KILN_BEAT_CLEAN_UNUSED_DATASETS_CRON" => "";
        /// Sweep upload files no document uses, and stored objects no record names (what a
        /// failed delete or an interrupted upload leaves behind).
        orphan_sweep_enabled: bool = "KILN_BEAT_ORPHAN_SWEEP_ENABLED" => "true";
        /// When the orphan sweep runs.
        orphan_sweep_cron: String = "KILN_BEAT_ORPHAN_SWEEP_CRON" => "0 4 * * *";
        /// Hours an orphan must have existed before the sweep removes it (an upload in
        /// progress is never one).
        orphan_sweep_min_age_hours: PositiveCount = "KILN_ORPHAN_SWEEP_MIN_AGE_HOURS" => "24";
    }
}

section! {
    /// File storage.
    pub struct StorageSettings("Storage") {
        /// Storage type: opendal, s3 (Dify's S3_* settings), or local (Dify's deprecated alias
        /// for the fs scheme).
        storage_type: StorageType = "STORAGE_TYPE" => "opendal";
        /// OpenDAL scheme: fs or s3.
        opendal_scheme: OpendalScheme = "OPENDAL_SCHEME" => "fs";
        /// Root directory of the fs scheme.
        opendal_fs_root: PathBuf = "OPENDAL_FS_ROOT" => "storage";
        /// Root directory when STORAGE_TYPE=local (deprecated; use OPENDAL_FS_ROOT).
        local_path: PathBuf = "STORAGE_LOCAL_PATH" => "storage";
        /// Bucket of the s3 scheme.
        opendal_s3_bucket: String = "OPENDAL_S3_BUCKET" => "";
        /// Endpoint of the s3 scheme, e.g. https://s3.amazonaws.com or a MinIO URL (empty: AWS).
        opendal_s3_endpoint: Option<HttpUrl> = "OPENDAL_S3_ENDPOINT" => "";
        /// Region of the s3 scheme.
        opendal_s3_region: String = "OPENDAL_S3_REGION" => "us-east-1";
        /// Access key id of the s3 scheme (empty: the AWS credential chain).
        opendal_s3_access_key_id: Option<SecretString> = "OPENDAL_S3_ACCESS_KEY_ID" => "";
        /// Secret access key of the s3 scheme.
        opendal_s3_secret_access_key: Option<SecretString> = "OPENDAL_S3_SECRET_ACCESS_KEY" => "";
        /// Key prefix inside the bucket.
        opendal_s3_root: String = "OPENDAL_S3_ROOT" => "/";
        /// Bucket when STORAGE_TYPE=s3 (Dify's native S3 settings).
        s3_bucket_name: String = "S3_BUCKET_NAME" => "difyai";
        /// Endpoint when STORAGE_TYPE=s3.
        s3_endpoint: Option<HttpUrl> = "S3_ENDPOINT" => "";
        /// Region when STORAGE_TYPE=s3.
        s3_region: String = "S3_REGION" => "us-east-1";
        /// Access key when STORAGE_TYPE=s3.
        s3_access_key: Option<SecretString> = "S3_ACCESS_KEY" => "";
        /// Secret key when STORAGE_TYPE=s3.
        s3_secret_key: Option<SecretString> = "S3_SECRET_KEY" => "";
    }
}

section! {
    /// Knowledge bases: document uploads and indexing.
    pub struct KnowledgeSettings("Knowledge") {
        /// Largest segment length (tokens) a custom process rule may ask for.
        indexing_max_segmentation_tokens_length: PositiveCount = "INDEXING_MAX_SEGMENTATION_TOKENS_LENGTH" => "4000";
        /// Largest document upload, in MB.
        upload_file_size_limit: PositiveCount = "UPLOAD_FILE_SIZE_LIMIT" => "15";
        /// File extensions refused on upload, comma-separated (e.g. exe,bat).
        upload_file_extension_blacklist: String = "UPLOAD_FILE_EXTENSION_BLACKLIST" => "";
        /// Most segments one request may add (0: no limit).
        dataset_max_segments_per_request: u32 = "DATASET_MAX_SEGMENTS_PER_REQUEST" => "0";
    }
}

/// Every setting kiln reads, by section.
#[derive(Debug, Clone)]
pub struct Settings {
    pub app: AppSettings,
    pub log: LogSettings,
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub queue: QueueSettings,
    pub beat: BeatSettings,
    pub mail: MailSettings,
    pub storage: StorageSettings,
    pub knowledge: KnowledgeSettings,
}

impl Settings {
    /// Every known key, grouped by section in `.env.example` order.
    pub fn keys() -> Vec<KeySpec> {
        let mut keys = AppSettings::keys();
        keys.extend(LogSettings::keys());
        keys.extend(ServerSettings::keys());
        keys.extend(AuthSettings::keys());
        keys.extend(DatabaseSettings::keys());
        keys.extend(RedisSettings::keys());
        keys.extend(QueueSettings::keys());
        keys.extend(BeatSettings::keys());
        keys.extend(MailSettings::keys());
        keys.extend(StorageSettings::keys());
        keys.extend(KnowledgeSettings::keys());
        keys
    }

    pub(super) fn parse(resolved: &Resolved, issues: &mut Vec<ConfigIssue>) -> Option<Self> {
        let app = AppSettings::parse(resolved, issues);
        let log = LogSettings::parse(resolved, issues);
        let server = ServerSettings::parse(resolved, issues);
        let auth = AuthSettings::parse(resolved, issues);
        let database = DatabaseSettings::parse(resolved, issues);
        let redis = RedisSettings::parse(resolved, issues);
        let queue = QueueSettings::parse(resolved, issues);
        let beat = BeatSettings::parse(resolved, issues);
        let mail = MailSettings::parse(resolved, issues);
        let storage = StorageSettings::parse(resolved, issues);
        let knowledge = KnowledgeSettings::parse(resolved, issues);
        Some(Self {
            app: app?,
            log: log?,
            server: server?,
            auth: auth?,
            database: database?,
            redis: redis?,
            queue: queue?,
            beat: beat?,
            mail: mail?,
            storage: storage?,
            knowledge: knowledge?,
        })
    }

    /// The role `MODE` selects (standalone when empty).
    pub fn mode(&self) -> Mode {
        self.app.mode.unwrap_or(Mode::Standalone)
    }

    /// The SQLite file, resolved against the data directory.
    pub fn sqlite_path(&self) -> PathBuf {
        self.database.sqlite_path.clone().unwrap_or_else(|| self.app.data_dir.join("kiln.db"))
    }

    /// The storage root for the fs scheme, honouring Dify's deprecated `local` type.
    pub fn storage_root(&self) -> PathBuf {
        match self.storage.storage_type {
            StorageType::Local => self.storage.local_path.clone(),
            StorageType::Opendal | StorageType::S3 => self.storage.opendal_fs_root.clone(),
        }
    }

    /// The queues a worker consumes, `priority_*` first (Dify's list when none are set).
    pub fn worker_queues(&self) -> Vec<String> {
        let chosen = if !self.queue.worker_queues.0.is_empty() {
            self.queue.worker_queues.0.clone()
        } else if !self.queue.queues.0.is_empty() {
            self.queue.queues.0.clone()
        } else {
            crate::infra::queue::DIFY_QUEUES.iter().map(|q| q.to_string()).collect()
        };
        crate::infra::queue::priority_order(&chosen)
    }

    /// Jobs a worker runs at once: CELERY_WORKER_CONCURRENCY, else CELERY_MAX_WORKERS when
    /// autoscaling, else CELERY_WORKER_AMOUNT.
    pub fn worker_concurrency(&self) -> u32 {
        let q = &self.queue;
        match (q.worker_concurrency, q.auto_scale, q.max_workers) {
            (Some(n), _, _) => n.0,
            (None, true, Some(max)) => max.0,
            _ => q.worker_amount.0,
        }
    }

    /// The embedded job store file.
    pub fn jobs_db_path(&self) -> PathBuf {
        self.queue.jobs_db.clone().unwrap_or_else(|| self.app.data_dir.join("jobs.db"))
    }

    /// Whether any Redis is configured (REDIS_HOST, Sentinel or CELERY_BROKER_URL).
    pub fn redis_configured(&self) -> bool {
        self.shared_redis_configured() || self.redis.broker_url.is_some()
    }

    /// Whether the shared Redis (REDIS_HOST, or the primary REDIS_SENTINELS name) is configured.
    pub fn shared_redis_configured(&self) -> bool {
        self.redis.use_sentinel || !self.redis.host.trim().is_empty()
    }

    /// Origins for console CORS: the explicit list, else CONSOLE_WEB_URL's origin (as Dify).
    pub fn console_cors_origins(&self) -> Origins {
        match (&self.server.console_cors_allow_origins, &self.server.console_web_url) {
            (Origins::List(list), Some(web)) if list.is_empty() => {
                Origins::List(vec![web.0.origin().ascii_serialization()])
            }
            (origins, _) => origins.clone(),
        }
    }
}
