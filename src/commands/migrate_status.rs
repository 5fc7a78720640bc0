//! `kiln migrate status`: which migrations the database has, and which this binary brings.

use crate::config::Settings;
use crate::infra::db::{Db, describe};
use crate::infra::migrations::{self, SchemaState};

/// Prints the status; exit 0 when the schema matches this binary, 1 otherwise.
pub async fn run(settings: &Settings) -> u8 {
    let db = match Db::connect(settings).await {
        Ok(db) => db,
        Err(error) => {
            eprintln!("kiln: {error}");
            return 1;
        }
    };
    let status = match migrations::status(&db, settings).await {
        Ok(status) => status,
        Err(error) => {
            eprintln!("kiln: {error}");
            return 1;
        }
    };
    println!("database: {}", describe(settings));
    for (migration, _) in &status.known {
        match status.applied.iter().find(|row| row.version == migration.version) {
            Some(row) if row.success => println!("  applied  {migration}  at {}", row.installed_on),
            Some(_) => println!("  FAILED   {migration}"),
            None => println!("  pending  {migration}"),
        }
    }
    for row in status.applied.iter().filter(|row| !status.known.iter().any(|(m, _)| m.version == row.version))
    {
        println!(
            "  unknown  {} ({})  at {}  (applied by a newer kiln)",
            row.version, row.description, row.installed_on
        );
    }
    db.close().await;
    match status.state() {
        SchemaState::Current => {
            println!("schema is up to date");
            0
        }
        SchemaState::Behind(pending) => {
            println!("schema is behind: {} pending; run `kiln upgrade-db`", pending.len());
            1
        }
        SchemaState::Ahead(versions) => {
            println!("schema is ahead of this binary (unknown migrations {versions:?}); use a newer kiln");
            1
        }
        SchemaState::Dirty(version) => {
            println!("migration {version} is partially applied; repair it by hand");
            1
        }
        SchemaState::Modified(migration) => {
            println!("migration {migration} was changed after it was applied");
            1
        }
    }
}
