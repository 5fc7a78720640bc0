//! Signed file URLs, as Dify makes them: `{FILES_URL}/files/{id}/file-preview?timestamp=…
//! &nonce=…&sign=…`, where `sign` is the URL-safe Base64 of HMAC-SHA256(SECRET_KEY,
//! "file-preview|{id}|{timestamp}|{nonce}"), valid for FILES_ACCESS_TIMEOUT seconds. The
//! preview route serves the stored file to whoever holds such a URL.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::documents_repo as repo;
use super::http::{ServiceKey, dataset_id, datasets, documents};
use super::service::DatasetsError;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::openapi::{ErrorBody, ServiceErrors};

fn signature(secret: &str, id: Uuid, timestamp: &str, nonce: &str) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(format!("file-preview|{id}|{timestamp}|{nonce}").as_bytes());
    Some(base64::engine::general_purpose::URL_SAFE.encode(mac.finalize().into_bytes()))
}

/// A signed preview URL for an upload.
pub fn signed_url(state: &AppState, id: Uuid) -> Result<String, ApiError> {
    let server = &state.settings.server;
    let base = server
        .files_url
        .as_ref()
        .or(server.console_api_url.as_ref())
        .map(|url| url.0.as_str().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| ApiError::Internal)?;
    let nonce = hex::encode(bytes);
    let sign =
        signature(state.secret_key.expose_secret(), id, &timestamp, &nonce).ok_or(ApiError::Internal)?;
    Ok(format!("{base}/files/{id}/file-preview?timestamp={timestamp}&nonce={nonce}&sign={sign}"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PreviewQuery {
    timestamp: Option<String>,
    nonce: Option<String>,
    sign: Option<String>,
}

/// `GET /files/{id}/file-preview`: the stored file, for a valid, unexpired signature.
#[utoipa::path(get, path = "/files/{id}/file-preview", tag = "documents",
    params(("id" = Uuid, Path, description = "The upload file id"), PreviewQuery),
    responses((status = 200, description = "The file, with its content type", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "A missing, wrong or expired signature (FILES_ACCESS_TIMEOUT)", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PreviewQuery>,
) -> Result<Response, ApiError> {
    let forbidden = || ApiError::coded(StatusCode::FORBIDDEN, "forbidden", "Invalid request.");
    let id = Uuid::parse_str(&id).map_err(|_| forbidden())?;
    let (Some(timestamp), Some(nonce), Some(sign)) = (query.timestamp, query.nonce, query.sign) else {
        return Err(forbidden());
    };
    let expected =
        signature(state.secret_key.expose_secret(), id, &timestamp, &nonce).ok_or_else(forbidden)?;
    // Constant-time comparison of the two signatures.
    let same = expected.len() == sign.len()
        && expected.bytes().zip(sign.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    let issued: i64 = timestamp.parse().map_err(|_| forbidden())?;
    let age = chrono::Utc::now().timestamp() - issued;
    if !same || age < -60 || age > i64::from(state.settings.server.files_access_timeout.0) {
        return Err(forbidden());
    }
    let missing = || ApiError::coded(StatusCode::NOT_FOUND, "not_found", "File not found.");
    let file =
        repo::find_upload_file(&state.db, id).await.map_err(DatasetsError::from)?.ok_or_else(missing)?;
    let bytes = state.storage.operator().read(&file.storage_key).await.map_err(|_| missing())?.to_vec();
    let encoded: String = url::form_urlencoded::byte_serialize(file.name.as_bytes()).collect();
    Response::builder()
        .header(header::CONTENT_TYPE, file.mime_type.as_deref().unwrap_or("application/octet-stream"))
        .header(header::CONTENT_DISPOSITION, format!("inline; filename*=UTF-8''{encoded}"))
        .body(Body::from(bytes))
        .map_err(|_| ApiError::Internal)
}

/// `GET /v1/datasets/{id}/documents/{doc}/download`: a signed URL to the document's file.
#[utoipa::path(get, path = "/datasets/{id}/documents/{document}/download", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath),
    responses((status = 200, description = "A signed `/files/{id}/file-preview` URL, valid FILES_ACCESS_TIMEOUT seconds", body = crate::datasets::schemas::DownloadUrl), ServiceErrors))]
async fn download(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, document)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dataset = datasets(&state).get_for_api(key.0.tenant_id, dataset_id(&id)?).await?.dataset;
    let document = Uuid::parse_str(&document).map_err(|_| ApiError::from(DatasetsError::DocumentNotFound))?;
    let document = documents(&state).get(dataset.id, document).await?;
    let file = document.upload_file_id.ok_or(DatasetsError::DocumentNotFound)?;
    Ok(Json(json!({"url": signed_url(&state, file)?})))
}

/// The download route (mounted under `/v1`).
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download))
}

/// The file preview route (mounted at the root, as Dify serves `/files`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(preview))
}
