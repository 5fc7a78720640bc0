//! The HTTP API: router, middleware and the server loop.

pub mod client_ip;
pub mod error;
pub mod health;
pub mod openapi;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::get;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::accounts::tokens::AuthStore;
use crate::config::Settings;
use crate::config::value::Origins;
use crate::infra::db::Db;
use crate::infra::redis::RedisProbe;
use crate::infra::storage::Storage;

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Everything handlers share, behind one `Arc`: axum clones the state for every request and
/// every layer, and one reference count is cheaper than one per field (the per-field clones
/// and drops were 7% of the api's CPU under load on `/health`).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The fields of [`AppState`].
pub struct SharedState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub redis: Arc<Vec<RedisProbe>>,
    pub storage: Storage,
    /// The effective `SECRET_KEY` (configured or generated), for signing.
    pub secret_key: Arc<SecretString>,
    /// Refresh tokens and login counters (Redis when configured, else the database).
    pub auth: AuthStore,
    /// The job store, once it has answered (it is opened in the background so the API
    /// starts while the broker is still down).
    pub jobs: Arc<std::sync::OnceLock<crate::infra::queue::JobStore>>,
    /// Whether this process also runs a worker (standalone): `/ready` then reports the job
    /// store and the queue counts.
    pub runs_worker: bool,
    /// Dataset API keys verified recently, so /v1 calls skip the key lookup.
    pub api_keys: Arc<crate::datasets::service::KeyCache>,
}

fn cors(origins: &Origins, credentials: bool) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("x-csrf-token"),
            HeaderName::from_static("x-app-code"),
        ])
        .expose_headers([HeaderName::from_static("x-version"), HeaderName::from_static("x-env")])
        .max_age(Duration::from_secs(600));
    match origins {
        // With credentials the browser rejects `*`, so mirror the caller's origin instead.
        Origins::Any if credentials => {
            layer.allow_origin(AllowOrigin::mirror_request()).allow_credentials(true)
        }
        Origins::Any => layer.allow_origin(AllowOrigin::any()),
        Origins::List(list) => {
            let values: Vec<HeaderValue> =
                list.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
            layer.allow_origin(values).allow_credentials(credentials)
        }
    }
}

/// A JSON 404 for every path no route claims.
async fn not_found() -> error::ApiError {
    error::ApiError::NotFound
}

/// Just `/health` and `/ready`, for a worker's health listener.
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(error::json_errors))
}

/// Builds the full router with every middleware.
pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let console = crate::accounts::http::routes()
        .merge(crate::datasets::http::console_routes())
        .fallback(not_found)
        .layer(cors(&settings.console_cors_origins(), true));
    let web =
        Router::new().fallback(not_found).layer(cors(&settings.server.web_api_cors_allow_origins, true));
    let service =
        crate::datasets::http::service_routes().fallback(not_found).layer(cors(&Origins::Any, false));
    let (routes, api) = OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .nest("/console/api", console)
        .nest("/v1", service)
        .merge(crate::datasets::files::routes())
        .split_for_parts();
    let api = openapi::finish(api);

    let version = HeaderValue::from_static(crate::VERSION);
    let env = HeaderValue::from_str(&settings.app.deploy_env)
        .unwrap_or_else(|_| HeaderValue::from_static("PRODUCTION"));
    let body_limit =
        usize::try_from(u64::from(settings.server.max_body_mb.0) * 1024 * 1024).unwrap_or(usize::MAX);
    let timeout = settings.server.request_timeout.duration();

    let mut app = routes
        .nest("/api", web)
        .merge(openapi::routes(api))
        .fallback(not_found)
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(body_limit))
        // axum's extractors have their own 2 MB default; one limit, from the settings, rules.
        .layer(axum::extract::DefaultBodyLimit::max(body_limit));
    if !timeout.is_zero() {
        app = app.layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout));
    }
    app.layer(axum::middleware::from_fn(error::json_errors))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("x-version"), version))
        .layer(SetResponseHeaderLayer::overriding(HeaderName::from_static("x-env"), env))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish for up to `grace`.
///
/// Takes the listener and the shutdown future as arguments so tests run the real server on
/// `127.0.0.1:0` and stop it when they like.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!(
                grace_s = grace.as_secs(),
                "no longer accepting connections; finishing in-flight requests"
            );
            let _ = stopping_tx.send(());
        });
    let grace_expired = async move {
        if stopping_rx.await.is_err() {
            // The server ended on its own; nothing to time.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result,
        () = grace_expired => {
            tracing::warn!(grace_s = grace.as_secs(), "grace period (KILN_SHUTDOWN_GRACE_PERIOD) elapsed; dropping unfinished requests");
            Ok(())
        }
    }
}
