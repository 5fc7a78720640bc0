//! Knowledge bases (datasets): API keys, datasets, documents and their indexing, retrieval,
//! and Dify's Knowledge Service API.

pub mod child_chunks;
pub mod child_chunks_repo;
pub mod cleanup;
pub mod documents;
pub mod documents_http;
pub mod documents_repo;
pub mod documents_service;
pub mod extract;
pub mod files;
pub mod http;
pub mod indexing;
pub mod metadata;
pub mod model;
pub mod orphans;
pub mod repo;
pub mod retrieval;
pub mod schemas;
pub mod segments;
pub mod segments_repo;
pub mod service;
pub mod tags;
pub mod text;
pub mod unused;
