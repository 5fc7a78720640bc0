//! The caller's IP address, read as Dify reads it: `CF-Connecting-IP`, else the first
//! `X-Forwarded-For` entry (set by the reverse proxy in front), else the TCP peer.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The client's address for logs and per-IP limits; `None` only when the router runs
/// without a socket (in-process tests) and no proxy header is present.
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let ip = header("cf-connecting-ip").or_else(|| header("x-forwarded-for")).or_else(|| {
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip().to_string())
        });
        Ok(ClientIp(ip))
    }
}
