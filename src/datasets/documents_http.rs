//! `/v1` document routes: create by text, list, get, delete, indexing status, retrieve.
//! Canonical hyphenated paths, with Dify's underscore aliases.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::documents_service::CreateByText;
use super::http::{ListQuery, ServiceKey, dataset_id, datasets, documents, paging};
use super::model::Dataset;
use super::service::DatasetsError;
use crate::http::AppState;
use crate::http::error::{ApiError, JsonBody};

/// The dataset named by the path, if this key may use it through the API.
async fn api_dataset(state: &AppState, key: &ServiceKey, raw: &str) -> Result<Dataset, ApiError> {
    Ok(datasets(state).get_for_api(key.0.tenant_id, dataset_id(raw)?).await?.dataset)
}

fn document_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| DatasetsError::DocumentNotFound.into())
}

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

async fn delete(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, document)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    documents(&state).delete(dataset.id, document_id(&document)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn indexing_status(
    State(state): State<AppState>,
    key: ServiceKey,
    Path((id, batch)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    Ok(Json(json!({"data": documents(&state).batch_status(dataset.id, &batch).await?})))
}

async fn retrieve(
    State(state): State<AppState>,
    key: ServiceKey,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let dataset = api_dataset(&state, &key, &id).await?;
    Ok(Json(documents(&state).retrieve(&dataset, &body, key.0.owner_id).await?))
}

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

#[derive(Debug, Deserialize)]
struct StatusArgs {
    document_ids: Option<Vec<String>>,
}

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

/// The document routes (mounted under `/v1`).
pub fn service_routes() -> Router<AppState> {
    Router::new()
        .route("/datasets/{id}/document/create-by-text", post(create_by_text))
        .route("/datasets/{id}/document/create_by_text", post(create_by_text))
        .route("/datasets/{id}/document/create-by-file", post(create_by_file))
        .route("/datasets/{id}/document/create_by_file", post(create_by_file))
        .route("/datasets/{id}/documents", get(list))
        .route("/datasets/{id}/documents/{document}", get(detail).delete(delete).patch(update_by_file))
        .route("/datasets/{id}/documents/{document}/update-by-text", post(update_by_text))
        .route("/datasets/{id}/documents/{document}/update_by_text", post(update_by_text))
        .route("/datasets/{id}/documents/{document}/update-by-file", post(update_by_file))
        .route("/datasets/{id}/documents/{document}/update_by_file", post(update_by_file))
        .route("/datasets/{id}/documents/{batch}/indexing-status", get(indexing_status))
        .route("/datasets/{id}/documents/{batch}/indexing_status", get(indexing_status))
        .route("/datasets/{id}/documents/status/{action}", axum::routing::patch(set_status))
        .route("/datasets/{id}/retrieve", post(retrieve))
        .route("/datasets/{id}/hit-testing", post(retrieve))
}
