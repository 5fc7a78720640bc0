//! Checks that span more than one value: `<KEY>_FILE` secrets, unknown and ignored keys, and
//! combinations of settings that cannot work together.

use std::str::FromStr;

use secrecy::ExposeSecret;

use super::dify_keys::{DIFY_KEY_PREFIXES, DIFY_KEYS};
use super::settings::{DbType, KeySpec, Settings, StorageType};
use super::sources::{Entry, Merged, Source};
use super::{ConfigIssue, ConfigWarning, DIFY_SAMPLE_SECRET_KEY, Resolved};

/// Variables every shell or image sets; never reported, even though Dify's file lists some.
const GENERIC_ENVIRONMENT: &[&str] =
    &["HOME", "LANG", "LC_ALL", "PATH", "PYTHONIOENCODING", "TZ", "UV_CACHE_DIR"];

/// The effective entry for `spec`, reading `<KEY>_FILE` when it is the winning source.
pub(super) fn apply_secret_file(spec: &KeySpec, merged: &Merged, issues: &mut Vec<ConfigIssue>) -> Entry {
    let base = merged.entries.get(spec.name).cloned().unwrap_or_else(|| Entry {
        key: spec.name.to_owned(),
        value: spec.default.to_owned(),
        source: Source::Default,
    });
    let file_key = format!("{}_FILE", spec.name);
    let Some(file_entry) = merged.entries.get(&file_key) else {
        return base;
    };
    if file_entry.value.trim().is_empty() || file_entry.source.layer() < base.source.layer() {
        return base;
    }
    let path = std::path::PathBuf::from(file_entry.value.trim());
    let expected = format!("a readable file containing the value of {}", spec.name);
    if file_entry.source.layer() == base.source.layer() && base.source != Source::Default {
        issues.push(ConfigIssue {
            key: file_key,
            value: format!("{:?}", path.display().to_string()),
            source: file_entry.source.clone(),
            problem: format!("{} is also set at {}; set only one of them", spec.name, base.source),
            expected,
        });
        return base;
    }
    match std::fs::read_to_string(&path) {
        Ok(content) => {
            let value = content.trim_end_matches(['\n', '\r']).to_owned();
            if value.is_empty() {
                issues.push(ConfigIssue {
                    key: file_key,
                    value: format!("{:?}", path.display().to_string()),
                    source: file_entry.source.clone(),
                    problem: "the file is empty".into(),
                    expected,
                });
                return base;
            }
            Entry {
                key: spec.name.to_owned(),
                value,
                source: Source::SecretFile { path, via: Box::new(file_entry.source.clone()) },
            }
        }
        Err(error) => {
            issues.push(ConfigIssue {
                key: file_key,
                value: format!("{:?}", path.display().to_string()),
                source: file_entry.source.clone(),
                problem: format!("cannot read the file: {error}"),
                expected,
            });
            base
        }
    }
}

fn is_dify_key(key: &str) -> bool {
    DIFY_KEYS.binary_search(&key).is_ok() || DIFY_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The known key closest to `key`, if it is close enough to be a typo.
fn closest<'a>(specs: &'a [KeySpec], key: &str, max_distance: usize) -> Option<&'a str> {
    specs
        .iter()
        .map(|spec| (strsim::damerau_levenshtein(spec.name, key), spec.name))
        .filter(|(distance, _)| *distance <= max_distance)
        .min()
        .map(|(_, name)| name)
}

/// Sorts keys that are not kiln's into warnings (likely typos) and ignored Dify keys.
pub(super) fn classify_unknown_keys(
    specs: &[KeySpec],
    file_entries: &[Entry],
    environment: &[Entry],
    flags: &[(String, String, String)],
    warnings: &mut Vec<ConfigWarning>,
    ignored: &mut Vec<Entry>,
) {
    let known = |key: &str| {
        let stem = key.strip_suffix("_FILE").unwrap_or("");
        specs.iter().any(|s| s.name == key || s.name == stem)
    };
    let mut seen = std::collections::BTreeSet::new();
    let flag_entries = flags.iter().map(|(k, v, f)| Entry {
        key: k.clone(),
        value: v.clone(),
        source: Source::Flag(f.clone()),
    });
    for entry in file_entries.iter().cloned().chain(flag_entries) {
        if known(&entry.key) || !seen.insert(entry.key.clone()) {
            continue;
        }
        if is_dify_key(&entry.key) {
            ignored.push(entry);
            continue;
        }
        let message = match closest(specs, &entry.key, 3) {
            Some(name) => format!("unknown setting; did you mean {name}?"),
            None => "unknown setting; kiln ignores it".into(),
        };
        warnings.push(ConfigWarning { key: entry.key, source: entry.source, message });
    }
    for entry in environment {
        if known(&entry.key)
            || GENERIC_ENVIRONMENT.contains(&entry.key.as_str())
            || !seen.insert(entry.key.clone())
        {
            continue;
        }
        if is_dify_key(&entry.key) {
            ignored.push(entry.clone());
            continue;
        }
        let suggestion = if entry.key.len() >= 6 { closest(specs, &entry.key, 2) } else { None };
        let message = match (suggestion, entry.key.starts_with("KILN_")) {
            (Some(name), _) => format!("unknown setting; did you mean {name}?"),
            (None, true) => "unknown kiln setting; see `kiln config example` for the valid names".into(),
            (None, false) => continue,
        };
        warnings.push(ConfigWarning { key: entry.key.clone(), source: entry.source.clone(), message });
    }
    ignored.sort_by(|a, b| a.key.cmp(&b.key));
}

fn issue(
    resolved: &Resolved,
    key: &str,
    problem: impl Into<String>,
    expected: impl Into<String>,
) -> ConfigIssue {
    ConfigIssue {
        key: key.to_owned(),
        value: resolved.display(key),
        source: resolved.get(key).map(|e| e.source.clone()).unwrap_or(Source::Default),
        problem: problem.into(),
        expected: expected.into(),
    }
}

fn warning(resolved: &Resolved, key: &str, message: impl Into<String>) -> ConfigWarning {
    ConfigWarning {
        key: key.to_owned(),
        source: resolved.get(key).map(|e| e.source.clone()).unwrap_or(Source::Default),
        message: message.into(),
    }
}

/// Checks that involve several settings.
pub(super) fn cross_check(
    settings: &Settings,
    resolved: &Resolved,
    issues: &mut Vec<ConfigIssue>,
    warnings: &mut Vec<ConfigWarning>,
) {
    let db = &settings.database;
    if db.db_type == DbType::Postgresql {
        if db.host.trim().is_empty() {
            issues.push(issue(
                resolved,
                "DB_HOST",
                "the value is empty",
                "the PostgreSQL host name, e.g. db_postgres",
            ));
        }
        if db.database.trim().is_empty() {
            issues.push(issue(
                resolved,
                "DB_DATABASE",
                "the value is empty",
                "the PostgreSQL database name, e.g. dify",
            ));
        }
        if !db.extras.trim().is_empty() {
            let probe = format!("postgres://localhost/db?{}", db.extras.trim().trim_start_matches('?'));
            if let Err(error) = sqlx::postgres::PgConnectOptions::from_str(&probe) {
                issues.push(issue(
                    resolved,
                    "DB_EXTRAS",
                    error.to_string(),
                    "libpq parameters as a query string, e.g. sslmode=require&application_name=kiln",
                ));
            }
        }
    }

    let redis = &settings.redis;
    if redis.use_sentinel {
        if redis.sentinels.0.is_empty() {
            issues.push(issue(
                resolved,
                "REDIS_SENTINELS",
                "missing: REDIS_USE_SENTINEL=true needs the sentinels to ask",
                "comma-separated host:port pairs, e.g. sentinel-1:26379,sentinel-2:26379",
            ));
        }
        if redis.sentinel_service_name.trim().is_empty() {
            issues.push(issue(
                resolved,
                "REDIS_SENTINEL_SERVICE_NAME",
                "missing: REDIS_USE_SENTINEL=true needs the name the sentinels monitor",
                "the name from the sentinels' `sentinel monitor <name> …` line, e.g. mymaster",
            ));
        }
    }
    let sentinel_broker =
        redis.broker_url.as_ref().is_some_and(|url| url.expose().starts_with("sentinel://"));
    if sentinel_broker && !redis.celery_use_sentinel {
        issues.push(issue(
            resolved,
            "CELERY_USE_SENTINEL",
            "false, but CELERY_BROKER_URL is a sentinel:// URL",
            "true (with CELERY_SENTINEL_MASTER_NAME), or a redis:// broker URL",
        ));
    }
    if redis.celery_use_sentinel {
        if !sentinel_broker {
            issues.push(issue(
                resolved,
                "CELERY_BROKER_URL",
                "CELERY_USE_SENTINEL=true, but this is not a sentinel:// URL",
                "sentinel://:password@sentinel-1:26379;sentinel://:password@sentinel-2:26379/1",
            ));
        }
        if redis.celery_sentinel_master_name.trim().is_empty() {
            issues.push(issue(
                resolved,
                "CELERY_SENTINEL_MASTER_NAME",
                "missing: CELERY_USE_SENTINEL=true needs the name the sentinels monitor",
                "the name from the sentinels' `sentinel monitor <name> …` line, e.g. mymaster",
            ));
        }
    }
    if redis.use_clusters {
        issues.push(issue(
            resolved,
            "REDIS_USE_CLUSTERS",
            "Redis Cluster is not supported: kiln's queue needs multi-key scripts on one node",
            "false, with REDIS_HOST pointing at a single Redis (or its primary)",
        ));
    }
    if redis.host.contains("://") {
        issues.push(issue(
            resolved,
            "REDIS_HOST",
            "this is a URL, not a host name",
            "a host name such as redis (put full URLs in CELERY_BROKER_URL)",
        ));
    }
    if !redis.username.is_empty() && redis.password.expose_secret().is_empty() {
        issues.push(issue(
            resolved,
            "REDIS_PASSWORD",
            "missing: REDIS_USERNAME is set, and Redis ACL users need a password",
            "the password of REDIS_USERNAME (or REDIS_PASSWORD_FILE naming a file that holds it)",
        ));
    }

    if let Some(secret) = &settings.app.secret_key {
        let secret = secret.expose_secret();
        if secret == DIFY_SAMPLE_SECRET_KEY {
            warnings.push(warning(
                resolved,
                "SECRET_KEY",
                "THIS IS THE PUBLIC SAMPLE KEY FROM DIFY'S .env.example: anyone can forge sessions. \
                 Set a random one (`openssl rand -base64 42`) or leave SECRET_KEY empty to have kiln generate one",
            ));
        } else if secret.len() < 32 {
            warnings.push(warning(
                resolved,
                "SECRET_KEY",
                format!("only {} characters; use at least 32 random characters", secret.len()),
            ));
        }
    }
    diagnose_cookies_and_cors(settings, resolved, warnings);
    check_queue_settings(settings, resolved, issues, warnings);
    if settings.mail.mail_type.is_some() {
        for (key, value) in [
            ("SMTP_SERVER", &settings.mail.smtp_server),
            ("MAIL_DEFAULT_SEND_FROM", &settings.mail.default_send_from),
        ] {
            if value.trim().is_empty() {
                issues.push(issue(resolved, key, "the value is empty", "set when MAIL_TYPE=smtp"));
            }
        }
        let from = settings.mail.default_send_from.trim();
        if !from.is_empty() && from.parse::<lettre::message::Mailbox>().is_err() {
            issues.push(issue(
                resolved,
                "MAIL_DEFAULT_SEND_FROM",
                "not a mail address",
                "an address such as Dify <no-reply@example.com>",
            ));
        }
    }
    let storage = &settings.storage;
    if storage.storage_type == StorageType::Opendal
        && storage.opendal_scheme == super::settings::OpendalScheme::S3
        && storage.opendal_s3_bucket.trim().is_empty()
    {
        issues.push(issue(
            resolved,
            "OPENDAL_S3_BUCKET",
            "the value is empty",
            "the bucket name, required when OPENDAL_SCHEME=s3",
        ));
    }
    if storage.storage_type == StorageType::S3 && storage.s3_bucket_name.trim().is_empty() {
        issues.push(issue(
            resolved,
            "S3_BUCKET_NAME",
            "the value is empty",
            "the bucket name, required when STORAGE_TYPE=s3",
        ));
    }
    let key_pairs = [
        (
            "OPENDAL_S3_ACCESS_KEY_ID",
            "OPENDAL_S3_SECRET_ACCESS_KEY",
            storage.opendal_s3_access_key_id.is_some(),
            storage.opendal_s3_secret_access_key.is_some(),
        ),
        ("S3_ACCESS_KEY", "S3_SECRET_KEY", storage.s3_access_key.is_some(), storage.s3_secret_key.is_some()),
    ];
    for (id_key, secret_key, has_id, has_secret) in key_pairs {
        if has_id != has_secret {
            let (missing, other) = if has_id { (secret_key, id_key) } else { (id_key, secret_key) };
            issues.push(issue(
                resolved,
                missing,
                format!("missing while {other} is set"),
                format!("both {id_key} and {secret_key}, or neither (the AWS credential chain)"),
            ));
        }
    }
    if settings.storage.storage_type == StorageType::Local {
        warnings.push(warning(
            resolved,
            "STORAGE_TYPE",
            "local is deprecated (as in Dify); use STORAGE_TYPE=opendal with OPENDAL_SCHEME=fs and OPENDAL_FS_ROOT",
        ));
    }
}

/// The common parent domain of two hosts (at least two labels), e.g. `example.com` for
/// `console.example.com` and `api.example.com`.
fn shared_parent(a: &str, b: &str) -> Option<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.rsplit('.').collect(), b.rsplit('.').collect());
    let common: Vec<&str> = a.iter().zip(&b).take_while(|(x, y)| x == y).map(|(x, _)| *x).collect();
    (common.len() >= 2).then(|| common.into_iter().rev().collect::<Vec<_>>().join("."))
}

/// Warns about the settings behind "login works but every call is 401" and "CORS error"
/// (operator FAQ §3-4), each with what to set instead.
fn diagnose_cookies_and_cors(settings: &Settings, resolved: &Resolved, warnings: &mut Vec<ConfigWarning>) {
    use super::value::Origins;
    let server = &settings.server;
    let web = server.console_web_url.as_ref().map(|u| &u.0);
    let api = server.console_api_url.as_ref().map(|u| &u.0);
    let cookie_domain = settings.auth.cookie_domain.trim().trim_start_matches('.').to_lowercase();

    if let (Some(web), Some(api)) = (web, api)
        && web.scheme() == "https"
        && api.scheme() == "http"
    {
        warnings.push(warning(
            resolved,
            "CONSOLE_API_URL",
            format!(
                "the console is served over https ({web}) but the API over http ({api}): browsers block the \
                 calls as mixed content and the login cookies are not Secure. Serve the API over https and set \
                 CONSOLE_API_URL to that URL"
            ),
        ));
    }
    if settings.server.console_cors_allow_origins == Origins::Any {
        warnings.push(warning(
            resolved,
            "CONSOLE_CORS_ALLOW_ORIGINS",
            "* with credentials: browsers reject a literal *, so kiln echoes any Origin, which lets every \
             website make signed-in calls. Set it to the console's origin (e.g. https://console.example.com), \
             or leave it empty to use CONSOLE_WEB_URL's origin",
        ));
    }
    for (key, url) in [("CONSOLE_WEB_URL", web), ("CONSOLE_API_URL", api)] {
        let Some(host) = url.and_then(|u| u.host_str()).map(str::to_lowercase) else { continue };
        if !cookie_domain.is_empty() && host != cookie_domain && !host.ends_with(&format!(".{cookie_domain}"))
        {
            warnings.push(warning(
                resolved,
                "COOKIE_DOMAIN",
                format!(
                    "{cookie_domain} is not a suffix of {key}'s host {host}: browsers drop cookies for a foreign \
                     domain, so login appears to work but every call is 401. Set COOKIE_DOMAIN to the parent \
                     domain both hosts share, or leave it empty"
                ),
            ));
        }
    }
    if let (Some(web_host), Some(api_host)) = (web.and_then(|u| u.host_str()), api.and_then(|u| u.host_str()))
        && !web_host.eq_ignore_ascii_case(api_host)
        && cookie_domain.is_empty()
    {
        let advice = match shared_parent(&web_host.to_lowercase(), &api_host.to_lowercase()) {
            Some(parent) => format!(
                "set COOKIE_DOMAIN={parent} (and NEXT_PUBLIC_COOKIE_DOMAIN={parent} for the web front end)"
            ),
            None => "serve both under one site (e.g. one domain with the API under /console/api), since \
                     SameSite=Lax cookies are not sent across sites"
                .to_owned(),
        };
        warnings.push(warning(
            resolved,
            "COOKIE_DOMAIN",
            format!(
                "the console ({web_host}) and the API ({api_host}) are on different hosts and COOKIE_DOMAIN is \
                 empty: the login cookies stay on {api_host}, so login works but every call is 401; {advice}"
            ),
        ));
    }
    if let (Some(web), Some(api), Origins::List(list)) =
        (web, api, &settings.server.console_cors_allow_origins)
    {
        let origin = web.origin().ascii_serialization();
        if !list.is_empty() && origin != api.origin().ascii_serialization() && !list.contains(&origin) {
            warnings.push(warning(
                resolved,
                "CONSOLE_CORS_ALLOW_ORIGINS",
                format!("does not include the console's origin {origin}: the browser console will get CORS errors; add it"),
            ));
        }
    }
}

/// Unknown queue names are errors (a typo would leave a queue unconsumed forever); Celery
/// knobs that have no meaning for kiln are reported with the reason.
fn check_queue_settings(
    settings: &Settings,
    resolved: &Resolved,
    issues: &mut Vec<ConfigIssue>,
    warnings: &mut Vec<ConfigWarning>,
) {
    use crate::infra::queue::DIFY_QUEUES;
    let q = &settings.queue;
    for (key, list) in [("CELERY_QUEUES", &q.queues), ("CELERY_WORKER_QUEUES", &q.worker_queues)] {
        let unknown: Vec<&String> =
            list.0.iter().filter(|name| !DIFY_QUEUES.contains(&name.as_str())).collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
            issues.push(issue(
                resolved,
                key,
                format!("unknown queue(s): {}", names.join(", ")),
                format!("queue names from: {}", DIFY_QUEUES.join(", ")),
            ));
        }
    }
    for (key, expression) in [
        ("KILN_BEAT_CLEAN_AUTH_CRON", &settings.beat.clean_auth_cron),
        ("KILN_BEAT_TRIM_JOBS_CRON", &settings.beat.trim_jobs_cron),
    ] {
        if let Err(problem) = crate::beat::parse_cron(expression) {
            issues.push(issue(
                resolved,
                key,
                problem,
                "a cron expression with 5 fields (or 6 with seconds), e.g. */10 * * * *",
            ));
        }
    }
    if !q.worker_class.trim().is_empty() {
        warnings.push(warning(
            resolved,
            "CELERY_WORKER_CLASS",
            "ignored: kiln runs jobs as async tasks, so there is no pool class; concurrency comes from CELERY_WORKER_AMOUNT",
        ));
    }
    if q.min_workers.is_some() {
        warnings.push(warning(
            resolved,
            "CELERY_MIN_WORKERS",
            "ignored: kiln's concurrency is fixed (idle async slots cost nothing); CELERY_MAX_WORKERS sets it when CELERY_AUTO_SCALE=true",
        ));
    }
    if q.auto_scale && q.max_workers.is_none() && q.worker_concurrency.is_none() {
        warnings.push(warning(
            resolved,
            "CELERY_AUTO_SCALE",
            "true without CELERY_MAX_WORKERS: kiln does not autoscale, so CELERY_WORKER_AMOUNT sets the concurrency",
        ));
    }
}
