//! Where configuration values come from, and reading each kind of source.
//!
//! Every value keeps its [`Source`], so errors and `kiln config show` can say `.env:12` or
//! `environment` instead of leaving the operator to guess which of five layers won.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The layers, lowest precedence first. A value from a later layer replaces an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// Built into the binary.
    Default,
    /// `config/*.toml` checked-in, non-secret settings.
    ConfigFile,
    /// `.env` in the working directory and every `--env-file`.
    EnvFile,
    /// The process environment.
    Environment,
    /// Command-line flags (`--port`, `--set KEY=VALUE`, ...).
    Flag,
}

/// Where one effective value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A line of a TOML file under the config directory.
    ConfigFile { path: PathBuf, line: usize },
    /// A line of a dotenv file.
    EnvFile { path: PathBuf, line: usize },
    /// The process environment.
    Environment,
    /// A command-line flag, e.g. `--port` or `--set`.
    Flag(String),
    /// The contents of a file named by `<KEY>_FILE`, itself set at `via`.
    SecretFile { path: PathBuf, via: Box<Source> },
}

impl Source {
    /// The precedence layer this source belongs to.
    pub fn layer(&self) -> Layer {
        match self {
            Source::Default => Layer::Default,
            Source::ConfigFile { .. } => Layer::ConfigFile,
            Source::EnvFile { .. } => Layer::EnvFile,
            Source::Environment => Layer::Environment,
            Source::Flag(_) => Layer::Flag,
            Source::SecretFile { via, .. } => via.layer(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::ConfigFile { path, line } | Source::EnvFile { path, line } => {
                write!(f, "{}:{line}", path.display())
            }
            Source::Environment => f.write_str("environment"),
            Source::Flag(flag) => f.write_str(flag),
            Source::SecretFile { path, via } => write!(f, "file {} (named at {via})", path.display()),
        }
    }
}

/// One raw `KEY=value` with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub source: Source,
}

/// A problem reading a source file (not a bad value: the file itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub path: PathBuf,
    pub message: String,
}

/// The raw entries of every layer merged: for each key, the winning entry.
#[derive(Debug, Default, Clone)]
pub struct Merged {
    pub entries: BTreeMap<String, Entry>,
}

impl Merged {
    /// Applies entries in order; later (or higher-layer) entries replace earlier ones.
    pub fn apply(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for entry in entries {
            match self.entries.get(&entry.key) {
                Some(existing) if existing.source.layer() > entry.source.layer() => {}
                _ => {
                    self.entries.insert(entry.key.clone(), entry);
                }
            }
        }
    }
}

/// Finds the last line that assigns `key` (`KEY=`, `KEY =`, `export KEY=`), 1-based.
fn line_of(text: &str, key: &str) -> usize {
    let mut found = 0;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        if let Some(rest) = line.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            found = index + 1;
        }
    }
    found
}

/// Reads a dotenv file (python-dotenv rules) without touching the process environment;
/// `${VAR}` falls back to `environment`.
pub fn read_env_file(path: &Path, environment: &[(String, String)]) -> Result<Vec<Entry>, SourceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SourceError { path: path.to_owned(), message: format!("cannot read the file: {e}") })?;
    let lookup = |name: &str| environment.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let parsed = super::dotenv::parse(&text, &lookup).map_err(|e| SourceError {
        path: path.to_owned(),
        message: format!("line {}: {}", e.line, e.message),
    })?;
    Ok(parsed
        .into_iter()
        .map(|(key, value, line)| Entry {
            source: Source::EnvFile { path: path.to_owned(), line },
            key,
            value,
        })
        .collect())
}

/// Reads a flat TOML file of `KEY = value` pairs.
pub fn read_config_file(path: &Path) -> Result<Vec<Entry>, SourceError> {
    let error = |message: String| SourceError { path: path.to_owned(), message };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read the file: {e}")))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| error(e.to_string()))?;
    let mut entries = Vec::new();
    for (key, value) in table {
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => {
                return Err(error(format!(
                    "{key} is a table; config files hold flat KEY = value pairs using the .env names"
                )));
            }
        };
        let line = line_of(&text, &key);
        entries.push(Entry { source: Source::ConfigFile { path: path.to_owned(), line }, key, value });
    }
    Ok(entries)
}

/// The `*.toml` files of a config directory, in name order; a missing directory is empty.
pub fn config_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml") && p.is_file())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_assignment_line() {
        let text = "# c\nDB_PORT=1\nexport DB_HOST = x\nDB_PORT=2\nDB_PORTX=3\n";
        assert_eq!(line_of(text, "DB_PORT"), 4);
        assert_eq!(line_of(text, "DB_HOST"), 3);
    }

    #[test]
    fn higher_layers_win_regardless_of_order() {
        let mut merged = Merged::default();
        merged.apply([Entry { key: "A".into(), value: "env".into(), source: Source::Environment }]);
        merged.apply([Entry {
            key: "A".into(),
            value: "file".into(),
            source: Source::EnvFile { path: ".env".into(), line: 1 },
        }]);
        assert_eq!(merged.entries["A"].value, "env");
    }
}
