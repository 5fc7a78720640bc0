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
use crate::http::error::{ApiError, JsonBody};
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

/// Documents to put in one zip.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct ZipArgs {
    /// 1 to 100 document ids of the dataset.
    document_ids: Option<Vec<String>>,
}

/// Dify's limit of documents per zip.
const MAX_ZIP_DOCUMENTS: usize = 100;

/// `POST /v1/datasets/{id}/documents/download-zip`: the documents' files in one zip, each
/// under its upload name (a repeated name gets ` (2)`, ` (3)`, … before its extension).
#[utoipa::path(post, path = "/datasets/{id}/documents/download-zip", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body = ZipArgs,
    responses((status = 200, description = "A zip of the files (`documents.zip`)", content_type = "application/zip", body = Vec<u8>),
        ServiceErrors))]
async fn download_zip(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ZipArgs>,
) -> Result<Response, ApiError> {
    let dataset = datasets(&state).get_for_api(key.0.tenant_id, dataset_id(&id)?).await?.dataset;
    let invalid = |message: String| ApiError::from(DatasetsError::InvalidParam(message));
    let ids = body
        .document_ids
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| invalid("document_ids is required.".into()))?;
    if ids.len() > MAX_ZIP_DOCUMENTS {
        return Err(invalid(format!("At most {MAX_ZIP_DOCUMENTS} documents can be downloaded at once.")));
    }
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(ids.len());
    let mut taken = std::collections::HashSet::new();
    for raw in &ids {
        let document = Uuid::parse_str(raw).map_err(|_| ApiError::from(DatasetsError::DocumentNotFound))?;
        let document = documents(&state).get(dataset.id, document).await?;
        let file_id = document.upload_file_id.ok_or(DatasetsError::DocumentNotFound)?;
        let missing = || ApiError::coded(StatusCode::NOT_FOUND, "not_found", "File not found.");
        let file = repo::find_upload_file(&state.db, file_id)
            .await
            .map_err(DatasetsError::from)?
            .ok_or_else(missing)?;
        let bytes = state.storage.operator().read(&file.storage_key).await.map_err(|_| missing())?.to_vec();
        entries.push((unique_name(&file.name, &mut taken), bytes));
    }
    // Compression is CPU work: keep it off the async workers.
    let zipped = tokio::task::spawn_blocking(move || zip_entries(entries))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|_| ApiError::Internal)?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/zip")
        .header(header::CONTENT_DISPOSITION, "attachment; filename=\"documents.zip\"")
        .body(Body::from(zipped))
        .map_err(|_| ApiError::Internal)
}

/// `name`, or `name (2).ext`, `name (3).ext`, … when already in the zip.
fn unique_name(name: &str, taken: &mut std::collections::HashSet<String>) -> String {
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, format!(".{extension}")),
        _ => (name, String::new()),
    };
    let mut candidate = name.to_owned();
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{stem} ({n}){extension}");
    }
    candidate
}

fn zip_entries(entries: Vec<(String, Vec<u8>)>) -> zip::result::ZipResult<Vec<u8>> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        writer.start_file(name, options)?;
        writer.write_all(&bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

/// The download routes (mounted under `/v1`).
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download)).routes(routes!(download_zip))
}

/// The file preview route (mounted at the root, as Dify serves `/files`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(preview))
}
