//! kiln: one binary that runs a Dify-style backend.
//!
//! The library holds everything; `main.rs` only parses the command line and hands over to
//! [`cli::run`], so integration tests can drive the same code.

pub mod accounts;
pub mod beat;
pub mod cli;
pub mod commands;
pub mod config;
pub mod datasets;
pub mod http;
pub mod infra;
pub mod roles;
pub mod tasks;

/// The version reported by `/health`, the `X-Version` header and the start banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
