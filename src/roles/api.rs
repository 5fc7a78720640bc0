//! The HTTP API role (`MODE=api`), and `standalone`, which is the same server on the
//! embedded stores and always migrates first.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::{Role, RoleContext, RoleError, prepare};
use crate::http;
use crate::infra::{db::describe, shutdown};

/// Binds `DIFY_BIND_ADDRESS:DIFY_PORT`, turning "address in use" into advice.
pub async fn bind(ctx: &RoleContext) -> Result<TcpListener, RoleError> {
    let server = &ctx.settings.server;
    let addr = SocketAddr::new(server.bind_address, server.port.0);
    TcpListener::bind(addr).await.map_err(|error| RoleError::Bind {
        addr: addr.to_string(),
        reason: match error.kind() {
            std::io::ErrorKind::AddrInUse => "the port is already in use".into(),
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".into()
            }
            _ => error.to_string(),
        },
        port_source: ctx.port_source.clone(),
        bind_source: ctx.bind_source.clone(),
    })
}

/// A URL a person on this machine can open for the listening address.
fn local_url(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

/// Runs the API until SIGTERM/SIGINT, then drains.
pub async fn run(ctx: RoleContext, role: Role) -> Result<(), RoleError> {
    let migrate = role == Role::Standalone || ctx.settings.app.migration_enabled;
    let listener = bind(&ctx).await?;
    let mut shared = prepare(ctx.settings.clone(), migrate).await?;
    shared.runs_worker = role == Role::Standalone;
    let state = crate::http::AppState::new(shared);
    let local = listener.local_addr().map_err(RoleError::Serve)?;
    let url = local_url(local);
    tracing::info!(
        role = role.name(),
        version = crate::VERSION,
        config = %ctx.sources_summary,
        database = %describe(&ctx.settings),
        storage = state.storage.root(),
        listen = %local,
        url = %url,
        "kiln {} is serving at {url}",
        role.name()
    );
    let grace = ctx.settings.server.shutdown_grace_period.duration();
    let db = state.db.clone();
    let worker_db = state.db.clone();
    let jobs = state.jobs.clone();
    let stop = shutdown::Shutdown::listen();
    // The API does not wait for the job store: it opens in the background (until then,
    // flows that enqueue answer 503). Standalone also runs the worker and the beat here.
    let standalone = role == Role::Standalone;
    let worker = {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        tokio::spawn(async move {
            let store = tokio::select! {
                store = super::worker::open_store_until_reachable(&ctx.settings) => store,
                () = stop.clone().wait() => return Ok(()),
            };
            let _ = jobs.set(store.clone());
            if !standalone {
                return Ok(());
            }
            let beat = tokio::spawn(super::beat::run_with(ctx.clone(), store.clone(), stop.clone()));
            let worked = super::worker::run(ctx, worker_db, store, stop).await;
            match beat.await {
                Ok(result) => result?,
                Err(error) => return Err(RoleError::Worker(format!("the beat task failed: {error}"))),
            }
            worked
        })
    };
    // Built once the job store is already opening, so the two overlap.
    let app = http::router(state);
    let served = http::serve(listener, app, stop.wait(), grace).await.map_err(RoleError::Serve);
    match worker.await {
        Ok(result) => result?,
        Err(error) => return Err(RoleError::Worker(format!("the worker task failed: {error}"))),
    }
    served?;
    db.close().await;
    tracing::info!(role = role.name(), "stopped");
    Ok(())
}
