//! Admin commands: one-shot actions an operator runs (`kiln config check`, `kiln healthcheck`,
//! `kiln migrate status`, ...). They print for people and exit with a meaningful code.

pub mod admin;
pub mod config_cmd;
pub mod healthcheck;
pub mod migrate_status;
pub mod orphans;
pub mod queue_cmd;
