//! kiln's one typed configuration, shared by every role.
//!
//! Values are layered (defaults < `config/*.toml` < `.env` files < environment < flags), each
//! remembers its source, and validation reports every problem at once with the key, the value
//! (masked when secret), where it came from and what was expected.

mod dify_keys;
pub mod dotenv;
pub mod example;
pub mod settings;
pub mod sources;
mod validate;
pub mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use settings::{DbType, KeySpec, LogFormat, LogLevel, Mode, Settings};
pub use sources::{Entry, Layer, Source};
use value::{ConfigValue, display_value};

/// The value Dify's `.env.example` ships for `SECRET_KEY`: public, so never safe to run with.
pub const DIFY_SAMPLE_SECRET_KEY: &str = "sk-9f73s3ljTXVcMT3Blb3ljTqtsKiGHXVcMT3BlbkFJLK7U";

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The variable at fault, e.g. `DB_PORT` or `SECRET_KEY_FILE`.
    pub key: String,
    /// The offending value as displayed (quoted, masked when secret).
    pub value: String,
    /// Where the value came from.
    pub source: Source,
    /// What is wrong with it.
    pub problem: String,
    /// What would be accepted.
    pub expected: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} (from {}): {}; expected {}",
            self.key, self.value, self.source, self.problem, self.expected
        )
    }
}

/// Something suspicious that does not stop kiln from starting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: String,
    pub source: Source,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {}): {}", self.key, self.source, self.message)
    }
}

/// Every known key with its winning raw value and source.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    values: BTreeMap<&'static str, Entry>,
    secret: BTreeMap<&'static str, bool>,
}

impl Resolved {
    /// The effective raw entry of a known key.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.values.get(key)
    }

    /// All effective entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.values.values()
    }

    /// The value as it may be shown (masked when secret).
    pub fn display(&self, key: &str) -> String {
        match self.values.get(key) {
            Some(entry) => display_value(&entry.value, self.secret.get(key).copied().unwrap_or(false)),
            None => "\"\"".into(),
        }
    }

    pub(crate) fn parse<T: ConfigValue>(
        &self,
        key: &'static str,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<T> {
        let entry = self.values.get(key)?;
        match T::parse(&entry.value) {
            Ok(value) => Some(value),
            Err(problem) => {
                issues.push(ConfigIssue {
                    key: key.to_owned(),
                    value: display_value(&entry.value, T::SECRET),
                    source: entry.source.clone(),
                    problem: if T::SECRET { "invalid value".into() } else { problem },
                    expected: T::expected(),
                });
                None
            }
        }
    }
}

/// What to read. The environment and flags are passed in, not read globally, so tests can
/// prove the precedence without touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Directory of `*.toml` files with non-secret settings.
    pub config_dir: PathBuf,
    /// Dotenv files in increasing precedence (`.env` in the working directory first, if present).
    pub env_files: Vec<PathBuf>,
    /// The process environment.
    pub environment: Vec<(String, String)>,
    /// Command-line overrides: `(KEY, value, flag as typed)`.
    pub flags: Vec<(String, String, String)>,
}

impl LoadOptions {
    /// The standard sources: `config/`, `./.env` if present plus `extra_env_files`, the real
    /// process environment, and the given flags.
    pub fn standard(
        config_dir: Option<PathBuf>,
        extra_env_files: &[PathBuf],
        flags: Vec<(String, String, String)>,
    ) -> Self {
        let mut env_files = Vec::new();
        let dotenv = PathBuf::from(".env");
        if dotenv.is_file() {
            env_files.push(dotenv);
        }
        env_files.extend(extra_env_files.iter().cloned());
        Self {
            config_dir: config_dir.unwrap_or_else(|| PathBuf::from("config")),
            env_files,
            environment: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            flags,
        }
    }
}

/// The outcome of loading: settings when valid, and everything an operator should know.
#[derive(Debug)]
pub struct Loaded {
    /// The typed settings; `None` when any issue was found.
    pub settings: Option<Settings>,
    /// Every effective value with its source.
    pub resolved: Resolved,
    /// Invalid settings, all of them.
    pub issues: Vec<ConfigIssue>,
    /// Problems reading source files.
    pub file_errors: Vec<sources::SourceError>,
    /// Suspicious keys and values.
    pub warnings: Vec<ConfigWarning>,
    /// Dify variables that were set but that kiln does not use.
    pub ignored: Vec<Entry>,
    /// The files read, in precedence order, for the start banner.
    pub files_read: Vec<PathBuf>,
    /// Whether any command-line flag set a value.
    pub has_flags: bool,
}

impl Loaded {
    /// True when nothing prevents starting.
    pub fn is_ok(&self) -> bool {
        self.settings.is_some() && self.issues.is_empty() && self.file_errors.is_empty()
    }

    /// The problems, one per line, for printing on failure.
    pub fn error_report(&self) -> String {
        let mut out = String::new();
        for error in &self.file_errors {
            out.push_str(&format!("  {}: {}\n", error.path.display(), error.message));
        }
        for issue in &self.issues {
            out.push_str(&format!("  {issue}\n"));
        }
        out
    }

    /// A one-line summary of the layers in effect, for the start banner.
    pub fn sources_summary(&self) -> String {
        let mut parts = vec!["defaults".to_owned()];
        parts.extend(self.files_read.iter().map(|p| p.display().to_string()));
        parts.push("environment".into());
        if self.has_flags {
            parts.push("flags".into());
        }
        parts.join(" < ")
    }
}

/// Loads and validates the configuration from the given sources.
pub fn load(options: &LoadOptions) -> Loaded {
    let specs = Settings::keys();
    let mut merged = sources::Merged::default();
    let mut file_errors = Vec::new();
    let mut files_read = Vec::new();
    // Keys found in files are always meant for us, so all of them are checked for typos;
    // the environment carries unrelated variables, so only near-misses are reported.
    let mut file_keys: Vec<Entry> = Vec::new();

    merged.apply(specs.iter().map(|spec| Entry {
        key: spec.name.to_owned(),
        value: spec.default.to_owned(),
        source: Source::Default,
    }));
    let config_files = sources::config_files(&options.config_dir).into_iter().map(|p| (p, false));
    let file_sets = config_files.chain(options.env_files.iter().map(|p| (p.clone(), true)));
    for (path, is_dotenv) in file_sets {
        let read = if is_dotenv {
            sources::read_env_file(&path, &options.environment)
        } else {
            sources::read_config_file(&path)
        };
        match read {
            Ok(entries) => {
                files_read.push(path);
                file_keys.extend(entries.iter().cloned());
                merged.apply(entries);
            }
            Err(error) => file_errors.push(error),
        }
    }
    let environment: Vec<Entry> = options
        .environment
        .iter()
        .map(|(k, v)| Entry { key: k.clone(), value: v.clone(), source: Source::Environment })
        .collect();
    merged.apply(environment.iter().cloned());
    merged.apply(options.flags.iter().map(|(k, v, flag)| Entry {
        key: k.clone(),
        value: v.clone(),
        source: Source::Flag(flag.clone()),
    }));

    let mut issues = Vec::new();
    let mut resolved = Resolved::default();
    for spec in &specs {
        resolved.secret.insert(spec.name, spec.secret);
        let entry = validate::apply_secret_file(spec, &merged, &mut issues);
        resolved.values.insert(spec.name, entry);
    }

    let mut warnings = Vec::new();
    let mut ignored = Vec::new();
    validate::classify_unknown_keys(
        &specs,
        &file_keys,
        &environment,
        &options.flags,
        &mut warnings,
        &mut ignored,
    );

    let settings = Settings::parse(&resolved, &mut issues);
    match &settings {
        Some(settings) => validate::cross_check(settings, &resolved, &mut issues, &mut warnings),
        None => {
            // Report every problem at once: run the cross-field checks on the values that did
            // parse, with defaults standing in for the broken ones (whose issues are known).
            let mut stand_in = resolved.clone();
            for issue in &issues {
                if let Some(spec) = specs.iter().find(|s| s.name == issue.key) {
                    let entry = Entry {
                        key: spec.name.to_owned(),
                        value: spec.default.to_owned(),
                        source: Source::Default,
                    };
                    stand_in.values.insert(spec.name, entry);
                }
            }
            let (mut extra, mut ignored_issues) = (Vec::new(), Vec::new());
            if let Some(partial) = Settings::parse(&stand_in, &mut ignored_issues) {
                validate::cross_check(&partial, &stand_in, &mut extra, &mut warnings);
            }
            let broken: Vec<String> = issues.iter().map(|i| i.key.clone()).collect();
            issues.extend(extra.into_iter().filter(|i| !broken.contains(&i.key)));
        }
    }
    Loaded {
        settings,
        resolved,
        issues,
        file_errors,
        warnings,
        ignored,
        files_read,
        has_flags: !options.flags.is_empty(),
    }
}

#[cfg(test)]
mod tests;
