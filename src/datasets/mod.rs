//! Knowledge bases (datasets): API keys, datasets, and Dify's Knowledge Service API.

pub mod http;
pub mod model;
pub mod repo;
pub mod service;
