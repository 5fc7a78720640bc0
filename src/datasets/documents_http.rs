//! `/v1` document routes: create by text, list, get, delete, indexing status, retrieve.
//! Canonical hyphenated paths, with Dify's underscore aliases.

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::documents_service::CreateByText;
use super::http::{ListQuery, ServiceKey, dataset_id, datasets, documents, paging};
use super::model::Dataset;
use super::service::DatasetsError;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};
use crate::http::openapi::{ErrorBody, ServiceErrors, Success};

/// The dataset named by the path, if this key may use it through the API.
async fn api_dataset(state: &AppState, key: &ServiceKey, raw: &str) -> Result<Dataset, ApiError> {
    Ok(datasets(state).get_for_api(key.0.tenant_id, dataset_id(raw)?).await?.dataset)
}

fn document_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| DatasetsError::DocumentNotFound.into())
}

/// Creates a document from text; it is indexed on the worker (poll the batch's indexing-status).
#[utoipa::path(post, path = "/datasets/{id}/document/create-by-text", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body = CreateByText,
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
async fn create_by_text(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<CreateByText>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let document = documents(&state).create_by_text(&dataset, key.0.owner_id, body, state.jobs.get()).await?;
    let batch = document.batch.clone();
    Ok(Json(json!({"document": document.json(0), "batch": batch})))
}

/// `file` (exactly one) and `data` (a JSON string of the create-by-text fields but name
/// and text) from a multipart body.
async fn read_upload(multipart: Multipart) -> Result<(String, Vec<u8>, CreateByText), ApiError> {
    let (file, data) = read_multipart(multipart).await?;
    let (name, bytes) = file.ok_or(DatasetsError::NoFileUploaded)?;
    Ok((name, bytes, data))
}

/// The optional `file` and the `data` fields of a multipart body.
async fn read_multipart(
    mut multipart: Multipart,
) -> Result<(Option<(String, Vec<u8>)>, CreateByText), ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        ApiError::from(DatasetsError::InvalidParam(format!(
            "The multipart body cannot be read: {}",
            e.body_text()
        )))
    };
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut data = CreateByText::default();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(DatasetsError::TooManyFiles.into());
                }
                let name = field.file_name().map(str::to_owned).unwrap_or_default();
                file = Some((name, field.bytes().await.map_err(bad)?.to_vec()));
            }
            Some("data") => {
                let text = field.text().await.map_err(bad)?;
                if !text.trim().is_empty() {
                    data = serde_json::from_str(&text).map_err(|e| {
                        ApiError::from(DatasetsError::InvalidParam(format!("data is not valid JSON: {e}")))
                    })?;
                }
            }
            _ => {}
        }
    }
    Ok((file, data))
}

/// Creates a document from a file (txt, md, html, csv, json, pdf, docx, …).
#[utoipa::path(post, path = "/datasets/{id}/document/create-by-file", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch),
        (status = 413, description = "`file_too_large` (UPLOAD_FILE_SIZE_LIMIT)", body = ErrorBody),
        (status = 415, description = "`unsupported_file_type`: unknown type or unreadable file", body = ErrorBody),
        ServiceErrors))]
async fn create_by_file(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let (name, bytes, data) = read_upload(multipart).await?;
    let document = documents(&state)
        .create_by_file(&dataset, key.0.owner_id, &name, bytes, data, state.jobs.get())
        .await?;
    let batch = document.batch.clone();
    Ok(Json(json!({"document": document.json(0), "batch": batch})))
}

#[utoipa::path(get, path = "/datasets/{id}/documents", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath, crate::datasets::schemas::PageQuery),
    responses((status = 200, body = crate::datasets::schemas::DocumentList), ServiceErrors))]
async fn list(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let (page, limit) = paging(&query)?;
    let (data, total) = documents(&state).list(dataset.id, query.keyword.as_deref(), page, limit).await?;
    let has_more = i64::from(page) * i64::from(limit) < total;
    Ok(Json(json!({"data": data, "has_more": has_more, "limit": limit, "total": total, "page": page})))
}

#[derive(Debug, Deserialize)]
struct DetailQuery {
    metadata: Option<String>,
}

#[utoipa::path(get, path = "/datasets/{id}/documents/{document}", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath, ("metadata" = Option<String>, Query, description = "`all` (default), `only` (`{id, doc_type, doc_metadata}`) or `without`")),
    responses((status = 200, body = crate::datasets::schemas::DocumentDetail), ServiceErrors))]
async fn detail(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, document)): Path<(String, String)>,
    Query(query): Query<DetailQuery>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let service = documents(&state);
    let document = service.get(dataset.id, document_id(&document)?).await?;
    Ok(Json(service.detail(&document, query.metadata.as_deref().unwrap_or("all")).await?))
}

#[utoipa::path(delete, path = "/datasets/{id}/documents/{document}", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath),
    responses((status = 204, description = "Deleted, with its segments, index entries and file"), ServiceErrors))]
async fn delete(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, document)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    documents(&state).delete(dataset.id, document_id(&document)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/datasets/{id}/documents/{batch}/indexing-status", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::BatchPath),
    responses((status = 200, body = crate::datasets::schemas::BatchStatus), ServiceErrors))]
async fn indexing_status(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, batch)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    Ok(Json(json!({"data": documents(&state).batch_status(dataset.id, &batch).await?})))
}

/// Searches the dataset's segments (`keyword_search`, or `full_text_search` when asked for).
#[utoipa::path(post, path = "/datasets/{id}/retrieve", tag = "retrieval", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body = crate::datasets::schemas::RetrieveRequest,
    responses((status = 200, body = crate::datasets::schemas::RetrieveResponse), ServiceErrors))]
async fn retrieve(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    Ok(Json(documents(&state).retrieve(&dataset, &body, key.0.owner_id).await?))
}

/// Renames a document and/or gives it new text or a new process rule (then re-indexed).
#[utoipa::path(post, path = "/datasets/{id}/documents/{document}/update-by-text", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath), request_body = CreateByText,
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
async fn update_by_text(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, document)): Path<(String, String)>,
    JsonBody(body): JsonBody<CreateByText>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let document = documents(&state)
        .update(&dataset, document_id(&document)?, key.0.owner_id, None, body, state.jobs.get())
        .await?;
    let batch = document.batch.clone();
    Ok(Json(json!({"document": document.json(0), "batch": batch})))
}

/// Gives a document a new file and/or process rule (then re-indexed).
#[utoipa::path(post, path = "/datasets/{id}/documents/{document}/update-by-file", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath), request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
async fn update_by_file(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, document)): Path<(String, String)>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let (file, data) = read_multipart(multipart).await?;
    let document = documents(&state)
        .update(&dataset, document_id(&document)?, key.0.owner_id, file, data, state.jobs.get())
        .await?;
    let batch = document.batch.clone();
    Ok(Json(json!({"document": document.json(0), "batch": batch})))
}

#[derive(Debug, Deserialize, ToSchema)]
struct StatusArgs {
    /// The documents to act on (unknown ids are skipped).
    document_ids: Option<Vec<String>>,
}

/// A multipart upload: the file and the create-by-text fields other than name and text.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the multipart body `read_multipart` reads
struct UploadForm {
    /// Exactly one file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A JSON string: `indexing_technique`, `process_rule`, `doc_form`, `doc_language`, ….
    data: Option<String>,
}

/// Enables, disables, archives or un-archives documents.
#[utoipa::path(patch, path = "/datasets/{id}/documents/status/{action}", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath, ("action" = String, Path, description = "`enable`, `disable`, `archive` or `un_archive`")),
    request_body = StatusArgs,
    responses((status = 200, body = Success), ServiceErrors))]
async fn set_status(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, action)): Path<(String, String)>,
    JsonBody(body): JsonBody<StatusArgs>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    let ids = body.document_ids.unwrap_or_default();
    documents(&state).set_status(dataset.id, &action, &ids, key.0.owner_id).await?;
    Ok(Json(json!({"result": "success"})))
}

/// The document routes (mounted under `/v1`). The aliases are deprecated (so marked in the
/// spec) but served.
#[allow(deprecated)]
pub fn service_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_by_text))
        .routes(routes!(create_by_text_alias))
        .routes(routes!(create_by_file))
        .routes(routes!(create_by_file_alias))
        .routes(routes!(list))
        .routes(routes!(detail, delete, patch_by_file))
        .routes(routes!(update_by_text))
        .routes(routes!(update_by_text_alias))
        .routes(routes!(update_by_file))
        .routes(routes!(update_by_file_alias))
        .routes(routes!(indexing_status))
        .routes(routes!(indexing_status_alias))
        .routes(routes!(set_status))
        .routes(routes!(retrieve))
        .routes(routes!(hit_testing))
}

// Dify's deprecated underscore aliases and second paths: the same handlers, listed in the
// spec as deprecated.

#[utoipa::path(post, path = "/datasets/{id}/document/create_by_text", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body = CreateByText,
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
#[deprecated = "Dify's underscore alias; use the hyphenated path"]
async fn create_by_text_alias(
    state: State<AppState>,
    key: ServiceKey,
    path: Path<String>,
    body: JsonBody<CreateByText>,
) -> Result<Json<Value>, ApiError> {
    create_by_text(state, key, path, body).await
}

#[utoipa::path(post, path = "/datasets/{id}/document/create_by_file", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
#[deprecated = "Dify's underscore alias; use the hyphenated path"]
async fn create_by_file_alias(
    state: State<AppState>,
    key: ServiceKey,
    path: Path<String>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    create_by_file(state, key, path, multipart).await
}

#[utoipa::path(post, path = "/datasets/{id}/documents/{document}/update_by_text", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath), request_body = CreateByText,
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
#[deprecated = "Dify's underscore alias; use the hyphenated path"]
async fn update_by_text_alias(
    state: State<AppState>,
    key: ServiceKey,
    path: Path<(String, String)>,
    body: JsonBody<CreateByText>,
) -> Result<Json<Value>, ApiError> {
    update_by_text(state, key, path, body).await
}

#[utoipa::path(post, path = "/datasets/{id}/documents/{document}/update_by_file", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath), request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
#[deprecated = "Dify's underscore alias; use the hyphenated path"]
async fn update_by_file_alias(
    state: State<AppState>,
    key: ServiceKey,
    path: Path<(String, String)>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    update_by_file(state, key, path, multipart).await
}

/// Dify's PATCH form of update-by-file.
#[utoipa::path(patch, path = "/datasets/{id}/documents/{document}", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DocumentPath), request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 200, body = crate::datasets::schemas::DocumentBatch), ServiceErrors))]
async fn patch_by_file(
    state: State<AppState>,
    key: ServiceKey,
    path: Path<(String, String)>,
    multipart: Multipart,
) -> Result<Json<Value>, ApiError> {
    update_by_file(state, key, path, multipart).await
}

#[utoipa::path(get, path = "/datasets/{id}/documents/{batch}/indexing_status", tag = "documents", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::BatchPath),
    responses((status = 200, body = crate::datasets::schemas::BatchStatus), ServiceErrors))]
#[deprecated = "Dify's underscore alias; use the hyphenated path"]
async fn indexing_status_alias(
    state: State<AppState>,
    key: ServiceKey,
    path: Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    indexing_status(state, key, path).await
}

/// The same as `/retrieve` (Dify's console name).
#[utoipa::path(post, path = "/datasets/{id}/hit-testing", tag = "retrieval", security(("dataset_api_key" = [])),
    params(crate::datasets::schemas::DatasetPath), request_body = crate::datasets::schemas::RetrieveRequest,
    responses((status = 200, body = crate::datasets::schemas::RetrieveResponse), ServiceErrors))]
async fn hit_testing(
    state: State<AppState>,
    key: ServiceKey,
    path: Path<String>,
    body: JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    retrieve(state, key, path, body).await
}
