//! `kiln healthcheck [--ready]`: for Docker's HEALTHCHECK, which has no curl in our image.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::Settings;

/// The address a local probe should use for the configured bind address.
pub fn probe_addr(settings: &Settings) -> SocketAddr {
    let ip = match settings.server.bind_address {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    // A worker's listener, when it has one, is what its container's health check probes.
    let port = match (settings.mode(), settings.queue.worker_health_port) {
        (crate::config::Mode::Worker, Some(port)) => port.0,
        _ => settings.server.port.0,
    };
    SocketAddr::new(ip, port)
}

/// GETs `path` and returns the status code.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    let attempt = async {
        let mut stream =
            TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kiln-healthcheck\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        stream.read_to_end(&mut head).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&head);
        let status_line = text.lines().next().unwrap_or_default();
        status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}

/// Exit 0 when the endpoint answers 200, else 1 with the reason on standard error.
pub async fn run(settings: &Settings, ready: bool, timeout: Duration) -> u8 {
    let path = if ready { "/ready" } else { "/health" };
    let addr = probe_addr(settings);
    match probe(addr, path, timeout).await {
        Ok(200) => 0,
        Ok(status) => {
            eprintln!("kiln healthcheck: {path} on {addr} answered {status}");
            1
        }
        Err(error) => {
            eprintln!("kiln healthcheck: {path}: {error}");
            1
        }
    }
}
