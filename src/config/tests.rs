//! Precedence and bad-input tests for the configuration loader.

use std::path::{Path, PathBuf};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    fn options(&self) -> LoadOptions {
        LoadOptions { config_dir: self.dir.path().join("config"), ..LoadOptions::default() }
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn effective(loaded: &Loaded, key: &str) -> (String, String) {
    let entry = loaded.resolved.get(key).expect("known key");
    (entry.value.clone(), entry.source.to_string())
}

#[test]
fn defaults_apply_with_no_sources() {
    let fixture = Fixture::new();
    let loaded = load(&fixture.options());
    assert!(loaded.is_ok(), "{}", loaded.error_report());
    let settings = loaded.settings.as_ref().expect("settings");
    assert_eq!(settings.server.port.0, 5001);
    assert_eq!(settings.database.db_type, DbType::Sqlite);
    assert_eq!(settings.mode(), Mode::Standalone);
    assert_eq!(effective(&loaded, "DIFY_PORT"), ("5001".into(), "default".into()));
}

#[test]
fn each_layer_overrides_the_one_below() {
    let fixture = Fixture::new();
    let config = fixture.file("config/kiln.toml", "# comment\nDIFY_PORT = 6000\nLOG_LEVEL = \"DEBUG\"\n");
    let mut options = fixture.options();

    let loaded = load(&options);
    assert_eq!(effective(&loaded, "DIFY_PORT"), ("6000".into(), format!("{}:2", config.display())));

    let first = fixture.file("first.env", "DIFY_PORT=6001\n");
    options.env_files.push(first.clone());
    let loaded = load(&options);
    assert_eq!(effective(&loaded, "DIFY_PORT"), ("6001".into(), format!("{}:1", first.display())));
    // A key set only in the config file survives a .env that does not mention it.
    assert_eq!(effective(&loaded, "LOG_LEVEL").0, "DEBUG");

    let second = fixture.file("second.env", "# later file wins\n\nDIFY_PORT=6002\n");
    options.env_files.push(second.clone());
    let loaded = load(&options);
    assert_eq!(effective(&loaded, "DIFY_PORT"), ("6002".into(), format!("{}:3", second.display())));

    options.environment = env(&[("DIFY_PORT", "6003")]);
    let loaded = load(&options);
    assert_eq!(effective(&loaded, "DIFY_PORT"), ("6003".into(), "environment".into()));

    options.flags = vec![("DIFY_PORT".into(), "6004".into(), "--port".into())];
    let loaded = load(&options);
    assert_eq!(effective(&loaded, "DIFY_PORT"), ("6004".into(), "--port".into()));
    assert_eq!(loaded.settings.expect("valid").server.port.0, 6004);
}

#[test]
fn key_file_is_read_at_its_own_layer() {
    let fixture = Fixture::new();
    let secret = fixture.file("secret.txt", "from-file-secret-value-0123456789abcdef\n");
    let dotenv = fixture.file(".env", "SECRET_KEY=from-dotenv-secret-value-0123456789abcdef\n");
    let mut options = fixture.options();
    options.env_files.push(dotenv.clone());
    options.environment = env(&[("SECRET_KEY_FILE", secret.to_str().expect("utf-8 path"))]);
    let loaded = load(&options);
    assert!(loaded.is_ok(), "{}", loaded.error_report());
    let (value, source) = effective(&loaded, "SECRET_KEY");
    assert_eq!(value, "from-file-secret-value-0123456789abcdef", "trailing newline trimmed");
    assert!(source.contains("secret.txt") && source.contains("environment"), "{source}");

    // A plain value at a higher layer beats a _FILE at a lower one.
    let dotenv = fixture.file(".env", &format!("SECRET_KEY_FILE={}\n", secret.display()));
    options.env_files = vec![dotenv];
    options.environment = env(&[("SECRET_KEY", "from-environment-secret-value-0123456789")]);
    let loaded = load(&options);
    assert_eq!(
        effective(&loaded, "SECRET_KEY"),
        ("from-environment-secret-value-0123456789".into(), "environment".into())
    );

    // Both at the same layer is ambiguous.
    options.env_files.clear();
    options.environment = env(&[
        ("SECRET_KEY", "from-environment-secret-value-0123456789"),
        ("SECRET_KEY_FILE", secret.to_str().expect("utf-8 path")),
    ]);
    let loaded = load(&options);
    assert!(!loaded.is_ok());
    assert_eq!(loaded.issues[0].key, "SECRET_KEY_FILE");
    assert!(loaded.issues[0].problem.contains("set only one"), "{}", loaded.issues[0]);
}

#[test]
fn cross_checks_run_even_when_a_value_is_broken() {
    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.environment = env(&[("DB_PORT", "abc"), ("REDIS_USE_CLUSTERS", "true")]);
    let loaded = load(&options);
    let keys: Vec<&str> = loaded.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["DB_PORT", "REDIS_USE_CLUSTERS"], "{}", loaded.error_report());
}

#[test]
fn dotenv_values_keep_dollar_signs_like_python_dotenv() {
    let fixture = Fixture::new();
    let dotenv =
        fixture.file(".env", "DB_PASSWORD=Pa$w0rd\nDEPLOY_ENV=ab$$cd\nCOOKIE_DOMAIN=${BASE_DOMAIN}\n");
    let mut options = fixture.options();
    options.env_files.push(dotenv);
    options.environment = env(&[("BASE_DOMAIN", "example.com")]);
    let loaded = load(&options);
    assert_eq!(effective(&loaded, "DB_PASSWORD").0, "Pa$w0rd");
    assert_eq!(effective(&loaded, "DEPLOY_ENV").0, "ab$$cd");
    assert_eq!(effective(&loaded, "COOKIE_DOMAIN").0, "example.com");
}

#[test]
fn every_problem_is_reported_at_once() {
    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.environment =
        env(&[("DB_PORT", "abc"), ("LOG_OUTPUT_FORMAT", "xml"), ("MIGRATION_ENABLED", "maybe")]);
    let loaded = load(&options);
    let keys: Vec<&str> = loaded.issues.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys.len(), 3, "{}", loaded.error_report());
    for key in ["DB_PORT", "LOG_OUTPUT_FORMAT", "MIGRATION_ENABLED"] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
}

/// One bad input: where it is set, and what the resulting message must contain.
struct Case {
    name: &'static str,
    environment: &'static [(&'static str, &'static str)],
    dotenv: &'static str,
    key: &'static str,
    source: &'static str,
    expected: &'static str,
    must_not_contain: &'static str,
}

const CORPUS: &[Case] = &[
    Case {
        name: "sentinel without sentinels",
        environment: &[("REDIS_USE_SENTINEL", "true"), ("REDIS_SENTINEL_SERVICE_NAME", "mymaster")],
        dotenv: "",
        key: "REDIS_SENTINELS",
        source: "default",
        expected: "host:port pairs",
        must_not_contain: "",
    },
    Case {
        name: "sentinel address without a port",
        environment: &[("REDIS_USE_SENTINEL", "true"), ("REDIS_SENTINELS", "sentinel-1")],
        dotenv: "",
        key: "REDIS_SENTINELS",
        source: "environment",
        expected: "host:port pairs",
        must_not_contain: "",
    },
    Case {
        name: "celery sentinel URL without CELERY_USE_SENTINEL",
        environment: &[("CELERY_BROKER_URL", "sentinel://:hunter2@s1:26379;sentinel://:hunter2@s2:26379/1")],
        dotenv: "",
        key: "CELERY_USE_SENTINEL",
        source: "default",
        expected: "CELERY_SENTINEL_MASTER_NAME",
        must_not_contain: "hunter2",
    },
    Case {
        name: "bad integer",
        environment: &[("DB_PORT", "abc")],
        dotenv: "",
        key: "DB_PORT",
        source: "environment",
        expected: "port number",
        must_not_contain: "",
    },
    Case {
        name: "port out of range from .env",
        environment: &[],
        dotenv: "# api\nDIFY_PORT=70000\n",
        key: "DIFY_PORT",
        source: ".env:2",
        expected: "between 0 and 65535",
        must_not_contain: "",
    },
    Case {
        name: "empty value",
        environment: &[("DB_PORT", "")],
        dotenv: "",
        key: "DB_PORT",
        source: "environment",
        expected: "port number",
        must_not_contain: "",
    },
    Case {
        name: "bad boolean",
        environment: &[("MIGRATION_ENABLED", "maybe")],
        dotenv: "",
        key: "MIGRATION_ENABLED",
        source: "environment",
        expected: "true or false",
        must_not_contain: "",
    },
    Case {
        name: "bad enum",
        environment: &[("LOG_OUTPUT_FORMAT", "xml")],
        dotenv: "",
        key: "LOG_OUTPUT_FORMAT",
        source: "environment",
        expected: "text, json",
        must_not_contain: "",
    },
    Case {
        name: "unsupported database",
        environment: &[],
        dotenv: "DB_TYPE=oceanbase\n",
        key: "DB_TYPE",
        source: ".env:1",
        expected: "sqlite, postgresql",
        must_not_contain: "",
    },
    Case {
        name: "unknown mode",
        environment: &[("MODE", "wokrer")],
        dotenv: "",
        key: "MODE",
        source: "environment",
        expected: "standalone, api, migration, worker, beat, job",
        must_not_contain: "",
    },
    Case {
        name: "bad URL",
        environment: &[("CONSOLE_API_URL", "not a url")],
        dotenv: "",
        key: "CONSOLE_API_URL",
        source: "environment",
        expected: "http(s) URL",
        must_not_contain: "",
    },
    Case {
        name: "URL with wrong scheme",
        environment: &[("CONSOLE_WEB_URL", "ftp://console.example.com")],
        dotenv: "",
        key: "CONSOLE_WEB_URL",
        source: "environment",
        expected: "http(s) URL",
        must_not_contain: "",
    },
    Case {
        name: "broker URL wrong scheme, password masked",
        environment: &[("CELERY_BROKER_URL", "http://:hunter2@redis:6379/1")],
        dotenv: "",
        key: "CELERY_BROKER_URL",
        source: "environment",
        expected: "Redis URL",
        must_not_contain: "hunter2",
    },
    Case {
        name: "CORS origin with a path",
        environment: &[("CONSOLE_CORS_ALLOW_ORIGINS", "https://console.example.com/app")],
        dotenv: "",
        key: "CONSOLE_CORS_ALLOW_ORIGINS",
        source: "environment",
        expected: "origins",
        must_not_contain: "",
    },
    Case {
        name: "zero pool size",
        environment: &[("SQLALCHEMY_POOL_SIZE", "0")],
        dotenv: "",
        key: "SQLALCHEMY_POOL_SIZE",
        source: "environment",
        expected: "positive integer",
        must_not_contain: "",
    },
    Case {
        name: "bad IP address",
        environment: &[("DIFY_BIND_ADDRESS", "999.1.1.1")],
        dotenv: "",
        key: "DIFY_BIND_ADDRESS",
        source: "environment",
        expected: "IP address",
        must_not_contain: "",
    },
    Case {
        name: "negative seconds",
        environment: &[("KILN_MIGRATION_WAIT_TIMEOUT", "-5")],
        dotenv: "",
        key: "KILN_MIGRATION_WAIT_TIMEOUT",
        source: "environment",
        expected: "seconds",
        must_not_contain: "",
    },
    Case {
        name: "_FILE pointing nowhere",
        environment: &[("SECRET_KEY_FILE", "/nonexistent/kiln-secret")],
        dotenv: "",
        key: "SECRET_KEY_FILE",
        source: "environment",
        expected: "readable file containing the value of SECRET_KEY",
        must_not_contain: "",
    },
    Case {
        name: "missing required secret",
        environment: &[("REDIS_HOST", "redis"), ("REDIS_USERNAME", "kiln")],
        dotenv: "",
        key: "REDIS_PASSWORD",
        source: "default",
        expected: "password of REDIS_USERNAME",
        must_not_contain: "",
    },
    Case {
        name: "Redis Cluster refused",
        environment: &[],
        dotenv: "REDIS_USE_CLUSTERS=true\n",
        key: "REDIS_USE_CLUSTERS",
        source: ".env:1",
        expected: "false",
        must_not_contain: "",
    },
    Case {
        name: "URL where a host belongs",
        environment: &[("REDIS_HOST", "redis://redis:6379")],
        dotenv: "",
        key: "REDIS_HOST",
        source: "environment",
        expected: "host name",
        must_not_contain: "",
    },
    Case {
        name: "bad DB_EXTRAS",
        environment: &[("DB_TYPE", "postgresql"), ("DB_EXTRAS", "sslmode=sometimes")],
        dotenv: "",
        key: "DB_EXTRAS",
        source: "environment",
        expected: "query string",
        must_not_contain: "",
    },
    Case {
        name: "bad log level",
        environment: &[("LOG_LEVEL", "LOUD")],
        dotenv: "",
        key: "LOG_LEVEL",
        source: "environment",
        expected: "debug, info, warning",
        must_not_contain: "",
    },
];

#[test]
fn bad_inputs_name_key_source_and_expectation() {
    assert!(CORPUS.len() >= 15);
    for case in CORPUS {
        let fixture = Fixture::new();
        let mut options = fixture.options();
        options.environment = env(case.environment);
        if !case.dotenv.is_empty() {
            // A relative path, so the source reads exactly `.env:N` as an operator sees it.
            fixture.file(".env", case.dotenv);
            options.env_files.push(Path::new(".env").to_path_buf());
        }
        let loaded = if case.dotenv.is_empty() {
            load(&options)
        } else {
            with_cwd(fixture.dir.path(), || load(&options))
        };
        assert!(!loaded.is_ok(), "{}: expected an error", case.name);
        let issue = loaded.issues.iter().find(|issue| issue.key == case.key).unwrap_or_else(|| {
            panic!("{}: no issue for {}; got:\n{}", case.name, case.key, loaded.error_report())
        });
        let message = issue.to_string();
        assert!(message.starts_with(&format!("{}=", case.key)), "{}: {message}", case.name);
        assert!(
            message.contains(&format!("(from {})", case.source)),
            "{}: source missing in {message}",
            case.name
        );
        assert!(message.contains(case.expected), "{}: expectation missing in {message}", case.name);
        if !case.must_not_contain.is_empty() {
            assert!(
                !loaded.error_report().contains(case.must_not_contain),
                "{}: leaked a secret: {message}",
                case.name
            );
        }
    }
}

/// Runs `f` with the working directory set to `dir` (tests in this module that change the
/// directory hold this lock, since the working directory is process-wide).
fn with_cwd<T>(dir: &Path, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let previous = std::env::current_dir().expect("cwd");
    std::env::set_current_dir(dir).expect("chdir");
    let result = f();
    std::env::set_current_dir(previous).expect("chdir back");
    result
}

#[test]
fn unreadable_files_are_reported_with_their_path() {
    let fixture = Fixture::new();
    fixture.file("config/kiln.toml", "[redis]\nport = 1\n");
    let broken = fixture.file("broken.env", "GOOD=1\nthis line is not an assignment\n");
    let mut options = fixture.options();
    options.env_files.push(broken.clone());
    let loaded = load(&options);
    assert!(!loaded.is_ok());
    let report = loaded.error_report();
    assert!(report.contains("kiln.toml") && report.contains("flat KEY = value"), "{report}");
    assert!(report.contains("broken.env"), "{report}");
}

#[test]
fn typos_warn_with_the_closest_key_and_dify_keys_are_ignored() {
    let fixture = Fixture::new();
    let dotenv = fixture.file(".env", "SECERT_KEY=abc\nVECTOR_STORE=weaviate\nWEAVIATE_ENDPOINT=http://weaviate:8080\nTOTALLY_UNRELATED=1\n");
    let mut options = fixture.options();
    options.env_files.push(dotenv);
    options.environment = env(&[
        ("DB_HOTS", "x"),
        ("PATH", "/usr/bin"),
        ("HOME", "/root"),
        ("KILN_MIGRATON_WAIT_TIMEOUT", "3"),
    ]);
    let loaded = load(&options);
    assert!(loaded.is_ok(), "{}", loaded.error_report());
    let warning = |key: &str| loaded.warnings.iter().find(|w| w.key == key).map(|w| w.message.clone());
    assert_eq!(warning("SECERT_KEY").as_deref(), Some("unknown setting; did you mean SECRET_KEY?"));
    assert_eq!(warning("DB_HOTS").as_deref(), Some("unknown setting; did you mean DB_HOST?"));
    assert!(warning("KILN_MIGRATON_WAIT_TIMEOUT").is_some_and(|m| m.contains("KILN_MIGRATION_WAIT_TIMEOUT")));
    assert!(warning("TOTALLY_UNRELATED").is_some());
    assert!(warning("PATH").is_none() && warning("HOME").is_none(), "{:?}", loaded.warnings);
    assert!(warning("VECTOR_STORE").is_none());
    let ignored: Vec<&str> = loaded.ignored.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(ignored, ["VECTOR_STORE", "WEAVIATE_ENDPOINT"]);
}

#[test]
fn dify_sample_secret_key_gets_a_loud_warning() {
    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.environment = env(&[("SECRET_KEY", DIFY_SAMPLE_SECRET_KEY)]);
    let loaded = load(&options);
    assert!(loaded.is_ok(), "sample key is a warning, not an error");
    let warning = loaded.warnings.iter().find(|w| w.key == "SECRET_KEY").expect("warning");
    assert!(warning.message.contains("PUBLIC SAMPLE KEY"), "{warning}");
    assert!(!warning.to_string().contains(DIFY_SAMPLE_SECRET_KEY), "never echo the key");
}

#[test]
fn a_dify_env_file_loads_cleanly() {
    let fixture = Fixture::new();
    let dotenv = fixture.file(
        ".env",
        "CONSOLE_API_URL=\nCONSOLE_WEB_URL=\nLOG_LEVEL=INFO\nLOG_FILE=\nDEBUG=false\nDEPLOY_ENV=PRODUCTION\n\
         MIGRATION_ENABLED=true\nDIFY_BIND_ADDRESS=0.0.0.0\nDIFY_PORT=5001\nSERVER_WORKER_AMOUNT=1\n\
         GUNICORN_TIMEOUT=360\nDB_TYPE=postgresql\nDB_USERNAME=postgres\nDB_PASSWORD=difyai123456\n\
         DB_HOST=db_postgres\nDB_PORT=5432\nDB_DATABASE=dify\nSQLALCHEMY_POOL_SIZE=30\n\
         SQLALCHEMY_MAX_OVERFLOW=10\nREDIS_HOST=redis\nREDIS_PORT=6379\nREDIS_USERNAME=\n\
         REDIS_PASSWORD=difyai123456\nREDIS_USE_SSL=false\nREDIS_DB=0\nREDIS_USE_SENTINEL=false\n\
         CELERY_BROKER_URL=redis://:difyai123456@redis:6379/1\nWEB_API_CORS_ALLOW_ORIGINS=*\n\
         CONSOLE_CORS_ALLOW_ORIGINS=*\nSTORAGE_TYPE=opendal\nOPENDAL_SCHEME=fs\nOPENDAL_FS_ROOT=storage\n\
         VECTOR_STORE=weaviate\nWEAVIATE_ENDPOINT=http://weaviate:8080\n",
    );
    let mut options = fixture.options();
    options.env_files.push(dotenv);
    let loaded = load(&options);
    assert!(loaded.is_ok(), "{}", loaded.error_report());
    // Dify's sample sets CONSOLE_CORS_ALLOW_ORIGINS=*, which deserves its warning; nothing else does.
    let keys: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(keys, ["CONSOLE_CORS_ALLOW_ORIGINS"], "{:?}", loaded.warnings);
    let settings = loaded.settings.expect("valid");
    assert_eq!(settings.database.db_type, DbType::Postgresql);
    assert_eq!(settings.server.request_timeout.0, 360);
    assert!(settings.redis_configured());
    assert!(loaded.ignored.iter().any(|e| e.key == "SQLALCHEMY_MAX_OVERFLOW"));
}

#[test]
fn show_masks_secrets() {
    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.environment =
        env(&[("DB_PASSWORD", "hunter2"), ("CELERY_BROKER_URL", "redis://:hunter2@redis:6379/1")]);
    let loaded = load(&options);
    assert_eq!(loaded.resolved.display("DB_PASSWORD"), "\"***\"");
    let broker = loaded.resolved.display("CELERY_BROKER_URL");
    assert!(!broker.contains("hunter2") && broker.contains("redis:6379"), "{broker}");
}

#[test]
fn env_example_lists_every_key_with_its_default() {
    let text = example::env_example();
    for spec in Settings::keys() {
        assert!(text.contains(&format!("\n{}={}\n", spec.name, spec.default)), "{} missing", spec.name);
    }
}

fn warnings_for(pairs: &[(&str, &str)]) -> Vec<ConfigWarning> {
    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.environment = env(pairs);
    let loaded = load(&options);
    assert!(loaded.is_ok(), "{}", loaded.error_report());
    loaded.warnings
}

#[test]
fn cookie_and_cors_pitfalls_are_diagnosed_with_the_fix() {
    let find = |warnings: &[ConfigWarning], key: &str, needle: &str| {
        warnings.iter().any(|w| w.key == key && w.message.contains(needle))
    };
    let w = warnings_for(&[
        ("CONSOLE_WEB_URL", "https://console.example.com"),
        ("CONSOLE_API_URL", "http://api.example.com"),
    ]);
    assert!(find(&w, "CONSOLE_API_URL", "mixed content"), "{w:?}");
    assert!(find(&w, "COOKIE_DOMAIN", "set COOKIE_DOMAIN=example.com"), "{w:?}");

    let w = warnings_for(&[("CONSOLE_CORS_ALLOW_ORIGINS", "*")]);
    assert!(find(&w, "CONSOLE_CORS_ALLOW_ORIGINS", "with credentials"), "{w:?}");

    let w = warnings_for(&[
        ("CONSOLE_WEB_URL", "https://console.example.com"),
        ("CONSOLE_API_URL", "https://api.example.com"),
        ("COOKIE_DOMAIN", "example.org"),
    ]);
    assert!(
        find(&w, "COOKIE_DOMAIN", "is not a suffix of CONSOLE_WEB_URL's host console.example.com"),
        "{w:?}"
    );

    let w = warnings_for(&[
        ("CONSOLE_WEB_URL", "https://console.example.com"),
        ("CONSOLE_API_URL", "https://api.other.org"),
    ]);
    assert!(find(&w, "COOKIE_DOMAIN", "serve both under one site"), "{w:?}");

    let w = warnings_for(&[
        ("CONSOLE_WEB_URL", "https://console.example.com"),
        ("CONSOLE_API_URL", "https://api.example.com"),
        ("COOKIE_DOMAIN", ".example.com"),
        ("CONSOLE_CORS_ALLOW_ORIGINS", "https://admin.example.com"),
    ]);
    assert!(find(&w, "CONSOLE_CORS_ALLOW_ORIGINS", "https://console.example.com"), "{w:?}");
    assert!(!w.iter().any(|w| w.key == "COOKIE_DOMAIN"), "a correct shared domain is fine: {w:?}");

    // The same-host layout Dify's compose uses draws no warning at all.
    let w = warnings_for(&[
        ("CONSOLE_WEB_URL", "https://dify.example.com"),
        ("CONSOLE_API_URL", "https://dify.example.com"),
    ]);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn celery_sentinel_broker_urls_are_split_as_kombu_reads_them() {
    let broker =
        super::value::sentinel_broker("sentinel://:p%40ss@s1:26379;sentinel://:p%40ss@[::1]:26380/3")
            .expect("valid");
    assert_eq!(broker.sentinels, [("s1".to_owned(), 26379), ("::1".to_owned(), 26380)]);
    assert_eq!((broker.password.as_str(), broker.db), ("p@ss", 3));
    assert!(super::value::sentinel_broker("sentinel://s1").is_err(), "a port is required");
    assert!(super::value::sentinel_broker("sentinel://s1:1;redis://s2:2").is_err());

    let fixture = Fixture::new();
    let mut options = fixture.options();
    options.environment = env(&[
        ("CELERY_BROKER_URL", "sentinel://:pw@s1:26379/1"),
        ("CELERY_USE_SENTINEL", "true"),
        ("CELERY_SENTINEL_MASTER_NAME", "mymaster"),
        ("REDIS_USE_SENTINEL", "true"),
        ("REDIS_SENTINELS", "s1:26379, s2:26379"),
        ("REDIS_SENTINEL_SERVICE_NAME", "mymaster"),
    ]);
    let loaded = load(&options);
    assert!(loaded.is_ok(), "{}", loaded.error_report());
    let settings = loaded.settings.expect("valid");
    assert_eq!(settings.redis.sentinels.0.len(), 2);
    assert!(settings.shared_redis_configured());
}
