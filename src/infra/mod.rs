//! Shared services every role wires together: database, migrations, Redis, storage,
//! logging and shutdown.

pub mod crypto;
pub mod db;
pub mod mail;
pub mod migrations;
pub mod queue;
pub mod redis;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
