//! The one place errors become HTTP responses, in Dify's `{code, message, status}` envelope.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Errors a handler can return; each maps to a status and a Dify error code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
    )]
    NotFound,
    #[error("The method is not allowed for the requested URL.")]
    MethodNotAllowed,
    #[error("The data value transmitted exceeds the capacity limit.")]
    PayloadTooLarge,
    #[error("The request took longer than the configured timeout (GUNICORN_TIMEOUT).")]
    RequestTimeout,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("The server encountered an internal error and was unable to complete your request.")]
    Internal,
    /// A domain error with Dify's code for it.
    #[error("{message}")]
    Coded { status: StatusCode, code: &'static str, message: String },
    /// Any other status produced by a layer, kept as is.
    #[error("{1}")]
    Status(StatusCode, String),
}

/// The JSON body of every error.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub code: &'a str,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Status(status, _) => *status,
            ApiError::Coded { status, .. } => *status,
        }
    }

    /// Dify's code: the domain code, else the snake_case name of the werkzeug exception.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Coded { code, .. } => code,
            other => code_for(other.status()),
        }
    }

    /// Shorthand for a coded error.
    pub fn coded(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Coded { status, code, message: message.into() }
    }

    /// The error for a bodyless status produced by a tower layer (404, 405, 408, 413, ...).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
            StatusCode::INTERNAL_SERVER_ERROR => ApiError::Internal,
            other => ApiError::Status(other, other.canonical_reason().unwrap_or("Error").to_owned()),
        }
    }
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "request_entity_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        StatusCode::INTERNAL_SERVER_ERROR => "internal_server_error",
        _ => "unknown",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::UNAUTHORIZED {
            let body = Envelope { code: self.code(), message: self.to_string(), status: status.as_u16() };
            // Dify adds this header to every 401.
            return (status, [(header::WWW_AUTHENTICATE, "Bearer realm=\"api\"")], axum::Json(body))
                .into_response();
        }
        let body = Envelope { code: self.code(), message: self.to_string(), status: status.as_u16() };
        (status, axum::Json(body)).into_response()
    }
}

/// Rewrites any error response that is not JSON (from axum's routing, timeouts, body
/// limits, panics) into the envelope, so clients always get the same shape.
pub async fn json_errors(request: Request<Body>, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut replacement = ApiError::from_status(status).into_response();
    // Keep headers such as Allow (405), request id and CORS; the body is new.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement.headers_mut().append(name.clone(), value.clone());
        }
    }
    replacement
}

/// Turns a handler panic into the envelope instead of a dropped connection.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    ApiError::Internal.into_response()
}

/// A JSON body whose rejection (bad JSON, wrong field types) is a 400 in the envelope with
/// the parser's explanation, instead of axum's plain-text reply.
pub struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(rejection) => Err(ApiError::coded(
                StatusCode::BAD_REQUEST,
                "invalid_param",
                format!("Invalid JSON payload received or JSON payload is empty: {}", rejection.body_text()),
            )),
        }
    }
}
