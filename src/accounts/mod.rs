//! Accounts, workspaces (tenants), membership and console authentication.

pub mod email_login;
pub mod http;
pub mod invitations;
pub mod keys;
pub mod model;
pub mod password;
pub mod recovery;
pub mod repo;
pub mod service;
pub mod tokens;
