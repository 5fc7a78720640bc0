//! `kiln config check | show | example`.

use std::io::Write;
use std::path::Path;

use crate::config::{Loaded, example};

/// Exit code for invalid configuration (also used for an unknown MODE).
pub const EXIT_CONFIG: u8 = 2;

fn print_notes(loaded: &Loaded, out: &mut impl Write) -> std::io::Result<()> {
    if !loaded.warnings.is_empty() {
        writeln!(out, "\nwarnings:")?;
        for warning in &loaded.warnings {
            writeln!(out, "  {warning}")?;
        }
    }
    if !loaded.ignored.is_empty() {
        writeln!(out, "\nDify settings kiln does not use (ignored):")?;
        for entry in &loaded.ignored {
            writeln!(out, "  {} (from {})", entry.key, entry.source)?;
        }
    }
    Ok(())
}

/// `kiln config check`: every problem at once; exit 0 when valid, 2 otherwise.
pub fn check(loaded: &Loaded) -> u8 {
    let mut out = std::io::stdout().lock();
    let result = (|| -> std::io::Result<u8> {
        if loaded.is_ok() {
            writeln!(out, "configuration OK ({})", loaded.sources_summary())?;
        } else {
            let count = loaded.issues.len() + loaded.file_errors.len();
            writeln!(out, "configuration invalid: {count} problem(s)\n{}", loaded.error_report().trim_end())?;
        }
        print_notes(loaded, &mut out)?;
        Ok(if loaded.is_ok() { 0 } else { EXIT_CONFIG })
    })();
    result.unwrap_or(1)
}

/// `kiln config show`: each effective value (secrets masked) and where it came from.
pub fn show(loaded: &Loaded) -> u8 {
    let mut out = std::io::stdout().lock();
    let result = (|| -> std::io::Result<u8> {
        let width = loaded.resolved.iter().map(|e| e.key.len()).max().unwrap_or(0);
        for entry in loaded.resolved.iter() {
            writeln!(
                out,
                "{:width$}  {}  [{}]",
                entry.key,
                loaded.resolved.display(&entry.key),
                entry.source
            )?;
        }
        if !loaded.is_ok() {
            writeln!(out, "\nproblems:\n{}", loaded.error_report().trim_end())?;
        }
        print_notes(loaded, &mut out)?;
        Ok(if loaded.is_ok() { 0 } else { EXIT_CONFIG })
    })();
    result.unwrap_or(1)
}

/// `kiln config example [--output PATH]`: the documented `.env.example`.
pub fn example(output: Option<&Path>) -> u8 {
    let text = example::env_example();
    let written = match output {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("kiln: {error}");
            1
        }
    }
}
